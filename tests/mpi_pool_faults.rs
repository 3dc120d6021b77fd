//! The MPI pool when a process dies (feature `mpi`; run as a singleton:
//! `cargo test --features mpi --test mpi_pool_faults`). Each scenario runs
//! in a child process of this binary, so that what MPI does to a job whose
//! process died cannot touch the checks:
//!
//! * a worker rank that dies (a dynamic pool): its futures fail with
//!   `Broken` naming the rank within a bounded time, later submits are
//!   refused with the same reason, the client exits normally and nothing
//!   of the pool is left running; a new pool then works;
//! * the same under `mpirun -n 3` (a static pool): the job ends (Open MPI
//!   ends a job one of whose processes died), within a bounded time, and
//!   no rank is left behind;
//! * a client killed with SIGKILL while its workers run long tasks: the
//!   workers and Open MPI's daemon are gone within a bounded time.
//!
//! Open MPI as root needs `OMPI_ALLOW_RUN_AS_ROOT=1
//! OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`, and 2 cores
//! `OMPI_MCA_rmaps_base_oversubscribe=1`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, MpiPoolExecutor, TaskError, task};

mod support;

use support::{HangGuard, SHORT_TIMEOUT};

/// Selects the scenario a child runs.
const SCENARIO: &str = "CF_MPI_FAULT_SCENARIO";

#[task]
fn die(_: ()) -> u32 {
    std::process::abort()
}

#[task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[task]
fn whoami(_: ()) -> u32 {
    std::process::id()
}

#[task]
fn add_one(x: u64) -> u64 {
    x + 1
}

fn main() {
    match std::env::var(SCENARIO).as_deref() {
        Ok("rank-dies") => rank_dies(),
        Ok("client-killed") => client_killed_child(),
        Ok("spawn-stuck") => spawn_stuck_child(),
        Ok(other) => panic!("unknown scenario {other}"),
        Err(_) => {
            let _guard = HangGuard::with_limit("the MPI fault checks", Duration::from_secs(300));
            let t = Instant::now();
            a_dying_rank_breaks_a_dynamic_pool();
            println!(
                "ok   a dying rank breaks a dynamic pool ({:?})",
                t.elapsed()
            );
            let t = Instant::now();
            a_dying_rank_ends_a_static_job();
            println!("ok   a dying rank ends a static job ({:?})", t.elapsed());
            let t = Instant::now();
            a_killed_client_leaves_nothing_behind();
            println!(
                "ok   a killed client leaves nothing behind ({:?})",
                t.elapsed()
            );
            let t = Instant::now();
            a_stuck_spawn_fails_build();
            println!(
                "ok   a spawn that does not return fails build(); the client exits ({:?})",
                t.elapsed()
            );
        }
    }
}

/// This test binary, run again with `scenario`.
fn child(scenario: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command.env(SCENARIO, scenario);
    command
}

/// `child`'s output once it has ended (read as it comes, so a full pipe
/// cannot stall it); panics if it runs past [`SHORT_TIMEOUT`].
fn output_within(child: Child, what: &str) -> Output {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(SHORT_TIMEOUT) {
        Ok(output) => output.expect("wait for the child"),
        Err(_) => panic!("{what} did not end within {SHORT_TIMEOUT:?}"),
    }
}

/// The pids of every process whose executable is this test binary, but
/// this one.
fn copies_of_this_binary() -> Vec<u32> {
    let me = std::env::current_exe().expect("this test binary");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(pid) = entry.unwrap().file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid != std::process::id()
            && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == me)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Polls (every 10 ms, up to [`SHORT_TIMEOUT`]) until none of `pids` is
/// alive; panics otherwise.
fn wait_gone(what: &str, pids: &[u32]) {
    let deadline = Instant::now() + SHORT_TIMEOUT;
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| !stat.contains(") Z "))
            })
            .collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still alive after {SHORT_TIMEOUT:?}: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// In a child: a pool of two, one rank busy, one that dies.
fn rank_dies() {
    let pool = MpiPoolExecutor::builder().max_workers(2).build().unwrap();
    let busy = pool.submit(nap, 200).unwrap();
    let dying = pool.submit(die, ()).unwrap();
    let reason = match dying.result_timeout(SHORT_TIMEOUT) {
        Err(TaskError::Broken { reason }) => reason,
        other => panic!("the dying task: {other:?}"),
    };
    assert!(
        reason.contains("MPI worker rank") && reason.contains("died"),
        "{reason}"
    );
    println!("BROKEN {reason}");
    // The other rank's task fails too (the pool is broken), or finished.
    match busy.result_timeout(SHORT_TIMEOUT) {
        Ok(_) | Err(TaskError::Broken { .. }) => {}
        other => panic!("the other task: {other:?}"),
    }
    match pool.submit(add_one, 1) {
        Err(TaskError::Broken { reason: again }) => assert_eq!(again, reason),
        other => panic!("a submit to the broken pool: {other:?}"),
    }
    assert_eq!(pool.broken_reason().as_deref(), Some(reason.as_str()));
    drop(pool);
    if MpiPoolExecutor::is_static_launch() != Some(true) {
        // A dynamic client spawns a fresh pool.
        let pool = MpiPoolExecutor::builder().max_workers(2).build().unwrap();
        assert_eq!(
            pool.submit(add_one, 41)
                .unwrap()
                .result_timeout(SHORT_TIMEOUT),
            Ok(&42)
        );
        println!("NEW POOL OK");
    }
}

