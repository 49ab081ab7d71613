//! Resolves bindings, decides how each statement reaches each binding, reports misuse,
//! rewrites the statements and derives the edges (read-after-write, write-after-read,
//! write-after-write) that give the graph the block's sequential semantics.
//!
//! A statement's reach of a binding (see [`Reach`]):
//! - `x = value;` alone overwrites it;
//! - the last use of a value (no later statement uses it before it is overwritten, and
//!   the tail does not) takes it, unless the statement only borrows it (`&x`, `&mut x`,
//!   `x[i]`), so that `v.into_iter()`, `opt.unwrap()` and moves inside branches work;
//! - a binding named inside a macro is lent to the node (moved in and back), so the
//!   macro sees the binding itself;
//! - otherwise the node holds a reference: `&mut` for `&mut x`, assignments and any use
//!   of a `mut` binding, `&` for the rest.
//!
//! Variables from outside the block that two statements use, one of them by value or
//! mutably, are held in slots too (see [`Origin`]) and ordered like the block's own.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Ident, Span};
use syn::{Expr, Stmt};

use super::parse::{Kind, Parsed, Statement};
use super::uses::{Reach, Target, Use, UseKind, UseVisitor};
use crate::diag::{line_column, Errors};

/// Where a binding's value comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A `let` of the block.
    Block,
    /// An outer variable moved into the graph (a statement uses it by value).
    OuterOwned,
    /// An outer variable the graph holds `&mut` to (a statement writes it).
    OuterRef,
}

pub(super) struct Binding {
    pub(super) ident: Ident,
    pub(super) mutable: bool,
    /// The type written in `let x: T`, if any.
    pub(super) ty: Option<syn::Type>,
    pub(super) origin: Origin,
    /// Two nodes may read it at the same time (its value must be `Sync`).
    pub(super) shared: bool,
    /// An outer variable moved into the graph and also written: its value goes back to
    /// the variable after the run (if no statement consumed it).
    pub(super) write_back: bool,
}

pub(super) struct Node {
    pub(super) statement: Statement,
    /// The bindings the statement defines.
    pub(super) defines: Vec<usize>,
    /// How the statement reaches each binding it uses, in order of first use, with the
    /// span of that first use.
    pub(super) reach: Vec<(usize, Reach, Span)>,
    /// For each lent binding, where it is used next (a value moved by the statement and
    /// so not put back is reported there, as Rust reports a use after move).
    pub(super) next_use: HashMap<usize, Span>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Hazard {
    ReadAfterWrite,
    WriteAfterRead,
    WriteAfterWrite,
}

pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) binding: usize,
    pub(super) hazard: Hazard,
}

pub(super) struct Analysis {
    pub(super) bindings: Vec<Binding>,
    pub(super) nodes: Vec<Node>,
    pub(super) edges: Vec<Edge>,
    pub(super) tail: Option<Expr>,
    /// Bindings the tail takes out of their slots after the run.
    pub(super) tail_bindings: Vec<usize>,
}

