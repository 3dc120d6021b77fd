//! One function per fault, a row of the matrix: `panic(cell)` runs as
//! `panic::threads`, `panic::fork` and `panic::spawn`, as the cell's
//! executor says. Each ends with [`Cell::finish`], which drops the pool
//! and checks that nothing was left behind.

use std::any::type_name;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use concurrent_futures::{
    Executor, ReturnWhen, TaskError, TaskFuture, set_callback_panic_handler, wait,
};

use crate::harness::{
    Cell, Exec, Fate, Pool, WORKERS, error, fault_scenario, pid_of, says, value, wait_for_workers,
};
use crate::support::{Gate, GateRef, OpenOnDrop, SHORT_TIMEOUT, address_space};
use crate::tasks::{
    self, DECODE_REFUSAL, ENCODE_REFUSAL, EXIT_CODE, INIT_PANIC, RefuseDecode, RefuseEncode,
    TASK_PANIC,
};

const SIGABRT: Option<i32> = Some(6);
const SIGKILL: Option<i32> = Some(9);
const SIGSEGV: Option<i32> = Some(11);

/// Asserts that `err` is exactly `WorkerDied` for `pid` with this signal
/// or exit status, and that its message names the pid and says `how`.
#[track_caller]
fn expect_died(err: &TaskError, pid: u32, signal: Option<i32>, exit_code: Option<i32>, how: &str) {
    let expected = TaskError::WorkerDied {
        pid,
        signal,
        exit_code,
    };
    assert_eq!(err, &expected, "{err}");
    let died = format!("the worker process {pid} running the task died: ");
    says(&err.to_string(), &[&died, how]);
}

/// Asserts that `err` is `expected`, an `Encode` or a `Decode`, and that
/// its message names the type. (postcard, unlike bincode, drops a serde
/// error's own message, so under that feature only the type is compared.)
#[track_caller]
fn expect_codec(err: &TaskError, expected: TaskError) {
    let (verb, type_name) = match &expected {
        TaskError::Encode { type_name, .. } => ("encode", type_name),
        TaskError::Decode { type_name, .. } => ("decode", type_name),
        other => panic!("not a codec error: {other:?}"),
    };
    if cfg!(feature = "postcard") {
        assert_eq!(err.kind(), expected.kind(), "{err:?}");
        says(&format!("{err:?}"), &[type_name]);
    } else {
        assert_eq!(err, &expected);
    }
    says(
        &err.to_string(),
        &[&format!("could not {verb} a value of type {type_name}: ")],
    );
}

/// Blocks every worker on `gate` with a task tagged `run<i>`; returns their
/// futures and the pids they reported, in submit order.
fn block_every_worker(cell: &Cell, pool: &Pool, gate: &Gate) -> (Vec<TaskFuture<u32>>, Vec<u32>) {
    let running: Vec<_> = (0..WORKERS)
        .map(|i| {
            pool.submit(tasks::block_report, (gate.gate_ref(), format!("run{i}")))
                .unwrap()
        })
        .collect();
    let arrivals = gate.wait_for_arrivals(WORKERS);
    let pids: Vec<u32> = (0..WORKERS)
        .map(|i| pid_of(&arrivals, &format!("run{i}")))
        .collect();
    pids.iter().for_each(|&pid| cell.note_pid(pid));
    cell.note_workers(pool);
    (running, pids)
}

/// `square(i)` for each `i`, submitted.
fn squares(pool: &Pool, items: impl IntoIterator<Item = u64>) -> Vec<TaskFuture<u64>> {
    items
        .into_iter()
        .map(|i| pool.submit(tasks::square, i).unwrap())
        .collect()
}

/// Asserts that `pool` refuses new work because it was shut down.
#[track_caller]
fn refuses_after_shutdown(pool: &Pool) {
    let err = pool.submit(tasks::square, 1).map(drop).unwrap_err();
    assert_eq!(err, TaskError::ShutDown);
    says(
        &err.to_string(),
        &["cannot schedule new futures after shutdown"],
    );
}

