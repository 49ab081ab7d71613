//! Timing on a noisy machine: alternate the contenders inside each round, rotate who
//! goes first, report median and best, and the ratio to the baseline on every line.
#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use dagger::prelude::*;
use rayon::ThreadPool;

/// A contender: a name and a closure that runs the workload once and returns how many
/// tasks it ran.
pub struct Contender<'a> {
    pub name: &'a str,
    pub run: Box<dyn FnMut() -> u64 + 'a>,
}

pub fn contender<'a>(name: &'a str, run: impl FnMut() -> u64 + 'a) -> Contender<'a> {
    Contender {
        name,
        run: Box::new(run),
    }
}

/// Nanoseconds per task of each contender: (median, best), over `rounds` interleaved rounds.
pub fn measure(rounds: usize, contenders: &mut [Contender<'_>]) -> Vec<(f64, f64)> {
    let n = contenders.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    // One warm-up pass.
    for c in contenders.iter_mut() {
        (c.run)();
    }
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let start = Instant::now();
            let tasks = (contenders[i].run)();
            let ns = start.elapsed().as_nanos() as f64 / tasks.max(1) as f64;
            samples[i].push(ns);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (s[s.len() / 2], s[0])
        })
        .collect()
}

/// One line per contender; the first is the baseline.
pub fn report(
    workload: &str,
    threads: usize,
    contenders: &[Contender<'_>],
    results: &[(f64, f64)],
) {
    let (base, _) = results[0];
    for (c, (median, best)) in contenders.iter().zip(results) {
        println!(
            "{workload:<28} threads={threads} {:<26} median {median:>8.1} ns/task  best {best:>8.1} ns/task  ratio {:>5.2}",
            c.name,
            median / base
        );
    }
}

/// A dagger runtime and a plain rayon pool with the same number of threads.
pub fn runtimes(threads: usize) -> (Runtime, ThreadPool) {
    let rt = Runtime::builder()
        .threads(threads)
        .build()
        .expect("runtime");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    (rt, pool)
}

/// A DAG in compressed rows, for the hand-written baselines.
pub struct Csr {
    pub predecessors: Vec<u32>,
    offsets: Vec<u32>,
    successors: Vec<u32>,
}

impl Csr {
    pub fn from_edges(n: usize, edges: impl Iterator<Item = (u32, u32)>) -> Csr {
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut predecessors = vec![0u32; n];
        for (from, to) in edges {
            lists[from as usize].push(to);
            predecessors[to as usize] += 1;
        }
        let mut offsets = vec![0u32];
        for l in &lists {
            offsets.push(offsets.last().unwrap() + l.len() as u32);
        }
        Csr {
            predecessors,
            offsets,
            successors: lists.into_iter().flatten().collect(),
        }
    }
    pub fn len(&self) -> u64 {
        self.predecessors.len() as u64
    }
    fn successors(&self, n: usize) -> &[u32] {
        &self.successors[self.offsets[n] as usize..self.offsets[n + 1] as usize]
    }
}

/// Runs `g` on the pool with an atomic counter per task. With `continuation` (the
/// floor), a finishing task runs one ready successor itself and spawns the rest; without
/// (bare `rayon::scope` spawns), it spawns every ready successor. Returns the task count.
pub fn run_csr<F: Fn(usize) + Sync>(
    pool: &ThreadPool,
    g: &Csr,
    continuation: bool,
    task: &F,
) -> u64 {
    let counters: Vec<AtomicU32> = g.predecessors.iter().map(|&p| AtomicU32::new(p)).collect();
    fn go<'s, F: Fn(usize) + Sync>(
        s: &rayon::Scope<'s>,
        g: &'s Csr,
        c: &'s [AtomicU32],
        mut i: usize,
        cont: bool,
        task: &'s F,
    ) {
        loop {
            task(i);
            let mut next = None;
            for &j in g.successors(i) {
                if c[j as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    if cont && next.is_none() {
                        next = Some(j as usize);
                    } else {
                        s.spawn(move |s| go(s, g, c, j as usize, cont, task));
                    }
                }
            }
            match next {
                Some(j) => i = j,
                None => return,
            }
        }
    }
    pool.install(|| {
        rayon::in_place_scope(|s| {
            for (i, &p) in g.predecessors.iter().enumerate() {
                if p == 0 {
                    let c = &counters;
                    s.spawn(move |s| go(s, g, c, i, continuation, task));
                }
            }
        })
    });
    g.len()
}

#[task]
fn inc(x: u64) -> u64 {
    black_box(x.wrapping_mul(31).wrapping_add(7))
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    black_box(a ^ b)
}

/// The edges of the 10-node graph that `ten_node_dag` runs.
pub const TEN_NODE_EDGES: [(u32, u32); 12] = [
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 3),
    (3, 4),
    (3, 5),
    (4, 6),
    (5, 6),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 9),
];

/// A 10-node `dag!`: a -> {b, c} -> d -> {e, f} -> g -> {h, i} -> j.
pub fn ten_node_dag(rt: &Runtime, x: u64) -> u64 {
    dag! {
        let a = inc(x);
        let b = inc(a);
        let c = inc(a);
        let d = add(b, c);
        let e = inc(d);
        let f = inc(d);
        let g = add(e, f);
        let h = inc(g);
        let i = inc(g);
        let j = add(h, i);
        j
    }
    .run_on(rt)
    .expect("graph")
}

/// fib(n), spawning the n - 1 branch as a task and computing the n - 2 branch itself.
pub fn fib_spawn(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = spawn(move || fib_spawn(n - 1));
    let b = fib_spawn(n - 2);
    a.fetch().unwrap() + b
}

/// The n-th Fibonacci number, by iteration: the recursive versions make 2 fib(n + 1) - 1
/// calls, and `fib_spawn` spawns fib(n + 1) - 1 tasks.
pub fn fibonacci_number(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// A task body that does almost nothing, without being optimized away.
#[inline(always)]
pub fn work(x: u64) -> u64 {
    black_box(x.wrapping_mul(31).wrapping_add(7))
}

/// Spawns a `side` x `side` wavefront, each task joining the one to its left and the one
/// above, and returns the last task's value.
pub fn spawn_wavefront(side: usize) -> u64 {
    let mut above: Vec<Handle<u64>> = Vec::new();
    for r in 0..side {
        let mut row: Vec<Handle<u64>> = Vec::with_capacity(side);
        for c in 0..side {
            let i = (r * side + c) as u64;
            let task = match (c, r) {
                (0, 0) => spawn(move || work(i)),
                (0, _) => spawn_with(&above[0], move |t: &u64| work(t ^ i)),
                (_, 0) => spawn_with(&row[c - 1], move |l: &u64| work(l ^ i)),
                _ => spawn_with((&row[c - 1], &above[c]), move |l: &u64, t: &u64| {
                    work(l ^ t ^ i)
                }),
            };
            row.push(task);
        }
        above = row;
    }
    above.pop().unwrap().fetch().unwrap()
}

/// Spawns one root, `n` tasks that take it and one task that takes them all, and returns
/// the last one's value.
pub fn spawn_fan(n: u64) -> u64 {
    let root = spawn(|| work(0));
    let leaves: Vec<Handle<u64>> = (0..n)
        .map(|i| spawn_with(&root, move |r: &u64| work(r ^ i)))
        .collect();
    let sink = spawn_with(leaves, |xs: Vec<u64>| work(xs.iter().fold(0, |a, x| a ^ x)));
    sink.fetch().unwrap()
}
