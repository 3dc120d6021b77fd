//! `ThreadPoolExecutor` side by side with its peers, on 2 workers:
//! rayon's `ThreadPool::spawn` + a crossbeam channel, the `threadpool`
//! crate's `execute` + a crossbeam channel, a hand-made pool with one
//! mutex-and-condvar future per task, and CPython's `ThreadPoolExecutor`
//! (through `benches/python/tpe_overhead.py`). The figures and how to read
//! them are in `docs/PERFORMANCE.md`.
//!
//! ```text
//! cargo bench --bench thread_pool
//! ```
//!
//! Two benchmarks:
//!
//! * **per task**: submit N no-op tasks, then take every result in
//!   submission order (the peers: every task sends its value down one
//!   channel, the caller receives N values). Ours through
//!   [`Executor::submit`] of a plain `fn`, and through `map` with default
//!   options and with `chunksize` 1000.
//! * **idle round trip**: on a warm, otherwise idle pool, submit one no-op
//!   and wait for its result, then the next; median and p99 per call.
//!
//! Each runs twice:
//!
//! 1. as criterion benchmarks (`iter_custom`; one criterion iteration is one
//!    task or one round trip, so a sample is a big batch), variant after
//!    variant as criterion does;
//! 2. as a *paired* phase that runs every variant once per run,
//!    interleaved (A B C, B C A, ...: the order rotates by one each run),
//!    for `CF_BENCH_RUNS` runs after one warm-up run, and prints medians and
//!    ratios taken pair by pair within each run, as the project's baseline
//!    measurements did on its noisy 2-core machine. It ends with a markdown
//!    report (machine, tables, goals) that `docs/PERFORMANCE.md` copies;
//!    the report is also written to `target/thread_pool_summary.md` (under
//!    `CARGO_TARGET_DIR` if set).
//!
//! Environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PYTHON` | `pyenv which python3`, else `python3` | the interpreter for the CPython rows; none found: the rows are skipped with a note |
//! | `CF_BENCH_RUNS` | 7 | paired runs (after one warm-up run) |
//! | `CF_BENCH_TASKS` | 1000000 | tasks per run, Rust variants |
//! | `CF_BENCH_PY_TASKS` | 100000 | CPython tasks per run (~15-20 µs each), and its smallest batch per criterion sample |
//! | `CF_BENCH_CALLS` | 2000 | round trips per run |
//! | `CF_BENCH_CRITERION` | 1 | 0: skip the criterion phase |
//! | `CF_BENCH_PAIRED` | 1 | 0: skip the paired phase |
//!
//! Under `cargo test --benches` (criterion's test mode) everything runs
//! once with tiny sizes, as a smoke test, and no report is written.

use std::collections::HashMap;
use std::env;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use concurrent_futures::prelude::*;
use criterion::{Criterion, SamplingMode, Throughput};

const WORKERS: usize = 2;
const CHUNKSIZE: usize = 1000;
const PY_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/python/tpe_overhead.py"
);

/// The task every variant runs.
fn noop(x: u64) -> u64 {
    black_box(x)
}

fn expected_sum(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

// ---------------------------------------------------------------------------
// The pools
// ---------------------------------------------------------------------------

struct Pools {
    ours: ThreadPoolExecutor,
    rayon: rayon::ThreadPool,
    threadpool: threadpool::ThreadPool,
    hand_made: HandMade,
}

/// The simplest pool with a future per task, the shape of
/// `submit() -> future -> result()` built from parts: 2 std threads on a
/// crossbeam queue of boxed closures, each task completing an
/// `Arc<(Mutex<Option<u64>>, Condvar)>` (as in `shared/research/baselines.md`,
/// B1-B3, last row).
struct HandMade {
    jobs: Option<crossbeam_channel::Sender<Box<dyn FnOnce() + Send>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

type HandMadeFuture = Arc<(Mutex<Option<u64>>, Condvar)>;

impl HandMade {
    fn new(workers: usize) -> HandMade {
        let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        let threads = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
            })
            .collect();
        HandMade {
            jobs: Some(tx),
            threads,
        }
    }

    fn submit(&self, f: fn(u64) -> u64, arg: u64) -> HandMadeFuture {
        let future = HandMadeFuture::default();
        let completer = future.clone();
        let job = Box::new(move || {
            let value = f(arg);
            *completer.0.lock().expect("not poisoned") = Some(value);
            completer.1.notify_one();
        });
        self.jobs
            .as_ref()
            .expect("running")
            .send(job)
            .expect("workers alive");
        future
    }

    fn result(future: &HandMadeFuture) -> u64 {
        let mut slot = future.0.lock().expect("not poisoned");
        loop {
            if let Some(value) = *slot {
                return value;
            }
            slot = future.1.wait(slot).expect("not poisoned");
        }
    }
}

