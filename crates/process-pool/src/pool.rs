//! [`ProcessPoolExecutor`]: the queue in the parent, one handler thread per
//! worker process, and the jobs that complete futures.
//!
//! Queued work lives only in the parent's memory, as one encoded request
//! per job (a `Vec<u8>`), in one FIFO shared by every handler. A worker
//! gets the next job only when it is idle, so an idle worker never waits
//! while another has a backlog, a queued job can still be cancelled, and a
//! queued job holds no descriptor: 100,000 queued tasks cost only their
//! bytes.
//!
//! **Handlers and the fast path.** Each worker has a handler thread that
//! owns its response channel and, between jobs, blocks *reading it*: an
//! idle worker sends nothing, so that read returns only when the worker
//! dies (it is then reaped and replaced at once, with no task lost) or
//! after a job was sent to it. A submit that finds an idle slot takes it,
//! puts the job in the slot's in-flight line and sends the request to the
//! worker itself; the worker starts at once and the handler wakes with the
//! response in hand. A handler whose worker finishes a job tops its line
//! up from the queue to [`DEPTH`] jobs, so while a backlog lasts the next
//! job already waits in the worker's socket. The request channels live in
//! `State::senders` and nowhere else, so removing one closes the channel
//! and tells its worker to exit (after it has answered what it holds):
//! that is how shutdown and retirement stop a worker.
//!
//! Invariants, under the state lock: a slot is in `idle` only while its
//! worker is connected, its line is empty and its handler is reading;
//! whoever takes a slot out of `idle` puts a job in its line; a job is in
//! exactly one of the queue, a line, or a handler's hands; each line job's
//! [`Delivery`] says whether its request reached the socket, which is what
//! decides, when the worker dies, which job dies with it (the first that
//! reached it: a worker answers each job before it reads the next) and
//! which are kept for the replacement.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use concurrent_futures_core::{
    Completer, ConfigError, Executor, InitResult, InlineRun, Payload, TaskError, TaskFuture,
    catch_panic,
};
use concurrent_futures_task_wire::codec::{self, CodecError};
use concurrent_futures_task_wire::registry;
use concurrent_futures_task_wire::wire::{self, Outcome, Response};
use serde::de::DeserializeOwned;

use crate::channel::Sender;
use crate::deaths::DeathWatch;
use crate::fork_server::ForkServer;
use crate::process::{self, Launcher, Started, Worker};
use crate::watchdog::Watchdog;
use crate::worker;
use nix::unistd::Pid;

/// How worker processes are started.
///
/// ```
/// use concurrent_futures_process_pool::StartMethod;
/// assert_eq!(StartMethod::default(), StartMethod::Spawn);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartMethod {
    /// Execute the current program (or the builder's `worker_program`)
    /// afresh. The new process recognises its worker role before `main`
    /// runs (nothing to add to `main`; see the crate docs) and serves
    /// tasks. Safe in a multi-threaded program. The default here.
    /// (CPython's default is `spawn` on macOS and Windows, and
    /// `forkserver` on Linux since 3.14.)
    #[default]
    Spawn,
    /// `fork` the initial workers from the thread that calls `build()`,
    /// before the pool starts any thread of its own. Cheaper to start, and
    /// the workers inherit the parent's memory. **Hazard:** only the
    /// forking thread survives in the child, so a lock that another thread
    /// of the program held at that moment (inside `malloc`, `println!`, a
    /// `Mutex` of yours) stays held forever in the worker, which may then
    /// hang. That is why CPython 3.14 moved its default away from fork
    /// (gh-84559, gh-90622). Replacements (after a worker dies or retires)
    /// are started as with [`Spawn`](Self::Spawn), since by then the pool's
    /// own threads exist.
    ///
    /// What the pool itself does in a forked worker avoids the locks it
    /// knows of: lazy statics are initialised before forking, and the
    /// worker writes its messages with plain `write(2)`. Panics too: the
    /// first `build()` with `Fork` wraps the program's panic hook so that
    /// the parent's panics still go to it, while a forked worker's panic
    /// prints its thread, location and message without taking the lock
    /// that std's hook takes (held for ever in the worker if another
    /// thread of the parent was printing a panic at the fork). A forked
    /// worker's panics print no backtrace, and a panic hook the program
    /// sets after its first `Fork` pool replaces the wrapper. The worker's
    /// own thread (the one that notices the parent's death) is a bare
    /// pthread, because std's thread start-up takes a lock of std's that
    /// a thread starting or ending in the parent at the fork leaves held.
    /// A *task* in a forked worker meets that lock too if it starts a
    /// `std::thread` or calls `std::process::exit` (whose clean-up takes
    /// it): rarely, such a task hangs. Use `Spawn` or `ForkServer` for
    /// tasks like that. Because of this hazard `build()` refuses `Fork`
    /// in a process that already runs other threads, unless the builder
    /// opts in with
    /// [`allow_fork_with_threads`](ProcessPoolBuilder::allow_fork_with_threads).
    Fork,
    /// A *fork server* (CPython's `forkserver`, its Linux default since
    /// 3.14): `build()` starts one small process, this program executed
    /// afresh with one thread that never runs `main`, and it forks every
    /// worker of the pool, the replacements too. Each start is a fork of
    /// that clean, small process: safe whatever threads the program runs
    /// (no lock of theirs can be held in it), and cheaper than `Spawn`,
    /// which pays an `exec` and the loader per worker. Workers do not
    /// inherit the program's memory (unlike `Fork`). The workers are
    /// children of the pool's process, as with the other methods; the
    /// server ends with the pool, and is started again if it dies.
    ForkServer,
}

/// The initializer: a registered task run once in every worker before its
/// first task.
struct InitSpec {
    name: &'static str,
    arg: Vec<u8>,
    /// Decodes the initializer's result and says whether it failed.
    check: fn(&[u8]) -> Result<(), String>,
}

fn check_init<R: DeserializeOwned + InitResult>(bytes: &[u8]) -> Result<(), String> {
    codec::decode::<R>(bytes)
        .map_err(|e| e.to_string())?
        .into_init_result()
}

/// Configures a [`ProcessPoolExecutor`]: CPython's constructor arguments.
///
/// ```
/// use concurrent_futures_process_pool::{ProcessPoolExecutor, StartMethod};
///
/// let pool = ProcessPoolExecutor::builder()
///     .max_workers(2)
///     .start_method(StartMethod::Spawn)
///     .max_tasks_per_child(100)
///     .build()
///     .unwrap();
/// assert_eq!(pool.max_workers(), 2);
/// assert!(ProcessPoolExecutor::builder().max_workers(0).build().is_err());
/// ```
#[must_use]
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    start_method: StartMethod,
    program: Option<PathBuf>,
    initializer: Option<Result<InitSpec, ConfigError>>,
    max_tasks_per_child: Option<usize>,
    start_timeout: Duration,
    task_timeout: Option<Duration>,
    memory_limit: Option<u64>,
    allow_fork_with_threads: bool,
}

