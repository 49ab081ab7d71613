//! A dynamic task: its state, its value, the tasks and threads waiting for it, and the
//! job that computes it, in one allocation with its own reference count.
//!
//! Life cycle: `PENDING` (waiting for inputs, or queued) -> `RUNNING` (claimed by exactly
//! one of: the worker that runs it, or `cancel`) -> `DONE` (value or failure stored).
//! Whoever claims the task stores the outcome, then closes the waiter list and notifies
//! every waiter; the first dependent that becomes ready is returned so that the finishing
//! worker runs it next (no queue round-trip on chains).
//!
//! Ownership: a task is counted by its handles plus one *ready reference*, held from its
//! creation until it has been run (or found cancelled). Waiter lists point to dependents
//! without counting: a dependent cannot be freed while it waits, because its ready
//! reference is consumed only after every input has notified it. The count is ours, not
//! an `Arc`'s: no weak count, and a unique owner frees without an atomic write.

use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicPtr, AtomicU16, AtomicU32, AtomicU8, AtomicUsize, Ordering};

mod job;
mod memory;
mod promised;

pub(crate) use job::{Job, Task};
pub use memory::release_task_memory;
pub(crate) use promised::{complete_promise, failed, promised_runtime, Promised};

use super::schedule::{schedule, schedule_all};
use super::Shared;
use crate::error::Error;
use crate::task::TaskInfo;

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

/// Something waiting for a task.
enum Waiter {
    /// A task that has this one as an input.
    Task(NonNull<Header>),
    /// A thread blocked in `wait` / `fetch`.
    Thread(std::thread::Thread),
}

/// A link in a waiter list: a task's own link (in the task's allocation) or the start of
/// a [`ThreadNode`] (boxed), told apart by `task` being null.
#[repr(C)]
struct WaitNode {
    next: *mut WaitNode,
    task: *const Header,
}

/// The waiter node of a thread.
#[repr(C)]
struct ThreadNode {
    node: WaitNode,
    thread: std::thread::Thread,
}

/// What differs between kinds of task, called through the header.
struct VTable {
    /// Runs a ready task, or finds it cancelled; consumes its ready reference.
    run: unsafe fn(NonNull<Header>) -> Ready,
    /// One input finished (with its failure, if any). Returns whether the task is now
    /// ready; its ready reference then passes to the caller.
    input_done: unsafe fn(NonNull<Header>, Option<&Error>) -> bool,
    /// The runtime that runs the task.
    shared: unsafe fn(NonNull<Header>) -> Option<NonNull<Shared>>,
    /// Cancels the task if it has not started; returns whether it did.
    cancel: unsafe fn(NonNull<Header>) -> bool,
    /// Whether the task has a job, all its inputs are done, and it has not started.
    runnable: unsafe fn(NonNull<Header>) -> bool,
    /// Runs a task of the given runtime that has not started, after its inputs, on the
    /// calling thread (which waits for it); returns whether it did.
    run_after_inputs: unsafe fn(NonNull<Header>, u64) -> bool,
    /// Frees the task (its count reached zero).
    free: unsafe fn(NonNull<Header>),
}

/// The part of a task that waiters and handles need, whatever its value type. It starts
/// every task's allocation, so a pointer to it is a pointer to the task.
#[doc(hidden)]
#[repr(C)]
pub struct Header {
    refs: AtomicUsize,
    state: AtomicU8,
    /// For a task with a job: its waiter nodes are boxed (more than two inputs).
    boxed_links: bool,
    /// For a running task: the wait slot of the thread that runs it (0: unknown), so that
    /// a thread waiting for it can help with what it waits for (see `wait`).
    runner: AtomicU16,
    /// For a task with a job: inputs not finished yet, plus, with several inputs, one
    /// held while the task subscribes to them (here, it fills the state's padding).
    pending: AtomicU32,
    waiters: AtomicPtr<WaitNode>,
    /// The task's failure, boxed (failures are rare); set at most once, before `DONE`.
    failure: AtomicPtr<Error>,
    vtable: &'static VTable,
    pub(crate) info: TaskInfo,
}

