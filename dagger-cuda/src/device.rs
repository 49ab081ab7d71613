//! Devices: discovery, selection, and what each opened device owns (its context, its pool
//! of compute streams, its copy streams, pooled events, compiled kernels, cuBLAS handles).

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaEvent, CudaFunction, CudaStream};
use dagger_core::Error;

use crate::access::{StreamId, Streams};
use crate::error::{driver, no_driver, no_library};
use crate::event::Recorded;
use crate::kernel::{compile, Kernel};
use crate::pinned::{HostMemory, PinnedPool};
use crate::pool::{Pool, RoundRobin};
use crate::progress::Progress;
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

/// Idle pinned host memory a device keeps for reuse before it unpins any.
pub const PINNED_CACHE_BYTES: usize = 2 << 30;

/// One opened CUDA device with its streams. Cheap to clone.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

/// Pinned host memory from the driver.
pub(crate) struct PinnedMemory {
    ctx: Arc<CudaContext>,
}

impl HostMemory for PinnedMemory {
    fn alloc(&self, bytes: usize) -> Result<NonNull<u8>, Error> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver(e, "binding the context to pin host memory"))?;
        // Flags 0: cached, fast for the host to read (write-combined memory is not).
        // SAFETY: the context is bound; the memory is handed out uninitialised and every
        // user writes it before reading (copies into it, or zeroes it).
        let ptr = unsafe { cudarc::driver::result::malloc_host(bytes, 0) }
            .map_err(|e| driver(e, format!("pinning {bytes} bytes of host memory")))?;
        NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::Device("pinning host memory returned null".into()))
    }

    unsafe fn free(&self, ptr: NonNull<u8>, _bytes: usize) {
        // A failure here means the context is already dead; nothing can use the memory.
        let _ = self.ctx.bind_to_thread();
        // SAFETY: passed on from the caller: from `malloc_host`, no copy uses it.
        let _ = unsafe { cudarc::driver::result::free_host(ptr.as_ptr().cast()) };
    }
}

type Compiled = Arc<OnceLock<Result<CudaFunction, Error>>>;

pub(crate) struct GpuInner {
    pub(crate) id: usize,
    /// "cuda:N", for observers.
    pub(crate) label: &'static str,
    info: DeviceInfo,
    pub(crate) ctx: Arc<CudaContext>,
    /// The compute streams (`0..compute`), then the upload and download streams (both
    /// compute stream 0 when copies do not get streams of their own), then the release
    /// stream.
    streams: Vec<Arc<CudaStream>>,
    compute: usize,
    upload: usize,
    download: usize,
    release: usize,
    next: RoundRobin,
    pub(crate) events: Pool<CudaEvent>,
    pub(crate) pinned: PinnedPool<PinnedMemory, Recorded>,
    pub(crate) progress: Progress<Recorded>,
    functions: Mutex<HashMap<(&'static str, usize), Compiled>>,
    /// One cuBLAS handle per compute stream, made at open (or why there are none).
    blas: Result<Vec<Mutex<CudaBlas>>, Error>,
    /// Set when queued work could be neither recorded nor waited for: the logs no longer
    /// know every use, so memory is never freed or reused again.
    broken: AtomicBool,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.inner.info.ordinal)
            .field("name", &self.inner.info.name)
            .field("compute_streams", &self.inner.compute)
            .finish()
    }
}

/// "cuda:N", one string per ordinal for the process's lifetime.
fn label(ordinal: usize) -> &'static str {
    static LABELS: Mutex<Vec<(usize, &'static str)>> = Mutex::new(Vec::new());
    let mut labels = LABELS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, label)) = labels.iter().find(|(o, _)| *o == ordinal) {
        return label;
    }
    let label: &'static str = Box::leak(format!("cuda:{ordinal}").into_boxed_str());
    labels.push((ordinal, label));
    label
}

