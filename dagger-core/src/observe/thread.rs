//! What one thread knows while it runs observed tasks:
//! - the observers of the runtime whose spawned tasks it runs, cached so that a task
//!   checks one counter instead of taking a lock and counting an `Arc`;
//! - when its last task ended, which is the next task's start while the thread runs tasks
//!   back to back, so that a task costs one clock read;
//! - what a device backend noted about the running task;
//! - a block of ids for spawned tasks;
//! - a view of the cache that a spawned task reads without borrowing it: the observers
//!   and this thread's worker number.
//!
//! The carried time is dropped whenever the thread stops running tasks (at the end of
//! each [`stretch`]), so that a gap spent idle is never counted as a task's time. The
//! cache is kept across stretches (a fan-out runs in stretches of a few tasks each) and
//! let go when an observer is detached: the guard asks every worker to
//! ([`forget_cached_observers`]), so an idle worker does not keep a detached observer
//! alive.
//!
//! The cache has a destructor; everything else sits in a thread-local without one, which
//! compiles to plain loads and stores.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::{ObserverSet, Observers, Source, TaskEnd, TaskStart, Timestamp, Worker};
use crate::error::Error;
use crate::task::TaskInfo;

/// What a device backend noted about a task: its device and stream, and bytes moved.
pub(crate) type DeviceNotes = (Option<(&'static str, u32)>, u64);

/// Spawned-task ids taken from the process-wide counter at a time.
const ID_BLOCK: u64 = 1024;

struct ThreadState {
    /// When the last observed task on this thread ended, while no idle time has passed.
    last_end: Cell<Option<Timestamp>>,
    /// Whether a device backend noted anything about the running task: `device` and
    /// `bytes_moved` hold notes of an earlier task until then.
    noted: Cell<bool>,
    device: Cell<Option<(&'static str, u32)>>,
    bytes_moved: Cell<u64>,
    /// The next spawned-task id, and the end of this thread's block.
    ids: Cell<(u64, u64)>,
    view: CacheView,
}

/// What a spawned task needs of the cache, as plain cells: set while `CACHED` holds
/// observers. Separate cells: a task reads the version first.
struct CacheView {
    /// The version of the cached observers; 0 when unset.
    version: Cell<u64>,
    /// The cached observers; `CACHED` holds a count while this is set.
    observers: Cell<*const Observers>,
    /// This thread in the pool of the runtime the observers are attached to.
    worker: Cell<Worker>,
}

impl CacheView {
    fn set(&self, version: u64, observers: &Observers, worker: Worker) {
        self.observers.set(observers);
        self.worker.set(worker);
        self.version.set(version);
    }

    /// A count of the observers, if they are those of `version`.
    #[inline(always)]
    fn observers(&self, version: u64) -> Option<Rc<Observers>> {
        if self.version.get() != version {
            return None;
        }
        let observers = self.observers.get();
        // SAFETY: `CACHED` holds a count of the observers while the view is set, so the
        // count is at least one while this one is added.
        Some(unsafe {
            Rc::increment_strong_count(observers);
            Rc::from_raw(observers)
        })
    }

    fn unset(&self) {
        self.version.set(0);
        self.observers.set(std::ptr::null());
    }
}

/// The observers of `set` and their version, from this thread's cache if it has them;
/// `None` (after one load) when none are attached.
fn cached_observers(set: &ObserverSet) -> Option<(u64, Rc<Observers>)> {
    let version = set.version();
    if version == 0 {
        return None;
    }
    CACHED.with(|cached| {
        if let Some((v, observers)) = &*cached.0.borrow() {
            if *v == version {
                return Some((version, observers.clone()));
            }
        }
        let (version, observers) = set.versioned_snapshot()?;
        let observers = Rc::new(observers);
        with_state(|state| state.view.unset());
        let old = cached.0.replace(Some((version, observers.clone())));
        // Dropped outside the borrow: an observer's drop may observe this thread.
        drop(old);
        Some((version, observers))
    })
}

/// The observers this thread caches, in a cell whose drop (at thread exit) also ends the
/// view of it.
struct Cache(RefCell<Option<(u64, Rc<Observers>)>>);

impl Drop for Cache {
    fn drop(&mut self) {
        with_state(|state| state.view.unset());
    }
}

impl ThreadState {
    /// A task starts: forget what a device backend noted before, and take the carried
    /// time, if any.
    #[inline]
    fn task_starting(&self) -> Option<Timestamp> {
        self.noted.set(false);
        self.last_end.take()
    }

    /// A task ended at `end`: carry `end` to the next one, and take the device notes.
    #[inline]
    fn task_ended(&self, end: Timestamp) -> DeviceNotes {
        self.last_end.set(Some(end));
        match self.noted.take() {
            true => (self.device.get(), self.bytes_moved.get()),
            false => (None, 0),
        }
    }

    /// A backend notes something about the running task: the first note of a task
    /// forgets those of earlier tasks.
    fn noting(&self) -> &Self {
        if !self.noted.replace(true) {
            self.device.set(None);
            self.bytes_moved.set(0);
        }
        self
    }

    /// An id unique in the process, from this thread's block.
    #[inline]
    fn fresh_id(&self) -> u64 {
        let (mut next, mut end) = self.ids.get();
        if next == end {
            next = super::next_ids(ID_BLOCK);
            end = next + ID_BLOCK;
        }
        self.ids.set((next + 1, end));
        next
    }
}

thread_local! {
    /// The observers of version `.0`, as this thread last saw them.
    static CACHED: Cache = const { Cache(RefCell::new(None)) };
    static STATE: ThreadState = const {
        ThreadState {
            last_end: Cell::new(None),
            noted: Cell::new(false),
            device: Cell::new(None),
            bytes_moved: Cell::new(0),
            ids: Cell::new((0, 0)),
            view: CacheView {
                version: Cell::new(0),
                observers: Cell::new(std::ptr::null()),
                worker: Cell::new(Worker::Caller),
            },
        }
    };
}

/// Runs `f` with this thread's state, inlined: `STATE.with(f)` with a closure this
/// size is a call through the key's accessor.
#[inline(always)]
fn with_state<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    let state = STATE.with(std::ptr::from_ref);
    // SAFETY: a thread-local without a destructor stays in place until its thread has
    // exited; this reference does not outlive the call, on this thread.
    f(unsafe { &*state })
}

/// A spawned task being observed: the observers it was started with, and its start. Its
/// run and spawn site are the caller's to give again at the end: the less the task holds,
/// the less is copied around its body.
pub(crate) struct ObservedTask {
    observers: Rc<Observers>,
    /// Its id, unique in the process.
    node: usize,
    worker: Worker,
    time: Timestamp,
}

/// Tells the observers of `set` that a spawned task of `info` starts, if any are
/// attached. `worker` is the calling thread in the pool of `set`'s runtime.
#[inline]
pub(crate) fn start_spawned(
    set: &ObserverSet,
    run: u64,
    info: TaskInfo,
    worker: impl FnOnce() -> Worker,
) -> Option<ObservedTask> {
    let version = set.version();
    if version == 0 {
        return None;
    }
    let task = with_state(|state| ObservedTask::from_view(state, version));
    // Checked in place: a task taken out of its `Option` and wrapped again is copied.
    match &task {
        Some(task) => task.tell_start(run, info),
        None => return start_after_refill(set, run, info, worker()),
    }
    task
}

/// `start_spawned` when this thread's cache is stale or empty: refills it first.
#[cold]
#[inline(never)]
fn start_after_refill(
    set: &ObserverSet,
    run: u64,
    info: TaskInfo,
    worker: Worker,
) -> Option<ObservedTask> {
    let version = refill(set, worker)?;
    let task = with_state(|state| ObservedTask::from_view(state, version))?;
    task.tell_start(run, info);
    Some(task)
}

/// Caches the observers of `set` for spawned tasks on this thread; their version, or
/// `None` when none are attached.
fn refill(set: &ObserverSet, worker: Worker) -> Option<u64> {
    let (version, observers) = cached_observers(set)?;
    with_state(|state| state.view.set(version, &observers, worker));
    Some(version)
}

impl ObservedTask {
    /// A task starting now, observed by the observers of the view if they are those of
    /// `version`.
    #[inline(always)]
    fn from_view(state: &ThreadState, version: u64) -> Option<Self> {
        let observers = state.view.observers(version)?;
        let time = state.task_starting().unwrap_or_else(Timestamp::now);
        Some(ObservedTask {
            observers,
            node: state.fresh_id() as usize,
            worker: state.view.worker.get(),
            time,
        })
    }

    /// Tells the observers that want task starts that this task of run `run`, spawned at
    /// `info`, started.
    #[inline(never)]
    fn tell_start(&self, run: u64, info: TaskInfo) {
        self.observers.task_started(|| TaskStart {
            run,
            node: self.node,
            worker: self.worker,
            time: self.time,
            source: Source::Spawned(info),
        });
    }

    /// Tells the observers that the task (of run `run`, spawned at `info`) ended, with
    /// `error` if it failed. By reference: moving the task out of its `Option` copies it
    /// in wide loads just after it was stored in narrow ones, which stalls when the task
    /// body was short.
    #[inline(always)]
    pub(crate) fn finish(&self, run: u64, info: TaskInfo, error: Option<&Error>) {
        let end = Timestamp::now();
        let (device, bytes_moved) = with_state(|state| state.task_ended(end));
        self.observers.task_finished(&TaskEnd {
            run,
            node: self.node,
            worker: self.worker,
            start: self.time,
            end,
            device,
            bytes_moved,
            error,
            source: Source::Spawned(info),
        });
    }
}

/// The observers of a static run, as [`observers_for_run`] hands them out.
pub(crate) struct RunObservers {
    pub(crate) observers: Rc<Observers>,
    /// A fresh run id.
    pub(crate) id: u64,
    /// Their version, for [`chain_view`]; 0 when taken without the cache.
    pub(crate) version: u64,
}

/// The observers of `set` for a static run. A worker of the runtime (`on_worker`, which is
/// `worker` in its pool) takes them from its cache, which is let go when an observer is
/// detached ([`forget_cached_observers`]); another thread, whose cache nothing would
/// clear, takes them under the set's lock.
pub(crate) fn observers_for_run(
    set: &ObserverSet,
    on_worker: bool,
    worker: impl FnOnce() -> Worker,
) -> Option<RunObservers> {
    let id = || with_state(ThreadState::fresh_id);
    if !on_worker {
        let observers = Rc::new(set.snapshot()?);
        let (id, version) = (id(), 0);
        return Some(RunObservers {
            observers,
            id,
            version,
        });
    }
    let mut version = set.version();
    if version == 0 {
        return None;
    }
    let mut observers = with_state(|state| state.view.observers(version));
    if observers.is_none() {
        version = refill(set, worker())?;
        observers = with_state(|state| state.view.observers(version));
    }
    Some(RunObservers {
        observers: observers?,
        id: id(),
        version,
    })
}

/// For a chain of a static run whose observers are of `version` (see [`RunObservers`]):
/// this thread in the runtime's pool, when this thread's view holds those observers.
#[inline]
pub(crate) fn chain_view(version: u64) -> Option<Worker> {
    with_state(|state| {
        let view = &state.view;
        (version != 0 && view.version.get() == version).then(|| view.worker.get())
    })
}

/// Lets go of the observers this thread cached.
pub(crate) fn forget_cached_observers() {
    with_state(|state| state.view.unset());
    // `try_with`: a broadcast may reach a thread that is exiting.
    let cached = CACHED.try_with(|cached| cached.0.take());
    drop(cached);
}

/// This thread's state, held by a chain of a static run while it runs on this thread, so
/// that its nodes note their starts and ends without a thread-local look-up each.
#[derive(Clone, Copy)]
pub(crate) struct ChainThread<'a>(&'a ThreadState);

/// Runs `chain` with this thread's state.
#[inline]
pub(crate) fn on_this_thread<R>(chain: impl FnOnce(ChainThread<'_>) -> R) -> R {
    with_state(|state| chain(ChainThread(state)))
}

impl ChainThread<'_> {
    /// A node starts: forget the notes and the carried time left by tasks this thread
    /// ran before (the executor keeps its own clock).
    #[inline]
    pub(crate) fn node_starting(self) {
        self.0.task_starting();
    }

    /// A node ended at `end`: `end` is carried to a chain that starts next, and the
    /// notes a device backend left are returned.
    #[inline]
    pub(crate) fn node_ended(self, end: Timestamp) -> DeviceNotes {
        self.0.task_ended(end)
    }

    /// When a chain forked at `forked` starts, if that is known without reading the
    /// clock: when this thread's last task ended, if it ended after the fork. The chain
    /// was then waiting in a queue while this thread worked, and a worker goes from one
    /// task to the next queued one without idling.
    #[inline]
    pub(crate) fn carried_since(self, forked: Timestamp) -> Option<Timestamp> {
        self.0.last_end.get().filter(|&end| end >= forked)
    }
}

/// Runs `tasks`, a stretch of tasks started from a rayon job (a pump, a batch): no time
/// is carried into it, and none out of it.
#[inline]
pub(crate) fn stretch<R>(tasks: impl FnOnce() -> R) -> R {
    forget_last_end();
    let result = tasks();
    forget_last_end();
    result
}

/// The time carried from the last task is stale: the thread is about to do something
/// else (run other jobs, wait).
#[inline]
pub(crate) fn forget_last_end() {
    with_state(|state| state.last_end.set(None));
}

/// For device backends: the task running on this thread queued its work on `device`'s
/// stream `stream`. Observers see it in [`TaskEnd::device`].
pub fn note_device(device: &'static str, stream: u32) {
    with_state(|state| state.noting().device.set(Some((device, stream))));
}

/// For device backends: the task running on this thread copies `bytes` between host and
/// device. Observers see the total in [`TaskEnd::bytes_moved`].
pub fn note_bytes_moved(bytes: u64) {
    with_state(|state| {
        let moved = &state.noting().bytes_moved;
        moved.set(moved.get() + bytes);
    });
}