impl ProcessPoolBuilder {
    /// The number of worker processes; at least 1. Default: the number of
    /// CPUs, as CPython.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// How workers start; [`StartMethod::Spawn`] by default.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = method;
        self
    }

    /// Lets [`StartMethod::Fork`] fork from a process that already runs
    /// other threads. Without it, `build()` refuses `Fork` when
    /// `/proc/self/status` counts more than one thread, with a
    /// [`ConfigError`] that names `StartMethod::ForkServer` and
    /// `StartMethod::Spawn`, the start methods that are safe there.
    ///
    /// The hazard (see [`StartMethod::Fork`]): only the forking thread
    /// survives in a forked worker, so a lock another thread held at that
    /// instant (inside `malloc`, `println!`, a `Mutex` of yours) stays held
    /// for ever in the worker, which may then hang. CPython 3.12 started
    /// warning about the same thing ("This process is multi-threaded, use
    /// of fork() may lead to deadlocks in the child"). Opt in only when you
    /// know what the other threads may hold at `build()` (a test harness
    /// whose other threads are idle, say). Default: false.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, task};
    ///
    /// #[task]
    /// fn double(x: u32) -> u32 { 2 * x }
    ///
    /// // Another thread runs while the pool forks.
    /// let (stop, parked) = std::sync::mpsc::channel::<()>();
    /// let other = std::thread::spawn(move || parked.recv());
    ///
    /// let refused = ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .start_method(StartMethod::Fork)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(refused.to_string().contains("StartMethod::Spawn"));
    ///
    /// let pool = ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .start_method(StartMethod::Fork)
    ///     .allow_fork_with_threads(true) // `other` holds no lock
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(double, 21).unwrap().into_result(), Ok(42));
    /// drop(stop);
    /// let _ = other.join();
    /// ```
    pub fn allow_fork_with_threads(mut self, allow: bool) -> Self {
        self.allow_fork_with_threads = allow;
        self
    }

    /// Spawn this program as the worker instead of the current executable.
    /// It must link concurrent-futures and register the same tasks (same
    /// crate and module paths), since workers find tasks by name.
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// Runs `f(arg)` once in every worker process before its first task
    /// (CPython's `initializer` and `initargs`). `f` must be a registered
    /// `#[task]` and may return `()` or `Result<(), E>`. If it fails (an
    /// `Err` or a panic) in any worker, the pool is *broken*: queued and
    /// later tasks fail with [`TaskError::Broken`] naming the cause, and no
    /// worker is started again (CPython's `BrokenProcessPool`).
    pub fn initializer<A: Payload, R: Payload + InitResult>(
        mut self,
        f: fn(A) -> R,
        arg: A,
    ) -> Self {
        let spec = registry::lookup(f)
            .map_err(|e| ConfigError::new(format!("initializer: {e}")))
            .and_then(|entry| {
                let arg = codec::encode(&arg)
                    .map_err(|e| ConfigError::new(format!("initializer argument: {e}")))?;
                Ok(InitSpec {
                    name: entry.name,
                    arg,
                    check: check_init::<R>,
                })
            });
        self.initializer = Some(spec);
        self
    }

    /// Retire a worker after it has run `n` tasks (a chunk counts as one)
    /// and start a fresh one: CPython's `max_tasks_per_child`, for tasks
    /// that leak. Default: never.
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// How long a starting worker may take to connect before it is killed
    /// and the pool reported broken. Default: 30 s.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// A time limit for every task (pebble's `timeout`; CPython has none):
    /// a task still running `limit` after its worker started it is stopped
    /// by killing that worker (SIGKILL), its future fails with
    /// [`TaskError::TaskTimedOut`], and a replacement worker starts. Other
    /// futures are not touched. A chunk of `map` with `chunksize(n)` may
    /// run `n × limit`. [`ProcessPoolExecutor::submit_with_timeout`] sets a
    /// limit for one task. Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, task};
    ///
    /// #[task]
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .task_timeout(Duration::from_millis(200))
    ///     .build()
    ///     .unwrap();
    /// let slow = pool.submit(nap, 60_000).unwrap();
    /// assert!(matches!(slow.into_result(), Err(TaskError::TaskTimedOut { .. })));
    /// assert_eq!(pool.submit(nap, 1).unwrap().into_result(), Ok(1));
    /// ```
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// Limits each worker's address space to `bytes` (`RLIMIT_AS`), so a
    /// runaway task fails its own allocation and dies alone instead of
    /// driving the machine into the out-of-memory killer. Its future fails
    /// with [`TaskError::WorkerDied`] (SIGABRT: Rust aborts when an
    /// allocation fails) and a replacement worker starts.
    ///
    /// The limit counts the worker's whole address space (its `VmSize`,
    /// not what it has touched): code, thread stacks and the allocator's
    /// reserved arenas too, so leave room (a spawned worker starts at a
    /// few tens of MiB). A forked worker starts with a copy of the
    /// parent's address space, which counts against the limit. Default:
    /// none.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, task};
    ///
    /// #[task]
    /// fn allocate(mib: usize) -> usize {
    ///     let v = vec![1u8; mib << 20];
    ///     v.iter().map(|&b| b as usize).sum::<usize>() >> 20
    /// }
    ///
    /// let pool = ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .memory_limit(512 << 20)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(allocate, 16).unwrap().into_result(), Ok(16));
    /// let runaway = pool.submit(allocate, 4096).unwrap().into_result();
    /// assert!(matches!(runaway, Err(TaskError::WorkerDied { signal: Some(6), .. })));
    /// assert_eq!(pool.submit(allocate, 16).unwrap().into_result(), Ok(16));
    /// ```
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Builds the pool and starts its workers. With [`StartMethod::Fork`]
    /// the workers are forked here, in the calling thread; with `Spawn`
    /// each handler thread spawns its own; with `ForkServer` the server is
    /// started here and each handler has it fork its worker. `build` does
    /// not wait for the workers to connect: a worker that cannot start makes the pool broken, which
    /// its futures and the next submit report.
    ///
    /// Errors: `max_workers` or `max_tasks_per_child` of 0, an initializer
    /// that is not a registered task or whose argument does not encode,
    /// `Fork` in a process that already runs other threads (unless
    /// [`allow_fork_with_threads`](Self::allow_fork_with_threads)), or no
    /// way to create the pool's pipe.
    pub fn build(self) -> Result<ProcessPoolExecutor, ConfigError> {
        worker::refuse_inside_a_worker();
        let max_workers = match self.max_workers {
            Some(0) => return Err(ConfigError::new("max_workers must be greater than 0")),
            Some(n) => n,
            None => num_cpus::get(),
        };
        if self.max_tasks_per_child == Some(0) {
            return Err(ConfigError::new(
                "max_tasks_per_child must be greater than 0",
            ));
        }
        if self.task_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new("task_timeout must be greater than 0"));
        }
        if self.memory_limit == Some(0) {
            return Err(ConfigError::new("memory_limit must be greater than 0"));
        }
        if self.start_method == StartMethod::Fork && !self.allow_fork_with_threads {
            refuse_fork_with_threads()?;
        }
        let initializer = self.initializer.transpose()?;
        let shared = Arc::new(Shared {
            launcher: Launcher {
                program: self.program,
                start_timeout: self.start_timeout,
                memory_limit: self.memory_limit,
                fork_server: (self.start_method == StartMethod::ForkServer).then(ForkServer::new),
            },
            initializer,
            max_workers,
            max_tasks_per_child: self.max_tasks_per_child,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                shutdown: false,
                broken: None,
                terminated: None,
                idle: Vec::with_capacity(max_workers),
                in_flight: (0..max_workers).map(|_| VecDeque::new()).collect(),
                budget: vec![0; max_workers],
                senders: vec![None; max_workers],
            }),
            sent: Condvar::new(),
            next_id: AtomicU64::new(1),
            alive: AtomicUsize::new(0),
            pids: Mutex::new(vec![None; max_workers]),
            await_reply: Arc::new(AwaitReply),
            task_timeout: self.task_timeout,
            watchdog: Watchdog::new(max_workers),
            deaths: DeathWatch::new()
                .map_err(|e| ConfigError::new(format!("cannot create the death watch: {e}")))?,
            limits_used: AtomicBool::new(false),
        });
        // Fork every initial worker before this pool has a thread.
        let mut forked: Vec<Option<Started>> = Vec::with_capacity(max_workers);
        for _ in 0..max_workers {
            forked.push(match self.start_method {
                StartMethod::Fork => match shared.launcher.fork() {
                    Ok(started) => Some(started),
                    Err(e) => {
                        shared.set_broken(e);
                        None
                    }
                },
                StartMethod::Spawn | StartMethod::ForkServer => None,
            });
        }
        // The fork server, before the handlers ask it for workers: its
        // failure to start is the pool's, reported like a worker's.
        if let Some(server) = &shared.launcher.fork_server
            && let Err(e) = shared
                .launcher
                .program()
                .and_then(|program| server.start(&program, shared.launcher.start_timeout))
        {
            shared.set_broken(e);
        }
        let mut handlers = Vec::with_capacity(max_workers);
        for (slot, started) in forked.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let handler = std::thread::Builder::new()
                .name(format!("cf-process-{slot}"))
                .spawn(move || Handler::new(shared, slot).run(started))
                .map_err(|e| ConfigError::new(format!("cannot start a handler thread: {e}")))?;
            handlers.push(handler);
        }
        Ok(ProcessPoolExecutor {
            shared,
            handlers: Mutex::new(handlers),
        })
    }
}

