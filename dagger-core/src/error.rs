//! The error type of every fallible dagger operation.

use std::fmt;
use std::sync::Arc;

use crate::task::Location;

/// A boxed error from a task: any `std::error::Error`, `String` or `&str` converts into it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a graph or the runtime. Cheap to clone: one failure is reported to
/// every task that depended on it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A task returned `Err` (through `?` in `dag!`, or from a fallible spawned task).
    TaskFailed {
        /// The task's name.
        task: &'static str,
        /// Where the task is in the source.
        location: Location,
        /// The task's own error (also returned by [`source`](std::error::Error::source)).
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A task panicked; the panic was caught and the runtime keeps working.
    TaskPanicked {
        /// The task's name.
        task: &'static str,
        /// Where the task is in the source.
        location: Location,
        /// The panic message.
        message: String,
    },
    /// A task did not run because a task it depends on failed or was cancelled.
    DependencyFailed {
        /// The task that did not run.
        task: &'static str,
        /// Where it was spawned.
        location: Location,
        /// The root cause: the failure of the first task in the chain.
        cause: Box<Error>,
    },
    /// A task was cancelled before it started.
    Cancelled {
        /// The cancelled task.
        task: &'static str,
        /// Where it was spawned.
        location: Location,
    },
    /// An API was used in a way it does not support (for example, one data object
    /// declared twice with a write in one region task).
    InvalidUse(String),
    /// A runtime setting is invalid.
    Config(String),
    /// The worker threads could not be started.
    ThreadPool(String),
    /// A trace could not be drawn or written.
    Trace(String),
    /// An accelerator (a CUDA device) is missing, out of memory or failed; the message
    /// says which device, what was attempted and what to do.
    Device(String),
}

impl Error {
    /// The name of the task the error is about, when a task is involved.
    pub fn task(&self) -> Option<&'static str> {
        match self {
            Error::TaskFailed { task, .. }
            | Error::TaskPanicked { task, .. }
            | Error::DependencyFailed { task, .. }
            | Error::Cancelled { task, .. } => Some(task),
            _ => None,
        }
    }

    /// Where that task is, when a task is involved.
    pub fn location(&self) -> Option<Location> {
        match self {
            Error::TaskFailed { location, .. }
            | Error::TaskPanicked { location, .. }
            | Error::DependencyFailed { location, .. }
            | Error::Cancelled { location, .. } => Some(*location),
            _ => None,
        }
    }

    /// The failure that started it all: for [`Error::DependencyFailed`] the root cause,
    /// otherwise the error itself.
    pub fn root_cause(&self) -> &Error {
        match self {
            Error::DependencyFailed { cause, .. } => cause.root_cause(),
            other => other,
        }
    }

    /// Whether the root cause is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.root_cause(), Error::Cancelled { .. })
    }

    /// This error, as seen by a task that depended on the one that failed.
    pub(crate) fn for_dependent(&self, task: &'static str, location: Location) -> Error {
        Error::DependencyFailed {
            task,
            location,
            cause: Box::new(self.root_cause().clone()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TaskFailed {
                task,
                location,
                source,
            } => write!(f, "task `{task}` at {location} failed: {source}"),
            Error::TaskPanicked {
                task,
                location,
                message,
            } => {
                write!(f, "task `{task}` at {location} panicked: {message}")
            }
            Error::DependencyFailed {
                task,
                location,
                cause,
            } => {
                write!(
                    f,
                    "task `{task}` at {location} did not run because an input failed: {cause}"
                )
            }
            Error::Cancelled { task, location } => {
                write!(f, "task `{task}` at {location} was cancelled")
            }
            Error::InvalidUse(message) => write!(f, "invalid use: {message}"),
            Error::Config(message) => write!(f, "invalid runtime configuration: {message}"),
            Error::ThreadPool(message) => {
                write!(f, "could not start the worker threads: {message}")
            }
            Error::Trace(message) => write!(f, "trace export failed: {message}"),
            Error::Device(message) => write!(f, "device error: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::TaskFailed { source, .. } => Some(&**source),
            Error::DependencyFailed { cause, .. } => Some(&**cause),
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
