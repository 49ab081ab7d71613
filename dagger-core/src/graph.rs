//! The static description of a `dag!` block: nodes, edges with the hazard that made
//! each one, and the schedule (predecessor counts and successor lists) the executor follows.
//!
//! `dag!` builds all of it at compile time as `&'static` data; nothing here allocates.

use std::fmt::Write;

use crate::task::{Location, TaskMeta};

/// Whether a node calls a `#[task]` or runs glue code (operators, method calls, literals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A call of a `#[task]` function.
    Task,
    /// Any other statement.
    Glue,
}

/// How a node uses a binding of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// `let x = ...`: the node creates the binding.
    Define,
    /// `&x`, or `x` copied: shared access, concurrent with other readers.
    Read,
    /// `&mut x`, or any use of a `mut` binding that may mutate it: exclusive access.
    Write,
    /// `x` moved: the binding's last use; exclusive access.
    Move,
}

impl AccessMode {
    /// Whether the access excludes every other access at the same time.
    pub const fn is_exclusive(self) -> bool {
        !matches!(self, AccessMode::Read)
    }
}

/// One binding used by one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    binding: &'static str,
    mode: AccessMode,
}

impl Access {
    #[doc(hidden)]
    pub const fn __new(binding: &'static str, mode: AccessMode) -> Self {
        Access { binding, mode }
    }
    /// The binding's name.
    pub const fn binding(&self) -> &'static str {
        self.binding
    }
    /// How the node uses it.
    pub const fn mode(&self) -> AccessMode {
        self.mode
    }
}

/// Why one node must run before another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hazard {
    /// The later node reads what the earlier one wrote (or defined).
    ReadAfterWrite,
    /// The later node writes or moves what the earlier one read.
    WriteAfterRead,
    /// The later node writes or moves what the earlier one wrote.
    WriteAfterWrite,
}

impl Hazard {
    /// `RAW`, `WAR` or `WAW`.
    pub const fn short_name(self) -> &'static str {
        match self {
            Hazard::ReadAfterWrite => "RAW",
            Hazard::WriteAfterRead => "WAR",
            Hazard::WriteAfterWrite => "WAW",
        }
    }
}

/// A statement of the block.
#[derive(Clone, Copy, Debug)]
pub struct Node {
    kind: NodeKind,
    task: Option<&'static TaskMeta>,
    accesses: &'static [Access],
    location: Location,
    source: &'static str,
}

impl Node {
    #[doc(hidden)]
    pub const fn __new(
        kind: NodeKind,
        task: Option<&'static TaskMeta>,
        accesses: &'static [Access],
        location: Location,
        source: &'static str,
    ) -> Self {
        Node {
            kind,
            task,
            accesses,
            location,
            source,
        }
    }
    /// Task node or glue.
    pub const fn kind(&self) -> NodeKind {
        self.kind
    }
    /// The task's metadata, for a task node.
    pub const fn task(&self) -> Option<&'static TaskMeta> {
        self.task
    }
    /// The task's name, or `"glue"`.
    pub const fn name(&self) -> &'static str {
        match self.task {
            Some(task) => task.name(),
            None => "glue",
        }
    }
    /// Every binding the node defines, reads, writes or moves, in source order.
    pub const fn accesses(&self) -> &'static [Access] {
        self.accesses
    }
    /// The bindings the node defines.
    pub fn defines(&self) -> impl Iterator<Item = &'static str> {
        self.accesses
            .iter()
            .filter(|a| a.mode == AccessMode::Define)
            .map(|a| a.binding)
    }
    /// Where the statement is.
    pub const fn location(&self) -> Location {
        self.location
    }
    /// The statement's source text.
    pub const fn source(&self) -> &'static str {
        self.source
    }
}

/// A dependency between two nodes, with the binding and hazard that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Edge {
    from: u32,
    to: u32,
    binding: &'static str,
    hazard: Hazard,
}

impl Edge {
    #[doc(hidden)]
    pub const fn __new(from: u32, to: u32, binding: &'static str, hazard: Hazard) -> Self {
        Edge {
            from,
            to,
            binding,
            hazard,
        }
    }
    /// The node that runs first.
    pub const fn from(&self) -> usize {
        self.from as usize
    }
    /// The node that waits for it.
    pub const fn to(&self) -> usize {
        self.to as usize
    }
    /// The binding both nodes use.
    pub const fn binding(&self) -> &'static str {
        self.binding
    }
    /// Which hazard the edge prevents.
    pub const fn hazard(&self) -> Hazard {
        self.hazard
    }
}

/// What the executor follows: predecessor counts and deduplicated successor lists
/// (compressed rows: the successors of `n` are `successors[offsets[n]..offsets[n + 1]]`).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    predecessors: &'static [u32],
    offsets: &'static [u32],
    successors: &'static [u32],
    roots: &'static [u32],
}

impl Schedule {
    #[doc(hidden)]
    pub const fn __new(
        predecessors: &'static [u32],
        offsets: &'static [u32],
        successors: &'static [u32],
        roots: &'static [u32],
    ) -> Self {
        Schedule {
            predecessors,
            offsets,
            successors,
            roots,
        }
    }
    /// How many distinct nodes each node waits for.
    pub const fn predecessor_counts(&self) -> &'static [u32] {
        self.predecessors
    }
    /// The distinct nodes that wait for `node`.
    pub fn successors(&self, node: usize) -> &'static [u32] {
        &self.successors[self.offsets[node] as usize..self.offsets[node + 1] as usize]
    }
    /// The nodes that wait for nothing.
    pub const fn roots(&self) -> &'static [u32] {
        self.roots
    }
}

/// The compile-time graph of one `dag!` block.
#[derive(Clone, Copy, Debug)]
pub struct Graph {
    nodes: &'static [Node],
    edges: &'static [Edge],
    schedule: Schedule,
}

impl Graph {
    #[doc(hidden)]
    pub const fn __new(nodes: &'static [Node], edges: &'static [Edge], schedule: Schedule) -> Self {
        Graph {
            nodes,
            edges,
            schedule,
        }
    }
    /// The nodes, in source order (node id = index).
    pub const fn nodes(&self) -> &'static [Node] {
        self.nodes
    }
    /// Every dependency with its cause (two nodes may be joined by several).
    pub const fn edges(&self) -> &'static [Edge] {
        self.edges
    }
    /// What the executor follows.
    pub const fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    /// Whether some edge runs `from` before `to` directly.
    pub fn depends_on(&self, to: usize, from: usize) -> bool {
        self.edges.iter().any(|e| e.from() == from && e.to() == to)
    }
    /// Graphviz DOT of the structure: task nodes as boxes, glue as ellipses, edges
    /// labelled with the binding and (for WAR and WAW) the hazard.
    pub fn to_dot(&self) -> String {
        let mut dot = String::new();
        dot.push_str("digraph dag {\n  rankdir=TB;\n");
        dot.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fe\", fontname=\"Helvetica\"];\n");
        dot.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
        for (id, node) in self.nodes().iter().enumerate() {
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
        for edge in self.edges() {
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
}

/// `text` escaped for a DOT string.
pub(crate) fn escape(text: &str) -> String {
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

/// `text` on one line, cut to `max` characters.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
