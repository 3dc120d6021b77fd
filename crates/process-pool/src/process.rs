//! Starting, connecting, stopping and reaping worker processes (the
//! parent's side of `worker.rs`).
//!
//! Each worker belongs to one handler thread of the pool, which starts it,
//! is the only thread that waits for it (`waitpid` on that pid, never on
//! `-1`, so other children of the program are left alone), and reaps it
//! before starting the next: no zombie outlives its handler.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipc_channel::ipc::{IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::worker::{self, Hello};

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

/// A connected worker: its pid and its two channel ends.
pub(crate) struct Worker {
    pub pid: Pid,
    pub requests: IpcBytesSender,
    pub responses: IpcBytesReceiver,
}

/// What every start needs: the program, the lifeline and the secret.
pub(crate) struct Launcher {
    pub program: Option<PathBuf>,
    pub lifeline: OwnedFd,
    pub secret: String,
    pub start_timeout: Duration,
    /// Each worker's `RLIMIT_AS`, in bytes.
    pub memory_limit: Option<u64>,
}

/// A child that has been started but has not connected yet.
pub(crate) struct Started {
    pid: Pid,
    server: IpcOneShotServer<Hello>,
    name: String,
}

impl Started {
    /// Kills and reaps a child that will never be connected.
    pub(crate) fn abandon(self) {
        kill_and_reap(self.pid);
    }
}

impl Launcher {
    /// A one-shot bootstrap server for one worker, at a fresh random path
    /// (ipc-channel's temporary directory), made private: the directory
    /// `0700` and the socket `0600`, so no other user can connect whatever
    /// the umask (ipc-channel leaves both to it: `0755` under the usual
    /// `022`). A process of the same user that connects first still cannot
    /// inject anything: its hello lacks the secret and is refused.
    fn server() -> io::Result<(IpcOneShotServer<Hello>, String)> {
        use std::os::unix::fs::PermissionsExt;
        let (server, name) = IpcOneShotServer::new()?;
        let socket = std::path::Path::new(&name);
        if let Some(dir) = socket.parent() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        Ok((server, name))
    }

    /// Starts the current executable (or the named program) as a worker.
    pub(crate) fn spawn(&self) -> Result<Started, String> {
        // Reading the boot entry keeps the linker from dropping it, which
        // would leave spawned workers running `main`.
        // SAFETY: a plain read of an initialised static.
        let _boot = unsafe { std::ptr::read_volatile(&raw const worker::BOOT) };
        let (server, name) =
            Self::server().map_err(|e| format!("cannot open the bootstrap socket: {e}"))?;
        let program = match &self.program {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find the current executable to spawn: {e}"))?,
        };
        let mut boot = OsString::from(&self.secret);
        boot.push(format!(":0:{}:", self.memory_limit.unwrap_or(0)));
        boot.push(&name);
        // The lifeline travels as the child's stdin, the one descriptor
        // `Command` passes without a `pre_exec` hook; without one, std
        // starts the child with `posix_spawn` (vfork-style), whose cost does
        // not grow with this process's memory. The worker moves it off
        // stdin and closes whatever else it inherited, first thing.
        let lifeline = self
            .lifeline
            .try_clone()
            .map_err(|e| format!("cannot pass the lifeline: {e}"))?;
        let child = Command::new(&program)
            .arg(worker::WORKER_ARG)
            .env(worker::BOOT_ENV, boot)
            .stdin(Stdio::from(lifeline))
            .spawn()
            .map_err(|e| format!("cannot spawn the worker {}: {e}", program.display()))?;
        Ok(Started {
            pid: Pid::from_raw(child.id() as i32),
            server,
            name,
        })
    }

    /// Forks a worker. The child closes every descriptor but stdio and the
    /// lifeline, connects, serves, and leaves with `_exit` (no destructor
    /// or `atexit` handler of the parent's runs twice).
    ///
    /// Only sound to call before the pool starts threads of its own; see
    /// `StartMethod::Fork` for the hazard of other threads in the parent.
    pub(crate) fn fork(&self) -> Result<Started, String> {
        prepare_fork();
        let (server, name) =
            Self::server().map_err(|e| format!("cannot open the bootstrap socket: {e}"))?;
        let lifeline = self.lifeline.as_raw_fd();
        // SAFETY: the child runs only the worker (connect, serve, `_exit`)
        // and never returns into the caller. That it may allocate and take
        // locks after forking a multi-threaded parent is the documented
        // hazard of the fork start method.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                worker::FORKED.store(true, Ordering::Relaxed);
                let _ = close_all_but(lifeline);
                let code = worker::serve(&name, &self.secret, Some(lifeline), self.memory_limit);
                // SAFETY: `_exit` is always sound.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => Ok(Started {
                pid: child,
                server,
                name,
            }),
            Err(e) => Err(format!("cannot fork a worker: {e}")),
        }
    }

    /// Waits for a started child to connect and checks its hello. A child
    /// that exits or stays silent past the start timeout is reaped and
    /// reported.
    pub(crate) fn connect(&self, started: Started) -> Result<Worker, String> {
        let Started { pid, server, name } = started;
        // `accept` has no timeout, so it runs on its own thread while this
        // one watches the child; a dummy connection unblocks it.
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("cf-accept".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = tx.send(server.accept());
            })
            .map_err(|e| {
                kill_and_reap(pid);
                format!("cannot start a thread: {e}")
            })?;
        let unblock = || drop(IpcSender::<Hello>::connect(name.clone()));
        let deadline = Instant::now() + self.start_timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Ok((_receiver, hello))) => {
                    if hello.secret != self.secret || hello.pid != pid.as_raw() as u32 {
                        kill_and_reap(pid);
                        return Err(format!(
                            "worker {pid} answered with the wrong secret or pid; refused"
                        ));
                    }
                    return Ok(Worker {
                        pid,
                        requests: hello.requests,
                        responses: hello.responses,
                    });
                }
                Ok(Err(e)) => {
                    let death = kill_and_reap(pid);
                    return Err(format!(
                        "worker {pid} {} before it connected ({e:?}){}",
                        death.describe(),
                        missing_boot_hint(death)
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(death) = try_reap(pid) {
                        unblock();
                        return Err(format!(
                            "worker {pid} {} before it connected{}",
                            death.describe(),
                            missing_boot_hint(death)
                        ));
                    }
                    if Instant::now() >= deadline {
                        unblock();
                        kill_and_reap(pid);
                        return Err(format!(
                            "worker {pid} did not connect within {:?}; it was killed. Is the \
                             program a binary that links concurrent-futures?",
                            self.start_timeout
                        ));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    kill_and_reap(pid);
                    return Err(format!("worker {pid}: the bootstrap thread failed"));
                }
            }
        }
    }
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

