//! The fault matrix: every executor (threads; processes started with fork,
//! spawn or a fork server) against every fault a task can meet, one
//! test per cell, named `<fault>::<executor>` so that
//! `cargo test --test faults` reads as the table.
//!
//! Each cell asserts the exact [`TaskError`](concurrent_futures::TaskError)
//! (variant and fields, and the key phrase of its message); that every
//! other future in flight (a bystander blocked on a gate, tasks queued
//! behind the fault) completes with its right value; that the pool runs new
//! work afterwards, or, for the shutdown cells, refuses it with
//! `ShutDown`; and, once the pool is dropped, that no worker process is
//! left (live or zombie), no pool thread, and no descriptor opened during
//! the cell. The cells run one at a time (a binary-wide lock), so these
//! process-wide checks see only their own cell. Nothing sleeps and hopes:
//! tasks block and report on a cross-process gate, and every wait is
//! bounded.
//!
//! [`MATRIX`] is generated from the same list as the tests, with the cells
//! that do not apply (faults that need a process boundary, on threads) as
//! rows of their own; `docs/RELIABILITY.md` holds it as a table, which
//! [`reliability_md_is_current`] checks (`CF_BLESS=1` rewrites it).

mod support;

#[path = "faults/cells.rs"]
mod cells;
#[path = "faults/harness.rs"]
mod harness;
#[path = "faults/tasks.rs"]
mod tasks;

use harness::Exec;

/// Whether a fault has a cell on threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// On every executor.
    Everywhere,
    /// On process pools only: on threads it would end the whole process,
    /// or it has no meaning without a process boundary.
    ProcessesOnly,
    /// On every executor, but on threads it ends the whole program: the
    /// thread cell runs the fault in a child process and checks how that
    /// process died.
    EndsProgramOnThreads,
}

/// One row of the matrix.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// The fault's module: the test is `<id>::<executor>`.
    pub id: &'static str,
    /// The fault, in words.
    pub fault: &'static str,
    pub exec: Exec,
    /// What the caller sees, or "not applicable: <why>".
    pub sees: &'static str,
    /// Whether a test runs this cell.
    pub tested: bool,
}

/// The matrix and its tests, from one list. Each entry is
/// `<id> <Applies> "<fault>", threads: "<sees, or why not>", processes:
/// "<sees>";` and yields `mod <id>` with a `#[test]` per applicable
/// executor (each calling `cells::<id>`) and four rows of [`MATRIX`].
macro_rules! fault_matrix {
    (@threads Everywhere $text:literal) => { $text };
    (@threads ProcessesOnly $text:literal) => { concat!("not applicable: ", $text) };
    (@threads EndsProgramOnThreads $text:literal) => { $text };
    (@threads_test ProcessesOnly $id:ident) => {};
    (@threads_test $applies:ident $id:ident) => {
        #[test]
        fn threads() {
            let name = concat!(stringify!($id), "::threads");
            crate::cells::$id(crate::harness::Cell::begin(crate::Exec::Threads, name));
        }
    };
    ($(
        $id:ident $applies:ident $fault:literal,
        threads: $threads:literal,
        processes: $processes:literal;
    )*) => {
        /// Every (fault, executor) cell, in order: threads, fork, spawn,
        /// forkserver.
        pub const MATRIX: &[Row] = &[$(
            Row {
                id: stringify!($id),
                fault: $fault,
                exec: Exec::Threads,
                sees: fault_matrix!(@threads $applies $threads),
                tested: !matches!(Applies::$applies, Applies::ProcessesOnly),
            },
            Row {
                id: stringify!($id),
                fault: $fault,
                exec: Exec::Fork,
                sees: $processes,
                tested: true,
            },
            Row {
                id: stringify!($id),
                fault: $fault,
                exec: Exec::Spawn,
                sees: $processes,
                tested: true,
            },
            Row {
                id: stringify!($id),
                fault: $fault,
                exec: Exec::ForkServer,
                sees: $processes,
                tested: true,
            },
        )*];

        $(
            #[doc = $fault]
            mod $id {
                fault_matrix!(@threads_test $applies $id);

                #[test]
                fn fork() {
                    let name = concat!(stringify!($id), "::fork");
                    crate::cells::$id(crate::harness::Cell::begin(crate::Exec::Fork, name));
                }

                #[test]
                fn spawn() {
                    let name = concat!(stringify!($id), "::spawn");
                    crate::cells::$id(crate::harness::Cell::begin(crate::Exec::Spawn, name));
                }

                #[test]
                fn forkserver() {
                    let name = concat!(stringify!($id), "::forkserver");
                    crate::cells::$id(crate::harness::Cell::begin(crate::Exec::ForkServer, name));
                }
            }
        )*
    };
}

