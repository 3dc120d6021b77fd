//! Starting, connecting, stopping and reaping worker processes (the
//! parent's side of `worker.rs`).
//!
//! Each worker belongs to one handler thread of the pool, which starts it,
//! is the only thread that waits for it (`waitpid` on that pid, never on
//! `-1`, so other children of the program are left alone), and reaps it
//! before starting the next: no zombie outlives its handler.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::channel::{self, Receiver, Sender};
use crate::fork_server::ForkServer;
use crate::worker;

/// How a worker ended: the signal that killed it or its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Death {
    pub signal: Option<i32>,
    pub exit_code: Option<i32>,
}

impl Death {
    fn describe(self) -> String {
        match (self.signal, self.exit_code) {
            (Some(sig), _) => format!(
                "was killed by signal {sig}{}",
                Signal::try_from(sig)
                    .map(|s| format!(" ({})", s.as_str()))
                    .unwrap_or_default()
            ),
            (None, Some(code)) => format!("exited with status {code}"),
            (None, None) => "ended".to_owned(),
        }
    }
}

/// A connected worker: its pid and the two directions of its channel.
pub(crate) struct Worker {
    pub pid: Pid,
    /// For the pool's death watch (`deaths.rs`); none on kernels before
    /// 5.3.
    pub pidfd: Option<OwnedFd>,
    pub requests: Sender,
    pub responses: Receiver,
}

/// What every start needs.
pub(crate) struct Launcher {
    pub program: Option<PathBuf>,
    pub start_timeout: Duration,
    /// Each worker's `RLIMIT_AS`, in bytes.
    pub memory_limit: Option<u64>,
    /// With `StartMethod::ForkServer`: the server that forks the workers.
    pub fork_server: Option<ForkServer>,
}

/// A child that has been started but has not said hello yet: its pid and
/// the parent's end of its channel.
pub(crate) struct Started {
    pid: Pid,
    socket: OwnedFd,
}

impl Started {
    /// A child `pid` just started, with the parent's end of its channel.
    pub(crate) fn new(pid: Pid, socket: OwnedFd) -> Started {
        Started { pid, socket }
    }

    /// Kills and reaps a child that will never be connected.
    pub(crate) fn abandon(self) {
        kill_and_reap(self.pid);
    }
}

/// This process's own program image (see [`Launcher::program`]).
pub(crate) const SELF_EXE: &str = "/proc/self/exe";

/// The parent's and the child's end of a new worker's (or fork server's)
/// channel. The parent's end asks the kernel for the credentials of
/// whoever writes to it (`SO_PASSCRED`), for the greeting's check.
pub(crate) fn worker_channel() -> Result<(OwnedFd, OwnedFd), String> {
    let (ours, theirs) = channel::socket_pair()
        .map_err(|e| describe_start_error("cannot create a worker's channel", &e))?;
    set_passcred(&ours, true).map_err(|e| format!("cannot set up a worker's channel: {e}"))?;
    Ok((ours, theirs))
}

impl Launcher {
    /// The program workers (and a fork server) run: the builder's
    /// `worker_program`, or this very program image, `/proc/self/exe`.
    /// That link is resolved by the kernel in the starting child, a copy
    /// of this process, so it reaches the image this process runs even
    /// after its file was deleted or replaced by a new one at the same
    /// path (an upgrade, a `cargo build`): a replacement worker never runs
    /// another program than its pool.
    pub(crate) fn program(&self) -> Result<PathBuf, String> {
        Ok(match &self.program {
            Some(p) => p.clone(),
            None => PathBuf::from(SELF_EXE),
        })
    }

    /// Starts a worker: by the fork server if the pool has one, else by
    /// spawning it.
    pub(crate) fn start(&self) -> Result<Started, String> {
        match &self.fork_server {
            Some(server) => server.fork(&self.program()?, self.start_timeout, self.memory_limit),
            None => self.spawn(),
        }
    }