/// `Fork`'s guard: refuses when this process runs more than one thread
/// (see [`ProcessPoolBuilder::allow_fork_with_threads`]). Where
/// `/proc/self/status` cannot be read, the count is unknown and the fork
/// is allowed.
fn refuse_fork_with_threads() -> Result<(), ConfigError> {
    match thread_count() {
        Some(threads) if threads > 1 => Err(ConfigError::new(format!(
            "StartMethod::Fork in a process that runs {threads} threads: a lock another \
             thread holds at the fork stays held for ever in the forked workers, which may \
             then hang; use StartMethod::ForkServer or StartMethod::Spawn, build the Fork \
             pool before the program starts threads, or opt in with \
             allow_fork_with_threads(true)"
        ))),
        _ => Ok(()),
    }
}

/// The number of threads of this process (`Threads:` in
/// `/proc/self/status`), if it can be read.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// A pool of worker processes that runs registered tasks and hands back
/// [`TaskFuture`]s: CPython's `ProcessPoolExecutor`, with one difference
/// that matters: **a worker that dies fails only the future it was
/// running**. The pool starts a replacement and every other future
/// completes; CPython marks the whole pool broken instead.
///
/// ```
/// use concurrent_futures::{Executor, ProcessPoolExecutor, task};
///
/// #[task]
/// fn fib(n: u32) -> u64 {
///     if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// let pool = ProcessPoolExecutor::builder().max_workers(2).build().unwrap();
/// assert_eq!(pool.submit(fib, 20).unwrap().result(), Ok(&6765));
/// let fibs: Vec<u64> = pool.map(fib, 10..13).map(Result::unwrap).collect();
/// assert_eq!(fibs, [55, 89, 144]);
/// ```
///
/// * Tasks are plain functions marked `#[concurrent_futures::task]`; a
///   worker runs only registered tasks, looked up by name. Submitting any
///   other function fails at once with [`TaskError::Unregistered`].
/// * Arguments are encoded at submit (a failure is [`TaskError::Encode`]
///   from `submit`); results are decoded in the parent
///   ([`TaskError::Decode`] fails that future only).
/// * A panic fails its future with [`TaskError::Panicked`] and the worker
///   carries on. Abort, `exit`, a segfault, SIGKILL or the OOM killer fail
///   the running future with [`TaskError::WorkerDied`] (pid, signal or
///   status) and the worker is replaced.
/// * Workers die with the parent process, whatever kills it, and inherit
///   only stdio and their own channel.
/// * Done-callbacks run in the pool's handler thread that completes the
///   future (CPython: its management thread). That handler sends its
///   worker nothing more until the callback returns, so a callback may
///   submit to the pool but must not wait for what it submitted: on a
///   one-worker pool that work cannot start before the callback ends.
///   Hand such waits to another thread.
/// * Dropping the pool is `shutdown(wait = true)`.
pub struct ProcessPoolExecutor {
    shared: Arc<Shared>,
    handlers: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    launcher: Launcher,
    initializer: Option<InitSpec>,
    max_workers: usize,
    max_tasks_per_child: Option<usize>,
    state: Mutex<State>,
    /// Signalled when an in-flight job's send ends (see [`Delivery`]).
    sent: Condvar,
    next_id: AtomicU64,
    alive: AtomicUsize,
    pids: Mutex<Vec<Option<u32>>>,
    /// Every future's hook: see [`AwaitReply`].
    await_reply: Arc<dyn InlineRun>,
    /// The builder's `task_timeout`: every task's limit unless its submit
    /// gives one.
    task_timeout: Option<Duration>,
    /// Kills the worker of a task past its limit.
    watchdog: Arc<Watchdog>,
    /// Sees each worker's exit from the process itself (see `deaths.rs`).
    deaths: DeathWatch,
    /// Set before the first job with a time limit is queued, or the first
    /// `stop_task` marks a job; until then handlers skip the watchdog (no
    /// extra lock per task). The job is queued (or marked) under the state
    /// lock after the store, and a handler reads the flag after taking
    /// that lock in `fill`, so one that can see the job sees the flag.
    limits_used: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.watchdog.stop();
    }
}

struct State {
    queue: VecDeque<Job>,
    shutdown: bool,
    broken: Option<String>,
    /// Set by `terminate_workers()` / `kill_workers()`: why the jobs their
    /// signal caught fail. No worker is started or given a job after it.
    terminated: Option<String>,
    /// Slots whose worker is idle and whose handler is reading.
    idle: Vec<usize>,
    /// Each slot's jobs sent (or being sent, or kept for the next worker),
    /// oldest first: the one its worker runs, then at most one more that
    /// waits in the worker's socket (see [`DEPTH`]).
    in_flight: Vec<VecDeque<(Job, Delivery)>>,
    /// How many more jobs each slot's worker may be sent before it retires
    /// (`max_tasks_per_child`; unlimited otherwise).
    budget: Vec<usize>,
    /// Each connected worker's request channel: the only handle on it.
    senders: Vec<Option<Sender>>,
}

/// How many jobs a busy worker holds: the one it runs and the next, which
/// waits in its socket so that the worker does not idle between tasks while
/// a deep backlog lasts. A job is sent ahead only when a worker finishes
/// one and the pool is saturated (every worker busy, at least one more
/// queued job per worker), so a few jobs submitted to a busy pool stay
/// queued (and cancellable) and never wait behind another task while a
/// worker is idle. Like the jobs in CPython's call queue, a job sent ahead
/// is RUNNING: it can no longer be cancelled; and at the tail of a backlog
/// of uneven tasks it may wait behind a long one while another worker has
/// run out of work.
const DEPTH: usize = 2;

/// The largest request sent to a worker that is busy with another job. A
/// request sent ahead must fit in the worker's socket buffer: if the send
/// blocked, the handler could not read the response the busy worker is
/// trying to send, and the two would wait on each other for ever. Larger
/// requests wait until the worker is free.
const AHEAD_MAX: usize = 32 * 1024;

/// How long a thread that waits for a result keeps looking before it
/// sleeps (see [`AwaitReply`]).
const REPLY_SPIN: Duration = Duration::from_micros(100);

