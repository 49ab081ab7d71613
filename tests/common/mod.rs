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

/// Combines two values into a hash: what the random-graph tests compute at each node.
pub fn mix(a: u64, b: u64) -> u64 {
    (a ^ b.rotate_left(17))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

/// A small deterministic generator (xorshift64) for random graphs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
