//! Seeing a worker die from the process itself, not from its socket.
//!
//! A handler learns that its worker is gone when the worker's socket
//! reaches end-of-file. That never comes if a process the task forked
//! still holds the worker's end of the socket. So one thread per pool
//! (started by the first worker) polls every worker's pidfd, and when a
//! worker exits it shuts the pool's end of that worker's socket down:
//! a handler blocked reading it then reads what the worker sent before it
//! died and then end-of-file, and a send to it fails at once. The
//! handlers themselves block in one plain `recv`, the cheapest wait.
//!
//! Invariant: the watch holds its own reference to each socket and pidfd
//! until it drops the entry, so a descriptor it shuts down or polls is
//! never one that was closed and reused for something else.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

struct Watched {
    pidfd: OwnedFd,
    socket: Arc<OwnedFd>,
}

struct Inner {
    watched: Mutex<Vec<Watched>>,
    /// An eventfd that wakes the thread to look at `watched` again, or to
    /// stop.
    wake: OwnedFd,
    stop: std::sync::atomic::AtomicBool,
}

/// The pool's death watch (see the module docs).
pub(crate) struct DeathWatch {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl DeathWatch {
    pub(crate) fn new() -> io::Result<DeathWatch> {
        // SAFETY: a plain system call; on success the descriptor is new.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DeathWatch {
            inner: Arc::new(Inner {
                watched: Mutex::new(Vec::new()),
                // SAFETY: the eventfd just created is ours alone.
                wake: unsafe { OwnedFd::from_raw_fd(fd) },
                stop: std::sync::atomic::AtomicBool::new(false),
            }),
            thread: Mutex::new(None),
        })
    }

    /// Shuts `socket` down once the process of `pidfd` has exited.
    pub(crate) fn watch(&self, pidfd: OwnedFd, socket: Arc<OwnedFd>) -> io::Result<()> {
        {
            let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
            if thread.is_none() {
                let inner = Arc::clone(&self.inner);
                *thread = Some(
                    std::thread::Builder::new()
                        .name("cf-process-deaths".into())
                        .stack_size(64 * 1024)
                        .spawn(move || run(&inner))?,
                );
            }
        }
        lock(&self.inner).push(Watched { pidfd, socket });
        self.inner.wake();
        Ok(())
    }
}

impl Drop for DeathWatch {
    fn drop(&mut self) {
        self.inner
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.wake();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, Vec<Watched>> {
    inner.watched.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn wake(&self) {
        let one = 1_u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array to our eventfd; a full
        // counter (EAGAIN) means a wake-up is pending anyway.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
    }
}

fn run(inner: &Inner) {
    loop {
        if inner.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut fds = vec![libc::pollfd {
            fd: inner.wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(lock(inner).iter().map(|w| libc::pollfd {
            fd: w.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds, whose
        // descriptors stay open: the eventfd is ours, and each pidfd is
        // owned by an entry that only this thread removes.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n <= 0 {
            continue;
        }
        if fds[0].revents != 0 {
            let mut count = [0_u8; 8];
            // SAFETY: reads 8 bytes into a live array from our eventfd.
            unsafe { libc::read(inner.wake.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        }
        let exited: Vec<i32> = fds[1..]
            .iter()
            .filter(|p| p.revents != 0)
            .map(|p| p.fd)
            .collect();
        if exited.is_empty() {
            continue;
        }
        let gone: Vec<Watched> = {
            let mut watched = lock(inner);
            let (gone, kept) = std::mem::take(&mut *watched)
                .into_iter()
                .partition(|w| exited.contains(&w.pidfd.as_raw_fd()));
            *watched = kept;
            gone
        };
        for w in gone {
            // SAFETY: a plain system call on a socket this entry keeps
            // open. Bytes already queued are still read before the
            // end-of-file this causes.
            unsafe { libc::shutdown(w.socket.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{self, socket_pair};

    /// A process that has exited is seen gone even though another process
    /// (here: this one) still holds its end of the socket open; bytes it
    /// wrote first are still read, and a send fails instead of blocking.
    #[test]
    fn an_exit_ends_a_read_that_end_of_file_never_would() {
        let (ours, theirs) = socket_pair().unwrap();
        let (their_tx, _their_rx) = channel::split(theirs);
        their_tx.send(b"last words").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pidfd = channel::pidfd(child.id() as i32).expect("pidfd_open");
        let (tx, mut rx) = channel::split(ours);
        let watch = DeathWatch::new().unwrap();
        watch.watch(pidfd, rx.socket()).unwrap();
        assert_eq!(rx.recv().unwrap(), b"last words");
        assert_eq!(rx.recv().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(tx.send(&vec![0_u8; 16 << 20]).is_err());
        child.wait().unwrap();
        drop(watch);
        drop(their_tx);
    }
}
