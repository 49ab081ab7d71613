//! The communication thread: the only thread that touches the transport. It posts the
//! sends that tasks hand it, matches arriving messages to the receives the program
//! announced (in any order: a message that arrives before its receive is announced waits),
//! completes their promises, and parks when it has nothing to wait for. At the end it
//! waits for its messages, meets the other ranks at a barrier, and reports messages that
//! no receive ever asked for.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dagger_core::Promise;

use crate::transport::{Outgoing, Transport};
use crate::wire::{read_head, Head};

/// What a receive gets: the value's bytes, or the sending rank's failure.
pub(crate) struct Received {
    pub from: usize,
    pub failure: Option<String>,
    pub meta: Vec<u8>,
    pub bulk: Vec<u8>,
}

pub(crate) enum Command {
    Post(Outgoing),
    Expect {
        id: u64,
        from: usize,
        type_tag: u64,
        type_name: &'static str,
        promise: Promise<Received>,
    },
    /// Distributed operation number `index` of this rank's program (debug builds): rank 0
    /// compares every rank's records and ends the program at the first difference.
    Record {
        index: u64,
        description: String,
    },
    /// The benchmarks' raw round trips (`Transport::ping_pong`).
    PingPong {
        peer: usize,
        bytes: usize,
        rounds: usize,
        first: bool,
        answer: Sender<Option<Duration>>,
    },
    /// Finish, then answer with the protocol errors seen.
    Finish(Sender<Vec<String>>),
    Abort(i32),
}

/// The program's side of the communication thread.
pub(crate) struct Comm {
    commands: Sender<Command>,
    thread: JoinHandle<()>,
}

impl Comm {
    /// Starts the thread; `transport` is made on it (MPI must be initialized on the
    /// thread that uses it). Returns the rank and size, or why the transport failed.
    pub(crate) fn start<T: Transport + 'static>(
        transport: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<(Comm, usize, usize), String> {
        let (commands, inbox) = channel();
        let (ready, started) = channel();
        let thread = std::thread::Builder::new()
            .name("dagger-mpi".to_owned())
            .spawn(move || match transport() {
                Ok(transport) => {
                    let _ = ready.send(Ok((transport.rank(), transport.size())));
                    Loop::new(transport, inbox).run();
                }
                Err(why) => {
                    let _ = ready.send(Err(why));
                }
            })
            .map_err(|e| format!("the communication thread could not start: {e}"))?;
        let (rank, size) = started
            .recv()
            .map_err(|_| "the communication thread ended while starting".to_owned())??;
        Ok((Comm { commands, thread }, rank, size))
    }

    pub(crate) fn send(&self, command: Command) {
        // The thread lives until `finish`, which takes `self`: the channel is open.
        let _ = self.commands.send(command);
        self.thread.thread().unpark();
    }

    /// Waits for every message to be sent and received and for every rank to get here.
    pub(crate) fn finish(self) -> Vec<String> {
        let (answer, errors) = channel();
        self.send(Command::Finish(answer));
        let errors = errors
            .recv()
            .unwrap_or_else(|_| vec!["the communication thread ended early".to_owned()]);
        let _ = self.thread.join();
        errors
    }
}

struct Expected {
    from: usize,
    type_tag: u64,
    type_name: &'static str,
    promise: Promise<Received>,
}

struct Loop<T> {
    transport: T,
    inbox: Receiver<Command>,
    expected: HashMap<u64, Expected>,
    /// Messages whose receive was not announced yet.
    early: HashMap<u64, (usize, Head, Vec<u8>)>,
    errors: Vec<String>,
    finish: Option<Sender<Vec<String>>>,
    in_flight: usize,
    /// On rank 0: per operation number, the first description seen, from which rank,
    /// and how many ranks agreed so far.
    records: HashMap<u64, (String, usize, usize)>,
}

impl<T: Transport> Loop<T> {
    fn new(transport: T, inbox: Receiver<Command>) -> Self {
        Loop {
            transport,
            inbox,
            expected: HashMap::new(),
            early: HashMap::new(),
            errors: Vec::new(),
            finish: None,
            in_flight: 0,
            records: HashMap::new(),
        }
    }

