//! `StartMethod::ForkServer`: a small server process that forks workers on
//! request, CPython's `forkserver`.
//!
//! **Why.** Forking the program itself is fast but hazardous once it runs
//! other threads (a lock one of them holds stays held in the child);
//! executing the program afresh (`Spawn`) is safe but pays an `exec` and
//! the loader for every worker. The server is the program executed once,
//! at `build()`: a fresh process with one thread that never runs `main`
//! (its role is recognised before `main`, like a spawned worker's). It
//! forks every worker of its pool from that clean, small state, so each
//! start is a fork of a process of a few MiB, safe whatever the program's
//! threads are doing.
//!
//! **Parentage.** The server forks with `clone(CLONE_PARENT)`: each worker
//! is a child of the *pool's* process, not of the server, so the pool
//! waits for, signals, watches (pidfd) and reaps it exactly as a spawned
//! worker, and a worker outlives the server if it must. (The child of a
//! raw `clone` skips glibc's `fork` bookkeeping: atfork handlers and the
//! reset of locks other threads held. The server has no other thread and
//! registers no handler, and glibc's `raise`, which `abort` uses, asks the
//! kernel for the thread id rather than trusting its cache.)
//!
//! **Protocol.** The server's channel is a socket pair, its end inherited
//! as stdin exactly as a spawned worker's channel (`process.rs`), and the
//! hand-off is the same: a fixed greeting, accepted only from the pid that
//! was started (`SCM_CREDENTIALS`). Then, one request at a time: the pool
//! sends the worker's memory limit (`u64`, `0`: none) with the worker's
//! end of a fresh channel attached (`SCM_RIGHTS`); the server forks, the
//! child closes everything but that channel and stdio and serves as a
//! worker, which greets the pool on it (checked like any worker's); the
//! server closes its copy and answers the child's pid (`i32`; a negative
//! errno if the fork failed). End-of-file on its channel (the pool dropped
//! it, or died) ends the server.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use nix::unistd::Pid;

use crate::process::{self, Started};
use crate::worker;

/// The server's first words on its channel.
const GREETING: &[u8] = b"concurrent-futures fork server, protocol 2";

/// The variable that tells a process it is a fork server (its channel is
/// its stdin). Holds nothing another process could use.
pub(crate) const SERVER_ENV: &str = "CONCURRENT_FUTURES_FORK_SERVER";

/// The argument a fork server gets (see `worker::WORKER_ARG`).
pub(crate) const SERVER_ARG: &str = "--concurrent-futures-fork-server";

/// The greeting as it travels: one frame.
fn greeting_frame() -> Vec<u8> {
    let mut frame = (GREETING.len() as u64).to_le_bytes().to_vec();
    frame.extend_from_slice(GREETING);
    frame
}

/// The pool's side: the running server, started again if it has died.
pub(crate) struct ForkServer {
    server: Mutex<Option<Running>>,
}

struct Running {
    pid: Pid,
    socket: OwnedFd,
}

impl Drop for Running {
    /// Closes the server's channel, which ends it, and reaps it.
    fn drop(&mut self) {
        // SAFETY: a plain system call on a descriptor we own.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_RDWR) };
        process::reap(self.pid);
    }
}

impl ForkServer {
    /// A server not started yet: the first [`fork`](Self::fork) starts it.
    pub(crate) fn new() -> ForkServer {
        ForkServer {
            server: Mutex::new(None),
        }
    }

    /// Starts the server now (`build()` does, so that it is there before
    /// the first worker is wanted).
    pub(crate) fn start(&self, program: &Path, timeout: Duration) -> Result<(), String> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if server.is_none() {
            *server = Some(start(program, timeout)?);
        }
        Ok(())
    }

    /// Has the server fork a worker with the memory limit given, whose
    /// channel's parent end is returned with its pid, for the usual
    /// hand-off. A server that has died is started again, once.
    pub(crate) fn fork(
        &self,
        program: &Path,
        timeout: Duration,
        memory_limit: Option<u64>,
    ) -> Result<Started, String> {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        let mut last_error = String::new();
        for _ in 0..2 {
            if server.is_none() {
                *server = Some(start(program, timeout)?);
            }
            let running = server.as_ref().expect("just started");
            let (ours, theirs) = process::worker_channel()?;
            match request(&running.socket, memory_limit.unwrap_or(0), &theirs) {
                Ok(pid) if pid > 0 => return Ok(Started::new(Pid::from_raw(pid), ours)),
                Ok(errno) => {
                    return Err(format!(
                        "the fork server could not fork a worker: {}",
                        io::Error::from_raw_os_error(-errno)
                    ));
                }
                Err(e) => {
                    // The server is gone (killed, or out of resources):
                    // reap it and start another.
                    last_error = format!("the fork server {} stopped answering: {e}", running.pid);
                    *server = None;
                }
            }
        }
        Err(last_error)
    }
}

