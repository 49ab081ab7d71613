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
    // An `async` block that borrows a binding cannot become a binding either.
    let _ = dag! {
        let v = make(3);
        let fut = async { v.len() };
        let n = total(&v);
        (fut, n)
    };
}
