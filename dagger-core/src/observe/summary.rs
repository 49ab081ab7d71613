//! The text summary of a trace: per task name count / total / mean / max, the critical
//! path, achieved parallelism and idle time per worker.

use std::collections::BTreeMap;
use std::fmt;

use super::duration_text;
use super::trace::Trace;
use super::Worker;

/// Time spent in tasks of one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameStats {
    /// The task name.
    pub name: &'static str,
    /// How many ran.
    pub count: usize,
    /// Their total time.
    pub total_ns: u64,
    /// The longest one.
    pub max_ns: u64,
    /// How many failed.
    pub failed: usize,
}

impl NameStats {
    /// Mean time per task.
    pub fn mean_ns(&self) -> u64 {
        self.total_ns / self.count.max(1) as u64
    }
}

/// The numbers of a trace; `Display` prints them as a table.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Per task name, the most total time first.
    pub by_name: Vec<NameStats>,
    /// Tasks recorded.
    pub tasks: usize,
    /// Runs recorded.
    pub runs: usize,
    /// Sum of run wall times (overlapping runs counted once per run).
    pub wall_ns: u64,
    /// Sum of task durations.
    pub busy_ns: u64,
    /// Busy time divided by wall time: the average number of tasks running at once.
    pub parallelism: f64,
    /// Per worker: busy and idle time within the recorded runs' wall time.
    pub workers: Vec<(Worker, u64, u64)>,
    /// The critical path of the longest run: task names and total duration.
    pub critical_path: (Vec<&'static str>, u64),
}

impl Trace {
    /// Per-task-name totals, critical path, parallelism and idle time.
    pub fn summary(&self) -> Summary {
        let mut by_name: BTreeMap<&'static str, NameStats> = BTreeMap::new();
        let mut busy_by_worker: BTreeMap<Worker, u64> = BTreeMap::new();
        for task in self.tasks() {
            let d = task.duration_ns();
            let stats = by_name.entry(task.name).or_insert(NameStats {
                name: task.name,
                count: 0,
                total_ns: 0,
                max_ns: 0,
                failed: 0,
            });
            stats.count += 1;
            stats.total_ns += d;
            stats.max_ns = stats.max_ns.max(d);
            stats.failed += task.error.is_some() as usize;
            *busy_by_worker.entry(task.worker).or_default() += d;
        }
        let mut by_name: Vec<NameStats> = by_name.into_values().collect();
        by_name.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.name.cmp(b.name)));

        let top_level = self.runs().iter().filter(|r| !r.nested);
        let wall_ns: u64 = top_level
            .map(|r| r.end_ns.unwrap_or(r.start_ns).saturating_sub(r.start_ns))
            .sum();
        let wall_ns = if wall_ns == 0 {
            let (s, e) = self.span_ns();
            e - s
        } else {
            wall_ns
        };
        let busy_ns: u64 = busy_by_worker.values().sum();
        let workers = busy_by_worker
            .into_iter()
            .map(|(w, busy)| (w, busy, wall_ns.saturating_sub(busy)))
            .collect();

        let longest = self
            .runs()
            .iter()
            .max_by_key(|r| r.end_ns.unwrap_or(r.start_ns).saturating_sub(r.start_ns));
        let critical_path = match longest {
            Some(run) => {
                let (nodes, total) = self.critical_path(run.id);
                let names = nodes
                    .iter()
                    .map(|&n| match run.graph {
                        Some(g) => g.nodes()[n].name(),
                        None => self
                            .tasks_of(run.id)
                            .find(|t| t.node == n)
                            .map(|t| t.name)
                            .unwrap_or("?"),
                    })
                    .collect();
                (names, total)
            }
            None => (Vec::new(), 0),
        };
        Summary {
            by_name,
            tasks: self.tasks().len(),
            runs: self.runs().len(),
            wall_ns,
            busy_ns,
            parallelism: if wall_ns == 0 {
                0.0
            } else {
                busy_ns as f64 / wall_ns as f64
            },
            workers,
            critical_path,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} tasks in {} runs, wall {}, busy {}, parallelism {:.2}",
            self.tasks,
            self.runs,
            duration_text(self.wall_ns),
            duration_text(self.busy_ns),
            self.parallelism
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<24} {:>7} {:>12} {:>12} {:>12}",
            "task", "count", "total", "mean", "max"
        )?;
        for s in &self.by_name {
            let failed = if s.failed > 0 {
                format!("  ({} failed)", s.failed)
            } else {
                String::new()
            };
            writeln!(
                f,
                "{:<24} {:>7} {:>12} {:>12} {:>12}{failed}",
                s.name,
                s.count,
                duration_text(s.total_ns),
                duration_text(s.mean_ns()),
                duration_text(s.max_ns)
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "critical path ({}): {}",
            duration_text(self.critical_path.1),
            self.critical_path.0.join(" -> ")
        )?;
        writeln!(f)?;
        writeln!(f, "{:<16} {:>12} {:>12}", "worker", "busy", "idle")?;
        for (worker, busy, idle) in &self.workers {
            writeln!(
                f,
                "{:<16} {:>12} {:>12}",
                worker.to_string(),
                duration_text(*busy),
                duration_text(*idle)
            )?;
        }
        Ok(())
    }
}
