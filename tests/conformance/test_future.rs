//! Port of CPython's `test_future.py` (`FutureTests`): futures with no
//! executor, driven through `TaskFuture::pending()` and its `Completer`.
//!
//! Not ported:
//! * `test_class_str`: Python class names.
//! * `test_get_snapshot` (3.15-dev, private `_get_snapshot()`): there is no
//!   snapshot API; `state()` and `result()` each read under the future's lock.
//!
//! Differences from CPython, asserted here:
//! * `set_result` / `set_exception` twice (`test_multiple_set_*`): a
//!   `Completer` is consumed by `complete`, so a second completion does not
//!   compile; what remains to check is that nothing else (cancel) changes a
//!   finished future, and that completing a cancelled future is refused.
//! * A panicking done-callback is reported through
//!   `set_callback_panic_handler` (CPython logs it).
//! * CANCELLED_AND_NOTIFIED does not exist (one cancelled state).

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use concurrent_futures::{FutureState, TaskError, TaskFuture, set_callback_panic_handler};

use crate::support::{Fixtures, SHORT_TIMEOUT, SUCCESSFUL_VALUE, fixture_error};

fn test_error() -> TaskError {
    TaskError::Panicked {
        message: "test".into(),
    }
}

/// Where a callback records what it saw, for the test thread to read.
type Slot<T> = Arc<Mutex<Option<T>>>;

/// Two handles of one empty slot: one for the test, one for the callback.
fn recorder<T: Send + 'static>() -> (Slot<T>, Slot<T>) {
    let slot = Arc::new(Mutex::new(None));
    (slot.clone(), slot)
}

#[test]
fn test_done_callback_with_result() {
    let (seen, slot) = recorder();
    let (f, completer) = TaskFuture::pending();
    f.add_done_callback(move |fut: &TaskFuture<i32>| {
        *slot.lock().unwrap() = Some(fut.result().copied());
    });
    assert!(
        seen.lock().unwrap().is_none(),
        "not called before completion"
    );
    completer.complete(Ok(5));
    assert_eq!(*seen.lock().unwrap(), Some(Ok(5)));
}

#[test]
fn test_done_callback_with_exception() {
    let (seen, slot) = recorder();
    let (f, completer) = TaskFuture::<i32>::pending();
    f.add_done_callback(move |fut| {
        *slot.lock().unwrap() = Some(fut.exception());
    });
    completer.complete(Err(test_error()));
    assert_eq!(*seen.lock().unwrap(), Some(Ok(Some(test_error()))));
}

#[test]
fn test_done_callback_with_cancel() {
    let (seen, slot) = recorder();
    let (f, _completer) = TaskFuture::<i32>::pending();
    f.add_done_callback(move |fut| {
        *slot.lock().unwrap() = Some(fut.cancelled());
    });
    assert!(f.cancel());
    assert_eq!(*seen.lock().unwrap(), Some(true));
}

/// The reports of panicking callbacks, collected by one handler installed
/// for the whole binary (the handler is global); tests that look at them
/// hold `CALLBACK_REPORTS_LOCK`.
fn callback_reports() -> &'static Mutex<Vec<String>> {
    static REPORTS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    REPORTS.get_or_init(|| {
        set_callback_panic_handler(|report| {
            callback_reports()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(report.to_owned())
        });
        Mutex::new(Vec::new())
    })
}

static CALLBACK_REPORTS_LOCK: Mutex<()> = Mutex::new(());

/// A callback that panics is reported; the next callback still runs.
#[test]
fn test_done_callback_raises() {
    let _serial = CALLBACK_REPORTS_LOCK
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    callback_reports().lock().unwrap().clear();

    let (raising_was_called, raising_slot) = recorder();
    let (fn_was_called, fn_slot) = recorder();
    let (f, completer) = TaskFuture::<i32>::pending();
    f.add_done_callback(move |_| {
        *raising_slot.lock().unwrap() = Some(true);
        panic!("doh!");
    });
    f.add_done_callback(move |_| {
        *fn_slot.lock().unwrap() = Some(true);
    });
    assert!(completer.complete(Ok(5)));
    assert_eq!(*raising_was_called.lock().unwrap(), Some(true));
    assert_eq!(*fn_was_called.lock().unwrap(), Some(true));
    assert_eq!(f.result(), Ok(&5), "the future is unharmed");

    let reports = callback_reports().lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("doh!"), "{reports:?}");
    assert!(
        reports[0].contains("exception calling callback for <TaskFuture at 0x"),
        "{reports:?}"
    );
}

