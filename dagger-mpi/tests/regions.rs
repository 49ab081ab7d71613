//! Distributed regions, merged traces and the end of a program, attacked: programs that
//! try to get a wrong result, a hang, a panic where an error is due, a lost failure or an
//! aliased value (from an outside review). Every multi-rank program runs under a timeout.
//! (Ranks as threads share one runtime, so each rank's recorder sees every rank's tasks:
//! only under MPI does each rank's part of a merged trace hold its own tasks alone.)

mod threads;

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use threads::{all_ok, e, panic_text, run_ranks};

use dagger_mpi::{local_ranks, Cluster, DecodeError, DistData, EncodeError, Transfer};

fn hash(v: &[u64]) -> u64 {
    v.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ x).wrapping_mul(0x100_0000_01b3)
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------
// Regions against plain sequential Rust
// ---------------------------------------------------------------------------------

/// A random region program (fixed seed: the same on every rank) against the same steps on
/// plain vectors. Unlike the crate's own check, every reader's verdict is counted in a
/// shared counter (a panicking reader's failure is lost, so an `assert!` in a reader
/// proves nothing), `home()` is checked after every step against a model, and fetches
/// happen in the middle of the program too. Readers sometimes sleep, so that later writes
/// are issued while they still hold `&T`: they must not see those writes.
fn random_region_program(
    cluster: &Cluster,
    seed: u64,
    len: usize,
    bad: &Arc<AtomicUsize>,
) -> Result<(), String> {
    const OBJECTS: usize = 4;
    let size = cluster.size();
    let me = cluster.rank();
    let objects: Vec<DistData<Vec<u64>>> = (0..OBJECTS)
        .map(|i| cluster.data_on(i % size, move || vec![i as u64 + 1; len]))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let mut plain: Vec<Vec<u64>> = (0..OBJECTS).map(|i| vec![i as u64 + 1; len]).collect();
    let mut homes: Vec<usize> = (0..OBJECTS).map(|i| i % size).collect();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let check_reader = |expected: u64, sleep: bool, bad: Arc<AtomicUsize>| {
        move |v: &Vec<u64>| {
            let before = hash(v);
            if sleep {
                std::thread::sleep(Duration::from_millis(3));
            }
            let after = hash(v);
            if before != expected || after != expected {
                bad.fetch_add(1, Ordering::SeqCst);
            }
        }
    };
    for step in 0..70u64 {
        let i = rng.below(OBJECTS);
        let j = (i + 1 + rng.below(OBJECTS - 1)) % OBJECTS;
        let k = (0..OBJECTS).find(|&k| k != i && k != j).unwrap();
        let rank = rng.below(size);
        let op = rng.below(10);
        match op {
            0 => {
                cluster
                    .spawn_accessing(objects[i].write(), move |v: &mut Vec<u64>| {
                        v.iter_mut()
                            .for_each(|x| *x = x.wrapping_mul(3).wrapping_add(step))
                    })
                    .map_err(e)?;
                plain[i]
                    .iter_mut()
                    .for_each(|x| *x = x.wrapping_mul(3).wrapping_add(step));
            }
            1 => {
                cluster
                    .spawn_accessing_on(rank, objects[i].write(), move |v: &mut Vec<u64>| {
                        v.iter_mut()
                            .enumerate()
                            .for_each(|(n, x)| *x ^= step << (n % 7))
                    })
                    .map_err(e)?;
                plain[i]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(n, x)| *x ^= step << (n % 7));
                homes[i] = rank;
            }
            2 | 3 => {
                let src = (objects[j].read(), objects[i].write());
                let f = |s: &Vec<u64>, d: &mut Vec<u64>| {
                    d.iter_mut()
                        .zip(s)
                        .for_each(|(d, s)| *d = d.wrapping_add(*s).rotate_left(1))
                };
                if op == 2 {
                    cluster.spawn_accessing(src, f).map_err(e)?;
                } else {
                    cluster.spawn_accessing_on(rank, src, f).map_err(e)?;
                    homes[i] = rank;
                }
                let s = plain[j].clone();
                plain[i]
                    .iter_mut()
                    .zip(&s)
                    .for_each(|(d, s)| *d = d.wrapping_add(*s).rotate_left(1));
            }
            4 | 5 => {
                let expected = hash(&plain[i]);
                let sleep = rng.below(3) == 0;
                let reader = check_reader(expected, sleep, bad.clone());
                if op == 4 {
                    cluster
                        .spawn_accessing(objects[i].read(), reader)
                        .map_err(e)?;
                } else {
                    cluster
                        .spawn_accessing_on(rank, objects[i].read(), reader)
                        .map_err(e)?;
                }
            }
            6 => {
                cluster
                    .spawn_accessing_on(
                        rank,
                        (objects[i].read(), objects[j].read(), objects[k].write()),
                        |a: &Vec<u64>, b: &Vec<u64>, c: &mut Vec<u64>| {
                            for ((c, a), b) in c.iter_mut().zip(a).zip(b) {
                                *c ^= a.wrapping_sub(*b);
                            }
                        },
                    )
                    .map_err(e)?;
                let (a, b) = (plain[i].clone(), plain[j].clone());
                for ((c, a), b) in plain[k].iter_mut().zip(&a).zip(&b) {
                    *c ^= a.wrapping_sub(*b);
                }
                homes[k] = rank;
            }
            7 => {
                cluster
                    .spawn_accessing_on(
                        rank,
                        (objects[i].write(), objects[j].write()),
                        |a: &mut Vec<u64>, b: &mut Vec<u64>| {
                            std::mem::swap(a, b);
                            a[0] = a[0].wrapping_add(1);
                        },
                    )
                    .map_err(e)?;
                plain.swap(i, j);
                plain[i][0] = plain[i][0].wrapping_add(1);
                homes[i] = rank;
                homes[j] = rank;
            }
            8 => {
                let got = objects[i].fetch_on(rank).map_err(e)?;
                match got {
                    Some(v) if me == rank => {
                        if v != plain[i] {
                            return Err(format!(
                                "step {step}: fetch_on({rank}) of object {i} differs"
                            ));
                        }
                    }
                    None if me != rank => {}
                    other => {
                        return Err(format!(
                            "step {step}: fetch_on({rank}) gave {:?} on rank {me}",
                            other.map(|v| v.len())
                        ))
                    }
                }
            }
            _ => {
                let got = objects[i].fetch().map_err(e)?;
                if got != plain[i] {
                    return Err(format!("step {step}: fetch of object {i} differs"));
                }
            }
        }
        for (n, data) in objects.iter().enumerate() {
            if data.home() != homes[n] {
                return Err(format!(
                    "step {step} (op {op}): object {n} is at {} but should be at {}",
                    data.home(),
                    homes[n]
                ));
            }
        }
    }
    for (n, data) in objects.iter().enumerate() {
        if data.fetch().map_err(e)? != plain[n] {
            return Err(format!("seed {seed}: object {n} differs at the end"));
        }
    }
    Ok(())
}

