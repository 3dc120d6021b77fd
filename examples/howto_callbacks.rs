//! `future.add_done_callback(fn)`, as in the seeds: a callback added before
//! the task finishes runs when it finishes (in the worker thread), one added
//! after runs at once (in the caller); each receives the future and reads
//! its result. A callback that panics is reported and the pool carries on.
//!
//! ```text
//! cargo run --release --example howto_callbacks
//! ```

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use concurrent_futures::{TaskFuture, ThreadPoolExecutor, set_callback_panic_handler};

/// Every wait is bounded: a bug shows up as an error, never as a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// The seeds' `func(future)`: reads the result, says where it runs.
fn func(fut: &TaskFuture<String>) -> String {
    let name = fut.result().map_or_else(|e| e.to_string(), String::clone);
    let thread = thread::current().name().unwrap_or("?").to_owned();
    format!("{name}'s callback function (in thread {thread})")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .thread_name_prefix("pool")
        .build()?;
    let (report_tx, report_rx) = mpsc::channel();

    // Added before completion: the task waits until the callback is on.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let fut = pool.spawn(move || {
        go_rx.recv_timeout(LIMIT).ok();
        String::from("task0")
    })?;
    let tx = report_tx.clone();
    fut.add_done_callback(move |f| tx.send(func(f)).unwrap_or(()));
    println!("callback added; task0 done yet: {}", fut.done());
    go_tx.send(())?;
    println!("before completion: {}", report_rx.recv_timeout(LIMIT)?);

    // Added after completion: runs at once, in this (the main) thread.
    let fut = pool.spawn(|| String::from("task1"))?;
    fut.result_timeout(LIMIT)?;
    let tx = report_tx.clone();
    fut.add_done_callback(move |f| tx.send(func(f)).unwrap_or(()));
    println!("after completion:  {}", report_rx.try_recv()?);

    // A panicking callback: reported to the handler, the others still run.
    let reports = Arc::new(Mutex::new(report_tx.clone()));
    set_callback_panic_handler(move |report| {
        let line = format!("handler got: {report}");
        reports.lock().map(|tx| tx.send(line)).ok();
    });
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let fut = pool.spawn(move || {
        go_rx.recv_timeout(LIMIT).ok();
        String::from("task2")
    })?;
    fut.add_done_callback(|_| panic!("a callback that panics"));
    let tx = report_tx.clone();
    fut.add_done_callback(move |f| tx.send(func(f)).unwrap_or(()));
    go_tx.send(())?;
    println!("{}", report_rx.recv_timeout(LIMIT)?);
    println!(
        "next callback still ran: {}",
        report_rx.recv_timeout(LIMIT)?
    );

    // The pool carries on: the worker that ran the callbacks takes more work.
    let after = pool.spawn(|| 6 * 7)?;
    println!(
        "pool carries on: next task returned {}",
        after.result_timeout(LIMIT)?
    );
    Ok(())
}
