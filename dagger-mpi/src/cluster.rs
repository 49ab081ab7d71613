//! The cluster handle: this rank, the number of ranks, the communication thread, and the
//! program order: every rank numbers its distributed operations and transfers the same
//! way, which is how each rank knows, without asking, who sends what to whom.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;

use dagger_core::{Error, Handle};

use crate::comm::{Comm, Command, Received};
use crate::transfer::{type_tag, Transfer};
use crate::transport::{Bulk, Outgoing};
use crate::wire;

/// The ranks of one SPMD program, seen from one of them. Cloning is cheap. Every rank
/// must issue the same distributed operations in the same order, from one thread.
///
/// The last handle dropped finishes the communication (every message sent and received,
/// every rank met at a barrier) and, under MPI, finalizes MPI. A rank that panics instead
/// ends the whole program (`MPI_Abort`), so that no other rank waits for it forever.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    rank: usize,
    size: usize,
    comm: Mutex<Option<Comm>>,
    order: Mutex<Order>,
    traffic: [AtomicU64; 4],
    /// Values handed to tasks to send that are not posted yet.
    unposted: AtomicU64,
}

/// What this rank has sent and received so far: values, and their bytes (metadata and
/// bulk; the fixed 33-byte head of each message is not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
                rank,
                size,
                comm: Mutex::new(comm),
                order: Mutex::new(Order {
                    thread: None,
                    next_transfer: 0,
                    operations: 0,
                }),
                traffic: Default::default(),
                unposted: AtomicU64::new(0),
            }),
        }
    }

    /// This rank, from 0.
    pub fn rank(&self) -> usize {
        self.inner.rank
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// What this rank has sent and received so far.
    pub fn traffic(&self) -> Traffic {
        let [sent, sent_bytes, received, received_bytes] = self
            .inner
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

    fn count(&self, first: usize, bytes: usize) {
        self.inner.traffic[first].fetch_add(1, Ordering::Relaxed);
        self.inner.traffic[first + 1].fetch_add(bytes as u64, Ordering::Relaxed);
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
    #[track_caller]
    pub(crate) fn operation(&self, what: &str) -> Result<(), Error> {
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

    /// The next transfer's number.
    pub(crate) fn next_transfer(&self) -> u64 {
        let mut order = self.inner.order.lock().unwrap_or_else(|e| e.into_inner());
        order.next_transfer += 1;
        order.next_transfer
    }

    fn command(&self, command: Command) {
        let comm = self.inner.comm.lock().unwrap_or_else(|e| e.into_inner());
        match comm.as_ref() {
            Some(comm) => comm.send(command),
            // Distributed operations are errors after `finish`, and `finish` waits for
            // every send: nothing should get here.
            None => eprintln!(
                "dagger-mpi, rank {}: a message after `finish` was dropped",
                self.rank()
            ),
        }
    }

    /// Sends `value` to `to` as transfer `id` once it is computed; its failure instead,
    /// when it fails.
    pub(crate) fn send_when_ready<T: Transfer>(&self, value: &Handle<T>, id: u64, to: usize) {
        self.inner.unposted.fetch_add(1, Ordering::AcqRel);
        let sender = Sender {
            cluster: self.clone(),
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
        let cluster = self.clone();
        dagger_core::try_spawn_with(&raw, move |received: &Received| {
            cluster.count(2, received.meta.len() + received.bulk.len());
            if let Some(message) = &received.failure {
                return Err(RemoteFailure {
                    rank: received.from,
                    message: message.clone(),
                });
            }
            T::decode(&received.meta, &received.bulk).map_err(|e| RemoteFailure {
                rank: received.from,
                message: e.to_string(),
            })
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
    fn wait_until_posted(&self) {
        while self.inner.unposted.load(Ordering::Acquire) > 0 {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }

    /// Ends this rank's part in the program, as `MPI_Finalize` does: waits until every
    /// value this rank owes another is sent and every value it asked for has arrived,
    /// meets the other ranks, and finalizes MPI. Returns the protocol errors seen
    /// (messages nobody asked for: the ranks ran different programs). Call it at the end
    /// of `main` on every rank; after it, distributed operations are errors. (Dropping
    /// the last handle finishes too, but values and tasks may hold handles after `main`
    /// returns, and an MPI program that exits without finishing is an error.)
    pub fn finish(&self) -> Result<(), Error> {
        self.wait_until_posted();
        let comm = self
            .inner
            .comm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let errors = comm.map(Comm::finish).unwrap_or_default();
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

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(comm) = self
            .comm
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        if std::thread::panicking() {
            comm.send(Command::Abort(1));
            return;
        }
        for error in comm.finish() {
            eprintln!("dagger-mpi, rank {}: {error}", self.rank);
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
    cluster: Cluster,
    id: u64,
    to: usize,
    value: Handle<T>,
    sent: bool,
}

impl<T: Transfer> Sender<T> {
    fn send(&mut self, value: &T) {
        let mut meta = Vec::new();
        let bulk = value.encode(&mut meta);
        let head = wire::value_head(self.id, type_tag::<T>(), &meta, bulk);
        self.cluster.count(0, meta.len() + bulk.len());
        let bulk = (bulk.len() > wire::INLINE_LIMIT).then(|| {
            // SAFETY: `bulk` borrows from the value of the finished task that `keep`
            // refers to. A finished task's value is moved out only through a unique
            // handle (`Handle::fetch`, a by-value input), and `keep` is a second handle,
            // so it is not unique while it lives; otherwise the value is only ever
            // shared (`&T`). So the bytes stay valid and unchanged while `keep` lives.
            unsafe { Bulk::new(Box::new(self.value.clone()), bulk) }
        });
        self.cluster.command(Command::Post(Outgoing {
            to: self.to,
            head,
            bulk,
        }));
        self.sent = true;
        self.cluster.inner.unposted.fetch_sub(1, Ordering::AcqRel);
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
        self.cluster.command(Command::Post(Outgoing {
            to: self.to,
            head,
            bulk: None,
        }));
        self.cluster.inner.unposted.fetch_sub(1, Ordering::AcqRel);
    }
}
