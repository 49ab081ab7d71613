//! Finds how each statement uses the block's bindings (and the variables it captures from
//! outside), and rewrites those uses once each node's reach is decided.
//!
//! The position of a use decides its kind, from Rust's own syntax: `&x` reads, `&mut x`
//! writes, `x` in a value position (a call argument, a `let` value, an element of a tuple,
//! array or struct literal, anything a `move` closure captures) is by value, and any other
//! `x` (method receiver, operand, scrutinee) is a place. Names bound by patterns inside the
//! statement (closure parameters, `match` arms, `if let`, `for`, inner `let`) hide a
//! binding exactly where Rust's scoping says they do.
//!
//! Only uses outside macros are rewritten (`x` becomes `(*x)` when the node holds a
//! reference); a binding named inside a macro's tokens is always owned by its node, so the
//! tokens stay as the user wrote them (`stringify!`, `assert!` texts, format strings).

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Pat, Token};

use crate::diag::{first_span, Errors};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UseKind {
    /// `&x`
    SharedRef,
    /// `&mut x`
    MutRef,
    /// `x` moved or copied.
    ByValue,
    /// `x.method()`, `x.field`, `x + 1`, `match x`.
    Place,
    /// `x[i]`: never moves `x`.
    IndexBase,
    /// `x = ...`, `x += ...`
    Assigned,
    /// Named inside a macro's tokens: the macro decides.
    Macro,
}

impl UseKind {
    /// Whether the use may need the value itself (so a last use takes it).
    pub(super) fn may_consume(self) -> bool {
        !matches!(
            self,
            UseKind::SharedRef | UseKind::MutRef | UseKind::IndexBase
        )
    }
}

/// What a name in a statement refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Target {
    /// A binding of the block (or an outer variable the block holds in a slot).
    Binding(usize),
    /// A variable (or item) from outside the block.
    Outer(String),
}

pub(super) struct Use {
    pub(super) target: Target,
    pub(super) kind: UseKind,
    pub(super) span: Span,
    /// The whole expression (`&mut x`), for errors that underline all of it.
    pub(super) tokens: Option<TokenStream>,
}

/// How a node reaches a binding, decided for the whole statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// A reference `&T` local to the node: uses become `(*x)`, by-value uses copy.
    Read,
    /// A reference `&mut T` local to the node: the same, exclusive.
    Write,
    /// The value moved out of its slot (the last use before the slot is refilled).
    Take,
    /// The value moved into the node and put back at its end (named inside a macro).
    Lend,
    /// `x = value;` alone: the node stores a new value.
    Overwrite,
}

