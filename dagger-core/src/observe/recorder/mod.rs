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
/// takes 72 bytes; when the last clone is dropped, its buffers (up to 128 MiB in all) are
/// kept for the next recorder, so that recording again does not fault in fresh pages.
/// Observers are called in the order they were attached.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Timestamp,
    /// One buffer per thread slot, then one for threads without a slot.
    buffers: Box<[Mutex<Buffer>]>,
}

#[derive(Default)]
struct Buffer {
    records: Vec<Record>,
    /// How many of them are tasks.
    tasks: usize,
}

/// Emptied buffers of dropped recorders, with their memory, for the next ones.
static SPARE: Mutex<Vec<Vec<Record>>> = Mutex::new(Vec::new());

/// Spare buffer memory kept at most, in records (about 128 MiB).
const SPARE_RECORDS: usize = (128 << 20) / std::mem::size_of::<Record>();

impl Drop for Inner {
    fn drop(&mut self) {
        // Emptied before the spare list is locked: emptying takes time in the records.
        let emptied: Vec<Vec<Record>> = self
            .buffers
            .iter_mut()
            .map(|b| std::mem::take(&mut b.get_mut().unwrap_or_else(|e| e.into_inner()).records))
            .filter(|records| records.capacity() > 0)
            .map(|mut records| {
                records.clear();
                records
            })
            .collect();
        let mut spare = lock(&SPARE);
        let mut kept: usize = spare.iter().map(Vec::capacity).sum();
        for records in emptied {
            if kept + records.capacity() <= SPARE_RECORDS {
                kept += records.capacity();
                spare.push(records);
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
#[derive(Clone)]
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

    /// Its trace's clock now: nanoseconds since its time zero (to put traces taken in
    /// different processes on one time axis).
    pub fn now_ns(&self) -> u64 {
        Timestamp::now().nanos_since(self.inner.origin)
    }

    /// How many tasks have been recorded so far.
    pub fn task_count(&self) -> usize {
        self.inner.buffers.iter().map(|b| lock(b).tasks).sum()
    }

    /// Everything recorded so far, tasks sorted by start time. A run ends when its last
    /// task does.
    pub fn trace(&self) -> Trace {
        let ns = |t: Timestamp| t.nanos_since(self.inner.origin);
        // One consistent snapshot: every buffer locked (in index order; a writer holds
        // one at a time), the records copied out, names looked up after unlocking.
        let mut copied = Vec::new();
        let (mut runs, mut ended) = (Vec::new(), HashMap::new());
        {
            let buffers: Vec<_> = self.inner.buffers.iter().map(lock).collect();
            copied.reserve(buffers.iter().map(|b| b.tasks).sum());
            for record in buffers.iter().flat_map(|b| b.records.iter()) {
                match record {
                    Record::Task(task) => copied.push(TaskEntry {
                        rare: task.rare.clone(),
                        ..*task
                    }),
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
        let tasks: Vec<TaskRecord> = copied
            .into_iter()
            .map(|r| {
                let rare = r.rare.as_deref();
                TaskRecord {
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
                }
            })
            .collect();
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
        for buffer in self.inner.buffers.iter() {
            let mut buffer = lock(buffer);
            buffer.records.clear();
            buffer.tasks = 0;
        }
    }

    /// Appends `record` to the calling thread's buffer.
    #[inline]
    fn push(&self, record: Record) {
        let slot = slots::current().unwrap_or(slots::SLOTS);
        let mut buffer = lock(&self.inner.buffers[slot]);
        if buffer.records.capacity() == 0 {
            // This thread's first event in this recording: reuse a dropped one's memory.
            if let Some(spare) = lock(&SPARE).pop() {
                buffer.records = spare;
            }
        }
        buffer.tasks += usize::from(matches!(record, Record::Task(_)));
        buffer.records.push(record);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskInfo;

    fn info() -> TaskInfo {
        TaskInfo {
            name: || "unit",
            spawned_at: std::panic::Location::caller(),
        }
    }

    fn run(id: u64) -> RunInfo {
        RunInfo {
            id,
            graph: None,
            tasks: 0,
            threads: 1,
            nested: false,
            start: Timestamp::now(),
        }
    }

    fn finish(recorder: &Recorder, run: u64, node: usize, error: Option<&Error>) {
        let now = Timestamp::now();
        recorder.task_finished(&TaskEnd {
            run,
            node,
            worker: Worker::Thread(0),
            start: now,
            end: now,
            device: None,
            bytes_moved: 0,
            error,
            source: Source::Spawned(info()),
        });
    }

    #[test]
    fn a_dropped_recorders_buffers_are_reused_without_its_records() {
        let first = Recorder::new();
        first.run_started(&run(1));
        (0..1000).for_each(|n| finish(&first, 1, n, None));
        first.run_finished(&run(1), None);
        drop(first);
        assert!(
            !lock(&SPARE).is_empty(),
            "the first recorder's buffer is kept"
        );
        // Tests share the spare list: this one may get another test's buffer; either way
        // it must hold nothing of an earlier recording.
        let second = Recorder::new();
        finish(&second, 2, 7, None);
        let trace = second.trace();
        assert_eq!(trace.tasks().len(), 1, "nothing of the first recording");
        assert_eq!((trace.tasks()[0].run, trace.tasks()[0].node), (2, 7));
        assert!(trace.runs().is_empty());
        assert_eq!(second.task_count(), 1);
    }

    #[test]
    fn failures_and_run_ends_are_recorded_and_clear_starts_afresh() {
        let recorder = Recorder::new();
        recorder.run_started(&run(5));
        finish(&recorder, 5, 0, None);
        let failure = Error::InvalidUse("bad input".into());
        finish(&recorder, 5, 1, Some(&failure));
        recorder.run_finished(&run(5), Some(&failure));
        let trace = recorder.trace();
        assert_eq!(recorder.task_count(), 2);
        let failed = trace.tasks().iter().find(|t| t.node == 1).unwrap();
        assert!(failed.error.as_deref().unwrap().contains("bad input"));
        let [record] = trace.runs() else {
            panic!("one run: {:?}", trace.runs())
        };
        assert!(record.end_ns.is_some() && record.error.as_deref().unwrap().contains("bad input"));
        recorder.clear();
        assert_eq!(recorder.task_count(), 0);
        finish(&recorder, 6, 3, None);
        let trace = recorder.trace();
        assert_eq!(trace.tasks().len(), 1);
        assert!(trace.runs().is_empty());
    }

    #[test]
    fn threads_record_side_by_side_and_nothing_is_lost() {
        let recorder = Recorder::new();
        std::thread::scope(|scope| {
            for t in 0..8 {
                let recorder = &recorder;
                scope.spawn(move || (0..500).for_each(|n| finish(recorder, t, n, None)));
            }
            // A reader meanwhile.
            for _ in 0..20 {
                let seen = recorder.trace().tasks().len();
                assert!(seen <= 4000);
            }
        });
        assert_eq!(recorder.task_count(), 4000);
        assert_eq!(recorder.trace().tasks().len(), 4000);
    }
}
