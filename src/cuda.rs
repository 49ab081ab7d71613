//! GPU tasks on CUDA streams (feature `cuda`): everything of the `dagger-cuda` crate,
//! plus [`upload()`] and [`download()`] as tasks for `dag!` and `spawn`.
//!
//! A GPU task is a function marked `#[task(cuda)]` whose first parameter receives a
//! [`Stream`]; callers (plain calls, `dag!`, `spawn`) leave that parameter out, and the
//! runtime lends the task a compute stream of the current device, placed at its first
//! operation (the stream that last wrote its buffers, else the next in turn). The task queues
//! work on the stream and returns at once; later GPU tasks are ordered after it on the GPU
//! through the buffers they share, and host copies complete when the data has landed.
//!
//! ```
//! use dagger::cuda::{DeviceBuffer, Kernel, LaunchConfig, Stream};
//! use dagger::prelude::*;
//!
//! static SAXPY: Kernel = Kernel::new(
//!     "saxpy",
//!     r#"extern "C" __global__ void saxpy(float a, const float* x, float* y, unsigned n) {
//!         unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
//!         if (i < n) y[i] = a * x[i] + y[i];
//!     }"#,
//! );
//!
//! #[task(cuda)]
//! fn saxpy(stream: &Stream, a: f32, x: &DeviceBuffer<f32>, y: &mut DeviceBuffer<f32>) -> Result<(), Error> {
//!     let n = x.len() as u32;
//!     // SAFETY: the arguments match the kernel's parameters; it stays within `n`.
//!     unsafe {
//!         stream.kernel(&SAXPY).value(a).read(x).write(y).value(n)
//!             .launch(LaunchConfig::for_num_elems(n))
//!     }
//! }
//!
//! #[task]
//! fn total(values: &dagger::cuda::HostCopy<f32>) -> Result<f32, Error> {
//!     Ok(values.wait()?.iter().sum())
//! }
//!
//! use dagger::cuda::{download, upload};
//! let xs = vec![1.0f32; 1000];
//! let ys = vec![2.0f32; 1000];
//! let graph = dag! {
//!     let x = upload(&xs)?;          // host -> device, on the upload stream
//!     let mut y = upload(&ys)?;
//!     saxpy(3.0, &x, &mut y)?;       // a compute stream, after both uploads
//!     let back = download(&y)?;      // device -> host, on the download stream
//!     total(&back)?                  // a CPU task
//! };
//! match graph.run() {
//!     Ok(sum) => assert_eq!(sum, 5000.0),
//!     Err(error) => println!("no GPU here: {error}"), // Error::Device says what is missing
//! }
//! ```

pub use dagger_cuda::*;

use crate::task;
use dagger_core::Error;

/// Copies host data to a new device buffer, on the current device's upload stream.
#[task(cuda)]
pub fn upload<T: Element>(stream: &Stream, data: &[T]) -> Result<DeviceBuffer<T>, Error> {
    stream.gpu().upload(data)
}

/// Copies a device buffer to pinned host memory, on the device's download stream; the
/// result's [`HostCopy::wait`] gives the data once it has landed.
#[task(cuda)]
pub fn download<T: Element>(
    stream: &Stream,
    buffer: &DeviceBuffer<T>,
) -> Result<HostCopy<T>, Error> {
    stream.gpu().download(buffer)
}