#[test]
fn test_done_callback_already_successful() {
    let (seen, slot) = recorder();
    let f = TaskFuture::ready(5);
    f.add_done_callback(move |fut: &TaskFuture<i32>| {
        *slot.lock().unwrap() = Some(fut.result().copied());
    });
    assert_eq!(*seen.lock().unwrap(), Some(Ok(5)), "ran at once");
}

#[test]
fn test_done_callback_already_failed() {
    let (seen, slot) = recorder();
    let f = TaskFuture::<i32>::failed(test_error());
    f.add_done_callback(move |fut| {
        *slot.lock().unwrap() = Some(fut.exception());
    });
    assert_eq!(*seen.lock().unwrap(), Some(Ok(Some(test_error()))));
}

#[test]
fn test_done_callback_already_cancelled() {
    let (seen, slot) = recorder();
    let (f, _completer) = TaskFuture::<i32>::pending();
    assert!(f.cancel());
    f.add_done_callback(move |fut| {
        *slot.lock().unwrap() = Some(fut.cancelled());
    });
    assert_eq!(*seen.lock().unwrap(), Some(true));
}

/// A callback added to a done future runs at once; if it panics, the
/// panic is reported and does not reach the caller.
#[test]
fn test_done_callback_raises_already_succeeded() {
    let _serial = CALLBACK_REPORTS_LOCK
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    callback_reports().lock().unwrap().clear();

    let f = TaskFuture::ready(5);
    f.add_done_callback(|_| panic!("doh!"));

    let reports = callback_reports().lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("exception calling callback for"),
        "{reports:?}"
    );
    assert!(reports[0].contains("doh!"), "{reports:?}");
    assert!(
        reports[0].contains("state=finished returned i32"),
        "{reports:?}"
    );
}

/// Checks `<TaskFuture at 0x[0-9a-f]+ state=...>`.
#[track_caller]
fn assert_repr<T>(f: &TaskFuture<T>, state: &str) {
    let repr = format!("{f:?}");
    let rest = repr
        .strip_prefix("<TaskFuture at 0x")
        .unwrap_or_else(|| panic!("bad repr {repr:?}"));
    let (address, tail) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("bad repr {repr:?}"));
    assert!(
        !address.is_empty()
            && address
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "bad address in {repr:?}"
    );
    assert_eq!(tail, format!("state={state}>"), "repr {repr:?}");
}

#[test]
fn test_repr() {
    let fx = Fixtures::new();
    assert_repr(&fx.pending, "pending");
    assert_repr(&fx.running, "running");
    assert_repr(&fx.cancelled, "cancelled");
    assert_repr(&fx.exception, "finished raised Panicked");
    assert_repr(&fx.successful, "finished returned i64");
    assert_repr(
        &TaskFuture::<()>::failed(TaskError::ShutDown),
        "finished raised ShutDown",
    );
}

#[test]
fn test_cancel() {
    let (f1, _c1) = TaskFuture::<i32>::pending();
    let (f2, c2) = TaskFuture::<i32>::pending();
    assert!(c2.set_running());
    let (f3, _c3) = TaskFuture::<i32>::pending();
    assert!(f3.cancel());
    let f5 = TaskFuture::<i32>::failed(fixture_error());
    let f6 = TaskFuture::ready(5);

    assert!(f1.cancel());
    assert_eq!(f1.state(), FutureState::Cancelled);

    assert!(!f2.cancel());
    assert_eq!(f2.state(), FutureState::Running);

    // Cancelling a cancelled future succeeds again and changes nothing
    // (CPython's CANCELLED and CANCELLED_AND_NOTIFIED cases).
    assert!(f3.cancel());
    assert_eq!(f3.state(), FutureState::Cancelled);

    assert!(!f5.cancel());
    assert_eq!(f5.state(), FutureState::Finished);
    assert_eq!(f5.exception(), Ok(Some(fixture_error())));

    assert!(!f6.cancel());
    assert_eq!(f6.state(), FutureState::Finished);
    assert_eq!(f6.result(), Ok(&5));

    // The executor's side sees the cancel: Python's
    // set_running_or_notify_cancel() returns False.
    let (f7, c7) = TaskFuture::<i32>::pending();
    assert!(f7.cancel());
    assert!(c7.is_cancelled());
    assert!(!c7.set_running());
    assert_eq!(f7.state(), FutureState::Cancelled);
}