/// The hook on every future of the pool. Nothing runs inline (the task
/// runs in a worker), but a waiter keeps looking for the result for
/// [`REPLY_SPIN`] before it sleeps. An idle round trip is three wake-ups:
/// the worker, the slot's handler thread (which reads the response and
/// completes the future), then the waiter; a waiter that is still awake
/// when the future completes saves the third (what that saves is in
/// `docs/PERFORMANCE.md`, process pool, "Findings: where the time goes").
struct AwaitReply;

impl InlineRun for AwaitReply {
    fn try_run_inline(&self) -> bool {
        false
    }

    fn spin_before_blocking(&self) -> Duration {
        REPLY_SPIN
    }
}

/// Requests to send, with their job ids.
type Sends = Vec<(u64, Arc<Vec<u8>>)>;

/// How far an in-flight job's request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// Not sent yet (kept for a replacement worker).
    Unsent,
    /// A thread is sending it, outside the lock.
    Sending,
    /// In the worker's socket: if the worker dies now, the job dies with it.
    Sent,
    /// The send failed: the worker was dead already.
    Failed,
}

/// One queued unit of work: the request, ready to send, and the sink that
/// completes its future.
struct Job {
    id: u64,
    /// `stop_task` failed this job's future (its sink is [`Discarded`]):
    /// its worker is to be killed once it runs it, and it is never sent
    /// again.
    stopped: bool,
    /// How long the task may run (see [`crate::watchdog`]).
    timeout: Option<Duration>,
    /// Shared with a send in progress, and kept until the job is done, so
    /// that a job that never reached a dead worker can go to the next.
    request: Arc<Vec<u8>>,
    sink: Box<dyn Sink>,
}

/// The typed end of a job: knows its result type and its completer.
trait Sink: Send {
    /// PENDING → RUNNING; false if the future was cancelled.
    fn start(&self) -> bool;
    /// Completes the future from the worker's response.
    fn deliver(self: Box<Self>, response: Response<'_>);
    /// Fails the future.
    fn fail(self: Box<Self>, error: TaskError);
    /// Cancels a queued job (`shutdown(cancel_futures = true)`).
    fn cancel(self: Box<Self>);
    /// Whether this sink completes `future` (a `&TaskFuture<T>`).
    fn is_for(&self, future: &dyn Any) -> bool;
}

/// The sink of a job whose future `stop_task` has failed already: whatever
/// becomes of the job, nobody is told.
struct Discarded;

impl Sink for Discarded {
    fn start(&self) -> bool {
        true
    }
    fn deliver(self: Box<Self>, _: Response<'_>) {}
    fn fail(self: Box<Self>, _: TaskError) {}
    fn cancel(self: Box<Self>) {}
    fn is_for(&self, _: &dyn Any) -> bool {
        false
    }
}

fn outcome_into<R: DeserializeOwned>(outcome: Outcome<'_>) -> Result<R, TaskError> {
    match outcome {
        Outcome::Ok(bytes) => codec::decode::<R>(bytes).map_err(decode_error),
        Outcome::Panicked(message) => Err(TaskError::Panicked {
            message: message.to_owned(),
        }),
        Outcome::DecodeArgs { type_name, reason } => Err(TaskError::Decode {
            type_name: type_name.to_owned(),
            reason: reason.to_owned(),
        }),
        Outcome::EncodeResult { type_name, reason } => Err(TaskError::Encode {
            type_name: type_name.to_owned(),
            reason: reason.to_owned(),
        }),
        Outcome::UnknownTask(name) => Err(TaskError::Unregistered {
            function: format!("the task {name}, which the worker binary does not register,"),
        }),
    }
}

fn decode_error(e: CodecError) -> TaskError {
    TaskError::Decode {
        type_name: e.type_name.to_owned(),
        reason: e.reason,
    }
}

fn encode_error(e: CodecError) -> TaskError {
    TaskError::Encode {
        type_name: e.type_name.to_owned(),
        reason: e.reason,
    }
}

fn protocol_error(what: &str) -> TaskError {
    TaskError::Broken {
        reason: format!("the worker answered out of protocol: {what}"),
    }
}

/// A job's typed end: its completer, and how to read its response into
/// the future's value (`items`: how many outcomes a chunk must carry).
struct Pending<T> {
    completer: Completer<T>,
    read: fn(Response<'_>, usize) -> Result<T, TaskError>,
    items: usize,
}

impl<T: Send + Sync + 'static> Sink for Pending<T> {
    fn start(&self) -> bool {
        self.completer.set_running()
    }
    fn deliver(self: Box<Self>, response: Response<'_>) {
        let result = (self.read)(response, self.items);
        self.completer.complete(result);
    }
    fn fail(self: Box<Self>, error: TaskError) {
        self.completer.complete(Err(error));
    }
    fn cancel(self: Box<Self>) {
        self.completer.cancel();
    }
    fn is_for(&self, future: &dyn Any) -> bool {
        future
            .downcast_ref::<TaskFuture<T>>()
            .is_some_and(|f| self.completer.is_for(f))
    }
}

/// One outcome into an `R`, a panicking `Deserialize` included.
fn decode_outcome<R: Payload>(outcome: Outcome<'_>) -> Result<R, TaskError> {
    catch_panic(|| outcome_into::<R>(outcome)).unwrap_or_else(|e| Err(panicked_decode::<R>(e)))
}

fn read_one<R: Payload>(response: Response<'_>, _: usize) -> Result<R, TaskError> {
    match response {
        Response::Done { outcome, .. } => decode_outcome(outcome),
        _ => Err(protocol_error("a chunk or init response to a single task")),
    }
}

fn read_chunk<R: Payload>(
    response: Response<'_>,
    items: usize,
) -> Result<Vec<Result<R, TaskError>>, TaskError> {
    match response {
        Response::Chunk { outcomes, .. } if outcomes.len() == items => {
            Ok(outcomes.into_iter().map(decode_outcome).collect())
        }
        _ => Err(protocol_error("not one outcome per chunk item")),
    }
}

/// A `Deserialize` impl that panicked while decoding a result.
fn panicked_decode<R>(e: TaskError) -> TaskError {
    TaskError::Decode {
        type_name: std::any::type_name::<R>().to_owned(),
        reason: format!("the decode panicked: {}", panic_text(e)),
    }
}

/// The message of a caught panic, without `TaskError`'s "the task
/// panicked" (no task ran).
fn panic_text(e: TaskError) -> String {
    match e {
        TaskError::Panicked { message } => message,
        other => other.to_string(),
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the pool broken, fails everything not yet sent, and stops the
    /// idle workers.
    fn set_broken(&self, reason: String) {
        let (queued, unsent) = {
            let mut state = self.lock();
            if state.broken.is_none() {
                state.broken = Some(reason.clone());
            }
            stop_idle(&mut state);
            let unsent = take_unsent(&mut state);
            (state.queue.drain(..).collect::<Vec<_>>(), unsent)
        };
        let broken = || TaskError::Broken {
            reason: reason.clone(),
        };
        for job in queued {
            if job.sink.start() {
                job.sink.fail(broken());
            }
        }
        // In-flight jobs are RUNNING already.
        for job in unsent {
            job.sink.fail(broken());
        }
    }

    /// The pid of `slot`'s worker, if one is connected.
    fn pid(&self, slot: usize) -> Option<Pid> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner())[slot]
            .map(|pid| Pid::from_raw(pid as i32))
    }

