//! The [`Executor`] trait that both pools implement, and [`Map`], the lazy
//! ordered iterator behind [`Executor::map`].

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::feed::{Feed, FnTasks, MapTasks, Slot};
use crate::unordered::MapUnordered;
use crate::{TaskError, TaskFuture};

/// What a task's argument and result must be so that any executor can carry
/// them, a process pool included: encodable with serde, shareable between
/// threads, and owning its data. Blanket-implemented; you never implement it.
///
/// ```
/// fn carries<T: concurrent_futures_core::Payload>() {}
/// carries::<(u64, String, Vec<f32>)>();
/// ```
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T> Payload for T where T: Serialize + DeserializeOwned + Send + Sync + 'static {}

/// `map`'s default window: tasks in flight per worker.
///
/// Small windows make the consuming thread sleep on almost every item when
/// it shares a core with the workers (measured in `docs/PERFORMANCE.md`).
///
/// ```
/// assert!(concurrent_futures_core::DEFAULT_WINDOW_PER_WORKER >= 2);
/// ```
pub const DEFAULT_WINDOW_PER_WORKER: usize = 4;

/// `map`'s smallest default window, whatever the worker count.
///
/// ```
/// assert_eq!(concurrent_futures_core::MIN_DEFAULT_WINDOW, 64);
/// ```
pub const MIN_DEFAULT_WINDOW: usize = 64;

/// A configuration value that an executor or `map` refuses.
///
/// ```
/// use concurrent_futures_core::ConfigError;
/// let e = ConfigError::new("max_workers must be greater than 0");
/// assert_eq!(e.to_string(), "invalid configuration: max_workers must be greater than 0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A pool that runs tasks and hands back [`TaskFuture`]s: Python's
/// `concurrent.futures.Executor`.
///
/// Code written against this trait drives any executor, the thread pool and
/// the process pool alike. That is why a task is a plain function
/// `fn(A) -> R` rather than a closure (a function can be named in another
/// process, a closure's captures cannot), and why `A` and `R` are
/// [`Payload`]s (the process pool encodes them). Pass several arguments as a
/// tuple. Each pool also has its own closure-taking method for work that
/// stays in the process.
///
/// ```
/// use concurrent_futures_core::{Executor, TaskError};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// // Written once, runs on any executor.
/// fn sum_of_squares<E: Executor>(pool: &E, n: u64) -> Result<u64, TaskError> {
///     pool.map(square, 0..n).sum()
/// }
/// # assert_eq!(sum_of_squares(&concurrent_futures_core::doc_support::Inline, 4), Ok(14));
/// ```
pub trait Executor {
    /// Schedules `f(args)` and returns its future at once. Python's
    /// `executor.submit(fn, *args)`.
    ///
    /// Errors: [`TaskError::ShutDown`] after [`shutdown`](Self::shutdown),
    /// [`TaskError::Broken`] if the executor can no longer run work.
    fn submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        args: A,
    ) -> Result<TaskFuture<R>, TaskError>;

    /// Schedules `f` over a whole chunk of arguments as one unit of work and
    /// returns one future for the chunk's results, each item with its own
    /// `Result` (a panic fails only its item). [`map`](Self::map) uses this
    /// when `chunksize > 1`.
    fn submit_chunk<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError>;

    /// Stops taking work. With `wait`, blocks until every task that was
    /// submitted has finished and the workers are gone. With
    /// `cancel_futures`, first cancels every task that has not started.
    /// Tasks already running always finish. Safe to call more than once.
    /// Called with `wait` from inside one of the executor's own tasks or
    /// done-callbacks, it cannot wait for the thread it runs on; each
    /// executor says what it waits for then (it never deadlocks on itself).
    fn shutdown(&self, wait: bool, cancel_futures: bool);

    /// The most workers this executor runs at once.
    fn max_workers(&self) -> usize;

    /// Applies `f` to every item, in parallel, and yields the results in
    /// input order. Python's `executor.map(fn, items)`.
    ///
    /// Lazy with a bounded window ([`DEFAULT_WINDOW_PER_WORKER`] × `max_workers`, at least
    /// [`MIN_DEFAULT_WINDOW`], tasks in flight by
    /// default), so an endless iterator runs in flat memory; the first
    /// window is submitted before `map` returns. Each item yields its own
    /// `Result`: a failing item neither ends the iteration nor cancels the
    /// rest (as CPython 3.15 decided in gh-108518). Dropping the iterator
    /// cancels the tasks still queued.
    fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<FnTasks<'_, Self, A, R>, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        Map::new(FnTasks::new(self, f), items.into_iter(), MapOptions::new())
    }

    /// [`map`](Self::map) with a deadline, a window size or a chunk size.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use concurrent_futures_core::{Executor, MapOptions};
    /// # use concurrent_futures_core::doc_support::Inline as Pool;
    /// # let pool = Pool;
    /// fn len(s: String) -> usize {
    ///     s.len()
    /// }
    ///
    /// let opts = MapOptions::new()
    ///     .buffersize(NonZeroUsize::new(4).unwrap())
    ///     .chunksize(NonZeroUsize::new(16).unwrap());
    /// let words = ["a", "bb", "ccc"].map(String::from);
    /// let lengths: Vec<usize> = pool.map_with(len, words, opts).map(Result::unwrap).collect();
    /// assert_eq!(lengths, [1, 2, 3]);
    /// ```
    fn map_with<A, R, I>(
        &self,
        f: fn(A) -> R,
        items: I,
        options: MapOptions,
    ) -> Map<FnTasks<'_, Self, A, R>, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        Map::new(FnTasks::new(self, f), items.into_iter(), options)
    }

    /// Like [`map`](Self::map), but yields each result as soon as it is
    /// done, with the index of its input item: multiprocessing's
    /// `imap_unordered`, mpi4py's `map(..., unordered=True)`. The same lazy
    /// window (the input is read at most that far ahead, so an endless
    /// input is fine), one `Result` per item (a failing item does not end
    /// the iteration), and dropping the iterator cancels what is still
    /// queued.
    ///
    /// ```
    /// use concurrent_futures_core::Executor;
    /// # use concurrent_futures_core::doc_support::Inline as Pool;
    /// # let pool = Pool;
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let mut squares: Vec<(usize, u64)> = pool
    ///     .map_unordered(square, [3, 1, 2])
    ///     .map(|(i, r)| (i, r.unwrap()))
    ///     .collect();
    /// squares.sort(); // in completion order until sorted
    /// assert_eq!(squares, [(0, 9), (1, 1), (2, 4)]);
    /// ```
    fn map_unordered<A, R, I>(
        &self,
        f: fn(A) -> R,
        items: I,
    ) -> MapUnordered<FnTasks<'_, Self, A, R>, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        MapUnordered::new(FnTasks::new(self, f), items.into_iter(), MapOptions::new())
    }

    /// [`map_unordered`](Self::map_unordered) with a deadline, a window
    /// size or a chunk size (see [`MapOptions`]). Items of one chunk come
    /// out together, in input order.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use concurrent_futures_core::{Executor, MapOptions};
    /// # use concurrent_futures_core::doc_support::Inline as Pool;
    /// # let pool = Pool;
    /// fn inverse(x: i32) -> i32 {
    ///     100 / x
    /// }
    ///
    /// let opts = MapOptions::new().chunksize(NonZeroUsize::new(2).unwrap());
    /// let mut results: Vec<_> = pool.map_unordered_with(inverse, [1, 0, 4], opts).collect();
    /// results.sort_by_key(|(i, _)| *i);
    /// assert_eq!(results[0], (0, Ok(100)));
    /// assert!(results[1].1.is_err()); // item 1 panicked; the others ran
    /// assert_eq!(results[2], (2, Ok(25)));
    /// ```
    fn map_unordered_with<A, R, I>(
        &self,
        f: fn(A) -> R,
        items: I,
        options: MapOptions,
    ) -> MapUnordered<FnTasks<'_, Self, A, R>, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        MapUnordered::new(FnTasks::new(self, f), items.into_iter(), options)
    }
}

