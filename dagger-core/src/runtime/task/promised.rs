//! Tasks without a job: promised tasks, completed from outside the runtime, and tasks
//! that failed before they could be spawned.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{boxed, finish, unbox, Cell, Header, Ready, TaskRef, VTable, DONE};
use crate::error::Error;
use crate::runtime::Shared;
use crate::task::TaskInfo;

/// A task completed from outside the runtime (a GPU callback, an I/O thread): it has no
/// job; [`complete`] stores its outcome and schedules its dependents.
#[repr(C)]
pub(crate) struct Promised<T> {
    cell: Cell<T>,
    shared: Arc<Shared>,
}

impl<T: Send + Sync + 'static> Promised<T> {
    const VTABLE: VTable = VTable {
        run: never_ready,
        input_done: no_inputs,
        shared: Self::shared,
        cancel: Self::cancel,
        runnable: |_| false,
        run_after_inputs: |_, _| false,
        free: Self::free,
    };

    /// Returns the handle's reference and the promise's.
    pub(crate) fn create(shared: Arc<Shared>, info: TaskInfo) -> (TaskRef, TaskRef) {
        let ptr = boxed(Promised {
            cell: Cell::<T>::new(Header::new(info, 2, &Self::VTABLE)),
            shared,
        })
        .cast::<Header>();
        (TaskRef { ptr }, TaskRef { ptr })
    }

    unsafe fn shared(ptr: NonNull<Header>) -> Option<NonNull<Shared>> {
        // SAFETY: the caller holds a reference; the header starts the task.
        let task = unsafe { ptr.cast::<Self>().as_ref() };
        Some(NonNull::from(&*task.shared))
    }

    unsafe fn free(ptr: NonNull<Header>) {
        // SAFETY: the last reference is gone; the task was made by `boxed`.
        unsafe { unbox(ptr.cast::<Self>()) }
    }

    unsafe fn cancel(ptr: NonNull<Header>) -> bool {
        // SAFETY: the caller holds a reference to a promised task of value type `T`.
        let cell = unsafe { ptr.cast::<Cell<T>>().as_ref() };
        let info = cell.header.info;
        // SAFETY: as above.
        unsafe {
            complete::<T>(
                cell,
                Err(Error::Cancelled {
                    task: info.name(),
                    location: info.location(),
                }),
            )
        }
    }
}

/// The runtime of a promised task.
pub(crate) fn promised_runtime<T: Send + Sync + 'static>(task: &TaskRef) -> Arc<Shared> {
    // SAFETY: only `Promise<T>` calls this, with its own promised task.
    let promised = unsafe { task.ptr.cast::<Promised<T>>().as_ref() };
    promised.shared.clone()
}

/// Stores a promised task's outcome (unless it was cancelled) and queues the dependents
/// that became ready. Returns whether the outcome was stored.
///
/// # Safety
/// `cell` is the start of a live promised task of value type `T`.
unsafe fn complete<T>(cell: &Cell<T>, outcome: Result<T, Error>) -> bool {
    if !cell.header.claim() {
        return false;
    }
    let value = match outcome {
        Ok(value) => Some(value),
        Err(error) => {
            cell.header.set_failure(error);
            None
        }
    };
    // SAFETY: this thread claimed the task just above.
    unsafe { finish(cell, value) }.queue_all();
    true
}

/// Completes the promised task `task` (of value type `T`) with `outcome`.
pub(crate) fn complete_promise<T: Send + Sync + 'static>(
    task: TaskRef,
    outcome: Result<T, Error>,
) -> bool {
    // SAFETY: `task` is a promised task of value type `T` (the caller's `Promise<T>`), and
    // the reference keeps it alive for the call.
    let cell = unsafe { task.ptr.cast::<Cell<T>>().as_ref() };
    // SAFETY: as above.
    let stored = unsafe { complete(cell, outcome) };
    drop(task);
    stored
}

unsafe fn never_ready(_: NonNull<Header>) -> Ready {
    unreachable!("dagger: a task without a job was made ready")
}

unsafe fn no_inputs(_: NonNull<Header>, _: Option<&Error>) -> bool {
    unreachable!("dagger: a task without inputs was notified")
}

/// A task that failed before it could be spawned (no runtime could be reached).
#[repr(C)]
struct Failed<T> {
    cell: Cell<T>,
}

impl<T: Send + Sync + 'static> Failed<T> {
    const VTABLE: VTable = VTable {
        run: never_ready,
        input_done: no_inputs,
        shared: |_| None,
        cancel: |_| false,
        runnable: |_| false,
        run_after_inputs: |_, _| false,
        free: Self::free,
    };

    unsafe fn free(ptr: NonNull<Header>) {
        // SAFETY: the last reference is gone; the task was made by `boxed`.
        unsafe { unbox(ptr.cast::<Self>()) }
    }
}

/// A task that already failed with `error`; returns the handle's reference.
pub(crate) fn failed<T: Send + Sync + 'static>(info: TaskInfo, error: Error) -> TaskRef {
    let header = Header::new(info, 1, &Failed::<T>::VTABLE);
    header.set_failure(error);
    header.state.store(DONE, Ordering::Release);
    header.close(drop);
    let task = boxed(Failed {
        cell: Cell::<T>::new(header),
    });
    TaskRef {
        ptr: task.cast::<Header>(),
    }
}
