//! The thread pool's cost per task as the worker count grows, side by side
//! with rayon (`ThreadPool::spawn` + a crossbeam channel) and the
//! `threadpool` crate (`execute` + a crossbeam channel), and the seeds' fib
//! workload's speed-up over serial against rayon's `par_iter`.
//!
//! ```text
//! cargo bench --bench scaling
//! CF_BENCH_WORKERS=1,2,4,8,16 target/release/deps/scaling-<hash> --bench   # no cargo needed
//! ```
//!
//! For each worker count:
//!
//! * **one submitter**: the main thread submits N no-op tasks, then takes
//!   every result in submission order (ours: `submit` and the futures;
//!   the peers: every task sends its value down one channel);
//! * **one submitter per worker**: as many threads as workers each submit
//!   N / workers tasks and take their own results (the peers: a channel per
//!   submitter), so submitters contend on the pool's queues;
//! * **fib**: fib(n) for every n in `CF_BENCH_FIB` (default 24..=31),
//!   ours through `map`, rayon through `par_iter` on a pool of the same
//!   size, against the serial loop: speed-up over serial, and ours over
//!   rayon's time.
//!
//! Every variant runs once per run, the order rotated by one each run; a
//! ratio is taken within each run, and the report gives the medians over
//! `CF_BENCH_RUNS` runs (after one warm-up). The report is printed and
//! written to `target/scaling_summary.md` (under `CARGO_TARGET_DIR` if set).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CF_BENCH_WORKERS` | 1 to the CPU count | worker counts, comma-separated |
//! | `CF_BENCH_RUNS` | 5 | paired runs (after one warm-up run) |
//! | `CF_BENCH_TASKS` | 200000 | no-op tasks per run and worker count |
//! | `CF_BENCH_FIB` | 24..=31 | the fib inputs, `a..=b` |
//! | `CF_BENCH_ONLY` | all | `ours`, `rayon` or `threadpool`: run the no-op tasks on that one alone and skip fib (for a profiler); no report |
//!
//! Under `cargo test --benches` it runs once with tiny sizes, as a smoke
//! test, and writes no report.

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concurrent_futures::ThreadPoolExecutor;
use rayon::prelude::*;

use common::{env_number, fmt_num, fmt_ratio, load_average, median, paired, write_machine_rows};

const PEER_CRATES: &[&str] = &["rayon", "rayon-core", "threadpool", "crossbeam-channel"];

/// Never inlined, so the serial loop, our pool and rayon's run the same
/// machine code: inlined at each call site, its code (and its speed)
/// differed from one caller to the next.
#[inline(never)]
fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// The three pools of one worker count.
struct Pools {
    workers: usize,
    ours: Arc<ThreadPoolExecutor>,
    rayon: Arc<rayon::ThreadPool>,
    threadpool: threadpool::ThreadPool,
}

impl Pools {
    fn new(workers: usize) -> Pools {
        Pools {
            workers,
            ours: Arc::new(
                ThreadPoolExecutor::builder()
                    .max_workers(workers)
                    .build()
                    .expect("a thread pool"),
            ),
            rayon: Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .build()
                    .expect("a rayon pool"),
            ),
            threadpool: threadpool::ThreadPool::new(workers),
        }
    }
}

/// Who runs the no-op tasks.
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Ours,
    Rayon,
    Threadpool,
}

const PEERS: [Peer; 3] = [Peer::Ours, Peer::Rayon, Peer::Threadpool];

/// `n` no-op tasks from this thread, then their results; the sum, checked
/// by the caller.
fn submit_and_take(pools: &Pools, peer: Peer, first: u64, n: u64) -> u64 {
    match peer {
        Peer::Ours => {
            let futures: Vec<_> = (first..first + n)
                .map(|i| pools.ours.submit(black_box, i).expect("submit"))
                .collect();
            futures
                .iter()
                .map(|f| *f.result().expect("a no-op task"))
                .sum()
        }
        Peer::Rayon | Peer::Threadpool => {
            let (tx, rx) = crossbeam_channel::unbounded();
            for i in first..first + n {
                let tx = tx.clone();
                let job = move || tx.send(black_box(i)).expect("receiver alive");
                if peer == Peer::Rayon {
                    pools.rayon.spawn(job);
                } else {
                    pools.threadpool.execute(job);
                }
            }
            (0..n).map(|_| rx.recv().expect("a result")).sum()
        }
    }
}

