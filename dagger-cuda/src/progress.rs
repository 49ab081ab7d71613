//! Completions: a thread per device polls the events that someone waits for and calls
//! their continuations. CUDA host functions (`cuLaunchHostFunc`) would do the same from a
//! driver thread, but they are never called once the context has an error (so whatever
//! waits for them hangs), they occupy their stream until they run, and their code must
//! not call CUDA. A polled event reports a sticky error instead: every waiting
//! continuation gets `Error::Device`.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use dagger_core::Error;

use crate::event::Completion;

/// What to run when an event completes (or fails).
pub type Then = Box<dyn FnOnce(Result<(), Error>) + Send>;

struct State<E> {
    watched: Vec<(E, Then)>,
    running: bool,
    stopping: bool,
}

struct Shared<E> {
    state: Mutex<State<E>>,
    wake: Condvar,
}

/// The progress engine of one device; its thread starts with the first watch and parks
/// while nothing is watched.
pub struct Progress<E: Completion + 'static> {
    shared: Arc<Shared<E>>,
}

impl<E: Completion + 'static> Default for Progress<E> {
    fn default() -> Self {
        Progress {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    watched: Vec::new(),
                    running: false,
                    stopping: false,
                }),
                wake: Condvar::new(),
            }),
        }
    }
}

/// Longest sleep between polls while something is watched: the added latency of a
/// completion, against a core kept busy.
const MAX_PAUSE: Duration = Duration::from_micros(50);

impl<E: Completion + 'static> Progress<E> {
    /// Calls `then` once `event` is done (`Ok`) or has failed (`Err(Error::Device)`), on
    /// the progress thread. If that thread cannot be started, `then` gets the error now.
    pub fn watch(&self, event: E, then: Then) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.watched.push((event, then));
        if state.running {
            self.shared.wake.notify_one();
            return;
        }
        let shared = self.shared.clone();
        let started = std::thread::Builder::new()
            .name("dagger-cuda-progress".into())
            .spawn(move || run(&shared));
        match started {
            Ok(_) => state.running = true,
            Err(error) => {
                let (_, then) = state.watched.pop().expect("pushed above");
                drop(state);
                then(Err(Error::Device(format!(
                    "could not start the CUDA progress thread: {error}"
                ))));
            }
        }
    }

    /// How many events are watched now.
    #[cfg(test)]
    pub fn watching(&self) -> usize {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.watched.len()
    }
}

impl<E: Completion + 'static> Drop for Progress<E> {
    fn drop(&mut self) {
        // Not joined: the last owner may be dropped by a continuation on that thread. It
        // finishes what is watched, then ends.
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stopping = true;
        self.shared.wake.notify_one();
    }
}

