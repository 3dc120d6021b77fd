//! What crosses between the client and a worker rank, and the worker's
//! loop.
//!
//! A worker's first message, [`HELLO`], says which process it is (so that
//! the client can watch it: see `liveness.rs`). Then every message is a
//! byte vector with a tag: [`TASK`] carries a request of
//! the shared task crate (a run, a chunk, or the initializer) to a worker;
//! [`RESULT`] carries its response back; [`STOP`] ends a pool (a spawned
//! worker then leaves; a rank of a static pool waits for the next pool);
//! [`EXIT`] tells a rank of a static pool that the client is finishing, so
//! it finalizes MPI and exits. A worker holds at most one task at a time
//! and answers each before it takes the next, so the client knows what
//! every worker runs.
//!
//! Nobody waits in a blocking MPI call: Open MPI's blocking receive spins
//! on a core for as long as it waits. A waiting rank probes without
//! blocking and backs off instead ([`Backoff`]).

use std::time::{Duration, Instant};

use concurrent_futures_task_wire::serve;
use mpi::Tag;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, Rank};

use crate::liveness::Hello;

/// A request, client to worker.
pub(crate) const TASK: Tag = 1;
/// A response, worker to client.
pub(crate) const RESULT: Tag = 2;
/// The pool is shut down, client to worker.
pub(crate) const STOP: Tag = 3;
/// The client process ends, client to every rank of a static pool.
pub(crate) const EXIT: Tag = 4;
/// A worker's first message: who it is (see `liveness::Hello`).
pub(crate) const HELLO: Tag = 5;

/// How a rank that finds nothing to do waits before it looks again: it
/// keeps looking (yielding the core) for `hot` after the last thing it
/// did, then sleeps, twice as long each time, up to `max`. So a busy pool
/// answers within microseconds, and an idle one wakes each rank at most
/// every `max`.
pub(crate) struct Backoff {
    hot: Duration,
    first: Duration,
    max: Duration,
    active: Instant,
    pause: Duration,
}

impl Backoff {
    pub(crate) fn new(hot: Duration, first: Duration, max: Duration) -> Backoff {
        Backoff {
            hot,
            first,
            max,
            active: Instant::now(),
            pause: Duration::ZERO,
        }
    }

    /// Something happened: look again at once.
    pub(crate) fn reset(&mut self) {
        self.active = Instant::now();
        self.pause = Duration::ZERO;
    }

    /// How long to wait before looking again (zero: just yield).
    pub(crate) fn next_pause(&mut self) -> Duration {
        if self.active.elapsed() < self.hot {
            return Duration::ZERO;
        }
        self.pause = if self.pause.is_zero() {
            self.first
        } else {
            (self.pause * 2).min(self.max)
        };
        self.pause
    }

    /// Waits [`next_pause`](Self::next_pause).
    pub(crate) fn wait(&mut self) {
        match self.next_pause() {
            pause if pause.is_zero() => std::thread::yield_now(),
            pause => std::thread::sleep(pause),
        }
    }
}

/// Tells `client` (a rank of `comm`) which process this worker is.
pub(crate) fn say_hello<C: Communicator>(comm: &C, client: Rank) {
    comm.process_at_rank(client)
        .send_with_tag(&Hello::me().encode()[..], HELLO);
}

/// How a worker's loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Served {
    /// The pool it served is shut down.
    Stopped,
    /// The client process is finishing.
    Exit,
}

/// A worker's loop: answers the tasks `client` (a rank of `comm`) sends,
/// one at a time, until it is told to stop. A task's panic, or an argument
/// or result that does not cross, is an outcome in its response (see
/// `serve::answer`); bytes that are not a request get an empty response,
/// which the client reports as out of protocol.
pub(crate) fn serve<C: Communicator>(comm: &C, client: Rank) -> Served {
    let client = comm.process_at_rank(client);
    let mut out = Vec::with_capacity(256);
    // Hot for 10 ms after each message; then a look every 5 ms at most:
    // each look is an MPI progress call (tens of µs with Open MPI), so one
    // a millisecond would cost an idle worker about 3% of a core.
    let mut backoff = Backoff::new(
        Duration::from_millis(10),
        Duration::from_micros(10),
        Duration::from_millis(5),
    );
    loop {
        let Some(probed) = client.immediate_matched_probe() else {
            backoff.wait();
            continue;
        };
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        match status.tag() {
            TASK => {
                out.clear();
                if serve::answer(&bytes, &mut out).is_err() {
                    out.clear();
                }
                client.send_with_tag(&out[..], RESULT);
                // Keep the buffer for the next result of the same size,
                // unless an outlier made it huge.
                if out.capacity() > 64 << 20 {
                    out = Vec::with_capacity(256);
                }
            }
            STOP => return Served::Stopped,
            EXIT => return Served::Exit,
            _ => {}
        }
        backoff.reset();
    }
}
