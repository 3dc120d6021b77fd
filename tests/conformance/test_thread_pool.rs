//! What only a thread pool can check: CPython's `test_thread_pool.py`
//! (`ThreadPoolExecutorTest`), `ThreadPoolShutdownTest` from
//! `test_shutdown.py`, `test_no_stale_references` from `executor.py`, the
//! initializer as a closure (`test_init.py`), closures through `spawn`, and
//! waits from inside the pool on a queued task of the same pool (the
//! deadlock CPython documents and we avoid by running that task inline).
//!
//! Here tasks may be closures and tests may share in-process state.
//! Worker-thread exits are observed through a thread-local whose destructor
//! runs when the thread ends (set up by the initializer), so "the threads
//! were joined" is checked without sleeping.
//!
//! Not ported:
//! * `test_hang_global_shutdown_lock`, `test_process_fork_from_a_threadpool`:
//!   they fork process pools / processes from a thread pool; they belong to
//!   the process-pool suite.
//! * `test_cancel_futures_wait_false` runs a child interpreter in CPython;
//!   it is ported in-process.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, MapOptions, ReturnWhen, TaskError, TaskFuture, ThreadPoolBuilder, ThreadPoolExecutor,
    as_completed, default_max_workers, wait,
};

use crate::support::{Gate, HangGuard, SHORT_TIMEOUT};
use crate::tasks;

// ---------------------------------------------------------------------------
// Worker-exit tracking
// ---------------------------------------------------------------------------

/// Counts the worker threads that ran the initializer and those that have
/// exited.
#[derive(Default)]
struct ExitTracker {
    initialized: AtomicUsize,
    exited: Mutex<usize>,
    cond: Condvar,
}

struct ExitGuard(Arc<ExitTracker>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        *self.0.exited.lock().unwrap() += 1;
        self.0.cond.notify_all();
    }
}

thread_local! {
    static EXIT_GUARD: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

impl ExitTracker {
    fn exited(&self) -> usize {
        *self.exited.lock().unwrap()
    }

    /// Blocks until `n` workers have exited; panics after SHORT_TIMEOUT.
    fn wait_exited(&self, n: usize) {
        let deadline = Instant::now() + SHORT_TIMEOUT;
        let mut exited = self.exited.lock().unwrap();
        while *exited < n {
            let now = Instant::now();
            assert!(now < deadline, "only {} of {n} workers exited", *exited);
            exited = self.cond.wait_timeout(exited, deadline - now).unwrap().0;
        }
    }
}

/// A pool whose workers report their exit to the returned tracker.
fn tracked(builder: ThreadPoolBuilder) -> (ThreadPoolExecutor, Arc<ExitTracker>) {
    let tracker = Arc::new(ExitTracker::default());
    let t = tracker.clone();
    let pool = builder
        .initializer(move || {
            t.initialized.fetch_add(1, Ordering::SeqCst);
            EXIT_GUARD.with(|g| *g.borrow_mut() = Some(ExitGuard(t.clone())));
        })
        .build()
        .unwrap();
    (pool, tracker)
}

fn pool(workers: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(workers)
        .build()
        .unwrap()
}

/// A task that blocks until the gate opens (a closure, for `spawn`).
fn blocker(gate: &Gate, tag: &str) -> impl FnOnce() + Send + 'static {
    let (g, tag) = (gate.gate_ref(), tag.to_owned());
    move || g.wait_as(&tag)
}

// ---------------------------------------------------------------------------
// test_thread_pool.py: ThreadPoolExecutorTest
// ---------------------------------------------------------------------------

/// `max_workers` defaults to `min(32, cpus + 4)`.
#[test]
fn test_default_workers() {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let expected = (cpus + 4).min(32);
    assert_eq!(default_max_workers(), expected);
    assert_eq!(ThreadPoolExecutor::new().max_workers(), expected);
    assert_eq!(
        Executor::max_workers(&ThreadPoolExecutor::builder().build().unwrap()),
        expected
    );
}

