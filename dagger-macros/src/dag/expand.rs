//! Emits the static graph description and the body that runs it. Cannot fail: every
//! error was reported by `parse` or `analyze`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{Expr, Stmt};

use super::analyze::{Analysis, Hazard, Node, Origin};
use super::parse::Kind;
use super::uses::Reach;
use crate::diag::line_column;

fn slot_ident(binding: usize) -> Ident {
    // Mixed-site hygiene: the user's code cannot see or collide with these locals.
    format_ident!("__dagger_slot_{}", binding, span = Span::mixed_site())
}

fn node_ident(node: usize) -> Ident {
    format_ident!("__dagger_node_{}", node, span = Span::mixed_site())
}

pub(super) fn expand(analysis: Analysis) -> TokenStream {
    let graph = static_graph(&analysis);
    let runtime = Ident::new("__dagger_runtime", Span::mixed_site());
    let counters = Ident::new("__dagger_counters", Span::mixed_site());
    let private = quote!(::dagger::__private);

    // Each slot is made where its binding is declared, so that a value that is not `Send`
    // (or not `Sync`, when two nodes read it at once) is reported there.
    let slots = analysis
        .bindings
        .iter()
        .enumerate()
        .map(|(index, binding)| {
            let slot = slot_ident(index);
            let ident = &binding.ident;
            let span = ident.span();
            let annotation = binding.ty.as_ref().map(|ty| quote!(::<#ty, _>));
            let (empty, filled) = if binding.shared {
                (
                    quote_spanned!(span=> new_shared),
                    quote_spanned!(span=> filled_shared),
                )
            } else {
                (quote_spanned!(span=> new), quote_spanned!(span=> filled))
            };
            let slot_type = quote_spanned!(span=> ::dagger::__private::Slot);
            match binding.origin {
                Origin::Block => {
                    quote_spanned! {span=> let #slot = #slot_type #annotation :: #empty(); }
                }
                Origin::OuterOwned => {
                    quote_spanned! {span=> let #slot = #slot_type::#filled(#ident); }
                }
                Origin::OuterRef => {
                    quote_spanned! {span=> let #slot = #slot_type::#filled(&mut #ident); }
                }
            }
        });
    let node_cells = analysis
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| node_cell(&analysis, index, node));
    let node_refs = (0..analysis.nodes.len()).map(|index| {
        let node = node_ident(index);
        quote! { &#node as &dyn #private::RunNode }
    });
    let node_count = analysis.nodes.len();
    let tail_bindings = analysis.tail_bindings.iter().map(|&index| {
        let binding = &analysis.bindings[index];
        let slot = slot_ident(index);
        let ident = &binding.ident;
        let mutability = binding.mutable.then(|| quote!(mut));
        // SAFETY: every node has finished, so nothing else uses the slot (proof in
        // `dagger_core::dag::slot`).
        quote! {
            #[allow(unused_mut)]
            let #mutability #ident = unsafe { #slot.take() };
        }
    });
    let write_backs = analysis
        .bindings
        .iter()
        .enumerate()
        .filter(|(_, b)| b.write_back)
        .map(|(index, binding)| {
            let slot = slot_ident(index);
            let ident = &binding.ident;
            // SAFETY: every node has finished, so nothing else uses the slot.
            quote! {
                #[allow(unused_assignments)]
                if let ::core::option::Option::Some(value) = unsafe { #slot.take_if_present() } {
                    #ident = value;
                }
            }
        });
    let tail = analysis
        .tail
        .as_ref()
        .map(|tail| quote!(#tail))
        .unwrap_or_else(|| quote!(()));

    quote! {
        {
            #graph
            #private::Dag::__new(
                &__DAGGER_GRAPH,
                |#runtime: &#private::Runtime|
                    -> ::core::result::Result<_, #private::Error>
                {
                    #(#slots)*
                    #(#node_cells)*
                    let #counters = #private::new_counters::<#node_count>(&__DAGGER_GRAPH);
                    #private::execute(#runtime, &__DAGGER_GRAPH, &[#(#node_refs),*], &#counters)?;
                    #(#write_backs)*
                    #(#tail_bindings)*
                    ::core::result::Result::Ok(#tail)
                },
            )
        }
    }
}

/// One node: a closure that reaches its bindings, runs the statement, and stores the
/// bindings it defines.
///
/// Every `unsafe` here is one access of the module proof in `dagger_core::dag::slot`: the
/// edges give each access the exclusivity its `# Safety` section asks for (point 1), and
/// references reach the statement only through guards that are locals of this closure
/// (point 2): `let x = &*guard;` borrows the local, so nothing derived from `x` can
/// outlive the node.
fn node_cell(analysis: &Analysis, index: usize, node: &Node) -> TokenStream {
    let cell = node_ident(index);
    let mut acquire = Vec::new();
    let mut release = Vec::new();
    for &(binding, reach, first_use) in &node.reach {
        let slot = slot_ident(binding);
        let b = &analysis.bindings[binding];
        let ident = &b.ident;
        // The guard is named like the binding and shadowed by the reference at once, so
        // user code cannot name it, and a borrow that would outlive the node is reported
        // as "`x` does not live long enough".
        let guard = Ident::new(&ident.to_string(), first_use);
        let mutability = b.mutable.then(|| quote!(mut));
        // An outer variable held as `&mut`: the node reaches the variable itself.
        let deref = (b.origin == Origin::OuterRef).then(|| quote!(*));
        acquire.push(match reach {
            Reach::Read => quote_spanned! {first_use=>
                let #guard = unsafe { #slot.read() };
                let #ident = &*#deref #guard;
            },
            Reach::Write => quote_spanned! {first_use=>
                let mut #guard = unsafe { #slot.write() };
                let #ident = &mut *#deref #guard;
            },
            Reach::Take | Reach::Lend => quote! {
                #[allow(unused_mut)]
                let #mutability #ident = unsafe { #slot.take() };
            },
            Reach::Overwrite => TokenStream::new(),
        });
        if reach == Reach::Lend {
            let span = node.next_use.get(&binding).copied().unwrap_or(first_use);
            let value = Ident::new(&ident.to_string(), span.resolved_at(ident.span()));
            release.push(quote_spanned! {span=> unsafe { #slot.put(#value) }; });
        }
    }
    let overwrite = node.reach.iter().any(|r| r.1 == Reach::Overwrite);
    let body = statement_body(&node.statement.stmt, &node.statement.kind, overwrite);
    // What the statement hands back: the bindings it defines or overwrites.
    let output_bindings: Vec<usize> = node
        .defines
        .iter()
        .copied()
        .chain(
            node.reach
                .iter()
                .filter(|r| r.1 == Reach::Overwrite)
                .map(|r| r.0),
        )
        .collect();
    let outputs: Vec<&Ident> = output_bindings
        .iter()
        .map(|&binding| &analysis.bindings[binding].ident)
        .collect();
    let output_types = outputs.iter().map(|_| quote!(_));
    let stores = output_bindings.iter().map(|&binding| {
        let slot = slot_ident(binding);
        let ident = &analysis.bindings[binding].ident;
        quote! { unsafe { #slot.put(#ident) }; }
    });
    let done = Ident::new("__dagger_done", Span::mixed_site());
    // Spanned at the statement, so that a value that cannot cross threads is reported
    // there rather than on the whole block.
    let span = node.statement.span;
    // The statement runs in a closure of its own that must end with the private marker:
    // a `return` hidden in a macro cannot skip the stores (it does not type-check).
    quote_spanned! {span=>
        #[allow(
            unreachable_code,
            clippy::let_unit_value,
            clippy::unit_arg,
            clippy::borrow_deref_ref,
            clippy::explicit_auto_deref,
            clippy::needless_borrow,
            clippy::op_ref,
            clippy::needless_late_init,
            clippy::redundant_closure_call
        )]
        let #cell = ::dagger::__private::NodeCell::new(
            || -> ::core::result::Result<(), ::dagger::__private::BoxError> {
                #(#acquire)*
                let (#done, #(#outputs,)*) = (|| -> ::core::result::Result<
                    (::dagger::__private::StatementDone, #(#output_types,)*),
                    ::dagger::__private::BoxError,
                > {
                    #body
                    ::core::result::Result::Ok((::dagger::__private::StatementDone, #(#outputs,)*))
                })()?;
                let _ = #done;
                #(#release)*
                #(#stores)*
                ::core::result::Result::Ok(())
            },
        );
    }
}

/// The statement as it runs in its node: patterns lose `mut` (the slot keeps the value)
/// and `?` after a task call goes through `node_result`.
fn statement_body(stmt: &Stmt, kind: &Kind, overwrite: bool) -> TokenStream {
    let fallible = matches!(kind, Kind::Task { fallible: true, .. });
    let wrap = |expr: &Expr| -> TokenStream {
        match expr {
            Expr::Try(t) if fallible => {
                let call = &t.expr;
                let question = &t.question_token;
                let path = quote_spanned! {question.span=> ::dagger::__private::node_result };
                quote! { #path(#call) #question }
            }
            other => quote!(#other),
        }
    };
    match stmt {
        Stmt::Expr(Expr::Assign(assign), _) if overwrite => {
            // `x = value;` alone gives `x` a new value: a local of the statement.
            let target = &assign.left;
            quote! { let #target; #assign; }
        }
        Stmt::Local(local) => {
            let mut pat = local.pat.clone();
            StripMut.visit_pat_mut(&mut pat);
            let init = local.init.as_ref().map(|init| wrap(&init.expr));
            let attrs = &local.attrs;
            quote! { #(#attrs)* let #pat = #init; }
        }
        Stmt::Expr(expr, _) => {
            let expr = wrap(expr);
            quote! { #expr; }
        }
        other => quote!(#other),
    }
}

struct StripMut;

impl VisitMut for StripMut {
    fn visit_pat_ident_mut(&mut self, pat: &mut syn::PatIdent) {
        pat.mutability = None;
    }
}

fn static_graph(analysis: &Analysis) -> TokenStream {
    let private = quote!(::dagger::__private);
    let nodes = analysis.nodes.iter().map(|node| {
        let statement = &node.statement;
        let (kind, task) = match &statement.kind {
            Kind::Task { path, .. } => (
                quote!(#private::NodeKind::Task),
                quote!(::core::option::Option::Some(&<#path as #private::Task>::META)),
            ),
            Kind::Glue => (
                quote!(#private::NodeKind::Glue),
                quote!(::core::option::Option::None),
            ),
        };
        let defines = node
            .defines
            .iter()
            .map(|&b| access(analysis, b, quote!(Define)));
        let uses = node.reach.iter().map(|&(b, reach, _)| {
            let mode = match reach {
                Reach::Read => quote!(Read),
                Reach::Write | Reach::Lend => quote!(Write),
                Reach::Take => quote!(Move),
                Reach::Overwrite => quote!(Define),
            };
            access(analysis, b, mode)
        });
        let (line, column) = line_column(statement.span);
        let source = &statement.source;
        quote! {
            #private::Node::__new(
                #kind,
                #task,
                &[#(#defines,)* #(#uses),*],
                #private::Location::__new(::core::file!(), #line, #column),
                #source,
            )
        }
    });
    let edges = analysis.edges.iter().map(|edge| {
        let from = edge.from as u32;
        let to = edge.to as u32;
        let binding = analysis.bindings[edge.binding].ident.to_string();
        let hazard = match edge.hazard {
            Hazard::ReadAfterWrite => quote!(ReadAfterWrite),
            Hazard::WriteAfterRead => quote!(WriteAfterRead),
            Hazard::WriteAfterWrite => quote!(WriteAfterWrite),
        };
        quote! { #private::Edge::__new(#from, #to, #binding, #private::Hazard::#hazard) }
    });

    // The schedule: distinct predecessors and successors of each node.
    let count = analysis.nodes.len();
    let mut successors: Vec<Vec<u32>> = vec![Vec::new(); count];
    for edge in &analysis.edges {
        let list = &mut successors[edge.from];
        if !list.contains(&(edge.to as u32)) {
            list.push(edge.to as u32);
        }
    }
    let mut predecessors = vec![0u32; count];
    for list in &mut successors {
        list.sort_unstable();
        for &to in list.iter() {
            predecessors[to as usize] += 1;
        }
    }
    let mut offsets = Vec::with_capacity(count + 1);
    offsets.push(0u32);
    for list in &successors {
        offsets.push(offsets.last().copied().unwrap_or(0) + list.len() as u32);
    }
    let flat: Vec<u32> = successors.into_iter().flatten().collect();
    let roots: Vec<u32> = (0..count as u32)
        .filter(|&n| predecessors[n as usize] == 0)
        .collect();

    quote! {
        static __DAGGER_GRAPH: #private::Graph = #private::Graph::__new(
            &[#(#nodes),*],
            &[#(#edges),*],
            #private::Schedule::__new(&[#(#predecessors),*], &[#(#offsets),*], &[#(#flat),*], &[#(#roots),*]),
        );
    }
}

fn access(analysis: &Analysis, binding: usize, mode: TokenStream) -> TokenStream {
    let name = analysis.bindings[binding].ident.to_string();
    quote! { ::dagger::__private::Access::__new(#name, ::dagger::__private::AccessMode::#mode) }
}
