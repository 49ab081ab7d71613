//! Procedural macros of dagger. Use them through the `dagger` crate, whose docs are the
//! manual; generated code refers only to `::dagger::__private`.

mod dag;
mod diag;
mod task;

use proc_macro::TokenStream;

/// Makes a function a task: it stays callable as before and becomes a graph node type.
/// See the `dagger` crate documentation.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    task::attribute(args.into(), item.into()).into()
}

/// Builds a task graph from a block with sequential semantics, checked at compile time.
/// See the `dagger` crate documentation.
#[proc_macro]
pub fn dag(input: TokenStream) -> TokenStream {
    dag::macro_call(input.into()).into()
}
