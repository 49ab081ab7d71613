//! Dependency translation: which earlier GPU operations a new one on some stream must wait
//! for, so that buffers are read after they are written and written after they are read,
//! whatever stream each operation ran on. dagger's memory is its own (cudarc's per-buffer
//! event tracking never sees it); this is what orders it, and what turns an edge of the
//! task graph between two GPU tasks into a stream wait instead of a CPU wait.
//!
//! The rules are generic over [`Streams`] (record a point, make a stream wait for one), so
//! the CPU tests drive them with a recording fake instead of a GPU. Logs are locked one at
//! a time, never two at once: an operation may name one buffer twice, and two threads may
//! name the same buffers in opposite orders.

use std::sync::{Mutex, MutexGuard};

use dagger_core::Error;

/// A point in one stream's work (a recorded event).
pub trait StreamPoint: Clone {
    /// The stream it was recorded on.
    fn stream(&self) -> StreamId;
}

/// Identifies one stream of one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    /// The opened device (one number per `Gpu::open_with`, not the ordinal).
    pub device: usize,
    /// The stream's index on that device.
    pub index: usize,
}

/// The operations on one buffer that later ones may have to wait for: the last write,
/// and the reads since it (at most one per stream: a later read on a stream implies the
/// earlier ones there).
#[derive(Debug)]
pub struct AccessLog<E> {
    last_write: Option<E>,
    reads: Vec<E>,
}

impl<E> Default for AccessLog<E> {
    fn default() -> Self {
        AccessLog {
            last_write: None,
            reads: Vec::new(),
        }
    }
}

impl<E: StreamPoint> AccessLog<E> {
    /// What a read on `stream` waits for: the last write, unless the stream itself did it
    /// (stream order already covers that).
    pub fn before_read(&self, stream: StreamId) -> Vec<E> {
        self.last_write
            .iter()
            .filter(|e| e.stream() != stream)
            .cloned()
            .collect()
    }

    /// What a write on `stream` waits for: the last write and every read since, except
    /// those on `stream`.
    pub fn before_write(&self, stream: StreamId) -> Vec<E> {
        self.last_write
            .iter()
            .chain(&self.reads)
            .filter(|e| e.stream() != stream)
            .cloned()
            .collect()
    }

    /// Records a read that ends at `point`.
    pub fn read(&mut self, point: E) {
        self.reads.retain(|e| e.stream() != point.stream());
        self.reads.push(point);
    }

    /// Records a write that ends at `point`; earlier reads are now ordered before it.
    pub fn write(&mut self, point: E) {
        self.reads.clear();
        self.last_write = Some(point);
    }

    /// The stream of the last write, if any.
    pub fn last_writer(&self) -> Option<StreamId> {
        self.last_write.as_ref().map(StreamPoint::stream)
    }

    /// The operations whose completion means every use is complete (to wait for before
    /// the buffer is freed): the reads since the last write (each was ordered after it),
    /// or else the last write.
    pub fn pending(&self) -> impl Iterator<Item = &E> {
        let write = if self.reads.is_empty() {
            self.last_write.as_ref()
        } else {
            None
        };
        write.into_iter().chain(&self.reads)
    }
}

/// Which way an operation uses a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Reads it (any number of reads may run at once).
    Read,
    /// Writes it.
    Write,
}

/// The driver calls the ordering rules need: the real device, or a fake in tests.
pub trait Streams {
    /// A recorded point of a stream's work.
    type Point: StreamPoint;
    /// Records a point at the current end of `on`'s work.
    fn record(&self, on: StreamId) -> Result<Self::Point, Error>;
    /// Makes `on` wait (on the GPU) until `point` is reached.
    fn wait(&self, on: StreamId, point: &Self::Point) -> Result<(), Error>;
}

/// The buffers an operation uses, each with its access log and the way it uses it.
pub type Uses<'a, E> = [(&'a Mutex<AccessLog<E>>, Use)];

fn lock<E>(log: &Mutex<AccessLog<E>>) -> MutexGuard<'_, AccessLog<E>> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stream a new operation should go to so that it waits for as little as possible on
/// other streams: the stream that last wrote a buffer the operation writes (a chain of
/// updates stays on one stream), else one that last wrote a buffer it reads. `None` when
/// its buffers have no history (then any stream will do: independent work spreads out).
/// The logs are locked one at a time.
pub fn place<E: StreamPoint>(uses: &Uses<'_, E>) -> Option<StreamId> {
    let mut read_choice = None;
    for (log, how) in uses {
        let writer = lock(log).last_writer();
        match (writer, how) {
            (Some(stream), Use::Write) => return Some(stream),
            (Some(stream), Use::Read) => {
                read_choice.get_or_insert(stream);
            }
            (None, _) => {}
        }
    }
    read_choice
}

