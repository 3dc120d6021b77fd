//! The submitting half of `map` and `map_unordered`: [`MapTasks`], what a
//! task is submitted through (an executor's task function, or a thread
//! pool's closure), and the internal `Feed`, which reads the input a chunk
//! at a time and submits it, and `Slot`, one submitted task.

use crate::sync::Arc;
use crate::{DEFAULT_WINDOW_PER_WORKER, MIN_DEFAULT_WINDOW};
use crate::{Executor, MapOptions, Outcome, Payload, TaskError, TaskFuture, Waitable, Waiter};

/// How [`Map`](crate::Map) and [`MapUnordered`](crate::MapUnordered)
/// submit their items: one task per item, or one per chunk of items. The
/// [`Executor`] trait's `map` submits a task function through [`FnTasks`];
/// the thread pool's own `map` submits a closure.
///
/// ```
/// use concurrent_futures_core::{FnTasks, MapTasks};
/// # use concurrent_futures_core::doc_support::Inline;
/// fn double(x: u8) -> u8 {
///     2 * x
/// }
///
/// let tasks = FnTasks::new(&Inline, double);
/// assert_eq!(tasks.submit_item(4).unwrap().result(), Ok(&8));
/// assert_eq!(tasks.max_workers(), 1);
/// ```
pub trait MapTasks<A, R> {
    /// Submits one item.
    fn submit_item(&self, item: A) -> Result<TaskFuture<R>, TaskError>;
    /// Submits a chunk of items as one task, with one result per item.
    fn submit_items(
        &self,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError>;
    /// The executor's worker count, which sizes the default window.
    fn max_workers(&self) -> usize;
}

/// A task function on an [`Executor`]: what the trait's `map` submits.
pub struct FnTasks<'a, E, A, R> {
    executor: &'a E,
    f: fn(A) -> R,
}

impl<'a, E, A, R> FnTasks<'a, E, A, R> {
    /// `f` on `executor`.
    pub fn new(executor: &'a E, f: fn(A) -> R) -> Self {
        FnTasks { executor, f }
    }
}

impl<E: Executor, A: Payload, R: Payload> MapTasks<A, R> for FnTasks<'_, E, A, R> {
    fn submit_item(&self, item: A) -> Result<TaskFuture<R>, TaskError> {
        self.executor.submit(self.f, item)
    }

    fn submit_items(
        &self,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
        self.executor.submit_chunk(self.f, chunk)
    }

    fn max_workers(&self) -> usize {
        self.executor.max_workers()
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
    pub(crate) fn unpack(
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

/// Reads the input, a chunk at a time when `chunksize > 1`, and submits
/// it through `tasks`.
pub(crate) struct Feed<S, I> {
    tasks: S,
    items: I,
    chunksize: usize,
    input_done: bool,
}

impl<S, I: Iterator> Feed<S, I> {
    pub(crate) fn new(tasks: S, items: I, options: &MapOptions) -> Self {
        Feed {
            tasks,
            items,
            chunksize: options.chunksize.unwrap_or(1),
            input_done: false,
        }
    }

    /// How many tasks may be in flight: the option, or the default window.
    pub(crate) fn window<R>(&self, options: &MapOptions) -> usize
    where
        S: MapTasks<I::Item, R>,
    {
        options.buffersize.unwrap_or_else(|| {
            (DEFAULT_WINDOW_PER_WORKER * self.tasks.max_workers()).max(MIN_DEFAULT_WINDOW)
        })
    }

    /// Submits the next item (or chunk): `None` once the input is done. A
    /// refused submit loses the items it was given.
    pub(crate) fn submit_next<R>(&mut self) -> Option<Result<Slot<R>, TaskError>>
    where
        S: MapTasks<I::Item, R>,
    {
        if self.input_done {
            return None;
        }
        if self.chunksize == 1 {
            let Some(item) = self.items.next() else {
                self.input_done = true;
                return None;
            };
            return Some(self.tasks.submit_item(item).map(Slot::One));
        }
        let chunk: Vec<I::Item> = self.items.by_ref().take(self.chunksize).collect();
        if chunk.len() < self.chunksize {
            self.input_done = true;
        }
        if chunk.is_empty() {
            return None;
        }
        let n = chunk.len();
        Some(self.tasks.submit_items(chunk).map(|f| Slot::Chunk(f, n)))
    }
}
