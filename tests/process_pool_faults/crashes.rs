//! A task that panics, or a worker that dies: by abort, exit, segfault,
//! stack overflow, SIGKILL from outside, running out of memory, or a crash
//! while its argument is decoded or its result encoded (CPython's
//! `test_deadlock.py`, where any of these breaks the whole pool; here only
//! the one future fails and a replacement worker starts).

use concurrent_futures::{Executor, StartMethod, TaskError};

use crate::payloads::{Crash, CrashOnDecode};
use crate::support::{Gate, HangGuard};
use crate::tasks::{self, TASK_PANIC};
use crate::{
    Fate, WORKERS, error, expect_died, fault_scenario, pid_of, pool, value, wait_for_workers,
    wait_until,
};

const SIGABRT: Option<i32> = Some(6);
const SIGKILL: Option<i32> = Some(9);
const SIGSEGV: Option<i32> = Some(11);

for_each_start_method!(
    panic_in_task,
    abort_in_task,
    exit_in_task,
    exit_zero_in_task,
    segfault_in_task,
    stack_overflow_in_task,
    sigkill_from_outside,
    out_of_memory,
    exit_while_decoding_args,
    abort_while_decoding_args,
    segfault_while_decoding_args,
    exit_while_encoding_result,
    segfault_while_encoding_result,
    crash_after_shutdown_started,
    crash_with_big_data,
    sigkill_of_an_idle_worker,
    crash_leaving_a_grandchild,
);

/// A panic fails the future with its message; the worker carries on.
fn panic_in_task(method: StartMethod) {
    fault_scenario(
        method,
        "a task that panics",
        |pool, _| pool.submit(tasks::panics, ()).unwrap(),
        Fate::Survives,
        |err, _| {
            assert_eq!(
                err,
                &TaskError::Panicked {
                    message: TASK_PANIC.into()
                }
            );
            assert_eq!(err.to_string(), format!("the task panicked: {TASK_PANIC}"));
        },
    );
}

fn abort_in_task(method: StartMethod) {
    fault_scenario(
        method,
        "a task that aborts",
        |pool, _| pool.submit(tasks::crash, Crash::Abort).unwrap(),
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGABRT, None),
    );
}

/// CPython's `test_exit_during_func_exec_on_worker`.
fn exit_in_task(method: StartMethod) {
    fault_scenario(
        method,
        "a task that exits",
        |pool, _| pool.submit(tasks::crash, Crash::Exit(3)).unwrap(),
        Fate::Dies,
        |err, pid| expect_died(err, pid, None, Some(3)),
    );
}

/// Even a clean `exit(0)` in the middle of a task is a death.
fn exit_zero_in_task(method: StartMethod) {
    fault_scenario(
        method,
        "a task that exits with status 0",
        |pool, _| pool.submit(tasks::crash, Crash::Exit(0)).unwrap(),
        Fate::Dies,
        |err, pid| expect_died(err, pid, None, Some(0)),
    );
}

/// CPython's `test_crash_during_func_exec_on_worker`.
fn segfault_in_task(method: StartMethod) {
    fault_scenario(
        method,
        "a task that segfaults",
        |pool, _| pool.submit(tasks::crash, Crash::Segfault).unwrap(),
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGSEGV, None),
    );
}

/// A task that overflows its stack (unbounded recursion): only its future
/// fails, with `WorkerDied`; the bystander submitted before it and the
/// tasks queued after it get their values, and a replacement worker starts
/// (see [`fault_scenario`](crate::fault_scenario)). The signal differs by
/// start method, because std's stack-overflow handler exists only where
/// std's start-up ran:
///
/// * `Spawn`: SIGSEGV (11), and nothing is printed. A spawned worker runs
///   its tasks from the ELF `.init_array`, before `main`, on the main
///   thread, so std never installed its SIGSEGV handler: the stack cannot
///   grow past `RLIMIT_STACK`, the kernel sends SIGSEGV (not SIGBUS: on
///   Linux a fault beyond a stack is SIGSEGV), and its default action
///   kills the worker.
/// * `Fork`: SIGABRT (6). The initial workers of a `Fork` pool are forked
///   from the thread that called `build()`, here a test thread of the
///   harness, and the task runs on that thread's copy: its stack, its guard
///   page, its alternate signal stack, and std's SIGSEGV handler, all
///   inherited. The handler sees a fault in the guard page, prints "thread
///   '<name>' has overflowed its stack" (the forking thread's name) and
///   aborts.
/// * `ForkServer`: SIGSEGV (11), as `Spawn`: the worker is a fork of the
///   server's only thread, which runs before `main` too.
fn stack_overflow_in_task(method: StartMethod) {
    let signal = match method {
        StartMethod::Spawn | StartMethod::ForkServer => SIGSEGV,
        StartMethod::Fork => SIGABRT,
    };
    fault_scenario(
        method,
        "a task that overflows its stack",
        |pool, _| pool.submit(tasks::overflow_stack, ()).unwrap(),
        Fate::Dies,
        |err, pid| expect_died(err, pid, signal, None),
    );
}

