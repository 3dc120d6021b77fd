//! The primitives of the sleep/wake unit (`sleep.rs`): `std`'s normally,
//! `loom`'s when built with `RUSTFLAGS="--cfg loom"`, so the model checks in
//! `tests/loom.rs` explore every interleaving of the protocol. The rest of
//! the pool keeps `std`'s (crossbeam-deque, which the pool's queues are, is
//! not loom-aware anyway; see `tests/loom.rs` for the stand-in queue).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
