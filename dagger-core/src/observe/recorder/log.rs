//! One thread's log of what it ran: compact entries in fixed-size chunks that never
//! move. Only the thread that owns the log writes it, without a lock: each entry is
//! published by a release store of its chunk's length. Readers take the log's lock, which
//! the writer takes only to start a chunk or to register a graph, a spawn site, a task
//! with rare fields or a run's error.
//!
//! Entries are 64-bit words; the top 4 bits of an entry's first word say its kind:
//! - `NODE`, 2 words: node number and duration in clock ticks; start tick. A node of the
//!   graph of the current context. 1 word when the flag bit says that it started when the
//!   task of the entry before it ended (a chain of tasks on one thread).
//! - `SPAWNED`, 3 words: spawn site and duration; start tick; task id. No start word
//!   with the flag bit (chained, as for nodes); no id word with the next-id bit, when the
//!   task's id is one more than the last spawned task's in the log. A chain of tasks on
//!   one thread takes 1 word each.
//! - `CONTEXT`, 2 words: graph and worker; run. What the task entries after it belong to.
//! - `RARE`, 1 word: a task kept whole (it failed, used a device, or ran very long).
//! - `RUN_START`, 4 words: nested (the flag bit), graph and threads; run; tasks; start
//!   tick.
//! - `RUN_END`, 2 words: its error, if any; run.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::super::{next_ids, RunInfo, Source, TaskEnd, Timestamp, Worker};
use super::chunk::Chunk;
use crate::graph::Graph;
use crate::spawn::TaskInfo;

const KIND_SHIFT: u32 = 60;
const NODE: u64 = 1;
const SPAWNED: u64 = 2;
const CONTEXT: u64 = 3;
const RARE: u64 = 4;
const RUN_START: u64 = 5;
const RUN_END: u64 = 6;
/// A node, spawn site or graph number sits in bits 32 to 57; a duration, worker or
/// thread count in bits 0 to 31.
const FIELD_SHIFT: u32 = 32;
const FIELD_MAX: u64 = (1 << 26) - 1;
const LOW: u64 = u32::MAX as u64;
/// Says "nested" in `RUN_START` entries, "chained" in task entries.
const FLAG_BIT: u64 = 1 << 59;
/// Says "the id after the last one" in `SPAWNED` entries.
const NEXT_ID_BIT: u64 = 1 << 58;
const INDEX_MASK: u64 = (1 << KIND_SHIFT) - 1;
const FIELD_MASK: u64 = FIELD_MAX << FIELD_SHIFT;
/// The worker word of the caller thread.
const CALLER: u64 = LOW;
/// Spawned-task ids a log takes from the process-wide counter at a time.
const ID_BLOCK: u64 = 4096;
/// Spawn sites a writer finds without a hash lookup.
const SITE_CACHE: usize = 64;

/// What the task entries after a `CONTEXT` entry belong to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context {
    pub(crate) run: u64,
    pub(crate) graph: Option<&'static Graph>,
    pub(crate) worker: Worker,
}

impl Context {
    /// What identifies the context in a writer: run, graph address (0 for none), worker
    /// word. Worked out once per chain of tasks rather than per task.
    #[inline]
    pub(crate) fn key(&self) -> ContextKey {
        let worker = match self.worker {
            Worker::Thread(n) => (n as u64).min(CALLER - 1),
            Worker::Caller => CALLER,
        };
        let graph = self.graph.map_or(0, |g| std::ptr::from_ref(g) as u64);
        ContextKey([self.run, graph, worker])
    }
}

/// See [`Context::key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContextKey([u64; 3]);

/// A spawned task that finished without an error or device notes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpawnedTask {
    pub(crate) info: TaskInfo,
    /// Its id; `None` to take the next one of the log's own (see `Writing::own_id`).
    pub(crate) node: Option<usize>,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

