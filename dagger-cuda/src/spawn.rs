//! GPU results for dynamic tasks: a handle that becomes ready when a GPU operation is
//! done, completed by the device's progress thread (see `progress`), so that no CPU
//! worker waits for the GPU and a device fault fails the handle instead of hanging it.

use dagger_core::{Error, Handle};

use crate::access::Streams;
use crate::buffer::{DeviceBuffer, Element, HostCopy};
use crate::progress::Then;
use crate::stream::Stream;

/// Calls `then(Ok(()))` once everything queued on `stream` so far is done, or
/// `then(Err(Error::Device(..)))` if the device fails first. `then` runs as a task of the
/// caller's runtime (the one whose worker calls this, else the default one), so it may
/// call CUDA and wait for handles. It is called exactly once: if its task cannot run (no
/// runtime can be reached), it gets that error.
pub fn when_done(stream: &Stream, then: impl FnOnce(Result<(), Error>) + Send + 'static) {
    let (landed, promise) = dagger_core::promise::<Result<(), Error>>();
    let then = Once(Some(Box::new(then)));
    let _detached = dagger_core::spawn_with(&landed, move |outcome: &Result<(), Error>| {
        then.call(outcome.clone())
    });
    let gpu = stream.gpu();
    match gpu.record(stream.id()) {
        Ok(point) => gpu.inner.progress.watch(
            point,
            // On the progress thread: only hands the outcome to the runtime.
            Box::new(move |outcome| promise.complete_on_worker(Ok(outcome))),
        ),
        Err(error) => {
            promise.complete(Ok(Err(error)));
        }
    }
}

/// A continuation called exactly once: by its task, or, if the task is dropped without
/// running, with the reason.
struct Once(Option<Then>);

impl Once {
    fn call(mut self, outcome: Result<(), Error>) {
        if let Some(then) = self.0.take() {
            then(outcome);
        }
    }
}

impl Drop for Once {
    fn drop(&mut self) {
        if let Some(then) = self.0.take() {
            then(Err(Error::InvalidUse(
                "the task that was to run a `when_done` continuation could not run \
                 (its runtime could not be reached)"
                    .into(),
            )));
        }
    }
}

/// Copies the buffer behind `buffer` to the host once it is ready. The handle becomes
/// ready when the data has landed in host memory; tasks that depend on it then run. No
/// CPU thread waits for the copy meanwhile; a device fault fails the handle.
#[track_caller]
pub fn spawn_download<T: Element>(buffer: &Handle<DeviceBuffer<T>>) -> Handle<HostCopy<T>> {
    let (copy, promise) = dagger_core::promise::<HostCopy<T>>();
    dagger_core::spawn_with(buffer, move |buffer: &DeviceBuffer<T>| {
        let gpu = buffer.gpu().clone();
        match gpu.download(buffer) {
            Err(error) => {
                promise.complete(Err(error));
            }
            Ok(host) => {
                let point = host.done_point();
                gpu.inner.progress.watch(
                    point,
                    Box::new(move |done| promise.complete_on_worker(done.map(|()| host))),
                );
            }
        }
    });
    copy
}
