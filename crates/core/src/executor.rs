//! The [`Executor`] trait that both pools implement, and [`Map`], the lazy
//! ordered iterator behind [`Executor::map`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sync::Arc;
use crate::unordered::MapUnordered;
use crate::{Outcome, TaskError, TaskFuture, Waitable, Waiter};

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
    fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<'_, Self, A, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        Map::new(self, f, items.into_iter(), MapOptions::new())
    }

    /// [`map`](Self::map) with a deadline, a window size or a chunk size.
    ///
    /// ```
    /// use concurrent_futures_core::{Executor, MapOptions};
    /// # use concurrent_futures_core::doc_support::Inline as Pool;
    /// # let pool = Pool;
    /// fn len(s: String) -> usize {
    ///     s.len()
    /// }
    ///
    /// let opts = MapOptions::new().buffersize(4).unwrap().chunksize(16).unwrap();
    /// let words = ["a", "bb", "ccc"].map(String::from);
    /// let lengths: Vec<usize> = pool.map_with(len, words, opts).map(Result::unwrap).collect();
    /// assert_eq!(lengths, [1, 2, 3]);
    /// ```
    fn map_with<A, R, I>(
        &self,
        f: fn(A) -> R,
        items: I,
        options: MapOptions,
    ) -> Map<'_, Self, A, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        Map::new(self, f, items.into_iter(), options)
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
    ) -> MapUnordered<'_, Self, A, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        MapUnordered::new(self, f, items.into_iter(), MapOptions::new())
    }

    /// [`map_unordered`](Self::map_unordered) with a deadline, a window
    /// size or a chunk size (see [`MapOptions`]). Items of one chunk come
    /// out together, in input order.
    ///
    /// ```
    /// use concurrent_futures_core::{Executor, MapOptions};
    /// # use concurrent_futures_core::doc_support::Inline as Pool;
    /// # let pool = Pool;
    /// fn inverse(x: i32) -> i32 {
    ///     100 / x
    /// }
    ///
    /// let opts = MapOptions::new().chunksize(2).unwrap();
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
    ) -> MapUnordered<'_, Self, A, R, I::IntoIter>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        MapUnordered::new(self, f, items.into_iter(), options)
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
/// use concurrent_futures_core::MapOptions;
/// use std::time::Duration;
///
/// let opts = MapOptions::new().timeout(Duration::from_secs(5));
/// assert!(MapOptions::new().chunksize(0).is_err());
/// assert!(MapOptions::new().buffersize(0).is_err());
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MapOptions {
    pub(crate) timeout: Option<Duration>,
    buffersize: Option<usize>,
    chunksize: Option<usize>,
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
    /// input is read at most this far ahead. Must be at least 1.
    pub fn buffersize(mut self, n: usize) -> Result<MapOptions, ConfigError> {
        if n == 0 {
            return Err(ConfigError::new("buffersize must be >= 1"));
        }
        self.buffersize = Some(n);
        Ok(self)
    }

    /// How many items go into one task. The process pool sends each chunk
    /// as one message; the thread pool runs each chunk as one task, which
    /// saves the per-task cost for tiny tasks. Must be at least 1.
    pub fn chunksize(mut self, n: usize) -> Result<MapOptions, ConfigError> {
        if n == 0 {
            return Err(ConfigError::new("chunksize must be >= 1"));
        }
        self.chunksize = Some(n);
        Ok(self)
    }
}

/// One task of a `map`: a single item, or a chunk of `n` items.
pub(crate) enum Slot<R> {
    One(TaskFuture<R>),
    Chunk(TaskFuture<Vec<Result<R, TaskError>>>, usize),
}

impl<R> Slot<R> {
    pub(crate) fn cancel(&self) {
        match self {
            Slot::One(f) => f.cancel(),
            Slot::Chunk(f, _) => f.cancel(),
        };
    }

    /// How many input items it carries.
    pub(crate) fn len(&self) -> usize {
        match self {
            Slot::One(_) => 1,
            Slot::Chunk(_, n) => *n,
        }
    }

