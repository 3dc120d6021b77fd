//! The seeds' first `ThreadPoolExecutor(max_workers=1)` snippet: `submit`
//! returns at once; `done()` tells whether a task finished; `cancel()`
//! succeeds on a task still queued and fails on a running one; `result()`
//! blocks for the value and `result_timeout()` gives up with `TimedOut`.
//!
//! ```text
//! cargo run --release --example howto_submit_result
//! ```
//!
//! The first task is held back on a channel that `main` controls, so the one
//! worker is certainly busy and the second task certainly queued.

use std::sync::mpsc;
use std::time::Duration;

use concurrent_futures::{TaskError, ThreadPoolExecutor};

/// The seeds' `get_html(times)`, at 100 ms per Python second.
fn get_html(times: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100 * times));
    println!("  get page {times} success");
    times
}

/// Bounds every wait on the held-back task: no run can hang.
const PATIENCE: Duration = Duration::from_secs(60);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The pool first: dropped last, after the channels, so an early `?`
    // releases the held task instead of waiting for it forever.
    let pool = ThreadPoolExecutor::builder().max_workers(1).build()?;
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();

    // task1 holds the only worker until `release` says go (a closure: `spawn`).
    let task1 = pool.spawn(move || {
        let _ = started_tx.send(());
        let _ = release_rx.recv();
        get_html(3)
    })?;
    // task2 is a plain function: `submit(f, args)`, Python's `submit(fn, *args)`.
    let task2 = pool.submit(get_html, 2)?;
    started.recv_timeout(PATIENCE)?;
    println!("task1 is running; its state: {:?}", task1.state());
    println!("task1.done(): {}", task1.done());

    println!("task2.cancel() on a queued task: {}", task2.cancel());
    println!(
        "  its state: {:?}, cancelled(): {}",
        task2.state(),
        task2.cancelled()
    );
    match task2.result() {
        Err(TaskError::Cancelled) => println!("  task2.result(): Err(Cancelled)"),
        other => println!("  task2.result(): {other:?}"),
    }
    println!("task1.cancel() on a running task: {}", task1.cancel());

    match task1.result_timeout(Duration::from_millis(200)) {
        Err(e @ TaskError::TimedOut { .. }) => println!("task1.result_timeout(200 ms): {e}"),
        other => println!("task1.result_timeout(200 ms): {other:?}"),
    }
    println!("releasing task1");
    release.send(())?;
    println!(
        "task1.result_timeout(60 s): {:?}",
        task1.result_timeout(PATIENCE)?
    );
    println!("task1.done(): {}; {task1:?}", task1.done());

    // An ordinary task: `result()` blocks until it is done.
    let task3 = pool.submit(get_html, 1)?;
    println!("task3.result(): {}", task3.result()?);
    Ok(())
}
