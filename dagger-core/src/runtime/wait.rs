//! Waiting for a task (`fetch`, `wait`) without deadlock, and without running out of stack.
//!
//! # Why a wait cannot deadlock
//!
//! A worker that waits for task `X` runs only tasks that `X` depends on, inline: `X`
//! itself when it is ready and nobody has started it; `X`'s inputs and then `X` when it
//! still waits for them (the waiter claims `X` first); and, when `X` runs on another thread
//! that waits for `C`, the task `C` (and so on along such waits: each thread publishes
//! what it waits for in its *wait slot*). It never runs unrelated work on top of the
//! waiting frame. (That was the old deadlock: `A` waits, runs `B` on top of itself, `B`
//! waits for `A`, and `A` cannot resume until `B` returns.) So every frame on a thread's
//! stack is a task that the frame below it depends on: a frame that needed a frame below
//! it would be a cycle in the program's dependencies.
//!
//! When the worker cannot run `X` (it runs elsewhere, waits for its inputs, or is a
//! promise), it blocks, and the runtime starts (or wakes) a *spare* thread for as long as it
//! blocks, so that as many threads run the runtime's queued work as it has workers that are
//! not blocked. Every queued task is reachable by a spare (worker queues through their
//! stealers, tasks scheduled from other threads and batches through the runtime's
//! injectors; rayon only holds jobs that point there), so a task that `X` needs directly
//! or indirectly (its inputs, the task that completes its promise) still runs, on any
//! number of threads, including one. Spares block and are compensated the same way.
//!
//! Rayon waits too: a task that runs a `dag!` or a parallel iterator waits inside rayon,
//! which runs any queued rayon job meanwhile. The jobs that run dagger tasks (pumps of
//! worker queues, injected tasks, batches) therefore hold back while a task is on their
//! thread's stack ([`in_task`], [`in_a_task`]) and are queued again when the
//! thread leaves its outermost task. A waiter still reaches those tasks: it runs them
//! inline, or a spare steals them.
//!
//! # Deep recursion
//!
//! Running `X` inline nests frames: spawn-and-fetch recursion goes as deep as the stack.
//! Workers and spares get large stacks (reserved, not committed: [`DEFAULT_STACK_SIZE`], or
//! `Runtime::builder().stack_size(..)`), and a thread stops running tasks inline when less
//! than [`STACK_MARGIN`] is left: it blocks instead, and a spare (with a fresh stack) runs
//! the task. Running out of stack is then never a process abort, whatever the depth.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::queue;
use super::schedule::{run_chain, run_inline};
use super::task::{Header, TaskRef};
use crate::runtime::{current_runtime, enter_spare, leave_spare, Shared};

/// The stack of a worker or spare thread when the builder sets none. Only what is used
/// is committed; the rest is address space.
pub(crate) const DEFAULT_STACK_SIZE: usize = 256 << 20;

/// A thread runs a task inline only while more than this much stack is left.
const STACK_MARGIN: usize = 1 << 20;

/// Rounds a waiting worker spins (yielding its core) before it blocks.
const SPIN_ROUNDS: u32 = 512;

/// How long an idle spare thread stays around to be woken again.
const SPARE_LINGER: Duration = Duration::from_millis(50);

/// How long a spare with nothing to run sleeps before it looks again.
const SPARE_NAP: Duration = Duration::from_micros(100);

/// Wait slots kept for spare threads, beyond one per worker (a spare without one still
/// runs tasks; waiters of its tasks only help less).
const SPARE_SLOTS: usize = 256;

/// How many published waits a waiting thread follows to find a task it can run.
const CHASE_STEPS: usize = 8;

thread_local! {
    /// Dagger tasks on this thread's stack.
    static TASK_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Whether `DEFERRED` holds anything (checked after every outermost task).
    static HAS_DEFERRED: Cell<bool> = const { Cell::new(false) };
    /// What to queue again when this thread leaves its outermost task.
    static DEFERRED: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// The lowest stack address down to which this thread runs tasks inline (0: never).
    static STACK_FLOOR: Cell<usize> = const { Cell::new(0) };
    /// This thread's wait slot in its runtime (index + 1; 0: none).
    static MY_SLOT: Cell<u16> = const { Cell::new(0) };
    /// On a spare thread: the id of the runtime it runs tasks for (0: none).
    static SPARE_RUNTIME: Cell<u64> = const { Cell::new(0) };
}

