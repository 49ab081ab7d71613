//! Timing on a noisy machine: alternate the contenders inside each round, rotate who
//! goes first, report median and best, and the ratio to the baseline on every line.
#![allow(dead_code)]

use std::time::Instant;

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
