//! The IO-bound half of the seeds' comparison, alone: 30 tasks that each
//! sleep, on a thread pool and on a process pool of 3 workers, each result
//! printed as it completes (`as_completed`), then the wall time of each
//! pool. Sleeping tasks leave the CPU free, so both pools take about
//! `tasks / workers × sleep`; the process pool adds its start-up. The
//! lesson it prints: for blocking IO the worker count sets the wall time,
//! threads are cheap, and thousands of connections want async IO.
//!
//! ```text
//! cargo run --release --example io_bound_sleep -- [SLEEP_MS] [TASKS] [WORKERS]
//! ```
//!
//! The seeds sleep 2 s per task (a minute per pool); the default here is
//! 200 ms (pass `2000` for theirs).

use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, ProcessPoolExecutor, TaskError, ThreadPoolExecutor, as_completed, task,
};

/// The seeds' `random_sleep`: blocks for `ms` milliseconds, returns it.
#[task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Written once against the trait: the same code drives both pools.
/// Returns the wall time in seconds.
fn run<E: Executor>(pool: &E, name: &str, ms: u64, tasks: usize) -> Result<f64, TaskError> {
    let start = Instant::now();
    let futures = (0..tasks)
        .map(|_| pool.submit(sleep_ms, ms))
        .collect::<Result<Vec<_>, _>>()?;
    for done in as_completed(futures, None) {
        println!("  {name}: slept {} ms", done?.result()?);
    }
    let wall = start.elapsed().as_secs_f64();
    println!("{name}: {wall:.3} s");
    Ok(wall)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let ms = args.next().transpose()?.unwrap_or(200);
    let tasks = args.next().transpose()?.unwrap_or(30) as usize;
    let workers = args.next().transpose()?.unwrap_or(3) as usize;
    let threads = ThreadPoolExecutor::builder().max_workers(workers).build()?;
    let on_threads = run(&threads, "threads", ms, tasks)?;
    let processes = ProcessPoolExecutor::builder()
        .max_workers(workers)
        .build()?;
    run(&processes, "processes", ms, tasks)?;
    let rounds = tasks.div_ceil(workers.max(1));
    println!(
        "{tasks} sleeps of {ms} ms on {workers} threads: {rounds} rounds, {:.3} s expected, \
         {on_threads:.3} s measured. The worker count, not the core count, sets the wall time \
         of blocking IO, and threads are cheap: {tasks} workers would take one round. For \
         thousands of connections use async IO (tokio), not a thread each.",
        (rounds as u64 * ms) as f64 / 1000.0,
    );
    Ok(())
}
