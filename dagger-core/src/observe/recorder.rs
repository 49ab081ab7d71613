//! `Recorder`: an observer that keeps every event it sees, for export as a `Trace`.
//!
//! Recording is on the hot path of every task, so a task is stored as a compact raw
//! record (timestamps in clock ticks, rare fields boxed) in fixed-size chunks that never
//! move, in one of several shards picked by worker, and only turned into
//! [`TaskRecord`]s when a trace is taken.

use std::sync::{Arc, Mutex};

use super::trace::{RunRecord, TaskRecord, Trace};
use super::{Observer, RunInfo, TaskEnd, Timestamp, Worker};
use crate::error::Error;
use crate::task::Location;

/// Events are sharded by worker so that recording threads rarely share a lock.
const SHARDS: usize = 16;
/// Records per chunk: a full chunk is kept, never reallocated.
const CHUNK: usize = 4096;

/// Records runs and tasks. Attach it to a runtime (`Runtime::observe`, or the builder's
/// `observer`), run graphs, then take a [`Trace`]. Cloning shares the recording.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Timestamp,
    runs: Mutex<Vec<RawRun>>,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    chunks: Vec<Vec<RawTask>>,
}

struct RawRun {
    info: RunInfo,
    end: Option<Timestamp>,
    error: Option<String>,
}

struct RawTask {
    run: u64,
    node: u32,
    worker: u32,
    start: Timestamp,
    end: Timestamp,
    name: &'static str,
    location: Location,
    rare: Option<Box<Rare>>,
}

/// Fields that are absent for most tasks.
struct Rare {
    device: Option<(String, u32)>,
    bytes_moved: u64,
    error: Option<String>,
}

const CALLER: u32 = u32::MAX;

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
                runs: Mutex::new(Vec::new()),
                shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            }),
        }
    }

    /// How many tasks have been recorded so far.
    pub fn task_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| lock(s).chunks.iter().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// Everything recorded so far, tasks sorted by start time.
    pub fn trace(&self) -> Trace {
        let origin = self.inner.origin;
        let ns = |t: Timestamp| t.nanos_since(origin);
        let runs = lock(&self.inner.runs)
            .iter()
            .map(|r| RunRecord {
                id: r.info.id,
                graph: r.info.graph,
                tasks: r.info.tasks,
                threads: r.info.threads,
                nested: r.info.nested,
                start_ns: ns(r.info.start),
                end_ns: r.end.map(ns),
                error: r.error.clone(),
            })
            .collect();
        let mut tasks = Vec::with_capacity(self.task_count());
        for shard in &self.inner.shards {
            for raw in lock(shard).chunks.iter().flatten() {
                tasks.push(TaskRecord {
                    run: raw.run,
                    node: raw.node as usize,
                    name: raw.name,
                    location: raw.location,
                    worker: if raw.worker == CALLER {
                        Worker::Caller
                    } else {
                        Worker::Thread(raw.worker as usize)
                    },
                    start_ns: ns(raw.start),
                    end_ns: ns(raw.end),
                    device: raw.rare.as_ref().and_then(|r| r.device.clone()),
                    bytes_moved: raw.rare.as_ref().map_or(0, |r| r.bytes_moved),
                    error: raw.rare.as_ref().and_then(|r| r.error.clone()),
                });
            }
        }
        Trace::new(runs, tasks)
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        lock(&self.inner.runs).clear();
        for shard in &self.inner.shards {
            lock(shard).chunks.clear();
        }
    }
}

impl Observer for Recorder {
    fn run_started(&self, run: &RunInfo) {
        lock(&self.inner.runs).push(RawRun {
            info: *run,
            end: None,
            error: None,
        });
    }

    fn task_finished(&self, task: &TaskEnd<'_>) {
        let rare =
            (task.device.is_some() || task.bytes_moved > 0 || task.error.is_some()).then(|| {
                Box::new(Rare {
                    device: task
                        .device
                        .map(|(device, stream)| (device.to_owned(), stream)),
                    bytes_moved: task.bytes_moved,
                    error: task.error.map(|e| e.to_string()),
                })
            });
        let (worker, shard) = match task.worker {
            Worker::Thread(n) => (n as u32, n % SHARDS),
            Worker::Caller => (CALLER, SHARDS - 1),
        };
        let raw = RawTask {
            run: task.run,
            node: task.node as u32,
            worker,
            start: task.start,
            end: task.end,
            name: task.name,
            location: task.location,
            rare,
        };
        let mut shard = lock(&self.inner.shards[shard]);
        match shard.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(raw),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(raw);
                shard.chunks.push(chunk);
            }
        }
    }

    fn run_finished(&self, run: &RunInfo, error: Option<&Error>) {
        let end = Timestamp::now();
        let mut runs = lock(&self.inner.runs);
        if let Some(record) = runs.iter_mut().rev().find(|r| r.info.id == run.id) {
            record.end = Some(end);
            record.error = error.map(|e| e.to_string());
        }
    }
}