impl Drop for HandMade {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Pools {
    /// Builds every pool with 2 workers and warms it (all threads started).
    fn new() -> Pools {
        let pools = Pools {
            ours: ThreadPoolExecutor::builder()
                .max_workers(WORKERS)
                .build()
                .expect("2 workers is a valid configuration"),
            rayon: rayon::ThreadPoolBuilder::new()
                .num_threads(WORKERS)
                .build()
                .expect("rayon pool"),
            threadpool: threadpool::ThreadPool::new(WORKERS),
            hand_made: HandMade::new(WORKERS),
        };
        for v in PER_TASK {
            (v.run)(&pools, 20_000);
        }
        pools
    }
}

// ---------------------------------------------------------------------------
// Per task: submit all, then take all results
// ---------------------------------------------------------------------------

/// A Rust per-task variant: runs `n` tasks, returns the elapsed time.
struct PerTask {
    key: &'static str,
    label: &'static str,
    run: fn(&Pools, u64) -> Duration,
}

const PER_TASK: &[PerTask] = &[
    PerTask {
        key: "ours_submit",
        label: "ours: `submit(fn, arg)` + `result()`",
        run: ours_submit,
    },
    PerTask {
        key: "ours_map",
        label: "ours: `map(fn, items)`, default options",
        run: ours_map,
    },
    PerTask {
        key: "ours_map_chunk1000",
        label: "ours: `map_with(.., chunksize(1000))`",
        run: ours_map_chunked,
    },
    PerTask {
        key: "rayon_spawn_channel",
        label: "rayon `ThreadPool::spawn` + crossbeam channel",
        run: rayon_spawn,
    },
    PerTask {
        key: "threadpool_execute_channel",
        label: "`threadpool` `execute` + crossbeam channel",
        run: threadpool_execute,
    },
    PerTask {
        key: "hand_made_future_per_task",
        label: "hand-made pool, a `Mutex` + `Condvar` future per task",
        run: hand_made,
    },
];
const RAYON_INDEX: usize = 3;

fn ours_submit(p: &Pools, n: u64) -> Duration {
    let start = Instant::now();
    let futures: Vec<_> = (0..n)
        .map(|i| p.ours.submit(noop, i).expect("submit"))
        .collect();
    let mut sum = 0;
    for f in futures {
        sum += *f.result().expect("no-op task");
    }
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_sum(n));
    elapsed
}

fn ours_map(p: &Pools, n: u64) -> Duration {
    let start = Instant::now();
    let sum: u64 = p.ours.map(noop, 0..n).map(|r| r.expect("no-op")).sum();
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_sum(n));
    elapsed
}

fn ours_map_chunked(p: &Pools, n: u64) -> Duration {
    let options = MapOptions::new().chunksize(CHUNKSIZE).expect("chunksize");
    let start = Instant::now();
    let sum: u64 = p
        .ours
        .map_with(noop, 0..n, options)
        .map(|r| r.expect("no-op"))
        .sum();
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_sum(n));
    elapsed
}

/// Submits `n` no-op jobs with `spawn(i, tx)`, each sending its value down
/// one channel, and receives them all (the rayon and `threadpool` rows).
/// `spawn` builds the job itself, so the peers box nothing extra.
fn spawn_and_channel(n: u64, spawn: impl Fn(u64, crossbeam_channel::Sender<u64>)) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = Instant::now();
    for i in 0..n {
        spawn(i, tx.clone());
    }
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().expect("a result");
    }
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_sum(n));
    elapsed
}

