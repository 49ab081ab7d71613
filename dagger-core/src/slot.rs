//! Where a running `dag!` keeps the value of each binding, and the guards through which
//! a node's statement reaches it.
//!
//! A slot is written, read and moved from several worker threads without a lock. That is
//! sound only because the macro derives, for every statement, the access it makes
//! (define, read, write, move) and orders conflicting accesses with edges: no two nodes
//! touch one slot at the same time unless both only read. Every `unsafe fn` here states
//! that obligation; the generated code discharges it by construction.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// The value of one binding while its graph runs.
pub struct Slot<T>(UnsafeCell<Option<T>>);

// SAFETY: concurrent use is limited by the schedule to shared reads (`borrow`), which need
// `T: Sync`; a value put by one thread and taken or dropped by another needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for Slot<T> {}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

const EMPTY: &str = "dagger: a binding was used before its node produced it (a bug in dagger)";

impl<T> Slot<T> {
    /// An empty slot.
    pub const fn new() -> Self {
        Slot(UnsafeCell::new(None))
    }

    /// Stores the binding's value.
    ///
    /// # Safety
    /// No other access to this slot may happen during the call.
    pub unsafe fn put(&self, value: T) {
        // SAFETY: exclusive access is the caller's obligation.
        unsafe { *self.0.get() = Some(value) }
    }

    /// Moves the value out (the binding's last use).
    ///
    /// # Safety
    /// No other access to this slot may happen during the call.
    pub unsafe fn take(&self) -> T {
        // SAFETY: exclusive access is the caller's obligation.
        unsafe { (*self.0.get()).take() }.expect(EMPTY)
    }

    /// Shared access for one statement.
    ///
    /// # Safety
    /// While the guard lives, only other shared guards may exist for this slot.
    pub unsafe fn borrow(&self) -> SlotRef<'_, T> {
        // SAFETY: only shared access happens meanwhile (the caller's obligation).
        SlotRef(unsafe { (*self.0.get()).as_ref() }.expect(EMPTY))
    }

    /// Exclusive access for one statement.
    ///
    /// # Safety
    /// While the guard lives, no other access to this slot may happen.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn borrow_mut(&self) -> SlotMut<'_, T> {
        // SAFETY: exclusive access is the caller's obligation.
        SlotMut(unsafe { (*self.0.get()).as_mut() }.expect(EMPTY))
    }
}

/// Shared access to a binding inside one node. References taken through it live no longer
/// than the guard, so a node cannot smuggle a borrow of a binding into another binding.
pub struct SlotRef<'s, T>(&'s T);

/// Exclusive access to a binding inside one node.
pub struct SlotMut<'s, T>(&'s mut T);

impl<T> Deref for SlotRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
    }
}

impl<T> Deref for SlotMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
    }
}

impl<T> DerefMut for SlotMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0
    }
}

macro_rules! forward_fmt {
    ($($guard:ident: $($trait:ident),*;)*) => {$($(
        impl<T: fmt::$trait> fmt::$trait for $guard<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::$trait::fmt(&**self, f)
            }
        }
    )*)*};
}

// Format strings like `"{x}"` name the guard itself, so it formats as its value does.
forward_fmt! {
    SlotRef: Debug, Display, LowerHex, UpperHex, LowerExp, UpperExp, Binary, Octal;
    SlotMut: Debug, Display, LowerHex, UpperHex, LowerExp, UpperExp, Binary, Octal;
}

/// Implemented by every `Copy` type: what a binding needs to be used by value and then
/// used again later in the same `dag!`.
#[diagnostic::on_unimplemented(
    message = "use of moved binding: `{Self}` is not `Copy`, so this use moves the value, but the binding is used again later in the `dag!`",
    label = "value moved here, but used again later",
    note = "pass a reference (`&x`) to read it without moving, or move a clone (`x.clone()`)"
)]
pub trait CopyBinding: Copy {}

impl<T: Copy> CopyBinding for T {}

/// A by-value use of a binding that is used again later: a copy.
#[inline(always)]
pub fn copy_binding<T: CopyBinding>(value: &T) -> T {
    *value
}