impl Reach {
    /// Whether the node sees the binding through a reference (so uses are rewritten).
    pub(super) fn by_reference(self) -> bool {
        matches!(self, Reach::Read | Reach::Write)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Value,
    Place,
}

/// Walks one statement. With `reach` absent it only records uses; with it, it rewrites.
pub(super) struct UseVisitor<'a> {
    bindings: &'a HashMap<String, usize>,
    reach: Option<&'a HashMap<usize, Reach>>,
    /// Names bound inside the statement, innermost scope last.
    scopes: Vec<HashSet<String>>,
    ctx: Ctx,
    /// Inside a `move` closure or `async move` block: every capture is by value.
    move_depth: usize,
    macro_depth: usize,
    closure_depth: usize,
    async_depth: usize,
    loop_depth: usize,
    /// Labels of the enclosing labeled blocks and loops (reset inside closures).
    labels: Vec<String>,
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
            scopes: vec![HashSet::new()],
            ctx: Ctx::Value,
            move_depth: 0,
            macro_depth: 0,
            closure_depth: 0,
            async_depth: 0,
            loop_depth: 0,
            labels: Vec::new(),
            uses: Vec::new(),
            errors,
        }
    }

    /// Whether errors are reported (only in the first pass, so each is reported once).
    fn reporting(&self) -> bool {
        self.reach.is_none()
    }

    /// Visits a whole statement: a `let` value and an expression statement are by-value
    /// positions.
    pub(super) fn visit_statement(&mut self, stmt: &mut syn::Stmt) {
        match stmt {
            syn::Stmt::Local(local) => {
                // `let _ = x;` does not move `x`.
                let ctx = if matches!(local.pat, Pat::Wild(_)) {
                    Ctx::Place
                } else {
                    Ctx::Value
                };
                if let Some(init) = &mut local.init {
                    self.visit_with(ctx, &mut init.expr);
                }
            }
            syn::Stmt::Expr(expr, _) => self.visit_with(Ctx::Value, expr),
            syn::Stmt::Macro(m) => self.visit_macro_mut(&mut m.mac),
            syn::Stmt::Item(_) => {}
        }
    }

    /// Visits the tail expression (by value; never rewritten).
    pub(super) fn visit_tail(&mut self, tail: &mut Expr) {
        self.visit_with(Ctx::Value, tail);
    }

    fn shadowed(&self, name: &str) -> bool {
        self.scopes.iter().any(|scope| scope.contains(name))
    }

    fn lookup(&self, ident: &Ident) -> Option<Target> {
        let name = ident.to_string();
        if self.shadowed(&name) {
            return None;
        }
        match self.bindings.get(&name) {
            Some(&binding) => Some(Target::Binding(binding)),
            None if outer_candidate(&name) => Some(Target::Outer(name)),
            None => None,
        }
    }

    fn path_target(&self, expr: &Expr) -> Option<(Target, Ident)> {
        match expr {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
                let ident = p.path.get_ident()?;
                self.lookup(ident).map(|t| (t, ident.clone()))
            }
            _ => None,
        }
    }

    /// Whether a binding's uses are rewritten in this node (it is held by reference).
    fn by_reference(&self, target: &Target) -> bool {
        match target {
            Target::Binding(b) => self
                .reach
                .and_then(|r| r.get(b))
                .is_some_and(|r| r.by_reference()),
            Target::Outer(_) => false,
        }
    }

    /// Records a use; in the rewrite pass replaces `x` by the reference's place `(*x)`,
    /// or by a checked copy for a by-value use.
    fn use_target(&mut self, expr: &mut Expr, target: Target, ident: Ident, kind: UseKind) {
        let kind = if self.macro_depth > 0 {
            UseKind::Macro
        } else if self.move_depth > 0 {
            UseKind::ByValue
        } else {
            kind
        };
        let rewrite = self.macro_depth == 0 && self.by_reference(&target);
        self.uses.push(Use {
            target,
            kind,
            span: ident.span(),
            tokens: None,
        });
        if rewrite {
            let span = ident.span();
            *expr = if kind == UseKind::ByValue {
                syn::parse_quote_spanned! {span=> ::dagger::__private::copy_binding(&(*#ident)) }
            } else {
                syn::parse_quote_spanned! {span=> (*#ident) }
            };
        }
    }

    /// The left side of `=`: a binding, or a tuple / array of them (`(a, b) = (b, a)`).
    fn visit_assignee(&mut self, expr: &mut Expr) {
        if let Some((target, ident)) = self.path_target(expr) {
            return self.use_target(expr, target, ident, UseKind::Assigned);
        }
        match expr {
            Expr::Tuple(tuple) => tuple.elems.iter_mut().for_each(|e| self.visit_assignee(e)),
            Expr::Array(array) => array.elems.iter_mut().for_each(|e| self.visit_assignee(e)),
            Expr::Paren(paren) => self.visit_assignee(&mut paren.expr),
            Expr::Infer(_) => {}
            _ => self.visit_with(Ctx::Place, expr),
        }
    }

    fn visit_with(&mut self, ctx: Ctx, expr: &mut Expr) {
        self.ctx = ctx;
        self.visit_expr_mut(expr);
    }

    fn bind_pattern(&mut self, pat: &Pat) {
        let mut names = Vec::new();
        pattern_idents(pat, &mut names);
        if let Some(scope) = self.scopes.last_mut() {
            scope.extend(names);
        }
    }

    /// Runs `f` with the loop and label context of a new function body (a closure or an
    /// `async` block): `break`, `continue` and labels do not cross it.
    fn in_body(&mut self, is_move: bool, f: impl FnOnce(&mut Self)) {
        let loops = std::mem::replace(&mut self.loop_depth, 0);
        let labels = std::mem::take(&mut self.labels);
        self.closure_depth += 1;
        self.move_depth += usize::from(is_move);
        f(self);
        self.move_depth -= usize::from(is_move);
        self.closure_depth -= 1;
        self.labels = labels;
        self.loop_depth = loops;
    }

    /// The bindings held by reference that `expr` names, in order (for `move` captures).
    fn referenced_bindings(&mut self, expr: &Expr) -> Vec<(usize, Ident)> {
        let mut scratch = Errors::default();
        let mut finder = UseVisitor::collect(self.bindings, &mut scratch);
        finder.scopes = self.scopes.clone();
        finder.visit_with(Ctx::Value, &mut expr.clone());
        let mut found: Vec<(usize, Ident)> = Vec::new();
        for u in finder.uses {
            if let Target::Binding(b) = u.target {
                let held = self.by_reference(&Target::Binding(b));
                if held && u.kind != UseKind::Macro && !found.iter().any(|(f, _)| *f == b) {
                    let name = self
                        .bindings
                        .iter()
                        .find(|(_, &id)| id == b)
                        .map(|(n, _)| n.clone())
                        .unwrap_or_default();
                    found.push((b, Ident::new(&name, u.span)));
                }
            }
        }
        found
    }

    /// A `move` closure or `async move` block in the rewrite pass: the bindings it names
    /// that the node holds by reference are copied into it where it is created, as plain
    /// Rust does, so that it owns them and its body is left as written.
    fn hoist_move_captures(&mut self, expr: &mut Expr, visit: impl FnOnce(&mut Self, &mut Expr)) {
        let captured = if self.reporting() {
            Vec::new()
        } else {
            self.referenced_bindings(expr)
        };
        self.scopes
            .push(captured.iter().map(|(_, i)| i.to_string()).collect());
        visit(self, expr);
        self.scopes.pop();
        if !captured.is_empty() {
            let copies = captured.iter().map(|(_, ident)| {
                let span = ident.span();
                quote::quote_spanned! {span=>
                    let #ident = ::dagger::__private::copy_binding(&(*#ident));
                }
            });
            let inner = &*expr;
            *expr = syn::parse_quote! { ({ #(#copies)* #inner }) };
        }
    }

    fn visit_block_with(&mut self, ctx: Ctx, block: &mut syn::Block) {
        self.scopes.push(HashSet::new());
        let count = block.stmts.len();
        for (index, stmt) in block.stmts.iter_mut().enumerate() {
            match stmt {
                syn::Stmt::Local(local) => {
                    if let Some(init) = &mut local.init {
                        self.visit_with(Ctx::Value, &mut init.expr);
                        if let Some((_, diverge)) = &mut init.diverge {
                            self.visit_with(Ctx::Place, diverge);
                        }
                    }
                    self.bind_pattern(&local.pat);
                }
                syn::Stmt::Expr(expr, semi) => {
                    let tail = semi.is_none() && index + 1 == count;
                    self.visit_with(if tail { ctx } else { Ctx::Value }, expr);
                }
                syn::Stmt::Macro(m) => self.visit_macro_mut(&mut m.mac),
                syn::Stmt::Item(_) => {}
            }
        }
        self.scopes.pop();
    }

    fn labeled(&mut self, label: Option<&syn::Label>, f: impl FnOnce(&mut Self)) {
        let pushed = label.map(|l| self.labels.push(l.name.ident.to_string()));
        f(self);
        if pushed.is_some() {
            self.labels.pop();
        }
    }

    /// Records the names a macro's tokens use. Tokens that parse as comma-separated
    /// expressions (`println!`, `assert_eq!`, `vec!`, `format!` ...) are walked as
    /// expressions, with their own scoping; any other tokens are scanned, counting every
    /// identifier that names a binding (at worst an extra dependency).
    fn record_macro(&mut self, tokens: TokenStream) {
        self.macro_depth += 1;
        match parse_macro_args(tokens.clone()) {
            Some(mut args) => {
                for arg in &mut args {
                    if let Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) = arg
                    {
                        self.record_format_names(&s.value(), s.span());
                    }
                    self.visit_with(Ctx::Place, arg);
                }
            }
            None => self.scan_tokens(tokens),
        }
        self.macro_depth -= 1;
    }

    fn record_format_names(&mut self, text: &str, span: Span) {
        for name in format_string_names(text) {
            if let Some(target) = self.lookup(&Ident::new(&name, span)) {
                self.uses.push(Use {
                    target,
                    kind: UseKind::Macro,
                    span,
                    tokens: None,
                });
            }
        }
    }

    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Ident(ident) => {
                    // Skipped: a field or method (`.x`, but not `..x`), a path segment
                    // (`x::`) and a macro name (`x!(..)`); anything else may be a use.
                    let at = |k: usize, c: char| tokens.get(k).is_some_and(|t| is_punct(t, c));
                    let field = i > 0 && at(i - 1, '.') && !(i > 1 && at(i - 2, '.'));
                    let path = at(i + 1, ':') && at(i + 2, ':');
                    let macro_name =
                        at(i + 1, '!') && matches!(tokens.get(i + 2), Some(TokenTree::Group(_)));
                    if field || path || macro_name {
                        continue;
                    }
                    if let Some(target) = self.lookup(ident) {
                        self.uses.push(Use {
                            target,
                            kind: UseKind::Macro,
                            span: ident.span(),
                            tokens: None,
                        });
                    }
                }
                TokenTree::Group(group) => self.scan_tokens(group.stream()),
                TokenTree::Literal(literal) => {
                    if let Ok(syn::Lit::Str(s)) = syn::parse2::<syn::Lit>(literal.to_token_stream())
                    {
                        self.record_format_names(&s.value(), literal.span());
                    }
                }
                TokenTree::Punct(_) => {}
            }
        }
    }
}

/// A name that may be a variable from outside the block: Rust's naming convention gives
/// constants, statics, types and variants upper-case names.
fn outer_candidate(name: &str) -> bool {
    let first = name.trim_start_matches("r#").chars().next();
    first.is_some_and(|c| c.is_lowercase() || c == '_') && name != "self" && name != "_"
}

/// `a, b, c` or `a; n` (as in `vec![x; n]`), when the tokens are expressions.
fn parse_macro_args(tokens: TokenStream) -> Option<Vec<Expr>> {
    let list = |input: ParseStream| {
        Punctuated::<Expr, Token![,]>::parse_terminated(input).map(|p| p.into_iter().collect())
    };
    let repeat = |input: ParseStream| {
        let value: Expr = input.parse()?;
        input.parse::<Token![;]>()?;
        let count: Expr = input.parse()?;
        Ok(vec![value, count])
    };
    list.parse2(tokens.clone())
        .or_else(|_| repeat.parse2(tokens))
        .ok()
}

fn is_punct(token: &TokenTree, c: char) -> bool {
    matches!(token, TokenTree::Punct(p) if p.as_char() == c)
}

/// Names a format string uses: `{name}`, `{name:...}`, and `name$` widths and precisions.
pub(super) fn format_string_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            continue;
        }
        let Some(close) = rest.find('}') else { break };
        let spec = &rest[..close];
        rest = &rest[close + 1..];
        let (argument, format) = spec.split_once(':').unwrap_or((spec, ""));
        let argument = argument.trim();
        if is_identifier(argument) {
            names.push(argument.to_string());
        }
        for (index, _) in format.match_indices('$') {
            let before = &format[..index];
            let start = before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            if is_identifier(&before[start..]) {
                names.push(before[start..].to_string());
            }
        }
    }
    names
}

