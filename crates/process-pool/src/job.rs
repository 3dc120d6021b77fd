//! A job: one unit of work on its way to a worker (its encoded request),
//! and its typed end (the [`Sink`] that completes its future from the
//! worker's response).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use concurrent_futures_core::{Completer, Payload, TaskError, TaskFuture, catch_panic};
use concurrent_futures_task_wire::codec::{self, CodecError};
use concurrent_futures_task_wire::wire::{Outcome, Response};
use serde::de::DeserializeOwned;

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

/// The typed end of a job: knows its result type and its completer.
pub(crate) trait Sink: Send {
    /// PENDING → RUNNING; false if the future was cancelled.
    fn start(&self) -> bool;
    /// Completes the future from the worker's response.
    fn deliver(self: Box<Self>, response: Response<'_>);
    /// Fails the future.
    fn fail(self: Box<Self>, error: TaskError);
    /// Cancels a queued job (`shutdown(cancel_futures = true)`).
    fn cancel(self: Box<Self>);
    /// Whether this sink completes `future` (a `&TaskFuture<T>`).
    fn is_for(&self, future: &dyn Any) -> bool;
}

/// The sink of a job whose future `stop_task` has failed already: whatever
/// becomes of the job, nobody is told.
pub(crate) struct Discarded;

impl Sink for Discarded {
    fn start(&self) -> bool {
        true
    }
    fn deliver(self: Box<Self>, _: Response<'_>) {}
    fn fail(self: Box<Self>, _: TaskError) {}
    fn cancel(self: Box<Self>) {}
    fn is_for(&self, _: &dyn Any) -> bool {
        false
    }
}

pub(crate) fn outcome_into<R: DeserializeOwned>(outcome: Outcome<'_>) -> Result<R, TaskError> {
    match outcome {
        Outcome::Ok(bytes) => codec::decode::<R>(bytes).map_err(decode_error),
        Outcome::Panicked(message) => Err(TaskError::Panicked {
            message: message.to_owned(),
        }),
        Outcome::DecodeArgs { type_name, reason } => Err(TaskError::Decode {
            type_name: type_name.to_owned(),
            reason: reason.to_owned(),
        }),
        Outcome::EncodeResult { type_name, reason } => Err(TaskError::Encode {
            type_name: type_name.to_owned(),
            reason: reason.to_owned(),
        }),
        Outcome::UnknownTask(name) => Err(TaskError::Unregistered {
            function: format!("the task {name}, which the worker binary does not register,"),
        }),
    }
}

pub(crate) fn decode_error(e: CodecError) -> TaskError {
    TaskError::Decode {
        type_name: e.type_name.to_owned(),
        reason: e.reason,
    }
}

pub(crate) fn encode_error(e: CodecError) -> TaskError {
    TaskError::Encode {
        type_name: e.type_name.to_owned(),
        reason: e.reason,
    }
}

pub(crate) fn protocol_error(what: &str) -> TaskError {
    TaskError::Broken {
        reason: format!("the worker answered out of protocol: {what}"),
    }
}

/// Fails `jobs`, RUNNING already, with [`TaskError::Broken`] and `reason`.
pub(crate) fn fail_all(jobs: impl IntoIterator<Item = Job>, reason: &str) {
    for job in jobs {
        job.sink.fail(TaskError::Broken {
            reason: reason.to_owned(),
        });
    }
}

/// A job's typed end: its completer, and how to read its response into
/// the future's value (`items`: how many outcomes a chunk must carry).
pub(crate) struct Pending<T> {
    pub(crate) completer: Completer<T>,
    pub(crate) read: fn(Response<'_>, usize) -> Result<T, TaskError>,
    pub(crate) items: usize,
}

impl<T: Send + Sync + 'static> Sink for Pending<T> {
    fn start(&self) -> bool {
        self.completer.set_running()
    }
    fn deliver(self: Box<Self>, response: Response<'_>) {
        let result = (self.read)(response, self.items);
        self.completer.complete(result);
    }
    fn fail(self: Box<Self>, error: TaskError) {
        self.completer.complete(Err(error));
    }
    fn cancel(self: Box<Self>) {
        self.completer.cancel();
    }
    fn is_for(&self, future: &dyn Any) -> bool {
        future
            .downcast_ref::<TaskFuture<T>>()
            .is_some_and(|f| self.completer.is_for(f))
    }
}

/// One outcome into an `R`, a panicking `Deserialize` included.
pub(crate) fn decode_outcome<R: Payload>(outcome: Outcome<'_>) -> Result<R, TaskError> {
    catch_panic(|| outcome_into::<R>(outcome)).unwrap_or_else(|e| Err(panicked_decode::<R>(e)))
}

pub(crate) fn read_one<R: Payload>(response: Response<'_>, _: usize) -> Result<R, TaskError> {
    match response {
        Response::Done { outcome, .. } => decode_outcome(outcome),
        _ => Err(protocol_error("a chunk or init response to a single task")),
    }
}

pub(crate) fn read_chunk<R: Payload>(
    response: Response<'_>,
    items: usize,
) -> Result<Vec<Result<R, TaskError>>, TaskError> {
    match response {
        Response::Chunk { outcomes, .. } if outcomes.len() == items => {
            Ok(outcomes.into_iter().map(decode_outcome).collect())
        }
        _ => Err(protocol_error("not one outcome per chunk item")),
    }
}

/// A `Deserialize` impl that panicked while decoding a result.
pub(crate) fn panicked_decode<R>(e: TaskError) -> TaskError {
    TaskError::Decode {
        type_name: std::any::type_name::<R>().to_owned(),
        reason: format!("the decode panicked: {}", panic_text(e)),
    }
}

/// The message of a caught panic, without `TaskError`'s "the task
/// panicked" (no task ran).
pub(crate) fn panic_text(e: TaskError) -> String {
    match e {
        TaskError::Panicked { message } => message,
        other => other.to_string(),
    }
}

pub(crate) fn response_id(response: &Response<'_>) -> Option<u64> {
    match response {
        Response::Done { id, .. } | Response::Chunk { id, .. } => Some(*id),
        Response::Init(_) => None,
    }
}