pub(super) fn analyze(parsed: Parsed, errors: &mut Errors) -> Analysis {
    let Parsed {
        mut statements,
        mut tail,
    } = parsed;

    // Pass 1: the uses of each statement, against the bindings declared before it.
    let mut bindings: Vec<Binding> = Vec::new();
    let mut block_scopes: Vec<HashMap<String, usize>> = Vec::with_capacity(statements.len());
    let mut scope: HashMap<String, usize> = HashMap::new();
    let mut uses: Vec<Vec<Use>> = Vec::with_capacity(statements.len());
    let mut defines: Vec<Vec<usize>> = Vec::with_capacity(statements.len());
    for statement in &mut statements {
        // A call of a binding (a closure) is glue, not a task.
        if let Kind::Task { path, .. } = &statement.kind {
            if path
                .get_ident()
                .is_some_and(|i| scope.contains_key(&i.to_string()))
            {
                statement.kind = Kind::Glue;
            }
        }
        let mut visitor = UseVisitor::collect(&scope, errors);
        visitor.visit_statement(&mut statement.stmt);
        uses.push(visitor.uses);
        block_scopes.push(scope.clone());
        let mut defined = Vec::new();
        for def in &statement.defines {
            let name = def.ident.to_string();
            if let Some(&earlier) = scope.get(&name) {
                let (line, _) = line_column(bindings[earlier].ident.span());
                errors.push(
                    def.ident.span(),
                    format_args!(
                        "duplicate binding `{name}` in `dag!` (first bound on line {line}); use a different name: \
                         each binding is one value of the graph, so shadowing is not supported"
                    ),
                );
                continue;
            }
            scope.insert(name, bindings.len());
            defined.push(bindings.len());
            bindings.push(Binding {
                ident: def.ident.clone(),
                mutable: def.mutable,
                ty: binding_type(&statement.stmt, &def.ident),
                origin: Origin::Block,
                shared: false,
                write_back: false,
            });
        }
        defines.push(defined);
    }
    let mut tail_uses = Vec::new();
    if let Some(tail) = &mut tail {
        let mut visitor = UseVisitor::collect(&scope, errors);
        visitor.visit_tail(tail);
        tail_uses = visitor.uses;
    }

    // Outer variables that need a slot become bindings too.
    let promoted = promote_outer(&uses, &tail_uses, &mut bindings);
    let resolve = |u: &mut Use| {
        if let Target::Outer(name) = &u.target {
            if let Some(&binding) = promoted.get(name) {
                u.target = Target::Binding(binding);
            }
        }
    };
    uses.iter_mut().flatten().for_each(resolve);
    tail_uses.iter_mut().for_each(resolve);
    let statement_scopes: Vec<HashMap<String, usize>> = block_scopes
        .into_iter()
        .map(|block| {
            let mut names = promoted.clone();
            names.extend(block);
            names
        })
        .collect();

    // Inside a macro, an outer variable held as `&mut` would be that reference, not the
    // variable: a different type, so possibly a different result. Refuse it.
    for u in uses.iter().flatten() {
        if let Target::Binding(b) = u.target {
            if bindings[b].origin == Origin::OuterRef && u.kind == UseKind::Macro {
                errors.push(
                    u.span,
                    format_args!(
                        "`{name}` comes from outside the `dag!` and the graph writes it through `&mut`, \
                         so a macro in the block would see `&mut` instead of the variable; \
                         read it into a binding first (`let n = {name}.len();`), or use it after the graph has run",
                        name = bindings[b].ident
                    ),
                );
            }
        }
    }

    let mut tail_bindings: Vec<usize> = Vec::new();
    for u in &tail_uses {
        if let Target::Binding(b) = u.target {
            // The tail names an outer variable held by reference (or written back) itself:
            // the slot's borrow has ended by then.
            let outer = bindings[b].origin == Origin::OuterRef || bindings[b].write_back;
            if !outer && !tail_bindings.contains(&b) {
                tail_bindings.push(b);
            }
        }
    }
    let tail_uses_binding = |b: usize| tail_uses.iter().any(|u| u.target == Target::Binding(b));

    // Per binding: the statements that use it, and which of them only overwrite it.
    let of = |index: usize, binding: usize| {
        uses[index]
            .iter()
            .filter(move |u| u.target == Target::Binding(binding))
    };
    let pure_overwrite = |index: usize, binding: usize| {
        bindings[binding].origin != Origin::OuterRef
            && is_assignment_of(&statements[index].stmt, &bindings[binding].ident)
            && of(index, binding).count() == 1
    };
    let users =
        |binding: usize| (0..statements.len()).filter(move |&i| of(i, binding).next().is_some());

    // Decide the reach of each statement and check mutability.
    let mut reaches: Vec<Vec<(usize, Reach, Span)>> = Vec::with_capacity(statements.len());
    let mut next_uses: Vec<HashMap<usize, Span>> = Vec::with_capacity(statements.len());
    for (index, statement_uses) in uses.iter().enumerate() {
        let mut order: Vec<(usize, Span)> = Vec::new();
        for u in statement_uses {
            if let Target::Binding(b) = u.target {
                if !order.iter().any(|(o, _)| *o == b) {
                    order.push((b, u.span));
                }
            }
        }
        let mut reach = Vec::new();
        let mut next_use = HashMap::new();
        for (binding, first) in order {
            let b = &bindings[binding];
            let has = |kind: UseKind| of(index, binding).any(|u| u.kind == kind);
            if !b.mutable {
                report_immutable(errors, b, of(index, binding));
            }
            let next = users(binding).find(|&j| j > index);
            // An outer variable written back after the run is used once more then.
            let last = match next {
                Some(j) => pure_overwrite(j, binding),
                None => !tail_uses_binding(binding) && !b.write_back,
            };
            let r = if b.origin == Origin::OuterRef {
                if of(index, binding).all(|u| u.kind == UseKind::SharedRef) {
                    Reach::Read
                } else {
                    Reach::Write
                }
            } else if pure_overwrite(index, binding) {
                Reach::Overwrite
            } else if last && of(index, binding).any(|u| u.kind.may_consume()) {
                Reach::Take
            } else if has(UseKind::Macro) {
                Reach::Lend
            } else if has(UseKind::MutRef)
                || has(UseKind::Assigned)
                || (b.mutable && of(index, binding).any(|u| u.kind != UseKind::SharedRef))
            {
                Reach::Write
            } else {
                Reach::Read
            };
            if r == Reach::Lend {
                let span = next
                    .and_then(|j| of(j, binding).next().map(|u| u.span))
                    .or_else(|| {
                        tail_uses
                            .iter()
                            .find(|u| u.target == Target::Binding(binding))
                            .map(|u| u.span)
                    })
                    .unwrap_or(first);
                next_use.insert(binding, span);
            }
            reach.push((binding, r, first));
        }
        reaches.push(reach);
        next_uses.push(next_use);
    }

    // Pass 2: rewrite each statement for the reach of its node.
    let mut nodes = Vec::with_capacity(statements.len());
    for (index, (mut statement, (reach, next_use))) in statements
        .into_iter()
        .zip(reaches.into_iter().zip(next_uses))
        .enumerate()
    {
        let reach_map: HashMap<usize, Reach> = reach.iter().map(|&(b, r, _)| (b, r)).collect();
        let mut visitor = UseVisitor::rewrite(&statement_scopes[index], &reach_map, errors);
        visitor.visit_statement(&mut statement.stmt);
        nodes.push(Node {
            statement,
            defines: defines[index].clone(),
            reach,
            next_use,
        });
    }

    let edges = derive_edges(&nodes, bindings.len());
    mark_shared(&nodes, &edges, &mut bindings);
    Analysis {
        bindings,
        nodes,
        edges,
        tail,
        tail_bindings,
    }
}

