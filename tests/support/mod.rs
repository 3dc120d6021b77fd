//! Shared fixtures for the integration tests.
//!
//! * [`Gate`] / [`GateRef`]: a cross-process event (CPython's tests use a
//!   manager `Event` for process pools). The test holds the `Gate`; a task
//!   gets the serializable `GateRef`, and `wait` blocks it until the test
//!   calls [`Gate::open`]. Every task that reaches the gate is recorded (with
//!   a tag), so the test can wait until N tasks are running, with a bound,
//!   on a condition variable instead of sleeping.
//! * [`Fixtures`]: CPython's `PENDING_FUTURE`, `RUNNING_FUTURE`,
//!   `CANCELLED_FUTURE`, `EXCEPTION_FUTURE`, `SUCCESSFUL_FUTURE`.
//! * [`HangGuard`]: aborts the test binary with a message if an operation
//!   that must not block forever (a shutdown, an untimed wait) does.
//!
//! Every wait in here is bounded by [`SHORT_TIMEOUT`] (CPython's
//! `support.SHORT_TIMEOUT`), so a bug fails a test instead of hanging it.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use concurrent_futures::{Completer, TaskError, TaskFuture};
use serde::{Deserialize, Serialize};

/// The bound on every wait for an event that must happen (CPython's
/// `support.SHORT_TIMEOUT`).
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// Gate
// ---------------------------------------------------------------------------

/// The test's side of a cross-process event: a Unix socket listener at a
/// unique temporary path, with a small acceptor thread.
///
/// Protocol: a task connects and sends one line, `W<tag>` (wait) or
/// `S<tag>` (signal only). The acceptor records the tag as an *arrival*;
/// a waiter's connection is held until [`open`](Gate::open) writes one
/// byte to it (at once if the gate is already open).
///
/// Declare the `Gate` *after* the pool in a test: locals drop in reverse
/// order, and dropping the gate opens it, so a failing test releases its
/// blocked tasks before the pool's `Drop` waits for them.
pub struct Gate {
    path: PathBuf,
    shared: Arc<GateShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct GateShared {
    state: Mutex<GateState>,
    cond: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    closing: bool,
    held: Vec<UnixStream>,
    arrivals: Vec<String>,
    /// The highest settle token the acceptor has processed.
    settled: u64,
}

/// The task's side of a [`Gate`]: plain data, so it crosses process
/// boundaries (serde) as well as threads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRef {
    /// Filesystem path of the gate's Unix socket.
    pub path: String,
}

static NEXT_GATE: AtomicUsize = AtomicUsize::new(0);
static NEXT_SETTLE: AtomicUsize = AtomicUsize::new(1);

