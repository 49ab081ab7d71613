//! `Trace`: the recorded runs and tasks, and the analyses every export shares
//! (durations, per-worker busy time, critical path).

use std::collections::HashMap;
use std::path::Path;

use super::Worker;
use crate::error::Error;
use crate::graph::Graph;
use crate::task::Location;

/// One recorded run. Times are nanoseconds since the recorder was created.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunRecord {
    /// The run's id.
    pub id: u64,
    /// Its static graph, for `dag!` runs.
    pub graph: Option<&'static Graph>,
    /// How many tasks it had.
    pub tasks: usize,
    /// Worker threads of its runtime.
    pub threads: usize,
    /// Whether it ran inside a task of the same runtime.
    pub nested: bool,
    /// When it started.
    pub start_ns: u64,
    /// When it finished (`None` while running).
    pub end_ns: Option<u64>,
    /// Its failure, if it failed.
    pub error: Option<String>,
}

/// One recorded task. Times are nanoseconds since the recorder was created.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TaskRecord {
    /// The run it belongs to.
    pub run: u64,
    /// Its node id.
    pub node: usize,
    /// The task's name.
    pub name: &'static str,
    /// Where it is in the source.
    pub location: Location,
    /// The thread that ran it.
    pub worker: Worker,
    /// When it started.
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
    /// The device and stream, for GPU tasks.
    pub device: Option<(String, u32)>,
    /// Bytes copied between host and device.
    pub bytes_moved: u64,
    /// Its failure, if it failed.
    pub error: Option<String>,
}

impl TaskRecord {
    /// How long it ran.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// What a [`Recorder`](super::Recorder) saw. Times are nanoseconds since the recorder
/// was created.
#[derive(Clone, Debug)]
pub struct Trace {
    runs: Vec<RunRecord>,
    tasks: Vec<TaskRecord>,
}

impl Trace {
    pub(crate) fn new(mut runs: Vec<RunRecord>, mut tasks: Vec<TaskRecord>) -> Self {
        runs.sort_by_key(|r| (r.start_ns, r.id));
        tasks.sort_by_key(|t| (t.start_ns, t.run, t.node));
        Trace { runs, tasks }
    }

    /// The runs, by start time.
    pub fn runs(&self) -> &[RunRecord] {
        &self.runs
    }

    /// The tasks, by start time.
    pub fn tasks(&self) -> &[TaskRecord] {
        &self.tasks
    }

    /// The tasks of one run.
    pub fn tasks_of(&self, run: u64) -> impl Iterator<Item = &TaskRecord> {
        self.tasks.iter().filter(move |t| t.run == run)
    }

    /// The first start and last end of anything recorded, in nanoseconds.
    pub fn span_ns(&self) -> (u64, u64) {
        let start = self
            .runs
            .iter()
            .map(|r| r.start_ns)
            .chain(self.tasks.iter().map(|t| t.start_ns))
            .min();
        let end = self
            .runs
            .iter()
            .filter_map(|r| r.end_ns)
            .chain(self.tasks.iter().map(|t| t.end_ns))
            .max();
        (start.unwrap_or(0), end.unwrap_or(0))
    }

    /// The threads that ran tasks, in order.
    pub fn workers(&self) -> Vec<Worker> {
        let mut workers: Vec<Worker> = self.tasks.iter().map(|t| t.worker).collect();
        workers.sort();
        workers.dedup();
        workers
    }

    /// The device streams that ran tasks, in order.
    pub fn streams(&self) -> Vec<(String, u32)> {
        let mut streams: Vec<(String, u32)> =
            self.tasks.iter().filter_map(|t| t.device.clone()).collect();
        streams.sort();
        streams.dedup();
        streams
    }

    /// The heaviest chain of dependent tasks of a run: node ids in order and their total
    /// duration. Follows the graph's edges for `dag!` runs; tasks that did not run weigh
    /// nothing. Without a graph it is the single longest task.
    pub fn critical_path(&self, run: u64) -> (Vec<usize>, u64) {
        let durations: HashMap<usize, u64> = self
            .tasks_of(run)
            .map(|t| (t.node, t.duration_ns()))
            .collect();
        let graph = self.runs.iter().find(|r| r.id == run).and_then(|r| r.graph);
        let Some(graph) = graph else {
            return durations
                .iter()
                .max_by_key(|(node, d)| (**d, usize::MAX - **node))
                .map(|(n, d)| (vec![*n], *d))
                .unwrap_or_default();
        };
        // Node ids are in source order, and every edge goes forward: one pass suffices.
        let count = graph.nodes().len();
        let mut best = vec![0u64; count];
        let mut previous: Vec<Option<usize>> = vec![None; count];
        for node in 0..count {
            let own = durations.get(&node).copied().unwrap_or(0);
            best[node] += own;
            for &next in graph.schedule().successors(node) {
                let next = next as usize;
                if best[node] > best[next] {
                    best[next] = best[node];
                    previous[next] = Some(node);
                }
            }
        }
        let Some((mut node, &total)) = best
            .iter()
            .enumerate()
            .max_by_key(|(n, b)| (**b, usize::MAX - *n))
        else {
            return (Vec::new(), 0);
        };
        let mut path = vec![node];
        while let Some(p) = previous[node] {
            path.push(p);
            node = p;
        }
        path.reverse();
        (path, total)
    }

    /// Writes the export that `path`'s extension names: `.json` (Chrome trace events),
    /// `.svg` (Gantt chart), `.dot` (graph as executed) or `.txt` (summary).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => self.to_chrome_json(),
            Some("svg") => self.to_svg_gantt()?,
            Some("dot") => self.to_dot(),
            Some("txt") => self.summary().to_string(),
            _ => {
                return Err(Error::Trace(format!(
                    "cannot tell the trace format of `{}`; use an extension among `.json`, `.svg`, `.dot`, `.txt`",
                    path.display()
                )))
            }
        };
        std::fs::write(path, text).map_err(|e| {
            Error::Trace(format!(
                "cannot write the trace to `{}`: {e}",
                path.display()
            ))
        })
    }
}
