//! A stream lent to a GPU task: kernels and cuBLAS calls are queued on it, after the
//! operations their buffers depend on (on any stream), without blocking the CPU.

use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys::{cublasHandle_t, cublasOperation_t};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream, DeviceRepr, LaunchConfig};
use dagger_core::Error;

use crate::access::{self, place, AccessLog, StreamId, Use, Uses};
use crate::buffer::DeviceBuffer;
use crate::device::{current, Gpu};
use crate::error::{bad_input, driver};
use crate::event::Recorded;
use crate::kernel::Kernel;

/// One stream of one device. A stream lent to a task (`Gpu::stream`, `with_stream`) is
/// placed at its first operation: on the stream that last wrote the buffers the operation
/// writes (or reads), so that a chain of dependent GPU tasks stays on one stream with no
/// cross-stream waits; with no such history, on the next stream in turn, so that
/// independent tasks spread over the pool. An allocation ([`Stream::zeros`]) places it
/// too; call [`Stream::place_near`] first to make a new buffer join its input's stream.
#[derive(Clone)]
pub struct Stream {
    gpu: Gpu,
    /// The stream's index, once chosen.
    chosen: OnceLock<usize>,
    /// The compute stream a lent stream takes when its buffers show no preference.
    fallback: usize,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("device", &self.gpu.info().ordinal)
            .field("index", &self.chosen.get())
            .finish()
    }
}

impl Stream {
    /// A given stream.
    pub(crate) fn new(gpu: Gpu, index: usize) -> Self {
        Stream {
            gpu,
            chosen: OnceLock::from(index),
            fallback: index,
        }
    }

    /// A compute stream chosen at the first operation (`fallback` if nothing is preferred).
    pub(crate) fn lent(gpu: Gpu, fallback: usize) -> Self {
        Stream {
            gpu,
            chosen: OnceLock::new(),
            fallback,
        }
    }

    /// The chosen stream's index (the fallback if no operation chose one yet).
    fn index(&self) -> usize {
        *self.chosen.get_or_init(|| {
            self.note_stream(self.fallback);
            self.fallback
        })
    }

    /// Picks the stream for the first operation, from the history of its buffers.
    pub(crate) fn settle(&self, uses: &Uses<'_, Recorded>) {
        if self.chosen.get().is_some() {
            return;
        }
        let index = place(uses)
            .filter(|id| self.gpu.is_compute(*id))
            .map_or(self.fallback, |id| id.index);
        self.chosen.get_or_init(|| {
            self.note_stream(index);
            index
        });
    }

    /// Places a lent stream that no operation has placed yet on the stream that last
    /// wrote `buffer` (if a compute stream did), so that buffers allocated next, and the
    /// kernels that fill them, follow `buffer` with no cross-stream wait. A placed stream
    /// stays where it is.
    pub fn place_near<T>(&self, buffer: &DeviceBuffer<T>) -> &Self {
        self.settle(&[(buffer.log(), Use::Read)]);
        self
    }

    /// Its device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Which stream it is (for a lent stream, this chooses it if no operation did yet).
    pub fn id(&self) -> StreamId {
        self.gpu.stream_id(self.index())
    }

    /// Tells observers that the running task uses this stream (and moves `bytes`).
    pub(crate) fn note(&self, bytes: usize) {
        self.note_stream(self.index());
        if bytes > 0 {
            dagger_core::observe::note_bytes_moved(bytes as u64);
        }
    }

    fn note_stream(&self, index: usize) {
        dagger_core::observe::note_device(self.gpu.inner.label, index as u32);
    }

    pub(crate) fn cuda(&self) -> &Arc<CudaStream> {
        self.gpu.cuda_stream(self.index())
    }

    /// Queues `kernel`; add its arguments in order, then call
    /// [`launch`](Launch::launch).
    pub fn kernel<'a>(&'a self, kernel: &'a Kernel) -> Launch<'a> {
        Launch {
            stream: self,
            kernel,
            params: Vec::new(),
            uses: Vec::new(),
            error: None,
        }
    }

    /// Makes this stream wait (on the GPU) for earlier operations on `uses`' buffers
    /// (placing a lent stream first), with the device's context bound to this thread for
    /// the operation that follows.
    pub(crate) fn order_after(&self, uses: &Uses<'_, Recorded>) -> Result<(), Error> {
        self.gpu.usable()?;
        self.gpu.bind()?;
        self.settle(uses);
        access::order_after(&self.gpu, self.id(), uses)
    }

    /// Records that the operation just queued used `uses`' buffers; returns the point
    /// recorded (to poll for completion). If the point cannot be recorded, the operation
    /// is unknown to the logs: this waits for it instead, and if even that fails, marks
    /// the device broken, so that no memory it may touch is freed or reused.
    pub(crate) fn finish(&self, uses: &Uses<'_, Recorded>) -> Result<Recorded, Error> {
        access::mark_done(&self.gpu, self.id(), uses).inspect_err(|_| {
            if self.synchronize().is_err() {
                self.gpu.mark_broken();
            }
        })
    }

