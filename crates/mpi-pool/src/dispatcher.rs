//! The client's MPI thread: the one thread of the process that calls MPI
//! (so the pool is correct where MPI grants only `Threading::Funneled`),
//! and every pool's scheduler.
//!
//! It starts with the first `MpiPoolBuilder::build()` of the process and
//! initializes MPI. On a rank other than 0 of a world of several ranks
//! (`mpirun -n N`: the static launch mode) it serves tasks instead, pool
//! after pool, until the client says [`protocol::EXIT`], then finalizes
//! MPI and ends the process. On rank 0, or in a singleton, it is the
//! *dispatcher*: pools send it [`Command`]s over a channel, and it gives
//! each idle worker the next queued job, collects results and completes
//! futures (their done-callbacks run here). With no task outstanding it
//! blocks on the channel and makes no MPI call; with tasks out it probes
//! for results without blocking and backs off between looks.
//!
//! MPI can be initialized once per process, so the thread lives until the
//! process exits: an `atexit` handler asks it to stop the pools still
//! open, release a static pool's ranks and finalize MPI.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use concurrent_futures_core::TaskError;
use concurrent_futures_task_wire::client::{self, Sink, outcome_into};
use concurrent_futures_task_wire::wire::{self, Outcome, Response};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use mpi::environment::{Threading, Universe};
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::raw::FromRaw;
use mpi::topology::{Communicator, InterCommunicator, Rank, SimpleCommunicator};
use mpi::{Tag, ffi};

use crate::boot::WORKER_ARG;
use crate::liveness::{Hello, Member};
use crate::protocol::{self, Backoff, EXIT, HELLO, RESULT, STOP, Served, TASK};
use crate::spare::{Group, Origin, Spares};

/// One unit of work: its encoded request and the sink of its future.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) request: Vec<u8>,
    pub(crate) sink: Box<dyn Sink>,
}

/// The initializer: its request, and how to read its result.
pub(crate) struct InitSpec {
    pub(crate) request: Vec<u8>,
    /// Decodes the initializer's result and says whether it failed.
    pub(crate) check: fn(&[u8]) -> Result<(), String>,
}

/// How to open a pool.
pub(crate) struct OpenSpec {
    /// How many workers to spawn (dynamic mode); `None`: the universe size
    /// minus one, or 1. A static pool has every rank but 0.
    pub(crate) workers: Option<usize>,
    /// The program to spawn; `None`: this executable.
    pub(crate) program: Option<PathBuf>,
    /// `MPI_Info` keys for `MPI_Comm_spawn` (`host`, `hostfile`, ...).
    pub(crate) info: Vec<(String, String)>,
    pub(crate) initializer: Option<InitSpec>,
}

/// What a pool's API and the dispatcher share.
#[derive(Default)]
pub(crate) struct PoolHandle {
    /// Why the pool is broken (its initializer failed), if it is.
    pub(crate) broken: Mutex<Option<String>>,
}

/// What the API asks of the dispatcher.
pub(crate) enum Command {
    Open {
        id: usize,
        spec: OpenSpec,
        handle: Arc<PoolHandle>,
        /// The number of workers, or why the pool could not start.
        reply: Sender<Result<usize, String>>,
    },
    Submit {
        pool: usize,
        job: Job,
    },
    /// Queued jobs run (or are cancelled); then the workers are stopped and
    /// `done` is dropped.
    Shutdown {
        pool: usize,
        cancel_futures: bool,
        /// Dropped once the command is taken (the queue cancelled, if
        /// asked): `shutdown` returns only then, as CPython's.
        taken: Sender<()>,
        done: Sender<()>,
    },
    /// The process is exiting.
    Exit {
        done: Sender<()>,
    },
}

