//! Running a program on ranks as threads (`local_ranks`), each under a timeout: shared by
//! the tests of misuse, regions and the end of a program.

#![allow(dead_code)]

use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use dagger_core::Error;
use dagger_mpi::{local_ranks, Cluster};

pub fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}

/// Runs `program` on `size` ranks as threads; each rank's outcome (`Err` when it
/// panicked), or `None` when they are not all done after `secs` seconds.
pub fn run_ranks<R: Send + 'static>(
    size: usize,
    secs: u64,
    program: impl Fn(Cluster) -> R + Send + Sync + 'static,
) -> Option<Vec<Result<R, String>>> {
    let program = Arc::new(program);
    let (done, finished) = channel();
    std::thread::spawn(move || {
        let ranks = local_ranks(size);
        let running: Vec<_> = ranks
            .into_iter()
            .map(|cluster| {
                let program = program.clone();
                std::thread::spawn(move || program(cluster))
            })
            .collect();
        let outcome: Vec<Result<R, String>> = running
            .into_iter()
            .map(|r| r.join().map_err(panic_text))
            .collect();
        let _ = done.send(outcome);
    });
    finished.recv_timeout(Duration::from_secs(secs)).ok()
}

pub fn e(error: Error) -> String {
    error.to_string()
}

/// Every rank returned `Ok(Ok(v))`: the values, in rank order.
pub fn all_ok<T: std::fmt::Debug>(
    what: &str,
    outcome: Option<Vec<Result<Result<T, String>, String>>>,
) -> Vec<T> {
    let outcome = outcome.unwrap_or_else(|| panic!("{what}: still running at the timeout (hang)"));
    let mut values = Vec::new();
    let mut failures = Vec::new();
    for (rank, r) in outcome.into_iter().enumerate() {
        match r {
            Ok(Ok(v)) => values.push(v),
            Ok(Err(why)) => failures.push(format!("rank {rank}: error: {why}")),
            Err(panic) => failures.push(format!("rank {rank}: panicked: {panic}")),
        }
    }
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n"));
    values
}

/// `f` in a thread, or `None` when it is not done after `secs` seconds.
pub fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (done, finished) = channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    finished.recv_timeout(Duration::from_secs(secs)).ok()
}