    /// Starts the current executable (or the named program) as a worker.
    /// Its end of the channel becomes its stdin: the one descriptor that
    /// `Command` passes without a `pre_exec` hook, so std starts the child
    /// with `posix_spawn` (vfork-style), whose cost does not grow with this
    /// process's memory. The worker moves it off stdin first thing. The
    /// environment says only that the process is a worker (and its memory
    /// limit): it holds nothing another process could use.
    pub(crate) fn spawn(&self) -> Result<Started, String> {
        // Reading the boot entry keeps the linker from dropping it, which
        // would leave spawned workers running `main`.
        // SAFETY: a plain read of an initialised static.
        let _boot = unsafe { std::ptr::read_volatile(&raw const worker::BOOT) };
        let program = self.program()?;
        let (ours, theirs) = worker_channel()?;
        let child = command(&program)
            .arg(worker::WORKER_ARG)
            .env(worker::BOOT_ENV, self.memory_limit.unwrap_or(0).to_string())
            .stdin(Stdio::from(theirs))
            .spawn()
            .map_err(|e| {
                describe_start_error(
                    &format!("cannot spawn the worker {}", program.display()),
                    &e,
                )
            })?;
        Ok(Started {
            pid: Pid::from_raw(child.id() as i32),
            socket: ours,
        })
    }

    /// Forks a worker. The child closes every descriptor but stdio and its
    /// end of the channel, says hello, serves, and leaves with `_exit` (no
    /// destructor or `atexit` handler of the parent's runs twice).
    ///
    /// Only sound to call before the pool starts threads of its own; see
    /// `StartMethod::Fork` for the hazard of other threads in the parent.
    pub(crate) fn fork(&self) -> Result<Started, String> {
        prepare_fork();
        let (ours, theirs) = worker_channel()?;
        // SAFETY: the child runs only the worker (hello, serve, `_exit`)
        // and never returns into the caller. That it may allocate and take
        // locks after forking a multi-threaded parent is the documented
        // hazard of the fork start method.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                worker::FORKED.store(true, Ordering::Relaxed);
                let fd = theirs.as_raw_fd();
                // `ours` (and every other descriptor) is closed here; the
                // child never drops its `OwnedFd`s, it `_exit`s.
                let code = match close_all_but(fd) {
                    Ok(()) => worker::serve(fd, self.memory_limit),
                    Err(e) => {
                        worker::say(format_args!("cannot close inherited descriptors: {e}"));
                        worker::SETTLE_FAILED_EXIT
                    }
                };
                // SAFETY: `_exit` is always sound.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => {
                drop(theirs);
                Ok(Started {
                    pid: child,
                    socket: ours,
                })
            }
            Err(e) => Err(format!("cannot fork a worker: {e}")),
        }
    }

    /// The hand-off: waits for a started child's hello on its channel and
    /// checks it. The hello must be the worker's exact greeting, written by
    /// the very process that was started: the kernel tells who wrote it
    /// (`SCM_CREDENTIALS`), so no other process, not even one that somehow
    /// got hold of the socket, can pass for the worker. A child that
    /// exits, stays silent past the start timeout or says anything else is
    /// killed, reaped and reported.
    pub(crate) fn connect(&self, started: Started) -> Result<Worker, String> {
        let Started { pid, socket } = started;
        await_greeting(
            pid,
            &socket,
            &worker::hello_frame(),
            "worker",
            self.start_timeout,
        )?;
        // Sound: `pid` is our child, not yet reaped, so not reused. A
        // worker the death watch could not watch is not connected: its
        // death could go unseen (see `deaths.rs`).
        let pidfd = channel::pidfd(pid.as_raw()).map_err(|e| {
            kill_and_reap(pid);
            describe_start_error(&format!("cannot watch the worker {pid} (pidfd_open)"), &e)
        })?;
        let (requests, responses) = channel::split(socket);
        Ok(Worker {
            pid,
            pidfd,
            requests,
            responses,
        })
    }
}

