//! Each task keeps its runtime alive with a counted reference ([`RuntimeRef`]). Counting
//! every task on one shared counter would have every worker write the same cache line
//! twice per task; instead, each worker holds a *lease*: counts taken from the runtime's
//! task counter in batches, handed to the tasks it spawns and taken back from the tasks
//! of its runtime it frees.
//!
//! The task counter holds one reference (an `Arc` count) to the runtime for all the
//! counts handed out, plus a base count held by the [`Runtime`](crate::Runtime) itself.
//! Dropping the runtime closes it: every worker gives its lease back (a broadcast) and
//! stops leasing, the base count is given back, and once the last task is freed the
//! counter reaches zero and lets go of the runtime. A count is only ever taken from a
//! holder of counts or with increment-if-not-zero, so the counter never comes back from
//! zero; after that, new tasks (of a closing runtime) hold an `Arc` count of their own.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::runtime::{current_runtime, Shared};

/// Counts a worker takes from the task counter at once.
const BATCH: usize = 256;

/// A worker's lease on its runtime's task counter.
struct Lease {
    /// The runtime, or null while the worker holds no lease.
    runtime: Cell<*const Shared>,
    /// Counts held; at least 1 while `runtime` is set (the lease keeps the runtime alive).
    counts: Cell<usize>,
}

thread_local! {
    static LEASE: Lease = const {
        Lease {
            runtime: Cell::new(ptr::null()),
            counts: Cell::new(0),
        }
    };
}

/// Tags a reference that holds an `Arc` count instead of a task count.
const ARC_COUNT: usize = 1;

/// One counted reference to a runtime: a task count (lent from the task counter) or,
/// for a closing runtime, an `Arc` count.
pub(crate) struct RuntimeRef {
    tagged: NonNull<Shared>,
}

// SAFETY: it is a counted reference to a `Shared`, which is Send + Sync.
unsafe impl Send for RuntimeRef {}
// SAFETY: as above.
unsafe impl Sync for RuntimeRef {}

impl RuntimeRef {
    /// A reference to the runtime of `shared`.
    pub(crate) fn of(shared: &Arc<Shared>) -> RuntimeRef {
        let runtime = Arc::as_ptr(shared);
        if let Some(lent) = take_from_lease(runtime) {
            return lent;
        }
        // Increment if not zero: a zero counter has let go of the runtime for good.
        if let Some(counted) = take_nonzero(shared) {
            return counted;
        }
        let arc = Arc::into_raw(shared.clone());
        // SAFETY: from `Arc::into_raw`, so not null and aligned (the tag bit is free).
        RuntimeRef {
            tagged: unsafe { NonNull::new_unchecked(arc.cast_mut().map_addr(|a| a | ARC_COUNT)) },
        }
    }

    /// A reference to the runtime whose worker this thread is, if it is one.
    pub(crate) fn current() -> Option<RuntimeRef> {
        if let Some(lent) = LEASE.with(lend) {
            return Some(lent);
        }
        let shared = current_runtime()?;
        open_lease(&shared);
        Some(RuntimeRef::of(&shared))
    }

    fn task_count(runtime: *const Shared) -> RuntimeRef {
        RuntimeRef {
            // SAFETY: `runtime` comes from a live `Arc`, so it is not null.
            tagged: unsafe { NonNull::new_unchecked(runtime.cast_mut()) },
        }
    }

    fn ptr(&self) -> *const Shared {
        self.tagged.as_ptr().map_addr(|a| a & !ARC_COUNT)
    }

    /// The runtime.
    pub(crate) fn get(&self) -> &Shared {
        // SAFETY: the count keeps the runtime alive.
        unsafe { &*self.ptr() }
    }

    /// The runtime's address, to compare runtimes.
    pub(crate) fn as_non_null(&self) -> NonNull<Shared> {
        // SAFETY: untagged, from a live runtime.
        unsafe { NonNull::new_unchecked(self.ptr().cast_mut()) }
    }
}

impl Drop for RuntimeRef {
    fn drop(&mut self) {
        let runtime = self.ptr();
        if self.tagged.as_ptr().addr() & ARC_COUNT != 0 {
            // SAFETY: this reference holds one `Arc` count, given up here.
            unsafe { Arc::decrement_strong_count(runtime) };
            return;
        }
        let kept = LEASE.with(|lease| {
            if lease.runtime.get() != runtime {
                return false;
            }
            let counts = lease.counts.get() + 1;
            if counts > 2 * BATCH {
                // SAFETY: the lease holds counts, so the runtime is alive.
                let shared = unsafe { &*runtime };
                // Memory ordering: Release, as every decrement (see `give_back`); the
                // lease keeps BATCH + 1 counts, so this does not reach zero.
                shared.task_counts.fetch_sub(BATCH, Ordering::Release);
                lease.counts.set(counts - BATCH);
            } else {
                lease.counts.set(counts);
            }
            true
        });
        if !kept {
            // SAFETY: this reference holds one task count, given up here.
            unsafe { give_back(runtime, 1) };
        }
    }
}