fn is_identifier(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_alphanumeric() || c == '_')
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
        if let Some((target, ident)) = self.path_target(expr) {
            let kind = if ctx == Ctx::Value {
                UseKind::ByValue
            } else {
                UseKind::Place
            };
            return self.use_target(expr, target, ident, kind);
        }
        match expr {
            Expr::Reference(r) => {
                if let Some((target, ident)) = self.path_target(&r.expr) {
                    let kind = if r.mutability.is_some() {
                        UseKind::MutRef
                    } else {
                        UseKind::SharedRef
                    };
                    let tokens = r.to_token_stream();
                    self.use_target(&mut r.expr, target, ident, kind);
                    if let Some(last) = self.uses.last_mut() {
                        last.tokens = Some(tokens);
                    }
                } else {
                    self.visit_with(Ctx::Place, &mut r.expr);
                }
            }
            Expr::Index(index) => {
                if let Some((target, ident)) = self.path_target(&index.expr) {
                    self.use_target(&mut index.expr, target, ident, UseKind::IndexBase);
                } else {
                    self.visit_with(Ctx::Place, &mut index.expr);
                }
                self.visit_with(Ctx::Value, &mut index.index);
            }
            Expr::Call(call) => {
                // A callee is a binding (a closure) or an item: never an outer variable.
                match self.path_target(&call.func) {
                    Some((Target::Outer(_), _)) => {}
                    _ => self.visit_with(Ctx::Place, &mut call.func),
                }
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
            Expr::Tuple(tuple) => tuple
                .elems
                .iter_mut()
                .for_each(|e| self.visit_with(Ctx::Value, e)),
            Expr::Array(array) => array
                .elems
                .iter_mut()
                .for_each(|e| self.visit_with(Ctx::Value, e)),
            Expr::Repeat(repeat) => {
                self.visit_with(Ctx::Value, &mut repeat.expr);
                self.visit_with(Ctx::Value, &mut repeat.len);
            }
            Expr::Paren(paren) => self.visit_with(ctx, &mut paren.expr),
            Expr::Group(group) => self.visit_with(ctx, &mut group.expr),
            Expr::Try(t) => self.visit_with(Ctx::Value, &mut t.expr),
            Expr::Struct(s) => {
                for field in &mut s.fields {
                    let shorthand = field.colon_token.is_none();
                    self.visit_with(Ctx::Value, &mut field.expr);
                    // `S { x }` prints only the member: spell the rewritten value out.
                    if shorthand && !matches!(&field.expr, Expr::Path(_)) {
                        field.colon_token = Some(Default::default());
                    }
                }
                if let Some(rest) = &mut s.rest {
                    self.visit_with(Ctx::Place, rest);
                }
            }
            Expr::Assign(assign) => {
                self.visit_assignee(&mut assign.left);
                self.visit_with(Ctx::Value, &mut assign.right);
            }
            Expr::Binary(binary) if is_compound_assignment(&binary.op) => {
                if let Some((target, ident)) = self.path_target(&binary.left) {
                    self.use_target(&mut binary.left, target, ident, UseKind::Assigned);
                } else {
                    self.visit_with(Ctx::Place, &mut binary.left);
                }
                self.visit_with(Ctx::Value, &mut binary.right);
            }
            Expr::Closure(_) => {
                let is_move = matches!(expr, Expr::Closure(c) if c.capture.is_some());
                let visit = |this: &mut Self, expr: &mut Expr| {
                    let Expr::Closure(closure) = expr else { return };
                    let mut params = HashSet::new();
                    for input in &closure.inputs {
                        let mut names = Vec::new();
                        pattern_idents(input, &mut names);
                        params.extend(names);
                    }
                    this.scopes.push(params);
                    this.in_body(is_move, |this| {
                        this.visit_with(Ctx::Value, &mut closure.body)
                    });
                    this.scopes.pop();
                };
                if is_move {
                    self.hoist_move_captures(expr, visit);
                } else {
                    visit(self, expr);
                }
            }
            Expr::Async(_) => {
                let is_move = matches!(expr, Expr::Async(a) if a.capture.is_some());
                let visit = |this: &mut Self, expr: &mut Expr| {
                    let Expr::Async(block) = expr else { return };
                    this.async_depth += 1;
                    this.in_body(is_move, |this| {
                        this.visit_block_with(Ctx::Value, &mut block.block)
                    });
                    this.async_depth -= 1;
                };
                if is_move {
                    self.hoist_move_captures(expr, visit);
                } else {
                    visit(self, expr);
                }
            }
            Expr::Block(block) => {
                self.labeled(block.label.as_ref(), |this| {
                    this.visit_block_with(ctx, &mut block.block)
                });
            }
            Expr::Unsafe(block) => self.visit_block_with(ctx, &mut block.block),
            Expr::Const(block) => self.visit_block_with(ctx, &mut block.block),
            Expr::If(if_expr) => {
                // `if let` names are in scope in the condition's rest and the first branch.
                self.scopes.push(HashSet::new());
                self.visit_with(Ctx::Place, &mut if_expr.cond);
                self.visit_block_with(ctx, &mut if_expr.then_branch);
                self.scopes.pop();
                if let Some((_, otherwise)) = &mut if_expr.else_branch {
                    self.visit_with(ctx, otherwise);
                }
            }
            Expr::Match(m) => {
                self.visit_with(Ctx::Place, &mut m.expr);
                for arm in &mut m.arms {
                    self.scopes.push(HashSet::new());
                    self.bind_pattern(&arm.pat);
                    if let Some((_, guard)) = &mut arm.guard {
                        self.visit_with(Ctx::Place, guard);
                    }
                    self.visit_with(ctx, &mut arm.body);
                    self.scopes.pop();
                }
            }
            Expr::Let(l) => {
                self.visit_with(Ctx::Place, &mut l.expr);
                self.bind_pattern(&l.pat);
            }
            Expr::ForLoop(for_loop) => {
                self.visit_with(Ctx::Value, &mut for_loop.expr);
                self.labeled(for_loop.label.as_ref(), |this| {
                    this.scopes.push(HashSet::new());
                    this.bind_pattern(&for_loop.pat);
                    this.loop_depth += 1;
                    this.visit_block_with(Ctx::Value, &mut for_loop.body);
                    this.loop_depth -= 1;
                    this.scopes.pop();
                });
            }
            Expr::While(while_loop) => {
                self.labeled(while_loop.label.as_ref(), |this| {
                    this.scopes.push(HashSet::new());
                    this.visit_with(Ctx::Place, &mut while_loop.cond);
                    this.loop_depth += 1;
                    this.visit_block_with(Ctx::Value, &mut while_loop.body);
                    this.loop_depth -= 1;
                    this.scopes.pop();
                });
            }
            Expr::Loop(loop_expr) => {
                self.labeled(loop_expr.label.as_ref(), |this| {
                    this.loop_depth += 1;
                    this.visit_block_with(Ctx::Value, &mut loop_expr.body);
                    this.loop_depth -= 1;
                });
            }
            Expr::Return(r) => {
                if self.closure_depth == 0 && self.reporting() {
                    self.errors.push(
                        first_span(&*expr),
                        "`return` is not supported in `dag!`: every statement is a graph node; \
                         compute the value in the tail expression instead",
                    );
                    return;
                }
                if let Some(value) = &mut r.expr {
                    self.visit_with(Ctx::Value, value);
                }
            }
            Expr::Break(b) => {
                let known = match &b.label {
                    Some(label) => self.labels.contains(&label.ident.to_string()),
                    None => self.loop_depth > 0,
                };
                if !known && self.reporting() {
                    self.errors.push(
                        first_span(&*expr),
                        "`break` is not supported in `dag!` outside a loop or labeled block of your own",
                    );
                    return;
                }
                if let Some(value) = &mut b.expr {
                    self.visit_with(Ctx::Value, value);
                }
            }
            Expr::Continue(_) if self.loop_depth == 0 && self.reporting() => {
                self.errors.push(
                    first_span(&*expr),
                    "`continue` is not supported in `dag!` outside a loop of your own",
                );
            }
            Expr::Await(_) if self.async_depth == 0 && self.reporting() => {
                self.errors.push(
                    first_span(&*expr),
                    "`.await` is not supported in `dag!`: tasks run on worker threads, not in an async runtime",
                );
            }
            Expr::Yield(_) if self.reporting() => {
                self.errors
                    .push(first_span(&*expr), "`yield` is not supported in `dag!`");
            }
            Expr::Macro(m) => self.visit_macro_mut(&mut m.mac),
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_block_mut(&mut self, block: &mut syn::Block) {
        self.visit_block_with(Ctx::Value, block);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        // Macro tokens are never rewritten: every binding they name is owned by the node.
        if self.reach.is_none() {
            self.record_macro(mac.tokens.clone());
        }
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
    fn finds_format_string_names() {
        assert_eq!(
            format_string_names("{a} {b:?} {{c}} {0} {}"),
            vec!["a", "b"]
        );
        assert_eq!(format_string_names("{width:>8}"), vec!["width"]);
        assert_eq!(
            format_string_names("{:w$} {:.p$} {x:>w2$.p2$}"),
            vec!["w", "p", "x", "w2", "p2"]
        );
    }
}
