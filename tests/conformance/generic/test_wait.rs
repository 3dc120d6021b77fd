//! Port of CPython's `test_wait.py` (`WaitTests`, and `ThreadPoolWaitTests`'s
//! `test_pending_calls_race`, which holds for any executor).
//!
//! Difference from CPython, asserted here: a future cancelled with
//! `cancel()` counts as done for `wait` at once. CPython distinguishes
//! CANCELLED (not done for `wait` until an executor has seen it) from
//! CANCELLED_AND_NOTIFIED; we have one cancelled state. Where CPython uses
//! `CANCELLED_AND_NOTIFIED_FUTURE` we use the cancelled fixture; where it
//! uses `CANCELLED_FUTURE` as "a future `wait` does not count as done" we
//! use the pending fixture, and check the cancelled one separately.
//!
//! CPython's "blocked" futures (`time.sleep(1.5)`) are tasks blocked on a
//! gate, opened at the end of each test.

use std::time::{Duration, Instant};

use concurrent_futures::{Executor, ReturnWhen, TaskFuture, wait};

use super::{Make, WORKERS, set};
use crate::support::{Fixtures, Gate, HangGuard};
use crate::tasks;

fn blocked<E: Executor>(pool: &E, gate: &Gate, tag: &str) -> TaskFuture<i64> {
    pool.submit(tasks::block, (gate.gate_ref(), tag.to_owned()))
        .unwrap()
}

/// Issue 20369: duplicates collapse.
pub fn test_20369<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let future = pool.submit(tasks::mul, (21, 2)).unwrap();
    let _guard = HangGuard::new("wait([f, f], ALL_COMPLETED)");
    let split = wait(
        [future.clone(), future.clone()],
        None,
        ReturnWhen::AllCompleted,
    );
    assert_eq!(split.done, [future]);
    assert!(split.not_done.is_empty());
}

pub fn test_first_completed<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let fx = Fixtures::new();
    let future1 = pool.submit(tasks::mul, (21, 2)).unwrap();
    let future2 = blocked(&pool, &gate, "future2");

    let _guard = HangGuard::new("wait(FIRST_COMPLETED)");
    let split = wait(
        [fx.pending.clone(), future1.clone(), future2.clone()],
        None,
        ReturnWhen::FirstCompleted,
    );
    assert_eq!(set(split.done), set([future1]));
    assert_eq!(
        set(split.not_done),
        set([fx.pending.clone(), future2.clone()])
    );

    // Difference from CPython: CANCELLED_FUTURE is in CPython's not_done;
    // ours is done, so FIRST_COMPLETED returns at once.
    let split = wait(
        [fx.cancelled.clone(), future2.clone()],
        None,
        ReturnWhen::FirstCompleted,
    );
    assert_eq!(set(split.done), set([fx.cancelled.clone()]));
    assert_eq!(set(split.not_done), set([future2]));
    gate.open();
}

pub fn test_first_completed_some_already_completed<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let fx = Fixtures::new();
    let future1 = blocked(&pool, &gate, "future1");

    let _guard = HangGuard::new("wait(FIRST_COMPLETED)");
    let split = wait(
        [fx.cancelled.clone(), fx.successful.clone(), future1.clone()],
        None,
        ReturnWhen::FirstCompleted,
    );
    assert_eq!(
        set(split.done),
        set([fx.cancelled.clone(), fx.successful.clone()])
    );
    assert_eq!(set(split.not_done), set([future1]));
    gate.open();
}

pub fn test_first_exception<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let raise_gate = Gate::new();
    let gate3 = Gate::new();
    let future1 = pool.submit(tasks::mul, (2, 21)).unwrap();
    let future2 = pool
        .submit(
            tasks::block_then_panic,
            (raise_gate.gate_ref(), "future2".into()),
        )
        .unwrap();
    let future3 = blocked(&pool, &gate3, "future3");
    // CPython's future2 sleeps 1.5 s, so future1 is done first.
    assert_eq!(future1.result(), Ok(&42));

    let _guard = HangGuard::new("wait(FIRST_EXCEPTION)");
    let split = std::thread::scope(|s| {
        s.spawn(|| raise_gate.open());
        wait(
            [future1.clone(), future2.clone(), future3.clone()],
            None,
            ReturnWhen::FirstException,
        )
    });
    assert_eq!(set(split.done), set([future1, future2]));
    assert_eq!(set(split.not_done), set([future3]));
    gate3.open();
}