    fn enqueue(&self, job: Job) -> Result<(), TaskError> {
        let mut state = self.lock();
        if let Some(reason) = &state.broken {
            return Err(TaskError::Broken {
                reason: reason.clone(),
            });
        }
        if state.shutdown {
            return Err(TaskError::ShutDown);
        }
        let Some(slot) = state.idle.pop() else {
            // Every worker is busy or starting; each handler takes from
            // the queue before its worker goes idle.
            state.queue.push_back(job);
            return Ok(());
        };
        // Fresh from submit, so not cancelled: start() succeeds.
        job.sink.start();
        let request = Arc::clone(&job.request);
        let id = job.id;
        // An idle slot has budget left (`fill` retires it otherwise).
        state.budget[slot] -= 1;
        if let Some(limit) = job.timeout {
            // The slot's handler is reading, with nothing armed: arm here,
            // under the state lock, which its death path (disarm, then
            // reap) also holds, so the pid is still this slot's worker.
            if let Some(pid) = self.pid(slot) {
                self.watchdog.arm(slot, id, pid, limit);
            }
        }
        state.in_flight[slot].push_back((job, Delivery::Sending));
        let sender = state.senders[slot].clone();
        drop(state);
        self.send(slot, id, request, sender);
        Ok(())
    }

    /// Sends `request` (of the job `id` in `slot`'s line, marked
    /// `Sending`) on `sender`, the slot's request channel taken under the
    /// lock, without holding the lock; then records how
    /// it went. The worker may answer, and its handler take the job,
    /// before that record: then there is nothing left to mark.
    fn send(&self, slot: usize, id: u64, request: Arc<Vec<u8>>, sender: Option<Sender>) {
        let ok = sender.is_some_and(|tx| tx.send(&request).is_ok());
        drop(request);
        let mut state = self.lock();
        if let Some((_, send)) = state.in_flight[slot]
            .iter_mut()
            .find(|(job, d)| job.id == id && *d == Delivery::Sending)
        {
            *send = if ok { Delivery::Sent } else { Delivery::Failed };
        }
        drop(state);
        self.sent.notify_all();
    }
}

/// Fails `jobs`, RUNNING already, with [`TaskError::Broken`] and `reason`.
fn fail_all(jobs: impl IntoIterator<Item = Job>, reason: &str) {
    for job in jobs {
        job.sink.fail(TaskError::Broken {
            reason: reason.to_owned(),
        });
    }
}

/// Takes out of every slot's line the jobs whose requests were never sent
/// (kept for a replacement worker).
fn take_unsent(state: &mut State) -> Vec<Job> {
    let mut unsent = Vec::new();
    for line in state.in_flight.iter_mut() {
        let (kept, rest) = std::mem::take(line)
            .into_iter()
            .partition(|(_, d)| *d == Delivery::Unsent);
        *line = rest;
        unsent.extend(kept.into_iter().map(|(job, _): (Job, _)| job));
    }
    unsent
}

/// Closes the request channel of every idle worker: each exits, and its
/// handler, reading, sees it go.
fn stop_idle(state: &mut State) {
    for slot in std::mem::take(&mut state.idle) {
        state.senders[slot] = None;
    }
}

/// The thread that owns one worker slot: starts the worker, gives it jobs
/// one at a time, notices its death, reaps it and starts the next.
struct Handler {
    shared: Arc<Shared>,
    slot: usize,
}

impl Handler {
    fn new(shared: Arc<Shared>, slot: usize) -> Handler {
        Handler { shared, slot }
    }

    fn run(self, forked: Option<Started>) {
        let mut pending = forked;
        while self.has_work_ahead() {
            let started = match pending.take() {
                Some(started) => Ok(started),
                None => self.shared.launcher.start(),
            };
            match started.and_then(|s| self.connect(s)) {
                Ok(worker) => self.serve(worker),
                Err(reason) => {
                    // A worker that terminate_workers() signalled while it
                    // started does not break the pool.
                    if self.shared.lock().terminated.is_none() {
                        self.shared.set_broken(reason);
                    }
                    break;
                }
            }
        }
        if let Some(started) = pending {
            started.abandon();
        }
    }

    /// Whether to start a(nother) worker: not when the pool is broken (a
    /// job kept for this slot then fails), nor when it is shut down with
    /// nothing left to run.
    fn has_work_ahead(&self) -> bool {
        let mut state = self.shared.lock();
        if let Some(reason) = state.broken.clone() {
            let kept = std::mem::take(&mut state.in_flight[self.slot]);
            drop(state);
            for (job, _) in kept {
                job.sink.fail(TaskError::Broken {
                    reason: reason.clone(),
                });
            }
            return false;
        }
        if let Some(reason) = state.terminated.clone() {
            let kept = std::mem::take(&mut state.in_flight[self.slot]);
            drop(state);
            fail_all(kept.into_iter().map(|(job, _)| job), &reason);
            return false;
        }
        !(state.shutdown && state.queue.is_empty() && state.in_flight[self.slot].is_empty())
    }

    /// Connects a started worker and runs the initializer in it.
    fn connect(&self, started: Started) -> Result<Worker, String> {
        let mut worker = self.shared.launcher.connect(started)?;
        // Watched from here on, the initializer included: a death is seen
        // even if the worker's socket outlives it in a process it forked.
        if let Some(pidfd) = worker.pidfd.take() {
            let _ = self.shared.deaths.watch(pidfd, worker.responses.socket());
        }
        self.set_pid(Some(worker.pid.as_raw() as u32));
        self.shared.alive.fetch_add(1, Ordering::SeqCst);
        let Some(init) = &self.shared.initializer else {
            return Ok(worker);
        };
        let mut request = Vec::with_capacity(init.arg.len() + 64);
        wire::request_header(&mut request, wire::REQ_INIT, 0, init.name);
        request.extend_from_slice(&init.arg);
        let mut worker = worker;
        let answer = match worker.requests.send(&request) {
            Ok(()) => worker.responses.recv().ok(),
            Err(_) => None,
        };
        let verdict = match answer.map(wire::decode_response) {
            Some(Ok(Response::Init(Outcome::Ok(bytes)))) => (init.check)(bytes),
            Some(Ok(Response::Init(outcome))) => match outcome_into::<()>(outcome) {
                Err(TaskError::Panicked { message }) => Err(format!("it panicked: {message}")),
                Err(other) => Err(other.to_string()),
                Ok(()) => Ok(()),
            },
            Some(Ok(_)) => Err("the worker answered the initializer out of protocol".into()),
            Some(Err(e)) => Err(e.to_string()),
            None => {
                let pid = worker.pid;
                drop(worker);
                let death = self.reap(pid, false);
                return Err(format!("the initializer killed its worker, which {death}"));
            }
        };
        match verdict {
            Ok(()) => Ok(worker),
            Err(reason) => {
                let pid = worker.pid;
                drop(worker);
                self.reap(pid, true);
                Err(format!("the initializer failed: {reason}"))
            }
        }
    }

    fn set_pid(&self, pid: Option<u32>) {
        self.shared.pids.lock().unwrap_or_else(|e| e.into_inner())[self.slot] = pid;
    }

    /// Kills the worker if asked, and reaps it. Its pid leaves `pids`
    /// first: `terminate_workers()` signals, under that lock, only the
    /// pids listed there, so never one reaped (and maybe reused).
    fn reap(&self, pid: Pid, kill: bool) -> process::Death {
        self.set_pid(None);
        let death = if kill {
            process::kill_and_reap(pid)
        } else {
            process::reap(pid)
        };
        self.shared.alive.fetch_sub(1, Ordering::SeqCst);
        death
    }

