//! Runs a compiled `dag!` on the runtime's workers.
//!
//! Each node has a counter of unfinished predecessors. A finishing node decrements the
//! counters of its successors; it runs one that became ready itself and spawns the rest
//! (no queue round-trip on chains). A failure stops the launch of further nodes.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use crate::error::{panic_message, BoxError, Error};
use crate::graph::Graph;
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

struct Run<'a> {
    graph: &'static Graph,
    nodes: &'a [&'a dyn RunNode],
    counters: &'a [AtomicU32],
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
    if nodes.is_empty() {
        return Ok(());
    }
    let run = Run {
        graph,
        nodes,
        counters,
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let pool = runtime.pool();
    let on_worker = pool.current_thread_index().is_some();
    pool.in_place_scope(|scope| {
        let run = &run;
        let roots = graph.schedule().roots();
        // A worker of this pool runs the first root itself; any other thread only waits,
        // so that the runtime's thread count is what does the work.
        let (inline, spawned) = match roots.split_first() {
            Some((first, rest)) if on_worker => (Some(*first), rest),
            _ => (None, roots),
        };
        for &root in spawned {
            scope.spawn(move |scope| run.run_from(scope, root as usize));
        }
        if let Some(root) = inline {
            run.run_from(scope, root as usize);
        }
    });
    match run
        .error
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
    {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

impl<'a> Run<'a> {
    fn run_from<'s>(&'s self, scope: &rayon::Scope<'s>, first: usize)
    where
        'a: 's,
    {
        let mut current = first;
        loop {
            // Memory ordering: a hint only; the error itself travels through the mutex.
            if self.failed.load(Ordering::Relaxed) {
                return;
            }
            // SAFETY: a node becomes ready once (its counter reaches zero once, or it is a
            // root), so it runs once, and only after all its predecessors finished.
            let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { self.nodes[current].run() }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return self.fail(current, |task, location| Error::TaskFailed {
                        task,
                        location,
                        source,
                    })
                }
                Err(payload) => {
                    let message = panic_message(&*payload);
                    return self.fail(current, |task, location| Error::TaskPanicked {
                        task,
                        location,
                        message,
                    });
                }
            }
            let mut next = None;
            for &successor in self.graph.schedule().successors(current) {
                // Memory ordering: AcqRel. Release publishes this node's writes to the
                // slots; the Acquire of the decrement that reaches zero makes every
                // predecessor's writes visible to the thread that runs the successor.
                if self.counters[successor as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    if let Some(ready) = next.replace(successor as usize) {
                        scope.spawn(move |scope| self.run_from(scope, ready));
                    }
                }
            }
            match next {
                Some(ready) => current = ready,
                None => return,
            }
        }
    }

    fn fail(&self, node: usize, error: impl FnOnce(&'static str, crate::Location) -> Error) {
        let desc = &self.graph.nodes()[node];
        let mut slot = self
            .error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(error(desc.name(), desc.location()));
        }
        self.failed.store(true, Ordering::Relaxed);
    }
}
