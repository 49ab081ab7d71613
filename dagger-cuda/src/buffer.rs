//! Memory: device buffers (with their access logs), pinned host buffers, and the copies
//! between them, each queued on the device's copy streams as its own operation.

use std::sync::Mutex;
use std::time::Duration;

use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, PinnedHostSlice, ValidAsZeroBits};
use dagger_core::Error;

use crate::access::AccessLog;
use crate::device::Gpu;
use crate::error::{bad_input, driver};
use crate::event::Recorded;
use crate::stream::Use;

/// Element types that can live on a device: plain numbers and `#[repr(C)]` structs of them.
pub trait Element: DeviceRepr + ValidAsZeroBits + Copy + Send + Sync + 'static {}
impl<T: DeviceRepr + ValidAsZeroBits + Copy + Send + Sync + 'static> Element for T {}

/// An array in device memory. Every operation on it (kernels, cuBLAS, copies, on any
/// stream) is ordered after the ones it depends on through the buffer's access log, on
/// the GPU: read after write, write after read and write after write.
pub struct DeviceBuffer<T> {
    slice: Option<CudaSlice<T>>,
    len: usize,
    log: Mutex<AccessLog<Recorded>>,
    gpu: Gpu,
    /// The pinned copy of the data an upload came from, kept until the buffer goes.
    staging: Option<PinnedHostSlice<T>>,
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

    pub(crate) fn slice(&self) -> &CudaSlice<T> {
        self.slice.as_ref().expect("present until dropped")
    }

    pub(crate) fn parts_mut(&mut self) -> (&mut CudaSlice<T>, &Mutex<AccessLog<Recorded>>) {
        (
            self.slice.as_mut().expect("present until dropped"),
            &self.log,
        )
    }

    /// The device address (for kernel parameters).
    pub(crate) fn device_ptr(&self) -> u64 {
        let slice = self.slice();
        // Event tracking is off, so this records nothing.
        let (ptr, _record) = slice.device_ptr(slice.stream());
        ptr
    }
}

impl<T> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        let Some(slice) = self.slice.take() else {
            return;
        };
        // The free below is a driver call on this thread: it needs the device's context.
        let _ = self.gpu.inner.ctx.bind_to_thread();
        // The memory is freed in its allocation stream's order: make that stream wait for
        // every operation still using it, wherever it runs.
        let log = self.log.get_mut().unwrap_or_else(|e| e.into_inner());
        for point in log.pending() {
            let _ = slice.stream().wait(point.event());
        }
        drop(slice);
    }
}

/// Page-locked host memory that copies to and from the device run from at full speed.
pub struct HostBuffer<T> {
    pinned: PinnedHostSlice<T>,
}

impl<T> std::fmt::Debug for HostBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuffer")
            .field("len", &self.pinned.len())
            .finish()
    }
}

impl<T: Element> HostBuffer<T> {
    /// Its number of elements.
    pub fn len(&self) -> usize {
        self.pinned.len()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.pinned.is_empty()
    }

    /// The contents, once copies into it are done (blocks until then).
    pub fn as_slice(&self) -> Result<&[T], Error> {
        self.pinned
            .as_slice()
            .map_err(|e| driver(e, "reading a pinned buffer"))
    }

    /// The contents, writable, once copies from and into it are done.
    pub fn as_mut_slice(&mut self) -> Result<&mut [T], Error> {
        self.pinned
            .as_mut_slice()
            .map_err(|e| driver(e, "writing a pinned buffer"))
    }
}

/// Device data copied back into pinned host memory: ready when the copy is done.
pub struct HostCopy<T> {
    pinned: Option<PinnedHostSlice<T>>,
    done: Recorded,
}

impl<T> std::fmt::Debug for HostCopy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCopy")
            .field("len", &self.pinned.as_ref().map_or(0, |p| p.len()))
            .finish()
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
        let mut pause = Duration::from_micros(2);
        while !self.done.is_done()? {
            if rayon::current_thread_index().is_some()
                && rayon::yield_now() == Some(rayon::Yield::Executed)
            {
                continue;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_micros(100));
        }
        match &self.pinned {
            None => Ok(&[]),
            Some(pinned) => pinned
                .as_slice()
                .map_err(|e| driver(e, "reading a downloaded buffer")),
        }
    }

    /// The data as a `Vec`, once the copy has landed.
    pub fn to_vec(&self) -> Result<Vec<T>, Error> {
        self.wait().map(<[T]>::to_vec)
    }
}

impl crate::Stream {
    /// A device buffer of `len` zeros, allocated and zeroed in this stream's order (so
    /// that a kernel on this stream can fill it without waiting for another stream). On a
    /// lent stream that no operation has placed yet, the zeroing goes to the upload stream
    /// instead, so that the buffers the task reads still choose its stream.
    pub fn zeros<T: Element>(&self, len: usize) -> Result<DeviceBuffer<T>, Error> {
        if !self.is_placed() {
            return self.gpu().upload_stream().zeros(len);
        }
        let gpu = self.gpu();
        let mut buffer = gpu.alloc::<T>(len, self)?;
        let (slice, log) = buffer.parts_mut();
        self.cuda()
            .memset_zeros(slice)
            .map_err(|e| driver(e, gpu.what("zeroing a buffer")))?;
        self.mark_done(&[(log, Use::Write)])?;
        Ok(buffer)
    }
}

