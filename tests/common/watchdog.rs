//! The watchdog every threaded test runs under. Standard library only, so that the
//! tests of each workspace crate include this same file (`#[path]`).

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it takes longer than `seconds`,
/// so a scheduling bug shows up as a failure instead of a hung CI job.
pub fn watchdog<T: Send + 'static>(seconds: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(seconds)) {
        Ok(value) => {
            handle
                .join()
                .expect("watched thread panicked after sending");
            value
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: no result after {seconds} s (deadlock?)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
    }
}
