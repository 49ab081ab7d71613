//! A task that runs a job once its inputs are done.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

use super::{
    boxed, failed, finish, release, unbox, Cell, Header, Ready, ReadyTask, TaskRef, VTable,
    WaitNode, PENDING, SKIPPED_BECAUSE,
};
use crate::error::panic_message;
use crate::error::Error;
use crate::observe::{self, Worker};
use crate::runtime::lease::RuntimeRef;
use crate::runtime::schedule::schedule;
use crate::runtime::wait;
use crate::runtime::Shared;
use crate::task::TaskInfo;

/// A thread that waits for a task still waiting for at most this many inputs takes it
/// on (see `run_after_inputs`).
const CLAIM_INPUTS: usize = 16;

/// The computation of a task, run once its inputs are ready and none failed.
pub(crate) trait Job<T>: Send {
    fn run(self) -> Result<T, Error>;
    /// How many inputs the job waits for.
    fn input_count(&self) -> usize;
    /// Every input the job waits for.
    fn inputs(&self, each: &mut dyn FnMut(&Header));
}

/// A task that runs a job once its inputs are done.
#[repr(C)]
pub(crate) struct Task<T, J> {
    cell: Cell<T>,
    shared: RuntimeRef,
    job: UnsafeCell<Option<J>>,
    /// The waiter nodes for the first two inputs, in this allocation. With more inputs,
    /// the second slot holds instead the boxed nodes of all inputs but the first (see
    /// [`Header::boxed_links`]).
    links: UnsafeCell<[MaybeUninit<WaitNode>; 2]>,
}

/// Where the second link slot of a task with more than two inputs points.
type BoxedLinks = (*mut MaybeUninit<WaitNode>, usize);

impl<T, J> Drop for Task<T, J> {
    fn drop(&mut self) {
        if self.cell.header.boxed_links {
            // SAFETY: with boxed links, the second slot holds the parts of the boxed slice,
            // written once at spawn; nothing refers to the nodes once the task is freed.
            unsafe {
                let (nodes, len) = self.links.get_mut()[1].as_ptr().cast::<BoxedLinks>().read();
                drop(Box::from_raw(ptr::slice_from_raw_parts_mut(nodes, len)));
            }
        }
    }
}

impl<T: Send + Sync + 'static, J: Job<T> + 'static> Task<T, J> {
    const VTABLE: VTable = VTable {
        run: Self::run,
        input_done: Self::input_done,
        shared: Self::shared,
        cancel: Self::cancel,
        runnable: Self::runnable,
        run_after_inputs: Self::run_after_inputs,
        free: Self::free,
    };

