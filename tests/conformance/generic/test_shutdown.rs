//! Port of CPython's `test_shutdown.py` (`ExecutorShutdownTest`), for any
//! executor. The thread-pool-only tests (`ThreadPoolShutdownTest`) are in
//! `test_thread_pool`.
//!
//! Not ported:
//! * `test_interpreter_shutdown`, `test_submit_after_interpreter_shutdown`:
//!   Rust has no interpreter-exit hook. The Rust counterpart of "work
//!   finishes when the program lets go of the pool" is `Drop` =
//!   `shutdown(wait = true)`, tested by `test_context_manager_shutdown`
//!   here and by `test_del_shutdown` in `test_thread_pool`; submitting after
//!   shutdown is `test_run_after_shutdown`.
//!
//! `test_hang_gh83386` runs a child interpreter in CPython; here it runs
//! in-process: `shutdown(wait = false)` returns while a task runs, and the
//! task still completes.

use concurrent_futures::{Executor, TaskError, TaskFuture};

use super::{Make, WORKERS};
use crate::support::{Gate, HangGuard};
use crate::tasks;

/// CPython: `submit` after `shutdown()` raises `RuntimeError`. Ours:
/// `Err(TaskError::ShutDown)`, for `submit` and for `map` (one error item).
pub fn test_run_after_shutdown<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    pool.shutdown(true, false);
    assert_eq!(
        pool.submit(tasks::pow, (2, 5)).unwrap_err(),
        TaskError::ShutDown
    );
    let mut results = pool.map(tasks::pow, [(2, 5), (3, 3)]);
    assert_eq!(results.next(), Some(Err(TaskError::ShutDown)));
    assert_eq!(results.next(), None);
    drop(results);
    // Shutting down again is harmless.
    pool.shutdown(true, false);
    pool.shutdown(false, true);
}

/// bpo-12364: shutdown with queued work does not hang, and every queued
/// future completes. CPython queues 50 `sleep(0.1)`; we run it twice: with
/// 50 quick tasks, and with 50 tasks of which the first ones block on a gate
/// while `shutdown(wait = false)` is called, so most are still queued.
pub fn test_hang_issue12364<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let futures: Vec<TaskFuture<i64>> = (0..50)
        .map(|i| pool.submit(tasks::mul, (i, 2)).unwrap())
        .collect();
    {
        let _guard = HangGuard::new("shutdown(wait=true) with 50 queued tasks");
        pool.shutdown(true, false);
    }
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.result(), Ok(&(2 * i as i64)));
    }

    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let futures: Vec<TaskFuture<i64>> = (0..50)
        .map(|i| {
            pool.submit(tasks::block, (gate.gate_ref(), i.to_string()))
                .unwrap()
        })
        .collect();
    gate.wait_for_arrivals(WORKERS);
    pool.shutdown(false, false);
    gate.open();
    {
        let _guard = HangGuard::new("shutdown(wait=true) after shutdown(wait=false)");
        pool.shutdown(true, false);
    }
    assert!(futures.iter().all(|f| f.result() == Ok(&0)));
    assert_eq!(gate.settled_arrivals().len(), 50);
}

/// `shutdown(cancel_futures = true)` cancels what has not started; what has
/// started finishes. CPython queues 50 `sleep(0.1)` on 5 workers and
/// expects more than 20 cancelled and at least one finished; here the
/// first five block on a gate, so all the others are still queued.
pub fn test_cancel_futures<E: Executor>(make: impl Make<E>) {
    let pool = make(WORKERS).unwrap();
    let gate = Gate::new();
    let futures: Vec<TaskFuture<i64>> = (0..50)
        .map(|i| {
            pool.submit(tasks::block, (gate.gate_ref(), i.to_string()))
                .unwrap()
        })
        .collect();
    gate.wait_for_arrivals(WORKERS);
    pool.shutdown(false, true);

    let cancelled = futures.iter().filter(|f| f.cancelled()).count();
    assert!(cancelled > 20, "only {cancelled} of 50 were cancelled");
    for f in futures.iter().filter(|f| f.cancelled()) {
        assert!(f.done());
        assert_eq!(f.result(), Err(TaskError::Cancelled));
    }

    gate.open();
    {
        let _guard = HangGuard::new("shutdown(wait=true) after cancel_futures");
        pool.shutdown(true, false);
    }
    let others: Vec<_> = futures.iter().filter(|f| !f.cancelled()).collect();
    assert!(!others.is_empty(), "the running tasks cannot be cancelled");
    for f in &others {
        assert!(f.done());
        assert_eq!(f.exception(), Ok(None));
    }
    // The cancelled tasks never ran.
    assert_eq!(gate.settled_arrivals().len(), others.len());
}

/// gh-83386, in-process: `shutdown(wait = false)` returns while a task is
/// running, and the task still completes.
pub fn test_hang_gh83386<E: Executor>(make: impl Make<E>) {
    let pool = make(3).unwrap();
    let gate = Gate::new();
    let future = pool
        .submit(tasks::block, (gate.gate_ref(), "apple".into()))
        .unwrap();
    gate.wait_for_arrivals(1);
    {
        let _guard = HangGuard::new("shutdown(wait=false) with a running task");
        pool.shutdown(false, false);
    }
    assert!(!future.done(), "the task is still blocked on the gate");
    gate.open();
    assert_eq!(future.result(), Ok(&0));
}

/// gh-94440: `shutdown(wait = true)` does not hang when a future was
/// submitted and cancelled right before it. (CPython bounds it with a 5 s
/// alarm; we abort after 30 s.)
pub fn test_hang_gh94440<E: Executor>(make: impl Make<E>) {
    let pool = make(1).unwrap();
    assert_eq!(pool.submit(tasks::mul, (6, 7)).unwrap().result(), Ok(&42));
    let _guard = HangGuard::new("shutdown(wait=true) after submit+cancel");
    let future = pool.submit(tasks::mul, (1, 1)).unwrap();
    let was_cancelled = future.cancel();
    pool.shutdown(true, false);
    assert!(future.done());
    assert_eq!(future.cancelled(), was_cancelled);
}

/// CPython's `with executor:` block: leaving it shuts down with
/// `wait = true`. Ours: dropping the executor does, so every submitted task
/// has run when the drop returns.
pub fn test_context_manager_shutdown<E: Executor>(make: impl Make<E>) {
    let gate = Gate::new();
    let futures: Vec<TaskFuture<String>>;
    {
        let pool = make(WORKERS).unwrap();
        futures = (0..10)
            .map(|i| {
                pool.submit(tasks::arrive, (gate.gate_ref(), i.to_string()))
                    .unwrap()
            })
            .collect();
        let results: Vec<i64> = pool.map(tasks::abs, -5..5).map(Result::unwrap).collect();
        assert_eq!(results, [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]);
        let _guard = HangGuard::new("dropping the executor");
        drop(pool);
    }
    assert!(futures.iter().all(|f| f.done()), "Drop waited for the work");
    assert_eq!(gate.settled_arrivals().len(), 10);
}
