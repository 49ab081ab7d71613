//! Waiting cannot deadlock and cannot overflow the stack; panics in destructors and
//! observers end tasks instead of hanging or aborting. Every test runs under the watchdog.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{mix, runtime, watchdog, Rng};
use dagger::observe::{Observer, TaskEnd};
use dagger::{Error, Handle, Runtime};

/// The case: A waits for a promise; B, spawned with no inputs, fetches A. On one
/// worker, A's wait must not run B on top of itself.
#[test]
fn a_waiting_task_does_not_run_a_task_that_waits_for_it() {
    watchdog(30, || {
        for threads in [1, 2] {
            let rt = runtime(threads);
            let (promised, promise) = rt.promise::<u64>();
            let a = rt.spawn(move || promised.fetch().unwrap() + 1);
            let a2 = a.clone();
            let b = rt.spawn(move || a2.fetch().unwrap() * 10);
            std::thread::sleep(std::time::Duration::from_millis(20));
            promise.complete(Ok(4));
            assert_eq!(b.fetch().unwrap(), 50);
            assert_eq!(a.fetch().unwrap(), 5);
        }
    });
}

/// A task waits for a promise that a task queued after it completes: on one worker, the
/// waiting worker blocks and a spare thread runs the queued task.
#[test]
fn a_promise_completed_by_a_queued_task() {
    watchdog(30, || {
        for threads in [1, 2] {
            let rt = runtime(threads);
            let out = rt
                .spawn(|| {
                    let (value, promise) = dagger::promise::<u64>();
                    let waiter = dagger::spawn(move || value.fetch().unwrap() * 2);
                    let _completer = dagger::spawn(move || promise.complete(Ok(21)));
                    waiter.fetch().unwrap()
                })
                .fetch()
                .unwrap();
            assert_eq!(out, 42);
        }
    });
}

/// Inside a task on one worker: fetch a task whose input is still queued on this worker.
#[test]
fn fetching_a_task_whose_input_is_queued_here() {
    watchdog(30, || {
        let rt = runtime(1);
        let out = rt
            .spawn(|| {
                let y = dagger::spawn(|| 5_u64);
                let x = dagger::spawn_with(&y, |y: &u64| y + 1);
                let z = dagger::spawn_with((&x, &y), |x: &u64, y: &u64| x * y);
                z.fetch().unwrap() + x.fetch().unwrap()
            })
            .fetch()
            .unwrap();
        assert_eq!(out, 36);
    });
}

fn nested(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    dagger::spawn(move || nested(depth - 1)).fetch().unwrap() + 1
}

/// Nested spawn-and-fetch 10,000 deep, on default settings (this test binary is a debug
/// build in `cargo test`), on 1 and 2 threads.
#[test]
fn recursion_ten_thousand_deep() {
    watchdog(120, || {
        for threads in [1, 2] {
            let rt = runtime(threads);
            assert_eq!(rt.spawn(|| nested(10_000)).fetch().unwrap(), 10_000);
        }
    });
}

/// With a small stack, recursion deeper than it holds continues on spare threads: it
/// completes instead of aborting the process.
#[test]
fn recursion_deeper_than_the_stack_continues_on_spares() {
    watchdog(120, || {
        let rt = Runtime::builder()
            .threads(1)
            .stack_size(2 << 20)
            .build()
            .unwrap();
        assert_eq!(rt.spawn(|| nested(3_000)).fetch().unwrap(), 3_000);
    });
}

#[test]
fn a_tiny_stack_is_a_config_error() {
    let err = Runtime::builder().stack_size(1024).build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

struct PanicsOnDrop(Arc<AtomicUsize>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a destructor fails");
    }
}

