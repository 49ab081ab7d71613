//! Runs a compiled `dag!` on the runtime's workers.
//!
//! Each node has a counter of unfinished predecessors. A finishing node decrements the
//! counters of its successors; it runs one that became ready itself and spawns the rest
//! (no queue round-trip on chains). A failure stops the launch of further nodes.
//! Observers, when attached, are called around each node; otherwise a node costs one
//! branch more than its closure.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use crate::error::{panic_message, BoxError, Error};
use crate::graph::Graph;
use crate::observe::{
    chain_view, observers_for_run, on_this_thread, ChainThread, ObserverList, RunInfo, Source,
    TaskEnd, TaskStart, Timestamp, Worker,
};
use crate::runtime::Runtime;

/// One node's statement, callable once through a shared reference.
pub trait RunNode: Sync {
    /// Runs the statement.
    ///
    /// # Safety
    /// Called at most once, after every predecessor of the node has finished.
    unsafe fn run(&self) -> Result<(), BoxError>;
}

/// The closure of one node, taken out and called when the node runs.
pub struct NodeCell<F>(UnsafeCell<Option<F>>);

// SAFETY: the cell is only touched by `run`, which is called at most once (its contract),
// so the closure is moved to exactly one worker thread: `F: Send` suffices.
unsafe impl<F: Send> Sync for NodeCell<F> {}

impl<F: FnOnce() -> Result<(), BoxError> + Send> NodeCell<F> {
    /// Wraps a node's closure.
    pub fn new(body: F) -> Self {
        NodeCell(UnsafeCell::new(Some(body)))
    }
}

impl<F: FnOnce() -> Result<(), BoxError> + Send> RunNode for NodeCell<F> {
    unsafe fn run(&self) -> Result<(), BoxError> {
        // SAFETY: `run` is called at most once, so nothing else touches the cell.
        let body = unsafe { (*self.0.get()).take() }.expect("dagger: a node ran twice");
        body()
    }
}

/// The per-run predecessor counters of a graph with `N` nodes (on the caller's stack).
pub fn new_counters<const N: usize>(graph: &Graph) -> [AtomicU32; N] {
    let counts = graph.schedule().predecessor_counts();
    assert_eq!(
        counts.len(),
        N,
        "dagger: counter array does not match the graph"
    );
    std::array::from_fn(|i| AtomicU32::new(counts[i]))
}

struct Observed<'a> {
    observers: &'a ObserverList,
    info: RunInfo,
    /// The observers' version, for [`chain_view`].
    version: u64,
}

impl Observed<'_> {
    /// Where a chain starting on this thread runs: from the thread's view of its cache,
    /// or looked up.
    fn chain_place(&self, pool: &rayon::ThreadPool) -> Worker {
        chain_view(self.version).unwrap_or_else(|| Worker::in_pool(pool))
    }
}

/// When a chain's first task starts.
#[derive(Clone, Copy)]
enum ChainStart {
    /// At this time (observed runs), right away.
    Started(Option<Timestamp>),
    /// Some time after the fork at this time (observed runs), on whichever worker.
    Forked(Option<Timestamp>),
}
use ChainStart::{Forked, Started};

/// Per chain of tasks on one worker: where it runs, and when its last task ended (the
/// next one's start: one clock read per task).
struct Clock<'t> {
    thread: ChainThread<'t>,
    worker: Worker,
    last: Option<Timestamp>,
}

struct Run<'a> {
    graph: &'static Graph,
    nodes: &'a [&'a dyn RunNode],
    counters: &'a [AtomicU32],
    pool: &'a rayon::ThreadPool,
    observed: Option<Observed<'a>>,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

