//! The pool's controls: `terminate_workers()` and `kill_workers()` (CPython
//! 3.14) stop every worker at once, and `stop_task` (pebble's
//! `future.cancel()`) stops one running task by killing its worker.

use std::sync::Arc;
use std::sync::mpsc;

use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, TaskError};

use crate::support::{Gate, HangGuard, OpenOnDrop, SHORT_TIMEOUT, children};
use crate::tasks;
use crate::{WORKERS, error, pid_of, pool, value, wait_for_workers, wait_until};

for_each_start_method!(
    terminate_workers_fails_running_and_cancels_queued,
    kill_workers_fails_running_and_cancels_queued,
    terminate_an_idle_pool_twice,
    terminate_a_broken_pool,
    terminate_from_a_done_callback,
    terminate_while_the_parent_ignores_sigterm,
    stop_a_running_task,
    stop_a_running_task_keeps_the_one_ahead,
    stop_a_task_sent_ahead,
    stop_a_queued_task_cancels_it,
    stop_a_finished_task,
);

/// Asserts that `err` is `Broken` naming `call`.
fn expect_terminated(err: &TaskError, call: &str) {
    match err {
        TaskError::Broken { reason } => {
            assert!(reason.contains(call), "{reason:?} does not name {call}")
        }
        other => panic!("expected Broken naming {call}, got {other:?}"),
    }
}

/// After `shutdown(wait)` (or drop), none of `pids` is a child of this
/// process any more, zombie or not.
fn assert_reaped(pids: &[u32]) {
    let left = children();
    for pid in pids {
        assert!(!left.contains(pid), "worker {pid} is still a child");
    }
}

/// One worker: `running` blocks on a gate, `ahead` was sent to its worker
/// behind it, `queued` waits in the queue. `call` stops the workers: the
/// running and the sent-ahead futures fail with `Broken` naming the call,
/// the queued one is cancelled, submit is refused, nothing restarts and
/// every worker is reaped.
fn stop_every_worker(method: StartMethod, stop: fn(&ProcessPoolExecutor), call: &str) {
    let _guard = HangGuard::new("stopping every worker");
    let pool = pool(method, 1);
    let SentAhead {
        running,
        ahead,
        queued,
        pid,
        gate,
    } = running_and_ahead(&pool);
    let _open = OpenOnDrop(&gate);
    assert!(!queued.running() && !queued.done(), "{queued:?}");

    stop(&pool);
    expect_terminated(&error(&running), call);
    expect_terminated(&error(&ahead), call);
    assert!(queued.cancelled(), "{queued:?}");
    assert_eq!(
        pool.submit(tasks::square, 2).map(drop).unwrap_err(),
        TaskError::ShutDown
    );
    pool.shutdown(true, false);
    assert_eq!(pool.worker_count(), 0);
    assert_eq!(pool.worker_pids(), Vec::<u32>::new());
    assert_eq!(pool.broken_reason(), None);
    assert_reaped(&[pid]);
}

fn terminate_workers_fails_running_and_cancels_queued(method: StartMethod) {
    stop_every_worker(
        method,
        ProcessPoolExecutor::terminate_workers,
        "terminate_workers()",
    );
}

fn kill_workers_fails_running_and_cancels_queued(method: StartMethod) {
    stop_every_worker(method, ProcessPoolExecutor::kill_workers, "kill_workers()");
}

/// On an idle pool the workers just go; calling again, or escalating to
/// `kill_workers`, is harmless.
fn terminate_an_idle_pool_twice(method: StartMethod) {
    let _guard = HangGuard::new("terminating an idle pool");
    let pool = pool(method, WORKERS);
    assert_eq!(value(&pool.submit(tasks::square, 3).unwrap()), 9);
    let pids = wait_for_workers(&pool, WORKERS);
    pool.terminate_workers();
    pool.terminate_workers();
    pool.kill_workers();
    wait_until("the workers to be reaped", || pool.worker_count() == 0);
    assert_eq!(
        pool.submit(tasks::square, 2).map(drop).unwrap_err(),
        TaskError::ShutDown
    );
    drop(pool);
    assert_reaped(&pids);
}

/// A pool broken by its initializer: terminating it changes nothing but
/// the shutdown flag, and submit still says why it is broken.
fn terminate_a_broken_pool(method: StartMethod) {
    let _guard = HangGuard::new("terminating a broken pool");
    let gate = Gate::new();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(WORKERS)
        .start_method(method)
        .allow_fork_with_threads(true)
        .initializer(tasks::init_err, gate.gate_ref())
        .build()
        .unwrap();
    wait_until("the pool to break", || pool.broken_reason().is_some());
    pool.terminate_workers();
    pool.kill_workers();
    pool.shutdown(true, false);
    assert_eq!(pool.worker_count(), 0);
    assert!(matches!(
        pool.submit(tasks::square, 2).map(drop),
        Err(TaskError::Broken { .. })
    ));
}

