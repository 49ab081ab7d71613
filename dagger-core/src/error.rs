//! The error type of every fallible dagger operation.

use crate::task::Location;

/// A boxed error from a task: any `std::error::Error`, `String` or `&str` converts into it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a graph or the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task returned `Err` through `?`.
    #[error("task `{task}` at {location} failed: {source}")]
    TaskFailed {
        /// The task's name.
        task: &'static str,
        /// Where the node is in the source.
        location: Location,
        /// The task's own error.
        #[source]
        source: BoxError,
    },
    /// A task panicked; the panic was caught and the runtime keeps working.
    #[error("task `{task}` at {location} panicked: {message}")]
    TaskPanicked {
        /// The task's name.
        task: &'static str,
        /// Where the node is in the source.
        location: Location,
        /// The panic message.
        message: String,
    },
    /// A runtime setting is invalid.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// The worker threads could not be started.
    #[error("could not start the worker threads: {0}")]
    ThreadPool(String),
    /// A trace could not be drawn or written.
    #[error("trace export failed: {0}")]
    Trace(String),
}

impl Error {
    /// The name of the task that failed, when a task failed.
    pub fn task(&self) -> Option<&'static str> {
        match self {
            Error::TaskFailed { task, .. } | Error::TaskPanicked { task, .. } => Some(task),
            _ => None,
        }
    }

    /// Where the failing node is, when a task failed.
    pub fn location(&self) -> Option<Location> {
        match self {
            Error::TaskFailed { location, .. } | Error::TaskPanicked { location, .. } => {
                Some(*location)
            }
            _ => None,
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