/// The hand-off's check (see [`Launcher::connect`]): waits up to `timeout`
/// for `greeting` on `socket`, the parent's end of the channel of the
/// started child `pid` (a `what`), written by that very process. On any
/// failure the child is killed and reaped, and the reason returned. On
/// success the socket stops asking for credentials.
pub(crate) fn await_greeting(
    pid: Pid,
    socket: &OwnedFd,
    greeting: &[u8],
    what: &str,
    timeout: Duration,
) -> Result<(), String> {
    let fd = socket.as_raw_fd();
    let deadline = Instant::now() + timeout;
    let mut got = Vec::with_capacity(greeting.len());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let readable =
            channel::readable_within(fd, left.min(Duration::from_millis(20))).map_err(|e| {
                kill_and_reap(pid);
                format!("{what} {pid}: cannot wait for its hello: {e}")
            })?;
        if readable {
            match read_with_credentials(fd, greeting.len() - got.len()) {
                Ok((bytes, _)) if bytes.is_empty() => {
                    // Killed first in case it closed the socket and lives
                    // on; an exited child keeps its status.
                    let death = kill_and_reap(pid);
                    return Err(format!(
                        "{what} {pid} {} before it connected{}",
                        death.describe(),
                        missing_boot_hint(death)
                    ));
                }
                Ok((bytes, writer)) => {
                    if writer != Some(pid.as_raw()) {
                        kill_and_reap(pid);
                        return Err(format!(
                            "{what} {pid}: its channel was written to by another process \
                             ({}); refused",
                            writer.map_or("unknown".to_owned(), |p| format!("pid {p}"))
                        ));
                    }
                    got.extend_from_slice(&bytes);
                    if !greeting.starts_with(&got) {
                        kill_and_reap(pid);
                        return Err(format!(
                            "{what} {pid} did not greet as a {what}; refused. Is the program \
                             a binary that links concurrent-futures?"
                        ));
                    }
                    if got.len() == greeting.len() {
                        return set_passcred_raw(fd, false).map_err(|e| {
                            kill_and_reap(pid);
                            format!("{what} {pid}: cannot set up its channel: {e}")
                        });
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) => {
                    let death = kill_and_reap(pid);
                    return Err(format!(
                        "{what} {pid} {} before it connected ({e}){}",
                        death.describe(),
                        missing_boot_hint(death)
                    ));
                }
            }
            continue;
        }
        if let Some(death) = try_reap(pid) {
            return Err(format!(
                "{what} {pid} {} before it connected{}",
                death.describe(),
                missing_boot_hint(death)
            ));
        }
        if Instant::now() >= deadline {
            kill_and_reap(pid);
            return Err(format!(
                "{what} {pid} did not connect within {timeout:?}; it was killed. Is the \
                 program a binary that links concurrent-futures?"
            ));
        }
    }
}

/// A command for `program`; for this process's own image, with the
/// executable's name as `argv[0]`, as `ps` would show a normal start.
pub(crate) fn command(program: &std::path::Path) -> Command {
    let mut command = Command::new(program);
    if program.as_os_str() == SELF_EXE
        && let Ok(exe) = std::env::current_exe()
    {
        use std::os::unix::process::CommandExt;
        command.arg0(exe);
    }
    command
}

/// An error starting a worker, saying so plainly when it is the
/// descriptors that ran out (see [`explained`]).
pub(crate) fn describe_start_error(what: &str, e: &io::Error) -> String {
    match out_of_descriptors(e) {
        Some(why) => format!("{what}: {e}: {why}"),
        None => format!("{what}: {e}"),
    }
}

/// `e`, with the same words as [`describe_start_error`] when it is the
/// descriptors that ran out; any other error as it is. For errors passed
/// on as `io::Error`, which the caller words.
pub(crate) fn explained(e: io::Error) -> io::Error {
    match out_of_descriptors(&e) {
        Some(why) => io::Error::new(e.kind(), format!("{e}: {why}")),
        None => e,
    }
}

