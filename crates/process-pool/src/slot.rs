//! The pool's scheduling state, under its one lock: the queue of jobs no
//! worker holds yet, one [`Slot`] per worker, and the rules that move a
//! job from the queue to a worker and, when a worker dies, decide which
//! of its jobs die with it.
//!
//! **Where a job goes.** A submit that finds an idle slot gives it the job
//! and sends it itself ([`State::dispatch`]); otherwise the job is queued.
//! A handler whose worker answers takes the answered job out of the line
//! and gives the worker its next one in the same critical section
//! ([`State::refill`]). A worker holds at most [`DEPTH`] jobs: the one it
//! runs and one *sent ahead*, which waits in its socket so that the worker
//! does not idle between tasks while a backlog lasts.
//!
//! **Sending ahead, by construction.** A refill has two steps. First, a
//! worker that holds no job gets one: the job it would otherwise wait for.
//! Second, and only in the refill that follows an *answer* (the worker has
//! just finished a task), the worker may get one more, and only if the
//! pool is saturated *after* the first step: every other worker connected
//! and holding a job, and at least one more queued job for every worker.
//! So a worker that has finished nothing (just connected, or just
//! replaced) never gets a job ahead, and a job is sent ahead only when no
//! worker is idle and the queue could feed every worker again. A job that
//! stays queued stays cancellable. What remains is the tail of a backlog
//! of uneven tasks: a job sent ahead may wait behind a long task while the
//! queue has run dry and another worker finishes (CPython's call queue has
//! the same tail).
//!
//! Invariants, all under the lock:
//! - A job is in exactly one place: the queue, one slot's line, or the
//!   hands of the one thread that completes it.
//! - A slot is in [`State::idle`] only while its worker is connected, its
//!   line is empty, and its handler's next step is to read the worker's
//!   socket; whoever takes a slot out of `idle` puts a job in its line.
//! - A line holds, oldest first, the job its worker runs, then the one
//!   sent ahead; jobs kept from a dead worker for its replacement are
//!   [`Delivery::Unsent`] and handed over one refill at a time.
//! - Each line job's [`Delivery`] says whether its request reached the
//!   socket: when the worker dies, the first that did is the one it died
//!   running (a worker answers each job before it reads the next).
//! - `Slot::pid` is set from the worker's connection until its handler
//!   reaps it, and cleared first: a pid read here is never a reaped one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use concurrent_futures_core::TaskError;
use nix::unistd::Pid;

use crate::channel::Sender;
use crate::job::{Delivery, Job};

/// How many jobs a busy worker holds: the one it runs and the one sent
/// ahead (see the module docs). Like the jobs in CPython's call queue, a
/// job sent ahead is RUNNING: it can no longer be cancelled.
pub(crate) const DEPTH: usize = 2;

/// The largest request sent to a worker that is busy with another job. A
/// request sent ahead must fit in the worker's socket buffer: if the send
/// blocked, the handler could not read the response the busy worker is
/// trying to send, and the two would wait on each other for ever. Larger
/// requests wait until the worker is free.
pub(crate) const AHEAD_MAX: usize = 32 * 1024;

/// One line entry: a job a worker holds, or is kept for its replacement.
pub(crate) struct InFlight {
    pub(crate) job: Job,
    pub(crate) delivery: Delivery,
}

/// Everything the pool knows about one worker.
#[derive(Default)]
pub(crate) struct Slot {
    /// The worker's pid, from its connection until its handler reaps it.
    /// `terminate_workers()` signals only pids found here.
    pub(crate) pid: Option<Pid>,
    /// The worker's request channel, the only handle on it: clearing it
    /// closes the channel, and the worker exits once it has answered what
    /// it holds. That is how shutdown and retirement stop a worker.
    pub(crate) sender: Option<Sender>,
    /// The jobs it holds or is kept, oldest first (see the module docs).
    pub(crate) line: VecDeque<InFlight>,
    /// How many more jobs it may be sent before it retires
    /// (`max_tasks_per_child`; unlimited otherwise).
    pub(crate) budget: usize,
    /// Its handler waits, in its death path, for sends in progress to end:
    /// only then does a send signal the pool's `sent` condition.
    pub(crate) reaping: bool,
}

impl Slot {
    /// Whether its worker holds a job (one whose request was handed to it).
    fn busy(&self) -> bool {
        self.line
            .iter()
            .any(|held| held.delivery != Delivery::Unsent)
    }

    /// Whether another thread is sending one of its jobs.
    pub(crate) fn sending(&self) -> bool {
        self.line
            .iter()
            .any(|held| held.delivery == Delivery::Sending)
    }
}

/// Requests a thread is to send to one worker, outside the lock.
#[derive(Default)]
pub(crate) struct Sends {
    /// The worker's channel; `None` when there is nothing to send.
    pub(crate) sender: Option<Sender>,
    /// The requests, with their job ids, in order.
    pub(crate) requests: Vec<(u64, Arc<Vec<u8>>)>,
}