/// Runs every node of `graph` once, in an order that respects its edges, and returns the
/// first failure. Nodes that depend on a failed node never run.
pub fn execute(
    runtime: &Runtime,
    graph: &'static Graph,
    nodes: &[&dyn RunNode],
    counters: &[AtomicU32],
) -> Result<(), Error> {
    assert_eq!(
        nodes.len(),
        graph.nodes().len(),
        "dagger: node array does not match the graph"
    );
    assert_eq!(
        counters.len(),
        nodes.len(),
        "dagger: counter array does not match the graph"
    );
    let pool = runtime.pool();
    let on_worker = pool.current_thread_index().is_some();
    let observers = observers_for_run(runtime.observers(), on_worker, || Worker::in_pool(pool));
    let observed = observers.as_ref().map(|o| Observed {
        observers: &o.observers,
        version: o.version,
        info: RunInfo {
            id: o.id,
            graph: Some(graph),
            tasks: nodes.len(),
            threads: pool.current_num_threads(),
            nested: on_worker,
            start: Timestamp::now(),
        },
    });
    if let Some(o) = &observed {
        o.observers.run_started(&o.info);
    }
    let run = Run {
        graph,
        nodes,
        counters,
        pool,
        observed,
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    if !nodes.is_empty() {
        pool.in_place_scope(|scope| {
            let run = &run;
            let roots = graph.schedule().roots();
            // A worker of this pool runs the first root itself; any other thread only
            // waits, so that the runtime's thread count is what does the work.
            let (inline, spawned) = match roots.split_first() {
                Some((first, rest)) if on_worker => (Some(*first), rest),
                _ => (None, roots),
            };
            let start = run.observed.as_ref().map(|o| o.info.start);
            for &root in spawned {
                let forked = Forked(start);
                scope.spawn(move |scope| run.run_from(scope, root as usize, forked));
            }
            if let Some(root) = inline {
                // Started at once: the run's start is its first task's.
                run.run_from(scope, root as usize, Started(start));
            }
        });
    }
    let Run {
        observed, error, ..
    } = run;
    let error = error
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(o) = &observed {
        o.observers.run_finished(&o.info, error.as_ref());
    }
    match error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

impl<'a> Run<'a> {
    /// Runs `first` and then, on this thread, one ready successor after another.
    fn run_from<'s>(&'s self, scope: &rayon::Scope<'s>, first: usize, start: ChainStart)
    where
        'a: 's,
    {
        on_this_thread(|thread| {
            let mut clock = self.observed.as_ref().map(|observed| Clock {
                thread,
                worker: observed.chain_place(self.pool),
                last: match start {
                    Started(time) => time,
                    Forked(Some(forked)) => thread.carried_since(forked),
                    Forked(None) => None,
                },
            });
            self.run_chain(scope, first, &mut clock);
        });
    }

    fn run_chain<'s>(&'s self, scope: &rayon::Scope<'s>, first: usize, clock: &mut Option<Clock>)
    where
        'a: 's,
    {
        let mut current = first;
        loop {
            // Memory ordering: a hint only; the error itself travels through the mutex.
            if self.failed.load(Ordering::Relaxed) {
                return;
            }
            // Observed runs read the clock once per task: a task's end is the next one's
            // start.
            let result = match (&self.observed, &mut *clock) {
                (Some(observed), Some(clock)) => self.run_observed(observed, clock, current),
                _ => self.call(current),
            };
            if let Err(error) = result {
                let mut slot = self
                    .error
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if slot.is_none() {
                    *slot = Some(error);
                }
                self.failed.store(true, Ordering::Relaxed);
                return;
            }
            let mut next = None;
            for &successor in self.graph.schedule().successors(current) {
                // Memory ordering: AcqRel. Release publishes this node's writes to the
                // slots; the Acquire of the decrement that reaches zero makes every
                // predecessor's writes visible to the thread that runs the successor.
                if self.counters[successor as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    if let Some(ready) = next.replace(successor as usize) {
                        let forked = Forked(clock.as_ref().and_then(|c| c.last));
                        scope.spawn(move |scope| self.run_from(scope, ready, forked));
                    }
                }
            }
            match next {
                Some(ready) => current = ready,
                None => return,
            }
        }
    }

    /// Runs one node and reports it to the observers.
    fn run_observed(
        &self,
        observed: &Observed,
        clock: &mut Clock,
        node: usize,
    ) -> Result<(), Error> {
        let start = clock.last.take().unwrap_or_else(Timestamp::now);
        observed.observers.task_started(|| TaskStart {
            run: observed.info.id,
            node,
            worker: clock.worker,
            time: start,
            source: Source::Graph(self.graph),
        });
        clock.thread.node_starting();
        let result = self.call(node);
        let end = Timestamp::now();
        clock.last = Some(end);
        let (device, bytes_moved) = clock.thread.node_ended(end);
        let ended = TaskEnd {
            run: observed.info.id,
            node,
            source: Source::Graph(self.graph),
            worker: clock.worker,
            start,
            end,
            device,
            bytes_moved,
            error: result.as_ref().err(),
        };
        observed.observers.task_finished(&ended);
        result
    }

    fn call(&self, node: usize) -> Result<(), Error> {
        let desc = &self.graph.nodes()[node];
        #[cfg(feature = "tracing")]
        let _span = tracing::info_span!("dagger_task", task = desc.name(), node, location = %desc.location()).entered();
        // SAFETY: a node becomes ready once (its counter reaches zero once, or it is a
        // root), so it runs once, and only after all its predecessors finished.
        match catch_unwind(AssertUnwindSafe(|| unsafe { self.nodes[node].run() })) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::TaskFailed {
                task: desc.name(),
                location: desc.location(),
                source: source.into(),
            }),
            Err(payload) => Err(Error::TaskPanicked {
                task: desc.name(),
                location: desc.location(),
                message: panic_message(&*payload),
            }),
        }
    }
}
