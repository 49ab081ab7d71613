//! `Recorder`: an observer that keeps every event it sees, for export as a `Trace`.
//!
//! Recording is on the hot path of every task, so each thread appends to a log of its
//! own, without a lock (see [`log`]): 8 to 16 bytes for a graph node, 8 to 24 for a
//! spawned task. The runtime keeps a thread's log at hand ([`ThreadLog`]) while a
//! recorder is the only observer, and writes to it directly.
//! Entries become [`TaskRecord`]s only when a trace is taken.

mod chunk;
mod log;
mod slots;

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock};

pub(crate) use self::log::{Context, ContextKey, SpawnedTask};
use self::log::{Log, RunEntry, TaskEntry, Writing};
use super::trace::{RunRecord, TaskRecord, Trace};
use super::{Observer, RunInfo, Source, TaskEnd, Timestamp};
use crate::error::Error;

/// Records runs and tasks. Attach it to a runtime (`Runtime::observe`, or the builder's
/// `observer`), run graphs, then take a [`Trace`]. Cloning shares the recording.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Timestamp,
    /// One log per thread slot, made on the thread's first task.
    logs: Box<[OnceLock<Box<Log>>]>,
    /// The log of threads without a slot, written under `overflow_lock`.
    overflow: Log,
    overflow_lock: Mutex<()>,
}

impl Inner {
    fn logs(&self) -> impl Iterator<Item = &Log> {
        self.logs
            .iter()
            .filter_map(|log| log.get().map(|log| &**log))
            .chain([&self.overflow])
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("tasks", &self.task_count())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// An empty recorder; its trace's time zero is now.
    pub fn new() -> Self {
        Recorder {
            inner: Arc::new(Inner {
                origin: Timestamp::now(),
                logs: (0..slots::SLOTS).map(|_| OnceLock::new()).collect(),
                overflow: Log::default(),
                overflow_lock: Mutex::new(()),
            }),
        }
    }

    /// How many tasks have been recorded so far.
    pub fn task_count(&self) -> usize {
        self.inner.logs().map(Log::count).sum()
    }

    /// Everything recorded so far, tasks sorted by start time. A run ends when its last
    /// task does.
    pub fn trace(&self) -> Trace {
        let origin = self.inner.origin;
        let ns = |t: Timestamp| t.nanos_since(origin);
        let mut runs = Vec::new();
        let mut ended = HashMap::new();
        let mut tasks = Vec::with_capacity(self.task_count());
        for log in self.inner.logs() {
            let record_task = |context: &log::Context, entry: TaskEntry<'_>| {
                let record = |node: usize, source: Source, start, end| TaskRecord {
                    run: context.run,
                    node,
                    name: source.name(node),
                    location: source.location(node),
                    worker: context.worker,
                    start_ns: ns(start),
                    end_ns: ns(end),
                    device: None,
                    bytes_moved: 0,
                    error: None,
                };
                tasks.push(match entry {
                    TaskEntry::Node { node, start, end } => match context.graph {
                        Some(graph) => record(node, Source::Graph(graph), start, end),
                        None => unreachable!("dagger: a node entry outside a graph"),
                    },
                    TaskEntry::Spawned {
                        info,
                        node,
                        start,
                        end,
                    } => record(node, Source::Spawned(info), start, end),
                    TaskEntry::Rare(rare) => TaskRecord {
                        device: rare.device.clone(),
                        bytes_moved: rare.bytes_moved,
                        error: rare.error.clone(),
                        ..record(rare.node, rare.source, rare.start, rare.end)
                    },
                });
            };
            let record_run = |entry: RunEntry<'_>| match entry {
                RunEntry::Start {
                    id,
                    graph,
                    tasks,
                    threads,
                    nested,
                    start,
                } => runs.push(RunRecord {
                    id,
                    graph,
                    tasks,
                    threads,
                    nested,
                    start_ns: ns(start),
                    end_ns: None,
                    error: None,
                }),
                RunEntry::End { id, error } => {
                    ended.insert(id, error.map(str::to_owned));
                }
            };
            log.read(record_task, record_run);
        }
        let mut last_end = HashMap::new();
        for task in &tasks {
            let end = last_end.entry(task.run).or_insert(task.end_ns);
            *end = task.end_ns.max(*end);
        }
        for run in &mut runs {
            if let Some(error) = ended.remove(&run.id) {
                let end = last_end.get(&run.id).copied().unwrap_or(run.start_ns);
                run.end_ns = Some(end.max(run.start_ns));
                run.error = error;
            }
        }
        Trace::new(runs, tasks)
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.inner.logs().for_each(Log::clear);
    }
}

