//! MPI underneath (rsmpi): non-blocking sends, heads matched with `MPI_Improbe` and
//! received with `MPI_Mrecv`, and the bulk bytes of a large value received right after its
//! head (MPI keeps one sender's messages of one tag in order). Created on, and used only
//! by, the communication thread (`MPI_THREAD_FUNNELED`).

use mpi::request::{Request, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use super::{Bulk, Outgoing, Transport};

const HEAD_TAG: i32 = 1;
const BULK_TAG: i32 = 2;
const PING_TAG: i32 = 3;

/// A posted send and what keeps its bytes alive until it completes.
struct InFlight {
    request: Option<Request<'static, [u8]>>,
    /// Dropped only once `request` has completed.
    _bytes: Keep,
}

enum Keep {
    Head(Box<[u8]>),
    Bulk(std::rc::Rc<Bulk>),
}

pub(crate) struct MpiTransport {
    in_flight: Vec<InFlight>,
    barrier: Option<Request<'static, ()>>,
    world: SimpleCommunicator,
    /// Finalizes MPI when dropped; dropped last.
    _universe: mpi::environment::Universe,
}

impl MpiTransport {
    /// Initializes MPI on this thread, or says why it could not.
    pub(crate) fn init() -> Result<Self, String> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or("MPI was already initialized by someone else in this process")?;
        if threading < Threading::Funneled {
            return Err(format!(
                "the MPI library offers {threading:?} threading; dagger needs Funneled"
            ));
        }
        // A communicator of dagger's own: its tags never meet the program's MPI traffic.
        let world = universe.world().duplicate();
        Ok(MpiTransport {
            in_flight: Vec::new(),
            barrier: None,
            world,
            _universe: universe,
        })
    }

    fn send(&mut self, to: usize, tag: i32, bytes: Keep, range: (usize, usize)) {
        let all: &[u8] = match &bytes {
            Keep::Head(head) => head,
            Keep::Bulk(bulk) => bulk.bytes(),
        };
        let part = &all[range.0..range.1];
        // SAFETY: `part` lives in `bytes` (a boxed head, or a `Bulk` whose owner keeps its
        // bytes valid and unchanged), which is stored beside the request and dropped only
        // after `MPI_Test` reports the send complete (`progress`), or never (a request
        // still in flight when the transport is dropped panics in rsmpi and the process
        // aborts). Moving `bytes` into `InFlight` moves the box or the `Rc`, not the
        // bytes. So the `'static` view never outlives them.
        let part: &'static [u8] = unsafe { std::slice::from_raw_parts(part.as_ptr(), part.len()) };
        let request = self
            .world
            .process_at_rank(to as i32)
            .immediate_send_with_tag(StaticScope, part, tag);
        self.in_flight.push(InFlight {
            request: Some(request),
            _bytes: bytes,
        });
    }
}

impl Transport for MpiTransport {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn post(&mut self, message: Outgoing) {
        let head_len = message.head.len();
        self.send(
            message.to,
            HEAD_TAG,
            Keep::Head(message.head.into_boxed_slice()),
            (0, head_len),
        );
        if let Some(bulk) = message.bulk {
            let bulk = std::rc::Rc::new(bulk);
            for range in crate::wire::pieces(bulk.bytes().len()) {
                self.send(message.to, BULK_TAG, Keep::Bulk(bulk.clone()), range);
            }
        }
    }

    fn progress(&mut self) -> usize {
        self.in_flight.retain_mut(|sent| {
            let request = sent.request.take().expect("a request in flight");
            match request.test() {
                Ok(_) => false,
                Err(request) => {
                    sent.request = Some(request);
                    true
                }
            }
        });
        self.in_flight.len()
    }

    fn try_receive_head(&mut self) -> Option<(usize, Vec<u8>)> {
        let probed = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(HEAD_TAG)?;
        let (head, status) = probed.matched_receive_vec::<u8>();
        Some((status.source_rank() as usize, head))
    }

    fn receive_bulk(&mut self, from: usize, len: usize) -> Result<Vec<u8>, String> {
        // Pieces of any size, until `len` bytes: the sender's piece size need not be ours.
        let mut out = vec![0u8; len];
        let mut received = 0;
        while received < len {
            let (message, status) = self
                .world
                .process_at_rank(from as i32)
                .matched_probe_with_tag(BULK_TAG);
            let count = status.count(u8::equivalent_datatype()) as usize;
            if count > len - received {
                // Receive it anyway (a matched message must be received), then report.
                let _ = (message, status).matched_receive_vec::<u8>();
                return Err(format!(
                    "rank {from} sent {} bulk bytes where {len} were due",
                    received + count
                ));
            }
            message.matched_receive_into(&mut out[received..received + count]);
            received += count;
        }
        Ok(out)
    }

    fn start_barrier(&mut self) {
        self.barrier = Some(self.world.immediate_barrier());
    }

    fn barrier_done(&mut self) -> bool {
        match self.barrier.take() {
            None => true,
            Some(request) => match request.test() {
                Ok(_) => true,
                Err(request) => {
                    self.barrier = Some(request);
                    false
                }
            },
        }
    }

    fn abort(&mut self, code: i32, why: &str) {
        eprintln!(
            "dagger-mpi, rank {}: {why}; ending the program",
            self.world.rank()
        );
        self.world.abort(code)
    }

    fn ping_pong(
        &mut self,
        peer: usize,
        bytes: usize,
        rounds: usize,
        first: bool,
    ) -> Option<std::time::Duration> {
        let peer = self.world.process_at_rank(peer as i32);
        let mut buffer = vec![1u8; bytes];
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            if first {
                peer.send_with_tag(&buffer[..], PING_TAG);
                peer.receive_into_with_tag(&mut buffer[..], PING_TAG);
            } else {
                peer.receive_into_with_tag(&mut buffer[..], PING_TAG);
                peer.send_with_tag(&buffer[..], PING_TAG);
            }
        }
        Some(started.elapsed())
    }
}
