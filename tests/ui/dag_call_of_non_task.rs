use dagger::prelude::*;

fn plain(n: usize) -> usize {
    n
}

fn main() {
    let _ = dag! {
        let a = plain(1);
        a
    };
}
