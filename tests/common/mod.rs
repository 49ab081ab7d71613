//! Helpers shared by the integration tests.
#![allow(dead_code)]

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

/// A few microseconds of work whose length depends on `seed`, to shuffle the order in
/// which parallel nodes finish.
pub fn jitter(seed: u64) {
    let spins = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) * 40;
    let mut x = seed;
    for _ in 0..spins {
        x = std::hint::black_box(x.rotate_left(5) ^ 0x5DEE_CE66);
    }
    std::hint::black_box(x);
}

pub fn runtime(threads: usize) -> dagger::Runtime {
    dagger::Runtime::builder()
        .threads(threads)
        .build()
        .expect("runtime")
}
