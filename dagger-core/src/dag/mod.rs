//! `Dag`: a `dag!` block ready to run, with its static graph.

pub(crate) mod execute;
pub(crate) mod slot;

use std::marker::PhantomData;

use crate::error::{BoxError, Error};
use crate::graph::Graph;
use crate::runtime::{default_runtime, Runtime};

/// The boxed body of a [`Dag`], for naming the type (`Dag<'env, T>`).
pub type BoxedBody<'env, T> = Box<dyn FnOnce(&Runtime) -> Result<T, Error> + 'env>;

/// A graph built by `dag! { ... }`: runs when asked, returns the block's tail value.
///
/// It may borrow values from the enclosing scope (`'env`): `run` blocks until the
/// graph has finished. The third parameter is the body's type; [`Dag::boxed`] turns any
/// `Dag` into the nameable `Dag<'env, T>`.
#[must_use = "a dag does nothing until it is run"]
pub struct Dag<'env, T, F = BoxedBody<'env, T>> {
    graph: &'static Graph,
    body: F,
    _env: PhantomData<fn(&'env ()) -> T>,
}

impl<'env, T, F> Dag<'env, T, F>
where
    F: FnOnce(&Runtime) -> Result<T, Error> + 'env,
{
    #[doc(hidden)]
    pub fn __new(graph: &'static Graph, body: F) -> Self {
        Dag {
            graph,
            body,
            _env: PhantomData,
        }
    }

    /// The graph's structure, known at compile time.
    pub fn graph(&self) -> &'static Graph {
        self.graph
    }

    /// Graphviz DOT of the graph's structure.
    pub fn to_dot(&self) -> String {
        self.graph.to_dot()
    }

    /// Runs the graph on the default runtime and waits for it.
    pub fn run(self) -> Result<T, Error> {
        self.run_on(default_runtime()?)
    }

    /// Runs the graph on `runtime` and waits for it.
    pub fn run_on(self, runtime: &Runtime) -> Result<T, Error> {
        (self.body)(runtime)
    }

    /// The same graph with its body boxed, so its type can be named: `Dag<'env, T>`.
    pub fn boxed(self) -> Dag<'env, T> {
        Dag {
            graph: self.graph,
            body: Box::new(self.body),
            _env: PhantomData,
        }
    }
}

impl<T, F> std::fmt::Debug for Dag<'_, T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dag")
            .field("nodes", &self.graph.nodes().len())
            .field("edges", &self.graph.edges().len())
            .finish()
    }
}

/// What `?` after a task call in `dag!` accepts: a `Result` whose error converts into
/// [`BoxError`] (any `std::error::Error + Send + Sync`, `String`, `&str`).
#[diagnostic::on_unimplemented(
    message = "`?` in `dag!` needs a task that returns `Result`, but this one returns `{Self}`",
    label = "this call does not return a `Result` that `?` can fail the graph with",
    note = "remove the `?`, or make the task return `Result<T, E>` where `E` converts into `Box<dyn Error + Send + Sync>`"
)]
pub trait NodeResult<T> {
    /// Converts into the node's result.
    fn into_node_result(self) -> Result<T, BoxError>;
}

impl<T, E: Into<BoxError>> NodeResult<T> for Result<T, E> {
    fn into_node_result(self) -> Result<T, BoxError> {
        self.map_err(Into::into)
    }
}

/// `?` on a task node: the task's `Result` as the node's result.
#[inline(always)]
pub fn node_result<T, R: NodeResult<T>>(result: R) -> Result<T, BoxError> {
    result.into_node_result()
}

/// The value a `dag!` statement's closure ends with. Nothing outside the generated code
/// makes one, so a `return` hidden in a macro cannot end a statement early (it does not
/// type-check) and skip the stores of the bindings the statement defines.
#[doc(hidden)]
pub struct StatementDone;
