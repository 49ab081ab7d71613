//! Memory: device buffers (with their access logs), pinned host buffers, and the copies
//! between them, each queued on the device's copy streams as its own operation. Device
//! memory comes from the stream-ordered allocator (`cuMemAllocAsync`) and is freed by the
//! rule of `access::release`; pinned memory comes from the device's caching pool.

use std::marker::PhantomData;
use std::sync::Mutex;

use cudarc::driver::result as cuda;
use cudarc::driver::sys::{self, CUdeviceptr};
use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use dagger_core::Error;

use crate::access::{self, AccessLog, StreamId, Streams, Use};
use crate::device::Gpu;
use crate::error::{bad_input, driver};
use crate::event::{Completion, Recorded};
use crate::pinned::Block;
use crate::stream::Stream;

/// Element types that can live on a device: plain numbers and `#[repr(C)]` structs of them.
pub trait Element: DeviceRepr + ValidAsZeroBits + Copy + Send + Sync + 'static {}
impl<T: DeviceRepr + ValidAsZeroBits + Copy + Send + Sync + 'static> Element for T {}

/// The host, as a "stream" in host buffers' logs: the CPU waits for every copy.
const HOST: StreamId = StreamId {
    device: usize::MAX,
    index: usize::MAX,
};

/// An array in device memory. Every operation on it (kernels, cuBLAS, copies, on any
/// stream) is ordered after the ones it depends on through the buffer's access log, on
/// the GPU: read after write, write after read and write after write.
pub struct DeviceBuffer<T> {
    /// The device address; 0 for an empty buffer (nothing is allocated).
    ptr: CUdeviceptr,
    len: usize,
    /// The stream the memory was allocated on (what a free with no use follows).
    allocated_on: usize,
    log: Mutex<AccessLog<Recorded>>,
    gpu: Gpu,
    _elements: PhantomData<T>,
}

impl<T> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("len", &self.len)
            .field("device", &self.gpu.info().ordinal)
            .finish()
    }
}

impl<T> DeviceBuffer<T> {
    /// Its number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub(crate) fn log(&self) -> &Mutex<AccessLog<Recorded>> {
        &self.log
    }

    /// Whether every operation queued on it so far is done (polls; never blocks).
    pub fn is_idle(&self) -> Result<bool, Error> {
        let pending: Vec<Recorded> = {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.pending().cloned().collect()
        };
        for point in &pending {
            if !point.is_done()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The device address (for kernel parameters; 0 when empty).
    pub(crate) fn device_ptr(&self) -> u64 {
        self.ptr
    }
}

impl<T> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if self.ptr == 0 || self.gpu.is_broken() {
            // Nothing allocated, or the logs may miss a use: keep (leak) the memory.
            return;
        }
        let log = self.log.get_mut().unwrap_or_else(|e| e.into_inner());
        let allocated_on = self.gpu.stream_id(self.allocated_on);
        let plan = access::release(log, allocated_on, self.gpu.release_stream());
        let ordered = self.gpu.bind().is_ok()
            && plan
                .waits
                .iter()
                .all(|point| self.gpu.wait(plan.stream, point).is_ok());
        if !ordered && self.gpu.synchronize().is_err() {
            // Neither ordered nor known to be idle: keep the memory rather than let a
            // later allocation share it with work still running. The context is broken.
            return;
        }
        let stream = self.gpu.cuda_stream(plan.stream.index).cu_stream();
        // SAFETY: `ptr` came from `cuMemAllocAsync` on this device and is freed once (it
        // is private to this buffer). The free is queued after the allocation and every
        // use: on the allocation stream when there was no use, on the one stream that ran
        // them all, or on the release stream after waiting for each (or after a device
        // synchronization); the device is not broken, so the log knows every use. No
        // reference to the memory outlives `self`.
        // A failed free leaks; it is not reported on an unrelated later call.
        let _ = unsafe { cuda::free_async(self.ptr, stream) };
    }
}

/// Page-locked host memory that copies to and from the device run from at full speed.
/// Its accessors wait for the copies that use it.
pub struct HostBuffer<T> {
    block: Option<Block>,
    len: usize,
    /// Copies from it (reads) and into it (writes), like a device buffer's log.
    copies: Mutex<AccessLog<Recorded>>,
    gpu: Gpu,
    _elements: PhantomData<T>,
}

impl<T> std::fmt::Debug for HostBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuffer")
            .field("len", &self.len)
            .finish()
    }
}

/// Waits on the host for each point.
fn wait_all(points: &[Recorded]) -> Result<(), Error> {
    points.iter().try_for_each(Recorded::wait)
}

