//! Task memory: freed tasks are kept for reuse instead of going back to the system
//! allocator. A graph of a million tasks allocates and frees a million blocks of the same
//! few sizes; through the system allocator each costs fresh pages (page faults) and a
//! slow free, through these lists a pointer push and pop.
//!
//! Each thread keeps two free lists per size class (allocation pops from the first, a
//! free pushes onto it); a full list is set aside as the spare, and a second full list
//! goes to a shared depot; an empty one swaps with the spare or refills from the depot.
//! Every step is O(1), and a thread that allocates and frees around one boundary does
//! not reach the depot each time. The depot keeps at
//! most [`DEPOT_CAP_BYTES`] in all; beyond that, blocks go back to the system allocator,
//! as do blocks of tasks too large or too aligned for a class.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Size classes are multiples of this, up to `CLASSES * GRAIN` bytes.
const GRAIN: usize = 32;
const CLASSES: usize = 16;
/// The alignment of every block.
const ALIGN: usize = 16;
/// Blocks in a full list.
const LIST_CAP: usize = 2048;
/// Task memory the depot keeps for reuse, in all classes together.
pub const DEPOT_CAP_BYTES: usize = 256 << 20;

/// A free block: the first word links to the next.
struct Block {
    next: *mut Block,
}

/// A linked list of free blocks of one class.
struct List {
    head: *mut Block,
    len: usize,
}

// SAFETY: a list owns its blocks (plain memory), so it may move between threads.
unsafe impl Send for List {}

impl List {
    const EMPTY: List = List {
        head: ptr::null_mut(),
        len: 0,
    };

    fn pop(&mut self) -> Option<NonNull<u8>> {
        let block = NonNull::new(self.head)?;
        // SAFETY: blocks in a list are free and start with their link.
        self.head = unsafe { (*block.as_ptr()).next };
        self.len -= 1;
        Some(block.cast())
    }

    /// # Safety
    /// `block` is a free block of this list's class, owned by the caller.
    unsafe fn push(&mut self, block: NonNull<u8>) {
        let block = block.cast::<Block>().as_ptr();
        // SAFETY: the caller's contract; blocks are at least GRAIN bytes, ALIGN-aligned.
        unsafe { block.write(Block { next: self.head }) };
        self.head = block;
        self.len += 1;
    }

    /// Returns every block to the system allocator.
    fn release(&mut self, class: usize) {
        while let Some(block) = self.pop() {
            // SAFETY: every block of a class was allocated with its layout.
            unsafe { dealloc(block.as_ptr(), layout(class)) };
        }
    }
}

fn layout(class: usize) -> Layout {
    Layout::from_size_align((class + 1) * GRAIN, ALIGN).expect("a valid size class")
}

/// The class for blocks of `layout`, if it fits one.
const fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN || layout.size() > CLASSES * GRAIN || layout.size() == 0 {
        return None;
    }
    Some(layout.size().div_ceil(GRAIN) - 1)
}

/// Lists handed over by threads, per class, and the bytes they hold.
struct Depot {
    lists: [Mutex<Vec<List>>; CLASSES],
    bytes: AtomicUsize,
}

static DEPOT: Depot = Depot {
    lists: [const { Mutex::new(Vec::new()) }; CLASSES],
    bytes: AtomicUsize::new(0),
};

impl Depot {
    fn take(&self, class: usize) -> Option<List> {
        let list = self.lists[class]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()?;
        self.bytes
            .fetch_sub(list.len * layout(class).size(), Ordering::Relaxed);
        Some(list)
    }

    fn give(&self, class: usize, mut list: List) {
        let bytes = list.len * layout(class).size();
        // Memory ordering: Relaxed; the cap is approximate.
        if self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > DEPOT_CAP_BYTES {
            self.bytes.fetch_sub(bytes, Ordering::Relaxed);
            list.release(class);
            return;
        }
        self.lists[class]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(list);
    }
}

/// One class's lists on one thread.
struct Pair {
    current: List,
    spare: List,
}

impl Pair {
    fn pop(&mut self, class: usize) -> Option<NonNull<u8>> {
        if self.current.len == 0 {
            if self.spare.len > 0 {
                std::mem::swap(&mut self.current, &mut self.spare);
            } else {
                self.current = DEPOT.take(class)?;
            }
        }
        self.current.pop()
    }

    /// # Safety
    /// `block` is a free block of this class, owned by the caller.
    unsafe fn push(&mut self, class: usize, block: NonNull<u8>) {
        if self.current.len >= LIST_CAP {
            let full = std::mem::replace(&mut self.current, List::EMPTY);
            let old_spare = std::mem::replace(&mut self.spare, full);
            if old_spare.len > 0 {
                DEPOT.give(class, old_spare);
            }
        }
        // SAFETY: the caller's contract.
        unsafe { self.current.push(block) }
    }
}

