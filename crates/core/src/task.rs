//! A task and its future in one allocation, for an executor that runs
//! closures in this process (the thread pool): [`TaskFuture::queued`]
//! makes the future and the [`QueuedTask`] that the executor's queue
//! holds, and the closure waits in the future's own allocation, after its
//! state (tokio's layout). One allocation per task, no inline hook to
//! install, and the memory goes back where it came from: the last of the
//! handles, usually the submitter's, frees it.
//!
//! # Who touches the closure
//!
//! The future's PENDING to RUNNING move (a compare-and-swap, see
//! `future.rs`) is the claim on the task: only the thread that wins it
//! takes the closure out and runs it, whether that is the worker that
//! popped the entry or a waiter running it inline. A task that is
//! CANCELLED was never claimed and never will be, so its closure is
//! untouched: the queue entry's owner (there is one, [`QueuedTask`] is not
//! `Clone`) drops it when it meets the entry. Every other outcome leaves
//! the closure alone.

use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;

use crate::cell::{CellRef, release};
use crate::future::{Body, Inner, cancel, finish, finish_panicked};
use crate::sync::{AtomicU32, ValueCell};
use crate::{TaskError, TaskFuture, catch_panic};

/// What an executor keeps with each task it queues with
/// [`TaskFuture::queued`]: the data its queue needs about the entry, and
/// the rule for inline runs.
///
/// ```
/// use concurrent_futures_core::{QueuePolicy, TaskFuture};
///
/// /// Any thread may run these tasks while it waits for them.
/// struct Anywhere;
/// impl QueuePolicy for Anywhere {
///     fn may_run_inline(&self) -> bool {
///         true
///     }
/// }
///
/// let (fut, _task) = TaskFuture::queued(Anywhere, || 6 * 7);
/// assert_eq!(fut.result(), Ok(&42)); // nobody ran it: this thread did
/// ```
pub trait QueuePolicy: Send + Sync + 'static {
    /// Whether the calling thread, about to block on this task while it is
    /// still queued, may run it right there (see
    /// [`InlineRun`](crate::InlineRun)). The thread pool allows it only in
    /// its own workers, which is how a task that waits on a queued task of
    /// the same pool cannot deadlock it.
    fn may_run_inline(&self) -> bool;
}

/// An executor's queue entry for a task made with [`TaskFuture::queued`]:
/// runs, cancels or fails the task, and tells the executor's
/// [`policy`](Self::policy) data. Dropped without any of them (a queue
/// torn down), it fails the future with [`TaskError::Broken`], so no
/// waiter hangs.
///
/// ```
/// use concurrent_futures_core::{QueuePolicy, TaskError, TaskFuture};
///
/// struct Worker;
/// impl QueuePolicy for Worker {
///     fn may_run_inline(&self) -> bool {
///         false
///     }
/// }
///
/// let (fut, task) = TaskFuture::queued(Worker, || String::from("done"));
/// std::thread::spawn(move || assert!(task.run(&|| {}))).join().unwrap();
/// assert_eq!(fut.result().map(String::as_str), Ok("done"));
///
/// let (fut, task) = TaskFuture::queued(Worker, || 1);
/// assert!(fut.cancel());
/// assert!(!task.run(&|| {})); // cancelled while queued: skipped
///
/// let (fut, task) = TaskFuture::queued(Worker, || 1);
/// drop(task);
/// assert!(matches!(fut.result(), Err(TaskError::Broken { .. })));
/// ```
#[must_use = "a queued task dropped unrun fails its future"]
pub struct QueuedTask<P: QueuePolicy> {
    /// The queue's counted reference to the task's allocation (`cell.rs`),
    /// seen as its entry; `None` only once consumed.
    cell: Option<NonNull<dyn Entry<P>>>,
}

// SAFETY: the entry is `Send + Sync` (`Entry`'s bounds), the reference is
// counted atomically, and `&QueuedTask` lends out only `&P` (`P: Sync`).
unsafe impl<P: QueuePolicy> Send for QueuedTask<P> {}
unsafe impl<P: QueuePolicy> Sync for QueuedTask<P> {}

