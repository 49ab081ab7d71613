//! Showing graphs: Graphviz DOT of a graph's static structure.

use std::fmt::Write;

use crate::graph::{Graph, Hazard, NodeKind};

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub(crate) fn graph_to_dot(graph: &Graph) -> String {
    let mut dot = String::new();
    dot.push_str("digraph dag {\n  rankdir=TB;\n");
    dot.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fe\", fontname=\"Helvetica\"];\n");
    dot.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (id, node) in graph.nodes().iter().enumerate() {
        let label = format!(
            "{}\n{}\nline {}",
            node.name(),
            shorten(node.source(), 40),
            node.location().line()
        );
        let style = match node.kind() {
            NodeKind::Task => "",
            NodeKind::Glue => ", shape=ellipse, fillcolor=\"#f1f3f4\"",
        };
        let _ = writeln!(dot, "  n{id} [label=\"{}\"{style}];", escape(&label));
    }
    for edge in graph.edges() {
        let (label, style) = match edge.hazard() {
            Hazard::ReadAfterWrite => (edge.binding().to_owned(), ""),
            Hazard::WriteAfterRead => (format!("{} (WAR)", edge.binding()), ", style=dashed"),
            Hazard::WriteAfterWrite => (format!("{} (WAW)", edge.binding()), ", style=dotted"),
        };
        let _ = writeln!(
            dot,
            "  n{} -> n{} [label=\"{}\"{style}];",
            edge.from(),
            edge.to(),
            escape(&label)
        );
    }
    dot.push_str("}\n");
    dot
}
