//! When a task fails. A panic fails only its future with
//! `TaskError::Panicked` (the message) and the worker carries on, on both
//! pools. A process-pool task that kills its own process
//! (`std::process::exit(3)`) fails its future with `TaskError::WorkerDied`
//! (the pid and exit status) and the pool carries on with a replacement
//! worker; CPython would break the whole pool instead.
//!
//! ```text
//! cargo run --release --example howto_faults
//! ```
//!
//! The panic messages on stderr are expected: they are the demonstration.

use std::time::Duration;

use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, ThreadPoolExecutor, task};

/// Every wait is bounded: a bug shows up as an error, never as a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// Which process ran the task.
#[task]
fn whoami(_: ()) -> u32 {
    std::process::id()
}

#[task]
fn boom(n: u32) -> u32 {
    panic!("task {n} went wrong")
}

#[task]
fn die(code: i32) -> u32 {
    std::process::exit(code)
}

fn report(what: &str, outcome: Result<u32, TaskError>) {
    match outcome {
        Ok(v) => println!("{what}: Ok({v})"),
        Err(TaskError::Panicked { message }) => println!("{what}: Panicked {{ {message:?} }}"),
        Err(e @ TaskError::WorkerDied { .. }) => println!("{what}: {e:?}\n  = {e}"),
        Err(e) => println!("{what}: unexpected {e}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One worker, so that "the same worker" and "its replacement" are clear.
    let pool = ProcessPoolExecutor::builder().max_workers(1).build()?;
    let run = |f: fn(u32) -> u32, n| pool.submit(f, n)?.result_timeout(LIMIT).copied();
    let pid = || pool.submit(whoami, ())?.result_timeout(LIMIT).copied();

    let before = pid()?;
    println!("process pool: worker pids {:?}", pool.worker_pids());
    report("boom(7)", run(boom, 7));
    let same = pid()?;
    println!(
        "after the panic: task ran in pid {same} (same worker: {})",
        same == before
    );

    report(
        "die(3)",
        pool.submit(die, 3)?.result_timeout(LIMIT).copied(),
    );
    let after = pid()?;
    println!(
        "after the death: task ran in pid {after} (replacement: {})",
        after != before
    );
    println!("process pool: worker pids {:?}", pool.worker_pids());

    // The thread pool: the same panic, and the same thread carries on.
    let threads = ThreadPoolExecutor::builder().max_workers(1).build()?;
    let thread_id = || threads.spawn(|| std::thread::current().id());
    let before = *thread_id()?.result_timeout(LIMIT)?;
    report(
        "thread pool boom(8)",
        threads.submit(boom, 8)?.result_timeout(LIMIT).copied(),
    );
    let after = *thread_id()?.result_timeout(LIMIT)?;
    println!(
        "thread pool: same worker thread afterwards: {}",
        before == after
    );
    Ok(())
}
