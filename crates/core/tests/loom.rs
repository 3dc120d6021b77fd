//! Model checks of the future state machine with loom: every interleaving
//! (up to a preemption bound) of completion, cancellation, callback
//! registration and waiting.
//!
//! Run with (`--features stream` adds the `as_completed_stream` model):
//! `RUSTFLAGS="--cfg loom" cargo test -p concurrent-futures-core --test loom --features stream --release --target-dir target/loom`
#![cfg(loom)]

use concurrent_futures_core::{ReturnWhen, TaskError, TaskFuture, as_completed, wait};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// `complete` racing `cancel`: exactly one wins, and every reader agrees.
#[test]
fn complete_vs_cancel() {
    model(|| {
        let (fut, completer) = TaskFuture::<u32>::pending();
        let canceller = fut.clone();
        let t = thread::spawn(move || canceller.cancel());
        let completed = completer.complete(Ok(7));
        let cancelled = t.join().unwrap();
        assert!(
            completed != cancelled,
            "exactly one of complete/cancel wins"
        );
        if cancelled {
            assert_eq!(fut.result(), Err(TaskError::Cancelled));
            assert!(fut.cancelled());
        } else {
            assert_eq!(fut.result(), Ok(&7));
            assert!(!fut.cancelled());
        }
        assert!(fut.done());
    });
}

/// The executor's `set_running` racing `cancel`: a cancelled task never
/// starts, a started task is never cancelled.
#[test]
fn set_running_vs_cancel() {
    model(|| {
        let (fut, completer) = TaskFuture::<u32>::pending();
        let canceller = fut.clone();
        let t = thread::spawn(move || canceller.cancel());
        let started = completer.set_running();
        if started {
            completer.complete(Ok(1));
        } else {
            drop(completer);
        }
        let cancelled = t.join().unwrap();
        assert!(started != cancelled);
        assert_eq!(fut.result().is_ok(), started);
    });
}

/// A callback added while the future completes runs exactly once, and sees
/// the result.
#[test]
fn callback_registration_vs_completion() {
    model(|| callback_runs_once(false));
}

