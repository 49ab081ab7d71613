//! Worker queues: a task that becomes ready on a worker of its runtime goes to that
//! worker's own queue, a work-stealing deque of task pointers (no allocation and no rayon
//! job per task). Rayon only sees *pumps*: jobs that run the tasks of one worker's queue.
//! The owner pops its own queue (newest first) when it waits for a task; a pump on another
//! worker steals (oldest first).
//!
//! No task is stranded, and none waits behind a task that blocks: while a queue holds
//! tasks, a pump for it is queued in rayon (where any idle worker can steal it). A push
//! queues one unless one is queued; a pump, once started, queues the next before it runs
//! a task if more are left. SeqCst fences make a push and a starting pump see each other.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use super::schedule::{clone_shared, run_chain};
use super::task::ReadyTask;
use crate::runtime::Shared;

/// The queues of one runtime's workers, as other threads see them.
pub(crate) struct Queues {
    queues: Box<[SharedQueue]>,
    /// Tasks made ready off the workers (rayon gets a job that takes one from here).
    injected: Injector<ReadyTask>,
    /// Batches of ready tasks (a fan-out), taken and split by rayon jobs.
    batches: Injector<Vec<ReadyTask>>,
    /// Handed to each worker thread when it starts (see [`Queues::adopt`]).
    unclaimed: Mutex<Vec<Option<Worker<ReadyTask>>>>,
}

struct SharedQueue {
    stealer: Stealer<ReadyTask>,
    /// Pumps queued for this queue and not started yet.
    queued_pumps: AtomicUsize,
}

/// A worker's own end of its queue.
struct LocalQueue {
    runtime: u64,
    index: usize,
    worker: Worker<ReadyTask>,
}

thread_local! {
    static LOCAL: RefCell<Option<LocalQueue>> = const { RefCell::new(None) };
}

impl Queues {
    pub(crate) fn new(threads: usize) -> Queues {
        let workers: Vec<Worker<ReadyTask>> = (0..threads).map(|_| Worker::new_lifo()).collect();
        let queues = workers
            .iter()
            .map(|w| SharedQueue {
                stealer: w.stealer(),
                queued_pumps: AtomicUsize::new(0),
            })
            .collect();
        Queues {
            queues,
            injected: Injector::new(),
            batches: Injector::new(),
            unclaimed: Mutex::new(workers.into_iter().map(Some).collect()),
        }
    }

    /// Queues a task made ready off the workers; the caller queues a rayon job that takes
    /// one (any) task from here, and spare threads take them too.
    pub(crate) fn inject(&self, task: ReadyTask) {
        self.injected.push(task);
    }

    /// Queues a batch; as for [`inject`](Self::inject).
    pub(crate) fn inject_batch(&self, tasks: Vec<ReadyTask>) {
        self.batches.push(tasks);
    }

    /// A task made ready off the workers, if any.
    pub(crate) fn take_injected(&self) -> Option<ReadyTask> {
        steal_from(|| self.injected.steal())
    }

    /// A batch, if any.
    pub(crate) fn steal_batch(&self) -> Option<Vec<ReadyTask>> {
        steal_from(|| self.batches.steal())
    }

    /// Any queued task: injected, or from any worker's queue (for spare threads).
    pub(crate) fn steal_task(&self) -> Option<ReadyTask> {
        self.take_injected().or_else(|| {
            self.queues
                .iter()
                .find_map(|queue| steal_from(|| queue.stealer.steal()))
        })
    }

    /// Makes queue `index` the calling worker thread's own, for the runtime `runtime`.
    pub(crate) fn adopt(&self, runtime: u64, index: usize) {
        let worker = self.unclaimed.lock().unwrap_or_else(|e| e.into_inner())[index].take();
        if let Some(worker) = worker {
            LOCAL.with(|local| {
                *local.borrow_mut() = Some(LocalQueue {
                    runtime,
                    index,
                    worker,
                })
            });
        }
    }
}