    /// Decides under the lock what this slot's worker gets next (see the
    /// module docs) and returns the requests to send: jobs kept from a
    /// worker that died before it got them, then queued jobs, up to
    /// [`DEPTH`] in flight and the worker's budget of tasks. With nothing
    /// to give, the slot goes idle. `retire` (or a spent budget): close the
    /// worker's channel instead (it exits once it has answered what it
    /// holds).
    fn fill(&self, retire: bool) -> (Option<Sender>, Sends) {
        let mut state = self.shared.lock();
        let state = &mut *state;
        let slot = self.slot;
        let mut sends = Vec::new();
        let spent = state.budget[slot] == 0 && state.in_flight[slot].is_empty();
        if retire || spent || state.broken.is_some() || state.terminated.is_some() {
            state.senders[slot] = None;
            return (None, sends);
        }
        // A job goes to a worker that holds one already only while the pool
        // is saturated: every worker connected and busy, and at least one
        // more queued job per worker, so no other worker is left idle for
        // it. And only a request small enough to wait in the worker's
        // socket (see `AHEAD_MAX`).
        //
        // "Busy" is "holds a job", not "is not in `idle`": a worker that
        // has just connected, or has just answered, is in neither until its
        // handler runs `fill`; judging by `idle` alone would let one
        // handler take two jobs while such a worker was about to go idle.
        let saturated = state.queue.len() >= state.senders.len()
            && state.senders.iter().all(Option::is_some)
            && state
                .in_flight
                .iter()
                .enumerate()
                .all(|(s, other)| s == slot || !other.is_empty());
        let line = &mut state.in_flight[slot];
        let budget = &mut state.budget[slot];
        let may_follow = |request: &Vec<u8>| saturated && request.len() <= AHEAD_MAX;
        let mut busy = line.iter().any(|(_, d)| *d != Delivery::Unsent);
        for (job, delivery) in line.iter_mut() {
            if *delivery != Delivery::Unsent {
                continue;
            }
            if *budget == 0 || (busy && !may_follow(&job.request)) {
                break;
            }
            *delivery = Delivery::Sending;
            *budget -= 1;
            busy = true;
            sends.push((job.id, Arc::clone(&job.request)));
        }
        while line.len() < DEPTH && *budget > 0 {
            let Some(front) = state.queue.front() else {
                break;
            };
            if busy && !may_follow(&front.request) {
                break;
            }
            let job = state.queue.pop_front().expect("just looked");
            if !job.sink.start() {
                // Cancelled while queued: dropped here, never sent.
                continue;
            }
            *budget -= 1;
            busy = true;
            sends.push((job.id, Arc::clone(&job.request)));
            line.push_back((job, Delivery::Sending));
        }
        if line.is_empty() {
            if state.shutdown {
                state.senders[slot] = None;
            } else {
                state.idle.push(slot);
            }
        }
        let sender = if sends.is_empty() {
            None
        } else {
            state.senders[slot].clone()
        };
        (sender, sends)
    }

    /// Arms the watchdog with the job this slot's worker runs (the head of
    /// its line, once sent), if it has a time limit; else stops watching.
    /// Under the state lock: see [`Shared::enqueue`].
    fn watch_head(&self, pid: Pid) {
        if !self.shared.limits_used.load(Ordering::Relaxed) {
            return;
        }
        let state = self.shared.lock();
        let head = state.in_flight[self.slot].front();
        match head {
            // Sent ahead when `stop_task` stopped it: the worker runs it
            // now, so it goes.
            Some((job, Delivery::Sending | Delivery::Sent)) if job.stopped => {
                self.shared.watchdog.fire(self.slot, job.id, pid);
            }
            Some((job, Delivery::Sending | Delivery::Sent)) if job.timeout.is_some() => {
                let limit = job.timeout.expect("just checked");
                self.shared.watchdog.arm(self.slot, job.id, pid, limit);
            }
            _ => self.shared.watchdog.unwatch(self.slot),
        }
    }

    /// Gives `worker` jobs until it is gone: dead, retired, or stopped by
    /// shutdown; reaps it.
    fn serve(&self, worker: Worker) {
        let Worker {
            pid,
            requests,
            mut responses,
            ..
        } = worker;
        {
            let mut state = self.shared.lock();
            state.senders[self.slot] = Some(requests);
            state.budget[self.slot] = self.shared.max_tasks_per_child.unwrap_or(usize::MAX);
        }
        let mut retire = false;
        loop {
            let (sender, sends) = self.fill(retire);
            for (id, request) in sends {
                self.shared.send(self.slot, id, request, sender.clone());
            }
            drop(sender);
            self.watch_head(pid);
            let answer = responses.recv();
            let mut state = self.shared.lock();
            state.idle.retain(|&s| s != self.slot);
            let Ok(bytes) = answer else {
                // The worker is gone: it died, or exited after its channel
                // was closed. Wait out sends in progress to learn which
                // jobs reached it.
                while state.in_flight[self.slot]
                    .iter()
                    .any(|(_, d)| *d == Delivery::Sending)
                {
                    state = self
                        .shared
                        .sent
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
                // Before the reap: no kill of this pid can follow.
                let fired = self.shared.watchdog.disarm(self.slot);
                // The worker takes its jobs in order and answers each
                // before it reads the next: the first that reached it is
                // the one it died running; the rest never started and are
                // kept for the next worker. If the watchdog killed it, the
                // job it fired for is the one that ran too long; if that
                // job had answered just before the kill, the worker was
                // killed through no fault of the next one, which may have
                // started and is kept to run again (the only case where a
                // task can run twice).
                // Jobs `stop_task` stopped are dropped (their futures
                // have failed already; the watchdog's record of a stop
                // names one of them). After terminate_workers(), every
                // job the worker held fails with the call's reason.
                let mut line = std::mem::take(&mut state.in_flight[self.slot]);
                line.retain(|(job, _)| !job.stopped);
                let take = |line: &mut VecDeque<(Job, Delivery)>, at: Option<usize>| {
                    at.and_then(|at| line.remove(at)).map(|(job, _)| job)
                };
                let timed_out = fired.and_then(|id| {
                    let at = line.iter().position(|(job, _)| job.id == id);
                    take(&mut line, at)
                });
                let terminated = state.terminated.clone();
                let lost = if fired.is_some() || terminated.is_some() {
                    None
                } else {
                    let at = line.iter().position(|(_, d)| *d == Delivery::Sent);
                    take(&mut line, at)
                };
                let doomed = if terminated.is_some() {
                    std::mem::take(&mut line)
                } else {
                    VecDeque::new()
                };
                state.in_flight[self.slot] = line
                    .into_iter()
                    .map(|(job, _)| (job, Delivery::Unsent))
                    .collect();
                state.senders[self.slot] = None;
                drop(state);
                drop(responses);
                let death = self.reap(pid, false);
                if let Some(job) = timed_out {
                    job.sink.fail(TaskError::TaskTimedOut {
                        limit: job.timeout.unwrap_or_default(),
                        pid: pid.as_raw() as u32,
                    });
                }
                if let Some(job) = lost {
                    job.sink.fail(TaskError::WorkerDied {
                        pid: pid.as_raw() as u32,
                        signal: death.signal,
                        exit_code: death.exit_code,
                    });
                }
                if let Some(reason) = terminated {
                    fail_all(doomed.into_iter().map(|(job, _)| job), &reason);
                }
                return;
            };
            let job = state.in_flight[self.slot].pop_front().map(|(job, _)| job);
            drop(state);
            let delivered = match (job, wire::decode_response(bytes)) {
                (Some(job), Ok(response)) if response_id(&response) == Some(job.id) => {
                    job.sink.deliver(response);
                    true
                }
                (Some(job), Ok(_)) => {
                    job.sink
                        .fail(protocol_error("a response to another request"));
                    false
                }
                (Some(job), Err(e)) => {
                    job.sink.fail(protocol_error(&e.to_string()));
                    false
                }
                // An answer nobody asked for.
                (None, _) => false,
            };
            if !delivered {
                // Out of protocol: this worker is not trusted with more.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                retire = true;
            }
        }
    }
}

fn response_id(response: &Response<'_>) -> Option<u64> {
    match response {
        Response::Done { id, .. } | Response::Chunk { id, .. } => Some(*id),
        Response::Init(_) => None,
    }
}

impl ProcessPoolExecutor {
    /// A pool with the default settings.
    ///
    /// ```
    /// let pool = concurrent_futures_process_pool::ProcessPoolExecutor::new();
    /// assert_eq!(pool.max_workers(), num_cpus::get());
    /// ```
    pub fn new() -> ProcessPoolExecutor {
        ProcessPoolExecutor::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to configure the pool.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            max_workers: None,
            start_method: StartMethod::default(),
            program: None,
            initializer: None,
            max_tasks_per_child: None,
            start_timeout: Duration::from_secs(30),
            task_timeout: None,
            memory_limit: None,
            allow_fork_with_threads: false,
        }
    }

