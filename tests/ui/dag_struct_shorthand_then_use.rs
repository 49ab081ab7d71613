use dagger::prelude::*;

#[task]
fn make(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn total(v: &[u64]) -> u64 {
    v.iter().sum()
}

struct Holder {
    v: Vec<u64>,
}

fn main() {
    // `Holder { v }` moves `v`, as in plain Rust.
    let _ = dag! {
        let v = make(3);
        let h = Holder { v };
        let n = total(&v);
        (h.v.len(), n)
    };
}
