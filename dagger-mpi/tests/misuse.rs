//! Programs that misuse dagger-mpi or send values that go wrong, on ranks as threads
//! (`local_ranks`): each ends with an error on every rank, never a hang or a panic. Every
//! multi-rank program runs under a timeout, so a hang fails instead of blocking.

mod threads;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;
use threads::{e, panic_text, run_ranks, within};

use dagger_array::Block;
use dagger_core::Error;
use std::borrow::Cow;

use dagger_mpi::{local_ranks, Cluster, DecodeError, EncodeError, Placement, Serde, Transfer};

// ---------------------------------------------------------------------------------
// Lifecycle of local ranks
// ---------------------------------------------------------------------------------

/// Dropping the clusters of `local_ranks` on one thread (no rank program ran, e.g. an
/// early return) returns: a drop does not wait at the barrier for ranks dropped after it.
#[test]
fn dropping_unused_local_ranks_returns() {
    let done = within(10, || drop(local_ranks(2)));
    assert!(
        done.is_some(),
        "drop(local_ranks(2)) did not return in 10 s"
    );
}

/// A rank that panics ends the program: with ranks as threads, the others' operations
/// fail instead of waiting for it forever.
#[test]
fn a_panic_on_one_rank_fails_the_others() {
    let outcome = run_ranks(2, 15, |cluster| {
        if cluster.rank() == 1 {
            panic!("rank 1 gives up");
        }
        let d = cluster.spawn_on(1, || 5u64).map_err(e)?;
        let v = d.fetch().map_err(e)?;
        cluster.finish().map_err(e)?;
        Ok::<u64, String>(v)
    });
    let outcome = outcome.expect("rank 0 still waits for rank 1 after 15 s");
    assert!(
        outcome[0].as_ref().map_or(true, |r| r.is_err()),
        "{outcome:?}"
    );
}

/// tests/diverge.rs on ranks as threads: the divergence ends the program, and every rank
/// returns.
#[test]
fn divergence_on_local_ranks_is_an_error() {
    let outcome = run_ranks(2, 15, |cluster| {
        let first = cluster.spawn_on(0, || 1u64).map_err(e)?;
        if cluster.rank() == 0 {
            let _ = first.fetch();
        } else {
            let mine = dagger_core::spawn(|| 2u64);
            let _ = cluster
                .all_reduce(&mine, |a: &u64, b: &u64| a + b)
                .map(|h| h.fetch());
        }
        cluster.finish().map_err(e)
    });
    assert!(outcome.is_some(), "diverged ranks still running after 15 s");
}

// ---------------------------------------------------------------------------------
// Divergence the debug check misses
// ---------------------------------------------------------------------------------

/// Only some ranks issue an operation (rank 0 skips it and finishes): the end of the
/// program is recorded like an operation, so rank 0 sees the difference.
#[test]
fn a_missing_operation_is_caught() {
    let outcome = run_ranks(2, 15, |cluster| {
        let d = cluster.spawn_on(0, || 1u64).map_err(e)?;
        if cluster.rank() != 0 {
            d.fetch().map_err(e)?;
        }
        cluster.finish().map_err(e)
    });
    let outcome =
        outcome.expect("ranks still running after 15 s: the missing operation was not caught");
    assert!(
        outcome.iter().any(|r| !matches!(r, Ok(Ok(())))),
        "{outcome:?}"
    );
}

/// The same operation at the same line with a rank-dependent argument: the records carry
/// the arguments, so the difference is caught instead of rank 1 waiting forever.
#[test]
fn different_arguments_are_caught() {
    let outcome = run_ranks(2, 15, |cluster| {
        let d = cluster.spawn_on(0, || 1u64).map_err(e)?;
        let _ = d.fetch_on(cluster.rank()).map_err(e)?;
        cluster.finish().map_err(e)
    });
    assert!(
        outcome.is_some(),
        "fetch_on(rank) with a rank-dependent argument hangs instead of failing"
    );
}

// ---------------------------------------------------------------------------------
// The last handle dropped on a worker
// ---------------------------------------------------------------------------------

