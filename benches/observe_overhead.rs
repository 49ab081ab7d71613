//! What observation costs per task: a 10-node `dag!` run 100,000 times with observation
//! off, with a no-op observer attached, and with a `Recorder`, on 1 and 2 threads.
//!
//! `cargo bench --bench observe_overhead`

mod common;

use std::hint::black_box;

use common::{contender, measure, report, ten_node_dag};
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

struct Nothing;
impl Observer for Nothing {}

fn main() {
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    for threads in [1, 2] {
        let rt = Runtime::builder().threads(threads).build().unwrap();
        let mut contenders = [
            contender("observation off", || runs(&rt)),
            contender("no-op observer", || {
                let _g = rt.observe(Nothing);
                runs(&rt)
            }),
            contender("Recorder", || {
                let recorder = Recorder::new();
                let _g = rt.observe(recorder.clone());
                let tasks = runs(&rt);
                assert_eq!(recorder.task_count() as u64, tasks);
                tasks
            }),
        ];
        let results = measure(rounds, &mut contenders);
        report("dag! 10 nodes x 100k runs", threads, &contenders, &results);
        let off = results[0].0;
        println!(
            "{:<28} threads={threads} extra per task: no-op observer {:+.1} ns, Recorder {:+.1} ns",
            "",
            results[1].0 - off,
            results[2].0 - off
        );
    }
}
