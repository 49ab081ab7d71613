//! One concept: a failing node fails the graph with an error that names it, and the
//! runtime keeps working.

use dagger::prelude::*;

#[task]
fn parse(text: &str) -> Result<i64, std::num::ParseIntError> {
    text.trim().parse()
}

#[task]
fn reciprocal(x: i64) -> f64 {
    assert!(x != 0, "reciprocal of zero");
    1.0 / x as f64
}

fn main() {
    let rt = Runtime::builder().threads(2).build().expect("runtime");
    for input in ["4", "four", "0"] {
        let result = dag! {
            let x = parse(input)?;    // `?`: an Err fails the graph
            let r = reciprocal(x);    // a panic fails it too
            r
        }
        .run_on(&rt);
        match result {
            Ok(r) => println!("{input:>5}: 1/x = {r}"),
            // The error names the task and where its node is: `e.task()`, `e.location()`.
            Err(e) => println!("{input:>5}: {e}"),
        }
    }
}
