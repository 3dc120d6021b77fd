//! The matrix's harness: the executors of its columns, one [`Pool`] type
//! over both pools, the [`Cell`] every test runs in (serialised, watched
//! for hangs, checked for leftover processes, threads and descriptors),
//! and the [`fault_scenario`] most fault cells share.

use crate::support::{children, open_fds};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, Payload, ProcessPoolBuilder, ProcessPoolExecutor, StartMethod, TaskError, TaskFuture,
    ThreadPoolBuilder, ThreadPoolExecutor,
};

use crate::support::{Gate, HangGuard, SHORT_TIMEOUT};
use crate::tasks;

/// Workers per pool: one held by a bystander, one that meets the fault.
pub const WORKERS: usize = 2;

/// A column of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exec {
    /// `ThreadPoolExecutor`.
    Threads,
    /// `ProcessPoolExecutor` with `StartMethod::Fork`.
    Fork,
    /// `ProcessPoolExecutor` with `StartMethod::Spawn`.
    Spawn,
    /// `ProcessPoolExecutor` with `StartMethod::ForkServer`.
    ForkServer,
}

impl Exec {
    /// The test's name in its fault's module: `panic::threads`.
    pub const fn test_name(self) -> &'static str {
        match self {
            Exec::Threads => "threads",
            Exec::Fork => "fork",
            Exec::Spawn => "spawn",
            Exec::ForkServer => "forkserver",
        }
    }

    /// How the table names it.
    pub const fn label(self) -> &'static str {
        match self {
            Exec::Threads => "threads",
            Exec::Fork => "processes, fork",
            Exec::Spawn => "processes, spawn",
            Exec::ForkServer => "processes, forkserver",
        }
    }

    /// The start method of a process column.
    pub fn start_method(self) -> StartMethod {
        match self {
            Exec::Threads => panic!("a thread pool has no start method"),
            Exec::Fork => StartMethod::Fork,
            Exec::Spawn => StartMethod::Spawn,
            Exec::ForkServer => StartMethod::ForkServer,
        }
    }
}

/// Either pool, behind the one `Executor` trait.
pub enum Pool {
    Threads(ThreadPoolExecutor),
    Processes(ProcessPoolExecutor),
}

impl Executor for Pool {
    fn submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        args: A,
    ) -> Result<TaskFuture<R>, TaskError> {
        match self {
            Pool::Threads(p) => p.submit(f, args),
            Pool::Processes(p) => p.submit(f, args),
        }
    }

    fn submit_chunk<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
        match self {
            Pool::Threads(p) => p.submit_chunk(f, chunk),
            Pool::Processes(p) => p.submit_chunk(f, chunk),
        }
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        match self {
            Pool::Threads(p) => Executor::shutdown(p, wait, cancel_futures),
            Pool::Processes(p) => Executor::shutdown(p, wait, cancel_futures),
        }
    }

    fn max_workers(&self) -> usize {
        match self {
            Pool::Threads(p) => Executor::max_workers(p),
            Pool::Processes(p) => Executor::max_workers(p),
        }
    }
}

impl Pool {
    /// The process pool; panics for a thread pool.
    pub fn processes(&self) -> &ProcessPoolExecutor {
        match self {
            Pool::Processes(p) => p,
            Pool::Threads(_) => panic!("this cell needs a process pool"),
        }
    }

    /// Why the pool is broken, if it is.
    pub fn broken_reason(&self) -> Option<String> {
        match self {
            Pool::Threads(p) => p.broken_reason().map(str::to_owned),
            Pool::Processes(p) => p.broken_reason(),
        }
    }

    /// Worker threads started and not exited, or worker processes
    /// connected and not reaped.
    pub fn worker_count(&self) -> usize {
        match self {
            Pool::Threads(p) => p.worker_count(),
            Pool::Processes(p) => p.worker_count(),
        }
    }
}

// ---------------------------------------------------------------------------
// Cell
// ---------------------------------------------------------------------------

