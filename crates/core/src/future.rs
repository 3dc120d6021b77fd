//! [`TaskFuture`], the handle to a submitted task, and [`Completer`], the
//! executor's side of it.
//!
//! # The state machine
//!
//! ```text
//! PENDING ──set_running──▶ RUNNING ──complete──▶ FINISHED(ok | err)
//!    │ └──────────────────complete─────────────▶ FINISHED
//!    └──cancel──▶ CANCELLED
//! ```
//!
//! Every transition but two happens under the future's one mutex
//! (`Inner::core`). The first exception is PENDING to RUNNING
//! (`set_running`), the only move out of PENDING that is not into a done
//! state: it is a compare-and-swap on `Inner::status` with no lock. The
//! other writers of `status` keep it correct: `cancel` leaves PENDING by a
//! compare-and-swap too (under the lock), so exactly one of the two wins;
//! adding the HAS_CALLBACKS and WATCHED flags is a `fetch_or`, which cannot
//! undo a concurrent RUNNING; and the stores of a done state happen only
//! after the state is done, which `set_running` then leaves alone. The
//! second is the completion of a RUNNING future that nobody watches (see
//! "Completing without the lock" below).
//!
//! A transition into a done state (FINISHED or CANCELLED) otherwise, in
//! this order:
//! 1. writes the value (FINISHED only) and the new state, and takes the
//!    registered waiters, wakers, callbacks and inline hook, under the lock;
//! 2. wakes the threads blocked in `result()` (condvar), releases the lock;
//! 3. tells every `wait`/`as_completed` waiter and wakes every async task;
//! 4. runs the done-callbacks with no lock held, in the completing thread;
//! 5. marks the future *settled* (all callbacks have run).
//!
//! A done state is final: nothing moves a future out of it.
//!
//! # Completing without the lock
//!
//! From RUNNING only one party can finish the future (the completer, or
//! the thread that claimed a queued task): `cancel` needs PENDING. So when
//! a RUNNING future has no flag set, nobody waits on it in a way that needs
//! the lock, and its completion writes the value and moves RUNNING to
//! FINISHED and SETTLED with one compare-and-swap (Release, which publishes
//! the value). Whoever registers something a completion must act on does
//! it under the lock and sets WATCHED (or HAS_CALLBACKS) with a `fetch_or`
//! *first*, deciding on the state that the `fetch_or` returns. The two
//! read-modify-writes of the one status word are ordered: if the
//! registration came first, the compare-and-swap fails and the completion
//! takes the lock and publishes as above (the value already written); if
//! the completion came first, the registration sees a done state and does
//! not wait. The loom models `running_completion_vs_*` check it.

use std::any::Any;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::TaskError;
pub(crate) use crate::cell::CellRef;
use crate::sync::{self, Arc, AtomicU32, Condvar, Mutex, MutexGuard, Ordering, ValueCell};
use crate::wait::{Outcome, Waitable, Waiter};

/// The observable state of a [`TaskFuture`], as Python names them.
///
/// ```
/// use concurrent_futures_core::{FutureState, TaskFuture};
///
/// let (fut, completer) = TaskFuture::<i32>::pending();
/// assert_eq!(fut.state(), FutureState::Pending);
/// assert!(completer.set_running());
/// assert_eq!(fut.state(), FutureState::Running);
/// completer.complete(Ok(7));
/// assert_eq!(fut.state(), FutureState::Finished);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FutureState {
    /// Submitted, not started; `cancel()` succeeds.
    Pending,
    /// A worker is running the task; it can no longer be cancelled.
    Running,
    /// Cancelled before it started. Final.
    Cancelled,
    /// The task ended with a value or an error. Final.
    Finished,
}

// `Inner::status`: the state in the low bits, plus the flags below. 32
// bits, which is all it needs, so it shares a word with the condvar's:
// every future carries it.
type Status = u32;
type AtomicStatus = AtomicU32;
const PENDING: Status = 0;
const RUNNING: Status = 1;
const CANCELLED: Status = 2;
const FINISHED_OK: Status = 3;
const FINISHED_ERR: Status = 4;
const STATE_MASK: Status = 7;
/// Done, and every callback registered before completion has run.
const SETTLED: Status = 8;
/// At least one done-callback was added while the future was not done.
const HAS_CALLBACKS: Status = 16;
/// Someone registered, under the lock, what a completion has to act on (a
/// thread blocked in `result()`, a `wait`/`as_completed` waiter, an async
/// waker, a callback): a completion from RUNNING then takes the lock. See
/// "Completing without the lock" in the module docs.
const WATCHED: Status = 32;
/// A thread is blocked on `Inner::cond`, or was since the last store of a
/// done state: set under the lock just before waiting (after WATCHED), read
/// under the lock by the stores of a done state, which signal the condvar
/// only then and clear the flag. So the uncontended completion makes no
/// syscall, and a waiter that timed out costs one spurious signal at most.
const BLOCKED: Status = 64;

fn is_done(status: Status) -> bool {
    status & STATE_MASK >= CANCELLED
}

fn state_of(status: Status) -> FutureState {
    match status & STATE_MASK {
        PENDING => FutureState::Pending,
        RUNNING => FutureState::Running,
        CANCELLED => FutureState::Cancelled,
        _ => FutureState::Finished,
    }
}

/// How often a thread about to block in `result()` first looks again (a
/// short spin, then a few yields): a task that is about to finish then
/// costs no sleep and wake-up, which is most of an idle round trip.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 64;
/// Under loom, every look is a branch of the model: no spinning.
#[cfg(loom)]
const SPIN_ROUNDS: u32 = 0;

/// Something that can run a queued task in the calling thread, installed by
/// an executor with [`Completer::set_inline_hook`].
///
/// ```
/// use concurrent_futures_core::{Completer, InlineRun, TaskFuture};
/// use std::sync::{Arc, Mutex};
///
/// // A toy executor's queued job that any waiting thread may run.
/// struct Job(Mutex<Option<Completer<u32>>>);
/// impl InlineRun for Job {
///     fn try_run_inline(&self) -> bool {
///         match self.0.lock().unwrap().take() {
///             Some(c) => c.set_running() && c.complete(Ok(7)),
///             None => false,
///         }
///     }
/// }
///
/// let (fut, completer) = TaskFuture::pending();
/// let job = Arc::new(Job(Mutex::new(None)));
/// completer.set_inline_hook(job.clone());
/// *job.0.lock().unwrap() = Some(completer);
/// assert_eq!(fut.result(), Ok(&7)); // ran inline, in this thread
/// ```
///
/// When a thread blocks on a future that is still queued, the future asks
/// its hook to run the task right there. The hook decides whether that is
/// allowed. (An executor whose tasks are closures in this process does
/// better with [`TaskFuture::queued`], which keeps the task in the
/// future's own allocation and asks its
/// [`QueuePolicy`](crate::QueuePolicy) instead: that is how the thread
/// pool lets only its own workers run the very task they await.)
pub trait InlineRun: Send + Sync {
    /// Runs the task in the calling thread if this thread may and the task
    /// has not been claimed yet; returns true if it ran it.
    fn try_run_inline(&self) -> bool;

