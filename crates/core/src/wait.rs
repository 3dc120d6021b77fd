//! [`wait`] and [`as_completed`] over any number of futures, of one result
//! type or of several (through [`Waitable`]).
//!
//! Both register one [`Waiter`] on every unfinished future; a future that
//! completes tells the waiter which one it was, so the waiting thread sleeps
//! on a condition variable until there is news: no polling, no sleeps.

use std::collections::{HashSet, VecDeque};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::TaskError;
use crate::sync::{self, Arc, Condvar, Mutex};

/// How a done future ended, as a [`Waiter`] is told.
///
/// ```
/// use concurrent_futures_core::{Outcome, TaskFuture, Waitable};
/// let fut = TaskFuture::ready(1);
/// // `register` reports the outcome of a future that is already done.
/// let w = concurrent_futures_core::Waiter::new();
/// assert_eq!(fut.register(&w, 0), Some(Outcome::Succeeded));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// FINISHED with a value.
    Succeeded,
    /// FINISHED with an error.
    Failed,
    /// CANCELLED.
    Cancelled,
}

/// The sleeping side of one [`wait`] or [`as_completed`] call. Futures call
/// [`notify`](Waiter::notify) when they complete; see [`Waitable`] for how
/// another future type plugs in.
pub struct Waiter {
    state: Mutex<WaiterState>,
    cond: Condvar,
}

struct WaiterState {
    ready: VecDeque<(usize, Outcome)>,
    blocked: bool,
    /// An async consumer's waker (see `poll_next`), woken by the next
    /// news.
    waker: Option<Waker>,
}

impl Waiter {
    /// A waiter with no news yet. [`wait`] and [`as_completed`] make their
    /// own; this is for code that implements or tests [`Waitable`].
    ///
    /// ```
    /// use concurrent_futures_core::{Outcome, TaskFuture, Waitable, Waiter};
    /// let w = Waiter::new();
    /// assert_eq!(TaskFuture::ready(()).register(&w, 0), Some(Outcome::Succeeded));
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Arc<Waiter> {
        Arc::new(Waiter {
            state: Mutex::new(WaiterState {
                ready: VecDeque::new(),
                blocked: false,
                waker: None,
            }),
            cond: Condvar::new(),
        })
    }

    /// Records that the future registered under `token` is done.
    ///
    /// ```
    /// use concurrent_futures_core::{Outcome, TaskFuture, Waitable};
    /// let (fut, completer) = TaskFuture::<u8>::pending();
    /// let w = concurrent_futures_core::Waiter::new();
    /// assert_eq!(fut.register(&w, 3), None); // pending: it will notify
    /// completer.complete(Ok(1)); // calls w.notify(3, Outcome::Succeeded)
    /// ```
    pub fn notify(&self, token: usize, outcome: Outcome) {
        let mut state = sync::lock(&self.state);
        state.ready.push_back((token, outcome));
        if state.blocked {
            self.cond.notify_one();
        }
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Takes the news, or keeps `cx`'s waker for the next (no lost
    /// wake-up: the waker is stored under the same lock that `notify`
    /// pushes under).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<(usize, Outcome)> {
        let mut state = sync::lock(&self.state);
        if let Some(item) = state.ready.pop_front() {
            return Poll::Ready(item);
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Takes the news, blocking until there is some or `deadline` passes.
    pub(crate) fn next(&self, deadline: Option<Instant>) -> Option<(usize, Outcome)> {
        let mut state = sync::lock(&self.state);
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some(item);
            }
            state.blocked = true;
            match deadline {
                None => state = sync::wait(&self.cond, state),
                Some(d) => {
                    let (s, expired) = sync::wait_until(&self.cond, state, d);
                    state = s;
                    if expired {
                        state.blocked = false;
                        return state.ready.pop_front();
                    }
                }
            }
            state.blocked = false;
        }
    }

    pub(crate) fn try_next(&self) -> Option<(usize, Outcome)> {
        sync::lock(&self.state).ready.pop_front()
    }
}

