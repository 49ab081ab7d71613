//! The blocks a log is written in: fixed-size runs of words that never move.
//!
//! Fresh memory costs a page fault per 4 KiB page on first touch (about 2 µs on a virtual
//! machine, as much as recording a few hundred tasks), so:
//! - a log's first chunk is small (64 KiB), and short recordings stay small;
//! - later chunks are 2 MiB on a 2 MiB boundary, marked for transparent huge pages on
//!   Linux: one fault for 512 pages' worth;
//! - chunks of dropped logs are kept (up to 32 MiB) for new ones.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;

/// Words in a log's first chunk (64 KiB).
const SMALL_WORDS: usize = 8192;
/// At most this many bytes of spare chunks are kept.
const SPARE_BYTES_MAX: usize = 32 << 20;

pub(super) struct Chunk {
    /// Words written and published.
    pub(super) len: AtomicUsize,
    memory: Memory,
}

enum Memory {
    Small(Box<[AtomicU64]>),
    #[cfg(target_os = "linux")]
    Huge(huge::Block),
}

impl Memory {
    fn words(&self) -> &[AtomicU64] {
        match self {
            Memory::Small(words) => words,
            #[cfg(target_os = "linux")]
            Memory::Huge(block) => block.words(),
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of_val(self.words())
    }
}

/// Chunks of dropped logs, and their total size.
static SPARE: Mutex<(Vec<Memory>, usize)> = Mutex::new((Vec::new(), 0));

impl Chunk {
    /// A chunk for a log: small for its first (`first`), large after.
    pub(super) fn new(first: bool) -> Chunk {
        Chunk {
            len: AtomicUsize::new(0),
            memory: Self::spare(first).unwrap_or_else(|| Self::fresh(first)),
        }
    }

    fn spare(first: bool) -> Option<Memory> {
        let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
        let (chunks, bytes) = &mut *spare;
        // Without huge pages every chunk is small.
        let small_wanted = first || cfg!(not(target_os = "linux"));
        let small = |m: &Memory| matches!(m, Memory::Small(_));
        let at = chunks.iter().rposition(|m| small(m) == small_wanted)?;
        let memory = chunks.swap_remove(at);
        *bytes -= memory.bytes();
        Some(memory)
    }

    fn fresh(first: bool) -> Memory {
        #[cfg(target_os = "linux")]
        if !first {
            if let Some(block) = huge::Block::map() {
                return Memory::Huge(block);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = first;
        Memory::Small((0..SMALL_WORDS).map(|_| AtomicU64::new(0)).collect())
    }

    /// Its words: written up to `len`, free after.
    pub(super) fn words(&self) -> &[AtomicU64] {
        self.memory.words()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let memory = std::mem::replace(&mut self.memory, Memory::Small(Box::default()));
        let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
        let (chunks, bytes) = &mut *spare;
        if *bytes + memory.bytes() <= SPARE_BYTES_MAX {
            *bytes += memory.bytes();
            chunks.push(memory);
        }
    }
}

#[cfg(target_os = "linux")]
mod huge {
    use std::ptr::NonNull;
    use std::sync::atomic::AtomicU64;

    /// 2 MiB: one huge page on x86-64 and most arm64 kernels.
    const BYTES: usize = 2 << 20;

    /// `BYTES` of memory on a `BYTES` boundary, mapped for this block alone.
    pub(super) struct Block(NonNull<AtomicU64>);

    // SAFETY: the block owns its mapping; its words are atomics.
    unsafe impl Send for Block {}
    // SAFETY: as above.
    unsafe impl Sync for Block {}

    impl Block {
        /// A zeroed block, marked for huge pages; `None` if the mapping fails.
        pub(super) fn map() -> Option<Block> {
            use libc::{MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE};
            // Twice the size, to cut an aligned block out of it.
            // SAFETY: a fresh anonymous private mapping at an address the kernel picks.
            let start = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    2 * BYTES,
                    PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if start == MAP_FAILED {
                return None;
            }
            let start_address = start as usize;
            let aligned = start_address.next_multiple_of(BYTES);
            let head = aligned - start_address;
            let tail = BYTES - head;
            // SAFETY: the head and tail lie in the mapping made above and are not used.
            unsafe {
                if head > 0 {
                    libc::munmap(start, head);
                }
                if tail > 0 {
                    libc::munmap((aligned + BYTES) as *mut libc::c_void, tail);
                }
            }
            let block = start.wrapping_byte_add(head);
            // A hint: without huge pages the block works the same, with more faults.
            // SAFETY: the block is mapped, and advice does not change its contents.
            unsafe { libc::madvise(block, BYTES, libc::MADV_HUGEPAGE) };
            NonNull::new(block.cast()).map(Block)
        }

        pub(super) fn words(&self) -> &[AtomicU64] {
            // SAFETY: the block is `BYTES` of mapped memory, zeroed by the kernel (a valid
            // `AtomicU64` each), aligned, and alive while `self` is.
            unsafe { std::slice::from_raw_parts(self.0.as_ptr(), BYTES / 8) }
        }
    }

    impl Drop for Block {
        fn drop(&mut self) {
            // SAFETY: the block's own mapping, not used after this.
            unsafe { libc::munmap(self.0.as_ptr().cast(), BYTES) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_log_starts_small_and_grows_in_large_chunks_that_hold_what_is_written() {
        let first = Chunk::new(true);
        assert_eq!(first.words().len(), SMALL_WORDS);
        let next = Chunk::new(false);
        let words = next.words();
        assert!(words.len() >= SMALL_WORDS);
        words[0].store(7, Ordering::Relaxed);
        let last = words.len() - 1;
        words[last].store(9, Ordering::Relaxed);
        assert_eq!(words[0].load(Ordering::Relaxed), 7);
        assert_eq!(words[last].load(Ordering::Relaxed), 9);
        #[cfg(target_os = "linux")]
        assert_eq!(words.len(), (2 << 20) / 8);
    }
}
