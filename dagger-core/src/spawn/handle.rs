//! `Handle<T>`: the future result of a spawned task.

use std::marker::PhantomData;

use crate::error::Error;
use crate::runtime::task::{take_value, Header, TaskRef};
use crate::runtime::wait::wait_for;
use crate::task::Location;

/// The result of a spawned task, available once it has run. Cloning is cheap (the
/// result is shared); passing a handle to `spawn_with` makes it an input of another task.
pub struct Handle<T> {
    pub(crate) task: TaskRef,
    pub(crate) value: PhantomData<T>,
}

impl<T> Handle<T> {
    /// The handle of a task whose value type is `T`.
    pub(crate) fn of(task: TaskRef) -> Self {
        Handle {
            task,
            value: PhantomData,
        }
    }
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle::of(self.task.clone())
    }
}

impl<T> std::fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header = self.task.header();
        f.debug_struct("Handle")
            .field("task", &header.info.name())
            .field("location", &header.info.location())
            .field("ready", &header.is_done())
            .finish()
    }
}

impl<T: Send + Sync + 'static> Handle<T> {
    /// Whether the task has finished (successfully or not).
    pub fn is_ready(&self) -> bool {
        self.task.header().is_done()
    }

    /// Blocks until the task has finished; returns its failure, if it failed.
    pub fn wait(&self) -> Result<(), Error> {
        let header = self.task.header();
        wait_for(header);
        match header.failure() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Blocks until the task has finished and returns a reference to its value.
    pub fn fetch_ref(&self) -> Result<&T, Error> {
        self.wait()?;
        // SAFETY: the task is done (`wait` saw `DONE` with Acquire) and succeeded, so the
        // value is stored and only a unique handle could take it; this one is borrowed.
        Ok(unsafe { (*self.task.value::<T>().get()).as_ref() }
            .expect("a finished task has its value"))
    }

    /// Blocks until the task has finished and returns its value: moved out when nothing
    /// else refers to the task any more (no other handle, no pending dependent, and the
    /// task itself done releasing), cloned otherwise.
    pub fn fetch(self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.wait()?;
        let mut this = self;
        Ok(this.take_or_clone())
    }

    /// The value of a finished, successful task: moved out when no other handle or task
    /// refers to it (the handle is left empty), cloned otherwise.
    pub(crate) fn take_or_clone(&mut self) -> T
    where
        T: Clone,
    {
        // SAFETY: done and successful (the caller's precondition), of value type `T`.
        match unsafe { take_value::<T>(&mut self.task) } {
            Some(value) => value,
            // SAFETY: as above; a shared read.
            None => unsafe { (*self.task.value::<T>().get()).as_ref() }
                .expect("a finished task has its value")
                .clone(),
        }
    }

    /// Cancels the task if it has not started: it will never run, and tasks that depend
    /// on it fail with [`Error::Cancelled`] as their root cause. Returns whether it did.
    /// A task that a worker waits for may already be taken on by that worker (it runs the
    /// task's inputs, then the task), and then counts as started.
    pub fn cancel(&self) -> bool {
        self.task.cancel()
    }

    /// The task's name.
    pub fn name(&self) -> &'static str {
        self.task.header().info.name()
    }

    /// Where the task was spawned.
    pub fn location(&self) -> Location {
        self.task.header().info.location()
    }

    pub(crate) fn header(&self) -> &Header {
        self.task.header()
    }
}
