//! [`ProcessPoolExecutor`]: the public API, and what the pool's threads
//! share ([`Shared`]).
//!
//! Queued work lives only in the parent's memory, as one encoded request
//! per job (a `Vec<u8>`, see `job.rs`), in one FIFO shared by every
//! handler, so a queued job can still be cancelled and holds no
//! descriptor: 100,000 queued tasks cost only their bytes. Each worker has
//! a handler thread (`handler.rs`); the rules for which worker gets which
//! job, and what dies with a worker, are in `slot.rs`, under the one state
//! lock.
//!
//! On the fast path a task takes that lock three times: its submit finds an
//! idle worker and hands it the job, sends it, and records the send; the
//! worker's handler, woken by the answer, takes the job out and refills
//! the worker in one critical section. A job submitted while every worker
//! is busy takes it twice (queued, then taken by a refill).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use concurrent_futures_core::{Completer, Executor, InlineRun, Payload, TaskError, TaskFuture};
use concurrent_futures_task_wire::registry;

use crate::builder::{InitSpec, ProcessPoolBuilder};
use crate::deaths::DeathWatch;
use concurrent_futures_task_wire::client::{self, Discarded, Pending, Sink};

use crate::job::{Delivery, Job, fail_all};
use crate::process::Launcher;
use crate::slot::{Dispatched, State};
use crate::watchdog::Watchdog;

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
///   future (CPython: its management thread), after that handler has
///   given its worker the next job. The handler reads nothing more from
///   its worker until the callback returns, so a callback may submit to
///   the pool but must not wait for what it submitted: on a one-worker
///   pool that work cannot complete before the callback ends. Hand such
///   waits to another thread.
/// * Dropping the pool is `shutdown(wait = true)`.
pub struct ProcessPoolExecutor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handlers: Mutex<Vec<JoinHandle<()>>>,
}

/// What the pool's threads share: settings, the state under its lock, and
/// the helpers threads (watchdog, death watch).
pub(crate) struct Shared {
    pub(crate) launcher: Launcher,
    pub(crate) initializer: Option<InitSpec>,
    pub(crate) max_workers: usize,
    pub(crate) max_tasks_per_child: Option<usize>,
    pub(crate) state: Mutex<State>,
    /// Signalled when a dispatched job's send ends and its slot's handler
    /// waits for it (see `Slot::reaping`).
    pub(crate) sent: Condvar,
    pub(crate) next_id: AtomicU64,
    /// Every future's hook: see [`AwaitReply`].
    pub(crate) await_reply: Arc<dyn InlineRun>,
    /// The builder's `task_timeout`: every task's limit unless its submit
    /// gives one.
    pub(crate) task_timeout: Option<Duration>,
    /// Kills the worker of a task past its limit.
    pub(crate) watchdog: Arc<Watchdog>,
    /// Sees each worker's exit from the process itself (see `deaths.rs`).
    pub(crate) deaths: DeathWatch,
    /// Set before the first job with a time limit is queued, or the first
    /// `stop_task` marks a job; until then handlers skip the watchdog (no
    /// extra work per task). The job is queued (or marked) under the state
    /// lock after the store, and a handler reads the flag under that lock,
    /// so one that can see the job sees the flag.
    pub(crate) limits_used: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.watchdog.stop();
    }
}

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
pub(crate) struct AwaitReply;

impl InlineRun for AwaitReply {
    fn try_run_inline(&self) -> bool {
        false
    }

