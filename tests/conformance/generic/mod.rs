//! The executor-facing conformance tests, written once for any
//! [`Executor`](concurrent_futures::Executor) and instantiated per executor
//! by `executor_suite!` in `main.rs`.
//!
//! Rules for this part of the suite, so that an executor whose tasks run in
//! other OS processes can join it unchanged:
//! * tasks are the plain functions of `crate::tasks`, never closures;
//! * arguments and results are serde types;
//! * a task blocks or reports only through a [`Gate`](crate::support::Gate),
//!   which works across processes;
//! * nothing sleeps: tests synchronise on gate arrivals and futures, and
//!   every wait is bounded (a timeout, or a [`HangGuard`](crate::support::HangGuard)).

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

use concurrent_futures::{ConfigError, TaskError};

pub mod executor;
pub mod map_unordered;
pub mod test_as_completed;
pub mod test_deadlock;
pub mod test_init;
pub mod test_panics;
pub mod test_shutdown;
pub mod test_wait;

/// CPython's `ExecutorMixin.worker_count`.
pub const WORKERS: usize = 5;

/// What an initializer of the generic suite is: a plain function, so that
/// a process pool can run it in its workers.
pub type InitFn = fn(()) -> Result<(), String>;

/// Builds the executor under test with `max_workers` workers.
pub trait Make<E>: Fn(usize) -> Result<E, ConfigError> {}
impl<E, F: Fn(usize) -> Result<E, ConfigError>> Make<E> for F {}

/// Builds the executor under test with `max_workers` workers and an initializer.
pub trait MakeWithInit<E>: Fn(usize, InitFn) -> Result<E, ConfigError> {}
impl<E, F: Fn(usize, InitFn) -> Result<E, ConfigError>> MakeWithInit<E> for F {}

/// Asserts that `r` is the failure of a task that panicked with a message
/// containing `needle` (CPython: `assertRaises(SomeError)` on a task).
#[track_caller]
pub fn expect_panicked<T: Debug>(r: Result<T, TaskError>, needle: &str) {
    match r {
        Err(TaskError::Panicked { message }) => assert!(
            message.contains(needle),
            "panic message {message:?} does not contain {needle:?}"
        ),
        other => panic!("expected a task that panicked with {needle:?}, got {other:?}"),
    }
}

/// The items as a set (futures compare by identity).
pub fn set<T: Eq + Hash>(items: impl IntoIterator<Item = T>) -> HashSet<T> {
    items.into_iter().collect()
}
