//! Timestamps for events: the CPU's time-stamp counter where it is usable (about half the
//! cost of `Instant::now()`), converted to nanoseconds only when a trace is exported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

struct TaskClock {
    clock: quanta::Clock,
    origin: u64,
    /// quanta reads the time-stamp counter: read it here directly, without the call and
    /// the match on quanta's clock kind (4 of the 26 ns a read costs on our VM).
    tsc: bool,
}

/// Set once the clock is known to read the counter: `now` then reads it with one check.
// Memory ordering: Relaxed; reading the counter needs nothing else the set-up wrote.
static READS_TSC: AtomicBool = AtomicBool::new(false);

fn clock() -> &'static TaskClock {
    static CLOCK: OnceLock<TaskClock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        // A clock of nanoseconds (quanta's fallback) converts raw deltas unchanged; the
        // counter's ticks are scaled (unless it runs at 1 GHz, where this stays off).
        let probe = 1 << 40;
        let tsc = cfg!(target_arch = "x86_64")
            && clock.delta_as_nanos(0, probe).abs_diff(probe) > probe / 100;
        READS_TSC.store(tsc, Ordering::Relaxed);
        TaskClock { clock, origin, tsc }
    })
}

/// The time-stamp counter.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn read_tsc() -> u64 {
    // SAFETY: RDTSC has no preconditions; it is only called once quanta has chosen the
    // counter, so the operating system lets user code read it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A point in time on dagger's event clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Now.
    #[inline]
    pub fn now() -> Self {
        #[cfg(target_arch = "x86_64")]
        if READS_TSC.load(Ordering::Relaxed) {
            return Timestamp(read_tsc());
        }
        Self::now_from_clock()
    }

    /// `now` before the clock is set up, or where it does not read the counter.
    #[inline(never)]
    fn now_from_clock() -> Self {
        let clock = clock();
        #[cfg(target_arch = "x86_64")]
        if clock.tsc {
            return Timestamp(read_tsc());
        }
        Timestamp(clock.clock.raw())
    }

    /// Nanoseconds since the event clock started (early in the process).
    pub fn as_nanos(self) -> u64 {
        let c = clock();
        if self.0 <= c.origin {
            return 0;
        }
        c.clock.delta_as_nanos(c.origin, self.0)
    }

    /// Nanoseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn nanos_since(self, earlier: Timestamp) -> u64 {
        self.as_nanos().saturating_sub(earlier.as_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_advance_in_nanoseconds() {
        let a = Timestamp::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = Timestamp::now();
        let elapsed = b.nanos_since(a);
        assert!(
            (15_000_000..2_000_000_000).contains(&elapsed),
            "{elapsed} ns for a 20 ms sleep"
        );
        assert_eq!(a.nanos_since(b), 0);
        assert!(b > a);
    }
}