/// The model of `callback_registration_vs_completion`, the completion from
/// PENDING (under the lock) or from RUNNING (without it when nobody
/// watches).
fn callback_runs_once(running: bool) {
    let (fut, completer) = TaskFuture::<u32>::pending();
    if running {
        assert!(completer.set_running());
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let t = thread::spawn(move || completer.complete(Ok(3)));
    let c = calls.clone();
    fut.add_done_callback(move |f| {
        assert_eq!(f.result(), Ok(&3));
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert!(t.join().unwrap());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(fut.into_result(), Ok(3));
}

/// A thread blocked in `result()` is always woken by the completion (a lost
/// wake-up would show as a deadlock, which loom reports).
#[test]
fn waiter_wake_up() {
    model(|| blocked_reader_is_woken(false));
}

/// The model of `waiter_wake_up`, the completion from PENDING (under the
/// lock) or from RUNNING (without it when nobody watches).
fn blocked_reader_is_woken(running: bool) {
    let (fut, completer) = TaskFuture::<u32>::pending();
    if running {
        assert!(completer.set_running());
    }
    let reader = fut.clone();
    let t = thread::spawn(move || *reader.result().unwrap());
    completer.complete(Ok(9));
    assert_eq!(t.join().unwrap(), 9);
}

/// `into_result` waits until the callbacks (which hold a temporary handle)
/// have run, then moves the value out.
#[test]
fn into_result_vs_callbacks() {
    model(|| {
        let (fut, completer) = TaskFuture::<String>::pending();
        fut.add_done_callback(|f| assert_eq!(f.result().map(String::len), Ok(2)));
        let t = thread::spawn(move || completer.complete(Ok("ok".to_owned())));
        assert_eq!(fut.into_result(), Ok("ok".to_owned()));
        t.join().unwrap();
    });
}

/// `wait(AllCompleted)` over two futures completed by two other threads.
#[test]
fn wait_all_completed() {
    model(|| {
        let (a, ca) = TaskFuture::<u8>::pending();
        let (b, cb) = TaskFuture::<u8>::pending();
        let t1 = thread::spawn(move || ca.complete(Ok(1)));
        let t2 = thread::spawn(move || {
            cb.complete(Err(TaskError::Panicked {
                message: "x".into(),
            }))
        });
        let split = wait([a, b], None, ReturnWhen::AllCompleted);
        assert_eq!(split.done.len(), 2);
        assert!(split.not_done.is_empty());
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

/// `wait(FirstCompleted)` returns once either future is done, with it in
/// the done set.
#[test]
fn wait_first_completed_with_cancel() {
    model(|| {
        let (a, ca) = TaskFuture::<u8>::pending();
        let (b, _cb) = TaskFuture::<u8>::pending();
        let canceller = b.clone();
        let t1 = thread::spawn(move || ca.complete(Ok(1)));
        let t2 = thread::spawn(move || canceller.cancel());
        let split = wait([a, b], None, ReturnWhen::FirstCompleted);
        assert!(!split.done.is_empty());
        assert!(split.done.iter().all(|f| f.done()));
        t1.join().unwrap();
        assert!(t2.join().unwrap());
    });
}

/// `as_completed` yields each future exactly once as it completes.
#[test]
fn as_completed_yields_each_once() {
    model(|| {
        let (a, ca) = TaskFuture::<u8>::pending();
        let (b, cb) = TaskFuture::<u8>::pending();
        let t = thread::spawn(move || {
            cb.complete(Ok(2));
            ca.complete(Ok(1));
        });
        assert_yields_one_and_two([a, b]);
        t.join().unwrap();
    });
}

/// `as_completed` over two futures yields their values, 1 and 2, once
/// each, in either order.
fn assert_yields_one_and_two(futures: [TaskFuture<u8>; 2]) {
    let mut seen: Vec<u8> = as_completed(futures, None)
        .map(|f| *f.unwrap().result().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, [1, 2]);
}

/// `as_completed_stream` polled by an async task while another thread
/// completes the futures: every completion wakes the task (the waker is
/// stored under the lock that `notify` pushes under), so `block_on`
/// always finishes; a lost wake-up would show as a deadlock.
#[cfg(feature = "stream")]
#[test]
fn as_completed_stream_wakes_its_task() {
    use std::pin::Pin;

    use concurrent_futures_core::as_completed_stream;
    use futures_core::Stream;

    model(|| {
        let (a, ca) = TaskFuture::<u8>::pending();
        let (b, cb) = TaskFuture::<u8>::pending();
        let t = thread::spawn(move || {
            ca.complete(Ok(1));
            cb.complete(Ok(2));
        });
        let mut done = as_completed_stream([a, b]);
        let mut seen = Vec::new();
        while let Some(f) =
            loom::future::block_on(std::future::poll_fn(|cx| Pin::new(&mut done).poll_next(cx)))
        {
            seen.push(*f.result().unwrap());
        }
        seen.sort();
        assert_eq!(seen, [1, 2]);
        t.join().unwrap();
    });
}

/// Counts a closure's runs and drops (its captures).
struct Tally {
    runs: AtomicUsize,
    drops: AtomicUsize,
}

/// Dropped with the closure that captured it.
struct DropGuard(Arc<Tally>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Lets any thread run a queued task inline.
struct Anywhere;

impl concurrent_futures_core::QueuePolicy for Anywhere {
    fn may_run_inline(&self) -> bool {
        true
    }
}

/// A queued task returning `value` whose closure counts its runs and, by
/// what it captured, its drops.
fn tallied_task(
    value: u32,
) -> (
    TaskFuture<u32>,
    concurrent_futures_core::QueuedTask<Anywhere>,
    Arc<Tally>,
) {
    let tally = Arc::new(Tally {
        runs: AtomicUsize::new(0),
        drops: AtomicUsize::new(0),
    });
    let guard = DropGuard(tally.clone());
    let counted = tally.clone();
    let (fut, task) = TaskFuture::queued(Anywhere, move || {
        let _guard = guard;
        counted.runs.fetch_add(1, Ordering::SeqCst);
        value
    });
    (fut, task, tally)
}

/// A task made with `TaskFuture::queued`: the worker that pops its entry,
/// a waiter that runs it inline and a `cancel` all race for it. The
/// closure runs at most once, is dropped exactly once, whoever wins; the
/// outcome matches (cancelled and never run, or run and finished); the
/// worker's `when_free` is called exactly once.
#[test]
fn queued_run_vs_inline_vs_cancel() {
    model(|| {
        let (fut, task, tally) = tallied_task(7);
        let worker = thread::spawn(move || {
            let freed = AtomicUsize::new(0);
            task.run(&|| {
                freed.fetch_add(1, Ordering::SeqCst);
            });
            freed.load(Ordering::SeqCst)
        });
        let canceller = fut.clone();
        let t = thread::spawn(move || canceller.cancel());
        let outcome = fut.result().copied();
        let cancelled = t.join().unwrap();
        assert_eq!(worker.join().unwrap(), 1, "when_free once");
        assert_eq!(
            tally.drops.load(Ordering::SeqCst),
            1,
            "closure dropped once"
        );
        match outcome {
            Ok(v) => {
                assert_eq!(v, 7);
                assert!(!cancelled);
                assert_eq!(tally.runs.load(Ordering::SeqCst), 1);
            }
            Err(e) => {
                assert_eq!(e, TaskError::Cancelled);
                assert!(cancelled);
                assert_eq!(tally.runs.load(Ordering::SeqCst), 0);
            }
        }
    });
}

/// A queued task's entry dropped unrun (its queue torn down) while a
/// waiter blocks on it: the waiter wakes with `Broken`, or ran it inline
/// first; the closure is dropped exactly once either way.
#[test]
fn queued_entry_dropped_vs_waiter() {
    model(|| {
        let (fut, task, tally) = tallied_task(1);
        let t = thread::spawn(move || drop(task));
        let outcome = fut.result().copied();
        t.join().unwrap();
        assert_eq!(tally.drops.load(Ordering::SeqCst), 1);
        match outcome {
            Ok(1) => assert_eq!(tally.runs.load(Ordering::SeqCst), 1),
            Err(TaskError::Broken { .. }) => assert_eq!(tally.runs.load(Ordering::SeqCst), 0),
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// A completion from RUNNING (no lock when nobody watches) racing a
/// callback's registration: the callback runs exactly once and sees the
/// result, whichever comes first.
#[test]
fn running_completion_vs_callback() {
    model(|| callback_runs_once(true));
}

/// A completion from RUNNING racing a thread that blocks in `result()`:
/// the thread is always woken (a lost wake-up deadlocks the model).
#[test]
fn running_completion_vs_blocked_reader() {
    model(|| blocked_reader_is_woken(true));
}

/// A completion from RUNNING racing `wait` and `as_completed` waiters.
#[test]
fn running_completion_vs_waiters() {
    model(|| {
        let (a, ca) = TaskFuture::<u8>::pending();
        let (b, cb) = TaskFuture::<u8>::pending();
        assert!(ca.set_running());
        assert!(cb.set_running());
        let t = thread::spawn(move || {
            ca.complete(Ok(1));
            cb.complete(Ok(2));
        });
        let split = wait([a.clone()], None, ReturnWhen::AllCompleted);
        assert_eq!(split.done.len(), 1);
        assert_yields_one_and_two([a, b]);
        t.join().unwrap();
    });
}

/// A completion from RUNNING racing an async task awaiting the future
/// (its waker is registered under the lock, flagged first).
#[test]
fn running_completion_vs_await() {
    model(|| {
        let (fut, completer) = TaskFuture::<u8>::pending();
        assert!(completer.set_running());
        let t = thread::spawn(move || completer.complete(Ok(5)));
        assert_eq!(loom::future::block_on(fut.into_future()), Ok(5));
        t.join().unwrap();
    });
}
