use dagger::prelude::*;

#[task]
fn load(n: usize) -> usize {
    n
}

fn main() {
    let _ = 'outer: loop {
        let g = dag! {
            let a = load(1);
            break 'outer a;
        };
        let _ = g;
    };
}