fn random_regions_on(size: usize, len: usize, seeds: std::ops::Range<u64>) {
    let bad = Arc::new(AtomicUsize::new(0));
    let counter = bad.clone();
    let outcome = run_ranks(size, 90, move |cluster| {
        for seed in seeds.clone() {
            random_region_program(&cluster, seed, len, &counter)
                .map_err(|why| format!("seed {seed}: {why}"))?;
        }
        cluster.finish().map_err(e)
    });
    all_ok(&format!("{size} ranks, len {len}"), outcome);
    assert_eq!(bad.load(Ordering::SeqCst), 0, "readers saw a wrong version");
}

#[test]
fn random_regions_small_objects_1_to_4_ranks() {
    for size in 1..=4 {
        random_regions_on(size, 8, 0..6);
    }
}

/// Objects over the inline limit (bulk bytes borrowed from the value while they are sent).
#[test]
fn random_regions_large_objects_3_ranks() {
    random_regions_on(3, 20_000, 100..103);
}

/// Write, then a read on every rank, many times: each reader sees the write issued just
/// before it, never a later one, and never an earlier one.
#[test]
fn written_on_one_rank_read_on_all() {
    let bad = Arc::new(AtomicUsize::new(0));
    let counter = bad.clone();
    let outcome = run_ranks(4, 60, move |cluster| {
        let size = cluster.size();
        let a = cluster.data_on(0, || vec![0u64; 10_000]).map_err(e)?;
        for round in 0..25u64 {
            cluster
                .spawn_accessing_on(round as usize % size, a.write(), move |v: &mut Vec<u64>| {
                    v.iter_mut().for_each(|x| *x = round + 1)
                })
                .map_err(e)?;
            for reader in 0..size {
                let bad = counter.clone();
                cluster
                    .spawn_accessing_on(reader, a.read(), move |v: &Vec<u64>| {
                        if reader == 1 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        if v.iter().any(|&x| x != round + 1) {
                            bad.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .map_err(e)?;
            }
        }
        let v = a.fetch().map_err(e)?;
        cluster.finish().map_err(e)?;
        Ok(v.iter().all(|&x| x == 25))
    });
    assert!(all_ok("write then read on all", outcome)
        .into_iter()
        .all(|ok| ok));
    assert_eq!(bad.load(Ordering::SeqCst), 0, "readers saw a wrong version");
}

/// Many small tasks over two counters on three ranks, placement alternating: the counts of
/// plain sequential Rust.
#[test]
fn many_tasks_over_few_objects() {
    let outcome = run_ranks(3, 60, |cluster| {
        let size = cluster.size();
        let a = cluster.data_on(0, || 0u64).map_err(e)?;
        let b = cluster.data_on(size - 1, || 1u64).map_err(e)?;
        let (mut pa, mut pb) = (0u64, 1u64);
        for step in 0..400u64 {
            match step % 4 {
                0 => {
                    cluster
                        .spawn_accessing_on(step as usize % size, a.write(), move |a: &mut u64| {
                            *a += step
                        })
                        .map_err(e)?;
                    pa += step;
                }
                1 => {
                    cluster
                        .spawn_accessing((a.read(), b.write()), |a: &u64, b: &mut u64| {
                            *b = b.wrapping_mul(31).wrapping_add(*a)
                        })
                        .map_err(e)?;
                    pb = pb.wrapping_mul(31).wrapping_add(pa);
                }
                2 => {
                    cluster
                        .spawn_accessing_on(
                            (step as usize / 4) % size,
                            (b.read(), a.write()),
                            |b: &u64, a: &mut u64| *a ^= b >> 3,
                        )
                        .map_err(e)?;
                    pa ^= pb >> 3;
                }
                _ => {
                    cluster
                        .spawn_accessing_on(
                            (step as usize / 3) % size,
                            (a.write(), b.write()),
                            |a: &mut u64, b: &mut u64| std::mem::swap(a, b),
                        )
                        .map_err(e)?;
                    std::mem::swap(&mut pa, &mut pb);
                }
            }
        }
        let got = (a.fetch().map_err(e)?, b.fetch().map_err(e)?);
        cluster.finish().map_err(e)?;
        Ok((got, (pa, pb)))
    });
    for (got, want) in all_ok("many tasks", outcome) {
        assert_eq!(got, want);
    }
}

/// Explicit placement: written objects move, read ones stay, and `home()` agrees on every
/// rank; a read-only task placed elsewhere moves nothing.
#[test]
fn explicit_placement_moves_only_written_objects() {
    let outcome = run_ranks(4, 30, |cluster| {
        let a = cluster.data_on(0, || 10u64).map_err(e)?;
        let b = cluster.data_on(1, || 20u64).map_err(e)?;
        let c = cluster.data_on(2, || 30u64).map_err(e)?;
        let d = cluster.data_on(3, || 40u64).map_err(e)?;
        cluster
            .spawn_accessing_on(
                3,
                (a.read(), b.write(), c.read(), d.write()),
                |a: &u64, b: &mut u64, c: &u64, d: &mut u64| {
                    *b += a;
                    *d += c;
                },
            )
            .map_err(e)?;
        let homes1 = [a.home(), b.home(), c.home(), d.home()];
        cluster
            .spawn_accessing_on(2, (a.read(), b.read()), |_: &u64, _: &u64| ())
            .map_err(e)?;
        let homes2 = [a.home(), b.home(), c.home(), d.home()];
        // Default placement: the first written object's home (d, on 3), not the first.
        cluster
            .spawn_accessing(
                (c.read(), d.write(), a.write()),
                |c: &u64, d: &mut u64, a: &mut u64| {
                    *d += c;
                    *a += 1;
                },
            )
            .map_err(e)?;
        let homes3 = [a.home(), b.home(), c.home(), d.home()];
        let values = (
            a.fetch().map_err(e)?,
            b.fetch().map_err(e)?,
            c.fetch().map_err(e)?,
            d.fetch().map_err(e)?,
        );
        cluster.finish().map_err(e)?;
        Ok((homes1, homes2, homes3, values))
    });
    for got in all_ok("explicit placement", outcome) {
        assert_eq!(
            got,
            ([0, 3, 2, 3], [0, 3, 2, 3], [3, 3, 2, 3], (11, 30, 30, 100))
        );
    }
}

/// A write takes the previous version by value when nothing else refers to it (the
/// documented promise): a chain of writes on one rank, with nothing reading in between,
/// should not clone each version.
#[derive(Debug, PartialEq)]
struct Counted(Vec<u64>);
static CLONES: AtomicUsize = AtomicUsize::new(0);
impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone())
    }
}
impl Transfer for Counted {
    fn encode<'a>(&'a self, _meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        Ok(Cow::Owned(
            self.0.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ))
    }
    fn decode(_meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError> {
        Ok(Counted(
            bulk.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ))
    }
}

