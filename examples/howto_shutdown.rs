//! `executor.shutdown(wait, cancel_futures)` and the `with` block: a pool
//! dropped at the end of a block waits for its tasks (Python's
//! `with ThreadPoolExecutor() as pool:`); `shutdown(wait=False,
//! cancel_futures=True)` cancels what has not started and returns at once;
//! a submit after shutdown is refused with a clear error.
//!
//! ```text
//! cargo run --release --example howto_shutdown
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use concurrent_futures::{Executor, ProcessPoolExecutor, ThreadPoolExecutor, task};

/// Every wait is bounded: a bug shows up as an error, never as a hang.
const LIMIT: Duration = Duration::from_secs(30);

#[task]
fn square(n: u64) -> u64 {
    n * n
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `with ThreadPoolExecutor(max_workers=2) as pool:` is a block.
    let finished = Arc::new(AtomicUsize::new(0));
    {
        let pool = ThreadPoolExecutor::builder().max_workers(2).build()?;
        for _ in 0..6 {
            let finished = Arc::clone(&finished);
            pool.spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                finished.fetch_add(1, Ordering::SeqCst);
            })?;
        }
        println!("with block: 6 tasks submitted, leaving the block");
    } // the pool is dropped here: shutdown(wait = true)
    let n = finished.load(Ordering::SeqCst);
    println!("after the block: {n} of 6 tasks finished");

    // One worker, busy with a task that waits for us; three more queued.
    let pool = ThreadPoolExecutor::builder().max_workers(1).build()?;
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let running = pool.spawn(move || {
        started_tx.send(()).ok();
        go_rx.recv_timeout(LIMIT).ok();
        "finished anyway"
    })?;
    started_rx.recv_timeout(LIMIT)?;
    let queued = (1..=3)
        .map(|n| pool.submit(square, n))
        .collect::<Result<Vec<_>, _>>()?;
    pool.shutdown(false, true); // returns at once
    println!("shutdown(wait=false, cancel_futures=true) returned");
    println!("  running task still running: {}", running.running());
    let cancelled = queued.iter().filter(|f| f.cancelled()).count();
    println!("  queued tasks cancelled: {cancelled} of {}", queued.len());
    match pool.submit(square, 4) {
        Ok(_) => println!("  submit after shutdown: accepted?!"),
        Err(e) => println!("  submit after shutdown: {e}"),
    }
    go_tx.send(())?;
    pool.shutdown(true, false); // now wait for the running task
    println!("shutdown(wait=true): running task {:?}", running.result()?);

    // Without cancel_futures, queued tasks still run before shutdown returns.
    let pool = ProcessPoolExecutor::builder().max_workers(2).build()?;
    let futures = (1..=5)
        .map(|n| pool.submit(square, n))
        .collect::<Result<Vec<_>, _>>()?;
    pool.shutdown(true, false);
    let squares = futures
        .iter()
        .map(|f| f.result_timeout(LIMIT).copied())
        .collect::<Result<Vec<_>, _>>()?;
    println!("process pool, shutdown(wait=true): all ran: {squares:?}");
    println!("  workers left: {}", pool.worker_count());
    if let Err(e) = pool.submit(square, 6) {
        println!("  submit after shutdown: {e}");
    }
    Ok(())
}
