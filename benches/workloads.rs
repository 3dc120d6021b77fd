//! The seeds' comparison, measured: CPU-bound `fib` and IO-bound `sleep`
//! submitted to thread pools and process pools, results taken as they
//! complete, at 1 to 4 workers, ours side by side with rayon and with
//! CPython's `concurrent.futures` (through `benches/python/workloads.py`).
//! The figures and how to read them are in `docs/PERFORMANCE.md`.
//!
//! ```text
//! cargo bench --bench workloads
//! ```
//!
//! What is measured, for every worker count `w`:
//!
//! * **fib**: `fib(n)` (the seeds' recursive one, `fib(1) = fib(2) = 1`) for
//!   every `n` of one range, the same range for every variant so that the
//!   ratios compare equal work. Every task is submitted at once, then the
//!   results are taken as they complete (`as_completed`; rayon:
//!   `ThreadPool::spawn`, each task sending its value down one channel).
//! * **sleep**: `T` tasks that each sleep `S` ms, taken the same way. The
//!   serial figure is `T` × `S`, computed, not slept; the ideal with `w`
//!   workers is `ceil(T / w)` × `S`.
//!
//! The wall time of a pool includes building it and shutting it down
//! (ours and CPython's: every worker joined or exited and reaped; rayon's
//! `ThreadPool` drop only tells its threads to stop), so a process pool's
//! start-up is part of its cost. The variants: serial (Rust, and CPython in
//! its own interpreter), our `ThreadPoolExecutor`, rayon, our
//! `ProcessPoolExecutor` (default `StartMethod::Spawn`: its workers are this
//! bench binary, executed again; a spawned one takes over before `main`),
//! CPython's `ThreadPoolExecutor` and `ProcessPoolExecutor` (`spawn`
//! context by default, like ours). CPython runs one configuration per
//! interpreter, timed inside the script: the interpreter's start is not
//! counted.
//!
//! Paired runs: one warm-up run, then `CF_BENCH_RUNS` runs; in each run
//! every variant runs once at every worker count. The runs are grouped by
//! workload and worker count (the serial runs go with the first group), and
//! within a group the order rotates by one each run, so a variant and its
//! peer are measured seconds apart and never always in the same order.
//! Tables give medians over the runs and ratios taken pair by pair within
//! each run. It ends with a markdown report that `docs/PERFORMANCE.md`
//! copies, also written to `target/workloads_summary.md` (under
//! `CARGO_TARGET_DIR` if set), and with `target/bench-data/workloads.csv`
//! for `scripts/charts.py`.
//!
//! Environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PYTHON` | `pyenv which python3`, else `python3` | the interpreter for the CPython rows; none found: the rows are skipped with a note |
//! | `CF_BENCH_PYTHON` | 1 | 0: skip the CPython rows |
//! | `CF_BENCH_PY_CONTEXT` | `spawn` | the multiprocessing context of CPython's `ProcessPoolExecutor` (`spawn`, `fork` or `forkserver`) |
//! | `CF_BENCH_RUNS` | 5 | paired runs (after one warm-up run) |
//! | `CF_BENCH_WORKERS` | `1,2,3,4` | the worker counts |
//! | `CF_BENCH_FIB` | `28..34` | the `n` of the fib tasks, `A..B` (B excluded) or `A..=B`; CPython's serial run takes ~1 s on it |
//! | `CF_BENCH_FIB_REPS` | 5 | back-to-back repetitions behind each Rust fib figure of a run (the median is kept; each builds and drops its own pool) |
//! | `CF_BENCH_SLEEP_TASKS` | 30 | sleep tasks |
//! | `CF_BENCH_SLEEP_MS` | 20 | ms each sleep task sleeps |
//!
//! On the project's 2-core machine a full run takes about 100 s after the
//! build (15-18 s per run, 2.5 min when other work shares the cores):
//! mostly CPython's fib (0.7-1 s per configuration, 9 configurations per
//! run) and the sleeps (~1.3 s per variant and run, CPython's process pool
//! ~2.5 s); a Rust fib figure takes 15-25 ms per repetition.
//!
//! Under `cargo test --benches` (no `--bench` argument) everything runs
//! once with tiny sizes (fib 15..18, 3 sleeps of 1 ms, 1 and 2 workers;
//! about 2 s, CPython included if it is found), checking every result, as
//! a smoke test; the report is printed but neither it nor the CSV is
//! written.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::env;
use std::fmt::Write as _;
use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed, task};

use common::*;

/// The crates that matter here, whose versions in Cargo.lock the report
/// gives.
const REPORTED_CRATES: &[&str] = &["rayon", "rayon-core", "crossbeam-channel", "bincode"];
const PY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/workloads.py");
const COMMAND: &str = "cargo bench --bench workloads";

// ---------------------------------------------------------------------------
// The tasks
// ---------------------------------------------------------------------------

/// The seeds' recursive Fibonacci (`fib(1) = fib(2) = 1`), as in
/// `examples/fib_vs_sleep.rs`.
fn fib(n: u64) -> u64 {
    if n <= 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}

#[task]
fn fib_task(n: u64) -> u64 {
    fib(black_box(n))
}