    fn spin_before_blocking(&self) -> Duration {
        REPLY_SPIN
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the pool broken, fails everything not yet sent, and stops the
    /// idle workers.
    pub(crate) fn set_broken(&self, reason: String) {
        let (queued, unsent) = {
            let mut state = self.lock();
            if state.broken.is_none() {
                state.broken = Some(reason.clone());
            }
            state.stop_idle();
            let unsent = state.take_unsent();
            (state.queue.drain(..).collect::<Vec<_>>(), unsent)
        };
        for job in queued {
            if job.sink.start() {
                job.sink.fail(TaskError::Broken {
                    reason: reason.clone(),
                });
            }
        }
        // Jobs kept for a replacement are RUNNING already.
        fail_all(unsent, &reason);
    }

    /// Queues `job`, or gives it to an idle worker and sends it.
    fn enqueue(&self, job: Job) -> Result<(), TaskError> {
        let mut state = self.lock();
        let Some(dispatched) = state.dispatch(job)? else {
            return Ok(());
        };
        if let Some((pid, limit)) = dispatched.arm {
            // The slot's handler is reading, with nothing armed: arm here,
            // under the state lock, which its death path (disarm, then
            // reap) also holds, so the pid is still this slot's worker.
            self.watchdog
                .arm(dispatched.slot, dispatched.id, pid, limit);
        }
        drop(state);
        self.send(dispatched);
        Ok(())
    }

    /// Sends a dispatched job's request without holding the lock, then
    /// records how it went, and wakes the slot's handler if it waits for
    /// that (it found the worker gone meanwhile).
    fn send(&self, dispatched: Dispatched) {
        let Dispatched {
            slot,
            id,
            request,
            sender,
            ..
        } = dispatched;
        let ok = sender.is_some_and(|tx| tx.send(&request).is_ok());
        drop(request);
        let waited = self.lock().mark_sent(slot, id, ok);
        if waited {
            self.sent.notify_all();
        }
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
        ProcessPoolBuilder::new()
    }

    /// The number of worker processes the pool keeps.
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// Worker processes connected and not yet reaped.
    pub fn worker_count(&self) -> usize {
        self.shared
            .lock()
            .slots
            .iter()
            .filter(|slot| slot.pid.is_some())
            .count()
    }

    /// The pids of the connected workers, for monitoring (or for a test
    /// that kills one).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .lock()
            .slots
            .iter()
            .filter_map(|slot| slot.pid)
            .map(|pid| pid.as_raw() as u32)
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
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let request = client::encode_run(id, entry.name, &args)?;
        self.enqueue(id, request, Pending::one(completer), timeout)?;
        Ok(fut)
    }

    /// A new future of this pool, with the pool's hook (see [`AwaitReply`]).
    fn pending<T>(&self) -> (TaskFuture<T>, Completer<T>) {
        let (fut, completer) = TaskFuture::pending();
        completer.set_inline_hook(Arc::clone(&self.shared.await_reply));
        (fut, completer)
    }

    /// Queues the job `id` (checking shutdown and breakage once, under the
    /// lock that queues it).
    fn enqueue(
        &self,
        id: u64,
        request: Vec<u8>,
        sink: Box<dyn Sink>,
        timeout: Option<Duration>,
    ) -> Result<(), TaskError> {
        if timeout.is_some() {
            self.shared.limits_used.store(true, Ordering::Relaxed);
        }
        self.shared.enqueue(Job {
            id,
            stopped: false,
            timeout,
            request: Arc::new(request),
            sink,
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
        self.shared.lock().stop_idle();
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
            state.stop_idle();
            let unsent = state.take_unsent();
            // Under the state lock: a handler takes its worker's pid out
            // of the slot before it reaps it, so every pid here is
            // unreaped.
            for pid in state.slots.iter().filter_map(|slot| slot.pid) {
                let _ = nix::sys::signal::kill(pid, signal);
            }
            (state.queue.drain(..).collect::<Vec<_>>(), unsent, reason)
        };
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
            let found = state.slots.iter().enumerate().find_map(|(slot, s)| {
                s.line
                    .iter()
                    .position(|held| held.job.sink.is_for(future))
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
            let s = &mut state.slots[slot];
            let (sink, pid) = match s.line[at].delivery {
                // Waiting for a replacement worker: nothing runs it.
                Delivery::Unsent | Delivery::Failed => {
                    let held = s.line.remove(at).expect("just found");
                    (held.job.sink, None)
                }
                Delivery::Sending | Delivery::Sent => {
                    let job = &mut s.line[at].job;
                    job.stopped = true;
                    let sink = std::mem::replace(&mut job.sink, Box::new(Discarded));
                    let id = job.id;
                    // The slot's worker holds the job, so it is not reaped
                    // (the death path takes the line first): its pid is
                    // safe to signal. A job sent ahead waits: its handler
                    // kills the worker when it reaches it (`watch_head`).
                    let pid = s.pid;
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
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let request = client::encode_chunk(id, entry.name, &chunk)?;
        let timeout = self
            .shared
            .task_timeout
            .map(|limit| limit.saturating_mul(n.max(1).try_into().unwrap_or(u32::MAX)));
        self.enqueue(id, request, Pending::chunk(completer, n), timeout)?;
        Ok(fut)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        ProcessPoolExecutor::shutdown(self, wait, cancel_futures)
    }

    fn max_workers(&self) -> usize {
        self.shared.max_workers
    }
}