/// A cancelled task whose captured value panics on drop still ends: its handle fails
/// with an error that says so; a task skipped because its input failed ends too.
#[test]
fn panics_in_destructors_of_tasks_that_never_run() {
    watchdog(30, || {
        let rt = runtime(1);
        let drops = Arc::new(AtomicUsize::new(0));
        // Cancel a task that waits for a promise (so it has not started).
        let (gate, open) = rt.promise::<u64>();
        let guard = PanicsOnDrop(drops.clone());
        let cancelled = rt.spawn_with(gate.clone(), move |_: u64| {
            let _keep = &guard;
            1_u64
        });
        assert!(cancelled.cancel());
        let err = cancelled.wait().unwrap_err().to_string();
        assert!(err.contains("panicked when dropped"), "{err}");
        assert!(err.contains("a destructor fails"), "{err}");
        // A task skipped because its input failed.
        let failing = rt.spawn(|| -> u64 { panic!("input fails") });
        let guard = PanicsOnDrop(drops.clone());
        let skipped = rt.spawn_with(failing, move |x: u64| {
            let _keep = &guard;
            x
        });
        let err = skipped.fetch().unwrap_err().to_string();
        assert!(err.contains("input fails"), "{err}");
        open.complete(Ok(0));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        // The runtime goes on.
        assert_eq!(rt.spawn(|| 7_u64).fetch().unwrap(), 7);
    });
}

struct Exploding {
    calls: Arc<AtomicUsize>,
}

impl Observer for Exploding {
    fn task_finished(&self, _task: &TaskEnd<'_>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        panic!("the observer fails");
    }
}

/// A panicking observer is reported once and detached; the runs go on.
#[test]
fn a_panicking_observer_is_detached() {
    watchdog(30, || {
        let calls = Arc::new(AtomicUsize::new(0));
        let rt = Runtime::builder()
            .threads(2)
            .observer(Exploding {
                calls: calls.clone(),
            })
            .build()
            .unwrap();
        let handles: Vec<Handle<u64>> = (0..100).map(|i| rt.spawn(move || i)).collect();
        let sum: u64 = handles.into_iter().map(|h| h.fetch().unwrap()).sum();
        assert_eq!(sum, 4950);
        let y = dagger::dag! { let a = { 1_u64 }; let b = { a + 1 }; b }
            .run_on(&rt)
            .unwrap();
        assert_eq!(y, 2);
        let seen = calls.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&seen),
            "called {seen} times after its panic"
        );
    });
}

/// Random dynamic graphs in which tasks fetch other tasks' handles (always earlier ones,
/// so no cycles), take them as inputs, spawn and fetch children, or wait for a promise
/// that a later leaf task completes: every program completes with the sequential result,
/// on 1, 2 and 4 threads.
#[test]
fn random_dynamic_graphs_with_fetches_complete() {
    let programs = if common::light() { 300 } else { 3_400 };
    watchdog(600, move || {
        let mut rng = Rng::new(0x5EED_F00D);
        let mut ran = 0;
        for threads in [1, 2, 4] {
            let rt = runtime(threads);
            for _ in 0..programs {
                check_random_graph(&rt, &mut rng);
                ran += 1;
            }
        }
        assert_eq!(ran, 3 * programs);
    });
}

#[derive(Clone, Copy)]
enum Dep {
    /// A `spawn_with` input.
    Input(usize),
    /// Fetched inside the task's body.
    Fetch(usize),
}

