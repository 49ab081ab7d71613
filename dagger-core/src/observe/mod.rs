//! Observation beside execution: an [`Observer`] sees each run start and finish and
//! each task start and end, on the worker that ran it. The executor calls observers;
//! task code never does. With no observer attached, a run checks one number and nothing
//! else happens per task.
//!
//! [`Recorder`] keeps the events of every run it sees as a [`Trace`], which exports
//! Chrome trace-event JSON, Graphviz DOT of the graph as executed, an SVG Gantt chart and
//! a text summary. `DAGGER_TRACE=path` records any program without code changes.
//!
//! What observing costs, and how it is kept small:
//! - One clock read per task where possible: a worker that goes straight from one task
//!   to the next gives the first one's end as the next one's start (the time in between,
//!   picking up the next task, is counted to it). A chain forked while this worker was
//!   busy starts when its last task ended; anything else reads the clock.
//! - Every observer, a [`Recorder`] included, is called through the [`Observer`] trait at
//!   one seam per task (start and end); the recorder appends a fixed-size record to its
//!   thread's buffer, reused across recordings.
//! - Names and locations are looked up when asked for ([`TaskEnd::name`]), not per task.
//! - Workers keep the observer list in a thread-local cache, checked against a version
//!   number per task; detaching an observer makes every worker let go of it.

mod chrome;
mod clock;
mod dot;
pub(crate) mod env;
mod gantt;
#[cfg(feature = "progress")]
mod progress;
mod recorder;
mod summary;
mod thread;
mod trace;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::Error;
use crate::graph::Graph;
use crate::task::Location;
use crate::task::TaskInfo;

pub use clock::Timestamp;
pub use env::{flush_env_trace, TRACE_ENV};
#[cfg(feature = "progress")]
pub use progress::Progress;
pub use recorder::Recorder;
pub use summary::{NameStats, Summary};
pub(crate) use thread::{
    chain_view, forget_cached_observers, forget_last_end, observers_for_run, on_this_thread,
    start_spawned, stretch, ChainThread,
};
pub use thread::{note_bytes_moved, note_device};
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

impl Worker {
    /// The calling thread, as `pool` sees it.
    pub(crate) fn in_pool(pool: &rayon::ThreadPool) -> Worker {
        match pool.current_thread_index() {
            Some(n) => Worker::Thread(n),
            None => Worker::Caller,
        }
    }
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

/// What a task is: a node of a static graph, or a spawned task. Names and locations are
/// looked up only when asked for, so observers that do not need them do not pay for them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    /// Node `node` of this graph.
    Graph(&'static Graph),
    /// A spawned task.
    Spawned(TaskInfo),
}

impl Source {
    fn name(&self, node: usize) -> &'static str {
        match self {
            Source::Graph(graph) => graph.nodes()[node].name(),
            Source::Spawned(info) => info.name(),
        }
    }

    fn location(&self, node: usize) -> Location {
        match self {
            Source::Graph(graph) => graph.nodes()[node].location(),
            Source::Spawned(info) => info.location(),
        }
    }

    fn graph(&self) -> Option<&'static Graph> {
        match self {
            Source::Graph(graph) => Some(graph),
            Source::Spawned(_) => None,
        }
    }
}

/// A task about to run.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TaskStart {
    /// The run it belongs to.
    pub run: u64,
    /// Its node id in the run's graph; for spawned tasks, an id unique in the process.
    pub node: usize,
    /// The thread running it.
    pub worker: Worker,
    /// When it started.
    pub time: Timestamp,
    pub(crate) source: Source,
}

/// What `TaskStart` and `TaskEnd` say about the task through its source.
macro_rules! source_accessors {
    ($event:ty) => {
        impl $event {
            /// The task's name (`"glue"` for glue statements).
            pub fn name(&self) -> &'static str {
                self.source.name(self.node)
            }

            /// Where it is in the source (for spawned tasks, where it was spawned).
            pub fn location(&self) -> Location {
                self.source.location(self.node)
            }

            /// The static graph the task is node `node` of (`dag!` runs); `None` for
            /// spawned tasks.
            pub fn graph(&self) -> Option<&'static Graph> {
                self.source.graph()
            }
        }
    };
}

source_accessors!(TaskStart);
source_accessors!(TaskEnd<'_>);

/// A task that finished (successfully or not).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TaskEnd<'a> {
    /// The run it belongs to.
    pub run: u64,
    /// Its node id in the run's graph; for spawned tasks, an id unique in the process.
    pub node: usize,
    /// The thread that ran it.
    pub worker: Worker,
    /// When it started.
    pub start: Timestamp,
    /// When it ended.
    pub end: Timestamp,
    /// The device and stream it ran on, for GPU tasks.
    pub device: Option<(&'a str, u32)>,
    /// Bytes it copied between host and device.
    pub bytes_moved: u64,
    /// Its failure, if it failed.
    pub error: Option<&'a Error>,
    pub(crate) source: Source,
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

/// An attached observer.
pub(crate) type Attached = Arc<dyn Observer>;

/// `observer`, ready to attach: every observer, a [`Recorder`] included, is called through
/// the trait, isolated from the workers (see [`Isolated`]).
pub(crate) fn attached<O: Observer + 'static>(observer: O) -> Attached {
    Arc::new(Isolated {
        observer,
        panicked: AtomicBool::new(false),
    })
}

/// A user's observer, kept away from the workers' stacks: its panic is caught (a panic
/// escaping into the pool would abort the process), reported once on stderr, and the
/// observer is not called again; the run goes on.
struct Isolated<O> {
    observer: O,
    panicked: AtomicBool,
}

impl<O: Observer> Isolated<O> {
    #[inline]
    fn call(&self, method: &str, f: impl FnOnce(&O)) {
        // Memory ordering: Relaxed; a call that races with the first panic may still run.
        if self.panicked.load(Ordering::Relaxed) {
            return;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&self.observer)));
        if let Err(payload) = outcome {
            if !self.panicked.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "dagger: observer `{}` panicked in `{method}` and is detached: {}",
                    std::any::type_name::<O>(),
                    crate::error::panic_message(&*payload)
                );
            }
        }
    }
}

