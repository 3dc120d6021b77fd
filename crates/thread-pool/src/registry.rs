//! The pool's shared state and the worker main loop: scheduling on
//! crossbeam-deque, lazy thread start, the sleep/wake protocol, shutdown.
//!
//! # Queues
//! Submissions from outside the pool go to the pool's `inbox` (a ring,
//! then an overflow queue: `inbox.rs`); a task
//! submitted from inside one of the pool's workers goes to that worker's
//! own deque. A worker looks in its deque, then takes a batch from the
//! inbox, then steals from the other workers. A worker that finishes a
//! task with its deque empty first lets the inbox's waiting tasks gather
//! into a batch, briefly, if more keep arriving (`Inbox::gather`).
//!
//! # Sleeping and waking (no lost wake-up)
//! The protocol and its invariants live in `sleep.rs` (the `Sleep` unit,
//! which the loom model checks in `tests/loom.rs` drive). In short: a
//! worker that finds nothing spins briefly, then registers as a sleeper
//! under a lock, fences, looks at every queue once more (`has_work`) and
//! only then waits; whoever makes a job visible (a submit's push, or a
//! worker that moved a batch into its own deque) fences, and signals under
//! the lock if anyone sleeps. So no job stays queued while every worker
//! sleeps. An idle pool is all threads blocked in `wait`: no CPU.
//!
//! # Lazy start and idle reuse
//! Like CPython, a submit that finds no idle worker starts a new thread
//! while fewer than `max_workers` run, and idle threads are reused. The
//! accounting is one counter, `load`: jobs queued plus jobs running. A
//! submit adds 1 before it queues its job; every queue entry takes 1 off,
//! exactly once, when the worker that popped it is done with it: just
//! before the task's future completes (so a caller woken by that
//! completion who submits again finds the worker counted as free and no
//! thread is added), or at once if the entry was already claimed inline or
//! cancelled, or when shutdown or a broken pool drains it. A submit that
//! makes `load` exceed the threads started starts one more (while fewer
//! than `max_workers` run), so a queued job never waits for a busy worker
//! while the pool may still grow. Once all `max_workers` threads have
//! started, the pool cannot grow and submits no longer count (each entry
//! remembers whether it was counted), which keeps a cache line that every
//! worker writes off the hot path.
//!
//! # Shutdown
//! `Sleep`'s gate packs the shutdown bit with the number of submits in
//! progress. A submit enters the gate and backs out if the bit is set;
//! shutdown sets the bit and wakes every sleeper. A worker exits only when
//! it sees the bit with no submit in progress and no queued work, so a
//! submit that passed the gate always has its job run.
//!
//! `shutdown(wait = true)` from one of the pool's own tasks waits for
//! every worker but itself and the workers whose running task called a
//! `shutdown(wait = true)` of its own (`shutting_down`): those cannot exit
//! before that task ends, so waiting for them could deadlock.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle, ThreadId};

use concurrent_futures_core::{TaskError, catch_panic};
use crossbeam_deque::{Steal, Stealer, Worker};

use crate::inbox::Inbox;
use crate::job::JobRef;
use crate::schedule::{self, Queues};
use crate::sleep::Sleep;

/// An initializer, normalised: `Err` carries the reason it failed.
pub(crate) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// How many times an idle worker looks for work before it sleeps.
const SPIN_ROUNDS: usize = 64;

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

/// One per potential worker, padded so workers do not share cache lines.
#[repr(align(128))]
struct Slot {
    stealer: OnceLock<Stealer<JobRef>>,
}

pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) name_prefix: String,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) stack_size: Option<usize>,
}

