//! Pooled events: a point in a stream's work that other streams can wait for and the
//! host can poll. Events go back to their device's pool when the last user lets go.

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::CudaEvent;
use dagger_core::Error;

use crate::access::{StreamId, StreamPoint};
use crate::device::{Gpu, GpuInner};
use crate::error::driver;
use crate::stream::Stream;

/// A recorded event; clones share it.
#[derive(Clone)]
pub(crate) struct Recorded(Arc<Point>);

struct Point {
    event: Option<CudaEvent>,
    stream: StreamId,
    gpu: Arc<GpuInner>,
}

impl Drop for Point {
    fn drop(&mut self) {
        if let Some(event) = self.event.take() {
            // Re-recording a reused event does not disturb waits issued before it.
            self.gpu.events.give_back(event);
        }
    }
}

impl Recorded {
    /// Records a pooled event at the current end of `stream`'s work.
    pub(crate) fn record(gpu: &Gpu, stream: &Stream) -> Result<Self, Error> {
        let ctx = &gpu.inner.ctx;
        let event = gpu.inner.events.take(|| {
            ctx.new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING))
                .map_err(|e| driver(e, gpu.what("creating an event")))
        })?;
        event
            .record(stream.cuda())
            .map_err(|e| driver(e, gpu.what("recording an event")))?;
        Ok(Recorded(Arc::new(Point {
            event: Some(event),
            stream: stream.id(),
            gpu: gpu.inner.clone(),
        })))
    }

    pub(crate) fn event(&self) -> &CudaEvent {
        self.0.event.as_ref().expect("held until dropped")
    }

    /// Whether the work before the event is done.
    pub(crate) fn is_done(&self) -> Result<bool, Error> {
        self.event()
            .try_is_complete()
            .map_err(|e| Error::Device(format!("polling an event: {e}")))
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
