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
    let _ = dag! {
        let v = load(3);
        bump(&mut v);
        v
    };
}
