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
    // Two statements read `c` and may run at the same time: a `Cell` is not `Sync`.
    // Declaring it `let mut c` makes each statement that uses it run alone.
    let _ = dag! {
        let c = { std::cell::Cell::new(1_u64) };
        c.set(2);
        let seen = c.get();
        let last = c.get();
        (seen, last)
    };
}
