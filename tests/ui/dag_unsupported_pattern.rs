use dagger::prelude::*;

#[task]
fn pair() -> [u32; 2] {
    [1, 2]
}

fn main() {
    let _ = dag! {
        let [a, b] = pair();
        a + b
    };
}
