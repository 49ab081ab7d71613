//! `Recorder`: an observer that keeps every event it sees, for export as a `Trace`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::trace::{RunRecord, TaskRecord, Trace};
use super::{Observer, RunInfo, TaskEnd, Worker};
use crate::error::Error;

/// Events are sharded by worker so that recording threads rarely share a lock.
const SHARDS: usize = 16;

/// Records runs and tasks. Attach it to a runtime (`Runtime::observe`, or the builder's
/// `observer`), run graphs, then take a [`Trace`]. Cloning shares the recording.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Instant,
    runs: Mutex<Vec<RunRecord>>,
    tasks: Vec<Mutex<Vec<TaskRecord>>>,
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

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Recorder {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                runs: Mutex::new(Vec::new()),
                tasks: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            }),
        }
    }

    /// How many tasks have been recorded so far.
    pub fn task_count(&self) -> usize {
        self.inner
            .tasks
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Everything recorded so far, tasks sorted by start time.
    pub fn trace(&self) -> Trace {
        let runs = self
            .inner
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut tasks: Vec<TaskRecord> = Vec::new();
        for shard in &self.inner.tasks {
            tasks.extend(
                shard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .cloned(),
            );
        }
        Trace::new(self.inner.origin, runs, tasks)
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.inner
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        for shard in &self.inner.tasks {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    fn since_origin(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.inner.origin).as_nanos() as u64
    }
}

impl Observer for Recorder {
    fn run_started(&self, run: &RunInfo) {
        let record = RunRecord {
            id: run.id,
            graph: run.graph,
            tasks: run.tasks,
            threads: run.threads,
            nested: run.nested,
            start_ns: self.since_origin(run.start),
            end_ns: None,
            error: None,
        };
        self.inner
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }

    fn task_finished(&self, task: &TaskEnd<'_>) {
        let record = TaskRecord {
            run: task.run,
            node: task.node,
            name: task.name,
            location: task.location,
            worker: task.worker,
            start_ns: self.since_origin(task.start),
            end_ns: self.since_origin(task.end),
            device: task
                .device
                .map(|(device, stream)| (device.to_owned(), stream)),
            bytes_moved: task.bytes_moved,
            error: task.error.map(|e| e.to_string()),
        };
        let shard = match task.worker {
            Worker::Thread(n) => n % SHARDS,
            Worker::Caller => SHARDS - 1,
        };
        self.inner.tasks[shard]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }

    fn run_finished(&self, run: &RunInfo, error: Option<&Error>) {
        let end = self.since_origin(Instant::now());
        let mut runs = self.inner.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(record) = runs.iter_mut().rev().find(|r| r.id == run.id) {
            record.end_ns = Some(end);
            record.error = error.map(|e| e.to_string());
        }
    }
}