pub fn test_first_exception_some_already_complete<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let fx = Fixtures::new();
    let future1 = pool.submit(tasks::div, (21, 0)).unwrap();
    let future2 = blocked(&pool, &gate, "future2");

    let _guard = HangGuard::new("wait(FIRST_EXCEPTION)");
    let split = wait(
        [
            fx.successful.clone(),
            fx.pending.clone(),
            fx.cancelled.clone(),
            future1.clone(),
            future2.clone(),
        ],
        None,
        ReturnWhen::FirstException,
    );
    // Difference from CPython: the cancelled future is done (CPython's
    // CANCELLED_FUTURE is pending); the pending fixture stands in for it.
    assert_eq!(
        set(split.done),
        set([fx.successful.clone(), fx.cancelled.clone(), future1])
    );
    assert_eq!(set(split.not_done), set([fx.pending.clone(), future2]));
    gate.open();
}

pub fn test_first_exception_one_already_failed<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let fx = Fixtures::new();
    let future1 = blocked(&pool, &gate, "future1");

    let _guard = HangGuard::new("wait(FIRST_EXCEPTION)");
    let split = wait(
        [fx.exception.clone(), future1.clone()],
        None,
        ReturnWhen::FirstException,
    );
    assert_eq!(set(split.done), set([fx.exception.clone()]));
    assert_eq!(set(split.not_done), set([future1]));
    gate.open();
}

pub fn test_all_completed<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let fx = Fixtures::new();
    let future1 = pool.submit(tasks::div, (2, 0)).unwrap();
    let future2 = pool.submit(tasks::mul, (2, 21)).unwrap();

    let all = [
        fx.successful.clone(),
        fx.cancelled.clone(),
        fx.exception.clone(),
        future1,
        future2,
    ];
    let _guard = HangGuard::new("wait(ALL_COMPLETED)");
    let split = wait(all.clone(), None, ReturnWhen::AllCompleted);
    assert_eq!(set(split.done), set(all));
    assert!(split.not_done.is_empty());
}

/// A timeout is not an error: `wait` returns the split as it stands.
pub fn test_timeout<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let fx = Fixtures::new();
    let future = blocked(&pool, &gate, "future");

    let short_timeout = Duration::from_millis(50);
    let start = Instant::now();
    let split = wait(
        [
            fx.cancelled.clone(),
            fx.exception.clone(),
            fx.successful.clone(),
            future.clone(),
        ],
        Some(short_timeout),
        ReturnWhen::AllCompleted,
    );
    assert!(
        start.elapsed() >= short_timeout,
        "returned before the timeout"
    );
    assert_eq!(
        set(split.done),
        set([
            fx.cancelled.clone(),
            fx.exception.clone(),
            fx.successful.clone()
        ])
    );
    assert_eq!(set(split.not_done), set([future]));
    gate.open();
}

/// Issue #14406: many futures completing together while `wait` registers
/// (CPython shrinks the switch interval; we release 100 tasks at once).
pub fn test_pending_calls_race<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let futures: Vec<TaskFuture<i64>> = (0..100)
        .map(|i| blocked(&pool, &gate, &i.to_string()))
        .collect();
    let _guard = HangGuard::new("wait(ALL_COMPLETED) over 100 futures");
    let split = std::thread::scope(|s| {
        s.spawn(|| gate.open());
        wait(futures.clone(), None, ReturnWhen::AllCompleted)
    });
    assert_eq!(split.done.len(), 100);
    assert!(split.not_done.is_empty());
    assert!(futures.iter().all(|f| f.result() == Ok(&0)));
}