/// Every test of this binary holds this lock for its whole run, so that
/// each cell's hygiene checks (this process's children, threads and
/// descriptors) see only what that cell did. The whole binary stays fast
/// enough serialised.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the binary-wide lock (a failed test leaves it poisoned: ignored).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

static NEXT_CELL: AtomicUsize = AtomicUsize::new(0);

/// One cell of the matrix while it runs: holds the binary-wide lock and a
/// [`HangGuard`], builds the cell's pool, records every worker pid it
/// meets, and checks in [`finish`](Cell::finish) that dropping the pool
/// left nothing behind.
pub struct Cell {
    exec: Exec,
    /// The thread pool's thread-name prefix, unique to the cell.
    prefix: String,
    /// Every worker pid seen.
    pids: Mutex<BTreeSet<u32>>,
    fds_before: BTreeSet<String>,
    children_before: BTreeSet<u32>,
    _hang: HangGuard,
    _serial: MutexGuard<'static, ()>,
}

impl Cell {
    /// Starts the cell `name` (`"panic::fork"`) on `exec`.
    pub fn begin(exec: Exec, name: &'static str) -> Cell {
        let serial = serial();
        let hang = HangGuard::with_limit(name, 2 * SHORT_TIMEOUT);
        Cell {
            exec,
            prefix: format!("cfm{}", NEXT_CELL.fetch_add(1, Ordering::Relaxed)),
            pids: Mutex::new(BTreeSet::new()),
            fds_before: open_fds(),
            children_before: children(),
            _hang: hang,
            _serial: serial,
        }
    }

    pub fn exec(&self) -> Exec {
        self.exec
    }

    /// The cell's pool: [`WORKERS`] workers of its executor.
    pub fn pool(&self) -> Pool {
        self.pool_with(|b| b, |b| b)
    }

    /// The cell's pool, its builder adjusted by `threads` or `processes`.
    pub fn pool_with(
        &self,
        threads: impl FnOnce(ThreadPoolBuilder) -> ThreadPoolBuilder,
        processes: impl FnOnce(ProcessPoolBuilder) -> ProcessPoolBuilder,
    ) -> Pool {
        match self.exec {
            Exec::Threads => Pool::Threads(
                threads(
                    ThreadPoolExecutor::builder()
                        .max_workers(WORKERS)
                        .thread_name_prefix(&self.prefix),
                )
                .build()
                .expect("a valid thread pool configuration"),
            ),
            Exec::Fork | Exec::Spawn | Exec::ForkServer => Pool::Processes(
                processes(
                    ProcessPoolExecutor::builder()
                        .max_workers(WORKERS)
                        .start_method(self.exec.start_method())
                        .allow_fork_with_threads(true),
                )
                .build()
                .expect("a valid process pool configuration"),
            ),
        }
    }

    /// The thread-name prefix of the cell's thread pool.
    pub fn thread_prefix(&self) -> &str {
        &self.prefix
    }

    /// Records a worker pid (for a process pool; ignored for threads).
    pub fn note_pid(&self, pid: u32) {
        if self.exec != Exec::Threads {
            self.pids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(pid);
        }
    }

    /// Records the pool's current worker pids.
    pub fn note_workers(&self, pool: &Pool) {
        if let Pool::Processes(p) = pool {
            p.worker_pids()
                .into_iter()
                .for_each(|pid| self.note_pid(pid));
        }
    }

