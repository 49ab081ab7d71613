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
    // A `move` closure takes the value, as in plain Rust: the binding cannot be used after.
    let _ = dag! {
        let v = make(3);
        let f = move || v.len();
        let n = total(&v);
        (f(), n)
    };
}
