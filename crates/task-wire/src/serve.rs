//! The worker's side of a request: run the task it names, write the
//! response. Shared by the executors that run tasks in other processes.

use concurrent_futures_core::TaskError;

use crate::registry::{self, InvokeError};
use crate::wire::{self, Outcome, Request, WireError};

/// Answers one request: runs its task (each item of a chunk, or the
/// initializer) and writes the whole response into `out` (which it does
/// not clear). A task's panic, or an argument or result that does not
/// cross, is an outcome in the response; only bytes that are not a request
/// at all are an error: the caller should run nothing more from that
/// sender.
pub fn answer(message: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    match wire::decode_request(message)? {
        Request::Run { id, task, arg } => {
            wire::response_header(out, id, false, false);
            run_one(task, registry::by_task_name(task), arg, out);
        }
        Request::Chunk { id, task, args } => {
            wire::response_header(out, id, true, false);
            wire::put_count(out, args.len());
            // One lookup for the whole chunk.
            let entry = registry::by_task_name(task);
            for arg in args {
                run_one(task, entry, arg, out);
            }
        }
        Request::Init { task, arg } => {
            wire::response_header(out, 0, false, true);
            run_one(task, registry::by_task_name(task), arg, out);
        }
    }
    Ok(())
}

/// Runs the task `entry` (looked up by the name `task`) on `arg`,
/// appending its outcome.
fn run_one(task: &str, entry: Option<&registry::TaskEntry>, arg: &[u8], out: &mut Vec<u8>) {
    let Some(entry) = entry else {
        wire::put_failure(out, &Outcome::UnknownTask(task));
        return;
    };
    let Err(error) = wire::put_ok(out, |out| (entry.invoke)(arg, out)) else {
        return;
    };
    let outcome;
    let message;
    match &error {
        InvokeError::DecodeArgs(e) => {
            outcome = Outcome::DecodeArgs {
                type_name: e.type_name,
                reason: &e.reason,
            }
        }
        InvokeError::EncodeResult(e) => {
            outcome = Outcome::EncodeResult {
                type_name: e.type_name,
                reason: &e.reason,
            }
        }
        InvokeError::Panicked(e) => {
            message = match e {
                TaskError::Panicked { message } => message.clone(),
                other => other.to_string(),
            };
            outcome = Outcome::Panicked(&message);
        }
    }
    wire::put_failure(out, &outcome);
}