/// Without `finish`, ranks drop their clusters while sends and receives are still to run.
/// Those tasks hold no `Cluster`, so the end never runs on a dagger worker: with more
/// ranks than workers, blocked workers would leave the last rank's receives unrun.
#[test]
fn dropping_clusters_with_transfers_in_flight_blocks_no_worker() {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let size = workers + 1;
    let outcome = run_ranks(size, 20, move |cluster| {
        let last = cluster.size() - 1;
        // Each rank but the last owns a slow value sent to the last rank: its send task
        // holds the rank's last handle once the program has dropped its own.
        let values: Vec<_> = (0..last)
            .map(|owner| {
                cluster
                    .spawn_on(owner, move || {
                        std::thread::sleep(Duration::from_millis(300));
                        owner as u64
                    })
                    .unwrap()
            })
            .collect();
        let refs: Vec<_> = values.iter().collect();
        let _sum = match refs.as_slice() {
            [a, b] => cluster.spawn_on_with(last, (*a, *b), |a: &u64, b: &u64| a + b),
            [a, b, c, ..] => {
                cluster.spawn_on_with(last, (*a, *b, *c), |a: &u64, b: &u64, c: &u64| a + b + c)
            }
            [a] => cluster.spawn_on_with(last, (*a,), |a: &u64| *a),
            [] => unreachable!(),
        };
        // No `finish`: every handle of the program is dropped here.
    });
    assert!(outcome.is_some(), "the rank programs did not return");
    // The programs returned at once; their clusters finish in the tasks that hold the
    // last handles. Once those are done, the runtime must run tasks again.
    std::thread::sleep(Duration::from_secs(3));
    let alive = within(10, || dagger_core::spawn(|| 1u8).fetch());
    assert!(
        alive.is_some(),
        "{size} ranks that drop their clusters without `finish`: every worker is blocked \
         in `Inner::drop` (barrier), a task spawned afterwards never runs"
    );
}

// ---------------------------------------------------------------------------------
// Panics where an error is due
// ---------------------------------------------------------------------------------

#[test]
fn an_overflowing_grid_is_an_error() {
    let cluster = local_ranks(1).pop().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        Placement::block_cyclic(&cluster, 1 << 32, 1 << 32).map(|p| p.grid())
    }));
    drop(cluster);
    match r {
        Ok(Err(_)) => {}
        Ok(Ok(grid)) => panic!("a grid of {grid:?} ranks fits 1 rank"),
        Err(p) => panic!("block_cyclic panicked: {}", panic_text(p)),
    }
}

#[test]
fn a_huge_block_shape_is_a_decode_error() {
    let mut meta = (1u64 << 32).to_le_bytes().to_vec();
    meta.extend_from_slice(&(1u64 << 32).to_le_bytes());
    let r = catch_unwind(|| <Block<f64> as Transfer>::decode(&meta, &[]).map(|b| b.shape()));
    match r {
        Ok(Err(_)) => {}
        Ok(Ok(shape)) => panic!("decoded a {shape} block from no bytes"),
        Err(p) => panic!("Block::decode panicked: {}", panic_text(p)),
    }
}

#[test]
fn vectors_of_zero_sized_values_keep_their_length() {
    let value = vec![(); 5];
    let mut meta = Vec::new();
    let bulk = value.encode(&mut meta).unwrap().into_owned();
    let r = catch_unwind(|| <Vec<()> as Transfer>::decode(&meta, &bulk));
    match r {
        Ok(Ok(v)) => assert_eq!(v.len(), 5, "5 `()` came back as {}", v.len()),
        Ok(Err(_)) => {}
        Err(p) => panic!("Vec<()>::decode panicked: {}", panic_text(p)),
    }
}

/// A `Dist` of another cluster (here one of 1 rank) as an input is an error, not an index
/// out of bounds in the bookkeeping.
#[test]
fn a_value_of_another_cluster_is_an_error() {
    let outcome = run_ranks(2, 15, |cluster| {
        let solo = local_ranks(1).pop().unwrap();
        let x = solo.spawn_on(0, || 1u64).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            cluster.spawn_on_with(1, (&x,), |v: &u64| *v).map(|_| ())
        }));
        r.map_err(panic_text)
    })
    .expect("still running");
    for r in outcome {
        let r = r.expect("rank panicked");
        assert!(
            !matches!(r, Err(ref p) if p.contains("index out of bounds")),
            "{r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Errors: reach every rank, name the rank, keep the cause
// ---------------------------------------------------------------------------------

/// A value whose `Transfer::decode` panics on the receiving rank: the error seen there
/// says which rank sent it.
#[derive(Clone, Debug)]
struct PanicsOnDecode(u64);

impl Transfer for PanicsOnDecode {
    fn encode<'a>(&'a self, _meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        Ok(Cow::Borrowed(bytemuck::bytes_of(&self.0)))
    }
    fn decode(_meta: &[u8], _bulk: &[u8]) -> Result<Self, DecodeError> {
        panic!("decode blew up")
    }
}

#[test]
fn a_panicking_decode_names_the_sender() {
    let outcome = run_ranks(2, 15, |cluster| {
        let d = cluster.spawn_on(1, || PanicsOnDecode(3)).map_err(e)?;
        let got = d.fetch();
        cluster.finish().map_err(e)?;
        Ok::<_, String>(got.map(|v| v.0).map_err(e))
    })
    .expect("still running");
    let on_0 = outcome[0]
        .clone()
        .expect("rank 0 panicked")
        .expect("rank 0 failed");
    let text = on_0.expect_err("a value whose decode panics");
    assert!(
        text.contains("rank 1"),
        "the error does not name the sending rank: {text}"
    );
}

/// A value whose `Serialize` fails: the receiver gets the sender's failure, naming the
/// type. (postcard keeps no custom message: "the secret reason" is lost inside it.)
#[derive(Debug, Clone, serde::Deserialize)]
struct Unserializable(u64);

impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("the secret reason"))
    }
}

