//! Where a worker looks for its next job, and whether any job is visible:
//! the pool's scheduling rules, written once over [`Queues`] so that the
//! same code runs on the pool's crossbeam-deque queues (`registry.rs`) and,
//! in the loom model checks (`tests/loom.rs`), on loom-aware stand-ins.
//! Public only in loom builds, for those checks.

use crossbeam_deque::Steal;

use crate::sleep::Sleep;

/// The queues of a pool, as the scheduling rules see them: one inbox
/// for submissions from outside, and one deque per started worker, each
/// popped by its owner and stolen from by the others.
pub trait Queues {
    /// A queued job.
    type Job;
    /// A worker's own deque, as its owner holds it.
    type Local;

    /// Pops the owner's next job.
    fn pop(&self, local: &Self::Local) -> Option<Self::Job>;
    /// Whether the owner's deque looks empty.
    fn local_is_empty(&self, local: &Self::Local) -> bool;
    /// Moves a batch from the inbox into `local` and pops one of it.
    fn steal_inbox(&self, local: &Self::Local) -> Steal<Self::Job>;
    /// Whether the inbox looks empty.
    fn inbox_is_empty(&self) -> bool;
    /// How many workers have a deque (started ones).
    fn workers(&self) -> usize;
    /// Moves a batch from worker `i`'s deque into `local` and pops one of
    /// it; `Steal::Empty` if worker `i` has no deque yet.
    fn steal_worker(&self, i: usize, local: &Self::Local) -> Steal<Self::Job>;
    /// Whether worker `i`'s deque looks empty (true if it has none yet).
    fn worker_is_empty(&self, i: usize) -> bool;
}

/// The next job for worker `index`: its own deque, then a batch from the
/// inbox, then a batch from each other worker, retried while a steal
/// says so. After a batch steal, [`published_batch`].
pub fn find_job<Q: Queues>(q: &Q, sleep: &Sleep, index: usize, local: &Q::Local) -> Option<Q::Job> {
    if let Some(job) = q.pop(local) {
        return Some(job);
    }
    // `local` is empty here (only its owner pushes to it), so if it is not
    // after a batch steal, the batch moved more than one job.
    loop {
        match q.steal_inbox(local) {
            Steal::Success(job) => {
                published_batch(q, sleep, local);
                return Some(job);
            }
            Steal::Retry => continue,
            Steal::Empty => break,
        }
    }
    let mut retry = true;
    while retry {
        retry = false;
        for i in (0..q.workers()).filter(|&i| i != index) {
            match q.steal_worker(i, local) {
                Steal::Success(job) => {
                    published_batch(q, sleep, local);
                    return Some(job);
                }
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
    }
    None
}

/// After a batch steal into `local`: if it moved more than one job, the
/// rest are now visible in `local`, and the worker is about to run a job
/// that may take long. While the batch was in transit (taken from its
/// source, not yet published in `local`) no [`has_work`] could see it, so a
/// worker may have gone to sleep meanwhile with nobody left to wake it:
/// like a push, publishing the batch wakes a sleeper (`sleep.rs`). Only
/// when the batch had several jobs: a fence and a load, a lock only if
/// someone sleeps.
#[inline]
pub fn published_batch<Q: Queues>(q: &Q, sleep: &Sleep, local: &Q::Local) {
    if !q.local_is_empty(local) {
        sleep.notify_one();
    }
}

/// Whether any queue holds a job: every place a job can be made visible in
/// (the inbox and every started worker's deque, the caller's own
/// included), as `Sleep::sleep_until` requires.
pub fn has_work<Q: Queues>(q: &Q) -> bool {
    !q.inbox_is_empty() || (0..q.workers()).any(|i| !q.worker_is_empty(i))
}
