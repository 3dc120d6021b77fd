//! The CPU-bound half of the seeds' comparison, alone: recursive `fib(n)`
//! for each `n` in a range, on a thread pool and on a process pool of 3
//! workers, each result printed as it completes (`as_completed`), then the
//! wall time of each pool.
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
fn run<E: Executor>(pool: &E, name: &str, range: std::ops::Range<u32>) -> Result<(), TaskError> {
    let start = Instant::now();
    let futures = range
        .map(|n| pool.submit(fib, n))
        .collect::<Result<Vec<_>, _>>()?;
    for done in as_completed(futures, None) {
        println!("  {name}: exe result {}", done?.result()?);
    }
    println!("{name}: {:.3} s", start.elapsed().as_secs_f64());
    Ok(())
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
    let threads = ThreadPoolExecutor::builder().max_workers(workers).build()?;
    run(&threads, "threads", range.clone())?;
    let processes = ProcessPoolExecutor::builder()
        .max_workers(workers)
        .build()?;
    run(&processes, "processes", range)?;
    Ok(())
}