    /// Drops `pool` (`shutdown(wait = true)`) and checks that it left
    /// nothing behind: no worker process it had is still a child of this
    /// process (live or zombie), no child process started during the cell
    /// remains, no thread of the pool remains, and every descriptor opened
    /// during the cell is closed. Drop the cell's gates first.
    pub fn finish(self, pool: Pool) {
        self.note_workers(&pool);
        drop(pool);
        let me = std::process::id();
        let mut problems = Vec::new();
        for &pid in self
            .pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if let Some((state, ppid)) = stat(pid)
                && ppid == me
            {
                let what = if state == 'Z' { "a zombie" } else { "alive" };
                problems.push(format!("worker {pid} is still a child of the test, {what}"));
            }
        }
        let left: Vec<_> = children()
            .difference(&self.children_before)
            .copied()
            .collect();
        if !left.is_empty() {
            problems.push(format!("child processes left: {left:?}"));
        }
        let thread_prefix = match self.exec {
            Exec::Threads => format!("{}_", self.prefix),
            // Handler threads, joined by the pool's drop.
            Exec::Fork | Exec::Spawn | Exec::ForkServer => "cf-process-".to_owned(),
        };
        // A joined thread can stay listed in /proc for a moment: the
        // kernel wakes the joiner (clearing the thread's tid) before it
        // removes the thread's entry. So look again, for a bounded time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let threads = loop {
            let threads: Vec<_> = thread_names()
                .into_iter()
                .filter(|n| n.starts_with(&thread_prefix))
                .collect();
            if threads.is_empty() || std::time::Instant::now() >= deadline {
                break threads;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        if !threads.is_empty() {
            problems.push(format!("threads left: {threads:?}"));
        }
        let leaked: Vec<_> = open_fds().difference(&self.fds_before).cloned().collect();
        if !leaked.is_empty() {
            problems.push(format!("descriptors left open: {leaked:?}"));
        }
        assert!(
            problems.is_empty(),
            "after the pool was dropped: {problems:#?}"
        );
    }
}

/// The names of this process's threads (at most 15 bytes each).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .collect()
}

/// The state letter and parent pid of process `pid`, if it exists.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces and parens.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// The value of `fut`; panics if it failed or is not done within
/// [`SHORT_TIMEOUT`].
pub fn value<T: Clone + Debug>(fut: &TaskFuture<T>) -> T {
    match fut.result_timeout(SHORT_TIMEOUT) {
        Ok(v) => v.clone(),
        Err(e) => panic!("expected a value, got {e:?}: {e}"),
    }
}

/// The error of `fut`; panics if it succeeded or is not done within
/// [`SHORT_TIMEOUT`].
pub fn error<T: Debug>(fut: &TaskFuture<T>) -> TaskError {
    match fut.result_timeout(SHORT_TIMEOUT) {
        Ok(v) => panic!("expected the task to fail, it returned {v:?}"),
        Err(e @ TaskError::TimedOut { .. }) => {
            panic!("the future is not done within {SHORT_TIMEOUT:?}: {e}")
        }
        Err(e) => e,
    }
}

/// Polls `condition` (every millisecond) until it holds; panics after
/// [`SHORT_TIMEOUT`]. Only for states the pool signals no event for.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SHORT_TIMEOUT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {SHORT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `n` workers are connected; returns their pids, sorted.
pub fn wait_for_workers(pool: &ProcessPoolExecutor, n: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    wait_until(&format!("{n} connected workers"), || {
        pids = pool.worker_pids();
        pool.worker_count() == n && pids.len() == n
    });
    pids.sort_unstable();
    pids
}

/// The pid in the arrival `"<tag>:<pid>"` (see [`tasks::block_report`]).
pub fn pid_of(arrivals: &[String], tag: &str) -> u32 {
    let prefix = format!("{tag}:");
    arrivals
        .iter()
        .find_map(|a| a.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no arrival tagged {tag:?} in {arrivals:?}"))
        .parse()
        .expect("a pid")
}

/// Asserts that `text` contains every one of `phrases`.
#[track_caller]
pub fn says(text: &str, phrases: &[&str]) {
    for phrase in phrases {
        assert!(text.contains(phrase), "{text:?} does not say {phrase:?}");
    }
}

// ---------------------------------------------------------------------------
// The shared scenario
// ---------------------------------------------------------------------------

/// What becomes of the worker that meets the fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It carries on (a thread always does): the same pid runs the next
    /// task.
    Survives,
    /// Its process dies and the pool starts a replacement.
    Dies,
}

