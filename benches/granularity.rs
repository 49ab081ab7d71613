//! Granularity (Task Bench's METG, BENCHMARKS.md): the smallest task duration at which a
//! system still reaches 50% of the machine's peak useful work. A compute-bound kernel
//! (a chain of FMAs) is swept from large to tiny over two graphs:
//! - stencil_1d: width = threads, 1000 steps; a task depends on columns i-1, i, i+1 of
//!   the previous step;
//! - nearest neighbour: radix 5, width = 8 x threads, 1000 steps.
//!
//! Efficiency = (tasks x kernel time measured alone) / (wall time x threads).
//!
//! `cargo bench --bench granularity` (env: STEPS, default 1000)

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{run_csr, Csr};
use dagger::prelude::*;
use rayon::ThreadPool;

/// `iterations` dependent FMAs.
#[inline(never)]
fn kernel(iterations: u64, seed: f64) -> f64 {
    let mut x = seed;
    for _ in 0..iterations {
        x = x.mul_add(0.999_999_9, 1e-9);
    }
    black_box(x)
}

struct Graph {
    width: usize,
    steps: usize,
    radix: usize,
}

impl Graph {
    fn inputs(&self, column: usize) -> impl Iterator<Item = usize> + '_ {
        let half = (self.radix / 2) as isize;
        (-half..=half)
            .map(move |d| column as isize + d)
            .filter(move |&c| c >= 0 && (c as usize) < self.width)
            .map(|c| c as usize)
    }
    fn tasks(&self) -> usize {
        self.width * self.steps
    }
}

fn floor(pool: &ThreadPool, g: &Graph, iterations: u64) {
    let edges = (1..g.steps).flat_map(|t| {
        (0..g.width).flat_map(move |c| {
            g.inputs(c)
                .map(move |p| (((t - 1) * g.width + p) as u32, (t * g.width + c) as u32))
        })
    });
    let csr = Csr::from_edges(g.tasks(), edges);
    run_csr(pool, &csr, true, &|i| {
        kernel(iterations, i as f64);
    });
}

fn dagger_spawn(rt: &Runtime, g: &Graph, iterations: u64) {
    rt.install(|| {
        let mut row: Vec<Handle<f64>> = (0..g.width)
            .map(|c| spawn(move || kernel(iterations, c as f64)))
            .collect();
        for _ in 1..g.steps {
            row = (0..g.width)
                .map(|c| {
                    let inputs: Vec<Handle<f64>> = g.inputs(c).map(|p| row[p].clone()).collect();
                    spawn_with(inputs, move |xs: Vec<f64>| kernel(iterations, xs[0]))
                })
                .collect();
        }
        for h in row {
            black_box(h.fetch().unwrap());
        }
    });
}

/// Nanoseconds of one kernel call, measured alone on this thread.
fn kernel_ns(iterations: u64) -> f64 {
    let reps = (2_000_000 / iterations.max(1)).clamp(50, 200_000);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for i in 0..reps {
            kernel(iterations, i as f64);
        }
        best = best.min(start.elapsed().as_nanos() as f64 / reps as f64);
    }
    best
}

/// The task duration where efficiency crosses 50%, interpolated on a log scale.
fn metg(points: &[(f64, f64)]) -> Option<f64> {
    // points: (task ns, efficiency), from large tasks to small.
    for w in points.windows(2) {
        let ((d0, e0), (d1, e1)) = (w[0], w[1]);
        if e0 >= 0.5 && e1 < 0.5 {
            let t = (e0 - 0.5) / (e0 - e1);
            return Some((d0.ln() + t * (d1.ln() - d0.ln())).exp());
        }
    }
    match points.last() {
        Some(&(d, e)) if e >= 0.5 => Some(d), // never crossed: at most the smallest tried
        _ => None,
    }
}

fn main() {
    let steps: usize = std::env::var("STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for threads in [1, 2] {
        let (rt, pool) = common::runtimes(threads);
        let graphs = [
            (
                "stencil_1d",
                Graph {
                    width: threads,
                    steps,
                    radix: 3,
                },
            ),
            (
                "nearest radix 5",
                Graph {
                    width: 8 * threads,
                    steps,
                    radix: 5,
                },
            ),
        ];
        for (name, graph) in &graphs {
            let mut curves: [(&str, Vec<(f64, f64)>); 2] = [
                ("floor (rayon)", Vec::new()),
                ("dagger spawn_with", Vec::new()),
            ];
            let mut iterations = 1u64 << 15;
            while iterations >= 4 {
                let alone = kernel_ns(iterations);
                let useful = graph.tasks() as f64 * alone;
                for (system, curve) in curves.iter_mut() {
                    let mut best = f64::MAX;
                    for _ in 0..3 {
                        let start = Instant::now();
                        match *system {
                            "floor (rayon)" => floor(&pool, graph, iterations),
                            _ => dagger_spawn(&rt, graph, iterations),
                        }
                        best = best.min(start.elapsed().as_nanos() as f64);
                    }
                    curve.push((alone, useful / (best * threads as f64)));
                }
                iterations /= 2;
            }
            for (system, curve) in &curves {
                let shown: Vec<String> = curve
                    .iter()
                    .map(|(d, e)| format!("{:.2}us:{:.0}%", d / 1e3, e * 100.0))
                    .collect();
                match metg(curve) {
                    Some(ns) => println!(
                        "METG(50%) {name:<16} threads={threads} {system:<18} {:>8.2} us",
                        ns / 1e3
                    ),
                    None => println!(
                        "METG(50%) {name:<16} threads={threads} {system:<18}   never reached 50%"
                    ),
                }
                println!("    efficiency by task duration: {}", shown.join(" "));
            }
        }
    }
}
