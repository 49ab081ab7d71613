//! Devices: discovery, selection, and what each opened device owns (its context, its pool
//! of compute streams, its copy streams, pooled events, compiled kernels, cuBLAS handles).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaEvent, CudaFunction, CudaStream};
use dagger_core::Error;

use crate::access::StreamId;
use crate::error::{driver, no_driver, no_library};
use crate::event::Recorded;
use crate::kernel::{compile, Kernel};
use crate::pool::{Pool, RoundRobin};
use crate::stream::Stream;

/// The environment variable that picks the default device (an ordinal, `0` if unset).
pub const DEVICE_ENV: &str = "DAGGER_CUDA_DEVICE";

/// Compute streams per device unless asked otherwise.
pub const DEFAULT_COMPUTE_STREAMS: usize = 4;

/// Whether the CUDA driver library can be loaded on this machine (checked once).
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to open the library; no CUDA function is called.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// Loads and initialises the driver, or says why it cannot.
fn init() -> Result<(), Error> {
    static INIT: OnceLock<Result<(), Error>> = OnceLock::new();
    INIT.get_or_init(|| {
        if !driver_present() {
            return Err(no_driver());
        }
        cudarc::driver::result::init().map_err(|e| driver(e, "initialising the CUDA driver"))
    })
    .clone()
}

/// What a device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its ordinal (what [`Gpu::open`] takes).
    pub ordinal: usize,
    /// Its name, such as "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability (major, minor): kernels are compiled for it.
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
}

/// Every CUDA device on this machine. An error (never a panic) when there is no driver.
pub fn devices() -> Result<Vec<DeviceInfo>, Error> {
    init()?;
    let count = CudaContext::device_count().map_err(|e| driver(e, "counting CUDA devices"))?;
    (0..count as usize)
        .map(|ordinal| Gpu::open(ordinal).map(|gpu| gpu.info().clone()))
        .collect()
}

/// How many streams an opened device gets.
#[derive(Clone, Copy, Debug)]
pub struct StreamCounts {
    /// Streams for kernels and cuBLAS calls; independent GPU tasks go to them in turn.
    pub compute: usize,
    /// Whether host-to-device and device-to-host copies get a stream each (so that they
    /// overlap kernels), or share the first compute stream (everything in one order).
    pub copy_streams: bool,
}

impl Default for StreamCounts {
    fn default() -> Self {
        StreamCounts {
            compute: DEFAULT_COMPUTE_STREAMS,
            copy_streams: true,
        }
    }
}

/// One opened CUDA device with its streams. Cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

pub(crate) struct GpuInner {
    pub(crate) id: usize,
    /// "cuda:N", for observers.
    pub(crate) label: &'static str,
    info: DeviceInfo,
    pub(crate) ctx: Arc<CudaContext>,
    compute: Vec<Arc<CudaStream>>,
    next: RoundRobin,
    upload: Arc<CudaStream>,
    download: Arc<CudaStream>,
    pub(crate) events: Pool<CudaEvent>,
    functions: Mutex<HashMap<(&'static str, usize), CudaFunction>>,
    blas: Vec<Mutex<Option<CudaBlas>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.inner.info.ordinal)
            .field("name", &self.inner.info.name)
            .field("compute_streams", &self.inner.compute.len())
            .finish()
    }
}

impl Gpu {
    /// Device `ordinal` with the default streams, opened once per process and shared.
    pub fn open(ordinal: usize) -> Result<Gpu, Error> {
        static OPEN: OnceLock<Mutex<HashMap<usize, Gpu>>> = OnceLock::new();
        let open = OPEN.get_or_init(Default::default);
        if let Some(gpu) = open.lock().unwrap_or_else(|e| e.into_inner()).get(&ordinal) {
            return Ok(gpu.clone());
        }
        let gpu = Gpu::open_with(ordinal, StreamCounts::default())?;
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        Ok(open.entry(ordinal).or_insert(gpu).clone())
    }

    /// Device `ordinal` with its own, new streams (for example one stream only, to compare).
    pub fn open_with(ordinal: usize, streams: StreamCounts) -> Result<Gpu, Error> {
        init()?;
        let count = CudaContext::device_count().map_err(|e| driver(e, "counting CUDA devices"))?;
        if ordinal >= count as usize {
            return Err(Error::Device(format!(
                "there is no CUDA device {ordinal}: this machine has {count}; pick one of 0..{count}"
            )));
        }
        let what = |doing: &str| format!("CUDA device {ordinal}: {doing}");
        let ctx = CudaContext::new(ordinal).map_err(|e| driver(e, what("creating a context")))?;
        // SAFETY: every buffer dagger hands out orders its uses with its own access log
        // (see `access`), and no cudarc buffer is used across streams outside it.
        unsafe { ctx.disable_event_tracking() };
        let info = DeviceInfo {
            ordinal,
            name: ctx
                .name()
                .map_err(|e| driver(e, what("reading its name")))?,
            compute_capability: ctx
                .compute_capability()
                .map_err(|e| driver(e, what("reading its compute capability")))?,
            total_memory: ctx
                .total_mem()
                .map_err(|e| driver(e, what("reading its memory size")))?,
        };
        let new_stream = || {
            ctx.new_stream()
                .map_err(|e| driver(e, what("creating a stream")))
        };
        let compute = (0..streams.compute.max(1))
            .map(|_| new_stream())
            .collect::<Result<Vec<_>, _>>()?;
        let (upload, download) = if streams.copy_streams {
            (new_stream()?, new_stream()?)
        } else {
            (compute[0].clone(), compute[0].clone())
        };
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                // Memory ordering: a unique number; nothing is published through it.
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                // One short string per opened device, for the process's lifetime.
                label: Box::leak(format!("cuda:{ordinal}").into_boxed_str()),
                info,
                blas: compute.iter().map(|_| Mutex::new(None)).collect(),
                next: RoundRobin::new(compute.len()),
                compute,
                upload,
                download,
                ctx,
                events: Pool::default(),
                functions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The default device: `DAGGER_CUDA_DEVICE`, or device 0.
    pub fn default_device() -> Result<Gpu, Error> {
        let ordinal = match std::env::var(DEVICE_ENV) {
            Ok(text) => text.trim().parse::<usize>().map_err(|_| {
                Error::Config(format!(
                    "{DEVICE_ENV}={text:?} is not a device ordinal; use 0, 1, ..."
                ))
            })?,
            Err(_) => 0,
        };
        Gpu::open(ordinal)
    }

    /// What this device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.inner.info
    }