// SAFETY: the raw pointers are owned by the header (boxed nodes and the boxed failure,
// published and taken with atomic operations), and what they point to is Send + Sync.
unsafe impl Send for Header {}
// SAFETY: as above; all shared mutation goes through atomics.
unsafe impl Sync for Header {}

impl Header {
    /// Runs this task, which waits for inputs, on this thread once they are done
    /// (running them inline where it can), if it has not started and is of the runtime
    /// `runtime`. Returns whether it was run here.
    pub(crate) fn run_after_inputs(&self, runtime: u64) -> bool {
        // SAFETY: the caller holds a reference to the task.
        unsafe { (self.vtable.run_after_inputs)(NonNull::from(self), runtime) }
    }

    /// A ready reference of our own to this task, if it is ready, not started, and of
    /// the runtime `runtime`. Running it gives the reference up (also if another thread
    /// claimed the task first; the task's queued ready reference then finds it claimed
    /// and lets go).
    #[must_use = "a ready reference that is not run leaks its task"]
    pub(super) fn ready_in(&self, runtime: u64) -> Option<ReadyTask> {
        let ptr = NonNull::from(self);
        // SAFETY: the caller holds a reference to the task.
        let runnable = unsafe { (self.vtable.runnable)(ptr) }
            // SAFETY: as above; a runnable task's runtime is alive while the task is.
            && unsafe { (self.vtable.shared)(ptr) }
                .is_some_and(|shared| unsafe { shared.as_ref() }.dynamic_run == runtime);
        runnable.then(|| {
            // Memory ordering: Relaxed, as for any new reference from a held one.
            self.refs.fetch_add(1, Ordering::Relaxed);
            ReadyTask { ptr }
        })
    }

    fn new(info: TaskInfo, refs: usize, vtable: &'static VTable) -> Self {
        Header {
            refs: AtomicUsize::new(refs),
            state: AtomicU8::new(PENDING),
            pending: AtomicU32::new(0),
            boxed_links: false,
            runner: AtomicU16::new(0),
            waiters: AtomicPtr::new(ptr::null_mut()),
            failure: AtomicPtr::new(ptr::null_mut()),
            vtable,
            info,
        }
    }

    /// The wait slot of the thread running the task (0: none known).
    pub(crate) fn runner(&self) -> u16 {
        self.runner.load(Ordering::Relaxed)
    }

    /// A new counted reference to this task.
    ///
    /// # Safety
    /// The caller knows a reference to the task is held for the duration of the call.
    pub(crate) unsafe fn retain(&self) -> TaskRef {
        // Memory ordering: Relaxed, as for any new reference from a held one.
        self.refs.fetch_add(1, Ordering::Relaxed);
        TaskRef {
            ptr: NonNull::from(self),
        }
    }

