//! The distributed checks, each run on every rank of a cluster and compared with the
//! same computation on one node (dagger_array::DArray, or plain Rust). Used by
//! `tests/ranks.rs` (MPI ranks, or one rank) and `tests/local.rs` (ranks as threads).

#![allow(dead_code)]

use dagger_array::DArray;
use dagger_core::Error;
use dagger_mpi::{Cluster, DistArray, DistData, Placement, Serde};

pub type Check = fn(&Cluster) -> Result<(), String>;

/// The checks to run: all, or those whose name contains `DAGGER_MPI_CHECK`.
pub fn selected() -> impl Iterator<Item = &'static (&'static str, Check)> {
    let only = std::env::var("DAGGER_MPI_CHECK").unwrap_or_default();
    CHECKS
        .iter()
        .filter(move |(name, _)| name.contains(only.as_str()))
}

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("tasks_on_ranks", tasks_on_ranks),
    ("collectives", collectives),
    ("serde_and_large_values", serde_and_large_values),
    ("arrays_match_one_node", arrays_match_one_node),
    ("cholesky_matches_one_node", cholesky_matches_one_node),
    ("solves_match_one_node", solves_match_one_node),
    ("jacobi_matches_one_node", jacobi_matches_one_node),
    ("reductions_match_one_node", reductions_match_one_node),
    ("failure_reaches_every_rank", failure_reaches_every_rank),
    ("other_thread_is_an_error", other_thread_is_an_error),
    ("random_programs", random_programs),
    ("merged_trace", merged_trace),
    ("regions_match_plain_rust", regions_match_plain_rust),
    ("region_failures_and_misuse", region_failures_and_misuse),
];

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn e(error: Error) -> String {
    error.to_string()
}

fn tasks_on_ranks(cluster: &Cluster) -> Result<(), String> {
    let last = cluster.size() - 1;
    let a = cluster.spawn_on(last, || 6u64).map_err(e)?;
    let b = cluster.spawn_on(0, || 7u64).map_err(e)?;
    let c = cluster
        .spawn_on_with(last / 2, (&a, &b), |a: &u64, b: &u64| a * b)
        .map_err(e)?;
    let d = cluster
        .spawn_on_with(last, (&c, &a, &b), |c: &u64, a: &u64, b: &u64| c + a + b)
        .map_err(e)?;
    let got = (c.fetch().map_err(e)?, d.fetch().map_err(e)?);
    ensure(got == (42, 55), || {
        format!("rank {}: {got:?}", cluster.rank())
    })?;
    let only = d.fetch_on(0).map_err(e)?;
    ensure((cluster.rank() == 0) == only.is_some(), || {
        "fetch_on gave a value off its rank".into()
    })?;
    ensure(cluster.spawn_on(cluster.size(), || 1u8).is_err(), || {
        "a rank out of range".into()
    })
}

fn collectives(cluster: &Cluster) -> Result<(), String> {
    let (rank, size) = (cluster.rank() as u64, cluster.size() as u64);
    let mine = dagger_core::spawn(move || rank * 10 + 1);
    let sum = cluster
        .all_reduce(&mine, |a: &u64, b: &u64| a + b)
        .map_err(e)?;
    let want: u64 = (0..size).map(|r| r * 10 + 1).sum();
    let got = sum.fetch().map_err(e)?;
    ensure(got == want, || format!("all_reduce: {got} != {want}"))?;
    let all = cluster.all_gather(&mine).map_err(e)?.fetch().map_err(e)?;
    let want: Vec<u64> = (0..size).map(|r| r * 10 + 1).collect();
    ensure(all == want, || format!("all_gather: {all:?}"))?;
    let root = cluster.size() - 1;
    let gathered = cluster.gather(root, &mine).map_err(e)?;
    match gathered {
        Some(h) => {
            let got = h.fetch().map_err(e)?;
            ensure(cluster.rank() == root && got == want, || {
                format!("gather: {got:?}")
            })?;
        }
        None => ensure(cluster.rank() != root, || {
            "gather: nothing on the root".into()
        })?,
    }
    let value = dagger_core::spawn(|| String::from("from the root ✓"));
    let root_value = (cluster.rank() == root).then_some(&value);
    let got = cluster
        .broadcast(root, root_value)
        .map_err(e)?
        .fetch()
        .map_err(e)?;
    ensure(got == "from the root ✓", || format!("broadcast: {got}"))?;
    let missing = cluster.broadcast::<u64>(0, None).map_err(e)?.fetch();
    match missing {
        Err(error) => ensure(error.to_string().contains("gave no value"), || {
            format!("{error}")
        }),
        Ok(v) => Err(format!("a broadcast without a value gave {v}")),
    }
}

