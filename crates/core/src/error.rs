//! [`TaskError`]: every way a task can fail to produce its value.

use std::fmt;
use std::time::Duration;

/// Why a [`TaskFuture`](crate::TaskFuture) has no value to give.
///
/// One enum stands for Python's `CancelledError`, `TimeoutError`,
/// `BrokenExecutor` and the exception a task raised. Each message says what
/// happened and what to do about it.
///
/// The enum is `#[non_exhaustive]`, so that later executors can add ways
/// to fail without breaking a `match`.
///
/// ```
/// use concurrent_futures_core::TaskError;
///
/// let err = TaskError::Panicked { message: "index out of bounds".into() };
/// assert_eq!(err.to_string(), "the task panicked: index out of bounds");
/// assert!(err.is_task_failure());
/// assert!(!TaskError::Cancelled.is_task_failure());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The future was cancelled before its task started (Python's `CancelledError`).
    Cancelled,
    /// The task panicked; `message` is the panic payload when it was a string.
    Panicked {
        /// The panic message, or a note that the payload was not a string.
        message: String,
    },
    /// A wait ran out of time before the futures it waited for finished
    /// (Python's `TimeoutError`). The tasks themselves go on running.
    TimedOut {
        /// How long the caller waited.
        after: Duration,
        /// How many of the awaited futures were still unfinished.
        unfinished: usize,
        /// How many futures the wait covered.
        total: usize,
    },
    /// The executor was shut down, so it takes no new work
    /// (Python's `RuntimeError("cannot schedule new futures after shutdown")`).
    ShutDown,
    /// The executor can no longer run work (Python's `BrokenExecutor`), or it
    /// dropped this task without running it; `reason` says why.
    Broken {
        /// What broke the executor.
        reason: String,
    },
    /// The function given to a process pool is not a registered task: mark
    /// it `#[concurrent_futures::task]`.
    Unregistered {
        /// The function, its argument and result types.
        function: String,
    },
    /// The worker process running the task died (abort, exit, a segfault,
    /// SIGKILL, the out-of-memory killer). Only this task's future fails; the
    /// pool starts a replacement worker.
    WorkerDied {
        /// The dead worker's process id.
        pid: u32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// Its exit status, if it exited.
        exit_code: Option<i32>,
    },
    /// The task ran past the time limit its process pool set for it
    /// (`task_timeout`, or `submit_with_timeout`): the pool killed the
    /// worker process running it and started a replacement. Unlike
    /// [`TaskError::TimedOut`], which says a *wait* ended while the task
    /// goes on, this future is finished: its task was stopped.
    TaskTimedOut {
        /// The limit the task ran past.
        limit: Duration,
        /// The process id of the killed worker.
        pid: u32,
    },
    /// The task was stopped on demand
    /// (`ProcessPoolExecutor::stop_task`, pebble's `future.cancel()` of a
    /// running task): the pool killed the worker process running it
    /// (SIGKILL) and started a replacement. Unlike
    /// [`TaskError::Cancelled`], the task had started: it may have run in
    /// part.
    Stopped {
        /// The process id of the killed worker, or `None` if the task was
        /// waiting for a replacement worker and never reached one.
        pid: Option<u32>,
    },
    /// A value could not be encoded to cross a process boundary: the
    /// arguments at submit, or the result in the worker.
    Encode {
        /// The Rust type that failed.
        type_name: String,
        /// What the codec said.
        reason: String,
    },
    /// Bytes could not be decoded into a value: the arguments in the worker,
    /// or the result in the caller.
    Decode {
        /// The Rust type that failed.
        type_name: String,
        /// What the codec said.
        reason: String,
    },
    /// [`TaskFuture::into_result`](crate::TaskFuture::into_result) was called
    /// while other clones of the handle still existed, so the value could not
    /// be moved out. Nothing is lost: the other handles can still read it.
    Shared {
        /// How many other handles there were.
        other_handles: usize,
    },
}

impl TaskError {
    /// True when the task itself ran and failed (a panic, or the death of
    /// the worker process running it), as opposed to being cancelled,
    /// stopped on demand, timed out, or refused by the executor.
    ///
    /// ```
    /// use concurrent_futures_core::TaskError;
    /// assert!(!TaskError::Stopped { pid: Some(7) }.is_task_failure());
    /// ```
    pub fn is_task_failure(&self) -> bool {
        matches!(
            self,
            TaskError::Panicked { .. }
                | TaskError::WorkerDied { .. }
                | TaskError::TaskTimedOut { .. }
        )
    }

