use dagger::prelude::*;

#[task]
fn load(n: usize) -> Vec<u64> {
    vec![0; n]
}

#[task]
fn consume(v: Vec<u64>) -> usize {
    v.len()
}

#[task]
fn total(v: &[u64]) -> u64 {
    v.iter().sum()
}

fn main() {
    let _ = dag! {
        let v = load(3);
        let n = consume(v);
        let t = total(&v);
        (n, t)
    };
}