    /// Creates the task, subscribes it to its inputs, and schedules it once they are
    /// ready. Returns the handle's reference.
    pub(crate) fn spawn(shared: RuntimeRef, info: TaskInfo, job: J) -> TaskRef {
        let inputs = job.input_count();
        let Some(pending) =
            u32::try_from(inputs)
                .ok()
                .and_then(|n| if n > 1 { n.checked_add(1) } else { Some(n) })
        else {
            return failed::<T>(
                info,
                Error::InvalidUse(format!(
                    "a task waits for {inputs} inputs; at most {}",
                    u32::MAX - 1
                )),
            );
        };
        let mut header = Header::new(info, 2, &Self::VTABLE);
        header.pending.store(pending, Ordering::Relaxed);
        header.boxed_links = inputs > 2;
        let task = boxed(Task {
            // One reference for the handle, one ready reference.
            cell: Cell::<T>::new(header),
            shared,
            job: UnsafeCell::new(Some(job)),
            links: UnsafeCell::new([MaybeUninit::uninit(), MaybeUninit::uninit()]),
        });
        let ptr = task.cast::<Header>();
        let handle = TaskRef { ptr };
        // SAFETY: the handle's reference keeps the task alive in this function.
        let task = unsafe { ptr.cast::<Self>().as_ref() };
        let ready = ReadyTask { ptr };
        match inputs {
            0 => schedule(ready),
            1 => {
                // Find the input before subscribing: once subscribed, the task may run
                // (and take its job) on another thread.
                let mut input: Option<NonNull<Header>> = None;
                // SAFETY: nothing else touches the job before the task is subscribed.
                let job = unsafe { (*task.job.get()).as_ref() }.expect("a new task has its job");
                job.inputs(&mut |header: &Header| input = Some(NonNull::from(header)));
                let input = input.expect("a job with one input names it");
                // SAFETY: the job holds a handle to its input, so the input lives until
                // the task has run, which needs this subscription first.
                let node = task.links.get().cast::<WaitNode>();
                // SAFETY: the first link is used once, here.
                if !unsafe { task.subscribe(input.as_ref(), node) } {
                    // Memory ordering: Release, as in `input_done`.
                    task.cell.header.pending.store(0, Ordering::Release);
                    schedule(ready);
                }
            }
            _ => {
                let mut already_done = 0;
                // SAFETY: nothing else touches the links before the task subscribes.
                let links = unsafe { &mut *task.links.get() };
                let first = links[0].as_mut_ptr();
                let rest: *mut MaybeUninit<WaitNode> = if inputs == 2 {
                    links[1].as_mut_ptr().cast()
                } else {
                    let boxed = Box::into_raw(Box::<[WaitNode]>::new_uninit_slice(inputs - 1));
                    let parts: BoxedLinks = (boxed.cast(), inputs - 1);
                    // SAFETY: the slot is as large and aligned as the parts (tested); the
                    // header's `boxed_links` (set before) tells `drop` to read them back.
                    unsafe { links[1].as_mut_ptr().cast::<BoxedLinks>().write(parts) };
                    boxed.cast()
                };
                // SAFETY: `rest` has `inputs - 1` nodes.
                let mut nodes = std::iter::once(first)
                    .chain((0..inputs - 1).map(|i| unsafe { rest.add(i) }.cast::<WaitNode>()));
                // SAFETY: the guard count in `pending` keeps the task from running (and
                // taking its job) until it is released below.
                let job = unsafe { (*task.job.get()).as_ref() }.expect("a new task has its job");
                job.inputs(&mut |input: &Header| {
                    let node = nodes.next().expect("a node per input");
                    // SAFETY: as above; each node is used once; the job's handles keep
                    // the inputs alive.
                    if !unsafe { task.subscribe(input, node) } {
                        already_done += 1;
                    }
                });
                // Release the guard and the inputs that were already done.
                let release = 1 + already_done;
                // Memory ordering: AcqRel; the last decrement sees every input's outcome.
                if task
                    .cell
                    .header
                    .pending
                    .fetch_sub(release, Ordering::AcqRel)
                    == release
                {
                    schedule(ready);
                }
            }
        }
        handle
    }

    /// Subscribes to `input` with `node`, one of the task's own links. Returns `false`
    /// if the input is already done (its failure, if any, is then recorded).
    ///
    /// # Safety
    /// The task is alive and unfinished, `node` is one of its links and used only for
    /// this input, and `input` outlives the subscription.
    unsafe fn subscribe(&self, input: &Header, node: *mut WaitNode) -> bool {
        let me = NonNull::from(&self.cell.header);
        // SAFETY: the link is written once, here, before it is published.
        unsafe {
            node.write(WaitNode {
                next: ptr::null_mut(),
                task: me.as_ptr(),
            })
        };
        // SAFETY: the node lives in the task, which is alive while it waits (until
        // every input has notified it).
        if unsafe { input.push(node) } {
            return true;
        }
        if let Some(failure) = input.failure() {
            let info = self.cell.header.info;
            self.cell
                .header
                .set_failure(failure.for_dependent(info.name(), info.location()));
        }
        false
    }

    /// # Safety
    /// `ptr` is a live task of this type.
    unsafe fn get<'a>(ptr: NonNull<Header>) -> &'a Self {
        // SAFETY: the caller's contract; the header starts the task (`repr(C)`).
        unsafe { ptr.cast::<Self>().as_ref() }
    }