/// Queues `task` on this thread's own queue if it is a worker of `shared`; gives it
/// back otherwise.
pub(crate) fn push_local(shared: &Shared, task: ReadyTask) -> Result<(), ReadyTask> {
    let pushed = LOCAL.with(|local| {
        let local = local.borrow();
        match &*local {
            Some(own) if own.runtime == shared.dynamic_run => {
                own.worker.push(task);
                Ok(own.index)
            }
            _ => Err(task),
        }
    })?;
    // Memory ordering: SeqCst, against a queued pump starting (see `pump`).
    fence(Ordering::SeqCst);
    keep_a_pump_queued(shared, pushed);
    Ok(())
}

/// The newest task of this worker's own queue.
pub(crate) fn pop_local() -> Option<ReadyTask> {
    LOCAL.with(|local| local.borrow().as_ref().and_then(|own| own.worker.pop()))
}

/// The newest task of this worker's own queue if it is the task at `header` (a waiting
/// worker runs the task it waits for from there, when it can).
pub(crate) fn pop_local_if(header: NonNull<super::task::Header>) -> Option<ReadyTask> {
    let (top, index) = LOCAL.with(|local| {
        let local = local.borrow();
        let own = local.as_ref()?;
        Some((own.worker.pop()?, own.index))
    })?;
    if top.is(header) {
        return Some(top);
    }
    // Put it back on top, and make sure a pump is queued for it, as a push does: a pump
    // that found the queue empty meanwhile may have ended.
    let runtime = top.shared();
    LOCAL.with(|local| {
        if let Some(own) = local.borrow().as_ref() {
            own.worker.push(top);
        }
    });
    // Memory ordering: SeqCst, as in `push_local`.
    fence(Ordering::SeqCst);
    // SAFETY: this thread runs a task of that runtime (the one that waits), which keeps
    // the runtime alive while the task is queued again and may run elsewhere.
    keep_a_pump_queued(unsafe { runtime.as_ref() }, index);
    None
}

/// The id of the runtime whose worker this thread is, without touching the runtime.
pub(crate) fn local_runtime() -> Option<u64> {
    LOCAL.with(|local| local.borrow().as_ref().map(|own| own.runtime))
}

/// Queues a pump for queue `index` unless one is queued (and not started) already.
fn keep_a_pump_queued(shared: &Shared, index: usize) {
    let queue = &shared.queues.queues[index];
    if queue.queued_pumps.load(Ordering::SeqCst) == 0
        && queue
            .queued_pumps
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    {
        // SAFETY: `shared` is borrowed from a live `Arc` (a ready task's runtime, or a
        // running pump's); the pump holds the new count while it runs.
        let shared = unsafe { clone_shared(NonNull::from(shared)) };
        // On a worker of `shared`'s pool (both callers are): queued on this worker.
        rayon::spawn(move || pump(&shared, index));
    }
}

/// Runs the tasks of queue `owner` until it is empty, keeping another pump queued while
/// tasks are left, so that idle workers can join in and a task that blocks (on a lock, a
/// channel) does not hold up the rest of the queue.
fn pump(shared: &Shared, owner: usize) {
    crate::observe::stretch(|| pump_tasks(shared, owner));
}

fn pump_tasks(shared: &Shared, owner: usize) {
    let queue = &shared.queues.queues[owner];
    queue.queued_pumps.fetch_sub(1, Ordering::SeqCst);
    if super::wait::in_a_task() {
        // SAFETY: the pump holds a count of the runtime (see `keep_a_pump_queued`).
        let runtime = unsafe { clone_shared(NonNull::from(shared)) };
        return super::wait::defer(move || keep_a_pump_queued(&runtime, owner));
    }
    // Memory ordering: SeqCst: a push that saw this pump queued (and started none) is seen
    // by the looks at the queue below.
    fence(Ordering::SeqCst);
    let mine = LOCAL.with(|local| {
        local
            .borrow()
            .as_ref()
            .is_some_and(|own| own.runtime == shared.dynamic_run && own.index == owner)
    });
    loop {
        let task = if mine {
            pop_local()
        } else {
            steal(&queue.stealer)
        };
        let Some(task) = task else { return };
        if !queue.stealer.is_empty() {
            keep_a_pump_queued(shared, owner);
        }
        run_chain(task);
    }
}

fn steal(stealer: &Stealer<ReadyTask>) -> Option<ReadyTask> {
    steal_from(|| stealer.steal())
}

fn steal_from<T>(mut attempt: impl FnMut() -> Steal<T>) -> Option<T> {
    loop {
        match attempt() {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}
