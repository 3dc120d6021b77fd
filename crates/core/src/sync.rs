//! The synchronisation primitives the core uses: `std`'s normally, `loom`'s
//! when built with `RUSTFLAGS="--cfg loom"` so the model checker can explore
//! every interleaving of the future state machine.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use std::time::Instant;

/// Locks `m`, ignoring poisoning: no code of ours panics while holding one of
/// these locks (user callbacks run with no lock held), so the data is always
/// consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on `cv` until notified.
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    match cv.wait(g) {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on `cv` until notified or until `deadline`; returns the guard and
/// whether the deadline has passed.
#[cfg(not(loom))]
pub(crate) fn wait_until<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    deadline: Instant,
) -> (MutexGuard<'a, T>, bool) {
    let now = Instant::now();
    if now >= deadline {
        return (g, true);
    }
    let g = match cv.wait_timeout(g, deadline - now) {
        Ok((g, _)) => g,
        Err(poisoned) => poisoned.into_inner().0,
    };
    (g, Instant::now() >= deadline)
}

/// Under loom there is no clock: a timed wait is a plain wait, and the model
/// tests only use timeouts that never expire.
#[cfg(loom)]
pub(crate) fn wait_until<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    _deadline: Instant,
) -> (MutexGuard<'a, T>, bool) {
    (wait(cv, g), false)
}

/// A slot written at most once, then read through shared references, and
/// emptied only by a holder that has proved it is the last reader.
///
/// All the safety reasoning lives with the callers in `future.rs`; this type
/// only hides the std/loom difference.
pub(crate) struct ValueCell<T> {
    #[cfg(not(loom))]
    cell: std::cell::UnsafeCell<Option<T>>,
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<Option<T>>,
}

impl<T> ValueCell<T> {
    pub(crate) fn new() -> Self {
        ValueCell {
            cell: Default::default(),
        }
    }

    /// A cell that holds `value` already.
    pub(crate) fn holding(value: T) -> Self {
        ValueCell {
            #[cfg(not(loom))]
            cell: std::cell::UnsafeCell::new(Some(value)),
            #[cfg(loom)]
            cell: loom::cell::UnsafeCell::new(Some(value)),
        }
    }

    /// # Safety
    /// No other access to the cell may happen at the same time.
    pub(crate) unsafe fn set(&self, value: T) {
        #[cfg(not(loom))]
        unsafe {
            *self.cell.get() = Some(value);
        }
        #[cfg(loom)]
        self.cell.with_mut(|p| unsafe { *p = Some(value) });
    }

    /// # Safety
    /// The cell was set, the write happens-before this call, and no `take`
    /// may run while the returned reference lives.
    pub(crate) unsafe fn get(&self) -> Option<&T> {
        #[cfg(not(loom))]
        unsafe {
            (*self.cell.get()).as_ref()
        }
        #[cfg(loom)]
        self.cell.with(|p| unsafe { (*p).as_ref() })
    }

    /// # Safety
    /// No other access to the cell may happen at the same time, and no
    /// reference from `get` may still be alive.
    pub(crate) unsafe fn take(&self) -> Option<T> {
        #[cfg(not(loom))]
        unsafe {
            (*self.cell.get()).take()
        }
        #[cfg(loom)]
        self.cell.with_mut(|p| unsafe { (*p).take() })
    }
}