/// Closes every descriptor above stdio except `keep`.
pub(crate) fn close_all_but(keep: RawFd) -> io::Result<()> {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range only closes descriptors of this process; the
    // forked child owns nothing the closed ones back.
    let r = unsafe {
        let a = if keep > 3 {
            libc::close_range(3, keep - 1, 0)
        } else {
            0
        };
        let b = libc::close_range(keep + 1, libc::c_uint::MAX, 0);
        a | b
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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
/// then block on it: ipc-channel's send-buffer size (read on the first
/// send) and our task table are such `Once`s. Initialised here, they are
/// complete in every child.
fn prepare_fork() {
    worker::install_fork_safe_panic_hook();
    crate::registry::by_task_name("");
    if let Ok((tx, rx)) = ipc_channel::ipc::bytes_channel() {
        let _ = tx.send(&[]);
        let _ = rx.try_recv();
    }
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

/// A fresh random secret, hex-encoded.
pub(crate) fn secret() -> String {
    use std::io::Read;
    let mut bytes = [0_u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // No /dev/urandom: fall back on the std hasher's random keys.
        use std::hash::{BuildHasher, RandomState};
        let a = RandomState::new().hash_one(std::process::id());
        let b = RandomState::new().hash_one(Instant::now());
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lifeline pipe: (read end for the workers, write end the pool keeps).
/// Both are close-on-exec; a spawned worker gets the read end as stdin.
pub(crate) fn lifeline() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The bootstrap is the pool's alone: its socket sits in a directory only
/// this user can enter, and a hello that does not carry the secret passed
/// to the child (or names another pid) is refused, and the child killed.
#[cfg(test)]
mod bootstrap {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use std::time::Duration;

    use ipc_channel::ipc::{self, IpcSender};
    use nix::unistd::Pid;

    use super::{Launcher, Started, lifeline, secret};
    use crate::worker::Hello;

    fn launcher() -> Launcher {
        Launcher {
            program: None,
            lifeline: lifeline().unwrap().0,
            secret: secret(),
            start_timeout: Duration::from_secs(10),
            memory_limit: None,
        }
    }

    #[test]
    fn the_socket_is_in_a_private_directory_under_a_random_name() {
        let (_a, first) = Launcher::server().unwrap();
        let (_b, second) = Launcher::server().unwrap();
        assert_ne!(first, second);
        let socket = std::path::Path::new(&first);
        for path in [socket, socket.parent().unwrap()] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{path:?} has mode {mode:o}");
        }
    }

    #[test]
    fn secrets_are_fresh_and_long() {
        let (a, b) = (secret(), secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32, "128 bits, hex");
    }

    /// Another process connects first and sends a hello: with a guessed
    /// secret, or with the right one but its own pid. Both are refused,
    /// and the child the pool started is killed and reaped.
    #[test]
    fn a_forged_hello_is_refused() {
        let launcher = launcher();
        for (forged_secret, forged_pid) in [(Some("0123456789abcdef"), None), (None, Some(1))] {
            let child = Command::new("sleep").arg("30").spawn().unwrap();
            let pid = Pid::from_raw(child.id() as i32);
            let (server, name) = Launcher::server().unwrap();
            let started = Started {
                pid,
                server,
                name: name.clone(),
            };
            let secret = forged_secret.map_or(launcher.secret.clone(), str::to_owned);
            let forger = std::thread::spawn(move || {
                let (requests, _keep_rx) = ipc::bytes_channel().unwrap();
                let (_keep_tx, responses) = ipc::bytes_channel().unwrap();
                IpcSender::<Hello>::connect(name)
                    .unwrap()
                    .send(Hello {
                        secret,
                        pid: forged_pid.unwrap_or(pid.as_raw() as u32),
                        requests,
                        responses,
                    })
                    .unwrap();
            });
            let refused = launcher.connect(started).err().expect("refused");
            forger.join().unwrap();
            assert!(
                refused.contains("wrong secret or pid; refused"),
                "{refused}"
            );
            // Killed and reaped: the pid is no child of ours any more.
            assert!(nix::sys::wait::waitpid(pid, None).is_err());
            std::mem::forget(child);
        }
    }
}
