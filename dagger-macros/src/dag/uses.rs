//! Finds how each statement uses the block's bindings, and rewrites those uses once the
//! access of the whole statement is decided.
//!
//! The position of a use decides its kind, from Rust's own syntax: `&x` reads, `&mut x`
//! writes, `x` as a call argument (or in a tuple, array or struct literal that is one) is
//! by value, and any other `x` (method receiver, operand, inside a closure or macro) is a
//! place whose access depends on whether the binding is `mut`.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote_spanned, ToTokens};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Pat};

use crate::diag::{first_span, Errors};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UseKind {
    /// `&x`
    SharedRef,
    /// `&mut x`
    MutRef,
    /// `x` moved or copied.
    ByValue,
    /// `x.method()`, `x.field`, `x + 1`, inside closures and macros.
    Place,
    /// `x = ...`, `x += ...`
    Assigned,
}

pub(super) struct Use {
    pub(super) binding: usize,
    pub(super) kind: UseKind,
    pub(super) span: Span,
    /// The whole expression (`&mut x`), for errors that underline all of it.
    pub(super) tokens: Option<TokenStream>,
}

/// How a node reaches a binding, decided for the whole statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// A shared guard: uses become `(*x)`, by-value uses copy.
    Borrow,
    /// An exclusive guard: uses become `(*x)`, by-value uses copy.
    BorrowMut,
    /// The value itself, moved out of its slot (the binding's last use).
    Take,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Value,
    Place,
}

/// Walks one statement. With `reach` empty it only records uses; with it, it rewrites.
pub(super) struct UseVisitor<'a> {
    bindings: &'a HashMap<String, usize>,
    reach: Option<&'a HashMap<usize, Reach>>,
    shadowed: Vec<HashSet<String>>,
    ctx: Ctx,
    closure_depth: usize,
    loop_depth: usize,
    pub(super) uses: Vec<Use>,
    errors: &'a mut Errors,
}

impl<'a> UseVisitor<'a> {
    pub(super) fn collect(bindings: &'a HashMap<String, usize>, errors: &'a mut Errors) -> Self {
        Self::new(bindings, None, errors)
    }

    pub(super) fn rewrite(
        bindings: &'a HashMap<String, usize>,
        reach: &'a HashMap<usize, Reach>,
        errors: &'a mut Errors,
    ) -> Self {
        Self::new(bindings, Some(reach), errors)
    }

    fn new(
        bindings: &'a HashMap<String, usize>,
        reach: Option<&'a HashMap<usize, Reach>>,
        errors: &'a mut Errors,
    ) -> Self {
        UseVisitor {
            bindings,
            reach,
            shadowed: vec![HashSet::new()],
            ctx: Ctx::Value,
            closure_depth: 0,
            loop_depth: 0,
            uses: Vec::new(),
            errors,
        }
    }

    /// Whether errors about control flow are reported (only in the first pass).
    fn reporting(&self) -> bool {
        self.reach.is_none()
    }

    fn lookup(&self, ident: &Ident) -> Option<usize> {
        let name = ident.to_string();
        if self.shadowed.iter().any(|scope| scope.contains(&name)) {
            return None;
        }
        self.bindings.get(&name).copied()
    }