/// A task kept whole.
pub(super) struct RareTask {
    pub(super) node: usize,
    pub(super) source: Source,
    pub(super) start: Timestamp,
    pub(super) end: Timestamp,
    pub(super) device: Option<(String, u32)>,
    pub(super) bytes_moved: u64,
    pub(super) error: Option<String>,
}

impl RareTask {
    /// A task without an error or device notes that does not fit an entry.
    fn plain(node: usize, source: Source, start: Timestamp, end: Timestamp) -> RareTask {
        RareTask {
            node,
            source,
            start,
            end,
            device: None,
            bytes_moved: 0,
            error: None,
        }
    }
}

/// What does not fit in entries.
enum Rare {
    Task(RareTask),
    RunError(String),
}

/// A task as read back from a log.
pub(super) enum TaskEntry<'a> {
    /// Node `node` of its context's graph.
    Node {
        node: usize,
        start: Timestamp,
        end: Timestamp,
    },
    /// A spawned task.
    Spawned {
        info: TaskInfo,
        node: usize,
        start: Timestamp,
        end: Timestamp,
    },
    /// A task kept whole.
    Rare(&'a RareTask),
}

/// A run's start or end, as read back from a log.
pub(super) enum RunEntry<'a> {
    Start {
        id: u64,
        graph: Option<&'static Graph>,
        tasks: usize,
        threads: usize,
        nested: bool,
        start: Timestamp,
    },
    End {
        id: u64,
        error: Option<&'a str>,
    },
}

/// What readers see, under the lock.
#[derive(Default)]
struct Shared {
    chunks: Vec<Arc<Chunk>>,
    /// Words at the start of the first chunk that `clear` dropped.
    skip: usize,
    /// Where reading starts: what the dropped entries left in effect.
    first: ReadState,
    /// Graph `n` is `graphs[n - 1]`; 0 is none.
    graphs: Vec<&'static Graph>,
    sites: Vec<TaskInfo>,
    /// What does not fit in entries; the first is number `rare_base`.
    rare: Vec<Rare>,
    rare_base: u64,
}

