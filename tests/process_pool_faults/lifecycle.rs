//! The pool's lifecycle under faults: initializers that fail, functions
//! that are not tasks, a task's own `Err`, cancelling queued work, and
//! shutting down while workers are busy (CPython's `test_deadlock.py` and
//! `test_shutdown.py` scenarios that apply).

use concurrent_futures::{
    Executor, InitResult, Payload, ReturnWhen, StartMethod, TaskError, TaskFuture, wait,
};

use crate::payloads::Crash;
use crate::support::{Gate, GateRef, HangGuard, OpenOnDrop, SHORT_TIMEOUT};
use crate::tasks::{self, INIT_EXIT, INIT_PANIC, INIT_REFUSAL};
use crate::{WORKERS, error, pid_of, pool, value, wait_until};

for_each_start_method!(
    initializer_returns_err,
    initializer_panics,
    initializer_exits,
    replacement_worker_runs_the_initializer,
    unregistered_function,
    task_err_surfaces_as_a_value,
    cancel_a_queued_task,
    shutdown_wait_while_busy,
    shutdown_nowait_while_busy,
    shutdown_cancel_futures_with_backlog,
);

/// Runs beside `pool.shutdown(..)` in another thread: waits (bounded)
/// until the pool refuses work because it is shutting down, then opens the
/// gate, so that shutdown has surely begun while the tasks were blocked.
/// Returns the futures of the probe tasks (`square(9)`) that were accepted
/// before that; they must complete too.
pub fn open_when_shut_down(
    pool: &concurrent_futures::ProcessPoolExecutor,
    gate: &Gate,
) -> Vec<TaskFuture<u64>> {
    let _open = OpenOnDrop(gate);
    let mut probes = Vec::new();
    wait_until("the pool to start shutting down", || {
        match pool.submit(tasks::square, 9) {
            Ok(probe) => {
                probes.push(probe);
                false
            }
            Err(TaskError::ShutDown) => true,
            Err(e) => panic!("a probe submit failed: {e:?}"),
        }
    });
    probes
}

/// A pool whose initializer fails: it becomes broken with a reason that
/// names the failure, a task submitted at once fails (or is refused) with
/// `Broken`, later submits are refused with `Broken`, and the initializer
/// ran at most once per worker slot (no respawn loop).
fn initializer_fails<R: Payload + InitResult>(
    method: StartMethod,
    init: fn(GateRef) -> R,
    expected_reason: &str,
) {
    let _guard = HangGuard::new("a pool whose initializer fails");
    let gate = Gate::new();
    let pool = concurrent_futures::ProcessPoolExecutor::builder()
        .max_workers(WORKERS)
        .start_method(method)
        .allow_fork_with_threads(true)
        .initializer(init, gate.gate_ref())
        .build()
        .expect("a failing initializer is reported later, not by build");

    let check_broken = |err: TaskError| match err {
        TaskError::Broken { reason } => assert!(
            reason.contains(expected_reason),
            "{reason:?} does not contain {expected_reason:?}"
        ),
        other => panic!("expected Broken, got {other:?}"),
    };
    match pool.submit(tasks::square, 3) {
        Ok(early) => check_broken(error(&early)),
        Err(err) => check_broken(err),
    }
    wait_until("the pool to report itself broken", || {
        pool.broken_reason().is_some()
    });
    let reason = pool.broken_reason().unwrap();
    assert!(
        reason.contains(expected_reason),
        "{reason:?} does not contain {expected_reason:?}"
    );
    let err = pool.submit(tasks::square, 4).map(drop).unwrap_err();
    assert_eq!(
        err,
        TaskError::Broken {
            reason: reason.clone()
        }
    );
    assert_eq!(err.to_string(), format!("the executor is broken: {reason}"));

    // Every handler has stopped: no worker left, and none started again.
    pool.shutdown(true, false);
    assert_eq!(pool.worker_count(), 0);
    assert_eq!(pool.worker_pids(), Vec::<u32>::new());
    let runs = gate.settled_arrivals();
    assert!(
        (1..=WORKERS).contains(&runs.len()),
        "the initializer ran {} times (at most once per worker): {runs:?}",
        runs.len()
    );
    assert_eq!(
        pool.submit(tasks::square, 5).map(drop).unwrap_err(),
        TaskError::Broken { reason }
    );
}

fn initializer_returns_err(method: StartMethod) {
    initializer_fails(
        method,
        tasks::init_err,
        &format!("the initializer failed: {INIT_REFUSAL}"),
    );
}

fn initializer_panics(method: StartMethod) {
    initializer_fails(
        method,
        tasks::init_panics,
        &format!("the initializer failed: it panicked: {INIT_PANIC}"),
    );
}

fn initializer_exits(method: StartMethod) {
    initializer_fails(
        method,
        tasks::init_exits,
        &format!("the initializer killed its worker, which exited with status {INIT_EXIT}"),
    );
}

