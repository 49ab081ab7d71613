//! Data-dependency regions: the result equals the sequential program; readers of one
//! object run at the same time; failures and misuse are reported.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use common::{jitter, mix, runtime, watchdog, Rng};

/// Random programs over 6 objects: each task reads up to two objects and writes one
/// (a hash of what it read and the old value); run sequentially and in a region.
#[test]
fn random_programs_match_the_sequential_order() {
    watchdog(120, || {
        let mut rng = Rng::new(0x9E37_79B9u64);
        let mut rand = move |n: u64| rng.below(n);
        for threads in [1, 2, 4] {
            let rt = runtime(threads);
            for _ in 0..8 {
                let steps: Vec<(usize, usize, usize)> = (0..400)
                    .map(|_| (rand(6) as usize, rand(6) as usize, rand(6) as usize))
                    .collect();
                let mut expected: Vec<u64> = (0..6).collect();
                for (i, &(w, r1, r2)) in steps.iter().enumerate() {
                    let (a, b) = (expected[r1], expected[r2]);
                    if r1 == w || r2 == w {
                        expected[w] = mix(expected[w], i as u64);
                    } else {
                        expected[w] = mix(mix(expected[w], a), mix(b, i as u64));
                    }
                }
                let mut objects: Vec<u64> = (0..6).collect();
                rt.install(|| {
                    let [o0, o1, o2, o3, o4, o5] = &mut objects[..] else {
                        unreachable!()
                    };
                    dagger::datadeps(|r| {
                        let d = [
                            r.data(o0),
                            r.data(o1),
                            r.data(o2),
                            r.data(o3),
                            r.data(o4),
                            r.data(o5),
                        ];
                        for (i, &(w, r1, r2)) in steps.iter().enumerate() {
                            let i = i as u64;
                            if r1 == w || r2 == w {
                                r.spawn(d[w].write(), move |x: &mut u64| {
                                    jitter(i);
                                    *x = mix(*x, i)
                                });
                            } else {
                                r.spawn(
                                    (d[w].write(), d[r1].read(), d[r2].read()),
                                    move |x: &mut u64, a: &u64, b: &u64| {
                                        jitter(i);
                                        *x = mix(mix(*x, *a), mix(*b, i))
                                    },
                                );
                            }
                        }
                    })
                    .unwrap();
                });
                assert_eq!(objects, expected, "{threads} threads");
            }
        }
    });
}

#[test]
fn readers_of_one_object_run_at_the_same_time() {
    watchdog(20, || {
        let rt = runtime(2);
        let barrier = Barrier::new(2);
        let mut data = vec![1u32, 2, 3];
        let sums = rt.install(|| {
            dagger::datadeps(|r| {
                let d = r.data(&mut data);
                let b = &barrier;
                let x = r.spawn(d.read(), move |v: &Vec<u32>| {
                    b.wait();
                    v.iter().sum::<u32>()
                });
                let y = r.spawn(d.read(), move |v: &Vec<u32>| {
                    b.wait();
                    v.len() as u32
                });
                (x, y)
            })
            .unwrap()
        });
        assert_eq!((sums.0.fetch().unwrap(), sums.1.fetch().unwrap()), (6, 3));
        data.push(4); // the borrow ended with the region
    });
}

