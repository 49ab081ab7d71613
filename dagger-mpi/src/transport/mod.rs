//! How bytes reach another rank. The communication thread is the only user of a
//! transport: MPI (feature `mpi`), or ranks as threads of one process (for tests and for
//! trying SPMD code without `mpirun`).

#[cfg(feature = "mpi")]
pub(crate) mod mpi;
pub(crate) mod threads;

/// Bulk bytes sent as they are, borrowed from a value that `keep` keeps alive.
pub(crate) struct Bulk {
    /// Owns the bytes (a handle of the value they belong to); dropped once sent.
    _keep: Box<dyn Send>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `Bulk` is a shared, read-only view of bytes owned by `_keep`, which is `Send`;
// the bytes are never written while it exists (see `Bulk::new`, `Bulk::owned`), so reading them from
// another thread is as safe as sending `_keep` there.
unsafe impl Send for Bulk {}

impl Bulk {
    /// # Safety
    /// `bytes` must stay valid and unchanged while `keep` is alive: they live inside the
    /// value that `keep` owns (or shares) and nothing can write to that value then.
    pub(crate) unsafe fn new(keep: Box<dyn Send>, bytes: &[u8]) -> Self {
        Bulk {
            _keep: keep,
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Bytes this message owns (a serialized value).
    pub(crate) fn owned(bytes: Vec<u8>) -> Self {
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        // Moving a `Vec` into the box leaves its heap buffer where it is: `ptr` stays
        // valid, and nothing else can reach the bytes to change them.
        Bulk {
            _keep: Box::new(bytes),
            ptr,
            len,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `_keep` is alive as long as `self` and keeps the bytes valid and
        // unchanged: by the contract of `new`, or as the `Vec` that `owned` boxed.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// One message to post.
pub(crate) struct Outgoing {
    pub to: usize,
    pub head: Vec<u8>,
    /// Large bulk bytes, sent after the head.
    pub bulk: Option<Bulk>,
}

/// Moves messages between ranks for the communication thread.
pub(crate) trait Transport {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Posts a message without waiting for the receiver.
    fn post(&mut self, message: Outgoing);
    /// Finishes the posted messages that are done; returns how many are still in flight.
    fn progress(&mut self) -> usize;
    /// A head that has arrived, from which rank.
    fn try_receive_head(&mut self) -> Option<(usize, Vec<u8>)>;
    /// The `len` bulk bytes that follow the head just received from `from`.
    fn receive_bulk(&mut self, from: usize, len: usize) -> Result<Vec<u8>, String>;
    /// Starts a barrier that does not block.
    fn start_barrier(&mut self);
    /// Whether every rank has reached the barrier started last.
    fn barrier_done(&mut self) -> bool;
    /// Ends the whole program on every rank (a rank failed beyond recovery), saying why.
    /// Under MPI it does not return; ranks as threads go on, failing everything.
    fn abort(&mut self, code: i32, why: &str);
    /// Why another rank ended the program, when this transport outlives that.
    fn aborted(&self) -> Option<String> {
        None
    }
    /// Marks this rank as gone (its communication thread has ended), where the transport
    /// can tell the others.
    fn leave(&mut self) {}
    /// Whether `rank` is gone: every message it sent has arrived, and no more will.
    fn has_left(&self, _rank: usize) -> bool {
        false
    }
    /// Whether a rank must wait for every other at its end (MPI_Finalize is collective).
    fn needs_every_rank_at_end(&self) -> bool {
        true
    }
    /// The benchmarks' baseline: `rounds` blocking round trips of `bytes` bytes with
    /// `peer` straight on the transport (this rank sends first when `first`), or `None`
    /// when the transport has no such thing.
    fn ping_pong(
        &mut self,
        _peer: usize,
        _bytes: usize,
        _rounds: usize,
        _first: bool,
    ) -> Option<std::time::Duration> {
        None
    }
}
