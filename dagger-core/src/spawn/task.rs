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
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicPtr, AtomicU16, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use super::memory;
use crate::error::{panic_message, Error};
use crate::observe::{self, Worker};
use crate::runtime::lease::RuntimeRef;
use crate::runtime::Shared;
use crate::runtime::{queue, wait};
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
    pub(crate) spawned_at: &'static std::panic::Location<'static>,
}

impl TaskInfo {
    pub(crate) fn name(&self) -> &'static str {
        (self.name)()
    }

    pub(crate) fn location(&self) -> Location {
        let at = self.spawned_at;
        Location::__new(at.file(), at.line(), at.column())
    }
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
    fn run(self) -> Ready {
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
    fn dispatch(self) -> Option<ReadyTask> {
        schedule_all(self.rest);
        self.first
    }

    /// Queues all (for a thread that runs none of them itself).
    fn queue_all(self) {
        if let Some(first) = self.dispatch() {
            schedule(first);
        }
    }
}

/// A task completed from outside the runtime (a GPU callback, an I/O thread): it has no
/// job; [`complete`] stores its outcome and schedules its dependents.
#[repr(C)]
pub(crate) struct Promised<T> {
    cell: Cell<T>,
    shared: Arc<Shared>,
}

impl<T: Send + Sync + 'static> Promised<T> {
    const VTABLE: VTable = VTable {
        run: never_ready,
        input_done: no_inputs,
        shared: Self::shared,
        cancel: Self::cancel,
        runnable: |_| false,
        run_after_inputs: |_, _| false,
        free: Self::free,
    };

    /// Returns the handle's reference and the promise's.
    pub(crate) fn create(shared: Arc<Shared>, info: TaskInfo) -> (TaskRef, TaskRef) {
        let ptr = boxed(Promised {
            cell: Cell::<T>::new(Header::new(info, 2, &Self::VTABLE)),
            shared,
        })
        .cast::<Header>();
        (TaskRef { ptr }, TaskRef { ptr })
    }

    unsafe fn shared(ptr: NonNull<Header>) -> Option<NonNull<Shared>> {
        // SAFETY: the caller holds a reference; the header starts the task.
        let task = unsafe { ptr.cast::<Self>().as_ref() };
        Some(NonNull::from(&*task.shared))
    }

    unsafe fn free(ptr: NonNull<Header>) {
        // SAFETY: the last reference is gone; the task was made by `boxed`.
        unsafe { unbox(ptr.cast::<Self>()) }
    }

    unsafe fn cancel(ptr: NonNull<Header>) -> bool {
        // SAFETY: the caller holds a reference to a promised task of value type `T`.
        let cell = unsafe { ptr.cast::<Cell<T>>().as_ref() };
        let info = cell.header.info;
        // SAFETY: as above.
        unsafe {
            complete::<T>(
                cell,
                Err(Error::Cancelled {
                    task: info.name(),
                    location: info.location(),
                }),
            )
        }
    }
}

/// The runtime of a promised task.
pub(crate) fn promised_runtime<T: Send + Sync + 'static>(task: &TaskRef) -> Arc<Shared> {
    // SAFETY: only `Promise<T>` calls this, with its own promised task.
    let promised = unsafe { task.ptr.cast::<Promised<T>>().as_ref() };
    promised.shared.clone()
}

/// Stores a promised task's outcome (unless it was cancelled) and queues the dependents
/// that became ready. Returns whether the outcome was stored.
///
/// # Safety
/// `cell` is the start of a live promised task of value type `T`.
unsafe fn complete<T>(cell: &Cell<T>, outcome: Result<T, Error>) -> bool {
    if !cell.header.claim() {
        return false;
    }
    let value = match outcome {
        Ok(value) => Some(value),
        Err(error) => {
            cell.header.set_failure(error);
            None
        }
    };
    // SAFETY: this thread claimed the task just above.
    unsafe { finish(cell, value) }.queue_all();
    true
}

/// Completes the promised task `task` (of value type `T`) with `outcome`.
pub(crate) fn complete_promise<T: Send + Sync + 'static>(
    task: TaskRef,
    outcome: Result<T, Error>,
) -> bool {
    // SAFETY: `task` is a promised task of value type `T` (the caller's `Promise<T>`), and
    // the reference keeps it alive for the call.
    let cell = unsafe { task.ptr.cast::<Cell<T>>().as_ref() };
    // SAFETY: as above.
    let stored = unsafe { complete(cell, outcome) };
    drop(task);
    stored
}

