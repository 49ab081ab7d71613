//! The executor against a sequential evaluation on random graphs: thousands of nodes,
//! random edges, each node hashing its inputs. Run on 1, 2 and 4 threads, with failures
//! injected at random nodes. Each test has a watchdog so a lost wake-up fails instead of
//! hanging.

#[path = "../../tests/common/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dagger_core::__macro_support::{execute, NodeCell, RunNode};
use dagger_core::{Edge, Error, Graph, Hazard, Location, Node, NodeKind, Runtime, Schedule};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mix(a: u64, b: u64) -> u64 {
    (a ^ b.rotate_left(17))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

/// A random DAG: node `i` depends on up to `max_in` random earlier nodes.
fn random_graph(rng: &mut Rng, nodes: usize, max_in: u64) -> (Vec<Vec<usize>>, &'static Graph) {
    let mut preds: Vec<Vec<usize>> = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let mut p: Vec<usize> = Vec::new();
        if i > 0 {
            for _ in 0..rng.below(max_in + 1) {
                let j = rng.below(i as u64) as usize;
                if !p.contains(&j) {
                    p.push(j);
                }
            }
        }
        preds.push(p);
    }
    let leak = |v: Vec<u32>| -> &'static [u32] { Box::leak(v.into_boxed_slice()) };
    let mut succ: Vec<Vec<u32>> = vec![Vec::new(); nodes];
    let mut edges = Vec::new();
    for (to, p) in preds.iter().enumerate() {
        for &from in p {
            succ[from].push(to as u32);
            edges.push(Edge::__new(
                from as u32,
                to as u32,
                "v",
                Hazard::ReadAfterWrite,
            ));
        }
    }
    let mut offsets = vec![0u32];
    for s in &succ {
        offsets.push(offsets.last().unwrap() + s.len() as u32);
    }
    let counts: Vec<u32> = preds.iter().map(|p| p.len() as u32).collect();
    let roots: Vec<u32> = (0..nodes as u32)
        .filter(|&n| counts[n as usize] == 0)
        .collect();
    let node_descs: Vec<Node> = (0..nodes)
        .map(|i| {
            Node::__new(
                NodeKind::Glue,
                None,
                &[],
                Location::__new("stress", i as u32 + 1, 1),
                "node",
            )
        })
        .collect();
    let graph = Graph::__new(
        Box::leak(node_descs.into_boxed_slice()),
        Box::leak(edges.into_boxed_slice()),
        Schedule::__new(
            leak(counts),
            leak(offsets),
            leak(succ.into_iter().flatten().collect()),
            leak(roots),
        ),
    );
    (preds, Box::leak(Box::new(graph)))
}

fn sequential(preds: &[Vec<usize>]) -> Vec<u64> {
    let mut out = vec![0u64; preds.len()];
    for (i, p) in preds.iter().enumerate() {
        out[i] = p.iter().fold(i as u64 + 1, |acc, &j| mix(acc, out[j]));
    }
    out
}

/// Runs the graph; node `fail_at` returns an error. Returns the values (0 = not run).
fn parallel(
    rt: &Runtime,
    preds: &[Vec<usize>],
    graph: &'static Graph,
    fail_at: Option<usize>,
) -> (Vec<u64>, Result<(), Error>) {
    let values: Vec<AtomicU64> = (0..preds.len()).map(|_| AtomicU64::new(0)).collect();
    let done: Vec<AtomicBool> = (0..preds.len()).map(|_| AtomicBool::new(false)).collect();
    let cells: Vec<_> = (0..preds.len())
        .map(|i| {
            let (values, done) = (&values, &done);
            NodeCell::new(move || {
                let mut acc = i as u64 + 1;
                for &j in &preds[i] {
                    assert!(
                        done[j].load(Ordering::Relaxed),
                        "node {i} ran before its input {j}"
                    );
                    acc = mix(acc, values[j].load(Ordering::Relaxed));
                }
                if fail_at == Some(i) {
                    return Err(format!("injected failure at {i}").into());
                }
                values[i].store(acc, Ordering::Relaxed);
                assert!(!done[i].swap(true, Ordering::Relaxed), "node {i} ran twice");
                Ok(())
            })
        })
        .collect();
    let result = execute_cells(rt, graph, &cells);
    (
        values.into_iter().map(AtomicU64::into_inner).collect(),
        result,
    )
}

/// Runs one closure per node with fresh counters.
fn execute_cells<F>(rt: &Runtime, graph: &'static Graph, cells: &[NodeCell<F>]) -> Result<(), Error>
where
    F: FnOnce() -> Result<(), dagger_core::BoxError> + Send,
{
    let refs: Vec<&dyn RunNode> = cells.iter().map(|c| c as &dyn RunNode).collect();
    let counters: Vec<_> = graph
        .schedule()
        .predecessor_counts()
        .iter()
        .map(|&c| std::sync::atomic::AtomicU32::new(c))
        .collect();
    execute(rt, graph, &refs, &counters)
}

#[test]
fn random_graphs_match_a_sequential_run() {
    watchdog(120, || {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for threads in [1, 2, 4] {
            let rt = Runtime::builder().threads(threads).build().unwrap();
            for round in 0..12 {
                let nodes = 1 + rng.below(4000) as usize;
                let (preds, graph) = random_graph(&mut rng, nodes, 1 + round % 6);
                let expected = sequential(&preds);
                let (got, result) = parallel(&rt, &preds, graph, None);
                result.unwrap();
                assert_eq!(got, expected, "{threads} threads, {nodes} nodes");
            }
        }
    });
}

#[test]
fn failures_stop_exactly_the_descendants() {
    watchdog(120, || {
        let mut rng = Rng(0xDEAD_BEEF_0BAD_F00D);
        let rt = Runtime::builder().threads(2).build().unwrap();
        for _ in 0..30 {
            let nodes = 2 + rng.below(1500) as usize;
            let (preds, graph) = random_graph(&mut rng, nodes, 3);
            let fail_at = rng.below(nodes as u64) as usize;
            let (got, result) = parallel(&rt, &preds, graph, Some(fail_at));
            let err = result.unwrap_err();
            assert_eq!(
                err.location().unwrap().line() as usize,
                fail_at + 1,
                "{err}"
            );
            assert!(err
                .to_string()
                .contains(&format!("injected failure at {fail_at}")));
            // Descendants of the failed node never ran.
            let mut tainted = vec![false; nodes];
            tainted[fail_at] = true;
            for i in 0..nodes {
                if preds[i].iter().any(|&j| tainted[j]) {
                    tainted[i] = true;
                }
                if tainted[i] {
                    assert_eq!(
                        got[i], 0,
                        "node {i} depends on the failed node {fail_at} but ran"
                    );
                }
            }
            // The runtime still runs a full graph afterwards.
            let (got, result) = parallel(&rt, &preds, graph, None);
            result.unwrap();
            assert_eq!(got, sequential(&preds));
        }
    });
}

#[test]
fn panics_are_caught_and_reported() {
    watchdog(60, || {
        let rt = Runtime::builder().threads(2).build().unwrap();
        let mut rng = Rng(7);
        let (preds, graph) = random_graph(&mut rng, 50, 2);
        let cells: Vec<_> = (0..50)
            .map(|i| {
                NodeCell::new(move || {
                    if i == 10 {
                        panic!("boom at {i}")
                    } else {
                        Ok(())
                    }
                })
            })
            .collect();
        match execute_cells(&rt, graph, &cells) {
            Err(Error::TaskPanicked {
                message, location, ..
            }) => {
                assert_eq!(message, "boom at 10");
                assert_eq!(location.line(), 11);
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
        drop(preds);
    });
}