/// Configures the device's default memory pool (shared with other users of the stream-
/// ordered allocator in this process): freed memory stays in the pool instead of going
/// back to the driver at every synchronization (the default threshold, 0, makes a later
/// allocation in the middle of a pipeline a slow driver call), and the driver may not
/// make an allocation wait for a free queued on another stream (an upload would then wait
/// behind kernels).
fn configure_memory_pool(ctx: &CudaContext) -> Result<(), cudarc::driver::DriverError> {
    use cudarc::driver::result::{device, mem_pool};
    use cudarc::driver::sys::CUmemPool_attribute;
    let mut threshold = u64::MAX;
    let mut internal_dependencies: std::ffi::c_int = 0;
    // SAFETY: the device comes from the context; the release threshold takes a `u64` and
    // the reuse policy an `int`, each pointed to by a local that lives across the call.
    unsafe {
        let pool = device::get_default_mem_pool(ctx.cu_device())?;
        mem_pool::set_attribute(
            pool,
            CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )?;
        mem_pool::set_attribute(
            pool,
            CUmemPool_attribute::CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES,
            (&mut internal_dependencies as *mut std::ffi::c_int).cast(),
        )
    }
}

fn blas_handles(
    compute: &[Arc<CudaStream>],
    what: impl Fn(&str) -> String,
) -> Result<Vec<Mutex<CudaBlas>>, Error> {
    // SAFETY: only tries to open the library.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(no_library("cuBLAS (libcublas)", "matrix multiply"));
    }
    compute
        .iter()
        .map(|stream| {
            CudaBlas::new(stream.clone())
                .map(Mutex::new)
                .map_err(|e| Error::Device(what(&format!("creating a cuBLAS handle: {e:?}"))))
        })
        .collect()
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

    /// Device `ordinal` with its own, new streams (for example one stream only, to
    /// compare). Everything a pipeline needs is made here, not at its first use: the
    /// streams, a cuBLAS handle per compute stream, and a memory pool that keeps freed
    /// memory (this sets the release threshold and reuse policy of the device's default
    /// pool, which other stream-ordered allocators in the process share); kernels are
    /// compiled by [`Gpu::prepare`].
    pub fn open_with(ordinal: usize, streams: StreamCounts) -> Result<Gpu, Error> {
        init()?;
        let count = CudaContext::device_count().map_err(|e| driver(e, "counting CUDA devices"))?;
        if ordinal >= count as usize {
            return Err(Error::Device(format!(
                "there is no CUDA device {ordinal}: this machine has {count}; pick one of 0..{count}"
            )));
        }
        let what = |doing: &str| format!("CUDA device {ordinal}: {doing}");
        // cudarc's event tracking stays on: dagger makes no cudarc buffers (it orders its
        // own memory with access logs), and buffers users make through `context()` keep
        // cudarc's own ordering.
        let ctx = CudaContext::new(ordinal).map_err(|e| driver(e, what("creating a context")))?;
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
        configure_memory_pool(&ctx).map_err(|e| driver(e, what("configuring its memory pool")))?;
        // With cudarc's event tracking on, the first stream made through a new context
        // object synchronizes the device (a second `open_with` waits for work in flight).
        let new_stream = || {
            ctx.new_stream()
                .map_err(|e| driver(e, what("creating a stream")))
        };
        let compute = streams.compute.max(1);
        let mut all = (0..compute)
            .map(|_| new_stream())
            .collect::<Result<Vec<_>, _>>()?;
        let blas = blas_handles(&all, what);
        let (upload, download) = if streams.copy_streams {
            all.push(new_stream()?);
            all.push(new_stream()?);
            (compute, compute + 1)
        } else {
            (0, 0)
        };
        // Its own stream even without copy streams: a free that waits for several compute
        // streams must not hold one of them up.
        all.push(new_stream()?);
        let release = all.len() - 1;
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                // Memory ordering: a unique number; nothing is published through it.
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                label: label(ordinal),
                info,
                next: RoundRobin::new(compute),
                streams: all,
                compute,
                upload,
                download,
                release,
                pinned: PinnedPool::new(PinnedMemory { ctx: ctx.clone() }, PINNED_CACHE_BYTES),
                ctx,
                events: Pool::default(),
                progress: Progress::default(),
                functions: Mutex::new(HashMap::new()),
                blas,
                broken: AtomicBool::new(false),
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
        self.inner.compute
    }

    /// A compute stream for a task, chosen at its first operation: the one that last wrote
    /// the buffers it uses, so that dependent work stays on one stream, or else the next in
    /// turn, so that independent work spreads over the pool.
    pub fn stream(&self) -> Stream {
        Stream::lent(self.clone(), self.inner.next.next())
    }

    /// Compute stream `index` (modulo the number of streams), fixed.
    pub fn compute_stream(&self, index: usize) -> Stream {
        Stream::new(self.clone(), index % self.inner.compute)
    }

    /// The stream host-to-device copies go on.
    pub(crate) fn upload_stream(&self) -> Stream {
        Stream::new(self.clone(), self.inner.upload)
    }

    /// The stream device-to-host copies go on.
    pub(crate) fn download_stream(&self) -> Stream {
        Stream::new(self.clone(), self.inner.download)
    }

    /// The stream that frees buffers used on several streams (see `access::release`).
    pub(crate) fn release_stream(&self) -> StreamId {
        self.stream_id(self.inner.release)
    }

    pub(crate) fn cuda_stream(&self, index: usize) -> &Arc<CudaStream> {
        &self.inner.streams[index]
    }

    pub(crate) fn stream_id(&self, index: usize) -> StreamId {
        StreamId {
            device: self.inner.id,
            index,
        }
    }

    /// Whether `id` is one of this device's compute streams.
    pub(crate) fn is_compute(&self, id: StreamId) -> bool {
        id.device == self.inner.id && id.index < self.inner.compute
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

    /// How many pinned host blocks were ever made (the cache keeps this at the peak of
    /// copies in flight).
    pub fn pinned_blocks_made(&self) -> usize {
        self.inner.pinned.made()
    }

    pub(crate) fn what(&self, doing: impl std::fmt::Display) -> String {
        format!(
            "CUDA device {} ({}): {doing}",
            self.inner.info.ordinal, self.inner.info.name
        )
    }

    /// Marks the device as one whose logs may miss queued work (see `GpuInner::broken`).
    pub(crate) fn mark_broken(&self) {
        // Memory ordering: read by later frees on any thread, which need only the flag.
        self.inner.broken.store(true, Ordering::SeqCst);
    }

    /// An error once queued work may be missing from the logs: no new work is ordered by
    /// logs that cannot be trusted.
    pub(crate) fn usable(&self) -> Result<(), Error> {
        if self.is_broken() {
            return Err(Error::Device(self.what(
                "work could be neither recorded nor waited for; this device can no longer \
                 order new work safely (open it again in a new process)",
            )));
        }
        Ok(())
    }

    /// Whether queued work may be missing from the logs.
    pub(crate) fn is_broken(&self) -> bool {
        self.inner.broken.load(Ordering::SeqCst)
    }

    /// Returns a pinned block to the cache (or leaks it on a broken device).
    pub(crate) fn give_back_block(&self, block: crate::pinned::Block, after: Vec<Recorded>) {
        if !self.is_broken() {
            self.inner.pinned.give_back(block, after);
        }
    }

    /// Binds the device's context to the calling thread (raw driver calls need it).
    pub(crate) fn bind(&self) -> Result<(), Error> {
        self.inner
            .ctx
            .bind_to_thread()
            .map_err(|e| driver(e, self.what("binding the context")))
    }

    /// The cudarc context (for comparisons with raw cudarc code, or what dagger lacks).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// Compiles `kernels` for this device now, so that their first launch in a pipeline
    /// does not wait for NVRTC.
    pub fn prepare(&self, kernels: &[&Kernel]) -> Result<(), Error> {
        kernels.iter().try_for_each(|k| self.function(k).map(drop))
    }

    /// The kernel compiled for this device (NVRTC to CUBIN once, then cached). Compiling
    /// one kernel holds up only the launches of that kernel.
    pub fn function(&self, kernel: &Kernel) -> Result<CudaFunction, Error> {
        let key = (kernel.name(), kernel.source().as_ptr() as usize);
        let cell = self
            .inner
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_init(|| compile(self, kernel)).clone()
    }

    /// Runs `f` with the cuBLAS handle of compute stream `index`.
    pub(crate) fn with_blas<R>(
        &self,
        index: usize,
        f: impl FnOnce(&CudaBlas) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let handles = self.inner.blas.as_ref().map_err(Clone::clone)?;
        self.bind()?;
        let handle = handles[index].lock().unwrap_or_else(|e| e.into_inner());
        f(&handle)
    }
}

impl Streams for Gpu {
    type Point = Recorded;

    fn record(&self, on: StreamId) -> Result<Recorded, Error> {
        Recorded::record(self, on.index)
    }

    fn wait(&self, on: StreamId, point: &Recorded) -> Result<(), Error> {
        self.cuda_stream(on.index)
            .wait(point.event())
            .map_err(|e| driver(e, self.what("making a stream wait for an event")))
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
