//! The process pool's own behaviour, beyond the conformance suite (which
//! runs it against CPython's tests) and the fault tests: a backlog of
//! 100,000 tasks, chunked `map`, worker retirement, what a worker inherits,
//! workers that never connect, and workers outliving neither their pool
//! nor their parent process.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::num::NonZeroUsize;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, MapOptions, ProcessPoolExecutor, StartMethod, TaskError, TaskFuture, task,
};
use support::{Gate, GateRef, HangGuard, SHORT_TIMEOUT};

const METHODS: [StartMethod; 3] = [
    StartMethod::Spawn,
    StartMethod::Fork,
    StartMethod::ForkServer,
];

fn pool(method: StartMethod, workers: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(workers)
        .start_method(method)
        .allow_fork_with_threads(true)
        .build()
        .unwrap()
}

#[task]
fn double(x: u64) -> u64 {
    2 * x
}

#[task]
fn pid(_: ()) -> u32 {
    std::process::id()
}

#[task]
fn odd_fails(x: u32) -> u32 {
    assert!(x.is_multiple_of(2), "odd {x}");
    x
}

#[task]
fn wait_then_pid(gate: GateRef) -> u32 {
    gate.wait_as("waiting");
    std::process::id()
}

/// Each fd of the worker and what it points at (`socket:[..]`, `pipe:[..]`,
/// `/dev/null`...).
#[task]
fn open_fds(_: ()) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds
}

/// Polls `done` until it holds, failing after [`SHORT_TIMEOUT`].
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SHORT_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// procspawn's pool fails at 20,000 queued tasks ("Too many open files"):
/// a queued task here holds bytes, not descriptors.
#[test]
fn a_backlog_of_100_000_tasks_holds_no_descriptors() {
    let _guard = HangGuard::with_limit("100,000 tasks", Duration::from_secs(120));
    let pool = pool(StartMethod::Spawn, 2);
    let before = fd_count();
    let futures: Vec<TaskFuture<u64>> = (0..100_000)
        .map(|i| pool.submit(double, i).unwrap())
        .collect();
    // Everything is submitted; most of it is still queued. Other tests of
    // this binary open and close pools meanwhile, so allow for theirs: a
    // descriptor per queued task would be ~100,000.
    assert!(
        fd_count() <= before + 1000,
        "the backlog holds descriptors: {before} before, {} after",
        fd_count()
    );
    let sum: u64 = futures.iter().map(|f| *f.result().unwrap()).sum();
    assert_eq!(sum, 2 * (0..100_000_u64).sum::<u64>());
}

#[test]
fn map_with_a_chunksize_keeps_order_and_fails_items_alone() {
    for method in METHODS {
        let pool = pool(method, 2);
        let opts = MapOptions::new().chunksize(NonZeroUsize::new(7).unwrap());
        let doubled: Vec<u64> = pool
            .map_with(double, 0..1000, opts)
            .map(Result::unwrap)
            .collect();
        assert_eq!(doubled, (0..1000).map(|x| 2 * x).collect::<Vec<_>>());
        let mixed: Vec<Result<u32, TaskError>> = pool.map_with(odd_fails, 0..20, opts).collect();
        for (x, r) in (0..20).zip(mixed) {
            if x % 2 == 0 {
                assert_eq!(r, Ok(x));
            } else {
                assert_eq!(
                    r,
                    Err(TaskError::Panicked {
                        message: format!("odd {x}")
                    })
                );
            }
        }
    }
}

#[test]
fn max_tasks_per_child_retires_and_replaces_the_worker() {
    for method in METHODS {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .start_method(method)
            .allow_fork_with_threads(true)
            .max_tasks_per_child(2)
            .build()
            .unwrap();
        let pids: Vec<u32> = (0..6)
            .map(|_| pool.submit(pid, ()).unwrap().into_result().unwrap())
            .collect();
        assert_eq!(pids[0], pids[1], "{method:?}: {pids:?}");
        assert_ne!(pids[1], pids[2], "{method:?}: {pids:?}");
        assert_eq!(pids[2], pids[3], "{method:?}: {pids:?}");
        assert_ne!(pids[3], pids[4], "{method:?}: {pids:?}");
        eventually("the replacement is connected", || pool.worker_count() == 1);
    }
}