    /// How long a thread about to block on this task keeps looking for the
    /// result first, yielding the CPU between looks (bounded by its
    /// timeout, if it has one). For an executor whose tasks finish in
    /// another process, where a short task's result arrives within tens
    /// of microseconds: a waiter still awake takes it without a sleep and
    /// a wake-up, which are most of such a round trip. The default, zero,
    /// keeps only the core's own brief spin.
    ///
    /// ```
    /// use concurrent_futures_core::InlineRun;
    /// use std::time::Duration;
    ///
    /// struct Remote;
    /// impl InlineRun for Remote {
    ///     fn try_run_inline(&self) -> bool {
    ///         false // runs elsewhere: nothing to run here
    ///     }
    ///     fn spin_before_blocking(&self) -> Duration {
    ///         Duration::from_micros(100)
    ///     }
    /// }
    /// assert_eq!(Remote.spin_before_blocking(), Duration::from_micros(100));
    /// ```
    fn spin_before_blocking(&self) -> Duration {
        Duration::ZERO
    }
}

/// Looks at `ready` until it holds or `until` passes, yielding the CPU
/// every few looks; returns whether it holds. No spinning under loom,
/// where every look would be a branch of the model.
fn spin_until(until: Instant, ready: impl Fn() -> bool) -> bool {
    if cfg!(loom) {
        return ready();
    }
    let mut looks = 0_u32;
    loop {
        if ready() {
            return true;
        }
        looks = looks.wrapping_add(1);
        if looks.is_multiple_of(32) {
            if Instant::now() >= until {
                return false;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

type Callback<T> = Box<dyn FnOnce(&TaskFuture<T>) + Send + 'static>;

struct Core<T> {
    /// Callbacks, waiters, wakers and an inline hook: boxed, since most
    /// futures have none.
    extras: Option<Box<Extras<T>>>,
}

struct Extras<T> {
    callbacks: Vec<Callback<T>>,
    waiters: Vec<(Arc<Waiter>, usize)>,
    wakers: Vec<Waker>,
    /// A panicked task's payload, until [`TaskFuture::take_panic`].
    panic: Option<Box<dyn Any + Send>>,
    /// The executor's inline hook (see [`InlineRun`]), held weakly: the
    /// executor owns it, and its state may own this future's `Completer`;
    /// a strong hook would then be a cycle (future, hook, completer,
    /// future) that keeps a task the executor dropped alive, so its
    /// completer's complete-on-drop could never fire. Dropped on
    /// completion.
    inline: Option<std::sync::Weak<dyn InlineRun>>,
}

impl<T> Core<T> {
    fn extras(&mut self) -> &mut Extras<T> {
        self.extras.get_or_insert_with(|| {
            Box::new(Extras {
                callbacks: Vec::new(),
                waiters: Vec::new(),
                wakers: Vec::new(),
                panic: None,
                inline: None,
            })
        })
    }
}

/// A future's shared state: one allocation, shared by its handles, its
/// completer and, for a task made with [`TaskFuture::queued`], the
/// executor's queue entry. `B` is what follows the state in the same
/// allocation: nothing ([`NoBody`]) for a future made with
/// [`TaskFuture::pending`], the task itself for a queued one
/// (`task.rs`). Handles see it as `dyn Body<T>`.
///
/// Counted by [`CellRef`] (`cell.rs`), with the count in `refs`.
pub(crate) struct Inner<T, B: ?Sized = dyn Body<T>> {
    /// References to this allocation (see `cell.rs`). 32 bits, as
    /// `handles`, which never exceeds it: the two share a word, and
    /// `CellRef::clone` aborts long before either could wrap.
    pub(crate) refs: AtomicU32,
    core: Mutex<Core<T>>,
    cond: Condvar,
    /// The state and its flags. Written only with `core` locked, with
    /// Release (but see the module docs for the two exceptions); read with
    /// Acquire by anyone, lock or not. FINISHED is stored after the value
    /// was written, so a reader that sees it may read the value.
    status: AtomicStatus,
    /// Written once, under `core`'s lock, before the state becomes FINISHED;
    /// read (through `&T`) only after a reader has seen FINISHED in
    /// `status` (Acquire); emptied only by `into_result`, which proves that it owns the
    /// last handle and that every callback has run. See `TaskFuture::read`.
    /// The error is boxed: a `TaskError` is 56 bytes and rare, and every
    /// future carries the cell.
    value: ValueCell<Result<T, Box<TaskError>>>,
    /// Live `TaskFuture` handles (not the `Completer`).
    handles: AtomicU32,
    /// The rest of the allocation (see above). Last: it may be unsized.
    pub(crate) body: B,
}

/// What a future's allocation carries after its state (see [`Inner`]).
pub(crate) trait Body<T>: Send + Sync {
    /// Runs the queued task in the calling thread, if its executor lets
    /// this thread and nobody has claimed the task yet; true if it ran it
    /// (see [`InlineRun`]). `cell` is the allocation this body ends.
    fn run_inline(&self, cell: &CellRef<T>) -> bool;
}

/// The body of a future made with [`TaskFuture::pending`]: nothing. Its
/// executor may still install an inline hook ([`Completer::set_inline_hook`]).
pub(crate) struct NoBody;

impl<T> Body<T> for NoBody {
    fn run_inline(&self, _cell: &CellRef<T>) -> bool {
        false
    }
}

impl<T, B> Inner<T, B> {
    /// A PENDING future's state, followed by `body`, with `owners`
    /// references (see `cell.rs`).
    pub(crate) fn new(owners: u32, body: B) -> Inner<T, B> {
        Inner {
            refs: AtomicU32::new(owners),
            core: Mutex::new(Core { extras: None }),
            cond: Condvar::new(),
            status: AtomicStatus::new(PENDING),
            value: ValueCell::new(),
            handles: AtomicU32::new(1),
            body,
        }
    }
}

impl<T, B: ?Sized> Inner<T, B> {
    /// Moves the future from PENDING to RUNNING: the claim on the task.
    /// False if it is not PENDING (cancelled, or already claimed).
    pub(crate) fn set_running(&self) -> bool {
        // No lock: a compare-and-swap out of PENDING, which `cancel` also
        // leaves only by a compare-and-swap (see the module docs).
        let mut status = self.status.load(Ordering::Relaxed);
        while status & STATE_MASK == PENDING {
            match self.status.compare_exchange_weak(
                status,
                (status & !STATE_MASK) | RUNNING,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => status = now,
            }
        }
        false
    }

    /// Whether the future is PENDING (a snapshot).
    pub(crate) fn is_pending(&self) -> bool {
        self.status.load(Ordering::Acquire) & STATE_MASK == PENDING
    }

    /// Whether the future is CANCELLED (final).
    pub(crate) fn is_cancelled(&self) -> bool {
        self.status.load(Ordering::Acquire) & STATE_MASK == CANCELLED
    }

    /// True if done-callbacks wait to run in the completing thread.
    pub(crate) fn has_callbacks(&self) -> bool {
        self.status.load(Ordering::Acquire) & HAS_CALLBACKS != 0
    }
}

// SAFETY: `value` is an UnsafeCell shared between the completing thread,
// which moves a `T` in through the `Completer` (so `T: Send`), and the
// threads that hold `TaskFuture` handles, which read `&T` or move it out.
// All mutation of the cell is serialised by the rules on `Inner::value`.
// Reading `&T` in several threads at once needs `T: Sync`, and that is
// enforced on the handles, not here: `TaskFuture<T>` is `Send` and `Sync`
// only where `T: Send + Sync` (below), and a done-callback, which gets a
// handle in the completing thread, can be attached only where `T: Sync`.
// So where `T` is not `Sync`, every handle, and every `&T`, stays in the
// one thread that made the future, while the completer crosses to a worker.
// The body is shared as it is (`Body` asks `Send + Sync` of it).
unsafe impl<T: Send, B: ?Sized + Send + Sync> Send for Inner<T, B> {}
unsafe impl<T: Send, B: ?Sized + Send + Sync> Sync for Inner<T, B> {}

/// A handle to the eventual result of a task: Python's
/// `concurrent.futures.Future`.
///
/// Named `TaskFuture` so it does not shadow [`std::future::Future`]; it is
/// nonetheless awaitable (`fut.await` in any async runtime, through
/// [`IntoFuture`]).
///
/// The handle is cheap to clone (one reference count) and every clone
/// refers to the same task. The value is stored once: [`result`](Self::result)
/// lends it out as `&T`, any number of times and from any number of threads,
/// without `T: Clone`; [`into_result`](Self::into_result) moves it out.
///
/// ```
/// use concurrent_futures_core::{TaskError, TaskFuture};
/// use std::thread;
///
/// let (fut, completer) = TaskFuture::pending();
/// let reader = fut.clone();
/// let t = thread::spawn(move || reader.result().map(|s: &String| s.len()));
/// completer.complete(Ok(String::from("hello")));
/// assert_eq!(t.join().unwrap(), Ok(5));
/// assert_eq!(fut.result().map(String::as_str), Ok("hello"));
/// assert_eq!(fut.into_result(), Ok(String::from("hello")));
/// ```
///
/// A result that is `Send` but not `Sync` (a `Cell`, a `RefCell`, an
/// `mpsc::Receiver`) still crosses from the worker that computes it, but
/// its handles stay in the thread that made the future: they are `Send`
/// and `Sync` only where `T` is both, and a done-callback, which runs in
/// the completing thread, needs `T: Sync`.
///
/// ```compile_fail
/// use std::cell::Cell;
/// use concurrent_futures_core::TaskFuture;
///
/// let (fut, _completer) = TaskFuture::<Cell<u8>>::pending();
/// std::thread::spawn(move || fut.result().map(Cell::get)); // not Send
/// ```
///
/// ```compile_fail
/// use std::cell::Cell;
/// use concurrent_futures_core::TaskFuture;
///
/// let (fut, _completer) = TaskFuture::<Cell<u8>>::pending();
/// fut.add_done_callback(|f| drop(f.result())); // needs T: Sync
/// ```
///
/// ```
/// use std::cell::Cell;
/// use concurrent_futures_core::TaskFuture;
///
/// let (fut, completer) = TaskFuture::<Cell<u8>>::pending();
/// // The completer may cross to a worker thread.
/// std::thread::spawn(move || completer.complete(Ok(Cell::new(7)))).join().unwrap();
/// let cell = fut.result().unwrap();
/// cell.set(cell.get() + 1);
/// assert_eq!(fut.into_result().map(Cell::into_inner), Ok(8));
/// ```
pub struct TaskFuture<T> {
    inner: CellRef<T>,
    /// Not `Send` nor `Sync` by default: see the impls below.
    _handles: PhantomData<*const T>,
}

// SAFETY: a handle lends `&T` in whatever thread holds it, and its clones
// lend the same `T`: moving or sharing handles between threads needs
// `T: Send + Sync` (see `Inner`'s impls).
unsafe impl<T: Send + Sync> Send for TaskFuture<T> {}
unsafe impl<T: Send + Sync> Sync for TaskFuture<T> {}

/// The executor's side of a [`TaskFuture`]: it moves the future to RUNNING
/// and completes it. Python's `set_running_or_notify_cancel`, `set_result`
/// and `set_exception`.
///
/// A `Completer` dropped without completing its future completes it with
/// [`TaskError::Broken`], so no waiter can hang on a task that an executor
/// lost.
///
/// ```
/// use concurrent_futures_core::{TaskError, TaskFuture};
///
/// let (fut, completer) = TaskFuture::<u8>::pending();
/// drop(completer);
/// assert!(matches!(fut.result(), Err(TaskError::Broken { .. })));
/// ```
pub struct Completer<T> {
    inner: Option<CellRef<T>>,
}

impl<T> TaskFuture<T> {
    /// Makes a PENDING future and the completer that will finish it.
    ///
    /// This is how an executor creates futures; it is also how tests build
    /// futures in any state.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    ///
    /// let (fut, completer) = TaskFuture::pending();
    /// assert!(!fut.done());
    /// completer.complete(Ok("done"));
    /// assert_eq!(fut.result(), Ok(&"done"));
    /// ```
    pub fn pending() -> (TaskFuture<T>, Completer<T>) {
        // Two owners: the handle and the completer.
        let ptr: NonNull<Inner<T>> = CellRef::allocate(Inner::new(2, NoBody));
        // SAFETY: each adopts one of the two references, once.
        unsafe {
            (
                TaskFuture::from_cell(CellRef::from_raw(ptr)),
                Completer {
                    inner: Some(CellRef::from_raw(ptr)),
                },
            )
        }
    }

    /// The first handle on a new future's allocation.
    pub(crate) fn from_cell(inner: CellRef<T>) -> TaskFuture<T> {
        TaskFuture {
            inner,
            _handles: PhantomData,
        }
    }

    /// A future that is already FINISHED with `value`.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// assert_eq!(TaskFuture::ready(42).result(), Ok(&42));
    /// ```
    pub fn ready(value: T) -> TaskFuture<T> {
        let (fut, completer) = TaskFuture::pending();
        completer.complete(Ok(value));
        fut
    }

    /// A future that is already FINISHED with the error `err`.
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    /// assert_eq!(TaskFuture::<()>::failed(TaskError::ShutDown).result(), Err(TaskError::ShutDown));
    /// ```
    pub fn failed(err: TaskError) -> TaskFuture<T> {
        let (fut, completer) = TaskFuture::pending();
        completer.complete(Err(err));
        fut
    }

    fn lock(&self) -> MutexGuard<'_, Core<T>> {
        sync::lock(&self.inner.core)
    }

    fn status(&self) -> Status {
        self.inner.status.load(Ordering::Acquire)
    }

    /// Sets WATCHED and returns the status with it; call with the lock
    /// held, before deciding to wait (see "Completing without the lock").
    fn watch(&self) -> Status {
        self.inner.status.fetch_or(WATCHED, Ordering::AcqRel) | WATCHED
    }

    /// The current state.
    pub fn state(&self) -> FutureState {
        state_of(self.status())
    }

    /// True once the future is FINISHED or CANCELLED.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, completer) = TaskFuture::pending();
    /// assert!(!fut.done());
    /// completer.complete(Ok(1));
    /// assert!(fut.done());
    /// ```
    pub fn done(&self) -> bool {
        is_done(self.status())
    }

    /// True while a worker runs the task.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, completer) = TaskFuture::<()>::pending();
    /// completer.set_running();
    /// assert!(fut.running());
    /// ```
    pub fn running(&self) -> bool {
        self.state() == FutureState::Running
    }

    /// True if the future was cancelled.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, _completer) = TaskFuture::<()>::pending();
    /// fut.cancel();
    /// assert!(fut.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.state() == FutureState::Cancelled
    }

    /// Cancels the task if it has not started.
    ///
    /// Returns true if the future is now cancelled (also when it already
    /// was), false if the task is running or finished, which cannot be
    /// undone. A successful cancel wakes every waiter, counts as done for
    /// [`wait`](crate::wait()) and [`as_completed`](crate::as_completed), and runs the
    /// done-callbacks in the calling thread.
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    ///
    /// let (fut, completer) = TaskFuture::<i32>::pending();
    /// assert!(fut.cancel());
    /// assert!(!completer.set_running()); // the executor skips the task
    /// assert_eq!(fut.result(), Err(TaskError::Cancelled));
    /// ```
    pub fn cancel(&self) -> bool {
        cancel(&self.inner)
    }

    /// Blocks until the task is done and lends out its value.
    ///
    /// Errors: [`TaskError::Cancelled`] if it was cancelled, or the task's
    /// own error (a panic, a broken executor, …).
    ///
    /// Called from a worker thread of the thread pool on a task of the same
    /// pool that is still queued, it runs that task right here instead of
    /// waiting for a free worker, so it cannot deadlock the pool.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let fut = TaskFuture::ready(vec![1, 2, 3]);
    /// assert_eq!(fut.result().map(|v| v.len()), Ok(3));
    /// assert_eq!(fut.result().map(|v| v[0]), Ok(1)); // as often as you like
    /// ```
    pub fn result(&self) -> Result<&T, TaskError> {
        self.wait_until(None, false);
        self.read()
    }

    /// Like [`result`](Self::result), but gives up after `timeout` with
    /// [`TaskError::TimedOut`]. A zero timeout polls.
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    /// use std::time::Duration;
    ///
    /// let (fut, _completer) = TaskFuture::<i32>::pending();
    /// assert!(matches!(fut.result_timeout(Duration::ZERO), Err(TaskError::TimedOut { .. })));
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<&T, TaskError> {
        if self.wait_until(deadline_after(timeout), false) {
            self.read()
        } else {
            Err(timed_out(timeout))
        }
    }

    /// Blocks until the task is done and gives its error, if it failed.
    ///
    /// `Ok(None)`: it succeeded. `Ok(Some(e))`: it failed with `e`.
    /// `Err(TaskError::Cancelled)`: it was cancelled (as Python's
    /// `exception()` raises `CancelledError`).
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    /// let fut = TaskFuture::<()>::failed(TaskError::Panicked { message: "x".into() });
    /// assert_eq!(fut.exception(), Ok(Some(TaskError::Panicked { message: "x".into() })));
    /// assert_eq!(TaskFuture::ready(1).exception(), Ok(None));
    /// ```
    pub fn exception(&self) -> Result<Option<TaskError>, TaskError> {
        self.wait_until(None, false);
        Self::split(self.read())
    }

    /// Like [`exception`](Self::exception), giving up after `timeout` with
    /// [`TaskError::TimedOut`].
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// use std::time::Duration;
    /// assert_eq!(TaskFuture::ready(1).exception_timeout(Duration::ZERO), Ok(None));
    /// ```
    pub fn exception_timeout(&self, timeout: Duration) -> Result<Option<TaskError>, TaskError> {
        if self.wait_until(deadline_after(timeout), false) {
            Self::split(self.read())
        } else {
            Err(timed_out(timeout))
        }
    }

    fn split(r: Result<&T, TaskError>) -> Result<Option<TaskError>, TaskError> {
        match r {
            Ok(_) => Ok(None),
            Err(TaskError::Cancelled) => Err(TaskError::Cancelled),
            Err(e) => Ok(Some(e)),
        }
    }

    /// Blocks until the task is done and its callbacks have run, then moves
    /// the value out. (So do not call it from inside one of this future's
    /// own done-callbacks: it would wait for itself. Use `result()` there.)
    ///
    /// This needs the last handle: if clones of this handle still exist it
    /// returns [`TaskError::Shared`] (and the value stays readable through
    /// them). Handles that [`wait`](crate::wait()) or [`as_completed`](crate::as_completed)
    /// gave back are the same handles you passed in, so they count once.
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    ///
    /// let fut = TaskFuture::ready(String::from("owned"));
    /// let other = fut.clone();
    /// assert_eq!(fut.into_result(), Err(TaskError::Shared { other_handles: 1 }));
    /// assert_eq!(other.into_result(), Ok(String::from("owned")));
    /// ```
    pub fn into_result(self) -> Result<T, TaskError> {
        self.wait_until(None, true);
        self.take()
    }

    /// Like [`into_result`](Self::into_result) with a deadline; on timeout the
    /// handle is given back with the error.
    pub(crate) fn into_result_until(
        self,
        deadline: Option<Instant>,
    ) -> Result<Result<T, TaskError>, TaskFuture<T>> {
        if self.wait_until(deadline, true) {
            Ok(self.take())
        } else {
            Err(self)
        }
    }

    fn take(self) -> Result<T, TaskError> {
        let _core = self.lock();
        // Acquire pairs with the Release decrement in `Drop`: whatever the
        // other handles did with `&T` happened before we move the value out.
        let others = self.inner.handles.load(Ordering::Acquire) as usize - 1;
        if others > 0 {
            return Err(TaskError::Shared {
                other_handles: others,
            });
        }
        match state_of(self.status()) {
            FutureState::Cancelled => Err(TaskError::Cancelled),
            // SAFETY: FINISHED was observed (Acquire), so the value was
            // written before (rule on `Inner::value`). This is the only
            // handle, it is consumed, and the completer's temporary handle
            // for callbacks is gone (the future is settled, checked by the
            // caller's wait), so no `&T` can be alive and no other access can
            // happen: no new handle can be made without one to clone.
            FutureState::Finished => match unsafe { self.inner.value.take() } {
                Some(r) => r.map_err(|e| *e),
                None => Err(TaskError::Broken {
                    reason: "the result was already taken".into(),
                }),
            },
            FutureState::Pending | FutureState::Running => Err(timed_out(Duration::ZERO)),
        }
    }

    /// Reads the value of a done future.
    fn read(&self) -> Result<&T, TaskError> {
        match self.state() {
            FutureState::Cancelled => Err(TaskError::Cancelled),
            // SAFETY: FINISHED was observed with Acquire, and it was stored
            // with Release after the value was written (see `Inner::value`). `take` needs the last
            // handle by value, and `self` is a live handle borrowed for as
            // long as the returned reference, so no `take` can run meanwhile.
            FutureState::Finished => match unsafe { self.inner.value.get() } {
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) => Err(TaskError::clone(e)),
                None => Err(TaskError::Broken {
                    reason: "the result was already taken".into(),
                }),
            },
            FutureState::Pending | FutureState::Running => Err(timed_out(Duration::ZERO)),
        }
    }

    /// Blocks until done (and, with `settled`, until the callbacks have run)
    /// or until `deadline`; returns whether the condition holds.
    ///
    /// A wait first offers the task to its inline hook (see
    /// [`InlineRun`]), timed or not: a hook that runs the task here lets the
    /// wait return when it is done, after the deadline if the task takes
    /// longer. Any wait then looks for the result as long as the hook asks
    /// before it blocks.
    fn wait_until(&self, deadline: Option<Instant>, settled: bool) -> bool {
        let ready = |status: Status| is_done(status) && (!settled || status & SETTLED != 0);
        if ready(self.status()) {
            return true;
        }
        // A queued task that this thread may run (`task.rs`) runs here.
        if self.inner.body.run_inline(&self.inner) && ready(self.status()) {
            return true;
        }
        let hook = self.inline_hook();
        if let Some(hook) = hook {
            hook.try_run_inline();
            if ready(self.status()) {
                return true;
            }
            let spin = hook.spin_before_blocking();
            drop(hook);
            if !spin.is_zero() {
                let until = Instant::now() + spin;
                let until = deadline.map_or(until, |d| d.min(until));
                if spin_until(until, || ready(self.status())) {
                    return true;
                }
            }
        }
        if deadline.is_none_or(|d| Instant::now() < d) {
            for round in 0..SPIN_ROUNDS {
                if round + 4 < SPIN_ROUNDS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                if ready(self.status()) {
                    return true;
                }
            }
        }
        let mut core = self.lock();
        loop {
            // Flagged before the look (see "Completing without the lock").
            if ready(self.watch()) {
                return true;
            }
            // Under the lock, which the done state's store also holds: it
            // sees the flag, or we saw the state just above.
            self.inner.status.fetch_or(BLOCKED, Ordering::Relaxed);
            match deadline {
                None => core = sync::wait(&self.inner.cond, core),
                Some(d) => {
                    let (c, expired) = sync::wait_until(&self.inner.cond, core, d);
                    core = c;
                    if expired {
                        return ready(self.status());
                    }
                }
            }
        }
    }

    /// The payload of the panic that failed this task, taken out (`None`
    /// once taken, and for any other outcome), so the caller can re-raise
    /// it with [`std::panic::resume_unwind`], as tokio's
    /// `JoinError::into_panic` allows. [`TaskError::Panicked`] keeps the
    /// message either way. Only a task that ran in this process has one
    /// (the thread pool's, submitted alone, not in a `map` chunk); a
    /// payload cannot cross to another process, so a process or MPI
    /// pool's task gives `None`.
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    ///
    /// #[derive(Debug)]
    /// struct Custom(u32);
    ///
    /// // What the thread pool does when a task panics:
    /// let (fut, completer) = TaskFuture::<u8>::pending();
    /// let caught = std::panic::catch_unwind(|| std::panic::panic_any(Custom(7)));
    /// completer.complete_panicked(caught.unwrap_err());
    ///
    /// assert!(matches!(fut.result(), Err(TaskError::Panicked { .. })));
    /// let payload = fut.take_panic().expect("it panicked here");
    /// assert_eq!(payload.downcast_ref::<Custom>().map(|c| c.0), Some(7));
    /// // Re-raise it in this thread:
    /// let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
    ///     std::panic::resume_unwind(payload)
    /// }));
    /// assert!(again.unwrap_err().is::<Custom>());
    /// assert!(fut.take_panic().is_none()); // taken once
    /// ```
    pub fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.lock()
            .extras
            .as_mut()
            .and_then(|extras| extras.panic.take())
    }

    /// Attaches `callback`, to be called with this future once it is done.
    ///
    /// As in CPython: callbacks run once each, in the order added, in the
    /// thread that completes the future (a worker, or the thread that
    /// cancels it), after the waiters were woken and with no lock held. A
    /// callback added to a done future runs at once, in the caller. A
    /// panicking callback is reported (see [`set_callback_panic_handler`])
    /// and neither stops the others nor harms the executor.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// use std::sync::mpsc;
    ///
    /// let (fut, completer) = TaskFuture::pending();
    /// let (tx, rx) = mpsc::channel();
    /// fut.add_done_callback(move |f| tx.send(*f.result().unwrap()).unwrap());
    /// completer.complete(Ok(5));
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(&TaskFuture<T>) + Send + 'static,
        // The callback may read `&T` in the completing thread.
        T: Sync,
    {
        let mut core = self.lock();
        // Flagged first, deciding on the state the flagging saw: a
        // `fetch_or`, since `set_running` and a completion from RUNNING
        // take no lock (see the module docs). Not done then: any completion
        // now takes the lock, which we hold, and will find the callback.
        let status = self
            .inner
            .status
            .fetch_or(HAS_CALLBACKS | WATCHED, Ordering::AcqRel);
        if !is_done(status) {
            core.extras().callbacks.push(Box::new(callback));
            return;
        }
        drop(core);
        run_callback(Box::new(callback), self);
    }

    /// Offers the queued task to its inline hook (see [`InlineRun`]).
    pub(crate) fn try_run_inline(&self) -> bool {
        if self.done() {
            return false;
        }
        self.inner.body.run_inline(&self.inner)
            || self.inline_hook().is_some_and(|h| h.try_run_inline())
    }

    /// The inline hook, while its executor keeps it.
    fn inline_hook(&self) -> Option<std::sync::Arc<dyn InlineRun>> {
        self.lock()
            .extras
            .as_ref()
            .and_then(|e| e.inline.as_ref())
            .and_then(std::sync::Weak::upgrade)
    }

    fn id(&self) -> usize {
        self.inner.addr()
    }
}

