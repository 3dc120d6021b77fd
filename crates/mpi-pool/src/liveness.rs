//! Seeing a worker rank die. MPI has no portable way to report, let alone
//! replace, a dead rank (the fault-tolerance extension, ULFM, is not in the
//! standard), so a pool whose rank dies is broken: its futures fail at
//! once with the reason, instead of waiting for ever for an answer.
//!
//! Each worker says who it is first ([`Hello`]: its host name and pid).
//! A worker on the client's host is watched through a pidfd, which becomes
//! readable when that process ends, whoever its parent is (spawned workers
//! are children of Open MPI's daemon, static ranks of `mpirun`). A worker
//! on another host is not watched here: its death is seen when the MPI
//! runtime ends the job (Open MPI's default when a process dies).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Who a worker is, as it says in its first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) pid: u32,
    pub(crate) host: String,
}

impl Hello {
    /// This process.
    pub(crate) fn me() -> Hello {
        Hello {
            pid: std::process::id(),
            host: host_name(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = self.pid.to_le_bytes().to_vec();
        bytes.extend_from_slice(self.host.as_bytes());
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Hello> {
        let (pid, host) = bytes.split_first_chunk::<4>()?;
        Some(Hello {
            pid: u32::from_le_bytes(*pid),
            host: String::from_utf8_lossy(host).into_owned(),
        })
    }

    /// A pidfd on this worker, if it runs on this host and the kernel has
    /// pidfds.
    pub(crate) fn watch(&self) -> Option<OwnedFd> {
        if self.host != host_name() {
            return None;
        }
        let pid = libc::pid_t::try_from(self.pid).ok()?;
        // SAFETY: a plain system call; on success the descriptor is new
        // and ours alone.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// A worker rank as the client knows it: its rank, who it said it is,
/// and a pidfd on it if it runs on this host.
pub(crate) struct Member {
    pub(crate) rank: mpi::topology::Rank,
    pub(crate) hello: Hello,
    pidfd: Option<OwnedFd>,
}

impl Member {
    /// Opens the pidfd while the worker is known to be alive (it has just
    /// said hello, or served the pool before).
    pub(crate) fn new(rank: mpi::topology::Rank, hello: Hello) -> Member {
        let pidfd = hello.watch();
        Member { rank, hello, pidfd }
    }

    /// Whether it has been seen to end.
    pub(crate) fn has_ended(&self) -> bool {
        self.pidfd.as_ref().is_some_and(has_ended)
    }
}

/// This host's name.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether the process behind `pidfd` has ended (without waiting).
pub(crate) fn has_ended(pidfd: &OwnedFd) -> bool {
    let mut entry = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout does not block.
    let n = unsafe { libc::poll(&mut entry, 1, 0) };
    n > 0 && entry.revents != 0
}