fn rayon_spawn(p: &Pools, n: u64) -> Duration {
    spawn_and_channel(n, |i, tx| {
        p.rayon
            .spawn(move || tx.send(noop(i)).expect("receiver alive"))
    })
}

fn threadpool_execute(p: &Pools, n: u64) -> Duration {
    spawn_and_channel(n, |i, tx| {
        p.threadpool
            .execute(move || tx.send(noop(i)).expect("receiver alive"))
    })
}

fn hand_made(p: &Pools, n: u64) -> Duration {
    let start = Instant::now();
    let futures: Vec<_> = (0..n).map(|i| p.hand_made.submit(noop, i)).collect();
    let mut sum = 0;
    for f in &futures {
        sum += HandMade::result(f);
    }
    drop(futures);
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_sum(n));
    elapsed
}

// ---------------------------------------------------------------------------
// Idle round trip
// ---------------------------------------------------------------------------

/// A Rust round-trip variant: one submit -> result, timed around the call.
struct RoundTrip {
    key: &'static str,
    label: &'static str,
    once: fn(&Pools, u64),
}

const ROUND_TRIP: &[RoundTrip] = &[
    RoundTrip {
        key: "ours_submit_result",
        label: "ours: `submit(fn, arg)?.result()`",
        once: |p, i| {
            let got = *p
                .ours
                .submit(noop, i)
                .expect("submit")
                .result()
                .expect("no-op");
            debug_assert_eq!(got, i);
        },
    },
    RoundTrip {
        key: "rayon_spawn_recv",
        label: "rayon `spawn` + channel `recv`",
        once: |p, i| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            p.rayon
                .spawn(move || tx.send(noop(i)).expect("receiver alive"));
            let got = rx.recv().expect("a result");
            debug_assert_eq!(got, i);
        },
    },
    RoundTrip {
        key: "threadpool_execute_recv",
        label: "`threadpool` `execute` + channel `recv`",
        once: |p, i| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            p.threadpool
                .execute(move || tx.send(noop(i)).expect("receiver alive"));
            let got = rx.recv().expect("a result");
            debug_assert_eq!(got, i);
        },
    },
];

/// `calls` round trips after a short warm-up; the per-call times in ns.
fn round_trips(p: &Pools, once: fn(&Pools, u64), calls: u64) -> Vec<u64> {
    for i in 0..200 {
        once(p, i);
    }
    let mut samples = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        let start = Instant::now();
        once(p, i);
        samples.push(start.elapsed().as_nanos() as u64);
    }
    samples
}

/// The `permille`/1000 quantile by nearest rank, as the Python script.
fn nearest_rank(sorted: &[u64], permille: usize) -> u64 {
    let rank = (sorted.len() * permille).div_ceil(1000).max(1);
    sorted[rank - 1]
}

fn median_p99(mut samples: Vec<u64>) -> (f64, f64) {
    samples.sort_unstable();
    (
        nearest_rank(&samples, 500) as f64,
        nearest_rank(&samples, 990) as f64,
    )
}

// ---------------------------------------------------------------------------
// CPython, through benches/python/tpe_overhead.py
// ---------------------------------------------------------------------------

struct Python {
    exe: String,
    /// Where `exe` came from, for the report.
    source: &'static str,
    version: String,
}

/// `PYTHON`, else `pyenv which python3` (the real interpreter: the pyenv
/// shim adds ~60 ms per start), else `python3`; checked by running the
/// script once. `None`, with a note on stderr, if that fails.
fn find_python() -> Option<Python> {
    let (exe, source) = match env::var("PYTHON") {
        Ok(p) if !p.trim().is_empty() => (p.trim().to_owned(), "$PYTHON"),
        _ => match Command::new("pyenv").args(["which", "python3"]).output() {
            Ok(out) if out.status.success() && !out.stdout.trim_ascii().is_empty() => (
                String::from_utf8_lossy(out.stdout.trim_ascii()).into_owned(),
                "`pyenv which python3`",
            ),
            _ => ("python3".to_owned(), "`python3` on PATH"),
        },
    };
    let mut python = Python {
        exe,
        source,
        version: String::new(),
    };
    match python.run(&["overhead", "10"]) {
        Ok((info, _)) => {
            python.version = info.get("python").cloned().unwrap_or_default();
            Some(python)
        }
        Err(e) => {
            eprintln!(
                "note: no usable Python ({} from {}: {e}); the CPython rows are skipped. \
                 Set PYTHON=/path/to/python3 to include them.",
                python.exe, python.source
            );
            None
        }
    }
}