/// A job [`State::dispatch`] gave an idle worker: the submitting thread
/// sends it.
pub(crate) struct Dispatched {
    pub(crate) slot: usize,
    pub(crate) id: u64,
    pub(crate) request: Arc<Vec<u8>>,
    pub(crate) sender: Option<Sender>,
    /// The worker and the limit to arm the watchdog with, if the job has a
    /// time limit.
    pub(crate) arm: Option<(Pid, Duration)>,
}

/// What a worker's death leaves, decided by [`State::bury`].
pub(crate) struct Buried {
    /// The job the watchdog killed the worker for (it ran too long).
    pub(crate) timed_out: Option<Job>,
    /// The job the worker died running.
    pub(crate) lost: Option<Job>,
    /// After `terminate_workers()`: every job the worker held, and why
    /// they fail.
    pub(crate) terminated: Option<(String, Vec<Job>)>,
}

/// The pool's state: see the module docs.
pub(crate) struct State {
    /// Jobs no worker holds yet, in submission order.
    pub(crate) queue: VecDeque<Job>,
    /// One per worker.
    pub(crate) slots: Vec<Slot>,
    /// The idle slots (see the module docs), the most recently idle last:
    /// a submit takes the last.
    pub(crate) idle: Vec<usize>,
    pub(crate) shutdown: bool,
    pub(crate) broken: Option<String>,
    /// Set by `terminate_workers()` / `kill_workers()`: why the jobs their
    /// signal caught fail. No worker is started or given a job after it.
    pub(crate) terminated: Option<String>,
}

impl State {
    pub(crate) fn new(workers: usize) -> State {
        State {
            queue: VecDeque::new(),
            slots: (0..workers).map(|_| Slot::default()).collect(),
            idle: Vec::with_capacity(workers),
            shutdown: false,
            broken: None,
            terminated: None,
        }
    }

    /// Takes `job`, fresh from submit: refused if the pool is broken or
    /// shut down; given to an idle worker if there is one (the caller
    /// sends it: see [`Dispatched`]); queued otherwise, where each handler
    /// looks before its worker goes idle.
    pub(crate) fn dispatch(&mut self, job: Job) -> Result<Option<Dispatched>, TaskError> {
        if let Some(reason) = &self.broken {
            return Err(TaskError::Broken {
                reason: reason.clone(),
            });
        }
        if self.shutdown {
            return Err(TaskError::ShutDown);
        }
        let Some(slot) = self.idle.pop() else {
            self.queue.push_back(job);
            return Ok(None);
        };
        // Fresh from submit, so not cancelled: start() succeeds.
        job.sink.start();
        let s = &mut self.slots[slot];
        // An idle slot has budget left (`refill` retires it otherwise).
        s.budget -= 1;
        let dispatched = Dispatched {
            slot,
            id: job.id,
            request: Arc::clone(&job.request),
            sender: s.sender.clone(),
            arm: job.timeout.and_then(|limit| Some((s.pid?, limit))),
        };
        s.line.push_back(InFlight {
            job,
            delivery: Delivery::Sending,
        });
        Ok(Some(dispatched))
    }

    /// Records how the send of job `id` to `slot`'s worker (by the thread
    /// that dispatched it) went. The worker may have answered, and its
    /// handler taken the job, already: then there is nothing to mark.
    /// Returns whether the slot's handler waits for this (see
    /// [`Slot::reaping`]).
    pub(crate) fn mark_sent(&mut self, slot: usize, id: u64, ok: bool) -> bool {
        let s = &mut self.slots[slot];
        if let Some(held) = s
            .line
            .iter_mut()
            .find(|held| held.job.id == id && held.delivery == Delivery::Sending)
        {
            held.delivery = if ok { Delivery::Sent } else { Delivery::Failed };
        }
        s.reaping
    }

    /// Records that the handler's own send of job `id` failed (its worker
    /// is gone; the handler sees that at its next read).
    pub(crate) fn mark_failed(&mut self, slot: usize, id: u64) {
        if let Some(held) = self.slots[slot]
            .line
            .iter_mut()
            .find(|held| held.job.id == id)
        {
            held.delivery = Delivery::Failed;
        }
    }

    /// Decides what `slot`'s worker gets next and returns the requests its
    /// handler sends before it reads again (marked [`Delivery::Sent`]: the
    /// handler records a failure before it reads). `answered`: the worker
    /// has just answered a task (see the module docs: only then may it get
    /// a job ahead). With nothing to give, the slot goes idle. `retire`,
    /// a spent budget, a broken or terminated pool: the worker's channel
    /// is closed instead.
    pub(crate) fn refill(&mut self, slot: usize, answered: bool, retire: bool) -> Sends {
        let s = &mut self.slots[slot];
        let spent = s.budget == 0 && s.line.is_empty();
        if retire || spent || self.broken.is_some() || self.terminated.is_some() {
            s.sender = None;
            return Sends::default();
        }
        let mut requests = Vec::new();
        if !s.busy() {
            self.hand_over(slot, usize::MAX, &mut requests);
        }
        if answered && self.saturated(slot) {
            self.hand_over(slot, AHEAD_MAX, &mut requests);
        }
        let s = &mut self.slots[slot];
        if s.line.is_empty() {
            if self.shutdown {
                s.sender = None;
            } else {
                self.idle.push(slot);
            }
        }
        Sends {
            sender: if requests.is_empty() {
                None
            } else {
                s.sender.clone()
            },
            requests,
        }
    }

