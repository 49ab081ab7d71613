//! What observation costs per task, with observation off, with a no-op observer attached,
//! and with a `Recorder`, on 1 and 2 threads, over the shapes of the scheduling bench: a
//! 10-node `dag!` run 100,000 times, a chain of 2^18 `spawn_with` tasks, a binary tree of
//! 2^18 - 2 nested spawns, a 512 x 512 wavefront, a fan-out/fan-in over 2^18 tasks, and
//! fib(25) spawning one branch and computing the other inline.
//!
//! `cargo bench --bench observe_overhead` (`THREADS=1|2`, and `dag`, `chain`, `tree`,
//! `wavefront`, `fan` or `fib` for one part)

mod common;

use std::hint::black_box;

use common::{
    contender, fib_spawn, fibonacci_number, measure, report, spawn_fan, spawn_wavefront,
    ten_node_dag,
};
use dagger::observe::{Observer, Recorder};
use dagger::prelude::*;

const RUNS: u64 = 100_000;
const NODES: u64 = 10;

/// The runs are issued from a worker (`install`), so each starts without a thread hand-off.
fn runs(rt: &Runtime) -> u64 {
    rt.install(|| {
        let mut acc = 0;
        for x in 0..RUNS {
            acc ^= ten_node_dag(rt, x);
        }
        black_box(acc);
    });
    RUNS * NODES
}

const TREE_DEPTH: u32 = 18;
const CHAIN: u64 = 1 << 18;

/// Each task takes the one before as its input.
fn chain(rt: &Runtime) -> u64 {
    rt.install(|| {
        let mut last = spawn(|| 0u64);
        for i in 1..CHAIN {
            last = spawn_with(last, move |x: u64| black_box(x ^ i));
        }
        black_box(last.fetch().unwrap());
    });
    CHAIN
}

/// Every node but the root is a spawned task that spawns its two children.
fn spawn_tree(depth: u32, i: u64) -> u64 {
    if depth == 1 {
        return i;
    }
    let left = spawn(move || spawn_tree(depth - 1, 2 * i));
    let right = spawn(move || spawn_tree(depth - 1, 2 * i + 1));
    left.fetch().unwrap() ^ right.fetch().unwrap()
}

fn tree(rt: &Runtime) -> u64 {
    black_box(rt.install(|| spawn_tree(TREE_DEPTH, 1)));
    (1 << TREE_DEPTH) - 2
}

const SIDE: usize = 512;

/// Each task joins the one to its left and the one above.
fn wavefront(rt: &Runtime) -> u64 {
    black_box(rt.install(|| spawn_wavefront(SIDE)));
    (SIDE * SIDE) as u64
}

const FAN: u64 = 1 << 18;

/// One root, `FAN` tasks that take it, and one task that takes them all.
fn fan(rt: &Runtime) -> u64 {
    black_box(rt.install(|| spawn_fan(FAN)));
    FAN + 2
}

const FIB: u64 = 25;

/// Each call spawns one branch and computes the other itself, as in the scheduling bench.
fn fib(rt: &Runtime) -> u64 {
    black_box(rt.install(|| fib_spawn(FIB)));
    fibonacci_number(FIB + 1) - 1
}

/// A key to pick it on the command line, its name, and how to run it once.
type Workload = (&'static str, &'static str, fn(&Runtime) -> u64);

struct Nothing;
impl Observer for Nothing {}

fn main() {
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let workloads: [Workload; 6] = [
        ("dag", "dag! 10 nodes x 100k runs", runs),
        ("chain", "spawn_with chain 2^18", chain),
        ("tree", "spawn tree 2^18-2 tasks", tree),
        ("wavefront", "wavefront 512x512", wavefront),
        ("fan", "fan-out/fan-in 1->2^18->1", fan),
        ("fib", "fibonacci fib(25) spawns", fib),
    ];
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let threads: Vec<usize> = match std::env::var("THREADS").ok().and_then(|t| t.parse().ok()) {
        Some(n) => vec![n],
        None => vec![1, 2],
    };
    for threads in threads {
        let rt = Runtime::builder().threads(threads).build().unwrap();
        for (key, workload, run) in workloads {
            if only.as_deref().is_none_or(|o| o == key) {
                compare(&rt, threads, rounds, workload, run);
            }
        }
    }
}

fn compare(rt: &Runtime, threads: usize, rounds: usize, workload: &str, run: fn(&Runtime) -> u64) {
    // Recordings are kept until the end: dropping one is not part of recording, and each
    // round records into fresh memory, as a program's first recording does. With
    // `REUSE=1` each is dropped after its round instead: a program that records again and
    // again (a recorder's buffers are reused by the next one).
    let reuse = std::env::var_os("REUSE").is_some();
    let recordings = std::cell::RefCell::new(Vec::new());
    let mut contenders = [
        contender("observation off", || run(rt)),
        contender("no-op observer", || {
            let _g = rt.observe(Nothing);
            run(rt)
        }),
        contender("Recorder", || {
            let recorder = Recorder::new();
            let _g = rt.observe(recorder.clone());
            let tasks = run(rt);
            if reuse {
                assert_eq!(recorder.task_count() as u64, tasks, "every task recorded");
            } else {
                recordings.borrow_mut().push((recorder, tasks));
            }
            tasks
        }),
    ];
    let results = measure(rounds, &mut contenders);
    report(workload, threads, &contenders, &results);
    drop(contenders);
    for (recorder, tasks) in recordings.take() {
        assert_eq!(recorder.task_count() as u64, tasks, "every task recorded");
    }
    let off = results[0].0;
    println!(
        "{:<28} threads={threads} extra per task: no-op observer {:+.1} ns, Recorder {:+.1} ns",
        "",
        results[1].0 - off,
        results[2].0 - off
    );
}
