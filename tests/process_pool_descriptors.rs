//! A process that runs out of file descriptors (`RLIMIT_NOFILE`) while
//! its pool starts workers, at `build()` or for a replacement: no thread
//! of the pool panics, the pool ends either working with the workers it
//! says it has or broken with a reason that says the descriptors ran out,
//! every future completes, and no process or descriptor is left behind.
//!
//! The limit is per process, so each scenario runs in a child: this test
//! binary run again on the ignored test `scenario`, told by [`SCENARIO`]
//! which start method and which phase. The child records every panic, on
//! any thread, with a hook of its own; the parent fails on any.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, ProcessPoolExecutor, StartMethod, TaskError, TaskFuture, task};
use support::{HangGuard, SHORT_TIMEOUT};

/// Names the start method and phase a child runs: `<method> <phase>`.
const SCENARIO: &str = "CF_FD_SCENARIO";

const WORKERS: usize = 16;

/// What every reason for running out of descriptors names.
const OUT_OF_DESCRIPTORS: &str = "RLIMIT_NOFILE";

#[task]
fn nap_then_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Forks a process that holds a copy of every descriptor the worker has,
/// its channel too, for a minute (with stdio closed, so that it keeps no
/// pipe of the test's open). Returns its pid and the worker's.
#[task]
fn fork_a_sleeper(_: ()) -> (i32, u32) {
    // SAFETY: the child only closes, sleeps and leaves with `_exit`:
    // nothing that needs a lock the fork may have left held.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::close(0);
            libc::close(1);
            libc::close(2);
            libc::sleep(60);
            libc::_exit(0);
        }
        (pid, std::process::id())
    }
}

/// Panics on any thread of the child, counted by its hook.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// What the child found wrong, counted; each is printed as it is found,
/// and the scenario goes on to the next case.
static PROBLEMS: AtomicUsize = AtomicUsize::new(0);

fn problem(what: String) {
    PROBLEMS.fetch_add(1, Ordering::SeqCst);
    println!("PROBLEM {what}");
}

macro_rules! expect {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            problem(format!($($why)+));
        }
    };
}

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::current();
        println!(
            "PANIC on thread '{}': {info}",
            thread.name().unwrap_or("<unnamed>")
        );
        previous(info);
    }));
}

fn method_named(name: &str) -> StartMethod {
    match name {
        "spawn" => StartMethod::Spawn,
        "fork" => StartMethod::Fork,
        "forkserver" => StartMethod::ForkServer,
        other => panic!("no start method {other}"),
    }
}

/// The lowest descriptor number free now: the next one the process gets.
fn lowest_free_fd() -> i32 {
    // SAFETY: duplicates stderr onto the lowest free number and closes
    // that duplicate at once.
    unsafe {
        let fd = libc::dup(2);
        assert!(fd >= 0, "dup: {}", std::io::Error::last_os_error());
        libc::close(fd);
        fd
    }
}

/// Sets the soft `RLIMIT_NOFILE`: no new descriptor numbered `limit` or
/// above. The hard limit stays, so the soft one can be raised again.
fn set_fd_limit(limit: libc::rlim_t) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process's own limits, with valid
    // pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = limit.min(rl.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
}

/// The soft limit as it was when the child started.
fn usual_fd_limit() -> libc::rlim_t {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as in `set_fd_limit`.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0) };
    rl.rlim_cur
}

fn builder(method: StartMethod) -> concurrent_futures::ProcessPoolBuilder {
    ProcessPoolExecutor::builder()
        .max_workers(WORKERS)
        .start_method(method)
        .allow_fork_with_threads(true)
        .start_timeout(SHORT_TIMEOUT)
}

