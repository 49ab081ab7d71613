//! Observation beside execution: an [`Observer`] sees each run start and finish and
//! each task start and end, on the worker that ran it. The executor calls observers;
//! task code never does. With no observer attached, a run checks one flag and nothing
//! else happens per task.
//!
//! [`Recorder`] keeps the events of every run it sees as a [`Trace`], which exports
//! Chrome trace-event JSON, Graphviz DOT of the graph as executed, an SVG Gantt chart and
//! a text summary. `DAGGER_TRACE=path` records any program without code changes.

mod chrome;
mod clock;
pub(crate) mod dot;
pub(crate) mod env;
mod gantt;
#[cfg(feature = "progress")]
mod progress;
mod recorder;
mod summary;
mod trace;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::Error;
use crate::graph::Graph;
use crate::task::Location;

pub use clock::Timestamp;
pub use env::flush_env_trace;
#[cfg(feature = "progress")]
pub use progress::Progress;
pub use recorder::Recorder;
pub use summary::{NameStats, Summary};
pub use trace::{RunRecord, TaskRecord, Trace};

/// A duration in the unit that reads best.
pub(crate) fn duration_text(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// The thread a task ran on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Worker {
    /// Worker `n` of the runtime's pool.
    Thread(usize),
    /// A thread outside the pool (the one that called `run`, for example).
    Caller,
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Worker::Thread(n) => write!(f, "worker {n}"),
            Worker::Caller => f.write_str("caller thread"),
        }
    }
}

/// A run (one graph executed once) as observers see it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RunInfo {
    /// Unique in the process.
    pub id: u64,
    /// The static graph, for `dag!` runs.
    pub graph: Option<&'static Graph>,
    /// How many tasks the run has.
    pub tasks: usize,
    /// Worker threads of the runtime.
    pub threads: usize,
    /// Whether the run was started from inside a task of the same runtime.
    pub nested: bool,
    /// When it started.
    pub start: Timestamp,
}

/// A task about to run.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TaskStart {
    /// The run it belongs to.
    pub run: u64,
    /// Its node id in the run's graph.
    pub node: usize,
    /// The task's name (`"glue"` for glue statements).
    pub name: &'static str,
    /// Where it is in the source.
    pub location: Location,
    /// The thread running it.
    pub worker: Worker,
    /// When it started.
    pub time: Timestamp,
}

/// A task that finished (successfully or not).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TaskEnd<'a> {
    /// The run it belongs to.
    pub run: u64,
    /// Its node id in the run's graph.
    pub node: usize,
    /// The task's name.
    pub name: &'static str,
    /// Where it is in the source.
    pub location: Location,
    /// The thread that ran it.
    pub worker: Worker,
    /// When it started.
    pub start: Timestamp,
    /// When it ended.
    pub end: Timestamp,
    /// The static graph the task is node `node` of (`dag!` runs); `None` for spawned tasks.
    pub graph: Option<&'static crate::graph::Graph>,
    /// The device and stream it ran on, for GPU tasks.
    pub device: Option<(&'a str, u32)>,
    /// Bytes it copied between host and device.
    pub bytes_moved: u64,
    /// Its failure, if it failed.
    pub error: Option<&'a Error>,
}

/// Sees what a runtime runs. All methods have empty defaults; implement the ones you need.
/// They are called on worker threads, concurrently, and should be quick.
pub trait Observer: Send + Sync {
    /// A run is about to start.
    fn run_started(&self, _run: &RunInfo) {}
    /// A task is about to run.
    fn task_started(&self, _task: &TaskStart) {}
    /// A task has finished.
    fn task_finished(&self, _task: &TaskEnd<'_>) {}
    /// A run has finished; `error` is its failure, if any.
    fn run_finished(&self, _run: &RunInfo, _error: Option<&Error>) {}
}

/// The observers attached to one runtime.
#[derive(Default)]
pub(crate) struct ObserverSet {
    // Memory ordering: Relaxed is enough for the flag; the list itself is read under the
    // lock, and a run that misses an observer attached concurrently is simply not observed.
    active: AtomicBool,
    list: RwLock<List>,
}

/// The attached observers, and the same list ready to hand to a run.
#[derive(Default)]
struct List {
    entries: Vec<(u64, Arc<dyn Observer>)>,
    shared: Option<Observers>,
}

impl List {
    fn changed(&mut self) {
        self.shared = (!self.entries.is_empty())
            .then(|| self.entries.iter().map(|(_, o)| o.clone()).collect());
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id, unique in the process (runs and observer attachments).
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub(crate) type Observers = Arc<[Arc<dyn Observer>]>;

impl ObserverSet {
    pub(crate) fn attach(&self, observer: Arc<dyn Observer>) -> u64 {
        let id = next_id();
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        list.entries.push((id, observer));
        list.changed();
        self.active.store(true, Ordering::Relaxed);
        id
    }

    pub(crate) fn detach(&self, id: u64) {
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        list.entries.retain(|(i, _)| *i != id);
        list.changed();
        self.active
            .store(!list.entries.is_empty(), Ordering::Relaxed);
    }

    /// The observers for one run, or `None` (the common case) without taking the lock.
    pub(crate) fn snapshot(&self) -> Option<Observers> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        self.list
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .shared
            .clone()
    }
}

/// Detaches its observer when dropped (see [`Runtime::observe`](crate::Runtime::observe)).
#[must_use = "the observer is detached when the guard is dropped"]
pub struct ObserverGuard<'rt> {
    pub(crate) set: &'rt ObserverSet,
    pub(crate) id: u64,
}

impl Drop for ObserverGuard<'_> {
    fn drop(&mut self) {
        self.set.detach(self.id);
    }
}

impl std::fmt::Debug for ObserverGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverGuard")
            .field("id", &self.id)
            .finish()
    }
}

thread_local! {
    /// What a device backend said about the task running on this thread.
    static DEVICE_NOTE: std::cell::Cell<(Option<(&'static str, u32)>, u64)> =
        const { std::cell::Cell::new((None, 0)) };
}

/// For device backends: the task running on this thread queued its work on `device`'s
/// stream `stream`. Observers see it in [`TaskEnd::device`].
pub fn note_device(device: &'static str, stream: u32) {
    DEVICE_NOTE.with(|note| note.set((Some((device, stream)), note.get().1)));
}

/// For device backends: the task running on this thread copies `bytes` between host and
/// device. Observers see the total in [`TaskEnd::bytes_moved`].
pub fn note_bytes_moved(bytes: u64) {
    DEVICE_NOTE.with(|note| {
        let (device, total) = note.get();
        note.set((device, total + bytes));
    });
}

/// Forgets notes left by unobserved tasks; called when an observed task starts.
pub(crate) fn clear_device_notes() {
    DEVICE_NOTE.with(|note| note.set((None, 0)));
}

/// The notes of the observed task that just ran on this thread.
pub(crate) fn take_device_notes() -> (Option<(&'static str, u32)>, u64) {
    DEVICE_NOTE.with(|note| note.replace((None, 0)))
}