/// The client's side of the MPI thread.
pub(crate) struct Runtime {
    pub(crate) commands: Sender<Command>,
    /// The size of `MPI_COMM_WORLD`: more than 1 is the static launch mode.
    pub(crate) world_size: usize,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// How long the exiting process waits for the MPI thread to stop the
/// pools and finalize MPI.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many jobs a busy worker holds: the one it runs and those sent ahead,
/// which wait in its MPI queue so that it goes from task to task without
/// waiting for the dispatcher. Jobs are sent ahead only to a worker that
/// has just answered (one that has finished nothing, or is stuck in a long
/// task, never gets one), only once no worker is idle, only while the
/// queue holds at least one more job per worker, and one more per answer:
/// a worker that held `h` jobs when it answered may be refilled to `h + 1`,
/// so it reaches its depth only while it keeps answering. Like the process pool's
/// (and CPython's call queue), a job sent ahead is RUNNING: it can no
/// longer be cancelled. A worker whose tasks take [`QUICK`] or longer
/// holds [`DEPTH`]: one ahead is enough to hide the round trip, and a job
/// bound to a worker behind a long task is one that another worker could
/// have run. A worker whose tasks are quicker holds up to [`DEEP`], which
/// keeps it busy across the round trip (tens of µs over TCP, which Open
/// MPI uses between a client and the workers it spawned) and binds at
/// most [`DEEP`] × [`QUICK`] of work to it.
const DEPTH: usize = 2;

/// See [`DEPTH`].
const DEEP: usize = 32;

/// See [`DEPTH`]: the time between two answers of a busy worker under
/// which its tasks count as quick.
const QUICK: Duration = Duration::from_micros(200);

/// The largest request sent ahead to a busy worker. A larger message may
/// go by MPI's rendezvous protocol, whose send waits until the worker
/// receives it, that is until it has finished the tasks before it: the
/// dispatcher would stall meanwhile. Open MPI's shared-memory transport
/// sends up to 4 KiB eagerly.
const AHEAD_MAX: usize = 4 << 10;

/// How long a new pool's workers may take to say hello.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The process's MPI thread, started on first use. On a static pool's
/// worker rank this never returns: the rank serves tasks until the client
/// ends, then exits.
pub(crate) fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME.get_or_init(start).as_ref().map_err(Clone::clone)
}

/// What the MPI thread found when it initialized MPI.
enum Started {
    Client { world_size: usize },
    Worker,
}

fn start() -> Result<Runtime, String> {
    let (commands, inbox) = crossbeam_channel::unbounded();
    let (ready, started) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("cf-mpi".into())
        .spawn(move || mpi_thread(inbox, ready))
        .map_err(|e| format!("cannot start the MPI thread: {e}"))?;
    match started.recv() {
        Ok(Ok(Started::Client { world_size })) => {
            // SAFETY: `at_exit` is a plain `extern "C" fn()`; registering
            // it has no other precondition.
            unsafe { libc::atexit(at_exit) };
            Ok(Runtime {
                commands,
                world_size,
            })
        }
        Ok(Ok(Started::Worker)) => loop {
            // A worker rank: the MPI thread serves and ends the process.
            std::thread::park();
        },
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err("the MPI thread ended while it started".into()),
    }
}

fn mpi_thread(inbox: Receiver<Command>, ready: Sender<Result<Started, String>>) {
    let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Funneled) else {
        let _ = ready.send(Err("MPI was initialized already, by other code of this \
                                process: the MPI pool must be the one to initialize it"
            .into()));
        return;
    };
    if threading == Threading::Single {
        let _ = ready.send(Err(
            "this MPI grants only Threading::Single; the MPI pool needs Funneled".into(),
        ));
        return;
    }
    let world = universe.world();
    let world_size = usize::try_from(world.size()).unwrap_or(1);
    if world_size > 1 && world.rank() != 0 {
        let _ = ready.send(Ok(Started::Worker));
        protocol::say_hello(&world, 0);
        while protocol::serve(&world, 0) == Served::Stopped {}
        drop(universe);
        std::process::exit(0);
    }
    let _ = ready.send(Ok(Started::Client { world_size }));
    Dispatcher {
        universe: Some(universe),
        world,
        pools: HashMap::new(),
        world_workers: None,
        dead_ranks: Vec::new(),
        spares: Spares::default(),
    }
    .run(inbox);
}

