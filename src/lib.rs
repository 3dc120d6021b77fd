//! # concurrent-futures
//!
//! Python's `concurrent.futures` for Rust: one [`Executor`] trait, a
//! [`ThreadPoolExecutor`] and a [`ProcessPoolExecutor`] behind it, and
//! futures you can [`wait`] on, iterate [`as_completed`], cancel, await, and
//! hang done-callbacks on.
//!
//! ```
//! use concurrent_futures::{as_completed, Executor, ThreadPoolExecutor};
//!
//! fn fib(n: u32) -> u64 {
//!     if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) }
//! }
//!
//! let pool = ThreadPoolExecutor::builder().max_workers(3).build().unwrap();
//! let futures: Vec<_> = (20..25).map(|n| pool.submit(fib, n).unwrap()).collect();
//! for fut in as_completed(futures, None) {
//!     println!("{}", fut.unwrap().result().unwrap());
//! }
//! let in_order: Vec<u64> = pool.map(fib, 20..25).map(Result::unwrap).collect();
//! assert_eq!(in_order, [6765, 10946, 17711, 28657, 46368]);
//! ```
//!
//! | Python | here |
//! |---|---|
//! | `ThreadPoolExecutor(max_workers, thread_name_prefix, initializer)` | [`ThreadPoolExecutor::builder`] |
//! | `ProcessPoolExecutor(max_workers, mp_context, initializer, initargs, max_tasks_per_child)` | [`ProcessPoolExecutor::builder`]; tasks marked [`task`] |
//! | `executor.submit(fn, *args)` | [`Executor::submit`]`(f, args)`; closures: [`ThreadPoolExecutor::spawn`] |
//! | `executor.map(fn, it, timeout, chunksize, buffersize)` | [`Executor::map`], [`Executor::map_with`] |
//! | `executor.shutdown(wait, cancel_futures)`, `with` | [`Executor::shutdown`]; `Drop` |
//! | `Future` | [`TaskFuture`] |
//! | `wait(fs, timeout, return_when)` | [`wait`] with [`ReturnWhen`] |
//! | `as_completed(fs, timeout)` | [`as_completed`] |
//! | `CancelledError`, `TimeoutError`, `BrokenExecutor`, exceptions | [`TaskError`] |
//!
//! ## Features
//!
//! * `process` (default): the process pool, [`ProcessPoolExecutor`] and
//!   [`task`]. Without it (`default-features = false`) the crate is the
//!   core and the thread pool alone.
//! * `postcard`: process-pool payloads are encoded with postcard instead of
//!   bincode 2.0.1 (turns `process` on).
#![warn(missing_docs)]
// The docs above name the process pool, which is not there without it.
#![cfg_attr(not(feature = "process"), allow(rustdoc::broken_intra_doc_links))]

pub use concurrent_futures_core::{
    AsCompleted, Awaiting, AwaitingRef, Completer, ConfigError, DoneAndNotDone, Executor,
    FutureState, InitResult, InlineRun, Map, MapOptions, MapUnordered, Outcome, Payload,
    ReturnWhen, TaskError, TaskFuture, Waitable, Waiter, as_completed, catch_panic, panic_message,
    set_callback_panic_handler, wait,
};
#[cfg(feature = "stream")]
pub use concurrent_futures_core::{AsCompletedStream, as_completed_stream};
/// Marks a function `fn(A) -> R` as a task that a [`ProcessPoolExecutor`]
/// may run.
///
/// A worker process only ever runs registered tasks, looked up by name;
/// submitting a function that is not one fails with
/// [`TaskError::Unregistered`]. Several arguments go in one tuple.
///
/// ```
/// use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, task};
///
/// #[task]
/// fn add((a, b): (u64, u64)) -> u64 {
///     a + b
/// }
///
/// fn not_a_task(x: u64) -> u64 {
///     x
/// }
///
/// let pool = ProcessPoolExecutor::builder().max_workers(1).build().unwrap();
/// assert_eq!(pool.submit(add, (2, 3)).unwrap().into_result(), Ok(5));
/// assert!(matches!(
///     pool.submit(not_a_task, 1),
///     Err(TaskError::Unregistered { .. })
/// ));
/// ```
///
/// Generic, async and multi-argument functions are refused at compile time:
///
/// ```compile_fail
/// #[concurrent_futures::task]
/// fn generic<T>(x: T) -> T { x }
/// ```
///
/// ```compile_fail
/// #[concurrent_futures::task]
/// fn two(a: u8, b: u8) -> u8 { a + b }
/// ```
///
/// The expansion names this crate (`::concurrent_futures`). A crate that
/// reaches it under another name, or a crate of this workspace that
/// defines tasks without the facade, says where with the one argument the
/// attribute takes, `crate = path`:
///
/// ```
/// // As if the facade were a dependency renamed to `cf`.
/// extern crate concurrent_futures as cf;
///
/// #[cf::task(crate = ::cf)]
/// fn negate(x: i64) -> i64 {
///     -x
/// }
/// # use cf::Executor;
/// # let pool = cf::ProcessPoolExecutor::builder().max_workers(1).build().unwrap();
/// # assert_eq!(pool.submit(negate, 4).unwrap().into_result(), Ok(-4));
/// ```
///
/// Any other argument is refused:
///
/// ```compile_fail
/// #[concurrent_futures::task(name = "other")]
/// fn renamed(x: u8) -> u8 { x }
/// ```
#[cfg(feature = "process")]
pub use concurrent_futures_macros::task;
/// The MPI pool (feature `mpi`, off by default): see [`MpiPoolExecutor`].
#[cfg(feature = "mpi")]
pub use concurrent_futures_mpi_pool::{MpiPoolBuilder, MpiPoolExecutor};
#[cfg(feature = "process")]
pub use concurrent_futures_process_pool::{ProcessPoolBuilder, ProcessPoolExecutor, StartMethod};
#[cfg(feature = "process")]
#[doc(hidden)]
pub use concurrent_futures_task_wire::__private;
pub use concurrent_futures_thread_pool::{
    ThreadPoolBuilder, ThreadPoolExecutor, default_max_workers,
};

/// Everything a program using the pools usually needs, in one `use`.
///
/// ```
/// use concurrent_futures::prelude::*;
/// let pool = ThreadPoolExecutor::new();
/// assert_eq!(pool.spawn(|| 2 + 2).unwrap().into_result(), Ok(4));
/// ```
pub mod prelude {
    #[cfg(feature = "mpi")]
    pub use crate::MpiPoolExecutor;
    pub use crate::{
        Executor, MapOptions, ReturnWhen, TaskError, TaskFuture, ThreadPoolExecutor, as_completed,
        wait,
    };
    #[cfg(feature = "process")]
    pub use crate::{ProcessPoolExecutor, StartMethod, task};
}

/// The Rust code in `docs/guide.md`, compiled and run as doc tests so that
/// the guide cannot rot.
#[cfg(all(doctest, feature = "process"))]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
