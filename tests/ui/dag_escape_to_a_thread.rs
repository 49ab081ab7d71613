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
    // A thread that outlives the node cannot borrow a binding.
    let _ = dag! {
        let v = make(3);
        let handle = { let r = &v; std::thread::spawn(move || r.len()) };
        let n = total(&v);
        (handle.join().unwrap(), n)
    };
}
