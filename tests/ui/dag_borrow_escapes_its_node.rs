use dagger::prelude::*;

#[task]
fn load(n: usize) -> Vec<u64> {
    vec![0; n]
}

#[task]
fn bump(v: &mut Vec<u64>) {
    v.push(1);
}

fn main() {
    // A reference to a binding cannot become a binding: another node could write
    // through `&mut v` while it is alive.
    let _ = dag! {
        let mut v = load(3);
        let first = &v;
        bump(&mut v);
        first.len()
    };
}