/// This thread's free lists; handed to the depot when the thread ends.
struct Local {
    pairs: UnsafeCell<[Pair; CLASSES]>,
}

impl Drop for Local {
    fn drop(&mut self) {
        for (class, pair) in self.pairs.get_mut().iter_mut().enumerate() {
            for list in [&mut pair.current, &mut pair.spare] {
                let list = std::mem::replace(list, List::EMPTY);
                if list.len > 0 {
                    DEPOT.give(class, list);
                }
            }
        }
    }
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            pairs: UnsafeCell::new(
                [const {
                    Pair {
                        current: List::EMPTY,
                        spare: List::EMPTY,
                    }
                }; CLASSES],
            ),
        }
    };
}

/// Memory for one `T`, uninitialized.
pub(crate) fn allocate<T>() -> NonNull<T> {
    let layout = Layout::new::<T>();
    let Some(class) = class_of(layout) else {
        return system_alloc(layout).cast();
    };
    let reused = LOCAL
        .try_with(|local| {
            // SAFETY: the lists are only touched by this thread, and not re-entrantly
            // (nothing here calls back into the pool).
            unsafe { (*local.pairs.get())[class].pop(class) }
        })
        .ok()
        .flatten();
    reused
        .unwrap_or_else(|| system_alloc(self::layout(class)))
        .cast()
}

/// Returns the memory of a `T` (already dropped) for reuse.
///
/// # Safety
/// `ptr` came from [`allocate::<T>`] and is not used again.
pub(crate) unsafe fn free<T>(ptr: NonNull<T>) {
    let layout = Layout::new::<T>();
    let block = ptr.cast::<u8>();
    let Some(class) = class_of(layout) else {
        // SAFETY: allocated with this layout by `allocate`.
        unsafe { dealloc(block.as_ptr(), layout) };
        return;
    };
    let kept = LOCAL.try_with(|local| {
        // SAFETY: as in `allocate`; the block is of this class and now free.
        unsafe { (*local.pairs.get())[class].push(class, block) }
    });
    if kept.is_err() {
        // The thread is ending: its lists are gone.
        // SAFETY: every block of a class was allocated with its layout.
        unsafe { dealloc(block.as_ptr(), self::layout(class)) };
    }
}

fn system_alloc(layout: Layout) -> NonNull<u8> {
    // SAFETY: task layouts are never zero-sized (they hold a header).
    NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout))
}

/// Returns the task memory kept for reuse by the depot to the system allocator (memory
/// kept by running threads stays with them, at most two lists per size class each).
pub fn release_task_memory() {
    for class in 0..CLASSES {
        while let Some(mut list) = DEPOT.take(class) {
            list.release(class);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_sizes_and_refuse_large_or_aligned_types() {
        assert_eq!(class_of(Layout::new::<[u64; 4]>()), Some(0));
        assert_eq!(class_of(Layout::new::<[u64; 5]>()), Some(1));
        assert_eq!(class_of(Layout::new::<[u8; 512]>()), Some(15));
        assert_eq!(class_of(Layout::new::<[u8; 513]>()), None);
        #[repr(align(64))]
        struct Wide(#[allow(dead_code)] u8);
        assert_eq!(class_of(Layout::new::<Wide>()), None);
    }

    #[test]
    fn freed_blocks_are_reused_and_lists_move_through_the_depot() {
        type Big = [u64; 63];
        let first = allocate::<Big>();
        // SAFETY: allocated above, never used.
        unsafe { free(first) };
        assert_eq!(allocate::<Big>(), first, "a freed block is reused first");
        // Fill this thread's two lists so one goes to the depot, then take from it on
        // another thread.
        let blocks: Vec<NonNull<Big>> = (0..3 * LIST_CAP + 10).map(|_| allocate()).collect();
        let addresses: std::collections::HashSet<usize> =
            blocks.iter().map(|b| b.as_ptr() as usize).collect();
        assert_eq!(addresses.len(), blocks.len(), "blocks are distinct");
        // SAFETY: each allocated above and freed once.
        blocks.iter().for_each(|&b| unsafe { free(b) });
        // SAFETY: allocated above and freed once.
        unsafe { free(first) };
        let from_depot = std::thread::spawn(|| {
            let block = allocate::<Big>();
            let address = block.as_ptr() as usize;
            // SAFETY: allocated just above.
            unsafe { free(block) };
            address
        })
        .join()
        .unwrap();
        assert!(addresses.contains(&from_depot) || from_depot == first.as_ptr() as usize);
        release_task_memory();
    }
}
