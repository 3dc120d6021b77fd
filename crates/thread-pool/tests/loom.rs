//! Model checks of the thread pool's sleep/wake and shutdown protocol with
//! loom: every interleaving (up to a preemption bound) of workers going to
//! sleep, submits waking them, batch steals and shutdown. A lost wake-up
//! shows up as a deadlock (every thread blocked), which loom reports.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p concurrent-futures-thread-pool --test loom --release --target-dir target/loom`
//!
//! # What is real and what is a stand-in
//!
//! The protocol itself is the pool's own code: [`Sleep`] (`src/sleep.rs`),
//! which the pool uses unchanged, built on loom's primitives here, and the
//! scheduling rules (`src/schedule.rs`: `find_job`, which takes batches
//! and wakes a sleeper after one, and `has_work`), which the pool runs on
//! its crossbeam queues and the model runs on the stand-in queues through
//! the same [`Queues`] trait.
//!
//! The queues are a stand-in. The pool's queues are crossbeam-deque, which
//! is built on `std` atomics that loom cannot see or schedule, so a model
//! cannot use it. [`Queue`] keeps what the protocol relies on and nothing
//! more: a push makes the job visible with a release store (crossbeam's
//! `Worker::push` is a release store of `back`), and `is_empty`, the look a
//! sleeping worker takes, is a lock-free acquire load of that store (as
//! crossbeam's is), so it may read a stale "empty" unless the protocol's
//! fences order it. The jobs themselves sit behind a loom `Mutex` that only
//! guards the `VecDeque`; `is_empty` never takes it. The model's workers and
//! submits call the queue and [`Sleep`] in the same order as
//! `Registry::{submit, enqueue, main_loop, sleep, shutdown}`: push then
//! `notify_one`; find nothing (the real `find_job`), then
//! `sleep_until(has_work)` (the real `has_work`). A stand-in batch steal is
//! two steps, as crossbeam's `steal_batch_and_pop`: take the jobs from the
//! source (the source looks empty from then on), then publish them in the
//! thief's deque; between the two, nobody can see them.
//! The pool's brief spinning before it sleeps is left out: it only looks
//! again, and a worker that sleeps at once is the harder case.

#![cfg(loom)]

use std::collections::VecDeque;

use concurrent_futures_thread_pool::schedule::{self, Queues};
use concurrent_futures_thread_pool::sleep::Sleep;
use crossbeam_deque::Steal;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// Checks `f` under every interleaving with at most `preemptions`
/// preemptions (`LOOM_MAX_PREEMPTIONS` overrides it). The models with one
/// worker take 3 (under two seconds each); those with two workers and the
/// main thread take 2 (a few seconds each; 3 takes minutes). Each way of
/// breaking the protocol that was tried (no look before waiting, no fence
/// in `notify_one`, a signal without the lock, no wake on a refused submit's
/// back-out or after a batch steal, no wake at shutdown) fails at least one
/// test with at most 2 preemptions (the missing fence, back-out wake and
/// batch wake with 1).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

type Job = Box<dyn FnOnce() + Send>;

/// A loom-aware stand-in for a crossbeam queue (see the module docs).
#[derive(Default)]
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    /// How many jobs are visible: written with release after a push or a
    /// take, read lock-free by `is_empty`.
    len: AtomicUsize,
}

impl Queue {
    fn push(&self, job: Job) {
        let mut jobs = self.jobs.lock().unwrap();
        jobs.push_back(job);
        self.len.store(jobs.len(), Ordering::Release);
    }

    /// Takes up to `max` jobs from the front.
    fn take(&self, max: usize) -> Vec<Job> {
        let mut jobs = self.jobs.lock().unwrap();
        let n = max.min(jobs.len());
        let taken: Vec<Job> = jobs.drain(..n).collect();
        self.len.store(jobs.len(), Ordering::Release);
        taken
    }

    fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }
}

