//! A stream lent to a GPU task: kernels and cuBLAS calls are queued on it, after the
//! operations their buffers depend on (on any stream), without blocking the CPU.

use std::ffi::c_void;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::result::CublasError;
use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaSlice, CudaStream, DeviceRepr, LaunchConfig};
use dagger_core::Error;

use crate::access::{preferred_stream, AccessLog, StreamId};
use crate::buffer::DeviceBuffer;
use crate::device::{current, Gpu};
use crate::error::{bad_input, driver};
use crate::event::Recorded;
use crate::kernel::Kernel;

/// One stream of one device. A stream lent to a task (`Gpu::stream`, `with_stream`) is
/// picked at its first operation: the stream that last wrote the buffers the operation
/// writes (or reads), so that a chain of dependent GPU tasks stays on one stream with no
/// cross-stream waits; with no such history, the next stream in turn, so that independent
/// tasks spread over the pool.
#[derive(Clone)]
pub struct Stream {
    gpu: Gpu,
    /// The stream's index and handle, once chosen.
    chosen: OnceLock<(usize, Arc<CudaStream>)>,
    /// The compute stream a lent stream takes when its buffers show no preference.
    fallback: usize,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("device", &self.gpu.info().ordinal)
            .field("index", &self.chosen.get().map(|(index, _)| *index))
            .finish()
    }
}

/// Which way an operation uses a buffer.
#[derive(Clone, Copy)]
pub(crate) enum Use {
    Read,
    Write,
}