#[test]
fn a_chain_of_writes_moves_instead_of_cloning() {
    let outcome = run_ranks(2, 30, |cluster| {
        let a = cluster.data_on(0, || Counted(vec![0; 1000])).map_err(e)?;
        for step in 0..50u64 {
            cluster
                .spawn_accessing(a.write(), move |v: &mut Counted| v.0[0] += step)
                .map_err(e)?;
        }
        let got = a.fetch_on(0).map_err(e)?;
        cluster.finish().map_err(e)?;
        Ok(got.map(|v| v.0[0]))
    });
    let got = all_ok("chain of writes", outcome);
    assert_eq!(got[0], Some((0..50).sum()));
    let clones = CLONES.load(Ordering::SeqCst);
    assert!(
        clones <= 3,
        "50 writes on one rank cloned the object {clones} times"
    );
}

// ---------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------

/// A task that only reads an object panics. The manual: "a task that panics fails the
/// objects it writes". It writes nothing, so later writes of the object must not fail, and
/// the outcome must not depend on where the next write runs.
#[test]
fn a_panicking_reader_does_not_fail_the_object() {
    let outcome = run_ranks(2, 30, |cluster| {
        let a = cluster.data_on(0, || 1u64).map_err(e)?;
        let b = cluster.data_on(0, || 1u64).map_err(e)?;
        // A reader of `a` on rank 0 (a's home) and of `b` on rank 1, both failing.
        cluster
            .spawn_accessing(a.read(), |_: &u64| panic!("reader of a blew up"))
            .map_err(e)?;
        cluster
            .spawn_accessing_on(1, b.read(), |_: &u64| panic!("reader of b blew up"))
            .map_err(e)?;
        // The same write of each, on rank 0.
        cluster
            .spawn_accessing(a.write(), |x: &mut u64| *x += 1)
            .map_err(e)?;
        cluster
            .spawn_accessing(b.write(), |x: &mut u64| *x += 1)
            .map_err(e)?;
        let got = (a.fetch().map_err(e), b.fetch().map_err(e));
        // Each rank ran one panicking reader: `finish` waits for it and reports it.
        let which = if cluster.rank() == 0 { "a" } else { "b" };
        match cluster.finish() {
            Err(why)
                if why
                    .to_string()
                    .contains(&format!("reader of {which} blew up")) => {}
            end => return Err(format!("rank {}: finish gave {end:?}", cluster.rank())),
        }
        Ok(got)
    });
    for (a, b) in all_ok("panicking readers", outcome) {
        assert_eq!(
            (&a, &b),
            (&Ok(2), &Ok(2)),
            "a (reader on the writer's rank) = {a:?}, b (reader on another rank) = {b:?}"
        );
    }
}