/// The id of the runtime whose worker or spare this thread is.
fn helping_runtime() -> Option<u64> {
    queue::local_runtime().or_else(|| Some(SPARE_RUNTIME.with(Cell::get)).filter(|&id| id != 0))
}

/// Called first on every worker and spare thread, whose stack is `stack_size` bytes;
/// `slot` is its wait slot (index + 1; 0: none).
pub(crate) fn enter_thread(stack_size: usize, slot: u16) {
    let here = stack_address();
    STACK_FLOOR.with(|floor| floor.set(here.saturating_sub(stack_size) + STACK_MARGIN));
    MY_SLOT.with(|s| s.set(slot));
}

/// This thread's wait slot (index + 1; 0: none), recorded by the tasks it runs.
#[inline]
pub(crate) fn my_slot() -> u16 {
    MY_SLOT.with(Cell::get)
}

#[inline(never)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Runs a task's body: while it runs, jobs that would run other tasks on this thread
/// hold back (see the module docs); leaving the outermost task queues them again.
pub(crate) fn in_task<R>(body: impl FnOnce() -> R) -> R {
    let depth = TASK_DEPTH.with(|d| d.replace(d.get() + 1));
    let out = body();
    TASK_DEPTH.with(|d| d.set(depth));
    if depth == 0 && HAS_DEFERRED.with(|h| h.replace(false)) {
        requeue_deferred();
    }
    out
}

#[cold]
fn requeue_deferred() {
    let deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    deferred.into_iter().for_each(|requeue| requeue());
}

/// Whether a task is on this thread's stack: then a job that would run other tasks
/// does nothing now and leaves [`defer`] to queue it again.
#[inline]
pub(crate) fn in_a_task() -> bool {
    TASK_DEPTH.with(Cell::get) != 0
}

/// Queues `requeue` to run when this thread leaves its outermost task.
pub(crate) fn defer(requeue: impl FnOnce() + 'static) {
    DEFERRED.with(|d| d.borrow_mut().push(Box::new(requeue)));
    HAS_DEFERRED.with(|h| h.set(true));
}

/// Whether this thread may run one more task on its stack.
fn stack_has_room() -> bool {
    let floor = STACK_FLOOR.with(Cell::get);
    floor != 0 && stack_address() > floor
}

/// Blocks until `header`'s task is done (see the module docs for why this cannot
/// deadlock).
pub(crate) fn wait_for(header: &Header) {
    wait(header, true);
}

/// Waits for an input of a task this thread has claimed: it runs the input if it is
/// ready, but does not claim it in turn (claiming down a chain of inputs would recurse
/// as deep as the chain is long).
pub(crate) fn wait_for_input(header: &Header) {
    wait(header, false);
}

fn wait(header: &Header, claim: bool) {
    if header.is_done() {
        return;
    }
    let Some(runtime) = helping_runtime() else {
        // Not a thread of any runtime: nothing to compensate; the workers run the task.
        park_until_done(header);
        return;
    };
    let mut spins = 0;
    let mut published = None;
    while !header.is_done() {
        if stack_has_room()
            && (run_inline(header, runtime)
                || (claim && header.run_after_inputs(runtime))
                || help_along(header, runtime))
        {
            continue;
        }
        if published.is_none() {
            published = Published::new(header);
        }
        // Time passes from here on: the next task reads the clock afresh.
        crate::observe::forget_last_end();
        if spins < SPIN_ROUNDS {
            spins += 1;
            std::thread::yield_now();
            continue;
        }
        let Some(shared) = current_runtime() else {
            park_until_done(header);
            return;
        };
        let _blocked = shared.waiting.block(&shared);
        park_until_done(header);
        return;
    }
}