/// Outer variables that two statements use, one of them by value (moved into a slot) or
/// mutably (held as `&mut`). Others are captured by the nodes as Rust captures them.
fn promote_outer(
    uses: &[Vec<Use>],
    tail_uses: &[Use],
    bindings: &mut Vec<Binding>,
) -> HashMap<String, usize> {
    let mut users: HashMap<String, (HashSet<usize>, Span, bool, bool)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (index, statement_uses) in uses.iter().enumerate() {
        for u in statement_uses {
            let Target::Outer(name) = &u.target else {
                continue;
            };
            let entry = users.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                (HashSet::new(), u.span, false, false)
            });
            entry.0.insert(index);
            entry.2 |= u.kind == UseKind::ByValue;
            entry.3 |= matches!(u.kind, UseKind::MutRef | UseKind::Assigned);
        }
    }
    // A tail that writes the variable needs its value written back too.
    for u in tail_uses {
        if let (Target::Outer(name), UseKind::MutRef | UseKind::Assigned) = (&u.target, u.kind) {
            if let Some(entry) = users.get_mut(name) {
                entry.3 = true;
            }
        }
    }
    let mut promoted = HashMap::new();
    for name in order {
        let (statements, span, by_value, mutably) = &users[&name];
        if statements.len() < 2 || !(*by_value || *mutably) {
            continue;
        }
        promoted.insert(name.clone(), bindings.len());
        bindings.push(Binding {
            ident: Ident::new(&name, *span),
            mutable: true,
            ty: None,
            origin: if *by_value {
                Origin::OuterOwned
            } else {
                Origin::OuterRef
            },
            shared: false,
            write_back: *by_value && *mutably,
        });
    }
    promoted
}

