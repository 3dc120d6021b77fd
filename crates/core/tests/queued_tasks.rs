//! Tasks made with `TaskFuture::queued`: the future and the queue entry in
//! one allocation, counted by the core (`cell.rs`). Every way an entry can
//! end (run here or in another thread, run inline by a waiter, cancelled
//! before or after, failed, dropped unrun) with every order of the last
//! handles, including a handle cloned inside a done-callback that outlives
//! both the entry and the caller's handle.
//!
//! Also run under Miri, which checks the allocation's reference counting,
//! its frees and the unsafe accesses to the closure:
//! `cargo +nightly miri test -p concurrent-futures-core --test queued_tasks`.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use concurrent_futures_core::{QueuePolicy, QueuedTask, TaskError, TaskFuture};

/// Whether waiters may run the task inline.
struct Inline(bool);

impl QueuePolicy for Inline {
    fn may_run_inline(&self) -> bool {
        self.0
    }
}

/// Counts drops of what a closure captured.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task whose closure owns a `Dropped` and returns `value` as a `String`
/// (heap memory in the result, so a double free or a leak shows).
fn task(inline: bool, value: &str) -> (TaskFuture<String>, QueuedTask<Inline>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = Dropped(drops.clone());
    let value = value.to_owned();
    let (fut, entry) = TaskFuture::queued(Inline(inline), move || {
        let _guard = guard;
        value
    });
    (fut, entry, drops)
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn run_in_another_thread_then_drop_the_handle() {
    let (fut, entry, drops) = task(false, "done");
    let freed = AtomicUsize::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            assert!(entry.run(&|| {
                freed.fetch_add(1, Ordering::SeqCst);
            }))
        });
    });
    assert_eq!(freed.load(Ordering::SeqCst), 1);
    assert_eq!(fut.result_timeout(LONG).map(String::as_str), Ok("done"));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(fut.into_result(), Ok(String::from("done")));
}

#[test]
fn the_handle_goes_first_then_the_entry_runs() {
    let (fut, entry, drops) = task(false, "unread");
    drop(fut);
    let worker = thread::spawn(move || entry.run(&|| {}));
    assert!(worker.join().unwrap());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_waiter_runs_it_inline_and_the_entry_finds_it_claimed() {
    let (fut, entry, drops) = task(true, "inline");
    assert_eq!(fut.result_timeout(LONG).map(String::as_str), Ok("inline"));
    let freed = AtomicUsize::new(0);
    assert!(!entry.run(&|| {
        freed.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(freed.load(Ordering::SeqCst), 1);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn cancelled_while_queued_its_entry_drops_the_closure() {
    let (fut, entry, drops) = task(false, "never");
    assert!(fut.cancel());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "kept until the entry is met"
    );
    assert!(!entry.run(&|| {}));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(fut.result(), Err(TaskError::Cancelled));
}

#[test]
fn cancelled_by_the_executor() {
    let (fut, entry, drops) = task(false, "never");
    assert!(entry.cancel());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(fut.cancelled());
}

#[test]
fn failed_by_the_executor() {
    let (fut, entry, drops) = task(false, "never");
    entry.abort(TaskError::ShutDown);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(fut.result(), Err(TaskError::ShutDown));
}

#[test]
fn dropped_unrun_fails_the_future() {
    let (fut, entry, drops) = task(false, "never");
    drop(entry);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(matches!(fut.result(), Err(TaskError::Broken { .. })));
}

#[test]
fn a_panicking_task_keeps_its_payload() {
    let (fut, entry) = TaskFuture::<u8>::queued(Inline(false), || panic!("boom"));
    assert!(entry.run(&|| {}));
    assert_eq!(
        fut.result(),
        Err(TaskError::Panicked {
            message: "boom".into()
        })
    );
    assert!(fut.take_panic().is_some());
}

/// A done-callback clones its handle and sends it away; the caller's
/// handle and the entry both go before that clone, which then frees the
/// allocation alone.
#[test]
fn a_handle_cloned_in_a_callback_outlives_the_rest() {
    let (fut, entry, drops) = task(false, "kept");
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    fut.add_done_callback(move |f| tx.lock().unwrap().send(f.clone()).unwrap());
    let worker = thread::spawn(move || entry.run(&|| {}));
    assert!(worker.join().unwrap());
    drop(fut);
    let kept = rx.recv_timeout(LONG).unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(kept.into_result(), Ok(String::from("kept")));
}

/// Many tasks, their entries run by two threads while the caller reads and
/// drops the handles in another order: every result once, every closure
/// dropped once.
#[test]
fn many_tasks_two_workers() {
    let n = if cfg!(miri) { 20 } else { 2_000 };
    let drops = Arc::new(AtomicUsize::new(0));
    let (queue, jobs) = mpsc::channel::<QueuedTask<Inline>>();
    let jobs = Arc::new(Mutex::new(jobs));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let jobs = jobs.clone();
            thread::spawn(move || {
                loop {
                    let job = jobs.lock().unwrap().recv();
                    match job {
                        Ok(job) => {
                            job.run(&|| {});
                        }
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let futures: Vec<_> = (0..n)
        .map(|i| {
            let guard = Dropped(drops.clone());
            let (fut, entry) = TaskFuture::queued(Inline(false), move || {
                let _guard = guard;
                i * 2
            });
            queue.send(entry).unwrap();
            fut
        })
        .collect();
    drop(queue);
    for (i, fut) in futures.into_iter().enumerate().rev() {
        assert_eq!(fut.result_timeout(LONG), Ok(&(i * 2)));
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(drops.load(Ordering::SeqCst), n);
}

/// Handles stay `Unpin`, `Send` and `Sync` (for a `Send + Sync` result),
/// whatever the allocation carries after the future's state.
#[test]
fn handles_are_unpin_send_and_sync() {
    fn check<X: Unpin + Send + Sync>() {}
    check::<TaskFuture<String>>();
    check::<QueuedTask<Inline>>();
}
