//! The CPU-bound half of the seeds' comparison, alone: recursive `fib(n)`
//! for each `n` in a range, serially, then on a thread pool and on a
//! process pool of 3 workers, each result printed as it completes
//! (`as_completed`), then the wall time of each and what it shows: in
//! Rust, threads already compute in parallel (Python's GIL is why the
//! seeds reach for processes).
//!
//! ```text
//! cargo run --release --example cpu_bound_fib -- [FROM..TO] [WORKERS]
//! ```
//!
//! The default range is 30..38: Rust computes the seeds' 25..35 in a few
//! milliseconds, too quick to see anything (pass `25..35` for theirs).

use std::time::Instant;

use concurrent_futures::{
    Executor, ProcessPoolExecutor, TaskError, ThreadPoolExecutor, as_completed, task,
};

/// The seeds' recursive Fibonacci (`fib(1) = fib(2) = 1`).
#[task]
fn fib(n: u32) -> u64 {
    if n <= 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}

/// Written once against the trait: the same code drives both pools.
/// Returns the wall time in seconds.
fn run<E: Executor>(pool: &E, name: &str, range: std::ops::Range<u32>) -> Result<f64, TaskError> {
    let start = Instant::now();
    let futures = range
        .map(|n| pool.submit(fib, n))
        .collect::<Result<Vec<_>, _>>()?;
    for done in as_completed(futures, None) {
        println!("  {name}: exe result {}", done?.result()?);
    }
    let wall = start.elapsed().as_secs_f64();
    println!("{name}: {wall:.3} s");
    Ok(wall)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let range = match args.next() {
        Some(r) => {
            let (from, to) = r.split_once("..").ok_or("the range is FROM..TO")?;
            from.parse()?..to.parse()?
        }
        None => 30..38,
    };
    let workers = args.next().map_or(Ok(3), |w| w.parse())?;
    // The baseline: the same work, one call after another, in this thread.
    let start = Instant::now();
    for n in range.clone() {
        println!("  serial: exe result {}", fib(n));
    }
    let serial = start.elapsed().as_secs_f64();
    println!("serial: {serial:.3} s");
    let threads = ThreadPoolExecutor::builder().max_workers(workers).build()?;
    let on_threads = run(&threads, "threads", range.clone())?;
    let processes = ProcessPoolExecutor::builder()
        .max_workers(workers)
        .build()?;
    let on_processes = run(&processes, "processes", range)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (threads_x, processes_x) = (
        serial / on_threads.max(1e-9),
        serial / on_processes.max(1e-9),
    );
    println!(
        "threads {threads_x:.2}x and processes {processes_x:.2}x the serial run, with {workers} \
         workers on {cores} cores."
    );
    let parallel = cores.min(workers);
    if parallel > 1 && threads_x >= 1.0 + 0.25 * (parallel as f64 - 1.0) {
        println!(
            "Rust threads computed in parallel, as processes do: Python's GIL keeps its thread \
             pool near 1x on this work, and that, not threads, is why the seeds use processes."
        );
    } else {
        println!(
            "Too little work (or too few cores) to gain from parallelism here: try a larger \
             range, such as 30..40."
        );
    }
    Ok(())
}
