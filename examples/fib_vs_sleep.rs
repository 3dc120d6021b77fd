//! The seeds' comparison ("多线程和多进程的比较"): CPU-bound `fib` and
//! IO-bound `sleep` submitted to a pool, results taken as they complete with
//! `as_completed`, wall time and CPU time of each, and a conclusion computed
//! from the measurements. A progress bar follows each half when stdout is a
//! terminal; piped output gets plain lines only.
//!
//! The workloads are written once against the `Executor` trait, so the same
//! function drives any pool: a thread pool, a process pool (workers spawned
//! from this very binary), and a serial run for reference.
//!
//! ```text
//! cargo run --release --example fib_vs_sleep -- [--fib 30..40] [--workers 3] [--sleep-ms 200] [--sleep-tasks 30] [--quiet]
//! ```
//!
//! Defaults differ from the seeds in two places, on purpose: Rust computes
//! `fib(25..35)` in about 30 ms, too quick to compare anything, so the
//! default range is 30..40 (`--fib 25..35` gives the seeds' range); and the
//! seeds' `sleep(2)` × 30 is scaled to 200 ms × 30 so the run takes seconds
//! (`--sleep-ms 2000` gives theirs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use concurrent_futures::{
    Executor, ProcessPoolExecutor, TaskError, ThreadPoolExecutor, as_completed, task,
};

/// The seeds' recursive Fibonacci (`fib(1) = fib(2) = 1`).
fn fib(n: u32) -> u64 {
    if n <= 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}

/// The seeds' `random_sleep`: blocks for `ms` milliseconds, returns it.
#[task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

struct Options {
    fib: std::ops::Range<u32>,
    workers: usize,
    sleep_ms: u64,
    sleep_tasks: usize,
    quiet: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        fib: 30..40,
        workers: 3,
        sleep_ms: 200,
        sleep_tasks: 30,
        quiet: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--fib" => {
                let v = value()?;
                let (a, b) = v
                    .split_once("..")
                    .ok_or("--fib takes a range like 25..35")?;
                o.fib = a.parse().map_err(|_| "bad --fib start")?
                    ..b.parse().map_err(|_| "bad --fib end")?;
            }
            "--workers" => o.workers = value()?.parse().map_err(|_| "bad --workers")?,
            "--sleep-ms" => o.sleep_ms = value()?.parse().map_err(|_| "bad --sleep-ms")?,
            "--sleep-tasks" => o.sleep_tasks = value()?.parse().map_err(|_| "bad --sleep-tasks")?,
            "--quiet" => o.quiet = true,
            "-h" | "--help" => {
                println!(
                    "usage: fib_vs_sleep [--fib A..B] [--workers N] [--sleep-ms MS] [--sleep-tasks N] [--quiet]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}; try --help")),
        }
    }
    if o.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok(o)
}

/// CPU time (user + system) this process and its reaped children (the
/// process pool's workers, once the pool is dropped) have used so far.
fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..15)
        .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

struct Row {
    workload: &'static str,
    executor: &'static str,
    workers: usize,
    wall: Duration,
    cpu: Duration,
    serial: Duration,
}

