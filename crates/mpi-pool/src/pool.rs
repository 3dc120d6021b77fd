//! [`MpiPoolExecutor`] and its builder: the API side, which encodes each
//! task and hands it to the process's MPI thread (`dispatcher.rs`).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use concurrent_futures_core::{
    Completer, ConfigError, Executor, InitResult, InlineRun, Payload, TaskError, TaskFuture,
};
use concurrent_futures_task_wire::client::{self, Pending, Sink};
use concurrent_futures_task_wire::{codec, registry, wire};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::dispatcher::{self, Command, InitSpec, Job, OpenSpec, PoolHandle, Runtime};

/// How long a thread that waits for a result keeps looking before it
/// sleeps: a waiter still awake when the MPI thread completes its future
/// saves a wake-up on the round trip.
const REPLY_SPIN: Duration = Duration::from_micros(100);

/// The hook on every future of an MPI pool: nothing runs inline (the task
/// runs on a rank), but a waiter keeps looking for [`REPLY_SPIN`].
struct AwaitReply;

impl InlineRun for AwaitReply {
    fn try_run_inline(&self) -> bool {
        false
    }

    fn spin_before_blocking(&self) -> Duration {
        REPLY_SPIN
    }
}

/// A new future of an MPI pool, with [`AwaitReply`].
fn pending<T>() -> (TaskFuture<T>, Completer<T>) {
    static HOOK: OnceLock<Arc<dyn InlineRun>> = OnceLock::new();
    let (fut, completer) = TaskFuture::pending();
    completer.set_inline_hook(Arc::clone(HOOK.get_or_init(|| Arc::new(AwaitReply))));
    (fut, completer)
}

/// How long `build()` waits for a spawn by default (see
/// [`MpiPoolBuilder::spawn_timeout`]).
const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a `build()` that waits for its pool looks whether the spawn
/// is stuck.
const SPAWN_POLL: Duration = Duration::from_millis(100);

/// Pool ids, unique in the process.
static NEXT_POOL: AtomicUsize = AtomicUsize::new(0);

/// Job ids, unique in the process.
static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// A pool of MPI processes that runs registered `#[task]` functions and
/// hands back [`TaskFuture`]s: `mpi4py.futures.MPIPoolExecutor` for Rust,
/// behind the same [`Executor`] trait as the thread and process pools, so
/// code written against the trait runs on a cluster unchanged.
///
/// Two launch modes, as in mpi4py:
///
/// * **Dynamic** (a plain program, or `mpirun -n 1 ./prog`): `build()`
///   spawns `max_workers` copies of this executable with
///   `MPI_Comm_spawn`; they become workers before `main` runs. The
///   builder's [`info`](MpiPoolBuilder::info) keys (`host`, `hostfile`,
///   ...) say where.
/// * **Static** (`mpirun -n N ./prog`, what batch schedulers start): rank 0
///   returns from `build()` with a pool of the `N - 1` other ranks; on every
///   other rank `build()` never returns: the rank serves tasks, and exits
///   when rank 0's program ends. Build the pool first thing in `main`, so
///   the other ranks run nothing else.
///
/// ```
/// use concurrent_futures::{Executor, task};
/// use concurrent_futures_mpi_pool::MpiPoolExecutor;
///
/// #[task]
/// fn fib(n: u32) -> u64 {
///     if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// let pool = MpiPoolExecutor::builder().max_workers(2).build().unwrap();
/// assert_eq!(pool.submit(fib, 20).unwrap().result(), Ok(&6765));
/// let fibs: Vec<u64> = pool.map(fib, 10..13).map(Result::unwrap).collect();
/// assert_eq!(fibs, [55, 89, 144]);
/// ```
///
/// * A task's panic fails its future with [`TaskError::Panicked`]; the
///   rank carries on. Arguments that do not encode fail `submit`; results
///   that do not decode fail their future.
/// * `cancel()` succeeds while a task is queued in this process; a task
///   sent to a rank runs.
/// * Done-callbacks run on the process's one MPI thread: a callback must
///   not wait for other futures of an MPI pool (hand such waits to
///   another thread).
/// * One thread of the process makes every MPI call, so the pool works
///   where MPI grants only `Threading::Funneled`. MPI is initialized by the
///   first `build()` and finalized when the process exits; a program must
///   not initialize MPI itself.
/// * Dropping the pool is `shutdown(wait = true)`.
/// * Workers outlive their pool, in both modes. A static launch's ranks
///   serve one pool after another. In the dynamic mode, a pool that is shut
///   down leaves its spawned workers connected and idle, and the next pool
///   that needs no more of them (same worker program, same
///   [`info`](MpiPoolBuilder::info) keys) is served by them instead of
///   spawning; they are stopped when the process exits. A spawn costs
///   hundreds of milliseconds, and Open MPI 4.1 built against an external
///   PMIx 4.x (Debian's and Ubuntu's packages) hangs in a few percent of
///   spawns (openpmix/openpmix#2735), so a program that opens many pools
///   spawns once. What a worker's process holds (globals an earlier pool's
///   initializer or tasks set) is still there for the next pool; each
///   pool's initializer runs on each of its workers.
pub struct MpiPoolExecutor {
    id: usize,
    runtime: &'static Runtime,
    handle: Arc<PoolHandle>,
    workers: usize,
    /// Set by the first shutdown: dropped (disconnected) by the MPI
    /// thread once the pool's workers are stopped. Submits check it under
    /// this lock, which the shutdown's command is sent under, so no job
    /// reaches the MPI thread after its pool's shutdown.
    closed: Mutex<Option<Receiver<()>>>,
}