/// What a pool needs to know when a descriptor could not be created
/// because there are none left: the process's limit (`EMFILE`), or the
/// system's (`ENFILE`). `None` for any other error.
fn out_of_descriptors(e: &io::Error) -> Option<String> {
    const NEEDS: &str =
        "each worker holds two (its socket and a pidfd) and needs one more while it starts";
    match e.raw_os_error()? {
        libc::EMFILE => {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: a plain system call with a valid out-pointer.
            let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
            let limit = if known && limit.rlim_cur != libc::RLIM_INFINITY {
                limit.rlim_cur.to_string()
            } else {
                "unknown".to_owned()
            };
            Some(format!(
                "the process has run out of file descriptors: its limit, RLIMIT_NOFILE \
                 (`ulimit -n`), is {limit}; {NEEDS}"
            ))
        }
        libc::ENFILE => Some(format!(
            "the system has run out of file descriptors (its limit is \
             /proc/sys/fs/file-max, not RLIMIT_NOFILE); {NEEDS}"
        )),
        _ => None,
    }
}

fn set_passcred(socket: &OwnedFd, on: bool) -> io::Result<()> {
    set_passcred_raw(socket.as_raw_fd(), on)
}

fn set_passcred_raw(fd: RawFd, on: bool) -> io::Result<()> {
    let value: libc::c_int = on.into();
    // SAFETY: a plain system call with a pointer to a live int of the
    // right size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads up to `max` bytes that are waiting on `fd` (never blocking), with
/// the pid of the process that wrote them, as the kernel reports it.
/// Empty bytes: end-of-file.
fn read_with_credentials(fd: RawFd, max: usize) -> io::Result<(Vec<u8>, Option<i32>)> {
    let mut bytes = vec![0_u8; max.max(1)];
    // Room for one SCM_CREDENTIALS message, aligned for cmsghdr.
    let mut control = [0_u64; 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: max.max(1),
    };
    // SAFETY: a zeroed msghdr is valid; it points at `iov` (into `bytes`)
    // and at `control`, both alive and large enough for the lengths given.
    let (n, msg) = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
        (n, msg)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    bytes.truncate(n as usize);
    let mut writer = None;
    // SAFETY: the CMSG macros walk the control buffer recvmsg filled in,
    // within `msg_controllen`; an SCM_CREDENTIALS message holds a ucred.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
            {
                let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                writer = Some(cred.pid);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((bytes, writer))
}

fn missing_boot_hint(death: Death) -> String {
    if death.exit_code == Some(worker::MISSING_BOOT_EXIT) {
        "; it ran main instead of serving: the worker boot of concurrent-futures did not run \
         in that binary"
            .to_owned()
    } else {
        String::new()
    }
}

/// Closes every descriptor above stdio except `keep` (which must be
/// above stdio). Uses `close_range` (Linux 5.9); where the kernel has none,
/// closes what `/proc/self/fd` lists. Allocates nothing and takes no lock,
/// so a forked child may call it.
pub(crate) fn close_all_but(keep: RawFd) -> io::Result<()> {
    if keep < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {keep} is not above stdio"),
        ));
    }
    let keep_u = keep as libc::c_uint;
    // SAFETY: close_range only closes descriptors of this process; the
    // caller owns nothing the closed ones back.
    let r = unsafe {
        let below = if keep_u > 3 {
            libc::close_range(3, keep_u - 1, 0)
        } else {
            0
        };
        if below == 0 {
            libc::close_range(keep_u + 1, libc::c_uint::MAX, 0)
        } else {
            below
        }
    };
    if r == 0 {
        return Ok(());
    }
    close_listed_but(keep)
}