/// A worker that dies is replaced by one that runs the initializer again
/// before its first task, and the pool is not broken.
fn replacement_worker_runs_the_initializer(method: StartMethod) {
    let _guard = HangGuard::new("a replacement worker runs the initializer");
    let gate = Gate::new();
    let pool = concurrent_futures::ProcessPoolExecutor::builder()
        .max_workers(1)
        .start_method(method)
        .allow_fork_with_threads(true)
        .initializer(tasks::init_ok, gate.gate_ref())
        .build()
        .unwrap();
    let first = value(&pool.submit(tasks::whoami, ()).unwrap());
    let died = error(&pool.submit(tasks::crash, Crash::Exit(9)).unwrap());
    crate::expect_died(&died, first, None, Some(9));
    let second = value(&pool.submit(tasks::whoami, ()).unwrap());
    assert_ne!(first, second);
    assert_eq!(
        gate.settled_arrivals(),
        [format!("init:{first}"), format!("init:{second}")]
    );
    assert_eq!(pool.broken_reason(), None);
    assert_eq!(value(&pool.submit(tasks::square, 8).unwrap()), 64);
}

/// Not marked `#[task]`.
fn not_a_task(x: u32) -> u32 {
    x.wrapping_mul(3) ^ 0x5a5a
}

/// Submitting a function that is not a task fails at once with
/// `Unregistered`, whose message says how to fix it; the pool is unharmed.
fn unregistered_function(method: StartMethod) {
    let _guard = HangGuard::new("submitting an unregistered function");
    let pool = pool(method, 1);
    assert_eq!(not_a_task(1), 0x5a59);
    let err = pool.submit(not_a_task, 1).map(drop).unwrap_err();
    match &err {
        TaskError::Unregistered { function } => {
            assert!(function.contains("fn(u32) -> u32"), "{function:?}")
        }
        other => panic!("expected Unregistered, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("is not a registered task"), "{text}");
    assert!(
        text.contains("add that attribute") && text.contains("#[concurrent_futures::task]"),
        "{text}"
    );
    assert_eq!(value(&pool.submit(tasks::square, 12).unwrap()), 144);
}

/// A task returning `Result<u32, String>`: its `Err` is a value that
/// reaches the caller, not a failure of the future.
fn task_err_surfaces_as_a_value(method: StartMethod) {
    let _guard = HangGuard::new("a task that returns Err");
    let pool = pool(method, WORKERS);
    let bad = pool.submit(tasks::fallible, 0).unwrap();
    let good = pool.submit(tasks::fallible, 7).unwrap();
    assert_eq!(
        bad.result_timeout(SHORT_TIMEOUT),
        Ok(&Err("bad".to_owned()))
    );
    assert_eq!(good.result_timeout(SHORT_TIMEOUT), Ok(&Ok(7)));
    assert_eq!(bad.exception_timeout(SHORT_TIMEOUT), Ok(None));
    assert_eq!(bad.into_result(), Ok(Err("bad".to_owned())));
}

/// `cancel()` of a task queued behind a blocked worker succeeds, and the
/// task never runs.
fn cancel_a_queued_task(method: StartMethod) {
    let _guard = HangGuard::new("cancelling a queued task");
    let pool = pool(method, 1);
    let gate = Gate::new();
    let blocker = pool
        .submit(tasks::block_report, (gate.gate_ref(), "blocker".into()))
        .unwrap();
    let pid = pid_of(&gate.wait_for_arrivals(1), "blocker");
    let queued = pool
        .submit(tasks::arrive, (gate.gate_ref(), "queued".into()))
        .unwrap();
    let after = pool
        .submit(tasks::arrive, (gate.gate_ref(), "after".into()))
        .unwrap();
    assert!(queued.cancel());
    assert!(queued.cancelled() && queued.done());
    assert_eq!(
        queued.result_timeout(SHORT_TIMEOUT),
        Err(TaskError::Cancelled)
    );
    assert!(!blocker.done() && !after.done());

    gate.open();
    assert_eq!(value(&blocker), pid);
    assert_eq!(value(&after), "after");
    assert_eq!(value(&pool.submit(tasks::whoami, ()).unwrap()), pid);
    assert_eq!(
        gate.settled_arrivals(),
        [format!("blocker:{pid}"), "after".to_owned()]
    );
    assert_eq!(
        queued.result_timeout(SHORT_TIMEOUT),
        Err(TaskError::Cancelled)
    );
}

/// Blocks both workers on the gate and queues three more tasks; returns
/// the running and the queued futures.
fn busy_pool(
    pool: &concurrent_futures::ProcessPoolExecutor,
    gate: &Gate,
) -> (Vec<TaskFuture<u32>>, Vec<TaskFuture<u64>>) {
    let running: Vec<_> = (0..WORKERS)
        .map(|i| {
            pool.submit(tasks::block_report, (gate.gate_ref(), format!("run{i}")))
                .unwrap()
        })
        .collect();
    gate.wait_for_arrivals(WORKERS);
    let queued = (1..=3_u64)
        .map(|i| pool.submit(tasks::square, i).unwrap())
        .collect();
    (running, queued)
}

/// The pids the running tasks reported, in submit order.
fn running_pids(gate: &Gate) -> Vec<u32> {
    let arrivals = gate.arrivals();
    (0..WORKERS)
        .map(|i| pid_of(&arrivals, &format!("run{i}")))
        .collect()
}

/// `shutdown(wait = true)` while every worker is busy and work is queued:
/// it waits for the gate (opened from another thread once shutdown has
/// begun), and on return every future is done with its value and every
/// worker is gone.
fn shutdown_wait_while_busy(method: StartMethod) {
    let _guard = HangGuard::new("shutdown(wait=true) while workers are busy");
    let pool = pool(method, WORKERS);
    let gate = Gate::new();
    let (running, queued) = busy_pool(&pool, &gate);
    let pids = running_pids(&gate);
    let probes = std::thread::scope(|s| {
        let opener = s.spawn(|| open_when_shut_down(&pool, &gate));
        pool.shutdown(true, false);
        opener.join().unwrap()
    });
    assert!(
        running.iter().all(|f| f.done()) && queued.iter().all(|f| f.done()),
        "shutdown(wait=true) returned with unfinished futures"
    );
    assert_eq!(running.iter().map(value).collect::<Vec<_>>(), pids);
    assert_eq!(queued.iter().map(value).collect::<Vec<_>>(), [1, 4, 9]);
    assert!(probes.iter().all(|p| value(p) == 81));
    assert_eq!(pool.worker_count(), 0);
    assert_eq!(
        pool.submit(tasks::square, 1).map(drop).unwrap_err(),
        TaskError::ShutDown
    );
}

/// `shutdown(wait = false)` while every worker is busy returns at once
/// (the tasks are still blocked when it does); the busy and the queued
/// futures still complete with their values.
fn shutdown_nowait_while_busy(method: StartMethod) {
    let _guard = HangGuard::new("shutdown(wait=false) while workers are busy");
    let pool = pool(method, WORKERS);
    let gate = Gate::new();
    let (running, queued) = busy_pool(&pool, &gate);
    let pids = running_pids(&gate);
    pool.shutdown(false, false);
    assert!(!gate.is_open());
    assert!(running.iter().all(|f| !f.done()), "{running:?}");
    assert_eq!(gate.blocked_count(), WORKERS);
    assert_eq!(
        pool.submit(tasks::square, 1).map(drop).unwrap_err(),
        TaskError::ShutDown
    );

    gate.open();
    assert_eq!(running.iter().map(value).collect::<Vec<_>>(), pids);
    assert_eq!(queued.iter().map(value).collect::<Vec<_>>(), [1, 4, 9]);
    drop(pool);
}

/// `shutdown(wait = true, cancel_futures = true)` with a backlog: the
/// queued futures are cancelled at once (the gate opens only after they
/// are) and never run; the running ones complete with their values.
fn shutdown_cancel_futures_with_backlog(method: StartMethod) {
    let _guard = HangGuard::new("shutdown(cancel_futures=true) with a backlog");
    let pool = pool(method, WORKERS);
    let gate = Gate::new();
    let running: Vec<_> = (0..WORKERS)
        .map(|i| {
            pool.submit(tasks::block_report, (gate.gate_ref(), format!("run{i}")))
                .unwrap()
        })
        .collect();
    gate.wait_for_arrivals(WORKERS);
    let pids = running_pids(&gate);
    let backlog: Vec<_> = (0..5)
        .map(|i| {
            pool.submit(tasks::arrive, (gate.gate_ref(), format!("backlog{i}")))
                .unwrap()
        })
        .collect();
    let not_cancelled = std::thread::scope(|s| {
        let opener = s.spawn(|| {
            let _open = OpenOnDrop(&gate);
            // Done means cancelled here: none of them can run before the
            // gate opens.
            wait(
                backlog.iter().cloned(),
                Some(SHORT_TIMEOUT / 2),
                ReturnWhen::AllCompleted,
            )
            .not_done
        });
        pool.shutdown(true, true);
        opener.join().unwrap()
    });
    assert!(not_cancelled.is_empty(), "not cancelled: {not_cancelled:?}");
    for fut in &backlog {
        assert_eq!(fut.result_timeout(SHORT_TIMEOUT), Err(TaskError::Cancelled));
    }
    assert_eq!(running.iter().map(value).collect::<Vec<_>>(), pids);
    let arrivals = gate.settled_arrivals();
    assert!(
        arrivals.iter().all(|a| a.starts_with("run")),
        "a cancelled task ran: {arrivals:?}"
    );
    assert_eq!(pool.worker_count(), 0);
}
