//! The end of a program, attacked (from an outside review): region tasks settling before
//! `finish`, ranks as threads that leave early, the last handle dropped on another thread,
//! aborts, and bulk values in pieces of odd sizes. Every multi-rank program runs under a
//! timeout. (Not covered on purpose: a region task that waits, outside dagger, for
//! something another rank makes after its own `finish`: `finish` waits for this rank's
//! region tasks, so that is a deadlock by construction.)

mod threads;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use threads::{all_ok, e, panic_text, run_ranks};

/// A cheap deterministic pseudo-random number.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn big(seed: u64, len: usize) -> Vec<u64> {
    (0..len as u64).map(|i| mix(seed * 1_000_003 + i)).collect()
}

// ---------------------------------------------------------------------------------
// Gone-rank detection: false positives
// ---------------------------------------------------------------------------------

/// A correct SPMD program in which some ranks end (drop their cluster on the issuing
/// thread, no `finish`) as soon as they issued their last operation, while the others are
/// slow and only then announce the receives of values the early ranks already sent
/// (small and bulk values, forwarded in binomial trees). Nothing may fail.
#[test]
fn ranks_ending_early_legitimately_are_not_seen_as_gone_too_soon() {
    for round in 0..12u64 {
        let outcome = run_ranks(4, 60, move |cluster| {
            let me = cluster.rank() as u64;
            let early = (me + round) % 2 == 1;
            let pause = |step: u64| {
                if !early {
                    let us = mix(round * 100 + me * 10 + step) % 3000;
                    std::thread::sleep(Duration::from_micros(us));
                }
            };
            let mut got = Vec::new();
            for i in 0..4usize {
                let len = if (i as u64 + round).is_multiple_of(2) {
                    3
                } else {
                    20_000
                };
                let seed = round * 10 + i as u64;
                let v = cluster.spawn_on(i, move || big(seed, len)).map_err(e)?;
                pause(i as u64);
                // To the next rank only, then to all.
                let one = v.fetch_on((i + 1) % 4).map_err(e)?;
                pause(10 + i as u64);
                let all = v.fetch().map_err(e)?;
                if all != big(seed, len) {
                    return Err(format!("round {round}: rank {me}: wrong value {i}"));
                }
                if let Some(one) = one {
                    if one != all {
                        return Err(format!("round {round}: rank {me}: wrong fetch_on {i}"));
                    }
                }
                got.push(all.len());
            }
            if early {
                drop(cluster); // ends here: the others still receive what it sent
                Ok(got)
            } else {
                cluster.finish().map_err(e)?;
                Ok(got)
            }
        });
        all_ok(&format!("round {round}"), outcome);
    }
}

/// The last operation of a rank that ends early sends it a value the others receive much
/// later (the receiving ranks sleep first). The value must be delivered, not failed as
/// coming from a gone rank.
#[test]
fn a_value_sent_just_before_leaving_is_delivered() {
    for round in 0..20u64 {
        let outcome = run_ranks(3, 30, move |cluster| {
            let me = cluster.rank();
            let sender = (round % 3) as usize;
            let len = if round % 2 == 0 { 1 } else { 70_000 };
            let v = cluster
                .spawn_on(sender, move || big(round, len))
                .map_err(e)?;
            if me != sender {
                std::thread::sleep(Duration::from_micros(mix(round + me as u64) % 4000));
            }
            let got = v.fetch().map_err(e)?;
            if got != big(round, len) {
                return Err(format!("rank {me}: wrong value"));
            }
            if me == sender {
                drop(cluster);
                return Ok(());
            }
            cluster.finish().map_err(e)
        });
        all_ok(&format!("round {round}"), outcome);
    }
}