    unsafe fn input_done(ptr: NonNull<Header>, failure: Option<&Error>) -> bool {
        // SAFETY: a waiting task is alive (its ready reference is not consumed yet).
        let task = unsafe { Self::get(ptr) };
        if let Some(error) = failure {
            let info = task.cell.header.info;
            task.cell
                .header
                .set_failure(error.for_dependent(info.name(), info.location()));
        }
        // The last input: nothing else touches the count, so a plain store (0 tells a
        // waiting worker that the task is ready; see `runnable`).
        // Memory ordering: AcqRel / Acquire; the last decrement sees every input's outcome;
        // Release on the store publishes the failure recorded above to `runnable`'s reader.
        let pending = &task.cell.header.pending;
        if pending.load(Ordering::Acquire) == 1 {
            pending.store(0, Ordering::Release);
            return true;
        }
        pending.fetch_sub(1, Ordering::AcqRel) == 1
    }

    unsafe fn shared(ptr: NonNull<Header>) -> Option<NonNull<Shared>> {
        // SAFETY: the caller holds a reference.
        let task = unsafe { Self::get(ptr) };
        Some(task.shared.as_non_null())
    }

    unsafe fn runnable(ptr: NonNull<Header>) -> bool {
        // SAFETY: the caller holds a reference.
        let header = unsafe { ptr.as_ref() };
        // Memory ordering: Acquire, as the last input's decrement; `claim` decides.
        header.pending.load(Ordering::Acquire) == 0
            && header.state.load(Ordering::Acquire) == PENDING
    }

    unsafe fn free(ptr: NonNull<Header>) {
        // SAFETY: the last reference is gone; the task was made by `boxed`.
        unsafe { unbox(ptr.cast::<Self>()) }
    }

    unsafe fn cancel(ptr: NonNull<Header>) -> bool {
        // SAFETY: the caller holds a reference.
        let task = unsafe { Self::get(ptr) };
        let header = &task.cell.header;
        if !header.claim() {
            return false;
        }
        // SAFETY: this thread claimed the task: nothing else touches the job.
        let job = unsafe { (*task.job.get()).take() };
        let info = header.info;
        match drop_unstarted(job) {
            None => header.set_failure(Error::Cancelled {
                task: info.name(),
                location: info.location(),
            }),
            Some(message) => header.set_failure(Error::TaskPanicked {
                task: info.name(),
                location: info.location(),
                message: format!(
                    "cancelled, and a value it captured panicked when dropped: {message}"
                ),
            }),
        }
        // The ready reference stays: it is given up when the task is found cancelled.
        // SAFETY: claimed just above.
        unsafe { finish(&task.cell, None) }.queue_all();
        true
    }

    unsafe fn run(ptr: NonNull<Header>) -> Ready {
        // SAFETY: the ready reference keeps the task alive until `release` below.
        let task = unsafe { Self::get(ptr) };
        if !task.cell.header.claim() {
            // Cancelled before it started, or claimed by a thread that waits for it.
            // SAFETY: the ready reference is given up once, here.
            unsafe { release(ptr) };
            return Ready::default();
        }
        // SAFETY: claimed just above.
        let ready = unsafe { task.run_claimed() };
        // Let go before the dependents run, so that one taking the value by value finds
        // it unshared and moves it instead of cloning.
        // SAFETY: the ready reference is given up once, here.
        unsafe { release(ptr) };
        ready
    }

    /// Runs a claimed task whose inputs are all done, and finishes it.
    ///
    /// # Safety
    /// The calling thread claimed the task, and every input has notified it.
    unsafe fn run_claimed(&self) -> Ready {
        let header = &self.cell.header;
        // SAFETY: this thread claimed the task: nothing else touches the job.
        let job = unsafe { (*self.job.get()).take() }.expect("a task runs once");
        // Memory ordering: Relaxed; a waiter that reads a stale 0 only helps less.
        header.runner.store(wait::my_slot(), Ordering::Relaxed);
        let value = match header.failure() {
            Some(failure) => {
                // An input failed: report it without running. Promises the job owned
                // fail with the same cause.
                SKIPPED_BECAUSE.with(|cause| *cause.borrow_mut() = Some(failure.clone()));
                // A panic here is dropped: the task already fails with its root cause.
                let _ = drop_unstarted(job);
                SKIPPED_BECAUSE.with(|cause| cause.borrow_mut().take());
                None
            }
            None => self.run_job(job),
        };
        // SAFETY: claimed (the caller's contract).
        unsafe { finish(&self.cell, value) }
    }

