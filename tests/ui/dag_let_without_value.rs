use dagger::prelude::*;

fn main() {
    let _ = dag! {
        let a: usize;
        a
    };
}
