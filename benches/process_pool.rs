//! `ProcessPoolExecutor` side by side with its peers, on 2 workers, for
//! each start method (`Spawn`, `Fork`, `ForkServer`): CPython's `ProcessPoolExecutor`
//! with the fork, spawn and forkserver contexts (through
//! `benches/python/ppe_bench.py`) and a raw floor, a forked echo child on a
//! `UnixStream::pair()`. The figures and how to read them are in
//! `docs/PERFORMANCE.md`, section "Process pool".
//!
//! ```text
//! cargo bench --bench process_pool
//! cargo bench --bench process_pool --features postcard
//! ```
//!
//! What is measured (every pool has 2 workers and is warm unless said):
//!
//! * **per task**: submit N no-op tasks (`fn(u64) -> u64`), then take every
//!   result in submission order; and `map_with(.., chunksize(1000))` per
//!   item.
//! * **idle round trip**: one `submit` then `result()`, repeated; median and
//!   p99 per call. The floor: 8 bytes to the echo child and back.
//! * **1 MiB echo**: submit N echo tasks of 1 MiB each, then take every
//!   result; MiB/s counts each task's MiB once (as the project's CPython
//!   baseline did), although twice as many bytes cross. Once as `Vec<u8>`
//!   (serde sees a sequence of `u8`) and once as [`ByteBuf`] (serde sees
//!   bytes, as with `serde_bytes`). And one at a time, against 1 MiB to the
//!   echo child and back.
//! * **start-up**: build a pool, submit one no-op, take its result; then
//!   drop the pool (which waits for every worker to exit and be reaped).
//!   In a fresh process (this bench executed again with
//!   `CF_BENCH_FRESH_CHILD` set, a few MiB resident), and again inside the
//!   bench process, whose resident set the other benchmarks have grown
//!   (`Fork` forks the parent, so its size shows there). The fresh
//!   process also runs one pipelined 1 MiB echo burst: the cold-allocator
//!   case of the echo.
//! * **replacement**: a 1-worker pool with `max_tasks_per_child(1)`, so
//!   that every task runs on a fresh worker: N no-op tasks submitted at
//!   once, then every result; per task one retirement, one replacement's
//!   start and one round trip. In the fresh process and in the bench
//!   process; CPython's `max_tasks_per_child=1` with spawn and forkserver
//!   (it refuses the option with fork).
//! * **codec**: the payload codec in process (encode + decode of a small
//!   struct and of 1 MiB), and a small struct's idle round trip through the
//!   pool. The codec is chosen at compile time: bincode by default,
//!   postcard with `--features postcard`; run both commands and compare.
//!
//! Each runs twice:
//!
//! 1. as criterion benchmarks (`iter_custom`), variant after variant;
//! 2. as a *paired* phase: `CF_BENCH_RUNS` runs after one warm-up run; in
//!    each run every variant (ours with each start method, each CPython
//!    context, the raw socket) runs its whole suite once, interleaved, the
//!    order rotated by one each run. Tables give medians over the runs and
//!    ratios taken pair by pair within each run. It ends with a markdown
//!    report that `docs/PERFORMANCE.md` copies, also written to
//!    `target/process_pool_summary[_postcard].md` (under `CARGO_TARGET_DIR`
//!    if set).
//!
//! Environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PYTHON` | `pyenv which python3`, else `python3` | the interpreter for the CPython rows; none found: the rows are skipped with a note |
//! | `CF_BENCH_PY_CONTEXTS` | `fork,spawn,forkserver` | the CPython contexts measured (empty: none) |
//! | `CF_BENCH_RUNS` | 7 | paired runs (after one warm-up run) |
//! | `CF_BENCH_TASKS` | 20000 | no-op tasks per run, ours (chunksize 1) |
//! | `CF_BENCH_PY_TASKS` | 5000 | no-op tasks per run, CPython (~110-150 µs each; its cost per task grows with the batch, the baseline's 171.5 µs was at 20000) |
//! | `CF_BENCH_MAP_ITEMS` | 1000000 | items per run for `map` with chunksize 1000, ours |
//! | `CF_BENCH_PY_MAP_ITEMS` | 100000 | the same, CPython |
//! | `CF_BENCH_CALLS` | 2000 | idle round trips per run, ours and the raw socket |
//! | `CF_BENCH_PY_CALLS` | 1000 | idle round trips per run, CPython (~350 µs each) |
//! | `CF_BENCH_ECHO_TASKS` | 64 | echo tasks per run (pipelined; also the one-at-a-time count), ours and CPython |
//! | `CF_BENCH_ECHO_BYTES` | 1048576 | bytes per echo task |
//! | `CF_BENCH_STARTUPS` | 10 | pools started per run, ours (the median is kept) |
//! | `CF_BENCH_PY_STARTUPS` | 3 | pools started per run, CPython (spawn: ~60-80 ms each) |
//! | `CF_BENCH_REPLACEMENTS` | 200 | tasks per run on the `max_tasks_per_child(1)` pool, ours (each on a fresh worker) |
//! | `CF_BENCH_PY_REPLACEMENTS` | 20 | the same, CPython (spawn: ~90 ms each; 0: skipped) |
//! | `CF_BENCH_CRITERION` | 1 | 0: skip the criterion phase |
//! | `CF_BENCH_PAIRED` | 1 | 0: skip the paired phase |
//!
//! Under `cargo test --benches` (criterion's test mode) everything runs
//! once with tiny sizes, as a smoke test, and no report is written.
//!
//! The pool's workers are this bench binary, re-executed (`Spawn`),
//! forked (`Fork`) or forked by a fork server that is this binary
//! re-executed (`ForkServer`); a spawned worker or server takes over
//! before `main` (see the process-pool crate), so nothing here guards
//! `main`.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::env;
use std::fmt::{self, Write as _};
use std::hint::black_box;
use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, MapOptions, ProcessPoolExecutor, StartMethod, task};
use concurrent_futures_task_wire::codec;
use criterion::{Criterion, SamplingMode, Throughput};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use common::*;

const WORKERS: usize = 2;
const CHUNKSIZE: usize = 1000;
/// The crates that matter here, whose versions in Cargo.lock the report gives.
const REPORTED_CRATES: &[&str] = &["bincode", "postcard", "serde", "criterion"];
const PY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/ppe_bench.py");
/// The codec this build encodes payloads with.
const CODEC: &str = if cfg!(feature = "postcard") {
    "postcard"
} else {
    "bincode"
};
/// CPython's per-task figure and procspawn's, from the project's baseline
/// (`shared/research/baselines.md`, A1 and B4): not from this run.
const BASELINE_CPYTHON_PER_TASK_US: f64 = 171.49;
const BASELINE_PROCSPAWN_PER_TASK_US: f64 = 33.9;

// ---------------------------------------------------------------------------
// The tasks
// ---------------------------------------------------------------------------

#[task]
fn noop(x: u64) -> u64 {
    black_box(x)
}

#[task]
fn echo_vec(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

#[task]
fn echo_buf(bytes: ByteBuf) -> ByteBuf {
    bytes
}

#[task]
fn echo_small(small: Small) -> Small {
    small
}

/// A byte vector that serde sees as bytes, not as a sequence of `u8`: what
/// `serde_bytes::ByteBuf` does, in a few lines. With it the codec copies
/// the bytes in one go; a `Vec<u8>` goes through serde one element at a
/// time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ByteBuf(Vec<u8>);

impl Serialize for ByteBuf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteBuf, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ByteBuf, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    v.push(b);
                }
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// The small struct of the codec benchmark: a record of the size a task
/// argument usually has (about 60 bytes encoded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Small {
    id: u64,
    name: String,
    scores: [f32; 4],
    tags: Vec<u16>,
    ratio: f64,
    flag: bool,
}

fn small_value(i: u64) -> Small {
    Small {
        id: i,
        name: format!("item-{i}"),
        scores: [1.5, -2.25, 1e6, 0.1],
        tags: vec![1, 300, 65535, 7],
        ratio: i as f64 / 3.0,
        flag: i.is_multiple_of(2),
    }
}

fn payload(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i % 251) as u8).collect()
}