#[test]
fn test_cancelled() {
    let fx = Fixtures::new();
    assert!(!fx.pending.cancelled());
    assert!(!fx.running.cancelled());
    assert!(fx.cancelled.cancelled());
    assert!(!fx.exception.cancelled());
    assert!(!fx.successful.cancelled());
}

#[test]
fn test_done() {
    let fx = Fixtures::new();
    assert!(!fx.pending.done());
    assert!(!fx.running.done());
    assert!(fx.cancelled.done());
    assert!(fx.exception.done());
    assert!(fx.successful.done());
}

#[test]
fn test_running() {
    let fx = Fixtures::new();
    assert!(!fx.pending.running());
    assert!(fx.running.running());
    assert!(!fx.cancelled.running());
    assert!(!fx.exception.running());
    assert!(!fx.successful.running());
}

#[test]
fn test_result_with_timeout() {
    let fx = Fixtures::new();
    let zero = Duration::ZERO;
    assert!(matches!(
        fx.pending.result_timeout(zero),
        Err(TaskError::TimedOut { .. })
    ));
    assert!(matches!(
        fx.running.result_timeout(zero),
        Err(TaskError::TimedOut { .. })
    ));
    assert_eq!(fx.cancelled.result_timeout(zero), Err(TaskError::Cancelled));
    assert_eq!(fx.exception.result_timeout(zero), Err(fixture_error()));
    assert_eq!(fx.successful.result_timeout(zero), Ok(&SUCCESSFUL_VALUE));
}

/// Another thread completes the future while this one waits. (CPython
/// sleeps 1 s to be sure the main thread is blocked; either order must
/// give 42, so we only line the threads up with a barrier.)
#[test]
fn test_result_with_success() {
    let (f1, completer) = TaskFuture::pending();
    let barrier = Arc::new(Barrier::new(2));
    let t = {
        let barrier = barrier.clone();
        thread::spawn(move || {
            barrier.wait();
            completer.complete(Ok(42));
        })
    };
    barrier.wait();
    assert_eq!(f1.result_timeout(SHORT_TIMEOUT), Ok(&42));
    t.join().unwrap();
}

#[test]
fn test_result_with_cancel() {
    let (f1, _completer) = TaskFuture::<i32>::pending();
    let barrier = Arc::new(Barrier::new(2));
    let t = {
        let (f1, barrier) = (f1.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            assert!(f1.cancel());
        })
    };
    barrier.wait();
    assert_eq!(f1.result_timeout(SHORT_TIMEOUT), Err(TaskError::Cancelled));
    t.join().unwrap();
}

#[test]
fn test_exception_with_timeout() {
    let fx = Fixtures::new();
    let zero = Duration::ZERO;
    assert!(matches!(
        fx.pending.exception_timeout(zero),
        Err(TaskError::TimedOut { .. })
    ));
    assert!(matches!(
        fx.running.exception_timeout(zero),
        Err(TaskError::TimedOut { .. })
    ));
    assert_eq!(
        fx.cancelled.exception_timeout(zero),
        Err(TaskError::Cancelled)
    );
    assert_eq!(
        fx.exception.exception_timeout(zero),
        Ok(Some(fixture_error()))
    );
    assert_eq!(fx.successful.exception_timeout(zero), Ok(None));
}

#[test]
fn test_exception_with_success() {
    let (f1, completer) = TaskFuture::<i32>::pending();
    let barrier = Arc::new(Barrier::new(2));
    let t = {
        let barrier = barrier.clone();
        thread::spawn(move || {
            barrier.wait();
            completer.complete(Err(fixture_error()));
        })
    };
    barrier.wait();
    assert_eq!(
        f1.exception_timeout(SHORT_TIMEOUT),
        Ok(Some(fixture_error()))
    );
    t.join().unwrap();
}