/// Configures an [`MpiPoolExecutor`].
///
/// ```no_run
/// use concurrent_futures_mpi_pool::MpiPoolExecutor;
///
/// // Spawn 4 workers, 2 on each of two hosts (dynamic mode).
/// let pool = MpiPoolExecutor::builder()
///     .max_workers(4)
///     .info("host", "node1:2,node2:2")
///     .build()
///     .unwrap();
/// ```
#[must_use]
pub struct MpiPoolBuilder {
    max_workers: Option<usize>,
    program: Option<PathBuf>,
    info: Vec<(String, String)>,
    initializer: Option<Result<InitSpec, ConfigError>>,
    spawn_timeout: Duration,
}

impl MpiPoolBuilder {
    /// How many workers the pool has; at least 1. Dynamic mode: how many
    /// to spawn (or to reuse: see [`MpiPoolExecutor`]); default the MPI
    /// universe size minus one, or 1 (as mpi4py). Static mode: how many of
    /// the ranks other than 0 serve the pool (the first ones; the others
    /// idle meanwhile); default, and at most, all of them.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Spawn this program as the workers instead of the current
    /// executable (dynamic mode). It must link concurrent-futures with the
    /// `mpi` feature and register the same tasks.
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// An `MPI_Info` key for `MPI_Comm_spawn` (dynamic mode), such as
    /// `host` (`"node1:2,node2:2"`), `hostfile`, `wdir` or `map_by`; see
    /// your MPI's `MPI_Comm_spawn` manual. May be given several times.
    pub fn info(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.info.push((key.into(), value.into()));
        self
    }

    /// How long `build()` waits for `MPI_Comm_spawn` to return before it
    /// fails (dynamic mode; default 60 s). A spawn that does not return
    /// leaves the process's MPI thread stuck in it: this pool and every
    /// later one fail with the reason, and the program can end.
    pub fn spawn_timeout(mut self, timeout: Duration) -> Self {
        self.spawn_timeout = timeout;
        self
    }

    /// Runs `f(arg)` once on every worker before its first task
    /// (CPython's `initializer`). `f` must be a registered `#[task]` and
    /// may return `()` or `Result<(), E>`. If it fails on any worker the
    /// pool is broken: every submit fails with [`TaskError::Broken`]
    /// naming the cause.
    pub fn initializer<A: Payload, R: Payload + InitResult>(
        mut self,
        f: fn(A) -> R,
        arg: A,
    ) -> Self {
        let spec = registry::lookup(f)
            .map_err(|e| ConfigError::new(format!("initializer: {e}")))
            .and_then(|entry| {
                let mut request = Vec::with_capacity(64);
                wire::request_header(&mut request, wire::REQ_INIT, 0, entry.name);
                codec::encode_into(&arg, &mut request)
                    .map_err(|e| ConfigError::new(format!("initializer argument: {e}")))?;
                Ok(InitSpec {
                    request,
                    check: concurrent_futures_task_wire::client::check_init::<R>,
                })
            });
        self.initializer = Some(spec);
        self
    }