/// The seeds' `random_sleep`, with a fixed duration: blocks for `ms`
/// milliseconds, returns it.
#[task]
fn sleep_task(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// `fib(n)` the quick way, for checking the results.
fn fib_iterative(n: u64) -> u64 {
    let (mut a, mut b) = (1_u64, 1_u64);
    for _ in 2..n.max(2) {
        (a, b) = (b, a + b);
    }
    if n == 0 { 0 } else { b }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Workload {
    Fib,
    Sleep,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::Fib, Workload::Sleep];

    fn key(self) -> &'static str {
        match self {
            Workload::Fib => "fib",
            Workload::Sleep => "sleep",
        }
    }

    fn section(self) -> &'static str {
        match self {
            Workload::Fib => "fib_workers",
            Workload::Sleep => "sleep_workers",
        }
    }

    fn task(self) -> fn(u64) -> u64 {
        match self {
            Workload::Fib => fib_task,
            Workload::Sleep => sleep_task,
        }
    }
}

// ---------------------------------------------------------------------------
// The variants
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Variant {
    Serial,
    OursThread,
    Rayon,
    OursProcess,
    PySerial,
    PyThread,
    PyProcess,
}

impl Variant {
    /// The pools, in the tables' order.
    const POOLS: [Variant; 5] = [
        Variant::OursThread,
        Variant::Rayon,
        Variant::OursProcess,
        Variant::PyThread,
        Variant::PyProcess,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::Serial => "serial",
            Variant::OursThread => "ThreadPoolExecutor (ours)",
            Variant::Rayon => "rayon",
            Variant::OursProcess => "ProcessPoolExecutor (ours)",
            Variant::PySerial => "CPython serial",
            Variant::PyThread => "CPython ThreadPoolExecutor",
            Variant::PyProcess => "CPython ProcessPoolExecutor",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Variant::Serial => "serial",
            Variant::OursThread => "ours_thread",
            Variant::Rayon => "rayon",
            Variant::OursProcess => "ours_process",
            Variant::PySerial => "py_serial",
            Variant::PyThread => "py_thread",
            Variant::PyProcess => "py_process",
        }
    }

    fn python(self) -> bool {
        matches!(
            self,
            Variant::PySerial | Variant::PyThread | Variant::PyProcess
        )
    }

    fn is_serial(self) -> bool {
        matches!(self, Variant::Serial | Variant::PySerial)
    }

    /// The serial run this variant's speed-up is over: the one in its own
    /// language.
    fn serial(self) -> Variant {
        if self.python() {
            Variant::PySerial
        } else {
            Variant::Serial
        }
    }
}

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

struct Settings {
    runs: usize,
    warm_up_runs: usize,
    workers: Vec<usize>,
    fib: Range<u64>,
    sleep_tasks: u64,
    sleep_ms: u64,
    /// Back-to-back repetitions behind each Rust fib figure of a run.
    fib_reps: usize,
    py_context: String,
    /// A real benchmark run (not `cargo test --benches`): write the report.
    full: bool,
}

impl Settings {
    fn inputs(&self, wl: Workload) -> Vec<u64> {
        match wl {
            Workload::Fib => self.fib.clone().collect(),
            Workload::Sleep => vec![self.sleep_ms; self.sleep_tasks as usize],
        }
    }

    /// The sum of every task's result.
    fn expected_sum(&self, wl: Workload) -> u64 {
        match wl {
            Workload::Fib => self.fib.clone().map(fib_iterative).sum(),
            Workload::Sleep => self.sleep_ms * self.sleep_tasks,
        }
    }

    /// `T` × `S`: the sleeps one after the other.
    fn sleep_serial_ms(&self) -> f64 {
        (self.sleep_tasks * self.sleep_ms) as f64
    }

    /// `ceil(T / w)` × `S`.
    fn sleep_ideal_ms(&self, w: usize) -> f64 {
        (self.sleep_tasks.div_ceil(w as u64) * self.sleep_ms) as f64
    }

    fn fib_text(&self) -> String {
        format!("{}..{}", self.fib.start, self.fib.end)
    }
}

/// `A..B` (B excluded) or `A..=B`.
fn parse_range(name: &str, text: &str) -> Range<u64> {
    let bad = || -> ! { panic!("{name}={text:?}: want a range like 28..34 or 28..=33") };
    let (a, b, inclusive) = match text.trim().split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => match text.trim().split_once("..") {
            Some((a, b)) => (a, b, false),
            None => bad(),
        },
    };
    let a: u64 = a.trim().parse().unwrap_or_else(|_| bad());
    let b: u64 = b.trim().parse().unwrap_or_else(|_| bad());
    let end = if inclusive { b + 1 } else { b };
    if a < 1 || end <= a || end > 60 {
        bad();
    }
    a..end
}

fn parse_workers(text: &str) -> Vec<usize> {
    let workers: Vec<usize> = text
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| match w.parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("CF_BENCH_WORKERS={text:?}: want worker counts like 1,2,3,4"),
        })
        .collect();
    assert!(
        !workers.is_empty(),
        "CF_BENCH_WORKERS={text:?}: no worker count"
    );
    workers
}

// ---------------------------------------------------------------------------
// The Rust variants
// ---------------------------------------------------------------------------

/// Builds a pool with `build`, submits `f` for every input, takes the
/// results as they complete, drops the pool (shutdown, waiting for its
/// workers): the elapsed time and the sum of the results.
fn on_executor<E: Executor>(
    build: impl FnOnce() -> E,
    f: fn(u64) -> u64,
    inputs: &[u64],
) -> (Duration, u64) {
    let start = Instant::now();
    let pool = build();
    let futures: Vec<_> = inputs
        .iter()
        .map(|&n| pool.submit(f, n).expect("submit"))
        .collect();
    let mut sum = 0;
    for done in as_completed(futures, None) {
        sum += *done.expect("no timeout").result().expect("the task");
    }
    drop(pool);
    (start.elapsed(), sum)
}