/// Anything [`wait`] and [`as_completed`] can wait on.
///
/// [`TaskFuture<T>`](crate::TaskFuture) implements it for every `T`, and so
/// do references and boxes of waitables, so futures with different result
/// types can be waited on together as `&dyn Waitable`:
///
/// ```
/// use concurrent_futures_core::{wait, ReturnWhen, TaskFuture, Waitable};
///
/// let number = TaskFuture::ready(1_u32);
/// let text = TaskFuture::ready(String::from("one"));
/// let all: Vec<&dyn Waitable> = vec![&number, &text];
/// let split = wait(all, None, ReturnWhen::AllCompleted);
/// assert_eq!(split.done.len(), 2);
/// ```
///
/// Another executor's future type can implement it too (the interop hook
/// that CPython's `wait` lacks): register the waiter, call
/// [`Waiter::notify`] with the token on completion, and unregister on request.
pub trait Waitable {
    /// A key that is equal for two values exactly when they refer to the
    /// same task; used to drop duplicates.
    fn key(&self) -> usize;
    /// If the task is done, returns how it ended; otherwise keeps `waiter`
    /// to notify under `token` when it completes, and returns `None`.
    fn register(&self, waiter: &Arc<Waiter>, token: usize) -> Option<Outcome>;
    /// Forgets `waiter` (the wait is over).
    fn unregister(&self, waiter: &Arc<Waiter>);
    /// Offers the task to run inline in this thread, as a blocking
    /// `result()` would (see [`InlineRun`](crate::InlineRun)); returns true
    /// if it ran. The default never does.
    fn run_inline(&self) -> bool {
        false
    }
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn key(&self) -> usize {
        (**self).key()
    }
    fn register(&self, waiter: &Arc<Waiter>, token: usize) -> Option<Outcome> {
        (**self).register(waiter, token)
    }
    fn unregister(&self, waiter: &Arc<Waiter>) {
        (**self).unregister(waiter)
    }
    fn run_inline(&self) -> bool {
        (**self).run_inline()
    }
}

impl<W: Waitable + ?Sized> Waitable for Box<W> {
    fn key(&self) -> usize {
        (**self).key()
    }
    fn register(&self, waiter: &Arc<Waiter>, token: usize) -> Option<Outcome> {
        (**self).register(waiter, token)
    }
    fn unregister(&self, waiter: &Arc<Waiter>) {
        (**self).unregister(waiter)
    }
    fn run_inline(&self) -> bool {
        (**self).run_inline()
    }
}

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`,
/// `ALL_COMPLETED`).
///
/// ```
/// use concurrent_futures_core::{wait, ReturnWhen, TaskError, TaskFuture};
///
/// let failed = TaskFuture::<u8>::failed(TaskError::Panicked { message: "x".into() });
/// let (pending, _completer) = TaskFuture::pending();
/// let split = wait([failed.clone(), pending], None, ReturnWhen::FirstException);
/// assert_eq!(split.done, vec![failed]); // returned at once, without waiting
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ReturnWhen {
    /// As soon as any future is done (finished or cancelled).
    FirstCompleted,
    /// As soon as any future finishes with an error; if none does, when all
    /// are done. A cancellation is a completion, not an error.
    FirstException,
    /// When every future is done.
    #[default]
    AllCompleted,
}

/// What [`wait`] returns: the futures that were done and those that were
/// not, each in the order they were given (duplicates removed). See
/// [`wait`] for an example.
#[derive(Debug)]
pub struct DoneAndNotDone<W> {
    /// Finished or cancelled futures.
    pub done: Vec<W>,
    /// The rest.
    pub not_done: Vec<W>,
}

/// Drops duplicates (by [`Waitable::key`]), keeping the first of each.
fn dedupe<W: Waitable>(futures: impl IntoIterator<Item = W>) -> Vec<W> {
    let mut seen = HashSet::new();
    futures
        .into_iter()
        .filter(|f| seen.insert(f.key()))
        .collect()
}