/// ns per task with `submitters` threads sharing `tasks` tasks.
fn per_task(pools: &Pools, peer: Peer, submitters: usize, tasks: u64) -> f64 {
    let each = tasks / submitters as u64;
    let start = Instant::now();
    let sum: u64 = if submitters == 1 {
        submit_and_take(pools, peer, 0, each)
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..submitters as u64)
                .map(|k| s.spawn(move || submit_and_take(pools, peer, k * each, each)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a submitter"))
                .sum()
        })
    };
    let elapsed = start.elapsed();
    let n = each * submitters as u64;
    assert_eq!(sum, n * (n - 1) / 2);
    elapsed.as_nanos() as f64 / n as f64
}

/// Wall time of fib over `inputs`: serially, on our pool, on rayon's.
fn fib_times(pools: &Pools, inputs: &[u32]) -> [Duration; 3] {
    let expected: u64 = inputs.iter().map(|&n| fib(n)).sum();
    // The no-op runs before this freed hundreds of thousands of small
    // blocks, and glibc sorts them out at the next allocation of a
    // kilobyte or more: a pause of milliseconds in whichever variant
    // allocates first (ours: `map`'s window). Taken here, untimed.
    drop(black_box(Vec::<u8>::with_capacity(1 << 16)));
    let t = Instant::now();
    let serial: u64 = inputs.iter().map(|&n| fib(black_box(n))).sum();
    let serial_time = t.elapsed();
    let t = Instant::now();
    let ours: u64 = pools
        .ours
        .map(fib, inputs.iter().copied())
        .map(|r| r.expect("fib"))
        .sum();
    let ours_time = t.elapsed();
    let t = Instant::now();
    let theirs: u64 = pools
        .rayon
        .install(|| inputs.par_iter().map(|&n| fib(n)).sum());
    let rayon_time = t.elapsed();
    assert_eq!((serial, ours, theirs), (expected, expected, expected));
    [serial_time, ours_time, rayon_time]
}

/// One worker count's runs.
#[derive(Default)]
struct Runs {
    /// ns per task, `[mode][peer]` per run (mode 0: one submitter, 1: one
    /// per worker).
    per_task: [[Vec<f64>; 3]; 2],
    /// ms, `[serial, ours, rayon]` per run.
    fib: [Vec<f64>; 3],
}