/// What a task made with [`TaskFuture::queued`] carries after its
/// future's state: the executor's data and the closure.
struct Queued<P, F> {
    policy: P,
    /// Taken by the thread that claims the task, or dropped by the queue
    /// entry's owner once the task is cancelled (see the module docs).
    /// A `ValueCell`, so the loom models check those accesses too.
    f: ValueCell<F>,
}

// SAFETY: `f` is reached only by the one thread the module docs name (the
// claim's winner, or the entry's owner once the task is CANCELLED), and
// moving the closure there needs `F: Send`. `policy` is shared as it is.
unsafe impl<P: Sync, F: Send> Sync for Queued<P, F> {}

impl<P, F> Queued<P, F> {
    /// Takes the closure out.
    ///
    /// # Safety
    /// The caller is the thread the module docs name: it won the claim, or
    /// owns the queue entry of a CANCELLED task.
    unsafe fn take(&self) -> Option<F> {
        // SAFETY: no other thread touches `f` (the caller's contract).
        unsafe { self.f.take() }
    }

    /// Claims the task for this thread (PENDING to RUNNING on `cell`, the
    /// future this body ends) and takes its closure; `None` if it was
    /// claimed or cancelled first.
    fn claim<T, B: ?Sized>(&self, cell: &Inner<T, B>) -> Option<F> {
        if !cell.set_running() {
            return None;
        }
        // SAFETY: we won the claim just above.
        Some(unsafe { self.take() }.expect("the claim's winner finds the closure"))
    }

    /// Drops the closure of a task that was cancelled while queued (a
    /// closure's captures may panic on drop: that must not take the
    /// caller down).
    ///
    /// # Safety
    /// As for [`take`](Self::take).
    unsafe fn drop_closure(&self) {
        // SAFETY: the caller's contract.
        if let Some(f) = unsafe { self.take() } {
            let _ = catch_panic(move || drop(f));
        }
    }

    /// After a claim the entry's owner lost: drops the closure if it lost
    /// to a cancel (the other winners took it).
    ///
    /// # Safety
    /// The caller owns the queue entry of `cell`.
    unsafe fn drop_if_cancelled<T, B: ?Sized>(&self, cell: &Inner<T, B>) {
        if cell.is_cancelled() {
            // SAFETY: CANCELLED, and the caller owns the entry.
            unsafe { self.drop_closure() };
        }
    }
}

impl<T, P, F> Body<T> for Queued<P, F>
where
    T: Send + 'static,
    P: QueuePolicy,
    F: FnOnce() -> T + Send + 'static,
{
    fn run_inline(&self, cell: &CellRef<T>) -> bool {
        if !cell.is_pending() || !self.policy.may_run_inline() {
            return false;
        }
        let Some(f) = self.claim(cell) else {
            return false;
        };
        // The queue entry stays where it is; its owner will find the task
        // claimed and let it go.
        run_claimed(cell, f, &|| {});
        true
    }
}

/// Runs a claimed task and completes its future. `when_free` runs once:
/// after the task returned and before its future completes, unless
/// done-callbacks will run here first (they may wait for work that needs
/// another thread), in which case after them.
fn run_claimed<T>(cell: &CellRef<T>, f: impl FnOnce() -> T, when_free: &dyn Fn()) {
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    let has_callbacks = cell.has_callbacks();
    let complete = || match result {
        Ok(value) => finish(cell, Ok(value)),
        // The payload stays with the future (`TaskFuture::take_panic`).
        Err(payload) => finish_panicked(cell, payload),
    };
    if has_callbacks {
        complete();
        when_free();
    } else {
        when_free();
        complete();
    }
}

/// A queue entry, its future's types erased ([`QueuedTask`]'s methods).
/// `this` is the entry's own pointer, from the queue's reference, which
/// stays counted for the whole call (`QueuedTask` releases it after).
trait Entry<P>: Send + Sync {
    fn policy(&self) -> &P;
    fn refs(&self) -> &AtomicU32;
    /// # Safety
    /// See the trait: `this` points to `self`, with the queue's reference.
    unsafe fn run(&self, this: NonNull<u8>, when_free: &dyn Fn()) -> bool;
    /// # Safety
    /// As for `run`.
    unsafe fn cancel(&self, this: NonNull<u8>) -> bool;
    /// # Safety
    /// As for `run`.
    unsafe fn abort(&self, this: NonNull<u8>, err: TaskError);
}