// ---------------------------------------------------------------------------
// The task fails
// ---------------------------------------------------------------------------

pub fn panic(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::panics, ()),
        Fate::Survives,
        |err, _| {
            let expected = TaskError::Panicked {
                message: TASK_PANIC.into(),
            };
            assert_eq!(err, &expected);
            assert_eq!(err.to_string(), format!("the task panicked: {TASK_PANIC}"));
        },
    );
    cell.finish(pool);
}

pub fn abort(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::abort, ()),
        Fate::Dies,
        |err, pid| {
            let how = "killed by signal 6 (SIGABRT): the task aborted";
            expect_died(err, pid, SIGABRT, None, how)
        },
    );
    cell.finish(pool);
}

pub fn exit(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::exit, ()),
        Fate::Dies,
        |err, pid| {
            let how = format!("it exited with status {EXIT_CODE}");
            expect_died(err, pid, None, Some(EXIT_CODE), &how)
        },
    );
    cell.finish(pool);
}

pub fn segfault(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::segfault, ()),
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGSEGV, None, "killed by signal 11 (SIGSEGV)"),
    );
    cell.finish(pool);
}

/// Set in the environment of the child process that
/// `stack_overflow::threads` runs itself as: there the cell overflows a
/// thread pool task's stack, which ends that process.
const OVERFLOW_CHILD: &str = "CF_FAULTS_STACK_OVERFLOW_CHILD";

/// A task that recurses without bound. On a process pool only its future
/// fails, with `WorkerDied`: SIGSEGV where no stack-overflow handler runs
/// (a spawned worker runs tasks before `main`, where std installs it; a
/// fork server's workers likewise), SIGABRT in a `Fork` pool's first
/// workers, which run the task on their copy of the thread that built the
/// pool, with std's handler. On a thread pool the program aborts: the
/// cell runs this test binary again as a child, with [`OVERFLOW_CHILD`]
/// set, and checks that it died of SIGABRT after std's message naming the
/// pool's worker thread.
pub fn stack_overflow(cell: Cell) {
    let signal = match cell.exec() {
        Exec::Threads => return stack_overflow_on_threads(cell),
        Exec::Fork => SIGABRT,
        Exec::Spawn | Exec::ForkServer => SIGSEGV,
    };
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::overflow_stack, ()),
        Fate::Dies,
        |err, pid| {
            let how = if signal == SIGABRT {
                "killed by signal 6 (SIGABRT)"
            } else {
                "killed by signal 11 (SIGSEGV)"
            };
            expect_died(err, pid, signal, None, how)
        },
    );
    cell.finish(pool);
}

/// See [`stack_overflow`].
fn stack_overflow_on_threads(cell: Cell) {
    if std::env::var_os(OVERFLOW_CHILD).is_some() {
        let pool = cell.pool();
        eprintln!("{OVERFLOW_CHILD}: submitting to {}", cell.thread_prefix());
        let outcome = pool
            .submit(tasks::overflow_stack, ())
            .map(|fut| fut.result_timeout(SHORT_TIMEOUT).cloned());
        // Not reached: the overflow ends the process.
        eprintln!("{OVERFLOW_CHILD}: the program survived: {outcome:?}");
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "stack_overflow::threads", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(OVERFLOW_CHILD, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the child test process starts");
    // Its stderr ends when it does: read it on a thread, wait with a bound.
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = tx.send(text);
    });
    let Ok(stderr) = rx.recv_timeout(SHORT_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child did not end within {SHORT_TIMEOUT:?}");
    };
    reader.join().expect("the reader does not panic");
    let status = child.wait().expect("the child is reaped");
    let prefix = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{OVERFLOW_CHILD}: submitting to ")))
        .unwrap_or_else(|| panic!("the child never submitted the task: {stderr}"));
    // "thread '<name>' (<tid>) has overflowed its stack" (older std: no tid).
    let worker = format!("thread '{prefix}_0' ");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&worker) && l.ends_with(" has overflowed its stack")),
        "{stderr:?} does not say that {worker}has overflowed its stack"
    );
    says(&stderr, &["fatal runtime error: stack overflow, aborting"]);
    assert!(!stderr.contains("the program survived"), "{stderr}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        SIGABRT,
        "the child must die of SIGABRT: {status}; its stderr: {stderr}"
    );
    let pool = cell.pool();
    cell.finish(pool);
}

