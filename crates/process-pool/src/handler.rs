//! The thread that owns one worker slot: starts the worker, gives it jobs,
//! notices its death, reaps it and starts the next.
//!
//! A handler owns its worker's response channel and, between jobs, blocks
//! *reading it*: an idle worker sends nothing, so that read returns only
//! after a job was sent to it, or when the worker is gone (the pool's
//! death watch shuts the socket down when the process dies, whatever its
//! descendants hold open). On an answer the handler takes the answered
//! job out of the slot's line and refills it in one critical section
//! (see `slot.rs`), sends what the refill gave, and only then completes
//! the answered job's future, so the worker is busy again before any
//! done-callback runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use concurrent_futures_core::TaskError;
use concurrent_futures_task_wire::wire::{self, Outcome, Response};
use nix::unistd::Pid;

use concurrent_futures_task_wire::client::{outcome_into, protocol_error, response_id};

use crate::job::{Delivery, fail_all};
use crate::pool::Shared;
use crate::process::{self, Started, Worker};
use crate::slot::{Sends, State};

/// See the module docs.
pub(crate) struct Handler {
    shared: Arc<Shared>,
    slot: usize,
}

impl Handler {
    pub(crate) fn new(shared: Arc<Shared>, slot: usize) -> Handler {
        Handler { shared, slot }
    }

