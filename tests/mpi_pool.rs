//! The MPI pool, end to end, in either launch mode (feature `mpi`; needs
//! an MPI library, which `.ci/run` installs):
//!
//! * dynamic: run the binary as it is (a singleton), and the pool spawns
//!   its workers (`cargo test --features mpi --test mpi_pool`);
//! * static: `mpirun -n 4 <this binary>`: rank 0 runs the checks on a pool
//!   of the three other ranks.
//!
//! MPI is initialized once per process and a static launch serves one pool
//! at a time, so this is one `main` (`harness = false`) that runs its
//! checks in order, each on the pool it needs; a [`HangGuard`] aborts the
//! run if anything blocks past its bound. Open MPI as root needs
//! `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`, and a
//! machine with fewer cores than processes `OMPI_MCA_rmaps_base_oversubscribe=1`.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Executor, MapOptions, MpiPoolExecutor, ReturnWhen, TaskError, ThreadPoolExecutor, as_completed,
    task, wait,
};
use serde::{Deserialize, Serialize};

mod support;

use support::{Gate, GateRef, HangGuard, SHORT_TIMEOUT};

/// The seeds' CPU-bound task.
#[task]
fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[task]
fn double_unless_seven(x: u64) -> u64 {
    if x == 7 {
        panic!("seven is refused");
    }
    2 * x
}

#[task]
fn add_one(x: u64) -> u64 {
    x + 1
}

/// Blocks on the gate, tagged, then returns its pid.
#[task]
fn block(gate: GateRef) -> u32 {
    gate.wait_as(&std::process::id().to_string());
    std::process::id()
}

/// A value whose `Serialize` fails.
#[derive(Debug, Deserialize)]
struct RefuseEncode;

impl Serialize for RefuseEncode {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("RefuseEncode refuses"))
    }
}

#[task]
fn take_refuse_encode(_: RefuseEncode) -> u8 {
    0
}

/// A value whose `Deserialize` fails (in the client, for a result).
#[derive(Debug, Serialize)]
struct RefuseDecode;

impl<'de> Deserialize<'de> for RefuseDecode {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("RefuseDecode refuses"))
    }
}

#[task]
fn make_refuse_decode(_: ()) -> RefuseDecode {
    RefuseDecode
}

/// Set on each worker by the initializer.
static GREETING: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[task]
fn greet(text: String) {
    let _ = GREETING.set(text);
}

#[task]
fn greeting(_: ()) -> Option<String> {
    GREETING.get().cloned()
}

#[task]
fn refuse_to_start(why: String) -> Result<(), String> {
    Err(why)
}

/// The first pool's size: the seeds' fib on 3 workers. A static launch
/// needs `mpirun -n 4`.
const WORKERS: usize = 3;

/// One check on the shared pool.
type Check = fn(&MpiPoolExecutor);

