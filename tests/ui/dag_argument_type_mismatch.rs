use dagger::prelude::*;

#[task]
fn load(n: usize) -> Vec<u64> {
    vec![0; n]
}

#[task]
fn total(v: &[u64]) -> u64 {
    v.iter().sum()
}

fn main() {
    let _ = dag! {
        let v = load(3);
        let t = total(v.len());
        t
    };
}
