//! Which worker gets which job: a job is sent ahead to a busy worker only
//! while a backlog lasts, and never to a worker that has finished nothing,
//! so a job never waits in one worker's socket behind a long task while
//! another worker idles, and a job no worker runs stays cancellable.

use concurrent_futures::{Executor, StartMethod};

use crate::support::{Gate, HangGuard, OpenOnDrop};
use crate::tasks;
use crate::{pool, value};

for_each_start_method!(
    no_job_waits_behind_a_long_task_at_start_up,
    a_job_no_worker_runs_stays_cancellable,
);

/// Issue 13, item 1: three jobs submitted to two workers that have not
/// connected yet: a quick one, a long one (blocked on the gate), a quick
/// one. The third must run on the first job's worker while the long one
/// still blocks. A handler that took the long job and the one after it
/// (sent ahead to a worker that had finished nothing) would leave the
/// third behind the gate, and `value` would time out. The race needs a
/// fresh pool each round.
fn no_job_waits_behind_a_long_task_at_start_up(method: StartMethod) {
    let _guard = HangGuard::new("no_job_waits_behind_a_long_task_at_start_up");
    for round in 0..10 {
        let gate = Gate::new();
        let _open = OpenOnDrop(&gate);
        let pool = pool(method, 2);
        let quick = pool
            .submit(tasks::arrive, (gate.gate_ref(), "quick".into()))
            .unwrap();
        let long = pool
            .submit(tasks::block_report, (gate.gate_ref(), "long".into()))
            .unwrap();
        let after = pool
            .submit(tasks::arrive, (gate.gate_ref(), "after".into()))
            .unwrap();
        assert_eq!(value(&after), "after", "round {round}");
        assert_eq!(value(&quick), "quick", "round {round}");
        assert!(!long.done(), "round {round}: the gate is still closed");
        gate.open();
        assert!(value(&long) > 0, "round {round}");
    }
}

/// With both workers blocked on the gate, a job submitted next is queued,
/// not sent ahead: it can still be cancelled, and it never runs.
fn a_job_no_worker_runs_stays_cancellable(method: StartMethod) {
    let _guard = HangGuard::new("a_job_no_worker_runs_stays_cancellable");
    let gate = Gate::new();
    let _open = OpenOnDrop(&gate);
    let pool = pool(method, 2);
    let blocked: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|tag| {
            pool.submit(tasks::block_report, (gate.gate_ref(), tag.into()))
                .unwrap()
        })
        .collect();
    gate.wait_for_arrivals(2);
    let queued: Vec<_> = (0..3)
        .map(|i| {
            pool.submit(tasks::arrive, (gate.gate_ref(), format!("queued{i}")))
                .unwrap()
        })
        .collect();
    for fut in &queued {
        assert!(!fut.running());
        assert!(fut.cancel(), "a job no worker runs is cancellable");
    }
    gate.open();
    for fut in &blocked {
        assert!(value(fut) > 0);
    }
    pool.shutdown(true, false);
    assert!(
        gate.arrivals().iter().all(|tag| !tag.starts_with("queued")),
        "a cancelled job ran: {:?}",
        gate.arrivals()
    );
}
