//! The waiter's use of an executor's [`InlineRun`] hook: how long it looks
//! for the result before it blocks.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures_core::{InlineRun, TaskError, TaskFuture};

/// Runs nothing inline; asks waiters to look for `spin`; counts the asks
/// and reports each on `told`.
struct Spinning {
    spin: Duration,
    asked: AtomicUsize,
    told: Mutex<Option<mpsc::Sender<()>>>,
}

impl InlineRun for Spinning {
    fn try_run_inline(&self) -> bool {
        false
    }

    fn spin_before_blocking(&self) -> Duration {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if let Some(tell) = &*self.told.lock().unwrap() {
            let _ = tell.send(());
        }
        self.spin
    }
}

fn hook(spin: Duration) -> (Arc<Spinning>, mpsc::Receiver<()>) {
    let (tell, asked) = mpsc::channel();
    let hook = Arc::new(Spinning {
        spin,
        asked: AtomicUsize::new(0),
        told: Mutex::new(Some(tell)),
    });
    (hook, asked)
}

/// Both an untimed and a timed wait ask the hook once, and take a result
/// that another thread completes while they look (it completes once the
/// hook has been asked).
#[test]
fn waits_ask_the_hook_and_take_a_result_that_arrives_meanwhile() {
    for timed in [false, true] {
        let (spinning, asked) = hook(Duration::from_secs(1));
        let (fut, completer) = TaskFuture::<u32>::pending();
        completer.set_inline_hook(spinning.clone());
        let completing = thread::spawn(move || {
            asked
                .recv_timeout(Duration::from_secs(30))
                .expect("the waiter never asked the hook");
            completer.complete(Ok(5))
        });
        let value = if timed {
            fut.result_timeout(Duration::from_secs(30))
        } else {
            fut.result()
        };
        assert_eq!(value, Ok(&5), "timed: {timed}");
        assert!(completing.join().unwrap());
        assert_eq!(spinning.asked.load(Ordering::SeqCst), 1, "timed: {timed}");
    }
}

/// A timed wait looks no longer than its timeout, however long the hook
/// asks for: with a hook asking for an hour, a 20 ms wait times out.
#[test]
fn a_timed_wait_looks_no_longer_than_its_timeout() {
    let (spinning, _asked) = hook(Duration::from_secs(3600));
    let (fut, completer) = TaskFuture::<u32>::pending();
    completer.set_inline_hook(spinning.clone());
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let started = Instant::now();
        let outcome = fut.result_timeout(Duration::from_millis(20)).copied();
        done_tx.send(()).unwrap();
        (outcome, started.elapsed())
    });
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the timed wait kept spinning past its timeout");
    let (outcome, took) = waiter.join().unwrap();
    assert!(
        matches!(outcome, Err(TaskError::TimedOut { .. })),
        "{outcome:?}"
    );
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert_eq!(spinning.asked.load(Ordering::SeqCst), 1);
    drop(completer);
}
