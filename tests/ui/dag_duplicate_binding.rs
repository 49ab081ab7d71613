use dagger::prelude::*;

#[task]
fn load(n: usize) -> usize {
    n
}

fn main() {
    let _ = dag! {
        let a = load(1);
        let a = load(2);
        a
    };
}
