//! Emits the function unchanged, a braced struct of the same name that implements
//! `Task`, and (for non-generic tasks) its registry entry.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::{FnArg, ReturnType};

use super::parse::TaskFn;
use crate::diag::{line_column, source_text};

pub(super) fn expand(task: &TaskFn) -> TokenStream {
    let function = &task.function;
    let sig = &function.sig;
    let ident = &sig.ident;
    let vis = &function.vis;
    let name = match &task.args.name {
        Some(name) => name.value(),
        None => ident.to_string(),
    };
    let function_name = ident.to_string();
    let (line, column) = line_column(ident.span());
    let params = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(typed) => {
            let pat = source_text(typed.pat.to_token_stream());
            let ty = source_text(typed.ty.to_token_stream());
            Some(quote! { ::dagger::__private::Param::__new(#pat, #ty) })
        }
        FnArg::Receiver(_) => None,
    });
    let output = match &sig.output {
        ReturnType::Default => "()".to_owned(),
        ReturnType::Type(_, ty) => source_text(ty.to_token_stream()),
    };
    let generic = !sig.generics.params.is_empty();
    let doc = format!("The `#[task]` node type of the function `{function_name}`.");
    let registration = (!generic).then(|| {
        quote_spanned! {ident.span()=>
            ::dagger::__private::inventory::submit! {
                ::dagger::__private::RegisteredTask(&<#ident as ::dagger::__private::Task>::META)
            }
        }
    });
    let function = match task.args.cuda {
        Some(_) => cuda_function(function),
        None => function.to_token_stream(),
    };
    quote! {
        #function

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #ident {}

        impl ::dagger::__private::Task for #ident {
            const META: ::dagger::__private::TaskMeta = ::dagger::__private::TaskMeta::__new(
                #name,
                #function_name,
                ::core::module_path!(),
                ::dagger::__private::Location::__new(::core::file!(), #line, #column),
                &[#(#params),*],
                #output,
                #generic,
            );
        }

        #registration
    }
}

/// A `cuda` task without its first parameter: the body runs with a stream that the
/// runtime lends it (the next compute stream of the current device), so that callers,
/// `dag!` and `spawn` call it like any other task.
fn cuda_function(function: &syn::ItemFn) -> TokenStream {
    let mut outer = function.clone();
    let mut inputs = outer.sig.inputs.clone().into_iter();
    let Some(FnArg::Typed(stream)) = inputs.next() else {
        unreachable!("validated: a cuda task takes its stream first")
    };
    outer.sig.inputs = inputs.collect();
    let (pat, ty) = (&stream.pat, &stream.ty);
    let output = match &function.sig.output {
        ReturnType::Type(_, ty) => quote! { -> #ty },
        ReturnType::Default => unreachable!("validated: a cuda task returns a Result"),
    };
    let body = &function.block;
    outer.block = syn::parse_quote! {{
        ::dagger::__cuda_task_body!(move |#pat: #ty| #output #body)
    }};
    outer.to_token_stream()
}
