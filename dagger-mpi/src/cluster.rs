//! The cluster handle: this rank, the number of ranks, the communication thread, and the
//! program order: every rank numbers its distributed operations and transfers the same
//! way, which is how each rank knows, without asking, who sends what to whom.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;

use dagger_core::{Error, Handle};

use crate::comm::{Comm, Command, Port, Received};
use crate::transfer::{type_tag, Transfer};
use crate::transport::{Bulk, Outgoing};
use crate::wire;

/// The ranks of one SPMD program, seen from one of them. Cloning is cheap. Every rank
/// must issue the same distributed operations in the same order, from one thread.
///
/// Call [`finish`](Cluster::finish) at the end of the program on every rank. Without
/// it, the last handle dropped on the thread that issues the distributed operations
/// finishes (every message sent and received; under MPI every rank met and MPI
/// finalized); dropped on another thread, that runs on a thread of its own. A rank
/// whose issuing thread panics while dropping its last handle ends the whole program
/// (`MPI_Abort`; ranks as threads fail every operation), so that no other rank waits
/// for it forever.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    size: usize,
    comm: Mutex<Option<Comm>>,
    order: Mutex<Order>,
    link: Arc<Link>,
}

/// What the tasks that send and receive need: they hold this, never a `Cluster`, so the
/// last `Cluster` is dropped by the program, not on a worker (where finishing would
/// block it).
pub(crate) struct Link {
    rank: usize,
    port: Option<Port>,
    traffic: [AtomicU64; 4],
    /// Values handed to tasks to send that are not posted yet.
    unposted: AtomicU64,
    /// Region tasks that failed on this rank, reported by `finish`.
    failures: Mutex<Vec<String>>,
    /// This rank's region tasks that may still run (settled when they end): `finish`
    /// waits for them, so that it reports every failure.
    region_tasks: Mutex<Vec<Handle<()>>>,
}

impl Link {
    /// A region task failed here: `finish` reports it.
    pub(crate) fn note_failure(&self, failure: String) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(failure);
    }

    /// Keeps `settled` until `finish`; forgets those already settled now and then.
    pub(crate) fn track_region_task(&self, settled: Handle<()>) {
        let mut tasks = self.region_tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|task| !task.is_ready());
        }
        tasks.push(settled);
    }

    /// Waits for the tasks that send values (they run once their value is computed).
    fn wait_until_posted(&self) {
        while self.unposted.load(Ordering::Acquire) > 0 {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }

    fn wait_for_region_tasks(&self) {
        let tasks =
            std::mem::take(&mut *self.region_tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.wait();
        }
    }

    pub(crate) fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn count(&self, first: usize, bytes: usize) {
        self.traffic[first].fetch_add(1, Ordering::Relaxed);
        self.traffic[first + 1].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn command(&self, command: Command) {
        let unsent = match &self.port {
            Some(port) => port.send(command),
            None => Err(command),
        };
        // The communication thread has ended (`finish`, or the program was ended):
        // distributed operations are errors then, so only late sends and receives of
        // values whose program has moved on get here.
        match unsent {
            Ok(()) => {}
            Err(Command::Expect { promise, id, .. }) => {
                promise.complete_on_worker(Err(Error::InvalidUse(format!(
                    "transfer {id}: this rank's communication has ended (finished or aborted)"
                ))))
            }
            Err(_) => eprintln!(
                "dagger-mpi, rank {}: a message after the communication ended was dropped",
                self.rank
            ),
        }
    }
}

/// What this rank has sent and received so far: values, and their bytes (metadata and
/// bulk; the fixed 33-byte head of each message is not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    /// Values sent.
    pub sent: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Values received.
    pub received: u64,
    /// Bytes received.
    pub received_bytes: u64,
}

