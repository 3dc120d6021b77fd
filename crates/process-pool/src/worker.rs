//! The worker process: how it recognises its role, connects, and serves.
//!
//! **Recognising the role (the `if __name__ == "__main__":` guard).** A
//! spawned worker is this very executable (or a named worker binary),
//! started with [`BOOT_ENV`] set. The function [`boot`] sits in the ELF
//! `.init_array`, so the dynamic loader runs it before `main` in every
//! binary that links this crate: programs, `cargo test` harnesses, doc
//! tests, examples, benches. In a worker it never returns: it serves tasks
//! and exits, so the user's `main` (or the test harness) never runs there.
//! Nothing is needed at the top of `main`. Should a worker still reach a
//! pool's `build()` (a binary whose boot did not run), `build()` stops that
//! process with [`MISSING_BOOT_EXIT`] instead of spawning workers of its
//! own, and the parent reports the missing boot instead of forking without
//! end.
//!
//! **The hand-off.** The parent creates the worker's channel (a socket
//! pair, see `channel.rs`) before the worker exists, and the worker
//! inherits its end: as stdin when spawned (it moves it to a descriptor of
//! its own at once), as a plain descriptor when forked. Its first frame is
//! the greeting [`hello_frame`]; the parent accepts it only from the pid it
//! started, as the kernel reports the writer. Nothing secret is in the
//! environment or argv: [`BOOT_ENV`] holds only the memory limit, and a
//! socket cannot be opened through `/proc/<pid>/fd`, so no other process
//! can connect in the worker's place. From then on both sides use only
//! that socket, and nothing on it carries a descriptor.
//!
//! **Dying with the parent.** A thread of the worker waits on its socket
//! for the hang-up that comes only when the parent's end is closed for
//! good: when the parent process dies, for any reason, the kernel closes
//! it, and the worker exits at once, even in the middle of a task. (The
//! parent closing its *requests* only, to make a worker leave, is not a
//! hang-up: the worker answers what it holds and exits on its own.)
//! `PR_SET_PDEATHSIG` would tie the worker to the parent *thread* that
//! started it, which is wrong for a pool built in a thread that exits
//! first.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use concurrent_futures_task_wire::serve;

use crate::channel::{self, Receiver, Sender};

/// The variable that tells a process it is a worker, and that its channel
/// is its stdin. Its value is the worker's memory limit in bytes (`0`:
/// none); it holds nothing another process could use.
pub(crate) const BOOT_ENV: &str = "CONCURRENT_FUTURES_WORKER";

/// The argument a spawned worker gets. A test harness whose boot did not
/// run rejects it at once instead of running the tests.
pub(crate) const WORKER_ARG: &str = "--concurrent-futures-worker";

/// The exit status of a worker whose boot did not run (see the module
/// docs); the parent turns it into an error that says so.
pub(crate) const MISSING_BOOT_EXIT: i32 = 87;

/// The exit status of a worker that could not take over its channel or
/// close the descriptors it inherited.
pub(crate) const SETTLE_FAILED_EXIT: i32 = 6;

/// A worker's first words on its channel.
const HELLO: &[u8] = b"concurrent-futures worker, protocol 2";

/// The hello as it travels: one frame.
pub(crate) fn hello_frame() -> Vec<u8> {
    let mut frame = (HELLO.len() as u64).to_le_bytes().to_vec();
    frame.extend_from_slice(HELLO);
    frame
}

/// Runs before `main` in every process of a binary that links this crate;
/// returns at once unless the process is a spawned worker.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
pub(crate) static BOOT: extern "C" fn() = boot;

extern "C" fn boot() {
    let (role, var) = if std::env::var_os(crate::fork_server::SERVER_ENV).is_some() {
        (Role::ForkServer, crate::fork_server::SERVER_ENV)
    } else {
        (Role::Worker, BOOT_ENV)
    };
    let Some(value) = std::env::var_os(var) else {
        return;
    };
    // SAFETY: this runs from `.init_array`, before `main`, so no other
    // thread exists that could read the environment concurrently. Removing
    // the variable keeps it from leaking into processes the tasks start.
    unsafe { std::env::remove_var(var) };
    // SAFETY: plain libc call. Rust's runtime ignores SIGPIPE before `main`
    // runs; we never get there, so do the same: a write to a dead parent
    // must be an error, not a silent death.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = std::panic::catch_unwind(|| {
        if role == Role::ForkServer {
            return match settle_descriptors() {
                Ok(control) => crate::fork_server::serve(control),
                Err(e) => {
                    say(format_args!("cannot take over the channel on stdin: {e}"));
                    SETTLE_FAILED_EXIT
                }
            };
        }
        let Ok(limit) = value.to_string_lossy().parse::<u64>() else {
            say(format_args!("malformed {BOOT_ENV}"));
            return 2;
        };
        match settle_descriptors() {
            Ok(socket) => serve(socket, Some(limit).filter(|&bytes| bytes > 0)),
            Err(e) => {
                say(format_args!("cannot take over the channel on stdin: {e}"));
                SETTLE_FAILED_EXIT
            }
        }
    })
    .unwrap_or(101);
    finish(code)
}