#[test]
fn a_serialize_error_reaches_the_receiver() {
    let outcome = run_ranks(2, 15, |cluster| {
        let d = cluster
            .spawn_on(1, || Serde(Unserializable(7)))
            .map_err(e)?;
        let got = d.fetch_on(0).map_err(e);
        cluster.finish().map_err(e)?;
        Ok::<_, String>(got.map(|v| v.map(|s| s.0 .0)))
    })
    .expect("still running");
    let on_0 = outcome[0]
        .clone()
        .expect("rank 0 panicked")
        .expect("rank 0 failed");
    let text = on_0.expect_err("an unserializable value arrived");
    assert!(
        text.contains("on rank 1") && text.contains("could not write a `misuse::Unserializable`"),
        "the cause is lost: {text}"
    );
}

/// A zero-sized serde value whose `Serialize` fails arrives as a failure, not as a value
/// decoded from no bytes.
#[derive(Debug, Clone, serde::Deserialize)]
struct Marker;

impl serde::Serialize for Marker {
    fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot send a Marker"))
    }
}

#[test]
fn a_failed_serialize_of_a_zero_sized_value_is_an_error() {
    let outcome = run_ranks(2, 15, |cluster| {
        let d = cluster.spawn_on(1, || Serde(Marker)).map_err(e)?;
        let got = d.fetch_on(0).map_err(e);
        cluster.finish().map_err(e)?;
        Ok::<_, String>(got.map(|v| v.is_some()))
    })
    .expect("still running");
    let on_0 = outcome[0]
        .clone()
        .expect("rank 0 panicked")
        .expect("rank 0 failed");
    assert!(
        on_0.is_err(),
        "a value whose Serialize failed arrived: {on_0:?}"
    );
}

// ---------------------------------------------------------------------------------
// What should hold
// ---------------------------------------------------------------------------------

/// Values around the inline limit (64 KiB of bulk), empty values, metadata plus bulk,
/// and large serde values, replicated to 4 ranks.
#[test]
fn sizes_around_the_inline_limit() {
    let outcome = run_ranks(4, 60, |cluster| {
        let last = cluster.size() - 1;
        for len in [0usize, 1, 65_535, 65_536, 65_537, 300_001] {
            let v = cluster
                .spawn_on(last, move || {
                    (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()
                })
                .map_err(e)?;
            let got = v.fetch().map_err(e)?;
            if got.len() != len || got.iter().enumerate().any(|(i, &b)| b != (i % 251) as u8) {
                return Err(format!("Vec<u8> of {len}: wrong"));
            }
            let s = cluster
                .spawn_on(last, move || "é".repeat(len / 2))
                .map_err(e)?;
            if s.fetch().map_err(e)? != "é".repeat(len / 2) {
                return Err(format!("String of {len}: wrong"));
            }
        }
        for n in [8191usize, 8192, 8193] {
            let b = cluster
                .spawn_on(last, move || {
                    Block::new((1, n).into(), (0..n).map(|i| i as f64).collect()).unwrap()
                })
                .map_err(e)?;
            let got = b.fetch().map_err(e)?;
            if got.shape() != (dagger_array::Shape { rows: 1, cols: n })
                || got.as_slice()[n - 1] != (n - 1) as f64
            {
                return Err(format!("Block of {n}: wrong"));
            }
        }
        let big = cluster
            .spawn_on(last, || Serde(vec![("x".repeat(1000), 1.5f64); 500]))
            .map_err(e)?;
        if big.fetch().map_err(e)?.0.len() != 500 {
            return Err("serde".into());
        }
        cluster.finish().map_err(e)
    })
    .expect("still running after 60 s");
    for r in outcome {
        r.expect("panicked").expect("failed");
    }
}

/// A failure on the owner reaches every rank through the replicate tree, naming it.
#[test]
fn failure_forwarded_through_the_tree() {
    let outcome = run_ranks(4, 30, |cluster| {
        let bad = cluster
            .spawn_on(2, || -> u64 { panic!("boom on two") })
            .map_err(e)?;
        let got = bad.fetch();
        cluster.finish().map_err(e)?;
        Ok::<_, String>(got.map_err(e))
    })
    .expect("still running");
    for (rank, r) in outcome.into_iter().enumerate() {
        let got = r.expect("panicked").expect("failed");
        let text = got.expect_err("a failed value fetched");
        assert!(text.contains("boom on two"), "rank {rank}: {text}");
        if rank != 2 {
            assert!(text.contains("rank 2"), "rank {rank}: {text}");
        }
    }
}

/// A value whose `encode` panics: the receiver gets an error, not a hang.
#[derive(Clone, Debug)]
struct PanicsOnEncode;

impl Transfer for PanicsOnEncode {
    fn encode<'a>(&'a self, _meta: &mut Vec<u8>) -> Result<Cow<'a, [u8]>, EncodeError> {
        panic!("encode blew up")
    }
    fn decode(_meta: &[u8], _bulk: &[u8]) -> Result<Self, DecodeError> {
        Ok(PanicsOnEncode)
    }
}