/// Forwards the trait through a pointer type, so generic code can take a
/// pool by reference or shared in an `Arc`.
macro_rules! forward_executor {
    ($($ty:ty),*) => {$(
        impl<E: Executor> Executor for $ty {
            fn submit<A: Payload, R: Payload>(
                &self,
                f: fn(A) -> R,
                args: A,
            ) -> Result<TaskFuture<R>, TaskError> {
                (**self).submit(f, args)
            }
            fn submit_chunk<A: Payload, R: Payload>(
                &self,
                f: fn(A) -> R,
                chunk: Vec<A>,
            ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
                (**self).submit_chunk(f, chunk)
            }
            fn shutdown(&self, wait: bool, cancel_futures: bool) {
                (**self).shutdown(wait, cancel_futures)
            }
            fn max_workers(&self) -> usize {
                (**self).max_workers()
            }
        }
    )*};
}

forward_executor!(&E, std::sync::Arc<E>);

/// Options for [`Executor::map_with`]: Python's `timeout`, `buffersize` and
/// `chunksize`.
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use concurrent_futures_core::MapOptions;
///
/// const CHUNK: NonZeroUsize = NonZeroUsize::new(100).unwrap();
/// let opts = MapOptions::new()
///     .timeout(Duration::from_secs(5))
///     .chunksize(CHUNK)
///     .buffersize(NonZeroUsize::MIN); // 1
/// # let _ = opts;
/// ```
///
/// A size of 0, which Python rejects with `ValueError` when `map` is
/// called, cannot be written: the sizes are `NonZeroUsize`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) buffersize: Option<usize>,
    pub(crate) chunksize: Option<usize>,
}