/// Submits every task, then prints each result as it completes, as the
/// seeds do. Written once against the trait: any executor runs it.
fn run_as_completed<E: Executor>(
    pool: &E,
    f: fn(u64) -> u64,
    inputs: &[u64],
    label: &str,
    quiet: bool,
) -> Result<(Duration, Duration), TaskError> {
    let cpu0 = process_cpu_time();
    let start = Instant::now();
    let futures = inputs
        .iter()
        .map(|&n| pool.submit(f, n))
        .collect::<Result<Vec<_>, _>>()?;
    let bar = progress_bar(inputs.len(), label);
    for done in as_completed(futures, None) {
        let value = *done?.result()?;
        if !quiet {
            bar.suspend(|| println!("  {label}: exe result {value}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((start.elapsed(), process_cpu_time() - cpu0))
}

/// A progress bar over `len` tasks, drawn only when stdout is a terminal
/// (piped or redirected output gets the plain lines and no bar). Lines go
/// through `bar.suspend`, which clears the bar, prints, and redraws it.
fn progress_bar(len: usize, label: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stdout());
    bar.set_style(
        ProgressStyle::with_template("  {prefix:>7} [{bar:30}] {pos}/{len} done, {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

#[task]
fn fib_u64(n: u64) -> u64 {
    fib(n as u32)
}

/// The same workload on a process pool: start-up and the final reaping of
/// the workers are part of its wall time, as they are of its cost.
fn on_process_pool(
    workers: usize,
    f: fn(u64) -> u64,
    inputs: &[u64],
    quiet: bool,
) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    let cpu0 = process_cpu_time();
    let start = Instant::now();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(workers)
        .build()?;
    run_as_completed(&pool, f, inputs, "process", quiet)?;
    drop(pool);
    Ok((start.elapsed(), process_cpu_time() - cpu0))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    let fib_inputs: Vec<u64> = o.fib.clone().map(u64::from).collect();
    let sleep_inputs = vec![o.sleep_ms; o.sleep_tasks];
    let mut rows = Vec::new();

    println!(
        "CPU-bound: fib({}..{}), {} workers",
        o.fib.start, o.fib.end, o.workers
    );
    let cpu0 = process_cpu_time();
    let start = Instant::now();
    let serial_sum: u64 = fib_inputs.iter().map(|&n| fib_u64(n)).sum();
    let fib_serial = start.elapsed();
    rows.push(Row {
        workload: "fib",
        executor: "serial",
        workers: 1,
        wall: fib_serial,
        cpu: process_cpu_time() - cpu0,
        serial: fib_serial,
    });
    let pool = ThreadPoolExecutor::builder()
        .max_workers(o.workers)
        .build()?;
    let (wall, cpu) = run_as_completed(&pool, fib_u64, &fib_inputs, "thread", o.quiet)?;
    drop(pool);
    rows.push(Row {
        workload: "fib",
        executor: "ThreadPoolExecutor",
        workers: o.workers,
        wall,
        cpu,
        serial: fib_serial,
    });
    let (wall, cpu) = on_process_pool(o.workers, fib_u64, &fib_inputs, o.quiet)?;
    rows.push(Row {
        workload: "fib",
        executor: "ProcessPoolExecutor",
        workers: o.workers,
        wall,
        cpu,
        serial: fib_serial,
    });
    // The pool's answers are checked against the serial run.
    let check = ThreadPoolExecutor::builder()
        .max_workers(o.workers)
        .build()?;
    let pooled_sum: u64 = check
        .map(fib_u64, fib_inputs.clone())
        .sum::<Result<u64, _>>()?;
    assert_eq!(pooled_sum, serial_sum, "the pool computed the same values");

    println!(
        "IO-bound: sleep {} ms x {}, {} workers",
        o.sleep_ms, o.sleep_tasks, o.workers
    );
    // A serial run of the sleeps takes exactly their sum; it is computed,
    // not slept through.
    let sleep_serial = Duration::from_millis(o.sleep_ms * o.sleep_tasks as u64);
    rows.push(Row {
        workload: "sleep",
        executor: "serial (computed)",
        workers: 1,
        wall: sleep_serial,
        cpu: Duration::ZERO,
        serial: sleep_serial,
    });
    let pool = ThreadPoolExecutor::builder()
        .max_workers(o.workers)
        .build()?;
    let (wall, cpu) = run_as_completed(&pool, sleep_ms, &sleep_inputs, "thread", o.quiet)?;
    drop(pool);
    rows.push(Row {
        workload: "sleep",
        executor: "ThreadPoolExecutor",
        workers: o.workers,
        wall,
        cpu,
        serial: sleep_serial,
    });
    let (wall, cpu) = on_process_pool(o.workers, sleep_ms, &sleep_inputs, o.quiet)?;
    rows.push(Row {
        workload: "sleep",
        executor: "ProcessPoolExecutor",
        workers: o.workers,
        wall,
        cpu,
        serial: sleep_serial,
    });

    println!();
    println!("| workload | executor | workers | wall time | speed-up over serial | CPU time |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.3} s | {:.2}x | {:.2} s |",
            r.workload,
            r.executor,
            r.workers,
            r.wall.as_secs_f64(),
            r.serial.as_secs_f64() / r.wall.as_secs_f64().max(1e-9),
            r.cpu.as_secs_f64()
        );
    }
    println!();
    println!("Conclusion, from the measurements above:");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let find = |workload: &str, executor: &str| {
        rows.iter()
            .find(|r| r.workload == workload && r.executor.starts_with(executor))
            .expect("every row is measured")
    };
    for workload in ["fib", "sleep"] {
        let serial = find(workload, "serial");
        let threads = find(workload, "ThreadPoolExecutor");
        let processes = find(workload, "ProcessPoolExecutor");
        let speedup = |r: &Row| serial.wall.as_secs_f64() / r.wall.as_secs_f64().max(1e-9);
        let diff = processes.wall.as_secs_f64() - threads.wall.as_secs_f64();
        let (faster, slower) = if diff > 0.0 {
            ("the thread pool", "the process pool")
        } else {
            ("the process pool", "the thread pool")
        };
        println!(
            "- {workload}: threads {:.2}x and processes {:.2}x the serial run; {faster} was \
             faster than {slower} by {:.3} s ({:.1}%).",
            speedup(threads),
            speedup(processes),
            diff.abs(),
            100.0 * diff.abs() / threads.wall.as_secs_f64().max(1e-9)
        );
    }
    let fib_threads = find("fib", "ThreadPoolExecutor");
    let fib_speedup =
        find("fib", "serial").wall.as_secs_f64() / fib_threads.wall.as_secs_f64().max(1e-9);
    let parallel = cores.min(o.workers);
    if fib_speedup >= 1.0 + 0.25 * (parallel as f64 - 1.0) && parallel > 1 {
        println!(
            "- Threads ran the CPU-bound fib {fib_speedup:.2}x faster than one thread, on \
             {parallel} usable cores: Rust threads compute in parallel. In Python the GIL \
             keeps a thread pool near 1x here, which is why the seeds reach for processes."
        );
    } else {
        println!(
            "- Threads ran the CPU-bound fib only {fib_speedup:.2}x faster than one thread \
             ({} workers, {cores} cores): too little work or too few cores to gain from \
             parallelism; try a larger --fib range or more --workers.",
            o.workers
        );
    }
    let rounds = o.sleep_tasks.div_ceil(o.workers.max(1)) as u64;
    let expected = Duration::from_millis(rounds * o.sleep_ms);
    let sleep_threads = find("sleep", "ThreadPoolExecutor");
    println!(
        "- The sleeps took {:.3} s on {} threads: {} rounds of {} ms, {:.3} s. For blocking \
         IO the worker count, not the core count, sets the wall time, and threads are cheap: \
         --workers {} would finish in one round. Thousands of connections want async IO \
         (tokio), not a thread each.",
        sleep_threads.wall.as_secs_f64(),
        o.workers,
        rounds,
        o.sleep_ms,
        expected.as_secs_f64(),
        o.sleep_tasks,
    );
    println!(
        "- What processes add is start-up, a round trip and copying per task; what they buy \
         is isolation: a task that aborts or leaks cannot take this program down."
    );
    Ok(())
}