/// Gives `n` task counts back to the counter; the last lets go of the runtime.
///
/// # Safety
/// The caller holds `n` task counts of the live runtime at `runtime`.
unsafe fn give_back(runtime: *const Shared, n: usize) {
    // SAFETY: the caller's counts keep the runtime alive until given back.
    let shared = unsafe { &*runtime };
    // Memory ordering: Release here and Acquire below, as in `Arc`'s drop: everything done
    // through any count happens before the runtime is let go of.
    if shared.task_counts.fetch_sub(n, Ordering::Release) == n {
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: the counter held one `Arc` count for all its counts; they are all gone.
        unsafe { Arc::decrement_strong_count(runtime) };
    }
}

/// One count from this worker's lease on `runtime`, if it holds one.
fn take_from_lease(runtime: *const Shared) -> Option<RuntimeRef> {
    LEASE.with(|lease| {
        if lease.runtime.get() != runtime {
            return None;
        }
        lend(lease)
    })
}

/// One count from the lease, if there is one, refilled when it runs low.
fn lend(lease: &Lease) -> Option<RuntimeRef> {
    let runtime = lease.runtime.get();
    if runtime.is_null() {
        return None;
    }
    let mut counts = lease.counts.get();
    if counts == 1 {
        // SAFETY: the lease holds a count, so the runtime is alive; adding to a counter we
        // hold a count of cannot bring it back from zero.
        unsafe { &*runtime }
            .task_counts
            .fetch_add(BATCH, Ordering::Relaxed);
        counts += BATCH;
    }
    lease.counts.set(counts - 1);
    Some(RuntimeRef::task_count(runtime))
}

/// Makes this worker lease counts of its runtime, unless the runtime is closing.
fn open_lease(shared: &Arc<Shared>) {
    // Memory ordering: Acquire pairs with the Release store in `close`: a worker whose
    // lease was already given back by `close` sees the flag and does not lease again.
    if shared.closing.load(Ordering::Acquire) {
        return;
    }
    LEASE.with(|lease| {
        if !lease.runtime.get().is_null() {
            return;
        }
        if let Some(first) = take_nonzero(shared) {
            std::mem::forget(first);
            lease.runtime.set(Arc::as_ptr(shared));
            lease.counts.set(1);
        }
    });
}

/// One task count by increment-if-not-zero.
fn take_nonzero(shared: &Arc<Shared>) -> Option<RuntimeRef> {
    let counter = &shared.task_counts;
    let mut current = counter.load(Ordering::Relaxed);
    while current != 0 {
        match counter.compare_exchange_weak(
            current,
            current + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(RuntimeRef::task_count(Arc::as_ptr(shared))),
            Err(now) => current = now,
        }
    }
    None
}

/// The runtime's own count: taken when it is built.
pub(crate) fn open(shared: &Arc<Shared>) {
    shared.task_counts.store(1, Ordering::Relaxed);
    // The counter's reference to the runtime.
    // SAFETY: `shared` is a live `Arc`.
    unsafe { Arc::increment_strong_count(Arc::as_ptr(shared)) };
}

/// Gives back this thread's lease, if it holds one (a spare thread that stops running
/// tasks).
pub(crate) fn leave() {
    LEASE.with(|lease| {
        let runtime = lease.runtime.replace(ptr::null());
        let counts = lease.counts.replace(0);
        if !runtime.is_null() {
            // SAFETY: the lease held these counts of the live runtime at `runtime`.
            unsafe { give_back(runtime, counts) };
        }
    });
}

/// Closes the runtime (its `Runtime` is dropped): every worker gives its lease back and
/// stops leasing, and the runtime's own count is given back.
pub(crate) fn close(shared: &Arc<Shared>) {
    // Memory ordering: Release pairs with the Acquire load in `open_lease`.
    shared.closing.store(true, Ordering::Release);
    let runtime = Arc::as_ptr(shared) as usize;
    let keep = shared.clone();
    shared.pool.spawn_broadcast(move |_| {
        let runtime = runtime as *const Shared;
        let _keep = &keep;
        LEASE.with(|lease| {
            if lease.runtime.get() == runtime {
                let counts = lease.counts.replace(0);
                lease.runtime.set(ptr::null());
                // SAFETY: the lease held these counts.
                unsafe { give_back(runtime, counts) };
            }
        });
    });
    // SAFETY: the runtime's own count, given up once, here.
    unsafe { give_back(Arc::as_ptr(shared), 1) };
}
