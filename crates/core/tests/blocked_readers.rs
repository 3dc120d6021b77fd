//! Threads blocked in `result()` and `into_result()`: the completion wakes
//! every one of them, after another reader gave up on a timeout too, and a
//! reader that waits for the callbacks is woken again once they have run.
//! (The loom models check the same wake-ups in every interleaving of one
//! reader; these run many readers on real threads.)
#![cfg(not(loom))]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use concurrent_futures_core::{TaskError, TaskFuture};

const BOUND: Duration = Duration::from_secs(10);

/// A reader that timed out leaves nothing behind that keeps the completion
/// from waking the readers that block after it, however many.
#[test]
fn readers_blocked_after_a_timed_out_one_are_all_woken() {
    let (fut, completer) = TaskFuture::<u32>::pending();
    // Nobody can complete it meanwhile: the completer is ours.
    assert!(matches!(
        fut.result_timeout(Duration::from_millis(20)),
        Err(TaskError::TimedOut { .. })
    ));
    let (tx, rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (f, tx, started_tx) = (fut.clone(), tx.clone(), started_tx.clone());
            thread::spawn(move || {
                started_tx.send(()).unwrap();
                tx.send(*f.result().unwrap()).unwrap();
            })
        })
        .collect();
    for _ in 0..4 {
        started.recv_timeout(BOUND).expect("a reader started");
    }
    completer.complete(Ok(7));
    for _ in 0..4 {
        assert_eq!(rx.recv_timeout(BOUND), Ok(7), "a reader was left blocked");
    }
    for r in readers {
        r.join().unwrap();
    }
}

/// `into_result` waits until the done-callbacks have run: its reader is
/// woken by the completion, finds the callback still running, blocks
/// again, and is woken once more when the callback ends.
#[test]
fn a_reader_waiting_for_the_callbacks_is_woken_when_they_end() {
    let (fut, completer) = TaskFuture::<String>::pending();
    let (running_tx, running) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    fut.add_done_callback(move |f| {
        assert_eq!(f.result().map(String::len), Ok(2));
        running_tx.send(()).unwrap();
        released.recv_timeout(BOUND).expect("released");
    });
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || tx.send(fut.into_result()).unwrap());
    let completing = thread::spawn(move || completer.complete(Ok("ok".to_owned())));
    running.recv_timeout(BOUND).expect("the callback runs");
    // Done, but not settled: the reader still waits.
    assert!(
        rx.try_recv().is_err(),
        "into_result returned before the callback ended"
    );
    release.send(()).unwrap();
    assert_eq!(rx.recv_timeout(BOUND), Ok(Ok("ok".to_owned())));
    assert!(completing.join().unwrap());
    reader.join().unwrap();
}