/// What a process started by the pool is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Worker,
    ForkServer,
}

/// Ends a spawned worker (or fork server, or a worker it forked): flushes
/// what the tasks printed and exits with `code`.
pub(crate) fn finish(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// A spawned worker's first act: check that stdin is the socket the
/// parent passed, move it to a descriptor of its own (close-on-exec, so
/// processes a task starts do not inherit it), close every other
/// descriptor it inherited but stdio (the parent cannot mark another
/// library's descriptors close-on-exec), and leave `/dev/null` as stdin.
/// Returns the socket's descriptor.
fn settle_descriptors() -> std::io::Result<RawFd> {
    // SAFETY: plain system calls on this process's own descriptors, before
    // any thread or Rust object that could own one exists; `stat` is a
    // valid out-pointer.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut stat) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(std::io::Error::other("stdin is not a socket"));
        }
        let socket = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        if socket < 0 {
            return Err(std::io::Error::last_os_error());
        }
        crate::process::close_all_but(socket)?;
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        } else {
            libc::close(0);
        }
        Ok(socket)
    }
}

/// Writes one line to stderr with a plain `write(2)`, taking no lock: a
/// forked worker may have inherited `Stderr`'s lock held by a thread of
/// the parent that does not exist here, and `eprintln!` would wait on it
/// for ever.
pub(crate) fn say(message: fmt::Arguments<'_>) {
    let line = format!(
        "concurrent-futures worker {}: {message}\n",
        std::process::id()
    );
    // SAFETY: borrows descriptor 2 for one write; `ManuallyDrop` keeps the
    // `File` from closing it. If 2 is closed the write fails, harmlessly.
    let mut stderr = ManuallyDrop::new(unsafe { File::from_raw_fd(2) });
    let _ = stderr.write_all(line.as_bytes());
}

/// Set in a forked worker right after the fork (see
/// [`install_fork_safe_panic_hook`]).
pub(crate) static FORKED: AtomicBool = AtomicBool::new(false);

/// Makes panics in forked workers print without locks; called by the
/// parent before its first fork.
///
/// A forked worker inherits the parent's memory as it was at the fork,
/// locks included, but only the forking thread. If another thread of the
/// parent was inside the panic hook then (printing a backtrace takes a
/// while), the default hook's backtrace lock and `Stderr`'s lock stay held
/// in the worker for ever, and the worker's first panic hangs in the hook.
/// Replacing the hook *in the worker* would need the hook's own lock,
/// which may be held the same way; so the parent installs, once and before
/// forking, a hook that hands every panic of the parent to the hook it had
/// (nothing changes there) and prints a forked worker's panic with
/// [`say`]: the thread, the location and the message, no backtrace.
/// A hook the program sets after its first fork pool replaces this one;
/// the docs of `StartMethod::Fork` say so.
pub(crate) fn install_fork_safe_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FORKED.load(Ordering::Relaxed) {
                return previous(info);
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("Box<dyn Any>");
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("<unnamed>");
            match info.location() {
                Some(at) => say(format_args!("thread '{name}' panicked at {at}:\n{message}")),
                None => say(format_args!("thread '{name}' panicked:\n{message}")),
            }
        }));
    });
}

/// Refuses to start a pool inside a worker whose boot did not run (see the
/// module docs): called first thing by `build()`.
pub(crate) fn refuse_inside_a_worker() {
    if std::env::var_os(BOOT_ENV).is_some()
        || std::env::var_os(crate::fork_server::SERVER_ENV).is_some()
    {
        eprintln!(
            "concurrent-futures: this process was started as a process-pool worker, but the \
             worker boot did not run before main, so main ran instead and tried to start a \
             pool of its own. Make sure the worker binary links concurrent-futures. Exiting \
             with status {MISSING_BOOT_EXIT}."
        );
        std::process::exit(MISSING_BOOT_EXIT);
    }
}

