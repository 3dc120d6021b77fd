//! The futures core of `concurrent-futures`: the [`TaskFuture`] handle and
//! its state machine, [`TaskError`], [`wait`] and [`as_completed`], and the
//! [`Executor`] trait with its lazy, ordered [`map`](Executor::map).
//!
//! Users import the facade crate `concurrent-futures`, which re-exports all
//! of this next to the pools; executors depend on this crate alone.
//!
//! ```
//! use concurrent_futures_core::{as_completed, TaskFuture};
//!
//! let (fut, completer) = TaskFuture::pending();
//! std::thread::spawn(move || completer.complete(Ok(6 * 7)));
//! for done in as_completed([fut], None) {
//!     assert_eq!(done.unwrap().result(), Ok(&42));
//! }
//! ```
#![warn(missing_docs)]

mod cell;
mod error;
mod executor;
mod feed;
mod future;
#[cfg(feature = "stream")]
mod stream;
mod sync;
mod task;
mod unordered;
mod wait;

pub use error::{InitResult, TaskError, catch_panic, panic_message};
pub use executor::{
    ConfigError, DEFAULT_WINDOW_PER_WORKER, Executor, MIN_DEFAULT_WINDOW, Map, MapOptions, Payload,
};
pub use feed::{FnTasks, MapTasks};
pub use future::{
    Awaiting, AwaitingRef, Completer, FutureState, InlineRun, TaskFuture,
    set_callback_panic_handler,
};
#[cfg(feature = "stream")]
pub use stream::{AsCompletedStream, as_completed_stream};
pub use task::{QueuePolicy, QueuedTask};
pub use unordered::MapUnordered;
pub use wait::{
    AsCompleted, DoneAndNotDone, Outcome, ReturnWhen, Waitable, Waiter, as_completed, wait,
};

#[doc(hidden)]
pub mod doc_support {
    //! A trivial executor for this crate's doc examples: it runs each task
    //! in the caller's thread, at submit.
    use crate::{Executor, Payload, TaskError, TaskFuture, catch_panic};

    /// Runs every task at once in the calling thread.
    pub struct Inline;

    fn run<A, R>(f: fn(A) -> R, a: A) -> Result<R, TaskError> {
        catch_panic(|| f(a))
    }

    impl Executor for Inline {
        fn submit<A: Payload, R: Payload>(
            &self,
            f: fn(A) -> R,
            args: A,
        ) -> Result<TaskFuture<R>, TaskError> {
            let (fut, completer) = TaskFuture::pending();
            completer.set_running();
            completer.complete(run(f, args));
            Ok(fut)
        }
        fn submit_chunk<A: Payload, R: Payload>(
            &self,
            f: fn(A) -> R,
            chunk: Vec<A>,
        ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
            Ok(TaskFuture::ready(
                chunk.into_iter().map(|a| run(f, a)).collect(),
            ))
        }
        fn shutdown(&self, _wait: bool, _cancel_futures: bool) {}
        fn max_workers(&self) -> usize {
            1
        }
    }
}