#[test]
fn a_failed_task_fails_the_region_and_its_dependents_do_not_run() {
    watchdog(20, || {
        let ran_after = AtomicUsize::new(0);
        let mut a = 0u32;
        let mut b = 0u32;
        let err = dagger::datadeps(|r| {
            let (da, db) = (r.data(&mut a), r.data(&mut b));
            r.spawn(da.write(), |_: &mut u32| panic!("broken tile"));
            r.spawn((da.read(), db.write()), |_: &u32, _: &mut u32| {
                ran_after.fetch_add(1, Ordering::SeqCst);
            });
        })
        .unwrap_err();
        assert!(err.to_string().contains("broken tile"), "{err}");
        assert_eq!(ran_after.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn declaring_one_object_twice_with_a_write_is_an_error() {
    watchdog(30, || {
        let mut a = 0u32;
        let mut ran = false;
        let outcome = dagger::datadeps(|r| {
            let d = r.data(&mut a);
            let refused = r.spawn((d.write(), d.read()), |_: &mut u32, _: &u32| ran = true);
            // A later task on the same object still runs, in order.
            r.spawn(d.write(), |a: &mut u32| *a += 1);
            refused.wait()
        });
        // The region itself fails, naming the object and the task.
        let err = outcome.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, dagger::Error::InvalidUse(_)), "{text}");
        assert!(text.contains("data object #0 twice"), "{text}");
        assert!(
            text.contains("datadeps.rs"),
            "names where the task was spawned: {text}"
        );
        assert!(!ran, "a refused task never runs");
        assert_eq!(a, 1);
    });
}

/// A region task that spawns more region tasks: the region waits for those too, so
/// nothing writes the data after `datadeps` returns.
#[test]
fn the_region_waits_for_tasks_spawned_by_its_tasks() {
    watchdog(60, || {
        for threads in [1, 2, 4] {
            let rt = runtime(threads);
            for _ in 0..20 {
                let mut x = 0u64;
                let mut y = 0u64;
                rt.install(|| {
                    dagger::datadeps(|r| {
                        let (dx, dy) = (r.data(&mut x), r.data(&mut y));
                        r.spawn(dx.write(), move |x: &mut u64| {
                            *x = 1;
                            // Spawned after the region's closure may have returned.
                            r.spawn(dy.write(), move |y: &mut u64| {
                                std::thread::sleep(std::time::Duration::from_millis(2));
                                r.spawn(dy.write(), |y: &mut u64| *y += 10);
                                *y = 5;
                            });
                        });
                    })
                })
                .unwrap();
                assert_eq!((x, y), (1, 15), "{threads} threads");
            }
        }
    });
}

#[test]
fn the_region_waits_even_when_its_closure_panics() {
    let finished = AtomicUsize::new(0);
    let mut x = 0u64;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = dagger::datadeps(|r| {
            let d = r.data(&mut x);
            r.spawn(d.write(), |x: &mut u64| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                *x = 7;
                finished.fetch_add(1, Ordering::SeqCst);
            });
            panic!("the region's own code fails");
        });
    }));
    assert!(outcome.is_err());
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the task finished before the region returned"
    );
    assert_eq!(x, 7);
}

#[test]
fn a_failing_region_task_stops_its_dependents_and_fails_the_region() {
    watchdog(30, || {
        let rt = runtime(2);
        let mut a = 1u64;
        let mut b = 0u64;
        let mut c = 0u64;
        let mut d = 0u64;
        let result = rt.install(|| {
            dagger::datadeps(|r| {
                let (a, b, c) = (r.data(&mut a), r.data(&mut b), r.data(&mut c));
                let d = r.data(&mut d);
                r.try_spawn((a.read(), b.write()), |a: &u64, b: &mut u64| {
                    *b = *a + 1;
                    if *b == 2 {
                        return Err("b must not be 2");
                    }
                    Ok(())
                });
                r.spawn((b.read(), c.write()), |b: &u64, c: &mut u64| *c = *b * 10);
                // After the failed task (it read `a`): does not run either.
                r.spawn(a.write(), |a: &mut u64| *a = 7);
                // Independent of it: runs.
                r.try_spawn(d.write(), |d: &mut u64| {
                    *d = 5;
                    Ok::<_, std::io::Error>(())
                });
            })
        });
        let error = result.unwrap_err();
        assert!(error.to_string().contains("b must not be 2"), "{error}");
        assert_eq!(c, 0, "the dependent of the failed task ran");
        assert_eq!((a, b, d), (1, 2, 5), "only independent work happens");
    });
}

