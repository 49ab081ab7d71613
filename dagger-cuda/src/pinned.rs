//! A per-device caching allocator of page-locked host memory. Pinning and unpinning are
//! slow (`cuMemFreeHost` synchronizes the whole device), so blocks are kept and reused:
//! a block comes back with the events of the copies still using it, and is handed out
//! again only once they are all done, as PyTorch's caching host allocator does.

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dagger_core::Error;

use crate::event::Completion;

/// Where blocks come from: the driver, or a fake in tests.
pub trait HostMemory: Send + Sync {
    /// `bytes` of pinned memory, page-aligned.
    fn alloc(&self, bytes: usize) -> Result<NonNull<u8>, Error>;
    /// Gives memory back.
    ///
    /// # Safety
    /// `ptr` came from `alloc(bytes)` and no copy still uses it.
    unsafe fn free(&self, ptr: NonNull<u8>, bytes: usize);
}

/// A pinned block, owned by whoever took it until it is given back (dropping it instead
/// leaks the memory: only the pool unpins).
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    bytes: usize,
}

// SAFETY: a `Block` is an exclusively owned allocation (like a `Box<[u8]>`); the pool and
// the buffers that hold it only hand out `&` views through `&self` and `&mut` views through
// `&mut self`.
unsafe impl Send for Block {}
// SAFETY: as above: shared access is read-only.
unsafe impl Sync for Block {}

impl Block {
    /// Its address.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Its size (at least what was asked for).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// An idle block and the copies that must finish before it is reused.
struct Idle<E> {
    block: Block,
    after: Vec<E>,
}

/// The pool: idle blocks by size (see [`block_size`]).
pub struct PinnedPool<M: HostMemory, E: Completion> {
    memory: M,
    idle: Mutex<HashMap<usize, Vec<Idle<E>>>>,
    idle_bytes: AtomicUsize,
    /// Idle memory above this is unpinned (blocks whose copies are done, oldest first).
    keep_bytes: usize,
    made: AtomicUsize,
}

const SMALLEST: usize = 4 << 10;
const LARGE: usize = 64 << 20;
const LARGE_STEP: usize = 16 << 20;

/// The size of the block that serves `bytes`: a power of two from 4 KiB up to 64 MiB (few
/// sizes, so blocks are found again), then a multiple of 16 MiB (at most a quarter wasted).
pub fn block_size(bytes: usize) -> Result<usize, Error> {
    let too_big = || Error::InvalidUse(format!("{bytes} bytes of pinned memory do not fit"));
    if bytes <= LARGE {
        Ok(bytes.max(SMALLEST).next_power_of_two())
    } else {
        bytes
            .checked_next_multiple_of(LARGE_STEP)
            .ok_or_else(too_big)
    }
}

fn all_done<E: Completion>(after: &mut Vec<E>) -> Result<bool, Error> {
    let mut i = 0;
    while i < after.len() {
        if after[i].is_done()? {
            after.swap_remove(i);
        } else {
            i += 1;
        }
    }
    Ok(after.is_empty())
}

impl<M: HostMemory, E: Completion> PinnedPool<M, E> {
    /// A pool that keeps up to `keep_bytes` idle.
    pub fn new(memory: M, keep_bytes: usize) -> Self {
        PinnedPool {
            memory,
            idle: Mutex::new(HashMap::new()),
            idle_bytes: AtomicUsize::new(0),
            keep_bytes,
            made: AtomicUsize::new(0),
        }
    }

    /// A block of at least `bytes`: an idle one whose copies are done, or a new one.
    pub fn take(&self, bytes: usize) -> Result<Block, Error> {
        let size = block_size(bytes)?;
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(blocks) = idle.get_mut(&size) {
                for i in 0..blocks.len() {
                    if all_done(&mut blocks[i].after)? {
                        let block = blocks.remove(i).block;
                        if blocks.is_empty() {
                            idle.remove(&size);
                        }
                        // Memory ordering: a statistic read under no other lock.
                        self.idle_bytes.fetch_sub(block.bytes, Ordering::Relaxed);
                        return Ok(block);
                    }
                }
            }
        }
        let ptr = self.memory.alloc(size)?;
        // Memory ordering: a statistic.
        self.made.fetch_add(1, Ordering::Relaxed);
        Ok(Block { ptr, bytes: size })
    }

