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

#[path = "common/mod.rs"]
mod common;

use std::env;
use std::fmt::Write as _;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use concurrent_futures::prelude::*;
use criterion::{Criterion, SamplingMode, Throughput};

use common::*;

const WORKERS: usize = 2;
const CHUNKSIZE: usize = 1000;
/// The peers whose versions in Cargo.lock the report gives.
const PEER_CRATES: &[&str] = &[
    "rayon",
    "threadpool",
    "crossbeam-channel",
    "crossbeam-deque",
    "criterion",
];
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
    let options = MapOptions::new().chunksize(NonZeroUsize::new(CHUNKSIZE).expect("chunksize"));
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

// ---------------------------------------------------------------------------
// CPython, through benches/python/tpe_overhead.py
// ---------------------------------------------------------------------------

struct Python {
    exe: String,
    /// Where `exe` came from, for the report.
    source: &'static str,
    version: String,
}

/// The interpreter of [`python_interpreter`], checked by running the
/// script once. `None`, with a note on stderr, if that fails.
fn find_python() -> Option<Python> {
    let (exe, source) = python_interpreter();
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
            note_no_python(&python.exe, python.source, &e);
            None
        }
    }
}

impl Python {
    /// Runs the script; the fields of its `INFO` line and of its (last)
    /// `RESULT` line.
    fn run(&self, args: &[&str]) -> Result<(Fields, Fields), String> {
        let stdout = run_script(&self.exe, PY_SCRIPT, args)?;
        let tagged = |tag: &str| -> Option<Fields> {
            let line = stdout.lines().rev().find(|l| l.starts_with(tag))?;
            Some(fields(&line[tag.len()..]))
        };
        let result = tagged("RESULT ").ok_or_else(|| format!("no RESULT line in {stdout:?}"))?;
        Ok((tagged("INFO ").unwrap_or_default(), result))
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
    if s.full {
        write_data("thread_pool", &report.data());
    }
    report.markdown()
}

// ---------------------------------------------------------------------------
// Statistics and the report
// ---------------------------------------------------------------------------

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

    /// The figures for `scripts/charts.py`: ns per task, and the idle
    /// round trip's median in µs.
    fn data(&self) -> Vec<DataRow> {
        let chart_label = |label: &str| {
            let label = label.replace('`', "");
            match label.strip_prefix("ours: ") {
                Some(rest) => format!("ThreadPoolExecutor (ours): {rest}"),
                None => label,
            }
        };
        let per_task = self
            .all_per_task()
            .map(|s| DataRow::from_runs("per_task", chart_label(&s.label), None, &s.runs, "ns"));
        let round_trip = self.all_latency().map(|s| {
            let us: Vec<f64> = s.medians.iter().map(|ns| ns / 1e3).collect();
            DataRow::from_runs("round_trip", chart_label(&s.label), None, &us, "us")
        });
        per_task.chain(round_trip).collect()
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
        write_machine_rows(
            &mut md,
            None,
            PEER_CRATES,
            self.python
                .map(|py| format!("CPython {} (`{}`, from {})", py.version, py.exe, py.source)),
            "cargo bench --bench thread_pool",
            &self.load,
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

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

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
        publish_report(&markdown, settings.full, "thread_pool_summary.md");
    }
}