/// The fallback of [`close_all_but`]: reads `/proc/self/fd` with
/// `getdents64` into a buffer on the stack and closes each descriptor
/// listed but stdio, `keep` and the directory's own, until a pass finds
/// nothing more to close.
fn close_listed_but(keep: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: opens a directory with a NUL-terminated literal path.
        let dir = unsafe {
            libc::open(
                c"/proc/self/fd".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if dir < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut found = [0 as RawFd; 256];
        let mut count = 0;
        let mut buf = [0_u64; 512];
        'read: loop {
            // SAFETY: getdents64 writes at most `size_of_val(&buf)` bytes
            // into `buf`, which is 8-byte aligned as dirent64 needs.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    dir,
                    buf.as_mut_ptr(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                // SAFETY: closing the directory we opened.
                unsafe { libc::close(dir) };
                return Err(e);
            }
            if n == 0 {
                break;
            }
            let bytes: &[u8] =
                // SAFETY: the first `n` bytes of `buf` were written by the
                // kernel; viewing u64s as bytes is always valid.
                unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n as usize) };
            let mut at = 0;
            while at + 19 <= bytes.len() {
                // dirent64: ino u64, off i64, reclen u16, type u8, name.
                let reclen = u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
                if reclen == 0 {
                    break;
                }
                let name = &bytes[at + 19..(at + reclen).min(bytes.len())];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                let mut fd: RawFd = 0;
                let mut digits = !name.is_empty();
                for &c in name {
                    digits &= c.is_ascii_digit();
                    fd = fd
                        .saturating_mul(10)
                        .saturating_add((c.wrapping_sub(b'0')) as RawFd);
                }
                if digits && fd > 2 && fd != keep && fd != dir {
                    found[count] = fd;
                    count += 1;
                    if count == found.len() {
                        break 'read;
                    }
                }
                at += reclen;
            }
        }
        // SAFETY: closing descriptors of this process that the listing
        // named (and the directory we opened); the caller owns nothing
        // they back.
        unsafe {
            libc::close(dir);
            for &fd in &found[..count] {
                libc::close(fd);
            }
        }
        if count == 0 {
            return Ok(());
        }
    }
}

fn death_of(status: WaitStatus) -> Option<Death> {
    match status {
        WaitStatus::Exited(_, code) => Some(Death {
            signal: None,
            exit_code: Some(code),
        }),
        WaitStatus::Signaled(_, sig, _) => Some(Death {
            signal: Some(sig as i32),
            exit_code: None,
        }),
        _ => None,
    }
}

/// Completes, in this thread, every lazy initialisation a forked worker
/// relies on. A `Once` that another thread of the parent is running at the
/// instant of the fork stays "running" forever in the child, which would
/// then block on it: our task table is such a `Once`. Initialised here, it
/// is complete in every child.
fn prepare_fork() {
    worker::install_fork_safe_panic_hook();
    concurrent_futures_task_wire::registry::by_task_name("");
}

/// Waits for `pid` to end and reaps it.
pub(crate) fn reap(pid: Pid) -> Death {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(death) = death_of(status) {
                    return death;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: someone else reaped it (a `waitpid(-1)` elsewhere in
            // the program); its status is lost.
            Err(_) => {
                return Death {
                    signal: None,
                    exit_code: None,
                };
            }
        }
    }
}

/// Reaps `pid` if it has ended.
fn try_reap(pid: Pid) -> Option<Death> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => death_of(status),
        Err(_) => Some(Death {
            signal: None,
            exit_code: None,
        }),
    }
}

