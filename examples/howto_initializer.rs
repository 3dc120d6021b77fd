//! `ProcessPoolExecutor(initializer=setup, initargs=(...,))` and
//! `ThreadPoolExecutor(initializer=...)`: the initializer runs once in each
//! worker, before its first task, and prepares state the tasks read. An
//! initializer that fails breaks the pool: its futures and later submits
//! get `TaskError::Broken` with the reason.
//!
//! ```text
//! cargo run --release --example howto_initializer
//! ```

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurrent_futures::{Executor, ProcessPoolExecutor, TaskError, ThreadPoolExecutor, task};

/// Every wait is bounded: a bug shows up as an error, never as a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// Per worker process: what the initializer prepared, and how often it ran.
static GREETING: OnceLock<String> = OnceLock::new();
static INIT_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The process pool's initializer is a registered task too.
#[task]
fn setup(greeting: String) {
    INIT_CALLS.fetch_add(1, Ordering::SeqCst);
    GREETING.get_or_init(|| greeting);
}

#[task]
fn connect(url: String) -> Result<(), String> {
    Err(format!("cannot reach {url}"))
}

#[task]
fn work(n: u32) -> String {
    let greeting = GREETING.get().map_or("<no greeting>", String::as_str);
    let calls = INIT_CALLS.load(Ordering::SeqCst);
    format!(
        "task {n}: {greeting} from pid {} (initializer ran {calls}x)",
        std::process::id()
    )
}

thread_local!(static READY: Cell<bool> = const { Cell::new(false) });

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(setup, String::from("hello"))
        .build()?;
    let futures = (0..6)
        .map(|n| pool.submit(work, n))
        .collect::<Result<Vec<_>, _>>()?;
    for fut in &futures {
        println!("{}", fut.result_timeout(LIMIT)?);
    }

    // A thread pool's initializer is any closure; here it sets a thread-local.
    let threads = ThreadPoolExecutor::builder()
        .max_workers(2)
        .thread_name_prefix("db")
        .initializer(|| READY.with(|r| r.set(true)))
        .build()?;
    let fut = threads.spawn(|| {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        format!("thread {name}: initialized = {}", READY.with(Cell::get))
    })?;
    println!("{}", fut.result_timeout(LIMIT)?);

    // An initializer that fails: the pool is broken, with the reason.
    let broken = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(connect, String::from("db.example:5432"))
        .build()?;
    let outcome = broken
        .submit(work, 0)
        .and_then(|fut| fut.result_timeout(LIMIT).cloned());
    match outcome {
        Err(TaskError::Broken { reason }) => println!("first task: Broken: {reason}"),
        other => println!("first task: unexpected {other:?}"),
    }
    match broken.submit(work, 1) {
        Err(e @ TaskError::Broken { .. }) => println!("later submit: {}", e.kind()),
        other => println!("later submit: unexpected {:?}", other.map(|_| ())),
    }
    println!("broken_reason(): {:?}", broken.broken_reason());
    Ok(())
}
