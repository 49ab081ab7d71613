//! A dynamic task: its state, its value, the tasks and threads waiting for it, and the
//! job that computes it, in one allocation.
//!
//! Life cycle: `PENDING` (waiting for inputs, or queued) -> `RUNNING` (claimed by exactly
//! one of: the worker that runs it, or `cancel`) -> `DONE` (value or failure stored).
//! Whoever claims the task stores the outcome, then closes the waiter list and notifies
//! every waiter; the first dependent that becomes ready is returned so that the finishing
//! worker runs it next (no queue round-trip on chains).

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{panic_message, Error};
use crate::observe::{
    clear_device_notes, next_id, take_device_notes, TaskEnd, TaskStart, Timestamp, Worker,
};
use crate::runtime::Shared;
use crate::task::Location;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

/// Marks a waiter list as closed: the task is done, new waiters must not wait.
const CLOSED: *mut WaitNode = ptr::dangling_mut::<WaitNode>();

thread_local! {
    /// While a job that will not run is dropped: why it will not run.
    static SKIPPED_BECAUSE: std::cell::RefCell<Option<Error>> = const { std::cell::RefCell::new(None) };
}

/// Why the job being dropped on this thread will not run, if that is what is happening.
pub(crate) fn skipped_because() -> Option<Error> {
    SKIPPED_BECAUSE.with(|cause| cause.borrow().clone())
}

/// A task's name and where it was spawned, for errors and observers. The name is made
/// only when asked for (it comes from the closure's type name, which takes parsing).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskInfo {
    pub(crate) name: fn() -> &'static str,
    pub(crate) location: Location,
}

impl TaskInfo {
    pub(crate) fn name(&self) -> &'static str {
        (self.name)()
    }
}

/// Something waiting for a task.
pub(crate) enum Waiter {
    /// A task that has this one as an input.
    Task(Arc<dyn Dependent>),
    /// A thread blocked in `wait` / `fetch`.
    Thread(std::thread::Thread),
}

pub(crate) struct WaitNode {
    next: *mut WaitNode,
    waiter: Waiter,
    /// Part of a task's own allocation (its first input's link) rather than boxed: the
    /// waiter it holds keeps that task, and so the node, alive until it is taken out.
    inline: bool,
}

/// The part of a task that waiters and handles need, whatever its value type.
#[doc(hidden)]
pub struct Header {
    state: AtomicU8,
    waiters: AtomicPtr<WaitNode>,
    /// The task's failure, boxed (failures are rare); set at most once, before `DONE`.
    failure: AtomicPtr<Error>,
    pub(crate) info: TaskInfo,
}

// SAFETY: the raw pointers are owned by the header (boxed nodes and the boxed failure,
// published and taken with atomic operations), and what they point to is Send + Sync.
unsafe impl Send for Header {}
// SAFETY: as above; all shared mutation goes through atomics.
unsafe impl Sync for Header {}

impl Header {
    pub(crate) fn new(info: TaskInfo) -> Self {
        Header {
            state: AtomicU8::new(PENDING),
            waiters: AtomicPtr::new(ptr::null_mut()),
            failure: AtomicPtr::new(ptr::null_mut()),
            info,
        }
    }

