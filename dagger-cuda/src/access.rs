//! Dependency translation: which earlier GPU operations a new one on some stream must wait
//! for, so that buffers are read after they are written and written after they are read,
//! whatever stream each operation ran on. This is what replaces cudarc's own per-buffer
//! event tracking (switched off), and what turns an edge of the task graph between two GPU
//! tasks into a stream wait instead of a CPU wait.

/// A point in one stream's work (a recorded event).
pub trait StreamPoint: Clone {
    /// The stream it was recorded on.
    fn stream(&self) -> StreamId;
}

/// Identifies one stream of one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    /// The device ordinal.
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

    /// Every operation still recorded (to wait for before the buffer is freed).
    pub fn pending(&self) -> impl Iterator<Item = &E> {
        self.last_write.iter().chain(&self.reads)
    }
}

/// The stream a new operation should go to so that it waits for as little as possible on
/// other streams: the stream that last wrote a buffer the operation writes (a chain of
/// updates stays on one stream), else one that last wrote a buffer it reads. `None` when
/// its buffers have no history (then any stream will do: independent work spreads out).
pub fn preferred_stream<'a, E: StreamPoint + 'a>(
    uses: impl IntoIterator<Item = (&'a AccessLog<E>, bool)>,
) -> Option<StreamId> {
    let mut read_choice = None;
    for (log, writes) in uses {
        match (log.last_writer(), writes) {
            (Some(stream), true) => return Some(stream),
            (Some(stream), false) => {
                read_choice.get_or_insert(stream);
            }
            (None, _) => {}
        }
    }
    read_choice
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
        let (mut x, mut y, z) = (
            AccessLog::default(),
            AccessLog::default(),
            AccessLog::<Point>::default(),
        );
        assert_eq!(
            preferred_stream([(&x, true), (&z, false)]),
            None,
            "no history: free choice"
        );
        x.write(Point(2, "x"));
        y.write(Point(1, "y"));
        assert_eq!(
            preferred_stream([(&x, false), (&y, true)]),
            Some(s(1)),
            "the written buffer wins"
        );
        assert_eq!(
            preferred_stream([(&x, false), (&z, true)]),
            Some(s(2)),
            "else a read one"
        );
        y.read(Point(3, "r"));
        assert_eq!(
            preferred_stream([(&y, true)]),
            Some(s(1)),
            "reads do not move the writer"
        );
    }
}
