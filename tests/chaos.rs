//! The chaos soak, once per start method (Spawn, ForkServer, Fork, one
//! after the other): 20,000 tasks on a process pool of 2 that mix normal
//! results, panics, aborts, SIGKILLs sent from a second thread, cancels,
//! tasks past their time limit and large payloads. Afterwards every future
//! must hold the outcome its task's kind dictates (counted, and printed as
//! a table), the pool must be back to its 2 workers, and once it is gone
//! no child process and no new descriptor may remain.
//!
//! Ignored by `cargo test`; CI runs it in release, each start method
//! bounded at 60 s (a [`HangGuard`] aborts the run past that; each takes
//! about 5-10 s on 2 cores):
//!
//! ```text
//! cargo test --release --test chaos -- --ignored --nocapture
//! ```
//!
//! `CF_CHAOS_TASKS` changes the number of tasks (default 20,000) and
//! `CF_CHAOS_SEED` the order they are mixed in.
//!
//! One test in its own binary, so no other test's children or files change
//! what it counts.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use concurrent_futures::{ProcessPoolExecutor, StartMethod, TaskError, TaskFuture, task};

mod support;

use support::{HangGuard, children, open_fds};

/// What a task does, and so what its future must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Returns `x * x`.
    Value,
    /// Panics: `Panicked` with its message; the worker carries on.
    Panic,
    /// Aborts its worker: `WorkerDied` with SIGABRT.
    Abort,
    /// Tells the killer thread its pid and waits: `WorkerDied` with SIGKILL.
    Killed,
    /// Spins past a 20 ms limit: `TaskTimedOut`.
    Overdue,
    /// A 256 KiB payload echoed back: the same bytes.
    Large,
    /// Cancelled right after submit: `Cancelled` if it was still queued,
    /// else its value.
    Cancel,
}

/// How many of each kind in 20,000 (scaled to `CF_CHAOS_TASKS`).
const MIX: [(Kind, usize); 7] = [
    (Kind::Value, 15_500),
    (Kind::Panic, 1_500),
    (Kind::Large, 1_000),
    (Kind::Cancel, 1_000),
    (Kind::Abort, 400),
    (Kind::Killed, 400),
    (Kind::Overdue, 200),
];

const LIMIT: Duration = Duration::from_millis(20);
const LARGE: usize = 256 << 10;
const PANIC_MESSAGE: &str = "chaos: a task panicked on purpose";
/// Tasks in flight at once: submitted together, then all awaited.
const WAVE: usize = 500;
/// The bound on any one future.
const PATIENCE: Duration = Duration::from_secs(60);

#[task]
fn square(x: u64) -> u64 {
    x * x
}

/// Panics; the worker's panic hook is silenced first (in the worker: this
/// process is the pool's), so 1,500 panics do not flood the test's output.
#[task]
fn panics(_: ()) -> u64 {
    std::panic::set_hook(Box::new(|_| {}));
    panic!("{PANIC_MESSAGE}")
}

/// Aborts its worker, without leaving a core file on a machine that
/// writes them.
#[task]
fn abort(_: ()) -> u64 {
    support::no_core_dump();
    std::process::abort()
}

/// Sends this worker's pid to the killer's socket, then waits to be killed
/// (for at most a minute, so a broken killer fails the test, not the run).
#[task]
fn be_killed(socket: PathBuf) -> u64 {
    let me = UnixDatagram::unbound().expect("a datagram socket");
    me.send_to(&std::process::id().to_le_bytes(), &socket)
        .expect("the killer listens");
    std::thread::sleep(Duration::from_secs(60));
    0
}

#[task]
fn spin(_: ()) -> u64 {
    let mut n = 0_u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[task]
fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// A small deterministic generator (xorshift64*), for the mix's order.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

/// The kinds of `total` tasks in the mix's proportions, shuffled.
fn schedule(total: usize, seed: u64) -> Vec<Kind> {
    let full: usize = MIX.iter().map(|(_, n)| n).sum();
    let mut kinds: Vec<Kind> = MIX
        .iter()
        .flat_map(|&(kind, n)| std::iter::repeat_n(kind, (n * total).div_ceil(full)))
        .collect();
    kinds.truncate(total);
    let mut rng = Rng(seed | 1);
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    kinds
}

/// One submitted task: its kind, its input, and its future.
enum Submitted {
    Number(Kind, u64, TaskFuture<u64>),
    Bytes(Vec<u8>, TaskFuture<Vec<u8>>),
}

/// The outcome classes the table counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Value,
    Panicked,
    DiedSigabrt,
    DiedSigkill,
    TimedOut,
    Cancelled,
}

fn submit(pool: &ProcessPoolExecutor, kind: Kind, i: u64, socket: &Path) -> Submitted {
    use concurrent_futures::Executor;
    let number = |fut: Result<TaskFuture<u64>, TaskError>| {
        Submitted::Number(kind, i, fut.expect("the pool takes the task"))
    };
    match kind {
        Kind::Value => number(pool.submit(square, i)),
        Kind::Panic => number(pool.submit(panics, ())),
        Kind::Abort => number(pool.submit(abort, ())),
        Kind::Killed => number(pool.submit(be_killed, socket.to_path_buf())),
        Kind::Overdue => number(pool.submit_with_timeout(spin, (), LIMIT)),
        Kind::Cancel => {
            let fut = pool.submit(square, i).expect("the pool takes the task");
            fut.cancel();
            Submitted::Number(kind, i, fut)
        }
        Kind::Large => {
            let bytes: Vec<u8> = (0..LARGE).map(|b| (b as u64 ^ i) as u8).collect();
            let fut = pool.submit(echo, bytes.clone()).expect("the pool takes it");
            Submitted::Bytes(bytes, fut)
        }
    }
}

