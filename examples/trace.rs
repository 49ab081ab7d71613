//! Seeing what ran: records a signal-processing pipeline and writes every export.
//!
//! `cargo run --release --example trace [DIR]` writes into DIR (default `target/trace`):
//! - `trace.json`: Chrome trace events; open in https://ui.perfetto.dev or chrome://tracing
//! - `gantt.svg`: workers over time, tasks coloured by name
//! - `graph.dot`: the graph as executed (`dot -Tsvg graph.dot > graph.svg`)
//! - `summary.txt`: per-task totals, critical path, parallelism, idle time
//!
//! The same files come from any dagger program with `DAGGER_TRACE=DIR/`.

use std::path::PathBuf;

use dagger::observe::Recorder;
use dagger::prelude::*;

/// A noisy sine wave of `n` samples.
#[task]
fn synthesize(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed | 1;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            (i as f64 * 0.01 * seed as f64).sin() + 0.3 * noise
        })
        .collect()
}

/// Moving average over `window` samples, applied `passes` times.
#[task]
fn smooth(signal: &mut [f64], window: usize, passes: usize) {
    let mut out = vec![0.0; signal.len()];
    for _ in 0..passes {
        let mut sum: f64 = signal[..window].iter().sum();
        for i in 0..signal.len() {
            out[i] = sum / window as f64;
            if i + window < signal.len() {
                sum += signal[i + window] - signal[i];
            }
        }
        signal.copy_from_slice(&out);
    }
}

#[task]
fn energy(signal: &[f64]) -> f64 {
    signal.iter().map(|x| x * x).sum::<f64>() / signal.len() as f64
}

#[task(name = "count-peaks")]
fn peaks(signal: &[f64]) -> usize {
    signal
        .windows(3)
        .filter(|w| w[1] > w[0] && w[1] > w[2] && w[1] > 0.5)
        .count()
}

#[task]
fn report(energies: [f64; 3], peaks: [usize; 3]) -> String {
    let mut text = String::new();
    for i in 0..3 {
        text.push_str(&format!(
            "signal {i}: energy {:.4}, {} peaks\n",
            energies[i], peaks[i]
        ));
    }
    text
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/trace".into()),
    );
    std::fs::create_dir_all(&dir)?;

    let runtime = Runtime::builder().threads(2).build()?;
    let recorder = Recorder::new();
    let _observing = runtime.observe(recorder.clone());

    const N: usize = 400_000;
    let text = dag! {
        let mut a = synthesize(1, N);
        let mut b = synthesize(2, 2 * N);
        let mut c = synthesize(3, N / 2);
        smooth(&mut a, 16, 6);
        smooth(&mut b, 32, 4);
        smooth(&mut c, 8, 10);
        let ea = energy(&a);
        let eb = energy(&b);
        let ec = energy(&c);
        let pa = peaks(&a);
        let pb = peaks(&b);
        let pc = peaks(&c);
        let text = report([ea, eb, ec], [pa, pb, pc]);
        text
    }
    .run_on(&runtime)?;
    print!("{text}");

    let trace = recorder.trace();
    for file in ["trace.json", "gantt.svg", "graph.dot", "summary.txt"] {
        trace.write(dir.join(file))?;
    }
    println!("\n{}", trace.summary());
    println!(
        "wrote trace.json, gantt.svg, graph.dot and summary.txt to {}",
        dir.display()
    );
    Ok(())
}