/// Moves a PENDING future to CANCELLED; true if it is cancelled now.
pub(crate) fn cancel<T>(inner: &CellRef<T>) -> bool {
    let core = sync::lock(&inner.core);
    let mut status = inner.status.load(Ordering::Relaxed);
    loop {
        match status & STATE_MASK {
            PENDING => {}
            CANCELLED => return true,
            _ => return false,
        }
        // Leave PENDING by a compare-and-swap: `set_running` takes no lock
        // (see the module docs), so exactly one of the two wins. CANCELLED
        // is done, so nothing moves it again; `publish` then stores it with
        // the SETTLED flag.
        match inner.status.compare_exchange_weak(
            status,
            (status & !STATE_MASK) | CANCELLED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => status = now,
        }
    }
    publish(inner, core, CANCELLED);
    true
}

/// The transition into the done state `state` (CANCELLED, FINISHED_OK or
/// FINISHED_ERR), with `core` locked and, for FINISHED, the value written.
fn publish<T>(inner: &CellRef<T>, mut core: MutexGuard<'_, Core<T>>, state: Status) {
    let outcome = match state {
        CANCELLED => Outcome::Cancelled,
        FINISHED_OK => Outcome::Succeeded,
        _ => Outcome::Failed,
    };
    let extras = core.extras.take();
    let (callbacks, waiters, wakers, inline) = match extras {
        Some(e) => {
            if e.panic.is_some() {
                // Kept for `take_panic`.
                core.extras().panic = e.panic;
            }
            (e.callbacks, e.waiters, e.wakers, e.inline)
        }
        None => (Vec::new(), Vec::new(), Vec::new(), None),
    };
    let settled = if callbacks.is_empty() { SETTLED } else { 0 };
    store_done(inner, &core, state | settled);
    drop(core);
    drop(inline);
    for (waiter, token) in waiters {
        waiter.notify(token, outcome);
    }
    wake_all(wakers);
    if callbacks.is_empty() {
        return;
    }
    inner.handles.fetch_add(1, Ordering::Relaxed);
    let handle = TaskFuture {
        inner: inner.clone(),
        _handles: PhantomData,
    };
    for callback in callbacks {
        run_callback(callback, &handle);
    }
    drop(handle);
    let mut core = sync::lock(&inner.core);
    store_done(inner, &core, state | SETTLED);
    let wakers = core
        .extras
        .as_mut()
        .map(|e| std::mem::take(&mut e.wakers))
        .unwrap_or_default();
    drop(core);
    wake_all(wakers);
}

