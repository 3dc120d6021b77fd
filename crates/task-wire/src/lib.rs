//! An internal crate of `concurrent-futures`, shared by its remote
//! executors (the process pool, and the executors to come that run tasks
//! outside the calling process): what a task is, how its payloads are
//! encoded and what crosses to a worker.
//!
//! **No stability promise.** Nothing here is the public API of
//! `concurrent-futures`: the wire format, the codec and the registry's
//! layout may change in any release, patch releases included. Programs use
//! the facade (`concurrent_futures::task`, `ProcessPoolExecutor`, the
//! `postcard` feature) instead.
//!
//! * [`registry`]: the table of task functions that `#[task]` fills; a
//!   worker runs nothing else.
//! * [`codec`]: the one seam payloads cross processes through (bincode
//!   2.0.1 by default, postcard with the `postcard` feature).
//! * [`wire`]: the messages between an executor and a worker.
//! * [`client`]: encoding a request, and completing a future from its
//!   response.
//! * [`serve`]: a worker's answer to a request.
#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod registry;
pub mod serve;
pub mod wire;

/// What `#[task]` expands to refers to; not public API.
///
/// The facade re-exports it as `concurrent_futures::__private`, the path
/// `#[task]` names by default; crates of the workspace that define tasks
/// without the facade name this crate instead, with
/// `#[task(crate = ::concurrent_futures_task_wire)]`.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{TASKS, TaskEntry, invoke};
    pub use linkme;
}