/// The future's side of a task's allocation, lent by its queue entry: a
/// `CellRef` that is never dropped, so it releases nothing (the queue's
/// reference, still counted, keeps the allocation alive meanwhile).
///
/// # Safety
/// `this` points to an `Inner<T, Queued<P, F>>` from `CellRef::allocate`,
/// whose queue reference outlives the view.
unsafe fn view<T, P, F>(this: NonNull<u8>) -> ManuallyDrop<CellRef<T>>
where
    T: Send + 'static,
    P: QueuePolicy,
    F: FnOnce() -> T + Send + 'static,
{
    let ptr: NonNull<Inner<T, Queued<P, F>>> = this.cast();
    // SAFETY: the caller's contract; the view adopts no reference, since
    // it is never dropped.
    ManuallyDrop::new(unsafe { CellRef::from_raw(ptr) })
}

impl<T, P, F> Entry<P> for Inner<T, Queued<P, F>>
where
    T: Send + 'static,
    P: QueuePolicy,
    F: FnOnce() -> T + Send + 'static,
{
    fn policy(&self) -> &P {
        &self.body.policy
    }

    fn refs(&self) -> &AtomicU32 {
        &self.refs
    }

    unsafe fn run(&self, this: NonNull<u8>, when_free: &dyn Fn()) -> bool {
        let Some(f) = self.body.claim(self) else {
            // SAFETY: we own the entry (the trait's contract).
            unsafe { self.body.drop_if_cancelled(self) };
            when_free(); // run inline already, cancelled or failed
            return false;
        };
        // SAFETY: the trait's contract.
        let cell = unsafe { view::<T, P, F>(this) };
        run_claimed(&cell, f, when_free);
        true
    }

    unsafe fn cancel(&self, this: NonNull<u8>) -> bool {
        // SAFETY: the trait's contract.
        let cell = unsafe { view::<T, P, F>(this) };
        let cancelled = cancel(&cell);
        if cancelled {
            // SAFETY: CANCELLED, and we own the entry.
            unsafe { self.body.drop_closure() };
        }
        cancelled
    }

    unsafe fn abort(&self, this: NonNull<u8>, err: TaskError) {
        match self.body.claim(self) {
            Some(f) => {
                // SAFETY: the trait's contract.
                let cell = unsafe { view::<T, P, F>(this) };
                finish(&cell, Err(err));
                let _ = catch_panic(move || drop(f));
            }
            // SAFETY: we own the entry (the trait's contract).
            None => unsafe { self.body.drop_if_cancelled(self) },
        }
    }
}

/// Releases the queue's reference when dropped (also if a call on the
/// entry unwinds).
struct Releasing<P>(NonNull<dyn Entry<P>>);

impl<P> Drop for Releasing<P> {
    fn drop(&mut self) {
        // SAFETY: the pointer is the queue's counted reference, taken out
        // of its `QueuedTask` and released here once.
        unsafe { release(self.0, |entry| entry.refs()) };
    }
}

impl<P: QueuePolicy> QueuedTask<P> {
    /// Takes the queue's reference out, to be released when the guard goes.
    fn take(&mut self) -> Releasing<P> {
        Releasing(self.cell.take().expect("a QueuedTask is consumed once"))
    }

    /// The executor's data about this entry (what it passed to
    /// [`TaskFuture::queued`]).
    pub fn policy(&self) -> &P {
        let entry = self
            .cell
            .expect("a QueuedTask is only emptied when consumed");
        // SAFETY: our counted reference keeps the entry alive while `self`
        // is borrowed.
        unsafe { entry.as_ref() }.policy()
    }

    /// Runs the task in this thread unless it was cancelled or already
    /// claimed (run inline by a waiter); true if it ran it here. A panic in
    /// the task fails its future and stays in it
    /// ([`TaskFuture::take_panic`]). `when_free` is called exactly once:
    /// once the task returned, before its future completes (so a caller
    /// woken by the completion finds this thread free), unless
    /// done-callbacks will run here first, then after them; at once if
    /// there is nothing to run.
    pub fn run(mut self, when_free: &dyn Fn()) -> bool {
        let entry = self.take();
        // SAFETY: `entry` holds the queue's reference until after the call.
        unsafe { entry.0.as_ref().run(entry.0.cast(), when_free) }
    }

