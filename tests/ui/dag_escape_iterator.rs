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
    // An iterator over a binding borrows it: it cannot be kept for a later statement.
    let _ = dag! {
        let v = make(3);
        let it = v.iter();
        let n = total(&v);
        (it.count(), n)
    };
}