/// The program order of this rank.
struct Order {
    /// The thread that issues distributed operations (the first that did).
    thread: Option<ThreadId>,
    next_transfer: u64,
    operations: u64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

static CLUSTER: Mutex<Option<Weak<Inner>>> = Mutex::new(None);

/// Starts this rank (idempotent: a second call returns the same cluster while a handle
/// to it is alive). Under `mpirun` with the `mpi` feature, MPI is initialized on
/// dagger's communication thread; otherwise the program is one rank.
///
/// ```
/// let cluster = dagger_mpi::init()?;
/// assert!(cluster.rank() < cluster.size());
/// # Ok::<(), dagger_core::Error>(())
/// ```
pub fn init() -> Result<Cluster, Error> {
    let mut global = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(weak) = global.as_ref() {
        match weak.upgrade() {
            Some(inner) => return Ok(Cluster { inner }),
            None if cfg!(feature = "mpi") => {
                return Err(Error::InvalidUse(
                    "MPI was finalized when the last Cluster handle was dropped, and cannot \
                     start again: keep one Cluster for the whole program"
                        .to_owned(),
                ))
            }
            None => {}
        }
    }
    let cluster = start()?;
    *global = Some(Arc::downgrade(&cluster.inner));
    Ok(cluster)
}

#[cfg(feature = "mpi")]
fn start() -> Result<Cluster, Error> {
    let (comm, rank, size) = Comm::start(crate::transport::mpi::MpiTransport::init)
        .map_err(|why| Error::Config(format!("MPI could not start: {why}")))?;
    Ok(Cluster::with(rank, size, Some(comm)))
}

#[cfg(not(feature = "mpi"))]
fn start() -> Result<Cluster, Error> {
    // Started by mpirun (Open MPI, MPICH / Hydra, Slurm's PMI) with several ranks, but
    // built without MPI: every process would think it is the only rank.
    for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"] {
        if let Some(size) = std::env::var(variable)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            if size > 1 {
                return Err(Error::Config(format!(
                    "this program was started with {size} ranks ({variable}) but built without \
                     dagger's `mpi` feature: enable it to run on MPI"
                )));
            }
        }
    }
    Ok(Cluster::with(0, 1, None))
}

/// `size` ranks as threads of this process, joined by in-memory queues: for trying and
/// testing SPMD code without `mpirun`. Give each cluster to its own thread, and run the
/// same program on each.
///
/// ```
/// let ranks = dagger_mpi::local_ranks(3);
/// let sums: Vec<u64> = std::thread::scope(|s| {
///     let running: Vec<_> = ranks
///         .into_iter()
///         .map(|cluster| s.spawn(move || {
///             let rank = cluster.rank() as u64;
///             let mine = dagger_core::spawn(move || rank + 1);
///             cluster.all_reduce(&mine, |a: &u64, b: &u64| a + b)?.fetch()
///         }))
///         .collect();
///     running.into_iter().map(|r| r.join().unwrap().unwrap()).collect()
/// });
/// assert_eq!(sums, vec![6, 6, 6]);
/// ```
pub fn local_ranks(size: usize) -> Vec<Cluster> {
    crate::transport::threads::network(size.max(1))
        .into_iter()
        .map(|transport| {
            let (comm, rank, size) =
                Comm::start(move || Ok(transport)).expect("a thread transport starts");
            Cluster::with(rank, size, Some(comm))
        })
        .collect()
}

impl Cluster {
    fn with(rank: usize, size: usize, comm: Option<Comm>) -> Self {
        Cluster {
            inner: Arc::new(Inner {
                size,
                link: Arc::new(Link {
                    rank,
                    port: comm.as_ref().map(|comm| comm.port().clone()),
                    traffic: Default::default(),
                    unposted: AtomicU64::new(0),
                    failures: Mutex::new(Vec::new()),
                    region_tasks: Mutex::new(Vec::new()),
                }),
                comm: Mutex::new(comm),
                order: Mutex::new(Order {
                    thread: None,
                    next_transfer: 0,
                    operations: 0,
                }),
            }),
        }
    }