impl MapOptions {
    /// The defaults: no deadline, a window of [`DEFAULT_WINDOW_PER_WORKER`] ×
    /// `max_workers` (at least [`MIN_DEFAULT_WINDOW`]), chunks of 1.
    pub fn new() -> MapOptions {
        MapOptions::default()
    }

    /// One deadline for the whole iteration, counted from the `map` call.
    /// When it passes, the item being waited for yields
    /// [`TaskError::TimedOut`], every task still queued is cancelled, and
    /// the iterator ends.
    pub fn timeout(mut self, timeout: Duration) -> MapOptions {
        self.timeout = Some(timeout);
        self
    }

    /// How many tasks (chunks, with `chunksize > 1`) may be in flight; the
    /// input is read at most this far ahead.
    pub fn buffersize(mut self, n: NonZeroUsize) -> MapOptions {
        self.buffersize = Some(n.get());
        self
    }

    /// How many items go into one task. The process pool sends each chunk
    /// as one message; the thread pool runs each chunk as one task, which
    /// saves the per-task cost for tiny tasks.
    pub fn chunksize(mut self, n: NonZeroUsize) -> MapOptions {
        self.chunksize = Some(n.get());
        self
    }
}

/// The iterator [`Executor::map`] returns: one `Result` per input item, in
/// input order.
///
/// ```
/// use concurrent_futures_core::{Executor, TaskError};
/// # use concurrent_futures_core::doc_support::Inline;
/// fn inverse(x: i32) -> i32 {
///     assert!(x != 0, "zero has no inverse");
///     100 / x
/// }
///
/// let results: Vec<Result<i32, TaskError>> = Inline.map(inverse, [1, 0, 4]).collect();
/// assert_eq!(results[0], Ok(100));
/// assert!(matches!(results[1], Err(TaskError::Panicked { .. }))); // this item only
/// assert_eq!(results[2], Ok(25));
/// ```
pub struct Map<S, R, I> {
    feed: Feed<S, I>,
    window_cap: usize,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    window: VecDeque<Slot<R>>,
    unpacked: VecDeque<Result<R, TaskError>>,
    submitted: usize,
    submit_error: Option<TaskError>,
    ended: bool,
}

impl<S, R, I> Map<S, R, I>
where
    S: MapTasks<I::Item, R>,
    I: Iterator,
{
    /// The iterator over `items`, submitted through `tasks`, as
    /// `map_with` makes it. Executors call their trait's `map`; this is
    /// for a `map` of their own over other kinds of tasks (the thread
    /// pool's closures).
    pub fn new(tasks: S, items: I, options: MapOptions) -> Self {
        let feed = Feed::new(tasks, items, &options);
        let window_cap = feed.window(&options);
        let mut map = Map {
            feed,
            window_cap,
            timeout: options.timeout,
            deadline: options.timeout.and_then(crate::future::deadline_after),
            window: VecDeque::with_capacity(window_cap),
            unpacked: VecDeque::new(),
            submitted: 0,
            submit_error: None,
            ended: false,
        };
        map.fill();
        map
    }

    /// Submits until the window is full or the input ends.
    fn fill(&mut self) {
        while self.submit_error.is_none() && self.window.len() < self.window_cap {
            match self.feed.submit_next() {
                None => break,
                Some(Ok(slot)) => {
                    self.submitted += 1;
                    self.window.push_back(slot);
                }
                Some(Err(e)) => self.submit_error = Some(e),
            }
        }
    }
}

impl<S, R, I> Iterator for Map<S, R, I>
where
    S: MapTasks<I::Item, R>,
    I: Iterator,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(r) = self.unpacked.pop_front() {
            return Some(r);
        }
        if self.ended {
            return None;
        }
        self.fill();
        let Some(slot) = self.window.pop_front() else {
            self.ended = true;
            return self.submit_error.take().map(Err);
        };
        let outcome = match slot {
            Slot::One(f) => f.into_result_until(self.deadline).map_err(Slot::One),
            Slot::Chunk(f, n) => match f.into_result_until(self.deadline) {
                Ok(outcome) => {
                    self.unpacked.extend(Slot::unpack(outcome, n));
                    match self.unpacked.pop_front() {
                        Some(r) => Ok(r),
                        // An executor gave back an empty chunk: go on with
                        // the next one rather than end the iteration.
                        None => return self.next(),
                    }
                }
                Err(f) => Err(Slot::Chunk(f, n)),
            },
        };
        match outcome {
            Ok(r) => Some(r),
            Err(late) => {
                late.cancel();
                let unfinished = 1 + self.window.len();
                for slot in self.window.drain(..) {
                    slot.cancel();
                }
                self.ended = true;
                Some(Err(TaskError::TimedOut {
                    after: self.timeout.unwrap_or_default(),
                    unfinished,
                    total: self.submitted,
                }))
            }
        }
    }
}

impl<S, R, I> Drop for Map<S, R, I> {
    fn drop(&mut self) {
        for slot in &self.window {
            slot.cancel();
        }
    }
}