/// A read-only task fails and nothing is written after it: the failure should reach the
/// program somewhere (single-node `datadeps` returns the first task failure). Here it
/// can only be `finish`.
#[test]
fn a_failing_read_only_task_is_reported() {
    let outcome = run_ranks(2, 30, |cluster| {
        let a = cluster.data_on(1, || 1u64).map_err(e)?;
        cluster
            .spawn_accessing(a.read(), |_: &u64| panic!("the only check failed"))
            .map_err(e)?;
        std::thread::sleep(Duration::from_millis(200));
        let v = a.fetch().map_err(e)?;
        let end = cluster.finish();
        Ok((v, end.map_err(e)))
    });
    let got = all_ok("failing read-only task", outcome);
    assert!(
        got.iter().any(|(_, end)| end.is_err()),
        "the failure of a read-only task reached nothing: {got:?}"
    );
}

/// A failed write follows the object as it moves over every rank; every rank's fetch
/// says why, and no rank waits.
#[test]
fn a_failure_follows_the_object_across_ranks() {
    let outcome = run_ranks(4, 30, |cluster| {
        let a = cluster.data_on(0, || 1u64).map_err(e)?;
        let b = cluster.data_on(3, || 1u64).map_err(e)?;
        cluster
            .spawn_accessing_on(1, a.write(), |_: &mut u64| panic!("first write blew up"))
            .map_err(e)?;
        for rank in [2, 3, 0, 1, 3] {
            cluster
                .spawn_accessing_on(rank, (b.read(), a.write()), |b: &u64, a: &mut u64| *a += b)
                .map_err(e)?;
        }
        cluster
            .spawn_accessing((a.read(), b.write()), |a: &u64, b: &mut u64| *b += a)
            .map_err(e)?;
        let got = (
            a.fetch().map_err(e),
            b.fetch().map_err(e),
            a.fetch_on(2).map_err(e),
        );
        // Only rank 1 ran the panicking write.
        let noted = cluster.region_failures();
        if noted.len() != usize::from(cluster.rank() == 1) {
            return Err(format!("rank {}: noted {noted:?}", cluster.rank()));
        }
        cluster.finish().map_err(e)?;
        Ok(got)
    });
    for (rank, (a, b, on2)) in all_ok("failure across ranks", outcome)
        .into_iter()
        .enumerate()
    {
        for (name, r) in [
            ("a", a.map(|_| ())),
            ("b", b.map(|_| ())),
            ("a on 2", on2.map(|_| ())),
        ] {
            if name == "a on 2" && rank != 2 {
                assert!(r.is_ok(), "rank {rank}: {name}: {r:?}");
                continue;
            }
            match r {
                Ok(()) => panic!("rank {rank}: {name} has a value after a failed write"),
                Err(why) => assert!(
                    why.contains("first write blew up"),
                    "rank {rank}: {name}: {why}"
                ),
            }
        }
    }
}

