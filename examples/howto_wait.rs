//! The seeds' `wait(all_task)` snippet, with each `ReturnWhen`: `wait`
//! blocks until the futures meet the condition (or a timeout passes, which
//! is no error) and splits them into `done` and `not_done`.
//!
//! ```text
//! cargo run --release --example howto_wait
//! ```
//!
//! A task held back on a channel that `main` controls stays not-done for
//! certain.

use std::sync::mpsc;
use std::time::Duration;

use concurrent_futures::{
    DoneAndNotDone, ReturnWhen, TaskFuture, ThreadPoolExecutor, panic_message, wait,
};

type Task = TaskFuture<()>;

/// Bounds every wait that should succeed: no run can hang.
const PATIENCE: Option<Duration> = Some(Duration::from_secs(60));

/// Prints the done / not-done split by the tasks' names.
fn show(what: &str, split: DoneAndNotDone<&Task>, named: &[(&str, &Task)]) {
    let names = |fs: Vec<&Task>| -> Vec<&str> {
        let name = |f: &Task| named.iter().find(|(_, g)| *g == f).map_or("?", |(n, _)| *n);
        fs.into_iter().map(name).collect()
    };
    println!(
        "{what}: done {:?}, not done {:?}",
        names(split.done),
        names(split.not_done)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The pool first: dropped last, after `release`, so an early `?` frees
    // the held task instead of waiting for it forever.
    let pool = ThreadPoolExecutor::builder().max_workers(4).build()?;
    let (release, release_rx) = mpsc::channel::<()>();
    let held = pool.spawn(move || {
        let _ = release_rx.recv();
    })?;
    let quick = pool.spawn(|| ())?;
    let slow = pool.spawn(|| std::thread::sleep(Duration::from_millis(300)))?;
    // One line on stderr for the panic, instead of the default report.
    std::panic::set_hook(Box::new(|p| {
        eprintln!("  (panic: {})", panic_message(p.payload()))
    }));
    let failing = pool.spawn(|| panic!("page not found"))?;
    let named = [
        ("held", &held),
        ("quick", &quick),
        ("slow", &slow),
        ("failing", &failing),
    ];

    // FirstCompleted: returns once any one is done (here `quick`, maybe more).
    let split = wait([&held, &quick, &slow], PATIENCE, ReturnWhen::FirstCompleted);
    show("FirstCompleted", split, &named);

    // FirstException: returns once any one fails (a panic here).
    let split = wait([&held, &failing], PATIENCE, ReturnWhen::FirstException);
    show("FirstException", split, &named);

    // AllCompleted with a timeout: `held` cannot finish, so we get the split
    // as it stands after 500 ms.
    let all = [&held, &quick, &slow, &failing];
    let split = wait(
        all,
        Some(Duration::from_millis(500)),
        ReturnWhen::AllCompleted,
    );
    show("AllCompleted, 500 ms timeout", split, &named);

    // wait(all_task); print('ok'): after the release, all four are done.
    println!("releasing the held task");
    release.send(())?;
    let split = wait(all, PATIENCE, ReturnWhen::AllCompleted);
    show("AllCompleted", split, &named);
    println!("ok");
    Ok(())
}
