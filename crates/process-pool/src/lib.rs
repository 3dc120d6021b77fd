//! The process pool of `concurrent-futures`: [`ProcessPoolExecutor`] runs
//! registered task functions in worker processes, so a crash, abort, leak
//! or runaway in a task cannot take the caller down.
//!
//! * [`registry`]: the table of task functions that `#[task]` fills; a
//!   worker runs nothing else.
//! * [`codec`]: the one seam payloads cross processes through (bincode
//!   2.0.1 by default, postcard with the `postcard` feature).
//! * [`wire`]: the messages between the pool and a worker.
//!
//! Workers are spawned from the current executable by default. A spawned
//! worker recognises its role before `main` runs (a constructor in the ELF
//! `.init_array`), so nothing needs adding to `main`, and it works the same
//! from programs, `cargo test` harnesses, doc tests, examples and benches.
//! Linux only.
#![warn(missing_docs)]

mod channel;
pub mod codec;
mod fork_server;
mod pool;
mod process;
pub mod registry;
mod watchdog;
pub mod wire;
mod worker;

pub use pool::{ProcessPoolBuilder, ProcessPoolExecutor, StartMethod};

/// What `#[concurrent_futures::task]` expands to refers to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{TASKS, TaskEntry, invoke};
    pub use linkme;
}
