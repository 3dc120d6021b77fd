//! The process-pool side of `concurrent-futures`.
//!
//! This first part holds what every worker process needs before any pool
//! exists: the [`registry`] of task functions that `#[task]` fills, and the
//! [`codec`] that payloads cross process boundaries with. The
//! `ProcessPoolExecutor` built on them is in progress.
#![warn(missing_docs)]

pub mod codec;
pub mod registry;

/// What `#[concurrent_futures::task]` expands to refers to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{TASKS, TaskEntry, invoke};
    pub use linkme;
}
