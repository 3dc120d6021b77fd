//! One million no-op tasks through `map`, from an endless input: none lost,
//! and memory stays flat because `map` reads the input only a bounded
//! window ahead.

use concurrent_futures::prelude::*;

fn echo(x: u64) -> u64 {
    x
}

/// Resident set size of this process, in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm has a resident field");
    pages * 4096
}

#[test]
fn one_million_noop_tasks_through_map_none_lost_memory_flat() {
    const N: u64 = 1_000_000;
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    let mut results = pool.map(echo, 0u64..); // endless input
    let mut count = 0u64;
    let mut sum = 0u64;
    let mut rss_early = 0;
    for expected in 0..N {
        let got = results.next().expect("an endless map never ends").unwrap();
        assert_eq!(got, expected, "map keeps input order");
        count += 1;
        sum += got;
        if expected == N / 10 {
            rss_early = rss_bytes();
        }
    }
    let rss_late = rss_bytes();
    drop(results);
    assert_eq!(count, N);
    assert_eq!(sum, N * (N - 1) / 2);
    let growth = rss_late.saturating_sub(rss_early);
    assert!(
        growth < 16 << 20,
        "memory grew by {} KiB between task 100,000 and task 1,000,000",
        growth >> 10
    );
}