fn serde_and_large_values(cluster: &Cluster) -> Result<(), String> {
    let last = cluster.size() - 1;
    let table = cluster
        .spawn_on(last, || {
            Serde(vec![
                ("ünïcode".to_string(), Some(1.5f64)),
                ("x".into(), None),
            ])
        })
        .map_err(e)?;
    let got = table.fetch().map_err(e)?;
    ensure(got.0.len() == 2 && got.0[0].0 == "ünïcode", || {
        format!("{got:?}")
    })?;
    // Larger than a head: sent as raw bytes after it.
    let n = 300_000usize;
    let big = cluster
        .spawn_on(last, move || (0..n as u64).collect::<Vec<u64>>())
        .map_err(e)?;
    let total = cluster
        .spawn_on_with(0, (&big,), |v: &Vec<u64>| v.iter().sum::<u64>())
        .map_err(e)?
        .fetch()
        .map_err(e)?;
    ensure(total == (n as u64) * (n as u64 - 1) / 2, || {
        format!("sum {total}")
    })
}

fn close(a: &[f64], b: &[f64], tolerance: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tolerance * (1.0 + y.abs()))
}

fn arrays_match_one_node(cluster: &Cluster) -> Result<(), String> {
    let grid = Placement::square(cluster);
    let rows_only = Placement::block_cyclic(cluster, cluster.size(), 1).map_err(e)?;
    let (shape, block) = ((70, 45), (16, 16));
    let a = DistArray::<f64>::random(&grid, shape, block, 3).map_err(e)?;
    let b = DistArray::<f64>::random(&rows_only, shape, block, 4).map_err(e)?;
    let one_a = DArray::<f64>::random(shape, block, 3).map_err(e)?;
    let one_b = DArray::<f64>::random(shape, block, 4).map_err(e)?;
    ensure(
        a.collect().map_err(e)? == one_a.collect().map_err(e)?,
        || "random differs".into(),
    )?;
    let sum = a.plus(&b).map_err(e)?.scale(2.0).map_err(e)?;
    let one_sum = one_a.plus(&one_b).map_err(e)?.scale(2.0);
    ensure(
        close(
            &sum.collect().map_err(e)?,
            &one_sum.collect().map_err(e)?,
            1e-12,
        ),
        || "plus/scale".into(),
    )?;
    let t = a.transpose().map_err(e)?;
    ensure(
        t.collect().map_err(e)? == one_a.transpose().collect().map_err(e)?,
        || "transpose".into(),
    )?;
    let product = a.matmul(&b.transpose().map_err(e)?).map_err(e)?;
    let one_product = one_a.matmul(&one_b.transpose()).map_err(e)?;
    let dense = one_product.collect().map_err(e)?;
    ensure(close(&product.collect().map_err(e)?, &dense, 1e-10), || {
        "matmul".into()
    })?;
    let total = product.sum().map_err(e)?;
    let want: f64 = dense.iter().sum();
    ensure((total - want).abs() < 1e-8 * want.abs(), || {
        format!("sum {total} != {want}")
    })?;
    let on_last = product.collect_on(cluster.size() - 1).map_err(e)?;
    ensure(
        on_last.is_some() == (cluster.rank() == cluster.size() - 1),
        || "collect_on".into(),
    )?;
    ensure(a.matmul(&a).is_err(), || {
        "a 70x45 matrix times itself".into()
    })
}

