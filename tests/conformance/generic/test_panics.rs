//! A task's panic, beyond CPython's suite: the future fails with
//! `TaskError::Panicked` and its message, and the payload can be taken
//! back (to re-raise it with `std::panic::resume_unwind`) where the task
//! ran in this process.

use concurrent_futures::{Executor, TaskError, panic_message};

use super::Make;
use crate::tasks;

pub fn test_panic_payload<E: Executor>(make: impl Make<E>) {
    let pool = make(2).unwrap();
    // A payload comes back only from a task that ran in this process.
    let worker = pool.submit(tasks::process_id, ()).unwrap();
    let in_process = worker.result() == Ok(&std::process::id());
    let fut = pool.submit(tasks::raise_error, ()).unwrap();
    let message = match fut.result() {
        Err(TaskError::Panicked { message }) => message,
        other => panic!("expected a panic, got {other:?}"),
    };
    assert_eq!(message, "RuntimeError");
    match fut.take_panic() {
        Some(payload) => {
            assert!(in_process, "a payload crossed from another process");
            assert_eq!(panic_message(&*payload), message);
            // It can be re-raised here, with the same payload.
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                std::panic::resume_unwind(payload)
            }));
            assert_eq!(panic_message(&*again.unwrap_err()), "RuntimeError");
        }
        None => assert!(!in_process, "the payload of an in-process task is lost"),
    }
    assert!(fut.take_panic().is_none(), "taken once");
    // The error itself is unchanged.
    assert!(matches!(fut.result(), Err(TaskError::Panicked { .. })));
}
