//! The pool's sleep/wake and shutdown protocol, as one small unit that the
//! real pool (`registry.rs`) uses and the loom model checks
//! (`tests/loom.rs`) drive on their own. Its primitives come from
//! `crate::sync`: `std`'s normally, `loom`'s under `cfg(loom)`.
//!
//! The unit knows nothing about queues: a worker hands
//! [`sleep_until`](Sleep::sleep_until) its "is any job visible?" look
//! (`has_work`), and whoever makes a job visible calls
//! [`notify_one`](Sleep::notify_one) afterwards.
//!
//! # Invariants
//!
//! 1. **No lost wake-up.** A job visible in a queue is never left there
//!    while every worker sleeps: whoever makes a job visible (a submit
//!    pushing to the inbox or to its worker's own deque, or a worker
//!    that moved a batch into its deque, see `Registry::find_job`) calls
//!    `notify_one` after it, and a worker only waits after it registered as
//!    a sleeper and then saw no job.
//! 2. **Shutdown wakes everyone.** `begin_shutdown` then `notify_all` wakes
//!    every sleeper, and a submit that was in progress when shutdown began
//!    wakes them all again when it ends (`end_submit`).
//! 3. **Nothing stranded.** A worker exits only when it sees the shutdown
//!    bit with no submit in progress *and* no visible job. So a submit is
//!    either refused (`begin_submit` returns false) or its job is run (or
//!    drained by `cancel_futures` / a broken pool) before the last worker
//!    exits.
//!
//! # Why it holds
//!
//! Producer: *make the job visible; SeqCst fence; read `sleepers`; if
//! non-zero, take the lock and signal one sleeper.* Worker: *take the lock;
//! `sleepers += 1`; SeqCst fence; look at the queues; if there is nothing
//! and no reason to exit, wait (which releases the lock atomically).*
//!
//! * The two fences order "publish; read `sleepers`" against "raise
//!   `sleepers`; look at the queues" (the store-buffer pattern), so at least
//!   one side sees the other: either the worker sees the job, or the
//!   producer sees the sleeper. crossbeam's pushes are plain release stores
//!   (or CASes) and its `is_empty` plain loads, so without the fences both
//!   could read the old value and the job would wait with the worker asleep.
//! * A producer that saw the sleeper signals under the lock. The worker
//!   holds the lock from `sleepers += 1` until it waits, so the signal
//!   cannot fall between the worker's look and its wait (where a condvar
//!   signal is lost): it reaches a waiting worker, or one that has not yet
//!   looked and then sees the job anyway.
//! * The same lock orders a producer's `end_submit` after a worker's look
//!   at the gate: a worker that missed the job (so the producer saw it as a
//!   sleeper and has to take the lock) reads the gate while holding the
//!   lock, before the producer can end its submit, and so sees the submit
//!   still in progress and waits instead of exiting. When the submit ends
//!   after shutdown began, it wakes everyone, and the worker finds the job.
//!
//! A signal may wake a worker that then finds no job (another worker took
//! it); it looks again and sleeps again. An idle pool is every worker
//! blocked in `wait`: no CPU.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Condvar, Mutex, MutexGuard, Ordering, fence};

/// Bit 0 of `gate`: shutdown has begun.
const SHUTDOWN: usize = 1;
/// What each submit in progress adds to `gate`.
const SUBMIT: usize = 2;

/// The sleep/wake and shutdown state of a pool (see the module docs).
pub struct Sleep {
    /// The shutdown bit (bit 0) plus twice the number of submits in
    /// progress. On a cache line of its own: every submit writes it twice,
    /// and the workers write `sleepers` and `alive` as they sleep and wake.
    gate: CachePadded<AtomicUsize>,
    /// Workers registered as sleeping: between `sleepers += 1` (under
    /// `alive`'s lock) and waking up again.
    sleepers: AtomicUsize,
    /// Worker threads that have not exited. Its lock is also the lock the
    /// sleepers wait under and the producers signal under.
    alive: Mutex<usize>,
    /// Where idle workers wait for work or shutdown.
    wake_cv: Condvar,
    /// Where `shutdown(wait)` waits for workers and submits to finish.
    exit_cv: Condvar,
}

impl Default for Sleep {
    fn default() -> Self {
        Self::new()
    }
}

impl Sleep {
    /// No workers, no sleepers, not shut down.
    pub fn new() -> Sleep {
        Sleep {
            gate: CachePadded::new(AtomicUsize::new(0)),
            sleepers: AtomicUsize::new(0),
            alive: Mutex::new(0),
            wake_cv: Condvar::new(),
            exit_cv: Condvar::new(),
        }
    }