fn cholesky_matches_one_node(cluster: &Cluster) -> Result<(), String> {
    let n = 90;
    let grid = Placement::square(cluster);
    let spd = move |i: usize, j: usize| {
        let base = 1.0 / (1.0 + (i as f64 - j as f64).abs());
        if i == j {
            base + n as f64
        } else {
            base
        }
    };
    let a = DistArray::<f64>::from_fn(&grid, (n, n), (20, 20), spd).map_err(e)?;
    let l = a.cholesky().map_err(e)?;
    let one = DArray::<f64>::from_fn((n, n), (20, 20), spd)
        .map_err(e)?
        .cholesky()
        .map_err(e)?;
    ensure(
        close(&l.collect().map_err(e)?, &one.collect().map_err(e)?, 1e-10),
        || "cholesky".into(),
    )?;
    // Not positive definite: the error names the pivot's row, on every rank.
    let bad = DistArray::<f64>::from_fn(&grid, (n, n), (20, 20), |i, j| {
        if i == j && i == 47 {
            -1.0
        } else if i == j {
            10.0
        } else {
            0.0
        }
    })
    .map_err(e)?;
    match bad.cholesky().map_err(e)?.collect() {
        Err(error) => ensure(error.to_string().contains("row 47"), || format!("{error}")),
        Ok(_) => Err("a matrix that is not positive definite factored".into()),
    }
}

fn solves_match_one_node(cluster: &Cluster) -> Result<(), String> {
    let n = 70;
    let spd = move |i: usize, j: usize| {
        let base = 1.0 / (1.0 + (i as f64 - j as f64).abs());
        if i == j {
            base + n as f64
        } else {
            base
        }
    };
    let grid = Placement::square(cluster);
    let rows = Placement::block_cyclic(cluster, cluster.size(), 1).map_err(e)?;
    let l = DistArray::<f64>::from_fn(&grid, (n, n), (16, 16), spd)
        .map_err(e)?
        .cholesky()
        .map_err(e)?;
    let b = DistArray::<f64>::random(&rows, (n, 9), (16, 4), 11).map_err(e)?;
    let one_l = DArray::<f64>::from_fn((n, n), (16, 16), spd)
        .map_err(e)?
        .cholesky()
        .map_err(e)?;
    let one_b = DArray::<f64>::random((n, 9), (16, 4), 11).map_err(e)?;
    let pairs = [
        (
            l.solve_lower_triangular(&b).map_err(e)?,
            one_l.solve_lower_triangular(&one_b).map_err(e)?,
        ),
        (
            l.solve_lower_transposed(&b).map_err(e)?,
            one_l.solve_lower_transposed(&one_b).map_err(e)?,
        ),
        (
            l.cholesky_solve(&b).map_err(e)?,
            one_l.cholesky_solve(&one_b).map_err(e)?,
        ),
    ];
    for (k, (many, one)) in pairs.iter().enumerate() {
        ensure(
            close(
                &many.collect().map_err(e)?,
                &one.collect().map_err(e)?,
                1e-9,
            ),
            || format!("solve {k}"),
        )?;
    }
    // A singular factor: the error names the diagonal, on every rank.
    let singular = DistArray::<f64>::from_fn(&grid, (n, n), (16, 16), |i, j| {
        if i == j && i != 33 {
            1.0
        } else {
            0.0
        }
    })
    .map_err(e)?;
    match singular.solve_lower_triangular(&b).map_err(e)?.collect() {
        Err(error) => ensure(error.to_string().contains("diagonal 33"), || {
            format!("{error}")
        }),
        Ok(_) => Err("a singular matrix solved".into()),
    }
}

fn jacobi_matches_one_node(cluster: &Cluster) -> Result<(), String> {
    let grid = Placement::square(cluster);
    let heat = |i: usize, j: usize| {
        if i == 0 {
            100.0
        } else {
            (i * 7 + j * 3) as f64 % 5.0
        }
    };
    let many = DistArray::<f64>::from_fn(&grid, (41, 37), (10, 9), heat)
        .map_err(e)?
        .jacobi(6)
        .map_err(e)?;
    let one = DArray::<f64>::from_fn((41, 37), (10, 9), heat)
        .map_err(e)?
        .jacobi(6)
        .map_err(e)?;
    ensure(
        many.collect().map_err(e)? == one.collect().map_err(e)?,
        || "jacobi".into(),
    )
}