#[test]
fn workers_inherit_only_stdio_and_their_channel() {
    // An fd the test opens is never seen by a worker.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    for method in METHODS {
        let pool = pool(method, 1);
        let fds = pool.submit(open_fds, ()).unwrap().into_result().unwrap();
        // Leave out the directory the listing itself had open.
        let fds: Vec<_> = fds
            .into_iter()
            .filter(|(_, t)| !t.ends_with("/fd"))
            .collect();
        let (stdio, rest): (Vec<_>, Vec<_>) = fds.iter().partition(|(fd, _)| *fd <= 2);
        assert_eq!(stdio.len(), 3, "{method:?}: {fds:?}");
        // One socket, both directions; nothing per task, no pipe, no file.
        assert_eq!(rest.len(), 1, "{method:?}: {fds:?}");
        assert!(rest[0].1.starts_with("socket:"), "{method:?}: {fds:?}");
    }
    drop(file);
}

#[test]
fn a_worker_that_exits_before_connecting_breaks_the_pool_with_a_reason() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .worker_program("/bin/true")
        .build()
        .unwrap();
    let reason = match pool.submit(double, 1) {
        Err(TaskError::Broken { reason }) => reason,
        Ok(f) => match f.into_result() {
            Err(TaskError::Broken { reason }) => reason,
            other => panic!("expected a broken pool, got {other:?}"),
        },
        Err(other) => panic!("expected a broken pool, got {other:?}"),
    };
    assert!(
        reason.contains("exited with status 0 before it connected"),
        "{reason}"
    );
    assert!(matches!(
        pool.submit(double, 1),
        Err(TaskError::Broken { .. })
    ));
}