/// The pool, modelled: the real [`Sleep`], stand-in queues.
struct Pool {
    sleep: Sleep,
    inbox: Queue,
    /// One deque per worker.
    deques: Vec<Queue>,
    /// Most jobs one batch steal moves. The pool's inbox moves one and
    /// half of the rest of its ring (up to 32), its overflow (a crossbeam
    /// `Injector`) all of it up to the end of a block, so a batch can
    /// empty the inbox; 2 covers that with the fewest jobs.
    batch: usize,
}

impl Pool {
    fn new(workers: usize) -> Arc<Pool> {
        Arc::new(Pool {
            sleep: Sleep::new(),
            inbox: Queue::default(),
            deques: (0..workers).map(|_| Queue::default()).collect(),
            batch: 2,
        })
    }

    /// `Registry::submit` + `enqueue` (from outside the pool): false if
    /// refused.
    fn submit(&self, job: Job) -> bool {
        if !self.sleep.begin_submit() {
            return false;
        }
        self.inbox.push(job);
        self.sleep.notify_one();
        self.sleep.end_submit();
        true
    }

    /// `Registry::shutdown`.
    fn shutdown(&self, wait: bool) {
        self.sleep.begin_shutdown();
        self.sleep.notify_all();
        if wait {
            self.sleep.wait_for_exit(|| 0);
        }
    }

    /// crossbeam's `steal_batch_and_pop` from `source` into worker `me`'s
    /// deque (`Registry::published_batch` is the real one, in
    /// `schedule::find_job`).
    fn steal_batch_and_pop(&self, source: &Queue, me: usize) -> Steal<Job> {
        // Step 1: the jobs leave the source (crossbeam: CAS of its head).
        let mut batch = source.take(self.batch).into_iter();
        let Some(first) = batch.next() else {
            return Steal::Empty;
        };
        // Step 2: the rest appear in our deque (crossbeam: release store
        // of its `back`). In between, no `has_work` can see them.
        let mine = &self.deques[me];
        for job in batch {
            mine.push(job);
        }
        Steal::Success(first)
    }

    /// `Registry::main_loop` (without the spinning in `Registry::sleep`).
    fn worker(&self, me: usize) {
        loop {
            match schedule::find_job(self, &self.sleep, me, &me) {
                Some(job) => job(),
                None => {
                    if !self.sleep.sleep_until(|| schedule::has_work(self)) {
                        break;
                    }
                }
            }
        }
        self.sleep.worker_exited();
    }
}

/// The stand-in queues, as the real scheduling rules see them; a worker's
/// own deque is named by its index.
impl Queues for Pool {
    type Job = Job;
    type Local = usize;

    fn pop(&self, me: &usize) -> Option<Job> {
        self.deques[*me].take(1).pop()
    }

    fn local_is_empty(&self, me: &usize) -> bool {
        self.deques[*me].is_empty()
    }

    fn steal_inbox(&self, me: &usize) -> Steal<Job> {
        self.steal_batch_and_pop(&self.inbox, *me)
    }

    fn inbox_is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    fn workers(&self) -> usize {
        self.deques.len()
    }

    fn steal_worker(&self, i: usize, me: &usize) -> Steal<Job> {
        self.steal_batch_and_pop(&self.deques[i], *me)
    }

    fn worker_is_empty(&self, i: usize) -> bool {
        self.deques[i].is_empty()
    }
}

/// Starts `n` workers, as `Registry::maybe_start_worker` does.
fn start_workers(pool: &Arc<Pool>, n: usize) -> Vec<thread::JoinHandle<()>> {
    (0..n)
        .map(|me| {
            pool.sleep.worker_starting();
            let pool = pool.clone();
            thread::spawn(move || pool.worker(me))
        })
        .collect()
}

/// A job that counts itself in `ran`.
fn job(ran: &Arc<Ran>) -> Job {
    let ran = ran.clone();
    Box::new(move || ran.one_more())
}