type Fields = HashMap<String, String>;

impl Python {
    /// Runs the script; the fields of its `INFO` line and of its (last)
    /// `RESULT` line.
    fn run(&self, args: &[&str]) -> Result<(Fields, Fields), String> {
        let out = Command::new(&self.exe)
            .arg(PY_SCRIPT)
            .args(args)
            .output()
            .map_err(|e| format!("could not start it: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!("{}: {}", out.status, stderr.trim()));
        }
        let fields = |tag: &str| -> Option<Fields> {
            let line = stdout.lines().rev().find(|l| l.starts_with(tag))?;
            Some(
                line.split_whitespace()
                    .skip(1)
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )
        };
        let result = fields("RESULT ").ok_or_else(|| format!("no RESULT line in {stdout:?}"))?;
        Ok((fields("INFO ").unwrap_or_default(), result))
    }

    fn number(fields: &Fields, key: &str) -> Result<f64, String> {
        fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no number {key} in {fields:?}"))
    }

    /// ns per task for `n` tasks submitted, then collected.
    fn per_task(&self, n: u64) -> Result<f64, String> {
        let (_, r) = self.run(&["overhead", &n.to_string()])?;
        Self::number(&r, "per_task_ns")
    }

    /// (median, p99, total) ns of `calls` idle round trips.
    fn round_trips(&self, calls: u64) -> Result<(f64, f64, f64), String> {
        let (_, r) = self.run(&["latency", &calls.to_string()])?;
        Ok((
            Self::number(&r, "median_ns")?,
            Self::number(&r, "p99_ns")?,
            Self::number(&r, "total_ns")?,
        ))
    }
}

// ---------------------------------------------------------------------------
// Phase 1: criterion
// ---------------------------------------------------------------------------

fn criterion_phase(c: &mut Criterion, pools: &Pools, python: Option<&Python>, py_batch: u64) {
    let mut g = c.benchmark_group("per_task");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for v in PER_TASK {
        g.bench_function(v.key, |b| b.iter_custom(|iters| (v.run)(pools, iters)));
    }
    if let Some(py) = python {
        // CPython's cost per task grows with the batch (~10 µs at a few
        // hundred tasks, ~15-20 µs from ~100,000 on; part of it is its
        // cyclic garbage collector walking the live futures), and criterion
        // would pick batches of a few hundred. So every call runs one batch
        // of at least `py_batch` tasks in a fresh interpreter and charges
        // `iters` tasks at that batch's cost per task. Criterion sizes its
        // samples by a call's wall time (seconds here), so each sample is
        // one such call, and a 1 ns warm-up is a single call.
        g.warm_up_time(Duration::from_nanos(1))
            .measurement_time(Duration::from_secs(10));
        g.bench_function("cpython_tpe_submit_result", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                match py.per_task(iters.max(py_batch)) {
                    Ok(ns) => Duration::from_nanos((ns * iters as f64) as u64),
                    Err(e) => {
                        eprintln!("warning: CPython run failed ({e}); counting its wall time");
                        start.elapsed()
                    }
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("idle_round_trip");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for v in ROUND_TRIP {
        g.bench_function(v.key, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    (v.once)(pools, i);
                }
                start.elapsed()
            })
        });
    }
    if let Some(py) = python {
        g.bench_function("cpython_tpe_submit_result", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                match py.round_trips(iters) {
                    Ok((_, _, total)) => Duration::from_nanos(total as u64),
                    Err(e) => {
                        eprintln!("warning: CPython run failed ({e}); counting its wall time");
                        start.elapsed()
                    }
                }
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// Phase 2: paired, interleaved runs
// ---------------------------------------------------------------------------

struct Settings {
    runs: usize,
    warm_up_runs: usize,
    tasks: u64,
    py_tasks: u64,
    calls: u64,
    /// A real benchmark run (not `cargo test --benches`): write the report.
    full: bool,
}

/// One row of a table: a figure per run (NaN where a run failed).
struct Series {
    label: String,
    n: u64,
    runs: Vec<f64>,
}

struct LatencySeries {
    label: String,
    medians: Vec<f64>,
    p99s: Vec<f64>,
}

fn paired_phase(pools: &Pools, python: Option<&Python>, s: &Settings) -> String {
    let load_before = load_average();
    let total = s.warm_up_runs + s.runs;
    println!(
        "\n== paired phase: {} runs after {} warm-up, variants interleaved ==",
        s.runs, s.warm_up_runs
    );

    // Per task.
    let mut per_task: Vec<Series> = PER_TASK
        .iter()
        .map(|v| Series {
            label: v.label.to_owned(),
            n: s.tasks,
            runs: Vec::new(),
        })
        .collect();
    let mut py_per_task = python.map(|_| Series {
        label: "CPython `ThreadPoolExecutor` `submit` + `result()`".to_owned(),
        n: s.py_tasks,
        runs: Vec::new(),
    });
    // Variant k < PER_TASK.len() is PER_TASK[k]; the one after is CPython.
    let variants = PER_TASK.len() + usize::from(python.is_some());
    for run in 0..total {
        let warm = run < s.warm_up_runs;
        let mut line = format!(
            "per task, run {}{}:",
            run + 1,
            if warm { " (warm-up)" } else { "" }
        );
        // Interleaved, and rotated by one each run so that no variant
        // always follows the same neighbour (or the Python subprocess).
        for k in (0..variants).map(|j| (j + run) % variants) {
            let (key, ns, series) = match PER_TASK.get(k) {
                Some(v) => (
                    v.key,
                    (v.run)(pools, s.tasks).as_nanos() as f64 / s.tasks as f64,
                    &mut per_task[k],
                ),
                None => {
                    let py = python.expect("a CPython variant only with Python");
                    let ns = py.per_task(s.py_tasks).unwrap_or_else(|e| {
                        eprintln!("warning: CPython run failed: {e}");
                        f64::NAN
                    });
                    ("cpython", ns, py_per_task.as_mut().expect("with Python"))
                }
            };
            let _ = write!(line, " {key}={ns:.1}");
            if !warm {
                series.runs.push(ns);
            }
        }
        println!("{line}");
    }

    // Idle round trip.
    let mut latency: Vec<LatencySeries> = ROUND_TRIP
        .iter()
        .map(|v| LatencySeries {
            label: v.label.to_owned(),
            medians: Vec::new(),
            p99s: Vec::new(),
        })
        .collect();
    let mut py_latency = python.map(|_| LatencySeries {
        label: "CPython `ThreadPoolExecutor` `submit(...).result()`".to_owned(),
        medians: Vec::new(),
        p99s: Vec::new(),
    });
    let variants = ROUND_TRIP.len() + usize::from(python.is_some());
    for run in 0..total {
        let warm = run < s.warm_up_runs;
        let mut line = format!(
            "round trip, run {}{} (median/p99 ns):",
            run + 1,
            if warm { " (warm-up)" } else { "" }
        );
        for k in (0..variants).map(|j| (j + run) % variants) {
            let (key, (median, p99), series) = match ROUND_TRIP.get(k) {
                Some(v) => (
                    v.key,
                    median_p99(round_trips(pools, v.once, s.calls)),
                    &mut latency[k],
                ),
                None => {
                    let py = python.expect("a CPython variant only with Python");
                    let (median, p99, _) = py.round_trips(s.calls).unwrap_or_else(|e| {
                        eprintln!("warning: CPython run failed: {e}");
                        (f64::NAN, f64::NAN, f64::NAN)
                    });
                    (
                        "cpython",
                        (median, p99),
                        py_latency.as_mut().expect("with Python"),
                    )
                }
            };
            let _ = write!(line, " {key}={median:.0}/{p99:.0}");
            if !warm {
                series.medians.push(median);
                series.p99s.push(p99);
            }
        }
        println!("{line}");
    }

    let report = Report {
        load: (load_before, load_average()),
        settings: s,
        python,
        per_task,
        py_per_task,
        latency,
        py_latency,
    };
    println!("\n{}", report.plain());
    report.markdown()
}

// ---------------------------------------------------------------------------
// Statistics and the report
// ---------------------------------------------------------------------------

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The median of `a[i] / b[i]`: a ratio taken pair by pair within each run.
fn paired(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| x / y))
}

fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "n/a".to_owned()
    }
}

