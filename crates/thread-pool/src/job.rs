//! A queued task: its closure and its future's [`Completer`], claimed
//! exactly once by whoever runs, cancels or fails it.

use std::cell::UnsafeCell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use concurrent_futures_core::{Completer, InlineRun, TaskError, catch_panic};

use crate::registry;

/// What the queues hold.
pub(crate) type JobRef = Arc<dyn Job>;

/// A unit of queued work. Every method first *claims* the job; only the
/// first claim gets the body, later ones do nothing. So a job that a worker
/// pops after a waiting thread already ran it inline is simply skipped.
pub(crate) trait Job: Send + Sync {
    /// Runs the task unless it was cancelled or already claimed.
    /// `done_with_entry` is called exactly once: after the task returned and
    /// before its future completes, or at once if there is nothing to run.
    fn run(&self, done_with_entry: &dyn Fn());
    /// Cancels the task's future (shutdown with `cancel_futures`).
    fn cancel(&self);
    /// Fails the task's future with `err` without running it.
    fn abort(&self, err: TaskError);
    /// Whether this entry was counted in the pool's `load` (only while the
    /// pool could still grow); only a counted entry gives its count back.
    fn counted(&self) -> bool;
}

pub(crate) struct JobCell<R, F> {
    pool_id: usize,
    counted: bool,
    claimed: AtomicBool,
    /// Taken by the one thread that wins the `claimed` flag.
    body: UnsafeCell<Option<(Completer<R>, F)>>,
}

// SAFETY: `body` is touched only by the thread that switched `claimed` from
// false to true (see `claim`), so sharing a `JobCell` never gives two
// threads access to the body; moving the body to that thread needs
// `F: Send` and a `Completer<R>` that is `Send`, which it is where
// `R: Send` (the completer moves an `R` in; the core's rules on the
// future's handles keep a non-`Sync` `R` in the thread that reads it).
unsafe impl<R: Send, F: Send> Sync for JobCell<R, F> {}

impl<R, F> JobCell<R, F>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    /// Wraps the task and installs the job as its future's inline hook
    /// (see [`InlineRun`]); the future drops the hook once done.
    pub(crate) fn new(pool_id: usize, counted: bool, completer: Completer<R>, f: F) -> Arc<Self> {
        let job = Arc::new(JobCell {
            pool_id,
            counted,
            claimed: AtomicBool::new(false),
            body: UnsafeCell::new(Some((completer, f))),
        });
        let hook: Arc<dyn InlineRun> = job.clone();
        // SAFETY: the job has not been queued, so no other thread can reach
        // it yet; reading the body through `&` here races with nothing.
        if let Some((completer, _)) = unsafe { (*job.body.get()).as_ref() } {
            completer.set_inline_hook(hook);
        }
        job
    }

    fn claim(&self) -> Option<(Completer<R>, F)> {
        // Acquire: see the body as written by `new` (published by the
        // queue's own synchronisation, or the Arc's, in any case).
        if self.claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: we are the only thread that swapped `claimed` to true, and
        // nobody else touches `body` (see the `Sync` impl).
        unsafe { (*self.body.get()).take() }
    }

    /// Returns whether this call claimed the job.
    fn execute(&self, done_with_entry: &dyn Fn()) -> bool {
        let done_with_entry = || {
            if self.counted {
                done_with_entry()
            }
        };
        let Some((completer, f)) = self.claim() else {
            done_with_entry(); // run inline by a waiter, cancelled or failed
            return false;
        };
        if !completer.set_running() {
            // Cancelled while queued: drop it (a closure's captures may
            // panic on drop; that must not take the worker down).
            let _ = catch_panic(move || drop(f));
            done_with_entry();
            return true;
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(f));
        let has_callbacks = completer.has_callbacks();
        let complete = move || match result {
            Ok(value) => completer.complete(Ok(value)),
            // The payload stays with the future (`TaskFuture::take_panic`).
            Err(payload) => completer.complete_panicked(payload),
        };
        // Count the worker as free before the future completes (so a
        // caller woken by the completion who submits again reuses it),
        // unless done-callbacks will run here first: they may wait for
        // work that then needs another thread.
        if has_callbacks {
            complete();
            done_with_entry();
        } else {
            done_with_entry();
            complete();
        }
        true
    }
}

impl<R, F> Job for JobCell<R, F>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    fn run(&self, done_with_entry: &dyn Fn()) {
        self.execute(done_with_entry);
    }

    fn cancel(&self) {
        if let Some((completer, _f)) = self.claim() {
            completer.cancel();
        }
    }

    fn abort(&self, err: TaskError) {
        if let Some((completer, _f)) = self.claim() {
            completer.complete(Err(err));
        }
    }

    fn counted(&self) -> bool {
        self.counted
    }
}

impl<R, F> InlineRun for JobCell<R, F>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    /// Only a worker thread of the pool that queued this job may run it
    /// inline, and only this job: the waiter runs exactly the task it waits
    /// for, never unrelated queued work.
    fn try_run_inline(&self) -> bool {
        if registry::current_pool() != Some(self.pool_id) {
            return false;
        }
        if self.claimed.load(Ordering::Acquire) {
            return false;
        }
        // The queue entry stays counted in the pool's load until a worker
        // pops it (and finds it claimed); nothing to account for here.
        self.execute(&|| {})
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use concurrent_futures_core::{TaskError, TaskFuture};

    use super::{JobCell, JobRef};

    /// A queued job dropped unclaimed (never run, cancelled or failed)
    /// completes its future through the completer's complete-on-drop: the
    /// future holds its inline hook (the job) weakly, so the job, which
    /// owns the completer, is not kept alive by the future it completes.
    #[test]
    fn a_job_dropped_unclaimed_completes_its_future() {
        let (fut, completer) = TaskFuture::<u32>::pending();
        let job: JobRef = JobCell::new(0, false, completer, || 7);
        assert!(!job.counted());
        assert!(!fut.done());
        drop(job);
        match fut.result_timeout(Duration::from_secs(10)) {
            Err(TaskError::Broken { reason }) => {
                assert!(reason.contains("dropped this task"), "{reason}")
            }
            other => panic!("the future was left {other:?}"),
        }
    }
}