/// Random region programs: tasks that read and write random objects, tasks that run a
/// nested region on the object they write, and tasks that spawn more tasks into their
/// own region (adding to an accumulator, an order-free operation, so the sequential
/// result is defined). Each is checked against the same steps run in order, on 1, 2
/// and 4 threads: 3 x 3,400 programs.
#[test]
fn random_nested_regions_and_tasks_that_spawn_match_the_sequential_order() {
    let programs = if common::light() { 300 } else { 3_400 };
    #[derive(Clone, Copy)]
    enum Step {
        /// Write `w` from itself and up to two reads.
        Mix { w: usize, r1: usize, r2: usize },
        /// Write `w` through a nested region of `n` steps on it and a local value.
        Nested { w: usize, n: u64 },
        /// Read `r`, then spawn `k` tasks that each add to the accumulator.
        Spawner { r: usize, k: u64 },
    }
    fn nested_value(x: u64, n: u64, salt: u64) -> u64 {
        let (mut x, mut local) = (x, salt);
        for s in 0..n {
            if s % 2 == 0 {
                local = mix(local, x ^ s);
            } else {
                x = mix(x, local.wrapping_add(s));
            }
        }
        mix(x, local)
    }
    watchdog(600, move || {
        let mut rng = Rng::new(0xD47A_DE95);
        let mut ran = 0;
        for threads in [1, 2, 4] {
            let rt = runtime(threads);
            for _ in 0..programs {
                let objects = 1 + rng.below(5) as usize;
                let steps: Vec<Step> = (0..1 + rng.below(12))
                    .map(|_| {
                        let w = rng.below(objects as u64) as usize;
                        match rng.below(5) {
                            0 => Step::Nested {
                                w,
                                n: 1 + rng.below(4),
                            },
                            1 => Step::Spawner {
                                r: w,
                                k: 1 + rng.below(3),
                            },
                            _ => Step::Mix {
                                w,
                                r1: rng.below(objects as u64) as usize,
                                r2: rng.below(objects as u64) as usize,
                            },
                        }
                    })
                    .collect();
                // The sequential program.
                let mut expected: Vec<u64> = (0..objects as u64).collect();
                let mut expected_acc = 0u64;
                for (i, step) in steps.iter().enumerate() {
                    let i = i as u64;
                    match *step {
                        Step::Mix { w, r1, r2 } => {
                            let (a, b) = (expected[r1], expected[r2]);
                            expected[w] = mix(mix(expected[w], a), mix(b, i));
                        }
                        Step::Nested { w, n } => expected[w] = nested_value(expected[w], n, i),
                        Step::Spawner { r, k } => {
                            let seen = expected[r];
                            for j in 0..k {
                                expected_acc = expected_acc.wrapping_add(mix(seen, j));
                            }
                        }
                    }
                }
                // The same steps as region tasks.
                let mut values: Vec<u64> = (0..objects as u64).collect();
                let mut acc = 0u64;
                rt.install(|| {
                    dagger::datadeps(|r| {
                        let acc = r.data(&mut acc);
                        let data: Vec<_> = values.iter_mut().map(|v| r.data(v)).collect();
                        for (i, step) in steps.iter().enumerate() {
                            let i = i as u64;
                            match *step {
                                Step::Mix { w, r1, r2 } if r1 != w && r2 != w && r1 != r2 => {
                                    r.spawn(
                                        (data[w].write(), data[r1].read(), data[r2].read()),
                                        move |x: &mut u64, a: &u64, b: &u64| {
                                            *x = mix(mix(*x, *a), mix(*b, i))
                                        },
                                    );
                                }
                                Step::Mix { w, r1, r2 } => {
                                    // Reads of `w` itself (or twice the same object) go
                                    // through one declared access.
                                    let other = if r1 != w {
                                        Some(r1)
                                    } else if r2 != w {
                                        Some(r2)
                                    } else {
                                        None
                                    };
                                    match other {
                                        Some(o) => {
                                            r.spawn(
                                                (data[w].write(), data[o].read()),
                                                move |x: &mut u64, other: &u64| {
                                                    let a = if r1 == w { *x } else { *other };
                                                    let b = if r2 == w { *x } else { *other };
                                                    *x = mix(mix(*x, a), mix(b, i))
                                                },
                                            );
                                        }
                                        None => {
                                            r.spawn(data[w].write(), move |x: &mut u64| {
                                                *x = mix(mix(*x, *x), mix(*x, i))
                                            });
                                        }
                                    }
                                }
                                Step::Nested { w, n } => {
                                    r.spawn(data[w].write(), move |x: &mut u64| {
                                        let mut local = i;
                                        dagger::datadeps(|inner| {
                                            let (dx, dl) = (inner.data(x), inner.data(&mut local));
                                            for s in 0..n {
                                                if s % 2 == 0 {
                                                    inner.spawn(
                                                        (dl.write(), dx.read()),
                                                        move |l: &mut u64, x: &u64| {
                                                            *l = mix(*l, *x ^ s)
                                                        },
                                                    );
                                                } else {
                                                    inner.spawn(
                                                        (dx.write(), dl.read()),
                                                        move |x: &mut u64, l: &u64| {
                                                            *x = mix(*x, l.wrapping_add(s))
                                                        },
                                                    );
                                                }
                                            }
                                        })
                                        .unwrap();
                                        *x = mix(*x, local);
                                    });
                                }
                                Step::Spawner { r: read, k } => {
                                    r.spawn(data[read].read(), move |seen: &u64| {
                                        let seen = *seen;
                                        for j in 0..k {
                                            r.spawn(acc.write(), move |a: &mut u64| {
                                                *a = a.wrapping_add(mix(seen, j))
                                            });
                                        }
                                    });
                                }
                            }
                        }
                    })
                })
                .unwrap();
                assert_eq!((values, acc), (expected, expected_acc), "{threads} threads");
                ran += 1;
            }
        }
        assert_eq!(ran, 3 * programs);
    });
}