    fn run(mut self) {
        let mut last_work = Instant::now();
        let mut barrier_started = false;
        loop {
            let mut worked = false;
            while let Ok(command) = self.inbox.try_recv() {
                worked = true;
                match command {
                    Command::Post(message) => self.transport.post(message),
                    Command::Expect {
                        id,
                        from,
                        type_tag,
                        type_name,
                        promise,
                    } => self.expect(id, from, type_tag, type_name, promise),
                    Command::Record { index, description } => self.record(index, description),
                    Command::PingPong {
                        peer,
                        bytes,
                        rounds,
                        first,
                        answer,
                    } => {
                        let _ = answer.send(self.transport.ping_pong(peer, bytes, rounds, first));
                    }
                    Command::Finish(answer) => self.finish = Some(answer),
                    Command::Abort(code) => self.transport.abort(code),
                }
            }
            self.in_flight = self.transport.progress();
            while let Some((from, head)) = self.transport.try_receive_head() {
                worked = true;
                self.arrive(from, head);
            }
            if self.finish.is_some() && self.in_flight == 0 && self.expected.is_empty() {
                // Keep receiving while the others get here: a rank that sends a message
                // nobody asked for must see it received to reach the barrier itself.
                if !barrier_started {
                    self.transport.start_barrier();
                    barrier_started = true;
                }
                if self.transport.barrier_done() {
                    break;
                }
            }
            if worked {
                last_work = Instant::now();
                continue;
            }
            let waiting = self.in_flight > 0 || !self.expected.is_empty() || self.finish.is_some();
            if !waiting {
                // Nothing can happen until the program asks for something.
                std::thread::park();
                last_work = Instant::now();
                continue;
            }
            // Waiting for the network: poll, first spinning, then yielding the core
            // between polls, and after 2 ms of quiet sleeping 200 µs between polls, so a
            // rank that waits long does not keep a core busy. (A sleep costs at least
            // the timer slack, 50 µs: too long for a round trip.)
            let quiet = last_work.elapsed();
            if quiet < Duration::from_micros(50) {
                std::hint::spin_loop();
            } else if quiet < Duration::from_millis(2) {
                std::thread::yield_now();
            } else {
                std::thread::park_timeout(Duration::from_micros(200));
            }
        }
        for (id, (from, head, _)) in self.early.drain() {
            self.errors.push(format!(
                "rank {from} sent transfer {id} (type tag {:#x}), which this rank's program never \
                 asked for: the ranks did not run the same sequence of distributed operations",
                head.type_tag
            ));
        }
        let errors = std::mem::take(&mut self.errors);
        if let Some(answer) = self.finish.take() {
            let _ = answer.send(errors);
        }
    }

    fn expect(
        &mut self,
        id: u64,
        from: usize,
        type_tag: u64,
        type_name: &'static str,
        promise: Promise<Received>,
    ) {
        let expected = Expected {
            from,
            type_tag,
            type_name,
            promise,
        };
        match self.early.remove(&id) {
            Some((sender, head, bulk)) => self.deliver(id, expected, sender, head, bulk),
            None => {
                if self.expected.insert(id, expected).is_some() {
                    self.errors
                        .push(format!("transfer {id} was announced twice"));
                }
            }
        }
    }

    fn record(&mut self, index: u64, description: String) {
        if self.transport.rank() == 0 {
            self.compare(0, index, description);
        } else {
            let head = crate::wire::record_head(index, &description);
            self.transport.post(Outgoing {
                to: 0,
                head,
                bulk: None,
            });
        }
    }

    /// Rank 0: checks `from`'s record of operation `index` against the others'.
    fn compare(&mut self, from: usize, index: u64, description: String) {
        let size = self.transport.size();
        let entry = self
            .records
            .entry(index)
            .or_insert_with(|| (description.clone(), from, 0));
        if entry.0 != description {
            eprintln!(
                "dagger-mpi: the ranks diverged at distributed operation {index}: rank {} issued \
                 `{}` and rank {from} issued `{description}`. Every rank must issue the same \
                 distributed operations in the same order (the SPMD contract); ending the program.",
                entry.1, entry.0
            );
            self.transport.abort(2);
            return;
        }
        entry.2 += 1;
        if entry.2 == size {
            self.records.remove(&index);
        }
    }

    fn arrive(&mut self, from: usize, bytes: Vec<u8>) {
        let mut head = match read_head(&bytes) {
            Ok(head) => head,
            Err(why) => {
                self.errors.push(format!("from rank {from}: {why}"));
                return;
            }
        };
        if head.control {
            let description = String::from_utf8_lossy(&head.meta).into_owned();
            self.compare(from, head.id, description);
            return;
        }
        let bulk = match head.inline_bulk.take() {
            Some(bulk) => bulk,
            None => match self.transport.receive_bulk(from, head.bulk_len as usize) {
                Ok(bulk) => bulk,
                Err(why) => {
                    self.fail(head.id, format!("transfer {}: {why}", head.id));
                    return;
                }
            },
        };
        match self.expected.remove(&head.id) {
            Some(expected) => self.deliver(head.id, expected, from, head, bulk),
            None => {
                if self.early.insert(head.id, (from, head, bulk)).is_some() {
                    self.errors.push(format!(
                        "a second message for one transfer came from rank {from}"
                    ));
                }
            }
        }
    }

    /// Fails the receive of `id` if it was announced, and records the error.
    fn fail(&mut self, id: u64, why: String) {
        if let Some(expected) = self.expected.remove(&id) {
            expected
                .promise
                .complete_on_worker(Err(dagger_core::Error::InvalidUse(why.clone())));
        }
        self.errors.push(why);
    }

    fn deliver(&mut self, id: u64, expected: Expected, from: usize, head: Head, bulk: Vec<u8>) {
        let outcome = if from != expected.from {
            Err(format!(
                "transfer {id} was due from rank {} and came from rank {from}: the ranks did \
                 not run the same sequence of distributed operations",
                expected.from
            ))
        } else if head.type_tag != expected.type_tag {
            Err(format!(
                "transfer {id} from rank {from} is not a `{}`: the ranks did not run the same \
                 sequence of distributed operations",
                expected.type_name
            ))
        } else {
            Ok(Received {
                from,
                failure: head.failure,
                meta: head.meta,
                bulk,
            })
        };
        match outcome {
            Ok(received) => expected.promise.complete_on_worker(Ok(received)),
            Err(why) => {
                self.errors.push(why.clone());
                expected
                    .promise
                    .complete_on_worker(Err(dagger_core::Error::InvalidUse(why)));
            }
        }
    }
}
