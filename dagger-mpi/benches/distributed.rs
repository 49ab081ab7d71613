//! Distributed tiled matmul and Cholesky, and a remote-task round trip against a raw MPI
//! ping-pong of the same size, in one run:
//!
//! ```text
//! cargo bench -p dagger-mpi --features mpi --no-run
//! mpirun -n 4 target/release/deps/distributed-*      # ROUNDS=5 N=2048 BLOCK=256
//! ```
//!
//! For each kernel: the slowest rank's time (median of ROUNDS), and per rank the bytes it
//! received against the minimum that owner-computes needs (each remote tile version a
//! rank reads, once), computed here from the placement independently of dagger-mpi.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dagger_array::{Layout, Shape};
use dagger_mpi::{Cluster, DistArray, Placement};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn block_bytes(layout: &Layout, (i, j): (usize, usize)) -> u64 {
    let Shape { rows, cols } = layout.block_at(i, j).2;
    16 + (rows * cols * 8) as u64
}

/// Bytes each rank must receive for C = A B, owner computes, each block once.
fn matmul_minimum(grid: &Placement, layout: &Layout, size: usize) -> Vec<u64> {
    let (n, _) = layout.grid();
    (0..size)
        .map(|rank| {
            let mut needed = HashSet::new();
            for (i, j) in layout.blocks().filter(|&(i, j)| grid.owner(i, j) == rank) {
                for k in 0..n {
                    needed.insert(('a', i, k));
                    needed.insert(('b', k, j));
                }
            }
            needed
                .into_iter()
                .filter(|&(_, i, k)| grid.owner(i, k) != rank)
                .map(|(_, i, k)| block_bytes(layout, (i, k)))
                .sum()
        })
        .collect()
}

/// Bytes each rank must receive for the tiled Cholesky, owner computes: every tile
/// version a task reads, once per rank.
fn cholesky_minimum(grid: &Placement, layout: &Layout, size: usize) -> Vec<u64> {
    let (n, _) = layout.grid();
    let mut version: HashMap<(usize, usize), usize> = HashMap::new();
    let mut holders: HashMap<((usize, usize), usize), HashSet<usize>> = HashMap::new();
    let mut received = vec![0u64; size];
    let mut read = |tile: (usize, usize), on: usize, version: &HashMap<_, usize>| {
        let v = *version.get(&tile).unwrap_or(&0);
        let set = holders
            .entry((tile, v))
            .or_insert_with(|| HashSet::from([grid.owner(tile.0, tile.1)]));
        if set.insert(on) {
            received[on] += block_bytes(layout, tile);
        }
    };
    for k in 0..n {
        *version.entry((k, k)).or_default() += 1;
        for i in k + 1..n {
            read((k, k), grid.owner(i, k), &version);
            *version.entry((i, k)).or_default() += 1;
        }
        for i in k + 1..n {
            for j in k + 1..=i {
                read((i, k), grid.owner(i, j), &version);
                read((j, k), grid.owner(i, j), &version);
                *version.entry((i, j)).or_default() += 1;
            }
        }
    }
    received
}