    /// The runtime that runs the task, if it is a task with a job.
    pub(crate) fn runtime(&self) -> Option<NonNull<Shared>> {
        // SAFETY: `self` is a live task; only jobs report a runtime for `runnable` tasks,
        // and every task kind answers `shared`.
        unsafe { (self.vtable.shared)(NonNull::from(self)) }
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
    fn set_failure(&self, error: Error) {
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

    /// Makes `thread` a waiter (it is unparked when the task is done). Returns `false`
    /// if the task is already done.
    pub(crate) fn subscribe_thread(&self, thread: std::thread::Thread) -> bool {
        let node = boxed(ThreadNode {
            node: WaitNode {
                next: ptr::null_mut(),
                task: ptr::null(),
            },
            thread,
        });
        // SAFETY: `node` is fresh; if the push fails it was not published.
        let pushed = unsafe { self.push(node.cast::<WaitNode>().as_ptr()) };
        if !pushed {
            // SAFETY: not published, still ours.
            unsafe { unbox(node) };
        }
        pushed
    }

    /// Adds `node` to the waiters, or returns `false` (leaving it unpublished) if the task
    /// is done.
    ///
    /// # Safety
    /// `node` is valid, not in any list, and stays valid until `close` takes it out.
    unsafe fn push(&self, node: *mut WaitNode) -> bool {
        let mut head = self.waiters.load(Ordering::Acquire);
        loop {
            if head == CLOSED {
                return false;
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
                Ok(_) => return true,
                Err(current) => head = current,
            }
        }
    }

    /// Closes the list and hands every waiter to `each`, the last to subscribe first.
    fn close(&self, mut each: impl FnMut(Waiter)) {
        // Memory ordering: AcqRel: Acquire sees every node pushed before the swap; Release
        // orders the outcome stored before it for subscribers that find the list closed.
        let mut node = self.waiters.swap(CLOSED, Ordering::AcqRel);
        // Newest first: reversing first would walk a wide fan-out's nodes (each in its own
        // task, cold by now) twice.
        while !node.is_null() && node != CLOSED {
            let current = node;
            // SAFETY: the swap gave this thread sole ownership of the whole list, whose
            // nodes stay valid until taken out (the contract of `push`). A task's node
            // lives in the waiting task, which may be freed once notified: read everything
            // before handing the waiter on. A thread's node (from `boxed`) is moved out of
            // and freed exactly once here.
            let waiter = unsafe {
                node = (*current).next;
                match NonNull::new((*current).task.cast_mut()) {
                    Some(task) => Waiter::Task(task),
                    None => {
                        let thread_node = NonNull::new_unchecked(current.cast::<ThreadNode>());
                        let thread = ptr::read(&thread_node.as_ref().thread);
                        memory::free(thread_node);
                        Waiter::Thread(thread)
                    }
                }
            };
            each(waiter);
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // A finished task closed its list already (the common case: no atomic needed).
        // A task freed unfinished (a promise whose runtime went away) drops its waiters.
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

/// One counted reference to a task of any kind.
pub(crate) struct TaskRef {
    ptr: NonNull<Header>,
}

// SAFETY: tasks are only created for `T: Send + Sync` values and `Send` jobs, and every
// shared access goes through atomics or the claim protocol.
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the reference keeps the task alive.
        unsafe { self.ptr.as_ref() }
    }

    /// Whether this is the only reference to the task (then nothing else can read or
    /// take its value, and nothing can make a new reference).
    fn is_unique(&self) -> bool {
        // Memory ordering: Acquire pairs with the Release decrement of every other
        // reference that was dropped, so their reads of the value happened before.
        self.header().refs.load(Ordering::Acquire) == 1
    }

    /// The task's value cell.
    ///
    /// # Safety
    /// The task's value type is `T`.
    pub(crate) unsafe fn value<T>(&self) -> &UnsafeCell<Option<T>> {
        // SAFETY: every task kind starts with a `Cell<T>` (`repr(C)`), and the caller
        // vouches for `T`.
        unsafe { &(*self.ptr.cast::<Cell<T>>().as_ptr()).value }
    }

    /// Cancels the task if it has not started.
    pub(crate) fn cancel(&self) -> bool {
        // SAFETY: the reference keeps the task alive for the call.
        unsafe { (self.header().vtable.cancel)(self.ptr) }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        // Memory ordering: Relaxed, as for `Arc`: a new reference is made from an existing
        // one, which keeps the task alive meanwhile.
        self.header().refs.fetch_add(1, Ordering::Relaxed);
        TaskRef { ptr: self.ptr }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: this reference is given up here, once.
        unsafe { release(self.ptr) }
    }
}

/// Gives up one reference; frees the task with the last.
///
/// # Safety
/// The caller owns one reference to the live task at `ptr`.
unsafe fn release(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the task alive until it is given up.
    let header = unsafe { ptr.as_ref() };
    // The only reference left: nothing else can touch the count, so no atomic write.
    // Memory ordering: Acquire, as in `is_unique`.
    if header.refs.load(Ordering::Acquire) == 1 || header.refs.fetch_sub(1, Ordering::Release) == 1
    {
        // Memory ordering: Acquire pairs with the Release decrements above, so every
        // use of the task through another reference happened before it is freed.
        fence(Ordering::Acquire);
        // SAFETY: the last reference is gone.
        unsafe { (header.vtable.free)(ptr) }
    }
}

/// The ready reference of a task whose inputs are all done: running it gives it up.
pub(crate) struct ReadyTask {
    ptr: NonNull<Header>,
}

// SAFETY: as for `TaskRef`.
unsafe impl Send for ReadyTask {}

impl ReadyTask {
    /// Whether this is the task at `header`.
    pub(crate) fn is(&self, header: NonNull<Header>) -> bool {
        self.ptr == header
    }

    /// Runs the task (unless it was cancelled); returns the dependents it made ready.
    pub(super) fn run(self) -> Ready {
        // SAFETY: the ready reference keeps the task alive and is given up by `run`.
        unsafe { (self.ptr.as_ref().vtable.run)(self.ptr) }
    }

    /// The runtime that runs the task.
    pub(crate) fn shared(&self) -> NonNull<Shared> {
        // SAFETY: the ready reference keeps the task alive; only runnable tasks (which
        // have a runtime) are ever ready.
        unsafe { (self.ptr.as_ref().vtable.shared)(self.ptr) }.expect("a ready task has a runtime")
    }
}

/// A task's header and value: the start of every kind of task.
#[repr(C)]
struct Cell<T> {
    header: Header,
    value: UnsafeCell<Option<T>>,
}

impl<T> Cell<T> {
    fn new(header: Header) -> Self {
        Cell {
            header,
            value: UnsafeCell::new(None),
        }
    }
}

/// Stores a claimed task's outcome and notifies every waiter. Returns the dependents that
/// became ready; the caller lets go of the task before scheduling them, so that a dependent
/// taking the value by value finds it unshared and moves it instead of cloning.
///
/// # Safety
/// The calling thread claimed the task.
unsafe fn finish<T>(cell: &Cell<T>, value: Option<T>) -> Ready {
    // SAFETY: the caller claimed the task, so it is the only writer, and no reader looks
    // before `DONE` is published below.
    unsafe { *cell.value.get() = value };
    let header = &cell.header;
    header.state.store(DONE, Ordering::Release);
    let failure = header.failure();
    let mut ready = Ready::default();
    header.close(|waiter| match waiter {
        Waiter::Task(dependent) => {
            // SAFETY: a waiting task is alive until notified (see the module docs).
            if unsafe { (dependent.as_ref().vtable.input_done)(dependent, failure) } {
                // Waiters come newest first; the oldest ready one runs next, so that
                // tasks run in the order they were spawned (which is also the order of
                // their memory: a wavefront run out of order touches far more of it).
                let task = ReadyTask { ptr: dependent };
                if let Some(newer) = ready.first.replace(task) {
                    ready.rest.push(newer);
                }
            }
        }
        Waiter::Thread(thread) => thread.unpark(),
    });
    ready
}

/// Dependents that became ready when a task finished.
#[derive(Default)]
pub(crate) struct Ready {
    /// Run next by the thread that finished the task: the one that subscribed first.
    first: Option<ReadyTask>,
    /// Queued, newest first.
    rest: Vec<ReadyTask>,
}

impl Ready {
    /// Queues all but the first, which is returned.
    pub(super) fn dispatch(self) -> Option<ReadyTask> {
        schedule_all(self.rest);
        self.first
    }

    /// Queues all (for a thread that runs none of them itself).
    pub(super) fn queue_all(self) {
        if let Some(first) = self.dispatch() {
            schedule(first);
        }
    }
}

/// Moves the value out of a finished, successful task when `task` is its only reference;
/// otherwise returns `None`.
///
/// # Safety
/// The task's value type is `T`, and it finished successfully.
pub(crate) unsafe fn take_value<T>(task: &mut TaskRef) -> Option<T> {
    if !task.is_unique() {
        return None;
    }
    // SAFETY: unique (nothing else reads it) and finished (the caller's contract).
    unsafe { (*task.value::<T>().get()).take() }
}

/// Moves `task` into task memory (see [`memory`]).
fn boxed<X>(task: X) -> NonNull<X> {
    let ptr = memory::allocate::<X>();
    // SAFETY: fresh memory for one `X`.
    unsafe { ptr.as_ptr().write(task) };
    ptr
}

/// Drops and frees a task made by [`boxed`].
///
/// # Safety
/// `ptr` came from `boxed` and is not used again.
unsafe fn unbox<X>(ptr: NonNull<X>) {
    // SAFETY: the caller's contract.
    unsafe {
        ptr::drop_in_place(ptr.as_ptr());
        memory::free(ptr);
    }
}
