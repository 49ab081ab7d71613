//! Where a running `dag!` keeps the value of each binding, and how a node's statement
//! reaches it.
//!
//! # Why a `dag!` is sound (the proof every `unsafe` of the expansion points to)
//!
//! The macro gives every node one *reach* per binding it uses, and orders the nodes with
//! edges (`dagger-macros/src/dag/analyze.rs`):
//!
//! - **read**: the node holds a guard from [`Slot::read`] in a local the user cannot name,
//!   and the statement sees the binding as `&T` borrowed *from that local*;
//! - **write**: the same with [`Slot::write`] and `&mut T`;
//! - **take** / **lend**: the value is moved out of the slot into a local of the node
//!   ([`Slot::take`]); a lend puts it back at the end of the node ([`Slot::put`]);
//! - **define** / **overwrite**: the node stores a value it owns ([`Slot::put`]).
//!
//! 1. *No data race.* Edges order every exclusive access (write, take, lend, define,
//!    overwrite) after and before every other access to the same binding, so two nodes
//!    use one slot at the same time only if both read. The executor publishes a node's
//!    effects to its successors through the release/acquire counter hand-off
//!    (`execute.rs`). Values cross threads, so every slot needs `T: Send`; a slot that
//!    two nodes may read at the same time is built with [`Slot::new_shared`], which also
//!    needs `T: Sync`. The `Sync` impl below relies on exactly these constructor bounds.
//! 2. *No use after free, no dangling borrow.* A reference the statement sees is a
//!    reborrow of a guard that is a local of the node's closure, so the borrow checker
//!    bounds every value derived from it (a closure, an iterator, a struct holding it) by
//!    the node: it cannot be stored in a slot, an outer variable, the node's result or
//!    anything else that outlives the node. The guard's own lifetime never reaches user
//!    code: `Deref` ties the reference to `&self`, and the guard is not `Copy`/`Clone`.
//!    An owned value (take, lend) needs no such argument: the node owns it.
//! 3. *Nothing read empty.* A slot is filled by its define (or an overwrite) before any
//!    other access (edges), and emptied only by a take at the last use of the value before
//!    the next overwrite, so no access finds it empty; the `expect`s below are checks of
//!    the macro, not of user code.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// A slot read by at most one node at a time: its value only needs to be `Send`.
pub enum Exclusive {}

/// A slot that two nodes may read at the same time: its value is also `Sync`.
pub enum Shared {}

/// The value of one binding while its graph runs.
pub struct Slot<T, M = Exclusive> {
    value: UnsafeCell<Option<T>>,
    _mode: PhantomData<M>,
}

// SAFETY: a `Slot<T, Exclusive>` can only be built when `T: Send` (`new`, `filled`), and a
// `Slot<T, Shared>` when `T: Send + Sync` (`new_shared`, `filled_shared`). Point 1 of the
// module proof shows that these are exactly what concurrent use of a slot needs: values
// (and exclusive references) move between threads one at a time, and only a shared slot
// is read from two threads at once.
unsafe impl<T, M> Sync for Slot<T, M> {}

/// The message of an empty slot: a bug in the macro's analysis, never in user code.
const EMPTY: &str = "dagger: a binding was used before its node produced it (a bug in dagger)";

impl<T: SendBinding> Slot<T, Exclusive> {
    /// An empty slot, read by one node at a time.
    #[allow(clippy::new_without_default)] // a slot is made only by generated code
    pub fn new() -> Self {
        Slot {
            value: UnsafeCell::new(None),
            _mode: PhantomData,
        }
    }

    /// A slot holding an outer variable captured by the block.
    pub fn filled(value: T) -> Self {
        Slot {
            value: UnsafeCell::new(Some(value)),
            _mode: PhantomData,
        }
    }
}

impl<T: SendBinding + SyncBinding> Slot<T, Shared> {
    /// An empty slot that two nodes may read at the same time.
    pub fn new_shared() -> Self {
        Slot {
            value: UnsafeCell::new(None),
            _mode: PhantomData,
        }
    }

