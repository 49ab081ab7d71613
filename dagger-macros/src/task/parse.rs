//! Parses `#[task(options)]` and the function it is on.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, LitStr, Meta, Token};

use crate::diag::Errors;

/// The valid options, as listed in error messages.
pub(super) const OPTIONS: &str = "expected one of: `name`, `cuda`";

pub(super) struct TaskArgs {
    pub(super) name: Option<LitStr>,
    /// `cuda`: the task runs on a GPU stream that the runtime lends it.
    pub(super) cuda: Option<proc_macro2::Span>,
}

pub(super) struct TaskFn {
    pub(super) args: TaskArgs,
    pub(super) function: ItemFn,
}

pub(super) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<TaskFn> {
    let mut errors = Errors::default();
    let args = parse_args(args, &mut errors);
    let function = match syn::parse2::<ItemFn>(item) {
        Ok(function) => Some(function),
        Err(error) => {
            errors.push(
                error.span(),
                "`#[task]` applies to free functions only; put it on a `fn` item",
            );
            None
        }
    };
    errors.finish()?;
    Ok(TaskFn {
        args,
        function: function.expect("checked above"),
    })
}

fn parse_args(args: TokenStream, errors: &mut Errors) -> TaskArgs {
    let mut parsed = TaskArgs {
        name: None,
        cuda: None,
    };
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(error) => {
            errors.push(
                error.span(),
                format_args!("invalid `#[task]` options: {error}; {OPTIONS}"),
            );
            return parsed;
        }
    };
    for meta in metas {
        let path = meta.path();
        if path.is_ident("name") {
            let value = match &meta {
                Meta::NameValue(nv) => match &nv.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => Some(lit.clone()),
                    other => {
                        errors.push(
                            syn::spanned::Spanned::span(other),
                            "`name` takes a string literal: `#[task(name = \"my-task\")]`",
                        );
                        None
                    }
                },
                _ => {
                    errors.push(
                        syn::spanned::Spanned::span(&meta),
                        "`name` needs a value: `#[task(name = \"my-task\")]`",
                    );
                    None
                }
            };
            if parsed.name.is_some() {
                errors.push(
                    syn::spanned::Spanned::span(path),
                    "duplicate option `name`; give it once",
                );
            } else {
                parsed.name = value;
            }
        } else if path.is_ident("cuda") {
            let span = syn::spanned::Spanned::span(path);
            if !matches!(meta, Meta::Path(_)) {
                errors.push(
                    syn::spanned::Spanned::span(&meta),
                    "`cuda` takes no value: write `#[task(cuda)]`",
                );
            } else if parsed.cuda.is_some() {
                errors.push(span, "duplicate option `cuda`; give it once");
            } else {
                parsed.cuda = Some(span);
            }
        } else {
            let shown = quote::ToTokens::to_token_stream(path)
                .to_string()
                .replace(' ', "");
            errors.push(
                syn::spanned::Spanned::span(path),
                format_args!("unknown option `{shown}` for `#[task]`; {OPTIONS}"),
            );
        }
    }
    parsed
}
