use dagger::prelude::*;

#[task]
fn load(n: usize) -> usize {
    n
}

fn main() {
    let _ = dag! {
        let n = load(3);
        n += 1;
        n
    };
}