/// Stores `status`, a done state, with `core` locked (the guard is the
/// proof), and wakes the threads blocked in `result()` if BLOCKED says any
/// may be: read before the store, which clears it.
fn store_done<T>(inner: &Inner<T>, _core: &MutexGuard<'_, Core<T>>, status: Status) {
    let blocked = inner.status.load(Ordering::Relaxed) & BLOCKED != 0;
    // Release: publishes the value (written before) with the state.
    inner.status.store(status, Ordering::Release);
    if blocked {
        inner.cond.notify_all();
    }
}

/// Wakes async tasks; a waker that panics is reported and the others are
/// still woken, so a foreign waker cannot leave the future half-published.
fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        if let Err(e) = crate::catch_panic(|| waker.wake()) {
            report_callback_panic(&format!("an async waker panicked: {e}"));
        }
    }
}

fn run_callback<T>(callback: Callback<T>, fut: &TaskFuture<T>) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(fut)));
    if let Err(payload) = caught {
        let message = crate::error::panic_message(&*payload);
        report_callback_panic(&format!(
            "exception calling callback for {fut:?}: {message}"
        ));
    }
}

type PanicHandler = Box<dyn Fn(&str) + Send + Sync + 'static>;
static CALLBACK_PANIC_HANDLER: std::sync::RwLock<Option<PanicHandler>> =
    std::sync::RwLock::new(None);