unsafe fn never_ready(_: NonNull<Header>) -> Ready {
    unreachable!("dagger: a task without a job was made ready")
}

unsafe fn no_inputs(_: NonNull<Header>, _: Option<&Error>) -> bool {
    unreachable!("dagger: a task without inputs was notified")
}

/// A task that failed before it could be spawned (no runtime could be reached).
#[repr(C)]
struct Failed<T> {
    cell: Cell<T>,
}

impl<T: Send + Sync + 'static> Failed<T> {
    const VTABLE: VTable = VTable {
        run: never_ready,
        input_done: no_inputs,
        shared: |_| None,
        cancel: |_| false,
        runnable: |_| false,
        run_after_inputs: |_, _| false,
        free: Self::free,
    };

    unsafe fn free(ptr: NonNull<Header>) {
        // SAFETY: the last reference is gone; the task was made by `boxed`.
        unsafe { unbox(ptr.cast::<Self>()) }
    }
}

/// A task that already failed with `error`; returns the handle's reference.
pub(crate) fn failed<T: Send + Sync + 'static>(info: TaskInfo, error: Error) -> TaskRef {
    let header = Header::new(info, 1, &Failed::<T>::VTABLE);
    header.set_failure(error);
    header.state.store(DONE, Ordering::Release);
    header.close(drop);
    let task = boxed(Failed {
        cell: Cell::<T>::new(header),
    });
    TaskRef {
        ptr: task.cast::<Header>(),
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

/// Queues a ready task on its runtime's workers.
fn schedule(task: ReadyTask) {
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
pub(crate) unsafe fn clone_shared(shared: NonNull<Shared>) -> Arc<Shared> {
    // SAFETY: the caller's contract: the count is at least one while we add ours.
    unsafe {
        Arc::increment_strong_count(shared.as_ptr());
        Arc::from_raw(shared.as_ptr())
    }
}

/// A thread that waits for a task still waiting for at most this many inputs takes it
/// on (see `run_after_inputs`).
const CLAIM_INPUTS: usize = 16;

/// Below this many, ready tasks are queued one job each; above, in batches.
const BATCH: usize = 16;

/// Queues ready tasks. Many at once (a fan-out) go as one job that splits itself in
/// halves for idle workers to steal, instead of one job (one allocation) per task.
fn schedule_all(tasks: Vec<ReadyTask>) {
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

/// Runs the task of `header`, which waits for inputs, on this thread once they are done
/// (running them inline where it can), if it has not started and is of the runtime
/// `runtime`. Returns whether it was run here.
pub(crate) fn run_after_inputs(header: &Header, runtime: u64) -> bool {
    // SAFETY: the caller holds a reference to the task.
    unsafe { (header.vtable.run_after_inputs)(NonNull::from(header), runtime) }
}

/// Runs the task of `header` on this thread, now, if it is ready, not started, and of
/// the runtime `shared` (a waiting worker helps only with what it waits for; see
/// `wait`). Its dependents are queued, not run here. Returns whether it was run here.
pub(crate) fn run_inline(header: &Header, runtime: u64) -> bool {
    let ptr = NonNull::from(header);
    // Most often (a parent fetching the child it just spawned) the task is the newest
    // of this worker's queue: run it from there.
    if let Some(task) = queue::pop_local_if(ptr) {
        task.run().queue_all();
        return true;
    }
    // SAFETY: the caller holds a reference to the task.
    let runnable = unsafe { (header.vtable.runnable)(ptr) }
        // SAFETY: as above; a runnable task's runtime is alive while the task is.
        && unsafe { (header.vtable.shared)(ptr) }
            .is_some_and(|shared| unsafe { shared.as_ref() }.dynamic_run == runtime);
    if !runnable {
        return false;
    }
    // A ready reference of our own: `run` gives it up (also if another thread claimed
    // the task first). The task's queued ready reference finds it claimed and lets go.
    // Memory ordering: Relaxed, as for any new reference from a held one.
    header.refs.fetch_add(1, Ordering::Relaxed);
    ReadyTask { ptr }.run().queue_all();
    true
}

/// Runs a task, then each dependent it made ready, as long as they belong to the same
/// runtime (others are queued on theirs).
pub(crate) fn run_chain(first: ReadyTask) {
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
