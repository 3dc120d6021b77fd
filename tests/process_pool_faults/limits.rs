//! The pool's limits: a task that runs past its time limit is stopped by
//! killing its worker (`TaskTimedOut`), and a task that allocates past the
//! per-worker memory limit dies alone (`WorkerDied`, SIGABRT); in both
//! cases the pool replaces the worker and every other future completes.

use std::num::NonZeroUsize;
use std::time::Duration;

use concurrent_futures::{Executor, MapOptions, ProcessPoolExecutor, StartMethod, TaskError};

use crate::support::{Gate, HangGuard, address_space};
use crate::tasks;
use crate::{Fate, error, fault_scenario, fault_scenario_with, pid_of, value, wait_for_workers};

for_each_start_method!(
    task_past_its_time_limit,
    pool_wide_time_limit,
    time_queued_does_not_count,
    a_chunk_gets_the_limit_per_item,
    allocation_past_the_memory_limit,
);

const LIMIT: Duration = Duration::from_millis(200);

/// Asserts that `err` is exactly `TaskTimedOut` for `pid` and `limit`, and
/// that its message says so.
fn expect_timed_out(err: &TaskError, pid: u32, limit: Duration) {
    assert_eq!(err, &TaskError::TaskTimedOut { limit, pid }, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("time limit of {limit:?}")) && text.contains(&format!("{pid}")),
        "{text}"
    );
}

/// A task that blocks for ever under `submit_with_timeout`: its worker is
/// killed at the limit, the future fails with `TaskTimedOut`, and the
/// replacement runs the queued tasks.
fn task_past_its_time_limit(method: StartMethod) {
    fault_scenario(
        method,
        "a task past its time limit",
        |pool, gate| {
            pool.submit_with_timeout(
                tasks::block_report,
                (gate.gate_ref(), "overdue".into()),
                LIMIT,
            )
            .unwrap()
        },
        Fate::Dies,
        |err, pid| expect_timed_out(err, pid, LIMIT),
    );
}

/// `task_timeout` on the builder applies to every task: the blocked one
/// is stopped; quick ones, before and after it, are not.
fn pool_wide_time_limit(method: StartMethod) {
    let _guard = HangGuard::new("a pool-wide time limit");
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .start_method(method)
        .allow_fork_with_threads(true)
        .task_timeout(LIMIT)
        .build()
        .unwrap();
    let before: Vec<u64> = pool
        .map(tasks::square, 0..8_u64)
        .map(Result::unwrap)
        .collect();
    let gate = Gate::new();
    let overdue = pool
        .submit(tasks::block_report, (gate.gate_ref(), "overdue".into()))
        .unwrap();
    let pid = pid_of(&gate.wait_for_arrivals(1), "overdue");
    let quick: Vec<_> = (1..=4_u64)
        .map(|i| pool.submit(tasks::square, i).unwrap())
        .collect();
    expect_timed_out(&error(&overdue), pid, LIMIT);
    assert_eq!(quick.iter().map(value).collect::<Vec<_>>(), [1, 4, 9, 16]);
    let after: Vec<u64> = pool
        .map(tasks::square, 0..8_u64)
        .map(Result::unwrap)
        .collect();
    assert_eq!(before, after);
    let now = wait_for_workers(&pool, 2);
    assert!(!now.contains(&pid), "{now:?} still lists the killed {pid}");
    assert_eq!(pool.broken_reason(), None);
}

/// The clock starts when the worker starts the task: a task with a short
/// limit queued behind a long one (with none) is not stopped for the time
/// it waited.
fn time_queued_does_not_count(method: StartMethod) {
    let _guard = HangGuard::new("time queued does not count");
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .start_method(method)
        .allow_fork_with_threads(true)
        .build()
        .unwrap();
    let gate = Gate::new();
    let long = pool
        .submit(tasks::block_report, (gate.gate_ref(), "long".into()))
        .unwrap();
    let pid = pid_of(&gate.wait_for_arrivals(1), "long");
    let short = pool.submit_with_timeout(tasks::square, 3, LIMIT).unwrap();
    // Queued for twice its limit; nothing may happen to it meanwhile.
    std::thread::sleep(LIMIT * 2);
    assert!(!short.done(), "{short:?}");
    gate.open();
    assert_eq!(value(&long), pid);
    assert_eq!(value(&short), 9);
    assert_eq!(pool.worker_pids(), [pid], "no worker may have been killed");
}

/// A chunk of `map` with `chunksize(n)` may run `n` times the limit: four
/// 60 ms tasks in one chunk (about 240 ms) stay under 4 × 150 ms, though
/// the chunk as a whole runs past 150 ms.
fn a_chunk_gets_the_limit_per_item(method: StartMethod) {
    let _guard = HangGuard::new("a chunk gets the limit per item");
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .start_method(method)
        .allow_fork_with_threads(true)
        .task_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let options = MapOptions::new().chunksize(NonZeroUsize::new(4).unwrap());
    let naps: Vec<u64> = pool
        .map_with(tasks::nap, vec![60_u64; 4], options)
        .map(Result::unwrap)
        .collect();
    assert_eq!(naps, [60; 4]);
}

/// A task that reserves more address space than the limit: its allocation
/// fails, Rust aborts the worker, the future fails with `WorkerDied`
/// (SIGABRT, the message naming the allocation), and the replacement,
/// under the same limit, runs the rest. The reservation touches no page,
/// so without the limit it would succeed (and the test fail) without
/// using memory.
fn allocation_past_the_memory_limit(method: StartMethod) {
    // Room for what a worker maps at start (a forked one: this process).
    let limit = address_space() + (512 << 20);
    fault_scenario_with(
        method,
        "an allocation past the memory limit",
        |b| b.memory_limit(limit),
        |pool, _| pool.submit(tasks::reserve, limit + (1 << 30)).unwrap(),
        Fate::Dies,
        |err, pid| {
            crate::expect_died(err, pid, Some(6), None);
            assert!(err.to_string().contains("an allocation failed"), "{err}");
        },
    );
}