/// The elements of a pinned block.
///
/// # Safety
/// `block` holds at least `len` initialised `T`s, and no copy writes them meanwhile.
unsafe fn elements<T>(block: Option<&Block>, len: usize) -> &[T] {
    match block {
        // SAFETY: pinned blocks are page-aligned; the rest is the caller's promise.
        Some(block) => unsafe { std::slice::from_raw_parts(block.ptr().as_ptr().cast(), len) },
        None => &[],
    }
}

/// The elements of a pinned block, writable.
///
/// # Safety
/// As [`elements`], and no copy reads them meanwhile either.
unsafe fn elements_mut<T>(block: Option<&mut Block>, len: usize) -> &mut [T] {
    match block {
        // SAFETY: as above; `&mut Block` makes the view exclusive.
        Some(block) => unsafe { std::slice::from_raw_parts_mut(block.ptr().as_ptr().cast(), len) },
        None => &mut [],
    }
}

impl<T: Element> HostBuffer<T> {
    /// Its number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The contents, once copies into it are done (blocks until then).
    pub fn as_slice(&self) -> Result<&[T], Error> {
        self.gpu.usable()?;
        let writes = self.lock().before_read(HOST);
        wait_all(&writes)?;
        // SAFETY: zeroed or written at creation; the copy into it that the log knows of
        // is done, and a new one needs `&mut self`.
        Ok(unsafe { elements(self.block.as_ref(), self.len) })
    }

    /// The contents, writable, once copies from and into it are done (blocks until then).
    pub fn as_mut_slice(&mut self) -> Result<&mut [T], Error> {
        self.gpu.usable()?;
        let uses = self.lock().before_write(HOST);
        wait_all(&uses)?;
        // SAFETY: every copy from or into it is done, and a new one needs a borrow of
        // `self`, which the returned slice holds.
        Ok(unsafe { elements_mut(self.block.as_mut(), self.len) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AccessLog<Recorded>> {
        self.copies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Drop for HostBuffer<T> {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            let log = self.copies.get_mut().unwrap_or_else(|e| e.into_inner());
            let pending = log.pending().cloned().collect();
            self.gpu.give_back_block(block, pending);
        }
    }
}

/// Device data copied back into pinned host memory: ready when the copy is done.
pub struct HostCopy<T> {
    block: Option<Block>,
    len: usize,
    done: Recorded,
    gpu: Gpu,
    _elements: PhantomData<T>,
}

impl<T> std::fmt::Debug for HostCopy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCopy").field("len", &self.len).finish()
    }
}

impl<T: Element> HostCopy<T> {
    /// Whether the copy has landed.
    pub fn is_ready(&self) -> Result<bool, Error> {
        self.done.is_done()
    }

    /// The data, once the copy has landed. On a worker thread, other tasks run while the
    /// copy is in flight; elsewhere the thread polls.
    pub fn wait(&self) -> Result<&[T], Error> {
        self.done.wait()?;
        // SAFETY: the copy that fills the block is done, and nothing else writes it.
        Ok(unsafe { elements(self.block.as_ref(), self.len) })
    }

    /// The point the copy ends at.
    pub(crate) fn done_point(&self) -> Recorded {
        self.done.clone()
    }

    /// The data as a `Vec`, once the copy has landed.
    pub fn to_vec(&self) -> Result<Vec<T>, Error> {
        self.wait().map(<[T]>::to_vec)
    }
}

impl<T> Drop for HostCopy<T> {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            // Reused only once the copy into it is done, even if nobody waited for it.
            self.gpu.give_back_block(block, vec![self.done.clone()]);
        }
    }
}

impl Stream {
    /// A device buffer of `len` zeros, allocated and zeroed in this stream's order (so
    /// that a kernel on this stream can fill it without waiting for another stream). A
    /// lent stream that no operation has placed yet is placed now (see
    /// [`Stream::place_near`]).
    pub fn zeros<T: Element>(&self, len: usize) -> Result<DeviceBuffer<T>, Error> {
        let gpu = self.gpu();
        gpu.bind()?;
        let buffer = gpu.alloc::<T>(len, self)?;
        if buffer.ptr != 0 {
            // SAFETY: `ptr` holds `len` elements, allocated on this stream just before.
            unsafe {
                cuda::memset_d8_async(
                    buffer.ptr,
                    0,
                    len * std::mem::size_of::<T>(),
                    self.cuda().cu_stream(),
                )
            }
            .map_err(|e| driver(e, gpu.what("zeroing a buffer")))?;
            self.finish(&[(buffer.log(), Use::Write)])?;
        }
        Ok(buffer)
    }
}