/// When the MPI thread entered `MPI_Comm_spawn`, while it is in it.
static SPAWNING_SINCE: Mutex<Option<Instant>> = Mutex::new(None);

/// Set once a `build()` gave up on a spawn that did not return (see
/// [`spawn_stuck`]): the MPI thread will not answer again.
static WEDGED: AtomicBool = AtomicBool::new(false);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why the MPI thread is stuck, if it has been in `MPI_Comm_spawn` for
/// `timeout` or more (or a `build()` found it stuck before). A spawn
/// normally returns in well under a second. It does not return when the
/// workers never start MPI (a worker program that is not one), and, in a
/// few percent of spawns, with Open MPI 4.1 built against an external
/// PMIx 4.x (Debian's and Ubuntu's packages: openpmix/openpmix#2735 and
/// #2967, a spawned process stuck in `PMIx_Init`). The MPI thread cannot
/// be got back, so from then on every MPI call of the process waits: new
/// pools are refused with this reason, and the exiting process does not
/// wait for the MPI thread.
pub(crate) fn spawn_stuck(timeout: Duration) -> Option<String> {
    let stuck = WEDGED.load(Ordering::Acquire)
        || lock(&SPAWNING_SINCE).is_some_and(|since| since.elapsed() >= timeout);
    if !stuck {
        return None;
    }
    WEDGED.store(true, Ordering::Release);
    Some(
        "MPI_Comm_spawn has not returned: the process's MPI thread is stuck in it, and \
         every MPI pool of this process with it. Either the worker program never \
         started MPI, or this is the intermittent spawn hang of Open MPI 4.1 built \
         against an external PMIx 4.x (Debian's and Ubuntu's packages; \
         openpmix/openpmix#2735): use the static launch mode (mpirun -n N), or an \
         Open MPI built with its internal PMIx"
            .into(),
    )
}

extern "C" fn at_exit() {
    if WEDGED.load(Ordering::Acquire) {
        // The MPI thread is stuck in a spawn: it cannot stop the pools
        // or finalize MPI. Open MPI's daemon ends the workers when this
        // process is gone.
        return;
    }
    if let Some(Ok(runtime)) = RUNTIME.get() {
        let (done, finished) = crossbeam_channel::bounded::<()>(1);
        if runtime.commands.send(Command::Exit { done }).is_ok() {
            let _ = finished.recv_timeout(EXIT_TIMEOUT);
        }
    }
}

/// A pool's communicator: the world (static), or the intercommunicator
/// to the workers it spawned (dynamic).
enum PoolComm {
    World(SimpleCommunicator),
    Spawned(InterCommunicator),
}

impl PoolComm {
    fn send(&self, rank: Rank, bytes: &[u8], tag: Tag) {
        match self {
            PoolComm::World(c) => c.process_at_rank(rank).send_with_tag(bytes, tag),
            PoolComm::Spawned(c) => c.process_at_rank(rank).send_with_tag(bytes, tag),
        }
    }

    /// A result, if one has arrived: the rank that sent it and its bytes.
    fn result(&self) -> Option<(Rank, Vec<u8>)> {
        self.probe(RESULT)
    }

    /// A message tagged `tag`, if one has arrived: its source and bytes.
    fn probe(&self, tag: Tag) -> Option<(Rank, Vec<u8>)> {
        match self {
            PoolComm::World(c) => probe(c, tag),
            PoolComm::Spawned(c) => probe(c, tag),
        }
    }
}

/// A message tagged `tag` on `comm`, if one has arrived: its source and
/// bytes.
fn probe<C: Communicator>(comm: &C, tag: Tag) -> Option<(Rank, Vec<u8>)> {
    let probed = comm.any_process().immediate_matched_probe_with_tag(tag)?;
    let (bytes, status) = probed.matched_receive_vec::<u8>();
    Some((status.source_rank(), bytes))
}