/// The test SIGKILLs the worker while its task blocks on the gate.
pub fn sigkill(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, gate| {
            let victim = pool.submit(tasks::block_report, (gate.gate_ref(), "victim".into()))?;
            let pid = pid_of(&gate.wait_for_arrivals(2), "victim");
            cell.note_pid(pid);
            // SAFETY: a plain system call on a child of this process, which
            // its handler has not reaped (it waits for the task's answer).
            assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
            Ok(victim)
        },
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGKILL, None, "killed by signal 9 (SIGKILL)"),
    );
    cell.finish(pool);
}

/// The task reserves (touching none of it) more address space than the
/// pool's `memory_limit`: without the limit it would succeed.
pub fn memory_limit(cell: Cell) {
    // Room for what a worker maps at start (a forked one: this process).
    let limit = address_space() + (512 << 20);
    let pool = cell.pool_with(|b| b, |b| b.memory_limit(limit));
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::reserve, limit + (1 << 30)),
        Fate::Dies,
        |err, pid| {
            let how = "killed by signal 6 (SIGABRT): the task aborted, or an allocation failed \
                       (past the pool's memory limit, if one is set)";
            expect_died(err, pid, SIGABRT, None, how)
        },
    );
    cell.finish(pool);
}

/// The time limit of the fault's task, set by `submit_with_timeout` (the
/// bystander and the queued tasks have none).
const LIMIT: Duration = Duration::from_millis(200);

pub fn time_limit(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, gate| {
            pool.processes().submit_with_timeout(
                tasks::block_report,
                (gate.gate_ref(), "overdue".into()),
                LIMIT,
            )
        },
        Fate::Dies,
        |err, pid| {
            assert_eq!(err, &TaskError::TaskTimedOut { limit: LIMIT, pid });
            let what = format!(
                "the task ran past its time limit of {LIMIT:?}: its worker process {pid} was \
                 killed and replaced"
            );
            says(&err.to_string(), &[&what]);
        },
    );
    cell.finish(pool);
}

// ---------------------------------------------------------------------------
// Values that do not cross the process boundary
// ---------------------------------------------------------------------------

/// `submit` itself fails; nothing is sent (the task would record "ran").
pub fn arg_encode(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, gate| {
            let refused = pool.submit(tasks::take_refuse_encode, (gate.gate_ref(), RefuseEncode));
            assert!(refused.is_err(), "submit must refuse: {refused:?}");
            refused
        },
        Fate::Survives,
        |err, _| {
            let expected = TaskError::Encode {
                type_name: type_name::<(GateRef, RefuseEncode)>().into(),
                reason: ENCODE_REFUSAL.into(),
            };
            expect_codec(err, expected);
        },
    );
    cell.finish(pool);
}

pub fn result_encode(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::make_refuse_encode, ()),
        Fate::Survives,
        |err, _| {
            let expected = TaskError::Encode {
                type_name: type_name::<RefuseEncode>().into(),
                reason: ENCODE_REFUSAL.into(),
            };
            expect_codec(err, expected);
        },
    );
    cell.finish(pool);
}

pub fn result_decode(cell: Cell) {
    let pool = cell.pool();
    fault_scenario(
        &cell,
        &pool,
        |pool, _| pool.submit(tasks::make_refuse_decode, ()),
        Fate::Survives,
        |err, _| {
            let expected = TaskError::Decode {
                type_name: type_name::<RefuseDecode>().into(),
                reason: DECODE_REFUSAL.into(),
            };
            expect_codec(err, expected);
        },
    );
    cell.finish(pool);
}

// ---------------------------------------------------------------------------
// Callbacks and initializers
// ---------------------------------------------------------------------------