/// SIGKILLs `pid` and reaps it.
pub(crate) fn kill_and_reap(pid: Pid) -> Death {
    let _ = kill(pid, Signal::SIGKILL);
    reap(pid)
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The hand-off is the started child's alone: the kernel names the
/// writer of the hello, and anything but the worker's exact greeting from
/// the started pid is refused and the child killed and reaped.
#[cfg(test)]
mod hand_off {
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use nix::unistd::Pid;

    use super::{Launcher, Started};
    use crate::worker;

    fn launcher() -> Launcher {
        Launcher {
            program: None,
            start_timeout: Duration::from_secs(10),
            memory_limit: None,
            fork_server: None,
        }
    }

    /// Starts `program args` with the child's end of a fresh channel as
    /// stdin; returns it as started, and the child's end (still open here).
    fn start(program: &str, args: &[&str]) -> (Started, std::os::fd::OwnedFd) {
        let (ours, theirs) = super::worker_channel().unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::from(theirs.try_clone().unwrap()))
            .spawn()
            .unwrap();
        let started = Started {
            pid: Pid::from_raw(child.id() as i32),
            socket: ours,
        };
        // `connect` reaps it, by pid.
        std::mem::forget(child);
        (started, theirs)
    }

    fn assert_reaped(pid: Pid) {
        // Killed and reaped: the pid is no child of ours any more.
        assert!(nix::sys::wait::waitpid(pid, None).is_err());
    }

    /// Another process (this one) writes the perfect greeting into the
    /// channel of a started child: the kernel says who wrote it, and it
    /// is refused.
    #[test]
    fn a_greeting_from_another_process_is_refused() {
        let (started, theirs) = start("sleep", &["30"]);
        let pid = started.pid;
        let frame = worker::hello_frame();
        // SAFETY: writes a live buffer to a socket we own.
        let n = unsafe { libc::write(theirs.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        assert_eq!(n as usize, frame.len());
        let refused = launcher().connect(started).err().expect("refused");
        assert!(
            refused.contains("written to by another process")
                && refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        assert_reaped(pid);
    }

    /// The started child itself writes something else: refused.
    #[test]
    fn a_child_that_does_not_greet_as_a_worker_is_refused() {
        let (started, theirs) = start("sh", &["-c", "printf 'GET / HTTP/1.0\\r\\n' >&0; sleep 30"]);
        drop(theirs);
        let pid = started.pid;
        let refused = launcher().connect(started).err().expect("refused");
        assert!(refused.contains("did not greet as a worker"), "{refused}");
        assert_reaped(pid);
    }

    /// A child that exits before it says anything is reported with its
    /// status; one that stays silent is killed at the start timeout.
    #[test]
    fn a_child_that_exits_or_stays_silent_is_reported() {
        let (started, theirs) = start("sh", &["-c", "exit 7"]);
        drop(theirs);
        let err = launcher().connect(started).err().expect("reported");
        assert!(
            err.contains("exited with status 7 before it connected"),
            "{err}"
        );

        let (started, theirs) = start("sleep", &["30"]);
        drop(theirs);
        let pid = started.pid;
        let quick = Launcher {
            start_timeout: Duration::from_millis(200),
            ..launcher()
        };
        let err = quick.connect(started).err().expect("reported");
        assert!(err.contains("did not connect within"), "{err}");
        assert_reaped(pid);
    }

    /// The real thing: the unit-test binary started as a worker greets
    /// from its own pid and is accepted, and nothing about its channel is
    /// in its environment or argv.
    #[test]
    fn a_spawned_worker_is_accepted_and_its_environment_holds_no_channel() {
        let launcher = launcher();
        let started = launcher.spawn().unwrap();
        let pid = started.pid;
        let worker = launcher.connect(started).expect("the real worker connects");
        assert_eq!(worker.pid, pid);
        // Read once it has greeted, so its exec is complete (the kernel
        // sets up argv after a starting parent may already look). The
        // environment's strings stay as they were at the exec.
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        // The role and the memory limit, a number: nothing to connect to.
        for var in environ.split(|&b| b == 0) {
            let var = String::from_utf8_lossy(var);
            if let Some(value) = var.strip_prefix(&format!("{}=", worker::BOOT_ENV)) {
                assert!(value.parse::<u64>().is_ok(), "{var}");
            }
        }
        let args: Vec<_> = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        assert_eq!(args.len(), 2, "the program and {}", worker::WORKER_ARG);
        assert_eq!(args[1], worker::WORKER_ARG.as_bytes());
        drop(worker);
        assert_eq!(
            super::reap(pid).exit_code,
            Some(0),
            "it leaves once told to"
        );
    }
}