fn expected_sum(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

// ---------------------------------------------------------------------------
// The raw floor: a forked echo child on a Unix socket pair
// ---------------------------------------------------------------------------

// The three libc calls the floor needs, declared here rather than adding a
// dependency for them (std links libc).
unsafe extern "C" {
    fn fork() -> i32;
    fn _exit(status: i32) -> !;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}

/// A message with this bit set in its 8-byte header is a bulk message of
/// `header & !BULK` bytes that follow; without it, it is an 8-byte ping.
const BULK: u64 = 1 << 63;

/// A child process, forked before the bench starts any thread, that echoes
/// what it reads on its end of a `UnixStream::pair()`: an 8-byte ping comes
/// back as is; a bulk message comes back whole once read whole.
struct Floor {
    sock: UnixStream,
    pid: i32,
}

impl Floor {
    /// Forks the echo child. Call before any thread exists.
    fn start() -> Floor {
        let (parent, child) = UnixStream::pair().expect("socketpair");
        // SAFETY: called from `main` before any thread is started, so the
        // child is a plain copy of a single-threaded process; it only
        // reads, writes, allocates and `_exit`s.
        let pid = unsafe { fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            drop(parent);
            Floor::serve(child);
        }
        drop(child);
        Floor { sock: parent, pid }
    }

    fn serve(mut sock: UnixStream) -> ! {
        let mut buf = Vec::new();
        let mut header = [0_u8; 8];
        let code = loop {
            if sock.read_exact(&mut header).is_err() {
                break 0; // the parent hung up
            }
            let word = u64::from_le_bytes(header);
            let ok = if word & BULK == 0 {
                sock.write_all(&header).is_ok()
            } else {
                buf.resize((word & !BULK) as usize, 0);
                sock.read_exact(&mut buf).is_ok()
                    && sock.write_all(&header).is_ok()
                    && sock.write_all(&buf).is_ok()
            };
            if !ok {
                break 1;
            }
        };
        // SAFETY: leaves the forked child without running the parent's
        // destructors or exit handlers.
        unsafe { _exit(code) }
    }

    /// One 8-byte round trip.
    fn ping(&mut self, i: u64) {
        self.sock.write_all(&i.to_le_bytes()).expect("floor write");
        let mut back = [0_u8; 8];
        self.sock.read_exact(&mut back).expect("floor read");
        debug_assert_eq!(u64::from_le_bytes(back), i);
    }

    /// `data` to the child and back into `back`.
    fn echo(&mut self, data: &[u8], back: &mut Vec<u8>) {
        let header = (data.len() as u64 | BULK).to_le_bytes();
        self.sock.write_all(&header).expect("floor write");
        self.sock.write_all(data).expect("floor write");
        let mut h = [0_u8; 8];
        self.sock.read_exact(&mut h).expect("floor read");
        back.resize(data.len(), 0);
        self.sock.read_exact(back).expect("floor read");
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { waitpid(self.pid, &mut status, 0) };
    }
}

// ---------------------------------------------------------------------------
// Our pools and what each benchmark does with one
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Method {
    /// In the figures' keys, the fresh process's spec and criterion's names.
    key: &'static str,
    /// The variant's name, as in `StartMethod::<name>`.
    name: &'static str,
    method: StartMethod,
}

const METHODS: [Method; 3] = [
    Method {
        key: "spawn",
        name: "Spawn",
        method: StartMethod::Spawn,
    },
    Method {
        key: "fork",
        name: "Fork",
        method: StartMethod::Fork,
    },
    Method {
        key: "forkserver",
        name: "ForkServer",
        method: StartMethod::ForkServer,
    },
];

fn build(method: StartMethod) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(WORKERS)
        .start_method(method)
        .allow_fork_with_threads(true)
        .build()
        .expect("2 workers is a valid configuration")
}

/// A warm pool: both workers connected and past their first tasks.
fn warm(method: StartMethod) -> ProcessPoolExecutor {
    let pool = build(method);
    let futures: Vec<_> = (0..1000)
        .map(|i| pool.submit(noop, i).expect("submit"))
        .collect();
    for f in futures {
        f.result().expect("no-op");
    }
    for i in 0..200 {
        pool.submit(noop, i)
            .expect("submit")
            .result()
            .expect("no-op");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.worker_count() < WORKERS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let buf = ByteBuf(payload(1 << 20));
    for _ in 0..4 {
        pool.submit(echo_buf, buf.clone())
            .expect("submit")
            .result()
            .expect("echo");
    }
    pool
}

fn per_task(pool: &ProcessPoolExecutor, n: u64) -> Duration {
    let start = Instant::now();
    let futures: Vec<_> = (0..n)
        .map(|i| pool.submit(noop, i).expect("submit"))
        .collect();
    let mut sum = 0;
    for f in futures {
        sum += *f.result().expect("no-op task");
    }
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_sum(n));
    elapsed
}

fn map_chunked(pool: &ProcessPoolExecutor, n: u64) -> Duration {
    let options = MapOptions::new().chunksize(NonZeroUsize::new(CHUNKSIZE).expect("chunksize"));
    let start = Instant::now();
    let sum: u64 = pool
        .map_with(noop, 0..n, options)
        .map(|r| r.expect("no-op"))
        .sum();
    let elapsed = start.elapsed();
    assert_eq!(sum, expected_sum(n));
    elapsed
}

fn round_trip(pool: &ProcessPoolExecutor, i: u64) {
    let got = *pool
        .submit(noop, i)
        .expect("submit")
        .result()
        .expect("no-op");
    debug_assert_eq!(got, i);
}

fn small_round_trip(pool: &ProcessPoolExecutor, value: &Small) {
    let got = pool
        .submit(echo_small, value.clone())
        .expect("submit")
        .into_result()
        .expect("echo");
    debug_assert_eq!(&got, value);
}

/// `n` echo tasks submitted at once, then every result taken: the elapsed
/// time. The `n` arguments are copied before the clock starts (CPython's
/// side submits one `bytes` object `n` times, without copying it).
fn echo_pipelined<T: concurrent_futures::Payload + Clone>(
    pool: &ProcessPoolExecutor,
    f: fn(T) -> T,
    value: &T,
    n: u64,
    len: impl Fn(&T) -> usize,
) -> Duration {
    let want = len(value);
    let args: Vec<T> = (0..n).map(|_| value.clone()).collect();
    let start = Instant::now();
    let futures: Vec<_> = args
        .into_iter()
        .map(|arg| pool.submit(f, arg).expect("submit"))
        .collect();
    for fut in futures {
        let got = fut.into_result().expect("echo");
        assert_eq!(len(&got), want);
    }
    start.elapsed()
}

/// `n` 1 MiB echo tasks one at a time: per-call times in ns.
fn echo_sequential(pool: &ProcessPoolExecutor, value: &ByteBuf, n: u64) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let arg = value.clone();
            let start = Instant::now();
            let got = pool
                .submit(echo_buf, arg)
                .expect("submit")
                .into_result()
                .expect("echo");
            let elapsed = start.elapsed();
            assert_eq!(got.0.len(), value.0.len());
            elapsed.as_nanos() as u64
        })
        .collect()
}

/// Build, submit one no-op, take its result (`first`); then drop the pool
/// (`drop`, which waits for both workers to exit and be reaped).
fn startup(method: StartMethod) -> (Duration, Duration) {
    let start = Instant::now();
    let pool = build(method);
    let got = *pool
        .submit(noop, 7)
        .expect("submit")
        .result()
        .expect("no-op");
    let first = start.elapsed();
    drop(pool);
    let total = start.elapsed();
    assert_eq!(got, 7);
    (first, total - first)
}

/// `n` start-ups after one untimed one: the medians of (first result,
/// drop, total) in ns.
fn startups(method: StartMethod, n: u64) -> (f64, f64, f64) {
    startup(method);
    let (mut firsts, mut drops, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (first, drop) = startup(method);
        firsts.push(first.as_nanos() as f64);
        drops.push(drop.as_nanos() as f64);
        totals.push((first + drop).as_nanos() as f64);
    }
    (median(firsts), median(drops), median(totals))
}

/// A 1-worker pool that retires its worker after every task
/// (`max_tasks_per_child(1)`): every task runs on a fresh worker.
fn build_replacing(method: StartMethod) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .start_method(method)
        .allow_fork_with_threads(true)
        .build()
        .expect("1 worker, 1 task per worker is a valid configuration")
}

/// `n` no-op tasks on a [`build_replacing`] pool, submitted at once, then
/// every result in submission order, after two untimed tasks (the first
/// worker's start and one replacement): the elapsed time. Per task that is
/// one retirement (the worker exits and is reaped), one replacement's
/// start and hand-off, and one round trip. The pool's shutdown is not
/// timed.
fn replacements(method: StartMethod, n: u64) -> Duration {
    let pool = build_replacing(method);
    for i in 0..2 {
        pool.submit(noop, i)
            .expect("submit")
            .result()
            .expect("no-op");
    }
    let elapsed = per_task(&pool, n);
    drop(pool);
    elapsed
}

/// Set (to `<method key>:<startups>:<echo tasks>:<echo bytes>:<replacement
/// tasks>`) in a fresh copy of this bench that only measures pool
/// start-ups, one pipelined echo burst and the replacement of workers, and
/// prints them (see [`fresh_process`]).
const FRESH_CHILD_ENV: &str = "CF_BENCH_FRESH_CHILD";

