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
use crate::graph::Graph;
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
    /// Spawned tasks, and static ones with rare fields.
    chunks: Vec<Vec<RawTask>>,
    /// Nodes of static graphs: name and location come from the graph when a trace is
    /// taken, so a record is 40 bytes instead of 80 (less memory touched per task).
    compact: Vec<Vec<CompactTask>>,
}

struct CompactTask {
    run: u64,
    node: u32,
    worker: u32,
    start: Timestamp,
    end: Timestamp,
    graph: &'static Graph,
}

fn count<T>(chunks: &[Vec<T>]) -> usize {
    chunks.iter().map(Vec::len).sum()
}

/// Appends to the last chunk, or starts a new one: chunks never move.
fn push_chunked<T>(chunks: &mut Vec<Vec<T>>, item: T) {
    match chunks.last_mut() {
        Some(chunk) if chunk.len() < CHUNK => chunk.push(item),
        _ => {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(item);
            chunks.push(chunk);
        }
    }
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
            .map(|s| {
                let shard = lock(s);
                count(&shard.chunks) + count(&shard.compact)
            })
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
        let worker = |w: u32| {
            if w == CALLER {
                Worker::Caller
            } else {
                Worker::Thread(w as usize)
            }
        };
        for shard in &self.inner.shards {
            let shard = lock(shard);
            for raw in shard.compact.iter().flatten() {
                let node = &raw.graph.nodes()[raw.node as usize];
                tasks.push(TaskRecord {
                    run: raw.run,
                    node: raw.node as usize,
                    name: node.name(),
                    location: node.location(),
                    worker: worker(raw.worker),
                    start_ns: ns(raw.start),
                    end_ns: ns(raw.end),
                    device: None,
                    bytes_moved: 0,
                    error: None,
                });
            }
            for raw in shard.chunks.iter().flatten() {
                tasks.push(TaskRecord {
                    run: raw.run,
                    node: raw.node as usize,
                    name: raw.name,
                    location: raw.location,
                    worker: worker(raw.worker),
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
            let mut shard = lock(shard);
            shard.chunks.clear();
            shard.compact.clear();
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
        let (worker, shard) = match task.worker {
            Worker::Thread(n) => (n as u32, n % SHARDS),
            Worker::Caller => (CALLER, SHARDS - 1),
        };
        let rare = task.device.is_some() || task.bytes_moved > 0 || task.error.is_some();
        if let (Some(graph), false) = (task.graph, rare) {
            let record = CompactTask {
                run: task.run,
                node: task.node as u32,
                worker,
                start: task.start,
                end: task.end,
                graph,
            };
            push_chunked(&mut lock(&self.inner.shards[shard]).compact, record);
            return;
        }
        let rare = rare.then(|| {
            Box::new(Rare {
                device: task
                    .device
                    .map(|(device, stream)| (device.to_owned(), stream)),
                bytes_moved: task.bytes_moved,
                error: task.error.map(|e| e.to_string()),
            })
        });
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
        push_chunked(&mut lock(&self.inner.shards[shard]).chunks, raw);
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