/// Runs a task that the task at `header` waits for, found by following the published
/// waits of the threads that run it. Returns whether it ran one.
fn help_along(header: &Header, runtime: u64) -> bool {
    let Some(shared) = header.runtime() else {
        return false;
    };
    // SAFETY: a task's runtime is alive while the task is (the caller holds it).
    let waiting = &unsafe { shared.as_ref() }.waiting;
    // The slot tells what its thread waits for when we read it; that is what the task we
    // follow depends on only if the task was still running then (a running task stays on
    // its thread's stack, below everything that thread runs for it). Checked after the
    // read: not done now means not done then.
    let step = |current: &Header| -> Option<TaskRef> {
        let next = waiting.waited_for(current.runner())?;
        (!current.is_done()).then_some(next)
    };
    let Some(mut next) = step(header) else {
        return false;
    };
    for _ in 0..CHASE_STEPS {
        if run_inline(next.header(), runtime) {
            return true;
        }
        match step(next.header()) {
            Some(further) => next = further,
            None => return false,
        }
    }
    false
}

/// This thread's published wait: withdrawn when dropped.
struct Published<'a> {
    slot: &'a Mutex<usize>,
}

impl<'a> Published<'a> {
    fn new(header: &'a Header) -> Option<Self> {
        let slot = MY_SLOT.with(Cell::get);
        let shared = header.runtime()?;
        // SAFETY: the runtime of a task is alive while the task is (the caller holds it).
        let waiting = &unsafe { &*shared.as_ptr() }.waiting;
        let slot = waiting.slots.get(usize::from(slot).checked_sub(1)?)?;
        // Only a thread of the task's own runtime publishes there.
        // SAFETY: as above.
        if helping_runtime() != Some(unsafe { shared.as_ref() }.dynamic_run) {
            return None;
        }
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = header as *const Header as usize;
        Some(Published { slot })
    }
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        // Withdrawn under the lock before the waiter lets go of the task (see `waited_for`).
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = 0;
    }
}

fn park_until_done(header: &Header) {
    if !header.subscribe_thread(std::thread::current()) {
        return;
    }
    while !header.is_done() {
        std::thread::park();
    }
}

/// The waiting state of one runtime: its threads' wait slots and its spare threads (see
/// the module docs).
pub(crate) struct Waiting {
    /// What each worker and spare thread waits for (a task pointer, 0: nothing). Written
    /// and read under the lock, so that a reader can take a reference to the task before
    /// its waiter withdraws it and lets go.
    slots: Box<[Mutex<usize>]>,
    free_spare_slots: Mutex<Vec<u16>>,
    /// Workers and spares blocked in a wait.
    // Memory ordering: SeqCst on both counters, so that a blocking thread and a spare
    // deciding to go idle see each other's updates (no spare leaves while it is needed).
    blocked: AtomicUsize,
    /// Spares running (not idle).
    active: AtomicUsize,
    idle: Mutex<Vec<IdleSpare>>,
    stack_size: usize,
    name: String,
}

struct IdleSpare {
    thread: std::thread::Thread,
    woken: Arc<AtomicBool>,
}