/// The progress thread: poll, call what finished, back off while nothing does.
fn run<E: Completion>(shared: &Shared<E>) {
    let mut pause = Duration::from_micros(1);
    loop {
        let watched = {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while state.watched.is_empty() {
                if state.stopping {
                    state.running = false;
                    return;
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                pause = Duration::from_micros(1);
            }
            std::mem::take(&mut state.watched)
        };
        let mut finished = Vec::new();
        let mut pending = Vec::new();
        for (event, then) in watched {
            match event.is_done() {
                Ok(false) => pending.push((event, then)),
                Ok(true) => finished.push((event, then, Ok(()))),
                Err(error) => finished.push((event, then, Err(error))),
            }
        }
        if !pending.is_empty() {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            // Keep the order of arrival: older first.
            pending.append(&mut state.watched);
            state.watched = pending;
        }
        let progressed = !finished.is_empty();
        for (event, then, outcome) in finished {
            // A panicking continuation must not stop completions for everyone else.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || then(outcome)));
            drop(event);
        }
        if progressed {
            pause = Duration::from_micros(1);
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_timeout;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::mpsc;

    const RUNNING: u8 = 0;
    const DONE: u8 = 1;
    const FAULT: u8 = 2;

    /// A recorded event whose fate the test decides; a fault is sticky for the whole
    /// fake device, as a CUDA context error is.
    #[derive(Clone)]
    struct FakeEvent {
        own: Arc<AtomicU8>,
        device: Arc<AtomicU8>,
    }

    impl Completion for FakeEvent {
        fn is_done(&self) -> Result<bool, Error> {
            if self.device.load(Ordering::Acquire) == FAULT {
                return Err(Error::Device(
                    "an illegal memory access was encountered".into(),
                ));
            }
            Ok(self.own.load(Ordering::Acquire) == DONE)
        }
    }

    fn device() -> Arc<AtomicU8> {
        Arc::new(AtomicU8::new(RUNNING))
    }

    fn event(device: &Arc<AtomicU8>) -> FakeEvent {
        FakeEvent {
            own: Arc::new(AtomicU8::new(RUNNING)),
            device: device.clone(),
        }
    }

    fn report(sender: &mpsc::Sender<(usize, Result<(), Error>)>, n: usize) -> Then {
        let sender = sender.clone();
        Box::new(move |outcome| sender.send((n, outcome)).unwrap())
    }

    #[test]
    fn continuations_run_when_their_events_complete() {
        with_timeout(30, || {
            let progress = Progress::default();
            let gpu = device();
            let (sender, results) = mpsc::channel();
            let events: Vec<FakeEvent> = (0..3).map(|_| event(&gpu)).collect();
            for (n, e) in events.iter().enumerate() {
                progress.watch(e.clone(), report(&sender, n));
            }
            std::thread::sleep(Duration::from_millis(20));
            assert!(results.try_recv().is_err(), "nothing is done yet");
            events[1].own.store(DONE, Ordering::Release);
            let (n, outcome) = results.recv().unwrap();
            assert_eq!(n, 1);
            assert!(outcome.is_ok());
            events[0].own.store(DONE, Ordering::Release);
            events[2].own.store(DONE, Ordering::Release);
            let mut rest: Vec<usize> = (0..2).map(|_| results.recv().unwrap().0).collect();
            rest.sort();
            assert_eq!(rest, vec![0, 2]);
            assert_eq!(progress.watching(), 0);
        });
    }

    #[test]
    fn a_device_fault_fails_every_waiter_instead_of_hanging() {
        with_timeout(30, || {
            let progress = Progress::default();
            let gpu = device();
            let (sender, results) = mpsc::channel();
            for n in 0..5 {
                progress.watch(event(&gpu), report(&sender, n));
            }
            gpu.store(FAULT, Ordering::Release);
            for _ in 0..5 {
                match results.recv().unwrap().1 {
                    Err(Error::Device(message)) => assert!(message.contains("illegal")),
                    other => panic!("expected a device error, got {other:?}"),
                }
            }
            // Watched after the fault: fails too.
            progress.watch(event(&gpu), report(&sender, 9));
            assert!(matches!(
                results.recv().unwrap(),
                (9, Err(Error::Device(_)))
            ));
        });
    }

    #[test]
    fn a_continuation_may_watch_more_and_a_panicking_one_stops_nothing() {
        with_timeout(30, || {
            let progress = Arc::new(Progress::default());
            let gpu = device();
            let (sender, results) = mpsc::channel();
            let first = event(&gpu);
            first.own.store(DONE, Ordering::Release);
            progress.watch(first.clone(), Box::new(|_| panic!("a user's bug")));
            let (again, inner) = (progress.clone(), first.clone());
            let chained = report(&sender, 2);
            progress.watch(first, Box::new(move |_| again.watch(inner, chained)));
            assert_eq!(results.recv().unwrap().0, 2);
        });
    }

    #[test]
    fn dropping_the_engine_lets_its_thread_finish_what_is_watched() {
        with_timeout(30, || {
            let gpu = device();
            let (sender, results) = mpsc::channel();
            let e = event(&gpu);
            {
                let progress = Progress::default();
                progress.watch(e.clone(), report(&sender, 0));
            }
            e.own.store(DONE, Ordering::Release);
            assert!(results.recv().unwrap().1.is_ok());
        });
    }
}