impl Gate {
    /// A closed gate with no arrivals.
    pub fn new() -> Gate {
        let n = NEXT_GATE.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("cf-gate-{}-{n}-{nanos}.sock", std::process::id());
        // sun_path holds at most 107 bytes; fall back to /tmp for a long TMPDIR.
        let mut path = std::env::temp_dir().join(&name);
        if path.as_os_str().len() > 100 {
            path = PathBuf::from("/tmp").join(&name);
        }
        let listener = UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("gate: cannot bind {}: {e}", path.display()));
        let shared = Arc::new(GateShared {
            state: Mutex::new(GateState::default()),
            cond: Condvar::new(),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("gate-acceptor".into())
                .spawn(move || accept_loop(listener, &shared))
                .expect("gate: cannot start the acceptor thread")
        };
        Gate {
            path,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The serializable handle a task uses.
    pub fn gate_ref(&self) -> GateRef {
        GateRef {
            path: self.path.to_string_lossy().into_owned(),
        }
    }

    /// Releases every current and future waiter.
    pub fn open(&self) {
        let mut state = lock(&self.shared.state);
        state.open = true;
        for mut stream in state.held.drain(..) {
            let _ = stream.write_all(b"x");
        }
        self.shared.cond.notify_all();
    }

    /// Whether [`open`](Gate::open) was called.
    pub fn is_open(&self) -> bool {
        lock(&self.shared.state).open
    }

    /// The tags of the tasks that reached the gate so far, in arrival order.
    pub fn arrivals(&self) -> Vec<String> {
        lock(&self.shared.state).arrivals.clone()
    }

    /// How many tasks reached the gate so far.
    pub fn arrival_count(&self) -> usize {
        lock(&self.shared.state).arrivals.len()
    }

    /// How many waiters are blocked at the gate right now.
    pub fn blocked_count(&self) -> usize {
        lock(&self.shared.state).held.len()
    }

    /// Blocks until at least `n` tasks have reached the gate and returns
    /// their tags; panics after [`SHORT_TIMEOUT`].
    pub fn wait_for_arrivals(&self, n: usize) -> Vec<String> {
        self.wait_until(
            |state| state.arrivals.len() >= n,
            |state| {
                format!(
                    "only {} of {n} expected tasks arrived ({:?})",
                    state.arrivals.len(),
                    state.arrivals
                )
            },
        )
    }

    /// Waits until the acceptor has processed every connection made before
    /// this call, then returns the arrivals. Use it before asserting that
    /// some task did *not* arrive: a task whose `arrive` already returned
    /// may not have been accepted yet, and connections are accepted in
    /// order, so a marker connection made now is processed after it.
    pub fn settled_arrivals(&self) -> Vec<String> {
        let token = NEXT_SETTLE.fetch_add(1, Ordering::Relaxed) as u64;
        let mut stream = UnixStream::connect(&self.path)
            .unwrap_or_else(|e| panic!("gate {}: cannot connect: {e}", self.path.display()));
        stream
            .write_all(format!("Y{token}\n").as_bytes())
            .expect("gate: cannot send the settle marker");
        drop(stream);
        self.wait_until(
            |state| state.settled >= token,
            |_| "the acceptor did not settle".to_owned(),
        )
    }

    /// Blocks until `done` holds for the gate's state, then returns the
    /// arrivals; panics after [`SHORT_TIMEOUT`] with `why`'s description.
    fn wait_until(
        &self,
        done: impl Fn(&GateState) -> bool,
        why: impl Fn(&GateState) -> String,
    ) -> Vec<String> {
        let deadline = Instant::now() + SHORT_TIMEOUT;
        let mut state = lock(&self.shared.state);
        while !done(&state) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "gate {}: {} within {SHORT_TIMEOUT:?}",
                self.path.display(),
                why(&state)
            );
            state = self
                .shared
                .cond
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.arrivals.clone()
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // Release anything still blocked so a failing test cannot hang the
        // pool's shutdown behind it.
        self.open();
        lock(&self.shared.state).closing = true;
        // Wake the acceptor out of accept().
        let _ = UnixStream::connect(&self.path);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one `\n`-terminated line (the hello) from a fresh connection.
fn read_line(stream: &mut UnixStream) -> Option<String> {
    stream.set_read_timeout(Some(SHORT_TIMEOUT)).ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    String::from_utf8(line).ok()
}

fn accept_loop(listener: UnixListener, shared: &GateShared) {
    for conn in listener.incoming() {
        if lock(&shared.state).closing {
            return;
        }
        let Ok(mut stream) = conn else { continue };
        let Some(line) = read_line(&mut stream) else {
            continue;
        };
        let mut state = lock(&shared.state);
        if state.closing {
            return;
        }
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "W" => {
                state.arrivals.push(rest.to_owned());
                if state.open {
                    let _ = stream.write_all(b"x");
                } else {
                    state.held.push(stream);
                }
            }
            "S" => state.arrivals.push(rest.to_owned()),
            "Y" => {
                if let Ok(token) = rest.parse::<u64>() {
                    state.settled = state.settled.max(token);
                }
            }
            _ => {}
        }
        shared.cond.notify_all();
    }
}

impl GateRef {
    fn connect(&self, hello: &str) -> UnixStream {
        let mut stream = UnixStream::connect(&self.path).unwrap_or_else(|e| {
            panic!(
                "gate {}: cannot connect (was the Gate dropped?): {e}",
                self.path
            )
        });
        stream
            .write_all(hello.as_bytes())
            .unwrap_or_else(|e| panic!("gate {}: cannot send: {e}", self.path));
        stream
    }

    /// Blocks until the gate is opened; panics if that takes longer than
    /// [`SHORT_TIMEOUT`].
    pub fn wait(&self) {
        self.wait_as("")
    }

    /// [`wait`](GateRef::wait), recording `tag` as this task's arrival.
    pub fn wait_as(&self, tag: &str) {
        let mut stream = self.connect(&format!("W{tag}\n"));
        stream
            .set_read_timeout(Some(SHORT_TIMEOUT))
            .expect("gate: cannot set a read timeout");
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte) {
                Ok(1) => return,
                Ok(_) => panic!("gate {}: closed without being opened", self.path),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "gate {}: not opened within {SHORT_TIMEOUT:?} (task tag {tag:?})",
                        self.path
                    )
                }
                Err(e) => panic!("gate {}: read failed: {e}", self.path),
            }
        }
    }

    /// Records `tag` as an arrival without blocking ("I ran").
    pub fn arrive(&self, tag: &str) {
        drop(self.connect(&format!("S{tag}\n")));
    }
}