    fn binding_path(&self, expr: &Expr) -> Option<(usize, Ident)> {
        match expr {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
                let ident = p.path.get_ident()?;
                self.lookup(ident).map(|b| (b, ident.clone()))
            }
            _ => None,
        }
    }

    fn guarded(&self, binding: usize) -> bool {
        self.reach
            .and_then(|r| r.get(&binding))
            .is_some_and(|r| *r != Reach::Take)
    }

    /// Records a use; in the rewrite pass replaces `x` by the guard's place `(*x)`, or by
    /// a checked copy for a by-value use.
    fn use_binding(&mut self, expr: &mut Expr, binding: usize, ident: Ident, kind: UseKind) {
        self.uses.push(Use {
            binding,
            kind,
            span: ident.span(),
            tokens: None,
        });
        if self.guarded(binding) {
            let span = ident.span();
            *expr = if kind == UseKind::ByValue {
                syn::parse_quote_spanned! {span=> ::dagger::__private::copy_binding(&(*#ident)) }
            } else {
                syn::parse_quote_spanned! {span=> (*#ident) }
            };
        }
    }

    fn visit_with(&mut self, ctx: Ctx, expr: &mut Expr) {
        self.ctx = ctx;
        self.visit_expr_mut(expr);
    }

    fn shadow_pattern(&mut self, pat: &Pat) {
        let mut names = Vec::new();
        pattern_idents(pat, &mut names);
        if let Some(scope) = self.shadowed.last_mut() {
            scope.extend(names);
        }
    }

    fn scan_macro_tokens(&mut self, tokens: TokenStream) -> TokenStream {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = TokenStream::new();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Ident(ident) => {
                    let after_dot = i > 0 && is_punct(&tokens[i - 1], '.');
                    let before_path_or_bang = tokens
                        .get(i + 1)
                        .is_some_and(|t| is_punct(t, ':') || is_punct(t, '!'));
                    let binding = (!after_dot && !before_path_or_bang)
                        .then(|| self.lookup(ident))
                        .flatten();
                    match binding {
                        Some(binding) => {
                            self.uses.push(Use {
                                binding,
                                kind: UseKind::Place,
                                span: ident.span(),
                                tokens: None,
                            });
                            if self.guarded(binding) {
                                out.extend(quote_spanned! {ident.span()=> (*#ident) });
                            } else {
                                token.to_tokens(&mut out);
                            }
                        }
                        None => token.to_tokens(&mut out),
                    }
                }
                TokenTree::Group(group) => {
                    let inner = self.scan_macro_tokens(group.stream());
                    let mut rebuilt = Group::new(group.delimiter(), inner);
                    rebuilt.set_span(group.span());
                    out.extend([TokenTree::Group(rebuilt)]);
                }
                TokenTree::Literal(literal) => {
                    // Inline format arguments: `"{x}"`, `"{x:?}"`.
                    let text = literal.to_string();
                    if text.starts_with('"') || text.starts_with("r\"") || text.starts_with("r#") {
                        for name in format_string_names(&text) {
                            if let Some(binding) = self.bindings.get(&name).copied() {
                                if !self.shadowed.iter().any(|s| s.contains(&name)) {
                                    self.uses.push(Use {
                                        binding,
                                        kind: UseKind::Place,
                                        span: literal.span(),
                                        tokens: None,
                                    });
                                }
                            }
                        }
                    }
                    token.to_tokens(&mut out);
                }
                TokenTree::Punct(_) => token.to_tokens(&mut out),
            }
        }
        out
    }
}

fn is_punct(token: &TokenTree, c: char) -> bool {
    matches!(token, TokenTree::Punct(p) if p.as_char() == c)
}

/// Names used as inline arguments in a format string: `{name}` or `{name:...}`.
fn format_string_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '{' {
            continue;
        }
        if chars.peek().is_some_and(|(_, c)| *c == '{') {
            chars.next();
            continue;
        }
        let name: String = chars
            .clone()
            .map(|(_, c)| c)
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let next = chars.clone().map(|(_, c)| c).nth(name.chars().count());
        let starts_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        if starts_ok && matches!(next, Some('}') | Some(':')) {
            names.push(name);
        }
    }
    names
}

pub(super) fn pattern_idents(pat: &Pat, out: &mut Vec<String>) {
    match pat {
        Pat::Ident(p) => {
            out.push(p.ident.to_string());
            if let Some((_, sub)) = &p.subpat {
                pattern_idents(sub, out);
            }
        }
        Pat::Or(p) => p.cases.iter().for_each(|c| pattern_idents(c, out)),
        Pat::Paren(p) => pattern_idents(&p.pat, out),
        Pat::Reference(p) => pattern_idents(&p.pat, out),
        Pat::Slice(p) => p.elems.iter().for_each(|e| pattern_idents(e, out)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| pattern_idents(&f.pat, out)),
        Pat::Tuple(p) => p.elems.iter().for_each(|e| pattern_idents(e, out)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|e| pattern_idents(e, out)),
        Pat::Type(p) => pattern_idents(&p.pat, out),
        _ => {}
    }
}

impl VisitMut for UseVisitor<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        let ctx = std::mem::replace(&mut self.ctx, Ctx::Place);
        if let Some((binding, ident)) = self.binding_path(expr) {
            let kind = if ctx == Ctx::Value {
                UseKind::ByValue
            } else {
                UseKind::Place
            };
            return self.use_binding(expr, binding, ident, kind);
        }
        match expr {
            Expr::Reference(r) => {
                if let Some((binding, ident)) = self.binding_path(&r.expr) {
                    let kind = if r.mutability.is_some() {
                        UseKind::MutRef
                    } else {
                        UseKind::SharedRef
                    };
                    let tokens = r.to_token_stream();
                    self.use_binding(&mut r.expr, binding, ident, kind);
                    if let Some(last) = self.uses.last_mut() {
                        last.tokens = Some(tokens);
                    }
                } else {
                    self.visit_with(Ctx::Place, &mut r.expr);
                }
            }
            Expr::Call(call) => {
                self.visit_with(Ctx::Place, &mut call.func);
                for arg in &mut call.args {
                    self.visit_with(Ctx::Value, arg);
                }
            }
            Expr::MethodCall(call) => {
                self.visit_with(Ctx::Place, &mut call.receiver);
                for arg in &mut call.args {
                    self.visit_with(Ctx::Value, arg);
                }
            }
            Expr::Tuple(tuple) => tuple.elems.iter_mut().for_each(|e| self.visit_with(ctx, e)),
            Expr::Array(array) => array.elems.iter_mut().for_each(|e| self.visit_with(ctx, e)),
            Expr::Paren(paren) => self.visit_with(ctx, &mut paren.expr),
            Expr::Group(group) => self.visit_with(ctx, &mut group.expr),
            Expr::Try(t) => self.visit_with(ctx, &mut t.expr),
            Expr::Struct(s) => {
                for field in &mut s.fields {
                    self.visit_with(ctx, &mut field.expr);
                }
                if let Some(rest) = &mut s.rest {
                    self.visit_with(Ctx::Place, rest);
                }
            }
            Expr::Assign(assign) => {
                if let Some((binding, ident)) = self.binding_path(&assign.left) {
                    self.use_binding(&mut assign.left, binding, ident, UseKind::Assigned);
                } else {
                    self.visit_with(Ctx::Place, &mut assign.left);
                }
                self.visit_with(Ctx::Value, &mut assign.right);
            }
            Expr::Binary(binary) if is_compound_assignment(&binary.op) => {
                if let Some((binding, ident)) = self.binding_path(&binary.left) {
                    self.use_binding(&mut binary.left, binding, ident, UseKind::Assigned);
                } else {
                    self.visit_with(Ctx::Place, &mut binary.left);
                }
                self.visit_with(Ctx::Place, &mut binary.right);
            }
            Expr::Closure(closure) => {
                let mut params = HashSet::new();
                for input in &closure.inputs {
                    let mut names = Vec::new();
                    pattern_idents(input, &mut names);
                    params.extend(names);
                }
                self.shadowed.push(params);
                let loops = std::mem::replace(&mut self.loop_depth, 0);
                self.closure_depth += 1;
                self.visit_with(Ctx::Place, &mut closure.body);
                self.closure_depth -= 1;
                self.loop_depth = loops;
                self.shadowed.pop();
            }
            Expr::ForLoop(for_loop) => {
                self.visit_with(Ctx::Place, &mut for_loop.expr);
                self.shadowed.push(HashSet::new());
                self.shadow_pattern(&for_loop.pat);
                self.loop_depth += 1;
                self.visit_block_mut(&mut for_loop.body);
                self.loop_depth -= 1;
                self.shadowed.pop();
            }
            Expr::While(_) | Expr::Loop(_) => {
                self.loop_depth += 1;
                visit_mut::visit_expr_mut(self, expr);
                self.loop_depth -= 1;
            }
            Expr::Match(m) => {
                self.visit_with(Ctx::Place, &mut m.expr);
                for arm in &mut m.arms {
                    self.shadowed.push(HashSet::new());
                    self.shadow_pattern(&arm.pat);
                    if let Some((_, guard)) = &mut arm.guard {
                        self.visit_with(Ctx::Place, guard);
                    }
                    self.visit_with(Ctx::Place, &mut arm.body);
                    self.shadowed.pop();
                }
            }
            Expr::Let(l) => {
                self.visit_with(Ctx::Place, &mut l.expr);
                self.shadow_pattern(&l.pat);
            }
            Expr::Return(_) if self.closure_depth == 0 && self.reporting() => {
                self.errors.push(
                    first_span(expr),
                    "`return` is not supported in `dag!`: every statement is a graph node; \
                     compute the value in the tail expression instead",
                );
            }
            Expr::Break(_) | Expr::Continue(_) if self.loop_depth == 0 && self.reporting() => {
                self.errors.push(
                    first_span(expr),
                    "`break` and `continue` are not supported in `dag!` outside a loop of your own",
                );
            }
            Expr::Await(_) if self.reporting() => {
                self.errors.push(
                    first_span(expr),
                    "`.await` is not supported in `dag!`: tasks run on worker threads, not in an async runtime",
                );
            }
            Expr::Yield(_) if self.reporting() => {
                self.errors
                    .push(first_span(expr), "`yield` is not supported in `dag!`");
            }
            Expr::Macro(m) => self.visit_macro_mut(&mut m.mac),
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_block_mut(&mut self, block: &mut syn::Block) {
        self.shadowed.push(HashSet::new());
        for stmt in &mut block.stmts {
            match stmt {
                syn::Stmt::Local(local) => {
                    if let Some(init) = &mut local.init {
                        self.visit_with(Ctx::Place, &mut init.expr);
                        if let Some((_, diverge)) = &mut init.diverge {
                            self.visit_with(Ctx::Place, diverge);
                        }
                    }
                    self.shadow_pattern(&local.pat);
                }
                syn::Stmt::Expr(expr, _) => self.visit_with(Ctx::Place, expr),
                syn::Stmt::Macro(m) => self.visit_macro_mut(&mut m.mac),
                syn::Stmt::Item(_) => {}
            }
        }
        self.shadowed.pop();
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        let tokens = std::mem::take(&mut mac.tokens);
        mac.tokens = self.scan_macro_tokens(tokens);
    }

    fn visit_item_mut(&mut self, _item: &mut syn::Item) {
        // Nested items cannot see the block's bindings.
    }
}

fn is_compound_assignment(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

#[cfg(test)]
mod tests {
    use super::format_string_names;

    #[test]
    fn finds_inline_format_arguments() {
        assert_eq!(
            format_string_names("\"{a} {b:?} {{c}} {0} {}\""),
            vec!["a", "b"]
        );
        assert_eq!(format_string_names("\"{width:>8}\""), vec!["width"]);
    }
}
