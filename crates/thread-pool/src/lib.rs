//! [`ThreadPoolExecutor`]: Python's `concurrent.futures.ThreadPoolExecutor`
//! on a work-stealing scheduler (crossbeam-deque).
//!
//! ```
//! use concurrent_futures_core::Executor;
//! use concurrent_futures_thread_pool::ThreadPoolExecutor;
//!
//! fn fib(n: u32) -> u64 {
//!     if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) }
//! }
//!
//! let pool = ThreadPoolExecutor::builder().max_workers(2).build().unwrap();
//! let fut = pool.submit(fib, 20).unwrap();
//! assert_eq!(fut.result(), Ok(&6765));
//! let squares: Vec<u64> = pool.spawn(|| (1..4).map(|x| x * x).collect()).unwrap().into_result().unwrap();
//! assert_eq!(squares, [1, 4, 9]);
//! ```
//!
//! How it schedules, sleeps and wakes is described in `registry.rs` and in
//! `docs/ARCHITECTURE.md`.
#![warn(missing_docs)]

mod closures;
mod inbox;
mod job;
mod registry;
#[cfg(not(loom))]
mod schedule;
/// The scheduling rules, public only in loom builds, for the model checks
/// in `tests/loom.rs`.
#[cfg(loom)]
#[doc(hidden)]
pub mod schedule;
#[cfg(not(loom))]
mod sleep;
/// The sleep/wake and shutdown protocol, public only in loom builds, for the
/// model checks in `tests/loom.rs`.
#[cfg(loom)]
#[doc(hidden)]
pub mod sleep;
mod sync;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use closures::ClosureTasks;
pub use concurrent_futures_core::InitResult;
use concurrent_futures_core::{ConfigError, Executor, Payload, TaskError, TaskFuture, catch_panic};

use crate::job::Entry;
use crate::registry::{Config, Initializer, Registry};

static NEXT_POOL_NUMBER: AtomicUsize = AtomicUsize::new(0);

/// A pool of worker threads that runs tasks and hands back
/// [`TaskFuture`]s.
///
/// * Threads start lazily, one per submit that finds no idle worker, up to
///   `max_workers` (default `min(32, cpus + 4)`, as CPython); idle ones are
///   reused, and an idle pool uses no CPU.
/// * A panic in a task fails that task's future with
///   [`TaskError::Panicked`]; the worker carries on.
/// * A task that waits (`result()`, `result_timeout()`, `into_result()`,
///   `exception()`, [`wait`](concurrent_futures_core::wait()),
///   `as_completed`, `map`) on a task of the same pool that is still queued
///   runs that very task inline instead of waiting for a free worker, so it
///   cannot deadlock the pool, even with one worker. A timed wait does so
///   too, and then returns when the task is done, after its timeout if the
///   task takes longer (outside the pool's threads nothing runs inline, and
///   a timeout is a timeout). It
///   never runs *other* queued work while it waits (rayon does, and a
///   waiting task that holds a lock then deadlocks against the stolen one).
///   A true cycle (two running tasks each waiting for the other) is still a
///   deadlock, as anywhere.
/// * Dropping the pool is `shutdown(wait = true)`: no thread outlives it.
///   Dropped, or shut down with `wait`, from inside one of its own tasks,
///   it waits for what it can without deadlocking on itself: see
///   [`shutdown`](Self::shutdown).
///
/// The pool's own [`submit`](Self::submit), [`map`](Self::map) and
/// [`map_unordered`](Self::map_unordered) take closures and plain Rust
/// types (no serde); the [`Executor`] trait's take `fn` tasks and serde
/// types, so that generic code runs unchanged on the process pool.
/// [`spawn`](Self::spawn) runs a closure with no argument.
pub struct ThreadPoolExecutor {
    registry: Arc<Registry>,
}

/// Configures a [`ThreadPoolExecutor`]: Python's constructor arguments.
///
/// ```
/// use concurrent_futures_thread_pool::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder()
///     .max_workers(4)
///     .thread_name_prefix("SpecialPool")
///     .initializer(|| println!("worker starting"))
///     .build()
///     .unwrap();
/// assert_eq!(pool.max_workers(), 4);
/// assert!(ThreadPoolExecutor::builder().max_workers(0).build().is_err());
/// ```
#[must_use]
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    thread_name_prefix: Option<String>,
    initializer: Option<Initializer>,
    stack_size: Option<usize>,
}

