//! One concept: choosing where a graph runs. `run()` uses the default runtime
//! (`DAGGER_THREADS` threads, default one per CPU); `run_on` takes your own.

use dagger::prelude::*;

#[task]
fn work(i: u64) -> u64 {
    (0..2_000_000u64).fold(i, |acc, x| acc.wrapping_mul(31).wrapping_add(x))
}

#[task]
fn combine(a: u64, b: u64) -> u64 {
    a ^ b
}

fn main() -> Result<(), dagger::Error> {
    let default = dagger::runtime::default_runtime()?;
    println!(
        "default runtime: {} threads (set DAGGER_THREADS to change)",
        default.threads()
    );

    for threads in [1, 2] {
        let rt = Runtime::builder()
            .threads(threads)
            .thread_name("example")
            .build()?;
        let start = std::time::Instant::now();
        let x = dag! {
            let a = work(1);
            let b = work(2);
            combine(a, b)
        }
        .run_on(&rt)?;
        println!(
            "{threads} thread(s): {x:x} in {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}