impl Stream {
    /// A given stream.
    pub(crate) fn new(gpu: Gpu, index: usize, cuda: Arc<CudaStream>) -> Self {
        Stream {
            gpu,
            chosen: OnceLock::from((index, cuda)),
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

    /// Whether the stream is fixed (given, or chosen by a first operation).
    pub(crate) fn is_placed(&self) -> bool {
        self.chosen.get().is_some()
    }

    /// The chosen stream (the fallback if no operation chose one yet).
    fn chosen(&self) -> &(usize, Arc<CudaStream>) {
        self.chosen.get_or_init(|| self.compute(self.fallback))
    }

    fn compute(&self, index: usize) -> (usize, Arc<CudaStream>) {
        self.note_stream(index);
        (index, self.gpu.compute_handle(index))
    }

    /// Picks the stream for the first operation, from the history of its buffers.
    pub(crate) fn settle(&self, uses: &[(&Mutex<AccessLog<Recorded>>, Use)]) {
        if self.chosen.get().is_some() {
            return;
        }
        let guards: Vec<_> = uses
            .iter()
            .map(|(log, how)| {
                (
                    log.lock().unwrap_or_else(|e| e.into_inner()),
                    matches!(how, Use::Write),
                )
            })
            .collect();
        let preferred = preferred_stream(guards.iter().map(|(log, writes)| (&**log, *writes)));
        drop(guards);
        let index = preferred
            .filter(|id| id.device == self.gpu.inner.id && id.index < self.gpu.compute_streams())
            .map_or(self.fallback, |id| id.index);
        self.chosen.get_or_init(|| self.compute(index));
    }

    /// Its device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Which stream it is (for a lent stream, this chooses it if no operation did yet).
    pub fn id(&self) -> StreamId {
        self.gpu.stream_id(self.chosen().0)
    }

    /// Tells observers that the running task uses this stream (and moves `bytes`).
    pub(crate) fn note(&self, bytes: usize) {
        self.note_stream(self.chosen().0);
        if bytes > 0 {
            dagger_core::observe::note_bytes_moved(bytes as u64);
        }
    }

    fn note_stream(&self, index: usize) {
        dagger_core::observe::note_device(self.gpu.inner.label, index as u32);
    }

    pub(crate) fn cuda(&self) -> &Arc<CudaStream> {
        &self.chosen().1
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

    /// Makes this stream wait (on the GPU) for earlier operations on `logs`' buffers.
    pub(crate) fn order_after(
        &self,
        logs: &[(&Mutex<AccessLog<Recorded>>, Use)],
    ) -> Result<(), Error> {
        self.settle(logs);
        let id = self.id();
        for (log, how) in logs {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            let waits = match how {
                Use::Read => log.before_read(id),
                Use::Write => log.before_write(id),
            };
            for point in waits {
                self.cuda()
                    .wait(point.event())
                    .map_err(|e| driver(e, self.gpu.what("making a stream wait for an event")))?;
            }
        }
        Ok(())
    }

    /// Records that the operation just queued used `logs`' buffers.
    pub(crate) fn mark_done(
        &self,
        logs: &[(&Mutex<AccessLog<Recorded>>, Use)],
    ) -> Result<(), Error> {
        self.mark_done_at(logs).map(drop)
    }

    /// Like `mark_done`, and returns the point recorded (to poll for completion).
    pub(crate) fn mark_done_at(
        &self,
        logs: &[(&Mutex<AccessLog<Recorded>>, Use)],
    ) -> Result<Recorded, Error> {
        let point = self.gpu.record(self)?;
        for (log, how) in logs {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            match how {
                Use::Read => log.read(point.clone()),
                Use::Write => log.write(point.clone()),
            }
        }
        Ok(point)
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
        for (name, have, need) in [
            ("a", a.len(), m * k),
            ("b", b.len(), k * n),
            ("c", c.len(), m * n),
        ] {
            if have < need {
                return Err(bad_input(format!(
                    "matmul: `{name}` has {have} elements; a {m}x{k} by {k}x{n} product needs {need}"
                )));
            }
        }
        let dims = [m, n, k].map(|d| i32::try_from(d).ok());
        let [Some(mi), Some(ni), Some(ki)] = dims else {
            return Err(bad_input(
                "matmul: dimensions must fit in an i32 for cuBLAS",
            ));
        };
        for buffer in [a.gpu(), b.gpu(), c.gpu()] {
            self.same_device(buffer)?;
        }
        let (c_slice, c_log) = c.parts_mut();
        let uses = [
            (a.log(), Use::Read),
            (b.log(), Use::Read),
            (c_log, Use::Write),
        ];
        self.order_after(&uses)?;
        // cuBLAS is column-major: the row-major c = a b is the column-major c' = b' a'.
        let config = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: ni,
            n: mi,
            k: ki,
            alpha,
            lda: ni.max(1),
            ldb: ki.max(1),
            beta,
            ldc: ni.max(1),
        };
        self.gpu.with_blas(self.chosen().0, |blas| {
            // SAFETY: the lengths were checked above against m, n and k, and the
            // leading dimensions match the row-major layout.
            unsafe { T::gemm(blas, config, b.slice(), a.slice(), c_slice) }
                .map_err(|e| Error::Device(self.gpu.what(format!("cuBLAS gemm: {e:?}"))))
        })?;
        self.mark_done(&uses)
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

/// Element types cuBLAS multiplies (`f32`, `f64`).
pub trait Float: crate::Element {
    #[doc(hidden)]
    /// # Safety
    /// As cuBLAS `gemm`: the buffers hold what `config` says.
    unsafe fn gemm(
        blas: &CudaBlas,
        config: GemmConfig<Self>,
        a: &CudaSlice<Self>,
        b: &CudaSlice<Self>,
        c: &mut CudaSlice<Self>,
    ) -> Result<(), CublasError>;
}

macro_rules! float {
    ($($t:ty),*) => {$(
        impl Float for $t {
            unsafe fn gemm(
                blas: &CudaBlas,
                config: GemmConfig<Self>,
                a: &CudaSlice<Self>,
                b: &CudaSlice<Self>,
                c: &mut CudaSlice<Self>,
            ) -> Result<(), CublasError> {
                // SAFETY: passed on from the caller.
                unsafe { Gemm::<$t>::gemm(blas, config, a, b, c) }
            }
        }
    )*};
}
float!(f32, f64);

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
    /// The arguments must match the kernel's parameters in number, order and type, and
    /// the kernel must stay within each buffer's length: neither can be checked here.
    pub unsafe fn launch(mut self, config: LaunchConfig) -> Result<(), Error> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let gpu = self.stream.gpu();
        let function = gpu.function(self.kernel)?;
        self.stream.order_after(&self.uses)?;
        let mut params: Vec<*mut c_void> = self.params.iter_mut().map(|p| p.ptr()).collect();
        gpu.inner
            .ctx
            .bind_to_thread()
            .map_err(|e| driver(e, gpu.what("binding the context")))?;
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
        self.stream.mark_done(&self.uses)
    }
}

/// Runs the body of a `#[task(cuda)]` task: lends it a compute stream of the current
/// device ([`current`]), placed at its first operation (see [`Stream`]). Work it queues runs asynchronously; later GPU tasks
/// are ordered after it through its buffers, and host copies wait for it.
pub fn with_stream<T, E: From<Error>>(body: impl FnOnce(&Stream) -> Result<T, E>) -> Result<T, E> {
    let gpu = current()?;
    body(&gpu.stream())
}