impl Gpu {
    /// A device buffer of `len` zeros (zeroed on the next compute stream in turn).
    pub fn zeros<T: Element>(&self, len: usize) -> Result<DeviceBuffer<T>, Error> {
        self.stream().zeros(len)
    }

    /// Device memory for `len` elements on `stream`'s order, not initialised: the caller
    /// queues its first write on `stream` before anything else uses it, so that every
    /// later use, ordered after that write, is ordered after the allocation.
    pub(crate) fn alloc<T: Element>(
        &self,
        len: usize,
        stream: &Stream,
    ) -> Result<DeviceBuffer<T>, Error> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            bad_input(format!("a buffer of {len} elements does not fit in memory"))
        })?;
        let ptr = if bytes == 0 {
            0
        } else {
            self.usable()?;
            // SAFETY: the caller bound the context; the stream is this device's; the memory
            // is written (zeroed or copied into) before any read the access log orders
            // after that write.
            let alloc = || unsafe { cuda::malloc_async(stream.cuda().cu_stream(), bytes) };
            match alloc() {
                // Memory freed on other streams is reused only once those frees are done
                // (the pool may not add dependencies): wait for them, then try once more.
                Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                    self.synchronize()?;
                    alloc()
                }
                other => other,
            }
            .map_err(|e| driver(e, self.what(format!("allocating {bytes} bytes"))))?
        };
        Ok(DeviceBuffer {
            ptr,
            len,
            allocated_on: stream.id().index,
            log: Mutex::new(AccessLog::default()),
            gpu: self.clone(),
            _elements: PhantomData,
        })
    }

    /// A pinned block for `len` elements (none when empty).
    fn pinned_block<T>(&self, len: usize) -> Result<Option<Block>, Error> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            bad_input(format!("a buffer of {len} elements does not fit in memory"))
        })?;
        if bytes == 0 {
            return Ok(None);
        }
        self.inner.pinned.take(bytes).map(Some)
    }

    /// Hands a block back after a copy from or into it was queued and `Stream::finish`ed:
    /// after the copy's point, or, if none could be recorded, now (`finish` waited for the
    /// copy, or marked the device broken, and then the block is leaked).
    fn give_back_after(&self, block: Block, done: &Result<Recorded, Error>) {
        let after = done.iter().cloned().collect();
        self.give_back_block(block, after);
    }

    /// Pinned host memory for `len` elements, zeroed.
    pub fn host_buffer<T: Element>(&self, len: usize) -> Result<HostBuffer<T>, Error> {
        let block = self.pinned_block::<T>(len)?;
        if let Some(block) = &block {
            // SAFETY: the block is ours alone and holds at least `len` elements; all-zero
            // bytes are a valid `T` (`ValidAsZeroBits`).
            unsafe {
                std::ptr::write_bytes(block.ptr().as_ptr(), 0, len * std::mem::size_of::<T>())
            };
        }
        Ok(HostBuffer {
            block,
            len,
            copies: Mutex::new(AccessLog::default()),
            gpu: self.clone(),
            _elements: PhantomData,
        })
    }

    /// Copies `data` to a new device buffer, on the upload stream: staged through a
    /// cached pinned block so that the copy is asynchronous and overlaps kernels.
    pub fn upload<T: Element>(&self, data: &[T]) -> Result<DeviceBuffer<T>, Error> {
        let stream = self.upload_stream();
        let bytes = std::mem::size_of_val(data);
        stream.note(bytes);
        self.bind()?;
        let Some(block) = self.pinned_block::<T>(data.len())? else {
            return self.alloc::<T>(0, &stream);
        };
        let buffer = match self.alloc::<T>(data.len(), &stream) {
            Ok(buffer) => buffer,
            Err(error) => {
                self.give_back_block(block, vec![]);
                return Err(error);
            }
        };
        // SAFETY: the block is ours alone and holds at least `bytes`; `data` is other memory.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr().cast::<u8>(), block.ptr().as_ptr(), bytes)
        };
        // SAFETY: `buffer` holds `bytes`, allocated on this stream; the block stays pinned
        // and untouched until the copy's event is done (`give_back_after`).
        let copied = unsafe {
            sys::cuMemcpyHtoDAsync_v2(
                buffer.ptr,
                block.ptr().as_ptr().cast(),
                bytes,
                stream.cuda().cu_stream(),
            )
        }
        .result();
        if let Err(error) = copied {
            self.give_back_block(block, vec![]);
            return Err(driver(error, self.what("copying to the device")));
        }
        let done = stream.finish(&[(buffer.log(), Use::Write)]);
        self.give_back_after(block, &done);
        done.map(|_| buffer)
    }

    /// Copies `src` into `dst`, on the upload stream, after `src`'s earlier copies into it
    /// and `dst`'s earlier uses.
    pub fn upload_into<T: Element>(
        &self,
        src: &HostBuffer<T>,
        dst: &mut DeviceBuffer<T>,
    ) -> Result<(), Error> {
        if src.len() != dst.len() {
            return Err(bad_input(format!(
                "upload: the host buffer has {} elements, the device buffer {}",
                src.len(),
                dst.len()
            )));
        }
        let stream = self.upload_stream();
        stream.same_device(&src.gpu)?;
        stream.same_device(dst.gpu())?;
        let Some(block) = &src.block else {
            return Ok(());
        };
        let bytes = src.len() * std::mem::size_of::<T>();
        stream.note(bytes);
        let uses = [(&src.copies, Use::Read), (dst.log(), Use::Write)];
        stream.order_after(&uses)?;
        // SAFETY: both hold `bytes`; the copy is ordered after the other uses of both
        // (their logs), and both logs record it, so later uses wait for it.
        unsafe {
            sys::cuMemcpyHtoDAsync_v2(
                dst.ptr,
                block.ptr().as_ptr().cast(),
                bytes,
                stream.cuda().cu_stream(),
            )
        }
        .result()
        .map_err(|e| driver(e, self.what("copying to the device")))?;
        stream.finish(&uses).map(drop)
    }

    /// Copies `src` back to pinned host memory, on the download stream, after the
    /// operations that write it. The result is ready when [`HostCopy::wait`] returns.
    pub fn download<T: Element>(&self, src: &DeviceBuffer<T>) -> Result<HostCopy<T>, Error> {
        let stream = self.download_stream();
        stream.same_device(src.gpu())?;
        let bytes = src.len() * std::mem::size_of::<T>();
        stream.note(bytes);
        let uses = [(src.log(), Use::Read)];
        stream.order_after(&uses)?;
        let block = self.pinned_block::<T>(src.len())?;
        if let Some(staging) = &block {
            // SAFETY: the block is ours alone and holds `bytes`; `src` holds `bytes` and
            // the copy is ordered after its writes; the block is not read or reused
            // before the copy's event is done (`HostCopy::wait`, `Drop`).
            let copied = unsafe {
                sys::cuMemcpyDtoHAsync_v2(
                    staging.ptr().as_ptr().cast(),
                    src.ptr,
                    bytes,
                    stream.cuda().cu_stream(),
                )
            }
            .result();
            if let Err(error) = copied {
                let block = block.expect("a block was taken");
                self.give_back_block(block, vec![]);
                return Err(driver(error, self.what("copying to the host")));
            }
        }
        let done = stream.finish(&uses);
        match done {
            Ok(done) => Ok(HostCopy {
                block,
                len: src.len(),
                done,
                gpu: self.clone(),
                _elements: PhantomData,
            }),
            Err(error) => {
                if let Some(block) = block {
                    self.give_back_after(block, &Err(error.clone()));
                }
                Err(error)
            }
        }
    }

    /// Copies `src` into `dst`, on the download stream, after `src`'s writes and `dst`'s
    /// earlier copies; `dst`'s accessors wait for it.
    pub fn download_into<T: Element>(
        &self,
        src: &DeviceBuffer<T>,
        dst: &mut HostBuffer<T>,
    ) -> Result<(), Error> {
        if src.len() != dst.len() {
            return Err(bad_input(format!(
                "download: the device buffer has {} elements, the host buffer {}",
                src.len(),
                dst.len()
            )));
        }
        let stream = self.download_stream();
        stream.same_device(src.gpu())?;
        stream.same_device(&dst.gpu)?;
        let Some(block) = &dst.block else {
            return Ok(());
        };
        let bytes = src.len() * std::mem::size_of::<T>();
        stream.note(bytes);
        let uses = [(src.log(), Use::Read), (&dst.copies, Use::Write)];
        stream.order_after(&uses)?;
        // SAFETY: both hold `bytes`; the copy is ordered after the other uses of both, and
        // `dst`'s accessors wait for it through its log.
        unsafe {
            sys::cuMemcpyDtoHAsync_v2(
                block.ptr().as_ptr().cast(),
                src.ptr,
                bytes,
                stream.cuda().cu_stream(),
            )
        }
        .result()
        .map_err(|e| driver(e, self.what("copying to the host")))?;
        stream.finish(&uses).map(drop)
    }
}