/// The slowest rank's time, on every rank.
fn slowest(cluster: &Cluster, time: Duration) -> f64 {
    let mine = dagger_core::spawn(move || time.as_secs_f64());
    cluster
        .all_reduce(&mine, |a: &f64, b: &f64| a.max(*b))
        .and_then(|h| h.fetch())
        .expect("all_reduce")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(cluster: &Cluster, name: &str, times: Vec<f64>, received: u64, minimum: &[u64]) {
    let mine = dagger_core::spawn(move || received);
    let all = cluster
        .all_gather(&mine)
        .and_then(|h| h.fetch())
        .expect("all_gather");
    if cluster.rank() == 0 {
        let count = times.len();
        println!(
            "{name}: {:.1} ms (median of {count} rounds, slowest rank)",
            median(times) * 1e3
        );
        for (rank, (got, min)) in all.iter().zip(minimum).enumerate() {
            let ratio = if *min == 0 {
                1.0
            } else {
                *got as f64 / *min as f64
            };
            println!("  rank {rank}: received {got} bytes, minimum {min} ({ratio:.3}x)");
        }
    }
}

fn main() -> Result<(), dagger_core::Error> {
    let cluster = dagger_mpi::init()?;
    let rounds = env("ROUNDS", 5);
    let (n, block) = (env("N", 2048), env("BLOCK", 256));
    let grid = Placement::square(&cluster);
    if cluster.rank() == 0 {
        println!(
            "{} ranks, grid {:?}, N = {n}, blocks of {block}, DAGGER_THREADS = {}",
            cluster.size(),
            grid.grid(),
            std::env::var("DAGGER_THREADS").unwrap_or_else(|_| "default".into())
        );
    }
    let layout = Layout::new((n, n).into(), (block, block).into(), 2)?;

    // Matmul.
    let a = DistArray::<f64>::random(&grid, (n, n), (block, block), 1)?;
    let b = DistArray::<f64>::random(&grid, (n, n), (block, block), 2)?;
    a.wait_local()?;
    b.wait_local()?;
    // Every round on fresh copies of A and B: a rank keeps the blocks it received while
    // an array lives, so a second product of the same arrays moves nothing.
    let mut times = Vec::new();
    let mut received = 0;
    for _ in 0..rounds {
        let (a, b) = (a.map(|x| x)?, b.map(|x| x)?);
        a.wait_local()?;
        b.wait_local()?;
        let before = cluster.traffic().received_bytes;
        let started = Instant::now();
        let c = a.matmul(&b)?;
        c.wait_local()?;
        let elapsed = started.elapsed();
        received = cluster.traffic().received_bytes - before;
        times.push(slowest(&cluster, elapsed));
    }
    report(
        &cluster,
        "matmul",
        times,
        received,
        &matmul_minimum(&grid, &layout, cluster.size()),
    );

    // Cholesky of an SPD matrix.
    let spd = DistArray::<f64>::from_fn(&grid, (n, n), (block, block), move |i, j| {
        let off = 1.0 / (1.0 + (i as f64 - j as f64).abs());
        if i == j {
            off + n as f64
        } else {
            off
        }
    })?;
    spd.wait_local()?;
    let mut times = Vec::new();
    for _ in 0..rounds {
        let before = cluster.traffic().received_bytes;
        let started = Instant::now();
        let l = spd.cholesky()?;
        l.wait_local()?;
        let elapsed = started.elapsed();
        received = cluster.traffic().received_bytes - before;
        times.push(slowest(&cluster, elapsed));
    }
    report(
        &cluster,
        "cholesky",
        times,
        received,
        &cholesky_minimum(&grid, &layout, cluster.size()),
    );

    // Round trips: a task on rank 0 makes a value, a task on rank 1 copies it, rank 0
    // fetches the copy; against MPI_Send/MPI_Recv of the same bytes.
    if cluster.size() > 1 {
        let trips = env("TRIPS", 200);
        for bytes in [8usize, 64 * 1024, 4 << 20] {
            let mut dagger = Vec::new();
            let mut raw = Vec::new();
            for _ in 0..rounds {
                let started = Instant::now();
                for _ in 0..trips {
                    let x = cluster.spawn_on(0, move || vec![7u8; bytes])?;
                    let y = cluster.spawn_on_with(1, (&x,), |v: &Vec<u8>| v.clone())?;
                    y.fetch_on(0)?;
                }
                dagger.push(started.elapsed().as_secs_f64() / trips as f64);
                if cluster.rank() <= 1 {
                    if let Some(t) = cluster.raw_ping_pong(1, bytes, trips) {
                        raw.push(t.as_secs_f64() / trips as f64);
                    }
                }
            }
            if cluster.rank() == 0 && !raw.is_empty() {
                let (d, r) = (median(dagger), median(raw));
                println!(
                    "round trip of {bytes} bytes: dagger {:.1} µs, raw MPI ping-pong {:.1} µs ({:.2}x)",
                    d * 1e6,
                    r * 1e6,
                    d / r
                );
            }
        }
    }
    cluster.finish()
}