#[test]
fn a_worker_that_never_connects_is_killed_after_the_start_timeout() {
    let dir = std::env::temp_dir().join(format!("cf-silent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("silent-worker");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .worker_program(&script)
        .start_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let fut = pool.submit(double, 1).unwrap();
    match fut.result_timeout(SHORT_TIMEOUT) {
        Err(TaskError::Broken { reason }) => {
            assert!(reason.contains("did not connect within"), "{reason}")
        }
        other => panic!("expected a broken pool, got {other:?}"),
    }
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A worker killed while idle takes no task down with it: the next task
/// goes to its replacement.
#[test]
fn a_worker_killed_while_idle_loses_nothing() {
    for method in METHODS {
        let pool = pool(method, 1);
        let first = pool.submit(pid, ()).unwrap().into_result().unwrap();
        let status = Command::new("kill")
            .args(["-9", &first.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // The handler sees its idle worker die, reaps it and starts a
        // replacement: no task is involved.
        eventually("the dead worker is reaped", || {
            !pool.worker_pids().contains(&first) && pool.worker_count() == 1
        });
        let second = pool.submit(pid, ()).unwrap().into_result();
        let second = second.unwrap_or_else(|e| panic!("{method:?}: killed {first}, then {e:?}"));
        assert_ne!(first, second, "{method:?}");
    }
}

/// Not a test on its own: the process that `workers_die_with_their_parent`
/// starts and kills. It builds one pool of each start method, prints the
/// worker pids and blocks.
#[test]
#[ignore = "run by workers_die_with_their_parent"]
fn parent_to_be_killed() {
    if std::env::var_os("CF_PARENT_TO_BE_KILLED").is_none() {
        return;
    }
    let pools: Vec<ProcessPoolExecutor> = METHODS.iter().map(|&m| pool(m, 2)).collect();
    let gate = Gate::new();
    // One worker of each pool busy in a task, one idle.
    let _busy: Vec<TaskFuture<u32>> = pools
        .iter()
        .map(|p| p.submit(wait_then_pid, gate.gate_ref()).unwrap())
        .collect();
    gate.wait_for_arrivals(pools.len());
    for p in &pools {
        eventually("all workers are connected", || p.worker_count() == 2);
    }
    // Every child: the workers, and the fork server of the ForkServer pool.
    let pids: Vec<String> = support::children()
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    println!("PIDS {}", pids.join(" "));
    loop {
        std::thread::park();
    }
}

/// This test binary, set to run only the ignored test `name`, with `flag`
/// set so that the test does its work.
fn this_test_binary(name: &str, flag: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env(flag, "1");
    command
}

fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // Reparented to an init that does not reap: dead all the same.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn workers_die_with_their_parent() {
    let mut parent = this_test_binary("parent_to_be_killed", "CF_PARENT_TO_BE_KILLED")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(parent.stdout.take().unwrap()).lines();
    let pids: Vec<u32> = loop {
        let line = lines
            .next()
            .expect("the parent printed its workers")
            .unwrap();
        if let Some(pids) = line.strip_prefix("PIDS ") {
            break pids.split(' ').map(|p| p.parse().unwrap()).collect();
        }
    };
    // Two workers per pool, and one fork server.
    assert_eq!(pids.len(), 2 * METHODS.len() + 1, "{pids:?}");
    parent.kill().unwrap();
    parent.wait().unwrap();
    for pid in pids {
        eventually(&format!("worker {pid} is gone"), || is_gone(pid));
    }
}

/// While one worker is stuck in a long task, the other runs the whole
/// backlog: nothing waits behind the stuck task (sending ahead only
/// happens to a worker that finishes tasks).
#[test]
fn a_stuck_worker_does_not_hold_back_the_backlog() {
    for method in METHODS {
        let _guard = HangGuard::new("a backlog beside a stuck worker");
        let pool = pool(method, 2);
        let gate = Gate::new();
        let stuck = pool.submit(wait_then_pid, gate.gate_ref()).unwrap();
        gate.wait_for_arrivals(1);
        let backlog: Vec<TaskFuture<u64>> =
            (0..200).map(|i| pool.submit(double, i).unwrap()).collect();
        for (i, f) in (0_u64..).zip(&backlog) {
            assert_eq!(f.result_timeout(SHORT_TIMEOUT), Ok(&(2 * i)), "{method:?}");
        }
        assert!(!stuck.done());
        gate.open();
        assert!(stuck.result_timeout(SHORT_TIMEOUT).is_ok());
    }
}

/// Tasks submitted to a new pool, before its workers have connected, go
/// one to each worker. A worker that had connected but not yet taken a job
/// used to count as busy, so the first handler to look could take both
/// jobs (one sent ahead) while the other worker went idle; here each task
/// blocks until both run at once, so such a task would wait for ever (the
/// hang guard turns that into a failure). The race is narrow: repeat it.
#[test]
fn tasks_submitted_while_workers_connect_go_one_per_worker() {
    for method in METHODS {
        for round in 0..100 {
            let _guard = HangGuard::new("two blocking tasks on a new pool of two");
            let pool = pool(method, 2);
            let gate = Gate::new();
            let tasks: Vec<TaskFuture<u32>> = (0..2)
                .map(|_| pool.submit(wait_then_pid, gate.gate_ref()).unwrap())
                .collect();
            gate.wait_for_arrivals(2);
            gate.open();
            let pids: Vec<u32> = tasks
                .iter()
                .map(|t| *t.result_timeout(SHORT_TIMEOUT).unwrap())
                .collect();
            assert_ne!(pids[0], pids[1], "{method:?}, round {round}");
        }
    }
}

/// Not a test on its own: the process that
/// `a_forked_worker_can_panic_while_the_parent_prints_a_panic` starts, with
/// its stderr a pipe that nobody reads yet.
#[test]
#[ignore = "run by a_forked_worker_can_panic_while_the_parent_prints_a_panic"]
fn parent_printing_a_panic() {
    if std::env::var_os("CF_PARENT_PRINTING_A_PANIC").is_none() {
        return;
    }
    let _guard = HangGuard::new("a forked worker's panic while the parent prints one");
    // The first fork pool wraps the panic hook; build it while no thread
    // is inside the hook.
    drop(pool(StartMethod::Fork, 1));
    // Fill stderr, so that the next write to it blocks.
    // SAFETY: fcntl and write on this process's own descriptor 2.
    unsafe {
        let flags = libc::fcntl(2, libc::F_GETFL);
        libc::fcntl(2, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let block = [b'.'; 4096];
        while libc::write(2, block.as_ptr().cast(), block.len()) > 0 {}
        libc::fcntl(2, libc::F_SETFL, flags);
    }
    // A thread panics: std's hook takes its lock and blocks writing the
    // message.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = std::panic::catch_unwind(|| panic!("a panic of the parent"));
    });
    let tid = tid_rx.recv().unwrap();
    // Wait until that thread is blocked in write(2, ...) (syscall 1).
    eventually("the parent's panic blocks writing to stderr", || {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .is_ok_and(|s| s.starts_with("1 0x2 "))
    });
    // Fork a worker now: it inherits that lock, held.
    let pool = pool(StartMethod::Fork, 1);
    println!("FORKED");
    // The test reads stderr from here on; the worker panics.
    let outcome = pool.submit(odd_fails, 1).unwrap();
    match outcome.result_timeout(SHORT_TIMEOUT) {
        Err(TaskError::Panicked { message }) => println!("PANICKED {message}"),
        other => println!("UNEXPECTED {other:?}"),
    }
}

/// A forked worker inherits every lock the parent's other threads held at
/// the fork. std's panic hook holds one while it prints, so a worker forked
/// while another thread of the program printed a panic used to hang at its
/// own first panic (the fault suite hit it with `RUST_BACKTRACE=1`). The
/// pool's hook wrapper prints a forked worker's panic without that lock:
/// the task fails with `Panicked` and its message.
#[test]
fn a_forked_worker_can_panic_while_the_parent_prints_a_panic() {
    let mut child = this_test_binary("parent_printing_a_panic", "CF_PARENT_PRINTING_A_PANIC")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let forked = line == "FORKED";
        seen.push(line);
        if forked {
            break;
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("FORKED"), "{seen:?}");
    let drain = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut text).unwrap();
        String::from_utf8_lossy(&text).into_owned()
    });
    let verdict: Vec<String> = lines.map(Result::unwrap).collect();
    child.wait().unwrap();
    let stderr = drain.join().unwrap();
    assert!(
        verdict.iter().any(|l| l == "PANICKED odd 1"),
        "{verdict:?}\nstderr ends with: {}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    assert!(stderr.contains("panicked at") && stderr.contains("odd 1"));
}

/// The rule for done-callbacks of process-pool futures: they run on the
/// handler thread of the worker that ran the task (CPython: its management
/// thread). A callback may submit to the pool, but must not wait for what
/// it submitted: on a one-worker pool that work cannot start until the
/// callback has returned, because the handler that would send it is the
/// one running the callback. Once it returns, the work runs.
#[test]
fn a_done_callback_runs_on_its_handler_and_must_not_wait_for_its_own_pool() {
    let _guard = HangGuard::new("a done-callback that submits");
    let pool = std::sync::Arc::new(pool(StartMethod::Spawn, 1));
    let gate = Gate::new();
    // Still running when the callback is added, so it runs on completion.
    let first = pool.submit(wait_then_pid, gate.gate_ref()).unwrap();
    gate.wait_for_arrivals(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let inner_pool = std::sync::Arc::clone(&pool);
    first.add_done_callback(move |_| {
        let inner = inner_pool.submit(double, 2).unwrap();
        // Cannot finish while this callback holds the only handler.
        let waited = inner.result_timeout(Duration::from_millis(100)).cloned();
        let thread = std::thread::current().name().map(str::to_owned);
        tx.send((thread, waited, inner)).unwrap();
    });
    gate.open();
    let (thread, waited, inner) = rx.recv_timeout(SHORT_TIMEOUT).unwrap();
    assert_eq!(thread.as_deref(), Some("cf-process-0"));
    assert!(
        matches!(waited, Err(TaskError::TimedOut { .. })),
        "{waited:?}"
    );
    assert_eq!(inner.result_timeout(SHORT_TIMEOUT), Ok(&4));
    assert!(first.result().is_ok());
}

/// Forks without `exec` and returns the child's pid; the child, which
/// holds a copy of every descriptor the worker has (its channel too),
/// sleeps 30 s.
#[task]
fn fork_a_sleeper(_: ()) -> i32 {
    // SAFETY: the child only sleeps and leaves with `_exit`: nothing that
    // needs a lock the fork may have left held.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::sleep(30);
            libc::_exit(0);
        }
        pid
    }
}

