//! The MPI pool of `concurrent-futures`: `MpiPoolExecutor` runs
//! registered `#[task]` functions on MPI ranks, for work that outgrows one
//! machine: `mpi4py.futures` for Rust, over the MPI a cluster already
//! runs (Open MPI here; rsmpi, the `mpi` crate, underneath).
//!
//! Everything is behind this crate's `mpi` feature (the facade's `mpi`
//! feature turns it on), since building it needs an MPI library and
//! libclang: without it the crate is empty.
//!
//! Tasks, their payloads and the messages are those of the process pool
//! (the internal crate `concurrent-futures-task-wire`): the same `#[task]`
//! functions run on either pool.
#![warn(missing_docs)]

#[cfg(feature = "mpi")]
mod boot;
#[cfg(feature = "mpi")]
mod dispatcher;
#[cfg(feature = "mpi")]
mod liveness;
#[cfg(feature = "mpi")]
mod pool;
#[cfg(feature = "mpi")]
mod protocol;
#[cfg(feature = "mpi")]
mod spare;

#[cfg(feature = "mpi")]
pub use pool::{MpiPoolBuilder, MpiPoolExecutor};