/// The message of the panicking done-callbacks.
const CALLBACK_PANIC: &str = "the done-callback panicked on purpose";

/// Reports of panicking callbacks, while a cell collects them.
static REPORTS: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Sends reports of panicking callbacks to [`REPORTS`] from now on (the
/// handler is process-wide; the cells are serialised). Outside a
/// collection it prints them, as the default handler does.
fn collect_callback_panics() {
    set_callback_panic_handler(|report| {
        match REPORTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(reports) => reports.push(report.to_owned()),
            None => eprintln!("concurrent_futures: {report}"),
        }
    });
    *REPORTS.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
}

/// The reports collected since [`collect_callback_panics`]; stops
/// collecting.
fn callback_panic_reports() -> Vec<String> {
    REPORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_default()
}

/// Three callbacks on a running task's future, the middle one panicking:
/// when the task completes, the future keeps its value, the first and the
/// third run (in the pool's thread that completes it), and the panic is
/// reported to the handler. A panicking callback added to the done future
/// runs in the caller, which does not unwind. The thread that ran the
/// callbacks carries on: the next task runs where the first did.
pub fn done_callback(cell: Cell) {
    let pool = cell.pool();
    let gate = Gate::new();
    let release = Gate::new();
    collect_callback_panics();
    let bystander = pool
        .submit(tasks::block_report, (gate.gate_ref(), "bystander".into()))
        .unwrap();
    let bystander_pid = pid_of(&gate.wait_for_arrivals(1), "bystander");
    let fut = pool
        .submit(
            tasks::block_report,
            (release.gate_ref(), "calls-back".into()),
        )
        .unwrap();
    let pid = pid_of(&release.wait_for_arrivals(1), "calls-back");
    cell.note_workers(&pool);

    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let (third_tx, third_rx) = mpsc::channel();
    fut.add_done_callback({
        let ran = ran.clone();
        move |f| {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            ran.lock()
                .unwrap()
                .push(format!("first saw {:?} in {thread}", f.result()));
        }
    });
    fut.add_done_callback(|_| panic!("{CALLBACK_PANIC}"));
    fut.add_done_callback({
        let ran = ran.clone();
        move |f| {
            ran.lock().unwrap().push("third".into());
            third_tx.send(f.result().cloned()).unwrap();
        }
    });
    let queued = squares(&pool, 1..=4);
    assert!(!fut.done(), "{fut:?}");

    release.open();
    assert_eq!(value(&fut), pid);
    let third_saw = third_rx
        .recv_timeout(SHORT_TIMEOUT)
        .expect("the third callback did not run");
    assert_eq!(third_saw, Ok(pid));
    let ran = ran.lock().unwrap().clone();
    assert_eq!(ran.len(), 2, "{ran:?}");
    let thread = ran[0]
        .strip_prefix(&format!("first saw Ok({pid}) in "))
        .unwrap_or_else(|| panic!("{ran:?}"));
    let completer = match cell.exec() {
        Exec::Threads => format!("{}_", cell.thread_prefix()),
        Exec::Fork | Exec::Spawn | Exec::ForkServer => "cf-process-".to_owned(),
    };
    assert!(
        thread.starts_with(&completer),
        "callbacks ran in {thread:?}"
    );
    assert_eq!(ran[1], "third");

    fut.add_done_callback(|_| panic!("{CALLBACK_PANIC}"));
    let report = format!("exception calling callback for {fut:?}: {CALLBACK_PANIC}");
    assert_eq!(callback_panic_reports(), [report.clone(), report]);
    assert_eq!(value(&fut), pid);

    let next = value(&pool.submit(tasks::whoami, ()).unwrap());
    match &pool {
        Pool::Threads(p) => assert_eq!(p.worker_count(), WORKERS),
        Pool::Processes(p) => {
            assert_eq!(
                next, pid,
                "the worker whose callback panicked must carry on"
            );
            assert_eq!(wait_for_workers(p, WORKERS).len(), WORKERS);
        }
    }
    assert_eq!(pool.broken_reason(), None);
    gate.open();
    assert_eq!(value(&bystander), bystander_pid);
    assert_eq!(queued.iter().map(value).collect::<Vec<_>>(), [1, 4, 9, 16]);
    let more: Vec<u64> = pool
        .map(tasks::square, 0..8_u64)
        .map(Result::unwrap)
        .collect();
    assert_eq!(more, (0..8_u64).map(|x| x * x).collect::<Vec<_>>());
    drop((release, gate));
    cell.finish(pool);
}