#[task]
fn abort_now(_: ()) -> u32 {
    std::process::abort()
}

/// A task forks without `exec` (a library that daemonizes, a plain
/// `fork()`): the grandchild keeps the worker's end of the channel open,
/// so its end-of-file never comes. The worker's death is still seen at
/// once, from the process itself (a pidfd): the next task that kills it
/// fails with `WorkerDied`, not a timeout, and dropping the pool does not
/// wait for the grandchild.
#[test]
fn a_worker_whose_task_forked_is_still_seen_dead_and_shut_down() {
    for method in METHODS {
        let pool = pool(method, 1);
        let first = pool
            .submit(fork_a_sleeper, ())
            .unwrap()
            .into_result()
            .unwrap();
        let worker = pool.worker_pids()[0];
        let err = pool
            .submit(abort_now, ())
            .unwrap()
            .result_timeout(SHORT_TIMEOUT)
            .cloned()
            .unwrap_err();
        assert!(
            matches!(err, TaskError::WorkerDied { pid, signal: Some(6), .. } if pid == worker),
            "{method:?}: {err:?}"
        );
        assert_eq!(pool.submit(double, 2).unwrap().into_result(), Ok(4));
        let second = pool
            .submit(fork_a_sleeper, ())
            .unwrap()
            .into_result()
            .unwrap();
        {
            // Shutdown waits for the workers, not for what they forked.
            let _guard = HangGuard::with_limit("dropping the pool", Duration::from_secs(10));
            drop(pool);
        }
        for grandchild in [first, second] {
            // SAFETY: a plain system call; the sleeper is ours to end.
            unsafe { libc::kill(grandchild, libc::SIGKILL) };
        }
    }
}