/// Starts a server running `program` and checks its greeting.
fn start(program: &Path, timeout: Duration) -> Result<Running, String> {
    let (ours, theirs) = process::worker_channel()?;
    let child = process::command(program)
        .arg(SERVER_ARG)
        .env(SERVER_ENV, "1")
        .stdin(Stdio::from(theirs))
        .spawn()
        .map_err(|e| {
            process::describe_start_error(
                &format!("cannot start the fork server {}", program.display()),
                &e,
            )
        })?;
    let pid = Pid::from_raw(child.id() as i32);
    // Reaped by `Running`'s drop, or by `await_greeting` on failure.
    drop(child);
    process::await_greeting(pid, &ours, &greeting_frame(), "fork server", timeout)?;
    Ok(Running { pid, socket: ours })
}

/// One request: the limit and the worker's channel out, the pid back.
fn request(socket: &OwnedFd, memory_limit: u64, channel: &OwnedFd) -> io::Result<i32> {
    let bytes = memory_limit.to_le_bytes();
    send_with_fd(socket.as_raw_fd(), &bytes, channel.as_raw_fd())?;
    let mut answer = [0_u8; 4];
    read_exact(socket.as_raw_fd(), &mut answer)?;
    Ok(i32::from_le_bytes(answer))
}

/// Sends `bytes` with `fd` attached (`SCM_RIGHTS`).
fn send_with_fd(socket: RawFd, bytes: &[u8], fd: RawFd) -> io::Result<()> {
    // Room for one cmsghdr and one int, aligned for cmsghdr.
    let mut control = [0_u64; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: a zeroed msghdr is valid; it points at `iov` (into `bytes`)
    // and at `control`, which is large and aligned enough for one
    // SCM_RIGHTS message of one descriptor, written through the CMSG
    // macros within `msg_controllen`.
    let n = unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "a short send"));
    }
    Ok(())
}