    /// This rank, from 0.
    pub fn rank(&self) -> usize {
        self.inner.link.rank
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// What this rank has sent and received so far.
    pub fn traffic(&self) -> Traffic {
        let [sent, sent_bytes, received, received_bytes] = self
            .inner
            .link
            .traffic
            .each_ref()
            .map(|c| c.load(Ordering::Relaxed));
        Traffic {
            sent,
            sent_bytes,
            received,
            received_bytes,
        }
    }

    /// Checks a rank number.
    pub(crate) fn check_rank(&self, rank: usize, what: &str) -> Result<(), Error> {
        if rank >= self.size() {
            return Err(Error::InvalidUse(format!(
                "{what}: rank {rank} does not exist (there are {} ranks)",
                self.size()
            )));
        }
        Ok(())
    }

    /// Counts one distributed operation in program order; an error when called from
    /// another thread than the one that issued the first (the order would depend on
    /// timing, and the ranks would disagree on it). In debug builds every rank reports
    /// the operation and where the program issued it to rank 0, which ends the program
    /// with a clear error at the first difference instead of letting ranks wait for
    /// messages that never come.
    ///
    /// `what` names the operation with the arguments that decide who sends what to whom
    /// (ranks, shapes, placements), so ranks that call it differently are caught too.
    #[track_caller]
    pub(crate) fn operation(&self, what: std::fmt::Arguments<'_>) -> Result<(), Error> {
        if self.size() > 1
            && self
                .inner
                .comm
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        {
            return Err(Error::InvalidUse(format!(
                "{what}: the cluster has finished (`Cluster::finish`) and moves no more data"
            )));
        }
        let mut order = self.inner.order.lock().unwrap_or_else(|e| e.into_inner());
        let me = std::thread::current().id();
        match order.thread {
            None => order.thread = Some(me),
            Some(thread) if thread != me => {
                return Err(Error::InvalidUse(format!(
                    "{what}: distributed operations must all be issued from one thread (the \
                     first one that issued one), so that every rank issues them in the same order"
                )))
            }
            Some(_) => {}
        }
        order.operations += 1;
        if cfg!(debug_assertions) && self.size() > 1 {
            let at = std::panic::Location::caller();
            self.command(Command::Record {
                index: order.operations,
                description: format!("{what} at {}:{}", at.file(), at.line()),
            });
        }
        Ok(())
    }

    /// How many distributed operations this rank has issued (the same on every rank).
    pub(crate) fn operations_issued(&self) -> u64 {
        self.inner
            .order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .operations
    }

    /// What the tasks of this rank need of it.
    pub(crate) fn link(&self) -> Arc<Link> {
        self.inner.link.clone()
    }

    /// The next transfer's number.
    pub(crate) fn next_transfer(&self) -> u64 {
        let mut order = self.inner.order.lock().unwrap_or_else(|e| e.into_inner());
        order.next_transfer += 1;
        order.next_transfer
    }

    fn command(&self, command: Command) {
        self.inner.link.command(command)
    }

    /// Whether `other` is this cluster (a value of another cluster cannot take part).
    pub(crate) fn check_same(&self, other: &Cluster, what: &str) -> Result<(), Error> {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return Ok(());
        }
        Err(Error::InvalidUse(format!(
            "{what}: a value of another cluster (rank {} of {}) was given to rank {} of {}",
            other.rank(),
            other.size(),
            self.rank(),
            self.size()
        )))
    }

    /// Sends `value` to `to` as transfer `id` once it is computed; its failure instead,
    /// when it fails.
    pub(crate) fn send_when_ready<T: Transfer>(&self, value: &Handle<T>, id: u64, to: usize) {
        let link = self.inner.link.clone();
        link.unposted.fetch_add(1, Ordering::AcqRel);
        let sender = Sender {
            link,
            id,
            to,
            value: value.clone(),
            sent: false,
        };
        // Dropping the handle does not cancel the task.
        let _ = dagger_core::spawn_with(value, move |v: &T| {
            let mut sender = sender;
            sender.send(v);
        });
    }

