//! GPU results for dynamic tasks: a handle that becomes ready when a GPU operation is
//! done, completed by a CUDA host callback, so that no CPU worker waits for the GPU.

use std::ffi::c_void;

use dagger_core::{Error, Handle};

use crate::buffer::{DeviceBuffer, Element, HostCopy};
use crate::error::driver;
use crate::stream::Stream;

type Callback = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// Calls `then(Ok(()))` once everything queued on `stream` so far is done, from a CUDA
/// driver thread; `then` must not call CUDA (queue work instead). If the callback cannot
/// be queued, `then(Err(..))` is called at once.
pub fn when_done(stream: &Stream, then: impl FnOnce(Result<(), Error>) + Send + 'static) {
    unsafe extern "C" fn trampoline(data: *mut c_void) {
        // SAFETY: `data` is the `Box<Callback>` leaked below, passed to CUDA once, and
        // CUDA calls each host function exactly once.
        let then = unsafe { Box::from_raw(data.cast::<Callback>()) };
        then(Ok(()));
    }
    if let Err(error) = stream.gpu().context().bind_to_thread() {
        then(Err(driver(error, stream.gpu().what("binding the context"))));
        return;
    }
    let boxed: Box<Callback> = Box::new(Box::new(then));
    let data = Box::into_raw(boxed).cast::<c_void>();
    // SAFETY: `trampoline` takes back ownership of `data` when CUDA calls it.
    let queued = unsafe {
        cudarc::driver::result::stream::launch_host_function(
            stream.cuda().cu_stream(),
            trampoline,
            data,
        )
    };
    if let Err(error) = queued {
        // SAFETY: CUDA refused the callback, so `data` is still ours.
        let then = unsafe { Box::from_raw(data.cast::<Callback>()) };
        then(Err(driver(
            error,
            stream.gpu().what("queueing a host callback"),
        )));
    }
}

/// Copies the buffer behind `buffer` to the host once it is ready. The handle becomes
/// ready when the data has landed in host memory; tasks that depend on it then run. No
/// CPU thread waits for the copy meanwhile.
#[track_caller]
pub fn spawn_download<T: Element>(buffer: &Handle<DeviceBuffer<T>>) -> Handle<HostCopy<T>> {
    let (copy, promise) = dagger_core::promise::<HostCopy<T>>();
    dagger_core::spawn_with(buffer, move |buffer: &DeviceBuffer<T>| {
        let gpu = buffer.gpu().clone();
        match gpu.download(buffer) {
            Err(error) => {
                promise.complete(Err(error));
            }
            Ok(host) => when_done(&gpu.download_stream(), move |done| {
                promise.complete_on_worker(done.map(|()| host));
            }),
        }
    });
    copy
}