    /// The number of worker processes the pool keeps.
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// Worker processes connected and not yet reaped.
    pub fn worker_count(&self) -> usize {
        self.shared.alive.load(Ordering::SeqCst)
    }

    /// The pids of the connected workers, for monitoring (or for a test
    /// that kills one).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    /// Why the pool is broken, if it is.
    pub fn broken_reason(&self) -> Option<String> {
        self.shared.lock().broken.clone()
    }

    /// Submits `f(args)` with its own time limit, overriding the pool's
    /// [`task_timeout`](ProcessPoolBuilder::task_timeout): if the task is
    /// still running `limit` after its worker started it, the worker is
    /// killed and replaced and the future fails with
    /// [`TaskError::TaskTimedOut`]. Time spent queued does not count.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::{ProcessPoolExecutor, TaskError, task};
    ///
    /// #[task]
    /// fn spin(_: ()) -> u64 {
    ///     let mut n = 0u64;
    ///     loop {
    ///         n = std::hint::black_box(n.wrapping_add(1));
    ///     }
    /// }
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).build().unwrap();
    /// let fut = pool.submit_with_timeout(spin, (), Duration::from_millis(100)).unwrap();
    /// let err = fut.into_result().unwrap_err();
    /// assert!(matches!(err, TaskError::TaskTimedOut { limit, .. } if limit == Duration::from_millis(100)));
    /// assert!(err.to_string().contains("ran past its time limit"));
    /// ```
    pub fn submit_with_timeout<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        args: A,
        limit: Duration,
    ) -> Result<TaskFuture<R>, TaskError> {
        self.submit_one(f, args, Some(limit))
    }

    fn submit_one<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        args: A,
        timeout: Option<Duration>,
    ) -> Result<TaskFuture<R>, TaskError> {
        let entry = registry::lookup(f)?;
        let (fut, completer) = self.pending();
        self.submit_encoded(
            entry.name,
            wire::REQ_RUN,
            std::any::type_name::<A>(),
            |out| codec::encode_into(&args, out),
            || {
                Box::new(Pending {
                    completer,
                    read: read_one::<R>,
                    items: 1,
                })
            },
            timeout,
        )?;
        Ok(fut)
    }

    /// A new future of this pool, with the pool's hook (see [`AwaitReply`]).
    fn pending<T>(&self) -> (TaskFuture<T>, Completer<T>) {
        let (fut, completer) = TaskFuture::pending();
        completer.set_inline_hook(Arc::clone(&self.shared.await_reply));
        (fut, completer)
    }

    fn submit_encoded(
        &self,
        entry_name: &'static str,
        tag: u8,
        arg_type: &'static str,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), CodecError>,
        sink: impl FnOnce() -> Box<dyn Sink>,
        timeout: Option<Duration>,
    ) -> Result<(), TaskError> {
        // Shutdown and breakage are checked once, under the lock that
        // queues the job (`enqueue`).
        if timeout.is_some() {
            self.shared.limits_used.store(true, Ordering::Relaxed);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut request = Vec::with_capacity(64);
        wire::request_header(&mut request, tag, id, entry_name);
        catch_panic(|| encode(&mut request))
            .map_err(|e| TaskError::Encode {
                type_name: arg_type.to_owned(),
                reason: format!("the encode panicked: {}", panic_text(e)),
            })?
            .map_err(encode_error)?;
        self.shared.enqueue(Job {
            id,
            stopped: false,
            timeout,
            request: Arc::new(request),
            sink: sink(),
        })
    }

    /// Stops the pool; see [`Executor::shutdown`]. Queued tasks still run
    /// unless `cancel_futures`; with `wait`, returns when every worker has
    /// exited and been reaped.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, task};
    ///
    /// #[task]
    /// fn one(_: ()) -> u8 { 1 }
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).build().unwrap();
    /// pool.shutdown(true, false);
    /// assert_eq!(pool.worker_count(), 0);
    /// assert_eq!(pool.submit(one, ()).unwrap_err(), TaskError::ShutDown);
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let cancelled: Vec<Job> = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            if cancel_futures {
                state.queue.drain(..).collect()
            } else {
                Vec::new()
            }
        };
        stop_idle(&mut self.shared.lock());
        for job in cancelled {
            job.sink.cancel();
        }
        if wait {
            let handlers: Vec<JoinHandle<()>> =
                std::mem::take(&mut *self.handlers.lock().unwrap_or_else(|e| e.into_inner()));
            let me = std::thread::current().id();
            for handler in handlers {
                // A done-callback that shuts the pool down runs on a
                // handler thread, which cannot join itself.
                if handler.thread().id() != me {
                    let _ = handler.join();
                }
            }
        }
    }
}