fn a_dying_rank_breaks_a_dynamic_pool() {
    let out = child("rank-dies").output().expect("run the scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client must end normally: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("BROKEN MPI worker rank"), "{stdout}");
    assert!(stdout.contains("NEW POOL OK"), "{stdout}");
    wait_gone("the dynamic pools' workers", &copies_of_this_binary());
}

fn a_dying_rank_ends_a_static_job() {
    let mut mpirun = Command::new("mpirun");
    mpirun
        .args(["-n", "3"])
        .arg(std::env::current_exe().unwrap())
        .env(SCENARIO, "rank-dies")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let job = mpirun.spawn().expect("mpirun (Open MPI installed)");
    let out = output_within(job, "the static job");
    let status = out.status;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Open MPI ends the job when a process dies: the client may have seen
    // its futures fail first (then it says so), or be ended before.
    assert!(!status.success(), "{status:?}\n{stdout}");
    if let Some(line) = stdout.lines().find(|l| l.starts_with("BROKEN")) {
        assert!(line.contains("MPI worker rank"), "{line}");
    }
    wait_gone("the static job's ranks", &copies_of_this_binary());
}

/// In a child: a pool whose workers run long tasks; says READY, then
/// waits to be killed.
fn client_killed_child() {
    let pool = MpiPoolExecutor::builder().max_workers(2).build().unwrap();
    assert_eq!(
        pool.submit(whoami, ())
            .unwrap()
            .result_timeout(SHORT_TIMEOUT)
            .map(|&pid| pid != std::process::id()),
        Ok(true)
    );
    let long: Vec<_> = (0..2).map(|_| pool.submit(nap, 120_000).unwrap()).collect();
    println!("READY");
    let _ = long[0].result_timeout(Duration::from_secs(120));
}

/// The pids of `pid`'s children.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let path = task.unwrap().path().join("children");
        let listed = std::fs::read_to_string(path).unwrap_or_default();
        children.extend(
            listed
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    children
}

fn a_killed_client_leaves_nothing_behind() {
    let mut client = child("client-killed")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the scenario");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let ready = lines
        .find_map(|line| line.ok().filter(|l| l.starts_with("READY")))
        .expect("the client says READY");
    assert_eq!(ready, "READY");
    // Open MPI's daemon, the client's child, started the workers.
    let daemons = children_of(client.id());
    let mut pids: Vec<u32> = daemons.iter().flat_map(|&d| children_of(d)).collect();
    assert_eq!(
        pids.len(),
        2,
        "the workers, children of {daemons:?}: {pids:?}"
    );
    pids.extend(daemons);
    client.kill().unwrap();
    client.wait().unwrap();
    wait_gone("the killed client's workers and daemon", &pids);
}

/// In a child: a pool whose worker program never starts MPI, so that
/// `MPI_Comm_spawn` does not return (as in Open MPI's intermittent spawn
/// hang). Prints the outcome of two builds and the pids of its
/// descendants (Open MPI's daemon and what it started).
fn spawn_stuck_child() {
    let dir = std::env::temp_dir().join(format!("cf-mpi-stuck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("not-an-mpi-worker");
    std::fs::write(&program, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let t = Instant::now();
    let first = MpiPoolExecutor::builder()
        .max_workers(1)
        .worker_program(&program)
        .spawn_timeout(Duration::from_secs(2))
        .build();
    println!("FIRST {:?} {:?}", t.elapsed(), first.as_ref().err());
    let t = Instant::now();
    let second = MpiPoolExecutor::builder().max_workers(1).build();
    println!("SECOND {:?} {:?}", t.elapsed(), second.as_ref().err());
    let descendants: Vec<u32> = children_of(std::process::id())
        .into_iter()
        .flat_map(|d| std::iter::once(d).chain(children_of(d)))
        .collect();
    println!("DESCENDANTS {descendants:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn a_stuck_spawn_fails_build() {
    let client = child("spawn-stuck")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the scenario");
    let out = output_within(client, "the client with a stuck spawn");
    let status = out.status;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "{status:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for which in ["FIRST", "SECOND"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(which))
            .unwrap_or_else(|| panic!("no {which} line: {stdout}"));
        assert!(line.contains("MPI_Comm_spawn has not returned"), "{line}");
    }
    let descendants: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DESCENDANTS "))
        .expect("the descendants line")
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(!descendants.is_empty(), "{stdout}");
    wait_gone("the stuck spawn's daemon and processes", &descendants);
}