    /// Takes `block` back; it is reused once every event in `after` is done.
    pub fn give_back(&self, block: Block, after: Vec<E>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Memory ordering: a statistic; the lock orders the blocks themselves.
        self.idle_bytes.fetch_add(block.bytes, Ordering::Relaxed);
        idle.entry(block.bytes)
            .or_default()
            .push(Idle { block, after });
        if self.idle_bytes.load(Ordering::Relaxed) > self.keep_bytes {
            self.trim(&mut idle);
        }
    }

    /// Unpins finished idle blocks, largest first, until the idle memory fits the limit.
    fn trim(&self, idle: &mut HashMap<usize, Vec<Idle<E>>>) {
        let mut sizes: Vec<usize> = idle.keys().copied().collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        for size in sizes {
            let blocks = idle.get_mut(&size).expect("a key just listed");
            let mut i = 0;
            while i < blocks.len() && self.idle_bytes.load(Ordering::Relaxed) > self.keep_bytes {
                if matches!(all_done(&mut blocks[i].after), Ok(true)) {
                    let block = blocks.remove(i).block;
                    self.idle_bytes.fetch_sub(block.bytes, Ordering::Relaxed);
                    // SAFETY: from `alloc`, and its copies are done.
                    unsafe { self.memory.free(block.ptr, block.bytes) };
                } else {
                    i += 1;
                }
            }
        }
    }

    /// How many blocks were ever pinned (reuse keeps this at the peak in use).
    pub fn made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }

    /// Idle pinned memory in bytes.
    #[cfg(test)]
    pub fn idle_bytes(&self) -> usize {
        self.idle_bytes.load(Ordering::Relaxed)
    }
}

impl<M: HostMemory, E: Completion> Drop for PinnedPool<M, E> {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        for Idle { block, mut after } in idle.into_values().flatten() {
            // A copy may still be in flight: unpinning under it would be a use after free.
            loop {
                match all_done(&mut after) {
                    Ok(true) => break,
                    Ok(false) => std::thread::sleep(Duration::from_micros(50)),
                    // Unknown: the device failed. Keep (leak) the memory.
                    Err(_) => break,
                }
            }
            if after.is_empty() {
                // SAFETY: from `alloc`; every copy using it is done.
                unsafe { self.memory.free(block.ptr, block.bytes) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// Host memory from the global allocator, counting what is live.
    #[derive(Default, Clone)]
    struct FakeMemory {
        live: Arc<Mutex<Vec<usize>>>,
    }

    fn layout(bytes: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(bytes, 4096).unwrap()
    }

    impl HostMemory for FakeMemory {
        fn alloc(&self, bytes: usize) -> Result<NonNull<u8>, Error> {
            // SAFETY: the pool asks for at least 4 KiB.
            let ptr = NonNull::new(unsafe { std::alloc::alloc(layout(bytes)) }).unwrap();
            self.live.lock().unwrap().push(ptr.as_ptr() as usize);
            Ok(ptr)
        }
        unsafe fn free(&self, ptr: NonNull<u8>, bytes: usize) {
            let mut live = self.live.lock().unwrap();
            let at = live
                .iter()
                .position(|&p| p == ptr.as_ptr() as usize)
                .expect("freed twice or never allocated");
            live.swap_remove(at);
            // SAFETY: allocated above with this layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout(bytes)) };
        }
    }

    /// A copy's event that the test completes by hand.
    #[derive(Clone, Default)]
    struct FakeEvent(Arc<AtomicBool>);
    impl Completion for FakeEvent {
        fn is_done(&self) -> Result<bool, Error> {
            Ok(self.0.load(Ordering::Acquire))
        }
    }
    impl FakeEvent {
        fn finish(&self) {
            self.0.store(true, Ordering::Release);
        }
    }

    #[test]
    fn a_block_is_reused_only_after_its_copies_are_done() {
        let memory = FakeMemory::default();
        let pool = PinnedPool::new(memory.clone(), 1 << 30);
        let block = pool.take(10_000).unwrap();
        assert_eq!(block.bytes(), 16384, "rounded up to a power of two");
        let first = block.ptr();
        let copy = FakeEvent::default();
        pool.give_back(block, vec![copy.clone()]);
        let other = pool.take(10_000).unwrap();
        assert_ne!(
            other.ptr(),
            first,
            "the copy is in flight: its block must not be handed out"
        );
        assert_eq!(pool.made(), 2);
        copy.finish();
        let again = pool.take(9_000).unwrap();
        assert_eq!(again.ptr(), first, "done: reused");
        assert_eq!(pool.made(), 2);
        pool.give_back(again, vec![]);
        pool.give_back(other, vec![]);
        drop(pool);
        assert!(memory.live.lock().unwrap().is_empty(), "all unpinned");
    }

    #[test]
    fn a_steady_pipeline_pins_nothing_new() {
        let memory = FakeMemory::default();
        let pool = PinnedPool::new(memory.clone(), 1 << 30);
        let mut in_flight: Vec<FakeEvent> = Vec::new();
        for _ in 0..1_000 {
            let block = pool.take(1 << 20).unwrap();
            let copy = FakeEvent::default();
            pool.give_back(block, vec![copy.clone()]);
            in_flight.push(copy);
            // Four copies in flight at a time: the oldest finishes.
            if in_flight.len() == 4 {
                in_flight.remove(0).finish();
            }
        }
        assert_eq!(pool.made(), 4, "one block per copy in flight");
        in_flight.iter().for_each(FakeEvent::finish);
    }

    #[test]
    fn idle_memory_over_the_limit_is_unpinned_once_its_copies_are_done() {
        let memory = FakeMemory::default();
        let pool = PinnedPool::new(memory.clone(), 64 << 10);
        let blocks: Vec<Block> = (0..8).map(|_| pool.take(16 << 10).unwrap()).collect();
        let busy = FakeEvent::default();
        for (i, block) in blocks.into_iter().enumerate() {
            let after = if i == 0 { vec![busy.clone()] } else { vec![] };
            pool.give_back(block, after);
        }
        assert!(pool.idle_bytes() <= 64 << 10, "{}", pool.idle_bytes());
        assert_eq!(memory.live.lock().unwrap().len(), 4);
        busy.finish();
        drop(pool);
        assert!(memory.live.lock().unwrap().is_empty());
    }

    #[test]
    fn dropping_the_pool_waits_for_copies_in_flight() {
        let memory = FakeMemory::default();
        let pool = PinnedPool::new(memory.clone(), 1 << 30);
        let copy = FakeEvent::default();
        pool.give_back(pool.take(100).unwrap(), vec![copy.clone()]);
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            copy.finish();
        });
        let started = std::time::Instant::now();
        drop(pool);
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "freed under a copy"
        );
        finisher.join().unwrap();
        assert!(memory.live.lock().unwrap().is_empty());
    }