    /// Memory ordering: Acquire pairs with the Release store of `DONE` in `finish`, so a
    /// thread that sees `DONE` sees the stored value or failure.
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Claims the task for running or cancelling; only one caller wins.
    fn claim(&self) -> bool {
        // Memory ordering: AcqRel; the winner's writes are published by `finish`.
        self.state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records a failure unless one is already recorded.
    pub(crate) fn set_failure(&self, error: Error) {
        let boxed = Box::into_raw(Box::new(error));
        // Memory ordering: Release publishes the boxed error; readers load with Acquire.
        if self
            .failure
            .compare_exchange(ptr::null_mut(), boxed, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `boxed` was never published, so it is still ours.
            drop(unsafe { Box::from_raw(boxed) });
        }
    }

    /// The recorded failure.
    pub(crate) fn failure(&self) -> Option<&Error> {
        let failure = self.failure.load(Ordering::Acquire);
        // SAFETY: a published failure is never replaced or freed before the header drops.
        (!failure.is_null()).then(|| unsafe { &*failure })
    }

    /// Adds a waiter; gives it back if the task is already done.
    pub(crate) fn subscribe(&self, waiter: Waiter) -> Result<(), Waiter> {
        let node = Box::into_raw(Box::new(WaitNode {
            next: ptr::null_mut(),
            waiter,
            inline: false,
        }));
        // SAFETY: `node` is a fresh box; on failure it was not published and is ours.
        unsafe { self.push(node) }.map_err(|()| unsafe { Box::from_raw(node) }.waiter)
    }

    /// Adds `node` to the waiters, or fails (leaving it unpublished) if the task is done.
    ///
    /// # Safety
    /// `node` is valid, not in any list, and stays valid until `close` takes it out.
    unsafe fn push(&self, node: *mut WaitNode) -> Result<(), ()> {
        let mut head = self.waiters.load(Ordering::Acquire);
        loop {
            if head == CLOSED {
                return Err(());
            }
            // SAFETY: the node is still ours until the CAS below publishes it.
            unsafe { (*node).next = head };
            // Memory ordering: Release publishes the node to the thread that closes the
            // list (which swaps with Acquire).
            match self.waiters.compare_exchange_weak(
                head,
                node,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => head = current,
            }
        }
    }

    /// Closes the list and hands every waiter to `each`, in the order they subscribed.
    fn close(&self, mut each: impl FnMut(Waiter)) {
        // Memory ordering: AcqRel: Acquire sees every node pushed before the swap; Release
        // orders the outcome stored before it for subscribers that find the list closed.
        let mut node = self.waiters.swap(CLOSED, Ordering::AcqRel);
        // The list is newest first: reverse it in place.
        let mut reversed: *mut WaitNode = ptr::null_mut();
        while !node.is_null() && node != CLOSED {
            // SAFETY: nodes came from `Box::into_raw` in `subscribe`, and the swap gave
            // this thread sole ownership of the whole list.
            let next = unsafe { (*node).next };
            // SAFETY: as above.
            unsafe { (*node).next = reversed };
            reversed = node;
            node = next;
        }
        while !reversed.is_null() {
            let node = reversed;
            // SAFETY: as above. An inline node lives in its waiter's task, which the
            // waiter keeps alive: read everything before moving the waiter out. A boxed
            // node is freed exactly once here.
            let waiter = unsafe {
                reversed = (*node).next;
                if (*node).inline {
                    ptr::read(&(*node).waiter)
                } else {
                    Box::from_raw(node).waiter
                }
            };
            each(waiter);
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // A finished task closed its list already (the common case: no atomic needed).
        if *self.waiters.get_mut() != CLOSED {
            self.close(drop);
        }
        let failure = *self.failure.get_mut();
        if !failure.is_null() {
            // SAFETY: the failure was boxed by `set_failure` and is owned by the header.
            drop(unsafe { Box::from_raw(failure) });
        }
    }
}

/// A task that waits for inputs.
pub(crate) trait Dependent: Send + Sync {
    /// One input finished (with its failure, if it failed). Returns the task if it is now
    /// ready to run.
    fn input_done(self: Arc<Self>, failure: Option<&Error>) -> Option<Arc<dyn Runnable>>;
}

/// A task that can run.
pub(crate) trait Runnable: Send + Sync {
    /// Runs the task (unless it was cancelled) and returns a dependent that became ready.
    fn run(self: Arc<Self>) -> Option<Arc<dyn Runnable>>;
    /// The runtime it belongs to.
    fn shared(&self) -> &Arc<Shared>;
}

/// Any task, whatever its value type: enough to wait for it and see how it ended.
pub(crate) trait AnyTask: Send + Sync {
    fn header(&self) -> &Header;
}

/// What a handle sees of a task.
pub(crate) trait Completion<T>: AnyTask {
    /// The value. Read only after `header().is_done()`; taken only through a unique `Arc`.
    fn value(&self) -> &UnsafeCell<Option<T>>;
    /// Cancels the task if it has not started; returns whether it did.
    fn cancel(self: Arc<Self>) -> bool;
}

/// The computation of a task, run once its inputs are ready and none failed.
pub(crate) trait Job<T>: Send {
    fn run(self) -> Result<T, Error>;
    /// Every input the job waits for.
    fn inputs(&self, each: &mut dyn FnMut(&Header));
}

pub(crate) struct Task<T, J> {
    header: Header,
    value: UnsafeCell<Option<T>>,
    job: UnsafeCell<Option<J>>,
    /// Inputs not finished yet, plus one held while the task subscribes to them.
    pending: AtomicUsize,
    shared: Arc<Shared>,
    /// The waiter node for the first input, in this allocation (no box for it).
    link: UnsafeCell<std::mem::MaybeUninit<WaitNode>>,
}

// SAFETY: `value` is written once by the thread that claimed the task, before `DONE` is
// published with Release, and read only after `DONE` is seen with Acquire (taken only
// through a unique `Arc`); `job` is only touched by the claiming thread. Many threads may
// read the value at once and any one may take it: T: Send + Sync.
unsafe impl<T: Send + Sync, J: Send> Sync for Task<T, J> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync, J: Send> Send for Task<T, J> {}

impl<T: Send + Sync + 'static, J: Job<T> + 'static> Task<T, J> {
    /// Creates the task, subscribes it to its inputs, and schedules it once they are ready.
    pub(crate) fn spawn(shared: Arc<Shared>, info: TaskInfo, job: J) -> Arc<Self> {
        let task = Arc::new(Task {
            header: Header::new(info),
            value: UnsafeCell::new(None),
            job: UnsafeCell::new(Some(job)),
            pending: AtomicUsize::new(1),
            shared,
            link: UnsafeCell::new(std::mem::MaybeUninit::uninit()),
        });
        // SAFETY: no other thread can run or cancel the task before `pending` reaches
        // zero, which needs the guard released below, so reading the job is fine.
        let job = unsafe { (*task.job.get()).as_ref() }.expect("a new task has its job");
        let mut already_done = 0;
        let mut link_used = false;
        job.inputs(&mut |input: &Header| {
            task.pending.fetch_add(1, Ordering::Relaxed);
            let subscribed = if link_used {
                input.subscribe(Waiter::Task(task.clone())).is_ok()
            } else {
                link_used = true;
                let node = task.link.get().cast::<WaitNode>();
                // SAFETY: the link is used once, here; the node holds an `Arc` of this
                // task, so its memory stays valid while any list holds it. If the push
                // fails, the node was not published and its waiter is taken back.
                unsafe {
                    node.write(WaitNode {
                        next: ptr::null_mut(),
                        waiter: Waiter::Task(task.clone()),
                        inline: true,
                    });
                    let pushed = input.push(node).is_ok();
                    if !pushed {
                        drop(ptr::read(&(*node).waiter));
                    }
                    pushed
                }
            };
            if !subscribed {
                already_done += 1;
                if let Some(failure) = input.failure() {
                    task.header
                        .set_failure(failure.for_dependent(info.name(), info.location));
                }
            }
        });
        // Release the guard and the inputs that were already done.
        let release = 1 + already_done;
        if task.pending.fetch_sub(release, Ordering::AcqRel) == release {
            schedule(task.clone());
        }
        task
    }

    /// Stores the outcome and notifies every waiter (see [`finish`]).
    fn finish(&self, value: Option<T>) -> Ready {
        // SAFETY: the caller claimed the task (`run` or `cancel`).
        unsafe { finish(&self.header, &self.value, value) }
    }
}

/// Stores a claimed task's outcome and notifies every waiter. Returns the dependents that
/// became ready; the caller lets go of the task before scheduling them, so that a dependent
/// taking the value by value finds it unshared and moves it instead of cloning.
///
/// # Safety
/// The calling thread claimed the task, and `value` is the task's value cell.
unsafe fn finish<T>(
    header: &Header,
    value_cell: &UnsafeCell<Option<T>>,
    value: Option<T>,
) -> Ready {
    // SAFETY: the caller claimed the task, so it is the only writer, and no reader looks
    // before `DONE` is published below.
    unsafe { *value_cell.get() = value };
    header.state.store(DONE, Ordering::Release);
    let failure = header.failure();
    let mut ready = Ready::default();
    header.close(|waiter| match waiter {
        Waiter::Task(dependent) => {
            if let Some(task) = dependent.input_done(failure) {
                match ready.first {
                    None => ready.first = Some(task),
                    Some(_) => ready.rest.push(task),
                }
            }
        }
        Waiter::Thread(thread) => thread.unpark(),
    });
    ready
}

/// Dependents that became ready when a task finished.
#[derive(Default)]
struct Ready {
    /// Run next by the thread that finished the task.
    first: Option<Arc<dyn Runnable>>,
    /// Queued.
    rest: Vec<Arc<dyn Runnable>>,
}

impl Ready {
    /// Queues all but the first, which is returned.
    fn dispatch(self) -> Option<Arc<dyn Runnable>> {
        schedule_all(self.rest);
        self.first
    }
}

/// A task completed from outside the runtime (a GPU callback, an I/O thread): it has no
/// job; [`Promised::complete`] stores its outcome and schedules its dependents.
pub(crate) struct Promised<T> {
    header: Header,
    value: UnsafeCell<Option<T>>,
    shared: Arc<Shared>,
}

// SAFETY: as for `Task`: the value is written once by the thread that claims the task,
// before `DONE` is published, and read only after.
unsafe impl<T: Send + Sync> Sync for Promised<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for Promised<T> {}

impl<T: Send + Sync + 'static> Promised<T> {
    pub(crate) fn new(shared: Arc<Shared>, info: TaskInfo) -> Arc<Self> {
        Arc::new(Promised {
            header: Header::new(info),
            value: UnsafeCell::new(None),
            shared,
        })
    }

    /// Stores the outcome (unless the task was cancelled) and queues the dependents that
    /// became ready on the task's runtime. Returns whether the outcome was stored.
    pub(crate) fn complete(self: Arc<Self>, outcome: Result<T, Error>) -> bool {
        if !self.header.claim() {
            return false;
        }
        let value = match outcome {
            Ok(value) => Some(value),
            Err(error) => {
                self.header.set_failure(error);
                None
            }
        };
        // SAFETY: this thread claimed the task just above.
        let ready = unsafe { finish(&self.header, &self.value, value) };
        drop(self);
        if let Some(first) = ready.dispatch() {
            schedule(first);
        }
        true
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl<T: Send + Sync + 'static> AnyTask for Promised<T> {
    fn header(&self) -> &Header {
        &self.header
    }
}

impl<T: Send + Sync + 'static> Completion<T> for Promised<T> {
    fn value(&self) -> &UnsafeCell<Option<T>> {
        &self.value
    }

    fn cancel(self: Arc<Self>) -> bool {
        let info = self.header.info;
        self.complete(Err(Error::Cancelled {
            task: info.name(),
            location: info.location,
        }))
    }
}

impl<T: Send + Sync + 'static, J: Job<T> + 'static> Dependent for Task<T, J> {
    fn input_done(self: Arc<Self>, failure: Option<&Error>) -> Option<Arc<dyn Runnable>> {
        if let Some(error) = failure {
            let info = self.header.info;
            self.header
                .set_failure(error.for_dependent(info.name(), info.location));
        }
        // Memory ordering: AcqRel; the last decrement sees every input's outcome.
        (self.pending.fetch_sub(1, Ordering::AcqRel) == 1).then_some(self as Arc<dyn Runnable>)
    }
}

impl<T: Send + Sync + 'static, J: Job<T> + 'static> Runnable for Task<T, J> {
    fn run(self: Arc<Self>) -> Option<Arc<dyn Runnable>> {
        if !self.header.claim() {
            return None; // cancelled before it started
        }
        // SAFETY: this thread claimed the task: nothing else touches the job.
        let job = unsafe { (*self.job.get()).take() }.expect("a task runs once");
        if let Some(failure) = self.header.failure() {
            // An input failed: report it without running. Promises the job owned fail
            // with the same cause.
            SKIPPED_BECAUSE.with(|cause| *cause.borrow_mut() = Some(failure.clone()));
            drop(job);
            SKIPPED_BECAUSE.with(|cause| cause.borrow_mut().take());
            let ready = self.finish(None);
            drop(self);
            return ready.dispatch();
        }
        let info = self.header.info;
        // Observers see dynamic tasks as nodes of their runtime's one dynamic run.
        let observers = self.shared.observers.snapshot();
        let observed = observers.as_ref().map(|observers| {
            let worker = match self.shared.pool.current_thread_index() {
                Some(n) => Worker::Thread(n),
                None => Worker::Caller,
            };
            let start = TaskStart {
                run: self.shared.dynamic_run,
                node: next_id() as usize,
                name: info.name(),
                location: info.location,
                worker,
                time: Timestamp::now(),
            };
            observers.iter().for_each(|o| o.task_started(&start));
            start
        });
        if observed.is_some() {
            clear_device_notes();
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| job.run()));
        let value = match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.header.set_failure(error);
                None
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                self.header.set_failure(Error::TaskPanicked {
                    task: info.name(),
                    location: info.location,
                    message,
                });
                None
            }
        };
        if let (Some(observers), Some(start)) = (&observers, observed) {
            let (device, bytes_moved) = take_device_notes();
            let end = TaskEnd {
                run: start.run,
                graph: None,
                node: start.node,
                name: start.name,
                location: start.location,
                worker: start.worker,
                start: start.time,
                end: Timestamp::now(),
                device,
                bytes_moved,
                error: self.header.failure(),
            };
            observers.iter().for_each(|o| o.task_finished(&end));
        }
        let ready = self.finish(value);
        drop(self);
        ready.dispatch()
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl<T: Send + Sync + 'static, J: Job<T> + 'static> AnyTask for Task<T, J> {
    fn header(&self) -> &Header {
        &self.header
    }
}