impl ThreadPoolBuilder {
    /// The most threads the pool runs; at least 1. Default:
    /// `min(32, cpus + 4)`, CPython's default.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Threads are named `{prefix}_{n}`; the default prefix is
    /// `ThreadPoolExecutor-{pool number}`.
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name_prefix = Some(prefix.into());
        self
    }

    /// Runs once in every worker thread, before its first task. If it
    /// panics or returns `Err`, the pool is *broken*: queued and later
    /// tasks fail with [`TaskError::Broken`] naming the cause, and submit
    /// refuses new work (CPython's `BrokenThreadPool`).
    pub fn initializer<F, R>(mut self, init: F) -> Self
    where
        F: Fn() -> R + Send + Sync + 'static,
        R: InitResult,
    {
        self.initializer = Some(Arc::new(move || init().into_init_result()));
        self
    }

    /// Stack size of the worker threads (default: Rust's default).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Builds the pool. No thread starts until the first submit.
    ///
    /// Errors: `max_workers` of 0.
    pub fn build(self) -> Result<ThreadPoolExecutor, ConfigError> {
        let max_workers = match self.max_workers {
            Some(0) => return Err(ConfigError::new("max_workers must be greater than 0")),
            Some(n) => n,
            None => default_max_workers(),
        };
        let name_prefix = self.thread_name_prefix.unwrap_or_else(|| {
            format!(
                "ThreadPoolExecutor-{}",
                NEXT_POOL_NUMBER.fetch_add(1, Ordering::Relaxed)
            )
        });
        Ok(ThreadPoolExecutor {
            registry: Registry::new(Config {
                max_workers,
                name_prefix,
                initializer: self.initializer,
                stack_size: self.stack_size,
            }),
        })
    }
}

/// CPython's default for `max_workers`: `min(32, cpus + 4)`.
///
/// ```
/// let n = concurrent_futures_thread_pool::default_max_workers();
/// assert!(n >= 5 && n <= 32);
/// ```
pub fn default_max_workers() -> usize {
    (num_cpus::get() + 4).min(32)
}

