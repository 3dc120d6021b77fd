//! Where tasks submitted from outside the pool's workers wait: a ring of
//! fixed size (crossbeam-queue's `ArrayQueue`) while it has room, and an
//! unbounded crossbeam-deque `Injector` behind it for the overflow.
//!
//! Why a ring first: an `Injector` allocates a block of slots every few
//! dozen pushes, in the submitting thread, and the worker that takes a
//! block's last entry frees it. That free, in another thread than the
//! allocation, takes the allocator's lock of the submitter's heap while the
//! submitter, allocating its futures, holds it: the worker blocks and is
//! woken, over and over (`docs/PERFORMANCE.md`, "Scaling"). The ring
//! allocates once, when the pool is built, so a pool that keeps up with
//! its submitters allocates and frees nothing but its tasks.
//!
//! Order: first in, first out, as near as concurrent pushes allow. A push
//! goes to the overflow while the overflow holds anything, so a task never
//! overtakes an older one that overflowed; takers empty the ring before the
//! overflow, and the ring only holds tasks older than the overflow's.

use crossbeam_deque::{Injector, Steal, Worker};
use crossbeam_queue::ArrayQueue;

/// How many tasks the ring holds before the overflow takes them.
const RING: usize = 1024;

/// The most tasks a worker moves from the ring to its own deque at once,
/// besides the one it runs (as crossbeam's batch steals do).
const MAX_BATCH: usize = 32;

/// The pool's queue for submissions from outside its workers.
pub(crate) struct Inbox<J> {
    ring: ArrayQueue<J>,
    overflow: Injector<J>,
}

impl<J> Inbox<J> {
    pub(crate) fn new() -> Inbox<J> {
        Inbox {
            ring: ArrayQueue::new(RING),
            overflow: Injector::new(),
        }
    }

    /// Queues `job` (see the module docs for the order).
    pub(crate) fn push(&self, job: J) {
        if self.overflow.is_empty() {
            match self.ring.push(job) {
                Ok(()) => {}
                Err(job) => self.overflow.push(job),
            }
        } else {
            self.overflow.push(job);
        }
    }

    /// Takes the oldest task, and moves some of the next ones (up to half
    /// of what the ring holds, at most [`MAX_BATCH`]) into `local`, where
    /// the other workers can steal them: one visit to the shared queue
    /// serves several tasks.
    pub(crate) fn steal_batch_and_pop(&self, local: &Worker<J>) -> Steal<J> {
        let Some(first) = self.ring.pop() else {
            return self.overflow.steal_batch_and_pop(local);
        };
        let more = (self.ring.len() / 2).min(MAX_BATCH);
        for _ in 0..more {
            match self.ring.pop() {
                Some(job) => local.push(job),
                None => break,
            }
        }
        Steal::Success(first)
    }

    /// Takes the oldest task (for draining at shutdown).
    pub(crate) fn steal(&self) -> Steal<J> {
        match self.ring.pop() {
            Some(job) => Steal::Success(job),
            None => self.overflow.steal(),
        }
    }

    /// Whether no task waits here (a snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty() && self.overflow.is_empty()
    }
}