    /// Starts workers (the first one forked already, with `Fork`) and
    /// serves each until the pool has no more work for this slot.
    pub(crate) fn run(self, forked: Option<Started>) {
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

    /// Whether to start a(nother) worker: not when the pool is broken or
    /// terminated (a job kept for this slot then fails), nor when it is
    /// shut down with nothing left to run.
    fn has_work_ahead(&self) -> bool {
        let mut state = self.shared.lock();
        if !state.slots[self.slot].line.is_empty() {
            // Only jobs kept from a dead worker are here.
            if let Some(reason) = state.broken.clone().or(state.terminated.clone()) {
                let kept = std::mem::take(&mut state.slots[self.slot].line);
                drop(state);
                fail_all(kept.into_iter().map(|held| held.job), &reason);
                return false;
            }
            return true;
        }
        state.broken.is_none()
            && state.terminated.is_none()
            && !(state.shutdown && state.queue.is_empty())
    }

    /// Connects a started worker and runs the initializer in it.
    fn connect(&self, started: Started) -> Result<Worker, String> {
        let mut worker = self.shared.launcher.connect(started)?;
        // Watched from here on, the initializer included: a death is seen
        // even if the worker's socket outlives it in a process it forked.
        if let Some(pidfd) = worker.pidfd.take()
            && let Err(e) = self.shared.deaths.watch(pidfd, worker.responses.socket())
        {
            let pid = worker.pid;
            drop(worker);
            process::kill_and_reap(pid);
            return Err(format!("cannot watch the worker {pid}: {e}"));
        }
        self.shared.lock().slots[self.slot].pid = Some(worker.pid);
        let Some(init) = &self.shared.initializer else {
            return Ok(worker);
        };
        let mut request = Vec::with_capacity(init.arg.len() + 64);
        wire::request_header(&mut request, wire::REQ_INIT, 0, init.name);
        request.extend_from_slice(&init.arg);
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

    /// Kills the worker if asked, and reaps it. Its pid leaves the slot
    /// first: `terminate_workers()` signals, under the state lock, only
    /// the pids found there, so never one reaped (and maybe reused).
    fn reap(&self, pid: Pid, kill: bool) -> process::Death {
        self.shared.lock().slots[self.slot].pid = None;
        if kill {
            process::kill_and_reap(pid)
        } else {
            process::reap(pid)
        }
    }

    /// Arms the watchdog with the job this slot's worker runs (the head of
    /// its line, once handed over), if it has a time limit, or kills the
    /// worker if `stop_task` stopped that job; else stops watching. Under
    /// the state lock, which `Shared::enqueue` also holds to arm.
    fn watch_head(&self, state: &State, pid: Pid) {
        if !self.shared.limits_used.load(Ordering::Relaxed) {
            return;
        }
        let watchdog = &self.shared.watchdog;
        match state.slots[self.slot].line.front() {
            Some(head) if matches!(head.delivery, Delivery::Sending | Delivery::Sent) => {
                if head.job.stopped {
                    // Sent ahead when `stop_task` stopped it: the worker
                    // runs it now, so it goes.
                    watchdog.fire(self.slot, head.job.id, pid);
                } else if let Some(limit) = head.job.timeout {
                    watchdog.arm(self.slot, head.job.id, pid, limit);
                } else {
                    watchdog.unwatch(self.slot);
                }
            }
            _ => watchdog.unwatch(self.slot),
        }
    }

    /// Sends what a refill gave, outside the lock. A failed send means the
    /// worker is gone: the job is marked so before the next read, which
    /// then sees the end of the channel.
    fn send(&self, sends: Sends) {
        let Some(sender) = sends.sender else {
            return;
        };
        let mut failed = false;
        for (id, request) in sends.requests {
            if failed || sender.send(&request).is_err() {
                failed = true;
                self.shared.lock().mark_failed(self.slot, id);
            }
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
        let first = {
            let mut state = self.shared.lock();
            let slot = &mut state.slots[self.slot];
            slot.sender = Some(requests);
            slot.budget = self.shared.max_tasks_per_child.unwrap_or(usize::MAX);
            let sends = state.refill(self.slot, false, false);
            self.watch_head(&state, pid);
            sends
        };
        self.send(first);
        loop {
            let Ok(bytes) = responses.recv() else {
                // The worker is gone: it died, or exited after its channel
                // was closed.
                drop(responses);
                self.bury(pid);
                return;
            };
            let response = wire::decode_response(bytes);
            let mut state = self.shared.lock();
            let answered = state.slots[self.slot].line.pop_front().map(|held| held.job);
            let in_protocol = matches!(
                (&answered, &response),
                (Some(job), Ok(r)) if response_id(r) == Some(job.id)
            );
            // Out of protocol: this worker is not trusted with more.
            let sends = state.refill(self.slot, in_protocol, !in_protocol);
            self.watch_head(&state, pid);
            drop(state);
            if !in_protocol {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            // The next jobs go out before this one's future completes
            // (and its callbacks run).
            self.send(sends);
            match (answered, response) {
                (Some(job), Ok(response)) if in_protocol => job.sink.deliver(response),
                (Some(job), Ok(_)) => job
                    .sink
                    .fail(protocol_error("a response to another request")),
                (Some(job), Err(e)) => job.sink.fail(protocol_error(&e.to_string())),
                // An answer nobody asked for.
                (None, _) => {}
            }
        }
    }

    /// The death path: waits out sends in progress to learn which jobs
    /// reached the worker, decides their fate (`State::bury`), reaps the
    /// worker and fails the jobs that die with it.
    fn bury(&self, pid: Pid) {
        let mut state = self.shared.lock();
        state.slots[self.slot].reaping = true;
        while state.slots[self.slot].sending() {
            state = self
                .shared
                .sent
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.slots[self.slot].reaping = false;
        // Before the reap: no kill of this pid can follow.
        let fired = self.shared.watchdog.disarm(self.slot);
        let buried = state.bury(self.slot, fired);
        drop(state);
        let death = process::reap(pid);
        if let Some(job) = buried.timed_out {
            job.sink.fail(TaskError::TaskTimedOut {
                limit: job.timeout.unwrap_or_default(),
                pid: pid.as_raw() as u32,
            });
        }
        if let Some(job) = buried.lost {
            job.sink.fail(TaskError::WorkerDied {
                pid: pid.as_raw() as u32,
                signal: death.signal,
                exit_code: death.exit_code,
            });
        }
        if let Some((reason, doomed)) = buried.terminated {
            fail_all(doomed, &reason);
        }
    }
}