    /// Cancels the task from the executor's side (`shutdown` with
    /// `cancel_futures`); false if it had already started or finished.
    ///
    /// ```
    /// use concurrent_futures_core::{QueuePolicy, TaskFuture};
    ///
    /// struct Worker;
    /// impl QueuePolicy for Worker {
    ///     fn may_run_inline(&self) -> bool {
    ///         false
    ///     }
    /// }
    /// let (fut, task) = TaskFuture::queued(Worker, || 1);
    /// assert!(task.cancel());
    /// assert!(fut.cancelled());
    /// ```
    pub fn cancel(mut self) -> bool {
        let entry = self.take();
        // SAFETY: as in `run`.
        unsafe { entry.0.as_ref().cancel(entry.0.cast()) }
    }

    /// Fails the task's future with `err` without running it (a pool that
    /// broke), unless it was already claimed or cancelled.
    ///
    /// ```
    /// use concurrent_futures_core::{QueuePolicy, TaskError, TaskFuture};
    ///
    /// struct Worker;
    /// impl QueuePolicy for Worker {
    ///     fn may_run_inline(&self) -> bool {
    ///         false
    ///     }
    /// }
    /// let (fut, task) = TaskFuture::queued(Worker, || 1);
    /// task.abort(TaskError::ShutDown);
    /// assert_eq!(fut.result(), Err(TaskError::ShutDown));
    /// ```
    pub fn abort(mut self, err: TaskError) {
        let entry = self.take();
        // SAFETY: as in `run`.
        unsafe { entry.0.as_ref().abort(entry.0.cast(), err) }
    }
}

impl<P: QueuePolicy> Drop for QueuedTask<P> {
    fn drop(&mut self) {
        if self.cell.is_some() {
            let entry = self.take();
            // SAFETY: as in `run`.
            unsafe {
                entry.0.as_ref().abort(
                    entry.0.cast(),
                    TaskError::Broken {
                        reason: "the executor dropped this task before it ran \
                                 (its pool was torn down)"
                            .into(),
                    },
                )
            }
        }
    }
}

impl<T: Send + 'static> TaskFuture<T> {
    /// A PENDING future for the closure `f`, and the entry an executor
    /// queues for it ([`QueuedTask`]), in one allocation: the executor runs
    /// the entry in one of its threads, and a thread that blocks on the
    /// future while the task is still queued runs it inline where
    /// `policy` allows ([`QueuePolicy::may_run_inline`]).
    ///
    /// ```
    /// use concurrent_futures_core::{QueuePolicy, TaskFuture};
    /// use std::sync::mpsc;
    ///
    /// struct Worker;
    /// impl QueuePolicy for Worker {
    ///     fn may_run_inline(&self) -> bool {
    ///         false
    ///     }
    /// }
    ///
    /// // A one-thread executor.
    /// let (queue, jobs) = mpsc::channel::<concurrent_futures_core::QueuedTask<Worker>>();
    /// let worker = std::thread::spawn(move || {
    ///     for job in jobs {
    ///         job.run(&|| {});
    ///     }
    /// });
    /// let (fut, task) = TaskFuture::queued(Worker, || (1..=10).sum::<u32>());
    /// queue.send(task).unwrap();
    /// assert_eq!(fut.result(), Ok(&55));
    /// drop(queue);
    /// worker.join().unwrap();
    /// ```
    pub fn queued<P, F>(policy: P, f: F) -> (TaskFuture<T>, QueuedTask<P>)
    where
        P: QueuePolicy,
        F: FnOnce() -> T + Send + 'static,
    {
        // Two owners: the handle and the queue entry.
        let ptr = CellRef::allocate(Inner::new(
            2,
            Queued {
                policy,
                f: ValueCell::holding(f),
            },
        ));
        let entry: NonNull<dyn Entry<P>> = ptr;
        // SAFETY: the handle adopts one of the two references; the entry
        // owns the other and releases it when consumed or dropped.
        let fut = TaskFuture::from_cell(unsafe { CellRef::from_raw(ptr) });
        (fut, QueuedTask { cell: Some(entry) })
    }
}