/// One worker rank of a pool: who it is (see `liveness.rs`) and the jobs
/// it holds.
struct Worker {
    member: Member,
    /// The jobs sent to it, oldest first: the one it runs, then those
    /// sent ahead (see [`DEPTH`]). A worker answers in order.
    held: VecDeque<Job>,
    /// When it last answered while it held more: the start of the task
    /// it runs now (`None` after it went idle).
    busy_since: Option<Instant>,
    /// Its last task took less than [`QUICK`].
    quick: bool,
    /// How many jobs it may hold after the next dispatch: one more than
    /// it held when it last answered (0 when it has not answered since the
    /// last dispatch: then it gets no job ahead).
    refill_to: usize,
}

impl Worker {
    /// How many jobs it may hold (see [`DEPTH`]).
    fn depth(&self) -> usize {
        if self.quick { DEEP } else { DEPTH }
    }

    /// Takes the job its answer is for, and times the task.
    fn answered(&mut self) -> Option<Job> {
        self.refill_to = self.refill_to.max(self.held.len() + 1);
        let job = self.held.pop_front()?;
        let now = Instant::now();
        if let Some(since) = self.busy_since {
            self.quick = now.duration_since(since) < QUICK;
        }
        self.busy_since = (!self.held.is_empty()).then_some(now);
        Some(job)
    }

    /// Sends it `job`.
    fn send(&mut self, comm: &PoolComm, job: Job) {
        comm.send(self.member.rank, &job.request, TASK);
        if self.held.is_empty() {
            self.busy_since = Some(Instant::now());
        }
        self.held.push_back(job);
    }
}

/// One open pool.
struct Pool {
    handle: Arc<PoolHandle>,
    comm: PoolComm,
    workers: Vec<Worker>,
    queue: VecDeque<Job>,
    /// Shut down: dropped when the last job is done and the workers are
    /// stopped.
    closing: Vec<Sender<()>>,
    shutting_down: bool,
    /// A worker died: the pool is broken and nothing more is sent.
    dead: bool,
    /// What a dynamic pool's workers were spawned from (`None` for a
    /// static pool).
    origin: Option<Origin>,
    /// The workers of a reused spare group that this pool does not use
    /// (see `spare.rs`): they idle, and go back with the group.
    unused: Vec<Member>,
}

impl Pool {
    fn outstanding(&self) -> bool {
        self.workers.iter().any(|w| !w.held.is_empty())
    }

    fn broken_reason(&self) -> Option<String> {
        self.handle
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// If a watched worker has died: the pool is broken, every job it
    /// holds or queues fails with the reason; returns the dead rank.
    fn bury_dead(&mut self) -> Option<Rank> {
        if self.dead {
            return None;
        }
        let dead = self.workers.iter().find(|w| w.member.has_ended())?;
        let reason = format!(
            "MPI worker rank {} (pid {} on {}) died; MPI cannot replace a rank, so the \
             pool is broken",
            dead.member.rank, dead.member.hello.pid, dead.member.hello.host
        );
        let rank = dead.member.rank;
        self.dead = true;
        *self.handle.broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        let broken = || TaskError::Broken {
            reason: reason.clone(),
        };
        for job in self.workers.iter_mut().flat_map(|w| w.held.drain(..)) {
            job.sink.fail(broken());
        }
        for job in self.queue.drain(..) {
            if job.sink.start() {
                job.sink.fail(broken());
            }
        }
        Some(rank)
    }
}

struct Dispatcher {
    /// Dropped last: finalizes MPI.
    universe: Option<Universe>,
    world: SimpleCommunicator,
    pools: HashMap<usize, Pool>,
    /// A static launch's ranks 1..N, as they said hello (at the first
    /// static pool).
    world_workers: Option<Vec<(Rank, Hello)>>,
    /// Ranks of the world seen dead: told nothing more.
    dead_ranks: Vec<Rank>,
    /// Spawned workers whose pools are done, kept for the next pools.
    spares: Spares,
}

impl Dispatcher {
    fn run(mut self, inbox: Receiver<Command>) {
        let mut backoff = Backoff::new(
            Duration::from_micros(200),
            Duration::from_micros(5),
            Duration::from_micros(200),
        );
        loop {
            let outstanding = self.pools.values().any(Pool::outstanding);
            let first = if outstanding {
                match inbox.recv_timeout(backoff.next_pause()) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match inbox.recv() {
                    Ok(command) => Some(command),
                    Err(_) => return,
                }
            };
            let mut progressed = false;
            let mut command = first;
            while let Some(c) = command {
                progressed = true;
                if let Command::Exit { done } = c {
                    self.exit();
                    drop(done);
                    return;
                }
                self.handle(c);
                command = match inbox.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                };
            }
            progressed |= self.collect();
            self.bury_dead();
            self.dispatch();
            self.close_finished();
            if progressed {
                backoff.reset();
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Open {
                id,
                spec,
                handle,
                reply,
            } => {
                let _ = reply.send(self.open(id, spec, handle));
            }
            Command::Submit { pool, job } => match self.pools.get_mut(&pool) {
                Some(pool) => {
                    let broken = pool.handle.broken.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(reason) = broken.as_ref() {
                        if job.sink.start() {
                            job.sink.fail(TaskError::Broken {
                                reason: reason.clone(),
                            });
                        }
                    } else {
                        drop(broken);
                        pool.queue.push_back(job);
                    }
                }
                // Submit refuses after shutdown, under the lock that
                // sends the shutdown, so this cannot happen.
                None => job.sink.cancel(),
            },
            Command::Shutdown {
                pool,
                cancel_futures,
                taken,
                done,
            } => match self.pools.get_mut(&pool) {
                Some(pool) => {
                    pool.shutting_down = true;
                    pool.closing.push(done);
                    if cancel_futures {
                        for job in pool.queue.drain(..) {
                            job.sink.cancel();
                        }
                    }
                    drop(taken);
                }
                None => drop((taken, done)),
            },
            Command::Exit { .. } => unreachable!("handled by run"),
        }
    }