/// A done-callback (on a handler thread) may terminate the pool: the
/// task still running on the other worker fails, nothing deadlocks.
fn terminate_from_a_done_callback(method: StartMethod) {
    let _guard = HangGuard::new("terminating from a done-callback");
    let pool = Arc::new(pool(method, WORKERS));
    let blocker_gate = Gate::new();
    let quick_gate = Gate::new();
    let _open = (OpenOnDrop(&blocker_gate), OpenOnDrop(&quick_gate));
    let blocker = pool
        .submit(tasks::block_report, (blocker_gate.gate_ref(), "b".into()))
        .unwrap();
    pid_of(&blocker_gate.wait_for_arrivals(1), "b");
    let quick = pool
        .submit(tasks::block_report, (quick_gate.gate_ref(), "q".into()))
        .unwrap();
    let quick_pid = pid_of(&quick_gate.wait_for_arrivals(1), "q");
    let (done_tx, done_rx) = mpsc::channel();
    let in_callback = Arc::clone(&pool);
    quick.add_done_callback(move |_| {
        in_callback.terminate_workers();
        let _ = done_tx.send(std::thread::current().name().map(str::to_owned));
    });
    quick_gate.open();
    let thread = done_rx
        .recv_timeout(SHORT_TIMEOUT)
        .expect("the callback ran");
    assert!(
        thread
            .as_deref()
            .is_some_and(|n| n.starts_with("cf-process-")),
        "the callback ran on {thread:?}"
    );
    assert_eq!(value(&quick), quick_pid);
    expect_terminated(&error(&blocker), "terminate_workers()");
    pool.shutdown(true, false);
    assert_eq!(pool.worker_count(), 0);
}

/// A parent that ignores and blocks SIGTERM (which its workers inherit:
/// a forked one both, a spawned one the ignoring) still has workers that
/// die of `terminate_workers()`.
fn terminate_while_the_parent_ignores_sigterm(method: StartMethod) {
    let _guard = HangGuard::new("terminating while SIGTERM is ignored");
    // SAFETY: plain libc calls on this process's signal state; the set
    // is initialised before use. SIGTERM reaches no test of this binary.
    let old = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        (libc::signal(libc::SIGTERM, libc::SIG_IGN), set)
    };
    let pool = pool(method, 1);
    let gate = Gate::new();
    let _open = OpenOnDrop(&gate);
    let running = pool
        .submit(tasks::block_report, (gate.gate_ref(), "running".into()))
        .unwrap();
    let pid = pid_of(&gate.wait_for_arrivals(1), "running");
    pool.terminate_workers();
    let err = error(&running);
    // SAFETY: as above, restoring what was there.
    unsafe {
        libc::signal(libc::SIGTERM, old.0);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &old.1, std::ptr::null_mut());
    }
    expect_terminated(&err, "terminate_workers()");
    pool.shutdown(true, false);
    assert_reaped(&[pid]);
}

/// Asserts that `err` is exactly `Stopped` for `pid`, and says so.
fn expect_stopped(err: &TaskError, pid: u32) {
    assert_eq!(err, &TaskError::Stopped { pid: Some(pid) }, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("stopped on demand") && text.contains(&pid.to_string()),
        "{text}"
    );
}

/// A long task is stopped: its future fails with `Stopped` at once, a
/// bystander on the other worker and the queued tasks complete, and the
/// pool replaces the killed worker.
fn stop_a_running_task(method: StartMethod) {
    let _guard = HangGuard::new("stopping a running task");
    let pool = pool(method, WORKERS);
    let gate = Gate::new();
    let _open = OpenOnDrop(&gate);
    let bystander = pool
        .submit(tasks::block_report, (gate.gate_ref(), "bystander".into()))
        .unwrap();
    let bystander_pid = pid_of(&gate.wait_for_arrivals(1), "bystander");
    let long = pool
        .submit(tasks::block_report, (gate.gate_ref(), "long".into()))
        .unwrap();
    let long_pid = pid_of(&gate.wait_for_arrivals(2), "long");
    let queued: Vec<_> = (1..=4_u64)
        .map(|i| pool.submit(tasks::square, i).unwrap())
        .collect();

    assert!(!long.cancel(), "cancel() keeps CPython's meaning");
    assert!(pool.stop_task(&long));
    expect_stopped(&error(&long), long_pid);
    assert!(!pool.stop_task(&long), "a stopped task is done");
    assert_eq!(queued.iter().map(value).collect::<Vec<_>>(), [1, 4, 9, 16]);
    let next = value(&pool.submit(tasks::whoami, ()).unwrap());
    assert!(next != long_pid && next != bystander_pid, "{next}");
    let now = wait_for_workers(&pool, WORKERS);
    assert!(!now.contains(&long_pid), "{now:?} still lists {long_pid}");
    assert!(
        !bystander.done(),
        "the bystander is untouched: {bystander:?}"
    );
    gate.open();
    assert_eq!(value(&bystander), bystander_pid);
    assert_eq!(pool.broken_reason(), None);
    drop(pool);
    assert_reaped(&[long_pid, bystander_pid]);
}