/// The test SIGKILLs the worker while its task blocks on the gate.
fn sigkill_from_outside(method: StartMethod) {
    fault_scenario(
        method,
        "a worker killed from outside",
        |pool, gate| {
            let victim = pool
                .submit(tasks::block_report, (gate.gate_ref(), "victim".into()))
                .unwrap();
            let pid = pid_of(&gate.wait_for_arrivals(2), "victim");
            assert!(pool.worker_pids().contains(&pid));
            // SAFETY: a plain system call on a child of this process, which
            // its handler has not reaped (it is waiting for the task).
            assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
            victim
        },
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGKILL, None),
    );
}

/// The task lowers its RLIMIT_AS and allocates past it: the allocation
/// fails and Rust's allocation-error handler aborts.
fn out_of_memory(method: StartMethod) {
    fault_scenario(
        method,
        "a task that runs out of memory",
        |pool, _| pool.submit(tasks::exhaust_memory, ()).unwrap(),
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGABRT, None),
    );
}

/// CPython's `test_exit_at_task_unpickle`: the argument's `Deserialize`
/// exits in the worker, before the task starts.
fn exit_while_decoding_args(method: StartMethod) {
    fault_scenario(
        method,
        "an argument whose decode exits",
        |pool, _| {
            pool.submit(tasks::take_crash_on_decode, CrashOnDecode(Crash::Exit(4)))
                .unwrap()
        },
        Fate::Dies,
        |err, pid| expect_died(err, pid, None, Some(4)),
    );
}

fn abort_while_decoding_args(method: StartMethod) {
    fault_scenario(
        method,
        "an argument whose decode aborts",
        |pool, _| {
            pool.submit(tasks::take_crash_on_decode, CrashOnDecode(Crash::Abort))
                .unwrap()
        },
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGABRT, None),
    );
}

/// CPython's `test_crash_at_task_unpickle`.
fn segfault_while_decoding_args(method: StartMethod) {
    fault_scenario(
        method,
        "an argument whose decode segfaults",
        |pool, _| {
            pool.submit(tasks::take_crash_on_decode, CrashOnDecode(Crash::Segfault))
                .unwrap()
        },
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGSEGV, None),
    );
}

/// CPython's `test_exit_during_result_pickle_on_worker`: the result's
/// `Serialize` exits in the worker.
fn exit_while_encoding_result(method: StartMethod) {
    fault_scenario(
        method,
        "a result whose encode exits",
        |pool, _| {
            pool.submit(tasks::make_crash_on_encode, Crash::Exit(5))
                .unwrap()
        },
        Fate::Dies,
        |err, pid| expect_died(err, pid, None, Some(5)),
    );
}

/// CPython's `test_crash_during_result_pickle_on_worker`.
fn segfault_while_encoding_result(method: StartMethod) {
    fault_scenario(
        method,
        "a result whose encode segfaults",
        |pool, _| {
            pool.submit(tasks::make_crash_on_encode, Crash::Segfault)
                .unwrap()
        },
        Fate::Dies,
        |err, pid| expect_died(err, pid, SIGSEGV, None),
    );
}

/// CPython's `test_shutdown_deadlock`: a worker crashes after
/// `shutdown(wait = true)` began. Shutdown returns, the crashed task's
/// future holds `WorkerDied`, the queued task still runs (on a
/// replacement, since the queue is not empty), and every worker is gone.
fn crash_after_shutdown_started(method: StartMethod) {
    let _guard = HangGuard::new("shutdown(wait=true) while a worker crashes");
    let pool = pool(method, WORKERS);
    let gate = Gate::new();
    let crashing = pool
        .submit(
            tasks::block_then_crash,
            (gate.gate_ref(), "crash".into(), Crash::Segfault),
        )
        .unwrap();
    let bystander = pool
        .submit(tasks::block_report, (gate.gate_ref(), "bystander".into()))
        .unwrap();
    let arrivals = gate.wait_for_arrivals(2);
    let (crash_pid, bystander_pid) = (pid_of(&arrivals, "crash"), pid_of(&arrivals, "bystander"));
    let queued = pool.submit(tasks::square, 12).unwrap();
    let probes = std::thread::scope(|s| {
        let opener = s.spawn(|| crate::lifecycle::open_when_shut_down(&pool, &gate));
        pool.shutdown(true, false);
        opener.join().unwrap()
    });
    assert!(
        crashing.done() && bystander.done() && queued.done(),
        "shutdown(wait=true) returned with unfinished futures"
    );
    expect_died(&error(&crashing), crash_pid, SIGSEGV, None);
    assert_eq!(value(&bystander), bystander_pid);
    assert_eq!(value(&queued), 144);
    for probe in &probes {
        assert_eq!(value(probe), 81);
    }
    assert_eq!(pool.worker_count(), 0);
    assert_eq!(pool.worker_pids(), Vec::<u32>::new());
    assert_eq!(
        pool.submit(tasks::square, 1).unwrap_err(),
        TaskError::ShutDown
    );
}