    /// Hands `slot`'s worker one more job, if its budget allows and the
    /// request is at most `max` bytes: the first kept for it, else the
    /// first queued job not cancelled.
    fn hand_over(&mut self, slot: usize, max: usize, requests: &mut Vec<(u64, Arc<Vec<u8>>)>) {
        let s = &mut self.slots[slot];
        if s.budget == 0 {
            return;
        }
        if let Some(kept) = s
            .line
            .iter_mut()
            .find(|held| held.delivery == Delivery::Unsent)
        {
            if kept.job.request.len() <= max {
                kept.delivery = Delivery::Sent;
                s.budget -= 1;
                requests.push((kept.job.id, Arc::clone(&kept.job.request)));
            }
            return;
        }
        if s.line.len() >= DEPTH {
            return;
        }
        while let Some(front) = self.queue.front() {
            if front.request.len() > max {
                return;
            }
            let job = self.queue.pop_front().expect("just looked");
            if !job.sink.start() {
                // Cancelled while queued: dropped here, never sent.
                continue;
            }
            s.budget -= 1;
            requests.push((job.id, Arc::clone(&job.request)));
            s.line.push_back(InFlight {
                job,
                delivery: Delivery::Sent,
            });
            return;
        }
    }

    /// Whether `slot`'s worker, which holds a job, may get one ahead: every
    /// other worker is connected and holds a job, and the queue still has
    /// a job for every worker.
    fn saturated(&self, slot: usize) -> bool {
        self.queue.len() >= self.slots.len()
            && self
                .slots
                .iter()
                .enumerate()
                .all(|(i, s)| i == slot || (s.sender.is_some() && s.busy()))
    }

    /// Decides the fate of the jobs of `slot`'s worker, which has died
    /// (once no send to it is in progress): `fired`, the job the watchdog
    /// killed it for. Clears the slot's worker (pid, channel, idleness).
    ///
    /// The worker took its jobs in order and answered each before it read
    /// the next: the first that reached it is the one it died running; the
    /// rest never started and are kept, `Unsent`, for the next worker. If
    /// the watchdog killed it, the job it fired for is the one that ran
    /// too long; if that job had answered just before the kill, the worker
    /// was killed through no fault of the next one, which may have started
    /// and is kept to run again (the only case where a task can run twice).
    /// Jobs `stop_task` stopped are dropped (their futures have failed
    /// already; the watchdog's record of a stop names one of them). After
    /// `terminate_workers()`, every job the worker held fails with the
    /// call's reason.
    pub(crate) fn bury(&mut self, slot: usize, fired: Option<u64>) -> Buried {
        self.idle.retain(|&i| i != slot);
        let s = &mut self.slots[slot];
        s.pid = None;
        s.sender = None;
        let mut line = std::mem::take(&mut s.line);
        line.retain(|held| !held.job.stopped);
        let take = |line: &mut VecDeque<InFlight>, at: Option<usize>| {
            at.and_then(|at| line.remove(at)).map(|held| held.job)
        };
        let at = fired.and_then(|id| line.iter().position(|held| held.job.id == id));
        let timed_out = take(&mut line, at);
        if let Some(reason) = self.terminated.clone() {
            let doomed = line.into_iter().map(|held| held.job).collect();
            return Buried {
                timed_out,
                lost: None,
                terminated: Some((reason, doomed)),
            };
        }
        let lost = if fired.is_some() {
            None
        } else {
            let at = line.iter().position(|held| held.delivery == Delivery::Sent);
            take(&mut line, at)
        };
        s.line = line
            .into_iter()
            .map(|held| InFlight {
                job: held.job,
                delivery: Delivery::Unsent,
            })
            .collect();
        Buried {
            timed_out,
            lost,
            terminated: None,
        }
    }

    /// Takes out of every slot's line the jobs whose requests were never
    /// sent (kept for a replacement worker).
    pub(crate) fn take_unsent(&mut self) -> Vec<Job> {
        let mut unsent = Vec::new();
        for s in &mut self.slots {
            let (kept, rest): (VecDeque<_>, _) = std::mem::take(&mut s.line)
                .into_iter()
                .partition(|held| held.delivery == Delivery::Unsent);
            s.line = rest;
            unsent.extend(kept.into_iter().map(|held| held.job));
        }
        unsent
    }

    /// Closes the request channel of every idle worker: each exits, and its
    /// handler, reading, sees it go.
    pub(crate) fn stop_idle(&mut self) {
        for slot in std::mem::take(&mut self.idle) {
            self.slots[slot].sender = None;
        }
    }
}
