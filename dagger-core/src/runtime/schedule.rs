//! The scheduling loop: where ready tasks go (this worker's queue, the runtime's
//! injector, batches for fan-outs) and the loops that run them.

use std::ptr::NonNull;
use std::sync::Arc;

use super::task::{Header, ReadyTask};
use super::{queue, wait, Shared};
use crate::observe;

/// Queues a ready task on its runtime's workers.
pub(super) fn schedule(task: ReadyTask) {
    let runtime = task.shared();
    // SAFETY: the ready task keeps its runtime alive until it runs; the reference is not
    // used once the task is queued (it may run and free the runtime at once).
    let Err(task) = queue::push_local(unsafe { runtime.as_ref() }, task) else {
        return;
    };
    // Not on one of its workers: inject it, and queue a job on the pool that runs one
    // injected task (the task stays reachable by spare threads; see `wait`).
    // SAFETY: as above; the clone keeps the runtime alive while the job is queued.
    let shared = unsafe { clone_shared(runtime) };
    shared.queues.inject(task);
    queue_injected_job(shared);
}

/// Queues a job on the pool that runs one injected task.
fn queue_injected_job(shared: Arc<Shared>) {
    let pool = shared.clone();
    shared.pool.spawn(move || {
        if wait::in_a_task() {
            return wait::defer(move || queue_injected_job(pool));
        }
        if let Some(task) = pool.queues.take_injected() {
            observe::stretch(|| run_chain(task));
        }
    });
}

/// A counted reference to the runtime at `shared`.
///
/// # Safety
/// `shared` points into a live `Arc<Shared>`.
pub(super) unsafe fn clone_shared(shared: NonNull<Shared>) -> Arc<Shared> {
    // SAFETY: the caller's contract: the count is at least one while we add ours.
    unsafe {
        Arc::increment_strong_count(shared.as_ptr());
        Arc::from_raw(shared.as_ptr())
    }
}

/// Below this many, ready tasks are queued one job each; above, in batches.
const BATCH: usize = 16;

/// Queues ready tasks. Many at once (a fan-out) go as one job that splits itself in
/// halves for idle workers to steal, instead of one job (one allocation) per task.
pub(super) fn schedule_all(tasks: Vec<ReadyTask>) {
    let Some(first) = tasks.first() else {
        return;
    };
    let runtime = first.shared();
    let same_runtime = tasks.iter().all(|t| t.shared() == runtime);
    if tasks.len() <= BATCH || !same_runtime {
        tasks.into_iter().for_each(schedule);
        return;
    }
    // SAFETY: the ready tasks keep their runtime alive.
    let shared = unsafe { clone_shared(runtime) };
    queue_batch(&shared, tasks);
}

/// Queues a batch where rayon jobs and spare threads find it, and a job that takes one.
fn queue_batch(shared: &Arc<Shared>, tasks: Vec<ReadyTask>) {
    shared.queues.inject_batch(tasks);
    queue_batch_job(shared.clone());
}

/// Queues a job on the pool that takes one batch and runs it.
fn queue_batch_job(shared: Arc<Shared>) {
    let pool = shared.clone();
    shared.pool.spawn(move || {
        if wait::in_a_task() {
            return wait::defer(move || queue_batch_job(pool));
        }
        if let Some(batch) = pool.queues.steal_batch() {
            run_batch(&pool, batch);
        }
    });
}

/// Runs a batch of ready tasks of one runtime, first handing halves to other workers.
fn run_batch(shared: &Arc<Shared>, mut tasks: Vec<ReadyTask>) {
    while tasks.len() > BATCH {
        let half = tasks.split_off(tasks.len() / 2);
        queue_batch(shared, half);
    }
    observe::stretch(|| tasks.into_iter().for_each(run_chain));
}

/// Runs the task of `header` on this thread, now, if it is ready, not started, and of
/// the runtime `runtime` (a waiting worker helps only with what it waits for; see
/// `wait`). Its dependents are queued, not run here. Returns whether it was run here.
pub(super) fn run_inline(header: &Header, runtime: u64) -> bool {
    // Most often (a parent fetching the child it just spawned) the task is the newest
    // of this worker's queue: run it from there.
    let task = queue::pop_local_if(NonNull::from(header)).or_else(|| header.ready_in(runtime));
    let Some(task) = task else {
        return false;
    };
    task.run().queue_all();
    true
}

/// Runs a task, then each dependent it made ready, as long as they belong to the same
/// runtime (others are queued on theirs).
pub(super) fn run_chain(first: ReadyTask) {
    let mut next = Some(first);
    while let Some(task) = next.take() {
        let runtime = task.shared();
        if let Some(ready) = task.run().dispatch() {
            if ready.shared() == runtime {
                next = Some(ready);
            } else {
                schedule(ready);
            }
        }
    }
}
