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
    errors.finish()
}