/// Start-up, 1 MiB echo and replacement figures from a fresh process:
/// this bench executed again with [`FRESH_CHILD_ENV`] set, a few MiB
/// resident.
///
/// * Start-up and replacement: `Fork` forks the parent, and a fork costs
///   in proportion to the parent's mapped memory, which the other
///   benchmarks have grown in this process (`Spawn` starts the program
///   with `posix_spawn`; `ForkServer`'s server forks itself, a small
///   process). CPython's figures come from a fresh interpreter too.
/// * Echo: a 1 MiB buffer is a fresh allocation at almost every step
///   (encode, receive, decode, in both processes), and whether the
///   allocator hands back warm memory or fresh pages to fault in depends
///   on what the process did before; a fresh process is the cold case.
///
/// The fields printed: `first_ns`, `drop_ns`, `total_ns` (medians),
/// `rss_kib` (before the first pool), `echo_mibs` and `replace_ns` (per
/// task, [`replacements`]).
fn fresh_process(m: Method, s: &Settings) -> Result<HashMap<String, f64>, String> {
    let exe = env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env(
            FRESH_CHILD_ENV,
            format!(
                "{}:{}:{}:{}:{}",
                m.key, s.startups, s.echo_tasks, s.echo_bytes, s.replacements
            ),
        )
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("FRESH "))
        .ok_or_else(|| format!("no FRESH line in {stdout:?}"))?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect())
}

/// The body of the fresh process of [`fresh_process`].
fn fresh_child(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [
        method,
        startups_n,
        echo_tasks,
        echo_bytes,
        replacement_tasks,
    ] = parts[..]
    else {
        panic!(
            "{FRESH_CHILD_ENV}={spec:?}: want method:startups:echo_tasks:echo_bytes:replacements"
        );
    };
    let method = METHODS
        .iter()
        .find(|m| m.key == method)
        .expect("a key of METHODS")
        .method;
    let number = |v: &str| -> u64 { v.parse().expect("a whole number") };
    let rss = resident_kib();
    let (first, shutdown, total) = startups(method, number(startups_n));
    let pool = build(method);
    let buf = ByteBuf(payload(number(echo_bytes) as usize));
    for _ in 0..2 {
        pool.submit(echo_buf, buf.clone())
            .expect("submit")
            .result()
            .expect("echo");
    }
    let n = number(echo_tasks);
    let t = echo_pipelined(&pool, echo_buf, &buf, n, |b| b.0.len());
    let mibs = n as f64 * buf.0.len() as f64 / (1 << 20) as f64 / t.as_secs_f64();
    drop(pool);
    let r = number(replacement_tasks);
    let replace = replacements(method, r).as_nanos() as f64 / r as f64;
    println!(
        "FRESH first_ns={first} drop_ns={shutdown} total_ns={total} rss_kib={rss} echo_mibs={mibs} \
         replace_ns={replace}"
    );
}

/// This process's resident set (VmRSS), in KiB.
fn resident_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// `calls` timed calls of `once` after a short warm-up; per-call ns.
fn timed_calls(calls: u64, mut once: impl FnMut(u64)) -> Vec<u64> {
    for i in 0..100 {
        once(i);
    }
    (0..calls)
        .map(|i| {
            let start = Instant::now();
            once(i);
            start.elapsed().as_nanos() as u64
        })
        .collect()
}

/// ns per encode + decode of `value`, in process, averaged over `n`.
fn codec_cost<T: Serialize + serde::de::DeserializeOwned>(value: &T, n: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let bytes = codec::encode(black_box(value)).expect("encode");
        let back: T = codec::decode(black_box(&bytes)).expect("decode");
        black_box(back);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn encoded_len<T: Serialize>(value: &T) -> usize {
    codec::encode(value).expect("encode").len()
}

// ---------------------------------------------------------------------------
// CPython, through benches/python/ppe_bench.py
// ---------------------------------------------------------------------------

struct Python {
    exe: String,
    /// Where `exe` came from, for the report.
    source: &'static str,
    version: String,
    contexts: Vec<String>,
}

/// The interpreter of [`python_interpreter`], checked by running the
/// script once. `None`, with a note on stderr, if that fails.
fn find_python() -> Option<Python> {
    let contexts: Vec<String> = env::var("CF_BENCH_PY_CONTEXTS")
        .unwrap_or_else(|_| "fork,spawn,forkserver".to_owned())
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if contexts.is_empty() {
        eprintln!("note: CF_BENCH_PY_CONTEXTS is empty; the CPython rows are skipped");
        return None;
    }
    let (exe, source) = python_interpreter();
    let mut python = Python {
        exe,
        source,
        version: String::new(),
        contexts,
    };
    match python.run(&["overhead", "10", "--context", "fork"]) {
        Ok(lines) => {
            python.version = lines
                .iter()
                .find(|(tag, _)| tag == "INFO")
                .and_then(|(_, f)| f.get("python").cloned())
                .unwrap_or_default();
            Some(python)
        }
        Err(e) => {
            note_no_python(&python.exe, python.source, &e);
            None
        }
    }
}

impl Python {
    /// Runs the script; the fields of every `INFO` and `RESULT` line, in
    /// order, tagged.
    fn run(&self, args: &[&str]) -> Result<Vec<(String, Fields)>, String> {
        let stdout = run_script(&self.exe, PY_SCRIPT, args)?;
        let lines: Vec<(String, Fields)> = stdout
            .lines()
            .filter_map(|l| {
                let (tag, rest) = l.split_once(' ')?;
                (tag == "INFO" || tag == "RESULT").then(|| (tag.to_owned(), fields(rest)))
            })
            .collect();
        if !lines.iter().any(|(tag, _)| tag == "RESULT") {
            return Err(format!("no RESULT line in {stdout:?}"));
        }
        Ok(lines)
    }

    /// One suite in a fresh interpreter for `context`: every figure, keyed
    /// `mode.field` (`overhead.per_task_ns`, `latency.median_ns`, ...).
    fn suite(&self, context: &str, s: &Settings) -> Result<HashMap<String, f64>, String> {
        let lines = self.run(&[
            "suite",
            "--context",
            context,
            "--tasks",
            &s.py_tasks.to_string(),
            "--map-items",
            &s.py_map_items.to_string(),
            "--chunksize",
            &CHUNKSIZE.to_string(),
            "--calls",
            &s.py_calls.to_string(),
            "--echo-tasks",
            &s.echo_tasks.to_string(),
            "--echo-bytes",
            &s.echo_bytes.to_string(),
            "--startups",
            &s.py_startups.to_string(),
            "--replacements",
            &s.py_replacements.to_string(),
        ])?;
        let mut figures = HashMap::new();
        for (tag, fields) in lines {
            if tag != "RESULT" {
                continue;
            }
            let mode = fields.get("mode").cloned().unwrap_or_default();
            for (k, v) in fields {
                if let Ok(x) = v.parse::<f64>() {
                    figures.insert(format!("{mode}.{k}"), x);
                }
            }
        }
        Ok(figures)
    }
}

// ---------------------------------------------------------------------------
// Phase 1: criterion
// ---------------------------------------------------------------------------

struct Pools {
    /// Indexed like [`METHODS`].
    pools: Vec<ProcessPoolExecutor>,
}

impl Pools {
    fn new() -> Pools {
        // Fork first, while this process has the fewest threads.
        let mut fork = Some(warm(StartMethod::Fork));
        let pools = METHODS
            .iter()
            .map(|m| match m.method {
                StartMethod::Fork => fork.take().expect("one Fork in METHODS"),
                other => warm(other),
            })
            .collect();
        Pools { pools }
    }
}

/// Runs `iters` echo tasks in batches of at most 64 (64 MiB of arguments
/// in flight): the summed times.
fn batches(iters: u64, mut run: impl FnMut(u64) -> Duration) -> Duration {
    let mut left = iters;
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(64);
        total += run(n);
        left -= n;
    }
    total
}

fn criterion_phase(c: &mut Criterion, pools: &Pools, floor: &mut Floor, s: &Settings) {
    let buf = ByteBuf(payload(s.echo_bytes));
    let vec = payload(s.echo_bytes);

    let mut g = c.benchmark_group("per_task");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (m, pool) in METHODS.iter().zip(&pools.pools) {
        g.bench_function(format!("{}_submit_result", m.key), |b| {
            b.iter_custom(|iters| per_task(pool, iters))
        });
        g.bench_function(format!("{}_map_chunk1000", m.key), |b| {
            b.iter_custom(|iters| map_chunked(pool, iters))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("idle_round_trip");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (m, pool) in METHODS.iter().zip(&pools.pools) {
        g.bench_function(format!("{}_submit_result", m.key), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    round_trip(pool, i);
                }
                start.elapsed()
            })
        });
    }
    g.bench_function("raw_unix_socket_8b", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                floor.ping(i);
            }
            start.elapsed()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("startup");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3));
    for m in METHODS {
        g.bench_function(format!("{}_first_result_and_drop", m.key), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (first, drop) = startup(m.method);
                        first + drop
                    })
                    .sum()
            })
        });
    }
    g.finish();

    // One pool per sample (built and shut down untimed): each iteration is
    // one task on a fresh worker.
    let mut g = c.benchmark_group("replacement");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for m in METHODS {
        g.bench_function(format!("{}_max_tasks_per_child_1", m.key), |b| {
            b.iter_custom(|iters| replacements(m.method, iters))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("echo_1mib");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(s.echo_bytes as u64));
    for (m, pool) in METHODS.iter().zip(&pools.pools) {
        g.bench_function(format!("{}_bytebuf_pipelined", m.key), |b| {
            b.iter_custom(|iters| {
                batches(iters, |n| {
                    echo_pipelined(pool, echo_buf, &buf, n, |b| b.0.len())
                })
            })
        });
        g.bench_function(format!("{}_vec_pipelined", m.key), |b| {
            b.iter_custom(|iters| {
                batches(iters, |n| echo_pipelined(pool, echo_vec, &vec, n, Vec::len))
            })
        });
    }
    let mut back = Vec::new();
    g.bench_function("raw_unix_socket_sequential", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                floor.echo(&vec, &mut back);
            }
            start.elapsed()
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("codec_{CODEC}"));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let small = small_value(12345);
    g.bench_function("small_encode_decode", |b| {
        b.iter_custom(|iters| {
            Duration::from_nanos((codec_cost(&small, iters) * iters as f64) as u64)
        })
    });
    g.bench_function("1mib_vec_encode_decode", |b| {
        b.iter_custom(|iters| Duration::from_nanos((codec_cost(&vec, iters) * iters as f64) as u64))
    });
    g.bench_function("1mib_bytebuf_encode_decode", |b| {
        b.iter_custom(|iters| Duration::from_nanos((codec_cost(&buf, iters) * iters as f64) as u64))
    });
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
    map_items: u64,
    py_map_items: u64,
    calls: u64,
    py_calls: u64,
    echo_tasks: u64,
    echo_bytes: usize,
    startups: u64,
    py_startups: u64,
    /// Tasks per run on a pool that replaces its worker after every task.
    replacements: u64,
    py_replacements: u64,
    codec_reps: u64,
    /// A real benchmark run (not `cargo test --benches`): write the report.
    full: bool,
}

