use dagger::prelude::*;

#[task]
fn step(x: &mut u64) {
    *x += 1;
}

fn main() {
    let _ = dag! {
        let mut x = { 0u64 };
        for _ in 0..10 {
            step(&mut x);
        }
        x
    };
}