/// 15 × `max_workers` blocking tasks start exactly `max_workers` threads.
#[test]
fn test_saturation() {
    let executor = pool(4);
    let gate = Gate::new();
    let futures: Vec<_> = (0..15 * 4)
        .map(|i| executor.spawn(blocker(&gate, &i.to_string())).unwrap())
        .collect();
    gate.wait_for_arrivals(4);
    assert_eq!(executor.worker_count(), 4);
    assert_eq!(
        gate.blocked_count(),
        4,
        "exactly max_workers tasks run at once"
    );
    gate.open();
    executor.shutdown(true, false);
    assert!(futures.iter().all(|f| f.result() == Ok(&())));
    assert_eq!(gate.settled_arrivals().len(), 60);
}

/// Three sequential submit + result calls use one thread.
#[test]
fn test_idle_thread_reuse() {
    let executor = ThreadPoolExecutor::new();
    assert_eq!(
        executor.submit(tasks::mul, (21, 2)).unwrap().result(),
        Ok(&42)
    );
    assert_eq!(
        executor.submit(tasks::mul, (6, 7)).unwrap().result(),
        Ok(&42)
    );
    assert_eq!(
        executor.submit(tasks::mul, (3, 14)).unwrap().result(),
        Ok(&42)
    );
    assert_eq!(executor.worker_count(), 1);
    executor.shutdown(true, false);
    assert_eq!(executor.worker_count(), 0);
}

// `test_executor_map_current_future_cancel` and
// `test_map_submits_without_iteration` hold for any executor: see
// `generic::executor`.

// ---------------------------------------------------------------------------
// test_shutdown.py: ThreadPoolShutdownTest
// ---------------------------------------------------------------------------

/// Three blocked tasks run on three threads; shutdown joins them.
#[test]
fn test_threads_terminate() {
    let (executor, tracker) = tracked(ThreadPoolExecutor::builder().max_workers(5));
    let gate = Gate::new();
    for i in 0..3 {
        executor.spawn(blocker(&gate, &i.to_string())).unwrap();
    }
    assert_eq!(executor.worker_count(), 3);
    gate.wait_for_arrivals(3);
    gate.open();
    executor.shutdown(true, false);
    assert_eq!(executor.worker_count(), 0);
    assert_eq!(
        tracker.exited(),
        3,
        "shutdown(wait=true) joined the threads"
    );
}

/// CPython's `with` block; ours: dropping the pool joins every thread.
#[test]
fn test_context_manager_shutdown() {
    let (e, tracker) = tracked(ThreadPoolExecutor::builder().max_workers(5));
    let results: Vec<i64> = e.map(tasks::abs, -5..5).map(Result::unwrap).collect();
    assert_eq!(results, [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]);
    let threads = e.worker_count();
    assert!(threads >= 1);
    drop(e);
    assert_eq!(tracker.exited(), threads);
}

/// CPython deletes the executor while `map` results are pending. A Rust
/// `Map` borrows its executor, so the pending results here are futures;
/// dropping the pool still runs them all, and joins the threads.
#[test]
fn test_del_shutdown() {
    let (executor, tracker) = tracked(ThreadPoolExecutor::builder().max_workers(5));
    let futures: Vec<TaskFuture<i64>> = (-5..5)
        .map(|v| executor.submit(tasks::abs, v).unwrap())
        .collect();
    let threads = executor.worker_count();
    drop(executor);
    assert_eq!(tracker.exited(), threads);
    for (f, v) in futures.iter().zip(-5i64..5) {
        assert_eq!(f.result(), Ok(&v.abs()));
    }
}

/// `shutdown(wait = false)`: the threads still finish the map, then exit.
#[test]
fn test_shutdown_no_wait() {
    let (executor, tracker) = tracked(ThreadPoolExecutor::builder().max_workers(5));
    let results = executor.map(tasks::abs, -5..5);
    let threads = executor.worker_count();
    executor.shutdown(false, false);
    tracker.wait_exited(threads);
    assert_eq!(executor.worker_count(), 0);
    let got: Vec<i64> = results.map(Result::unwrap).collect();
    assert_eq!(got, [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]);
}

/// The names of the threads that ran 20 tasks of `executor` (CPython checks
/// the names of whichever threads `map(abs, range(-5, 5))` started).
fn worker_names(executor: &ThreadPoolExecutor) -> Vec<String> {
    let futures: Vec<_> = (0..20)
        .map(|_| {
            executor
                .spawn(|| thread::current().name().map(str::to_owned))
                .unwrap()
        })
        .collect();
    futures
        .into_iter()
        .map(|f| f.into_result().unwrap().expect("workers are named"))
        .collect()
}