/// Gives SIGTERM its default action (the process ends) and unblocks it,
/// for `terminate_workers()`: a worker inherits the parent's ignored
/// signals (across `fork` and `exec`) and a forked one its handlers and
/// signal mask, so a parent that ignores, handles or blocks SIGTERM would
/// otherwise leave its workers alive. Before the parent watcher starts,
/// so that its thread inherits the mask.
fn die_of_sigterm() {
    // SAFETY: plain libc calls on this process's own signal state; the
    // set is initialised by `sigemptyset` before use.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Greets the parent on the channel `socket` (which this process owns
/// from here on) and serves requests until the parent closes them or
/// dies. Returns the exit status. `memory_limit`: this process's
/// `RLIMIT_AS`, set once connected, before the initializer and the first
/// task.
pub(crate) fn serve(socket: RawFd, memory_limit: Option<u64>) -> i32 {
    die_of_sigterm();
    watch_parent(socket);
    keep_large_buffers();
    // SAFETY: the caller hands the descriptor over; nothing else owns it.
    let (responses, mut requests) = channel::split(unsafe { OwnedFd::from_raw_fd(socket) });
    if let Err(e) = responses.send(HELLO) {
        say(format_args!("cannot reach the pool: {e}"));
        return 3;
    }
    if let Some(bytes) = memory_limit
        && let Err(e) = limit_address_space(bytes)
    {
        say(format_args!(
            "cannot set the memory limit of {bytes} bytes: {e}"
        ));
        return 4;
    }
    let code = serve_loop(&mut requests, &responses);
    // The socket stays open until the process exits: shutting down this
    // side's writing would hang the socket up, which the parent watcher
    // takes for the parent's death.
    std::mem::forget((requests, responses));
    code
}

/// Sets this process's address-space limit (soft and hard) to `bytes`:
/// past it, `mmap` and `brk` fail, so an allocation fails and Rust aborts
/// the worker (SIGABRT), which dies alone.
/// A hard limit already lower than `bytes` is kept.
fn limit_address_space(bytes: u64) -> std::io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process, with valid pointers.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    limit.rlim_max = limit.rlim_max.min(bytes as libc::rlim_t);
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Lets glibc's allocator keep the worker's large buffers for reuse. Each
/// request arrives in a fresh buffer, and its argument and result are
/// decoded and encoded into fresh ones: with glibc's defaults a buffer of
/// a few hundred KiB or more is a fresh `mmap`, whose pages the kernel
/// faults in and zeroes on first touch and unmaps on free, every task.
/// Served
/// from the heap and not trimmed back, they are reused warm. The worker is
/// this crate's process (the program's `main` never runs in it), so the
/// setting is ours to make; a worker keeps at most 64 MiB of free heap.
/// Other allocators ignore it.
fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc malloc's tunables; a forked
    // worker's malloc locks were reset by glibc's fork.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Starts the thread that waits for the parent to die (see the module
/// docs): it polls the channel for a hang-up, which consumes nothing. A
/// bare `pthread`, not a `std::thread`: std's thread start-up takes a
/// process-wide lock (its stack-overflow bookkeeping), and a forked worker
/// inherits that lock held if another thread of the parent was starting
/// or ending at the fork; a std thread would then hang before running a
/// line, and the worker would outlive its parent. This thread only polls
/// and calls `_exit`, which need nothing from std.
fn watch_parent(socket: RawFd) {
    extern "C" fn watch(fd: *mut libc::c_void) -> *mut libc::c_void {
        let mut pollfd = libc::pollfd {
            fd: fd as usize as RawFd,
            // None asked for: poll reports hang-ups and errors regardless.
            events: 0,
            revents: 0,
        };
        loop {
            // SAFETY: polls one live pollfd on a descriptor this process
            // keeps open for its whole life.
            let n = unsafe { libc::poll(&mut pollfd, 1, -1) };
            if n > 0 && pollfd.revents != 0 {
                // The parent's end is closed: the parent is gone. Leave
                // now, whatever the main thread is running; nothing is
                // left to report to.
                // SAFETY: `_exit` is always sound.
                unsafe { libc::_exit(0) };
            }
        }
    }
    // SAFETY: `attr` is initialised before use and destroyed after; the
    // thread gets the fd by value (smuggled in the pointer) and touches no
    // memory of ours. It is never joined: it ends with the process.
    let started = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut thread: libc::pthread_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, 64 * 1024);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let rc = libc::pthread_create(
            &mut thread,
            &attr,
            watch,
            socket as usize as *mut libc::c_void,
        );
        libc::pthread_attr_destroy(&mut attr);
        rc == 0
    };
    if !started {
        say(format_args!("cannot watch the parent; exiting"));
        // SAFETY: `_exit` is always sound to call.
        unsafe { libc::_exit(4) };
    }
}

