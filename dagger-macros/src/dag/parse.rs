//! Parses the block: each statement becomes a task node, a glue node or the tail;
//! statements the graph cannot express are rejected here.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident, Local, Pat, Stmt};

use crate::diag::{first_span, source_text, Errors};

/// What a statement calls.
pub(super) enum Kind {
    /// `path(args)` or `path(args)?`: must be a `#[task]`.
    Task { path: syn::Path, fallible: bool },
    /// Anything else.
    Glue,
}

/// A binding that a `let` introduces.
pub(super) struct Defined {
    pub(super) ident: Ident,
    pub(super) mutable: bool,
}

pub(super) struct Statement {
    pub(super) stmt: Stmt,
    pub(super) kind: Kind,
    pub(super) defines: Vec<Defined>,
    pub(super) span: Span,
    pub(super) source: String,
}

pub(super) struct Parsed {
    pub(super) statements: Vec<Statement>,
    pub(super) tail: Option<Expr>,
}

struct Stmts(Vec<Stmt>);

impl Parse for Stmts {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        Block::parse_within(input).map(Stmts)
    }
}

pub(super) fn parse(input: TokenStream, errors: &mut Errors) -> syn::Result<Parsed> {
    let Stmts(mut stmts) = syn::parse2(input)?;
    let tail = match stmts.last() {
        Some(Stmt::Expr(_, None)) => match stmts.pop() {
            Some(Stmt::Expr(expr, None)) => Some(expr),
            _ => unreachable!(),
        },
        _ => None,
    };
    let statements = stmts
        .into_iter()
        .filter_map(|stmt| statement(stmt, errors))
        .collect();
    Ok(Parsed { statements, tail })
}

fn statement(stmt: Stmt, errors: &mut Errors) -> Option<Statement> {
    let span = first_span(&stmt);
    let source = source_text(stmt.to_token_stream());
    let (kind, defines) = match &stmt {
        Stmt::Local(local) => {
            let defines = let_bindings(local, errors)?;
            let init = local.init.as_ref().map(|init| &*init.expr);
            (init.map(kind_of).unwrap_or(Kind::Glue), defines)
        }
        Stmt::Expr(expr, _) => {
            if let Some(what) = loop_kind(expr) {
                errors.push(
                    expr.span(),
                    format_args!(
                        "`{what}` loops are not supported in `dag!`: the graph is fixed at compile time; \
                         put the loop inside a `#[task]`, or spawn tasks dynamically with `spawn`"
                    ),
                );
                return None;
            }
            (kind_of(expr), Vec::new())
        }
        Stmt::Item(item) => {
            errors.push(
                item.span(),
                "items (`fn`, `struct`, `use`, ...) are not supported inside `dag!`; define them outside the block",
            );
            return None;
        }
        Stmt::Macro(_) => (Kind::Glue, Vec::new()),
    };
    Some(Statement {
        stmt,
        kind,
        defines,
        span,
        source,
    })
}

fn loop_kind(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Loop(_) => Some("loop"),
        Expr::While(_) => Some("while"),
        Expr::ForLoop(_) => Some("for"),
        _ => None,
    }
}

/// `path(args)` (possibly followed by `?`) is a task node; everything else is glue.
fn kind_of(expr: &Expr) -> Kind {
    let (call, fallible) = match expr {
        Expr::Try(t) => (&*t.expr, true),
        other => (other, false),
    };
    match call {
        Expr::Call(call) => match &*call.func {
            // `Some(x)`, `Point(1, 2)`: constructors (upper-case, as Rust names them) are glue.
            Expr::Path(path) if path.qself.is_none() && !is_constructor(&path.path) => {
                let mut path = path.path.clone();
                // The node type is the struct `#[task]` emits, which has no generics.
                for segment in &mut path.segments {
                    segment.arguments = syn::PathArguments::None;
                }
                Kind::Task { path, fallible }
            }
            _ => Kind::Glue,
        },
        _ => Kind::Glue,
    }
}

fn is_constructor(path: &syn::Path) -> bool {
    path.segments
        .last()
        .and_then(|segment| segment.ident.to_string().chars().next())
        .is_some_and(char::is_uppercase)
}

fn let_bindings(local: &Local, errors: &mut Errors) -> Option<Vec<Defined>> {
    let Some(init) = &local.init else {
        errors.push(
            local.span(),
            "`let` without a value is not supported in `dag!`; give the binding its value where it is declared",
        );
        return None;
    };
    if let Some((else_token, _)) = &init.diverge {
        errors.push(
            else_token.span(),
            "`let ... else` is not supported in `dag!`; match inside a `#[task]` instead",
        );
        return None;
    }
    let mut defines = Vec::new();
    collect_pattern(&local.pat, &mut defines, errors);
    Some(defines)
}

/// Accepts `x`, `mut x`, `_`, `x: T` and tuples of those.
fn collect_pattern(pat: &Pat, defines: &mut Vec<Defined>, errors: &mut Errors) {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
            defines.push(Defined { ident: p.ident.clone(), mutable: p.mutability.is_some() })
        }
        Pat::Wild(_) => {}
        Pat::Type(p) => collect_pattern(&p.pat, defines, errors),
        Pat::Paren(p) => collect_pattern(&p.pat, defines, errors),
        Pat::Tuple(p) => p.elems.iter().for_each(|elem| collect_pattern(elem, defines, errors)),
        other => errors.push(
            other.span(),
            "unsupported pattern in `dag!`: bind a name (`let x`, `let mut x`), `_`, or a tuple of names (`let (a, b)`)",
        ),
    }
}
