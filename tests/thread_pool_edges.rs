//! Edge cases found in review of the thread pool and the futures core, each
//! kept as a regression test.

#[path = "support/mod.rs"]
mod support;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use concurrent_futures::prelude::*;
use concurrent_futures::{TaskFuture, set_callback_panic_handler};
use support::HangGuard;

const BOUND: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(workers)
        .build()
        .unwrap()
}

/// A done-callback that waits for a task submitted after the future
/// completed: the pool must start a second thread for that task (the
/// worker is busy in the callback), as CPython's does.
#[test]
fn callback_waiting_for_a_later_task_gets_a_new_thread() {
    let executor = pool(2);
    let (tx, rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<bool>();
    // The task waits until its callback is registered, so that the callback
    // runs in the worker, not here.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let first_blocked = executor
        .spawn(move || go_rx.recv_timeout(BOUND).is_ok())
        .unwrap();
    first_blocked.add_done_callback(move |_| {
        let _ = seen_tx.send(rx.recv_timeout(BOUND).is_ok());
    });
    go_tx.send(()).unwrap();
    assert_eq!(first_blocked.result(), Ok(&true));
    // The worker that ran `first_blocked` is now inside the callback.
    let second = executor.spawn(move || tx.send(()).is_ok()).unwrap();
    assert_eq!(second.result_timeout(BOUND), Ok(&true));
    assert_eq!(
        seen_rx.recv_timeout(BOUND),
        Ok(true),
        "the callback saw the later task"
    );
}

struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics");
    }
}

/// A foreign waker that panics while a worker completes the future: the
/// worker survives, the future still settles, and the pool shuts down.
#[test]
fn a_panicking_waker_does_not_kill_the_worker() {
    let reports = Arc::new(Mutex::new(Vec::<String>::new()));
    let r = reports.clone();
    set_callback_panic_handler(move |line| r.lock().unwrap().push(line.to_owned()));

    let executor = pool(1);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let fut = executor
        .spawn(move || go_rx.recv_timeout(BOUND).map(|_| 5).unwrap_or(0))
        .unwrap();
    // Register the panicking waker by polling `&fut` once.
    let waker = Waker::from(Arc::new(PanickingWaker));
    let mut awaiting = std::pin::pin!(std::future::IntoFuture::into_future(&fut));
    assert!(
        std::future::Future::poll(awaiting.as_mut(), &mut Context::from_waker(&waker)).is_pending()
    );
    let (callback_tx, callback_rx) = mpsc::channel();
    fut.add_done_callback(move |f| callback_tx.send(*f.result().unwrap()).unwrap());
    go_tx.send(()).unwrap();

    assert_eq!(
        callback_rx.recv_timeout(BOUND),
        Ok(5),
        "callbacks still ran"
    );
    assert_eq!(fut.result(), Ok(&5));
    let next = executor.spawn(|| "still serving").unwrap();
    assert_eq!(next.result_timeout(BOUND), Ok(&"still serving"));
    let _guard = HangGuard::new("dropping a pool after a panicking waker");
    drop(executor);
    assert!(
        reports
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("this waker panics")),
        "the waker's panic was reported"
    );
}

/// An untimed `as_completed` inside a one-worker pool runs a queued task of
/// its pool inline even when it is not the first unfinished future.
#[test]
fn as_completed_claims_any_queued_task_of_its_pool() {
    let executor = Arc::new(pool(1));
    let inner = executor.clone();
    let outer = executor
        .spawn(move || {
            let (external, completer) = TaskFuture::<u32>::pending();
            let completer = Mutex::new(Some(completer));
            // `queued` completes `external`; both are awaited together.
            let queued = inner
                .spawn(move || {
                    if let Some(c) = completer.lock().unwrap().take() {
                        c.complete(Ok(1));
                    }
                    2
                })
                .unwrap();
            as_completed([external, queued], None)
                .map(|f| *f.unwrap().result().unwrap())
                .sum::<u32>()
        })
        .unwrap();
    assert_eq!(outer.result_timeout(BOUND), Ok(&3));
}

/// Timeouts too large for the clock mean "no deadline", not a panic.
#[test]
fn huge_timeouts_do_not_overflow() {
    let ready = TaskFuture::ready(1);
    assert_eq!(ready.result_timeout(Duration::MAX), Ok(&1));
    assert_eq!(ready.exception_timeout(Duration::MAX), Ok(None));
    let split = wait(
        [ready.clone()],
        Some(Duration::MAX),
        ReturnWhen::AllCompleted,
    );
    assert_eq!(split.done.len(), 1);
    let done: Vec<_> = as_completed([ready], Some(Duration::MAX)).collect();
    assert_eq!(done.len(), 1);
    let executor = pool(1);
    fn inc(x: u8) -> u8 {
        x + 1
    }
    let opts = MapOptions::new().timeout(Duration::MAX);
    let out: Vec<u8> = executor
        .map_with(inc, [1, 2], opts)
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, [2, 3]);
}

/// Submits racing a shutdown: every submit either is refused with
/// `ShutDown` or has its task run before `shutdown(wait = true)` returns.
#[test]
fn submits_racing_shutdown_either_fail_or_run() {
    for _ in 0..50 {
        let executor = Arc::new(pool(2));
        let submitter = executor.clone();
        let t = std::thread::spawn(move || {
            (0..200)
                .map(|i| submitter.spawn(move || i))
                .collect::<Vec<_>>()
        });
        executor.shutdown(true, false);
        let accepted_while_open: Vec<_> = t.join().unwrap();
        // Anything accepted before shutdown returned must run; anything
        // after must be refused. Either way nothing is left pending.
        executor.shutdown(true, false);
        for (i, r) in accepted_while_open.into_iter().enumerate() {
            match r {
                Ok(f) => assert_eq!(f.result_timeout(BOUND), Ok(&i)),
                Err(e) => assert_eq!(e, TaskError::ShutDown),
            }
        }
    }
}