/// `data_on` whose init panics: every later access and every fetch fails with the panic,
/// on every rank, nothing waits.
#[test]
fn a_failed_init_reaches_every_fetch() {
    let outcome = run_ranks(3, 30, |cluster| {
        let a = cluster
            .data_on(2, || -> u64 { panic!("init blew up") })
            .map_err(e)?;
        let b = cluster.data_on(0, || 5u64).map_err(e)?;
        cluster
            .spawn_accessing_on(1, a.read(), |_: &u64| ())
            .map_err(e)?;
        cluster
            .spawn_accessing((a.read(), b.write()), |a: &u64, b: &mut u64| *b += a)
            .map_err(e)?;
        let got = (a.fetch().map_err(e), b.fetch().map_err(e));
        cluster.finish().map_err(e)?;
        Ok(got)
    });
    for (a, b) in all_ok("failed init", outcome) {
        assert!(
            a.as_ref().is_err_and(|w| w.contains("init blew up")),
            "{a:?}"
        );
        assert!(
            b.as_ref().is_err_and(|w| w.contains("init blew up")),
            "{b:?}"
        );
    }
}

/// A write whose `Transfer::encode` fails on the way to the task's rank fails the next
/// version (no hang, every rank says why).
#[derive(Clone, Debug)]
struct Unsendable(u64);
impl Transfer for Unsendable {
    fn encode<'a>(&'a self, _meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        if self.0 == 13 {
            Err(EncodeError("thirteen does not travel".into()))
        } else {
            Ok(Cow::Owned(self.0.to_le_bytes().to_vec()))
        }
    }
    fn decode(_meta: &[u8], bulk: &[u8]) -> Result<Self, DecodeError> {
        Ok(Unsendable(u64::from_le_bytes(
            bulk.try_into().map_err(|_| DecodeError("8 bytes".into()))?,
        )))
    }
}

