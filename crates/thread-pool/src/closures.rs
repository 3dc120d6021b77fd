//! The thread pool's own API: `submit` and `map` over closures, for plain
//! Rust types. The [`Executor`](concurrent_futures_core::Executor) trait
//! asks for `fn` tasks and serde [`Payload`](concurrent_futures_core::Payload)s,
//! since a process pool must name the function and encode its values in
//! another process; a thread pool needs neither, so these methods take any
//! closure and any `Send` argument. On a `ThreadPoolExecutor` they are
//! what `pool.submit(..)` and `pool.map(..)` call (a `fn` is a closure
//! too); code generic over the trait calls the trait's.

use std::sync::Arc;

use concurrent_futures_core::{
    Map, MapOptions, MapTasks, MapUnordered, TaskError, TaskFuture, catch_panic,
};

use crate::ThreadPoolExecutor;

/// A closure on a thread pool: what the pool's own
/// [`map`](ThreadPoolExecutor::map) submits, one task per item or chunk.
pub struct ClosureTasks<'a, F> {
    pool: &'a ThreadPoolExecutor,
    f: Arc<F>,
}

impl<F, A, R> MapTasks<A, R> for ClosureTasks<'_, F>
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    fn submit_item(&self, item: A) -> Result<TaskFuture<R>, TaskError> {
        let f = Arc::clone(&self.f);
        self.pool.spawn(move || f(item))
    }

    fn submit_items(
        &self,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
        let f = Arc::clone(&self.f);
        self.pool
            .spawn(move || chunk.into_iter().map(|a| catch_panic(|| f(a))).collect())
    }

    fn max_workers(&self) -> usize {
        self.pool.max_workers()
    }
}

impl ThreadPoolExecutor {
    /// Runs `f(arg)` on the pool and returns its future at once: Python's
    /// `executor.submit(fn, arg)`, for any closure and any `Send` argument
    /// (no serde). [`spawn`](Self::spawn) is the same without an argument.
    ///
    /// Errors: [`TaskError::ShutDown`] after shutdown, [`TaskError::Broken`]
    /// if an initializer failed.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use concurrent_futures_thread_pool::ThreadPoolExecutor;
    ///
    /// // A plain Rust type: no Serialize, no Deserialize.
    /// struct Page {
    ///     words: Vec<&'static str>,
    /// }
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let page = Page { words: vec!["a", "b", "a"] };
    /// let counts = pool
    ///     .submit(
    ///         |page: Page| {
    ///             let mut counts = HashMap::new();
    ///             for w in page.words {
    ///                 *counts.entry(w).or_insert(0) += 1;
    ///             }
    ///             counts
    ///         },
    ///         page,
    ///     )
    ///     .unwrap();
    /// assert_eq!(counts.result().unwrap()["a"], 2);
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<TaskFuture<R>, TaskError>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.spawn(move || f(arg))
    }

    /// `f` over every item, results in input order: the trait's
    /// [`map`](concurrent_futures_core::Executor::map) for a closure and
    /// plain types. Lazy (the input is read a window ahead), one `Result`
    /// per item (a panicking item fails alone), and dropping the iterator
    /// cancels what is still queued.
    ///
    /// ```
    /// use concurrent_futures_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(2).build().unwrap();
    /// let offset = 10; // captured
    /// let out: Vec<u64> = pool.map(move |x: u64| x + offset, 0..3).map(Result::unwrap).collect();
    /// assert_eq!(out, [10, 11, 12]);
    /// ```
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> Map<ClosureTasks<'_, F>, R, I::IntoIter>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_with(f, items, MapOptions::new())
    }

    /// [`map`](Self::map) with a deadline, a window size or a chunk size
    /// (see [`MapOptions`]).
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use concurrent_futures_core::MapOptions;
    /// use concurrent_futures_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let opts = MapOptions::new().chunksize(NonZeroUsize::new(100).unwrap());
    /// let total: u64 = pool.map_with(|x: u64| x * x, 0..1000, opts).map(Result::unwrap).sum();
    /// assert_eq!(total, (0..1000u64).map(|x| x * x).sum());
    /// ```
    pub fn map_with<F, A, R, I>(
        &self,
        f: F,
        items: I,
        options: MapOptions,
    ) -> Map<ClosureTasks<'_, F>, R, I::IntoIter>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Map::new(self.tasks(f), items.into_iter(), options)
    }

    /// `f` over every item, each result as soon as it is done with its
    /// input's index: the trait's
    /// [`map_unordered`](concurrent_futures_core::Executor::map_unordered)
    /// for a closure and plain types.
    ///
    /// ```
    /// use concurrent_futures_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let mut out: Vec<(usize, String)> = pool
    ///     .map_unordered(|s: &'static str| s.to_uppercase(), ["a", "b"])
    ///     .map(|(i, r)| (i, r.unwrap()))
    ///     .collect();
    /// out.sort();
    /// assert_eq!(out, [(0, "A".to_owned()), (1, "B".to_owned())]);
    /// ```
    pub fn map_unordered<F, A, R, I>(
        &self,
        f: F,
        items: I,
    ) -> MapUnordered<ClosureTasks<'_, F>, R, I::IntoIter>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_unordered_with(f, items, MapOptions::new())
    }

    /// [`map_unordered`](Self::map_unordered) with a deadline, a window
    /// size or a chunk size (see [`MapOptions`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures_core::MapOptions;
    /// use concurrent_futures_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let opts = MapOptions::new().timeout(Duration::from_secs(10));
    /// let done = pool.map_unordered_with(|x: u8| x, [1, 2, 3], opts).count();
    /// assert_eq!(done, 3);
    /// ```
    pub fn map_unordered_with<F, A, R, I>(
        &self,
        f: F,
        items: I,
        options: MapOptions,
    ) -> MapUnordered<ClosureTasks<'_, F>, R, I::IntoIter>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        MapUnordered::new(self.tasks(f), items.into_iter(), options)
    }

    fn tasks<F>(&self, f: F) -> ClosureTasks<'_, F> {
        ClosureTasks {
            pool: self,
            f: Arc::new(f),
        }
    }
}
