use dagger::prelude::*;

#[task]
fn make(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn total(v: &[u64]) -> u64 {
    v.iter().sum()
}

struct View<'a> {
    v: &'a [u64],
}

fn main() {
    // A struct holding a reference to a binding cannot become a binding.
    let _ = dag! {
        let v = make(3);
        let view = View { v: &v };
        let n = total(&v);
        (view.v.len(), n)
    };
}
