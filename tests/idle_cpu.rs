//! An idle pool's worker threads use no CPU: they sleep on a condition
//! variable, they do not spin or poll. Read from /proc, with a generous
//! bound.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use concurrent_futures::ThreadPoolExecutor;

/// utime + stime, in clock ticks, of every thread of this process whose
/// name starts with `prefix`.
fn cpu_ticks_of_threads(prefix: &str) -> (usize, u64) {
    let mut threads = 0;
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let dir = entry.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the ")" that closes the name: state is field 3, utime
        // is field 14 and stime field 15.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: u64 = fields[11].parse().unwrap();
        let stime: u64 = fields[12].parse().unwrap();
        threads += 1;
        ticks += utime + stime;
    }
    (threads, ticks)
}

#[test]
fn idle_workers_use_no_cpu() {
    const WORKERS: usize = 4;
    let pool = ThreadPoolExecutor::builder()
        .max_workers(WORKERS)
        .thread_name_prefix("idlecpu")
        .build()
        .unwrap();
    // Start every worker: each task waits until all have started.
    let barrier = Arc::new(Barrier::new(WORKERS));
    let futures: Vec<_> = (0..WORKERS)
        .map(|_| {
            let b = barrier.clone();
            pool.spawn(move || {
                b.wait();
            })
            .unwrap()
        })
        .collect();
    for f in &futures {
        f.result_timeout(Duration::from_secs(30)).unwrap();
    }
    assert_eq!(pool.worker_count(), WORKERS);

    let (threads, before) = cpu_ticks_of_threads("idlecpu_");
    assert_eq!(threads, WORKERS);
    // Measuring idleness is the point here: let the pool sit for a second.
    std::thread::sleep(Duration::from_secs(1));
    let (_, after) = cpu_ticks_of_threads("idlecpu_");
    // A spinning thread would burn ~100 ticks a second; allow 5 in all
    // (50 ms at 100 Hz) for the short spin before sleeping and for noise.
    assert!(
        after - before <= 5,
        "{WORKERS} idle workers used {} ticks of CPU in one idle second",
        after - before
    );
}