fn reductions_match_one_node(cluster: &Cluster) -> Result<(), String> {
    let grid = Placement::square(cluster);
    let a = DistArray::<f64>::random(&grid, (33, 29), (8, 8), 5).map_err(e)?;
    let b = DistArray::<f64>::random(&grid, (33, 29), (8, 8), 6).map_err(e)?;
    let one_a = DArray::<f64>::random((33, 29), (8, 8), 5).map_err(e)?;
    let one_b = DArray::<f64>::random((33, 29), (8, 8), 6).map_err(e)?;
    let got = [
        a.min().map_err(e)?,
        a.max().map_err(e)?,
        a.mean().map_err(e)?,
        a.get(17, 3).map_err(e)?,
    ];
    let want = [
        one_a.min().map_err(e)?,
        one_a.max().map_err(e)?,
        one_a.mean().map_err(e)?,
        one_a.get(17, 3).map_err(e)?,
    ];
    ensure(close(&got, &want, 1e-12), || format!("{got:?} != {want:?}"))?;
    let mixed = a
        .minus(&b)
        .map_err(e)?
        .hadamard(&a)
        .map_err(e)?
        .shift(0.5)
        .map_err(e)?;
    let one_mixed = one_a
        .minus(&one_b)
        .map_err(e)?
        .hadamard(&one_a)
        .map_err(e)?
        .shift(0.5);
    ensure(
        close(
            &mixed.collect().map_err(e)?,
            &one_mixed.collect().map_err(e)?,
            1e-12,
        ),
        || "minus/hadamard/shift".into(),
    )?;
    let zeros = DistArray::<f64>::zeros(&grid, (0, 4), (2, 2)).map_err(e)?;
    ensure(zeros.min().is_err() && zeros.mean().is_err(), || {
        "min of an empty array".into()
    })?;
    let nans = DistArray::<f64>::fill(&grid, (3, 3), (2, 2), f64::NAN).map_err(e)?;
    ensure(nans.max().is_err(), || "max of NaNs".into())
}

fn failure_reaches_every_rank(cluster: &Cluster) -> Result<(), String> {
    let last = cluster.size() - 1;
    let bad = cluster
        .spawn_on(last, || -> u64 { panic!("boom in the task") })
        .map_err(e)?;
    let dependent = cluster
        .spawn_on_with(0, (&bad,), |v: &u64| v + 1)
        .map_err(e)?;
    match dependent.fetch() {
        Err(error) => {
            let text = error.to_string();
            ensure(text.contains("boom in the task"), || {
                format!("rank {}: {text}", cluster.rank())
            })?;
            if last != 0 {
                ensure(text.contains(&format!("rank {last}")), || {
                    format!("no rank named: {text}")
                })?;
            }
            Ok(())
        }
        Ok(v) => Err(format!("a task after a failed one gave {v}")),
    }
}

fn other_thread_is_an_error(cluster: &Cluster) -> Result<(), String> {
    let other = cluster.clone();
    let _ = cluster.spawn_on(0, || 0u8).map_err(e)?;
    let result = std::thread::spawn(move || other.spawn_on(0, || 1u8).map(|_| ()))
        .join()
        .map_err(|_| "panicked".to_string())?;
    ensure(result.is_err(), || {
        "a distributed operation from a second thread".into()
    })
}

/// Random programs of tasks on random ranks, each combining earlier values, against the
/// same program run sequentially. Every rank draws the same program (same seed).
fn random_programs(cluster: &Cluster) -> Result<(), String> {
    let rounds = if std::env::var_os("DAGGER_TEST_LIGHT").is_some() {
        3
    } else {
        12
    };
    for seed in 0..rounds {
        let mut rng = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) + 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut values = Vec::new();
        let mut expected: Vec<u64> = Vec::new();
        for step in 0..60u64 {
            let rank = next(cluster.size() as u64) as usize;
            if values.len() < 2 || next(4) == 0 {
                values.push(cluster.spawn_on(rank, move || step * 31 + 7).map_err(e)?);
                expected.push(step * 31 + 7);
            } else {
                let (i, j) = (
                    next(values.len() as u64) as usize,
                    next(values.len() as u64) as usize,
                );
                let v = cluster
                    .spawn_on_with(rank, (&values[i], &values[j]), move |a: &u64, b: &u64| {
                        a.wrapping_mul(3).wrapping_add(*b ^ step)
                    })
                    .map_err(e)?;
                values.push(v);
                expected.push(expected[i].wrapping_mul(3).wrapping_add(expected[j] ^ step));
            }
        }
        let last = values.last().expect("values").fetch().map_err(e)?;
        ensure(last == *expected.last().expect("expected"), || {
            format!("seed {seed}: {last}")
        })?;
    }
    Ok(())
}

