use dagger::prelude::*;

fn main() {
    let _ = dag! {
        fn helper() -> usize {
            1
        }
        let a = { helper() };
        a
    };
}