    /// A shared slot holding an outer variable captured by the block.
    pub fn filled_shared(value: T) -> Self {
        Slot {
            value: UnsafeCell::new(Some(value)),
            _mode: PhantomData,
        }
    }
}

impl<T, M> Slot<T, M> {
    /// Stores a value the node owns (a define, an overwrite, or a lent value put back),
    /// dropping the one it replaces, if any.
    ///
    /// # Safety
    /// No other access to this slot may happen during the call.
    pub unsafe fn put(&self, value: T) {
        // SAFETY: exclusive access is the caller's obligation.
        unsafe { *self.value.get() = Some(value) }
    }

    /// Moves the value out.
    ///
    /// # Safety
    /// No other access to this slot may happen during the call.
    pub unsafe fn take(&self) -> T {
        // SAFETY: exclusive access is the caller's obligation.
        unsafe { (*self.value.get()).take() }.expect(EMPTY)
    }

    /// Moves the value out if there is one (an outer variable written back after a run).
    ///
    /// # Safety
    /// No other access to this slot may happen during the call.
    pub unsafe fn take_if_present(&self) -> Option<T> {
        // SAFETY: exclusive access is the caller's obligation.
        unsafe { (*self.value.get()).take() }
    }

    /// Shared access for one node.
    ///
    /// # Safety
    /// While the guard lives, only other read guards may exist for this slot, and only if
    /// it is a `Slot<T, Shared>` may they live on other threads.
    pub unsafe fn read(&self) -> ReadGuard<'_, T> {
        // SAFETY: only shared access happens meanwhile (the caller's obligation).
        ReadGuard(unsafe { (*self.value.get()).as_ref() }.expect(EMPTY))
    }

    /// Exclusive access for one node.
    ///
    /// # Safety
    /// While the guard lives, no other access to this slot may happen.
    pub unsafe fn write(&self) -> WriteGuard<'_, T> {
        // SAFETY: exclusive access is the caller's obligation.
        WriteGuard(unsafe { (*self.value.get()).as_mut() }.expect(EMPTY))
    }
}

/// Shared access to a binding, held in a local of one node. The references a statement
/// sees borrow this local, so nothing derived from them outlives the node.
pub struct ReadGuard<'s, T>(&'s T);

/// Exclusive access to a binding, held in a local of one node.
pub struct WriteGuard<'s, T>(&'s mut T);

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0
    }
}

/// Implemented by every `Send` type: what a `dag!` binding needs, since its value is made,
/// used and dropped on whichever worker threads run its nodes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `dag!` binding: its value moves between worker threads, so it must be `Send`",
    label = "this binding's value is not `Send`",
    note = "use a `Send` type (`Arc` for `Rc`, a `Mutex` for a `RefCell` shared by threads), or keep the value inside one statement"
)]
pub trait SendBinding: Send {}

impl<T: Send> SendBinding for T {}

/// Implemented by every `Sync` type: what a binding needs when two statements read it at
/// the same time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is read by two statements of this `dag!` that may run at the same time, so it must be `Sync`",
    label = "two statements read this binding concurrently, but its value is not `Sync`",
    note = "use a `Sync` type (a `Mutex` or an atomic for a `Cell`), or declare it `let mut`: then each statement that uses it runs alone"
)]
pub trait SyncBinding: Sync {}

impl<T: Sync> SyncBinding for T {}

/// Implemented by every `Copy` type: what a binding needs to be used by value and then
/// used again later in the same `dag!`.
#[diagnostic::on_unimplemented(
    message = "use of moved binding: `{Self}` is not `Copy`, so this use moves the value, but the binding is used again later in the `dag!`",
    label = "value moved here, but used again later",
    note = "pass a reference (`&x`) to read it without moving, or move a clone (`x.clone()`)",
    note = "an outer variable that the graph also writes is used again after the run (its value goes back to it); to move it, move it into a binding of the block first (`let mut w = v;`) and use that"
)]
pub trait CopyBinding: Copy {}

impl<T: Copy> CopyBinding for T {}

/// A by-value use of a binding that is used again later: a copy.
#[inline(always)]
pub fn copy_binding<T: CopyBinding>(value: &T) -> T {
    *value
}