    /// The variant's name, as the `Debug` form of a future shows it
    /// (`finished raised Panicked`).
    ///
    /// ```
    /// use concurrent_futures_core::TaskError;
    /// assert_eq!(TaskError::ShutDown.kind(), "ShutDown");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            TaskError::Cancelled => "Cancelled",
            TaskError::Panicked { .. } => "Panicked",
            TaskError::TimedOut { .. } => "TimedOut",
            TaskError::ShutDown => "ShutDown",
            TaskError::Broken { .. } => "Broken",
            TaskError::Shared { .. } => "Shared",
            TaskError::Unregistered { .. } => "Unregistered",
            TaskError::WorkerDied { .. } => "WorkerDied",
            TaskError::TaskTimedOut { .. } => "TaskTimedOut",
            TaskError::Stopped { .. } => "Stopped",
            TaskError::Encode { .. } => "Encode",
            TaskError::Decode { .. } => "Decode",
        }
    }

    /// Builds a [`TaskError::Panicked`] from a payload caught by
    /// [`std::panic::catch_unwind`].
    ///
    /// ```
    /// use concurrent_futures_core::TaskError;
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
    /// assert_eq!(TaskError::from_panic(payload), TaskError::Panicked { message: "boom 1".into() });
    /// ```
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> TaskError {
        TaskError::Panicked {
            message: panic_message(&*payload),
        }
    }
}

/// Runs `f`, turning a panic into [`TaskError::Panicked`] with its message:
/// what every executor does around a task.
///
/// ```
/// use concurrent_futures_core::{catch_panic, TaskError};
/// assert_eq!(catch_panic(|| 2 + 2), Ok(4));
/// assert_eq!(
///     catch_panic(|| -> u8 { panic!("no") }),
///     Err(TaskError::Panicked { message: "no".into() })
/// );
/// ```
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, TaskError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(TaskError::from_panic)
}

/// The text of a panic payload: the `&str` or `String` it carries, or a
/// placeholder naming the fact that it was something else.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("oops")).unwrap_err();
/// assert_eq!(concurrent_futures_core::panic_message(&*payload), "oops");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<panic payload that is not a string>".to_owned()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Cancelled => f.write_str("the future was cancelled before its task started"),
            TaskError::Panicked { message } => write!(f, "the task panicked: {message}"),
            TaskError::TimedOut {
                after,
                unfinished,
                total,
            } => write!(
                f,
                "{unfinished} (of {total}) futures unfinished after waiting {after:?}; \
                 the tasks keep running: wait longer or cancel them"
            ),
            TaskError::ShutDown => f.write_str(
                "cannot schedule new futures after shutdown: the executor was shut down; \
                 submit before calling shutdown() or build a new executor",
            ),
            TaskError::Broken { reason } => write!(f, "the executor is broken: {reason}"),
            TaskError::Unregistered { function } => write!(
                f,
                "{function} is not a registered task: a process pool only runs functions \
                 marked #[concurrent_futures::task]; add that attribute to its definition"
            ),
            TaskError::WorkerDied {
                pid,
                signal,
                exit_code,
            } => {
                write!(f, "the worker process {pid} running the task died: ")?;
                match (signal, exit_code) {
                    (Some(6), _) => f.write_str(
                        "killed by signal 6 (SIGABRT): the task aborted, or an allocation \
                         failed (past the pool's memory limit, if one is set)",
                    ),
                    (Some(sig), _) => match signal_name(*sig) {
                        Some(name) => write!(f, "killed by signal {sig} ({name})"),
                        None => write!(f, "killed by signal {sig}"),
                    },
                    (None, Some(code)) => write!(f, "it exited with status {code}"),
                    (None, None) => f.write_str("its exit status is unknown"),
                }
            }
            TaskError::TaskTimedOut { limit, pid } => write!(
                f,
                "the task ran past its time limit of {limit:?}: its worker process {pid} was \
                 killed and replaced; raise the limit or make the task shorter"
            ),
            TaskError::Stopped { pid: Some(pid) } => write!(
                f,
                "the task was stopped on demand (stop_task): its worker process {pid} was \
                 killed and replaced"
            ),
            TaskError::Stopped { pid: None } => f.write_str(
                "the task was stopped on demand (stop_task) before it reached a worker process",
            ),
            TaskError::Encode { type_name, reason } => {
                write!(f, "could not encode a value of type {type_name}: {reason}")
            }
            TaskError::Decode { type_name, reason } => {
                write!(f, "could not decode a value of type {type_name}: {reason}")
            }
            TaskError::Shared { other_handles } => write!(
                f,
                "cannot move the result out: {other_handles} other handle(s) of this future \
                 still exist; read it with result() or drop the other clones first"
            ),
        }
    }
}

impl std::error::Error for TaskError {}

/// The Linux name of the signals a dying task usually meets.
fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return None,
    })
}

/// What an initializer may return: `()`, or a `Result` whose error (any
/// `Display`) marks the pool broken.
///
/// ```
/// use concurrent_futures_core::InitResult;
/// assert_eq!(().into_init_result(), Ok(()));
/// assert_eq!(Err::<(), _>("no").into_init_result(), Err("no".to_string()));
/// ```
pub trait InitResult {
    /// `Err` with a description if the initializer failed.
    fn into_init_result(self) -> Result<(), String>;
}

impl InitResult for () {
    fn into_init_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> InitResult for Result<(), E> {
    fn into_init_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}
