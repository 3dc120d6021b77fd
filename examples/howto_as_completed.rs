//! The seeds' `as_completed` snippet: tasks of different durations on a
//! pool of 2 workers, each result taken as soon as its task finishes, not
//! in submission order; then `as_completed` with a timeout, which yields the
//! tasks done in time, one `TimedOut` error, and stops.
//!
//! ```text
//! cargo run --release --example howto_as_completed
//! ```

use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{ThreadPoolExecutor, as_completed};

/// The seeds' `get_html(times)`, at 100 ms per Python second.
fn get_html(times: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100 * times));
    println!("  get page {times} success");
    times
}

/// Bounds every wait on the held-back task: no run can hang.
const PATIENCE: Duration = Duration::from_secs(60);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPoolExecutor::builder().max_workers(2).build()?;

    // urls = [3, 2, 4]; for future in as_completed(all_task): ...
    let start = Instant::now();
    let urls = [3, 2, 4];
    let all_task = urls
        .iter()
        .map(|&t| pool.submit(get_html, t))
        .collect::<Result<Vec<_>, _>>()?;
    println!("submitted {urls:?}; taking them as they complete:");
    for future in as_completed(all_task, None) {
        let data = future?.result()?.to_owned();
        println!("get {data} page ({:.1} s)", start.elapsed().as_secs_f64());
    }

    // With a timeout: one task is held back until we release it.
    let (release, release_rx) = mpsc::channel::<()>();
    let held = pool.spawn(move || {
        let _ = release_rx.recv();
        "held"
    })?;
    let quick = pool.spawn(|| "quick")?;
    let futures = [held, quick];
    println!("as_completed with a 300 ms timeout, one task held back:");
    // `&futures`: as_completed borrows the handles, so we keep them.
    for done in as_completed(&futures, Some(Duration::from_millis(300))) {
        match done {
            Ok(future) => println!("  completed: {}", future.result()?),
            Err(e) => println!("  then: {e}"),
        }
    }
    println!("releasing the held task");
    release.send(())?;
    for done in as_completed(&futures, Some(PATIENCE)) {
        println!("  completed: {}", done?.result()?);
    }
    Ok(())
}
