//! Small numbers for threads, handed back when a thread exits and reused, so that a
//! recorder can keep one buffer per thread in a fixed table.

use std::cell::Cell;
use std::sync::Mutex;

/// Threads beyond this many at once share one buffer.
pub(super) const SLOTS: usize = 256;

/// The next never-used slot, and the slots handed back.
static FREE: Mutex<(usize, Vec<usize>)> = Mutex::new((0, Vec::new()));

/// A thread's slot; handed back when the thread exits.
struct Slot(Option<usize>);

impl Slot {
    fn take() -> Slot {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match free.1.pop() {
            Some(slot) => Some(slot),
            None if free.0 < SLOTS => {
                free.0 += 1;
                Some(free.0 - 1)
            }
            None => None,
        };
        Slot(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // From now on this thread has no slot (other destructors may still record).
        CACHED.with(|cached| cached.set(NO_SLOT));
        if let Some(slot) = self.0 {
            // The mutex orders everything this thread wrote to its buffers before the next
            // owner of the slot writes to them.
            FREE.lock().unwrap_or_else(|e| e.into_inner()).1.push(slot);
        }
    }
}

/// `CACHED` before the thread's first look.
const UNKNOWN: usize = usize::MAX;
/// `CACHED` of a thread without a slot.
const NO_SLOT: usize = usize::MAX - 1;

thread_local! {
    static SLOT: Slot = Slot::take();
    /// A copy of `SLOT`'s number: reading it needs no check that `SLOT` is alive.
    static CACHED: Cell<usize> = const { Cell::new(UNKNOWN) };
}

/// The calling thread's slot: no other live thread has it. `None` when all are taken or
/// the thread is exiting.
#[inline]
pub(super) fn current() -> Option<usize> {
    match CACHED.with(Cell::get) {
        UNKNOWN => first_look(),
        NO_SLOT => None,
        slot => Some(slot),
    }
}

#[cold]
fn first_look() -> Option<usize> {
    let slot = SLOT.try_with(|slot| slot.0).ok().flatten();
    CACHED.with(|cached| cached.set(slot.unwrap_or(NO_SLOT)));
    slot
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn threads_alive_at_once_have_distinct_slots() {
        let mine = current().expect("a slot");
        let barrier = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let slot = current().expect("a slot");
                    barrier.wait();
                    slot
                })
            })
            .collect();
        let mut slots: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        slots.push(mine);
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 5, "{slots:?}");
        assert!(slots.iter().all(|&s| s < SLOTS));
    }
}