/// The same with a rayon pool of `w` threads: `spawn` per task, each
/// sending its value down one channel, received in completion order.
fn on_rayon(w: usize, f: fn(u64) -> u64, inputs: &[u64]) -> (Duration, u64) {
    let start = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(w)
        .build()
        .expect("a rayon pool");
    let (tx, rx) = crossbeam_channel::unbounded();
    for &n in inputs {
        let tx = tx.clone();
        pool.spawn(move || {
            let _ = tx.send(f(n));
        });
    }
    drop(tx);
    let sum = rx.iter().sum();
    drop(pool);
    (start.elapsed(), sum)
}

/// One Rust variant on one workload with `w` workers: the wall time in
/// ms. Panics if a result is wrong.
fn run_rust(v: Variant, wl: Workload, w: usize, s: &Settings) -> f64 {
    let inputs = s.inputs(wl);
    let f = wl.task();
    let (elapsed, sum) = match v {
        Variant::Serial => {
            let start = Instant::now();
            let sum = inputs.iter().map(|&n| f(black_box(n))).sum();
            (start.elapsed(), black_box(sum))
        }
        Variant::OursThread => on_executor(
            || {
                ThreadPoolExecutor::builder()
                    .max_workers(w)
                    .build()
                    .expect("a thread pool")
            },
            f,
            &inputs,
        ),
        Variant::OursProcess => on_executor(
            || {
                ProcessPoolExecutor::builder()
                    .max_workers(w)
                    .build()
                    .expect("a process pool")
            },
            f,
            &inputs,
        ),
        Variant::Rayon => on_rayon(w, f, &inputs),
        _ => unreachable!("not a Rust variant: {v:?}"),
    };
    assert_eq!(
        sum,
        s.expected_sum(wl),
        "{} on {} with {w} workers: wrong results",
        v.label(),
        wl.key()
    );
    elapsed.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// CPython, through benches/python/workloads.py
// ---------------------------------------------------------------------------

struct Python {
    exe: String,
    /// Where `exe` came from, for the report.
    source: &'static str,
    version: String,
    context: String,
}

/// The interpreter of [`python_interpreter`], checked by running the
/// script once. `None`, with a note on stderr, if that fails or
/// `CF_BENCH_PYTHON` is 0.
fn find_python(context: &str) -> Option<Python> {
    if env_number("CF_BENCH_PYTHON", 1) == 0 {
        eprintln!("note: CF_BENCH_PYTHON=0; the CPython rows are skipped");
        return None;
    }
    let (exe, source) = python_interpreter();
    let mut python = Python {
        exe,
        source,
        version: String::new(),
        context: context.to_owned(),
    };
    let check = run_script(
        &python.exe,
        PY_SCRIPT,
        &["fib", "--executor", "serial", "--start", "5", "--end", "8"],
    );
    match check {
        Ok(stdout) if stdout.contains("RESULT ") => {
            python.version = stdout
                .lines()
                .find_map(|l| l.strip_prefix("INFO "))
                .and_then(|l| fields(l).get("python").cloned())
                .unwrap_or_default();
            Some(python)
        }
        Ok(stdout) => {
            note_no_python(
                &python.exe,
                python.source,
                &format!("no RESULT line in {stdout:?}"),
            );
            None
        }
        Err(e) => {
            note_no_python(&python.exe, python.source, &e);
            None
        }
    }
}

impl Python {
    /// One configuration in a fresh interpreter: the wall time in ms, as
    /// the script measured it, once its results are checked.
    fn run(&self, v: Variant, wl: Workload, w: usize, s: &Settings) -> Result<f64, String> {
        let executor = match v {
            Variant::PySerial => "serial",
            Variant::PyThread => "thread",
            Variant::PyProcess => "process",
            _ => unreachable!("not a CPython variant: {v:?}"),
        };
        let args = [
            wl.key().to_owned(),
            "--executor".to_owned(),
            executor.to_owned(),
            "--workers".to_owned(),
            w.max(1).to_string(),
            "--context".to_owned(),
            self.context.clone(),
            "--start".to_owned(),
            s.fib.start.to_string(),
            "--end".to_owned(),
            s.fib.end.to_string(),
            "--tasks".to_owned(),
            s.sleep_tasks.to_string(),
            "--ms".to_owned(),
            s.sleep_ms.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdout = run_script(&self.exe, PY_SCRIPT, &args)?;
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .ok_or_else(|| format!("no RESULT line in {stdout:?}"))?;
        let f = fields(line);
        let number = |k: &str| -> Result<u64, String> {
            f.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no number {k} in {line:?}"))
        };
        let sum = number("sum")?;
        if sum != s.expected_sum(wl) {
            return Err(format!(
                "wrong results: sum {sum}, want {}",
                s.expected_sum(wl)
            ));
        }
        Ok(number("wall_ns")? as f64 / 1e6)
    }
}

// ---------------------------------------------------------------------------
// The paired runs
// ---------------------------------------------------------------------------

/// A figure's key: the workload, the variant and the worker count (0 for
/// the serial runs).
type Key = (Workload, Variant, usize);

/// Every figure of one run: wall times in ms.
type RunFigures = HashMap<Key, f64>;

/// One measurement of a run.
#[derive(Clone, Copy)]
struct Job {
    wl: Workload,
    v: Variant,
    w: usize,
}

/// The jobs of a run, grouped by workload and worker count; the serial
/// runs go with the first fib group. The order within a group rotates
/// from run to run.
fn groups(s: &Settings, python: bool) -> Vec<Vec<Job>> {
    let mut groups = Vec::new();
    for wl in Workload::ALL {
        for (i, &w) in s.workers.iter().enumerate() {
            let mut g = Vec::new();
            if wl == Workload::Fib && i == 0 {
                g.push(Job {
                    wl,
                    v: Variant::Serial,
                    w: 0,
                });
                if python {
                    g.push(Job {
                        wl,
                        v: Variant::PySerial,
                        w: 0,
                    });
                }
            }
            for v in Variant::POOLS {
                if python || !v.python() {
                    g.push(Job { wl, v, w });
                }
            }
            groups.push(g);
        }
    }
    groups
}

fn paired_phase<'a>(python: Option<&'a Python>, s: &'a Settings) -> Report<'a> {
    let load_before = load_average();
    // One second each side; not worth it on a smoke run.
    let busy = || if s.full { cpu_busy_percent() } else { f64::NAN };
    let busy_before = busy();
    let total = s.warm_up_runs + s.runs;
    println!(
        "== workloads: fib({}) and {} sleeps of {} ms, workers {:?}; {} runs after {} warm-up ==",
        s.fib_text(),
        s.sleep_tasks,
        s.sleep_ms,
        s.workers,
        s.runs,
        s.warm_up_runs
    );
    let groups = groups(s, python.is_some());
    let started = Instant::now();
    let mut runs = Vec::new();
    for run in 0..total {
        let warm = run < s.warm_up_runs;
        let run_started = Instant::now();
        println!("run {}{}:", run + 1, if warm { " (warm-up)" } else { "" });
        let mut figures = RunFigures::new();
        for g in &groups {
            let mut line = format!("  {} w={}:", g[0].wl.key(), g[g.len() - 1].w);
            let n = g.len();
            for job in (0..n).map(|j| g[(j + run) % n]) {
                let ms = if job.v.python() {
                    let py = python.expect("a CPython job only with Python");
                    py.run(job.v, job.wl, job.w, s).unwrap_or_else(|e| {
                        eprintln!(
                            "warning: {} on {} with {} workers failed: {e}",
                            job.v.label(),
                            job.wl.key(),
                            job.w
                        );
                        f64::NAN
                    })
                } else if job.wl == Workload::Fib {
                    // A Rust fib run is over in tens of ms: the median of
                    // a few, each with its own pool.
                    median((0..s.fib_reps).map(|_| run_rust(job.v, job.wl, job.w, s)))
                } else {
                    run_rust(job.v, job.wl, job.w, s)
                };
                let _ = write!(line, " {}={ms:.1}", job.v.key());
                figures.insert((job.wl, job.v, job.w), ms);
            }
            println!("{line} ms");
        }
        // The serial sleeps are computed.
        figures.insert((Workload::Sleep, Variant::Serial, 0), s.sleep_serial_ms());
        if python.is_some() {
            figures.insert((Workload::Sleep, Variant::PySerial, 0), s.sleep_serial_ms());
        }
        println!("  ({:.1} s)", run_started.elapsed().as_secs_f64());
        if !warm {
            runs.push(figures);
        }
    }
    println!("(paired runs: {:.0} s)", started.elapsed().as_secs_f64());
    let busy_after = busy();
    if s.full {
        println!(
            "(cores busy with other work: {busy_before:.0} % before, {busy_after:.0} % after)"
        );
    }
    Report {
        load: (load_before, load_average()),
        busy: (busy_before, busy_after),
        settings: s,
        python,
        runs,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// How busy every core of the machine was over one second, in percent
/// (from `/proc/stat`; NaN where it cannot be read). Called while this
/// bench runs nothing, it measures the other work on the machine.
fn cpu_busy_percent() -> f64 {
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        Some((ticks.iter().take(8).sum(), idle))
    };
    let Some((total0, idle0)) = sample() else {
        return f64::NAN;
    };
    std::thread::sleep(Duration::from_secs(1));
    match sample() {
        Some((total1, idle1)) if total1 > total0 => {
            100.0 * (1.0 - (idle1 - idle0) as f64 / (total1 - total0) as f64)
        }
        _ => f64::NAN,
    }
}

// ---------------------------------------------------------------------------
// The ideal fib schedule
// ---------------------------------------------------------------------------

/// The work of `fib(n)` in calls: `2 fib(n) - 1`.
fn fib_work(n: u64) -> f64 {
    2.0 * fib_iterative(n) as f64 - 1.0
}

/// How long `work` takes, in units of work, on `workers` workers that take
/// the tasks in submission order and share `cores` cores fairly, with no
/// overhead at all.
fn ideal_makespan(work: &[f64], workers: usize, cores: usize) -> f64 {
    let mut queue = work.iter().copied();
    let mut running: Vec<f64> = queue.by_ref().take(workers.max(1)).collect();
    let mut t = 0.0;
    while !running.is_empty() {
        let rate = (cores as f64 / running.len() as f64).min(1.0);
        let (i, least) = running
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("not empty");
        t += least / rate;
        for r in &mut running {
            *r = (*r - least).max(0.0);
        }
        running.swap_remove(i);
        if let Some(next) = queue.next() {
            running.push(next);
        }
    }
    t
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

struct Report<'a> {
    /// `/proc/loadavg` before and after the paired runs.
    load: (String, String),
    /// [`cpu_busy_percent`] before and after the paired runs.
    busy: (f64, f64),
    settings: &'a Settings,
    python: Option<&'a Python>,
    runs: Vec<RunFigures>,
    cores: usize,
}

/// A ratio with three significant digits at most (0.0312, 0.97, 12.3).
fn fmt_sig(r: f64) -> String {
    if !r.is_finite() {
        "n/a".to_owned()
    } else if r < 0.1 {
        format!("{r:.3}")
    } else if r < 10.0 {
        format!("{r:.2}")
    } else {
        format!("{r:.1}")
    }
}

/// A wall time in ms: one decimal below 1000.
fn fmt_ms(ms: f64) -> String {
    if ms.is_finite() && ms >= 1000.0 {
        format!("{ms:.0}")
    } else {
        fmt_num(ms, 1)
    }
}

/// "5 % faster", "12 % slower", "on par (±2 %)": `ratio` is this time over
/// the other's.
fn describe_ratio(ratio: f64) -> String {
    if !ratio.is_finite() {
        "not measured".to_owned()
    } else if (ratio - 1.0).abs() < 0.03 {
        format!("on par ({:+.0} %)", (ratio - 1.0) * 100.0)
    } else if ratio < 1.0 {
        format!("{:.0} % faster", (1.0 / ratio - 1.0) * 100.0)
    } else {
        format!("{:.0} % slower", (ratio - 1.0) * 100.0)
    }
}

impl Report<'_> {
    fn variants(&self) -> Vec<Variant> {
        Variant::POOLS
            .into_iter()
            .filter(|v| self.python.is_some() || !v.python())
            .collect()
    }

    /// The figure in every run (NaN where missing).
    fn series(&self, wl: Workload, v: Variant, w: usize) -> Vec<f64> {
        let w = if v.is_serial() { 0 } else { w };
        self.runs
            .iter()
            .map(|r| r.get(&(wl, v, w)).copied().unwrap_or(f64::NAN))
            .collect()
    }

    fn med(&self, wl: Workload, v: Variant, w: usize) -> f64 {
        median(self.series(wl, v, w))
    }

    /// The median over runs of `a`'s time over `b`'s, both at `w` workers
    /// and taken in the same run.
    fn ratio(&self, wl: Workload, a: Variant, b: Variant, w: usize) -> f64 {
        paired(&self.series(wl, a, w), &self.series(wl, b, w))
    }

    /// The serial run's time over this one's, pair by pair.
    fn speedup(&self, wl: Workload, v: Variant, w: usize) -> f64 {
        paired(&self.series(wl, v.serial(), 0), &self.series(wl, v, w))
    }

    /// The median over runs of `a`'s time minus `b`'s, in ms.
    fn difference(&self, wl: Workload, a: Variant, b: Variant, w: usize) -> f64 {
        median(
            self.series(wl, a, w)
                .into_iter()
                .zip(self.series(wl, b, w))
                .map(|(x, y)| x - y),
        )
    }

    /// The time over the ideal `ceil(T / w)` × `S`, per run, in ms.
    fn sleep_over_ideal(&self, v: Variant, w: usize) -> Vec<f64> {
        let ideal = self.settings.sleep_ideal_ms(w);
        self.series(Workload::Sleep, v, w)
            .into_iter()
            .map(|x| x - ideal)
            .collect()
    }

    /// The ideal fib speed-up with `w` workers: [`ideal_makespan`].
    fn fib_ideal_speedup(&self, w: usize) -> f64 {
        let work: Vec<f64> = self.settings.fib.clone().map(fib_work).collect();
        work.iter().sum::<f64>() / ideal_makespan(&work, w, self.cores)
    }

    /// The paired ratios to the peers, for the "ours / peer" column.
    fn peer_column(&self, wl: Workload, v: Variant, w: usize) -> String {
        let peers: &[Variant] = match v {
            Variant::OursThread => &[Variant::Rayon, Variant::PyThread],
            Variant::OursProcess => &[Variant::PyProcess, Variant::OursThread],
            _ => &[],
        };
        let parts: Vec<String> = peers
            .iter()
            .filter(|p| self.python.is_some() || !p.python())
            .map(|&p| format!("{} × {}", fmt_sig(self.ratio(wl, v, p, w)), p.label()))
            .collect();
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join("; ")
        }
    }

    fn data_rows(&self) -> Vec<DataRow> {
        let mut rows = Vec::new();
        for wl in Workload::ALL {
            let mut variants = vec![Variant::Serial];
            if self.python.is_some() {
                variants.push(Variant::PySerial);
            }
            variants.extend(self.variants());
            for v in variants {
                for &w in &self.settings.workers {
                    rows.push(DataRow::from_runs(
                        wl.section(),
                        v.label(),
                        Some(w as f64),
                        &self.series(wl, v, w),
                        "ms",
                    ));
                }
            }
        }
        rows
    }

    fn plain(&self) -> String {
        let mut out = String::new();
        for wl in Workload::ALL {
            let _ = writeln!(
                out,
                "{}: median wall ms over {} runs (speed-up over serial)",
                wl.key(),
                self.runs.len()
            );
            let _ = write!(out, "{:>3}", "w");
            for v in self.variants() {
                let _ = write!(out, " {:>28}", v.label());
            }
            let _ = writeln!(out);
            for &w in &self.settings.workers {
                let _ = write!(out, "{w:>3}");
                for v in self.variants() {
                    let cell = format!(
                        "{} ({}x)",
                        fmt_ms(self.med(wl, v, w)),
                        fmt_num(self.speedup(wl, v, w), 2)
                    );
                    let _ = write!(out, " {cell:>28}");
                }
                let _ = writeln!(out);
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let s = self.settings;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "<!-- generated by `{COMMAND}` (benches/workloads.rs) on {} -->\n",
            today()
        );
        let _ = writeln!(md, "#### Machine and command\n");
        write_machine_rows(
            &mut md,
            None,
            REPORTED_CRATES,
            self.python.map(|py| {
                format!(
                    "CPython {} (`{}`, from {}); `ProcessPoolExecutor` with the {} context",
                    py.version, py.exe, py.source, py.context
                )
            }),
            COMMAND,
            &self.load,
        );
        let _ = writeln!(
            md,
            "| Runs | {} paired runs after {} warm-up run; in each run every variant once at every worker count, grouped by workload and worker count, the order within a group rotated by one per run |",
            s.runs, s.warm_up_runs
        );
        let _ = writeln!(
            md,
            "| Sizes | fib(n) for n in {} ({} tasks; each Rust figure of a run is the median of {} back-to-back repetitions); {} sleeps of {} ms; workers {} |",
            s.fib_text(),
            s.fib.end - s.fib.start,
            s.fib_reps,
            s.sleep_tasks,
            s.sleep_ms,
            s.workers
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            md,
            "| Other work | the cores {} % busy in the second before the paired runs, {} % in the second after (`/proc/stat`, this bench idle) |",
            fmt_num(self.busy.0, 0),
            fmt_num(self.busy.1, 0)
        );
        if let Some(note) = self.load_note() {
            let _ = writeln!(md, "\n{note}");
        }
        self.fib_section(&mut md);
        self.sleep_section(&mut md);
        let _ = writeln!(md, "\n<!-- end of the generated block -->");
        md
    }

    /// A warning when other work kept the cores busy just before or just
    /// after the paired runs (the load average lags by a minute, so it
    /// would blame the bench's own runs or work already gone).
    fn load_note(&self) -> Option<String> {
        let (before, after) = self.busy;
        (before > 10.0 || after > 10.0).then(|| {
            format!(
                "**Other work shared the {} cores during this run**: they were {before:.0} % busy in the second before the runs and {after:.0} % in the second after (this bench idle). The CPU-bound figures (fib, and any speed-up from a second worker) are pessimistic and noisy; the sleeps suffer least.",
                self.cores
            )
        })
    }

    /// The table of medians: one row per worker count, one column per
    /// variant; `extra` adds a last column.
    fn overview(&self, md: &mut String, wl: Workload, extra: (&str, &dyn Fn(usize) -> String)) {
        let variants = self.variants();
        let _ = write!(md, "| workers |");
        for v in &variants {
            let _ = write!(md, " {} |", v.label());
        }
        let _ = writeln!(md, " {} |", extra.0);
        let _ = writeln!(md, "|---:|{}---:|", "---:|".repeat(variants.len()));
        for &w in &self.settings.workers {
            let _ = write!(md, "| {w} |");
            for &v in &variants {
                let _ = write!(
                    md,
                    " **{}** ({}x) |",
                    fmt_ms(self.med(wl, v, w)),
                    fmt_num(self.speedup(wl, v, w), 2)
                );
            }
            let _ = writeln!(md, " {} |", (extra.1)(w));
        }
    }

    /// The table with a row per variant and worker count.
    fn details(&self, md: &mut String, wl: Workload) {
        let sleep = wl == Workload::Sleep;
        let _ = writeln!(
            md,
            "| Variant | workers | median (ms) | speed-up over serial (paired) |{} ours / peer, same run (paired) | runs (ms) |",
            if sleep {
                " over the ideal (ms, median) |"
            } else {
                ""
            }
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|{}---|---|",
            if sleep { "---:|" } else { "" }
        );
        if !sleep {
            let mut serials = vec![Variant::Serial];
            if self.python.is_some() {
                serials.push(Variant::PySerial);
            }
            for v in serials {
                let _ = writeln!(
                    md,
                    "| {} | - | **{}** | 1.00x | - | {} |",
                    if v == Variant::Serial {
                        "serial (Rust)"
                    } else {
                        v.label()
                    },
                    fmt_ms(self.med(wl, v, 0)),
                    fmt_runs(&self.series(wl, v, 0), 1.0)
                );
            }
        }
        for v in self.variants() {
            for &w in &self.settings.workers {
                let over = if sleep {
                    format!(" +{} |", fmt_num(median(self.sleep_over_ideal(v, w)), 1))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    md,
                    "| {} | {w} | **{}** | {}x |{over} {} | {} |",
                    v.label(),
                    fmt_ms(self.med(wl, v, w)),
                    fmt_num(self.speedup(wl, v, w), 2),
                    self.peer_column(wl, v, w),
                    fmt_runs(&self.series(wl, v, w), 1.0),
                );
            }
        }
    }

    /// The worker count the findings quote: the largest one that does not
    /// exceed the cores, else the smallest.
    fn main_w(&self) -> usize {
        let ws = &self.settings.workers;
        ws.iter()
            .copied()
            .filter(|&w| w <= self.cores)
            .max()
            .unwrap_or_else(|| ws.iter().copied().min().unwrap_or(1))
    }

    /// "0.98, 1.01, 0.97, 1.02 at 1, 2, 3, 4 workers".
    fn ratios_by_w(&self, wl: Workload, a: Variant, b: Variant) -> String {
        let ws = &self.settings.workers;
        format!(
            "{} at {} workers",
            ws.iter()
                .map(|&w| fmt_sig(self.ratio(wl, a, b, w)))
                .collect::<Vec<_>>()
                .join(", "),
            ws.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn fib_section(&self, md: &mut String) {
        let s = self.settings;
        let wl = Workload::Fib;
        let work: Vec<f64> = s.fib.clone().map(fib_work).collect();
        let total: f64 = work.iter().sum();
        let largest = s.fib.end - 1;
        let share = work.last().copied().unwrap_or(0.0) / total * 100.0;
        let _ = writeln!(
            md,
            "\n#### fib: fib(n) for every n in {}, results taken as they complete\n",
            s.fib_text()
        );
        let _ = writeln!(
            md,
            "The same {} tasks for every variant, submitted at once in increasing n; the seeds' recursive fib (fib(1) = fib(2) = 1). Wall time from building the pool to its shutdown (every worker joined, or exited and reaped; rayon's drop only tells its threads to stop): a process pool's start-up is part of its cost. Our process pool uses `StartMethod::Spawn` (the workers are this bench binary, executed again); CPython's, the {} context. Rust's figures take tens of ms, so each one of a run is the median of {} back-to-back repetitions, each with its own pool; CPython's take about a second and are taken once. Speed-up: over the serial run in the same language and the same run (Rust's serial fib: **{} ms**; CPython's: **{} ms**). The ideal: no overhead at all, tasks taken in submission order, {} cores shared fairly; fib({largest}) alone is {share:.0} % of the work, and it is submitted last.\n",
            s.fib.end - s.fib.start,
            self.python.map_or("(no CPython)", |p| p.context.as_str()),
            s.fib_reps,
            fmt_ms(self.med(wl, Variant::Serial, 0)),
            fmt_ms(self.med(wl, Variant::PySerial, 0)),
            self.cores,
        );
        let _ = writeln!(
            md,
            "Median wall time in ms (speed-up over serial, paired):\n"
        );
        let ideal = |w: usize| format!("{}x", fmt_num(self.fib_ideal_speedup(w), 2));
        self.overview(md, wl, ("ideal", &ideal));
        let _ = writeln!(
            md,
            "\nEvery variant and worker count; \"ours / peer\" is our time over the peer's, run by run (below 1: ours is faster):\n"
        );
        self.details(md, wl);

        // Findings.
        let w = self.main_w();
        let _ = writeln!(md, "\nIn this run:\n");
        let rust_serial = self.med(wl, Variant::Serial, 0);
        if self.python.is_some() {
            let py_serial = self.med(wl, Variant::PySerial, 0);
            let _ = writeln!(
                md,
                "* CPython computes fib({}) serially in {} ms, {}x Rust's {} ms: most of every ours / CPython ratio is the interpreter, not the pool.",
                s.fib_text(),
                fmt_ms(py_serial),
                fmt_num(py_serial / rust_serial, 0),
                fmt_ms(rust_serial)
            );
        }
        let _ = writeln!(
            md,
            "* With {w} workers the speed-up over the serial run is {}x for our thread pool, {}x for rayon and {}x for our process pool; the ideal is {}x.",
            fmt_num(self.speedup(wl, Variant::OursThread, w), 2),
            fmt_num(self.speedup(wl, Variant::Rayon, w), 2),
            fmt_num(self.speedup(wl, Variant::OursProcess, w), 2),
            fmt_num(self.fib_ideal_speedup(w), 2),
        );
        let _ = writeln!(
            md,
            "* Our thread pool over rayon, paired: {}; at {w} workers {}.",
            self.ratios_by_w(wl, Variant::OursThread, Variant::Rayon),
            describe_ratio(self.ratio(wl, Variant::OursThread, Variant::Rayon, w)),
        );
        let diffs: Vec<String> = s
            .workers
            .iter()
            .map(|&w| {
                format!(
                    "{:+.1} ms at {w}",
                    self.difference(wl, Variant::OursProcess, Variant::OursThread, w)
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "* Our process pool's time minus our thread pool's on the same work: {} (median of the paired differences). That is the price of starting the workers (fork + exec of this binary, connect), encoding the arguments and results, and reaping the workers at shutdown.",
            diffs.join(", ")
        );
        if self.python.is_some() {
            let py_thread = self.speedup(wl, Variant::PyThread, w);
            let gil = if py_thread < 1.1 {
                "gains nothing on fib"
            } else {
                "gains a little on fib"
            };
            let _ = writeln!(
                md,
                "* CPython's `ThreadPoolExecutor` {gil} ({}x over CPython's serial run at {w} workers: the GIL runs one fib at a time); its `ProcessPoolExecutor` reaches {}x. At {w} workers our process pool takes {} of the time of CPython's (paired), our thread pool {} of CPython's thread pool's.",
                fmt_num(py_thread, 2),
                fmt_num(self.speedup(wl, Variant::PyProcess, w), 2),
                fmt_sig(self.ratio(wl, Variant::OursProcess, Variant::PyProcess, w)),
                fmt_sig(self.ratio(wl, Variant::OursThread, Variant::PyThread, w)),
            );
        }
        if let Some(&most) = s.workers.iter().max()
            && most > self.cores
        {
            let _ = writeln!(
                md,
                "* More workers than the {} cores: with {most} workers our thread pool takes {} of its time at {w} (paired), rayon {}; the ideal {}.",
                self.cores,
                fmt_sig(paired(
                    &self.series(wl, Variant::OursThread, most),
                    &self.series(wl, Variant::OursThread, w)
                )),
                fmt_sig(paired(
                    &self.series(wl, Variant::Rayon, most),
                    &self.series(wl, Variant::Rayon, w)
                )),
                fmt_sig(self.fib_ideal_speedup(w) / self.fib_ideal_speedup(most)),
            );
        }
    }

    fn sleep_section(&self, md: &mut String) {
        let s = self.settings;
        let wl = Workload::Sleep;
        let _ = writeln!(
            md,
            "\n#### sleep: {} tasks of {} ms each, results taken as they complete\n",
            s.sleep_tasks, s.sleep_ms
        );
        let _ = writeln!(
            md,
            "`std::thread::sleep` in Rust, `time.sleep` in CPython; the same pools, timed the same way as fib. Serial is {} × {} ms = {} ms, computed, not slept; the ideal with w workers is ceil({} / w) × {} ms. \"Over the ideal\" is the median of (time - ideal) over the runs.\n",
            s.sleep_tasks,
            s.sleep_ms,
            fmt_num(s.sleep_serial_ms(), 0),
            s.sleep_tasks,
            s.sleep_ms
        );
        let _ = writeln!(md, "Median wall time in ms (speed-up over serial):\n");
        let ideal = |w: usize| {
            format!(
                "{} ({}x)",
                fmt_num(s.sleep_ideal_ms(w), 0),
                fmt_num(s.sleep_serial_ms() / s.sleep_ideal_ms(w), 2)
            )
        };
        self.overview(md, wl, ("ideal (ms)", &ideal));
        let _ = writeln!(
            md,
            "\nEvery variant and worker count; \"ours / peer\" is our time over the peer's, run by run (below 1: ours is faster):\n"
        );
        self.details(md, wl);

        // Findings.
        let _ = writeln!(md, "\nIn this run:\n");
        let most = s.workers.iter().copied().max().unwrap_or(1);
        let over = |v: Variant, w: usize| median(self.sleep_over_ideal(v, w));
        let list: Vec<String> = self
            .variants()
            .into_iter()
            .map(|v| format!("{} +{} ms", v.label(), fmt_num(over(v, most), 1)))
            .collect();
        let past = if most > self.cores {
            format!(
                "Sleeping needs no core, so the pools scale past the {} cores: with",
                self.cores
            )
        } else {
            "With".to_owned()
        };
        let _ = writeln!(
            md,
            "* {past} {most} workers the ideal is {} ms ({}x serial), and the time over it is: {}.",
            fmt_num(s.sleep_ideal_ms(most), 0),
            fmt_num(s.sleep_serial_ms() / s.sleep_ideal_ms(most), 2),
            list.join(", ")
        );
        let steps = s.sleep_tasks.div_ceil(most as u64) as f64;
        let _ = writeln!(
            md,
            "* Our thread pool's time over the ideal at {most} workers is {} ms per sleep a worker does in turn ({} in turn): the pool's hand-offs plus the OS's timer slack on every sleep. Over rayon: {}.",
            fmt_num(over(Variant::OursThread, most) / steps, 2),
            steps,
            self.ratios_by_w(wl, Variant::OursThread, Variant::Rayon),
        );
        let mut starts = vec![format!(
            "ours {}",
            s.workers
                .iter()
                .map(|&w| {
                    format!(
                        "{:+.1} ms at {w}",
                        self.difference(wl, Variant::OursProcess, Variant::OursThread, w)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        )];
        if self.python.is_some() {
            starts.push(format!(
                "CPython's ({}) {}",
                self.python.map_or("", |p| p.context.as_str()),
                s.workers
                    .iter()
                    .map(|&w| {
                        format!(
                            "{:+.1} ms at {w}",
                            self.difference(wl, Variant::PyProcess, Variant::PyThread, w)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let _ = writeln!(
            md,
            "* What a process pool costs over the same language's thread pool here is mostly starting and reaping its workers (median of the paired differences): {}.",
            starts.join("; ")
        );
        if self.python.is_some() {
            let _ = writeln!(
                md,
                "* Our process pool over CPython's: {}.",
                self.ratios_by_w(wl, Variant::OursProcess, Variant::PyProcess)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // Criterion's rule, kept by the other benches: without `--bench`
    // (cargo test --benches), or with `--test`, only check that it runs.
    let full = has("--bench") && !has("--test");
    let py_context = env::var("CF_BENCH_PY_CONTEXT").unwrap_or_else(|_| "spawn".to_owned());
    let settings = if full {
        Settings {
            runs: env_number("CF_BENCH_RUNS", 5).max(1) as usize,
            warm_up_runs: 1,
            workers: parse_workers(
                &env::var("CF_BENCH_WORKERS").unwrap_or_else(|_| "1,2,3,4".to_owned()),
            ),
            fib: parse_range(
                "CF_BENCH_FIB",
                &env::var("CF_BENCH_FIB").unwrap_or_else(|_| "28..34".to_owned()),
            ),
            sleep_tasks: env_number("CF_BENCH_SLEEP_TASKS", 30).max(1),
            sleep_ms: env_number("CF_BENCH_SLEEP_MS", 20),
            fib_reps: env_number("CF_BENCH_FIB_REPS", 5).max(1) as usize,
            py_context,
            full,
        }
    } else {
        Settings {
            runs: 1,
            warm_up_runs: 0,
            workers: vec![1, 2],
            fib: 15..18,
            sleep_tasks: 3,
            sleep_ms: 1,
            fib_reps: 1,
            py_context,
            full,
        }
    };
    let python = find_python(&settings.py_context);
    let report = paired_phase(python.as_ref(), &settings);
    println!("\n{}", report.plain());
    // On a smoke run the report is printed (its code runs too) but not
    // written.
    publish_report(&report.markdown(), settings.full, "workloads_summary.md");
    if settings.full {
        write_data("workloads", &report.data_rows());
    }
}
