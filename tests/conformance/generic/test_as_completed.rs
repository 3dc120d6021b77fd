//! Port of CPython's `test_as_completed.py` (`AsCompletedTests`).
//!
//! Differences from CPython, asserted here:
//! * A timeout does not raise: the iterator yields one
//!   `Err(TaskError::TimedOut)` and then ends.
//! * CPython's `CANCELLED_AND_NOTIFIED_FUTURE` is our cancelled fixture
//!   (one cancelled state, done at once).

use std::time::Duration;

use concurrent_futures::{Executor, TaskError, TaskFuture, as_completed};

use super::{Make, WORKERS, set};
use crate::support::{Fixtures, Gate, HangGuard, SUCCESSFUL_VALUE};
use crate::tasks;

pub fn test_no_timeout<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let fx = Fixtures::new();
    let future1 = pool.submit(tasks::mul, (2, 21)).unwrap();
    let future2 = pool.submit(tasks::mul, (7, 6)).unwrap();
    let all = [
        fx.cancelled.clone(),
        fx.exception.clone(),
        fx.successful.clone(),
        future1,
        future2,
    ];
    let _guard = HangGuard::new("as_completed without timeout");
    let completed: Vec<TaskFuture<i64>> = as_completed(all.clone(), None)
        .map(|f| f.expect("no timeout, so no error"))
        .collect();
    assert_eq!(completed.len(), all.len(), "each future exactly once");
    assert_eq!(set(completed), set(all));
}

/// CPython's `test_future_times_out` (formerly `test_zero_timeout`): with a
/// timeout of 0 and of 0.1 s, the done futures are yielded, then the
/// timeout.
pub fn test_future_times_out<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let fx = Fixtures::new();
    let future = pool
        .submit(tasks::block, (gate.gate_ref(), "blocked".into()))
        .unwrap();
    for timeout in [Duration::ZERO, Duration::from_millis(100)] {
        let mut it = as_completed(
            [
                fx.cancelled.clone(),
                fx.exception.clone(),
                fx.successful.clone(),
                future.clone(),
            ],
            Some(timeout),
        );
        let first_three: Vec<TaskFuture<i64>> = it.by_ref().take(3).map(Result::unwrap).collect();
        assert_eq!(
            set(first_three),
            set([
                fx.cancelled.clone(),
                fx.exception.clone(),
                fx.successful.clone()
            ]),
            "timeout {timeout:?}"
        );
        match it.next() {
            Some(Err(TaskError::TimedOut {
                unfinished, total, ..
            })) => assert_eq!((unfinished, total), (1, 4)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(it.next().is_none(), "the iterator ends after the timeout");
    }
    gate.open();
}

/// bpo-20367, bpo-31641: any iterable; duplicates are yielded once.
pub fn test_duplicate_futures<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let future1 = pool.submit(tasks::mul, (2, 21)).unwrap();
    let _guard = HangGuard::new("as_completed over duplicates");
    let completed: Vec<_> = as_completed(std::iter::repeat_n(future1.clone(), 3), None).collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].as_ref().ok(), Some(&future1));
}

/// bpo-14406: the iterator keeps no reference to a future it yielded.
/// CPython checks with a weakref; we give `as_completed` the only handles
/// and move the value out of each yielded one, which fails with
/// `TaskError::Shared` if any other handle (one kept by the iterator)
/// still existed.
pub fn test_free_reference_yielded_future<E: Executor>(_make: impl Make<E>) {
    let mut completers = Vec::new();
    let mut futures = Vec::new();
    for _ in 0..8 {
        let (f, c) = TaskFuture::<String>::pending();
        futures.push(f);
        completers.push(c);
    }
    let (cancelled, cancelled_completer) = TaskFuture::<String>::pending();
    assert!(cancelled.cancel());
    drop(cancelled_completer);
    futures.push(cancelled);
    futures.push(TaskFuture::ready("42".to_owned()));

    let mut it = as_completed(futures, Some(Duration::ZERO));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let future = it.next().unwrap().expect("a done future");
        seen.push(future.into_result());
    }
    seen.sort_by_key(|r| r.is_ok());
    assert_eq!(seen, [Err(TaskError::Cancelled), Ok("42".to_owned())]);
    match it.next() {
        Some(Err(TaskError::TimedOut {
            unfinished, total, ..
        })) => assert_eq!((unfinished, total), (8, 10)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(it);

    // Completing the futures one by one while iterating.
    let (futures, completers): (Vec<_>, Vec<_>) =
        (0..8).map(|_| TaskFuture::<String>::pending()).unzip();
    let mut completers = completers.into_iter();
    let _guard = HangGuard::new("as_completed while completing one by one");
    let mut it = as_completed(futures, None);
    let mut next = completers.next();
    let mut count = 0;
    while let Some(c) = next.take() {
        assert!(c.complete(Ok("test".to_owned())));
        let future = it.next().unwrap().expect("no timeout");
        assert_eq!(future.into_result(), Ok("test".to_owned()));
        count += 1;
        next = completers.next();
    }
    assert_eq!(count, 8);
    assert!(it.next().is_none());
}

/// The timeout error reads "2 (of 4) futures unfinished". CPython's message
/// is exactly that; ours starts with it and says what to do next.
pub fn test_correct_timeout_exception_msg<E: Executor>(_make: impl Make<E>) {
    let fx = Fixtures::new();
    let items: Vec<_> = as_completed(
        [
            fx.cancelled.clone(),
            fx.pending.clone(),
            fx.running.clone(),
            fx.successful.clone(),
        ],
        Some(Duration::ZERO),
    )
    .collect();
    assert_eq!(items.len(), 3);
    let done: Vec<_> = items[..2].iter().map(|r| r.clone().unwrap()).collect();
    assert_eq!(
        set(done),
        set([fx.cancelled.clone(), fx.successful.clone()])
    );
    let err = items[2].clone().unwrap_err();
    assert!(
        err.to_string().starts_with("2 (of 4) futures unfinished"),
        "{err}"
    );
    assert_eq!(fx.successful.result(), Ok(&SUCCESSFUL_VALUE));
}
