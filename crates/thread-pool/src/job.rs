//! What the pool's queues hold: a task made with core's
//! [`TaskFuture::queued`](concurrent_futures_core::TaskFuture::queued),
//! its closure in its future's own allocation, with the pool's data about
//! the entry. The first to claim the task runs it (a worker, or one of the
//! pool's workers waiting on it); a worker that pops an entry already
//! claimed, cancelled or failed just lets it go.

use concurrent_futures_core::{QueuePolicy, QueuedTask};

use crate::registry;

/// A queue entry.
pub(crate) type JobRef = QueuedTask<Entry>;

/// The pool's data about a queued task: the id of the pool that queued it,
/// and whether the entry was counted in the pool's `load` (only while the
/// pool could still grow; only a counted entry gives its count back),
/// packed in one word (the count in bit 0), since every task carries it.
pub(crate) struct Entry(usize);

impl Entry {
    pub(crate) fn new(pool_id: usize, counted: bool) -> Entry {
        Entry(pool_id << 1 | usize::from(counted))
    }

    pub(crate) fn pool_id(&self) -> usize {
        self.0 >> 1
    }

    pub(crate) fn counted(&self) -> bool {
        self.0 & 1 != 0
    }
}

impl QueuePolicy for Entry {
    /// Only a worker thread of the pool that queued this task may run it
    /// inline, and only this task: the waiter runs exactly the task it
    /// waits for, never unrelated queued work. (The entry stays counted
    /// in the pool's load until a worker pops it and finds it claimed.)
    fn may_run_inline(&self) -> bool {
        registry::current_pool() == Some(self.pool_id())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use concurrent_futures_core::{TaskError, TaskFuture};

    use super::Entry;

    /// A queued task dropped unclaimed (never run, cancelled or failed)
    /// fails its future rather than leave its waiters hanging.
    #[test]
    fn a_job_dropped_unclaimed_completes_its_future() {
        let entry = Entry::new(3, true);
        assert_eq!((entry.pool_id(), entry.counted()), (3, true));
        let entry = Entry::new(5, false);
        assert_eq!((entry.pool_id(), entry.counted()), (5, false));
        let (fut, job) = TaskFuture::<u32>::queued(entry, || 7);
        assert!(!job.policy().counted());
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