/// Counts jobs run; lets a thread block until enough have.
#[derive(Default)]
struct Ran {
    count: Mutex<usize>,
    cv: Condvar,
}

impl Ran {
    /// One more job has run.
    fn one_more(&self) {
        *self.count.lock().unwrap() += 1;
        self.cv.notify_all();
    }

    /// Blocks until `n` jobs have run. If a wake-up is lost, this and the
    /// sleeping workers block for ever: loom reports the deadlock.
    fn wait_for(&self, n: usize) {
        let mut count = self.count.lock().unwrap();
        while *count < n {
            count = self.cv.wait(count).unwrap();
        }
    }

    fn count(&self) -> usize {
        *self.count.lock().unwrap()
    }
}

/// A job pushed while the only worker is on its way to sleep is always
/// taken: the worker either sees it in its last look, or is woken.
#[test]
fn push_while_worker_goes_to_sleep() {
    model(3, || {
        let pool = Pool::new(1);
        let ran = Arc::new(Ran::default());
        let workers = start_workers(&pool, 1);
        assert!(pool.submit(job(&ran)));
        ran.wait_for(1);
        pool.shutdown(true);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(ran.count(), 1);
    });
}

/// Two workers, two jobs: both are taken, whoever sleeps when.
#[test]
fn two_workers_two_jobs() {
    model(2, || {
        let pool = Pool::new(2);
        let ran = Arc::new(Ran::default());
        let workers = start_workers(&pool, 2);
        assert!(pool.submit(job(&ran)));
        assert!(pool.submit(job(&ran)));
        ran.wait_for(2);
        pool.shutdown(false);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(ran.count(), 2);
    });
}

/// Shutdown while the worker sleeps (or is on its way to): it wakes and
/// exits, and `shutdown(wait)` returns.
#[test]
fn shutdown_wakes_sleeping_worker() {
    model(3, || {
        let pool = Pool::new(1);
        let workers = start_workers(&pool, 1);
        pool.shutdown(true);
        assert_eq!(pool.sleep.alive(), 0);
        for w in workers {
            w.join().unwrap();
        }
    });
}

/// A submit racing shutdown is either refused or its job runs before
/// `shutdown(wait)` returns: never accepted and stranded.
#[test]
fn submit_racing_shutdown() {
    model(3, || {
        let pool = Pool::new(1);
        let ran = Arc::new(Ran::default());
        let workers = start_workers(&pool, 1);
        let submitter = {
            let (pool, job) = (pool.clone(), job(&ran));
            thread::spawn(move || pool.submit(job))
        };
        pool.shutdown(true);
        // `shutdown(wait)` waited out the submit and the worker.
        assert_eq!(pool.sleep.alive(), 0);
        let ran_at_shutdown = ran.count();
        let accepted = submitter.join().unwrap();
        assert_eq!(ran_at_shutdown, usize::from(accepted));
        assert!(pool.inbox.is_empty(), "an accepted job was stranded");
        for w in workers {
            w.join().unwrap();
        }
    });
}

/// The batch-steal wake-up: a worker takes both queued jobs in one batch
/// and runs the first, which waits until the second has run. The second
/// must reach the other worker, even if that one looked while the batch
/// was in transit (no queue showed it) and went to sleep. Without the wake
/// in `Registry::published_batch` this deadlocks.
#[test]
fn batch_steal_wakes_a_sleeper() {
    model(2, || {
        let pool = Pool::new(2);
        let ran = Arc::new(Ran::default());
        let second = job(&ran);
        let first: Job = {
            let ran = ran.clone();
            Box::new(move || {
                ran.wait_for(1); // a long job: until the second has run
                ran.one_more();
            })
        };
        assert!(pool.submit(first));
        assert!(pool.submit(second));
        let workers = start_workers(&pool, 2);
        ran.wait_for(2);
        pool.shutdown(true);
        for w in workers {
            w.join().unwrap();
        }
    });
}
