//! The client's side of a request: encoding it, and the typed end (the
//! [`Sink`]) that completes a future from the worker's response. Shared by
//! the executors that run tasks in other processes.

use std::any::Any;

use concurrent_futures_core::{Completer, InitResult, Payload, TaskError, TaskFuture, catch_panic};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError};
use crate::wire::{self, Outcome, Response};

/// Encodes a request for the task `name` (`tag`: [`wire::REQ_RUN`] or
/// [`wire::REQ_CHUNK`]) with job id `id`; `encode` writes the argument(s).
/// A failing or panicking encode is [`TaskError::Encode`] naming
/// `arg_type`.
pub fn encode_request(
    tag: u8,
    id: u64,
    name: &str,
    arg_type: &'static str,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), CodecError>,
) -> Result<Vec<u8>, TaskError> {
    let mut request = Vec::with_capacity(64);
    wire::request_header(&mut request, tag, id, name);
    catch_panic(|| encode(&mut request))
        .map_err(|e| TaskError::Encode {
            type_name: arg_type.to_owned(),
            reason: format!("the encode panicked: {}", panic_text(e)),
        })?
        .map_err(encode_error)?;
    Ok(request)
}

/// [`encode_request`] of one run of `name` on `args`.
pub fn encode_run<A: Serialize>(id: u64, name: &str, args: &A) -> Result<Vec<u8>, TaskError> {
    encode_request(wire::REQ_RUN, id, name, std::any::type_name::<A>(), |out| {
        codec::encode_into(args, out)
    })
}

/// [`encode_request`] of one chunk: `name` on each of `chunk`.
pub fn encode_chunk<A: Serialize>(id: u64, name: &str, chunk: &[A]) -> Result<Vec<u8>, TaskError> {
    encode_request(
        wire::REQ_CHUNK,
        id,
        name,
        std::any::type_name::<A>(),
        |out| {
            wire::put_count(out, chunk.len());
            chunk
                .iter()
                .try_for_each(|a| wire::put_chunk_item(out, |out| codec::encode_into(a, out)))
        },
    )
}

/// The typed end of a job: knows its result type and its completer.
pub trait Sink: Send {
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
pub struct Discarded;

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

/// One outcome into an `R`: its value, or the error it reports.
pub fn outcome_into<R: DeserializeOwned>(outcome: Outcome<'_>) -> Result<R, TaskError> {
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

fn decode_error(e: CodecError) -> TaskError {
    TaskError::Decode {
        type_name: e.type_name.to_owned(),
        reason: e.reason,
    }
}

fn encode_error(e: CodecError) -> TaskError {
    TaskError::Encode {
        type_name: e.type_name.to_owned(),
        reason: e.reason,
    }
}

/// A worker that answered out of protocol (fails the job as `Broken`).
pub fn protocol_error(what: &str) -> TaskError {
    TaskError::Broken {
        reason: format!("the worker answered out of protocol: {what}"),
    }
}

/// A job's typed end: its completer, and how to read its response into
/// the future's value (`items`: how many outcomes a chunk must carry).
pub struct Pending<T> {
    completer: Completer<T>,
    read: fn(Response<'_>, usize) -> Result<T, TaskError>,
    items: usize,
}

impl<R: Payload> Pending<R> {
    /// The sink of one task's future.
    pub fn one(completer: Completer<R>) -> Box<dyn Sink> {
        Box::new(Pending {
            completer,
            read: read_one::<R>,
            items: 1,
        })
    }
}

impl<R: Payload> Pending<Vec<Result<R, TaskError>>> {
    /// The sink of a chunk's future, `items` long.
    pub fn chunk(completer: Completer<Vec<Result<R, TaskError>>>, items: usize) -> Box<dyn Sink> {
        Box::new(Pending {
            completer,
            read: read_chunk::<R>,
            items,
        })
    }
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
fn decode_outcome<R: Payload>(outcome: Outcome<'_>) -> Result<R, TaskError> {
    catch_panic(|| outcome_into::<R>(outcome)).unwrap_or_else(|e| Err(panicked_decode::<R>(e)))
}

fn read_one<R: Payload>(response: Response<'_>, _: usize) -> Result<R, TaskError> {
    match response {
        Response::Done { outcome, .. } => decode_outcome(outcome),
        _ => Err(protocol_error("a chunk or init response to a single task")),
    }
}

fn read_chunk<R: Payload>(
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
fn panicked_decode<R>(e: TaskError) -> TaskError {
    TaskError::Decode {
        type_name: std::any::type_name::<R>().to_owned(),
        reason: format!("the decode panicked: {}", panic_text(e)),
    }
}

/// The message of a caught panic, without `TaskError`'s "the task
/// panicked" (no task ran).
pub fn panic_text(e: TaskError) -> String {
    match e {
        TaskError::Panicked { message } => message,
        other => other.to_string(),
    }
}

/// The job id a response answers; `None` for the initializer's.
pub fn response_id(response: &Response<'_>) -> Option<u64> {
    match response {
        Response::Done { id, .. } | Response::Chunk { id, .. } => Some(*id),
        Response::Init(_) => None,
    }
}

/// Decodes an initializer's result and says whether it failed (its `Err`,
/// or a result that does not decode).
pub fn check_init<R: DeserializeOwned + InitResult>(bytes: &[u8]) -> Result<(), String> {
    codec::decode::<R>(bytes)
        .map_err(|e| e.to_string())?
        .into_init_result()
}