impl Shared {
    fn graph(&self, number: u64) -> Option<&'static Graph> {
        let index = number.checked_sub(1)?;
        self.graphs.get(index as usize).copied()
    }

    fn rare(&self, number: u64) -> Option<&Rare> {
        // A task recorded while `clear` ran may have lost its record.
        let index = number.checked_sub(self.rare_base)?;
        self.rare.get(index as usize)
    }

    /// Calls `tasks` with each kept task and the context it belongs to, and `runs` with
    /// each run start and end; returns what is in effect after the last entry.
    fn read(
        &self,
        mut tasks: impl FnMut(&Context, TaskEntry<'_>),
        mut runs: impl FnMut(RunEntry<'_>),
    ) -> ReadState {
        let ReadState {
            mut context,
            mut last_end,
            mut last_id,
        } = self.first;
        for (i, chunk) in self.chunks.iter().enumerate() {
            // Memory ordering: Acquire pairs with the writer's Release: the words below
            // `len` are written.
            let len = chunk.len.load(Ordering::Acquire);
            let words = chunk.words();
            let word = |k: usize| words[k].load(Ordering::Relaxed);
            let mut at = if i == 0 { self.skip } else { 0 };
            while at < len {
                let head = word(at);
                let field = (head & FIELD_MASK) >> FIELD_SHIFT;
                let low = head & LOW;
                let chained = head & FLAG_BIT != 0;
                // A task entry's start and end; `at` moves past its start word, if any.
                let mut span = |at: &mut usize| {
                    let start = if chained {
                        last_end
                    } else {
                        *at += 1;
                        word(*at - 1)
                    };
                    last_end = start + low;
                    (
                        Timestamp::from_ticks(start),
                        Timestamp::from_ticks(last_end),
                    )
                };
                match head >> KIND_SHIFT {
                    NODE => {
                        at += 1;
                        let (start, end) = span(&mut at);
                        if let Some(context) = &context {
                            let node = field as usize;
                            tasks(context, TaskEntry::Node { node, start, end });
                        }
                    }
                    SPAWNED => {
                        at += 1;
                        let (start, end) = span(&mut at);
                        let site = self.sites.get(field as usize);
                        last_id = match head & NEXT_ID_BIT {
                            0 => {
                                at += 1;
                                word(at - 1)
                            }
                            _ => last_id.wrapping_add(1),
                        };
                        if let (Some(context), Some(&info)) = (&context, site) {
                            let entry = TaskEntry::Spawned {
                                info,
                                node: last_id as usize,
                                start,
                                end,
                            };
                            tasks(context, entry);
                        }
                    }
                    CONTEXT => {
                        context = Some(Context {
                            run: word(at + 1),
                            graph: self.graph(field),
                            worker: match low {
                                CALLER => Worker::Caller,
                                n => Worker::Thread(n as usize),
                            },
                        });
                        at += 2;
                    }
                    RARE => {
                        if let (Some(context), Some(Rare::Task(task))) =
                            (&context, self.rare(head & INDEX_MASK))
                        {
                            tasks(context, TaskEntry::Rare(task));
                        }
                        at += 1;
                    }
                    RUN_START => {
                        runs(RunEntry::Start {
                            id: word(at + 1),
                            graph: self.graph(field),
                            tasks: word(at + 2) as usize,
                            threads: low as usize,
                            nested: head & FLAG_BIT != 0,
                            start: Timestamp::from_ticks(word(at + 3)),
                        });
                        at += 4;
                    }
                    RUN_END => {
                        let error = match head & INDEX_MASK {
                            0 => None,
                            n => match self.rare(n - 1) {
                                Some(Rare::RunError(error)) => Some(error.as_str()),
                                _ => None,
                            },
                        };
                        runs(RunEntry::End {
                            id: word(at + 1),
                            error,
                        });
                        at += 2;
                    }
                    kind => unreachable!("dagger: unknown trace entry kind {kind}"),
                }
            }
        }
        ReadState {
            context,
            last_end,
            last_id,
        }
    }
}

/// What earlier entries leave in effect for the ones after them.
#[derive(Clone, Copy, Default)]
struct ReadState {
    context: Option<Context>,
    /// When the task of the last task entry ended: a chained entry's start.
    last_end: u64,
    /// The id of the last spawned task.
    last_id: u64,
}

/// The owner's side: where it writes, and what it has registered.
struct Writer {
    chunk: Option<Arc<Chunk>>,
    /// `chunk`'s words, their number, and its published length, while there is a chunk.
    words: *const AtomicU64,
    capacity: usize,
    published: *const AtomicUsize,
    /// Words written to `chunk`.
    len: usize,
    /// The context of the task entries: run, graph address (0 for none), worker word;
    /// `NO_CONTEXT` before the first.
    context: [u64; 3],
    /// When the task of the last task entry ended.
    last_end: u64,
    /// The id of the last spawned task.
    last_id: u64,
    /// The next id of the log's own block, and the block's end.
    ids: (u64, u64),
    /// Whether the context's graph has a number (its nodes fit in `NODE` entries).
    graph_numbered: bool,
    /// The last graph registered or found, by address, and its number.
    last_graph: (usize, u64),
    graphs: HashMap<usize, u64>,
    /// (name, location, site) by a hash of the first two; (0, 0, _) is empty (no
    /// function or location is at address 0).
    site_cache: [(usize, usize, u64); SITE_CACHE],
    sites: HashMap<(usize, usize), u64>,
}

/// `Writer::context` before the first context entry (no worker word is this).
const NO_CONTEXT: [u64; 3] = [0, 0, u64::MAX];

/// One thread's log.
pub(super) struct Log {
    writer: UnsafeCell<Writer>,
    shared: Mutex<Shared>,
}

// SAFETY: `writer` is used only through `Writing`, of which there is at most one per log
// at a time (the contract of `Log::writing`); everything else is behind the mutex or
// atomic. The writer's pointers point into the chunk it holds.
unsafe impl Sync for Log {}
// SAFETY: as for `Sync`; the pointers are into memory the log owns (through `chunk`).
unsafe impl Send for Log {}

impl Default for Log {
    fn default() -> Self {
        Log {
            writer: UnsafeCell::new(Writer {
                chunk: None,
                words: std::ptr::null(),
                capacity: 0,
                published: std::ptr::null(),
                len: 0,
                context: NO_CONTEXT,
                graph_numbered: false,
                last_end: 0,
                last_id: 0,
                ids: (0, 0),
                last_graph: (0, 0),
                graphs: HashMap::new(),
                site_cache: [(0, 0, 0); SITE_CACHE],
                sites: HashMap::new(),
            }),
            shared: Mutex::default(),
        }
    }
}

/// The right to append to a log.
pub(super) struct Writing<'a> {
    log: &'a Log,
    writer: &'a mut Writer,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The right to append.
    ///
    /// # Safety
    /// No other `Writing` of this log exists until this one is dropped.
    #[inline]
    pub(super) unsafe fn writing(&self) -> Writing<'_> {
        Writing {
            log: self,
            // SAFETY: the caller's contract: this is the only access to the writer now.
            writer: unsafe { &mut *self.writer.get() },
        }
    }

    /// Calls `tasks` with each recorded task and the context it belongs to, and `runs`
    /// with each run start and end.
    pub(super) fn read(
        &self,
        tasks: impl FnMut(&Context, TaskEntry<'_>),
        runs: impl FnMut(RunEntry<'_>),
    ) {
        self.lock().read(tasks, runs);
    }

    /// How many tasks are recorded.
    pub(super) fn count(&self) -> usize {
        let mut count = 0;
        self.read(|_, _| count += 1, |_| {});
        count
    }

    /// Forgets everything recorded so far. The writer keeps writing to its chunk, so the
    /// last chunk is kept and its old entries skipped.
    pub(super) fn clear(&self) {
        let mut shared = self.lock();
        let shared = &mut *shared;
        let first = shared.read(|_, _| {}, |_| {});
        let Some(last) = shared.chunks.pop() else {
            return;
        };
        shared.skip = last.len.load(Ordering::Acquire);
        shared.chunks = vec![last];
        shared.first = first;
        shared.rare_base += shared.rare.len() as u64;
        shared.rare.clear();
    }
}

impl Writing<'_> {
    /// Appends a finished task.
    #[inline(always)]
    pub(super) fn task(&mut self, task: &TaskEnd<'_>) {
        self.enter(Context {
            run: task.run,
            graph: task.graph(),
            worker: task.worker,
        });
        let plain = task.error.is_none() && task.device.is_none() && task.bytes_moved == 0;
        if plain {
            let fits = match task.source {
                Source::Graph(_) => self.node(task.node, task.start, task.end),
                Source::Spawned(info) => self.spawned(info, task.node, task.start, task.end),
            };
            if fits {
                return;
            }
        }
        self.rare_task(RareTask {
            node: task.node,
            source: task.source,
            start: task.start,
            end: task.end,
            device: task
                .device
                .map(|(device, stream)| (device.to_owned(), stream)),
            bytes_moved: task.bytes_moved,
            error: task.error.map(|e| e.to_string()),
        });
    }

    /// Appends a spawned task of `context` that finished without an error or device
    /// notes.
    #[inline(always)]
    pub(super) fn spawned_task(&mut self, context: Context, task: SpawnedTask) {
        self.enter(context);
        let SpawnedTask {
            info,
            node,
            start,
            end,
        } = task;
        let node = node.unwrap_or_else(|| self.own_id());
        if !self.spawned(info, node, start, end) {
            self.rare_task(RareTask::plain(node, Source::Spawned(info), start, end));
        }
    }

    /// Appends node `node` of `context`'s graph (whose key is `key`), which finished
    /// without an error or device notes.
    #[inline(always)]
    pub(super) fn node_task(
        &mut self,
        context: &Context,
        key: ContextKey,
        node: usize,
        start: Timestamp,
        end: Timestamp,
    ) {
        let Some(graph) = context.graph else {
            unreachable!("dagger: nodes are recorded with their graph")
        };
        self.enter_keyed(context, key);
        if !self.node(node, start, end) {
            self.rare_task(RareTask::plain(node, Source::Graph(graph), start, end));
        }
    }

    /// Makes `context` the one of the task entries that follow.
    #[inline(always)]
    fn enter(&mut self, context: Context) {
        self.enter_keyed(&context, context.key());
    }

    /// `enter` with the context's key worked out.
    #[inline(always)]
    fn enter_keyed(&mut self, context: &Context, ContextKey(key): ContextKey) {
        // Compared word by word: a whole-array compare loads the key in one piece, just
        // after it was stored in three, which stalls.
        let current = &self.writer.context;
        if current[0] != key[0] || current[1] != key[1] || current[2] != key[2] {
            self.new_context(context.run, context.graph, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn new_context(&mut self, run: u64, graph: Option<&'static Graph>, key: [u64; 3]) {
        let number = self.graph_number(graph);
        self.push([CONTEXT << KIND_SHIFT | number << FIELD_SHIFT | key[2], run]);
        self.writer.context = key;
        self.writer.graph_numbered = number != 0;
    }

    /// The first word of a task entry, and whether the entry is chained; `None` if the
    /// duration does not fit.
    #[inline(always)]
    fn task_head(&self, kind: u64, field: u64, start: u64, end: u64) -> Option<(u64, bool)> {
        let duration = end.saturating_sub(start);
        if duration > LOW || field > FIELD_MAX {
            return None;
        }
        let chained = start == self.writer.last_end;
        let flag = if chained { FLAG_BIT } else { 0 };
        Some((
            kind << KIND_SHIFT | flag | field << FIELD_SHIFT | duration,
            chained,
        ))
    }

    /// Appends node `node` of the context's graph; false if it does not fit an entry.
    #[inline(always)]
    fn node(&mut self, node: usize, start: Timestamp, end: Timestamp) -> bool {
        let (start, end) = (start.ticks(), end.ticks());
        let head = self.task_head(NODE, node as u64, start, end);
        let Some((head, chained)) = head.filter(|_| self.writer.graph_numbered) else {
            return false;
        };
        self.writer.last_end = end;
        match chained {
            true => self.push([head]),
            false => self.push([head, start]),
        }
        true
    }

    /// Appends a spawned task; false if it does not fit an entry.
    #[inline(always)]
    fn spawned(&mut self, info: TaskInfo, node: usize, start: Timestamp, end: Timestamp) -> bool {
        let Some(site) = self.site(info) else {
            return false;
        };
        let (start, end) = (start.ticks(), end.ticks());
        let Some((head, chained)) = self.task_head(SPAWNED, site, start, end) else {
            return false;
        };
        self.writer.last_end = end;
        let id = node as u64;
        let next = id == self.writer.last_id.wrapping_add(1);
        self.writer.last_id = id;
        match (chained, next) {
            (true, true) => self.push([head | NEXT_ID_BIT]),
            (true, false) => self.push([head, id]),
            (false, true) => self.push([head | NEXT_ID_BIT, start]),
            (false, false) => self.push([head, start, id]),
        }
        true
    }

    /// A spawned-task id unique in the process, from this log's own block. A task that
    /// only this log sees (a recorder alone) takes its id when it is written: the one
    /// after the last, which its entry leaves out.
    #[inline(always)]
    fn own_id(&mut self) -> usize {
        let (mut next, mut end) = self.writer.ids;
        if next == end {
            next = next_ids(ID_BLOCK);
            end = next + ID_BLOCK;
        }
        self.writer.ids = (next + 1, end);
        next as usize
    }

    #[cold]
    fn rare_task(&mut self, task: RareTask) {
        let index = self.register_rare(Rare::Task(task));
        self.push([RARE << KIND_SHIFT | index]);
    }

    /// Appends a run's start.
    pub(super) fn run_start(&mut self, run: &RunInfo) {
        let graph = self.graph_number(run.graph);
        let nested = if run.nested { FLAG_BIT } else { 0 };
        let threads = (run.threads as u64).min(LOW);
        self.push([
            RUN_START << KIND_SHIFT | nested | graph << FIELD_SHIFT | threads,
            run.id,
            run.tasks as u64,
            run.start.ticks(),
        ]);
    }

    /// Appends a run's end, with its error if it failed.
    pub(super) fn run_end(&mut self, run: &RunInfo, error: Option<String>) {
        let error = match error {
            Some(error) => self.register_rare(Rare::RunError(error)) + 1,
            None => 0,
        };
        self.push([RUN_END << KIND_SHIFT | error, run.id]);
    }

    #[cold]
    fn register_rare(&mut self, rare: Rare) -> u64 {
        let mut shared = self.log.lock();
        shared.rare.push(rare);
        shared.rare_base + shared.rare.len() as u64 - 1
    }

    /// The number of `graph` in this log (0 for none), registering it the first time.
    fn graph_number(&mut self, graph: Option<&'static Graph>) -> u64 {
        let Some(graph) = graph else {
            return 0;
        };
        let key = std::ptr::from_ref(graph) as usize;
        if self.writer.last_graph.0 == key {
            return self.writer.last_graph.1;
        }
        let log = self.log;
        let number = *self.writer.graphs.entry(key).or_insert_with(|| {
            let mut shared = log.lock();
            shared.graphs.push(graph);
            shared.graphs.len() as u64
        });
        // Past the last number an entry holds, the graph is not named in this log.
        let number = if number > FIELD_MAX { 0 } else { number };
        self.writer.last_graph = (key, number);
        number
    }

    /// The number of `info`'s spawn site, registering it the first time; `None` past
    /// the last number an entry holds.
    #[inline(always)]
    fn site(&mut self, info: TaskInfo) -> Option<u64> {
        let key = (
            info.name as usize,
            std::ptr::from_ref(info.spawned_at) as usize,
        );
        let slot = ((key.1 >> 3) ^ (key.0 >> 4)) % SITE_CACHE;
        let (name, at, site) = self.writer.site_cache[slot];
        if (name, at) == key {
            return Some(site);
        }
        self.new_site(info, key, slot)
    }

    /// `site` for a site not in the cache.
    #[cold]
    #[inline(never)]
    fn new_site(&mut self, info: TaskInfo, key: (usize, usize), slot: usize) -> Option<u64> {
        let log = self.log;
        let site = *self.writer.sites.entry(key).or_insert_with(|| {
            let mut shared = log.lock();
            shared.sites.push(info);
            shared.sites.len() as u64 - 1
        });
        if site > FIELD_MAX {
            return None;
        }
        self.writer.site_cache[slot] = (key.0, key.1, site);
        Some(site)
    }

    /// Appends one entry and publishes it.
    #[inline(always)]
    fn push<const N: usize>(&mut self, words: [u64; N]) {
        if self.writer.len + N > self.writer.capacity {
            self.start_chunk();
        }
        let writer = &mut *self.writer;
        let at = writer.len;
        for (i, word) in words.into_iter().enumerate() {
            // SAFETY: `at + N` is within the chunk, which `writer.chunk` keeps alive, and
            // `words` points to its words.
            unsafe { (*writer.words.add(at + i)).store(word, Ordering::Relaxed) };
        }
        writer.len = at + N;
        // Memory ordering: Release publishes the words to readers (see `Shared::read`).
        // SAFETY: `published` points into the chunk, as above.
        unsafe { (*writer.published).store(at + N, Ordering::Release) };
        prefetch_for_writing(writer.words.wrapping_add(at + PREFETCH_AHEAD));
    }

    #[cold]
    #[inline(never)]
    fn start_chunk(&mut self) {
        let chunk = Arc::new(Chunk::new(self.writer.chunk.is_none()));
        self.log.lock().chunks.push(chunk.clone());
        self.writer.len = 0;
        self.writer.words = chunk.words().as_ptr();
        self.writer.capacity = chunk.words().len();
        self.writer.published = &chunk.len;
        self.writer.chunk = Some(chunk);
    }
}

/// How far ahead of the writer its next words are fetched, in words (8 cache lines).
const PREFETCH_AHEAD: usize = 64;

/// Brings the cache line at `word` in for writing. A log line that is not in the cache
/// when it is written waits in the store buffer, and the next atomic operation of the
/// scheduler waits for it: about 15 ns per task in a nested spawn tree, without this.
#[inline(always)]
fn prefetch_for_writing(word: *const AtomicU64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads or writes nothing and never faults, even
    // past the end of the chunk.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        _mm_prefetch::<_MM_HINT_ET0>(word.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = word;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn end(node: usize, start: u64, ticks: u64, source: Source, run: u64) -> TaskEnd<'static> {
        TaskEnd {
            run,
            node,
            worker: Worker::Thread(3),
            start: Timestamp::from_ticks(start),
            end: Timestamp::from_ticks(start + ticks),
            device: None,
            bytes_moved: 0,
            error: None,
            source,
        }
    }

    fn spawned() -> Source {
        Source::Spawned(crate::spawn::info::<fn()>(std::panic::Location::caller()))
    }

    /// (run, node, start, end, rare) of every entry.
    fn entries(log: &Log) -> Vec<(u64, usize, u64, u64, bool)> {
        let mut seen = Vec::new();
        log.read(
            |context, entry| {
                seen.push(match entry {
                    TaskEntry::Node { node, start, end } => {
                        (context.run, node, start.ticks(), end.ticks(), false)
                    }
                    TaskEntry::Spawned {
                        node, start, end, ..
                    } => (context.run, node, start.ticks(), end.ticks(), false),
                    TaskEntry::Rare(rare) => (
                        context.run,
                        rare.node,
                        rare.start.ticks(),
                        rare.end.ticks(),
                        true,
                    ),
                })
            },
            |_| {},
        );
        seen
    }

    #[test]
    fn entries_read_back_as_written_across_chunks_and_contexts() {
        let log = Log::default();
        let mut expected = Vec::new();
        let error = Error::Cancelled {
            task: "t",
            location: crate::task::Location::__new("f.rs", 1, 1),
        };
        // Most tasks start when the one before ended (chained entries), some later.
        let mut t = 1;
        for i in 0..10_000u64 {
            let run = i / 1000;
            let start = if i % 5 == 0 { t + 3 } else { t };
            let mut task = match i % 3 {
                0 => end(i as usize, start, 5, spawned(), run),
                1 => end((i % 7) as usize, start, 5, Source::Graph(&GRAPH), run),
                _ => end(i as usize, start, 5, Source::Spawned(spawned_info()), run),
            };
            let rare = i % 101 == 0 || i == 77;
            if i % 101 == 0 {
                task.error = Some(&error);
            }
            if i == 77 {
                task.end = Timestamp::from_ticks(task.start.ticks() + (1 << 40));
            }
            // SAFETY: one writer.
            unsafe { log.writing() }.task(&task);
            t = task.end.ticks();
            expected.push((run, task.node, task.start.ticks(), task.end.ticks(), rare));
        }
        assert_eq!(entries(&log), expected);
        assert_eq!(log.count(), 10_000);
    }

    static NODE: crate::graph::Node = crate::graph::Node::__new(
        crate::graph::NodeKind::Glue,
        None,
        &[],
        crate::task::Location::__new("f.rs", 1, 1),
        "x",
    );
    static GRAPH: Graph = Graph::__new(
        &[NODE, NODE, NODE, NODE, NODE, NODE, NODE],
        &[],
        crate::graph::Schedule::__new(&[0; 7], &[0; 8], &[], &[0, 1, 2, 3, 4, 5, 6]),
    );

    fn spawned_info() -> TaskInfo {
        crate::spawn::info::<fn(u8)>(std::panic::Location::caller())
    }

    /// The words a log holds since its last `clear`.
    fn words(log: &Log) -> usize {
        let shared = log.lock();
        let written: usize = shared
            .chunks
            .iter()
            .map(|c| c.len.load(Ordering::Acquire))
            .sum();
        written - shared.skip
    }

    #[test]
    fn a_chain_of_spawned_tasks_with_consecutive_ids_takes_one_word_each() {
        let log = Log::default();
        let mut expected = Vec::new();
        let mut write = |node: usize, start: u64| {
            // SAFETY: one writer.
            unsafe { log.writing() }.task(&end(node, start, 2, spawned(), 9));
            expected.push((9, node, start, start + 2, false));
        };
        // The first entry of a context is whole (context 2 words, task 3); then one word
        // each, until an id is out of order (2 words) or a start is not chained (2).
        write(100, 10);
        (101..110).for_each(|node| write(node, 12 + 2 * (node as u64 - 101)));
        write(500, 30);
        write(501, 40);
        assert_eq!(words(&log), 2 + 3 + 9 + 2 + 2);
        assert_eq!(entries(&log), expected);
        // After a clear, the reader still knows the last id and end.
        log.clear();
        // SAFETY: one writer.
        unsafe { log.writing() }.task(&end(502, 42, 2, spawned(), 9));
        assert_eq!(words(&log), 1);
        assert_eq!(entries(&log), [(9, 502, 42, 44, false)]);
    }

    #[test]
    fn tasks_the_log_numbers_get_unique_ids_and_take_one_word_each() {
        let log = Log::default();
        let info = spawned_info();
        let context = Context {
            run: 4,
            graph: None,
            worker: Worker::Thread(1),
        };
        let tasks = 2 * ID_BLOCK as usize + 10;
        for i in 0..tasks as u64 {
            let task = SpawnedTask {
                info,
                node: None,
                start: Timestamp::from_ticks(10 + i),
                end: Timestamp::from_ticks(11 + i),
            };
            // SAFETY: one writer.
            unsafe { log.writing() }.spawned_task(context, task);
        }
        let seen = entries(&log);
        let ids: std::collections::HashSet<usize> = seen.iter().map(|e| e.1).collect();
        assert_eq!(ids.len(), tasks, "unique ids");
        assert!(seen.iter().enumerate().all(|(i, e)| e.2 == 10 + i as u64));
        // Context (2 words), the first task (3), then one word each but for the first
        // task of each new block of ids (2; other threads may take blocks in between).
        let words = words(&log);
        assert!(words <= 2 + 3 + (tasks - 1) + 2, "{words} words");
    }

    #[test]
    fn clear_forgets_what_was_recorded_and_keeps_what_comes_after() {
        let log = Log::default();
        for i in 0..9000u64 {
            // SAFETY: one writer.
            unsafe { log.writing() }.task(&end(1, i, 1, spawned(), 5));
        }
        log.clear();
        assert_eq!(log.count(), 0);
        // Same context as before the clear (no new context entry is written), and
        // chained to the last task before it.
        // SAFETY: one writer.
        unsafe { log.writing() }.task(&end(7, 9000, 1, spawned(), 5));
        {
            // SAFETY: one writer.
            let mut writing = unsafe { log.writing() };
            writing.task(&end(2, 100, 1, spawned(), 5));
            writing.task(&end(3, 200, 1, spawned(), 6));
        }
        assert_eq!(
            entries(&log),
            [
                (5, 7, 9000, 9001, false),
                (5, 2, 100, 101, false),
                (6, 3, 200, 201, false)
            ]
        );
        assert_eq!(log.lock().chunks.len(), 1);
    }
}