/// Polls (every millisecond, for at most [`BOUND`]) until `pool` refuses
/// new work: its shutdown has begun. Shutdown gives no event to wait on.
/// Returns the no-op tasks it got accepted before that.
fn wait_for_shutdown_to_begin(pool: &ThreadPoolExecutor) -> Vec<TaskFuture<()>> {
    let deadline = std::time::Instant::now() + BOUND;
    let mut accepted = Vec::new();
    loop {
        match pool.spawn(|| ()) {
            Ok(fut) => accepted.push(fut),
            Err(e) => {
                assert_eq!(e, TaskError::ShutDown);
                return accepted;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shutdown did not begin within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `shutdown(wait = true)` from inside one of the pool's own tasks waits
/// for everything but its own task: a task still running on the other
/// worker (released only once the shutdown has begun) and the queued work
/// that worker then runs are done when it returns, and that worker has
/// exited (the pool counts one thread: the caller's). A shutdown from
/// outside then joins the last thread.
#[test]
fn shutdown_from_inside_a_task_waits_for_every_other_task() {
    let _guard = HangGuard::new("shutdown from inside a task");
    let executor = Arc::new(pool(2));
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, gate) = mpsc::channel::<()>();
    let other = executor
        .spawn(move || {
            started_tx.send(()).unwrap();
            gate.recv_timeout(BOUND).is_ok()
        })
        .unwrap();
    started.recv_timeout(BOUND).unwrap();
    let (seen_other, handle) = (other.clone(), Arc::clone(&executor));
    let (queued_tx, queued_rx) = mpsc::channel::<Vec<TaskFuture<()>>>();
    let inside = executor
        .spawn(move || {
            handle.shutdown(true, false);
            let queued = queued_rx.recv_timeout(BOUND).unwrap();
            (
                seen_other.done(),
                queued.iter().all(TaskFuture::done),
                handle.worker_count(),
            )
        })
        .unwrap();
    let queued = wait_for_shutdown_to_begin(&executor);
    // The other task is still blocked, so the shutdown cannot have
    // returned yet: what it reports below, it waited for.
    assert!(!other.done());
    queued_tx.send(queued).unwrap();
    release.send(()).unwrap();
    assert_eq!(
        inside.result_timeout(BOUND),
        Ok(&(true, true, 1)),
        "(other task done, queued tasks done, threads) when shutdown returned"
    );
    assert_eq!(other.result_timeout(BOUND), Ok(&true));
    executor.shutdown(true, false);
    assert_eq!(executor.worker_count(), 0);
}

/// With one worker, the calling task is all a shutdown from inside could
/// wait for: it returns at once, and a task queued behind the caller runs
/// after the caller returns (it was accepted before the shutdown).
#[test]
fn shutdown_from_inside_a_pool_of_one_returns_and_queued_work_runs_after() {
    let _guard = HangGuard::new("shutdown from inside a pool of one");
    let executor = Arc::new(pool(1));
    let handle = Arc::clone(&executor);
    let (queued_tx, queued_rx) = mpsc::channel::<TaskFuture<u32>>();
    let inside = executor
        .spawn(move || {
            let queued = queued_rx.recv_timeout(BOUND).unwrap();
            handle.shutdown(true, false);
            (queued.done(), handle.spawn(|| 0).map(drop))
        })
        .unwrap();
    let queued = executor.spawn(|| 7).unwrap();
    queued_tx.send(queued.clone()).unwrap();
    assert_eq!(
        inside.result_timeout(BOUND),
        Ok(&(false, Err(TaskError::ShutDown)))
    );
    assert_eq!(queued.result_timeout(BOUND), Ok(&7));
    executor.shutdown(true, false);
    assert_eq!(executor.worker_count(), 0);
}

/// Two tasks that both shut their pool down with `wait` do not wait for
/// each other: both shutdowns return (each waited for every worker not in
/// a shutdown of its own: here, none), and the pool's shutdown from
/// outside then joins both threads.
#[test]
fn two_tasks_shutting_their_pool_down_do_not_deadlock() {
    let _guard = HangGuard::with_limit("two tasks shutting their pool down", 2 * BOUND);
    let executor = Arc::new(pool(2));
    let (started_tx, started) = mpsc::channel::<()>();
    let mut go = Vec::new();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            go.push(go_tx);
            let (started_tx, handle) = (started_tx.clone(), Arc::clone(&executor));
            executor
                .spawn(move || {
                    started_tx.send(()).unwrap();
                    // Both tasks run before either shuts down.
                    go_rx.recv_timeout(BOUND).unwrap();
                    handle.shutdown(true, false);
                    handle.worker_count()
                })
                .unwrap()
        })
        .collect();
    for _ in 0..2 {
        started.recv_timeout(BOUND).unwrap();
    }
    go.iter().for_each(|go| go.send(()).unwrap());
    for task in &tasks {
        let threads = *task.result_timeout(BOUND).unwrap();
        assert!((1..=2).contains(&threads), "{threads}");
    }
    executor.shutdown(true, false);
    assert_eq!(executor.worker_count(), 0);
}