impl<O: Observer> Observer for Isolated<O> {
    fn run_started(&self, run: &RunInfo) {
        self.call("run_started", |o| o.run_started(run));
    }
    fn task_started(&self, task: &TaskStart) {
        self.call("task_started", |o| o.task_started(task));
    }
    fn task_finished(&self, task: &TaskEnd<'_>) {
        self.call("task_finished", |o| o.task_finished(task));
    }
    fn run_finished(&self, run: &RunInfo, error: Option<&Error>) {
        self.call("run_finished", |o| o.run_finished(run, error));
    }
}

/// The observers attached to a runtime when a run or task started.
pub(crate) struct ObserverList {
    observers: Box<[Attached]>,
}

impl ObserverList {
    pub(crate) fn run_started(&self, run: &RunInfo) {
        self.observers.iter().for_each(|o| o.run_started(run));
    }

    /// Tells the observers that a task starts.
    #[inline]
    pub(crate) fn task_started(&self, start: impl FnOnce() -> TaskStart) {
        let start = start();
        self.observers.iter().for_each(|o| o.task_started(&start));
    }

    #[inline]
    pub(crate) fn task_finished(&self, end: &TaskEnd<'_>) {
        self.observers.iter().for_each(|o| o.task_finished(end));
    }

    pub(crate) fn run_finished(&self, run: &RunInfo, error: Option<&Error>) {
        self.observers
            .iter()
            .for_each(|o| o.run_finished(run, error));
    }
}

/// The observers attached to one runtime.
#[derive(Default)]
pub(crate) struct ObserverSet {
    /// Changes (to a number unique in the process) whenever the list does; 0 while it is
    /// empty. Threads cache the list they saw under its version.
    // Memory ordering: Relaxed is enough; the list itself is read under the lock, and a
    // task that misses an observer attached concurrently is simply not observed.
    version: AtomicU64,
    list: RwLock<List>,
}

/// The attached observers, and the same list ready to hand to a run.
#[derive(Default)]
struct List {
    entries: Vec<(u64, Attached)>,
    shared: Option<Observers>,
}

impl List {
    fn changed(&mut self) {
        self.shared = (!self.entries.is_empty()).then(|| {
            Arc::new(ObserverList {
                observers: self.entries.iter().map(|(_, o)| o.clone()).collect(),
            })
        });
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id, unique in the process (runs, spawned tasks, observer list versions).
pub(crate) fn next_id() -> u64 {
    next_ids(1)
}

/// The first of `n` fresh ids.
pub(crate) fn next_ids(n: u64) -> u64 {
    NEXT_ID.fetch_add(n, Ordering::Relaxed)
}

pub(crate) type Observers = Arc<ObserverList>;

impl ObserverSet {
    pub(crate) fn attach(&self, observer: Attached) -> u64 {
        let id = next_id();
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        list.entries.push((id, observer));
        self.changed(&mut list);
        id
    }

    pub(crate) fn detach(&self, id: u64) {
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        list.entries.retain(|(i, _)| *i != id);
        self.changed(&mut list);
    }

    fn changed(&self, list: &mut List) {
        list.changed();
        let version = if list.entries.is_empty() {
            0
        } else {
            next_id()
        };
        self.version.store(version, Ordering::Relaxed);
    }

    /// The list's version: 0 while no observer is attached.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The observers for one run, or `None` (the common case) without taking the lock.
    pub(crate) fn snapshot(&self) -> Option<Observers> {
        if self.version() == 0 {
            return None;
        }
        self.versioned_snapshot().map(|(_, observers)| observers)
    }

    /// The observers and the version they are, under the lock.
    pub(crate) fn versioned_snapshot(&self) -> Option<(u64, Observers)> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        let observers = list.shared.clone()?;
        Some((self.version(), observers))
    }
}

/// Detaches its observer when dropped (see [`Runtime::observe`](crate::Runtime::observe)).
#[must_use = "the observer is detached when the guard is dropped"]
pub struct ObserverGuard<'rt> {
    pub(crate) set: &'rt ObserverSet,
    pub(crate) pool: &'rt rayon::ThreadPool,
    pub(crate) id: u64,
}

impl Drop for ObserverGuard<'_> {
    fn drop(&mut self) {
        self.set.detach(self.id);
        // Workers cache the observer list; each lets go of the old one when it gets to
        // this (a busy worker would anyway, at the next list change it sees).
        self.pool.spawn_broadcast(|_| forget_cached_observers());
    }
}

impl std::fmt::Debug for ObserverGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverGuard")
            .field("id", &self.id)
            .finish()
    }
}