#[test]
fn an_encode_error_on_the_way_fails_the_write() {
    let outcome = run_ranks(2, 30, |cluster| {
        let a = cluster.data_on(0, || Unsendable(12)).map_err(e)?;
        cluster
            .spawn_accessing(a.write(), |x: &mut Unsendable| x.0 += 1)
            .map_err(e)?;
        // Moves it to rank 1: the encode fails there.
        cluster
            .spawn_accessing_on(1, a.write(), |x: &mut Unsendable| x.0 += 1)
            .map_err(e)?;
        let got = a.fetch_on(1).map_err(e);
        cluster.finish().map_err(e)?;
        Ok(got.map(|v| v.map(|v| v.0)))
    });
    let got = all_ok("encode error", outcome);
    assert_eq!(got[0], Ok(None));
    assert!(
        got[1]
            .as_ref()
            .is_err_and(|w| w.contains("thirteen does not travel")),
        "{:?}",
        got[1]
    );
}

// ---------------------------------------------------------------------------------
// Misuse: errors, not panics or hangs
// ---------------------------------------------------------------------------------

#[test]
fn region_misuse_is_an_error_on_every_rank() {
    let outcome = run_ranks(2, 30, |cluster| {
        let a = cluster.data_on(0, || 1u64).map_err(e)?;
        let errors = vec![
            cluster.data_on(2, || 1u64).is_err(),
            cluster
                .spawn_accessing_on(5, a.read(), |_: &u64| ())
                .is_err(),
            cluster
                .spawn_accessing(
                    (a.write(), a.clone().write()),
                    |_: &mut u64, _: &mut u64| (),
                )
                .is_err(),
            cluster
                .spawn_accessing((a.write(), a.read()), |_: &mut u64, _: &u64| ())
                .is_err(),
            a.fetch_on(9).is_err(),
        ];
        // The object is still usable after the refused declarations.
        cluster
            .spawn_accessing(a.write(), |x: &mut u64| *x += 1)
            .map_err(e)?;
        let v = a.fetch().map_err(e)?;
        cluster.finish().map_err(e)?;
        // After finish: errors, not panics or hangs; `home` still answers.
        let after = (
            a.fetch().is_err(),
            cluster
                .spawn_accessing(a.write(), |x: &mut u64| *x += 1)
                .is_err(),
            cluster.data_on(0, || 1u64).is_err(),
            a.home(),
        );
        Ok((errors, v, after))
    });
    for (errors, v, after) in all_ok("region misuse", outcome) {
        assert!(errors.iter().all(|&x| x), "{errors:?}");
        assert_eq!(v, 2);
        assert_eq!(after, (true, true, true, 0));
    }
}

/// Region objects of another cluster: an error, on the rank that gets one.
#[test]
fn an_object_of_another_cluster_is_an_error() {
    let mut ranks = local_ranks(1);
    let mut other = local_ranks(1);
    let (c1, c2) = (ranks.pop().unwrap(), other.pop().unwrap());
    let r = catch_unwind(AssertUnwindSafe(|| {
        let a = c2.data_on(0, || 1u64).unwrap();
        c1.spawn_accessing(a.write(), |x: &mut u64| *x += 1)
            .is_err()
    }));
    assert!(matches!(r, Ok(true)), "{:?}", r.map_err(panic_text));
}

