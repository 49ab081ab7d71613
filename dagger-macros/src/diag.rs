//! Diagnostics shared by both macros: collecting every error before reporting
//! (so one run shows all mistakes), and reading source positions from spans.

use proc_macro2::{Span, TokenStream, TokenTree};

/// Collects errors; `finish` combines them into one.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    pub(crate) fn push_error(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        let mut errors = self.errors.into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        first.extend(errors);
        Err(first)
    }
}

/// The span of the first token of `item` (on stable Rust spans cannot be joined, so
/// this is where errors about a whole statement or expression point).
pub(crate) fn first_span(item: &impl quote::ToTokens) -> Span {
    item.to_token_stream()
        .into_iter()
        .next()
        .map(|t| t.span())
        .unwrap_or_else(Span::call_site)
}

/// Line and column (both from 1) where `span` starts; `(0, 0)` when unknown.
pub(crate) fn line_column(span: Span) -> (u32, u32) {
    let start = span.start();
    (
        start.line as u32,
        start.column as u32 + (start.line > 0) as u32,
    )
}

/// The source text of `tokens` on one line, with the original spacing between tokens
/// where positions are known, and rustc's token spacing otherwise.
pub(crate) fn source_text(tokens: TokenStream) -> String {
    let mut out = String::new();
    let mut previous_end: Option<(usize, usize)> = None;
    append_source(tokens, &mut out, &mut previous_end);
    out
}

fn append_source(tokens: TokenStream, out: &mut String, previous_end: &mut Option<(usize, usize)>) {
    for token in tokens {
        let span = token.span();
        let start = span.start();
        if let Some((line, column)) = *previous_end {
            if start.line == 0 || start.line != line || start.column != column {
                out.push(' ');
            }
        }
        match token {
            TokenTree::Group(group) => {
                // syn rebuilds groups, so their delimiter spans are not the original
                // brackets: lay out the inside the way rustfmt would.
                let (open, close, pad) = match group.delimiter() {
                    proc_macro2::Delimiter::Parenthesis => ("(", ")", ""),
                    proc_macro2::Delimiter::Brace => ("{", "}", " "),
                    proc_macro2::Delimiter::Bracket => ("[", "]", ""),
                    proc_macro2::Delimiter::None => ("", "", ""),
                };
                out.push_str(open);
                if !group.stream().is_empty() {
                    out.push_str(pad);
                    let mut inner_end = None;
                    append_source(group.stream(), out, &mut inner_end);
                    out.push_str(pad);
                }
                out.push_str(close);
            }
            other => out.push_str(&other.to_string()),
        }
        let end = span.end();
        *previous_end = Some((end.line, end.column));
    }
}
