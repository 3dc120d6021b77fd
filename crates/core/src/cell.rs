//! [`CellRef`], a counted reference to a future's allocation ([`Inner`]):
//! what `std`'s `Arc` does, with the count inside the future's state and no
//! weak count. A new cell starts with as many references as it has owners
//! (a handle and a completer, or a handle and a queue entry), so making it
//! takes no atomic read-modify-write, and freeing it takes one, not two.
//!
//! # Invariants
//!
//! * `Inner::refs` counts the references that will each be released once:
//!   every `CellRef`, plus a queue entry's (`task.rs`), which releases its
//!   own with [`release`].
//! * The allocation is a `Box` leaked by [`CellRef::allocate`]; the one
//!   release that takes the count to zero turns it back into a `Box` and
//!   drops it, after an Acquire fence that orders every other owner's last
//!   use before the drop (each release is a Release decrement): `Arc`'s
//!   protocol.
//! * Pointers keep the provenance of the `Box` (never one derived from a
//!   shared reference), so the final release may free through any of them.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use crate::future::{Body, Inner};
use crate::sync::{Ordering, fence};

/// A counted reference to a future's allocation, its body unsized.
pub(crate) struct CellRef<T> {
    ptr: NonNull<Inner<T>>,
    /// Owns an `Inner<T>` for the drop check.
    _owns: PhantomData<Inner<T>>,
}

// SAFETY: a `CellRef` shares an `Inner`, which is `Send` and `Sync` where
// `T: Send` (see `future.rs`); moving or sharing the reference is moving or
// sharing that access, and the count is atomic.
unsafe impl<T: Send> Send for CellRef<T> {}
unsafe impl<T: Send> Sync for CellRef<T> {}

// A pointer: pinning a `CellRef` pins nothing it points to (as for `Arc`),
// so handles stay `Unpin` whatever their body is.
impl<T> Unpin for CellRef<T> {}

impl<T> CellRef<T> {
    /// Leaks `inner` (whose count says how many owners it starts with) and
    /// gives the raw pointer; each owner adopts one reference with
    /// [`from_raw`](Self::from_raw) (or, for a queue entry, releases it with
    /// [`release`]).
    pub(crate) fn allocate<B: Body<T> + 'static>(inner: Inner<T, B>) -> NonNull<Inner<T, B>> {
        NonNull::from(Box::leak(Box::new(inner)))
    }

    /// Adopts one of the references that `ptr`'s count holds.
    ///
    /// # Safety
    /// `ptr` comes from [`allocate`](Self::allocate) (unsized or not), and
    /// the reference adopted is counted and released by nobody else.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Inner<T>>) -> CellRef<T> {
        CellRef {
            ptr,
            _owns: PhantomData,
        }
    }

    /// The allocation's address, for identity.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as *const () as usize
    }

    /// Whether this is the only reference left (a snapshot; once true, it
    /// stays true as long as this reference is not cloned).
    pub(crate) fn is_unique(&self) -> bool {
        self.refs.load(Ordering::Acquire) == 1
    }
}

impl<T> Deref for CellRef<T> {
    type Target = Inner<T>;

    fn deref(&self) -> &Inner<T> {
        // SAFETY: the allocation lives while this reference is counted.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Clone for CellRef<T> {
    fn clone(&self) -> CellRef<T> {
        // Relaxed, as `Arc`: a new reference is made from one that is
        // alive, which keeps the allocation alive meanwhile.
        let old = self.refs.fetch_add(1, Ordering::Relaxed);
        if old > i32::MAX as u32 {
            // Leaked handles by the billion: stop before the count wraps.
            std::process::abort();
        }
        CellRef {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for CellRef<T> {
    fn drop(&mut self) {
        // SAFETY: this reference is counted, released here once, and its
        // pointer comes from `allocate`.
        unsafe { release(self.ptr, |inner| &inner.refs) };
    }
}

/// Releases one reference to the allocation `ptr` points to (through any
/// of its unsized views), freeing it if it was the last; `refs` finds the
/// count.
///
/// # Safety
/// `ptr` comes from [`CellRef::allocate`], and the caller owns one counted
/// reference, which it gives up here.
pub(crate) unsafe fn release<X: ?Sized>(
    ptr: NonNull<X>,
    refs: impl FnOnce(&X) -> &crate::sync::AtomicU32,
) {
    // SAFETY: our reference keeps the allocation alive until the decrement;
    // the borrow ends with it.
    let last = refs(unsafe { ptr.as_ref() }).fetch_sub(1, Ordering::Release) == 1;
    if last {
        // Every other owner's last use happens before this drop.
        fence(Ordering::Acquire);
        // SAFETY: the count is zero: nobody else can reach the allocation,
        // and it was a leaked `Box` of this very (unsized) type.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
    }
}