impl ThreadPoolExecutor {
    /// A pool with the default settings.
    ///
    /// ```
    /// let pool = concurrent_futures_thread_pool::ThreadPoolExecutor::new();
    /// assert_eq!(pool.max_workers(), concurrent_futures_thread_pool::default_max_workers());
    /// ```
    pub fn new() -> ThreadPoolExecutor {
        ThreadPoolExecutor::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to configure the pool.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            max_workers: None,
            thread_name_prefix: None,
            initializer: None,
            stack_size: None,
        }
    }

    /// Runs the closure `f` on the pool and returns its future at once.
    /// This is `submit` for closures, which only a thread pool can run.
    ///
    /// Errors: [`TaskError::ShutDown`] after shutdown, [`TaskError::Broken`]
    /// if an initializer failed.
    ///
    /// ```
    /// use concurrent_futures_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let name = String::from("world");
    /// let fut = pool.spawn(move || format!("hello {name}")).unwrap();
    /// assert_eq!(fut.result().map(String::as_str), Ok("hello world"));
    /// ```
    pub fn spawn<F, R>(&self, f: F) -> Result<TaskFuture<R>, TaskError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let pool_id = self.registry.id;
        let mut fut = None;
        self.registry.submit(|counted| {
            let (future, job) = TaskFuture::queued(Entry::new(pool_id, counted), f);
            fut = Some(future);
            job
        })?;
        Ok(fut.expect("made by an accepted submit"))
    }

    /// The most threads this pool runs at once.
    pub fn max_workers(&self) -> usize {
        self.registry.config.max_workers
    }

    /// Worker threads started and not yet exited (Python's
    /// `len(executor._threads)` while the pool runs).
    ///
    /// ```
    /// let pool = concurrent_futures_thread_pool::ThreadPoolExecutor::new();
    /// assert_eq!(pool.worker_count(), 0); // threads start lazily
    /// pool.spawn(|| ()).unwrap().result().unwrap();
    /// assert_eq!(pool.worker_count(), 1);
    /// ```
    pub fn worker_count(&self) -> usize {
        self.registry.alive_workers()
    }

    /// Why the pool is broken, if an initializer failed.
    pub fn broken_reason(&self) -> Option<&str> {
        self.registry.is_broken()
    }

    /// Stops the pool; see [`Executor::shutdown`].
    ///
    /// ```
    /// use concurrent_futures_core::TaskError;
    /// let pool = concurrent_futures_thread_pool::ThreadPoolExecutor::new();
    /// pool.shutdown(true, false);
    /// assert_eq!(pool.spawn(|| 1).unwrap_err(), TaskError::ShutDown);
    /// ```
    ///
    /// **From inside one of the pool's own tasks** (or a done-callback run
    /// by one of its workers), `shutdown(wait = true)` cannot wait for the
    /// task that calls it, which is still running on the calling thread.
    /// (CPython raises "cannot join current thread" there.) It waits for
    /// everything else it can, and returns:
    ///
    /// * every other worker thread finishes the tasks it runs and the
    ///   queued work it takes, exits and is joined, so each task that is
    ///   not running on this thread has completed;
    /// * except the worker of another task that has itself called
    ///   `shutdown(wait = true)`, while that task runs: tasks that shut the
    ///   pool down do not wait for each other, which would deadlock;
    /// * queued work that only this thread could run (a pool of one
    ///   worker) runs after the calling task returns, as the thread then
    ///   drains the queue and exits.
    ///
    /// The calling thread, and any other that is still in such a task, is
    /// joined by a later `shutdown(wait = true)` from outside the pool
    /// (its drop, say), which waits for them all.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use concurrent_futures_core::TaskError;
    /// use concurrent_futures_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = Arc::new(ThreadPoolExecutor::builder().max_workers(2).build().unwrap());
    /// let (release, gate) = std::sync::mpsc::channel::<()>();
    /// let other = pool.spawn(move || gate.recv().is_ok()).unwrap();
    /// let seen = other.clone();
    /// let handle = Arc::clone(&pool);
    /// let inside = pool
    ///     .spawn(move || {
    ///         handle.shutdown(true, false);
    ///         // The other task is done and its worker gone; this one remains.
    ///         (seen.done(), handle.worker_count())
    ///     })
    ///     .unwrap();
    /// # // Release the other task only once the shutdown has begun.
    /// # while pool.spawn(|| true).is_ok() {
    /// #     std::thread::yield_now();
    /// # }
    /// release.send(()).unwrap();
    /// assert_eq!(inside.result(), Ok(&(true, 1)));
    /// assert_eq!(other.result(), Ok(&true));
    /// pool.shutdown(true, false); // from outside: joins the last thread
    /// assert_eq!(pool.worker_count(), 0);
    /// assert_eq!(pool.spawn(|| true).unwrap_err(), TaskError::ShutDown);
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.registry.shutdown(wait, cancel_futures)
    }
}

impl Default for ThreadPoolExecutor {
    fn default() -> Self {
        ThreadPoolExecutor::new()
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("name_prefix", &self.registry.config.name_prefix)
            .field("max_workers", &self.registry.config.max_workers)
            .field("workers", &self.worker_count())
            .finish()
    }
}

impl Drop for ThreadPoolExecutor {
    /// `shutdown(wait = true)`: queued work runs, then every thread is joined.
    fn drop(&mut self) {
        self.registry.shutdown(true, false);
    }
}

impl Executor for ThreadPoolExecutor {
    fn submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        args: A,
    ) -> Result<TaskFuture<R>, TaskError> {
        self.spawn(move || f(args))
    }

    fn submit_chunk<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
        self.spawn(move || chunk.into_iter().map(|a| catch_panic(|| f(a))).collect())
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.registry.shutdown(wait, cancel_futures)
    }

    fn max_workers(&self) -> usize {
        self.registry.config.max_workers
    }
}
