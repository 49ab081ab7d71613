//! The runtime: a pool of worker threads (rayon) that runs graphs.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, OnceLock, Weak};

use crate::error::Error;
use crate::observe::{attached, Attached, Observer, ObserverGuard, ObserverSet};
use queue::Queues;
use wait::{enter_thread, Waiting, DEFAULT_STACK_SIZE};

pub(crate) mod lease;
pub(crate) mod queue;
mod schedule;
pub(crate) mod task;
pub(crate) mod wait;

/// Worker threads that run graphs. Cheap to share by reference; one runtime runs any
/// number of graphs, one after another or at the same time, and stays usable after a
/// graph fails.
pub struct Runtime {
    shared: Arc<Shared>,
}

thread_local! {
    /// On a worker thread: the runtime it belongs to (filled in once the runtime exists).
    static WORKER_OF: RefCell<Option<Arc<OnceLock<Weak<Shared>>>>> = const { RefCell::new(None) };
}

/// Makes this spare thread (see `runtime::wait`) run tasks for `shared`, as its workers do.
pub(crate) fn enter_spare(shared: &Arc<Shared>) {
    let slot = OnceLock::new();
    let _ = slot.set(Arc::downgrade(shared));
    WORKER_OF.with(|w| *w.borrow_mut() = Some(Arc::new(slot)));
}

/// This spare thread stops running tasks: it gives back the counts it leased.
pub(crate) fn leave_spare() {
    lease::leave();
    WORKER_OF.with(|w| *w.borrow_mut() = None);
}

/// The runtime whose worker (or spare) this thread is, if any.
pub(crate) fn current_runtime() -> Option<Arc<Shared>> {
    WORKER_OF.with(|w| {
        w.borrow()
            .as_ref()
            .and_then(|slot| slot.get())
            .and_then(Weak::upgrade)
    })
}

