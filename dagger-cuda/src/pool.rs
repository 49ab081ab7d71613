//! Reuse without reallocation: a free list of objects (CUDA events), and the round-robin
//! assignment of tasks to streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A free list: `take` reuses a returned object or makes a new one.
#[derive(Debug)]
pub struct Pool<T> {
    free: Mutex<Vec<T>>,
    made: AtomicUsize,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
            made: AtomicUsize::new(0),
        }
    }
}

impl<T> Pool<T> {
    /// A returned object if there is one, otherwise `make()`.
    pub fn take<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        if let Some(item) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(item);
        }
        let item = make()?;
        // Memory ordering: a statistic; nothing is published through it.
        self.made.fetch_add(1, Ordering::Relaxed);
        Ok(item)
    }

    /// Returns an object for reuse.
    pub fn give_back(&self, item: T) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
    }

    /// How many objects were ever made (reuse keeps this at the peak in use).
    pub fn made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }

    /// How many objects are waiting for reuse.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Hands out `0..n` in turn, so that independent tasks land on different streams.
#[derive(Debug)]
pub struct RoundRobin {
    next: AtomicUsize,
    n: usize,
}

impl RoundRobin {
    /// Over `n` (at least one) slots.
    pub fn new(n: usize) -> Self {
        RoundRobin {
            next: AtomicUsize::new(0),
            n: n.max(1),
        }
    }

    /// The next slot.
    pub fn next(&self) -> usize {
        // Memory ordering: only the count matters; no data is published through it.
        self.next.fetch_add(1, Ordering::Relaxed) % self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_reused_once_returned() {
        let pool = Pool::<u32>::default();
        let a = pool.take(|| Ok::<_, ()>(1)).unwrap();
        let b = pool.take(|| Ok::<_, ()>(2)).unwrap();
        assert_eq!(pool.made(), 2);
        pool.give_back(a);
        let c = pool.take(|| Ok::<_, ()>(3)).unwrap();
        assert_eq!(c, 1, "the returned object comes back");
        assert_eq!(pool.made(), 2);
        pool.give_back(b);
        pool.give_back(c);
        for _ in 0..1000 {
            let x = pool.take(|| Ok::<_, ()>(9)).unwrap();
            pool.give_back(x);
        }
        assert_eq!(pool.made(), 2, "a steady state makes nothing new");
        assert_eq!(pool.idle(), 2);
        assert!(
            pool.take(|| Err::<u32, _>("failed")).is_ok(),
            "an idle object is reused without calling make"
        );
    }

    #[test]
    fn a_failed_make_is_reported_and_not_counted() {
        let pool = Pool::<u32>::default();
        assert_eq!(pool.take(|| Err::<u32, _>("no device")), Err("no device"));
        assert_eq!(pool.made(), 0);
    }

    #[test]
    fn round_robin_visits_every_stream_evenly() {
        let rr = RoundRobin::new(4);
        let mut counts = [0; 4];
        for _ in 0..400 {
            counts[rr.next()] += 1;
        }
        assert_eq!(counts, [100; 4]);
        let one = RoundRobin::new(0);
        assert_eq!(
            (one.next(), one.next()),
            (0, 0),
            "zero streams is treated as one"
        );
    }
}