/// Sets where reports of panicking done-callbacks go; the default prints
/// them to stderr. Python logs them to the `concurrent.futures` logger.
///
/// The handler gets one line such as
/// `exception calling callback for <TaskFuture at 0x… state=finished returned i32>: doh!`.
///
/// ```
/// use concurrent_futures_core::{set_callback_panic_handler, TaskFuture};
/// use std::sync::mpsc;
/// use std::sync::Mutex;
///
/// let (tx, rx) = mpsc::channel();
/// let tx = Mutex::new(tx);
/// set_callback_panic_handler(move |report| tx.lock().unwrap().send(report.to_owned()).unwrap());
/// TaskFuture::ready(1).add_done_callback(|_| panic!("doh!"));
/// assert!(rx.recv().unwrap().ends_with("doh!"));
/// ```
pub fn set_callback_panic_handler<F>(handler: F)
where
    F: Fn(&str) + Send + Sync + 'static,
{
    let mut slot = match CALLBACK_PANIC_HANDLER.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    *slot = Some(Box::new(handler));
}

fn report_callback_panic(report: &str) {
    let slot = match CALLBACK_PANIC_HANDLER.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let handled = match &*slot {
        Some(handler) => crate::catch_panic(|| handler(report)).is_ok(),
        None => false,
    };
    if !handled {
        eprintln!("concurrent_futures: {report}");
    }
}