fn report_immutable<'u>(errors: &mut Errors, b: &Binding, uses: impl Iterator<Item = &'u Use>) {
    for u in uses {
        let what = match u.kind {
            UseKind::MutRef => "borrow `{}` as mutable",
            UseKind::Assigned => "assign to `{}`",
            _ => continue,
        };
        let message = format!(
            "cannot {}: it is not declared `mut`; declare it with `let mut {name} = ...`",
            what.replace("{}", &b.ident.to_string()),
            name = b.ident
        );
        match &u.tokens {
            Some(tokens) => errors.push_error(syn::Error::new_spanned(tokens, message)),
            None => errors.push(u.span, message),
        }
    }
}

/// `x = value;` as the whole statement.
fn is_assignment_of(stmt: &Stmt, ident: &Ident) -> bool {
    match stmt {
        Stmt::Expr(Expr::Assign(assign), _) => {
            matches!(&*assign.left, Expr::Path(p) if p.path.is_ident(ident))
        }
        _ => false,
    }
}

fn binding_type(stmt: &Stmt, ident: &Ident) -> Option<syn::Type> {
    let Stmt::Local(local) = stmt else {
        return None;
    };
    match &local.pat {
        syn::Pat::Type(typed) => match &*typed.pat {
            syn::Pat::Ident(p) if p.ident == *ident => Some((*typed.ty).clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Program-order hazard analysis per binding: a reader waits for the last exclusive
/// access; an exclusive access (write, take, lend, overwrite) waits for the readers since
/// then, or for that access itself (a write-after-write when it only overwrites).
fn derive_edges(nodes: &[Node], binding_count: usize) -> Vec<Edge> {
    #[derive(Clone, Default)]
    struct State {
        writer: Option<usize>,
        readers: Vec<usize>,
    }
    let mut state = vec![State::default(); binding_count];
    let mut edges = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        for &(binding, reach, _) in &node.reach {
            let s = &mut state[binding];
            if reach == Reach::Read {
                if let Some(writer) = s.writer {
                    edges.push(Edge {
                        from: writer,
                        to: index,
                        binding,
                        hazard: Hazard::ReadAfterWrite,
                    });
                }
                s.readers.push(index);
                continue;
            }
            if s.readers.is_empty() {
                if let Some(writer) = s.writer {
                    let hazard = if reach == Reach::Overwrite {
                        Hazard::WriteAfterWrite
                    } else {
                        Hazard::ReadAfterWrite
                    };
                    edges.push(Edge {
                        from: writer,
                        to: index,
                        binding,
                        hazard,
                    });
                }
            }
            for &reader in &s.readers {
                edges.push(Edge {
                    from: reader,
                    to: index,
                    binding,
                    hazard: Hazard::WriteAfterRead,
                });
            }
            s.readers.clear();
            s.writer = Some(index);
        }
        for &binding in &node.defines {
            state[binding].writer = Some(index);
        }
    }
    edges
}

/// Marks the bindings that two nodes with no path between them read.
fn mark_shared(nodes: &[Node], edges: &[Edge], bindings: &mut [Binding]) {
    let count = nodes.len();
    // Edges go forward in program order, so one backward sweep gives reachability.
    let mut successors = vec![Vec::new(); count];
    for edge in edges {
        successors[edge.from].push(edge.to);
    }
    let mut reachable: Vec<HashSet<usize>> = vec![HashSet::new(); count];
    for from in (0..count).rev() {
        let mut set = HashSet::new();
        for &to in &successors[from] {
            set.insert(to);
            set.extend(reachable[to].iter().copied());
        }
        reachable[from] = set;
    }
    for (binding, b) in bindings.iter_mut().enumerate() {
        let readers: Vec<usize> = (0..count)
            .filter(|&n| {
                nodes[n]
                    .reach
                    .iter()
                    .any(|&(x, r, _)| x == binding && r == Reach::Read)
            })
            .collect();
        b.shared = readers.iter().enumerate().any(|(i, &a)| {
            readers[i + 1..]
                .iter()
                .any(|&c| !reachable[a].contains(&c) && !reachable[c].contains(&a))
        });
    }
}