fn main() {
    let started = Instant::now();
    let pool = MpiPoolExecutor::builder()
        .max_workers(WORKERS)
        .build()
        .expect("an MPI pool");
    // Only rank 0 (or the singleton) gets here.
    let mode = if MpiPoolExecutor::is_static_launch() == Some(true) {
        "static"
    } else {
        "dynamic"
    };
    let _guard = HangGuard::with_limit("the MPI pool checks", Duration::from_secs(240));
    println!(
        "MPI pool, {mode} launch, {} workers (started in {:?})",
        pool.max_workers(),
        started.elapsed()
    );
    let checks: &[(&str, Check)] = &[
        ("fib values equal the serial ones", fib_values),
        (
            "a chunked map with a failing item",
            chunked_map_with_a_failing_item,
        ),
        (
            "a panic fails its future; its rank carries on",
            panic_fails_one_future,
        ),
        (
            "an argument that does not encode fails submit",
            encode_failure,
        ),
        (
            "a result that does not decode fails its future",
            decode_failure,
        ),
        ("10,000 tasks at once", ten_thousand_tasks),
        (
            "MPI and thread-pool futures in one wait and as_completed",
            mixed_wait,
        ),
        (
            "a queued task can be cancelled; a running one cannot",
            cancel_queued,
        ),
        ("done-callbacks run", done_callbacks),
        ("an idle pool uses under 2% of a core per process", idle_cpu),
    ];
    for (name, check) in checks {
        let t = Instant::now();
        check(&pool);
        println!("ok   {name} ({:?})", t.elapsed());
    }
    let first = worker_pids(&pool);
    pool.shutdown(true, false);
    assert_eq!(pool.submit(add_one, 1).unwrap_err(), TaskError::ShutDown);
    println!("ok   submit after shutdown is refused");
    drop(pool);

    workers_outlive_pools(&first, mode == "dynamic");
    println!("ok   the next pools reuse the workers; a bigger one spawns (dynamic)");

    initializer_runs_on_every_worker();
    println!("ok   the initializer runs on every worker (a second pool)");
    failing_initializer_breaks_the_pool();
    println!("ok   a failing initializer breaks the pool");
    println!(
        "MPI pool, {mode} launch: all checks passed in {:?}",
        started.elapsed()
    );
}

fn fib_values(pool: &MpiPoolExecutor) {
    let serial: Vec<u64> = (20..28).map(fib).collect();
    let futures: Vec<_> = (20..28).map(|n| pool.submit(fib, n).unwrap()).collect();
    let pooled: Vec<u64> = futures
        .iter()
        .map(|f| *f.result_timeout(SHORT_TIMEOUT).unwrap())
        .collect();
    assert_eq!(pooled, serial);
    let mapped: Vec<u64> = pool.map(fib, 20..28).map(Result::unwrap).collect();
    assert_eq!(mapped, serial);
}

fn chunked_map_with_a_failing_item(pool: &MpiPoolExecutor) {
    let opts = MapOptions::new().chunksize(NonZeroUsize::new(4).unwrap());
    let results: Vec<Result<u64, TaskError>> =
        pool.map_with(double_unless_seven, 0..20, opts).collect();
    assert_eq!(results.len(), 20);
    for (x, result) in (0u64..20).zip(&results) {
        match result {
            Ok(v) => assert_eq!(*v, 2 * x),
            Err(TaskError::Panicked { message }) => {
                assert_eq!(x, 7);
                assert!(message.contains("seven is refused"), "{message}");
            }
            Err(other) => panic!("item {x}: {other:?}"),
        }
    }
    assert!(results[7].is_err());
}

/// The pid of every worker of the pool: one blocking task each, all held
/// at once (a worker runs one task at a time, so they are as many
/// processes).
fn worker_pids(pool: &MpiPoolExecutor) -> BTreeSet<u32> {
    let gate = Gate::new();
    let futures: Vec<_> = (0..pool.max_workers())
        .map(|_| pool.submit(block, gate.gate_ref()).unwrap())
        .collect();
    gate.wait_for_arrivals(pool.max_workers());
    gate.open();
    let pids: BTreeSet<u32> = futures
        .iter()
        .map(|f| *f.result_timeout(SHORT_TIMEOUT).unwrap())
        .collect();
    assert_eq!(pids.len(), pool.max_workers(), "{pids:?}");
    pids
}

fn panic_fails_one_future(pool: &MpiPoolExecutor) {
    let before = worker_pids(pool);
    assert!(!before.contains(&std::process::id()));
    let failed = pool.submit(double_unless_seven, 7).unwrap();
    let ok = pool.submit(double_unless_seven, 8).unwrap();
    match failed.result_timeout(SHORT_TIMEOUT) {
        Err(TaskError::Panicked { message }) => assert!(message.contains("seven")),
        other => panic!("{other:?}"),
    }
    assert_eq!(ok.result_timeout(SHORT_TIMEOUT), Ok(&16));
    // No rank was lost or replaced: the same processes answer.
    let after = worker_pids(pool);
    assert!(after.is_subset(&before), "{before:?} then {after:?}");
}