    /// The value of transfer `id`, coming from `from`.
    pub(crate) fn receive<T: Transfer>(&self, id: u64, from: usize) -> Handle<T> {
        let (raw, promise) = dagger_core::promise::<Received>();
        self.command(Command::Expect {
            id,
            from,
            type_tag: type_tag::<T>(),
            type_name: std::any::type_name::<T>(),
            promise,
        });
        let link = self.inner.link.clone();
        dagger_core::try_spawn_with(&raw, move |received: &Received| {
            link.count(2, received.meta.len() + received.bulk.len());
            let failure = |message: String| RemoteFailure {
                rank: received.from,
                message,
            };
            if let Some(message) = &received.failure {
                return Err(failure(message.clone()));
            }
            // A panicking `decode` is the sender's value gone wrong: say whose.
            let decoded = std::panic::catch_unwind(|| T::decode(&received.meta, &received.bulk));
            match decoded {
                Ok(value) => value.map_err(|e| failure(e.to_string())),
                Err(panic) => Err(failure(format!(
                    "decoding a `{}` panicked: {}",
                    std::any::type_name::<T>(),
                    crate::comm::panic_text(&*panic)
                ))),
            }
        })
    }

    /// The benchmarks' baseline: `rounds` blocking round trips of `bytes` bytes between
    /// ranks 0 and `peer`, straight on MPI from the communication thread (ranks 0 and
    /// `peer` call it; nothing else may be in flight). `None` without MPI.
    #[doc(hidden)]
    pub fn raw_ping_pong(
        &self,
        peer: usize,
        bytes: usize,
        rounds: usize,
    ) -> Option<std::time::Duration> {
        // The values this rank owes are posted before the round trips start.
        self.wait_until_posted();
        let (answer, result) = std::sync::mpsc::channel();
        self.command(Command::PingPong {
            peer: if self.rank() == 0 { peer } else { 0 },
            bytes,
            rounds,
            first: self.rank() == 0,
            answer,
        });
        result.recv().ok().flatten()
    }

    /// Waits for the tasks that send values (they run once their value is computed).
    pub(crate) fn wait_until_posted(&self) {
        self.inner.wait_until_posted();
    }

    /// Ends this rank's part in the program, as `MPI_Finalize` does: waits until every
    /// value this rank owes another is sent and every value it asked for has arrived,
    /// meets the other ranks, and finalizes MPI. Returns the protocol errors seen
    /// (messages nobody asked for: the ranks ran different programs). Call it at the end
    /// of `main` on every rank; after it, distributed operations are errors. (Dropping
    /// the last handle finishes too, but values and tasks may hold handles after `main`
    /// returns, and an MPI program that exits without finishing is an error.)
    pub fn finish(&self) -> Result<(), Error> {
        let errors = self.inner.finish(true);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidUse(format!(
                "rank {}: {}",
                self.rank(),
                errors.join("; ")
            )))
        }
    }
}

impl Inner {
    fn wait_until_posted(&self) {
        self.link.wait_until_posted();
    }

    /// Whether the caller is the thread that issues the distributed operations (or none
    /// has been issued yet).
    fn on_issuing_thread(&self) -> bool {
        let order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        order
            .thread
            .is_none_or(|thread| thread == std::thread::current().id())
    }

    /// Takes the communication thread (once; later calls find none) and the number of
    /// the end's record: in debug builds the end is recorded as one more operation, so a
    /// rank that ends while others still issue operations is caught.
    fn take_comm(&self) -> Option<(Comm, Option<u64>)> {
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let operations = self
            .order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .operations;
        let record = (cfg!(debug_assertions) && self.size > 1).then_some(operations + 1);
        Some((comm, record))
    }

    /// Ends this rank (see `Cluster::finish`): the protocol errors and the region tasks
    /// that failed here.
    fn finish(&self, wait_for_others: bool) -> Vec<String> {
        match self.take_comm() {
            Some((comm, record)) => end(&self.link, comm, record, wait_for_others),
            None => {
                self.link.wait_for_region_tasks();
                self.link.take_failures()
            }
        }
    }
}

/// The end of a rank, on any thread: every value it owes sent, its region tasks ended,
/// the end recorded, the communication thread finished.
fn end(link: &Link, comm: Comm, record: Option<u64>, wait_for_others: bool) -> Vec<String> {
    link.wait_until_posted();
    link.wait_for_region_tasks();
    let mut errors = link.take_failures();
    if let Some(index) = record {
        link.command(Command::Record {
            index,
            description: "the end of the program (`finish`, or the last Cluster dropped)"
                .to_owned(),
        });
    }
    errors.extend(comm.finish(wait_for_others));
    errors
}