// ---------------------------------------------------------------------------
// Future fixtures
// ---------------------------------------------------------------------------

/// The value of [`Fixtures::successful`] (CPython's `SUCCESSFUL_FUTURE`).
pub const SUCCESSFUL_VALUE: i64 = 42;

/// The error of [`Fixtures::exception`] (CPython's `EXCEPTION_FUTURE`
/// holds an `OSError()`).
pub fn fixture_error() -> TaskError {
    TaskError::Panicked {
        message: "OSError".into(),
    }
}

/// CPython's fixture futures, one per state, built through the public API.
/// CPython's `CANCELLED_AND_NOTIFIED_FUTURE` has no counterpart: we have one
/// cancelled state, and it counts as done at once.
///
/// The completers of the pending and running futures are kept alive here
/// (dropping one completes its future with `TaskError::Broken`).
pub struct Fixtures {
    pub pending: TaskFuture<i64>,
    pub running: TaskFuture<i64>,
    pub cancelled: TaskFuture<i64>,
    pub exception: TaskFuture<i64>,
    pub successful: TaskFuture<i64>,
    completers: Vec<Completer<i64>>,
}

impl Fixtures {
    pub fn new() -> Fixtures {
        let (pending, pending_completer) = TaskFuture::pending();
        let (running, running_completer) = TaskFuture::pending();
        assert!(running_completer.set_running());
        let (cancelled, cancelled_completer) = TaskFuture::pending();
        assert!(cancelled.cancel());
        drop(cancelled_completer);
        Fixtures {
            pending,
            running,
            cancelled,
            exception: TaskFuture::failed(fixture_error()),
            successful: TaskFuture::ready(SUCCESSFUL_VALUE),
            completers: vec![pending_completer, running_completer],
        }
    }
}

impl Default for Fixtures {
    fn default() -> Self {
        Fixtures::new()
    }
}

// ---------------------------------------------------------------------------
// HangGuard
// ---------------------------------------------------------------------------

/// A watchdog: unless dropped within `limit`, it prints what hung and
/// aborts the test binary (CPython's tests use `SIGALRM` for the same job).
/// Use it around operations that have no timeout of their own.
pub struct HangGuard {
    disarm: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl HangGuard {
    pub fn new(what: &'static str) -> HangGuard {
        HangGuard::with_limit(what, SHORT_TIMEOUT)
    }

    pub fn with_limit(what: &'static str, limit: Duration) -> HangGuard {
        let (tx, rx) = mpsc::channel::<()>();
        let watchdog = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("HANG: {what} did not finish within {limit:?}; aborting");
                std::process::abort();
            }
        });
        HangGuard {
            disarm: Some(tx),
            watchdog: Some(watchdog),
        }
    }
}

impl Drop for HangGuard {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Process hygiene: descriptors, children, core files
// ---------------------------------------------------------------------------

/// This process's open descriptors, as `"<fd> -> <target>"`.
pub fn open_fds() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            // The listing's own directory handle comes and goes.
            (!target.ends_with("/fd")).then(|| format!("{:?} -> {target}", e.file_name()))
        })
        .collect()
}

/// The pid of every child of every thread of this process.
pub fn children() -> std::collections::BTreeSet<u32> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .map(|p| p.parse().expect("a pid"))
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Keeps a worker that is about to crash from writing a core file.
pub fn no_core_dump() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process's own limits and flags.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// `VmSize` of this process, in bytes: what a forked worker starts with.
pub fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmSize line");
    kib << 10
}

/// Opens its gate when dropped, so that a failing check cannot leave tasks
/// blocked behind a `shutdown(wait = true)`.
pub struct OpenOnDrop<'a>(pub &'a Gate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.open();
    }
}
