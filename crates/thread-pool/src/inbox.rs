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
//! Letting a batch gather: a worker that takes each task the moment it is
//! pushed keeps pulling the ring's tail index, the slot being written and
//! the newest futures into its cache while the submitter writes them, and
//! each push then waits for those lines to come back: pushing and taking
//! in lockstep cost several times what either costs alone
//! (`docs/PERFORMANCE.md`, "Scaling", item 7). So a worker that
//! finishes a task and finds tasks already waiting (they arrived while it
//! ran: tasks come faster than it takes them one by one) first lets a few
//! more arrive ([`Inbox::gather`]), then takes them as a batch. It waits
//! only while the ring keeps growing, so a lone task, a trickle or a
//! submit-then-wait round trip is never held back by more than one look.
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

/// How many waiting tasks are worth taking at once: [`Inbox::gather`]
/// stops waiting once the ring holds this many.
const GATHERED: usize = 8;

/// The most looks [`Inbox::gather`] takes at the ring, so the wait is
/// bounded however the submitters pace their pushes.
const GATHER_LOOKS: usize = 8;

/// Spin-loop hints between two of those looks: a few hundred nanoseconds,
/// enough for an unhindered submitter to push several tasks.
const GATHER_PAUSES: usize = 8;

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

    /// Lets a batch gather before a worker takes from the ring (see the
    /// module docs): while the ring holds some tasks, fewer than
    /// [`GATHERED`], and grew since the last look, waits a little and looks
    /// again, at most [`GATHER_LOOKS`] times. Returns at once when the ring
    /// is empty, or when the overflow holds tasks (new pushes go there, so
    /// the ring cannot grow). Takes nothing, so a submit's wake-up is never
    /// needed here: the caller goes on to take what is there.
    pub(crate) fn gather(&self) {
        if !self.overflow.is_empty() {
            return;
        }
        let mut seen = self.ring.len();
        for _ in 0..GATHER_LOOKS {
            if seen == 0 || seen >= GATHERED {
                return;
            }
            for _ in 0..GATHER_PAUSES {
                std::hint::spin_loop();
            }
            let now = self.ring.len();
            if now <= seen {
                // Nobody is pushing: take what is there.
                return;
            }
            seen = now;
        }
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    use crossbeam_deque::{Steal, Worker};

    use super::{Inbox, RING};

    /// Everything `inbox` holds, oldest first.
    fn take_all(inbox: &Inbox<usize>) -> Vec<usize> {
        let local = Worker::new_fifo();
        let mut out = Vec::new();
        loop {
            match inbox.steal_batch_and_pop(&local) {
                Steal::Success(first) => {
                    out.push(first);
                    while let Some(next) = local.pop() {
                        out.push(next);
                    }
                }
                Steal::Retry => {}
                Steal::Empty => return out,
            }
        }
    }

    /// Gathering takes nothing and returns, whether the ring is empty,
    /// holds a few tasks nobody adds to, or fills while a submitter keeps
    /// pushing; afterwards every task comes out once, in push order,
    /// through the overflow too.
    #[test]
    fn gathering_takes_nothing_and_ends() {
        let inbox = Inbox::new();
        inbox.gather();
        assert!(inbox.is_empty());
        for i in 0..3 {
            inbox.push(i);
        }
        inbox.gather();
        assert_eq!(take_all(&inbox), [0, 1, 2]);

        let total = RING + 100;
        let stop = AtomicBool::new(false);
        let pushed = thread::scope(|s| {
            let pusher = s.spawn(|| {
                let mut n = 0;
                while n < total && !stop.load(Ordering::Relaxed) {
                    inbox.push(n);
                    n += 1;
                }
                n
            });
            for _ in 0..100 {
                inbox.gather();
            }
            stop.store(true, Ordering::Relaxed);
            pusher.join().expect("the pusher")
        });
        let got = take_all(&inbox);
        assert_eq!(got, (0..pushed).collect::<Vec<_>>());
    }
}