impl Drop for Inner {
    fn drop(&mut self) {
        let rank = self.link.rank;
        if !self.on_issuing_thread() {
            // A worker or another thread must not block here: the end runs on a thread of
            // its own, which still sends every value this rank owes.
            if let Some((comm, record)) = self.take_comm() {
                let link = self.link.clone();
                let ending = std::thread::Builder::new()
                    .name("dagger-mpi-end".to_owned())
                    .spawn(move || {
                        for error in end(&link, comm, record, false) {
                            eprintln!("dagger-mpi, rank {rank}: {error}");
                        }
                    });
                if let Err(error) = ending {
                    eprintln!(
                        "dagger-mpi, rank {rank}: the end of the rank could not start: {error}"
                    );
                }
            }
            return;
        }
        if std::thread::panicking() {
            if let Some((comm, _)) = self.take_comm() {
                let _ = comm.port().send(Command::Abort {
                    code: 1,
                    why: format!("rank {rank} panicked"),
                });
            }
            return;
        }
        for error in self.finish(false) {
            eprintln!("dagger-mpi, rank {rank}: {error}");
        }
    }
}

/// A value computed on another rank failed there, or did not arrive whole.
#[derive(Clone, Debug)]
pub struct RemoteFailure {
    /// The rank it came from.
    pub rank: usize,
    /// What went wrong, as that rank said it.
    pub message: String,
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "on rank {}: {}", self.rank, self.message)
    }
}

impl std::error::Error for RemoteFailure {}

/// Sends one value once; if dropped unsent (its task did not run because the value
/// failed, or encoding panicked), sends the failure instead, so the receiver never waits.
struct Sender<T: Transfer> {
    link: Arc<Link>,
    id: u64,
    to: usize,
    value: Handle<T>,
    sent: bool,
}

impl<T: Transfer> Sender<T> {
    fn send(&mut self, value: &T) {
        let mut meta = Vec::new();
        let encoded = value.encode(&mut meta).map_err(|e| e.to_string());
        let encoded = encoded.and_then(|bulk| {
            if meta.len() > wire::META_LIMIT {
                return Err(format!(
                    "the metadata of a `{}` is {} bytes, over the limit of {} (send large \
                     parts as bulk bytes)",
                    std::any::type_name::<T>(),
                    meta.len(),
                    wire::META_LIMIT
                ));
            }
            Ok(bulk)
        });
        let (head, bulk) = match encoded {
            Err(why) => (wire::failure_head(self.id, type_tag::<T>(), &why), None),
            Ok(bulk) => {
                let head = wire::value_head(self.id, type_tag::<T>(), &meta, &bulk);
                self.link.count(0, meta.len() + bulk.len());
                let bulk = (bulk.len() > wire::INLINE_LIMIT).then(|| match bulk {
                    Cow::Owned(bytes) => Bulk::owned(bytes),
                    // SAFETY: `bytes` borrows from the value of the finished task that
                    // `keep` refers to. A finished task's value is moved out only through
                    // a unique handle (`Handle::fetch`, a by-value input), and `keep` is a
                    // second handle, so it is not unique while it lives; otherwise the
                    // value is only ever shared (`&T`). So the bytes stay valid and
                    // unchanged while `keep` lives.
                    Cow::Borrowed(bytes) => unsafe {
                        Bulk::new(Box::new(self.value.clone()), bytes)
                    },
                });
                (head, bulk)
            }
        };
        self.link.command(Command::Post(Outgoing {
            to: self.to,
            head,
            bulk,
        }));
        self.sent = true;
        self.link.unposted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T: Transfer> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        let message = match self.value.wait() {
            Err(error) => format!("{error}"),
            Ok(()) => format!(
                "sending a `{}` failed (its `Transfer::encode` panicked)",
                std::any::type_name::<T>()
            ),
        };
        let head = wire::failure_head(self.id, type_tag::<T>(), &message);
        self.link.command(Command::Post(Outgoing {
            to: self.to,
            head,
            bulk: None,
        }));
        self.link.unposted.fetch_sub(1, Ordering::AcqRel);
    }
}