    fn open(
        &mut self,
        id: usize,
        spec: OpenSpec,
        handle: Arc<PoolHandle>,
    ) -> Result<usize, String> {
        let (comm, members, origin, unused) = if self.world.size() > 1 {
            if self
                .pools
                .values()
                .any(|pool| matches!(pool.comm, PoolComm::World(_)))
            {
                return Err(
                    "a static MPI pool is open already: the world's ranks serve one \
                            pool at a time; shut it down before building the next"
                        .into(),
                );
            }
            if let Some(rank) = self.dead_ranks.first() {
                return Err(format!(
                    "rank {rank} of this static launch has died: no pool can use the world"
                ));
            }
            let comm = PoolComm::World(SimpleCommunicator::world());
            let workers = match &self.world_workers {
                Some(workers) => workers.clone(),
                None => {
                    let n = usize::try_from(self.world.size() - 1).unwrap_or(0);
                    let workers = hellos(&SimpleCommunicator::world(), n)?;
                    self.world_workers = Some(workers.clone());
                    workers
                }
            };
            // `max_workers` of the world's ranks, or all of them; the others
            // idle in their serve loop while this pool lasts.
            let n = spec.workers.unwrap_or(workers.len());
            let members = workers
                .into_iter()
                .take(n)
                .map(|(rank, hello)| Member::new(rank, hello))
                .collect();
            (comm, members, None, Vec::new())
        } else {
            let n = spec.workers.unwrap_or_else(|| self.default_workers());
            let program = match spec.program {
                Some(program) => program,
                None => std::env::current_exe()
                    .map_err(|e| format!("cannot find this executable to spawn: {e}"))?,
            };
            let origin = Origin {
                program,
                info: spec.info,
            };
            let group = match self.spares.take(&origin, n) {
                Some(group) => group,
                None => spawn_group(&origin, n)?,
            };
            let mut members = group.members;
            let unused = members.split_off(n);
            (PoolComm::Spawned(group.comm), members, Some(origin), unused)
        };
        let mut pool = Pool {
            handle,
            comm,
            workers: members
                .into_iter()
                .map(|member| Worker {
                    member,
                    held: VecDeque::new(),
                    busy_since: None,
                    quick: false,
                    refill_to: 0,
                })
                .collect(),
            queue: VecDeque::new(),
            closing: Vec::new(),
            shutting_down: false,
            dead: false,
            origin,
            unused,
        };
        if let Some(init) = spec.initializer
            && let Err(reason) = initialize(&mut pool, &init)
        {
            *pool.handle.broken.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("the initializer failed: {reason}"));
        }
        let workers = pool.workers.len();
        self.pools.insert(id, pool);
        Ok(workers)
    }

