//! Rejects functions that cannot be graph nodes, each with what to do instead.

use syn::spanned::Spanned;
use syn::FnArg;

use super::parse::TaskFn;
use crate::diag::Errors;

pub(super) fn validate(task: &TaskFn) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &task.function.sig;
    if let Some(name) = &task.args.name {
        if name.value().trim().is_empty() {
            errors.push(
                name.span(),
                "a task name cannot be empty; write `#[task(name = \"my-task\")]`",
            );
        }
    }
    if let Some(token) = &sig.asyncness {
        errors.push(
            token.span(),
            "`#[task]` does not support `async fn`: tasks run on worker threads; make it a plain `fn`",
        );
    }
    if let Some(token) = &sig.unsafety {
        errors.push(
            token.span(),
            "`#[task]` does not support `unsafe fn`: the graph calls tasks from safe code; \
             make it safe and put the `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.push(
            abi.span(),
            "`#[task]` does not support `extern` functions; remove the ABI",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(
            variadic.span(),
            "`#[task]` does not support variadic functions",
        );
    }
    for input in &sig.inputs {
        if let FnArg::Receiver(receiver) = input {
            errors.push(
                receiver.self_token.span(),
                "`#[task]` does not support methods (`self`): tasks are free functions; \
                 move the body into a free `fn` that takes the value as a parameter",
            );
        }
    }
    if let Some(cuda) = task.args.cuda {
        validate_cuda(task, cuda, &mut errors);
    }
    errors.finish()
}

/// A `cuda` task's first parameter receives the stream (`stream: &Stream`), and it
/// returns a `Result` (finding a device can fail).
fn validate_cuda(task: &TaskFn, cuda: proc_macro2::Span, errors: &mut Errors) {
    let sig = &task.function.sig;
    match sig.inputs.first() {
        Some(FnArg::Typed(first)) if matches!(*first.ty, syn::Type::Reference(_)) => {}
        Some(other) => errors.push(
            other.span(),
            "the first parameter of a `#[task(cuda)]` function receives its stream: \
             write `stream: &dagger::cuda::Stream` first",
        ),
        None => errors.push(
            sig.paren_token.span.join(),
            "a `#[task(cuda)]` function takes its stream first: \
             add `stream: &dagger::cuda::Stream`",
        ),
    }
    let returns_result = match &sig.output {
        syn::ReturnType::Type(_, ty) => match &**ty {
            syn::Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident.to_string().ends_with("Result")),
            _ => false,
        },
        syn::ReturnType::Default => false,
    };
    if !returns_result {
        let span = match &sig.output {
            syn::ReturnType::Type(_, ty) => ty.span(),
            syn::ReturnType::Default => cuda,
        };
        errors.push(
            span,
            "a `#[task(cuda)]` function returns a `Result` whose error converts from \
             `dagger::Error` (there may be no GPU): for example `Result<(), dagger::Error>`",
        );
    }
}
