//! Scheduling overhead (BENCHMARKS.md): every task does (almost) nothing, so the time is
//! the scheduler's. Each shape runs on 1 and 2 threads against baselines in the same
//! binary and the same rounds: the hand-written rayon floor (an atomic counter per task;
//! a finishing task runs one ready successor itself and spawns the rest), bare
//! `rayon::scope` spawns, and `rayon::join` where the shape is recursive.
//!
//! `cargo bench --bench scheduling [shape]` (env: ROUNDS, default 5; SCALE, default 1.0;
//! THREADS, default both 1 and 2)

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{
    contender, fib_spawn, fibonacci_number, measure, report, run_csr, spawn_fan, spawn_wavefront,
    ten_node_dag, work, Contender, Csr, TEN_NODE_EDGES,
};
use dagger::prelude::*;
use rayon::ThreadPool;

/// The floor (with `continuation`) or bare scope spawns (without) over `g`.
fn run_graph(pool: &ThreadPool, g: &Csr, continuation: bool) -> u64 {
    run_csr(pool, g, continuation, &|i| {
        work(i as u64);
    })
}

fn scale() -> f64 {
    std::env::var("SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn sized(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(16)
}

fn bench(name: &str, threads: usize, rounds: usize, contenders: &mut [Contender<'_>]) {
    let results = measure(rounds, contenders);
    report(name, threads, contenders, &results);
}

fn chain(threads: usize, rounds: usize, rt: &Runtime, pool: &ThreadPool) {
    let n = sized(1_000_000);
    let g = Csr::from_edges(n, (1..n as u32).map(|i| (i - 1, i)));
    bench(
        &format!("chain {n}"),
        threads,
        rounds,
        &mut [
            contender("floor (rayon, continuation)", || run_graph(pool, &g, true)),
            contender("rayon::scope spawn", || {
                fn link(s: &rayon::Scope<'_>, i: u64, n: u64) {
                    work(i);
                    if i + 1 < n {
                        s.spawn(move |s| link(s, i + 1, n));
                    }
                }
                pool.install(|| rayon::scope(|s| link(s, 0, n as u64)));
                n as u64
            }),
            contender("dagger spawn_with", || {
                rt.install(|| {
                    let mut h = spawn(|| work(0));
                    for i in 1..n as u64 {
                        h = spawn_with(h, move |x: u64| work(x ^ i));
                    }
                    black_box(h.fetch().unwrap());
                });
                n as u64
            }),
        ],
    );
}

fn wavefront(threads: usize, rounds: usize, rt: &Runtime, pool: &ThreadPool) {
    let side = ((1024.0 * scale().sqrt()) as usize).max(8);
    let n = side * side;
    let id = |r: usize, c: usize| (r * side + c) as u32;
    let mut edges = Vec::new();
    for r in 0..side {
        for c in 0..side {
            if c > 0 {
                edges.push((id(r, c - 1), id(r, c)));
            }
            if r > 0 {
                edges.push((id(r - 1, c), id(r, c)));
            }
        }
    }
    let g = Csr::from_edges(n, edges.into_iter());
    bench(
        &format!("wavefront {side}x{side}"),
        threads,
        rounds,
        &mut [
            contender("floor (rayon, continuation)", || run_graph(pool, &g, true)),
            contender("rayon::scope spawn", || run_graph(pool, &g, false)),
            contender("dagger spawn_with", || {
                black_box(rt.install(|| spawn_wavefront(side)));
                n as u64
            }),
        ],
    );
}

fn fan(threads: usize, rounds: usize, rt: &Runtime, pool: &ThreadPool) {
    let n = sized(1_000_000);
    let total = n + 2;
    let last = (n + 1) as u32;
    let g = Csr::from_edges(total, (1..=n as u32).flat_map(|i| [(0, i), (i, last)]));
    bench(
        &format!("fan-out/fan-in 1->{n}->1"),
        threads,
        rounds,
        &mut [
            contender("floor (rayon, continuation)", || run_graph(pool, &g, true)),
            contender("rayon::scope spawn", || {
                let acc = AtomicU64::new(0);
                pool.install(|| {
                    rayon::scope(|s| {
                        let root = work(0);
                        for i in 0..n as u64 {
                            let acc = &acc;
                            s.spawn(move |_| {
                                acc.fetch_add(work(root ^ i) & 1, Ordering::Relaxed);
                            });
                        }
                    })
                });
                black_box(work(acc.into_inner()));
                total as u64
            }),
            contender("dagger spawn_with", || {
                black_box(rt.install(|| spawn_fan(n as u64)));
                total as u64
            }),
        ],
    );
}

fn tree(threads: usize, rounds: usize, rt: &Runtime, pool: &ThreadPool) {
    let depth = ((20.0 + scale().log2()) as u32).clamp(4, 20);
    let nodes = (1u64 << depth) - 1;
    fn spawn_tree(d: u32, i: u64) -> u64 {
        if d == 1 {
            return work(i);
        }
        let left = spawn(move || spawn_tree(d - 1, 2 * i));
        let right = spawn_tree(d - 1, 2 * i + 1);
        work(left.fetch().unwrap() ^ right)
    }
    fn join_tree(d: u32, i: u64) -> u64 {
        if d == 1 {
            return work(i);
        }
        let (a, b) = rayon::join(|| join_tree(d - 1, 2 * i), || join_tree(d - 1, 2 * i + 1));
        work(a ^ b)
    }
    fn scope_tree<'s>(s: &rayon::Scope<'s>, d: u32, i: u64) {
        work(i);
        if d > 1 {
            s.spawn(move |s| scope_tree(s, d - 1, 2 * i));
            s.spawn(move |s| scope_tree(s, d - 1, 2 * i + 1));
        }
    }
    let g = Csr::from_edges(nodes as usize, (1..nodes as u32).map(|i| ((i - 1) / 2, i)));
    bench(
        &format!("binary tree 2^{depth}-1"),
        threads,
        rounds,
        &mut [
            contender("floor (rayon, continuation)", || run_graph(pool, &g, true)),
            contender("rayon::scope spawn", || {
                pool.install(|| rayon::scope(|s| scope_tree(s, depth, 1)));
                nodes
            }),
            contender("rayon::join", || {
                black_box(pool.install(|| join_tree(depth, 1)));
                nodes
            }),
            contender("dagger nested spawn", || {
                black_box(rt.install(|| spawn_tree(depth, 1)));
                nodes
            }),
        ],
    );
}

fn fibonacci(threads: usize, rounds: usize, rt: &Runtime, pool: &ThreadPool) {
    let n = ((30.0 + scale().log2() * 0.7) as u64).clamp(10, 30);
    fn fib_join(n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let (a, b) = rayon::join(|| fib_join(n - 1), || fib_join(n - 2));
        a + b
    }
    fn fib_scope<'s>(s: &rayon::Scope<'s>, n: u64, acc: &'s AtomicU64) {
        if n < 2 {
            acc.fetch_add(n, Ordering::Relaxed);
            return;
        }
        s.spawn(move |s| fib_scope(s, n - 1, acc));
        fib_scope(s, n - 2, acc);
    }
    let count = 2 * fibonacci_number(n + 1) - 1;
    bench(
        &format!("fibonacci fib({n})"),
        threads,
        rounds,
        &mut [
            contender("rayon::scope spawn", || {
                let acc = AtomicU64::new(0);
                pool.install(|| rayon::scope(|s| fib_scope(s, n, &acc)));
                black_box(acc.into_inner());
                count
            }),
            contender("rayon::join", || {
                black_box(pool.install(|| fib_join(n)));
                count
            }),
            contender("dagger nested spawn", || {
                black_box(rt.install(|| fib_spawn(n)));
                count
            }),
        ],
    );
}

