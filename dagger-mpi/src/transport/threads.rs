//! Ranks as threads of one process: each rank has a queue of (sender, message) and reads
//! each sender's messages in the order they were sent, as MPI does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::{Outgoing, Transport};

enum Piece {
    Head(Vec<u8>),
    Bulk(Vec<u8>),
}

pub(crate) struct ThreadTransport {
    rank: usize,
    peers: Vec<Sender<(usize, Piece)>>,
    inbox: Receiver<(usize, Piece)>,
    /// Arrived messages, per sender, in order.
    queues: Vec<VecDeque<Piece>>,
    barrier: Arc<AtomicUsize>,
    barriers_started: usize,
    /// Why a rank ended the program, seen by every rank.
    aborted: Arc<Mutex<Option<String>>>,
    /// The ranks whose communication thread has ended.
    left: Arc<Vec<AtomicBool>>,
}

/// The transports of `size` ranks joined to each other.
pub(crate) fn network(size: usize) -> Vec<ThreadTransport> {
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..size).map(|_| channel()).unzip();
    let barrier = Arc::new(AtomicUsize::new(0));
    let aborted = Arc::new(Mutex::new(None));
    let left: Arc<Vec<AtomicBool>> = Arc::new((0..size).map(|_| AtomicBool::new(false)).collect());
    inboxes
        .into_iter()
        .enumerate()
        .map(|(rank, inbox)| ThreadTransport {
            rank,
            peers: senders.clone(),
            inbox,
            queues: (0..size).map(|_| VecDeque::new()).collect(),
            barrier: barrier.clone(),
            barriers_started: 0,
            aborted: aborted.clone(),
            left: left.clone(),
        })
        .collect()
}

impl ThreadTransport {
    fn drain(&mut self) {
        while let Ok((from, piece)) = self.inbox.try_recv() {
            self.queues[from].push_back(piece);
        }
    }

    fn deliver(&self, to: usize, piece: Piece) {
        // A rank whose thread has ended drops its inbox; its messages are lost, as a dead
        // rank's are.
        let _ = self.peers[to].send((self.rank, piece));
    }
}

impl Transport for ThreadTransport {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.peers.len()
    }

    fn post(&mut self, message: Outgoing) {
        self.deliver(message.to, Piece::Head(message.head));
        if let Some(bulk) = message.bulk {
            for (start, end) in crate::wire::pieces(bulk.bytes().len()) {
                self.deliver(message.to, Piece::Bulk(bulk.bytes()[start..end].to_vec()));
            }
        }
    }

    fn progress(&mut self) -> usize {
        0
    }

    fn try_receive_head(&mut self) -> Option<(usize, Vec<u8>)> {
        self.drain();
        for (from, queue) in self.queues.iter_mut().enumerate() {
            if let Some(Piece::Head(_)) = queue.front() {
                let Some(Piece::Head(head)) = queue.pop_front() else {
                    unreachable!("the front was a head")
                };
                return Some((from, head));
            }
        }
        None
    }

    fn receive_bulk(&mut self, from: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match self.queues[from].pop_front() {
                Some(Piece::Bulk(bytes)) => out.extend_from_slice(&bytes),
                Some(Piece::Head(_)) => {
                    return Err(format!("rank {from} sent a head where bulk bytes were due"))
                }
                None => match self.inbox.recv() {
                    Ok((sender, piece)) => self.queues[sender].push_back(piece),
                    Err(_) => return Err(format!("rank {from} is gone")),
                },
            }
        }
        if out.len() != len {
            return Err(format!(
                "rank {from} sent {} bulk bytes, not {len}",
                out.len()
            ));
        }
        Ok(out)
    }

    fn start_barrier(&mut self) {
        self.barriers_started += 1;
        self.barrier.fetch_add(1, Ordering::AcqRel);
    }

    fn barrier_done(&mut self) -> bool {
        self.barrier.load(Ordering::Acquire) >= self.barriers_started * self.size()
    }

    fn abort(&mut self, code: i32, why: &str) {
        let mut aborted = self.aborted.lock().unwrap_or_else(|e| e.into_inner());
        aborted.get_or_insert_with(|| {
            format!("rank {} ended the program (code {code}): {why}", self.rank)
        });
    }

    fn aborted(&self) -> Option<String> {
        self.aborted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn needs_every_rank_at_end(&self) -> bool {
        false
    }

    fn leave(&mut self) {
        // Memory ordering: Release after every message this rank sent; a rank that sees
        // it (Acquire) then finds those messages in its queue.
        self.left[self.rank].store(true, Ordering::Release);
    }

    fn has_left(&self, rank: usize) -> bool {
        self.left[rank].load(Ordering::Acquire)
    }
}
