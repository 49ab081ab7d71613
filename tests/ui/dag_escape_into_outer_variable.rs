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
    // A reference to a binding cannot be stored outside the block: the value is freed
    // when the graph has run.
    let mut kept: Vec<&Vec<u64>> = Vec::new();
    let g = dag! {
        let v = make(3);
        kept.push(&v);
    };
    g.run().unwrap();
    println!("{}", kept.len());
}