/// A thread blocked in a wait: compensated by a spare until dropped.
pub(crate) struct Blocked<'a>(&'a Waiting);

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Waiting {
    pub(crate) fn new(workers: usize, stack_size: usize, name: String) -> Self {
        let count = (workers + SPARE_SLOTS).min(usize::from(u16::MAX));
        Waiting {
            slots: (0..count).map(|_| Mutex::new(0)).collect(),
            free_spare_slots: Mutex::new((workers + 1..=count).rev().map(|s| s as u16).collect()),
            blocked: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            stack_size,
            name,
        }
    }

    /// A reference to the task that the thread with wait slot `runner` waits for, if any.
    fn waited_for(&self, runner: u16) -> Option<TaskRef> {
        let slot = self.slots.get(usize::from(runner).checked_sub(1)?)?;
        let task = slot.lock().unwrap_or_else(|e| e.into_inner());
        if *task == 0 {
            return None;
        }
        // SAFETY: the waiter holds the task until it has withdrawn it, which takes this
        // lock: the task is alive while we take our reference.
        Some(unsafe { (*(*task as *const Header)).retain() })
    }

    /// The calling thread (a worker or spare of `shared`) is about to block: make sure a
    /// spare runs in its place.
    pub(crate) fn block(&self, shared: &Arc<Shared>) -> Blocked<'_> {
        let blocked = self.blocked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut active = self.active.load(Ordering::SeqCst);
        while active < blocked {
            match self.active.compare_exchange(
                active,
                active + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.wake_or_start(shared);
                    break;
                }
                Err(now) => active = now,
            }
        }
        Blocked(self)
    }

    /// One more spare runs: an idle one woken, or a new thread (counted already).
    fn wake_or_start(&self, shared: &Arc<Shared>) {
        if let Some(spare) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            spare.woken.store(true, Ordering::SeqCst);
            spare.thread.unpark();
            return;
        }
        let weak = Arc::downgrade(shared);
        let stack_size = self.stack_size;
        let started = std::thread::Builder::new()
            .name(format!("{}-spare", self.name))
            .stack_size(stack_size)
            .spawn(move || spare_main(weak, stack_size));
        if let Err(error) = started {
            // No spare: the blocked thread still wakes when its task is done, but work
            // queued behind it waits for another worker.
            self.active.fetch_sub(1, Ordering::SeqCst);
            eprintln!("dagger: could not start a spare thread for a blocked worker: {error}");
        }
    }
}

/// A spare thread: runs the runtime's queued work while it is needed, then idles for a
/// while (holding no reference to the runtime) in case it is needed again.
fn spare_main(runtime: Weak<Shared>, stack_size: usize) {
    let slot = runtime.upgrade().and_then(|shared| {
        shared
            .waiting
            .free_spare_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
    });
    enter_thread(stack_size, slot.unwrap_or(0));
    spare_loop(&runtime);
    if let (Some(slot), Some(shared)) = (slot, runtime.upgrade()) {
        shared
            .waiting
            .free_spare_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot);
    }
}

fn spare_loop(runtime: &Weak<Shared>) {
    loop {
        let Some(shared) = runtime.upgrade() else {
            return;
        };
        enter_spare(&shared);
        SPARE_RUNTIME.with(|id| id.set(shared.dynamic_run));
        run_while_needed(&shared);
        SPARE_RUNTIME.with(|id| id.set(0));
        leave_spare();
        let woken = Arc::new(AtomicBool::new(false));
        shared
            .waiting
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(IdleSpare {
                thread: std::thread::current(),
                woken: woken.clone(),
            });
        let runtime_of = Arc::downgrade(&shared);
        drop(shared);
        let deadline = Instant::now() + SPARE_LINGER;
        while !woken.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        if woken.load(Ordering::SeqCst) {
            continue;
        }
        // Leave, unless a blocking thread took this spare from the list meanwhile.
        let Some(shared) = runtime_of.upgrade() else {
            return;
        };
        let mut idle = shared
            .waiting
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let me = std::thread::current().id();
        if let Some(at) = idle.iter().position(|s| s.thread.id() == me) {
            idle.swap_remove(at);
            return;
        }
    }
}

fn run_while_needed(shared: &Arc<Shared>) {
    let waiting = &shared.waiting;
    loop {
        let active = waiting.active.load(Ordering::SeqCst);
        if active > waiting.blocked.load(Ordering::SeqCst) {
            if waiting
                .active
                .compare_exchange(active, active - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            // A thread may have blocked after we read `blocked`, and counted on us. In the
            // SeqCst order, either its increment of `blocked` comes before the reads
            // below (we see it and take our place back), or its read of `active` comes
            // after our decrement (it sees a spare missing and starts or wakes one).
            if waiting.active.load(Ordering::SeqCst) < waiting.blocked.load(Ordering::SeqCst) {
                waiting.active.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            return;
        }
        if let Some(task) = shared.queues.steal_task() {
            crate::observe::stretch(|| run_chain(task));
        } else if let Some(batch) = shared.queues.steal_batch() {
            // Not split: halves would go to rayon jobs that the blocked workers hold up.
            crate::observe::stretch(|| batch.into_iter().for_each(run_chain));
        } else {
            std::thread::park_timeout(SPARE_NAP);
        }
    }
}
