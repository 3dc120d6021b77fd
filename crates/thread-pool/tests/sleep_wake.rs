//! The sleep/wake protocol on the real pool: the two gaps the loom model
//! checks (`tests/loom.rs`) found, exercised end to end. Every wait here is
//! event-driven and bounded: a lost wake-up fails the test after
//! `PATIENCE` instead of hanging it.
//!
//! Both gaps need a thread to be preempted or to look within a window of a
//! few instructions, so these tests seldom catch them by themselves (the
//! shutdown hang, put back, failed about one round in 4,000 in release, and
//! not in 2,000 in debug); the loom models catch them every time. These
//! check the fixed paths on the real pool and its real queues.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use concurrent_futures_thread_pool::ThreadPoolExecutor;

/// How long a step that should take microseconds may take before the test
/// calls it a lost wake-up.
const PATIENCE: Duration = Duration::from_secs(20);

/// crossbeam's injector holds 63 jobs per block, and a batch steal takes
/// every job up to the end of the block the queue's head is in: two jobs
/// queued in a block's last two slots move together into the thief's deque.
/// (crossbeam's internals; if they change, the test still checks the
/// property, only less pointedly.)
const BLOCK: usize = 63;

/// A worker takes two queued jobs in one batch and runs the first, which
/// waits for the second: the second must reach the other, idle, worker.
/// While the batch is in transit no queue shows it, so that worker may go
/// to sleep; the thief wakes a sleeper once it has published the batch
/// (`Registry::published_batch`). Without that wake-up, a thief preempted
/// in the transit window leaves the second job stranded behind the first
/// (here, for ever); `batch_steal_wakes_a_sleeper` in `tests/loom.rs` finds
/// that deterministically, this runs the real pool through the batch path
/// (about 200 multi-job batches over the 30 rounds).
#[test]
fn job_moved_in_a_batch_reaches_an_idle_worker() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    // Every submit from outside the pool is one injector push.
    let mut pushed = 0usize;
    for _round in 0..30 {
        // Fill the block up to its last two slots, and let the workers take
        // every filler (so both jobs below are at the head of the queue).
        let fillers: Vec<_> = (0..(BLOCK - 2 - pushed % BLOCK) % BLOCK)
            .map(|_| pool.spawn(|| ()).unwrap())
            .collect();
        pushed += fillers.len();
        for f in fillers {
            f.result().unwrap();
        }
        assert_eq!(pushed % BLOCK, BLOCK - 2);
        let (tx, rx) = mpsc::channel::<()>();
        // Waits for the second job with a plain channel, not its future:
        // waiting on a future of the pool would run that job inline.
        let first = pool
            .spawn(move || rx.recv_timeout(PATIENCE).is_ok())
            .unwrap();
        let second = pool.spawn(move || tx.send(()).unwrap()).unwrap();
        pushed += 2;
        assert_eq!(
            first.result(),
            Ok(&true),
            "the second job stayed queued behind the first while a worker was idle"
        );
        second.result().unwrap();
    }
}

/// Tasks that keep submitting to their own pool while it shuts down are
/// refused, and `shutdown(wait)` still returns. A refused submit counts
/// itself in the gate for a moment; an idle worker that looked at the gate
/// then took it for a submit in progress and went back to sleep instead of
/// exiting, and nothing woke it once the submit backed out, so shutdown
/// waited for it for ever; now backing out wakes, as ending a submit does.
/// (`submit_racing_shutdown` in `tests/loom.rs`.)
#[test]
fn refused_submits_racing_shutdown_do_not_hang_it() {
    for _round in 0..20 {
        let pool = Arc::new(
            ThreadPoolExecutor::builder()
                .max_workers(2)
                .build()
                .unwrap(),
        );
        let running = Arc::new(Barrier::new(2));
        let submitter = {
            let (pool2, running) = (pool.clone(), running.clone());
            // Resubmits until refused, then keeps trying for a while: a
            // stream of refused submits while the other worker idles.
            move || {
                running.wait();
                while pool2.spawn(|| ()).is_ok() {}
                for _ in 0..20_000 {
                    assert!(pool2.spawn(|| ()).is_err());
                }
            }
        };
        let task = pool.spawn(submitter).unwrap();
        // A second worker, idle from then on (the first is busy).
        pool.spawn(|| ()).unwrap().result().unwrap();
        assert_eq!(pool.worker_count(), 2);
        running.wait();
        let (done_tx, done_rx) = mpsc::channel();
        let shutter = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.shutdown(true, false);
                let _ = done_tx.send(());
            })
        };
        assert!(
            done_rx.recv_timeout(PATIENCE).is_ok(),
            "shutdown(wait) hung: a worker slept through the end of a refused submit"
        );
        shutter.join().unwrap();
        task.result().unwrap();
        assert_eq!(pool.worker_count(), 0);
    }
}
