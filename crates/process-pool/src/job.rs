//! A job: one unit of work on its way to a worker (its encoded request)
//! and its typed end (a task-wire `Sink`, which completes its future from
//! the worker's response).

use std::sync::Arc;
use std::time::Duration;

use concurrent_futures_core::TaskError;
pub(crate) use concurrent_futures_task_wire::client::Sink;

/// How far a job a worker holds got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Not handed over yet (kept for a replacement worker).
    Unsent,
    /// The thread that dispatched it to an idle worker is sending it,
    /// outside the lock; the worker's handler, if it finds the worker
    /// gone, waits for the send to end.
    Sending,
    /// In the worker's socket, or being sent by the worker's handler
    /// (which records a failure before it reads again): if the worker
    /// dies now, the job dies with it.
    Sent,
    /// The send failed: the worker was gone already.
    Failed,
}

/// One queued unit of work: the request, ready to send, and the sink that
/// completes its future.
pub(crate) struct Job {
    pub(crate) id: u64,
    /// `stop_task` failed this job's future (its sink is [`Discarded`]):
    /// its worker is to be killed once it runs it, and it is never sent
    /// again.
    pub(crate) stopped: bool,
    /// How long the task may run (see [`crate::watchdog`]).
    pub(crate) timeout: Option<Duration>,
    /// Shared with a send in progress, and kept until the job is done, so
    /// that a job that never reached a dead worker can go to the next.
    pub(crate) request: Arc<Vec<u8>>,
    pub(crate) sink: Box<dyn Sink>,
}

/// Fails `jobs`, RUNNING already, with [`TaskError::Broken`] and `reason`.
pub(crate) fn fail_all(jobs: impl IntoIterator<Item = Job>, reason: &str) {
    for job in jobs {
        job.sink.fail(TaskError::Broken {
            reason: reason.to_owned(),
        });
    }
}