    /// The lock of `alive` (ignoring poisoning: nothing panics under it).
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.alive.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A submit starts: false if the pool is shut down (the submit is then
    /// refused and must queue nothing). On true, the caller queues its job,
    /// calls [`notify_one`](Self::notify_one), then
    /// [`end_submit`](Self::end_submit).
    #[inline]
    pub fn begin_submit(&self) -> bool {
        let prev = self.gate.fetch_add(SUBMIT, Ordering::SeqCst);
        if prev & SHUTDOWN != 0 {
            // Backing out must wake, as any submit ending after shutdown
            // began: while we were counted, a worker may have seen the gate
            // as "shut down, submit in progress" and gone (back) to sleep
            // instead of exiting, and `shutdown(wait)` may have gone on
            // waiting; with the last other worker already gone, nobody
            // else would wake them (found by `tests/loom.rs`).
            self.end_submit();
            return false;
        }
        true
    }

    /// A submit that [`begin_submit`](Self::begin_submit) let in is over.
    #[inline]
    pub fn end_submit(&self) {
        let prev = self.gate.fetch_sub(SUBMIT, Ordering::SeqCst);
        if prev & SHUTDOWN != 0 {
            // Shutdown began meanwhile: workers, and a `shutdown(wait)`,
            // may be waiting for us to finish.
            let _g = self.lock();
            self.wake_cv.notify_all();
            self.exit_cv.notify_all();
        }
    }

    /// Call right after making a job visible in a queue: wakes one sleeping
    /// worker, if any. Costs a fence and a load when nobody sleeps.
    #[inline]
    pub fn notify_one(&self) {
        // Pairs with the fence in `sleep_until` (see the module docs).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // Under the lock, so the signal cannot fall between a worker's
            // last look at the queues and its wait.
            let _g = self.lock();
            self.wake_cv.notify_one();
        }
    }

    /// Wakes every sleeping worker (shutdown).
    pub fn notify_all(&self) {
        let _g = self.lock();
        self.wake_cv.notify_all();
    }

    /// Sets the shutdown bit: later submits are refused. The caller then
    /// drains the queues if it cancels, and calls
    /// [`notify_all`](Self::notify_all).
    pub fn begin_shutdown(&self) {
        self.gate.fetch_or(SHUTDOWN, Ordering::SeqCst);
    }

    /// A worker that found no job waits until `has_work` says a job is
    /// visible (returns true) or the pool is shut down with no submit in
    /// progress and no job left (returns false: the worker exits).
    ///
    /// `has_work` must look at every queue a job can be made visible in,
    /// and every producer must call [`notify_one`](Self::notify_one) after
    /// making one visible.
    pub fn sleep_until(&self, mut has_work: impl FnMut() -> bool) -> bool {
        let mut alive = self.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `notify_one`: after it, either we see the
        // producer's job below, or the producer sees us in `sleepers`.
        fence(Ordering::SeqCst);
        let keep_going = loop {
            // The look again, after registering: never wait without it.
            if has_work() {
                break true;
            }
            // Exit only with no submit in progress: one may be about to
            // queue a job it was allowed to.
            if self.gate.load(Ordering::SeqCst) == SHUTDOWN {
                break false;
            }
            alive = self.wake_cv.wait(alive).unwrap_or_else(|p| p.into_inner());
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        drop(alive);
        keep_going
    }

    /// A worker thread is about to start (counted before it exists, so a
    /// `shutdown(wait)` waits for it).
    pub fn worker_starting(&self) {
        *self.lock() += 1;
    }

    /// The thread announced by [`worker_starting`](Self::worker_starting)
    /// could not be started.
    pub fn worker_not_started(&self) {
        *self.lock() -= 1;
    }

    /// A worker thread has left its main loop (returned or panicked).
    pub fn worker_exited(&self) {
        let mut alive = self.lock();
        *alive -= 1;
        self.exit_cv.notify_all();
    }

    /// Worker threads that have not exited.
    pub fn alive(&self) -> usize {
        *self.lock()
    }

    /// Wakes the [`wait_for_exit`](Self::wait_for_exit) calls in progress
    /// to read their `remaining` again: call it after what that reads
    /// changed.
    pub fn exit_waiters_look_again(&self) {
        let _g = self.lock();
        self.exit_cv.notify_all();
    }

    /// `shutdown(wait)`, after [`begin_shutdown`](Self::begin_shutdown):
    /// waits until at most `remaining()` workers are alive and no submit is
    /// in progress (one may be about to start the first worker for a job it
    /// was allowed to queue). `remaining` is 0 from outside the pool; from
    /// one of its own workers, the number of workers whose running task
    /// shut the pool down (the calling one included), which cannot exit
    /// before that task ends. It is read under the lock, again after each
    /// wake-up: the last read is the one that ended the wait.
    pub fn wait_for_exit(&self, remaining: impl Fn() -> usize) {
        let mut alive = self.lock();
        while *alive > remaining() || self.gate.load(Ordering::SeqCst) >= SUBMIT {
            alive = self.exit_cv.wait(alive).unwrap_or_else(|p| p.into_inner());
        }
    }
}
