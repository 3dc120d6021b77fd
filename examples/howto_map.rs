//! The seeds' `executor.map` snippet: results come back in input order,
//! whatever order the tasks finish in; the same on a process pool; and
//! `map_with(MapOptions)` for Python's `chunksize` (several items per task,
//! one message per chunk to a worker process) and `timeout`.
//!
//! ```text
//! cargo run --release --example howto_map
//! ```

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, MapOptions, ProcessPoolExecutor, TaskError, ThreadPoolExecutor, task,
};

/// The seeds' `get_html(times)`, at 100 ms per Python second. A `#[task]`,
/// so a process pool can run it too; a thread pool takes it as it is.
#[task]
fn get_html(times: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100 * times));
    println!("  get page {times} success (pid {})", std::process::id());
    times
}

/// A tiny task, where sending items in chunks saves round trips.
#[task]
fn square(x: u64) -> u64 {
    x * x
}

/// `for data in executor.map(get_html, urls): print(...)`, on any pool.
fn map_urls<E: Executor>(pool: &E, name: &str) -> Result<(), TaskError> {
    let start = Instant::now();
    println!("{name}: map(get_html, [3, 2, 4])");
    for data in pool.map(get_html, [3, 2, 4]) {
        let secs = start.elapsed().as_secs_f64();
        println!("{name}: get {} page ({secs:.1} s)", data?);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("main pid {}", std::process::id());
    let threads = ThreadPoolExecutor::builder().max_workers(2).build()?;
    map_urls(&threads, "threads")?;
    let processes = ProcessPoolExecutor::builder().max_workers(2).build()?;
    map_urls(&processes, "processes")?;

    // chunksize: 20 items in chunks of 5, 4 messages in all; still in order.
    let opts = MapOptions::new().chunksize(NonZeroUsize::new(5).unwrap());
    let squares = processes
        .map_with(square, 1..=20, opts)
        .collect::<Result<Vec<_>, _>>()?;
    println!("processes: map_with(square, 1..=20, chunksize 5): {squares:?}");

    // timeout: one deadline for the whole iteration; the item it catches
    // yields TimedOut (the task itself runs on) and the iteration ends.
    let opts = MapOptions::new().timeout(Duration::from_millis(300));
    for data in threads.map_with(get_html, [1, 5], opts) {
        match data {
            Ok(data) => println!("threads: map_with(timeout 300 ms): get {data} page"),
            Err(e) => println!("threads: map_with(timeout 300 ms): {e}"),
        }
    }
    Ok(())
}