fn fmt_times(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.1}x")
    } else {
        "n/a".to_owned()
    }
}

fn fmt_runs(runs: &[f64], scale: f64) -> String {
    runs.iter()
        .map(|x| format!("{:.1}", x / scale))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1000000` -> `1,000,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Report<'a> {
    /// `/proc/loadavg` before and after the paired phase.
    load: (String, String),
    settings: &'a Settings,
    python: Option<&'a Python>,
    per_task: Vec<Series>,
    py_per_task: Option<Series>,
    latency: Vec<LatencySeries>,
    py_latency: Option<LatencySeries>,
}

impl Report<'_> {
    fn all_per_task(&self) -> impl Iterator<Item = &Series> {
        self.per_task.iter().chain(&self.py_per_task)
    }

    fn all_latency(&self) -> impl Iterator<Item = &LatencySeries> {
        self.latency.iter().chain(&self.py_latency)
    }

    fn rayon(&self) -> &Series {
        &self.per_task[RAYON_INDEX]
    }

    /// CPython's figure over this one's, pair by pair.
    fn cpython_over(&self, s: &Series) -> f64 {
        self.py_per_task
            .as_ref()
            .map_or(f64::NAN, |py| paired(&py.runs, &s.runs))
    }

    fn plain(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "per task (2 workers; submit all, then take all results), {} paired runs",
            self.settings.runs
        );
        let _ = writeln!(
            out,
            "{:<52} {:>10} {:>14} {:>10} {:>12}",
            "variant", "N/run", "median ns/task", "vs rayon", "CPython/this"
        );
        for s in self.all_per_task() {
            let _ = writeln!(
                out,
                "{:<52} {:>10} {:>14.1} {:>10} {:>12}",
                s.label.replace('`', ""),
                s.n,
                median(s.runs.iter().copied()),
                fmt_ratio(paired(&s.runs, &self.rayon().runs)),
                fmt_times(self.cpython_over(s)),
            );
        }
        let _ = writeln!(
            out,
            "\nidle round trip ({} calls per run), {} paired runs",
            self.settings.calls, self.settings.runs
        );
        let _ = writeln!(
            out,
            "{:<52} {:>10} {:>10} {:>12} {:>12}",
            "variant", "median us", "p99 us", "vs ours p50", "CPython/this"
        );
        let ours = &self.latency[0];
        for s in self.all_latency() {
            let _ = writeln!(
                out,
                "{:<52} {:>10.1} {:>10.1} {:>12} {:>12}",
                s.label.replace('`', ""),
                median(s.medians.iter().copied()) / 1e3,
                median(s.p99s.iter().copied()) / 1e3,
                fmt_ratio(paired(&s.medians, &ours.medians)),
                fmt_times(
                    self.py_latency
                        .as_ref()
                        .map_or(f64::NAN, |py| paired(&py.medians, &s.medians))
                ),
            );
        }
        out
    }

    fn markdown(&self) -> String {
        let s = self.settings;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "<!-- generated by `cargo bench --bench thread_pool` (benches/thread_pool.rs) on {} -->\n",
            today()
        );
        let _ = writeln!(md, "### Machine and command\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| CPU | {} |", cpu_description());
        let _ = writeln!(md, "| Rust | {} |", command_line("rustc", &["--version"]));
        let _ = writeln!(md, "| Library | {} |", git_state());
        let _ = writeln!(md, "| Crates | {} |", crate_versions());
        match self.python {
            Some(py) => {
                let _ = writeln!(
                    md,
                    "| Python | CPython {} (`{}`, from {}) |",
                    py.version, py.exe, py.source
                );
            }
            None => {
                let _ = writeln!(md, "| Python | none found: CPython rows skipped |");
            }
        }
        let _ = writeln!(md, "| Command | `cargo bench --bench thread_pool` |");
        let _ = writeln!(
            md,
            "| Load average (1/5/15 min) | {} before the paired runs, {} after |",
            self.load.0, self.load.1
        );
        let _ = writeln!(
            md,
            "| Runs | {} paired runs after {} warm-up run; in each run every variant once, interleaved, the order rotated by one per run (A B C, B C A, ...) |",
            s.runs, s.warm_up_runs
        );

        let _ = writeln!(
            md,
            "\n### Per task: submit N no-op tasks, then every result in submission order (2 workers)\n"
        );
        let _ = writeln!(
            md,
            "rayon and `threadpool`: each task sends its value down one crossbeam channel and \
             the caller receives N values (no per-task future). Hand-made: 2 std threads on a \
             crossbeam queue of boxed closures, each task completing its own \
             `Arc<(Mutex<Option<u64>>, Condvar)>`, waited for in submission order. CPython: \
             `benches/python/tpe_overhead.py`, with fewer tasks per run (its cost per task \
             grows with the batch and levels off at about 100,000).\n"
        );
        let _ = writeln!(
            md,
            "| Variant | N per run | ns/task (median) | ratio vs rayon (paired) | CPython / this (paired) | runs (ns/task) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
        for r in self.all_per_task() {
            let _ = writeln!(
                md,
                "| {} | {} | **{:.1}** | {} | {} | {} |",
                r.label,
                thousands(r.n),
                median(r.runs.iter().copied()),
                fmt_ratio(paired(&r.runs, &self.rayon().runs)),
                fmt_times(self.cpython_over(r)),
                fmt_runs(&r.runs, 1.0),
            );
        }

        let _ = writeln!(
            md,
            "\n### Idle round trip: one `submit` -> `result` at a time on a warm 2-worker pool\n"
        );
        let _ = writeln!(
            md,
            "{} calls per run; per run the median and p99 (nearest rank) of the per-call times; the table gives the median of those over the runs.\n",
            thousands(s.calls)
        );
        let _ = writeln!(
            md,
            "| Pool | median (µs) | p99 (µs) | median vs ours (paired) | p99 vs ours (paired) | CPython / this, median (paired) | run medians (µs) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
        let ours = &self.latency[0];
        for r in self.all_latency() {
            let _ = writeln!(
                md,
                "| {} | **{:.1}** | {:.1} | {} | {} | {} | {} |",
                r.label,
                median(r.medians.iter().copied()) / 1e3,
                median(r.p99s.iter().copied()) / 1e3,
                fmt_ratio(paired(&r.medians, &ours.medians)),
                fmt_ratio(paired(&r.p99s, &ours.p99s)),
                fmt_times(
                    self.py_latency
                        .as_ref()
                        .map_or(f64::NAN, |py| paired(&py.medians, &r.medians))
                ),
                fmt_runs(&r.medians, 1e3),
            );
        }

        let _ = writeln!(md, "\n### Goals in this run\n");
        let _ = writeln!(
            md,
            "| Goal | target | measured (paired, this run) | met? |\n|---|---|---:|---|"
        );
        let submit = &self.per_task[0];
        let vs_rayon = paired(&submit.runs, &self.rayon().runs);
        let _ = writeln!(
            md,
            "| per task: `submit` + `result` no slower than rayon spawn + channel | <= 1.00x rayon | {} | {} |",
            fmt_ratio(vs_rayon),
            verdict(vs_rayon, 1.0),
        );
        let over_py = self.cpython_over(submit);
        let _ = writeln!(
            md,
            "| per task: cheaper than CPython's `ThreadPoolExecutor` | >= 50x (aim: 100x) | {} | {} |",
            fmt_times(over_py),
            verdict_times(over_py, 50.0, 100.0),
        );
        let lat_py = self
            .py_latency
            .as_ref()
            .map_or(f64::NAN, |py| paired(&py.medians, &ours.medians));
        let _ = writeln!(
            md,
            "| idle round trip faster than CPython's (median) | >= 5x | {} | {} |",
            fmt_times(lat_py),
            verdict_times(lat_py, 5.0, 5.0),
        );
        let _ = writeln!(md, "\n<!-- end of the generated block -->");
        md
    }
}