/// `now + timeout`, or no deadline at all if that overflows the clock (a
/// timeout of `Duration::MAX` means "wait forever").
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

fn timed_out(after: Duration) -> TaskError {
    TaskError::TimedOut {
        after,
        unfinished: 1,
        total: 1,
    }
}

impl<T> Completer<T> {
    fn inner(&self) -> &CellRef<T> {
        self.inner
            .as_ref()
            .expect("a Completer is only emptied when consumed")
    }

    /// Moves the future from PENDING to RUNNING; returns false if it was
    /// cancelled, in which case the executor must skip the task (Python's
    /// `set_running_or_notify_cancel`).
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, completer) = TaskFuture::<()>::pending();
    /// assert!(completer.set_running());
    /// assert!(!fut.cancel()); // a running task cannot be cancelled
    /// ```
    pub fn set_running(&self) -> bool {
        self.inner().set_running()
    }

    /// True if done-callbacks are waiting for this future. They will run in
    /// the thread that completes it, which an executor may want to know
    /// before it counts that thread as free.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, completer) = TaskFuture::<()>::pending();
    /// assert!(!completer.has_callbacks());
    /// fut.add_done_callback(|_| {});
    /// assert!(completer.has_callbacks());
    /// ```
    pub fn has_callbacks(&self) -> bool {
        self.inner().has_callbacks()
    }

    /// True if the future was cancelled.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, completer) = TaskFuture::<()>::pending();
    /// fut.cancel();
    /// assert!(completer.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner().is_cancelled()
    }

    /// True if this completer finishes `future` (the two came from the same
    /// [`TaskFuture::pending`]): how an executor finds the job behind a
    /// future it is asked about, without a token of its own.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, completer) = TaskFuture::<u8>::pending();
    /// let (other, _) = TaskFuture::<u8>::pending();
    /// assert!(completer.is_for(&fut));
    /// assert!(completer.is_for(&fut.clone()));
    /// assert!(!completer.is_for(&other));
    /// ```
    pub fn is_for(&self, future: &TaskFuture<T>) -> bool {
        same_cell(self.inner(), &future.inner)
    }

    /// Installs the hook that lets a blocked waiter run this queued task
    /// inline (see [`InlineRun`], which has an example); it replaces any
    /// earlier one and is dropped when the future is done. The future holds
    /// it weakly: the executor keeps it alive (while the task is queued, at
    /// least), and a hook that is gone is no hook.
    pub fn set_inline_hook(&self, hook: std::sync::Arc<dyn InlineRun>) {
        let weak = std::sync::Arc::downgrade(&hook);
        drop(hook);
        let inner = self.inner();
        let mut core = sync::lock(&inner.core);
        if !is_done(inner.status.load(Ordering::Relaxed)) {
            core.extras().inline = Some(weak);
        }
    }

    /// Finishes the future with `result` (Python's `set_result` /
    /// `set_exception`), waking waiters and running the callbacks in this
    /// thread. Returns false, and drops `result`, if the future was
    /// cancelled first.
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    ///
    /// let (fut, completer) = TaskFuture::<u8>::pending();
    /// assert!(completer.complete(Err(TaskError::Panicked { message: "no".into() })));
    /// assert_eq!(fut.exception(), Ok(Some(TaskError::Panicked { message: "no".into() })));
    ///
    /// let (fut, completer) = TaskFuture::<u8>::pending();
    /// fut.cancel();
    /// assert!(!completer.complete(Ok(1)));
    /// ```
    pub fn complete(mut self, result: Result<T, TaskError>) -> bool {
        let inner = self.inner.take().expect("completer used once");
        finish(&inner, result)
    }

    /// Cancels the future from the executor's side (for a queued task that
    /// `shutdown(cancel_futures = true)` drops). Returns false if it had
    /// already started.
    ///
    /// ```
    /// use concurrent_futures_core::TaskFuture;
    /// let (fut, completer) = TaskFuture::<u8>::pending();
    /// assert!(completer.cancel());
    /// assert!(fut.cancelled());
    /// ```
    pub fn cancel(mut self) -> bool {
        let inner = self.inner.take().expect("completer used once");
        cancel(&inner)
    }

    /// Completes the future as a task that panicked with `payload`: it
    /// fails with [`TaskError::Panicked`] (the payload's message), and the
    /// payload itself waits for [`TaskFuture::take_panic`]. An executor
    /// that runs tasks in this process calls it with what
    /// [`std::panic::catch_unwind`] caught.
    ///
    /// ```
    /// use concurrent_futures_core::{TaskError, TaskFuture};
    ///
    /// let (fut, completer) = TaskFuture::<u8>::pending();
    /// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// completer.complete_panicked(payload);
    /// assert_eq!(fut.result(), Err(TaskError::Panicked { message: "boom".into() }));
    /// assert!(fut.take_panic().is_some());
    /// ```
    pub fn complete_panicked(mut self, payload: Box<dyn Any + Send>) -> bool {
        let inner = self.inner.take().expect("completer used once");
        finish_panicked(&inner, payload)
    }
}

