//! Resolves bindings, decides how each statement reaches each binding, reports misuse,
//! rewrites the statements and derives the edges (read-after-write, write-after-read,
//! write-after-write) that give the graph the block's sequential semantics.

use std::collections::HashMap;

use proc_macro2::Ident;
use syn::visit_mut::VisitMut;
use syn::{Expr, Stmt};

use super::parse::{Parsed, Statement};
use super::uses::{Reach, Use, UseKind, UseVisitor};
use crate::diag::{line_column, Errors};

pub(super) struct Binding {
    pub(super) ident: Ident,
    pub(super) mutable: bool,
    /// The type written in `let x: T`, if any.
    pub(super) ty: Option<syn::Type>,
}

pub(super) struct Node {
    pub(super) statement: Statement,
    /// The bindings the statement defines.
    pub(super) defines: Vec<usize>,
    /// How the statement reaches each binding it uses, in order of first use.
    pub(super) reach: Vec<(usize, Reach)>,
    /// Bindings the statement only assigns to (`x = ...`): it does not read their value.
    pub(super) overwrites: Vec<usize>,
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
    /// Bindings the tail mentions; they are moved out of their slots after the run.
    pub(super) tail_bindings: Vec<usize>,
}

pub(super) fn analyze(parsed: Parsed, errors: &mut Errors) -> Analysis {
    let Parsed {
        mut statements,
        mut tail,
    } = parsed;

    // Pass 1: the uses of each statement, against the bindings declared before it.
    let mut bindings: Vec<Binding> = Vec::new();
    let mut scopes: Vec<HashMap<String, usize>> = Vec::with_capacity(statements.len());
    let mut scope: HashMap<String, usize> = HashMap::new();
    let mut uses: Vec<Vec<Use>> = Vec::with_capacity(statements.len());
    let mut defines: Vec<Vec<usize>> = Vec::with_capacity(statements.len());
    for statement in &mut statements {
        let mut visitor = UseVisitor::collect(&scope, errors);
        visit_statement(&mut visitor, &mut statement.stmt);
        uses.push(visitor.uses);
        scopes.push(scope.clone());
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
            });
        }
        defines.push(defined);
    }
    let mut tail_uses = Vec::new();
    if let Some(tail) = &mut tail {
        let mut visitor = UseVisitor::collect(&scope, errors);
        visitor.visit_expr_mut(tail);
        tail_uses = visitor.uses;
    }
    let mut tail_bindings: Vec<usize> = Vec::new();
    for u in &tail_uses {
        if !tail_bindings.contains(&u.binding) {
            tail_bindings.push(u.binding);
        }
    }

    let mut last_use = vec![None; bindings.len()];
    for (index, statement_uses) in uses.iter().enumerate() {
        for u in statement_uses {
            last_use[u.binding] = Some(index);
        }
    }

    // Decide the reach of each statement, check mutability, and rewrite (pass 2).
    let mut nodes = Vec::with_capacity(statements.len());
    for (index, (mut statement, statement_uses)) in statements.into_iter().zip(uses).enumerate() {
        let mut reach: Vec<(usize, Reach)> = Vec::new();
        let mut overwrites = Vec::new();
        let mut order: Vec<usize> = Vec::new();
        for u in &statement_uses {
            if !order.contains(&u.binding) {
                order.push(u.binding);
            }
        }
        for &binding in &order {
            let of_binding = || statement_uses.iter().filter(move |u| u.binding == binding);
            let has = |kind: UseKind| of_binding().any(|u| u.kind == kind);
            let b = &bindings[binding];
            if !b.mutable {
                for u in of_binding() {
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
            let last = last_use[binding] == Some(index) && !tail_bindings.contains(&binding);
            let r = if last && has(UseKind::ByValue) {
                Reach::Take
            } else if has(UseKind::MutRef)
                || has(UseKind::Assigned)
                || (b.mutable && (has(UseKind::Place) || has(UseKind::ByValue)))
            {
                Reach::BorrowMut
            } else {
                Reach::Borrow
            };
            reach.push((binding, r));
            if of_binding().all(|u| u.kind == UseKind::Assigned) {
                overwrites.push(binding);
            }
        }
        let reach_map: HashMap<usize, Reach> = reach.iter().copied().collect();
        let mut visitor = UseVisitor::rewrite(&scopes[index], &reach_map, errors);
        visit_statement(&mut visitor, &mut statement.stmt);
        nodes.push(Node {
            statement,
            defines: defines[index].clone(),
            reach,
            overwrites,
        });
    }

    let edges = derive_edges(&nodes, bindings.len());
    Analysis {
        bindings,
        nodes,
        edges,
        tail,
        tail_bindings,
    }
}

/// A `let` initializer and a statement's expression are by-value positions.
fn visit_statement(visitor: &mut UseVisitor<'_>, stmt: &mut Stmt) {
    match stmt {
        Stmt::Local(local) => {
            if let Some(init) = &mut local.init {
                visitor.visit_expr_mut(&mut init.expr);
            }
        }
        Stmt::Expr(expr, _) => visitor.visit_expr_mut(expr),
        Stmt::Macro(m) => visitor.visit_macro_mut(&mut m.mac),
        Stmt::Item(_) => {}
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

/// Program-order hazard analysis per binding: a reader waits for the last writer; a
/// writer (or mover) waits for the readers since the last writer, or for that writer
/// (a read-after-write when it uses the old value, as `&mut x` and moves do; a
/// write-after-write when it only assigns).
fn derive_edges(nodes: &[Node], binding_count: usize) -> Vec<Edge> {
    #[derive(Clone, Default)]
    struct State {
        writer: Option<usize>,
        readers: Vec<usize>,
    }
    let mut state = vec![State::default(); binding_count];
    let mut edges = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        for &(binding, reach) in &node.reach {
            let s = &mut state[binding];
            match reach {
                Reach::Borrow => {
                    if let Some(writer) = s.writer {
                        edges.push(Edge {
                            from: writer,
                            to: index,
                            binding,
                            hazard: Hazard::ReadAfterWrite,
                        });
                    }
                    s.readers.push(index);
                }
                Reach::BorrowMut | Reach::Take => {
                    if s.readers.is_empty() {
                        if let Some(writer) = s.writer {
                            let hazard = if node.overwrites.contains(&binding) {
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
            }
        }
        for &binding in &node.defines {
            state[binding].writer = Some(index);
        }
    }
    edges
}