/// Every rank's trace merged on rank 0: a process per rank, and the summary's traffic
/// the ranks' own (taken during the merge: between rank 0's counts before and after).
fn merged_trace(cluster: &Cluster) -> Result<(), String> {
    let recorder = dagger_core::observe::Recorder::new();
    let runtime = dagger_core::default_runtime().map_err(e)?;
    let (before, merged) = {
        let _observing = runtime.observe(recorder.clone());
        let x = cluster
            .spawn_on(cluster.size() - 1, || vec![1u64; 10_000])
            .map_err(e)?;
        let y = cluster
            .spawn_on_with(0, (&x,), |x: &Vec<u64>| x.iter().sum::<u64>())
            .map_err(e)?;
        ensure(y.fetch().map_err(e)? == 10_000, || "the sum".into())?;
        let before = cluster.traffic();
        (before, cluster.merge_traces(&recorder, 0).map_err(e)?)
    };
    let after = cluster.traffic();
    let Some(merged) = merged else {
        return ensure(cluster.rank() != 0, || "no merged trace on rank 0".into());
    };
    ensure(cluster.rank() == 0, || "a merged trace off rank 0".into())?;
    let ranks = merged.ranks();
    ensure(ranks.len() == cluster.size(), || {
        format!("{} summaries", ranks.len())
    })?;
    ensure(
        ranks
            .iter()
            .enumerate()
            .all(|(r, s)| s.rank == r && s.tasks > 0),
        || format!("summaries out of order or empty: {ranks:?}"),
    )?;
    let counts = |t: dagger_mpi::Traffic| [t.sent, t.sent_bytes, t.received, t.received_bytes];
    let (low, mid, high) = (counts(before), counts(ranks[0].traffic), counts(after));
    ensure(
        (0..4).all(|i| low[i] <= mid[i] && mid[i] <= high[i]),
        || {
            format!(
                "rank 0's traffic {:?} is not between {before:?} and {after:?}",
                ranks[0].traffic
            )
        },
    )?;
    let sent: u64 = ranks.iter().map(|r| r.traffic.sent_bytes).sum();
    ensure(cluster.size() == 1 || sent >= 80_000, || {
        format!("{sent} bytes sent")
    })?;
    let json: serde_json::Value =
        serde_json::from_str(merged.to_chrome_json()).map_err(|e| e.to_string())?;
    let events = json["traceEvents"].as_array().ok_or("no events")?;
    let mut pids: Vec<u64> = events.iter().filter_map(|ev| ev["pid"].as_u64()).collect();
    pids.sort_unstable();
    pids.dedup();
    ensure(
        pids == (1..=cluster.size() as u64).collect::<Vec<_>>(),
        || format!("processes {pids:?}"),
    )?;
    let named = events
        .iter()
        .filter(|ev| ev["name"] == "process_name")
        .filter_map(|ev| ev["args"]["name"].as_str())
        .filter(|name| name.starts_with("rank "))
        .count();
    ensure(named == cluster.size(), || format!("{named} ranks named"))?;
    let tasks = events.iter().filter(|ev| ev["ph"] == "X").count();
    ensure(
        tasks >= ranks.iter().map(|r| r.tasks).sum::<usize>(),
        || format!("{tasks} task events"),
    )
}

