//! Seeing a worker die from the process itself, not from its socket.
//!
//! A handler learns that its worker is gone when the worker's socket
//! reaches end-of-file. That never comes if a process the task forked
//! still holds the worker's end of the socket. So one thread per pool
//! (started with the pool) waits on every worker's pidfd, and when a
//! worker exits it shuts the pool's end of that worker's socket down:
//! a handler blocked reading it then reads what the worker sent before it
//! died and then end-of-file, and a send to it fails at once. The
//! handlers themselves block in one plain `recv`, the cheapest wait.
//!
//! The pidfds are registered in an epoll set as workers connect: the
//! registration is checked there and then (a failure is the caller's to
//! report, never a worker silently unwatched), and the wait has no limit
//! on how many it watches (`poll` refuses more descriptors than
//! `RLIMIT_NOFILE`, which a program may lower below what it has open).
//!
//! Invariant: the watch holds its own reference to each socket and pidfd
//! until it drops the entry, and only its thread drops entries; so the
//! descriptor number an event names is still that entry's pidfd, and a
//! socket it shuts down is never one that was closed and reused.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::process::explained;

struct Watched {
    pidfd: OwnedFd,
    socket: Arc<OwnedFd>,
}

struct Inner {
    /// Every watched pidfd (an event's data: its descriptor number) and
    /// `wake`.
    epoll: OwnedFd,
    watched: Mutex<Vec<Watched>>,
    /// An eventfd that wakes the thread to stop.
    wake: OwnedFd,
    stop: AtomicBool,
}

/// An event's data for `wake`; a pidfd's is its descriptor number.
const WAKE: u64 = u64::MAX;

/// The pool's death watch (see the module docs).
pub(crate) struct DeathWatch {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl DeathWatch {
    /// The watch and its thread. Fails when a descriptor or the thread
    /// cannot be had, saying so plainly when descriptors ran out.
    pub(crate) fn new() -> io::Result<DeathWatch> {
        // SAFETY: a plain system call; on success the descriptor is new.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(explained(io::Error::last_os_error()));
        }
        // SAFETY: the epoll descriptor just created is ours alone.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(explained(io::Error::last_os_error()));
        }
        // SAFETY: the eventfd just created is ours alone.
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        add(&epoll, wake.as_raw_fd(), WAKE)?;
        let inner = Arc::new(Inner {
            epoll,
            watched: Mutex::new(Vec::new()),
            wake,
            stop: AtomicBool::new(false),
        });
        let thread = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("cf-process-deaths".into())
                .stack_size(64 * 1024)
                .spawn(move || run(&inner))?
        };
        Ok(DeathWatch {
            inner,
            thread: Some(thread),
        })
    }

    /// Shuts `socket` down once the process of `pidfd` has exited. On an
    /// error nothing is watched (and `pidfd` is closed).
    pub(crate) fn watch(&self, pidfd: OwnedFd, socket: Arc<OwnedFd>) -> io::Result<()> {
        // Registered under the lock: the thread handles an event for this
        // pidfd (its worker may be gone already) only once the entry is
        // listed.
        let mut watched = lock(&self.inner);
        add(
            &self.inner.epoll,
            pidfd.as_raw_fd(),
            pidfd.as_raw_fd() as u64,
        )?;
        watched.push(Watched { pidfd, socket });
        Ok(())
    }
}

impl Drop for DeathWatch {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let one = 1_u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live array to our eventfd; a full
        // counter (EAGAIN) means a wake-up is pending anyway.
        unsafe { libc::write(self.inner.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, Vec<Watched>> {
    inner.watched.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds `fd` to the epoll set `epoll`, readable, with `data`.
fn add(epoll: &OwnedFd, fd: RawFd, data: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: data,
    };
    // SAFETY: a plain system call on descriptors we own, with a pointer to
    // a live event.
    let r = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
    if r == 0 {
        Ok(())
    } else {
        Err(explained(io::Error::last_os_error()))
    }
}

fn run(inner: &Inner) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
    loop {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: `events` is a live array of `events.len()` entries for
        // the kernel to fill in; the epoll descriptor is ours.
        let n = unsafe {
            libc::epoll_wait(
                inner.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                -1,
            )
        };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // EBADF, EFAULT, EINVAL: not with these arguments. Retrying
            // would spin.
            return;
        }
        let mut exited: Vec<RawFd> = Vec::new();
        for event in &events[..n as usize] {
            let data = event.u64;
            if data == WAKE {
                let mut count = [0_u8; 8];
                // SAFETY: reads 8 bytes into a live array from our eventfd.
                unsafe { libc::read(inner.wake.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
            } else {
                exited.push(data as RawFd);
            }
        }
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
            // SAFETY: plain system calls on descriptors this entry keeps
            // open. Bytes already queued on the socket are still read
            // before the end-of-file this causes. (Closing the pidfd, as
            // the entry drops, would take it out of the set as well.)
            unsafe {
                libc::epoll_ctl(
                    inner.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    w.pidfd.as_raw_fd(),
                    std::ptr::null_mut(),
                );
                libc::shutdown(w.socket.as_raw_fd(), libc::SHUT_RDWR);
            }
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
        let pidfd = channel::pidfd(child.id() as i32)
            .unwrap()
            .expect("pidfd_open");
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