impl ProcessPoolExecutor {
    /// Stops every worker now with SIGTERM (CPython 3.14's
    /// `terminate_workers()`): the pool shuts down
    /// (`shutdown(wait = false, cancel_futures = true)`: queued futures are
    /// cancelled and `submit` is refused with [`TaskError::ShutDown`]),
    /// then every connected worker is sent SIGTERM. The futures of tasks
    /// that were running, or sent ahead to a worker, or waiting for a
    /// replacement worker, fail with [`TaskError::Broken`] whose reason
    /// names this call; no worker is started again. A task that finished
    /// before the signal keeps its value.
    ///
    /// Returns once every worker has been signalled, without waiting for
    /// them to exit: each worker's handler thread reaps it (no zombie is
    /// left), and [`shutdown`](Self::shutdown) with `wait`, or dropping the
    /// pool, joins those threads. A worker still starting is not
    /// signalled: it is told to exit as soon as it connects. Safe to call
    /// at any time: on an idle or broken pool, twice (each call signals
    /// the workers still alive), or from a done-callback.
    ///
    /// Workers restore SIGTERM's default action and unblock it when they
    /// start, so a program that ignores or blocks SIGTERM (which a worker
    /// inherits) still has workers that die of it.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, task};
    ///
    /// #[task]
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).build().unwrap();
    /// let running = pool.submit(nap, 60_000).unwrap();
    /// while !running.running() {
    ///     std::thread::yield_now();
    /// }
    /// let queued = pool.submit(nap, 1).unwrap(); // the worker is busy
    /// pool.terminate_workers();
    /// let err = running.into_result().unwrap_err();
    /// assert!(err.to_string().contains("terminate_workers()"), "{err}");
    /// assert!(queued.cancelled());
    /// assert_eq!(pool.submit(nap, 1).unwrap_err(), TaskError::ShutDown);
    /// pool.shutdown(true, false); // joins: every worker is reaped
    /// assert_eq!(pool.worker_count(), 0);
    /// ```
    pub fn terminate_workers(&self) {
        self.stop_workers(
            nix::sys::signal::Signal::SIGTERM,
            "terminate_workers() stopped the pool's workers (SIGTERM) before this task finished",
        );
    }

    /// [`terminate_workers`](Self::terminate_workers) with SIGKILL
    /// (CPython 3.14's `kill_workers()`): the same, for workers that might
    /// not die of SIGTERM (a task's own handler, say). The futures it
    /// catches fail with [`TaskError::Broken`] naming `kill_workers()`
    /// (or `terminate_workers()`, if that was called first).
    ///
    /// ```
    /// use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, task};
    ///
    /// #[task]
    /// fn spin(_: ()) -> u64 {
    ///     let mut n = 0u64;
    ///     loop {
    ///         n = std::hint::black_box(n.wrapping_add(1));
    ///     }
    /// }
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).build().unwrap();
    /// let running = pool.submit(spin, ()).unwrap();
    /// while !running.running() {
    ///     std::thread::yield_now();
    /// }
    /// pool.kill_workers();
    /// match running.into_result() {
    ///     Err(TaskError::Broken { reason }) => assert!(reason.contains("kill_workers()")),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn kill_workers(&self) {
        self.stop_workers(
            nix::sys::signal::Signal::SIGKILL,
            "kill_workers() stopped the pool's workers (SIGKILL) before this task finished",
        );
    }

    fn stop_workers(&self, signal: nix::sys::signal::Signal, why: &str) {
        let (queued, unsent, reason) = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            let reason = state
                .terminated
                .get_or_insert_with(|| why.to_owned())
                .clone();
            stop_idle(&mut state);
            let unsent = take_unsent(&mut state);
            (state.queue.drain(..).collect::<Vec<_>>(), unsent, reason)
        };
        // Under the pids lock: a handler takes its worker's pid out of the
        // list before it reaps it, so every pid here is unreaped.
        for pid in self
            .shared
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid as i32), signal);
        }
        for job in queued {
            job.sink.cancel();
        }
        fail_all(unsent, &reason);
    }

    /// Stops one task on demand (pebble's `future.cancel()`): if `future`
    /// is still queued it is cancelled (as [`TaskFuture::cancel`]); if its
    /// task is running, the worker running it is killed (SIGKILL) and
    /// replaced, and the future fails with [`TaskError::Stopped`] at once.
    /// Every other future is untouched: tasks queued or sent ahead to the
    /// same worker run on its replacement. Returns false if `future` is
    /// done already, or is not this pool's. `cancel()` keeps CPython's
    /// meaning: it returns false for a running task.
    ///
    /// A task sent ahead to a busy worker (see the pool's docs) has not
    /// started: its future fails now, and its worker is killed when it
    /// reaches the task. A task that answered in the instant before the
    /// kill also ends `Stopped` (its value is dropped); the task after it
    /// on that worker, if it had started, runs again on the replacement
    /// (as with a time limit, see [`TaskError::TaskTimedOut`]).
    ///
    /// ```
    /// use concurrent_futures::{Executor, FutureState, ProcessPoolExecutor, TaskError, task};
    ///
    /// #[task]
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).build().unwrap();
    /// let long = pool.submit(nap, 60_000).unwrap();
    /// let queued = pool.submit(nap, 2).unwrap();
    /// while !long.running() {
    ///     std::thread::yield_now();
    /// }
    /// assert!(!long.cancel()); // CPython's cancel: too late
    /// assert!(pool.stop_task(&long));
    /// assert!(matches!(long.result(), Err(TaskError::Stopped { pid: Some(_) })));
    /// assert_eq!(queued.result(), Ok(&2)); // on the replacement worker
    /// assert!(!pool.stop_task(&queued)); // done already
    /// ```
    pub fn stop_task<T: Send + Sync + 'static>(&self, future: &TaskFuture<T>) -> bool {
        // A queued job moves to a line (RUNNING) only under the state
        // lock, but the cancel runs callbacks and so must not hold it:
        // if the job starts in between, look again.
        for _ in 0..3 {
            if future.done() {
                return false;
            }
            self.shared.limits_used.store(true, Ordering::Relaxed);
            let mut state = self.shared.lock();
            let found = state.in_flight.iter().enumerate().find_map(|(slot, line)| {
                line.iter()
                    .position(|(job, _)| job.sink.is_for(future))
                    .map(|at| (slot, at))
            });
            let Some((slot, at)) = found else {
                let queued = state.queue.iter().any(|job| job.sink.is_for(future));
                drop(state);
                if !queued {
                    // Done, in a handler's hands about to be, or not ours.
                    return false;
                }
                if future.cancel() {
                    return true;
                }
                continue;
            };
            let line = &mut state.in_flight[slot];
            let (sink, pid) = match line[at].1 {
                // Waiting for a replacement worker: nothing runs it.
                Delivery::Unsent | Delivery::Failed => {
                    let (job, _) = line.remove(at).expect("just found");
                    (job.sink, None)
                }
                Delivery::Sending | Delivery::Sent => {
                    let job = &mut line[at].0;
                    job.stopped = true;
                    let sink = std::mem::replace(&mut job.sink, Box::new(Discarded));
                    let id = job.id;
                    // The slot's worker holds the job, so it is not reaped
                    // (the death path takes the line first): its pid is
                    // safe to signal. A job sent ahead waits: its handler
                    // kills the worker when it reaches it (`watch_head`).
                    let pid = self.shared.pid(slot);
                    if at == 0
                        && let Some(pid) = pid
                    {
                        self.shared.watchdog.fire(slot, id, pid);
                    }
                    (sink, pid)
                }
            };
            drop(state);
            sink.fail(TaskError::Stopped {
                pid: pid.map(|p| p.as_raw() as u32),
            });
            return true;
        }
        false
    }
}

impl Default for ProcessPoolExecutor {
    fn default() -> Self {
        ProcessPoolExecutor::new()
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.shared.max_workers)
            .field("workers", &self.worker_pids())
            .field("broken", &self.broken_reason())
            .finish()
    }
}

impl Drop for ProcessPoolExecutor {
    /// `shutdown(wait = true)`: queued work runs, every worker exits and is
    /// reaped.
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl Executor for ProcessPoolExecutor {
    fn submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        args: A,
    ) -> Result<TaskFuture<R>, TaskError> {
        self.submit_one(f, args, self.shared.task_timeout)
    }

    fn submit_chunk<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
        let entry = registry::lookup(f)?;
        let (fut, completer) = self.pending();
        let n = chunk.len();
        self.submit_encoded(
            entry.name,
            wire::REQ_CHUNK,
            std::any::type_name::<A>(),
            |out| {
                wire::put_count(out, n);
                chunk
                    .iter()
                    .try_for_each(|a| wire::put_chunk_item(out, |out| codec::encode_into(a, out)))
            },
            || {
                Box::new(Pending {
                    completer,
                    read: read_chunk::<R>,
                    items: n,
                })
            },
            self.shared
                .task_timeout
                .map(|limit| limit.saturating_mul(n.max(1).try_into().unwrap_or(u32::MAX))),
        )?;
        Ok(fut)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        ProcessPoolExecutor::shutdown(self, wait, cancel_futures)
    }

    fn max_workers(&self) -> usize {
        self.shared.max_workers
    }
}
