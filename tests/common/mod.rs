//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// Runs the block as plain Rust and as a `dag!` on 1, 2 and 4 threads, many times.
#[allow(unused_macros)]
macro_rules! same_as_sequential {
    ($($body:tt)*) => {{
        let expected = { $($body)* };
        for threads in [1, 2, 4] {
            let rt = $crate::common::runtime(threads);
            for _ in 0..25 {
                let got = ::dagger::dag! { $($body)* }.run_on(&rt).expect("graph failed");
                assert_eq!(got, expected, "{threads} threads");
            }
        }
        expected
    }};
}

mod watchdog;
pub use watchdog::watchdog;

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

/// Whether the tests run in their light version (CI sets `DAGGER_TEST_LIGHT` when it runs
/// them under valgrind, which is 50 times slower): the same checks on smaller inputs.
pub fn light() -> bool {
    std::env::var_os("DAGGER_TEST_LIGHT").is_some()
}

/// A runtime of `threads` workers; in the light version with 8 MiB stacks instead of the
/// default 256 MiB (valgrind pays for every reserved page), which deep recursion leaves
/// for spare threads.
pub fn runtime(threads: usize) -> dagger::Runtime {
    let builder = dagger::Runtime::builder().threads(threads);
    let builder = if light() {
        builder.stack_size(8 << 20)
    } else {
        builder
    };
    builder.build().expect("runtime")
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

/// An observer that sets its flag when dropped, that is, when the runtime it observes
/// lets go of it.
pub struct DropFlag(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl dagger::observe::Observer for DropFlag {}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