    /// Row-major matrix multiply `c = alpha * a * b + beta * c` with cuBLAS (this stream's
    /// own handle), where `a` is `m x k`, `b` is `k x n` and `c` is `m x n`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul<T: Float>(
        &self,
        (m, n, k): (usize, usize, usize),
        alpha: T,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        beta: T,
        c: &mut DeviceBuffer<T>,
    ) -> Result<(), Error> {
        let dims = [m, n, k].map(|d| i32::try_from(d).ok());
        let [Some(mi), Some(ni), Some(ki)] = dims else {
            return Err(bad_input(
                "matmul: dimensions must fit in an i32 for cuBLAS",
            ));
        };
        // Each dimension fits in an i32, so each product fits in a u64.
        let (m64, n64, k64) = (m as u64, n as u64, k as u64);
        for (name, have, need) in [
            ("a", a.len(), m64 * k64),
            ("b", b.len(), k64 * n64),
            ("c", c.len(), m64 * n64),
        ] {
            if (have as u64) < need {
                return Err(bad_input(format!(
                    "matmul: `{name}` has {have} elements; a {m}x{k} by {k}x{n} product needs {need}"
                )));
            }
        }
        for buffer in [a.gpu(), b.gpu(), c.gpu()] {
            self.same_device(buffer)?;
        }
        if m == 0 || n == 0 {
            return Ok(()); // an empty product: nothing to write
        }
        let uses = [
            (a.log(), Use::Read),
            (b.log(), Use::Read),
            (c.log(), Use::Write),
        ];
        self.order_after(&uses)?;
        // cuBLAS is column-major: the row-major c = a b is the column-major c' = b' a'.
        let dims = Dims {
            m: ni,
            n: mi,
            k: ki,
            lda: ni.max(1),
            ldb: ki.max(1),
            ldc: ni.max(1),
        };
        let multiplied = self.gpu.with_blas(self.index(), |blas| {
            // SAFETY: the lengths were checked above against m, n and k, the leading
            // dimensions match the row-major layout, and the handle's stream is this one.
            unsafe {
                T::gemm(
                    *blas.handle(),
                    dims,
                    alpha,
                    b.device_ptr(),
                    a.device_ptr(),
                    beta,
                    c.device_ptr(),
                )
            }
            .map_err(|e| Error::Device(self.gpu.what(format!("cuBLAS gemm: {e:?}"))))
        });
        // A failed gemm may have queued part of its kernels: the logs hear of it either way.
        let finished = self.finish(&uses);
        multiplied?;
        finished.map(drop)
    }

    pub(crate) fn same_device(&self, other: &Gpu) -> Result<(), Error> {
        if Arc::ptr_eq(&other.inner, &self.gpu.inner) {
            Ok(())
        } else {
            Err(bad_input(format!(
                "a buffer on CUDA device {} was used on a stream of device {}; copy it first",
                other.info().ordinal,
                self.gpu.info().ordinal
            )))
        }
    }

    /// A timing event at the current end of this stream's work.
    pub fn timestamp(&self) -> Result<Timestamp, Error> {
        let event = self
            .gpu
            .inner
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| driver(e, self.gpu.what("creating a timing event")))?;
        event
            .record(self.cuda())
            .map_err(|e| driver(e, self.gpu.what("recording a timing event")))?;
        Ok(Timestamp(event))
    }

    /// Blocks until everything queued on this stream is done.
    pub fn synchronize(&self) -> Result<(), Error> {
        self.cuda()
            .synchronize()
            .map_err(|e| driver(e, self.gpu.what("synchronizing a stream")))
    }
}

/// A point in a stream's work with a GPU clock reading, for measuring.
#[derive(Debug)]
pub struct Timestamp(CudaEvent);

impl Timestamp {
    /// Milliseconds from `self` to `later` (both must be done: call `wait` first).
    pub fn ms_until(&self, later: &Timestamp) -> Result<f32, Error> {
        self.0
            .elapsed_ms(&later.0)
            .map_err(|e| Error::Device(format!("reading event times: {e}")))
    }

    /// Blocks until the stream has reached this point.
    pub fn wait(&self) -> Result<(), Error> {
        self.0
            .synchronize()
            .map_err(|e| Error::Device(format!("waiting for an event: {e}")))
    }
}

/// The column-major shape of a cuBLAS multiply.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    m: c_int,
    n: c_int,
    k: c_int,
    lda: c_int,
    ldb: c_int,
    ldc: c_int,
}