/// Waits for the task's outcome and checks it against its kind.
fn check(done: Submitted) -> (Kind, Seen) {
    let died = |e: &TaskError, signal| matches!(e, TaskError::WorkerDied { signal: s, exit_code: None, .. } if *s == Some(signal));
    match done {
        Submitted::Bytes(sent, fut) => match fut.result_timeout(PATIENCE) {
            Ok(back) => {
                assert!(*back == sent, "a large payload came back changed");
                (Kind::Large, Seen::Value)
            }
            Err(e) => panic!("a large echo failed: {e:?}"),
        },
        Submitted::Number(kind, i, fut) => {
            let outcome = fut.result_timeout(PATIENCE).copied();
            let seen = match (&outcome, kind) {
                (Ok(v), Kind::Value | Kind::Cancel) if *v == i * i => Seen::Value,
                (Err(TaskError::Panicked { message }), Kind::Panic) if message == PANIC_MESSAGE => {
                    Seen::Panicked
                }
                (Err(e), Kind::Abort) if died(e, 6) => Seen::DiedSigabrt,
                (Err(e), Kind::Killed) if died(e, 9) => Seen::DiedSigkill,
                (Err(TaskError::TaskTimedOut { limit, .. }), Kind::Overdue) if *limit == LIMIT => {
                    Seen::TimedOut
                }
                (Err(TaskError::Cancelled), Kind::Cancel) => Seen::Cancelled,
                _ => panic!("task {i} of kind {kind:?} ended with {outcome:?}"),
            };
            (kind, seen)
        }
    }
}

/// The soak on each start method in turn (one at a time: each checks that
/// it leaves no child and no descriptor behind).
#[test]
#[ignore = "a soak of ~20 s in release; CI runs it: cargo test --release --test chaos -- --ignored"]
fn chaos_soak() {
    for method in [
        StartMethod::Spawn,
        StartMethod::ForkServer,
        StartMethod::Fork,
    ] {
        soak(method);
    }
}

fn soak(method: StartMethod) {
    let _guard = HangGuard::with_limit("the chaos soak", Duration::from_secs(60));
    let total = env_number("CF_CHAOS_TASKS", 20_000) as usize;
    let kinds = schedule(total, env_number("CF_CHAOS_SEED", 0x5eed));
    let _ = std::env::current_exe();
    let fds_before = open_fds();
    assert!(
        children().is_empty(),
        "children before the soak: {:?}",
        children()
    );

    let dir = std::env::temp_dir().join(format!("cf-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("killer");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();

    let started = Instant::now();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .start_method(method)
        // The soak runs in the test harness, which has other threads.
        .allow_fork_with_threads(true)
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    let kills = AtomicUsize::new(0);
    let mut counts: BTreeMap<(Kind, Seen), usize> = BTreeMap::new();
    std::thread::scope(|scope| {
        // The second thread: kills each worker that announces itself.
        scope.spawn(|| {
            let mut pid = [0_u8; 4];
            while !stop.load(Ordering::Relaxed) {
                let Ok(4) = listener.recv(&mut pid) else {
                    continue;
                };
                let pid = u32::from_le_bytes(pid);
                assert!(
                    pool.worker_pids().contains(&pid),
                    "{pid} is not a worker of the pool"
                );
                // SAFETY: a plain system call on a worker that is alive
                // (it waits to be killed) and not yet reaped.
                assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
                kills.fetch_add(1, Ordering::Relaxed);
            }
        });
        for (wave, chunk) in kinds.chunks(WAVE).enumerate() {
            let submitted: Vec<Submitted> = chunk
                .iter()
                .enumerate()
                .map(|(j, &kind)| submit(&pool, kind, (wave * WAVE + j) as u64, &socket))
                .collect();
            for done in submitted {
                *counts.entry(check(done)).or_default() += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.worker_count() != 2 {
        assert!(
            Instant::now() < deadline,
            "the pool did not get back to 2 workers"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(pool.broken_reason(), None);

    println!("chaos soak, {method:?}: {total} tasks on a process pool of 2 in {elapsed:.1?}");
    println!("| kind | outcome | count |\n|---|---|---:|");
    for ((kind, seen), n) in &counts {
        println!("| {kind:?} | {seen:?} | {n} |");
    }
    for (kind, _) in MIX {
        let expected = kinds.iter().filter(|&&k| k == kind).count();
        let got: usize = counts
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(got, expected, "{kind:?}: every task accounted for");
    }
    assert_eq!(counts.values().sum::<usize>(), total);
    assert_eq!(
        kills.load(Ordering::Relaxed),
        kinds.iter().filter(|&&k| k == Kind::Killed).count(),
        "one kill per announcing task"
    );

    drop(pool);
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(children().is_empty(), "children left: {:?}", children());
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
}
