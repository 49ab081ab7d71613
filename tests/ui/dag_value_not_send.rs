use std::rc::Rc;

use dagger::prelude::*;

#[task]
fn share(n: u32) -> Rc<u32> {
    Rc::new(n)
}

fn main() {
    let _ = dag! {
        let a = share(1);
        a
    };
}
