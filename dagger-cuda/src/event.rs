//! Pooled events: a point in a stream's work that other streams can wait for and the
//! host can poll. Events go back to their device's pool when the last user lets go.

use std::sync::{Arc, Weak};
use std::time::Duration;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::CudaEvent;
use dagger_core::Error;

use crate::access::{StreamId, StreamPoint};
use crate::device::{Gpu, GpuInner};
use crate::error::driver;

/// Something the host can poll for completion: a recorded event, or a fake in tests.
pub trait Completion: Send + Sync {
    /// Whether the work before it is done; `Err(Error::Device)` once the device has failed.
    fn is_done(&self) -> Result<bool, Error>;
}

/// A recorded event; clones share it.
#[derive(Clone)]
pub struct Recorded(Arc<Point>);

struct Point {
    event: Option<CudaEvent>,
    stream: StreamId,
    /// Weak: idle pinned blocks and watched completions hold points, and must not keep
    /// their device open.
    gpu: Weak<GpuInner>,
}

impl Drop for Point {
    fn drop(&mut self) {
        if let (Some(event), Some(gpu)) = (self.event.take(), self.gpu.upgrade()) {
            // Re-recording a reused event does not disturb waits issued before it.
            gpu.events.give_back(event);
        }
    }
}

impl Recorded {
    /// Records a pooled event at the current end of stream `index`'s work.
    pub(crate) fn record(gpu: &Gpu, index: usize) -> Result<Self, Error> {
        let ctx = &gpu.inner.ctx;
        let event = gpu.inner.events.take(|| {
            ctx.new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING))
                .map_err(|e| driver(e, gpu.what("creating an event")))
        })?;
        event
            .record(gpu.cuda_stream(index))
            .map_err(|e| driver(e, gpu.what("recording an event")))?;
        Ok(Recorded(Arc::new(Point {
            event: Some(event),
            stream: gpu.stream_id(index),
            gpu: Arc::downgrade(&gpu.inner),
        })))
    }

    pub(crate) fn event(&self) -> &CudaEvent {
        self.0.event.as_ref().expect("held until dropped")
    }

    /// Blocks the calling thread until the work before the event is done. On a worker
    /// thread that is not already inside such a wait, other tasks run meanwhile (one level
    /// only: a task run here that waits too polls, so waits never nest without bound on
    /// the stack); elsewhere the thread polls with growing pauses.
    pub(crate) fn wait(&self) -> Result<(), Error> {
        thread_local! {
            static WAITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        /// Clears the flag when the outermost wait ends, however it ends.
        struct Outermost;
        impl Drop for Outermost {
            fn drop(&mut self) {
                WAITING.with(|w| w.set(false));
            }
        }
        let outermost = (!WAITING.with(|w| w.replace(true))).then_some(Outermost);
        let may_yield = outermost.is_some() && rayon::current_thread_index().is_some();
        let mut pause = Duration::from_micros(2);
        while !self.is_done()? {
            if may_yield && rayon::yield_now() == Some(rayon::Yield::Executed) {
                continue;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_micros(100));
        }
        Ok(())
    }
}

impl Completion for Recorded {
    fn is_done(&self) -> Result<bool, Error> {
        self.event()
            .try_is_complete()
            .map_err(|e| driver(e, "the device failed before this work finished"))
    }
}

impl StreamPoint for Recorded {
    fn stream(&self) -> StreamId {
        self.0.stream
    }
}

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Recorded").field(&self.0.stream).finish()
    }
}
