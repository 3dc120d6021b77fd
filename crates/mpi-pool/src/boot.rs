//! A spawned worker's start, before `main`.
//!
//! The dynamic launch mode starts workers with `MPI_Comm_spawn` of the
//! client's own executable (or the builder's `worker_program`) with one
//! argument, [`WORKER_ARG`]. The function [`boot`] sits in the ELF
//! `.init_array`, so the loader runs it before `main` in every binary that
//! links this crate: in a spawned worker it initializes MPI, serves the
//! client (its parent intercommunicator's rank 0) until the pool stops,
//! finalizes and exits, so `main` never runs there. MPI's own library
//! constructors have run by then (shared libraries are initialized before
//! the executable). As with the process pool's spawned workers, a task
//! runs before std's main-thread set-up: a stack overflow in it kills the
//! worker without std's message.

use mpi::environment::Threading;
use mpi::topology::Communicator;

use crate::protocol;

/// The argument a spawned worker gets.
pub(crate) const WORKER_ARG: &str = "--concurrent-futures-mpi-worker";

/// The exit status of a process started with [`WORKER_ARG`] that is not a
/// worker MPI spawned (no parent intercommunicator), or whose MPI cannot
/// start.
const NOT_A_WORKER_EXIT: i32 = 88;

#[used]
#[unsafe(link_section = ".init_array")]
pub(crate) static BOOT: extern "C" fn() = boot;

extern "C" fn boot() {
    if spawned_as_worker() {
        std::process::exit(run_worker());
    }
}

/// Whether this process's arguments hold [`WORKER_ARG`]. Read from
/// `/proc/self/cmdline`, which needs nothing of std's start-up.
fn spawned_as_worker() -> bool {
    std::fs::read("/proc/self/cmdline").is_ok_and(|cmdline| {
        cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == WORKER_ARG.as_bytes())
    })
}

fn run_worker() -> i32 {
    // One thread makes every MPI call here: whatever level MPI grants
    // will do.
    let Some((universe, _)) = mpi::initialize_with_threading(Threading::Funneled) else {
        eprintln!("concurrent-futures MPI worker: MPI was initialized already");
        return NOT_A_WORKER_EXIT;
    };
    let Some(parent) = universe.world().parent() else {
        eprintln!(
            "concurrent-futures MPI worker: started with {WORKER_ARG} but not by \
             MPI_Comm_spawn (no parent intercommunicator)"
        );
        return NOT_A_WORKER_EXIT;
    };
    protocol::say_hello(&parent, 0);
    protocol::serve(&parent, 0);
    // Disconnects from the client, which disconnects too (rsmpi's handle
    // from `parent()` disconnects on drop; after that `MPI_Comm_get_parent`
    // gives MPI_COMM_NULL, so the universe's drop does not do it again),
    // then finalizes.
    drop(parent);
    drop(universe);
    0
}
