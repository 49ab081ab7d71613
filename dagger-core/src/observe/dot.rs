//! Graphviz DOT of a recorded run (the static structure's DOT is `Graph::to_dot`).

use std::fmt::Write;

use super::duration_text;
use crate::graph::{escape, shorten};

impl crate::observe::Trace {
    /// Graphviz DOT of every recorded `dag!` run as it executed: durations on nodes,
    /// the critical path in red, failed nodes filled red, nodes that never ran dashed.
    /// Runs without a static graph are listed as their tasks. At most 16 runs are drawn.
    pub fn to_dot(&self) -> String {
        let mut dot = String::from("digraph trace {\n  rankdir=TB;\n  compound=true;\n");
        dot.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fe\", fontname=\"Helvetica\"];\n");
        dot.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
        for run in self.runs().iter().take(16) {
            let (path, total) = self.critical_path(run.id);
            let wall = run
                .end_ns
                .unwrap_or(run.start_ns)
                .saturating_sub(run.start_ns);
            let title = format!(
                "run {}: {} tasks, wall {}, critical path {}",
                run.id,
                run.tasks,
                duration_text(wall),
                duration_text(total)
            );
            let _ = writeln!(
                dot,
                "  subgraph cluster_run{} {{\n    label=\"{}\";",
                run.id,
                escape(&title)
            );
            let records: std::collections::HashMap<usize, &crate::observe::TaskRecord> =
                self.tasks_of(run.id).map(|t| (t.node, t)).collect();
            let node_count = run.graph.map(|g| g.nodes().len()).unwrap_or(0);
            let ids: Vec<usize> = if run.graph.is_some() {
                (0..node_count).collect()
            } else {
                {
                    let mut ids: Vec<usize> = records.keys().copied().collect();
                    ids.sort_unstable();
                    ids
                }
            };
            for node in ids {
                let (name, source) = match run.graph {
                    Some(g) => (
                        g.nodes()[node].name(),
                        shorten(g.nodes()[node].source(), 40),
                    ),
                    None => (
                        records.get(&node).map(|t| t.name).unwrap_or("?"),
                        String::new(),
                    ),
                };
                let on_path = path.contains(&node);
                let (timing, style) = match records.get(&node) {
                    Some(t) if t.error.is_some() => (
                        format!("failed after {}", duration_text(t.duration_ns())),
                        ", fillcolor=\"#f8d7da\", color=\"#c62828\"",
                    ),
                    Some(t) => (
                        format!("{} on {}", duration_text(t.duration_ns()), t.worker),
                        if on_path {
                            ", color=\"#c62828\", penwidth=2.5"
                        } else {
                            ""
                        },
                    ),
                    None => (
                        "did not run".to_owned(),
                        ", style=\"rounded,dashed\", fillcolor=\"#ffffff\"",
                    ),
                };
                let label = if source.is_empty() {
                    format!("{name}\n{timing}")
                } else {
                    format!("{name}\n{source}\n{timing}")
                };
                let _ = writeln!(
                    dot,
                    "    r{}n{node} [label=\"{}\"{style}];",
                    run.id,
                    escape(&label)
                );
            }
            if let Some(graph) = run.graph {
                for edge in graph.edges() {
                    let critical = path
                        .windows(2)
                        .any(|w| w[0] == edge.from() && w[1] == edge.to());
                    let style = if critical {
                        ", color=\"#c62828\", penwidth=2.5"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        dot,
                        "    r{}n{} -> r{}n{} [label=\"{}\"{style}];",
                        run.id,
                        edge.from(),
                        run.id,
                        edge.to(),
                        escape(edge.binding())
                    );
                }
            }
            dot.push_str("  }\n");
        }
        dot.push_str("}\n");
        dot
    }
}
