//! Emits the static graph description and the body that runs it. Cannot fail: every
//! error was reported by `parse` or `analyze`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::visit_mut::VisitMut;
use syn::{Expr, Stmt};

use super::analyze::{Analysis, Hazard, Node};
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

    let slots = analysis
        .bindings
        .iter()
        .enumerate()
        .map(|(index, binding)| {
            let slot = slot_ident(index);
            match &binding.ty {
                Some(ty) => quote! { let #slot = ::dagger::__private::Slot::<#ty>::new(); },
                None => quote! { let #slot = ::dagger::__private::Slot::new(); },
            }
        });
    let node_cells = analysis
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| node_cell(&analysis, index, node));
    let node_refs = (0..analysis.nodes.len()).map(|index| {
        let node = node_ident(index);
        quote! { &#node as &dyn ::dagger::__private::RunNode }
    });
    let node_count = analysis.nodes.len();
    let tail_bindings = analysis.tail_bindings.iter().map(|&index| {
        let binding = &analysis.bindings[index];
        let slot = slot_ident(index);
        let ident = &binding.ident;
        let mutability = binding.mutable.then(|| quote!(mut));
        // SAFETY: every node has finished, so nothing else uses the slot.
        quote! {
            #[allow(unused_mut)]
            let #mutability #ident = unsafe { #slot.take() };
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
            ::dagger::__private::Dag::__new(
                &__DAGGER_GRAPH,
                |#runtime: &::dagger::__private::Runtime|
                    -> ::core::result::Result<_, ::dagger::__private::Error>
                {
                    #(#slots)*
                    #(#node_cells)*
                    let #counters = ::dagger::__private::new_counters::<#node_count>(&__DAGGER_GRAPH);
                    ::dagger::__private::execute(#runtime, &__DAGGER_GRAPH, &[#(#node_refs),*], &#counters)?;
                    #(#tail_bindings)*
                    ::core::result::Result::Ok(#tail)
                },
            )
        }
    }
}

/// One node: a closure that acquires its bindings, runs the statement, and stores the
/// bindings it defines.
fn node_cell(analysis: &Analysis, index: usize, node: &Node) -> TokenStream {
    let cell = node_ident(index);
    // SAFETY (all three): the node runs after every node it has an edge from, and the
    // edges order each exclusive access (Take, BorrowMut, put) after and before every
    // other access to that binding, so only shared guards ever coexist.
    let guards = node.reach.iter().map(|&(binding, reach)| {
        let slot = slot_ident(binding);
        let ident = &analysis.bindings[binding].ident;
        match reach {
            Reach::Borrow => quote! { let #ident = unsafe { #slot.borrow() }; },
            Reach::BorrowMut => quote! {
                #[allow(unused_mut)]
                let mut #ident = unsafe { #slot.borrow_mut() };
            },
            Reach::Take if analysis.bindings[binding].mutable => quote! {
                #[allow(unused_mut)]
                let mut #ident = unsafe { #slot.take() };
            },
            Reach::Take => quote! { let #ident = unsafe { #slot.take() }; },
        }
    });
    let body = statement_body(&node.statement.stmt, &node.statement.kind);
    let stores = node.defines.iter().map(|&binding| {
        let slot = slot_ident(binding);
        let ident = &analysis.bindings[binding].ident;
        // SAFETY: this node defines the binding, so no other node has touched it yet.
        quote! { unsafe { #slot.put(#ident) }; }
    });
    // Spanned at the statement, so that a value that cannot cross threads is reported
    // there rather than on the whole block.
    let span = node.statement.span;
    quote_spanned! {span=>
        #[allow(unreachable_code, clippy::let_unit_value, clippy::unit_arg)]
        let #cell = ::dagger::__private::NodeCell::new(
            || -> ::core::result::Result<(), ::dagger::__private::BoxError> {
                #(#guards)*
                #body
                #(#stores)*
                ::core::result::Result::Ok(())
            },
        );
    }
}

/// The statement as it runs in its node: patterns lose `mut` (the slot keeps the value)
/// and `?` after a task call goes through `node_result`.
fn statement_body(stmt: &Stmt, kind: &Kind) -> TokenStream {
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
        let uses = node.reach.iter().map(|&(b, reach)| {
            let mode = match reach {
                Reach::Borrow => quote!(Read),
                Reach::BorrowMut => quote!(Write),
                Reach::Take => quote!(Move),
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
