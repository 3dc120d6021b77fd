//! The per-task time limit: one thread per pool that kills the worker of
//! a task that runs past its limit.
//!
//! A handler thread spends its time blocked reading its worker's replies,
//! so it cannot watch a clock itself. Whenever its worker gets the job at
//! the head of its line (the one the worker runs: it takes jobs in order),
//! the handler *arms* its slot with that job, and the
//! watchdog, if the deadline passes first, records that job as *fired* and
//! sends the worker SIGKILL. The read then fails (the worker's end of the
//! channel closed), and the handler, in its death path, *disarms* the slot
//! and takes the fired job's id, to fail that job with
//! [`TaskError::TaskTimedOut`](concurrent_futures_core::TaskError) rather
//! than `WorkerDied`.
//!
//! `ProcessPoolExecutor::stop_task` kills a worker through the same
//! record ([`Watchdog::fire`]), so the death path blames the stopped job
//! alone.
//!
//! Invariants, all under the watchdog's one mutex:
//! - A kill happens only while the slot is armed, and a handler disarms
//!   its slot before it reaps the worker; so the watchdog never signals a
//!   pid that has been reaped (and may have been reused).
//! - A slot is fired at most once per arming, and only for the job it was
//!   armed with.
//! - The thread starts with the first arming (pools without limits never
//!   have one) and ends when the pool's last reference drops it
//!   ([`Watchdog::stop`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What one slot is armed with.
#[derive(Clone, Copy)]
struct Arm {
    id: u64,
    pid: Pid,
    deadline: Instant,
}

/// One worker slot's watch.
#[derive(Clone, Copy, Default)]
struct Watch {
    armed: Option<Arm>,
    /// The job whose worker was killed (past its limit, or stopped), until
    /// the slot's handler takes it.
    fired: Option<u64>,
}

struct Slots {
    watches: Vec<Watch>,
    stop: bool,
}

/// See the module docs.
pub(crate) struct Watchdog {
    slots: Mutex<Slots>,
    changed: Condvar,
    thread: OnceLock<()>,
}

impl Watchdog {
    pub(crate) fn new(slots: usize) -> Arc<Watchdog> {
        Arc::new(Watchdog {
            slots: Mutex::new(Slots {
                watches: vec![Watch::default(); slots],
                stop: false,
            }),
            changed: Condvar::new(),
            thread: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches job `id`, run by `pid` in `slot`, from now for `limit`. A
    /// slot armed with the same job keeps its deadline (the handler arms
    /// before every read, and the clock started with the first).
    pub(crate) fn arm(self: &Arc<Self>, slot: usize, id: u64, pid: Pid, limit: Duration) {
        self.thread.get_or_init(|| {
            let me = Arc::clone(self);
            // A failure to start the thread leaves the limit unenforced;
            // there is no caller to tell, so it is said on stderr.
            if let Err(e) = std::thread::Builder::new()
                .name("cf-watchdog".into())
                .spawn(move || me.watch())
            {
                eprintln!("concurrent-futures: cannot start the task-timeout thread: {e}");
            }
        });
        let mut slots = self.lock();
        if slots.watches[slot]
            .armed
            .is_some_and(|a| a.id == id && a.pid == pid)
        {
            return;
        }
        let deadline = Instant::now()
            .checked_add(limit)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        slots.watches[slot].armed = Some(Arm { id, pid, deadline });
        drop(slots);
        self.changed.notify_one();
    }

    /// Stops watching `slot`, keeping any record of a kill for
    /// [`Watchdog::disarm`]. Free when no job has ever been armed.
    pub(crate) fn unwatch(&self, slot: usize) {
        if self.thread.get().is_some() {
            self.lock().watches[slot].armed = None;
        }
    }

    /// Stops watching `slot`; returns the job whose worker was killed for
    /// running too long, if any. After this returns, no kill of the slot's
    /// worker is in progress or to come.
    pub(crate) fn disarm(&self, slot: usize) -> Option<u64> {
        let watch = &mut self.lock().watches[slot];
        watch.armed = None;
        watch.fired.take()
    }

    /// Kills `pid`, the worker of `slot`, for the job `id` now (a
    /// `stop_task`), recording the job as fired, as a time-out would, so
    /// that the handler's death path blames that job and no other. If the
    /// slot has fired already, the worker is being killed: nothing more to
    /// do. The caller must know that `pid` is not reaped yet: it holds the
    /// state lock and sees a job sent to that worker in the slot's line
    /// (the death path takes the line before it reaps), or it is the
    /// slot's handler itself.
    pub(crate) fn fire(&self, slot: usize, id: u64, pid: Pid) {
        let watch = &mut self.lock().watches[slot];
        watch.armed = None;
        if watch.fired.is_none() {
            watch.fired = Some(id);
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    /// Ends the thread (the pool is gone).
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_one();
    }

    fn watch(&self) {
        let mut slots = self.lock();
        while !slots.stop {
            let now = Instant::now();
            for watch in &mut slots.watches {
                let Some(arm) = watch.armed else {
                    continue;
                };
                if arm.deadline <= now {
                    watch.armed = None;
                    watch.fired = Some(arm.id);
                    // Under the lock: the handler cannot have reaped this
                    // pid (it disarms first, under the same lock).
                    let _ = kill(arm.pid, Signal::SIGKILL);
                }
            }
            let next = slots
                .watches
                .iter()
                .filter_map(|w| w.armed)
                .map(|a| a.deadline)
                .min();
            slots = match next {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    self.changed
                        .wait_timeout(slots, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(slots).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
