//! The task functions of the generic suite.
//!
//! Every task is a plain `fn(A) -> R` with serde arguments and results and
//! no captured state, so the same tests can run on an executor whose tasks
//! run in other OS processes. A task that must block or report goes through
//! a [`GateRef`] (a Unix socket path), which works across processes.
//!
//! They all live in this one module so that an executor that needs its
//! tasks registered (the process pool) can register them in one place.

use concurrent_futures::task;
use serde::{Deserialize, Serialize};

use crate::support::GateRef;

/// Python's `pow(base, exp)`.
#[task]
pub fn pow((base, exp): (u64, u32)) -> u64 {
    base.pow(exp)
}

#[task]
pub fn mul((x, y): (i64, i64)) -> i64 {
    x * y
}

#[task]
pub fn add((x, y): (i64, i64)) -> i64 {
    x + y
}

/// Python's `divmod` on non-negative numbers; panics with "attempt to
/// divide by zero" (Python's `ZeroDivisionError`) when `y == 0`.
#[task]
pub fn divmod((x, y): (i64, i64)) -> (i64, i64) {
    (x / y, x % y)
}

/// `x / y`, panicking on division by zero.
#[task]
pub fn div((x, y): (i64, i64)) -> i64 {
    x / y
}

#[task]
pub fn abs(x: i64) -> i64 {
    x.abs()
}

#[task]
pub fn to_string(x: u64) -> String {
    x.to_string()
}

#[task]
pub fn identity(x: u32) -> u32 {
    x
}

/// Reaches the gate as `tag` and blocks until it opens; returns 0.
#[task]
pub fn block((gate, tag): (GateRef, String)) -> i64 {
    gate.wait_as(&tag);
    0
}

/// Reaches the gate as `tag`, blocks until it opens, then panics with
/// "this is an exception" (CPython's `sleep_and_raise`).
#[task]
pub fn block_then_panic((gate, tag): (GateRef, String)) -> i64 {
    gate.wait_as(&tag);
    panic!("this is an exception");
}

/// Records `tag` at the gate without blocking and returns it.
#[task]
pub fn arrive((gate, tag): (GateRef, String)) -> String {
    gate.arrive(&tag);
    tag
}

/// Records `tag` at the gate; blocks until it opens if `wait`. Returns the tag.
#[task]
pub fn arrive_or_block((gate, tag, wait): (GateRef, String, bool)) -> String {
    if wait {
        gate.wait_as(&tag);
    } else {
        gate.arrive(&tag);
    }
    tag
}

/// Fails for `x == 1` with a panic that *mentions* a timeout: an ordinary
/// task failure, not the map deadline (CPython's test_map_timeout_from_callable
/// raises `TimeoutError` from the callable).
#[task]
pub fn fail_with_timeout_message(x: i32) -> i32 {
    if x == 1 {
        panic!("TimeoutError raised by the task itself");
    }
    x
}

/// The id of the process that runs the task.
#[task]
pub fn process_id(_: ()) -> u32 {
    std::process::id()
}

/// Panics with "RuntimeError" (CPython's `_raise_error(RuntimeError)`).
#[task]
pub fn raise_error(_: ()) -> i64 {
    panic!("RuntimeError");
}

/// Panics, whatever the (large) input (CPython's `_crash_with_data`).
#[task]
pub fn panic_with_data(data: String) -> usize {
    panic!("crashed with {} bytes of input", data.len());
}

/// CPython's `MyObject`, as a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyObject {
    pub id: u32,
}

#[task]
pub fn make_dummy_object(id: u32) -> MyObject {
    MyObject { id }
}

// Initializers (test_init). The status is per worker *thread*: the thread
// pool runs the initializer in each worker thread before its tasks, and a
// process pool is expected to run it in the worker process's task thread.
// A thread-local (rather than a process-wide static) means a task only sees
// "initialized" if the worker that runs it was initialized.

thread_local! {
    static INITIALIZER_STATUS: std::cell::RefCell<String> =
        std::cell::RefCell::new(String::from("uninitialized"));
}

/// CPython's `init('initialized')`.
#[task]
pub fn init(_: ()) -> Result<(), String> {
    INITIALIZER_STATUS.with(|s| *s.borrow_mut() = String::from("initialized"));
    Ok(())
}

/// CPython's `get_init_status`.
#[task]
pub fn get_init_status(_: ()) -> String {
    INITIALIZER_STATUS.with(|s| s.borrow().clone())
}

/// CPython's `init_fail`: the initializer returns an error.
#[task]
pub fn init_fail(_: ()) -> Result<(), String> {
    Err(String::from("ValueError: error in initializer"))
}

/// An initializer that panics (the other way a Rust initializer fails).
#[task]
pub fn init_panic(_: ()) -> Result<(), String> {
    panic!("panic in initializer");
}