/// CPython: a second `set_result` raises `InvalidStateError` and the first
/// result stays. Ours: `complete` consumes the `Completer`, so there is no
/// second one; a finished future cannot be cancelled, and a completion that
/// comes after a cancel is refused and dropped.
#[test]
fn test_multiple_set_result() {
    let (f, completer) = TaskFuture::pending();
    assert!(completer.complete(Ok(1)));
    assert!(!f.cancel());
    assert!(f.done());
    assert_eq!(f.result(), Ok(&1));
    assert_eq!(format!("{f:?}").split_once(' ').unwrap().0, "<TaskFuture");
    assert!(format!("{f:?}").ends_with("state=finished returned i32>"));

    let (f, completer) = TaskFuture::<i32>::pending();
    assert!(f.cancel());
    assert!(!completer.complete(Ok(2)), "completing a cancelled future");
    assert_eq!(f.result(), Err(TaskError::Cancelled));
}

#[test]
fn test_multiple_set_exception() {
    let (f, completer) = TaskFuture::<i32>::pending();
    assert!(completer.complete(Err(fixture_error())));
    assert!(!f.cancel());
    assert_eq!(f.exception(), Ok(Some(fixture_error())));
    assert!(format!("{f:?}").ends_with("state=finished raised Panicked>"));
}

// --- Beyond CPython's file: semantics the design brief names. ---

/// A `Completer` dropped without completing fails its future as broken, so
/// no waiter hangs on a task an executor lost.
#[test]
fn test_dropped_completer_breaks_future() {
    let (f, completer) = TaskFuture::<i32>::pending();
    assert!(completer.set_running());
    drop(completer);
    assert!(matches!(f.result(), Err(TaskError::Broken { .. })));
}

/// `result()` can be called many times, from many threads at once.
#[test]
fn test_result_from_many_threads() {
    let (f, completer) = TaskFuture::pending();
    let barrier = Arc::new(Barrier::new(9));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                (0..100)
                    .map(|_| f.result_timeout(SHORT_TIMEOUT).map(String::len))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    barrier.wait();
    completer.complete(Ok(String::from("shared")));
    for r in readers {
        assert!(r.join().unwrap().iter().all(|n| *n == Ok(6)));
    }
}

/// Callbacks run once each, in the order added, in the thread that
/// completes the future; a cancel runs them in the cancelling thread.
#[test]
fn test_done_callback_order_and_thread() {
    let (tx, rx) = mpsc::channel();
    let (f, completer) = TaskFuture::<i32>::pending();
    for i in 0..3 {
        let tx = tx.clone();
        f.add_done_callback(move |_| tx.send((i, thread::current().id())).unwrap());
    }
    let completing = thread::spawn(move || {
        completer.complete(Ok(1));
        thread::current().id()
    });
    let completing_id = completing.join().unwrap();
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(
        got,
        [(0, completing_id), (1, completing_id), (2, completing_id)]
    );

    let (f, _completer) = TaskFuture::<i32>::pending();
    let tx2 = tx.clone();
    f.add_done_callback(move |_| tx2.send((9, thread::current().id())).unwrap());
    let cancelling = thread::spawn(move || {
        assert!(f.cancel());
        assert!(f.cancel(), "a second cancel does not run callbacks again");
        thread::current().id()
    });
    let cancelling_id = cancelling.join().unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [(9, cancelling_id)]);
}

/// `into_result` moves the value out only through the last handle; with
/// other handles alive it reports how many, and the value stays readable.
#[test]
fn test_into_result_shared() {
    let f = TaskFuture::ready(String::from("owned"));
    let other = f.clone();
    let third = f.clone();
    assert_eq!(f.into_result(), Err(TaskError::Shared { other_handles: 2 }));
    drop(third);
    assert_eq!(other.result().map(String::as_str), Ok("owned"));
    assert_eq!(other.into_result(), Ok(String::from("owned")));
}