/// Completes the future as a task that panicked with `payload` (see
/// [`Completer::complete_panicked`]).
pub(crate) fn finish_panicked<T>(inner: &CellRef<T>, payload: Box<dyn Any + Send>) -> bool {
    let message = crate::error::panic_message(&*payload);
    finish_with_panic(inner, Err(TaskError::Panicked { message }), Some(payload))
}

/// Whether two references are to the same future (the address alone: the
/// body's vtable does not matter).
fn same_cell<T>(a: &CellRef<T>, b: &CellRef<T>) -> bool {
    a.addr() == b.addr()
}

pub(crate) fn finish<T>(inner: &CellRef<T>, result: Result<T, TaskError>) -> bool {
    if inner.status.load(Ordering::Acquire) != RUNNING {
        return finish_with_panic(inner, result, None);
    }
    // RUNNING with no flag: see "Completing without the lock".
    let state = if result.is_ok() {
        FINISHED_OK
    } else {
        FINISHED_ERR
    };
    // SAFETY: RUNNING, so no reader touches the cell (they read only after
    // seeing FINISHED), and only we can finish it (see the module docs):
    // this is the only write.
    unsafe { inner.value.set(result.map_err(Box::new)) };
    // Release: publishes the value with the state.
    if inner
        .status
        .compare_exchange(
            RUNNING,
            state | SETTLED,
            Ordering::Release,
            Ordering::Relaxed,
        )
        .is_err()
    {
        // Watched meanwhile: publish under the lock (the value is written).
        publish(inner, sync::lock(&inner.core), state);
    }
    true
}