/// `Fork` from a process that runs other threads is refused at `build()`
/// with an error that names the safe start methods, unless the builder
/// opts in; `Spawn` is never refused.
#[test]
fn fork_with_other_threads_needs_the_opt_in() {
    let _guard = HangGuard::new("Fork with other threads");
    // The harness runs this test on a thread of its own; one more makes
    // the count certain whatever the harness does.
    let (stop, parked) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || parked.recv());
    let threads: usize = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(threads > 1, "{threads} threads");

    let refused = ProcessPoolExecutor::builder()
        .max_workers(1)
        .start_method(StartMethod::Fork)
        .build()
        .map(drop)
        .unwrap_err()
        .to_string();
    for name in [
        "StartMethod::Fork",
        "StartMethod::ForkServer",
        "StartMethod::Spawn",
        "allow_fork_with_threads(true)",
        "threads",
    ] {
        assert!(refused.contains(name), "{refused:?} does not name {name}");
    }
    let forked = ProcessPoolExecutor::builder()
        .max_workers(1)
        .start_method(StartMethod::Fork)
        .allow_fork_with_threads(true)
        .build()
        .unwrap();
    assert_eq!(forked.submit(double, 21).unwrap().into_result(), Ok(42));
    drop(forked);
    let spawned = ProcessPoolExecutor::builder()
        .max_workers(1)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    assert_eq!(spawned.submit(double, 4).unwrap().into_result(), Ok(8));
    drop(stop);
    let _ = other.join();
}

/// Run by `replacements_run_the_pools_own_image_after_its_file_is_deleted`
/// in a copy of this binary: deletes that copy, then has every kind of pool
/// start workers and replace one that dies.
#[test]
#[ignore = "run by replacements_run_the_pools_own_image_after_its_file_is_deleted"]
fn deleting_its_own_binary() {
    if std::env::var_os("CF_DELETE_OWN_BINARY").is_none() {
        return;
    }
    std::fs::remove_file(std::env::current_exe().unwrap()).unwrap();
    for method in METHODS {
        let pool = pool(method, 1);
        assert_eq!(pool.submit(double, 1).unwrap().into_result(), Ok(2));
        let died = pool.submit(abort_now, ()).unwrap().into_result();
        assert!(
            matches!(died, Err(TaskError::WorkerDied { .. })),
            "{died:?}"
        );
        // The replacement starts from the deleted file's image.
        assert_eq!(
            pool.submit(double, 2).unwrap().into_result(),
            Ok(4),
            "{method:?}"
        );
    }
    println!("REPLACED OK");
}

/// A program whose file is deleted (or replaced at its path, by an
/// upgrade or a `cargo build`) while it runs keeps starting workers: they
/// run the image the pool runs, through `/proc/self/exe`.
#[test]
fn replacements_run_the_pools_own_image_after_its_file_is_deleted() {
    let _guard = HangGuard::new("a pool whose binary was deleted");
    let dir = std::env::temp_dir().join(format!("cf-deleted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("copy-of-the-tests");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let out = Command::new(&copy)
        .args([
            "--exact",
            "deleting_its_own_binary",
            "--ignored",
            "--nocapture",
        ])
        .env("CF_DELETE_OWN_BINARY", "1")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("REPLACED OK"),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
