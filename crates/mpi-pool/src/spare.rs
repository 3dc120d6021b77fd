//! Spawned workers outlive their pool. When a dynamic pool is shut down
//! and done, its workers are not stopped: they stay connected, idle in
//! their serve loop, as a *spare group*, and the next pool that asks for
//! no more workers from the same program with the same MPI info keys is
//! served by them instead of spawning. The process spawns again only when
//! a pool needs more workers than any spare group holds (the smaller
//! spare groups of that origin are stopped then), and every spare group
//! is stopped when the process exits.
//!
//! A spawn is the slow part of a dynamic pool's start (hundreds of
//! milliseconds), and Open MPI 4.1 built against an external PMIx 4.x (as
//! Debian's and Ubuntu's packages are) hangs in a few percent of
//! `MPI_Comm_spawn` calls (openpmix/openpmix#2735), so a program that
//! opens pool after pool spawns once, not once per pool. The price is the
//! one a static launch's ranks already pay: a worker's process-wide state
//! (what an earlier pool's initializer set, a global a task changed) is
//! still there for the next pool. A new pool's initializer runs again on
//! each of its workers.

use std::path::PathBuf;

use mpi::point_to_point::Destination;
use mpi::topology::{Communicator, InterCommunicator};

use crate::liveness::Member;
use crate::protocol::STOP;

/// What a group of workers was spawned from: reused only for a pool that
/// would have spawned the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) program: PathBuf,
    pub(crate) info: Vec<(String, String)>,
}

/// The workers one `MPI_Comm_spawn` started, with their intercommunicator.
pub(crate) struct Group {
    pub(crate) comm: InterCommunicator,
    pub(crate) origin: Origin,
    /// Every worker of the group, in rank order.
    pub(crate) members: Vec<Member>,
}

impl Group {
    /// Whether one of its workers on this host has ended (one on another
    /// host cannot be watched: see `liveness.rs`).
    fn any_dead(&self) -> bool {
        self.members.iter().any(Member::has_ended)
    }

    /// Tells every worker to leave and disconnects from them. A group with
    /// a dead worker is told nothing: a disconnect, collective, would wait
    /// for ever for the dead rank, so its intercommunicator is left as it is.
    pub(crate) fn stop(self) {
        if self.any_dead() {
            std::mem::forget(self.comm);
            return;
        }
        for member in &self.members {
            self.comm
                .process_at_rank(member.rank)
                .send_with_tag(&[0u8; 0][..], STOP);
        }
        // Dropping an intercommunicator disconnects it (collective with
        // the workers, which disconnect as they leave).
        drop(self.comm);
    }
}

/// The spare groups of this process.
#[derive(Default)]
pub(crate) struct Spares(Vec<Group>);

impl Spares {
    /// The smallest live spare group from `origin` with at least `n`
    /// workers. If there is none, the spare groups from `origin` are
    /// stopped (they are too small, and a spawn follows), and so is any
    /// with a dead worker.
    pub(crate) fn take(&mut self, origin: &Origin, n: usize) -> Option<Group> {
        let (dead, live): (Vec<Group>, Vec<Group>) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(Group::any_dead);
        dead.into_iter().for_each(Group::stop);
        self.0 = live;
        let best = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, g)| &g.origin == origin && g.members.len() >= n)
            .min_by_key(|(_, g)| g.members.len())
            .map(|(i, _)| i);
        match best {
            Some(i) => Some(self.0.swap_remove(i)),
            None => {
                let (same, other): (Vec<Group>, Vec<Group>) = std::mem::take(&mut self.0)
                    .into_iter()
                    .partition(|g| &g.origin == origin);
                same.into_iter().for_each(Group::stop);
                self.0 = other;
                None
            }
        }
    }

    /// Keeps `group`, whose pool is done, for the next pool.
    pub(crate) fn put(&mut self, group: Group) {
        self.0.push(group);
    }

    /// Stops every spare group: the process is exiting.
    pub(crate) fn stop_all(&mut self) {
        self.0.drain(..).for_each(Group::stop);
    }
}
