//! Dynamic tasks: handles, inputs by reference and by value, nesting, cancellation,
//! failure propagation, random graphs against a sequential run, and memory release.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{jitter, mix, runtime, watchdog, DropFlag, Rng};
use dagger::prelude::*;

#[task]
fn double(x: u64) -> u64 {
    2 * x
}

#[test]
fn spawn_and_fetch() {
    watchdog(30, || {
        let rt = runtime(2);
        let a = rt.spawn(|| 21u64);
        let b = rt.spawn_with(a.clone(), double); // a #[task] function as the body
        assert_eq!(b.fetch().unwrap(), 42);
        assert!(a.is_ready());
        assert_eq!(*a.fetch_ref().unwrap(), 21);
        assert!(a.name().contains("spawn_and_fetch"), "{}", a.name());
        assert_eq!(a.location().line(), line!() - 6);
    });
}

#[test]
fn inputs_by_reference_by_value_and_in_bulk() {
    watchdog(30, || {
        let rt = runtime(2);
        let v = rt.spawn(|| vec![1u64, 2, 3]);
        let k = rt.spawn(|| 10u64);
        let s = rt.spawn(|| String::from("x"));
        let three = rt.spawn_with((&v, k.clone(), &s), |v: &Vec<u64>, k: u64, s: &String| {
            format!("{s}{}", v.iter().sum::<u64>() * k)
        });
        assert_eq!(three.fetch().unwrap(), "x60");
        let parts: Vec<Handle<u64>> = (0..100).map(|i| rt.spawn(move || i)).collect();
        let by_ref = rt.spawn_with(&parts, |xs: Vec<&u64>| xs.into_iter().sum::<u64>());
        let by_value = rt.spawn_with(parts, |xs: Vec<u64>| xs.len());
        assert_eq!(by_ref.fetch().unwrap(), 4950);
        assert_eq!(by_value.fetch().unwrap(), 100);
        // Closure parameter types are inferred from the inputs.
        let inferred = rt.spawn_with((&v, k), |v, k| v.len() as u64 + k);
        assert_eq!(inferred.fetch().unwrap(), 13);
    });
}

/// Counts clones, to check that a value passed by value to its only consumer is moved.
struct Counted(Arc<AtomicUsize>);

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone())
    }
}

#[test]
fn a_value_with_one_consumer_is_moved_not_cloned() {
    watchdog(30, || {
        let rt = runtime(2);
        let clones = Arc::new(AtomicUsize::new(0));
        let c = clones.clone();
        // The chain is built before its first task may finish, so every consumer is
        // waiting when its producer finishes: each value is then moved, never cloned.
        let (go, gate) = std::sync::mpsc::channel::<()>();
        let mut h = rt.spawn(move || {
            gate.recv().unwrap();
            Counted(c)
        });
        for _ in 0..100 {
            h = rt.spawn_with(h, |x: Counted| x);
        }
        // The end of the chain reads the value by value too, and returns a plain number.
        let end = rt.spawn_with(h, |x: Counted| x.0.load(Ordering::SeqCst));
        go.send(()).unwrap();
        end.fetch().unwrap();
        assert_eq!(clones.load(Ordering::SeqCst), 0, "moved along the chain");

        // With two consumers, one of them gets a clone.
        let c = clones.clone();
        let shared = rt.spawn(move || Counted(c));
        let a = rt.spawn_with(shared.clone(), |x: Counted| x);
        let b = rt.spawn_with(shared, |x: Counted| x);
        a.wait().unwrap();
        b.wait().unwrap();
        assert!(clones.load(Ordering::SeqCst) >= 1);
    });
}

fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = spawn(move || fib(n - 1));
    let b = fib(n - 2);
    a.fetch().unwrap() + b
}

#[test]
fn nested_spawn_fibonacci() {
    for threads in [1, 2, 4] {
        let v = watchdog(60, move || runtime(threads).install(|| fib(22)));
        assert_eq!(v, 17711, "{threads} threads");
    }
}

#[test]
fn spawn_from_a_thread_outside_any_runtime_uses_the_default() {
    let v = watchdog(30, || fib(15));
    assert_eq!(v, 610);
}

