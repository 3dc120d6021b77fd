//! A worker's channel: one Unix stream socket per worker, carrying frames
//! of bytes both ways.
//!
//! The parent creates the socket as a pair before the worker exists and
//! the worker *inherits* its end (as stdin when spawned, as a plain
//! descriptor when forked). The channel has no name: nothing in the file
//! system, the environment or argv leads to it, and a socket cannot be
//! opened through `/proc/<pid>/fd`, so no other process can take a
//! worker's place or listen in (see `process.rs` for the hand-off).
//!
//! A frame is `len:u64` (little-endian) followed by `len` bytes; the
//! messages inside are `concurrent_futures_task_wire::wire`'s.
//!
//! Both directions block in plain `recv` and `send` calls. A worker that
//! dies while a process it forked keeps its end open sends no end-of-file;
//! the pool's death watch (`deaths.rs`) shuts the pool's end down then,
//! which ends such a wait.
//!
//! Closing the request direction is how the parent tells a worker to
//! leave: dropping the last [`Sender`] shuts the socket down for writing,
//! the worker reads end-of-file once it has run what it holds, answers,
//! and exits. The parent reads on until the worker is gone.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

/// Frames of up to this size get their whole buffer at once; larger ones
/// grow as their bytes arrive, so a corrupt length cannot make the reader
/// allocate what was never sent.
const TRUSTED_FRAME: usize = 64 << 20;

/// The largest frame either side accepts.
const FRAME_LIMIT: u64 = 1 << 40;

/// A reader's buffer larger than this is given back once empty.
const KEEP_BUFFER: usize = 64 << 20;

const HEADER: usize = 8;

/// A connected pair of stream sockets, both close-on-exec: (the parent's
/// end, the worker's end).
pub(crate) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors; on success
    // both are new and owned by nothing else.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, the two descriptors are ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pidfd for `pid` (Linux 5.3 and later), close-on-exec; `None` where
/// the kernel has none (`ENOSYS`) or a seccomp filter refuses the call
/// (`EPERM`, `EACCES`: older container runtimes). Any other failure
/// (descriptors run out, say) is an error. Sound only for a child not yet
/// reaped, whose pid cannot have been reused.
pub(crate) fn pidfd(pid: i32) -> io::Result<Option<OwnedFd>> {
    // SAFETY: a plain system call; on success the descriptor is new.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: as above, the descriptor is ours alone.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }));
    }
    let e = io::Error::last_os_error();
    if matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES)
    ) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Splits one end of a socket into its two directions.
pub(crate) fn split(socket: OwnedFd) -> (Sender, Receiver) {
    let socket = Arc::new(socket);
    let sender = Sender {
        end: Arc::new(SendEnd {
            socket: Arc::clone(&socket),
            lock: Mutex::new(()),
        }),
    };
    let receiver = Receiver {
        socket,
        buf: Vec::new(),
        consumed: 0,
    };
    (sender, receiver)
}

/// The writing direction. Clones share it; when the last is dropped the
/// socket is shut down for writing and the other side reads end-of-file.
#[derive(Clone)]
pub(crate) struct Sender {
    end: Arc<SendEnd>,
}

struct SendEnd {
    socket: Arc<OwnedFd>,
    /// One frame at a time: two writers must not interleave their bytes.
    lock: Mutex<()>,
}

impl Drop for SendEnd {
    fn drop(&mut self) {
        // SAFETY: a plain system call on a descriptor we own; the receiving
        // direction stays open.
        unsafe { libc::shutdown(self.socket.as_raw_fd(), libc::SHUT_WR) };
    }
}

impl Sender {
    /// Sends one frame, waiting for room as long as it takes.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        let header = (frame.len() as u64).to_le_bytes();
        let end = &*self.end;
        let _one_at_a_time = end.lock.lock().unwrap_or_else(|e| e.into_inner());
        let fd = end.socket.as_raw_fd();
        let flags = libc::MSG_NOSIGNAL;
        let total = HEADER + frame.len();
        let mut done = 0;
        while done < total {
            let (head, body) = if done < HEADER {
                (&header[done..], frame)
            } else {
                (&header[..0], &frame[done - HEADER..])
            };
            let mut iov = [
                libc::iovec {
                    iov_base: head.as_ptr() as *mut libc::c_void,
                    iov_len: head.len(),
                },
                libc::iovec {
                    iov_base: body.as_ptr() as *mut libc::c_void,
                    iov_len: body.len(),
                },
            ];
            // SAFETY: a zeroed msghdr is valid; it points at `iov`, whose
            // two entries point into `header` and `frame`, all alive and
            // unchanged for the call.
            let n = unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = iov.as_mut_ptr();
                msg.msg_iovlen = iov.len();
                libc::sendmsg(fd, &msg, flags)
            };
            if n >= 0 {
                done += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                _ => return Err(e),
            }
        }
        Ok(())
    }
}