/// Names match `^SpecialPool_[0-4]$`.
#[test]
fn test_thread_names_assigned() {
    let executor = ThreadPoolExecutor::builder()
        .max_workers(5)
        .thread_name_prefix("SpecialPool")
        .build()
        .unwrap();
    let allowed: HashSet<String> = (0..5).map(|i| format!("SpecialPool_{i}")).collect();
    for name in worker_names(&executor) {
        assert!(allowed.contains(&name), "unexpected thread name {name:?}");
    }
}

/// Names match `ThreadPoolExecutor-\d+_[0-4]$`, with a number that differs
/// between pools.
#[test]
fn test_thread_names_default() {
    let parse = |name: &str| -> (u64, u64) {
        let rest = name
            .strip_prefix("ThreadPoolExecutor-")
            .unwrap_or_else(|| panic!("bad default name {name:?}"));
        let (pool, worker) = rest
            .split_once('_')
            .unwrap_or_else(|| panic!("bad default name {name:?}"));
        (
            pool.parse()
                .unwrap_or_else(|_| panic!("bad pool number in {name:?}")),
            worker
                .parse()
                .unwrap_or_else(|_| panic!("bad worker number in {name:?}")),
        )
    };
    let first = pool(5);
    let second = pool(5);
    let names = worker_names(&first);
    let pool_numbers: HashSet<u64> = names.iter().map(|n| parse(n).0).collect();
    assert_eq!(pool_numbers.len(), 1, "{names:?}");
    assert!(names.iter().all(|n| parse(n).1 < 5), "{names:?}");
    let other = worker_names(&second);
    assert_ne!(
        parse(&other[0]).0,
        *pool_numbers.iter().next().unwrap(),
        "two pools share a default prefix"
    );
}

/// gh-116682 (a child interpreter in CPython): `shutdown(wait = false,
/// cancel_futures = true)` with one running and one queued task: the queued
/// one is cancelled, the running one completes.
#[test]
fn test_cancel_futures_wait_false() {
    let executor = pool(1);
    let gate = Gate::new();
    let running = executor.spawn(blocker(&gate, "apple")).unwrap();
    let g = gate.gate_ref();
    let queued = executor.spawn(move || g.arrive("queued")).unwrap();
    gate.wait_for_arrivals(1);
    executor.shutdown(false, true);
    assert!(queued.cancelled());
    gate.open();
    assert_eq!(running.result(), Ok(&()));
    executor.shutdown(true, false);
    assert_eq!(gate.settled_arrivals(), ["apple"]);
}

/// The exact count behind the generic `test_cancel_futures`: with every
/// worker blocked, all queued tasks are cancelled.
#[test]
fn test_cancel_futures() {
    let executor = pool(5);
    let gate = Gate::new();
    let futures: Vec<_> = (0..50)
        .map(|i| executor.spawn(blocker(&gate, &i.to_string())).unwrap())
        .collect();
    gate.wait_for_arrivals(5);
    executor.shutdown(false, true);
    assert_eq!(futures.iter().filter(|f| f.cancelled()).count(), 45);
    gate.open();
    executor.shutdown(true, false);
    assert_eq!(futures.iter().filter(|f| f.result() == Ok(&())).count(), 5);
}

// ---------------------------------------------------------------------------
// executor.py: test_no_stale_references
// ---------------------------------------------------------------------------