impl<T: Send + Sync + 'static, J: Job<T> + 'static> Completion<T> for Task<T, J> {
    fn value(&self) -> &UnsafeCell<Option<T>> {
        &self.value
    }

    fn cancel(self: Arc<Self>) -> bool {
        if !self.header.claim() {
            return false;
        }
        // SAFETY: this thread claimed the task: nothing else touches the job.
        drop(unsafe { (*self.job.get()).take() });
        let info = self.header.info;
        self.header.set_failure(Error::Cancelled {
            task: info.name(),
            location: info.location,
        });
        let ready = self.finish(None);
        drop(self);
        if let Some(first) = ready.dispatch() {
            schedule(first);
        }
        true
    }
}

/// Queues a ready task on its runtime's workers.
pub(crate) fn schedule(task: Arc<dyn Runnable>) {
    let shared = task.shared().clone();
    shared.pool.spawn(move || run_chain(task));
}

/// Below this many, ready tasks are queued one job each; above, in batches.
const BATCH: usize = 16;

/// Queues ready tasks. Many at once (a fan-out) go as one job that splits itself in
/// halves for idle workers to steal, instead of one job (one allocation) per task.
fn schedule_all(tasks: Vec<Arc<dyn Runnable>>) {
    let Some(first) = tasks.first() else {
        return;
    };
    let shared = first.shared().clone();
    let same_runtime = tasks.iter().all(|t| Arc::ptr_eq(t.shared(), &shared));
    if tasks.len() <= BATCH || !same_runtime {
        tasks.into_iter().for_each(schedule);
        return;
    }
    let pool = shared.clone();
    shared.pool.spawn(move || run_batch(&pool, tasks));
}