/// [`finish`], keeping a panic's payload (under the lock, before the
/// future is seen done) for [`TaskFuture::take_panic`].
fn finish_with_panic<T>(
    inner: &CellRef<T>,
    result: Result<T, TaskError>,
    panic: Option<Box<dyn Any + Send>>,
) -> bool {
    let mut core = sync::lock(&inner.core);
    if is_done(inner.status.load(Ordering::Relaxed)) {
        return false;
    }
    if panic.is_some() {
        core.extras().panic = panic;
    }
    let state = if result.is_ok() {
        FINISHED_OK
    } else {
        FINISHED_ERR
    };
    // SAFETY: the state is not FINISHED, so no reader touches the cell (they
    // read only after seeing FINISHED, which `publish` stores after this
    // write), and this is the only write: we hold the lock, `publish` makes
    // the state final before releasing it, and `finish` refuses a done
    // future.
    unsafe { inner.value.set(result.map_err(Box::new)) };
    publish(inner, core, state);
    true
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            finish(
                &inner,
                Err(TaskError::Broken {
                    reason: "the executor dropped this task before it finished \
                             (its pool was torn down or its worker ended)"
                        .into(),
                }),
            );
        }
    }
}

impl<T> fmt::Debug for Completer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Completer")
    }
}

impl<T> Clone for TaskFuture<T> {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        TaskFuture {
            inner: self.inner.clone(),
            _handles: PhantomData,
        }
    }
}

impl<T> Drop for TaskFuture<T> {
    fn drop(&mut self) {
        // The last reference of any kind (no other handle, no completer, no
        // queue entry) frees the future next: nobody can read the count any
        // more, and no new handle can be made without one to clone.
        if self.inner.is_unique() {
            return;
        }
        // Release: our last use of `&T` happens before a `take` that sees
        // the count drop (it loads with Acquire).
        self.inner.handles.fetch_sub(1, Ordering::Release);
    }
}

/// Identity: two handles are equal when they refer to the same task.
impl<T> PartialEq for TaskFuture<T> {
    fn eq(&self, other: &Self) -> bool {
        same_cell(&self.inner, &other.inner)
    }
}
impl<T> Eq for TaskFuture<T> {}
impl<T> std::hash::Hash for TaskFuture<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

/// `<TaskFuture at 0x… state=pending>`, like CPython's `repr` of a future:
/// `running`, `cancelled`, `finished returned i32`, `finished raised Panicked`.
impl<T> fmt::Debug for TaskFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status() & STATE_MASK;
        write!(f, "<TaskFuture at {:#x} state=", self.id())?;
        match status {
            PENDING => f.write_str("pending>"),
            RUNNING => f.write_str("running>"),
            CANCELLED => f.write_str("cancelled>"),
            FINISHED_OK => write!(f, "finished returned {}>", std::any::type_name::<T>()),
            _ => match self.read() {
                Err(e) => write!(f, "finished raised {}>", e.kind()),
                Ok(_) => f.write_str("finished>"),
            },
        }
    }
}

impl<T> Waitable for TaskFuture<T> {
    fn key(&self) -> usize {
        self.id()
    }

    fn register(&self, waiter: &Arc<Waiter>, token: usize) -> Option<Outcome> {
        let mut core = self.lock();
        match self.watch() & STATE_MASK {
            CANCELLED => Some(Outcome::Cancelled),
            FINISHED_OK => Some(Outcome::Succeeded),
            FINISHED_ERR => Some(Outcome::Failed),
            _ => {
                core.extras().waiters.push((waiter.clone(), token));
                None
            }
        }
    }

    fn unregister(&self, waiter: &Arc<Waiter>) {
        if let Some(extras) = &mut self.lock().extras {
            extras.waiters.retain(|(w, _)| !Arc::ptr_eq(w, waiter));
        }
    }

    fn run_inline(&self) -> bool {
        self.try_run_inline()
    }
}

/// Awaiting a handle moves its value out, as
/// [`into_result`](TaskFuture::into_result) does; await `&handle` to borrow it.
///
/// ```
/// use concurrent_futures_core::TaskFuture;
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct T(std::thread::Thread);
/// #     impl Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(T(std::thread::current())));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
/// #         std::thread::park();
/// #     }
/// # }
/// let (fut, completer) = TaskFuture::pending();
/// std::thread::spawn(move || completer.complete(Ok(3)));
/// assert_eq!(block_on(async { fut.await }), Ok(3));
/// ```
impl<T> IntoFuture for TaskFuture<T> {
    type Output = Result<T, TaskError>;
    type IntoFuture = Awaiting<T>;

    fn into_future(self) -> Awaiting<T> {
        Awaiting { fut: Some(self) }
    }
}

/// Awaiting `&handle` lends the value out, as [`result`](TaskFuture::result) does.
impl<'a, T> IntoFuture for &'a TaskFuture<T> {
    type Output = Result<&'a T, TaskError>;
    type IntoFuture = AwaitingRef<'a, T>;

    fn into_future(self) -> AwaitingRef<'a, T> {
        AwaitingRef { fut: self }
    }
}

/// The [`std::future::Future`] that awaiting a [`TaskFuture`] gives; see
/// the `IntoFuture` impl of [`TaskFuture`] for an example.
#[must_use = "futures do nothing unless awaited"]
pub struct Awaiting<T> {
    fut: Option<TaskFuture<T>>,
}

/// The [`std::future::Future`] that awaiting a `&TaskFuture` gives; it
/// resolves to `Result<&T, TaskError>`.
#[must_use = "futures do nothing unless awaited"]
pub struct AwaitingRef<'a, T> {
    fut: &'a TaskFuture<T>,
}

impl<T> TaskFuture<T> {
    /// Registers `waker` unless the condition already holds.
    fn poll_ready(&self, cx: &mut Context<'_>, settled: bool) -> bool {
        let mut core = self.lock();
        let status = self.watch();
        if is_done(status) && (!settled || status & SETTLED != 0) {
            return true;
        }
        let wakers = &mut core.extras().wakers;
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        false
    }
}

impl<T> Future for Awaiting<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.fut.as_ref().expect("Awaiting polled after completion");
        if !fut.poll_ready(cx, true) {
            return Poll::Pending;
        }
        let fut = self.fut.take().expect("checked above");
        Poll::Ready(fut.take())
    }
}

// `Awaiting` never pins its contents.
impl<T> Unpin for Awaiting<T> {}

impl<'a, T> Future for AwaitingRef<'a, T> {
    type Output = Result<&'a T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut: &'a TaskFuture<T> = self.fut;
        if fut.poll_ready(cx, false) {
            Poll::Ready(fut.read())
        } else {
            Poll::Pending
        }
    }
}