/// Polls `done` every millisecond until it holds, for at most
/// [`SHORT_TIMEOUT`]; false if it never did.
fn settles(what: &str, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + SHORT_TIMEOUT;
    while !done() {
        if Instant::now() >= deadline {
            println!("NOT SETTLED: {what}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Each future's end: a pid, or the reason the pool broke. A future that
/// is still pending after [`SHORT_TIMEOUT`] or fails otherwise fails the
/// scenario.
fn outcomes(futures: Vec<TaskFuture<u32>>, case: &str) -> (usize, BTreeSet<String>) {
    let mut ok = 0;
    let mut reasons = BTreeSet::new();
    for fut in futures {
        match fut.result_timeout(SHORT_TIMEOUT) {
            Ok(_) => ok += 1,
            Err(TaskError::Broken { reason }) => {
                reasons.insert(reason);
            }
            Err(other) => problem(format!("{case}: a future ended with {other:?}")),
        }
    }
    (ok, reasons)
}

/// The pidfds this process holds: one per worker the death watch watches.
fn pidfds() -> usize {
    support::open_fds()
        .iter()
        .filter(|fd| fd.ends_with("anon_inode:[pidfd]"))
        .count()
}

/// The pool after its starts have failed or succeeded: working with
/// every worker connected, or broken for running out of descriptors,
/// with every worker it started gone; and what `/proc` shows agrees with
/// what it reports. Waits first under the descriptor limit, reading only
/// the pool's counters, then raises the limit to read `/proc`.
fn check_settled(pool: &ProcessPoolExecutor, method: StartMethod, case: &str) {
    let settled = settles(case, || match pool.broken_reason() {
        Some(_) => pool.worker_count() == 0,
        None => pool.worker_count() == WORKERS,
    });
    set_fd_limit(libc::RLIM_INFINITY);
    let broken = pool.broken_reason();
    println!(
        "{case}: broken: {broken:?}, worker_count {}, worker_pids {}",
        pool.worker_count(),
        pool.worker_pids().len()
    );
    expect!(settled, "{case}: the pool did not settle");
    let servers = usize::from(method == StartMethod::ForkServer);
    if let Some(reason) = &broken {
        expect!(
            reason.contains(OUT_OF_DESCRIPTORS),
            "{case}: the reason does not say the descriptors ran out: {reason}"
        );
        // A broken pool starts no worker, and every worker it started
        // (connected or not) ends and is reaped, unwatched.
        let gone = settles(case, || {
            pool.worker_count() == 0
                && pool.worker_pids().is_empty()
                && support::children().len() <= servers
                && pidfds() == 0
        });
        expect!(
            gone,
            "{case}: a broken pool reports {} workers, has children {:?} and {} pidfds",
            pool.worker_count(),
            support::children(),
            pidfds()
        );
        return;
    }
    let pids: BTreeSet<u32> = pool.worker_pids().into_iter().collect();
    expect!(
        pids.len() == pool.worker_count(),
        "{case}: {} pids, worker_count() {}",
        pids.len(),
        pool.worker_count()
    );
    let children = support::children();
    expect!(
        pids.is_subset(&children) && children.len() == pids.len() + servers,
        "{case}: the pool reports workers {pids:?}, its children are {children:?}"
    );
    // Every connected worker is watched by its pidfd (`deaths.rs`).
    let watched = pidfds();
    expect!(
        watched == pool.worker_count(),
        "{case}: {watched} workers watched by a pidfd, worker_count() {}",
        pool.worker_count()
    );
}

/// Drops the pool (bounded) and checks that it left no child and no
/// descriptor behind.
fn check_gone(pool: ProcessPoolExecutor, fds_before: &BTreeSet<String>, case: &str) {
    let guard = HangGuard::new("dropping a pool that ran out of descriptors");
    drop(pool);
    drop(guard);
    let children = support::children();
    expect!(children.is_empty(), "{case}: children left: {children:?}");
    let fds = support::open_fds();
    expect!(
        &fds == fds_before,
        "{case}: descriptors left: {:?}",
        fds.difference(fds_before).collect::<Vec<_>>()
    );
}

/// `build()` with room for `headroom` more descriptors, for every
/// `headroom` from none to more than the pool needs.
fn at_build(method: StartMethod, name: &str) {
    let usual = usual_fd_limit();
    let fds_before = support::open_fds();
    for headroom in 0..=2 * WORKERS as i32 + 8 {
        let case = format!("{name} build, {headroom} descriptors free");
        set_fd_limit((lowest_free_fd() + headroom) as libc::rlim_t);
        let pool = match builder(method).build() {
            Ok(pool) => pool,
            Err(e) => {
                set_fd_limit(usual);
                println!("{case}: build() refused: {e}");
                expect!(
                    e.to_string().contains(OUT_OF_DESCRIPTORS),
                    "{case}: build() refused for another reason: {e}"
                );
                continue;
            }
        };
        let futures = (0..2 * WORKERS)
            .filter_map(|_| match pool.submit(nap_then_pid, 5) {
                Ok(fut) => Some(fut),
                Err(TaskError::Broken { .. }) => None,
                Err(other) => {
                    problem(format!("{case}: submit: {other:?}"));
                    None
                }
            })
            .collect();
        let (ok, reasons) = outcomes(futures, &case);
        check_settled(&pool, method, &case);
        set_fd_limit(usual);
        println!("{case}: {ok} tasks ran, failed with {reasons:?}");
        if pool.broken_reason().is_none() {
            let again: Vec<_> = (0..WORKERS)
                .map(|_| pool.submit(nap_then_pid, 1).unwrap())
                .collect();
            let (ok, reasons) = outcomes(again, &case);
            expect!(
                ok == WORKERS,
                "{case}: a working pool ran {ok} of {WORKERS} tasks: {reasons:?}"
            );
        }
        check_gone(pool, &fds_before, &case);
    }
}

/// A pool of [`WORKERS`] connected workers, one of them with a task's
/// grandchild holding its socket; then no descriptor left, and another
/// worker dies: its replacement cannot start, the pool breaks, and every
/// worker it has leaves. The one whose socket the grandchild holds is
/// seen to go by the death watch alone.
fn at_replacement(method: StartMethod, name: &str) {
    let usual = usual_fd_limit();
    let fds_before = support::open_fds();
    let case = format!("{name} replacement, no descriptor free");
    // Every descriptor the pool holds is numbered from here up, so none
    // that it closes later is under the limit set below.
    let floor = lowest_free_fd();
    let pool = builder(method).build().unwrap();
    expect!(
        settles("all workers connect", || pool.worker_count() == WORKERS),
        "{case}: {} of {WORKERS} workers connected",
        pool.worker_count()
    );
    let forked = pool.submit(fork_a_sleeper, ()).unwrap();
    let (sleeper, holder) = *forked.result_timeout(SHORT_TIMEOUT).unwrap();
    let other = pool
        .worker_pids()
        .into_iter()
        .find(|&pid| pid != holder)
        .expect("another worker");
    set_fd_limit(floor as libc::rlim_t);
    // SAFETY: a plain system call; the worker is this process's child,
    // connected, so not reaped.
    unsafe { libc::kill(other as i32, libc::SIGKILL) };
    expect!(
        settles("the pool breaks", || pool.broken_reason().is_some()),
        "{case}: the pool did not break; it has {} workers",
        pool.worker_count()
    );
    check_settled(&pool, method, &case);
    set_fd_limit(usual);
    match pool.submit(nap_then_pid, 5) {
        Err(TaskError::Broken { reason }) => expect!(
            reason.contains(OUT_OF_DESCRIPTORS),
            "{case}: submit refused for another reason: {reason}"
        ),
        other => problem(format!(
            "{case}: the pool replaced a worker with no descriptor free: {other:?}"
        )),
    }
    check_gone(pool, &fds_before, &case);
    // SAFETY: a plain system call; the sleeper is ours to end.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
}

/// Run by the `descriptors_run_out_*` tests in a child; does nothing
/// otherwise.
#[test]
#[ignore = "run by the tests below, in a child with its own descriptor limit"]
fn scenario() {
    let Some(which) = std::env::var_os(SCENARIO) else {
        return;
    };
    count_panics();
    let which = which.to_string_lossy().into_owned();
    let (name, phase) = which.split_once(' ').expect("<method> <phase>");
    let method = method_named(name);
    match phase {
        "build" => at_build(method, name),
        "replacement" => at_replacement(method, name),
        other => panic!("no phase {other}"),
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "panics");
    assert_eq!(PROBLEMS.load(Ordering::SeqCst), 0, "problems");
    println!("SCENARIO DONE");
}

fn run_child(which: &str) {
    let _guard = HangGuard::with_limit("a descriptor scenario", Duration::from_secs(240));
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "scenario", "--ignored", "--nocapture"])
        .env(SCENARIO, which)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("SCENARIO DONE") && !stdout.contains("PANIC"),
        "{which}: {}, stderr:\n{stderr}",
        out.status
    );
}

#[test]
fn descriptors_run_out_at_build_spawn() {
    run_child("spawn build");
}

#[test]
fn descriptors_run_out_at_build_fork() {
    run_child("fork build");
}

#[test]
fn descriptors_run_out_at_build_forkserver() {
    run_child("forkserver build");
}

#[test]
fn descriptors_run_out_at_replacement_spawn() {
    run_child("spawn replacement");
}

#[test]
fn descriptors_run_out_at_replacement_fork() {
    run_child("fork replacement");
}

#[test]
fn descriptors_run_out_at_replacement_forkserver() {
    run_child("forkserver replacement");
}