    /// A chunk's outcome as one result per item: the chunk's own error,
    /// if it failed as a whole, repeated for each of its `n` items.
    fn unpack(
        outcome: Result<Vec<Result<R, TaskError>>, TaskError>,
        n: usize,
    ) -> Vec<Result<R, TaskError>> {
        match outcome {
            Ok(results) => results,
            Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
        }
    }

    /// The results of a slot that is done, one per item.
    pub(crate) fn into_results(self) -> Vec<Result<R, TaskError>> {
        match self {
            Slot::One(f) => vec![f.into_result()],
            Slot::Chunk(f, n) => Slot::unpack(f.into_result(), n),
        }
    }

    pub(crate) fn register(&self, waiter: &Arc<Waiter>, token: usize) -> Option<Outcome> {
        match self {
            Slot::One(f) => f.register(waiter, token),
            Slot::Chunk(f, _) => f.register(waiter, token),
        }
    }

    pub(crate) fn unregister(&self, waiter: &Arc<Waiter>) {
        match self {
            Slot::One(f) => f.unregister(waiter),
            Slot::Chunk(f, _) => f.unregister(waiter),
        }
    }

    pub(crate) fn run_inline(&self) -> bool {
        match self {
            Slot::One(f) => f.try_run_inline(),
            Slot::Chunk(f, _) => f.try_run_inline(),
        }
    }
}

/// The submitting half of `map` and `map_unordered`: reads the input, a
/// chunk at a time when `chunksize > 1`, and submits it.
pub(crate) struct Feed<'a, E, A, R, I> {
    executor: &'a E,
    f: fn(A) -> R,
    items: I,
    chunksize: usize,
    input_done: bool,
}

impl<'a, E, A, R, I> Feed<'a, E, A, R, I>
where
    E: Executor,
    A: Payload,
    R: Payload,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(executor: &'a E, f: fn(A) -> R, items: I, options: &MapOptions) -> Self {
        Feed {
            executor,
            f,
            items,
            chunksize: options.chunksize.unwrap_or(1),
            input_done: false,
        }
    }

    /// How many tasks may be in flight: the option, or the default window.
    pub(crate) fn window(&self, options: &MapOptions) -> usize {
        options.buffersize.unwrap_or_else(|| {
            (DEFAULT_WINDOW_PER_WORKER * self.executor.max_workers()).max(MIN_DEFAULT_WINDOW)
        })
    }

    /// Submits the next item (or chunk): `None` once the input is done. A
    /// refused submit loses the items it was given.
    pub(crate) fn submit_next(&mut self) -> Option<Result<Slot<R>, TaskError>> {
        if self.input_done {
            return None;
        }
        if self.chunksize == 1 {
            let Some(item) = self.items.next() else {
                self.input_done = true;
                return None;
            };
            return Some(self.executor.submit(self.f, item).map(Slot::One));
        }
        let chunk: Vec<A> = self.items.by_ref().take(self.chunksize).collect();
        if chunk.len() < self.chunksize {
            self.input_done = true;
        }
        if chunk.is_empty() {
            return None;
        }
        let n = chunk.len();
        Some(
            self.executor
                .submit_chunk(self.f, chunk)
                .map(|f| Slot::Chunk(f, n)),
        )
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
pub struct Map<'a, E, A, R, I> {
    feed: Feed<'a, E, A, R, I>,
    window_cap: usize,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    window: VecDeque<Slot<R>>,
    unpacked: VecDeque<Result<R, TaskError>>,
    submitted: usize,
    submit_error: Option<TaskError>,
    ended: bool,
}

impl<'a, E, A, R, I> Map<'a, E, A, R, I>
where
    E: Executor,
    A: Payload,
    R: Payload,
    I: Iterator<Item = A>,
{
    fn new(executor: &'a E, f: fn(A) -> R, items: I, options: MapOptions) -> Self {
        let feed = Feed::new(executor, f, items, &options);
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

impl<E, A, R, I> Iterator for Map<'_, E, A, R, I>
where
    E: Executor,
    A: Payload,
    R: Payload,
    I: Iterator<Item = A>,
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

impl<E, A, R, I> Drop for Map<'_, E, A, R, I> {
    fn drop(&mut self) {
        for slot in &self.window {
            slot.cancel();
        }
    }
}
