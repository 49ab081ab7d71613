//! CUDA for dagger: devices, a pool of streams per device, pooled events, device and
//! pinned host buffers, copies as their own stream operations, kernels compiled at run
//! time (NVRTC, to CUBIN) and cuBLAS matrix multiply.
//!
//! The scheduler owns the ordering. Every [`DeviceBuffer`] keeps an access log (the last
//! write and the reads since), and every operation on it (a kernel, a cuBLAS call, a
//! copy, on whatever stream) first makes its stream wait, on the GPU, for what it depends
//! on. So an edge of the task graph between two GPU tasks becomes a stream wait, not a CPU
//! wait; independent tasks get different streams; uploads and downloads run on copy
//! streams of their own and overlap kernels. Device memory is dagger's own (stream-ordered
//! allocations, freed where no copy stream waits for a kernel), host transfers stage
//! through a per-device cache of pinned blocks, and a per-device progress thread completes
//! what waits for the GPU (and fails it if the device faults).
//!
//! Nothing CUDA is needed to build this crate: the driver, NVRTC and cuBLAS are loaded at
//! run time. Without them every entry point returns a [`dagger_core::Error::Device`] that
//! says what is missing, never a panic.
//!
//! ```
//! match dagger_cuda::devices() {
//!     Ok(devices) => devices.iter().for_each(|d| println!("{}: {}", d.ordinal, d.name)),
//!     Err(error) => println!("no GPU here: {error}"),
//! }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod access;
mod buffer;
mod device;
mod error;
mod event;
mod kernel;
mod pinned;
mod pool;
mod progress;
mod spawn;
mod stream;

pub use access::StreamId;
pub use buffer::{DeviceBuffer, Element, HostBuffer, HostCopy};
pub use cudarc::driver::LaunchConfig;
pub use device::{
    current, devices, driver_present, set_default, DeviceInfo, Gpu, StreamCounts,
    DEFAULT_COMPUTE_STREAMS, DEVICE_ENV, PINNED_CACHE_BYTES,
};
pub use kernel::Kernel;
pub use spawn::{spawn_download, when_done};
pub use stream::{with_stream, Float, Launch, Stream, Timestamp};

#[cfg(test)]
pub(crate) mod testing {
    /// Runs `body` on its own thread and fails the test if it takes over `seconds`
    /// (a deadlock would otherwise hang the test run).
    pub fn with_timeout(seconds: u64, body: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            body();
            let _ = done.send(());
        });
        match finished.recv_timeout(std::time::Duration::from_secs(seconds)) {
            Ok(()) => worker.join().expect("the body panicked"),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::panic::resume_unwind(worker.join().expect_err("it did not finish"))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("did not finish within {seconds} s (deadlock?)")
            }
        }
    }
}
