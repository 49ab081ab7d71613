//! GPU results for dynamic tasks: a handle that becomes ready when a GPU operation is
//! done, completed by the device's progress thread (see `progress`), so that no CPU
//! worker waits for the GPU and a device fault fails the handle instead of hanging it.

use dagger_core::{Error, Handle};

use crate::access::Streams;
use crate::buffer::{DeviceBuffer, Element, HostCopy};
use crate::stream::Stream;

/// Calls `then(Ok(()))` once everything queued on `stream` so far is done, or
/// `then(Err(Error::Device(..)))` if the device fails first. `then` runs as a task of the
/// default runtime (so it may call CUDA, block, or wait for handles); if that runtime
/// cannot be reached, on the device's progress thread. If the point cannot be recorded,
/// `then` gets the error at once, on this thread.
pub fn when_done(stream: &Stream, then: impl FnOnce(Result<(), Error>) + Send + 'static) {
    let gpu = stream.gpu();
    let _ = gpu.bind();
    match gpu.record(stream.id()) {
        Ok(point) => gpu.inner.progress.watch(
            point,
            Box::new(move |outcome| match dagger_core::default_runtime() {
                // Not on the progress thread: a `then` that waits for another completion
                // would wait for itself.
                Ok(runtime) => drop(runtime.spawn(move || then(outcome))),
                Err(_) => then(outcome),
            }),
        ),
        Err(error) => then(Err(error)),
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