fn check_random_graph(rt: &Runtime, rng: &mut Rng) {
    let n = 2 + rng.below(14) as usize;
    // Which earlier tasks each task depends on, and how; some tasks also spawn a child.
    let plan: Vec<(Vec<Dep>, bool)> = (0..n)
        .map(|i| {
            let deps = (0..rng.below(3))
                .filter(|_| i > 0)
                .map(|_| {
                    let j = rng.below(i as u64) as usize;
                    if rng.below(2) == 0 {
                        Dep::Input(j)
                    } else {
                        Dep::Fetch(j)
                    }
                })
                .collect();
            (deps, rng.below(4) == 0)
        })
        .collect();
    // One promise, waited for by a random task and completed by a leaf spawned last.
    let waiter = rng.below(n as u64) as usize;
    let secret = rng.below(1000);
    let mut expected = Vec::with_capacity(n);
    for (i, (deps, child)) in plan.iter().enumerate() {
        let mut v = i as u64;
        for dep in deps {
            let j = match dep {
                Dep::Input(j) | Dep::Fetch(j) => *j,
            };
            v = mix(v, expected[j]);
        }
        if *child {
            v = mix(v, 7);
        }
        if i == waiter {
            v = mix(v, secret);
        }
        expected.push(v);
    }
    let (promised, promise) = rt.promise::<u64>();
    let mut handles: Vec<Handle<u64>> = Vec::with_capacity(n);
    for (i, (deps, child)) in plan.iter().enumerate() {
        let inputs: Vec<Handle<u64>> = deps
            .iter()
            .filter_map(|d| match d {
                Dep::Input(j) => Some(handles[*j].clone()),
                Dep::Fetch(_) => None,
            })
            .collect();
        let fetched: Vec<(usize, Handle<u64>)> = deps
            .iter()
            .enumerate()
            .filter_map(|(k, d)| match d {
                Dep::Fetch(j) => Some((k, handles[*j].clone())),
                Dep::Input(_) => None,
            })
            .collect();
        let kinds: Vec<bool> = deps.iter().map(|d| matches!(d, Dep::Input(_))).collect();
        let child = *child;
        let wait = (i == waiter).then(|| promised.clone());
        let handle = rt.spawn_with(inputs, move |values: Vec<u64>| {
            let mut v = i as u64;
            let (mut from_inputs, mut from_fetches) = (values.into_iter(), fetched.into_iter());
            for input in kinds {
                let value = if input {
                    from_inputs.next().unwrap()
                } else {
                    from_fetches.next().unwrap().1.fetch().unwrap()
                };
                v = mix(v, value);
            }
            if child {
                v = mix(v, dagger::spawn(|| 7_u64).fetch().unwrap());
            }
            if let Some(p) = wait {
                v = mix(v, p.fetch().unwrap());
            }
            v
        });
        handles.push(handle);
    }
    let promise = Mutex::new(Some(promise));
    let completer = rt.spawn(move || {
        if let Some(p) = promise.lock().unwrap().take() {
            p.complete(Ok(secret));
        }
    });
    let got: Vec<u64> = handles.into_iter().map(|h| h.fetch().unwrap()).collect();
    completer.wait().unwrap();
    assert_eq!(got, expected);
}

/// A task that waits inside rayon (here: a `dag!` whose other node runs on another
/// worker) must not run, on top of itself, a queued task that waits for it.
#[test]
fn a_task_waiting_inside_rayon_does_not_run_a_task_that_waits_for_it() {
    use std::time::Duration;
    watchdog(30, || {
        let rt = Arc::new(runtime(2));
        let inner = rt.clone();
        let a = rt.spawn(move || {
            dagger::dag! {
                let x = { std::thread::sleep(Duration::from_millis(100)); 1_u64 };
                let y = { std::thread::sleep(Duration::from_millis(300)); 2_u64 };
                x + y
            }
            .run_on(&inner)
            .unwrap()
        });
        std::thread::sleep(Duration::from_millis(20));
        let a2 = a.clone();
        let b = rt.spawn(move || a2.fetch().unwrap() + 1);
        assert_eq!(b.fetch().unwrap(), 4);
        assert_eq!(a.fetch().unwrap(), 3);
    });
}

/// On one worker, tasks repeatedly wait for a promise that only a spare thread can
/// complete (its completer is queued behind the waiter): spares come and go many times,
/// and none may leave while a worker it replaces is blocked.
#[test]
fn spares_come_and_go_without_losing_a_blocked_worker() {
    watchdog(120, || {
        let rounds = if common::light() { 30 } else { 300 };
        for _ in 0..4 {
            let rt = runtime(1);
            let done = rt
                .spawn(move || {
                    for i in 0..rounds {
                        let (value, promise) = dagger::promise::<u64>();
                        let _completer = dagger::spawn(move || promise.complete(Ok(i)));
                        assert_eq!(value.fetch().unwrap(), i);
                    }
                    rounds
                })
                .fetch()
                .unwrap();
            assert_eq!(done, rounds);
        }
    });
}
