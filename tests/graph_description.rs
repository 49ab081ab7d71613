//! The static description a `dag!` generates: nodes, edges and access kinds, known
//! without running the graph.

use dagger::graph::{AccessMode, Hazard, NodeKind};
use dagger::prelude::*;

#[task]
fn load(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

#[task(name = "sum-of-squares")]
fn sumsq(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x * x).sum()
}

#[task]
fn normalize(xs: &mut [f64], s: f64) {
    xs.iter_mut().for_each(|x| *x /= s.sqrt());
}

#[task]
fn concat(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    a.extend(b);
    a
}

fn edges(graph: &dagger::graph::Graph) -> Vec<(usize, usize, &'static str, Hazard)> {
    let mut edges: Vec<_> = graph
        .edges()
        .iter()
        .map(|e| (e.from(), e.to(), e.binding(), e.hazard()))
        .collect();
    edges.sort_by_key(|e| (e.0, e.1, e.2));
    edges
}

fn accesses(node: &dagger::graph::Node) -> Vec<(&'static str, AccessMode)> {
    node.accesses()
        .iter()
        .map(|a| (a.binding(), a.mode()))
        .collect()
}

#[test]
fn the_design_example() {
    let g = dag! {
        let mut a = load(1_000);
        let b = load(2_000);
        let s = sumsq(&a);
        normalize(&mut a, s);
        let t = sumsq(&a);
        let c = concat(a, b);
        (c, t)
    };
    let graph = g.graph();
    let names: Vec<_> = graph.nodes().iter().map(|n| n.name()).collect();
    assert_eq!(
        names,
        [
            "load",
            "load",
            "sum-of-squares",
            "normalize",
            "sum-of-squares",
            "concat"
        ]
    );
    assert!(graph.nodes().iter().all(|n| n.kind() == NodeKind::Task));
    assert_eq!(graph.nodes()[3].task().unwrap().function(), "normalize");
    assert_eq!(graph.nodes()[2].source(), "let s = sumsq(&a);");

    use AccessMode::*;
    assert_eq!(accesses(&graph.nodes()[0]), [("a", Define)]);
    assert_eq!(accesses(&graph.nodes()[2]), [("s", Define), ("a", Read)]);
    assert_eq!(accesses(&graph.nodes()[3]), [("a", Write), ("s", Move)]);
    assert_eq!(
        accesses(&graph.nodes()[5]),
        [("c", Define), ("a", Move), ("b", Move)]
    );

    use Hazard::*;
    assert_eq!(
        edges(graph),
        [
            (0, 2, "a", ReadAfterWrite),
            (1, 5, "b", ReadAfterWrite),
            (2, 3, "a", WriteAfterRead),
            (2, 3, "s", ReadAfterWrite),
            (3, 4, "a", ReadAfterWrite),
            (4, 5, "a", WriteAfterRead),
        ]
    );
    // `t` is used by the tail only: it stays in its slot until the run ends.
    let schedule = graph.schedule();
    assert_eq!(schedule.roots(), [0, 1]);
    assert_eq!(schedule.predecessor_counts(), [0, 0, 1, 1, 1, 2]);
    assert_eq!(
        schedule.successors(2),
        [3],
        "two edges 2 -> 3, one scheduling dependency"
    );
}

#[test]
fn assignments_are_write_after_write_and_glue_is_marked() {
    let g = dag! {
        let mut n = { 1u32 };
        n = 5;
        let m = n + 1;
        m
    };
    let graph = g.graph();
    assert_eq!(graph.nodes()[0].kind(), NodeKind::Glue);
    assert_eq!(graph.nodes()[0].name(), "glue");
    assert_eq!(
        edges(graph),
        [
            (0, 1, "n", Hazard::WriteAfterWrite),
            (1, 2, "n", Hazard::ReadAfterWrite)
        ]
    );
    // `n = 5;` alone gives `n` a new value; `n + 1` is its last use, so it takes it.
    assert_eq!(accesses(&graph.nodes()[1]), [("n", AccessMode::Define)]);
    assert_eq!(
        accesses(&graph.nodes()[2]),
        [("m", AccessMode::Define), ("n", AccessMode::Move)]
    );
    assert_eq!(g.run().unwrap(), 6);
}

#[test]
fn locations_point_at_statements() {
    let line = line!() + 2;
    let g = dag! {
        let v = load(3);
        let s = sumsq(&v);
        s
    };
    let nodes = g.graph().nodes();
    assert_eq!(nodes[0].location().line(), line);
    assert_eq!(nodes[1].location().line(), line + 1);
    assert_eq!(nodes[0].location().column(), 9);
    assert!(nodes[0].location().file().ends_with("graph_description.rs"));
}

#[test]
fn dot_output_lists_every_node_and_edge() {
    let g = dag! {
        let mut a = load(4);
        let s = sumsq(&a);
        normalize(&mut a, s);
        a
    };
    let dot = g.to_dot();
    assert!(dot.starts_with("digraph dag {") && dot.trim_end().ends_with('}'));
    for id in 0..3 {
        assert!(dot.contains(&format!("n{id} [label=")), "{dot}");
    }
    assert!(dot.contains("n0 -> n1 [label=\"a\"]"), "{dot}");
    assert!(
        dot.contains("n1 -> n2 [label=\"a (WAR)\", style=dashed]"),
        "{dot}"
    );
    assert!(dot.contains("sum-of-squares"));
    assert_eq!(dot.matches("->").count(), g.graph().edges().len());
}

#[test]
fn the_graph_is_a_static_constant() {
    fn build() -> &'static dagger::graph::Graph {
        dag! { let v = load(1); v }.graph()
    }
    assert!(std::ptr::eq(build(), build()), "one static per dag! block");
}
