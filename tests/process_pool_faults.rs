//! Fault injection for [`ProcessPoolExecutor`]: tasks that panic or kill
//! their worker, payloads that fail to cross the process boundary,
//! initializers that fail, and shutdown or cancellation while workers are
//! busy. Every scenario runs once per start method
//! (`<module>::spawn::<test>`, `<module>::fork::<test>` and
//! `<module>::forkserver::<test>`).
//!
//! Each test asserts the exact [`TaskError`] the caller sees, that every
//! other future in flight completes with its right value, and that the pool
//! runs new work afterwards. Nothing sleeps and hopes: tasks block and
//! report on a cross-process [`Gate`](support::Gate), conditions the pool
//! gives no event for (a replacement worker connecting) are polled with a
//! bound, and every test body runs under a [`HangGuard`](support::HangGuard)
//! so a deadlock fails the run instead of hanging it.
//!
//! * `crashes`: panics, abort, exit, segfault, stack overflow, SIGKILL, out
//!   of memory, and CPython's `test_deadlock.py` crashes while encoding or
//!   decoding.
//! * `limits`: the pool's per-task time limit and per-worker memory limit.
//! * `codec`: values whose `Serialize` or `Deserialize` fails or panics, on
//!   each side of the process boundary.
//! * `depth`: arguments and results nested deeper than the codec allows.
//! * `controls`: `terminate_workers`, `kill_workers` and `stop_task`.
//! * `lifecycle`: failing initializers, unregistered functions, `Result`
//!   tasks, `cancel`, and `shutdown` while workers are busy.
//! * `scheduling`: no job waits in a worker's socket behind a long task
//!   while another worker idles, and a job no worker runs stays
//!   cancellable.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, Payload, ProcessPoolBuilder, ProcessPoolExecutor, StartMethod, TaskError, TaskFuture,
};