    /// How many compute streams it has.
    pub fn compute_streams(&self) -> usize {
        self.inner.compute.len()
    }

    /// A compute stream for a task, chosen at its first operation: the one that last wrote
    /// the buffers it uses, so that dependent work stays on one stream, or else the next in
    /// turn, so that independent work spreads over the pool.
    pub fn stream(&self) -> Stream {
        Stream::lent(self.clone(), self.inner.next.next())
    }

    pub(crate) fn compute_handle(&self, index: usize) -> Arc<CudaStream> {
        self.inner.compute[index].clone()
    }

    /// Compute stream `index` (modulo the number of streams), fixed.
    pub fn compute_stream(&self, index: usize) -> Stream {
        let index = index % self.inner.compute.len();
        Stream::new(self.clone(), index, self.inner.compute[index].clone())
    }

    /// The stream host-to-device copies go on.
    pub(crate) fn upload_stream(&self) -> Stream {
        // Numbered after the compute streams.
        self.copy_stream(self.inner.compute.len(), &self.inner.upload)
    }

    /// The stream device-to-host copies go on.
    pub(crate) fn download_stream(&self) -> Stream {
        self.copy_stream(self.inner.compute.len() + 1, &self.inner.download)
    }

    fn copy_stream(&self, index: usize, stream: &Arc<CudaStream>) -> Stream {
        // Copies that share the first compute stream are in its order: same identity.
        let index = if Arc::ptr_eq(stream, &self.inner.compute[0]) {
            0
        } else {
            index
        };
        Stream::new(self.clone(), index, stream.clone())
    }

    pub(crate) fn stream_id(&self, index: usize) -> StreamId {
        StreamId {
            device: self.inner.id,
            index,
        }
    }

    /// Waits until all work on the device is done.
    pub fn synchronize(&self) -> Result<(), Error> {
        self.inner
            .ctx
            .synchronize()
            .map_err(|e| driver(e, self.what("synchronizing")))
    }

    /// (free, total) device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize), Error> {
        self.inner
            .ctx
            .mem_get_info()
            .map_err(|e| driver(e, self.what("reading free memory")))
    }

    /// How many events were ever created (pooled events keep this at the peak in use).
    pub fn events_created(&self) -> usize {
        self.inner.events.made()
    }

    pub(crate) fn what(&self, doing: impl std::fmt::Display) -> String {
        format!(
            "CUDA device {} ({}): {doing}",
            self.inner.info.ordinal, self.inner.info.name
        )
    }

    /// Records a pooled event on `stream`.
    pub(crate) fn record(&self, stream: &Stream) -> Result<Recorded, Error> {
        Recorded::record(self, stream)
    }

    /// The cudarc context (for comparisons with raw cudarc code, or what dagger lacks).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// The kernel compiled for this device (NVRTC to CUBIN once, then cached).
    pub fn function(&self, kernel: &Kernel) -> Result<CudaFunction, Error> {
        let key = (kernel.name(), kernel.source().as_ptr() as usize);
        let mut functions = self
            .inner
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(function) = functions.get(&key) {
            return Ok(function.clone());
        }
        let function = compile(self, kernel)?;
        functions.insert(key, function.clone());
        Ok(function)
    }

    /// Runs `f` with the cuBLAS handle of compute stream `index` (made on first use).
    pub(crate) fn with_blas<R>(
        &self,
        index: usize,
        f: impl FnOnce(&CudaBlas) -> Result<R, Error>,
    ) -> Result<R, Error> {
        static PRESENT: OnceLock<bool> = OnceLock::new();
        // SAFETY: only tries to open the library.
        if !*PRESENT.get_or_init(|| unsafe { cudarc::cublas::sys::is_culib_present() }) {
            return Err(no_library("cuBLAS (libcublas)", "matrix multiply"));
        }
        self.inner
            .ctx
            .bind_to_thread()
            .map_err(|e| driver(e, self.what("binding the context")))?;
        let mut slot = self.inner.blas[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let blas = CudaBlas::new(self.inner.compute[index].clone()).map_err(|e| {
                Error::Device(self.what(format!("creating a cuBLAS handle: {e:?}")))
            })?;
            *slot = Some(blas);
        }
        f(slot.as_ref().expect("made above"))
    }
}

/// The device that `#[task(cuda)]` tasks use: set by [`set_default`], else
/// [`Gpu::default_device`].
pub fn current() -> Result<Gpu, Error> {
    if let Some(gpu) = DEFAULT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return Ok(gpu.clone());
    }
    Gpu::default_device()
}

/// Makes `gpu` the device that `#[task(cuda)]` tasks use from now on.
pub fn set_default(gpu: Gpu) {
    *DEFAULT.lock().unwrap_or_else(|e| e.into_inner()) = Some(gpu);
}

static DEFAULT: Mutex<Option<Gpu>> = Mutex::new(None);