#[test]
fn cancel_before_start_never_runs_and_fails_dependents() {
    watchdog(30, || {
        let rt = runtime(2);
        let ran = Arc::new(AtomicBool::new(false));
        let gate = rt.spawn(|| std::thread::sleep(Duration::from_millis(100)));
        let r = ran.clone();
        let victim = rt.spawn_with(&gate, move |_: &()| r.store(true, Ordering::SeqCst));
        let dependent = rt.spawn_with(&victim, |_: &()| 1u8);
        assert!(victim.cancel(), "not started yet");
        assert!(!victim.cancel(), "only once");
        let err = victim.wait().unwrap_err();
        assert!(matches!(err, dagger::Error::Cancelled { .. }), "{err}");
        let err = dependent.wait().unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert_eq!(err.root_cause().location(), Some(victim.location()));
        gate.wait().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!ran.load(Ordering::SeqCst), "a cancelled task never runs");
        // A task that already ran cannot be cancelled.
        let done = rt.spawn(|| 1);
        done.wait().unwrap();
        assert!(!done.cancel());
        assert_eq!(done.fetch().unwrap(), 1);
    });
}

#[test]
fn failures_name_the_root_cause() {
    watchdog(30, || {
        let rt = runtime(2);
        let line = line!() + 1;
        let root = rt.try_spawn_with((), || -> Result<u64, String> { Err("disk on fire".into()) });
        let mid = rt.spawn_with(&root, |x: &u64| x + 1);
        let leaf = rt.spawn_with((mid, rt.spawn(|| 1u64)), |a: u64, b: u64| a + b);
        let err = leaf.fetch().unwrap_err();
        assert!(
            matches!(err, dagger::Error::DependencyFailed { .. }),
            "{err}"
        );
        let root_cause = err.root_cause();
        assert!(
            matches!(root_cause, dagger::Error::TaskFailed { .. }),
            "{root_cause}"
        );
        assert_eq!(root_cause.location().unwrap().line(), line);
        assert!(err.to_string().contains("disk on fire"), "{err}");

        let panicked = rt.spawn(|| -> u64 { panic!("kaboom") });
        let after = rt.spawn_with(&panicked, |x: &u64| *x);
        let err = after.wait().unwrap_err();
        assert!(
            matches!(err.root_cause(), dagger::Error::TaskPanicked { message, .. } if message == "kaboom")
        );
        // The runtime keeps working.
        assert_eq!(rt.spawn(|| 5).fetch().unwrap(), 5);
    });
}

#[test]
fn a_late_dependent_of_a_failed_task_fails_too() {
    watchdog(30, || {
        let rt = runtime(1);
        let bad = rt.spawn(|| -> u64 { panic!("early") });
        let _ = bad.wait();
        let late = rt.spawn_with(&bad, |x: &u64| *x);
        assert!(late.wait().unwrap_err().to_string().contains("early"));
    });
}

/// Random DAGs of thousands of tasks; each combines its inputs with a hash; compared
/// with a sequential evaluation on 1, 2 and 4 threads.
#[test]
fn random_graphs_match_a_sequential_run() {
    watchdog(120, || {
        let mut rng = Rng::new(0x243F_6A88_85A3_08D3u64);
        let mut rand = move |n: u64| rng.below(n);
        for threads in [1, 2, 4] {
            let rt = runtime(threads);
            for _ in 0..4 {
                let n = 500 + rand(3000) as usize;
                let preds: Vec<Vec<usize>> = (0..n)
                    .map(|i| {
                        if i == 0 {
                            vec![]
                        } else {
                            (0..rand(4)).map(|_| rand(i as u64) as usize).collect()
                        }
                    })
                    .collect();
                let mut expected = vec![0u64; n];
                for i in 0..n {
                    expected[i] = preds[i]
                        .iter()
                        .fold(i as u64, |acc, &j| mix(acc, expected[j]));
                }
                let got = rt.install(|| {
                    let mut handles: Vec<Handle<u64>> = Vec::with_capacity(n);
                    for (i, p) in preds.iter().enumerate() {
                        let inputs: Vec<Handle<u64>> =
                            p.iter().map(|&j| handles[j].clone()).collect();
                        handles.push(spawn_with(inputs, move |xs: Vec<u64>| {
                            jitter(i as u64);
                            xs.into_iter().fold(i as u64, mix)
                        }));
                    }
                    handles
                        .into_iter()
                        .map(|h| h.fetch().unwrap())
                        .collect::<Vec<_>>()
                });
                assert_eq!(got, expected, "{threads} threads, {n} tasks");
            }
        }
    });
}

/// Values of finished tasks are freed as soon as nothing refers to them.
struct Tracked(Arc<AtomicUsize>);

impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn a_long_chain_keeps_only_a_few_values_alive() {
    watchdog(60, || {
        let rt = runtime(2);
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (l, p) = (live.clone(), peak.clone());
        let last = rt.install(move || {
            let mut h = spawn({
                let l = l.clone();
                move || Tracked::new(&l)
            });
            for _ in 0..20_000 {
                let (l, p) = (l.clone(), p.clone());
                h = spawn_with(&h, move |_: &Tracked| {
                    p.fetch_max(l.load(Ordering::SeqCst), Ordering::SeqCst);
                    Tracked::new(&l)
                });
            }
            h
        });
        last.wait().unwrap();
        drop(last);
        assert!(
            peak.load(Ordering::SeqCst) < 1_000,
            "peak live values {}",
            peak.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(live.load(Ordering::SeqCst), 0, "every value freed");
    });
}

#[test]
fn soak_many_graphs_without_growth() {
    watchdog(120, || {
        let rt = runtime(2);
        let live = Arc::new(AtomicUsize::new(0));
        for round in 0..200 {
            let l = live.clone();
            let total = rt.install(move || {
                let leaves: Vec<Handle<Tracked>> = (0..50)
                    .map(|_| {
                        let l = l.clone();
                        spawn(move || Tracked::new(&l))
                    })
                    .collect();
                let sum = spawn_with(&leaves, |xs: Vec<&Tracked>| xs.len());
                drop(leaves);
                sum.fetch().unwrap()
            });
            assert_eq!(total, 50);
            // Everything of this round is freed before the next one starts.
            let mut waited = 0;
            while live.load(Ordering::SeqCst) != 0 && waited < 100 {
                std::thread::sleep(Duration::from_millis(1));
                waited += 1;
            }
            assert_eq!(
                live.load(Ordering::SeqCst),
                0,
                "round {round} left values alive"
            );
        }
    });
}

#[test]
fn a_promise_completed_from_another_thread_releases_its_dependents() {
    watchdog(30, || {
        let rt = runtime(2);
        let (value, promise) = rt.promise::<Vec<u64>>();
        let sum = rt.spawn_with(&value, |v: &Vec<u64>| v.iter().sum::<u64>());
        let doubled = rt.spawn_with(sum.clone(), double);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !sum.is_ready(),
            "a dependent ran before the promise was kept"
        );
        let producer = std::thread::spawn(move || promise.complete(Ok(vec![1, 2, 3])));
        assert!(producer.join().unwrap());
        assert_eq!(doubled.fetch().unwrap(), 12);
        assert_eq!(*value.fetch_ref().unwrap(), vec![1, 2, 3]);
    });
}

#[test]
fn a_promise_completed_on_a_worker_and_one_that_failed() {
    watchdog(30, || {
        let rt = runtime(2);
        let (value, promise) = rt.promise::<u64>();
        let next = rt.spawn_with(value, double);
        std::thread::spawn(move || promise.complete_on_worker(Ok(4)));
        assert_eq!(next.fetch().unwrap(), 8);

        let (value, promise) = rt.promise::<u64>();
        let next = rt.spawn_with(value, double);
        promise.complete(Err(Error::Device("copy failed".into())));
        let error = next.fetch().unwrap_err();
        assert!(matches!(error.root_cause(), Error::Device(m) if m == "copy failed"));
    });
}

#[test]
fn a_dropped_promise_fails_its_handle_and_a_cancelled_one_ignores_its_value() {
    watchdog(30, || {
        let rt = runtime(2);
        let (value, promise) = rt.promise::<u64>();
        let next = rt.spawn_with(value.clone(), double);
        drop(promise);
        let error = next.fetch().unwrap_err();
        assert!(
            error
                .root_cause()
                .to_string()
                .contains("dropped without a value"),
            "{error}"
        );

        let (value, promise) = rt.promise::<u64>();
        assert!(value.cancel());
        assert!(!promise.complete(Ok(1)));
        assert!(value.fetch().unwrap_err().is_cancelled());
    });
}

#[test]
fn a_promise_owned_by_a_task_that_did_not_run_fails_with_the_root_cause() {
    watchdog(30, || {
        let rt = runtime(2);
        let (value, promise) = rt.promise::<u64>();
        let broken = rt.try_spawn_with((), || Err::<u64, _>("no input"));
        rt.spawn_with(broken, move |x: u64| promise.complete(Ok(x)));
        let error = value.fetch().unwrap_err();
        assert!(
            error.root_cause().to_string().contains("no input"),
            "{error}"
        );
    });
}