impl Recorder {
    /// Runs `write` with the calling thread's log.
    #[inline]
    fn write(&self, write: impl FnOnce(Writing<'_>)) {
        let Some(slot) = slots::current() else {
            return self.write_overflow(write);
        };
        let log = self.inner.logs[slot].get_or_init(Box::default);
        // SAFETY: no other live thread has this slot, and a `Writing` does not call back
        // into observers, so this is the log's only writer now.
        write(unsafe { log.writing() });
    }

    /// `write` for a thread without a slot.
    #[cold]
    fn write_overflow(&self, write: impl FnOnce(Writing<'_>)) {
        let _only_writer = lock(&self.inner.overflow_lock);
        // SAFETY: the lock makes this the overflow log's only writer.
        write(unsafe { self.inner.overflow.writing() });
    }

    /// Records a spawned task that finished without an error or device notes.
    #[inline(always)]
    pub(crate) fn record_spawned(&self, context: Context, task: SpawnedTask) {
        self.write(|mut log| log.spawned_task(context, task));
    }

    /// The calling thread's log, for writing to it without looking it up each time;
    /// `None` on a thread without a slot.
    pub(crate) fn thread_log(&self) -> Option<ThreadLog> {
        let slot = slots::current()?;
        let log = self.inner.logs[slot].get_or_init(Box::default);
        Some(ThreadLog(NonNull::from(&**log)))
    }

    /// Records a finished task: what `task_finished` does, for the runtime's direct call.
    #[inline(always)]
    pub(crate) fn record_task(&self, task: &TaskEnd<'_>) {
        self.write(|mut log| log.task(task));
    }
}

/// One thread's log in a recorder (see [`Recorder::thread_log`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadLog(NonNull<Log>);

impl ThreadLog {
    /// Records a spawned task that finished without an error or device notes.
    ///
    /// # Safety
    /// The recorder is alive, this is the thread the log was taken on, and that thread
    /// still has the slot it had then (it is not exiting).
    #[inline(always)]
    pub(crate) unsafe fn record_spawned(self, context: Context, task: SpawnedTask) {
        // SAFETY: the recorder, and so the log, is alive; the slot makes this thread the
        // log's only writer, and a `Writing` does not call back into observers.
        unsafe { self.0.as_ref().writing() }.spawned_task(context, task);
    }

    /// Records a run's start.
    ///
    /// # Safety
    /// As for [`record_spawned`](Self::record_spawned).
    pub(crate) unsafe fn record_run_start(self, run: &RunInfo) {
        // SAFETY: as in `record_spawned`.
        unsafe { self.0.as_ref().writing() }.run_start(run);
    }

    /// Records a run's end, with its error if it failed.
    ///
    /// # Safety
    /// As for [`record_spawned`](Self::record_spawned).
    pub(crate) unsafe fn record_run_end(self, run: &RunInfo, error: Option<&Error>) {
        // SAFETY: as in `record_spawned`.
        unsafe { self.0.as_ref().writing() }.run_end(run, error.map(|e| e.to_string()));
    }

    /// Records node `node` of `context`'s graph (`key` is the context's key), which
    /// finished without an error or device notes.
    ///
    /// # Safety
    /// As for [`record_spawned`](Self::record_spawned).
    #[inline(always)]
    pub(crate) unsafe fn record_node(
        self,
        context: &Context,
        key: ContextKey,
        node: usize,
        start: Timestamp,
        end: Timestamp,
    ) {
        // SAFETY: as in `record_spawned`.
        unsafe { self.0.as_ref().writing() }.node_task(context, key, node, start, end);
    }
}

impl Observer for Recorder {
    fn run_started(&self, run: &RunInfo) {
        self.write(|mut log| log.run_start(run));
    }

    fn task_finished(&self, task: &TaskEnd<'_>) {
        self.record_task(task);
    }

    fn run_finished(&self, run: &RunInfo, error: Option<&Error>) {
        self.write(|mut log| log.run_end(run, error.map(|e| e.to_string())));
    }
}