/// Objects dropped by the program while their tasks are still running, then `finish`:
/// no hang, no error, and the tasks ran.
#[test]
fn dropping_objects_with_tasks_in_flight() {
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    let outcome = run_ranks(3, 30, move |cluster| {
        for round in 0..10usize {
            let a = cluster
                .data_on(round % 3, || vec![1u64; 20_000])
                .map_err(e)?;
            let ran = count.clone();
            cluster
                .spawn_accessing_on((round + 1) % 3, a.write(), move |v: &mut Vec<u64>| {
                    std::thread::sleep(Duration::from_millis(5));
                    v[0] += 1;
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .map_err(e)?;
            let ran = count.clone();
            cluster
                .spawn_accessing_on((round + 2) % 3, a.read(), move |v: &Vec<u64>| {
                    if v[0] == 2 {
                        ran.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .map_err(e)?;
            drop(a);
        }
        cluster.finish().map_err(e)
    });
    all_ok("dropped objects", outcome);
    assert_eq!(ran.load(Ordering::SeqCst), 20);
}

// ---------------------------------------------------------------------------------
// The end of a program that returns early
// ---------------------------------------------------------------------------------

/// `fetch_on(0)` of a failed value is an error on rank 0 only; rank 0 returns it with `?`
/// (its cluster is dropped, no `finish`) while rank 1 goes on. The debug check must end
/// the program; rank 1 must not wait forever for rank 0.
#[test]
fn rank_0_returning_early_does_not_hang_the_others() {
    let outcome = run_ranks(2, 20, |cluster| {
        let bad = cluster
            .spawn_on(0, || -> u64 { panic!("bad value") })
            .map_err(e)?;
        bad.fetch_on(0).map_err(e)?; // Err on rank 0 only
        std::thread::sleep(Duration::from_millis(500));
        let x = cluster.spawn_on(0, || 1u64).map_err(e)?;
        let v = x.fetch().map_err(e)?;
        cluster.finish().map_err(e)?;
        Ok::<u64, String>(v)
    });
    let outcome = outcome.expect(
        "rank 1 still waits after 20 s: rank 0 returned early (dropped its cluster without \
         finish) and rank 1's next operation waits for it forever",
    );
    assert!(outcome[0].as_ref().is_ok_and(|r| r.is_err()), "{outcome:?}");
}

/// The mirror image: rank 1 returns early, rank 0 goes on (rank 0 compares the records).
#[test]
fn rank_1_returning_early_does_not_hang_the_others() {
    let outcome = run_ranks(2, 20, |cluster| {
        let bad = cluster
            .spawn_on(1, || -> u64 { panic!("bad value") })
            .map_err(e)?;
        bad.fetch_on(1).map_err(e)?; // Err on rank 1 only
        std::thread::sleep(Duration::from_millis(500));
        let x = cluster.spawn_on(1, || 1u64).map_err(e)?;
        let v = x.fetch().map_err(e)?;
        cluster.finish().map_err(e)?;
        Ok::<u64, String>(v)
    });
    let outcome = outcome.expect("rank 0 still waits after 20 s for rank 1, which returned early");
    assert!(outcome[1].as_ref().is_ok_and(|r| r.is_err()), "{outcome:?}");
}

/// A rank panics in the middle of a region program: the others' fetches fail, no hang.
#[test]
fn a_rank_panicking_in_a_region_program_fails_the_others() {
    let outcome = run_ranks(3, 20, |cluster| {
        let a = cluster.data_on(2, || 1u64).map_err(e)?;
        cluster
            .spawn_accessing_on(1, a.write(), |x: &mut u64| *x += 1)
            .map_err(e)?;
        if cluster.rank() == 2 {
            panic!("rank 2 gives up");
        }
        cluster
            .spawn_accessing_on(2, a.write(), |x: &mut u64| *x += 1)
            .map_err(e)?;
        let v = a.fetch().map_err(e)?;
        cluster.finish().map_err(e)?;
        Ok::<u64, String>(v)
    });
    let outcome = outcome.expect("ranks still wait for a rank that panicked");
    assert!(
        outcome[0].as_ref().map_or(true, |r| r.is_err()),
        "{outcome:?}"
    );
    assert!(
        outcome[1].as_ref().map_or(true, |r| r.is_err()),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------------------------
// Merged traces
// ---------------------------------------------------------------------------------

fn other_work() -> u64 {
    std::thread::sleep(Duration::from_millis(1));
    7
}

fn merged_on<W>(size: usize, root: usize, work: W) -> (String, Vec<dagger_mpi::RankSummary>)
where
    W: Fn() -> u64 + Copy + Send + Sync + 'static,
{
    let outcome = run_ranks(size, 60, move |cluster| {
        let recorder = dagger_core::observe::Recorder::new();
        let runtime = dagger_core::default_runtime().map_err(e)?;
        let merged = {
            let _observing = runtime.observe(recorder.clone());
            let values: Vec<_> = (0..20)
                .map(|_| cluster.spawn_on(0, work))
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let mut total = 0;
            for v in &values {
                total += v.fetch().map_err(e)?;
            }
            if total != 140 {
                return Err(format!("total {total}"));
            }
            cluster.merge_traces(&recorder, root).map_err(e)?
        };
        // A second merge works too (a distributed operation like any other).
        let again = cluster.merge_traces(&recorder, root).map_err(e)?;
        if again.is_some() != (cluster.rank() == root) {
            return Err("second merge on the wrong rank".into());
        }
        cluster.finish().map_err(e)?;
        Ok(merged.map(|m| (m.to_chrome_json().to_owned(), m.ranks().to_vec())))
    });
    let mut got = all_ok("merged trace", outcome);
    for (rank, g) in got.iter().enumerate() {
        assert_eq!(g.is_some(), rank == root, "rank {rank}");
    }
    got.swap_remove(root).unwrap()
}

#[test]
fn merged_trace_is_valid_json_with_a_process_per_rank() {
    for (size, root) in [(1, 0), (3, 2)] {
        let (json, ranks) = merged_on(size, root, other_work);
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let events = v["traceEvents"].as_array().expect("traceEvents");
        let mut pids: Vec<u64> = events
            .iter()
            .map(|ev| ev["pid"].as_u64().expect("every event has a pid"))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids, (1..=size as u64).collect::<Vec<_>>());
        for rank in 0..size {
            let names: Vec<&str> = events
                .iter()
                .filter(|ev| ev["name"] == "process_name" && ev["pid"] == rank as u64 + 1)
                .filter_map(|ev| ev["args"]["name"].as_str())
                .collect();
            assert_eq!(names.len(), 1, "rank {rank}: {names:?}");
            assert!(names[0].starts_with(&format!("rank {rank} ")), "{names:?}");
        }
        for ev in events.iter().filter(|ev| ev["ph"] == "X") {
            assert!(ev["ts"].as_f64().is_some_and(|t| t >= 0.0), "{ev}");
            assert!(ev["dur"].as_f64().is_some(), "{ev}");
        }
        assert_eq!(
            ranks.iter().map(|r| r.rank).collect::<Vec<_>>(),
            (0..size).collect::<Vec<_>>()
        );
    }
}

/// Tasks in the merged trace: a rank's summary `tasks` matches the task events of its
/// process, and every rank's events start after that rank's time zero.
#[test]
fn merged_trace_summary_matches_events() {
    let (json, ranks) = merged_on(2, 1, other_work);
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents");
    for r in &ranks {
        let n = events
            .iter()
            .filter(|ev| ev["ph"] == "X" && ev["cat"] == "task" && ev["pid"] == r.rank as u64 + 1)
            .count();
        assert_eq!(n, r.tasks, "rank {}", r.rank);
    }
}

/// An invalid root: an error on every rank, no hang.
#[test]
fn merge_traces_with_a_bad_root_is_an_error() {
    let outcome = run_ranks(2, 20, |cluster| {
        let recorder = dagger_core::observe::Recorder::new();
        let bad = cluster.merge_traces(&recorder, 2).is_err();
        cluster.finish().map_err(e)?;
        Ok(bad)
    });
    assert!(all_ok("bad root", outcome).into_iter().all(|b| b));
}

/// Guard against a poisoned mutex or a lock held across a blocking fetch: reads and
/// fetches interleaved from the issuing thread while other threads ask `home()`.
#[test]
fn home_from_other_threads_while_the_program_runs() {
    let outcome = run_ranks(2, 30, |cluster| {
        let a = cluster.data_on(0, || vec![0u64; 50_000]).map_err(e)?;
        let stop = Arc::new(Mutex::new(false));
        let watcher = {
            let (a, stop) = (a.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0usize;
                while !*stop.lock().unwrap() {
                    seen += a.home();
                }
                seen
            })
        };
        for round in 0..40usize {
            cluster
                .spawn_accessing_on(round % 2, a.write(), move |v: &mut Vec<u64>| {
                    v[round] = round as u64
                })
                .map_err(e)?;
            if round % 10 == 0 {
                a.fetch().map_err(e)?;
            }
        }
        let v = a.fetch().map_err(e)?;
        *stop.lock().unwrap() = true;
        let _ = watcher.join();
        cluster.finish().map_err(e)?;
        Ok(v[..40].to_vec())
    });
    for v in all_ok("home from other threads", outcome) {
        assert_eq!(v, (0..40u64).collect::<Vec<_>>());
    }
}