fn settings() -> (Vec<usize>, u64, u64, Vec<u32>, bool) {
    // Criterion's rule, which `cargo test --benches` follows: without
    // `--bench`, or with `--test`, only check that it runs.
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    let smoke = !has("--bench") || has("--test");
    let workers = match std::env::var("CF_BENCH_WORKERS") {
        Ok(list) => list
            .split(',')
            .map(|w| {
                w.trim()
                    .parse()
                    .expect("CF_BENCH_WORKERS: numbers, comma-separated")
            })
            .collect(),
        Err(_) => (1..=std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    };
    let fib = match std::env::var("CF_BENCH_FIB") {
        Ok(range) => {
            let (a, b) = range.split_once("..=").expect("CF_BENCH_FIB: a..=b");
            (a.trim().parse().expect("a")..=b.trim().parse().expect("b")).collect()
        }
        Err(_) => (24..=31).collect(),
    };
    if smoke {
        return (vec![1, 2], 1, 2000, (10..=14).collect(), true);
    }
    (
        workers,
        env_number("CF_BENCH_RUNS", 5),
        env_number("CF_BENCH_TASKS", 200_000),
        fib,
        false,
    )
}

fn main() {
    let (counts, runs, tasks, fib_inputs, smoke) = settings();
    if let Ok(only) = std::env::var("CF_BENCH_ONLY") {
        let peer = match only.as_str() {
            "ours" => Peer::Ours,
            "rayon" => Peer::Rayon,
            "threadpool" => Peer::Threadpool,
            other => panic!("CF_BENCH_ONLY={other}: ours, rayon or threadpool"),
        };
        for &workers in &counts {
            let pools = Pools::new(workers);
            for mode in 0..2 {
                let submitters = if mode == 0 { 1 } else { workers };
                let ns: Vec<f64> = (0..runs)
                    .map(|_| per_task(&pools, peer, submitters, tasks))
                    .collect();
                println!(
                    "{only}, {workers} workers, {submitters} submitters: {} ns/task",
                    fmt_num(median(ns), 1)
                );
            }
        }
        return;
    }
    let load_before = load_average();
    let mut all: Vec<(usize, Runs)> = Vec::new();
    for &workers in &counts {
        let pools = Pools::new(workers);
        let mut r = Runs::default();
        // Warm-up: threads started, caches and allocator warm.
        for &peer in &PEERS {
            per_task(&pools, peer, 1, tasks.min(20_000));
        }
        fib_times(&pools, &fib_inputs);
        for run in 0..runs as usize {
            for mode in 0..2 {
                let submitters = if mode == 0 { 1 } else { workers };
                for k in 0..3 {
                    let peer = (run + k) % 3;
                    let ns = per_task(&pools, PEERS[peer], submitters, tasks);
                    r.per_task[mode][peer].push(ns);
                }
            }
            let times = fib_times(&pools, &fib_inputs);
            for (i, t) in times.iter().enumerate() {
                r.fib[i].push(t.as_secs_f64() * 1e3);
            }
        }
        println!(
            "{} workers: ns/task one submitter ours {} rayon {} threadpool {}; one per worker ours {} rayon {} threadpool {}",
            pools.workers,
            fmt_num(median(r.per_task[0][0].iter().copied()), 1),
            fmt_num(median(r.per_task[0][1].iter().copied()), 1),
            fmt_num(median(r.per_task[0][2].iter().copied()), 1),
            fmt_num(median(r.per_task[1][0].iter().copied()), 1),
            fmt_num(median(r.per_task[1][1].iter().copied()), 1),
            fmt_num(median(r.per_task[1][2].iter().copied()), 1),
        );
        all.push((workers, r));
    }
    if smoke {
        println!("(smoke run: no report)");
        return;
    }
    let load_after = load_average();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- generated by `cargo bench --bench scaling` (benches/scaling.rs) on {} -->\n",
        common::today()
    );
    let _ = writeln!(md, "#### Machine and command (scaling)\n");
    write_machine_rows(
        &mut md,
        None,
        PEER_CRATES,
        Some("not used".into()),
        "cargo bench --bench scaling",
        &(load_before, load_after),
    );
    let _ = writeln!(
        md,
        "| Runs | {runs} paired runs after one warm-up, per worker count; in each run every variant once, the order rotated by one per run; {tasks} no-op tasks a variant |\n"
    );
    let _ = writeln!(
        md,
        "#### Cost per task against the worker count\n\n\"ours / rayon\" and \"ours / threadpool\" are our time per task over the peer's, run by run (the median of those ratios): under 1 is faster than the peer.\n"
    );
    let _ = writeln!(
        md,
        "| workers | submitters | ours (ns/task) | rayon | threadpool | ours / rayon | ours / threadpool |\n|---:|---|---:|---:|---:|---:|---:|"
    );
    for (workers, r) in &all {
        for (mode, label) in ["one", "one per worker"].iter().enumerate() {
            let m = |p: usize| median(r.per_task[mode][p].iter().copied());
            let _ = writeln!(
                md,
                "| {workers} | {label} | {} | {} | {} | {} | {} |",
                fmt_num(m(0), 1),
                fmt_num(m(1), 1),
                fmt_num(m(2), 1),
                fmt_ratio(paired(&r.per_task[mode][0], &r.per_task[mode][1])),
                fmt_ratio(paired(&r.per_task[mode][0], &r.per_task[mode][2])),
            );
        }
    }
    let _ = writeln!(
        md,
        "\n#### fib: speed-up over serial, ours (`map`) and rayon (`par_iter`)\n\nfib(n) for every n in {}..={}; the speed-up is the serial time over the pool's, run by run.\n",
        fib_inputs.first().copied().unwrap_or(0),
        fib_inputs.last().copied().unwrap_or(0)
    );
    let _ = writeln!(
        md,
        "| workers | serial (ms) | ours (ms) | rayon (ms) | ours: speed-up | rayon: speed-up | ours / rayon (time) |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (workers, r) in &all {
        let m = |i: usize| median(r.fib[i].iter().copied());
        let _ = writeln!(
            md,
            "| {workers} | {} | {} | {} | {}x | {}x | {} |",
            fmt_num(m(0), 1),
            fmt_num(m(1), 1),
            fmt_num(m(2), 1),
            fmt_num(paired(&r.fib[0], &r.fib[1]), 2),
            fmt_num(paired(&r.fib[0], &r.fib[2]), 2),
            fmt_ratio(paired(&r.fib[1], &r.fib[2])),
        );
    }
    common::publish_report(&md, true, "scaling_summary.md");
}