/// Reports its drop on a channel (CPython's weakref callback).
struct MyObject(mpsc::Sender<&'static str>);

impl MyObject {
    fn my_method(&self) {}
}

impl Drop for MyObject {
    fn drop(&mut self) {
        let _ = self.0.send("collected");
    }
}

/// bpo-16284: the pool keeps no reference to the work it ran, even when
/// the future is thrown away.
#[test]
fn test_no_stale_references() {
    let executor = pool(5);
    let (tx, rx) = mpsc::channel();
    let my_object = MyObject(tx);
    // Deliberately discarding the future.
    let _ = executor.spawn(move || my_object.my_method());
    assert_eq!(
        rx.recv_timeout(SHORT_TIMEOUT),
        Ok("collected"),
        "stale reference not collected within timeout"
    );
    // The pool is still running: nothing waited for a shutdown to drop it.
    assert!(executor.worker_count() >= 1);
}

// ---------------------------------------------------------------------------
// test_init.py with closures
// ---------------------------------------------------------------------------

/// The initializer runs once in each worker thread, before its tasks.
#[test]
fn test_initializer() {
    let (executor, tracker) = tracked(ThreadPoolExecutor::builder().max_workers(2));
    let initialized_first = Arc::new(AtomicUsize::new(usize::MAX));
    let futures: Vec<_> = (0..20)
        .map(|_| {
            let (tracker, seen) = (tracker.clone(), initialized_first.clone());
            executor
                .spawn(move || {
                    // The worker running this task was initialized.
                    let n = tracker.initialized.load(Ordering::SeqCst);
                    seen.fetch_min(n, Ordering::SeqCst);
                })
                .unwrap()
        })
        .collect();
    for f in &futures {
        assert_eq!(f.result(), Ok(&()));
    }
    assert!(initialized_first.load(Ordering::SeqCst) >= 1);
    // A thread counts in worker_count() from its start, before its
    // initializer ran, so compare once the pool has joined them all.
    let threads = executor.worker_count();
    assert!((1..=2).contains(&threads));
    drop(executor);
    assert_eq!(
        tracker.initialized.load(Ordering::SeqCst),
        threads,
        "once per worker thread"
    );
    assert_eq!(tracker.exited(), threads);
}

/// A failing initializer breaks the pool: queued and later work fails with
/// `Broken`, `broken_reason()` names the cause (CPython's CRITICAL log).
#[test]
fn test_failing_initializer() {
    let executor = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(|| Err::<(), _>("ValueError: error in initializer"))
        .build()
        .unwrap();
    assert_eq!(executor.broken_reason(), None, "no worker has started yet");
    match executor.spawn(|| 1) {
        Err(TaskError::Broken { .. }) => {}
        Ok(f) => assert!(matches!(f.result(), Err(TaskError::Broken { .. }))),
        Err(other) => panic!("unexpected {other:?}"),
    }
    let reason = executor.broken_reason().expect("the pool is broken");
    assert!(
        reason.contains("ValueError: error in initializer"),
        "{reason}"
    );
    assert!(matches!(
        executor.spawn(|| 1),
        Err(TaskError::Broken { .. })
    ));
    executor.shutdown(true, false);
}

// ---------------------------------------------------------------------------
// Closures through spawn
// ---------------------------------------------------------------------------

#[test]
fn test_spawn_closure() {
    let executor = pool(5);
    let name = String::from("world");
    let f = executor.spawn(move || format!("hello {name}")).unwrap();
    assert_eq!(f.result().map(String::as_str), Ok("hello world"));
    let shared = Arc::new(AtomicUsize::new(0));
    let futures: Vec<_> = (0..20)
        .map(|_| {
            let shared = shared.clone();
            executor
                .spawn(move || shared.fetch_add(1, Ordering::SeqCst))
                .unwrap()
        })
        .collect();
    let _guard = HangGuard::new("wait for 20 closures");
    let split = wait(&futures, None, ReturnWhen::AllCompleted);
    assert_eq!(split.done.len(), 20);
    assert_eq!(shared.load(Ordering::SeqCst), 20);
    executor.shutdown(true, false);
    assert_eq!(executor.spawn(|| 1).unwrap_err(), TaskError::ShutDown);
}

/// A panic fails its future, never the worker: the same (only) thread runs
/// the next task.
#[test]
fn test_panic_keeps_worker() {
    let executor = pool(1);
    let before = executor.spawn(|| thread::current().id()).unwrap();
    let before = *before.result().unwrap();
    let failed = executor.spawn(|| -> i32 { panic!("boom {}", 7) }).unwrap();
    assert_eq!(
        failed.result(),
        Err(TaskError::Panicked {
            message: "boom 7".into()
        })
    );
    let after = executor.spawn(|| thread::current().id()).unwrap();
    assert_eq!(*after.result().unwrap(), before);
    assert_eq!(executor.worker_count(), 1);
}

// ---------------------------------------------------------------------------
// Waiting inside the pool (CPython documents this as a deadlock)
// ---------------------------------------------------------------------------

/// A task of a one-worker pool submits a task to the same pool and waits
/// for it: the waiter runs the queued task inline instead of deadlocking,
/// whichever way it waits.
#[test]
fn test_wait_on_queued_task_from_worker() {
    let executor = Arc::new(pool(1));
    let _guard = HangGuard::new("a worker waiting on a queued task of its own pool");
    let inner_pool = executor.clone();
    let outer = executor
        .spawn(move || {
            let me = thread::current().id();
            let ran_on = |f: TaskFuture<thread::ThreadId>| f.into_result().unwrap();
            // result()
            let f = inner_pool.spawn(|| thread::current().id()).unwrap();
            let by_result = *f.result().unwrap();
            // into_result()
            let by_into = ran_on(inner_pool.spawn(|| thread::current().id()).unwrap());
            // exception()
            let f = inner_pool.spawn(|| -> i32 { panic!("inner") }).unwrap();
            let exception = f.exception();
            // wait(), untimed
            let fs: Vec<_> = (0..3)
                .map(|i| inner_pool.spawn(move || i).unwrap())
                .collect();
            let split = wait(&fs, None, ReturnWhen::AllCompleted);
            // as_completed(), untimed
            let gs: Vec<_> = (0..3)
                .map(|i| inner_pool.spawn(move || i).unwrap())
                .collect();
            let yielded = as_completed(&gs, None).filter(|r| r.is_ok()).count();
            (me, by_result, by_into, exception, split.done.len(), yielded)
        })
        .unwrap();
    let (me, by_result, by_into, exception, done, yielded) = outer.into_result().unwrap();
    assert_eq!(by_result, me, "the queued task ran inline in the waiter");
    assert_eq!(by_into, me);
    assert_eq!(
        exception,
        Ok(Some(TaskError::Panicked {
            message: "inner".into()
        }))
    );
    assert_eq!(done, 3);
    assert_eq!(yielded, 3);
}

/// The same with timed waits (CPython's deadlock where a Python user would
/// write `result(timeout=...)`): on a one-worker pool the child can only
/// run inline, so each wait below would time out if it did not claim it.
#[test]
fn test_timed_wait_on_queued_task_from_worker() {
    // Long enough never to pass while the child runs inline; a wait that
    // did not claim its child would fail after it.
    const T: Duration = Duration::from_secs(5);
    let executor = Arc::new(pool(1));
    let _guard = HangGuard::new("a worker waiting with a timeout on a queued task of its pool");
    let inner = executor.clone();
    let outer = executor
        .spawn(move || {
            let me = thread::current().id();
            let f = inner.spawn(|| thread::current().id()).unwrap();
            let by_result = f.result_timeout(T).copied();
            let f = inner.spawn(|| -> i32 { panic!("inner") }).unwrap();
            let exception = f.exception_timeout(T);
            let fs: Vec<_> = (0..3).map(|i| inner.spawn(move || i).unwrap()).collect();
            let split = wait(&fs, Some(T), ReturnWhen::AllCompleted);
            let gs: Vec<_> = (0..3).map(|i| inner.spawn(move || i).unwrap()).collect();
            let yielded = as_completed(&gs, Some(T)).filter(|r| r.is_ok()).count();
            let opts = MapOptions::new().timeout(T);
            let mapped: Vec<_> = inner.map_with(|x: u32| x + 1, 0..3, opts).collect();
            let unordered = inner.map_unordered_with(|x: u32| x, 0..3, opts).count();
            (
                me,
                by_result,
                exception,
                split.done.len(),
                yielded,
                mapped,
                unordered,
            )
        })
        .unwrap();
    let (me, by_result, exception, done, yielded, mapped, unordered) = outer.into_result().unwrap();
    assert_eq!(
        by_result,
        Ok(me),
        "the queued task ran inline in the waiter"
    );
    assert_eq!(
        exception,
        Ok(Some(TaskError::Panicked {
            message: "inner".into()
        }))
    );
    assert_eq!(done, 3);
    assert_eq!(yielded, 3);
    assert_eq!(mapped, [Ok(1), Ok(2), Ok(3)]);
    assert_eq!(unordered, 3);
}

/// From a thread that is not one of the pool's, a timed wait runs nothing
/// inline: it times out while the only worker is busy.
#[test]
fn test_timed_wait_outside_the_pool_never_runs_inline() {
    let executor = pool(1);
    let gate = Gate::new();
    let busy = executor.spawn(blocker(&gate, "busy")).unwrap();
    gate.wait_for_arrivals(1);
    let queued = executor.spawn(|| thread::current().id()).unwrap();
    assert!(matches!(
        queued.result_timeout(Duration::from_millis(50)),
        Err(TaskError::TimedOut { .. })
    ));
    assert!(!queued.done(), "nothing ran inline in this thread");
    gate.open();
    assert_ne!(
        queued.result_timeout(SHORT_TIMEOUT).copied(),
        Ok(thread::current().id())
    );
    assert!(busy.result_timeout(SHORT_TIMEOUT).is_ok());
}

/// The waiter runs only the task it waits for, never unrelated queued work:
/// the unrelated task takes a lock that the waiter holds, so running it on
/// the waiter's stack would deadlock (rayon's trap).
#[test]
fn test_inline_claim_never_runs_unrelated_work() {
    let executor = Arc::new(pool(1));
    let lock = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let _guard = HangGuard::new("inline claim running unrelated work");
    let (inner_pool, inner_lock) = (executor.clone(), lock.clone());
    let outer = executor
        .spawn(move || {
            let lock2 = inner_lock.clone();
            let unrelated = inner_pool
                .spawn(move || lock2.lock().unwrap().push("unrelated"))
                .unwrap();
            let awaited = inner_pool.spawn(|| "awaited").unwrap();
            let mut held = inner_lock.lock().unwrap();
            let value = *awaited.result().unwrap();
            held.push(value);
            assert!(!unrelated.done(), "the unrelated task must still be queued");
            drop(held);
            unrelated
        })
        .unwrap();
    let unrelated = outer.into_result().unwrap();
    assert_eq!(unrelated.result(), Ok(&()));
    assert_eq!(*lock.lock().unwrap(), ["awaited", "unrelated"]);
}

/// A worker of one pool waiting on a queued task of *another* pool does not
/// run it: that task runs on its own pool's thread once one is free.
#[test]
fn test_inline_claim_only_for_own_pool() {
    let busy = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("Busy")
        .build()
        .unwrap();
    let waiter_pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("Waiter")
        .build()
        .unwrap();
    let gate = Gate::new();
    let blocked = busy.spawn(blocker(&gate, "busy")).unwrap();
    gate.wait_for_arrivals(1);
    let queued = busy
        .spawn(|| thread::current().name().map(str::to_owned))
        .unwrap();
    let q = queued.clone();
    let g = gate.gate_ref();
    let waiting = waiter_pool
        .spawn(move || {
            g.arrive("waiting");
            q.result().unwrap().clone()
        })
        .unwrap();
    gate.wait_for_arrivals(2);
    assert!(!queued.done(), "the other pool's worker must not run it");
    gate.open();
    assert_eq!(blocked.result(), Ok(&()));
    assert_eq!(waiting.into_result().unwrap().as_deref(), Some("Busy_0"));
}

/// Two tasks that must run at the same time (the first waits for a signal
/// from the second, not for its future, so no inline claim can help) both
/// start while the pool is below `max_workers`: a submit must start a
/// thread unless an idle worker will take its task (CPython's
/// `_adjust_thread_count`; `test_threads_terminate` and `test_saturation`
/// rely on it). Repeated, because the race it guards against (a submit
/// counting on a worker that is about to take an earlier task) was rare.
#[test]
fn test_concurrent_tasks_below_max_workers() {
    for i in 0..500 {
        let executor = pool(2);
        let (tx, rx) = mpsc::channel::<()>();
        let first = executor
            .spawn(move || rx.recv_timeout(Duration::from_secs(10)).is_ok())
            .unwrap();
        let second = executor.spawn(move || tx.send(()).is_ok()).unwrap();
        // The first task cannot finish before the second runs, so the second
        // submit had to start a thread.
        assert_eq!(executor.worker_count(), 2, "iteration {i}");
        assert_eq!(second.result(), Ok(&true));
        assert_eq!(first.result(), Ok(&true));
    }
}