impl Gpu {
    /// A device buffer of `len` zeros (zeroed on the upload stream).
    pub fn zeros<T: Element>(&self, len: usize) -> Result<DeviceBuffer<T>, Error> {
        self.upload_stream().zeros(len)
    }

    /// Device memory for `len` elements on `stream`'s order, not initialised.
    pub(crate) fn alloc<T: Element>(
        &self,
        len: usize,
        stream: &crate::Stream,
    ) -> Result<DeviceBuffer<T>, Error> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            bad_input(format!("a buffer of {len} elements does not fit in memory"))
        })?;
        // SAFETY: the memory is written (zeroed or copied into) before any read that the
        // access log orders after that write.
        let slice = unsafe { stream.cuda().alloc::<T>(len.max(1)) }
            .map_err(|e| driver(e, self.what(format!("allocating {bytes} bytes"))))?;
        Ok(DeviceBuffer {
            slice: Some(slice),
            len,
            log: Mutex::new(AccessLog::default()),
            gpu: self.clone(),
            staging: None,
        })
    }

    /// Pinned host memory for `len` elements, zeroed.
    pub fn host_buffer<T: Element>(&self, len: usize) -> Result<HostBuffer<T>, Error> {
        let mut pinned = self.pinned::<T>(len)?;
        pinned
            .as_mut_slice()
            .map_err(|e| driver(e, "zeroing a pinned buffer"))?
            .iter_mut()
            // SAFETY: `T: ValidAsZeroBits`.
            .for_each(|x| *x = unsafe { std::mem::zeroed() });
        Ok(HostBuffer { pinned })
    }

    fn pinned<T: Element>(&self, len: usize) -> Result<PinnedHostSlice<T>, Error> {
        // Flags 0: cached, fast for the host to read (write-combined memory is not).
        // SAFETY: callers write every element before reading any.
        unsafe { self.inner.ctx.alloc_pinned_with_flags::<T>(len.max(1), 0) }
            .map_err(|e| driver(e, self.what(format!("allocating {len} pinned elements"))))
    }

    /// Copies `data` to a new device buffer, on the upload stream: staged through pinned
    /// memory so that the copy is asynchronous and overlaps kernels.
    pub fn upload<T: Element>(&self, data: &[T]) -> Result<DeviceBuffer<T>, Error> {
        let stream = self.upload_stream();
        stream.note(std::mem::size_of_val(data));
        let mut staging = self.pinned::<T>(data.len())?;
        staging
            .as_mut_slice()
            .map_err(|e| driver(e, "filling a staging buffer"))?[..data.len()]
            .copy_from_slice(data);
        let mut buffer = self.alloc::<T>(data.len(), &stream)?;
        let (slice, log) = buffer.parts_mut();
        stream
            .cuda()
            .memcpy_htod(&staging, slice)
            .map_err(|e| driver(e, self.what("copying to the device")))?;
        stream.mark_done(&[(log, Use::Write)])?;
        buffer.staging = Some(staging);
        Ok(buffer)
    }

    /// Copies `src` into `dst`, on the upload stream, after `dst`'s earlier uses.
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
        stream.note(src.len() * std::mem::size_of::<T>());
        stream.same_device(dst.gpu())?;
        let (slice, log) = dst.parts_mut();
        stream.order_after(&[(log, Use::Write)])?;
        stream
            .cuda()
            .memcpy_htod(&src.pinned, slice)
            .map_err(|e| driver(e, self.what("copying to the device")))?;
        stream.mark_done(&[(log, Use::Write)])
    }

    /// Copies `src` back to pinned host memory, on the download stream, after the
    /// operations that write it. The result is ready when [`HostCopy::wait`] returns.
    pub fn download<T: Element>(&self, src: &DeviceBuffer<T>) -> Result<HostCopy<T>, Error> {
        let stream = self.download_stream();
        stream.note(src.len() * std::mem::size_of::<T>());
        stream.same_device(src.gpu())?;
        let mut pinned = self.pinned::<T>(src.len())?;
        stream.order_after(&[(src.log(), Use::Read)])?;
        stream
            .cuda()
            .memcpy_dtoh(src.slice(), &mut pinned)
            .map_err(|e| driver(e, self.what("copying to the host")))?;
        let done = stream.mark_done_at(&[(src.log(), Use::Read)])?;
        Ok(HostCopy {
            done,
            pinned: (!src.is_empty()).then_some(pinned),
        })
    }

    /// Copies `src` into `dst`, on the download stream.
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
        stream.note(src.len() * std::mem::size_of::<T>());
        stream.same_device(src.gpu())?;
        stream.order_after(&[(src.log(), Use::Read)])?;
        stream
            .cuda()
            .memcpy_dtoh(src.slice(), &mut dst.pinned)
            .map_err(|e| driver(e, self.what("copying to the host")))?;
        stream.mark_done(&[(src.log(), Use::Read)])
    }
}
