//! One concept: how `&`, `&mut` and moves become edges.
//!
//! `cargo run --example hazards` prints every edge with the binding and hazard that made it.

use dagger::prelude::*;

#[task]
fn make(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

#[task]
fn sum(v: &[u32]) -> u32 {
    v.iter().sum()
}

#[task]
fn double(v: &mut [u32]) {
    v.iter_mut().for_each(|x| *x *= 2);
}

#[task]
fn consume(v: Vec<u32>) -> usize {
    v.len()
}

fn main() -> Result<(), dagger::Error> {
    let g = dag! {
        let mut v = make(4);      // 0: defines v
        let a = sum(&v);          // 1: reads v          (after 0: read-after-write)
        let b = sum(&v);          // 2: reads v          (parallel with 1)
        double(&mut v);           // 3: writes v         (after 1 and 2: write-after-read)
        let c = sum(&v);          // 4: reads v          (after 3)
        let n = consume(v);       // 5: moves v          (after 4)
        (a, b, c, n)
    };
    for edge in g.graph().edges() {
        let from = &g.graph().nodes()[edge.from()];
        let to = &g.graph().nodes()[edge.to()];
        println!(
            "{:>2} {:<22} -> {:>2} {:<22} {} on `{}`",
            edge.from(),
            from.source(),
            edge.to(),
            to.source(),
            edge.hazard().short_name(),
            edge.binding()
        );
    }
    let (a, b, c, n) = g.run()?;
    println!("a = {a}, b = {b}, c = {c}, n = {n}");
    assert_eq!((a, b, c, n), (6, 6, 12, 4));
    Ok(())
}
