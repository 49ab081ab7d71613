use dagger::prelude::*;

#[task]
fn make(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn total(v: &[u64]) -> u64 {
    v.iter().sum()
}

fn main() {
    // A closure that borrows a binding cannot become a binding: it would outlive the
    // node that lends it. Move the value in (`move ||`, on its last use) or call it here.
    let _ = dag! {
        let v = make(3);
        let f = || v.len();
        let n = total(&v);
        (f(), n)
    };
}
