use dagger::prelude::*;

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

macro_rules! some_or_return {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return Ok(()),
        }
    };
}

fn main() {
    // A `return` hidden in a macro would end the statement before it stores `b`.
    let _ = dag! {
        let a = add(1, 2);
        let o = { if a > 100 { Some(a) } else { None } };
        let b = some_or_return!(o);
        let c = add(b, 1);
        c
    };
}
