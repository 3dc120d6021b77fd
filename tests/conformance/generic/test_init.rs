//! Port of CPython's `test_init.py` (`InitializerMixin`,
//! `FailingInitializerMixin`), with `worker_count = 2` as there.
//!
//! Not ported: `FailingInitializerResourcesTest` (the multiprocessing
//! resource tracker has no counterpart). CPython's CRITICAL log line is
//! checked through the reason carried by `TaskError::Broken`.

use concurrent_futures::{Executor, TaskError, TaskFuture};

use super::{InitFn, Make, MakeWithInit};
use crate::tasks;

const INIT_WORKERS: usize = 2;

/// Every worker runs the initializer before its tasks.
pub fn test_initializer<E: Executor>(make_with_initializer: impl MakeWithInit<E>) {
    let pool = make_with_initializer(INIT_WORKERS, tasks::init).unwrap();
    let futures: Vec<TaskFuture<String>> = (0..INIT_WORKERS)
        .map(|_| pool.submit(tasks::get_init_status, ()).unwrap())
        .collect();
    for f in &futures {
        assert_eq!(f.result().map(String::as_str), Ok("initialized"));
    }
}

/// The control for `test_initializer`: without an initializer the status
/// stays "uninitialized" (so that test can fail).
pub fn test_no_initializer<E: Executor>(make: impl Make<E>) {
    let pool = make(INIT_WORKERS).unwrap();
    let f = pool.submit(tasks::get_init_status, ()).unwrap();
    assert_eq!(f.result().map(String::as_str), Ok("uninitialized"));
}

fn check_broken(reason: &str, needle: &str) {
    assert!(
        reason.contains(needle),
        "the broken reason {reason:?} does not name the cause {needle:?}"
    );
}

fn failing_initializer<E: Executor>(
    make_with_initializer: &impl MakeWithInit<E>,
    init: InitFn,
    needle: &str,
) {
    let pool = make_with_initializer(INIT_WORKERS, init).unwrap();
    // Either submit refuses at once, or the future fails as broken.
    match pool.submit(tasks::get_init_status, ()) {
        Err(TaskError::Broken { reason }) => check_broken(&reason, needle),
        Err(other) => panic!("expected a broken executor, got {other:?}"),
        Ok(future) => match future.result() {
            Err(TaskError::Broken { reason }) => check_broken(&reason, needle),
            other => panic!("expected a broken executor, got {other:?}"),
        },
    }
    // CPython polls `executor._broken`; once a future has failed as broken,
    // ours is broken, and from then on submit must refuse.
    match pool.submit(tasks::get_init_status, ()) {
        Err(TaskError::Broken { reason }) => check_broken(&reason, needle),
        other => panic!("submit on a broken executor gave {other:?}"),
    }
    let mut results = pool.map(tasks::identity, [1, 2]);
    assert!(matches!(
        results.next(),
        Some(Err(TaskError::Broken { .. }))
    ));
}

/// CPython's `FailingInitializerMixin.test_initializer`: the initializer
/// fails (returns an error here, or panics), the executor becomes broken.
pub fn test_failing_initializer<E: Executor>(make_with_initializer: impl MakeWithInit<E>) {
    failing_initializer(
        &make_with_initializer,
        tasks::init_fail,
        "ValueError: error in initializer",
    );
    failing_initializer(
        &make_with_initializer,
        tasks::init_panic,
        "panic in initializer",
    );
}
