//! The scenarios of CPython's `test_deadlock.py` (`ExecutorDeadlockTest`,
//! run there for process pools only) that hold for any executor: a task
//! that fails, or fails during shutdown, or fails with a large input, must
//! fail its future and never hang the pool. CPython's segfaults become
//! panics here; the process pool adds real crashes in its own suite.
//!
//! Not ported here (process pool only): the pickling / unpickling failures
//! (`test_error_at_task_pickle`, `test_exit_at_task_unpickle`,
//! `test_error_at_task_unpickle`, `test_crash_at_task_unpickle`,
//! `test_*_result_pickle_on_worker`, `test_*_result_unpickle_in_result_handler`,
//! `test_shutdown_deadlock_pickle`), a worker process that crashes or exits
//! (`test_crash_during_func_exec_on_worker`, `test_exit_during_func_exec_on_worker`:
//! `std::process::exit` in a thread pool ends the whole program).
//! The waits of a pool task on a queued task of its own pool, which
//! CPython documents as a deadlock, are in `test_thread_pool`.

use concurrent_futures::Executor;

use super::{Make, expect_panicked};
use crate::support::{Gate, HangGuard};
use crate::tasks;

const DEADLOCK_WORKERS: usize = 2;

/// A task that fails fails its own future; the worker carries on (one
/// worker, so the same worker runs the next task).
pub fn test_error_during_func_exec_on_worker<E: Executor>(make: impl Make<E>) {
    let pool = make(1).unwrap();
    let _guard = HangGuard::new("a task that panics");
    let res = pool.submit(tasks::raise_error, ()).unwrap();
    expect_panicked(res.result(), "RuntimeError");
    assert_eq!(pool.submit(tasks::mul, (6, 7)).unwrap().result(), Ok(&42));
    let res = pool.submit(tasks::raise_error, ()).unwrap();
    expect_panicked(res.into_result(), "RuntimeError");
}

/// A task that fails after `shutdown(wait = true)` began: shutdown returns,
/// and the future holds the failure.
pub fn test_shutdown_deadlock<E: Executor>(make: impl Make<E>) {
    let pool = make(DEADLOCK_WORKERS).unwrap();
    let gate = Gate::new();
    let f = pool
        .submit(tasks::block_then_panic, (gate.gate_ref(), "crash".into()))
        .unwrap();
    gate.wait_for_arrivals(1);
    let _guard = HangGuard::new("shutdown(wait=true) while a task fails");
    std::thread::scope(|s| {
        s.spawn(|| gate.open());
        pool.shutdown(true, false);
    });
    expect_panicked(f.result(), "this is an exception");
}

/// gh-94777: tasks that fail while large inputs are in flight; `map`
/// yields a failure per item and does not hang.
pub fn test_crash_big_data<E: Executor>(make: impl Make<E>) {
    let pool = make(DEADLOCK_WORKERS).unwrap();
    let data = "a".repeat(1 << 20);
    let _guard = HangGuard::new("map over failing tasks with 1 MiB inputs");
    let results: Vec<_> = pool.map(tasks::panic_with_data, vec![data; 10]).collect();
    assert_eq!(results.len(), 10);
    for r in results {
        expect_panicked(r, "crashed with 1048576 bytes of input");
    }
}

/// gh-105829: many quick submissions (`map(int, range(100))`) all complete.
pub fn test_gh105829_should_not_deadlock_if_wakeup_pipe_full<E: Executor>(make: impl Make<E>) {
    let pool = make(DEADLOCK_WORKERS).unwrap();
    let _guard = HangGuard::new("map over 100 items");
    let got: Vec<u32> = pool
        .map(tasks::identity, 0..100)
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}