/// Runs a batch of ready tasks of one runtime, first handing halves to other workers.
fn run_batch(shared: &Arc<Shared>, mut tasks: Vec<Arc<dyn Runnable>>) {
    while tasks.len() > BATCH {
        let half = tasks.split_off(tasks.len() / 2);
        let pool = shared.clone();
        shared.pool.spawn(move || run_batch(&pool, half));
    }
    tasks.into_iter().for_each(run_chain);
}

/// Runs a task, then each dependent it made ready, as long as they belong to the same
/// runtime (others are queued on theirs).
pub(crate) fn run_chain(first: Arc<dyn Runnable>) {
    let mut next = Some(first);
    while let Some(task) = next.take() {
        let runtime = Arc::as_ptr(task.shared());
        if let Some(ready) = task.run() {
            if Arc::as_ptr(ready.shared()) == runtime {
                next = Some(ready);
            } else {
                schedule(ready);
            }
        }
    }
}

/// A task that failed before it could be spawned (no runtime could be reached).
pub(crate) struct Failed<T> {
    header: Header,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is always `None` and never written.
unsafe impl<T: Send + Sync> Sync for Failed<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for Failed<T> {}

impl<T: Send + Sync + 'static> Failed<T> {
    pub(crate) fn new(info: TaskInfo, error: Error) -> Arc<Self> {
        let header = Header::new(info);
        header.set_failure(error);
        header.state.store(DONE, Ordering::Release);
        header.close(drop);
        Arc::new(Failed {
            header,
            value: UnsafeCell::new(None),
        })
    }
}

impl<T: Send + Sync + 'static> AnyTask for Failed<T> {
    fn header(&self) -> &Header {
        &self.header
    }
}

impl<T: Send + Sync + 'static> Completion<T> for Failed<T> {
    fn value(&self) -> &UnsafeCell<Option<T>> {
        &self.value
    }
    fn cancel(self: Arc<Self>) -> bool {
        false
    }
}
