//! The communication thread: the only thread that touches the transport. It posts the
//! sends that tasks hand it, matches arriving messages to the receives the program
//! announced (in any order: a message that arrives before its receive is announced waits),
//! completes their promises, and parks when it has nothing to wait for. At the end it
//! waits for its messages, meets the other ranks at a barrier, and reports messages that
//! no receive ever asked for.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::{JoinHandle, Thread};
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
    /// Finish, then answer with the protocol errors seen. Without `wait_for_others` the
    /// rank arrives at the final barrier without waiting there, unless the transport
    /// needs every rank at its end (MPI_Finalize does).
    Finish {
        answer: Sender<Vec<String>>,
        wait_for_others: bool,
    },
    /// End the whole program on every rank.
    Abort {
        code: i32,
        why: String,
    },
}

/// The way to the communication thread, for anyone (tasks too): cloning is cheap.
#[derive(Clone)]
pub(crate) struct Port {
    commands: Sender<Command>,
    thread: Thread,
}

impl Port {
    /// Hands `command` to the thread; gives it back when the thread has ended.
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        self.commands.send(command).map_err(|unsent| unsent.0)?;
        self.thread.unpark();
        Ok(())
    }
}

/// The program's side of the communication thread: the one owner that finishes it.
pub(crate) struct Comm {
    port: Port,
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
                    let mut running = Loop::new(transport, inbox);
                    // A panic here (a bug, or MPI refusing a call) would leave every rank
                    // waiting for this one: fail what waits here and end the program.
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| running.run())) {
                        let why = format!(
                            "the communication thread of rank {} panicked: {}",
                            running.transport.rank(),
                            panic_text(&*panic)
                        );
                        running.give_up(&why);
                        running.answer_finish();
                        running.transport.abort(3, &why);
                        running.transport.leave();
                    }
                }
                Err(why) => {
                    let _ = ready.send(Err(why));
                }
            })
            .map_err(|e| format!("the communication thread could not start: {e}"))?;
        let (rank, size) = started
            .recv()
            .map_err(|_| "the communication thread ended while starting".to_owned())??;
        let port = Port {
            commands,
            thread: thread.thread().clone(),
        };
        Ok((Comm { port, thread }, rank, size))
    }

    pub(crate) fn port(&self) -> &Port {
        &self.port
    }

    /// Waits for every message to be sent and received and (with `wait_for_others`, or
    /// where the transport needs it) for every rank to get here.
    pub(crate) fn finish(self, wait_for_others: bool) -> Vec<String> {
        let (answer, errors) = channel();
        let sent = self.port.send(Command::Finish {
            answer,
            wait_for_others,
        });
        let errors = match sent {
            Ok(()) => errors.recv().ok(),
            Err(_) => None,
        }
        .unwrap_or_else(|| vec!["the communication thread ended early".to_owned()]);
        let _ = self.thread.join();
        errors
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".to_owned(),
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
    /// Where to answer `Finish`, and whether to wait for the other ranks.
    finish: Option<(Sender<Vec<String>>, bool)>,
    in_flight: usize,
    /// Why the program was ended (ranks as threads go on, failing everything).
    aborted: Option<String>,
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
            aborted: None,
            records: HashMap::new(),
        }
    }

    fn run(&mut self) {
        let mut last_work = Instant::now();
        let mut barrier_started = false;
        'run: loop {
            if self.aborted.is_none() {
                if let Some(why) = self.transport.aborted() {
                    self.give_up(&why);
                }
            }
            let mut worked = false;
            while let Ok(command) = self.inbox.try_recv() {
                worked = true;
                match command {
                    Command::Post(message) => {
                        if self.aborted.is_none() {
                            self.transport.post(message);
                        }
                    }
                    Command::Expect {
                        id,
                        from,
                        type_tag,
                        type_name,
                        promise,
                    } => match &self.aborted {
                        None => self.expect(id, from, type_tag, type_name, promise),
                        Some(why) => promise
                            .complete_on_worker(Err(dagger_core::Error::InvalidUse(why.clone()))),
                    },
                    Command::Record { index, description } => {
                        if self.aborted.is_none() {
                            self.record(index, description);
                        }
                    }
                    Command::PingPong {
                        peer,
                        bytes,
                        rounds,
                        first,
                        answer,
                    } => {
                        let _ = answer.send(self.transport.ping_pong(peer, bytes, rounds, first));
                    }
                    Command::Finish {
                        answer,
                        wait_for_others,
                    } => self.finish = Some((answer, wait_for_others)),
                    Command::Abort { code, why } => {
                        self.transport.abort(code, &why);
                        // Ranks as threads: this rank's program is gone.
                        self.give_up(&why);
                        break 'run;
                    }
                }
            }
            if self.aborted.is_some() {
                if self.finish.is_some() {
                    break;
                }
                std::thread::park();
                continue;
            }
            self.in_flight = self.transport.progress();
            // Ranks gone before this drain: whatever they sent is in it.
            let gone = self.gone_senders();
            while let Some((from, head)) = self.transport.try_receive_head() {
                worked = true;
                self.arrive(from, head);
            }
            for (id, from) in gone {
                if self.expected.contains_key(&id) {
                    worked = true;
                    self.fail(
                        id,
                        format!(
                            "rank {from} ended its program (its last Cluster dropped without \
                             `finish`) before sending transfer {id}: the ranks did not run the \
                             same sequence of distributed operations"
                        ),
                    );
                }
            }
            if let Some((_, wait_for_others)) = &self.finish {
                if self.in_flight == 0 && self.expected.is_empty() {
                    // Keep receiving while the others get here: a rank that sends a
                    // message nobody asked for must see it received to reach the barrier
                    // itself.
                    if !barrier_started {
                        self.transport.start_barrier();
                        barrier_started = true;
                    }
                    let wait = *wait_for_others || self.transport.needs_every_rank_at_end();
                    if !wait || self.transport.barrier_done() {
                        break;
                    }
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
        self.answer_finish();
        self.transport.leave();
    }

    /// The receives still expected from ranks that are gone.
    fn gone_senders(&self) -> Vec<(u64, usize)> {
        self.expected
            .iter()
            .filter(|(_, expected)| self.transport.has_left(expected.from))
            .map(|(id, expected)| (*id, expected.from))
            .collect()
    }

    /// The program was ended (or this thread cannot go on): fails every receive waiting
    /// here and every later one; `Finish` is then answered with why.
    fn give_up(&mut self, why: &str) {
        for (_, expected) in self.expected.drain() {
            expected
                .promise
                .complete_on_worker(Err(dagger_core::Error::InvalidUse(why.to_owned())));
        }
        self.early.clear();
        self.errors.push(why.to_owned());
        self.aborted = Some(why.to_owned());
    }

    fn answer_finish(&mut self) {
        let errors = std::mem::take(&mut self.errors);
        if let Some((answer, _)) = self.finish.take() {
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
            let why = format!(
                "the ranks diverged at distributed operation {index}: rank {} issued `{}` and \
                 rank {from} issued `{description}`. Every rank must issue the same distributed \
                 operations in the same order, with the same arguments (the SPMD contract)",
                entry.1, entry.0
            );
            self.transport.abort(2, &why);
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