/// Every figure of one run, keyed `variant.metric`.
type RunFigures = HashMap<String, f64>;

/// One variant of the paired phase.
enum Variant<'a> {
    Ours(Method, &'a ProcessPoolExecutor),
    Floor,
    CPython(&'a str),
}

impl Variant<'_> {
    fn key(&self) -> String {
        match self {
            Variant::Ours(m, _) => format!("ours_{}", m.key),
            Variant::Floor => "raw".to_owned(),
            Variant::CPython(ctx) => format!("py_{ctx}"),
        }
    }
}

/// Runs one variant's whole suite, recording into `out`; a one-line
/// summary for the console.
fn run_variant(
    v: &Variant<'_>,
    floor: &mut Floor,
    python: Option<&Python>,
    s: &Settings,
    out: &mut RunFigures,
) -> String {
    let key = v.key();
    let mut put = |metric: &str, x: f64| {
        out.insert(format!("{key}.{metric}"), x);
    };
    match v {
        Variant::Ours(m, pool) => {
            let per_task = per_task(pool, s.tasks).as_nanos() as f64 / s.tasks as f64;
            put("per_task_ns", per_task);
            let map = map_chunked(pool, s.map_items).as_nanos() as f64 / s.map_items as f64;
            put("map_item_ns", map);
            let (rt50, rt99) = median_p99(timed_calls(s.calls, |i| round_trip(pool, i)));
            put("rt_median_ns", rt50);
            put("rt_p99_ns", rt99);
            let small = small_value(42);
            let (sm50, sm99) = median_p99(timed_calls(s.calls, |_| small_round_trip(pool, &small)));
            put("small_rt_median_ns", sm50);
            put("small_rt_p99_ns", sm99);
            let mib = s.echo_tasks as f64 * s.echo_bytes as f64 / (1 << 20) as f64;
            let buf = ByteBuf(payload(s.echo_bytes));
            let vec = payload(s.echo_bytes);
            let t = echo_pipelined(pool, echo_buf, &buf, s.echo_tasks, |b| b.0.len());
            let buf_mibs = mib / t.as_secs_f64();
            put("echo_buf_mibs", buf_mibs);
            let t = echo_pipelined(pool, echo_vec, &vec, s.echo_tasks, Vec::len);
            let vec_mibs = mib / t.as_secs_f64();
            put("echo_vec_mibs", vec_mibs);
            let (seq50, _) = median_p99(echo_sequential(pool, &buf, s.echo_tasks));
            put("echo_seq_rtt_ns", seq50);
            put(
                "echo_seq_mibs",
                s.echo_bytes as f64 / (1 << 20) as f64 / (seq50 / 1e9),
            );
            let fresh = fresh_process(*m, s).unwrap_or_else(|e| {
                eprintln!("warning: the fresh process failed: {e}");
                HashMap::new()
            });
            let fresh = |k: &str| fresh.get(k).copied().unwrap_or(f64::NAN);
            let first = fresh("first_ns");
            put("startup_first_ns", first);
            put("startup_drop_ns", fresh("drop_ns"));
            put("startup_total_ns", fresh("total_ns"));
            put("startup_rss_kib", fresh("rss_kib"));
            let fresh_mibs = fresh("echo_mibs");
            put("echo_fresh_mibs", fresh_mibs);
            let in_bench_rss = resident_kib();
            let (in_first, in_drop, in_total) = startups(m.method, s.startups);
            put("inproc_first_ns", in_first);
            put("inproc_drop_ns", in_drop);
            put("inproc_total_ns", in_total);
            put("inproc_rss_kib", in_bench_rss);
            let replace = fresh("replace_ns");
            put("replace_ns", replace);
            let in_replace =
                replacements(m.method, s.replacements).as_nanos() as f64 / s.replacements as f64;
            put("inproc_replace_ns", in_replace);
            format!(
                "{key}: {per_task:.0} ns/task, map {map:.1} ns/item, rt {rt50:.0}/{rt99:.0} ns, \
                 small rt {sm50:.0} ns, echo buf {buf_mibs:.0} (fresh process {fresh_mibs:.0}) vec {vec_mibs:.0} MiB/s, \
                 seq {:.0} us, start {:.2} ms (in the bench, {:.0} MiB resident: {:.2} ms), \
                 replacement {:.2} ms/task (in the bench: {:.2})",
                seq50 / 1e3,
                first / 1e6,
                in_bench_rss / 1024.0,
                in_first / 1e6,
                replace / 1e6,
                in_replace / 1e6
            )
        }
        Variant::Floor => {
            let (p50, p99) = median_p99(timed_calls(s.calls, |i| floor.ping(i)));
            put("rt_median_ns", p50);
            put("rt_p99_ns", p99);
            let data = payload(s.echo_bytes);
            let mut back = Vec::new();
            floor.echo(&data, &mut back);
            let samples: Vec<u64> = (0..s.echo_tasks)
                .map(|_| {
                    let start = Instant::now();
                    floor.echo(&data, &mut back);
                    start.elapsed().as_nanos() as u64
                })
                .collect();
            assert_eq!(back, data);
            let (e50, _) = median_p99(samples);
            put("echo_seq_rtt_ns", e50);
            put(
                "echo_seq_mibs",
                s.echo_bytes as f64 / (1 << 20) as f64 / (e50 / 1e9),
            );
            // The codec, in process (not a peer; recorded with the floor).
            let small = small_value(12345);
            put("codec_small_ns", codec_cost(&small, s.codec_reps));
            let reps = (s.codec_reps / 1000).max(1);
            put("codec_vec_ns", codec_cost(&data, reps));
            put("codec_buf_ns", codec_cost(&ByteBuf(data.clone()), reps));
            format!(
                "{key}: ping {p50:.0}/{p99:.0} ns, 1 MiB echo {:.0} us",
                e50 / 1e3
            )
        }
        Variant::CPython(ctx) => {
            let py = python.expect("a CPython variant only with Python");
            match py.suite(ctx, s) {
                Ok(fig) => {
                    let get = |k: &str| fig.get(k).copied().unwrap_or(f64::NAN);
                    put("per_task_ns", get("overhead.per_task_ns"));
                    put("map_item_ns", get("map.per_item_ns"));
                    put("rt_median_ns", get("latency.median_ns"));
                    put("rt_p99_ns", get("latency.p99_ns"));
                    put("echo_mibs", get("echo.mib_per_s"));
                    put("startup_first_ns", get("startup.first_ns"));
                    put("startup_drop_ns", get("startup.shutdown_ns"));
                    put("startup_total_ns", get("startup.total_ns"));
                    put("replace_ns", get("replace.per_task_ns"));
                    put("replace_refused", get("replace.refused"));
                    let replace = if get("replace.refused") == 1.0 {
                        "refused".to_owned()
                    } else {
                        format!("{:.2} ms/task", get("replace.per_task_ns") / 1e6)
                    };
                    format!(
                        "{key}: {:.0} ns/task, map {:.1} ns/item, rt {:.0}/{:.0} ns, echo {:.0} MiB/s, start {:.2} ms, replacement {replace}",
                        get("overhead.per_task_ns"),
                        get("map.per_item_ns"),
                        get("latency.median_ns"),
                        get("latency.p99_ns"),
                        get("echo.mib_per_s"),
                        get("startup.first_ns") / 1e6
                    )
                }
                Err(e) => {
                    eprintln!("warning: CPython ({ctx}) run failed: {e}");
                    format!("{key}: failed")
                }
            }
        }
    }
}