#[test]
fn wide_fan_outs_run_every_dependent_once_on_their_own_runtime() {
    watchdog(60, || {
        for threads in [1, 2, 4] {
            let rt = runtime(threads);
            let other = runtime(2);
            let (gate, go) = rt.promise::<u64>();
            // Two tasks that finish with many dependents ready at once: one whose
            // dependents all belong to its runtime (queued in batches), one with some on
            // another runtime (queued one by one).
            let root = rt.spawn_with(&gate, |g: &u64| *g);
            let mixed_root = rt.spawn_with(&gate, |g: &u64| *g + 1);
            let runs = Arc::new(AtomicUsize::new(0));
            let leaf = |rt: &Runtime, root: &Handle<u64>, i: u64| {
                let runs = runs.clone();
                rt.spawn_with(root, move |r: &u64| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    mix(*r, i)
                })
            };
            let mut leaves: Vec<Handle<u64>> = (0..5_000).map(|i| leaf(&rt, &root, i)).collect();
            leaves.extend((0..30).map(|i| leaf(&rt, &mixed_root, i)));
            leaves.extend((0..40).map(|i| leaf(&other, &mixed_root, 30 + i)));
            let total = rt.spawn_with(leaves, |v: Vec<u64>| v.iter().fold(0u64, |a, &b| a ^ b));
            assert!(go.complete(Ok(7)));
            let want = (0..5_000u64).fold(0, |a, i| a ^ mix(7, i))
                ^ (0..70u64).fold(0, |a, i| a ^ mix(8, i));
            assert_eq!(total.fetch().unwrap(), want, "threads = {threads}");
            assert_eq!(runs.load(Ordering::Relaxed), 5_070);
        }
    });
}

#[test]
fn cancels_racing_with_finishing_inputs_lose_nothing_and_free_every_task() {
    watchdog(120, || {
        let rt = runtime(3);
        let live = Arc::new(AtomicUsize::new(0));
        for round in 0..300u64 {
            let (gate, go) = rt.promise::<u64>();
            let value = |offset: u64| {
                let l = live.clone();
                move |g: &u64| (g + offset, Tracked::new(&l))
            };
            let a = rt.spawn_with(&gate, value(1));
            let b = rt.spawn_with(&gate, value(2));
            // Two inputs each: these use the task's extra waiter links.
            let joins: Vec<Handle<(u64, Tracked)>> = (0..12)
                .map(|i| {
                    let l = live.clone();
                    rt.spawn_with((&a, &b), move |x: &(u64, Tracked), y: &(u64, Tracked)| {
                        (mix(x.0 ^ y.0, i), Tracked::new(&l))
                    })
                })
                .collect();
            let ends: Vec<Handle<u64>> = joins
                .iter()
                .map(|j| rt.spawn_with(j, |v: &(u64, Tracked)| v.0))
                .collect();
            // Cancel every other join from another thread while the gate opens.
            let victims: Vec<Handle<(u64, Tracked)>> = joins.iter().step_by(2).cloned().collect();
            let canceller = std::thread::spawn(move || {
                jitter(round);
                victims.iter().map(|v| v.cancel()).collect::<Vec<bool>>()
            });
            jitter(round + 1);
            assert!(go.complete(Ok(round)));
            let cancelled = canceller.join().unwrap();
            for (i, (join, end)) in joins.iter().zip(&ends).enumerate() {
                let was_cancelled = i % 2 == 0 && cancelled[i / 2];
                let want = mix((round + 1) ^ (round + 2), i as u64);
                match end.wait() {
                    Ok(()) => {
                        assert!(!was_cancelled, "round {round}: a cancelled task ran");
                        assert_eq!(end.fetch_ref().unwrap(), &want);
                        assert_eq!(join.fetch_ref().unwrap().0, want);
                    }
                    Err(error) => {
                        assert!(was_cancelled, "round {round}: {error}");
                        assert!(error.is_cancelled(), "{error}");
                    }
                }
            }
            drop((a, b, joins, ends, gate));
            // Every task is freed, with its value, once its last reference is gone.
            let mut waited = 0;
            while live.load(Ordering::SeqCst) != 0 && waited < 1000 {
                std::thread::sleep(Duration::from_millis(1));
                waited += 1;
            }
            assert_eq!(live.load(Ordering::SeqCst), 0, "round {round} leaked");
        }
    });
}