    /// The universe size minus this process, or 1 (mpi4py's default).
    fn default_workers(&self) -> usize {
        self.universe
            .as_ref()
            .and_then(Universe::size)
            .map_or(1, |size| size.saturating_sub(1).max(1))
    }

    /// Breaks each pool one of whose workers has died (see `liveness.rs`).
    fn bury_dead(&mut self) {
        for pool in self.pools.values_mut() {
            if let Some(rank) = pool.bury_dead()
                && matches!(pool.comm, PoolComm::World(_))
            {
                self.dead_ranks.push(rank);
            }
        }
    }

    /// Gives each idle worker the next queued job that is not cancelled;
    /// then, while a backlog lasts, sends jobs ahead to the workers that
    /// have just answered (see [`DEPTH`]).
    fn dispatch(&mut self) {
        for pool in self.pools.values_mut().filter(|pool| !pool.dead) {
            let Pool {
                comm,
                workers,
                queue,
                ..
            } = pool;
            for worker in workers.iter_mut().filter(|w| w.held.is_empty()) {
                if !give(comm, worker, queue, usize::MAX) {
                    break;
                }
            }
            let saturated = workers.iter().all(|w| !w.held.is_empty());
            while saturated && queue.len() >= workers.len() {
                let Some(worker) = workers
                    .iter_mut()
                    .filter(|w| w.held.len() < w.refill_to.min(w.depth()))
                    .min_by_key(|w| w.held.len())
                else {
                    break;
                };
                if !give(comm, worker, queue, AHEAD_MAX) {
                    break;
                }
            }
            for worker in workers.iter_mut() {
                worker.refill_to = 0;
            }
        }
    }

    /// Completes the jobs whose results have arrived; whether any had.
    fn collect(&mut self) -> bool {
        let mut done = Vec::new();
        for pool in self.pools.values_mut() {
            if !pool.outstanding() {
                continue;
            }
            while let Some((rank, bytes)) = pool.comm.result() {
                let job = pool
                    .workers
                    .iter_mut()
                    .find(|w| w.member.rank == rank)
                    .and_then(Worker::answered);
                if let Some(job) = job {
                    done.push((job, bytes));
                }
            }
        }
        let any = !done.is_empty();
        for (job, bytes) in done {
            complete(job, &bytes);
        }
        any
    }

    /// Stops the workers of each pool that is shut down and has nothing
    /// left to run.
    fn close_finished(&mut self) {
        let finished: Vec<usize> = self
            .pools
            .iter()
            .filter(|(_, p)| {
                p.shutting_down && (p.dead || (p.queue.is_empty() && !p.outstanding()))
            })
            .map(|(&id, _)| id)
            .collect();
        for id in finished {
            let pool = self.pools.remove(&id).expect("just found");
            finish(pool, Some(&mut self.spares));
        }
    }

    /// The process is exiting: what is queued fails, the workers are
    /// stopped (a static pool's ranks are told to exit), MPI is finalized.
    fn exit(&mut self) {
        for (_, mut pool) in self.pools.drain() {
            for job in pool.queue.drain(..) {
                if job.sink.start() {
                    job.sink.fail(TaskError::Broken {
                        reason: "the program is exiting".into(),
                    });
                }
            }
            if matches!(pool.comm, PoolComm::Spawned(_)) {
                finish(pool, None);
            }
        }
        self.spares.stop_all();
        for rank in 1..self.world.size() {
            if !self.dead_ranks.contains(&rank) {
                self.world
                    .process_at_rank(rank)
                    .send_with_tag(&[0u8; 0][..], EXIT);
            }
        }
        drop(self.universe.take());
    }
}

