//! `Recorder`: an ordinary [`Observer`] that keeps every run and task it sees, for export
//! as a [`Trace`].
//!
//! Each thread appends fixed-size records to a buffer of its own (one per thread slot,
//! see [`slots`]), under an uncontended lock. Buffers are reused across recordings: a
//! dropped recorder's buffers keep their memory for the next recorder (a fresh page costs
//! a fault of about 2 µs on our VM, which per task would cost more than the record).
//! What is rare (a failure, device notes) is boxed, so that a record stays small. Records
//! become [`TaskRecord`]s only when a trace is taken.

mod slots;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::trace::{RunRecord, TaskRecord, Trace};
use super::{Observer, RunInfo, Source, TaskEnd, Timestamp, Worker};
use crate::error::Error;

/// Records runs and tasks. Attach it to a runtime (`Runtime::observe`, or the builder's
/// `observer`), run graphs, then take a [`Trace`]. Cloning shares the recording. A record
/// takes 72 bytes; when the last clone is dropped, its buffers (up to 256 MiB in all) are
/// kept for the next recorder, so that recording again does not fault in fresh pages.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Timestamp,
    /// One buffer per thread slot, then one for threads without a slot.
    buffers: Box<[Mutex<Vec<Record>>]>,
}

/// Emptied buffers of dropped recorders, with their memory, for the next ones.
static SPARE: Mutex<Vec<Vec<Record>>> = Mutex::new(Vec::new());

/// Spare buffer memory kept at most, in records (about 256 MiB).
const SPARE_RECORDS: usize = (256 << 20) / std::mem::size_of::<Record>();

impl Drop for Inner {
    fn drop(&mut self) {
        let mut spare = lock(&SPARE);
        let mut kept: usize = spare.iter().map(Vec::capacity).sum();
        for buffer in self.buffers.iter_mut() {
            let mut buffer = std::mem::take(buffer.get_mut().unwrap_or_else(|e| e.into_inner()));
            if buffer.capacity() > 0 && kept + buffer.capacity() <= SPARE_RECORDS {
                buffer.clear();
                kept += buffer.capacity();
                spare.push(buffer);
            }
        }
    }
}

/// One event, in the buffer of the thread it happened on.
enum Record {
    Task(TaskEntry),
    RunStart(RunInfo),
    RunEnd { id: u64, error: Option<Box<str>> },
}

/// One finished task.
struct TaskEntry {
    run: u64,
    node: usize,
    source: Source,
    worker: Worker,
    start: Timestamp,
    end: Timestamp,
    rare: Option<Box<Rare>>,
}

/// What few tasks have.
struct Rare {
    device: Option<(String, u32)>,
    bytes_moved: u64,
    error: Option<String>,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// An empty recorder; its trace's time zero is now.
    pub fn new() -> Self {
        Recorder {
            inner: Arc::new(Inner {
                origin: Timestamp::now(),
                buffers: (0..=slots::SLOTS).map(|_| Mutex::default()).collect(),
            }),
        }
    }

    /// How many tasks have been recorded so far.
    pub fn task_count(&self) -> usize {
        let tasks = |b: &Vec<Record>| b.iter().filter(|r| matches!(r, Record::Task(_))).count();
        self.inner.buffers.iter().map(|b| tasks(&lock(b))).sum()
    }

    /// Everything recorded so far, tasks sorted by start time. A run ends when its last
    /// task does.
    pub fn trace(&self) -> Trace {
        let ns = |t: Timestamp| t.nanos_since(self.inner.origin);
        let (mut tasks, mut runs, mut ended) = (Vec::new(), Vec::new(), HashMap::new());
        for buffer in self.inner.buffers.iter() {
            for record in lock(buffer).iter() {
                match record {
                    Record::Task(r) => {
                        let rare = r.rare.as_deref();
                        tasks.push(TaskRecord {
                            run: r.run,
                            node: r.node,
                            name: r.source.name(r.node),
                            location: r.source.location(r.node),
                            worker: r.worker,
                            start_ns: ns(r.start),
                            end_ns: ns(r.end),
                            device: rare.and_then(|rare| rare.device.clone()),
                            bytes_moved: rare.map_or(0, |rare| rare.bytes_moved),
                            error: rare.and_then(|rare| rare.error.clone()),
                        });
                    }
                    Record::RunStart(run) => runs.push(RunRecord {
                        id: run.id,
                        graph: run.graph,
                        tasks: run.tasks,
                        threads: run.threads,
                        nested: run.nested,
                        start_ns: ns(run.start),
                        end_ns: None,
                        error: None,
                    }),
                    Record::RunEnd { id, error } => {
                        ended.insert(*id, error.as_deref().map(str::to_owned));
                    }
                }
            }
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
        runs.sort_by_key(|run| run.start_ns);
        Trace::new(runs, tasks)
    }

    /// Forgets everything recorded so far (the buffers are kept for the next recording).
    pub fn clear(&self) {
        self.inner.buffers.iter().for_each(|b| lock(b).clear());
    }

    /// Appends `record` to the calling thread's buffer.
    #[inline]
    fn push(&self, record: Record) {
        let slot = slots::current().unwrap_or(slots::SLOTS);
        let mut buffer = lock(&self.inner.buffers[slot]);
        if buffer.capacity() == 0 {
            // This thread's first event in this recording: reuse a dropped one's memory.
            if let Some(spare) = lock(&SPARE).pop() {
                *buffer = spare;
            }
        }
        buffer.push(record);
    }
}

impl Observer for Recorder {
    fn run_started(&self, run: &RunInfo) {
        self.push(Record::RunStart(*run));
    }

    #[inline]
    fn task_finished(&self, task: &TaskEnd<'_>) {
        let rare =
            (task.error.is_some() || task.device.is_some() || task.bytes_moved > 0).then(|| {
                Box::new(Rare {
                    device: task.device.map(|(d, s)| (d.to_owned(), s)),
                    bytes_moved: task.bytes_moved,
                    error: task.error.map(Error::to_string),
                })
            });
        self.push(Record::Task(TaskEntry {
            run: task.run,
            node: task.node,
            source: task.source,
            worker: task.worker,
            start: task.start,
            end: task.end,
            rare,
        }));
    }

    fn run_finished(&self, run: &RunInfo, error: Option<&Error>) {
        self.push(Record::RunEnd {
            id: run.id,
            error: error.map(|e| e.to_string().into_boxed_str()),
        });
    }
}