    #[test]
    fn block_sizes_are_few_and_waste_at_most_a_quarter_when_large() {
        assert_eq!(block_size(1).unwrap(), 4096);
        assert_eq!(block_size(5000).unwrap(), 8192);
        assert_eq!(block_size(64 << 20).unwrap(), 64 << 20);
        assert_eq!(block_size((64 << 20) + 1).unwrap(), 80 << 20);
        let forty_gib = 40usize << 30;
        assert_eq!(
            block_size(forty_gib).unwrap(),
            forty_gib,
            "not rounded to 64 GiB"
        );
        for bytes in [(64 << 20) + 1, 100 << 20, (1 << 30) + 3] {
            let size = block_size(bytes).unwrap();
            assert!(
                size >= bytes && size - bytes < (bytes / 4),
                "{bytes} -> {size}"
            );
        }
    }

    /// A copy's event on a device that failed: its state is unknown.
    struct FailedEvent;
    impl Completion for FailedEvent {
        fn is_done(&self) -> Result<bool, Error> {
            Err(Error::Device(
                "an illegal memory access was encountered".into(),
            ))
        }
    }

    #[test]
    fn blocks_whose_copies_cannot_be_confirmed_are_never_reused_or_freed() {
        let memory = FakeMemory::default();
        let pool = PinnedPool::new(memory.clone(), 1 << 30);
        let block = pool.take(100).unwrap();
        let first = block.ptr();
        pool.give_back(block, vec![FailedEvent]);
        assert!(pool.take(100).is_err(), "the device's failure is reported");
        drop(pool);
        assert_eq!(
            *memory.live.lock().unwrap(),
            vec![first.as_ptr() as usize],
            "leaked rather than freed under a copy that may still run"
        );
        // SAFETY: the pool let go of it; the test frees it so that memcheck sees no leak.
        unsafe { memory.free(first, 4096) };
    }

    #[test]
    fn sizes_that_do_not_fit_are_errors() {
        let pool = PinnedPool::<_, FakeEvent>::new(FakeMemory::default(), 0);
        assert!(matches!(pool.take(usize::MAX), Err(Error::InvalidUse(_))));
    }
}
