//! [`ProcessPoolBuilder`]: the pool's settings (CPython's constructor
//! arguments, and ours), checked and turned into a running pool by
//! [`ProcessPoolBuilder::build`], and [`StartMethod`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use concurrent_futures_core::{ConfigError, InitResult, Payload};
use concurrent_futures_task_wire::codec;
use concurrent_futures_task_wire::registry;

use crate::deaths::DeathWatch;
use crate::fork_server::ForkServer;
use crate::handler::Handler;
use crate::pool::{AwaitReply, ProcessPoolExecutor, Shared};
use crate::process::{Launcher, Started};
use crate::slot::State;
use crate::watchdog::Watchdog;
use crate::worker;

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
pub(crate) struct InitSpec {
    pub(crate) name: &'static str,
    pub(crate) arg: Vec<u8>,
    /// Decodes the initializer's result and says whether it failed.
    pub(crate) check: fn(&[u8]) -> Result<(), String>,
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
    /// The defaults (see each setting).
    pub(crate) fn new() -> ProcessPoolBuilder {
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
    /// later tasks fail with [`TaskError::Broken`](concurrent_futures_core::TaskError::Broken) naming the cause, and no
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
                    check: concurrent_futures_task_wire::client::check_init::<R>,
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
    /// [`TaskError::TaskTimedOut`](concurrent_futures_core::TaskError::TaskTimedOut), and a replacement worker starts. Other
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
    /// with [`TaskError::WorkerDied`](concurrent_futures_core::TaskError::WorkerDied) (SIGABRT: Rust aborts when an
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
            state: Mutex::new(State::new(max_workers)),
            sent: Condvar::new(),
            next_id: AtomicU64::new(1),
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
            let broken = shared.lock().broken.is_some();
            forked.push(match self.start_method {
                // Once a fork failed, the pool is broken: no more children.
                StartMethod::Fork if broken => None,
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