/// For "lower is better" targets (`ratio <= target`).
fn verdict(ratio: f64, target: f64) -> String {
    if !ratio.is_finite() {
        "not measured".to_owned()
    } else if ratio <= target {
        "yes".to_owned()
    } else {
        format!(
            "**no**: {:.0} % slower than the target",
            (ratio / target - 1.0) * 100.0
        )
    }
}

/// For "at least this many times better" targets.
fn verdict_times(times: f64, target: f64, aim: f64) -> String {
    if !times.is_finite() {
        "not measured (no Python)".to_owned()
    } else if times < target {
        format!(
            "**no**: {:.0} % short ({:.1}x of {target:.0}x)",
            (1.0 - times / target) * 100.0,
            times
        )
    } else if times < aim {
        format!(
            "yes; the {aim:.0}x aim is missed by {:.0} %",
            (1.0 - times / aim) * 100.0
        )
    } else {
        "yes".to_owned()
    }
}

// ---------------------------------------------------------------------------
// Machine description
// ---------------------------------------------------------------------------

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The commit measured, and whether the working tree had changes.
fn git_state() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let commit = command_line("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    let dirty = command_line(
        "git",
        &["-C", dir, "status", "--porcelain", "--", "crates", "src"],
    );
    match dirty.as_str() {
        "" => format!("commit {commit}"),
        "unknown" => format!("commit {commit} (working tree state unknown)"),
        _ => format!("commit {commit} + uncommitted changes in crates/ or src/"),
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine
/// shows here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn today() -> String {
    command_line("date", &["-u", "+%Y-%m-%d"])
}