/// Makes `on` wait for the earlier operations that `uses` depends on.
pub fn order_after<S: Streams>(
    streams: &S,
    on: StreamId,
    uses: &Uses<'_, S::Point>,
) -> Result<(), Error> {
    for (log, how) in uses {
        // The guard is dropped before the driver call and before the next log is locked.
        let waits = match how {
            Use::Read => lock(log).before_read(on),
            Use::Write => lock(log).before_write(on),
        };
        for point in &waits {
            streams.wait(on, point)?;
        }
    }
    Ok(())
}

/// Records a point after the operation just queued on `on`, and enters it in each log.
pub fn mark_done<S: Streams>(
    streams: &S,
    on: StreamId,
    uses: &Uses<'_, S::Point>,
) -> Result<S::Point, Error> {
    let point = streams.record(on)?;
    for (log, how) in uses {
        let mut log = lock(log);
        match how {
            Use::Read => log.read(point.clone()),
            Use::Write => log.write(point.clone()),
        }
    }
    Ok(point)
}

/// Where and after what a buffer's memory is freed.
#[derive(Debug, PartialEq)]
pub struct Release<E> {
    /// The stream the free is queued on.
    pub stream: StreamId,
    /// What that stream waits for first.
    pub waits: Vec<E>,
}

/// The free-on-which-stream rule. The free must follow the allocation and every pending
/// use, but must not make a busy stream wait: with no use, it goes to the stream the
/// memory was allocated on (`allocated_on`); when every pending use is on one stream, it
/// goes there (stream order covers it, and that use followed the allocation); otherwise
/// it goes to `release`, a stream that does nothing else, which waits for each use. A copy
/// stream never waits for a kernel.
pub fn release<E: StreamPoint>(
    log: &AccessLog<E>,
    allocated_on: StreamId,
    release: StreamId,
) -> Release<E> {
    let mut pending = log.pending();
    let Some(first) = pending.next() else {
        return Release {
            stream: allocated_on,
            waits: Vec::new(),
        };
    };
    let stream = first.stream();
    if log.pending().all(|point| point.stream() == stream) {
        return Release {
            stream,
            waits: Vec::new(),
        };
    }
    Release {
        stream: release,
        waits: log.pending().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Point(usize, &'static str);
    impl StreamPoint for Point {
        fn stream(&self) -> StreamId {
            StreamId {
                device: 0,
                index: self.0,
            }
        }
    }
    fn s(index: usize) -> StreamId {
        StreamId { device: 0, index }
    }

    #[test]
    fn a_read_waits_for_the_last_write_on_another_stream_only() {
        let mut log = AccessLog::default();
        assert!(
            log.before_read(s(0)).is_empty(),
            "a fresh buffer has no producer"
        );
        log.write(Point(0, "upload"));
        assert_eq!(log.before_read(s(1)), vec![Point(0, "upload")]);
        assert!(
            log.before_read(s(0)).is_empty(),
            "same stream: ordered already"
        );
    }

    #[test]
    fn a_write_waits_for_the_last_write_and_every_read_since() {
        let mut log = AccessLog::default();
        log.write(Point(0, "w1"));
        log.read(Point(1, "r1"));
        log.read(Point(2, "r2"));
        let mut waits = log.before_write(s(3));
        waits.sort_by_key(|p| p.0);
        assert_eq!(waits, vec![Point(0, "w1"), Point(1, "r1"), Point(2, "r2")]);
        assert_eq!(log.before_write(s(1)), vec![Point(0, "w1"), Point(2, "r2")]);
        log.write(Point(3, "w2"));
        assert_eq!(
            log.before_write(s(0)),
            vec![Point(3, "w2")],
            "reads are cleared"
        );
        assert_eq!(log.pending().count(), 1);
    }

    #[test]
    fn later_reads_on_a_stream_replace_earlier_ones() {
        let mut log = AccessLog::default();
        for i in 0..100 {
            log.read(Point(i % 3, "r"));
        }
        assert_eq!(log.pending().count(), 3, "one read per stream is enough");
    }

    #[test]
    fn a_new_operation_prefers_the_stream_that_wrote_what_it_writes() {
        let (x, y, z) = (
            Mutex::new(AccessLog::default()),
            Mutex::new(AccessLog::default()),
            Mutex::new(AccessLog::<Point>::default()),
        );
        assert_eq!(
            place(&[(&x, Use::Write), (&z, Use::Read)]),
            None,
            "no history: free choice"
        );
        x.lock().unwrap().write(Point(2, "x"));
        y.lock().unwrap().write(Point(1, "y"));
        assert_eq!(
            place(&[(&x, Use::Read), (&y, Use::Write)]),
            Some(s(1)),
            "the written buffer wins"
        );
        assert_eq!(
            place(&[(&x, Use::Read), (&z, Use::Write)]),
            Some(s(2)),
            "else a read one"
        );
        y.lock().unwrap().read(Point(3, "r"));
        assert_eq!(
            place(&[(&y, Use::Write)]),
            Some(s(1)),
            "reads do not move the writer"
        );
    }

    /// A recording stand-in for the driver: points are numbered, and every wait and record
    /// is logged.
    #[derive(Default)]
    struct FakeStreams {
        calls: Mutex<Vec<String>>,
        next: std::sync::atomic::AtomicUsize,
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Numbered(usize, usize);
    impl StreamPoint for Numbered {
        fn stream(&self) -> StreamId {
            s(self.0)
        }
    }

    impl Streams for FakeStreams {
        type Point = Numbered;
        fn record(&self, on: StreamId) -> Result<Numbered, Error> {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.calls
                .lock()
                .unwrap()
                .push(format!("record e{n} on s{}", on.index));
            Ok(Numbered(on.index, n))
        }
        fn wait(&self, on: StreamId, point: &Numbered) -> Result<(), Error> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("s{} waits for e{}", on.index, point.1));
            Ok(())
        }
    }

    impl FakeStreams {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    /// One operation as the device code does it: place, order, queue, record.
    fn operate(streams: &FakeStreams, fallback: usize, uses: &Uses<'_, Numbered>) -> Numbered {
        let on = place(uses).unwrap_or(s(fallback));
        order_after(streams, on, uses).unwrap();
        mark_done(streams, on, uses).unwrap()
    }

    #[test]
    fn one_buffer_named_twice_is_ordered_without_deadlock() {
        let streams = FakeStreams::default();
        let a = Mutex::new(AccessLog::default());
        operate(&streams, 1, &[(&a, Use::Write)]);
        streams.take();
        // `matmul(a, a)` and `.read(&x).read(&x)`: one log twice (it deadlocked before).
        crate::testing::with_timeout(10, move || {
            operate(&streams, 2, &[(&a, Use::Read), (&a, Use::Read)]);
            assert_eq!(
                streams.take(),
                vec!["record e1 on s1"],
                "placed on the writer's stream, so nothing to wait for"
            );
            assert_eq!(
                a.lock().unwrap().pending().count(),
                1,
                "both reads are one point"
            );
        });
    }

    #[test]
    fn opposite_buffer_orders_on_two_threads_do_not_deadlock() {
        crate::testing::with_timeout(30, || {
            let streams = FakeStreams::default();
            let (a, b) = (
                Mutex::new(AccessLog::default()),
                Mutex::new(AccessLog::default()),
            );
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    for _ in 0..20_000 {
                        operate(&streams, 0, &[(&a, Use::Read), (&b, Use::Read)]);
                    }
                });
                scope.spawn(|| {
                    for _ in 0..20_000 {
                        operate(&streams, 1, &[(&b, Use::Read), (&a, Use::Read)]);
                    }
                });
            });
            assert!(a.lock().unwrap().pending().count() <= 2);
        });
    }

    #[test]
    fn a_write_after_reads_on_two_streams_waits_for_both() {
        let streams = FakeStreams::default();
        let x = Mutex::new(AccessLog::default());
        operate(&streams, 0, &[(&x, Use::Write)]); // e0 on s0
        order_after(&streams, s(1), &[(&x, Use::Read)]).unwrap();
        mark_done(&streams, s(1), &[(&x, Use::Read)]).unwrap(); // e1 on s1
        order_after(&streams, s(2), &[(&x, Use::Read)]).unwrap();
        mark_done(&streams, s(2), &[(&x, Use::Read)]).unwrap(); // e2 on s2
        streams.take();
        order_after(&streams, s(1), &[(&x, Use::Write)]).unwrap();
        assert_eq!(
            streams.take(),
            vec!["s1 waits for e0", "s1 waits for e2"],
            "its own stream's read is ordered already"
        );
    }

    #[test]
    fn a_buffer_used_on_one_stream_is_freed_there_without_waiting() {
        let mut log = AccessLog::default();
        let release_stream = s(9);
        assert_eq!(
            release(&log, s(4), release_stream),
            Release {
                stream: s(4),
                waits: vec![]
            },
            "never used (its first write failed): freed in its allocation's order"
        );
        log.write(Point(4, "upload"));
        assert_eq!(
            release(&log, s(4), release_stream),
            Release {
                stream: s(4),
                waits: vec![]
            },
            "uploaded and dropped: freed on the upload stream, in its order"
        );
        log.read(Point(4, "again"));
        assert_eq!(release(&log, s(4), release_stream).stream, s(4));
    }

    #[test]
    fn a_buffer_used_on_several_streams_is_freed_on_the_release_stream() {
        // Uploaded on s4, read by a kernel on s0 and by a download on s5: freeing it on
        // the upload stream would make later uploads wait for the kernel and the download.
        let mut log = AccessLog::default();
        log.write(Point(4, "upload"));
        log.read(Point(0, "kernel"));
        log.read(Point(5, "download"));
        let plan = release(&log, s(4), s(9));
        assert_eq!(plan.stream, s(9), "no working stream waits");
        assert_eq!(
            plan.waits,
            vec![Point(0, "kernel"), Point(5, "download")],
            "after every pending use (the write is covered by the reads that waited for it)"
        );
    }
}