/// The last handle of a rank is dropped on a worker (a task holds a `Dist`), before the
/// value that rank owes another is computed: the program is correct and every rank ran
/// the same operations. The other rank should get the value, or at least not be told
/// that the ranks ran different programs.
#[test]
fn last_handle_dropped_on_a_worker_before_a_send() {
    let outcome = run_ranks(2, 20, |cluster| {
        let slow = cluster
            .spawn_on(0, || {
                std::thread::sleep(Duration::from_millis(400));
                41u64
            })
            .map_err(e)?;
        let got = slow.fetch_on(1).map_err(e)?;
        if cluster.rank() == 0 {
            // A task keeps a handle a little longer than the program.
            let keep = slow.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                drop(keep);
            });
            drop(slow);
            drop(cluster);
            return Ok(None);
        }
        cluster.finish().map_err(e)?;
        Ok(got)
    });
    let got = all_ok("dropped on a worker", outcome);
    assert_eq!(got[1], Some(41), "{got:?}");
}

// ---------------------------------------------------------------------------------
// Gone-rank detection: what must still fail, not hang
// ---------------------------------------------------------------------------------

/// Rank 0 (the one that checks the SPMD records) returns early; rank 2 computes from a
/// value due from rank 0 and rank 1 waits for rank 2. Every later receive fails, nothing
/// hangs.
#[test]
fn the_checking_rank_returning_early_fails_a_chain() {
    let outcome = run_ranks(3, 20, |cluster| {
        let a = cluster.spawn_on(1, || 1u64).map_err(e)?;
        a.fetch_on(1).map_err(e)?;
        if cluster.rank() == 0 {
            return Err("rank 0 returns early".to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
        let x = cluster.spawn_on(0, || 5u64).map_err(e)?;
        let y = cluster
            .spawn_on_with(2, (&x,), |x: &u64| x + 1)
            .map_err(e)?;
        let got = y.fetch_on(1).map_err(e);
        let end = cluster.finish().map_err(e);
        Ok((got, end))
    });
    let outcome = outcome.expect("hang: a chain through a rank that returned early");
    for (rank, r) in outcome.iter().enumerate().skip(1) {
        match r {
            Ok(Ok((got, end))) => {
                if rank == 1 {
                    assert!(got.is_err(), "rank 1 got {got:?}");
                } else {
                    assert!(end.is_err(), "rank {rank}: finish {end:?}");
                }
                eprintln!("rank {rank}: got {got:?}, finish {end:?}");
            }
            other => panic!("rank {rank}: {other:?}"),
        }
    }
}

/// A region task on rank 0 waits for an object that rank 1 was to send, but rank 1
/// returned early before issuing that operation: rank 0's `finish` (which waits for its
/// region tasks) must not wait forever.
#[test]
fn finish_does_not_wait_forever_for_a_region_task_whose_input_never_comes() {
    let outcome = run_ranks(2, 20, |cluster| {
        let a = cluster.data_on(1, || 7u64).map_err(e)?;
        if cluster.rank() == 1 {
            return Err::<(bool, bool, usize, Result<(), String>), String>(
                "returned early".to_owned(),
            );
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let spawned = cluster.spawn_accessing_on(0, a.read(), move |_: &u64| {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let b = cluster.data_on(0, || 1u64).map_err(e)?;
        let w =
            cluster.spawn_accessing_on(0, (a.read(), b.write()), |a: &u64, b: &mut u64| *b += a);
        let end = cluster.finish().map_err(e);
        Ok((spawned.is_ok(), w.is_ok(), ran.load(Ordering::SeqCst), end))
    });
    let outcome = outcome.expect("hang: finish waits for a region task whose input never comes");
    match &outcome[0] {
        Ok(Ok((_, _, ran, end))) => {
            assert_eq!(*ran, 0);
            assert!(end.is_err(), "{end:?}");
        }
        other => panic!("rank 0: {other:?}"),
    }
}

/// Rank 1 panics while a region task on rank 0 waits for an object that rank 1 is
/// computing slowly: rank 0's finish reports the panic, no hang, and the abort reason is
/// reported once, not once per place that saw it.
#[test]
fn a_rank_panicking_while_another_waits_in_finish() {
    let outcome = run_ranks(3, 20, |cluster| {
        let a = cluster
            .data_on(1, || {
                std::thread::sleep(Duration::from_millis(300));
                7u64
            })
            .map_err(e)?;
        cluster
            .spawn_accessing_on(0, a.read(), |_: &u64| ())
            .map_err(e)?;
        cluster
            .spawn_accessing_on(2, a.read(), |_: &u64| ())
            .map_err(e)?;
        if cluster.rank() == 1 {
            panic!("rank one gives up");
        }
        cluster.finish().map_err(e)
    });
    let outcome = outcome.expect("hang");
    for rank in [0, 2] {
        match &outcome[rank] {
            Ok(Err(why)) => {
                assert!(why.contains("rank 1 panicked"), "rank {rank}: {why}");
                assert_eq!(
                    why.matches("rank 1 panicked").count(),
                    1,
                    "rank {rank}: reported more than once: {why}"
                );
            }
            other => panic!("rank {rank}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Settling and finish
// ---------------------------------------------------------------------------------

/// A write waits for a slow reader on its rank to END (not to succeed): the reader sleeps
/// and then panics; the write must start after the reader's end and see the old value,
/// and succeed.
#[test]
fn a_write_waits_for_a_slow_failing_reader_to_end() {
    let outcome = run_ranks(2, 30, |cluster| {
        let log: Arc<Mutex<Vec<&'static str>>> = Arc::new(Mutex::new(Vec::new()));
        let a = cluster.data_on(1, || 10u64).map_err(e)?;
        let l = log.clone();
        cluster
            .spawn_accessing(a.read(), move |_: &u64| {
                std::thread::sleep(Duration::from_millis(200));
                l.lock().unwrap().push("reader end");
                panic!("slow reader fails");
            })
            .map_err(e)?;
        let l = log.clone();
        cluster
            .spawn_accessing(a.write(), move |x: &mut u64| {
                l.lock().unwrap().push("writer start");
                *x += 1;
            })
            .map_err(e)?;
        let v = a.fetch().map_err(e)?;
        let failures = cluster.region_failures();
        let end = cluster.finish();
        let log = log.lock().unwrap().clone();
        Ok((v, failures, end.map_err(e), log))
    });
    let got = all_ok("slow failing reader", outcome);
    assert_eq!(got[0].0, 11);
    assert_eq!(got[1].0, 11);
    assert_eq!(got[1].3, vec!["reader end", "writer start"], "{got:?}");
    // The failure is reported once: by region_failures (taken) and not again by finish.
    assert_eq!(got[1].1.len(), 1, "{got:?}");
    assert!(
        got[1].2.is_ok(),
        "finish reported a taken failure again: {:?}",
        got[1].2
    );
    assert!(got[0].1.is_empty() && got[0].2.is_ok(), "{:?}", got[0]);
}

/// `finish` right after spawning slow region tasks that panic late, on every rank: every
/// rank's finish reports exactly its own failures (none lost, none twice), including
/// tasks pruned from the tracking list.
#[test]
fn finish_reports_every_late_region_failure_once() {
    let outcome = run_ranks(2, 60, |cluster| {
        let me = cluster.rank();
        let objects: Vec<_> = (0..4)
            .map(|i| cluster.data_on(i % 2, || 0u64))
            .collect::<Result<_, _>>()
            .map_err(e)?;
        // 150 tasks (over the pruning thresholds 64 and 128), every 10th panics.
        for t in 0..150usize {
            let o = &objects[t % 4];
            cluster
                .spawn_accessing(o.write(), move |x: &mut u64| {
                    if t % 10 == 9 {
                        std::thread::sleep(Duration::from_millis(2));
                        panic!("task {t} panics");
                    }
                    *x += 1;
                })
                .map_err(e)?;
        }
        let end = cluster.finish();
        let why = match end {
            Ok(()) => String::new(),
            Err(why) => why.to_string(),
        };
        let mine: Vec<usize> = (0..150)
            .filter(|t| t % 10 == 9 && (t % 4) % 2 == me)
            .collect();
        // A panicking write fails the object, so later writes of it do not run (and do
        // not panic): only the first panic per object is certain.
        let first: Vec<usize> = (0..4)
            .filter(|o| o % 2 == me)
            .filter_map(|o| mine.iter().copied().find(|t| t % 4 == o))
            .collect();
        for t in &first {
            let text = format!("task {t} panics");
            let n = why.matches(&text).count();
            if n != 1 {
                return Err(format!("rank {me}: `{text}` reported {n} times: {why}"));
            }
        }
        Ok(why.matches("panics").count())
    });
    all_ok("late failures", outcome);
}

/// Another thread of the rank takes `region_failures` while the program calls `finish`:
/// each failure is returned exactly once, by one of them.
#[test]
fn region_failures_racing_finish_lose_nothing() {
    for _ in 0..5 {
        let outcome = run_ranks(2, 30, |cluster| {
            let objects: Vec<_> = (0..20)
                .map(|i| cluster.data_on(i % 2, || 0u64))
                .collect::<Result<_, _>>()
                .map_err(e)?;
            for (i, o) in objects.iter().enumerate() {
                cluster
                    .spawn_accessing(o.read(), move |_: &u64| {
                        std::thread::sleep(Duration::from_micros(300 * (i as u64 % 5)));
                        panic!("reader {i} panics");
                    })
                    .map_err(e)?;
            }
            let other = cluster.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let taker = std::thread::spawn(move || {
                let mut taken = Vec::new();
                while !s.load(Ordering::SeqCst) {
                    taken.extend(other.region_failures());
                    std::thread::yield_now();
                }
                taken.extend(other.region_failures());
                taken
            });
            let end = cluster.finish();
            stop.store(true, Ordering::SeqCst);
            let taken = taker.join().unwrap();
            let why = end.err().map(|w| w.to_string()).unwrap_or_default();
            let n = taken.len() + why.matches("panicked on rank").count();
            Ok(n)
        });
        let got = all_ok("racing region_failures", outcome);
        assert_eq!(got, vec![10, 10]);
    }
}

/// Dropping the last handle without `finish` on the issuing thread waits for this rank's
/// region tasks (so their failures are at least printed) and does not hang while the
/// others call finish. Checks no hang, correct values, and that the task ran.
#[test]
fn drop_without_finish_with_region_tasks_running() {
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    let outcome = run_ranks(3, 30, move |cluster| {
        let a = cluster.data_on(0, || 1u64).map_err(e)?;
        let v = a.fetch().map_err(e)?;
        let count = count.clone();
        cluster
            .spawn_accessing_on(cluster.size() - 1, a.read(), move |_: &u64| {
                std::thread::sleep(Duration::from_millis(300));
                count.fetch_add(1, Ordering::SeqCst);
            })
            .map_err(e)?;
        if cluster.rank() == cluster.size() - 1 {
            drop(cluster);
            // The drop waited for the region task.
            return Ok(v);
        }
        cluster.finish().map_err(e)?;
        Ok(v)
    });
    assert_eq!(all_ok("drop with region tasks", outcome), vec![1, 1, 1]);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------
// Debug piece size: run in a child process with the variable set
// ---------------------------------------------------------------------------------

fn child(test: &str, pieces: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DAGGER_MPI_PIECE_BYTES", pieces)
        .output()
        .expect("the test binary runs")
}

#[test]
#[ignore = "run by pieces_of_odd_sizes in a child process"]
fn child_values_in_pieces() {
    let started = Instant::now();
    let outcome = run_ranks(3, 120, |cluster| {
        let mut out = Vec::new();
        for (i, len) in [8193usize, 8192, 8194, 12_500, 65_537, 1]
            .into_iter()
            .enumerate()
        {
            let owner = i % 3;
            let v = cluster
                .spawn_on(owner, move || big(i as u64, len))
                .map_err(e)?;
            let got = v.fetch().map_err(e)?;
            if got != big(i as u64, len) {
                return Err(format!("rank {}: wrong value {i}", cluster.rank()));
            }
            // Region objects too, moved and read across ranks.
            let d = cluster
                .data_on(owner, move || big(i as u64 + 100, len))
                .map_err(e)?;
            cluster
                .spawn_accessing_on((owner + 1) % 3, d.write(), |x: &mut Vec<u64>| {
                    x.iter_mut().for_each(|x| *x = x.wrapping_add(1))
                })
                .map_err(e)?;
            let expect: Vec<u64> = big(i as u64 + 100, len)
                .into_iter()
                .map(|x| x.wrapping_add(1))
                .collect();
            if d.fetch().map_err(e)? != expect {
                return Err(format!("rank {}: wrong region value {i}", cluster.rank()));
            }
            // A failed large value in between.
            let bad = cluster
                .spawn_on(owner, move || -> Vec<u64> { panic!("bad {i}") })
                .map_err(e)?;
            match bad.fetch() {
                Err(why) if why.to_string().contains(&format!("bad {i}")) => {}
                other => return Err(format!("failed value {i}: {other:?}")),
            }
            out.push(got.len());
        }
        cluster.finish().map_err(e)?;
        Ok(out)
    });
    all_ok("values in pieces", outcome);
    eprintln!("CHILD OK in {:?}", started.elapsed());
}

/// Small, odd, 1-byte and invalid piece sizes: values arrive whole and right.
#[test]
fn pieces_of_odd_sizes() {
    for pieces in ["7", "4096", "65537", "0", "not a number", "99999999999999"] {
        let out = child("child_values_in_pieces", pieces);
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("CHILD OK"),
            "DAGGER_MPI_PIECE_BYTES={pieces}: {}\n{text}",
            out.status
        );
    }
}

#[test]
#[ignore = "run by piece_size_of_one_byte in a child process"]
fn child_one_byte_pieces() {
    let outcome = run_ranks(2, 100, |cluster| {
        let v = cluster.spawn_on(0, || big(3, 9000)).map_err(e)?;
        let got = v.fetch_on(1).map_err(e)?;
        cluster.finish().map_err(e)?;
        Ok(got.map(|g| g == big(3, 9000)))
    });
    let got = all_ok("one byte pieces", outcome);
    assert_eq!(got, vec![None, Some(true)]);
    eprintln!("CHILD OK");
}

#[test]
fn piece_size_of_one_byte() {
    let out = child("child_one_byte_pieces", "1");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("CHILD OK"), "{text}");
}

/// Unused in the checks above; keeps `catch_unwind` imported for local experiments.
#[allow(dead_code)]
fn quiet<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(panic_text)
}

/// A region closure that captures a clone of the cluster (e.g. for `rank()`), and a rank
/// whose program ends without `finish` while the task runs: the closure holds the last
/// handle, dropped on a worker right after `f` returns and before the written version is
/// published and sent. Every rank ran the same operations; the value should arrive.
#[test]
fn a_region_closure_holding_the_last_cluster_handle() {
    let outcome = run_ranks(2, 20, |cluster| {
        let a = cluster.data_on(0, || 1u64).map_err(e)?;
        let c = cluster.clone();
        cluster
            .spawn_accessing(a.write(), move |x: &mut u64| {
                std::thread::sleep(Duration::from_millis(100));
                *x += 10 + c.rank() as u64;
            })
            .map_err(e)?;
        let got = a.fetch_on(1).map_err(e)?;
        if cluster.rank() == 0 {
            drop(a);
            drop(cluster);
            return Ok(None);
        }
        cluster.finish().map_err(e)?;
        Ok(got)
    });
    let got = all_ok("closure holding the last handle", outcome);
    assert_eq!(got[1], Some(11), "{got:?}");
}

/// One rank without `local_ranks` (`init`): a panicking region task is reported by
/// `finish`, once.
#[test]
fn single_rank_init_reports_region_failure_in_finish() {
    let done = std::thread::spawn(|| {
        let cluster = dagger_mpi::init().unwrap();
        let a = cluster.data_on(0, || 1u64).unwrap();
        cluster
            .spawn_accessing(a.read(), |_: &u64| {
                std::thread::sleep(Duration::from_millis(50));
                panic!("lonely failure")
            })
            .unwrap();
        let first = cluster.finish().map_err(e);
        let second = cluster.finish().map_err(e);
        (first, second)
    })
    .join()
    .unwrap();
    assert!(
        done.0
            .as_ref()
            .is_err_and(|w| w.matches("lonely failure").count() == 1),
        "{done:?}"
    );
    assert!(done.1.is_ok(), "{done:?}");
}