/// One `#[test]` per start method for each scenario `fn(StartMethod)`
/// listed: `spawn::<name>`, `fork::<name>` and `forkserver::<name>` in the
/// calling module.
/// Attributes before a name (`#[ignore = "..."]`) go on both tests.
macro_rules! for_each_start_method {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {
        mod spawn {
            $(
                #[test]
                $(#[$meta])*
                fn $name() {
                    super::$name(concurrent_futures::StartMethod::Spawn);
                }
            )*
        }
        mod fork {
            $(
                #[test]
                $(#[$meta])*
                fn $name() {
                    super::$name(concurrent_futures::StartMethod::Fork);
                }
            )*
        }
        mod forkserver {
            $(
                #[test]
                $(#[$meta])*
                fn $name() {
                    super::$name(concurrent_futures::StartMethod::ForkServer);
                }
            )*
        }
    };
}

mod support;

#[path = "process_pool_faults/codec.rs"]
mod codec;
#[path = "process_pool_faults/controls.rs"]
mod controls;
#[path = "process_pool_faults/crashes.rs"]
mod crashes;
#[path = "process_pool_faults/depth.rs"]
mod depth;
#[path = "process_pool_faults/lifecycle.rs"]
mod lifecycle;
#[path = "process_pool_faults/limits.rs"]
mod limits;
#[path = "process_pool_faults/payloads.rs"]
mod payloads;
#[path = "process_pool_faults/scheduling.rs"]
mod scheduling;
#[path = "process_pool_faults/tasks.rs"]
mod tasks;

use support::{Gate, HangGuard, SHORT_TIMEOUT};

/// The pool size of the scenarios: one worker held by a bystander, one
/// that meets the fault.
const WORKERS: usize = 2;

/// A pool of `workers` started with `method`.
fn pool(method: StartMethod, workers: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(workers)
        .start_method(method)
        .allow_fork_with_threads(true)
        .build()
        .expect("a valid pool configuration")
}

/// Polls `condition` (every millisecond) until it holds; panics after
/// [`SHORT_TIMEOUT`]. Only for states the pool signals no event for.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SHORT_TIMEOUT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {SHORT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `n` workers are connected and returns their pids, sorted.
fn wait_for_workers(pool: &ProcessPoolExecutor, n: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    wait_until(&format!("{n} connected workers"), || {
        pids = pool.worker_pids();
        pool.worker_count() == n && pids.len() == n
    });
    pids.sort_unstable();
    pids
}

/// The value of `fut`; panics if it failed or is not done within
/// [`SHORT_TIMEOUT`].
fn value<T: Clone + Debug>(fut: &TaskFuture<T>) -> T {
    match fut.result_timeout(SHORT_TIMEOUT) {
        Ok(v) => v.clone(),
        Err(e) => panic!("expected a value, got {e:?}: {e}"),
    }
}

/// The error of `fut`; panics if it succeeded or is not done within
/// [`SHORT_TIMEOUT`].
fn error<T: Debug>(fut: &TaskFuture<T>) -> TaskError {
    match fut.result_timeout(SHORT_TIMEOUT) {
        Ok(v) => panic!("expected the task to fail, it returned {v:?}"),
        Err(e @ TaskError::TimedOut { .. }) => {
            panic!("the future is not done within {SHORT_TIMEOUT:?}: {e}")
        }
        Err(e) => e,
    }
}

/// The pid in the arrival `"<tag>:<pid>"` (see [`tasks::block_report`]).
fn pid_of(arrivals: &[String], tag: &str) -> u32 {
    let prefix = format!("{tag}:");
    arrivals
        .iter()
        .find_map(|a| a.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no arrival tagged {tag:?} in {arrivals:?}"))
        .parse()
        .expect("a pid")
}

/// Asserts that `err` is exactly `WorkerDied` for `pid` with this signal
/// or exit status, and that its message says so.
fn expect_died(err: &TaskError, pid: u32, signal: Option<i32>, exit_code: Option<i32>) {
    assert_eq!(
        err,
        &TaskError::WorkerDied {
            pid,
            signal,
            exit_code
        },
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&format!("worker process {pid} ")), "{text}");
    let how = match (signal, exit_code) {
        (Some(sig), _) => format!("killed by signal {sig}"),
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => unreachable!(),
    };
    assert!(text.contains(&how), "{text:?} does not say {how:?}");
}

/// What becomes of the worker that meets the fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// It carries on: the same pid runs the next task.
    Survives,
    /// It dies and the pool starts a replacement.
    Dies,
}

/// The shape of every fault that fails one future:
///
/// 1. a bystander task blocks one of the [`WORKERS`] workers on the gate;
/// 2. `fault` submits the faulty task, which can only run on the other
///    worker (whose pid is therefore known), and four quick tasks are
///    queued behind it;
/// 3. the fault's future must fail, and `check` gets its error and the
///    pid of the worker it ran on;
/// 4. with the bystander still blocking, the next task runs where the
///    fault ran: on the same pid if the worker `Survives`, on a fresh
///    replacement if it `Dies` (and the pool gets back to [`WORKERS`]
///    connected workers, without the dead pid);
/// 5. the gate opens: the bystander and the queued tasks complete with
///    their values, and the pool runs a `map` of new work.
fn fault_scenario<R: Payload + Debug>(
    method: StartMethod,
    what: &'static str,
    fault: impl FnOnce(&ProcessPoolExecutor, &Gate) -> TaskFuture<R>,
    fate: Fate,
    check: impl FnOnce(&TaskError, u32),
) {
    fault_scenario_with(method, what, |b| b, fault, fate, check);
}

/// [`fault_scenario`] on a pool whose builder `configure` adjusts (a time
/// limit, a memory limit).
fn fault_scenario_with<R: Payload + Debug>(
    method: StartMethod,
    what: &'static str,
    configure: impl FnOnce(ProcessPoolBuilder) -> ProcessPoolBuilder,
    fault: impl FnOnce(&ProcessPoolExecutor, &Gate) -> TaskFuture<R>,
    fate: Fate,
    check: impl FnOnce(&TaskError, u32),
) {
    let _guard = HangGuard::new(what);
    let builder = ProcessPoolExecutor::builder()
        .max_workers(WORKERS)
        .start_method(method)
        .allow_fork_with_threads(true);
    let pool = configure(builder)
        .build()
        .expect("a valid pool configuration");
    let gate = Gate::new();

    let bystander = pool
        .submit(tasks::block_report, (gate.gate_ref(), "bystander".into()))
        .unwrap();
    let bystander_pid = pid_of(&gate.wait_for_arrivals(1), "bystander");
    let before = wait_for_workers(&pool, WORKERS);
    let fault_pid = *before
        .iter()
        .find(|&&p| p != bystander_pid)
        .expect("a second worker");

    let faulty = fault(&pool, &gate);
    let queued: Vec<_> = (1..=4_u64)
        .map(|i| pool.submit(tasks::square, i).unwrap())
        .collect();

    let err = error(&faulty);
    check(&err, fault_pid);
    assert!(
        !bystander.done(),
        "the bystander must still be blocked: {bystander:?}"
    );

    let next_pid = value(&pool.submit(tasks::whoami, ()).unwrap());
    match fate {
        Fate::Survives => {
            assert_eq!(
                next_pid, fault_pid,
                "the worker that met the fault must carry on"
            );
            let mut now = pool.worker_pids();
            now.sort_unstable();
            assert_eq!(now, before, "no worker may have been replaced");
        }
        Fate::Dies => {
            assert_ne!(next_pid, fault_pid, "a dead worker cannot run a task");
            assert_ne!(next_pid, bystander_pid, "the bystander's worker is busy");
            let now = wait_for_workers(&pool, WORKERS);
            assert!(!now.contains(&fault_pid), "{now:?} still lists {fault_pid}");
            assert!(
                now.contains(&next_pid) && now.contains(&bystander_pid),
                "{now:?}"
            );
        }
    }
    assert_eq!(pool.broken_reason(), None);

    gate.open();
    assert_eq!(value(&bystander), bystander_pid);
    let squares: Vec<u64> = queued.iter().map(value).collect();
    assert_eq!(squares, [1, 4, 9, 16]);
    let more: Vec<u64> = pool
        .map(tasks::square, 0..16_u64)
        .map(Result::unwrap)
        .collect();
    assert_eq!(more, (0..16_u64).map(|x| x * x).collect::<Vec<_>>());
}