fn static_dag(threads: usize, rounds: usize, rt: &Runtime, pool: &ThreadPool) {
    let runs = sized(100_000) as u64;
    let g = Csr::from_edges(10, TEN_NODE_EDGES.into_iter());
    bench(
        &format!("static dag! 10 nodes x {runs}"),
        threads,
        rounds,
        &mut [
            contender("floor (rayon, continuation)", || {
                pool.install(|| {
                    for _ in 0..runs {
                        run_graph(pool, &g, true);
                    }
                });
                runs * 10
            }),
            contender("dagger dag!", || {
                rt.install(|| {
                    let mut acc = 0;
                    for x in 0..runs {
                        acc ^= ten_node_dag(rt, x);
                    }
                    black_box(acc);
                });
                runs * 10
            }),
        ],
    );
}

/// Peak resident memory of the million-task fan-out, in MiB (Linux), measured alone.
fn fan_memory(rt: &Runtime) {
    let read_peak = || -> Option<f64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace()
            .nth(1)?
            .parse::<f64>()
            .ok()
            .map(|kb| kb / 1024.0)
    };
    let reset_peak = || std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let n = sized(1_000_000);
    let (Some(_), true) = (read_peak(), reset_peak()) else {
        println!("fan-out memory: peak RSS not available on this system");
        return;
    };
    let before = read_peak().unwrap_or(0.0);
    black_box(rt.install(|| spawn_fan(n as u64)));
    let after = read_peak().unwrap_or(0.0);
    println!(
        "fan-out 1->{n}->1 peak memory: {:.1} MiB above the {before:.1} MiB before ({:.0} bytes per task)",
        after - before,
        (after - before) * 1024.0 * 1024.0 / n as f64
    );
}

/// One workload: (threads, rounds, dagger runtime, plain rayon pool).
type Shape = fn(usize, usize, &Runtime, &ThreadPool);

fn main() {
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let shapes: [(&str, Shape); 6] = [
        ("chain", chain),
        ("wavefront", wavefront),
        ("fan", fan),
        ("tree", tree),
        ("fibonacci", fibonacci),
        ("static", static_dag),
    ];
    // THREADS=1 or THREADS=2 runs one thread count only (for profiling).
    let thread_counts: Vec<usize> = match std::env::var("THREADS").ok().and_then(|t| t.parse().ok())
    {
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    for threads in thread_counts {
        let (rt, pool) = common::runtimes(threads);
        if threads == 1 && only.as_deref().is_none_or(|o| o == "memory") {
            fan_memory(&rt);
        }
        for (name, shape) in shapes {
            if only.as_deref().is_none_or(|o| o == name) {
                shape(threads, rounds, &rt, &pool);
            }
        }
    }
}