/// Waits until the futures meet `return_when`, or until `timeout` passes,
/// and splits them into done and not done. Python's
/// `concurrent.futures.wait`.
///
/// A timeout is not an error: you get the split as it stands. Duplicates
/// are removed. Cancelled futures count as done at once (CPython counts a
/// future cancelled by `cancel()` as done only once an executor has seen
/// it; we do not keep that trap).
///
/// Called with no timeout from a thread-pool worker, it runs still-queued
/// tasks of the same pool inline rather than wait for them, as
/// [`TaskFuture::result`](crate::TaskFuture::result) does.
///
/// ```
/// use concurrent_futures_core::{wait, ReturnWhen, TaskFuture};
/// use std::time::Duration;
///
/// let done = TaskFuture::ready(1);
/// let (pending, _completer) = TaskFuture::pending();
/// let split = wait(
///     [done.clone(), pending.clone()],
///     Some(Duration::from_millis(10)),
///     ReturnWhen::AllCompleted,
/// );
/// assert_eq!(split.done, vec![done]);
/// assert_eq!(split.not_done, vec![pending]);
/// ```
pub fn wait<W: Waitable>(
    futures: impl IntoIterator<Item = W>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> DoneAndNotDone<W> {
    let deadline = timeout.and_then(crate::future::deadline_after);
    let futures = dedupe(futures);
    let waiter = Waiter::new();
    let mut outcomes: Vec<Option<Outcome>> = futures
        .iter()
        .enumerate()
        .map(|(i, f)| f.register(&waiter, i))
        .collect();
    let mut pending = outcomes.iter().filter(|o| o.is_none()).count();
    let mut failed = outcomes.contains(&Some(Outcome::Failed));
    let satisfied = |pending: usize, failed: bool| match return_when {
        ReturnWhen::FirstCompleted => pending < futures.len() || futures.is_empty(),
        ReturnWhen::FirstException => failed || pending == 0,
        ReturnWhen::AllCompleted => pending == 0,
    };
    if !satisfied(pending, failed) {
        // Queued tasks of the pool this thread serves would otherwise wait
        // behind us; run them here (a no-op elsewhere), timed or not.
        for f in &futures {
            if satisfied(pending, failed) {
                break;
            }
            if f.run_inline() {
                while let Some((i, outcome)) = waiter.try_next() {
                    outcomes[i] = Some(outcome);
                    pending -= 1;
                    failed |= outcome == Outcome::Failed;
                }
            }
        }
    }
    while !satisfied(pending, failed) {
        match waiter.next(deadline) {
            Some((i, outcome)) => {
                outcomes[i] = Some(outcome);
                pending -= 1;
                failed |= outcome == Outcome::Failed;
            }
            None => break,
        }
    }
    for (f, o) in futures.iter().zip(&outcomes) {
        if o.is_none() {
            f.unregister(&waiter);
        }
    }
    // News that arrived after we stopped looking still counts.
    while let Some((i, outcome)) = waiter.try_next() {
        outcomes[i] = Some(outcome);
    }
    let mut split = DoneAndNotDone {
        done: Vec::new(),
        not_done: Vec::new(),
    };
    for (f, o) in futures.into_iter().zip(outcomes) {
        if o.is_some() {
            split.done.push(f);
        } else {
            split.not_done.push(f);
        }
    }
    split
}

/// Yields the futures as they complete: those already done first, then each
/// as it finishes, every future once. Python's
/// `concurrent.futures.as_completed`.
///
/// The deadline is fixed when `as_completed` is called. When it passes, the
/// iterator yields one `Err(TaskError::TimedOut)` (its message reads
/// `2 (of 4) futures unfinished …`) and then ends. Duplicates are removed.
/// Dropping the iterator early unregisters it from the futures left.
///
/// ```
/// use concurrent_futures_core::{as_completed, TaskFuture};
/// use std::thread;
///
/// let (slow, slow_done) = TaskFuture::pending();
/// let fast = TaskFuture::ready("fast");
/// let mut done = as_completed([slow, fast], None);
/// assert_eq!(done.next().unwrap().unwrap().result(), Ok(&"fast"));
/// let t = thread::spawn(move || slow_done.complete(Ok("slow")));
/// assert_eq!(done.next().unwrap().unwrap().result(), Ok(&"slow")); // blocks until then
/// assert!(done.next().is_none());
/// t.join().unwrap();
/// ```
pub fn as_completed<W: Waitable>(
    futures: impl IntoIterator<Item = W>,
    timeout: Option<Duration>,
) -> AsCompleted<W> {
    let started = Instant::now();
    let futures = dedupe(futures);
    let waiter = Waiter::new();
    let mut ready = VecDeque::new();
    let mut slots = Vec::with_capacity(futures.len());
    for (i, f) in futures.into_iter().enumerate() {
        if f.register(&waiter, i).is_some() {
            ready.push_back(f);
            slots.push(None);
        } else {
            slots.push(Some(f));
        }
    }
    let remaining = slots.iter().filter(|s| s.is_some()).count();
    AsCompleted {
        total: slots.len(),
        slots,
        ready,
        remaining,
        waiter,
        timeout,
        deadline: timeout.and_then(|t| started.checked_add(t)),
        ended: false,
    }
}

/// The iterator [`as_completed`] returns; see [`as_completed`] for an
/// example.
pub struct AsCompleted<W: Waitable> {
    pub(crate) slots: Vec<Option<W>>,
    pub(crate) ready: VecDeque<W>,
    pub(crate) remaining: usize,
    total: usize,
    pub(crate) waiter: Arc<Waiter>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    ended: bool,
}

impl<W: Waitable> Iterator for AsCompleted<W> {
    type Item = Result<W, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(f) = self.ready.pop_front() {
            return Some(Ok(f));
        }
        if self.ended || self.remaining == 0 {
            return None;
        }
        // Claim a still-queued task of our own pool instead of waiting for
        // it (see `wait`).
        for f in self.slots.iter().flatten() {
            if f.run_inline() {
                break;
            }
        }
        loop {
            match self.waiter.next(self.deadline) {
                Some((i, _)) => {
                    if let Some(f) = self.slots[i].take() {
                        self.remaining -= 1;
                        return Some(Ok(f));
                    }
                }
                None => {
                    self.ended = true;
                    return Some(Err(TaskError::TimedOut {
                        after: self.timeout.unwrap_or_default(),
                        unfinished: self.remaining,
                        total: self.total,
                    }));
                }
            }
        }
    }
}

impl<W: Waitable> Drop for AsCompleted<W> {
    fn drop(&mut self) {
        for f in self.slots.iter().flatten() {
            f.unregister(&self.waiter);
        }
    }
}
