//! `dag! { ... }`: parse -> analyze (bindings, uses, edges, errors) -> expand.

mod analyze;
mod expand;
mod parse;
mod uses;

use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::Errors;

pub(crate) fn macro_call(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let analysis = match parse::parse(input, &mut errors) {
        Ok(parsed) => Some(analyze::analyze(parsed, &mut errors)),
        Err(error) => {
            errors.push_error(error);
            None
        }
    };
    match (errors.finish(), analysis) {
        (Ok(()), Some(analysis)) => expand::expand(analysis),
        (Err(error), _) => failure(error),
        (Ok(()), None) => unreachable!("a parse failure is always recorded"),
    }
}

/// All errors at once; the expression diverges so that they cause no further errors.
fn failure(error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote! {{ #error; ::core::unreachable!() }}
}