fn paired_phase(pools: &Pools, floor: &mut Floor, python: Option<&Python>, s: &Settings) -> String {
    let load_before = load_average();
    let total = s.warm_up_runs + s.runs;
    println!(
        "\n== paired phase: {} runs after {} warm-up, variants interleaved ==",
        s.runs, s.warm_up_runs
    );
    let mut variants: Vec<Variant<'_>> = METHODS
        .iter()
        .zip(&pools.pools)
        .map(|(m, p)| Variant::Ours(*m, p))
        .collect();
    variants.push(Variant::Floor);
    if let Some(py) = python {
        variants.extend(py.contexts.iter().map(|c| Variant::CPython(c)));
    }
    let mut runs: Vec<RunFigures> = Vec::new();
    let started = Instant::now();
    for run in 0..total {
        let warm = run < s.warm_up_runs;
        println!("run {}{}:", run + 1, if warm { " (warm-up)" } else { "" });
        let mut figures = RunFigures::new();
        // Interleaved, and rotated by one each run so that no variant
        // always follows the same neighbour.
        let n = variants.len();
        for k in (0..n).map(|j| (j + run) % n) {
            let line = run_variant(&variants[k], floor, python, s, &mut figures);
            println!("  {line}");
        }
        if !warm {
            runs.push(figures);
        }
    }
    println!("(paired phase: {:.0} s)", started.elapsed().as_secs_f64());
    let report = Report {
        load: (load_before, load_average()),
        settings: s,
        python,
        runs,
    };
    println!("\n{}", report.plain());
    if s.full && CODEC == "bincode" {
        write_data("process_pool", &report.data());
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
    runs: Vec<RunFigures>,
}

/// A table row: a label and the variant key its figures are under.
struct Row {
    label: String,
    key: String,
}

impl Report<'_> {
    /// The figure `key` in every run (NaN where missing).
    fn series(&self, key: &str) -> Vec<f64> {
        self.runs
            .iter()
            .map(|r| r.get(key).copied().unwrap_or(f64::NAN))
            .collect()
    }

    fn med(&self, key: &str) -> f64 {
        median(self.series(key))
    }

    /// The median over runs of `a / b`, both taken in the same run.
    fn paired(&self, a: &str, b: &str) -> f64 {
        median(
            self.series(a)
                .into_iter()
                .zip(self.series(b))
                .map(|(x, y)| x / y),
        )
    }

    /// Per run, CPython's best context for `metric`: the smallest figure
    /// when lower is better, else the largest.
    fn best_cpython(&self, metric: &str, lower_is_better: bool) -> Vec<f64> {
        let contexts: Vec<&str> = self
            .python
            .map(|p| p.contexts.iter().map(String::as_str).collect())
            .unwrap_or_default();
        self.runs
            .iter()
            .map(|r| {
                let vals = contexts
                    .iter()
                    .filter_map(|c| r.get(&format!("py_{c}.{metric}")).copied())
                    .filter(|x| x.is_finite());
                if lower_is_better {
                    vals.fold(f64::NAN, f64::min)
                } else {
                    vals.fold(f64::NAN, f64::max)
                }
            })
            .collect()
    }

    /// The median over runs of (the best CPython's figure) / `key`'s, or
    /// `key`'s over the best CPython's when higher is better.
    fn times_best_cpython(&self, key: &str, metric: &str, lower_is_better: bool) -> f64 {
        let best = self.best_cpython(metric, lower_is_better);
        median(
            self.series(key).into_iter().zip(best).map(
                |(x, b)| {
                    if lower_is_better { b / x } else { x / b }
                },
            ),
        )
    }

    /// For one of our rows, CPython's figure with the same start method
    /// (spawn, fork, forkserver) over ours, the median of the ratios run by
    /// run; "-" for any other row.
    fn same_method(&self, key: &str, metric: &str) -> String {
        match key.strip_prefix("ours_") {
            Some(m) => {
                fmt_times(self.paired(&format!("py_{m}.{metric}"), &format!("{key}.{metric}")))
            }
            None => "-".to_owned(),
        }
    }

    fn ours_rows(&self) -> Vec<Row> {
        METHODS
            .iter()
            .map(|m| Row {
                label: format!("ours, `StartMethod::{}`", m.name),
                key: format!("ours_{}", m.key),
            })
            .collect()
    }

    fn python_rows(&self) -> Vec<Row> {
        self.python
            .map(|p| {
                p.contexts
                    .iter()
                    .map(|c| Row {
                        label: format!("CPython `ProcessPoolExecutor`, {c}"),
                        key: format!("py_{c}"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn runs_column(&self, key: &str, scale: f64, decimals: usize) -> String {
        self.series(key)
            .iter()
            .map(|x| fmt_num(x / scale, decimals))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The figures for `scripts/charts.py`: ns per task (one by one, and
    /// per item of `map` with chunksize 1000), the idle round trip (µs),
    /// the 1 MiB echo (MiB/s) and the start-up (ms).
    fn data(&self) -> Vec<DataRow> {
        let mut rows = Vec::new();
        let mut labelled: Vec<(String, String)> = METHODS
            .iter()
            .map(|m| {
                (
                    format!("ProcessPoolExecutor (ours, {})", m.key),
                    format!("ours_{}", m.key),
                )
            })
            .collect();
        if let Some(p) = self.python {
            labelled.extend(p.contexts.iter().map(|c| {
                (
                    format!("CPython ProcessPoolExecutor, {c}"),
                    format!("py_{c}"),
                )
            }));
        }
        let scaled = |key: String, scale: f64| -> Vec<f64> {
            self.series(&key).iter().map(|x| x / scale).collect()
        };
        for (label, k) in &labelled {
            rows.push(DataRow::from_runs(
                "per_task",
                format!("{label}: submit + result"),
                None,
                &self.series(&format!("{k}.per_task_ns")),
                "ns",
            ));
        }
        for (label, k) in &labelled {
            rows.push(DataRow::from_runs(
                "per_task",
                format!("{label}: map, chunksize {CHUNKSIZE}"),
                None,
                &self.series(&format!("{k}.map_item_ns")),
                "ns",
            ));
        }
        for (label, k) in &labelled {
            let echo = if k.starts_with("py_") {
                format!("{k}.echo_mibs")
            } else {
                format!("{k}.echo_buf_mibs")
            };
            rows.push(DataRow::from_runs(
                "round_trip",
                label.clone(),
                None,
                &scaled(format!("{k}.rt_median_ns"), 1e3),
                "us",
            ));
            rows.push(DataRow::from_runs(
                "echo_1mib",
                label.clone(),
                None,
                &self.series(&echo),
                "MiB/s",
            ));
            rows.push(DataRow::from_runs(
                "startup",
                label.clone(),
                None,
                &scaled(format!("{k}.startup_first_ns"), 1e6),
                "ms",
            ));
            // CPython's fork context refuses `max_tasks_per_child`.
            if self.med(&format!("{k}.replace_ns")).is_finite() {
                rows.push(DataRow::from_runs(
                    "replacement",
                    label.clone(),
                    None,
                    &scaled(format!("{k}.replace_ns"), 1e6),
                    "ms",
                ));
            }
        }
        rows
    }

    fn plain(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "process pool, 2 workers, codec {CODEC}, {} paired runs (medians; ratios paired)",
            self.settings.runs
        );
        let _ = writeln!(
            out,
            "{:<44} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "variant",
            "us/task",
            "ns/item",
            "rt p50 us",
            "rt p99 us",
            "MiB/s",
            "start ms",
            "drop ms",
            "repl ms"
        );
        let mut rows = self.ours_rows();
        rows.push(Row {
            label: "raw unix socket".to_owned(),
            key: "raw".to_owned(),
        });
        rows.extend(self.python_rows());
        for r in rows {
            let k = &r.key;
            let mibs = if k.starts_with("py_") {
                self.med(&format!("{k}.echo_mibs"))
            } else if k == "raw" {
                self.med(&format!("{k}.echo_seq_mibs"))
            } else {
                self.med(&format!("{k}.echo_buf_mibs"))
            };
            let _ = writeln!(
                out,
                "{:<44} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                r.label.replace('`', ""),
                fmt_num(self.med(&format!("{k}.per_task_ns")) / 1e3, 2),
                fmt_num(self.med(&format!("{k}.map_item_ns")), 1),
                fmt_num(self.med(&format!("{k}.rt_median_ns")) / 1e3, 1),
                fmt_num(self.med(&format!("{k}.rt_p99_ns")) / 1e3, 1),
                fmt_num(mibs, 0),
                fmt_num(self.med(&format!("{k}.startup_first_ns")) / 1e6, 2),
                fmt_num(self.med(&format!("{k}.startup_drop_ns")) / 1e6, 2),
                fmt_num(self.med(&format!("{k}.replace_ns")) / 1e6, 2),
            );
        }
        out
    }

    fn markdown(&self) -> String {
        let s = self.settings;
        let mut md = String::new();
        let command = if CODEC == "postcard" {
            "cargo bench --bench process_pool --features postcard"
        } else {
            "cargo bench --bench process_pool"
        };
        let _ = writeln!(
            md,
            "<!-- generated by `{command}` (benches/process_pool.rs) on {} -->\n",
            today()
        );
        let _ = writeln!(md, "#### Machine and command ({CODEC})\n");
        write_machine_rows(
            &mut md,
            Some(CODEC),
            REPORTED_CRATES,
            self.python.map(|py| {
                format!(
                    "CPython {} (`{}`, from {}); contexts {}",
                    py.version,
                    py.exe,
                    py.source,
                    py.contexts.join(", ")
                )
            }),
            command,
            &self.load,
        );
        let _ = writeln!(
            md,
            "| Runs | {} paired runs after {} warm-up run; in each run every variant runs its whole suite once, interleaved, the order rotated by one per run |",
            s.runs, s.warm_up_runs
        );

        // 1. Per task.
        let _ = writeln!(
            md,
            "\n#### Per task: N no-op tasks submitted, then every result in submission order; and `map` with chunksize {CHUNKSIZE} ({CODEC})\n"
        );
        let _ = writeln!(
            md,
            "\"best CPython\" is, in each run, the cheapest of CPython's contexts in that run; \"same method\" is CPython's context of the same name (`Spawn`: spawn, `Fork`: fork, `ForkServer`: forkserver); the ratios are taken run by run.\n"
        );
        let _ = writeln!(
            md,
            "| Pool | N per run | µs/task, chunksize 1 (median) | best CPython / this (paired) | CPython, same method / this (paired) | items per run, chunksize {CHUNKSIZE} | ns/item, chunksize {CHUNKSIZE} (median) | best CPython / this (paired) | runs, chunksize 1 (µs/task) | runs, chunksize {CHUNKSIZE} (ns/item) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
        for r in self.ours_rows().into_iter().chain(self.python_rows()) {
            let k = &r.key;
            let py = k.starts_with("py_");
            let _ = writeln!(
                md,
                "| {} | {} | **{}** | {} | {} | {} | **{}** | {} | {} | {} |",
                r.label,
                thousands(if py { s.py_tasks } else { s.tasks }),
                fmt_num(self.med(&format!("{k}.per_task_ns")) / 1e3, 2),
                fmt_times(self.times_best_cpython(
                    &format!("{k}.per_task_ns"),
                    "per_task_ns",
                    true
                )),
                self.same_method(k, "per_task_ns"),
                thousands(if py { s.py_map_items } else { s.map_items }),
                fmt_num(self.med(&format!("{k}.map_item_ns")), 1),
                fmt_times(self.times_best_cpython(
                    &format!("{k}.map_item_ns"),
                    "map_item_ns",
                    true
                )),
                self.runs_column(&format!("{k}.per_task_ns"), 1e3, 2),
                self.runs_column(&format!("{k}.map_item_ns"), 1.0, 1),
            );
        }

        // 2. Idle round trip.
        let _ = writeln!(
            md,
            "\n#### Idle round trip: one `submit` -> `result()` at a time on a warm 2-worker pool ({CODEC})\n"
        );
        let _ = writeln!(
            md,
            "{} calls per run for ours and the raw socket, {} for CPython; per run the median and p99 (nearest rank) of the per-call times; the table gives the median of those over the runs. The floor: 8 bytes to a forked echo child over `UnixStream::pair()` and back.\n",
            thousands(s.calls),
            thousands(s.py_calls)
        );
        let _ = writeln!(
            md,
            "| Pool | median (µs) | p99 (µs) | median / raw socket (paired) | p99 / raw socket (paired) | best CPython / this, median (paired) | CPython, same method / this, median (paired) | run medians (µs) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
        let mut rows = self.ours_rows();
        rows.push(Row {
            label: "raw floor: 8 B over a Unix socket pair, forked echo child".to_owned(),
            key: "raw".to_owned(),
        });
        rows.extend(self.python_rows());
        for r in &rows {
            let k = &r.key;
            let _ = writeln!(
                md,
                "| {} | **{}** | {} | {} | {} | {} | {} | {} |",
                r.label,
                fmt_num(self.med(&format!("{k}.rt_median_ns")) / 1e3, 1),
                fmt_num(self.med(&format!("{k}.rt_p99_ns")) / 1e3, 1),
                fmt_ratio(self.paired(&format!("{k}.rt_median_ns"), "raw.rt_median_ns")),
                fmt_ratio(self.paired(&format!("{k}.rt_p99_ns"), "raw.rt_p99_ns")),
                fmt_times(self.times_best_cpython(
                    &format!("{k}.rt_median_ns"),
                    "rt_median_ns",
                    true
                )),
                self.same_method(k, "rt_median_ns"),
                self.runs_column(&format!("{k}.rt_median_ns"), 1e3, 1),
            );
        }

        // 3. Echo.
        let mib_per_task = s.echo_bytes as f64 / (1 << 20) as f64;
        let _ = writeln!(
            md,
            "\n#### {} MiB echo: the task returns its argument ({CODEC})\n",
            fmt_num(mib_per_task, 2)
        );
        let _ = writeln!(
            md,
            "Pipelined: {} tasks submitted at once, then every result taken in submission order. MiB/s counts each task's payload once, as the project's CPython baseline (A4) did; twice as many bytes cross (in and out). `ByteBuf` is a `Vec<u8>` newtype that serializes with `serialize_bytes` (what `serde_bytes::ByteBuf` does); a plain `Vec<u8>` goes through serde as a sequence of `u8`. \"In a fresh process\": the same burst in a fresh copy of this bench (a few MiB resident), where the allocator hands out fresh pages for the 1 MiB buffers; inside the bench process its heap is warm, which is worth up to 2x here. One at a time: `submit` -> `into_result()` of one task, {} times; the floor sends the same bytes to its echo child and reads them back. \"best CPython\" is the fastest context in each run.\n",
            s.echo_tasks, s.echo_tasks
        );
        let _ = writeln!(
            md,
            "| Variant | MiB/s (median) | this / best CPython (paired) | this / raw socket one at a time (paired) | runs (MiB/s) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---|");
        let mut echo_rows: Vec<(String, String)> = Vec::new();
        for m in METHODS {
            let name = m.name;
            echo_rows.push((
                format!("ours, {name}, pipelined, `ByteBuf`"),
                format!("ours_{}.echo_buf_mibs", m.key),
            ));
            echo_rows.push((
                format!("ours, {name}, pipelined, `ByteBuf`, in a fresh process"),
                format!("ours_{}.echo_fresh_mibs", m.key),
            ));
            echo_rows.push((
                format!("ours, {name}, pipelined, `Vec<u8>`"),
                format!("ours_{}.echo_vec_mibs", m.key),
            ));
            echo_rows.push((
                format!("ours, {name}, one at a time, `ByteBuf`"),
                format!("ours_{}.echo_seq_mibs", m.key),
            ));
        }
        echo_rows.push((
            "raw floor: Unix socket pair, one at a time".to_owned(),
            "raw.echo_seq_mibs".to_owned(),
        ));
        for r in self.python_rows() {
            echo_rows.push((
                format!("{}, pipelined, `bytes`", r.label),
                format!("{}.echo_mibs", r.key),
            ));
        }
        for (label, key) in &echo_rows {
            let _ = writeln!(
                md,
                "| {label} | **{}** | {} | {} | {} |",
                fmt_num(self.med(key), 0),
                fmt_times(self.times_best_cpython(key, "echo_mibs", false)),
                fmt_ratio(self.paired(key, "raw.echo_seq_mibs")),
                self.runs_column(key, 1.0, 0),
            );
        }
        let ours_rtt: Vec<String> = METHODS
            .iter()
            .map(|m| {
                format!(
                    "{} {} µs",
                    m.name,
                    fmt_num(
                        self.med(&format!("ours_{}.echo_seq_rtt_ns", m.key)) / 1e3,
                        0
                    )
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "\nOne {}-MiB round trip at a time (median of run medians): ours {}; raw socket {} µs.",
            fmt_num(mib_per_task, 2),
            ours_rtt.join(", "),
            fmt_num(self.med("raw.echo_seq_rtt_ns") / 1e3, 0),
        );

        // 4. Start-up.
        let _ = writeln!(
            md,
            "\n#### Start-up: build a 2-worker pool, submit one no-op, take its result; then shut it down ({CODEC})\n"
        );
        let _ = writeln!(
            md,
            "Per run the median of {} pools for ours, {} for CPython, each after one untimed start-up. Ours: `build()` + `submit` + `result()`, then `drop` (shutdown(wait = true): both workers exit and are reaped), in a fresh process (this bench executed again, a few MiB resident), and again inside the bench process, whose resident set the other benchmarks have grown: `Fork` forks the parent, and a fork costs in proportion to the parent's memory (`Spawn` starts the program with `posix_spawn`; `ForkServer` starts its server that way, then the server forks the workers). CPython 3.11: `ProcessPoolExecutor(2, mp_context=...)` + `submit` + `result()`, then `shutdown(wait=True)`, first thing in a fresh interpreter (a forkserver pool finds its server started by the untimed one); its fork pool starts both workers at the first submit, spawn and forkserver start only the one worker a single task needs.\n",
            s.startups, s.py_startups
        );
        let _ = writeln!(
            md,
            "| Pool | to first result (ms, median) | shutdown (ms) | total (ms) | best CPython / this, first result (paired) | CPython, same method / this, first result (paired) | inside the bench process: first result / total (ms) | parent resident set, fresh / bench (MiB) | runs, first result (ms) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in self.ours_rows().into_iter().chain(self.python_rows()) {
            let k = &r.key;
            let ours = k.starts_with("ours_");
            let _ = writeln!(
                md,
                "| {} | **{}** | {} | {} | {} | {} | {} | {} | {} |",
                r.label,
                fmt_num(self.med(&format!("{k}.startup_first_ns")) / 1e6, 2),
                fmt_num(self.med(&format!("{k}.startup_drop_ns")) / 1e6, 2),
                fmt_num(self.med(&format!("{k}.startup_total_ns")) / 1e6, 2),
                fmt_times(self.times_best_cpython(
                    &format!("{k}.startup_first_ns"),
                    "startup_first_ns",
                    true
                )),
                self.same_method(k, "startup_first_ns"),
                if ours {
                    format!(
                        "{} / {}",
                        fmt_num(self.med(&format!("{k}.inproc_first_ns")) / 1e6, 2),
                        fmt_num(self.med(&format!("{k}.inproc_total_ns")) / 1e6, 2)
                    )
                } else {
                    "-".to_owned()
                },
                if ours {
                    format!(
                        "{} / {}",
                        fmt_num(self.med(&format!("{k}.startup_rss_kib")) / 1024.0, 0),
                        fmt_num(self.med(&format!("{k}.inproc_rss_kib")) / 1024.0, 0)
                    )
                } else {
                    "-".to_owned()
                },
                self.runs_column(&format!("{k}.startup_first_ns"), 1e6, 2),
            );
        }

        // 5. Replacement.
        let _ = writeln!(
            md,
            "\n#### Replacement: a 1-worker pool with `max_tasks_per_child(1)`, every task on a fresh worker ({CODEC})\n"
        );
        let _ = writeln!(
            md,
            "N no-op tasks submitted at once, then every result in submission order, after two untimed tasks (the first worker and one replacement); the pool's shutdown is not timed. Every task runs on a worker started for it, so the time per task is one retirement (the worker exits and is reaped), one replacement's start and hand-off, and one round trip. Ours: `max_workers(1)`, `max_tasks_per_child(1)`, in a fresh process (this bench executed again, as for the start-up), and again inside the bench process. CPython 3.11: `ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1)`, in the same fresh interpreter as its start-up figures, with fewer tasks per run (a spawn replacement takes tens of ms). CPython refuses `max_tasks_per_child` with the fork context (`ValueError: max_tasks_per_child is incompatible with the 'fork' multiprocessing start method`, CPython issue 90622: forking a process that runs the executor's threads). \"CPython ctx / this\" is that context's time per task over ours, run by run.\n"
        );
        // The CPython contexts that measured a replacement (not fork).
        let replacing: Vec<Row> = self
            .python_rows()
            .into_iter()
            .filter(|r| self.med(&format!("{}.replace_ns", r.key)).is_finite())
            .collect();
        let mut header =
            "| Pool | N per run | ms/task (median) | best CPython / this (paired)".to_owned();
        let mut rule = "|---|---:|---:|---:".to_owned();
        for r in &replacing {
            let ctx = r.key.trim_start_matches("py_");
            let _ = write!(header, " | CPython {ctx} / this (paired)");
            rule.push_str("|---:");
        }
        header.push_str(" | inside the bench process (ms/task) | runs (ms/task) |");
        rule.push_str("|---:|---|");
        let _ = writeln!(md, "{header}\n{rule}");
        for r in self.ours_rows().into_iter().chain(self.python_rows()) {
            let k = &r.key;
            let ours = k.starts_with("ours_");
            let refused = !ours && self.med(&format!("{k}.replace_refused")) == 1.0;
            if refused {
                let _ = write!(
                    md,
                    "| {} | - | refused: `ValueError` (max_tasks_per_child is incompatible with fork) | -",
                    r.label
                );
                for _ in &replacing {
                    md.push_str(" | -");
                }
                let _ = writeln!(md, " | - | - |");
                continue;
            }
            let _ = write!(
                md,
                "| {} | {} | **{}** | {}",
                r.label,
                thousands(if ours {
                    s.replacements
                } else {
                    s.py_replacements
                }),
                fmt_num(self.med(&format!("{k}.replace_ns")) / 1e6, 2),
                fmt_times(self.times_best_cpython(&format!("{k}.replace_ns"), "replace_ns", true)),
            );
            for p in &replacing {
                let _ = write!(
                    md,
                    " | {}",
                    fmt_times(
                        self.paired(&format!("{}.replace_ns", p.key), &format!("{k}.replace_ns"))
                    )
                );
            }
            let _ = writeln!(
                md,
                " | {} | {} |",
                if ours {
                    fmt_num(self.med(&format!("{k}.inproc_replace_ns")) / 1e6, 2)
                } else {
                    "-".to_owned()
                },
                self.runs_column(&format!("{k}.replace_ns"), 1e6, 2),
            );
        }

        // 6. Codec.
        let small = small_value(12345);
        let data = payload(s.echo_bytes);
        let _ = writeln!(md, "\n#### The payload codec: {CODEC}\n");
        let _ = writeln!(
            md,
            "In process: `codec::encode` + `codec::decode` of one value (the small struct: {} bytes encoded; 1 MiB: {} bytes as `Vec<u8>`, {} as `ByteBuf`). Through the pool: the idle round trip of `echo_small(Small) -> Small` next to the no-op's, and the pipelined 1 MiB echoes above. Compare with the other codec's run through the ratios to the same run's raw socket.\n",
            encoded_len(&small),
            encoded_len(&data),
            encoded_len(&ByteBuf(data.clone())),
        );
        let _ = writeln!(md, "| Figure | median | runs |\n|---|---:|---|");
        let codec_rows: [(&str, &str, f64, &str, usize); 3] = [
            (
                "small struct, encode + decode",
                "raw.codec_small_ns",
                1.0,
                "ns",
                0,
            ),
            (
                "1 MiB `Vec<u8>`, encode + decode",
                "raw.codec_vec_ns",
                1e3,
                "µs",
                0,
            ),
            (
                "1 MiB `ByteBuf`, encode + decode",
                "raw.codec_buf_ns",
                1e3,
                "µs",
                0,
            ),
        ];
        for (label, key, scale, unit, d) in codec_rows {
            let _ = writeln!(
                md,
                "| {label} | **{} {unit}** | {} |",
                fmt_num(self.med(key) / scale, d),
                self.runs_column(key, scale, d)
            );
        }
        for m in METHODS {
            let k = format!("ours_{}", m.key);
            let name = m.name;
            let _ = writeln!(
                md,
                "| {name}: small struct idle round trip, median / p99 | **{} µs** / {} µs (no-op: {} µs; small / raw socket {}) | {} |",
                fmt_num(self.med(&format!("{k}.small_rt_median_ns")) / 1e3, 1),
                fmt_num(self.med(&format!("{k}.small_rt_p99_ns")) / 1e3, 1),
                fmt_num(self.med(&format!("{k}.rt_median_ns")) / 1e3, 1),
                fmt_ratio(self.paired(&format!("{k}.small_rt_median_ns"), "raw.rt_median_ns")),
                self.runs_column(&format!("{k}.small_rt_median_ns"), 1e3, 1),
            );
            for (what, key) in [
                ("`ByteBuf`", "echo_buf_mibs"),
                ("`Vec<u8>`", "echo_vec_mibs"),
            ] {
                let _ = writeln!(
                    md,
                    "| {name}: 1 MiB echo pipelined, {what} | **{} MiB/s** ({} x the raw socket) | {} |",
                    fmt_num(self.med(&format!("{k}.{key}")), 0),
                    fmt_ratio(self.paired(&format!("{k}.{key}"), "raw.echo_seq_mibs")),
                    self.runs_column(&format!("{k}.{key}"), 1.0, 0),
                );
            }
        }

        // Goals.
        let _ = writeln!(md, "\n#### Goals in this run ({CODEC})\n");
        let names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        let _ = writeln!(
            md,
            "| Goal | target | {} | met? |\n|---|---|{}---|",
            names.join(" | "),
            "---:|".repeat(METHODS.len())
        );
        // A figure per start method, in the order of METHODS.
        let all = |f: &dyn Fn(&str) -> f64| -> Vec<f64> {
            METHODS
                .iter()
                .map(|m| f(&format!("ours_{}", m.key)))
                .collect()
        };
        // The same test for every start method.
        let each = |t: &dyn Fn() -> Test| -> Vec<Test> { METHODS.iter().map(|_| t()).collect() };
        let at_least = |t: f64| -> Test { Box::new(move |x| x >= t) };
        let at_most = |t: f64| -> Test { Box::new(move |x| x <= t) };
        let below = |t: f64| -> Test { Box::new(move |x| x < t) };
        // Start-up: Fork under 2 ms; Spawn, and ForkServer (no target of
        // its own: held to Spawn's), under 5 ms.
        let startup_ok = || -> Vec<Test> {
            METHODS
                .iter()
                .map(|m| {
                    below(if m.method == StartMethod::Fork {
                        2.0
                    } else {
                        5.0
                    })
                })
                .collect()
        };
        let startup_target = "spawn and forkserver < 5 ms, fork < 2 ms";
        let ms = |x: f64| format!("{} ms", fmt_num(x, 2));
        let mibs = |x: f64| format!("{} MiB/s", fmt_num(x, 0));
        let times = |x: f64| {
            if x.is_finite() {
                format!("{x:.2}x")
            } else {
                "n/a".to_owned()
            }
        };
        let us = |x: f64| format!("{} µs", fmt_num(x, 2));
        let goals: Vec<Goal> = vec![
            Goal {
                name:
                    "per task, chunksize 1: cheaper than CPython (its cheapest context, same run)"
                        .into(),
                target: ">= 10x".into(),
                values: all(&|k| {
                    self.times_best_cpython(&format!("{k}.per_task_ns"), "per_task_ns", true)
                }),
                fmt: &times,
                ok: each(&|| at_least(10.0)),
            },
            Goal {
                name: format!(
                    "per task, chunksize 1: vs CPython's baseline figure ({BASELINE_CPYTHON_PER_TASK_US} µs, fork, 20,000 tasks; not this run)"
                ),
                target: ">= 10x".into(),
                values: all(&|k| {
                    BASELINE_CPYTHON_PER_TASK_US * 1e3 / self.med(&format!("{k}.per_task_ns"))
                }),
                fmt: &times,
                ok: each(&|| at_least(10.0)),
            },
            Goal {
                name: format!(
                    "per task, chunksize 1: cheaper than procspawn ({BASELINE_PROCSPAWN_PER_TASK_US} µs/task in the baseline, not this run)"
                ),
                target: format!("< {BASELINE_PROCSPAWN_PER_TASK_US} µs"),
                values: all(&|k| self.med(&format!("{k}.per_task_ns")) / 1e3),
                fmt: &us,
                ok: each(&|| below(BASELINE_PROCSPAWN_PER_TASK_US)),
            },
            Goal {
                name: format!(
                    "`map` chunksize {CHUNKSIZE}: cheaper than CPython's (its cheapest context, same run)"
                ),
                target: ">= 5x".into(),
                values: all(&|k| {
                    self.times_best_cpython(&format!("{k}.map_item_ns"), "map_item_ns", true)
                }),
                fmt: &times,
                ok: each(&|| at_least(5.0)),
            },
            Goal {
                name: "idle round trip, median: within 3x of the raw socket (same run)".into(),
                target: "<= 3.00".into(),
                values: all(&|k| self.paired(&format!("{k}.rt_median_ns"), "raw.rt_median_ns")),
                fmt: &fmt_ratio,
                ok: each(&|| at_most(3.0)),
            },
            Goal {
                name: "start-up, `build()` to the first result (fresh process)".into(),
                target: startup_target.into(),
                values: all(&|k| self.med(&format!("{k}.startup_first_ns")) / 1e6),
                fmt: &ms,
                ok: startup_ok(),
            },
            Goal {
                name:
                    "start-up including the drop: both workers exit and are reaped (fresh process)"
                        .into(),
                target: startup_target.into(),
                values: all(&|k| self.med(&format!("{k}.startup_total_ns")) / 1e6),
                fmt: &ms,
                ok: startup_ok(),
            },
            Goal {
                name: "1 MiB echo, pipelined, `ByteBuf`: at least 1 GiB/s".into(),
                target: ">= 1024 MiB/s".into(),
                values: all(&|k| self.med(&format!("{k}.echo_buf_mibs"))),
                fmt: &mibs,
                ok: each(&|| at_least(1024.0)),
            },
            Goal {
                name: "1 MiB echo, pipelined, `ByteBuf`, in a fresh process: at least 1 GiB/s"
                    .into(),
                target: ">= 1024 MiB/s".into(),
                values: all(&|k| self.med(&format!("{k}.echo_fresh_mibs"))),
                fmt: &mibs,
                ok: each(&|| at_least(1024.0)),
            },
            Goal {
                name: "1 MiB echo, pipelined, `Vec<u8>`: at least 1 GiB/s".into(),
                target: ">= 1024 MiB/s".into(),
                values: all(&|k| self.med(&format!("{k}.echo_vec_mibs"))),
                fmt: &mibs,
                ok: each(&|| at_least(1024.0)),
            },
        ];
        for g in goals {
            let _ = writeln!(md, "{}", g.row());
        }
        let _ = writeln!(md, "\n<!-- end of the generated block -->");
        md
    }
}

/// One row of the goals table: a figure for each start method (in the
/// order of [`METHODS`]), each judged by its own test.
struct Goal<'a> {
    name: String,
    target: String,
    values: Vec<f64>,
    fmt: &'a dyn Fn(f64) -> String,
    ok: Vec<Test>,
}

/// Whether a figure meets a goal.
type Test = Box<dyn Fn(f64) -> bool>;

impl Goal<'_> {
    fn row(&self) -> String {
        let verdict = if self.values.iter().any(|v| !v.is_finite()) {
            "not measured".to_owned()
        } else {
            let missed: Vec<&str> = METHODS
                .iter()
                .zip(self.values.iter().zip(&self.ok))
                .filter(|(_, (v, ok))| !ok(**v))
                .map(|(m, _)| m.name)
                .collect();
            if missed.is_empty() {
                "yes".to_owned()
            } else if missed.len() == METHODS.len() {
                "**no**".to_owned()
            } else {
                format!("**no** for {}", missed.join(", "))
            }
        };
        let cells: Vec<String> = self.values.iter().map(|v| (self.fmt)(*v)).collect();
        format!(
            "| {} | {} | {} | {verdict} |",
            self.name,
            self.target,
            cells.join(" | ")
        )
    }
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn main() {
    if let Ok(spec) = env::var(FRESH_CHILD_ENV) {
        fresh_child(&spec);
        return;
    }
    // Before any thread exists: the floor's echo child is forked from a
    // single-threaded process.
    let mut floor = Floor::start();
    let args: Vec<String> = env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // Criterion's own rule: without `--bench` (cargo test --benches), or
    // with `--test`, it only checks that each benchmark runs.
    let full = has("--bench") && !has("--test");
    let paired = env_number("CF_BENCH_PAIRED", 1) != 0 && !has("--profile-time") && !has("--list");
    let settings = if full {
        Settings {
            runs: env_number("CF_BENCH_RUNS", 7).max(1) as usize,
            warm_up_runs: 1,
            tasks: env_number("CF_BENCH_TASKS", 20_000).max(1),
            py_tasks: env_number("CF_BENCH_PY_TASKS", 5000).max(1),
            map_items: env_number("CF_BENCH_MAP_ITEMS", 1_000_000).max(1),
            py_map_items: env_number("CF_BENCH_PY_MAP_ITEMS", 100_000).max(1),
            calls: env_number("CF_BENCH_CALLS", 2000).max(1),
            py_calls: env_number("CF_BENCH_PY_CALLS", 1000).max(1),
            echo_tasks: env_number("CF_BENCH_ECHO_TASKS", 64).max(1),
            echo_bytes: env_number("CF_BENCH_ECHO_BYTES", 1 << 20).max(1) as usize,
            startups: env_number("CF_BENCH_STARTUPS", 10).max(1),
            py_startups: env_number("CF_BENCH_PY_STARTUPS", 3),
            replacements: env_number("CF_BENCH_REPLACEMENTS", 200).max(1),
            py_replacements: env_number("CF_BENCH_PY_REPLACEMENTS", 20),
            codec_reps: 100_000,
            full,
        }
    } else {
        Settings {
            runs: 1,
            warm_up_runs: 0,
            tasks: 500,
            py_tasks: 100,
            map_items: 5000,
            py_map_items: 2000,
            calls: 50,
            py_calls: 20,
            echo_tasks: 4,
            echo_bytes: 1 << 20,
            startups: 1,
            py_startups: 1,
            replacements: 3,
            py_replacements: 2,
            codec_reps: 100,
            full,
        }
    };

    let python = if paired { find_python() } else { None };
    let pools = Pools::new();
    if env_number("CF_BENCH_CRITERION", 1) != 0 {
        let mut c = Criterion::default().configure_from_args();
        criterion_phase(&mut c, &pools, &mut floor, &settings);
        c.final_summary();
    }
    if paired {
        let markdown = paired_phase(&pools, &mut floor, python.as_ref(), &settings);
        let file_name = if CODEC == "postcard" {
            "process_pool_summary_postcard.md"
        } else {
            "process_pool_summary.md"
        };
        publish_report(&markdown, settings.full, file_name);
    }
}