/// Element types cuBLAS multiplies (`f32`, `f64`).
pub trait Float: crate::Element {
    #[doc(hidden)]
    /// # Safety
    /// As cuBLAS `gemm` (no transposes): the device pointers hold what `dims` says.
    unsafe fn gemm(
        handle: cublasHandle_t,
        dims: Dims,
        alpha: Self,
        a: u64,
        b: u64,
        beta: Self,
        c: u64,
    ) -> Result<(), CublasError>;
}

macro_rules! float {
    ($($t:ty => $gemm:ident),*) => {$(
        impl Float for $t {
            unsafe fn gemm(
                handle: cublasHandle_t,
                d: Dims,
                alpha: Self,
                a: u64,
                b: u64,
                beta: Self,
                c: u64,
            ) -> Result<(), CublasError> {
                let n = cublasOperation_t::CUBLAS_OP_N;
                // SAFETY: passed on from the caller; alpha and beta are host values that
                // live across the call.
                unsafe {
                    cudarc::cublas::result::$gemm(
                        handle, n, n, d.m, d.n, d.k, &alpha, a as *const $t, d.lda,
                        b as *const $t, d.ldb, &beta, c as *mut $t, d.ldc,
                    )
                }
            }
        }
    )*};
}
float!(f32 => sgemm, f64 => dgemm);

/// A kernel launch being put together: arguments in the kernel's order.
pub struct Launch<'a> {
    stream: &'a Stream,
    kernel: &'a Kernel,
    params: Vec<Box<dyn Param + 'a>>,
    uses: Vec<(&'a Mutex<AccessLog<Recorded>>, Use)>,
    error: Option<Error>,
}

/// A kernel parameter's bytes, kept alive until the launch.
trait Param {
    fn ptr(&mut self) -> *mut c_void;
}

struct Value<T>(T);
impl<T> Param for Value<T> {
    fn ptr(&mut self) -> *mut c_void {
        (&mut self.0 as *mut T).cast()
    }
}

impl<'a> Launch<'a> {
    /// A buffer the kernel reads (a `const T*` parameter).
    pub fn read<T: DeviceRepr>(mut self, buffer: &'a DeviceBuffer<T>) -> Self {
        self.buffer(buffer, Use::Read);
        self
    }

    /// A buffer the kernel writes (a `T*` parameter).
    pub fn write<T: DeviceRepr>(mut self, buffer: &'a mut DeviceBuffer<T>) -> Self {
        self.buffer(buffer, Use::Write);
        self
    }

    /// A value parameter (`float`, `unsigned`, ...).
    pub fn value<T: DeviceRepr + 'a>(mut self, value: T) -> Self {
        self.params.push(Box::new(Value(value)));
        self
    }

    fn buffer<T>(&mut self, buffer: &'a DeviceBuffer<T>, how: Use) {
        if let Err(error) = self.stream.same_device(buffer.gpu()) {
            self.error.get_or_insert(error);
        }
        self.params.push(Box::new(Value(buffer.device_ptr())));
        self.uses.push((buffer.log(), how));
    }

    /// Queues the kernel on the stream, after the operations its buffers depend on.
    ///
    /// # Safety
    /// The arguments must match the kernel's parameters in number, order and type; the
    /// kernel must stay within each buffer's length, write only buffers passed with
    /// [`write`](Launch::write), and write only valid values of their element type (a
    /// `bool` buffer holds only 0 and 1): none of this can be checked here.
    pub unsafe fn launch(mut self, config: LaunchConfig) -> Result<(), Error> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let gpu = self.stream.gpu();
        let function = gpu.function(self.kernel)?;
        self.stream.order_after(&self.uses)?; // binds the context
        let mut params: Vec<*mut c_void> = self.params.iter_mut().map(|p| p.ptr()).collect();
        // SAFETY: the caller vouches for the arguments; each pointer in `params` points
        // into a boxed value that lives until this function returns.
        unsafe {
            cudarc::driver::result::launch_kernel(
                function.cu_function(),
                config.grid_dim,
                config.block_dim,
                config.shared_mem_bytes,
                self.stream.cuda().cu_stream(),
                &mut params,
            )
        }
        .map_err(|e| driver(e, gpu.what(format!("launching `{}`", self.kernel.name()))))?;
        self.stream.finish(&self.uses).map(drop)
    }
}

/// Runs the body of a `#[task(cuda)]` task: lends it a compute stream of the current
/// device ([`current`]), placed at its first operation (see [`Stream`]). Work it queues runs asynchronously; later GPU tasks
/// are ordered after it through its buffers, and host copies wait for it.
pub fn with_stream<T, E: From<Error>>(body: impl FnOnce(&Stream) -> Result<T, E>) -> Result<T, E> {
    let gpu = current()?;
    body(&gpu.stream())
}