/// The worker's loop: one request in, one response out, until the parent
/// closes the request channel (shutdown, retirement) or dies.
fn serve_loop(requests: &mut Receiver, responses: &Sender) -> i32 {
    let mut out = Vec::with_capacity(256);
    loop {
        let Ok(message) = requests.recv() else {
            return 0;
        };
        out.clear();
        if let Err(e) = serve::answer(message, &mut out) {
            // Not from our parent's encoder: run nothing, and let the
            // parent see this worker go.
            say(format_args!("refusing a request: {e}"));
            return 5;
        }
        if responses.send(&out).is_err() {
            return 0;
        }
        // Keep the buffer for the next result of the same size, unless an
        // outlier made it huge.
        if out.capacity() > 64 << 20 {
            out = Vec::with_capacity(256);
        }
    }
}

/// Forged requests: a worker runs only registered tasks on arguments that
/// decode as their type, and refuses bytes that are not a request at all.
/// The worker's loop runs here on a thread, over in-process channels, with
/// the bytes a process that got hold of its channel could send.
#[cfg(test)]
mod forged_requests {
    use std::any::TypeId;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use concurrent_futures_task_wire::codec;
    use concurrent_futures_task_wire::registry::{TASKS, TaskEntry, invoke};
    use concurrent_futures_task_wire::wire::{self, Outcome, Response};

    use crate::channel;

    /// How many times [`triple`] ran.
    static RUNS: AtomicUsize = AtomicUsize::new(0);

    fn triple((a, b, c): (u64, u64, u64)) -> u64 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        a + b + c
    }

    const NAME: &str = "forged_requests::triple";

    // What `#[task]` generates, written out (the macro names the facade
    // crate, which this crate's tests cannot see).
    #[linkme::distributed_slice(TASKS)]
    static TRIPLE: TaskEntry = TaskEntry {
        name: NAME,
        arg: TypeId::of::<(u64, u64, u64)>,
        ret: TypeId::of::<u64>,
        addr: || triple as fn((u64, u64, u64)) -> u64 as usize,
        invoke: |bytes, out| invoke(triple, bytes, out),
    };

    /// Runs the worker's loop on `requests`, one at a time; returns each
    /// response (`None` once the loop has ended) and the loop's status.
    fn serve(requests: Vec<Vec<u8>>) -> (Vec<Option<Vec<u8>>>, i32) {
        let (ours, theirs) = channel::socket_pair().unwrap();
        let (to_worker, mut from_worker) = channel::split(ours);
        let (worker_out, mut worker_in) = channel::split(theirs);
        let worker = std::thread::spawn(move || super::serve_loop(&mut worker_in, &worker_out));
        let mut answers = Vec::new();
        for request in requests {
            if to_worker.send(&request).is_err() {
                answers.push(None);
                continue;
            }
            answers.push(from_worker.recv().ok().map(<[u8]>::to_vec));
        }
        drop(to_worker);
        (answers, worker.join().unwrap())
    }

    fn run(task: &str, arg: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        wire::request_header(&mut m, wire::REQ_RUN, 1, task);
        m.extend_from_slice(arg);
        m
    }

    fn outcome(answer: &Option<Vec<u8>>) -> Outcome<'_> {
        match wire::decode_response(answer.as_deref().expect("an answer")) {
            Ok(Response::Done { id: 1, outcome }) => outcome,
            other => panic!("not the answer to request 1: {other:?}"),
        }
    }

    #[test]
    fn unregistered_task_wrong_type_and_garbage_are_refused() {
        let good = codec::encode(&(1_u64, 2_u64, 3_u64)).unwrap();
        let (answers, status) = serve(vec![
            // A name no `#[task]` registered: refused, nothing runs.
            run("std::process::exit", &codec::encode(&0_i32).unwrap()),
            // The right name, an argument of another type: refused.
            run(NAME, &codec::encode(&"rm -rf /").unwrap()),
            run(NAME, &[]),
            // The worker carries on: a well-formed request still runs.
            run(NAME, &good),
            // Bytes that are no request: the worker stops serving.
            b"\xffnot a request".to_vec(),
            run(NAME, &good),
        ]);
        assert_eq!(
            outcome(&answers[0]),
            Outcome::UnknownTask("std::process::exit")
        );
        for answer in &answers[1..3] {
            match outcome(answer) {
                Outcome::DecodeArgs { type_name, .. } => {
                    assert_eq!(type_name, std::any::type_name::<(u64, u64, u64)>())
                }
                other => panic!("expected DecodeArgs, got {other:?}"),
            }
        }
        assert_eq!(
            outcome(&answers[3]),
            Outcome::Ok(&codec::encode(&6_u64).unwrap())
        );
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "only the valid request ran");
        assert_eq!(answers[4], None, "garbage gets no answer");
        assert_eq!(answers[5], None, "nor does anything after it");
        assert_eq!(status, 5, "the worker stops on a request it cannot parse");
    }
}
