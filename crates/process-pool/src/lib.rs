//! The process pool of `concurrent-futures`: [`ProcessPoolExecutor`] runs
//! registered task functions in worker processes, so a crash, abort, leak
//! or runaway in a task cannot take the caller down.
//!
//! The task registry that `#[task]` fills, the payload codec and the
//! messages between the pool and a worker live in the internal crate
//! `concurrent-futures-task-wire`, which the remote executors share.
//!
//! Workers are spawned from the current executable by default. A spawned
//! worker recognises its role before `main` runs (a constructor in the ELF
//! `.init_array`), so nothing needs adding to `main`, and it works the same
//! from programs, `cargo test` harnesses, doc tests, examples and benches.
//! Linux only.
#![warn(missing_docs)]

mod builder;
mod channel;
mod deaths;
mod fork_server;
mod handler;
mod job;
mod pool;
mod process;
mod slot;
mod watchdog;
mod worker;

pub use builder::{ProcessPoolBuilder, StartMethod};
pub use pool::ProcessPoolExecutor;