fault_matrix! {
    panic Everywhere "the task panics",
        threads: "`Panicked { message }`: `the task panicked: <message>`. The worker thread \
                  carries on.",
        processes: "`Panicked { message }`: `the task panicked: <message>`. The worker \
                    process carries on.";

    abort ProcessesOnly "the task aborts",
        threads: "`abort()` ends the whole process, the caller's threads with it.",
        processes: "`WorkerDied { pid, signal: Some(6), exit_code: None }`: `the worker \
                    process <pid> running the task died: killed by signal 6 (SIGABRT): the \
                    task aborted, or an allocation failed …`. A replacement worker starts.";

    exit ProcessesOnly "the task calls `exit(3)`",
        threads: "`exit` ends the whole process, the caller's threads with it.",
        processes: "`WorkerDied { pid, signal: None, exit_code: Some(3) }`: `the worker \
                    process <pid> running the task died: it exited with status 3`. A \
                    replacement worker starts.";

    segfault ProcessesOnly "the task segfaults",
        threads: "a segfault kills the whole process, the caller's threads with it.",
        processes: "`WorkerDied { pid, signal: Some(11), exit_code: None }`: `… killed by \
                    signal 11 (SIGSEGV)`. A replacement worker starts.";

    stack_overflow EndsProgramOnThreads "the task overflows its stack",
        threads: "No error: the whole program aborts, as for any thread std starts (rayon's \
                  too), since nothing unwinds for `catch_unwind` to catch. std prints \
                  `thread '<name>' has overflowed its stack` and `fatal runtime error: stack \
                  overflow, aborting`, then SIGABRT. (The test runs it in a child process.)",
        processes: "`WorkerDied { pid, signal, exit_code: None }`, with `signal: Some(11)`, \
                    `… killed by signal 11 (SIGSEGV)` and nothing printed, in a spawned worker \
                    (`Spawn`, `ForkServer`, a `Fork` pool's replacements: no overflow handler \
                    runs before `main`); `Some(6)`, `… killed by signal 6 (SIGABRT)` after \
                    std's message, in a `Fork` pool's first workers. A replacement worker \
                    starts.";

    sigkill ProcessesOnly "SIGKILL from outside, mid-task",
        threads: "SIGKILL ends the whole process, whichever of its threads it is sent to.",
        processes: "`WorkerDied { pid, signal: Some(9), exit_code: None }`: `… killed by \
                    signal 9 (SIGKILL)`. A replacement worker starts.";

    memory_limit ProcessesOnly "an allocation beyond the per-worker memory limit",
        threads: "threads share one address space, so there is no per-worker limit; a failed \
                  allocation aborts the whole process.",
        processes: "`WorkerDied { pid, signal: Some(6), exit_code: None }`: `… killed by \
                    signal 6 (SIGABRT): the task aborted, or an allocation failed (past the \
                    pool's memory limit, if one is set)`. A replacement worker starts, under \
                    the same limit.";

    arg_encode ProcessesOnly "an argument that fails to encode",
        threads: "a thread pool moves the argument; it never encodes it.",
        processes: "`submit` returns `Err(Encode { type_name, reason })`: `could not encode a \
                    value of type <argument type>: <reason>`. Nothing is sent; no worker is \
                    touched.";

    result_encode ProcessesOnly "a result that fails to encode",
        threads: "a thread pool moves the result; it never encodes it.",
        processes: "`Encode { type_name, reason }`: `could not encode a value of type \
                    <result type>: <reason>`. The worker carries on.";

    result_decode ProcessesOnly "a result that fails to decode",
        threads: "a thread pool moves the result; it never decodes it.",
        processes: "`Decode { type_name, reason }`: `could not decode a value of type \
                    <result type>: <reason>`. The worker carries on.";

    time_limit ProcessesOnly "the task runs past its time limit",
        threads: "a running thread cannot be stopped from outside, so a thread pool has no \
                  time limit.",
        processes: "`TaskTimedOut { limit, pid }` (`task_timeout` or `submit_with_timeout`): \
                    `the task ran past its time limit of <limit>: its worker process <pid> \
                    was killed and replaced; …`. A replacement worker starts.";

    done_callback Everywhere "a done-callback panics",
        threads: "Nothing: the future keeps its value, its other callbacks run, and the worker \
                  thread that ran them carries on. The panic goes to \
                  `set_callback_panic_handler` as `exception calling callback for <future>: \
                  <message>`.",
        processes: "Nothing: the future keeps its value, its other callbacks run, and the \
                    pool's handler thread that ran them carries on. The panic goes to \
                    `set_callback_panic_handler` as `exception calling callback for <future>: \
                    <message>`.";

    initializer Everywhere "the initializer panics",
        threads: "The pool is broken: tasks already accepted fail, and `submit` returns, \
                  `Broken { reason }`: `the executor is broken: the initializer of worker \
                  thread <prefix>_<n> failed (panicked: <message>); the pool runs no more \
                  tasks: …`. No task runs.",
        processes: "The pool is broken: tasks already accepted fail, and `submit` returns, \
                    `Broken { reason }`: `the executor is broken: the initializer failed: it \
                    panicked: <message>`. No task runs; no worker is started again.";

    cancel_queued Everywhere "`cancel()` while queued",
        threads: "`cancel()` returns true and the future holds `Cancelled`: `the future was \
                  cancelled before its task started`. The task never runs.",
        processes: "`cancel()` returns true and the future holds `Cancelled`: `the future was \
                    cancelled before its task started`. The task never runs.";

    shutdown_nowait Everywhere "`shutdown(wait=false)` while busy",
        threads: "`shutdown` returns at once; running and queued tasks still complete with \
                  their values. `submit` returns `ShutDown`: `cannot schedule new futures \
                  after shutdown: …`.",
        processes: "`shutdown` returns at once; running and queued tasks still complete with \
                    their values. `submit` returns `ShutDown`: `cannot schedule new futures \
                    after shutdown: …`.";

    shutdown_cancel Everywhere "`shutdown(cancel_futures=true)` with a backlog",
        threads: "Queued futures hold `Cancelled` at once and never run; running tasks \
                  complete with their values. `submit` returns `ShutDown`.",
        processes: "Queued futures hold `Cancelled` at once and never run; running tasks \
                    complete with their values. `submit` returns `ShutDown`.";
}