/// Receives up to `buf.len()` bytes and at most one attached descriptor.
/// `Ok((0, None))`: end-of-file.
fn recv_with_fd(socket: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut control = [0_u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; it points at `iov` (into `buf`)
    // and at `control`, alive and as long as `msg_controllen` says. The
    // CMSG macros walk what recvmsg filled in; each descriptor received
    // is new and owned by nothing else (MSG_CMSG_CLOEXEC marks it).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = loop {
            let n = libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fd = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let received = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    // One descriptor is expected; any extra is closed.
                    if fd.is_none() {
                        fd = Some(received);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok((n as usize, fd))
    }
}

fn read_exact(socket: RawFd, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reads into the live remainder of `buf`.
        let n = unsafe { libc::read(socket, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n > 0 {
            done += n as usize;
        } else if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        } else {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn write_all(socket: RawFd, bytes: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: writes from the live remainder of `bytes`.
        let n = unsafe {
            libc::send(
                socket,
                bytes[done..].as_ptr().cast(),
                bytes.len() - done,
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            done += n as usize;
        } else {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The server's side: greets on `control` and forks a worker per request
/// until the pool closes the channel. Runs before `main`, in the process's
/// only thread. Returns the exit status.
pub(crate) fn serve(control: RawFd) -> i32 {
    if let Err(e) = write_all(control, &greeting_frame()) {
        worker::say(format_args!("fork server: cannot reach the pool: {e}"));
        return 3;
    }
    loop {
        let mut limit = [0_u8; 8];
        let (n, channel) = match recv_with_fd(control, &mut limit) {
            Ok(got) => got,
            Err(e) => {
                worker::say(format_args!("fork server: cannot read a request: {e}"));
                return 3;
            }
        };
        if n == 0 {
            return 0;
        }
        let answer = match channel {
            Some(channel) if n == limit.len() => {
                let limit = Some(u64::from_le_bytes(limit)).filter(|&bytes| bytes > 0);
                let pid = fork_worker(control, channel.as_raw_fd(), limit);
                // The worker has its copy; ours goes.
                drop(channel);
                pid
            }
            // Out of protocol: answer an error, fork nothing.
            _ => -libc::EPROTO,
        };
        if write_all(control, &answer.to_le_bytes()).is_err() {
            return 0;
        }
    }
}

/// Forks one worker (a child of the pool's process: `CLONE_PARENT`) that
/// serves on `channel`; returns its pid, or a negative errno.
fn fork_worker(control: RawFd, channel: RawFd, memory_limit: Option<u64>) -> i32 {
    // SAFETY: a fork-like clone (no CLONE_VM: the child gets a copy of this
    // address space and continues on its own copy of this stack). This
    // process has no other thread, so no lock is held by a thread that
    // would be missing in the child (see the module docs).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT | libc::SIGCHLD,
            0,
            0,
            0,
            0,
        )
    };
    if pid < 0 {
        // SAFETY: reading errno is always sound.
        return -unsafe { *libc::__errno_location() };
    }
    if pid > 0 {
        return pid as i32;
    }
    // The worker: keep stdio and its channel, nothing of the server's.
    let _ = control;
    let code = match process::close_all_but(channel) {
        Ok(()) => worker::serve(channel, memory_limit),
        Err(e) => {
            worker::say(format_args!("cannot close inherited descriptors: {e}"));
            worker::SETTLE_FAILED_EXIT
        }
    };
    worker::finish(code)
}

/// The server as the pool uses it, with this unit-test binary as the
/// program (its boot recognises the server's role before `main`).
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nix::sys::signal::{Signal, kill};

    use super::*;
    use crate::process::Launcher;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn launcher() -> Launcher {
        Launcher {
            program: None,
            start_timeout: TIMEOUT,
            memory_limit: None,
            fork_server: Some(ForkServer::new()),
        }
    }

    /// The launcher's running server.
    fn running(launcher: &Launcher) -> std::sync::MutexGuard<'_, Option<Running>> {
        launcher
            .fork_server
            .as_ref()
            .unwrap()
            .server
            .lock()
            .unwrap()
    }

    fn server_pid(launcher: &Launcher) -> Pid {
        running(launcher).as_ref().expect("started").pid
    }

    /// Connects a started worker, tells it to leave, and checks it did.
    fn connect_and_release(launcher: &Launcher, started: Started) -> Pid {
        let worker = launcher.connect(started).expect("the worker connects");
        let pid = worker.pid;
        drop(worker);
        assert_eq!(process::reap(pid).exit_code, Some(0));
        pid
    }

    fn parent_of(pid: Pid) -> u32 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("PPid:")).unwrap();
        line["PPid:".len()..].trim().parse().unwrap()
    }

    /// A worker forked by the server greets from its own pid, is a child
    /// of this process (not of the server), and leaves when told to.
    #[test]
    fn workers_are_children_of_the_pool_and_connect() {
        let launcher = launcher();
        let started = launcher.start().unwrap();
        let server = server_pid(&launcher);
        let worker = launcher.connect(started).expect("the worker connects");
        assert_ne!(worker.pid, server);
        assert_eq!(parent_of(worker.pid), std::process::id());
        assert_eq!(parent_of(server), std::process::id());
        let pid = worker.pid;
        drop(worker);
        assert_eq!(process::reap(pid).exit_code, Some(0));
    }

    /// A server that was killed is started again at the next request.
    #[test]
    fn a_dead_server_is_started_again() {
        let launcher = launcher();
        let first = launcher.start().unwrap();
        let old = server_pid(&launcher);
        kill(old, Signal::SIGKILL).unwrap();
        let second = launcher.start().expect("a new server forks it");
        let new = server_pid(&launcher);
        assert_ne!(old, new);
        for started in [first, second] {
            connect_and_release(&launcher, started);
        }
    }

    /// A request that carries no channel forks nothing and is answered
    /// with an error; the server goes on.
    #[test]
    fn a_request_without_a_channel_is_refused() {
        let launcher = launcher();
        let started = launcher.start().unwrap();
        {
            let server = running(&launcher);
            let socket = server.as_ref().unwrap().socket.as_raw_fd();
            write_all(socket, &0_u64.to_le_bytes()).unwrap();
            let mut answer = [0_u8; 4];
            read_exact(socket, &mut answer).unwrap();
            assert_eq!(i32::from_le_bytes(answer), -libc::EPROTO);
        }
        connect_and_release(&launcher, started);
        let again = launcher.start().expect("the server goes on");
        connect_and_release(&launcher, again);
    }
}