/// CPython's `test_crash_big_data` (gh-94777): workers segfault while
/// 1 MiB inputs are in flight. Every item fails with its own worker's
/// death, nothing hangs, and the pool runs new work afterwards.
fn crash_with_big_data(method: StartMethod) {
    let _guard = HangGuard::new("map over crashing tasks with 1 MiB inputs");
    let pool = pool(method, WORKERS);
    let data = "a".repeat(1 << 20);
    let results: Vec<_> = pool
        .map(tasks::crash_with_data, vec![(data, Crash::Segfault); 6])
        .collect();
    assert_eq!(results.len(), 6);
    let mut pids: Vec<u32> = results
        .into_iter()
        .map(|r| match r {
            Err(TaskError::WorkerDied {
                pid,
                signal: Some(11),
                exit_code: None,
            }) => pid,
            other => panic!("expected a worker killed by SIGSEGV, got {other:?}"),
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 6, "each item died in its own worker: {pids:?}");
    assert_eq!(value(&pool.submit(tasks::square, 11).unwrap()), 121);
    let now = wait_for_workers(&pool, WORKERS);
    assert!(now.iter().all(|p| !pids.contains(p)), "{now:?} {pids:?}");
}

/// A worker SIGKILLed while idle. Once the pool has reaped it (its
/// handler reads the idle worker's channel, so it notices at once) the
/// next task runs on the replacement. A task submitted right after the
/// kill races the death: it either reaches the replacement and returns its
/// value, or reached the dying worker's socket first and fails with that
/// worker's `WorkerDied` (SIGKILL); never anything else, and the pool
/// carries on either way.
fn sigkill_of_an_idle_worker(method: StartMethod) {
    let _guard = HangGuard::new("a task submitted to a worker killed while idle");
    let pool = pool(method, 1);
    let kill = |pid: u32| {
        // SAFETY: a plain system call on a child of this process that its
        // handler has not reaped.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    };

    let first = value(&pool.submit(tasks::whoami, ()).unwrap());
    kill(first);
    wait_until("the killed idle worker to be reaped and replaced", || {
        let pids = pool.worker_pids();
        pids.len() == 1 && !pids.contains(&first) && pool.worker_count() == 1
    });
    assert_eq!(value(&pool.submit(tasks::square, 7).unwrap()), 49);
    let second = value(&pool.submit(tasks::whoami, ()).unwrap());
    assert_ne!(second, first);

    kill(second);
    let racing = pool.submit(tasks::square, 8).unwrap();
    match racing.result_timeout(crate::support::SHORT_TIMEOUT) {
        Ok(v) => assert_eq!(*v, 64),
        Err(err) => expect_died(&err, second, SIGKILL, None),
    }
    let third = value(&pool.submit(tasks::whoami, ()).unwrap());
    assert!(third != first && third != second);
    assert_eq!(wait_for_workers(&pool, 1), [third]);
    assert_eq!(pool.broken_reason(), None);
}

/// A task starts a process that outlives it (`sleep 60`), then aborts.
/// The grandchild inherits none of the pool's descriptors, so the death is
/// reported at once rather than when the grandchild ends.
fn crash_leaving_a_grandchild(method: StartMethod) {
    let grandchild = std::cell::Cell::new(0_u32);
    fault_scenario(
        method,
        "a task that aborts and leaves a child process running",
        |pool, gate| {
            let fut = pool
                .submit(
                    tasks::crash_leaving_a_grandchild,
                    (gate.gate_ref(), Crash::Abort),
                )
                .unwrap();
            grandchild.set(pid_of(&gate.wait_for_arrivals(2), "grandchild"));
            fut
        },
        Fate::Dies,
        |err, pid| {
            let sleeper = grandchild.get();
            let alive = std::fs::metadata(format!("/proc/{sleeper}")).is_ok();
            // SAFETY: a plain system call; the sleeper was orphaned to init
            // (or a subreaper), which reaps it.
            unsafe { libc::kill(sleeper as i32, libc::SIGKILL) };
            assert!(
                alive,
                "the grandchild {sleeper} should still have been running"
            );
            expect_died(err, pid, SIGABRT, None);
        },
    );
}
