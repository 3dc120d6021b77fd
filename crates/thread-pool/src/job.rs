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

/// The pool's data about a queued task.
pub(crate) struct Entry {
    /// The pool that queued it.
    pub(crate) pool_id: usize,
    /// Whether this entry was counted in the pool's `load` (only while the
    /// pool could still grow); only a counted entry gives its count back.
    pub(crate) counted: bool,
}

impl QueuePolicy for Entry {
    /// Only a worker thread of the pool that queued this task may run it
    /// inline, and only this task: the waiter runs exactly the task it
    /// waits for, never unrelated queued work. (The entry stays counted
    /// in the pool's load until a worker pops it and finds it claimed.)
    fn may_run_inline(&self) -> bool {
        registry::current_pool() == Some(self.pool_id)
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
        let entry = Entry {
            pool_id: 0,
            counted: false,
        };
        let (fut, job) = TaskFuture::<u32>::queued(entry, || 7);
        assert!(!job.policy().counted);
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