/// The reading direction, with its buffer (kept from frame to frame).
pub(crate) struct Receiver {
    socket: Arc<OwnedFd>,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` that belong to frames already returned.
    consumed: usize,
}

impl Receiver {
    /// The next frame. End-of-file with no whole frame left (also once the
    /// death watch has shut the socket down) is `UnexpectedEof`.
    pub(crate) fn recv(&mut self) -> io::Result<&[u8]> {
        self.discard_consumed();
        loop {
            if self.buf.len() >= HEADER {
                let len = u64::from_le_bytes(self.buf[..HEADER].try_into().expect("8 bytes"));
                if len > FRAME_LIMIT {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a frame of {len} bytes exceeds the limit of {FRAME_LIMIT}"),
                    ));
                }
                let end = HEADER + len as usize;
                if self.buf.len() >= end {
                    self.consumed = end;
                    return Ok(&self.buf[HEADER..end]);
                }
                self.make_room(end - self.buf.len());
            } else {
                self.make_room(HEADER);
            }
            self.fill()?;
        }
    }

    fn discard_consumed(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.buf.len() {
            self.buf.clear();
            if self.buf.capacity() > KEEP_BUFFER {
                self.buf = Vec::new();
            }
        } else {
            self.buf.drain(..self.consumed);
        }
        self.consumed = 0;
    }

    /// Reserves room for `missing` more bytes of the frame being read:
    /// all of it for a frame up to [`TRUSTED_FRAME`], else at most as
    /// much again as has arrived.
    fn make_room(&mut self, missing: usize) {
        let step = if missing <= TRUSTED_FRAME {
            missing
        } else {
            missing.min(self.buf.len().max(TRUSTED_FRAME))
        };
        // At least 64 KiB per read, so that small frames that arrive
        // together are read in one call.
        self.buf.reserve(step.max(64 << 10));
    }

    /// Reads what the socket holds into the buffer's spare room; waits
    /// while it holds nothing.
    fn fill(&mut self) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        loop {
            let spare = self.buf.spare_capacity_mut();
            // SAFETY: `spare` is writable memory of `buf` past its length,
            // `spare.len()` bytes long; recv writes at most that many.
            let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), spare.len(), 0) };
            if n > 0 {
                // SAFETY: recv initialised the first `n` spare bytes.
                unsafe { self.buf.set_len(self.buf.len() + n as usize) };
                return Ok(());
            }
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    /// The socket, for the death watch to shut down.
    pub(crate) fn socket(&self) -> Arc<OwnedFd> {
        Arc::clone(&self.socket)
    }
}

/// Waits until `fd` can be read (or is closed) or `timeout` passes; true
/// if it can. Used for the hand-off's greeting.
pub(crate) fn readable_within(fd: RawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: `fds` is a valid array of one pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> ((Sender, Receiver), (Sender, Receiver)) {
        let (a, b) = socket_pair().unwrap();
        (split(a), split(b))
    }

    #[test]
    fn frames_keep_their_boundaries_whatever_their_size() {
        let ((tx, _rx), (_tx2, mut rx2)) = pair();
        let sizes = [0, 1, 7, 8, 9, 65_536, 3 << 20, 0, 5];
        let writer = std::thread::spawn(move || {
            for (i, &n) in sizes.iter().enumerate() {
                tx.send(&vec![i as u8; n]).unwrap();
            }
        });
        for (i, &n) in sizes.iter().enumerate() {
            let frame = rx2.recv().unwrap();
            assert_eq!(frame.len(), n);
            assert!(frame.iter().all(|&b| b == i as u8));
        }
        writer.join().unwrap();
        // The last sender is gone: end-of-file.
        assert_eq!(rx2.recv().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn dropping_the_last_sender_ends_the_stream_but_not_the_other_direction() {
        let ((tx, mut rx), (tx2, mut rx2)) = pair();
        let clone = tx.clone();
        drop(tx);
        clone.send(b"still open").unwrap();
        drop(clone);
        assert_eq!(rx2.recv().unwrap(), b"still open");
        assert!(rx2.recv().is_err());
        tx2.send(b"answer").unwrap();
        assert_eq!(rx.recv().unwrap(), b"answer");
    }

    #[test]
    fn a_frame_past_the_limit_is_refused() {
        let (a, b) = socket_pair().unwrap();
        let (_tx, mut rx) = split(a);
        let raw = (FRAME_LIMIT + 1).to_le_bytes();
        // SAFETY: writes 8 bytes from a live array to our own socket.
        let n = unsafe { libc::write(b.as_raw_fd(), raw.as_ptr().cast(), raw.len()) };
        assert_eq!(n, 8);
        assert_eq!(rx.recv().unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