    /// Starts MPI (on first use in the process) and the pool: spawns its
    /// workers in the dynamic mode, or takes the world's other ranks in the
    /// static one, and runs the initializer on each.
    ///
    /// On a rank other than 0 of a static launch this never returns: the
    /// rank serves tasks until rank 0's program ends, then exits.
    ///
    /// Errors: `max_workers(0)`, an initializer that is not a registered
    /// task or whose argument does not encode, MPI that cannot start (or
    /// was started by other code), a spawn that fails, a second static
    /// pool while one is open.
    pub fn build(self) -> Result<MpiPoolExecutor, ConfigError> {
        if self.max_workers == Some(0) {
            return Err(ConfigError::new("max_workers must be greater than 0"));
        }
        let initializer = self.initializer.transpose()?;
        let runtime = dispatcher::runtime().map_err(ConfigError::new)?;
        if let Some(reason) = dispatcher::spawn_stuck(self.spawn_timeout) {
            return Err(ConfigError::new(reason));
        }
        let id = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(PoolHandle::default());
        let (reply, answer) = crossbeam_channel::bounded(1);
        runtime
            .commands
            .send(Command::Open {
                id,
                spec: OpenSpec {
                    workers: self.max_workers,
                    program: self.program,
                    info: self.info,
                    initializer,
                },
                handle: Arc::clone(&handle),
                reply,
            })
            .map_err(|_| ConfigError::new("the MPI thread has ended"))?;
        // Bounded while a spawn lasts (see `spawn_timeout`); the rest of
        // the start (the hellos, the initializer) has no bound here.
        let workers = loop {
            match answer.recv_timeout(SPAWN_POLL) {
                Ok(opened) => break opened.map_err(ConfigError::new)?,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(reason) = dispatcher::spawn_stuck(self.spawn_timeout) {
                        return Err(ConfigError::new(reason));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ConfigError::new("the MPI thread has ended"));
                }
            }
        };
        Ok(MpiPoolExecutor {
            id,
            runtime,
            handle,
            workers,
            closed: Mutex::new(None),
        })
    }
}

impl MpiPoolExecutor {
    /// A builder to configure the pool.
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder {
            max_workers: None,
            program: None,
            info: Vec::new(),
            initializer: None,
            spawn_timeout: SPAWN_TIMEOUT,
        }
    }

    /// Whether this process is a static launch (`mpirun -n N` with
    /// `N > 1`): its pools are the world's other ranks. Starts MPI if it
    /// has not started; `None` if it cannot start.
    pub fn is_static_launch() -> Option<bool> {
        dispatcher::runtime().ok().map(|r| r.world_size > 1)
    }

    /// Why the pool is broken (its initializer failed), if it is.
    pub fn broken_reason(&self) -> Option<String> {
        self.handle
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Encodes a job and hands it to the MPI thread.
    fn enqueue(
        &self,
        encode: impl FnOnce(u64) -> Result<Vec<u8>, TaskError>,
        sink: Box<dyn Sink>,
    ) -> Result<(), TaskError> {
        if let Some(reason) = self.broken_reason() {
            return Err(TaskError::Broken { reason });
        }
        let id = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
        let request = encode(id)?;
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if closed.is_some() {
            return Err(TaskError::ShutDown);
        }
        self.runtime
            .commands
            .send(Command::Submit {
                pool: self.id,
                job: Job { id, request, sink },
            })
            .map_err(|_| TaskError::Broken {
                reason: "the MPI thread has ended".into(),
            })
    }

    /// Stops the pool; see [`Executor::shutdown`]. Queued tasks still run
    /// unless `cancel_futures`; with `wait`, returns when every task has
    /// finished and the workers are stopped (spawned ones have left).
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let done = {
            let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
            match &*closed {
                Some(done) => done.clone(),
                None => {
                    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
                    let (taken, took) = crossbeam_channel::bounded::<()>(1);
                    let sent = self.runtime.commands.send(Command::Shutdown {
                        pool: self.id,
                        cancel_futures,
                        taken,
                        done: tx,
                    });
                    *closed = Some(rx.clone());
                    if sent.is_ok() {
                        // Disconnected once the MPI thread has taken the
                        // command: queued futures are cancelled by then.
                        let _ = took.recv();
                    }
                    rx
                }
            }
        };
        if wait {
            // Disconnected when the pool is closed.
            let _ = done.recv();
        }
    }
}

impl fmt::Debug for MpiPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPoolExecutor")
            .field("workers", &self.workers)
            .field("broken", &self.broken_reason())
            .finish()
    }
}

impl Drop for MpiPoolExecutor {
    /// `shutdown(wait = true)`: queued work runs, the workers stop.
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl Executor for MpiPoolExecutor {
    fn submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        args: A,
    ) -> Result<TaskFuture<R>, TaskError> {
        let entry = registry::lookup(f)?;
        let (fut, completer) = pending();
        self.enqueue(
            |id| client::encode_run(id, entry.name, &args),
            Pending::one(completer),
        )?;
        Ok(fut)
    }

    fn submit_chunk<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        chunk: Vec<A>,
    ) -> Result<TaskFuture<Vec<Result<R, TaskError>>>, TaskError> {
        let entry = registry::lookup(f)?;
        let (fut, completer) = pending();
        let n = chunk.len();
        self.enqueue(
            |id| client::encode_chunk(id, entry.name, &chunk),
            Pending::chunk(completer, n),
        )?;
        Ok(fut)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        MpiPoolExecutor::shutdown(self, wait, cancel_futures)
    }

    fn max_workers(&self) -> usize {
        self.workers
    }
}