    /// A thread waits for this task, which waits for inputs: it claims the task, waits
    /// for the inputs (running them inline where it can: they are what the task depends
    /// on), and runs it. The task's ready reference, queued when the last input is done,
    /// then finds it claimed and lets go. Returns whether it ran the task.
    unsafe fn run_after_inputs(ptr: NonNull<Header>, runtime: u64) -> bool {
        // SAFETY: the caller holds a reference.
        let task = unsafe { Self::get(ptr) };
        let header = &task.cell.header;
        if task.shared.get().dynamic_run != runtime
            || header.state.load(Ordering::Acquire) != PENDING
            // A join of many inputs: the workers run them faster than one waiter would.
            || header.pending.load(Ordering::Relaxed) as usize > CLAIM_INPUTS
            || !header.claim()
        {
            return false;
        }
        // SAFETY: claimed: nothing else touches the job; its handles keep the inputs alive.
        let job = unsafe { (*task.job.get()).as_ref() }.expect("a claimed task has its job");
        let mut inputs = Vec::with_capacity(job.input_count());
        // SAFETY: each input is alive (the job holds a handle to it) while we take ours.
        job.inputs(&mut |input: &Header| inputs.push(unsafe { input.retain() }));
        for input in &inputs {
            wait::wait_for_input(input.header());
        }
        drop(inputs);
        // An input is done before it notifies its dependents: wait for the last notice,
        // which also records an input's failure here.
        // Memory ordering: Acquire pairs with the input's Release store or decrement.
        while header.pending.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        // SAFETY: claimed above, and every input has notified it.
        unsafe { task.run_claimed() }.queue_all();
        true
    }

    /// Runs the job, with observers if any are attached; a failure or panic is recorded.
    fn run_job(&self, job: J) -> Option<T> {
        let header = &self.cell.header;
        let info = header.info;
        // Observers see dynamic tasks as nodes of their runtime's one dynamic run.
        let shared = self.shared.get();
        let observed = observe::start_spawned(&shared.observers, shared.dynamic_run, info, || {
            Worker::in_pool(&shared.pool)
        });
        let outcome = wait::in_task(|| catch_unwind(AssertUnwindSafe(|| job.run())));
        let value = match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                header.set_failure(error);
                None
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                header.set_failure(Error::TaskPanicked {
                    task: info.name(),
                    location: info.location(),
                    message,
                });
                None
            }
        };
        if let Some(observed) = &observed {
            observed.finish(shared.dynamic_run, info, header.failure());
        }
        value
    }
}

/// Drops the job of a task that will not run (cancelled, or an input failed). A value it
/// captured may panic in its `Drop`: the panic is caught so that the task still ends (a
/// task left claimed and unfinished would hang its waiters); its message is returned.
fn drop_unstarted<J>(job: J) -> Option<String> {
    catch_unwind(AssertUnwindSafe(move || drop(job)))
        .err()
        .map(|payload| panic_message(&*payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::Handle;

    /// A job like a chain link's: one input handle and a captured word.
    struct Link(#[allow(dead_code)] Handle<u64>, u64);

    impl Job<u64> for Link {
        fn run(self) -> Result<u64, Error> {
            Ok(self.1)
        }
        fn input_count(&self) -> usize {
            1
        }
        fn inputs(&self, each: &mut dyn FnMut(&Header)) {
            each(self.0.header())
        }
    }

    #[test]
    fn a_small_task_fits_a_two_cache_line_block() {
        // Task memory is most of what a large graph touches: keep the common case small.
        assert!(std::mem::size_of::<Header>() <= 56);
        assert!(std::mem::size_of::<Task<u64, Link>>() <= 128);
        assert_eq!(std::mem::size_of::<WaitNode>(), 16);
        assert_eq!(
            std::alloc::Layout::new::<BoxedLinks>(),
            std::alloc::Layout::new::<WaitNode>()
        );
    }
}
