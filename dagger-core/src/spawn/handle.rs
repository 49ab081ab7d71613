//! `Handle<T>`: the future result of a spawned task.

use std::marker::PhantomData;
use std::time::Duration;

use super::task::{take_value, Header, TaskRef};
use crate::error::Error;
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

/// Rounds a waiting worker keeps looking for work before it starts to sleep.
const SPIN_ROUNDS: u32 = 64;

/// Blocks until `header`'s task is done. A worker thread runs other tasks meanwhile, so
/// tasks that wait for tasks (recursive spawning) cannot starve the pool.
pub(crate) fn wait_for(header: &Header) {
    if header.is_done() {
        return;
    }
    if rayon::current_thread_index().is_some() {
        let mut subscribed = false;
        let mut idle = 0u32;
        while !header.is_done() {
            // This worker's own ready tasks first (newest first), then any rayon job.
            if let Some(task) = super::queue::pop_local() {
                super::task::run_chain(task);
                idle = 0;
                continue;
            }
            // Time passes from here on: the next task reads the clock afresh.
            crate::observe::forget_last_end();
            if let Some(rayon::Yield::Executed) = rayon::yield_now() {
                idle = 0;
                continue;
            }
            // Nothing to run. Stay ready to steal for a while (work that becomes ready on
            // another worker is not announced to this thread), then sleep in growing steps.
            idle += 1;
            if idle <= SPIN_ROUNDS {
                std::thread::yield_now();
                continue;
            }
            if !subscribed {
                subscribed = true;
                if !header.subscribe_thread(std::thread::current()) {
                    return;
                }
            }
            // Woken when the task is done; the timeout lets it pick up new work meanwhile.
            let step = u64::from(idle - SPIN_ROUNDS).min(20) * 10;
            std::thread::park_timeout(Duration::from_micros(step));
        }
    } else {
        if !header.subscribe_thread(std::thread::current()) {
            return;
        }
        while !header.is_done() {
            std::thread::park();
        }
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
