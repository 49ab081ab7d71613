//! `Progress`: a progress bar per top-level run (tasks done / total, rate, ETA), drawn
//! with indicatif on stderr, and hidden when stderr is not a terminal.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Observer, RunInfo, TaskEnd};
use crate::error::Error;

/// Shows a progress bar for each top-level run. Opt in by attaching it:
/// `Runtime::builder().observer(Progress::new())`. Nested runs count towards nothing and
/// draw nothing; with stderr not a terminal nothing is drawn at all.
pub struct Progress {
    bars: Mutex<HashMap<u64, ProgressBar>>,
    target: fn() -> ProgressDrawTarget,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").finish_non_exhaustive()
    }
}

impl Progress {
    /// A progress display on stderr.
    pub fn new() -> Self {
        Progress {
            bars: Mutex::new(HashMap::new()),
            target: ProgressDrawTarget::stderr,
        }
    }

    /// A progress display that draws nowhere (for tests and embedding).
    pub fn hidden() -> Self {
        Progress {
            bars: Mutex::new(HashMap::new()),
            target: ProgressDrawTarget::hidden,
        }
    }

    /// `(done, total)` of each run in progress, by run id.
    pub fn positions(&self) -> Vec<(u64, u64, u64)> {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let mut positions: Vec<_> = bars
            .iter()
            .map(|(id, bar)| (*id, bar.position(), bar.length().unwrap_or(0)))
            .collect();
        positions.sort_unstable();
        positions
    }

    /// Whether the bars are drawn (false when stderr is not a terminal).
    pub fn is_visible(&self) -> bool {
        !(self.target)().is_hidden()
    }
}

impl Observer for Progress {
    fn run_started(&self, run: &RunInfo) {
        if run.nested {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(run.tasks as u64), (self.target)());
        let style = ProgressStyle::with_template(
            "{spinner} run {prefix}: {pos}/{len} tasks [{bar:30}] {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(run.id.to_string());
        self.bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.id, bar);
    }

    fn task_finished(&self, task: &TaskEnd<'_>) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&task.run)
        {
            bar.inc(1);
        }
    }

    fn run_finished(&self, run: &RunInfo, _error: Option<&Error>) {
        if let Some(bar) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run.id)
        {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tasks_of_top_level_runs() {
        let progress = Progress::hidden();
        assert!(!progress.is_visible());
        let run = RunInfo {
            id: 7,
            graph: None,
            tasks: 3,
            threads: 1,
            nested: false,
            start: super::super::Timestamp::now(),
        };
        progress.run_started(&run);
        let nested = RunInfo {
            id: 8,
            nested: true,
            ..run
        };
        progress.run_started(&nested);
        let now = super::super::Timestamp::now();
        for node in 0..2 {
            let end = TaskEnd {
                run: 7,
                node,
                source: super::super::Source::Spawned(crate::task::TaskInfo::of::<()>(
                    std::panic::Location::caller(),
                )),
                worker: super::super::Worker::Caller,
                start: now,
                end: now,
                device: None,
                bytes_moved: 0,
                error: None,
            };
            progress.task_finished(&end);
        }
        assert_eq!(progress.positions(), [(7, 2, 3)], "nested runs have no bar");
        progress.run_finished(&run, None);
        assert!(progress.positions().is_empty());
    }

    #[test]
    fn hidden_when_stderr_is_not_a_terminal() {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            assert!(!Progress::new().is_visible());
        }
    }
}