/// The initializer panics in every worker: the pool is broken. Three
/// tasks submitted at once are each refused, or accepted and failed, with
/// the same `Broken`; later submits are refused with it; the initializer
/// ran at most once per worker (no respawn loop) and no task ran.
pub fn initializer(cell: Cell) {
    let gate = Gate::new();
    let init_gate = gate.gate_ref();
    let pool = cell.pool_with(
        |b| b.initializer(move || tasks::init_panics(init_gate.clone())),
        |b| b.initializer(tasks::init_panics, gate.gate_ref()),
    );
    let outcomes: Vec<TaskError> = (1..=3_u64)
        .map(|i| match pool.submit(tasks::square, i) {
            Ok(fut) => error(&fut),
            Err(refused) => refused,
        })
        .collect();
    let TaskError::Broken { reason } = &outcomes[0] else {
        panic!("expected Broken, got {outcomes:?}");
    };
    let broken = TaskError::Broken {
        reason: reason.clone(),
    };
    assert!(outcomes.iter().all(|o| o == &broken), "{outcomes:?}");
    let expected: Vec<String> = match cell.exec() {
        // The worker thread whose initializer failed first: one of two.
        Exec::Threads => (0..WORKERS)
            .map(|i| {
                format!(
                    "the initializer of worker thread {}_{i} failed (panicked: {INIT_PANIC}); \
                     the pool runs no more tasks: fix the initializer and build a new pool",
                    cell.thread_prefix()
                )
            })
            .collect(),
        Exec::Fork | Exec::Spawn | Exec::ForkServer => {
            vec![format!("the initializer failed: it panicked: {INIT_PANIC}")]
        }
    };
    assert!(
        expected.contains(reason),
        "{reason:?} is none of {expected:#?}"
    );
    assert_eq!(pool.broken_reason().as_ref(), Some(reason));
    let refused = pool.submit(tasks::square, 4).map(drop).unwrap_err();
    assert_eq!(refused, broken);
    assert_eq!(
        refused.to_string(),
        format!("the executor is broken: {reason}")
    );

    pool.shutdown(true, false);
    assert_eq!(pool.worker_count(), 0);
    let runs = gate.settled_arrivals();
    assert!(
        (1..=WORKERS).contains(&runs.len()) && runs.iter().all(|r| r.starts_with("init:")),
        "the initializer ran {} times (at most once per worker), and nothing else: {runs:?}",
        runs.len()
    );
    runs.iter()
        .for_each(|r| cell.note_pid(pid_of(std::slice::from_ref(r), "init")));
    assert_eq!(pool.submit(tasks::square, 5).map(drop).unwrap_err(), broken);
    drop(gate);
    cell.finish(pool);
}

// ---------------------------------------------------------------------------
// Cancel and shutdown
// ---------------------------------------------------------------------------