fn encode_failure(pool: &MpiPoolExecutor) {
    match pool.submit(take_refuse_encode, RefuseEncode) {
        Err(TaskError::Encode { type_name, reason }) => {
            assert!(type_name.contains("RefuseEncode"), "{type_name}");
            assert!(reason.contains("refuses"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pool.submit(add_one, 1)
            .unwrap()
            .result_timeout(SHORT_TIMEOUT),
        Ok(&2)
    );
}

fn decode_failure(pool: &MpiPoolExecutor) {
    let fut = pool.submit(make_refuse_decode, ()).unwrap();
    match fut.result_timeout(SHORT_TIMEOUT) {
        Err(TaskError::Decode { type_name, reason }) => {
            assert!(type_name.contains("RefuseDecode"), "{type_name}");
            assert!(reason.contains("refuses"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pool.submit(add_one, 2)
            .unwrap()
            .result_timeout(SHORT_TIMEOUT),
        Ok(&3)
    );
}

fn ten_thousand_tasks(pool: &MpiPoolExecutor) {
    let futures: Vec<_> = (0..10_000u64)
        .map(|x| pool.submit(add_one, x).unwrap())
        .collect();
    let sum: u64 = futures
        .iter()
        .map(|f| *f.result_timeout(SHORT_TIMEOUT).unwrap())
        .sum();
    assert_eq!(sum, (1..=10_000u64).sum());
}

fn mixed_wait(pool: &MpiPoolExecutor) {
    let threads = ThreadPoolExecutor::builder()
        .max_workers(2)
        .build()
        .unwrap();
    let mut futures = vec![
        pool.submit(fib, 20).unwrap(),
        threads.submit(fib, 21).unwrap(),
        pool.submit(fib, 22).unwrap(),
    ];
    let waited = wait(&futures, Some(SHORT_TIMEOUT), ReturnWhen::AllCompleted);
    assert_eq!((waited.done.len(), waited.not_done.len()), (3, 0));
    futures.push(threads.submit(fib, 23).unwrap());
    let mut seen: Vec<u64> = as_completed(&futures, Some(SHORT_TIMEOUT))
        .map(|f| *f.unwrap().result().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [6765, 10946, 17711, 28657]);
}

fn cancel_queued(pool: &MpiPoolExecutor) {
    let gate = Gate::new();
    let blocked: Vec<_> = (0..pool.max_workers())
        .map(|_| pool.submit(block, gate.gate_ref()).unwrap())
        .collect();
    gate.wait_for_arrivals(pool.max_workers());
    let queued = pool.submit(add_one, 41).unwrap();
    assert!(!queued.running());
    assert!(queued.cancel(), "a queued task is cancellable");
    assert!(!blocked[0].cancel(), "a running task is not");
    gate.open();
    for fut in &blocked {
        assert!(fut.result_timeout(SHORT_TIMEOUT).is_ok());
    }
    assert!(queued.cancelled());
    assert_eq!(
        pool.submit(add_one, 1)
            .unwrap()
            .result_timeout(SHORT_TIMEOUT),
        Ok(&2)
    );
}

fn done_callbacks(pool: &MpiPoolExecutor) {
    let (tx, rx) = std::sync::mpsc::channel();
    let fut = pool.submit(fib, 15).unwrap();
    fut.add_done_callback(move |f| {
        let _ = tx.send(*f.result().unwrap());
    });
    assert_eq!(rx.recv_timeout(SHORT_TIMEOUT), Ok(610));
}

/// Whether process `pid` still exists (a zombie counts as ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.starts_with(" Z"))
    })
}

/// Pools after the first are served by its workers (`first`, their pids):
/// the static launch's ranks, or in the dynamic mode the spawned workers
/// the first pool left idle. A dynamic pool that needs more spawns, and
/// the smaller idle group is stopped: its processes end.
fn workers_outlive_pools(first: &BTreeSet<u32>, dynamic: bool) {
    for n in [1, WORKERS] {
        let pool = MpiPoolExecutor::builder().max_workers(n).build().unwrap();
        assert_eq!(pool.max_workers(), n);
        let pids = worker_pids(&pool);
        assert!(
            pids.is_subset(first),
            "{n} workers: {pids:?}, first {first:?}"
        );
    }
    let pool = MpiPoolExecutor::builder()
        .max_workers(WORKERS + 1)
        .build()
        .unwrap();
    if !dynamic {
        // At most the world's other ranks.
        assert_eq!(pool.max_workers(), WORKERS);
        let pids = worker_pids(&pool);
        assert!(pids.is_subset(first), "{pids:?}, first {first:?}");
        return;
    }
    assert_eq!(pool.max_workers(), WORKERS + 1);
    let pids = worker_pids(&pool);
    assert!(pids.is_disjoint(first), "{pids:?}, first {first:?}");
    let deadline = Instant::now() + SHORT_TIMEOUT;
    while first.iter().any(|&pid| alive(pid)) {
        assert!(
            Instant::now() < deadline,
            "the idle group {first:?} was not stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(pool);
    let pool = MpiPoolExecutor::builder().max_workers(2).build().unwrap();
    let again = worker_pids(&pool);
    assert!(
        again.is_subset(&pids),
        "{again:?}, the bigger group {pids:?}"
    );
}

fn initializer_runs_on_every_worker() {
    let pool = MpiPoolExecutor::builder()
        .max_workers(2)
        .initializer(greet, "hello".to_owned())
        .build()
        .expect("a pool with an initializer");
    let futures: Vec<_> = (0..20)
        .map(|_| pool.submit(greeting, ()).unwrap())
        .collect();
    for fut in &futures {
        assert_eq!(
            fut.result_timeout(SHORT_TIMEOUT),
            Ok(&Some("hello".to_owned()))
        );
    }
}

fn failing_initializer_breaks_the_pool() {
    let pool = MpiPoolExecutor::builder()
        .max_workers(2)
        .initializer(refuse_to_start, "no database".to_owned())
        .build()
        .expect("the pool starts; its initializer fails");
    let reason = pool.broken_reason().expect("broken");
    assert!(reason.contains("no database"), "{reason}");
    match pool.submit(add_one, 1) {
        Err(TaskError::Broken { reason }) => assert!(reason.contains("no database")),
        other => panic!("{other:?}"),
    }
}

/// utime + stime of process `pid`, in clock ticks (100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process's stat");
    // Fields after the ")" that closes the name: utime is field 14 and
    // stime field 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Nobody polls MPI in a busy loop while nothing runs: the client's MPI
/// thread blocks on its channel, and a worker's probes back off to one a
/// few milliseconds. Measuring idleness is the point: the pool sits for
/// three seconds (after its workers' short busy look once a task ends).
fn idle_cpu(pool: &MpiPoolExecutor) {
    let mut pids: Vec<u32> = worker_pids(pool).into_iter().collect();
    pids.push(std::process::id());
    std::thread::sleep(Duration::from_millis(100));
    let before: Vec<u64> = pids.iter().map(|&pid| cpu_ticks(pid)).collect();
    let idle = Duration::from_secs(3);
    std::thread::sleep(idle);
    let used: Vec<u64> = pids
        .iter()
        .zip(&before)
        .map(|(&pid, before)| cpu_ticks(pid) - before)
        .collect();
    println!("     CPU ticks in {idle:?} idle (workers, then the client): {used:?}");
    // 2% of a core for 3 s is 6 ticks at 100 Hz.
    for (pid, ticks) in pids.iter().zip(&used) {
        assert!(
            *ticks <= 6,
            "process {pid} used {ticks} ticks in {idle:?} idle"
        );
    }
}