/// A one-worker pool's state for the stopping tests.
struct SentAhead {
    /// Runs on the worker, blocked on `gate`.
    running: concurrent_futures::TaskFuture<u32>,
    /// Sent to the worker behind `running`.
    ahead: concurrent_futures::TaskFuture<u32>,
    /// Still in the pool's queue.
    queued: concurrent_futures::TaskFuture<u64>,
    /// The worker's pid.
    pid: u32,
    gate: Gate,
}

/// One worker runs `running` (blocked) with `ahead` sent to it behind,
/// and one more job queued.
fn running_and_ahead(pool: &ProcessPoolExecutor) -> SentAhead {
    let first = Gate::new();
    let _open = OpenOnDrop(&first);
    let second = Gate::new();
    let a = pool
        .submit(tasks::block_report, (first.gate_ref(), "a".into()))
        .unwrap();
    let pid = pid_of(&first.wait_for_arrivals(1), "a");
    let running = pool
        .submit(tasks::block_report, (second.gate_ref(), "running".into()))
        .unwrap();
    let ahead = pool.submit(tasks::whoami, ()).unwrap();
    let queued = pool.submit(tasks::square, 1).unwrap();
    // `a` finishes: its worker gets `running` and, the pool being
    // saturated, `ahead` behind it.
    first.open();
    assert_eq!(value(&a), pid);
    pid_of(&second.wait_for_arrivals(1), "running");
    assert!(ahead.running(), "sent ahead: {ahead:?}");
    SentAhead {
        running,
        ahead,
        queued,
        pid,
        gate: second,
    }
}

/// Stopping the running task keeps the job sent ahead to its worker: it
/// runs on the replacement.
fn stop_a_running_task_keeps_the_one_ahead(method: StartMethod) {
    let _guard = HangGuard::new("stopping a task with one sent ahead");
    let pool = pool(method, 1);
    let SentAhead {
        running,
        ahead,
        pid,
        gate,
        ..
    } = running_and_ahead(&pool);
    let _open = OpenOnDrop(&gate);
    assert!(pool.stop_task(&running));
    expect_stopped(&error(&running), pid);
    let replacement = value(&ahead);
    assert_ne!(
        replacement, pid,
        "the job sent ahead ran on the replacement"
    );
    assert_eq!(wait_for_workers(&pool, 1), [replacement]);
}

/// Stopping a job sent ahead (not started) fails it at once; the task
/// running before it completes, then its worker is replaced.
fn stop_a_task_sent_ahead(method: StartMethod) {
    let _guard = HangGuard::new("stopping a task sent ahead");
    let pool = pool(method, 1);
    let SentAhead {
        running,
        ahead,
        pid,
        gate,
        ..
    } = running_and_ahead(&pool);
    let _open = OpenOnDrop(&gate);
    assert!(pool.stop_task(&ahead));
    expect_stopped(&error(&ahead), pid);
    assert!(!running.done(), "{running:?}");
    gate.open();
    assert_eq!(value(&running), pid);
    let next = value(&pool.submit(tasks::whoami, ()).unwrap());
    assert_ne!(next, pid, "the worker was killed when it reached the job");
    assert_eq!(pool.broken_reason(), None);
}

/// A queued task is cancelled, as `cancel()` would: nothing is killed.
fn stop_a_queued_task_cancels_it(method: StartMethod) {
    let _guard = HangGuard::new("stopping a queued task");
    let pool = pool(method, 1);
    let gate = Gate::new();
    let _open = OpenOnDrop(&gate);
    let blocker = pool
        .submit(tasks::block_report, (gate.gate_ref(), "blocker".into()))
        .unwrap();
    let pid = pid_of(&gate.wait_for_arrivals(1), "blocker");
    let queued = pool.submit(tasks::square, 5).unwrap();
    let after = pool.submit(tasks::square, 6).unwrap();
    assert!(pool.stop_task(&queued));
    assert!(queued.cancelled(), "{queued:?}");
    assert_eq!(error(&queued), TaskError::Cancelled);
    gate.open();
    assert_eq!(value(&blocker), pid);
    assert_eq!(value(&after), 36);
    assert_eq!(pool.worker_pids(), [pid], "no worker was killed");
}

/// A finished task cannot be stopped; nor can another pool's future.
fn stop_a_finished_task(method: StartMethod) {
    let _guard = HangGuard::new("stopping a finished task");
    let pool = pool(method, 1);
    let other = pool.submit(tasks::square, 7).unwrap();
    assert_eq!(value(&other), 49);
    assert!(!pool.stop_task(&other));
    assert_eq!(value(&other), 49);
    let elsewhere = crate::pool(StartMethod::Spawn, 1);
    let gate = Gate::new();
    let _open = OpenOnDrop(&gate);
    let foreign = elsewhere
        .submit(tasks::block_report, (gate.gate_ref(), "foreign".into()))
        .unwrap();
    gate.wait_for_arrivals(1);
    assert!(!pool.stop_task(&foreign), "not this pool's");
    assert!(!foreign.done());
    let pid = pool.worker_pids();
    assert_eq!(value(&pool.submit(tasks::whoami, ()).unwrap()), pid[0]);
}
