//! `#[task]`: parse -> validate -> expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let parsed = parse::parse(args, item.clone());
    let checked = parsed.and_then(|task| validate::validate(&task).map(|()| task));
    match checked {
        Ok(task) => expand::expand(&task),
        // The function is still emitted, so one mistake gives one error, not a cascade.
        Err(error) => {
            let error = error.to_compile_error();
            quote! { #item #error }
        }
    }
}