#[test]
fn encode_panic_is_an_error() {
    let outcome = run_ranks(3, 15, |cluster| {
        let d = cluster.spawn_on(1, || PanicsOnEncode).map_err(e)?;
        let got = d.fetch().map(|_| ()).map_err(e);
        cluster.finish().map_err(e)?;
        Ok::<_, String>(got)
    })
    .expect("still running");
    for (rank, r) in outcome.into_iter().enumerate() {
        let got = r.expect("panicked").expect("failed");
        if rank != 1 {
            let text = got.expect_err("sent anyway");
            assert!(text.contains("encode") && text.contains("rank 1"), "{text}");
        }
    }
}

/// Ranks that disagree on a value's type (the same lines, a generic): an error, and
/// `finish` reports it.
fn make_and_fetch<T: Transfer + Default + Clone>(cluster: &Cluster) -> Result<(), Error> {
    cluster.spawn_on(0, T::default)?.fetch_on(1).map(|_| ())
}

#[test]
fn type_mismatch_is_an_error() {
    let outcome = run_ranks(2, 15, |cluster| {
        let got = if cluster.rank() == 0 {
            make_and_fetch::<u64>(&cluster)
        } else {
            make_and_fetch::<u32>(&cluster)
        };
        (got.map_err(e), cluster.finish().map_err(e))
    })
    .expect("still running");
    let (got, fin) = outcome[1].clone().expect("panicked");
    assert!(got.is_err() && fin.is_err(), "{got:?} {fin:?}");
    eprintln!("type mismatch on rank 1: {got:?} / {fin:?}");
}

#[test]
fn operations_after_finish_are_errors() {
    let outcome = run_ranks(2, 15, |cluster| {
        let d = cluster.spawn_on(0, || 1u64).unwrap();
        cluster.finish().unwrap();
        (
            d.fetch().is_err(),
            cluster.spawn_on(1, || 2u8).is_err(),
            cluster.finish().is_ok(),
        )
    })
    .expect("still running");
    for r in outcome {
        assert_eq!(r.expect("panicked"), (true, true, true));
    }
}

/// Many values in both directions at once, large and small, with every rank sending to
/// every other (all_gather of large vectors).
#[test]
fn all_to_all_large() {
    let outcome = run_ranks(4, 60, |cluster| {
        let me = cluster.rank() as u64;
        let mine = dagger_core::spawn(move || vec![me; 40_000]);
        let all = cluster.all_gather(&mine).map_err(e)?.fetch().map_err(e)?;
        let ok = all
            .iter()
            .enumerate()
            .all(|(r, v)| v.len() == 40_000 && v.iter().all(|&x| x == r as u64));
        cluster.finish().map_err(e)?;
        Ok::<bool, String>(ok)
    })
    .expect("still running");
    for r in outcome {
        assert!(r.expect("panicked").expect("failed"));
    }
}

/// A task failure (a panicking `encode`) while the program has dropped its handles is
/// that value's failure on the receiver, not the end of the program: send tasks hold no
/// `Cluster`, so no `Cluster` is dropped while their panic unwinds.
#[test]
fn an_encode_panic_with_dropped_handles_does_not_abort() {
    let outcome = run_ranks(2, 15, |cluster| {
        let d = cluster
            .spawn_on(1, || {
                std::thread::sleep(Duration::from_millis(300));
                PanicsOnEncode
            })
            .unwrap();
        let e = cluster
            .spawn_on_with(0, (&d,), |_: &PanicsOnEncode| 1u8)
            .unwrap();
        drop((d, cluster));
        let got = e
            .local()
            .map(|h| h.wait().map_err(|error| error.to_string()));
        drop(e);
        got
    })
    .expect("still running after 15 s");
    let on_0 = outcome[0].clone().expect("rank 0 panicked");
    let text = on_0
        .expect("rank 0 runs the task")
        .expect_err("a value whose encode panicked");
    assert!(
        text.contains("encode") && !text.contains("ended the program"),
        "{text}"
    );
}
