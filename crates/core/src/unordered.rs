//! [`MapUnordered`], the iterator behind
//! [`Executor::map_unordered`](crate::Executor::map_unordered): `map`'s
//! lazy window, each result as soon as it is done.
//!
//! Every task in flight is registered on one [`Waiter`] under a token (its
//! place in `in_flight`); a task that completes tells the waiter, so the
//! consuming thread sleeps until some task is done, as in `as_completed`,
//! and then refills the window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::feed::{Feed, MapTasks, Slot};
use crate::sync::Arc;
use crate::{MapOptions, TaskError, Waiter};

/// One task in flight: its slot and the index of its first input item.
struct InFlight<R> {
    first: usize,
    slot: Slot<R>,
}

/// The iterator [`Executor::map_unordered`](crate::Executor::map_unordered)
/// returns: `(index, result)` for every input item, in the order the
/// tasks finish (a chunk's items together, in input order).
///
/// With a timeout (see [`MapOptions::timeout`]), when the deadline passes
/// it yields [`TaskError::TimedOut`] under the smallest index still
/// pending, cancels what is still queued, and ends. A submit that the
/// executor refuses (it was shut down) yields its error under the index of
/// the refused item, after the tasks already in flight, and ends the
/// iteration.
///
/// ```
/// use concurrent_futures_core::{Executor, TaskError};
/// # use concurrent_futures_core::doc_support::Inline;
/// fn halve(x: u32) -> u32 {
///     assert!(x % 2 == 0, "odd");
///     x / 2
/// }
///
/// let mut out: Vec<(usize, Result<u32, TaskError>)> = Inline.map_unordered(halve, [4, 3, 8]).collect();
/// out.sort_by_key(|(i, _)| *i);
/// assert_eq!(out[0], (0, Ok(2)));
/// assert!(matches!(out[1], (1, Err(TaskError::Panicked { .. }))));
/// assert_eq!(out[2], (2, Ok(4)));
/// ```
pub struct MapUnordered<S, R, I> {
    feed: Feed<S, I>,
    window_cap: usize,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    waiter: Arc<Waiter>,
    /// Indexed by token; `None` where a token is free (listed in `free`).
    in_flight: Vec<Option<InFlight<R>>>,
    free: Vec<usize>,
    /// Tasks in flight (the `Some`s of `in_flight`).
    pending: usize,
    /// Results taken from done tasks, not yet yielded.
    ready: VecDeque<(usize, Result<R, TaskError>)>,
    /// The index of the next input item.
    next_index: usize,
    submitted: usize,
    submit_error: Option<(usize, TaskError)>,
    ended: bool,
}

impl<S, R, I> MapUnordered<S, R, I>
where
    S: MapTasks<I::Item, R>,
    I: Iterator,
{
    /// The iterator over `items`, submitted through `tasks`, as
    /// `map_unordered_with` makes it (see [`Map::new`](crate::Map::new)).
    pub fn new(tasks: S, items: I, options: MapOptions) -> Self {
        let feed = Feed::new(tasks, items, &options);
        let window_cap = feed.window(&options);
        let mut map = MapUnordered {
            feed,
            window_cap,
            timeout: options.timeout,
            deadline: options.timeout.and_then(crate::future::deadline_after),
            waiter: Waiter::new(),
            in_flight: Vec::with_capacity(window_cap),
            free: Vec::new(),
            pending: 0,
            ready: VecDeque::new(),
            next_index: 0,
            submitted: 0,
            submit_error: None,
            ended: false,
        };
        map.fill();
        map
    }

    /// Submits until the window is full or the input ends. Results not
    /// yet yielded count against the window, so the input is read at most
    /// `window_cap` items (chunks) ahead of the consumer even where tasks
    /// finish at once.
    fn fill(&mut self) {
        while self.submit_error.is_none() && self.pending + self.ready.len() < self.window_cap {
            let first = self.next_index;
            match self.feed.submit_next() {
                None => break,
                Some(Err(e)) => self.submit_error = Some((first, e)),
                Some(Ok(slot)) => {
                    self.submitted += 1;
                    self.next_index += slot.len();
                    self.track(InFlight { first, slot });
                }
            }
        }
    }

    /// Registers a task on the waiter, or takes its results at once if it
    /// is done already.
    fn track(&mut self, task: InFlight<R>) {
        let token = self.free.pop().unwrap_or(self.in_flight.len());
        if task.slot.register(&self.waiter, token).is_some() {
            self.free.push(token);
            self.take(task);
            return;
        }
        if token == self.in_flight.len() {
            self.in_flight.push(Some(task));
        } else {
            self.in_flight[token] = Some(task);
        }
        self.pending += 1;
    }

    /// Moves a done task's results to `ready`.
    fn take(&mut self, task: InFlight<R>) {
        let first = task.first;
        self.ready.extend(
            task.slot
                .into_results()
                .into_iter()
                .enumerate()
                .map(|(i, r)| (first + i, r)),
        );
    }

    /// The task registered under `token` is done: its results go to
    /// `ready` and its token is free again.
    fn finished(&mut self, token: usize) {
        if let Some(task) = self.in_flight.get_mut(token).and_then(Option::take) {
            self.pending -= 1;
            self.free.push(token);
            self.take(task);
        }
    }

    /// Cancels and forgets every task in flight.
    fn cancel_all(&mut self) {
        for task in self.in_flight.iter().flatten() {
            task.slot.unregister(&self.waiter);
            task.slot.cancel();
        }
        self.in_flight.clear();
        self.free.clear();
        self.pending = 0;
    }
}

impl<S, R, I> Iterator for MapUnordered<S, R, I>
where
    S: MapTasks<I::Item, R>,
    I: Iterator,
{
    type Item = (usize, Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            self.fill();
            if !self.ready.is_empty() {
                continue;
            }
            if self.pending == 0 {
                self.ended = true;
                return self.submit_error.take().map(|(i, e)| (i, Err(e)));
            }
            // A task that is done already needs no claim and no wait: the
            // common case while results keep coming.
            if let Some((token, _)) = self.waiter.try_next() {
                self.finished(token);
                continue;
            }
            // Claim a still-queued task of our own pool instead of waiting
            // for it (as `result()` does), so that a task that maps on its
            // own one-worker pool cannot deadlock.
            for task in self.in_flight.iter().flatten() {
                if task.slot.run_inline() {
                    break;
                }
            }
            match self.waiter.next(self.deadline) {
                Some((token, _)) => self.finished(token),
                None => {
                    let first = self
                        .in_flight
                        .iter()
                        .flatten()
                        .map(|task| task.first)
                        .min()
                        .unwrap_or(self.next_index);
                    let unfinished = self.pending;
                    self.cancel_all();
                    self.ended = true;
                    return Some((
                        first,
                        Err(TaskError::TimedOut {
                            after: self.timeout.unwrap_or_default(),
                            unfinished,
                            total: self.submitted,
                        }),
                    ));
                }
            }
        }
    }
}

impl<S, R, I> Drop for MapUnordered<S, R, I> {
    fn drop(&mut self) {
        for task in self.in_flight.iter().flatten() {
            task.slot.unregister(&self.waiter);
            task.slot.cancel();
        }
    }
}