/// The shape of every fault that fails one task:
///
/// 1. a bystander task blocks one of the [`WORKERS`] workers on a gate;
/// 2. `fault` submits the faulty task, which can only run on the other
///    worker (for a process pool its pid is therefore known), and four
///    quick tasks are queued behind it;
/// 3. the fault's error (from `submit`, or from its future) goes to
///    `check` with the pid of the worker it met (this process's for
///    threads);
/// 4. with the bystander still blocked, the next task runs where the fault
///    ran: in a process pool on the same pid if the worker `Survives`, on
///    a fresh replacement if it `Dies` (and the pool gets back to
///    [`WORKERS`] connected workers, without the dead pid); a thread pool
///    keeps its [`WORKERS`] threads;
/// 5. the gate opens: the bystander and the queued tasks complete with
///    their values, the pool runs a `map` of new work, and no task that
///    reports `"ran"` (one whose submit failed) ever ran.
pub fn fault_scenario<R: Payload + Debug>(
    cell: &Cell,
    pool: &Pool,
    fault: impl FnOnce(&Pool, &Gate) -> Result<TaskFuture<R>, TaskError>,
    fate: Fate,
    check: impl FnOnce(&TaskError, u32),
) {
    let gate = Gate::new();
    let bystander = pool
        .submit(tasks::block_report, (gate.gate_ref(), "bystander".into()))
        .unwrap();
    let bystander_pid = pid_of(&gate.wait_for_arrivals(1), "bystander");
    let before = match pool {
        Pool::Threads(_) => Vec::new(),
        Pool::Processes(p) => wait_for_workers(p, WORKERS),
    };
    cell.note_workers(pool);
    let fault_pid = match pool {
        Pool::Threads(_) => std::process::id(),
        Pool::Processes(_) => *before
            .iter()
            .find(|&&p| p != bystander_pid)
            .expect("a second worker"),
    };

    let faulty = fault(pool, &gate);
    let queued: Vec<_> = (1..=4_u64)
        .map(|i| pool.submit(tasks::square, i).unwrap())
        .collect();
    let err = match faulty {
        Ok(fut) => error(&fut),
        Err(e) => e,
    };
    check(&err, fault_pid);
    assert!(
        !bystander.done(),
        "the bystander must still be blocked: {bystander:?}"
    );

    let next_pid = value(&pool.submit(tasks::whoami, ()).unwrap());
    match (pool, fate) {
        (Pool::Threads(p), _) => {
            assert_eq!(fate, Fate::Survives, "a thread cannot die alone");
            assert_eq!(next_pid, std::process::id());
            assert_eq!(p.worker_count(), WORKERS, "a worker thread was lost");
        }
        (Pool::Processes(p), Fate::Survives) => {
            assert_eq!(
                next_pid, fault_pid,
                "the worker that met the fault must carry on"
            );
            let mut now = p.worker_pids();
            now.sort_unstable();
            assert_eq!(now, before, "no worker may have been replaced");
        }
        (Pool::Processes(p), Fate::Dies) => {
            assert_ne!(next_pid, fault_pid, "a dead worker cannot run a task");
            assert_ne!(next_pid, bystander_pid, "the bystander's worker is busy");
            let now = wait_for_workers(p, WORKERS);
            cell.note_workers(pool);
            assert!(!now.contains(&fault_pid), "{now:?} still lists {fault_pid}");
            assert!(
                now.contains(&next_pid) && now.contains(&bystander_pid),
                "{now:?}"
            );
        }
    }
    assert_eq!(pool.broken_reason(), None);

    gate.open();
    assert_eq!(value(&bystander), bystander_pid);
    let squares: Vec<u64> = queued.iter().map(value).collect();
    assert_eq!(squares, [1, 4, 9, 16]);
    let more: Vec<u64> = pool
        .map(tasks::square, 0..16_u64)
        .map(Result::unwrap)
        .collect();
    assert_eq!(more, (0..16_u64).map(|x| x * x).collect::<Vec<_>>());
    let arrivals = gate.settled_arrivals();
    assert!(
        !arrivals.iter().any(|a| a == "ran"),
        "a refused task ran: {arrivals:?}"
    );
}