/// What tasks of a runtime need to reach it from any thread.
pub(crate) struct Shared {
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) observers: ObserverSet,
    /// This runtime's id: the run id under which observers see its dynamic tasks, and the
    /// tag of its workers' queues.
    pub(crate) dynamic_run: u64,
    /// Counts lent to tasks and worker leases, plus the runtime's own (see [`lease`]).
    pub(crate) task_counts: AtomicUsize,
    /// Set when the `Runtime` is dropped: workers stop leasing counts.
    pub(crate) closing: AtomicBool,
    /// The workers' queues of ready tasks.
    pub(crate) queues: Arc<Queues>,
    /// What its threads wait for, and the spare threads that run queued work while
    /// workers are blocked in a wait.
    pub(crate) waiting: Waiting,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        lease::close(&self.shared);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Runtime {
    /// Starts configuring a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.shared.pool.current_num_threads()
    }

    /// Runs `op` on one of the runtime's workers and returns its result. Graphs run from
    /// inside (`op`, or any task) start on that worker without handing the work to
    /// another thread and back, which matters when running many small graphs.
    pub fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        self.shared.pool.install(op)
    }

    /// Attaches an observer until the returned guard is dropped.
    pub fn observe(&self, observer: impl Observer + 'static) -> ObserverGuard<'_> {
        let id = self.shared.observers.attach(attached(observer));
        ObserverGuard {
            set: &self.shared.observers,
            pool: &self.shared.pool,
            id,
        }
    }

    pub(crate) fn pool(&self) -> &rayon::ThreadPool {
        &self.shared.pool
    }

    pub(crate) fn observers(&self) -> &ObserverSet {
        &self.shared.observers
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// Configures a [`Runtime`].
#[derive(Default, Clone)]
pub struct RuntimeBuilder {
    threads: Option<usize>,
    thread_name: Option<String>,
    stack_size: Option<usize>,
    observers: Vec<Attached>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("threads", &self.threads)
            .field("thread_name", &self.thread_name)
            .field("stack_size", &self.stack_size)
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl RuntimeBuilder {
    /// The number of worker threads (default: the number of CPUs).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The prefix of the worker threads' names (default `dagger-worker`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = Some(prefix.into());
        self
    }

    /// The stack size of each worker thread, in bytes (default 256 MiB, reserved as
    /// address space and committed only as used). Tasks that wait for tasks run them on
    /// this stack, so it bounds how deep nested spawn-and-fetch recursion goes on one
    /// thread; deeper recursion continues on spare threads (it never aborts the process).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Attaches an observer for the runtime's whole life.
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observers.push(attached(observer));
        self
    }

    /// Starts the worker threads. With `DAGGER_TRACE` set, the runtime also records into
    /// the process-wide trace (see [`observe`](crate::observe)).
    pub fn build(self) -> Result<Runtime, Error> {
        let threads = match self.threads {
            Some(0) => {
                return Err(Error::Config(
                    "a runtime needs at least 1 thread, got 0".into(),
                ))
            }
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        let prefix = self
            .thread_name
            .unwrap_or_else(|| "dagger-worker".to_owned());
        let stack_size = self.stack_size.unwrap_or(DEFAULT_STACK_SIZE);
        if stack_size < 64 << 10 {
            return Err(Error::Config(format!(
                "a worker stack of {stack_size} bytes is too small; give at least 64 KiB"
            )));
        }
        let waiting = Waiting::new(threads, stack_size, prefix.clone());
        // Each worker learns its runtime once the runtime exists (see `current_runtime`).
        let slot: Arc<OnceLock<Weak<Shared>>> = Arc::new(OnceLock::new());
        let worker_slot = slot.clone();
        let id = crate::observe::next_id();
        let queues = Arc::new(Queues::new(threads));
        let worker_queues = queues.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{prefix}-{i}"))
            .stack_size(stack_size)
            .start_handler(move |index| {
                enter_thread(stack_size, u16::try_from(index + 1).unwrap_or(0));
                WORKER_OF.with(|w| *w.borrow_mut() = Some(worker_slot.clone()));
                worker_queues.adopt(id, index);
            })
            .build()
            .map_err(|e| Error::ThreadPool(e.to_string()))?;
        let observers = ObserverSet::default();
        // The DAGGER_TRACE recorder first: observers are called in the order they were
        // attached, so a user's `run_finished` finds the run recorded.
        if let Some(recorder) = crate::observe::env::env_recorder() {
            observers.attach(attached(recorder));
        }
        for observer in self.observers {
            observers.attach(observer);
        }
        let shared = Arc::new(Shared {
            pool,
            observers,
            dynamic_run: id,
            task_counts: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            queues,
            waiting,
        });
        lease::open(&shared);
        let _ = slot.set(Arc::downgrade(&shared));
        Ok(Runtime { shared })
    }
}

/// The environment variable that sets the default runtime's thread count.
pub const THREADS_ENV: &str = "DAGGER_THREADS";

/// The runtime that [`Dag::run`](crate::Dag::run) uses, built on first use with
/// `DAGGER_THREADS` threads (default: the number of CPUs).
pub fn default_runtime() -> Result<&'static Runtime, Error> {
    static DEFAULT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    let built = DEFAULT.get_or_init(|| {
        let mut builder = Runtime::builder();
        if let Some(threads) = threads_from_env(std::env::var(THREADS_ENV).ok().as_deref())? {
            builder = builder.threads(threads);
        }
        builder.build().map_err(|e| e.to_string())
    });
    built
        .as_ref()
        .map_err(|message| Error::Config(message.clone()))
}

fn threads_from_env(value: Option<&str>) -> Result<Option<usize>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "{THREADS_ENV} must be a positive integer, got `{value}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_from_env() {
        assert_eq!(threads_from_env(None), Ok(None));
        assert_eq!(threads_from_env(Some("  ")), Ok(None));
        assert_eq!(threads_from_env(Some("3")), Ok(Some(3)));
        assert!(threads_from_env(Some("0"))
            .unwrap_err()
            .contains("positive integer"));
        assert!(threads_from_env(Some("many"))
            .unwrap_err()
            .contains("`many`"));
    }

    #[test]
    fn zero_threads_is_an_error() {
        let err = Runtime::builder().threads(0).build().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }

    #[test]
    fn builds_with_the_requested_threads() {
        let rt = Runtime::builder().threads(3).build().unwrap();
        assert_eq!(rt.threads(), 3);
    }
}