/// Sends `worker` the first queued job that is not cancelled, if its
/// request is at most `max` bytes; whether a job went.
fn give(comm: &PoolComm, worker: &mut Worker, queue: &mut VecDeque<Job>, max: usize) -> bool {
    while let Some(front) = queue.front() {
        if front.request.len() > max {
            return false;
        }
        let job = queue.pop_front().expect("just looked");
        if !job.sink.start() {
            // Cancelled while queued: dropped here, never sent.
            continue;
        }
        worker.send(comm, job);
        return true;
    }
    false
}

/// Ends `pool`, which is done (or the process is exiting), and lets its
/// shutdown waiters go. A static pool's ranks are told [`STOP`] and wait
/// for the next pool. A spawned pool's group (with the workers it did not
/// use) goes to `spares` if given, or is stopped (see `spare.rs`). A pool
/// with a dead worker is told nothing: a disconnect, collective, would
/// wait for ever for the dead rank, so its communicator is left as it is.
fn finish(pool: Pool, spares: Option<&mut Spares>) {
    let Pool {
        comm,
        workers,
        closing,
        dead,
        origin,
        unused,
        ..
    } = pool;
    match comm {
        _ if dead => std::mem::forget(comm),
        PoolComm::World(world) => {
            for worker in &workers {
                world
                    .process_at_rank(worker.member.rank)
                    .send_with_tag(&[0u8; 0][..], STOP);
            }
        }
        PoolComm::Spawned(comm) => {
            let group = Group {
                comm,
                origin: origin.expect("a spawned pool knows its origin"),
                members: workers
                    .into_iter()
                    .map(|w| w.member)
                    .chain(unused)
                    .collect(),
            };
            match spares {
                Some(spares) => spares.put(group),
                None => group.stop(),
            }
        }
    }
    drop(closing);
}

/// Spawns `n` workers from `origin` and waits for their hellos. If they do
/// not all say hello, the intercommunicator is left as it is: a disconnect
/// would wait for the workers that did not start.
fn spawn_group(origin: &Origin, n: usize) -> Result<Group, String> {
    *lock(&SPAWNING_SINCE) = Some(Instant::now());
    let spawned = spawn(&origin.program, n, &origin.info);
    *lock(&SPAWNING_SINCE) = None;
    let comm = spawned?;
    match hellos(&comm, n) {
        Ok(hellos) => Ok(Group {
            comm,
            origin: origin.clone(),
            members: hellos
                .into_iter()
                .map(|(rank, hello)| Member::new(rank, hello))
                .collect(),
        }),
        Err(reason) => {
            std::mem::forget(comm);
            Err(reason)
        }
    }
}

/// Waits for the `n` workers of a new pool to say who they are (bounded:
/// a worker that does not start fails the pool's start).
fn hellos<C: Communicator>(comm: &C, n: usize) -> Result<Vec<(Rank, Hello)>, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut backoff = Backoff::new(
        Duration::from_millis(1),
        Duration::from_micros(10),
        Duration::from_millis(1),
    );
    let mut workers = Vec::with_capacity(n);
    while workers.len() < n {
        match probe(comm, HELLO) {
            Some((rank, bytes)) => {
                let hello = Hello::decode(&bytes)
                    .ok_or_else(|| format!("worker rank {rank} said an unreadable hello"))?;
                workers.push((rank, hello));
            }
            None if Instant::now() > deadline => {
                return Err(format!(
                    "{} of {n} MPI workers did not start within {START_TIMEOUT:?}",
                    n - workers.len()
                ));
            }
            None => backoff.wait(),
        }
    }
    workers.sort_by_key(|(rank, _)| *rank);
    Ok(workers)
}

/// Completes `job` from its response.
fn complete(job: Job, bytes: &[u8]) {
    match wire::decode_response(bytes) {
        Ok(response) if client::response_id(&response) == Some(job.id) => {
            job.sink.deliver(response)
        }
        Ok(_) => job
            .sink
            .fail(client::protocol_error("a response to another request")),
        Err(e) => job.sink.fail(client::protocol_error(&e.to_string())),
    }
}