fn cpu_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown model".to_owned());
    format!("{cpus} CPUs (nproc), \"{model}\"")
}

/// The versions of the peers in Cargo.lock.
fn crate_versions() -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .unwrap_or_default();
    let mut found = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && [
                "rayon",
                "threadpool",
                "crossbeam-channel",
                "crossbeam-deque",
                "criterion",
            ]
            .contains(&n)
        {
            found.push(format!("{n} {}", v.trim_matches('"')));
        }
    }
    if found.is_empty() {
        "unknown (no Cargo.lock)".to_owned()
    } else {
        found.join(", ")
    }
}

fn report_path() -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("thread_pool_summary.md")
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn env_number(name: &str, default: u64) -> u64 {
    match env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        // `cargo bench -- --list`: let criterion list its benchmarks.
        let mut c = Criterion::default().configure_from_args();
        criterion_phase(&mut c, &Pools::new(), None, 1);
        return;
    }
    // Criterion's own rule: without `--bench` (cargo test --benches), or
    // with `--test`, it only checks that each benchmark runs.
    let full = has("--bench") && !has("--test");
    // `-- --profile-time N`: criterion runs the chosen benchmarks under a
    // profiler; the paired phase would only get in the way.
    let paired = env_number("CF_BENCH_PAIRED", 1) != 0 && !has("--profile-time");
    let settings = if full {
        Settings {
            runs: env_number("CF_BENCH_RUNS", 7).max(1) as usize,
            warm_up_runs: 1,
            tasks: env_number("CF_BENCH_TASKS", 1_000_000).max(1),
            py_tasks: env_number("CF_BENCH_PY_TASKS", 100_000).max(1),
            calls: env_number("CF_BENCH_CALLS", 2000).max(1),
            full,
        }
    } else {
        Settings {
            runs: 1,
            warm_up_runs: 0,
            tasks: 10_000,
            py_tasks: 1000,
            calls: 100,
            full,
        }
    };

    let python = find_python();
    let pools = Pools::new();
    if env_number("CF_BENCH_CRITERION", 1) != 0 {
        let mut c = Criterion::default().configure_from_args();
        criterion_phase(&mut c, &pools, python.as_ref(), settings.py_tasks);
        c.final_summary();
    }
    if paired {
        let markdown = paired_phase(&pools, python.as_ref(), &settings);
        println!("---- markdown for docs/PERFORMANCE.md ----\n{markdown}---- end ----");
        if settings.full {
            let path = report_path();
            match std::fs::write(&path, &markdown) {
                Ok(()) => println!("(also written to {})", path.display()),
                Err(e) => eprintln!("could not write {}: {e}", path.display()),
            }
        }
    }
}