/// With every worker blocked, a task queued between others is cancelled:
/// it never runs; those around it do.
pub fn cancel_queued(cell: Cell) {
    let pool = cell.pool();
    let gate = Gate::new();
    let (running, pids) = block_every_worker(&cell, &pool, &gate);
    let mut queued = squares(&pool, 1..=2);
    let victim = pool
        .submit(tasks::arrive, (gate.gate_ref(), "cancelled".into()))
        .unwrap();
    queued.extend(squares(&pool, 3..=4));

    assert!(!victim.done(), "{victim:?}");
    assert!(victim.cancel());
    assert!(victim.cancelled() && victim.done());
    let err = victim.result_timeout(SHORT_TIMEOUT).unwrap_err();
    assert_eq!(err, TaskError::Cancelled);
    assert_eq!(
        err.to_string(),
        "the future was cancelled before its task started"
    );
    assert!(
        victim.cancel(),
        "cancelling again still says it is cancelled"
    );
    assert!(running.iter().all(|f| !f.done()) && queued.iter().all(|f| !f.done()));

    gate.open();
    assert_eq!(running.iter().map(value).collect::<Vec<_>>(), pids);
    assert_eq!(queued.iter().map(value).collect::<Vec<_>>(), [1, 4, 9, 16]);
    let more: Vec<u64> = pool
        .map(tasks::square, 0..8_u64)
        .map(Result::unwrap)
        .collect();
    assert_eq!(more, (0..8_u64).map(|x| x * x).collect::<Vec<_>>());
    let arrivals = gate.settled_arrivals();
    assert!(
        !arrivals.iter().any(|a| a == "cancelled"),
        "the cancelled task ran: {arrivals:?}"
    );
    assert_eq!(
        victim.result_timeout(SHORT_TIMEOUT),
        Err(TaskError::Cancelled)
    );
    if let Pool::Processes(p) = &pool {
        let mut now = p.worker_pids();
        now.sort_unstable();
        let mut before = pids.clone();
        before.sort_unstable();
        assert_eq!(now, before, "no worker may have been replaced");
    }
    drop(gate);
    cell.finish(pool);
}

/// `shutdown(wait = false)` while every worker is busy and three tasks are
/// queued returns at once (the tasks are still blocked when it does);
/// submit is refused; the busy and the queued tasks still complete.
pub fn shutdown_nowait(cell: Cell) {
    let pool = cell.pool();
    let gate = Gate::new();
    let (running, pids) = block_every_worker(&cell, &pool, &gate);
    let queued = squares(&pool, 1..=3);
    pool.shutdown(false, false);
    assert!(running.iter().all(|f| !f.done()), "{running:?}");
    assert_eq!(gate.blocked_count(), WORKERS);
    refuses_after_shutdown(&pool);

    gate.open();
    assert_eq!(running.iter().map(value).collect::<Vec<_>>(), pids);
    assert_eq!(queued.iter().map(value).collect::<Vec<_>>(), [1, 4, 9]);
    refuses_after_shutdown(&pool);
    drop(gate);
    cell.finish(pool);
}

/// `shutdown(wait = true, cancel_futures = true)` with every worker busy
/// and a backlog of five: the backlog is cancelled at once (the gate opens
/// only once all five are) and never runs; the running tasks complete;
/// shutdown returns with every worker gone; submit is refused.
pub fn shutdown_cancel(cell: Cell) {
    let pool = cell.pool();
    let gate = Gate::new();
    let (running, pids) = block_every_worker(&cell, &pool, &gate);
    let backlog: Vec<_> = (0..5)
        .map(|i| {
            pool.submit(tasks::arrive, (gate.gate_ref(), format!("backlog{i}")))
                .unwrap()
        })
        .collect();
    let not_cancelled = std::thread::scope(|s| {
        let opener = s.spawn(|| {
            let _open = OpenOnDrop(&gate);
            // Done means cancelled here: none can run before the gate opens.
            wait(
                backlog.iter().cloned(),
                Some(SHORT_TIMEOUT / 2),
                ReturnWhen::AllCompleted,
            )
            .not_done
        });
        pool.shutdown(true, true);
        opener.join().unwrap()
    });
    assert!(not_cancelled.is_empty(), "not cancelled: {not_cancelled:?}");
    for fut in &backlog {
        assert_eq!(fut.result_timeout(SHORT_TIMEOUT), Err(TaskError::Cancelled));
    }
    assert_eq!(running.iter().map(value).collect::<Vec<_>>(), pids);
    assert_eq!(pool.worker_count(), 0);
    refuses_after_shutdown(&pool);
    let arrivals = gate.settled_arrivals();
    assert!(
        arrivals.iter().all(|a| a.starts_with("run")),
        "a cancelled task ran: {arrivals:?}"
    );
    drop(gate);
    cell.finish(pool);
}