/// A pseudo-random program of region tasks (the same on every rank: a fixed seed) over
/// objects with different homes, against the same steps on plain vectors.
fn regions_match_plain_rust(cluster: &Cluster) -> Result<(), String> {
    const OBJECTS: usize = 5;
    let size = cluster.size();
    let objects: Vec<DistData<Vec<u64>>> = (0..OBJECTS)
        .map(|i| cluster.data_on(i % size, move || vec![i as u64; 2_000]))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let mut plain: Vec<Vec<u64>> = (0..OBJECTS).map(|i| vec![i as u64; 2_000]).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for step in 0..60u64 {
        let r = next();
        let (i, j) = (
            (r % OBJECTS as u64) as usize,
            ((r >> 8) % OBJECTS as u64) as usize,
        );
        let j = if i == j { (j + 1) % OBJECTS } else { j };
        let k = (0..OBJECTS)
            .find(|&k| k != i && k != j)
            .expect("three objects");
        match (r >> 16) % 5 {
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
                    .spawn_accessing(
                        (objects[j].read(), objects[i].write()),
                        |src: &Vec<u64>, dst: &mut Vec<u64>| {
                            dst.iter_mut()
                                .zip(src)
                                .for_each(|(d, s)| *d = d.wrapping_add(*s))
                        },
                    )
                    .map_err(e)?;
                let src = plain[j].clone();
                plain[i]
                    .iter_mut()
                    .zip(&src)
                    .for_each(|(d, s)| *d = d.wrapping_add(*s));
            }
            2 => {
                cluster
                    .spawn_accessing(
                        (objects[i].read(), objects[j].read(), objects[k].write()),
                        |a: &Vec<u64>, b: &Vec<u64>, c: &mut Vec<u64>| {
                            for ((c, a), b) in c.iter_mut().zip(a).zip(b) {
                                *c = a ^ b.rotate_left(7);
                            }
                        },
                    )
                    .map_err(e)?;
                let (a, b) = (plain[i].clone(), plain[j].clone());
                for ((c, a), b) in plain[k].iter_mut().zip(&a).zip(&b) {
                    *c = a ^ b.rotate_left(7);
                }
            }
            3 => {
                // Explicit placement: both written objects move to `rank`.
                let rank = (r >> 24) as usize % size;
                cluster
                    .spawn_accessing_on(
                        rank,
                        (objects[i].write(), objects[j].write()),
                        |a: &mut Vec<u64>, b: &mut Vec<u64>| std::mem::swap(a, b),
                    )
                    .map_err(e)?;
                plain.swap(i, j);
                for data in [&objects[i], &objects[j]] {
                    ensure(data.home() == rank, || {
                        "a written object did not move".into()
                    })?;
                }
            }
            _ => {
                // A task that only reads runs on the first object's home.
                let check = plain[i].iter().fold(0u64, |h, x| h.rotate_left(5) ^ x);
                cluster
                    .spawn_accessing(objects[i].read(), move |v: &Vec<u64>| {
                        assert_eq!(v.iter().fold(0u64, |h, x| h.rotate_left(5) ^ x), check)
                    })
                    .map_err(e)?;
            }
        }
    }
    for (i, data) in objects.iter().enumerate() {
        let got = data.fetch().map_err(e)?;
        ensure(got == plain[i], || {
            format!(
                "rank {}: object {i} differs from plain Rust",
                cluster.rank()
            )
        })?;
    }
    Ok(())
}

/// A region task that panics fails what it writes and what is written from that, on
/// every rank; declaring one object twice with a write is an error.
fn region_failures_and_misuse(cluster: &Cluster) -> Result<(), String> {
    let last = cluster.size() - 1;
    let a = cluster.data_on(0, || 1u64).map_err(e)?;
    let b = cluster.data_on(last, || 2u64).map_err(e)?;
    cluster
        .spawn_accessing(a.write(), |_: &mut u64| panic!("region task blew up"))
        .map_err(e)?;
    cluster
        .spawn_accessing((a.read(), b.write()), |a: &u64, b: &mut u64| *b += a)
        .map_err(e)?;
    for (name, data) in [("a", &a), ("b", &b)] {
        match data.fetch() {
            Ok(v) => return Err(format!("{name} = {v} after a failed write")),
            Err(error) => ensure(error.to_string().contains("region task blew up"), || {
                format!("{name}: {error}")
            })?,
        }
    }
    // The panic is noted on the rank that ran the task (a's home), for `finish`.
    let noted = cluster.region_failures();
    ensure((cluster.rank() == 0) == (noted.len() == 1), || {
        format!("rank {}: noted {noted:?}", cluster.rank())
    })?;
    ensure(
        noted.iter().all(|n| n.contains("region task blew up")),
        || format!("{noted:?}"),
    )?;
    let c = cluster.data_on(0, || 3u64).map_err(e)?;
    let twice = cluster.spawn_accessing((c.read(), c.write()), |_: &u64, _: &mut u64| ());
    ensure(twice.is_err(), || {
        "one object read and written by one task".into()
    })?;
    cluster
        .spawn_accessing((c.read(), c.read()), |x: &u64, y: &u64| assert_eq!(x, y))
        .map_err(e)?;
    ensure(c.fetch().map_err(e)? == 3, || "c changed".into())
}