/// The Markdown table of [`MATRIX`], as `docs/RELIABILITY.md` holds it.
fn render_matrix() -> String {
    let mut out = String::from("| fault | executor | what the caller sees | test |\n");
    out.push_str("|---|---|---|---|\n");
    for row in MATRIX {
        let test = if row.tested {
            format!("`{}::{}`", row.id, row.exec.test_name())
        } else {
            "—".to_owned()
        };
        assert!(!row.sees.contains('|'), "{row:?}: a `|` breaks the table");
        // `<pid>` outside a code span would be read as an HTML tag.
        let prose = row.sees.split('`').step_by(2).collect::<String>();
        assert!(!prose.contains('<'), "{row:?}: a `<` outside `code`");
        out.push_str(&format!(
            "| {} | {} | {} | {test} |\n",
            row.fault,
            row.exec.label(),
            row.sees
        ));
    }
    out
}

const MATRIX_START: &str = "<!-- matrix: generated by tests/faults.rs -->\n";
const MATRIX_END: &str = "<!-- end of matrix -->";

/// The table in `docs/RELIABILITY.md` is [`MATRIX`]'s. On a mismatch this
/// fails printing the table it expects; `CF_BLESS=1` writes it instead.
#[test]
fn reliability_md_is_current() {
    let _serial = harness::serial();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/RELIABILITY.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = doc
        .find(MATRIX_START)
        .unwrap_or_else(|| panic!("{path} has no line {MATRIX_START:?}"))
        + MATRIX_START.len();
    let end = start
        + doc[start..]
            .find(MATRIX_END)
            .unwrap_or_else(|| panic!("{path} has no {MATRIX_END:?} after the start marker"));
    let expected = render_matrix();
    if doc[start..end] == expected {
        return;
    }
    if std::env::var_os("CF_BLESS").is_some_and(|v| v == "1") {
        let updated = format!("{}{expected}{}", &doc[..start], &doc[end..]);
        std::fs::write(path, updated).unwrap_or_else(|e| panic!("{path}: {e}"));
        return;
    }
    panic!(
        "the table in {path} is not the one tests/faults.rs generates; rerun with CF_BLESS=1 \
         to rewrite it, or put this between the markers:\n{expected}"
    );
}

/// Every fault has its four rows, each applicable cell a test, and every
/// fault applies to processes.
#[test]
fn matrix_is_complete() {
    let _serial = harness::serial();
    assert_eq!(MATRIX.len() % 4, 0);
    for rows in MATRIX.chunks(4) {
        let execs: Vec<Exec> = rows.iter().map(|r| r.exec).collect();
        assert_eq!(
            execs,
            [Exec::Threads, Exec::Fork, Exec::Spawn, Exec::ForkServer],
            "{rows:?}"
        );
        assert!(
            rows.iter()
                .all(|r| r.id == rows[0].id && r.fault == rows[0].fault)
        );
        assert!(rows[1..].iter().all(|r| r.tested), "{rows:?}");
        assert_eq!(
            rows[0].tested,
            !rows[0].sees.starts_with("not applicable: ")
        );
    }
    let faults = MATRIX.len() / 4;
    assert_eq!(
        faults, 16,
        "the issue's fourteen faults, the time limit and the stack overflow"
    );
}