#[test]
fn a_dropped_runtime_finishes_its_pending_tasks_then_lets_go() {
    watchdog(120, || {
        for round in 0..40u64 {
            let let_go = Arc::new(AtomicBool::new(false));
            let rt = Runtime::builder()
                .threads(1 + (round % 3) as usize)
                .observer(DropFlag(let_go.clone()))
                .build()
                .unwrap();
            let (gate, go) = rt.promise::<u64>();
            // Spawned on the workers (which lend the tasks their counts) and from here.
            let chain = rt.install(|| {
                let mut h = spawn_with(&gate, |g: &u64| *g);
                for i in 0..500 {
                    h = spawn_with(h, move |x: u64| mix(x, i));
                }
                h
            });
            let last = rt.spawn_with(&chain, |x: &u64| x + 1);
            drop(rt);
            jitter(round);
            assert!(!let_go.load(Ordering::SeqCst), "pending tasks keep it");
            assert!(go.complete(Ok(round)));
            let want = (0..500).fold(round, mix) + 1;
            assert_eq!(last.fetch().unwrap(), want, "round {round}");
            drop((chain, gate));
            let mut waited = 0;
            while !let_go.load(Ordering::SeqCst) && waited < 5_000 {
                std::thread::sleep(Duration::from_millis(1));
                waited += 1;
            }
            assert!(let_go.load(Ordering::SeqCst), "round {round}: never let go");
        }
    });
}

#[test]
fn ready_tasks_spawned_on_one_worker_spread_over_the_idle_ones() {
    watchdog(60, || {
        let rt = runtime(4);
        let ran_on = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let r = ran_on.clone();
        let total = rt.install(move || {
            // All spawned from one worker into its own queue; the others must steal.
            let handles: Vec<Handle<u64>> = (0..800u64)
                .map(|i| {
                    let r = r.clone();
                    spawn(move || {
                        let name = std::thread::current().name().map(str::to_owned);
                        r.lock().unwrap().insert(name);
                        std::thread::sleep(Duration::from_micros(250));
                        i
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.fetch().unwrap()).sum::<u64>()
        });
        assert_eq!(total, (0..800).sum::<u64>());
        let threads = ran_on.lock().unwrap().len();
        assert!(threads >= 3, "only {threads} of 4 workers ran tasks");
    });
}

#[test]
fn a_task_blocked_outside_dagger_does_not_hold_up_what_it_spawned() {
    watchdog(60, || {
        let rt = runtime(2);
        for round in 0..50u64 {
            let total = rt.install(|| {
                // The children sit in this worker's own queue while it blocks on a channel
                // (not on a handle, so it cannot run them itself): the other worker must
                // be able to take them.
                let (tx, rx) = std::sync::mpsc::channel();
                let children: Vec<Handle<()>> = (0..4u64)
                    .map(|i| {
                        let tx = tx.clone();
                        spawn(move || tx.send(mix(round, i)).unwrap())
                    })
                    .collect();
                let sum = (0..4)
                    .map(|_| rx.recv().unwrap())
                    .fold(0u64, u64::wrapping_add);
                drop(children);
                sum
            });
            let want = (0..4).map(|i| mix(round, i)).fold(0u64, u64::wrapping_add);
            assert_eq!(total, want);
        }
    });
}

/// A random tree of nested spawns, evaluated in parallel and sequentially: each call
/// spawns up to 5 children (how many follows from its seed) and waits for them in two
/// ways: the first two by handle, the rest through a task that joins them.
fn tree_parallel(seed: u64, depth: u32) -> u64 {
    let mut rng = Rng::new(seed);
    if depth == 0 {
        jitter(seed);
        return mix(seed, 1);
    }
    let children: Vec<Handle<u64>> = (0..rng.below(6))
        .map(|k| {
            let child = mix(seed, k);
            spawn(move || tree_parallel(child, depth - 1))
        })
        .collect();
    let (first, rest) = children.split_at(children.len().min(2));
    let joined = spawn_with(rest.to_vec(), |xs: Vec<u64>| xs.into_iter().fold(0, mix));
    first
        .iter()
        .map(|h| h.fetch_ref().unwrap())
        .fold(seed, |a, &b| mix(a, b))
        ^ joined.fetch().unwrap()
}

fn tree_sequential(seed: u64, depth: u32) -> u64 {
    let mut rng = Rng::new(seed);
    if depth == 0 {
        return mix(seed, 1);
    }
    let values: Vec<u64> = (0..rng.below(6))
        .map(|k| tree_sequential(mix(seed, k), depth - 1))
        .collect();
    let (first, rest) = values.split_at(values.len().min(2));
    first.iter().fold(seed, |a, &b| mix(a, b)) ^ rest.iter().fold(0, |a, &b| mix(a, b))
}

#[test]
fn random_nested_spawns_match_a_sequential_run_on_any_thread_count() {
    watchdog(120, || {
        for threads in [1, 2, 3, 8] {
            let rt = runtime(threads);
            let depth = if common::light() { 5 } else { 8 };
            for seed in 1..=6u64 {
                let want = tree_sequential(seed, depth);
                let got = rt.install(move || tree_parallel(seed, depth));
                assert_eq!(got, want, "{threads} threads, seed {seed}");
            }
        }
    });
}