/// Runs the initializer on every worker of `pool` and waits for all of
/// them; the first failure, if any.
fn initialize(pool: &mut Pool, init: &InitSpec) -> Result<(), String> {
    for worker in &pool.workers {
        pool.comm.send(worker.member.rank, &init.request, TASK);
    }
    let mut verdict = Ok(());
    let mut left = pool.workers.len();
    let mut backoff = Backoff::new(
        Duration::from_millis(1),
        Duration::from_micros(10),
        Duration::from_millis(1),
    );
    while left > 0 {
        let Some((_, bytes)) = pool.comm.result() else {
            if pool.bury_dead().is_some() {
                return Err(pool.broken_reason().unwrap_or_default());
            }
            backoff.wait();
            continue;
        };
        left -= 1;
        let this = match wire::decode_response(&bytes) {
            Ok(Response::Init(Outcome::Ok(result))) => (init.check)(result),
            Ok(Response::Init(outcome)) => match outcome_into::<()>(outcome) {
                Err(TaskError::Panicked { message }) => Err(format!("it panicked: {message}")),
                Err(other) => Err(other.to_string()),
                Ok(()) => Ok(()),
            },
            Ok(_) => Err("a worker answered the initializer out of protocol".into()),
            Err(e) => Err(e.to_string()),
        };
        if verdict.is_ok() {
            verdict = this;
        }
    }
    verdict
}

/// `MPI_Comm_spawn` of `n` copies of `program` with [`WORKER_ARG`] and the
/// info keys `info`, with errors returned rather than fatal.
fn spawn(
    program: &std::path::Path,
    n: usize,
    info: &[(String, String)],
) -> Result<InterCommunicator, String> {
    let count = std::os::raw::c_int::try_from(n).map_err(|_| format!("{n} workers: too many"))?;
    let cstring =
        |s: &[u8], what: &str| CString::new(s).map_err(|_| format!("the {what} holds a NUL byte"));
    let program_c = cstring(program.as_os_str().as_bytes(), "worker program's path")?;
    let arg = cstring(WORKER_ARG.as_bytes(), "worker argument")?;
    let mut argv = [arg.as_ptr().cast_mut(), std::ptr::null_mut()];
    let pairs = info
        .iter()
        .map(|(k, v)| {
            Ok((
                cstring(k.as_bytes(), "info key")?,
                cstring(v.as_bytes(), "info value")?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut errcodes = vec![0; n];
    // SAFETY: every pointer handed to MPI points into a live CString or
    // array of this frame; `argv` ends with a null pointer; `errcodes`
    // holds `n` entries; the info object is created before use and freed
    // after. MPI is initialized, on this thread.
    unsafe {
        ffi::MPI_Comm_set_errhandler(ffi::RSMPI_COMM_SELF, ffi::RSMPI_ERRORS_RETURN);
        let mut info_handle = ffi::RSMPI_INFO_NULL;
        if !pairs.is_empty() {
            ffi::MPI_Info_create(&mut info_handle);
            for (key, value) in &pairs {
                ffi::MPI_Info_set(info_handle, key.as_ptr(), value.as_ptr());
            }
        }
        let mut inter = ffi::RSMPI_COMM_NULL;
        let rc = ffi::MPI_Comm_spawn(
            program_c.as_ptr(),
            argv.as_mut_ptr(),
            count,
            info_handle,
            0,
            ffi::RSMPI_COMM_SELF,
            &mut inter,
            errcodes.as_mut_ptr(),
        );
        if !pairs.is_empty() {
            ffi::MPI_Info_free(&mut info_handle);
        }
        let failed = errcodes
            .iter()
            .filter(|&&c| c != ffi::MPI_SUCCESS as i32)
            .count();
        if rc != ffi::MPI_SUCCESS as i32 || failed > 0 || inter == ffi::RSMPI_COMM_NULL {
            return Err(format!(
                "MPI_Comm_spawn of {n} workers ({}) failed (status {rc}, {failed} not started)",
                program.display()
            ));
        }
        Ok(InterCommunicator::from_raw(inter))
    }
}