pub(crate) struct Registry {
    pub(crate) id: usize,
    pub(crate) config: Config,
    /// Submissions from outside the workers (`inbox.rs`).
    inbox: Inbox<JobRef>,
    slots: Box<[Slot]>,
    /// Threads started so far; also the index of the next one. Written
    /// under `threads`' lock.
    started: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The workers whose running task called `shutdown(wait = true)` (see
    /// `shutdown`), until that task ends. Taken after `threads` when both
    /// are, and inside `sleep`'s lock, never around it.
    shutting_down: Mutex<Vec<ThreadId>>,
    /// Jobs queued plus jobs running (see "Lazy start" above).
    load: AtomicUsize,
    /// Sleep/wake and shutdown (the gate, the sleepers, the live workers).
    sleep: Sleep,
    broken: OnceLock<String>,
}

/// A worker's own state (its pool's id is in `CURRENT_POOL`).
struct Local {
    deque: Worker<JobRef>,
    /// Whether the task running here called `shutdown(wait = true)`: this
    /// worker is in the registry's `shutting_down` until that task ends.
    shut_down_here: Cell<bool>,
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// The id of the pool whose worker this thread is, 0 for none (pool
    /// ids start at 1): what every submit and inline wait asks, read
    /// without `LOCAL`'s borrow and destructor check.
    static CURRENT_POOL: Cell<usize> = const { Cell::new(0) };
}

/// The pool whose worker the current thread is, if any.
pub(crate) fn current_pool() -> Option<usize> {
    match CURRENT_POOL.get() {
        0 => None,
        id => Some(id),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub(crate) fn new(config: Config) -> Arc<Registry> {
        let slots = (0..config.max_workers)
            .map(|_| Slot {
                stealer: OnceLock::new(),
            })
            .collect();
        Arc::new(Registry {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            config,
            inbox: Inbox::new(),
            slots,
            started: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            shutting_down: Mutex::new(Vec::new()),
            load: AtomicUsize::new(0),
            sleep: Sleep::new(),
            broken: OnceLock::new(),
        })
    }

    /// Queues `job`, starting or waking a worker for it.
    ///
    /// `make_job` runs only once the submit is accepted, so a refused
    /// submit leaves nothing behind.
    pub(crate) fn submit(
        self: &Arc<Self>,
        make_job: impl FnOnce(bool) -> JobRef,
    ) -> Result<(), TaskError> {
        if let Some(reason) = self.broken.get() {
            return Err(broken(reason));
        }
        if !self.sleep.begin_submit() {
            return Err(TaskError::ShutDown);
        }
        let result = self.enqueue(make_job);
        // Wakes everyone if shutdown began meanwhile.
        self.sleep.end_submit();
        result
    }

    fn enqueue(self: &Arc<Self>, make_job: impl FnOnce(bool) -> JobRef) -> Result<(), TaskError> {
        // Once every thread has started the pool cannot grow, and `load`
        // (a line written by the submitter and every worker) is left alone.
        let counted = self.started.load(Ordering::Acquire) < self.config.max_workers;
        if counted {
            let load = self.load.fetch_add(1, Ordering::SeqCst) + 1;
            if load > self.started.load(Ordering::Acquire)
                && let Err(e) = self.maybe_start_worker(load)
            {
                self.load.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
        }
        let mut job = Some(make_job(counted));
        if CURRENT_POOL.get() == self.id {
            // Submitted by one of our own workers: keep it local, others steal.
            let _ = LOCAL.try_with(|l| {
                if let Some(local) = &*l.borrow() {
                    local.deque.push(job.take().expect("set"));
                }
            });
        }
        if let Some(job) = job {
            self.inbox.push(job);
        }
        // The job is visible: wake a sleeper if there is one (no lost
        // wake-up: see `sleep.rs`).
        self.sleep.notify_one();
        if let Some(reason) = self.broken.get() {
            // The pool broke while we queued: fail what is queued, ours too.
            self.drain(|j| j.abort(broken(reason)));
        }
        Ok(())
    }

    /// One queue entry is done with (see "Lazy start" above): a counted
    /// entry gives its count back.
    fn release_load(&self, counted: bool) {
        if counted {
            self.load.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Starts a worker if `load` exceeds the threads started and the pool
    /// may still grow.
    fn maybe_start_worker(self: &Arc<Self>, load: usize) -> Result<(), TaskError> {
        let mut threads = lock(&self.threads);
        let index = self.started.load(Ordering::Acquire);
        if index >= self.config.max_workers || load <= index {
            return Ok(());
        }
        let deque = Worker::new_fifo();
        let stealer = deque.stealer();
        let name = format!("{}_{}", self.config.name_prefix, index);
        let mut builder = thread::Builder::new().name(name);
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        let registry = self.clone();
        self.sleep.worker_starting();
        match builder.spawn(move || registry.main_loop(index, deque)) {
            Ok(handle) => {
                // Registered only once the thread exists, so a failed spawn
                // leaves the slot free for the next one.
                let _ = self.slots[index].stealer.set(stealer);
                threads.push(handle);
                self.started.store(index + 1, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.sleep.worker_not_started();
                if index == 0 {
                    Err(TaskError::Broken {
                        reason: format!("could not start a worker thread: {e}"),
                    })
                } else {
                    Ok(()) // the running workers will take the job
                }
            }
        }
    }

    fn main_loop(self: Arc<Self>, index: usize, deque: Worker<JobRef>) {
        let local = Rc::new(Local {
            deque,
            shut_down_here: Cell::new(false),
        });
        LOCAL.with(|l| *l.borrow_mut() = Some(local.clone()));
        CURRENT_POOL.set(self.id);
        // Whatever happens below, the pool learns that this worker is gone.
        let _exit = ExitGuard(&self);
        if self.run_initializer(index) {
            loop {
                match self.find_job(index, &local.deque) {
                    Some(job) => {
                        let counted = job.policy().counted();
                        let done_with_entry = || self.release_load(counted);
                        // Tasks and callbacks catch their own panics; this
                        // catches what foreign code in between might raise
                        // (a waker, a panic handler) so the worker lives on.
                        if let Err(e) = catch_panic(|| job.run(&done_with_entry)) {
                            eprintln!("concurrent_futures: a worker survived a panic: {e}");
                        }
                        if local.shut_down_here.replace(false) {
                            // The task that shut the pool down has ended:
                            // other tasks in a shutdown wait for this
                            // worker again.
                            self.leave_shutting_down();
                            self.sleep.exit_waiters_look_again();
                        }
                        if local.deque.is_empty() {
                            // Tasks that came in while this one ran are
                            // taken as a batch (`inbox.rs`).
                            self.inbox.gather();
                        }
                    }
                    None => {
                        if !self.sleep(&local.deque) {
                            break;
                        }
                    }
                }
            }
        }
        let _ = LOCAL.try_with(|l| *l.borrow_mut() = None);
    }

    /// Takes this thread out of `shutting_down`.
    fn leave_shutting_down(&self) {
        let me = thread::current().id();
        lock(&self.shutting_down).retain(|&id| id != me);
    }

    /// Runs the initializer; on failure marks the pool broken and returns
    /// false (the worker then exits).
    fn run_initializer(&self, index: usize) -> bool {
        let Some(init) = &self.config.initializer else {
            return true;
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init()))
            .unwrap_or_else(|payload| {
                Err(format!(
                    "panicked: {}",
                    concurrent_futures_core::panic_message(&*payload)
                ))
            });
        match outcome {
            Ok(()) => true,
            Err(why) => {
                let reason = format!(
                    "the initializer of worker thread {}_{} failed ({why}); \
                     the pool runs no more tasks: fix the initializer and build a new pool",
                    self.config.name_prefix, index
                );
                eprintln!("concurrent_futures: {reason}");
                let _ = self.broken.set(reason);
                let reason = self.broken.get().expect("just set");
                self.drain(|j| j.abort(broken(reason)));
                false
            }
        }
    }

    /// The next job for worker `index` (see `schedule.rs`).
    fn find_job(&self, index: usize, deque: &Worker<JobRef>) -> Option<JobRef> {
        schedule::find_job(self, &self.sleep, index, deque)
    }

    /// Whether any queue holds a job (see `schedule.rs`).
    fn has_work(&self) -> bool {
        schedule::has_work(self)
    }

    /// Waits for work; returns false when the worker should exit.
    fn sleep(&self, deque: &Worker<JobRef>) -> bool {
        for round in 0..SPIN_ROUNDS {
            if !deque.is_empty() || self.has_work() {
                return true;
            }
            if round < SPIN_ROUNDS / 2 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        self.sleep.sleep_until(|| self.has_work())
    }

    /// Takes every queued job (from the inbox and every worker's deque)
    /// and hands it to `f`; each is done with (`release_load`).
    fn drain(&self, f: impl Fn(JobRef)) {
        self.drain_from(|| self.inbox.steal(), &f);
        let started = self.started.load(Ordering::Acquire);
        for slot in &self.slots[..started] {
            if let Some(stealer) = slot.stealer.get() {
                self.drain_from(|| stealer.steal(), &f);
            }
        }
    }

    fn drain_from(&self, steal: impl Fn() -> Steal<JobRef>, f: &impl Fn(JobRef)) {
        loop {
            match steal() {
                Steal::Success(job) => {
                    let counted = job.policy().counted();
                    f(job);
                    self.release_load(counted);
                }
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }

    pub(crate) fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.sleep.begin_shutdown();
        if cancel_futures {
            self.drain(|j| {
                j.cancel();
            });
        }
        self.sleep.notify_all();
        if !wait {
            return;
        }
        // From one of the pool's own tasks: this worker cannot wait for its
        // own exit, nor for another worker whose task called a shutdown of
        // its own (each would wait for the other). It waits for every other
        // worker, so for all the queued work they run.
        let from_worker = CURRENT_POOL.get() == self.id
            && LOCAL
                .try_with(|l| match &*l.borrow() {
                    Some(local) => {
                        local.shut_down_here.set(true);
                        true
                    }
                    None => false,
                })
                .unwrap_or(false);
        if from_worker {
            let me = thread::current().id();
            let mut shutting_down = lock(&self.shutting_down);
            if !shutting_down.contains(&me) {
                shutting_down.push(me);
            }
            drop(shutting_down);
            self.sleep.exit_waiters_look_again();
        }
        // Also waits out submits still in progress: one may be about to
        // start the first worker for a task it was allowed to queue. The
        // workers not waited for are those in `shutting_down` when the wait
        // ends: every other one has left its main loop by then.
        let not_waited_for = RefCell::new(Vec::new());
        self.sleep.wait_for_exit(|| {
            if !from_worker {
                return 0;
            }
            let shutting_down = lock(&self.shutting_down).clone();
            let n = shutting_down.len();
            *not_waited_for.borrow_mut() = shutting_down;
            n
        });
        // Join the workers that have exited; keep the others' handles for a
        // shutdown that can wait for them (the pool's drop from outside it).
        let not_waited_for = not_waited_for.into_inner();
        let mut threads = lock(&self.threads);
        let (keep, done): (Vec<_>, Vec<_>) = std::mem::take(&mut *threads)
            .into_iter()
            .partition(|h| not_waited_for.contains(&h.thread().id()));
        *threads = keep;
        drop(threads);
        for handle in done {
            let _ = handle.join();
        }
    }

    pub(crate) fn is_broken(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }

    pub(crate) fn alive_workers(&self) -> usize {
        self.sleep.alive()
    }
}

/// Counts a worker out when its main loop ends, by return or by panic.
struct ExitGuard<'a>(&'a Registry);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        CURRENT_POOL.set(0);
        // Normally done as the task that shut down ends.
        self.0.leave_shutting_down();
        self.0.sleep.worker_exited();
    }
}

fn broken(reason: &str) -> TaskError {
    TaskError::Broken {
        reason: reason.to_owned(),
    }
}

/// The pool's queues for the scheduling rules (`schedule.rs`): the
/// inbox, and the started workers' deques through their stealers.
impl Queues for Registry {
    type Job = JobRef;
    type Local = Worker<JobRef>;

    fn pop(&self, local: &Worker<JobRef>) -> Option<JobRef> {
        local.pop()
    }

    fn local_is_empty(&self, local: &Worker<JobRef>) -> bool {
        local.is_empty()
    }

    fn steal_inbox(&self, local: &Worker<JobRef>) -> Steal<JobRef> {
        self.inbox.steal_batch_and_pop(local)
    }

    fn inbox_is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    fn workers(&self) -> usize {
        self.started.load(Ordering::Acquire)
    }

    fn steal_worker(&self, i: usize, local: &Worker<JobRef>) -> Steal<JobRef> {
        match self.slots[i].stealer.get() {
            Some(stealer) => stealer.steal_batch_and_pop(local),
            None => Steal::Empty,
        }
    }

    fn worker_is_empty(&self, i: usize) -> bool {
        self.slots[i].stealer.get().is_none_or(Stealer::is_empty)
    }
}
