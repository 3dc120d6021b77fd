//! The `#[task]` functions of these tests. A task that must block or
//! report goes through a [`GateRef`]; one that blocks reaches the gate as
//! `"<tag>:<pid>"`, so the test learns which worker runs it.

use concurrent_futures::task;

use crate::payloads::{
    self, Crash, CrashOnDecode, CrashOnEncode, Deep, PanicOnDecode, PanicOnEncode, RefuseDecode,
    RefuseEncode,
};
use crate::support::GateRef;

/// The message of [`panics`].
pub const TASK_PANIC: &str = "the task panicked on purpose";

#[task]
pub fn square(x: u64) -> u64 {
    x * x
}

/// The pid of the worker that runs it.
#[task]
pub fn whoami(_: ()) -> u32 {
    std::process::id()
}

/// Reaches the gate as `"<tag>:<pid>"`, blocks until it opens, and returns
/// its pid.
#[task]
pub fn block_report((gate, tag): (GateRef, String)) -> u32 {
    let pid = std::process::id();
    gate.wait_as(&format!("{tag}:{pid}"));
    pid
}

/// Reaches the gate as `"<tag>:<pid>"`, blocks until it opens, then ends
/// its process as `crash` says.
#[task]
pub fn block_then_crash((gate, tag, crash): (GateRef, String, Crash)) -> u32 {
    gate.wait_as(&format!("{tag}:{}", std::process::id()));
    crash.now()
}

/// Records `tag` at the gate without blocking and returns it.
#[task]
pub fn arrive((gate, tag): (GateRef, String)) -> String {
    gate.arrive(&tag);
    tag
}

#[task]
pub fn panics(_: ()) -> u32 {
    panic!("{TASK_PANIC}")
}

/// Ends its process as told, during the function.
#[task]
pub fn crash(crash: Crash) -> u32 {
    crash.now()
}

/// Overflows its stack (see [`payloads::overflow_stack`]); never returns.
#[task]
pub fn overflow_stack(_: ()) -> u64 {
    payloads::overflow_stack()
}

/// Starts a `sleep 60` that outlives it, reaches the gate as
/// `"grandchild:<its pid>"`, then ends its own process as `crash` says.
#[task]
pub fn crash_leaving_a_grandchild((gate, crash): (GateRef, Crash)) -> u32 {
    use std::process::{Command, Stdio};
    // Never waited for: its parent dies next, and the test kills it.
    #[allow(clippy::zombie_processes)]
    let child = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start sleep");
    gate.arrive(&format!("grandchild:{}", child.id()));
    crash.now()
}

/// CPython's `_crash_with_data`: crashes whatever the (large) input.
#[task]
pub fn crash_with_data((data, crash): (String, Crash)) -> usize {
    std::hint::black_box(&data);
    crash.now()
}

/// Reserves `bytes` of address space (touching none of it) and returns the
/// capacity it got: fails only under an address-space limit.
#[task]
pub fn reserve(bytes: u64) -> u64 {
    // It may die of it: no core file.
    payloads::no_core_dump();
    let v: Vec<u8> = Vec::with_capacity(bytes as usize);
    std::hint::black_box(&v);
    v.capacity() as u64
}

/// Sleeps `ms` milliseconds, returns it.
#[task]
pub fn nap(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// Runs out of address space (see [`payloads::exhaust_memory`]).
#[task]
pub fn exhaust_memory(_: ()) -> usize {
    payloads::exhaust_memory()
}

/// `Err("bad")` for 0, `Ok(x)` otherwise.
#[task]
pub fn fallible(x: u32) -> Result<u32, String> {
    if x == 0 { Err("bad".to_owned()) } else { Ok(x) }
}

// Arguments that misbehave. Each task records "ran" if it ever runs.

#[task]
pub fn take_refuse_encode((gate, _): (GateRef, RefuseEncode)) -> u32 {
    gate.arrive("ran");
    1
}

#[task]
pub fn take_panic_on_encode((gate, _): (GateRef, PanicOnEncode)) -> u32 {
    gate.arrive("ran");
    2
}

#[task]
pub fn take_refuse_decode(_: RefuseDecode) -> u32 {
    3
}

#[task]
pub fn take_panic_on_decode(_: PanicOnDecode) -> u32 {
    4
}

#[task]
pub fn take_crash_on_decode(_: CrashOnDecode) -> u32 {
    5
}

// Results that misbehave.

#[task]
pub fn make_refuse_encode(_: ()) -> RefuseEncode {
    RefuseEncode
}

#[task]
pub fn make_panic_on_encode(_: ()) -> PanicOnEncode {
    PanicOnEncode
}

#[task]
pub fn make_crash_on_encode(crash: Crash) -> CrashOnEncode {
    CrashOnEncode(crash)
}

#[task]
pub fn make_refuse_decode(_: ()) -> RefuseDecode {
    RefuseDecode
}

#[task]
pub fn make_panic_on_decode(_: ()) -> PanicOnDecode {
    PanicOnDecode
}

/// An initializer that succeeds, recording "init:<pid>" every time it runs.
#[task]
pub fn init_ok(gate: GateRef) {
    gate.arrive(&format!("init:{}", std::process::id()));
}

// Initializers that fail. Each records "init:<pid>" every time it runs.

/// The reason [`init_err`] gives.
pub const INIT_REFUSAL: &str = "the initializer refused on purpose";
/// The message [`init_panics`] panics with.
pub const INIT_PANIC: &str = "the initializer panicked on purpose";
/// The status [`init_exits`] exits with.
pub const INIT_EXIT: i32 = 7;

#[task]
pub fn init_err(gate: GateRef) -> Result<(), String> {
    gate.arrive(&format!("init:{}", std::process::id()));
    Err(INIT_REFUSAL.to_owned())
}

#[task]
pub fn init_panics(gate: GateRef) -> Result<(), String> {
    gate.arrive(&format!("init:{}", std::process::id()));
    panic!("{INIT_PANIC}")
}

#[task]
pub fn init_exits(gate: GateRef) -> Result<(), String> {
    gate.arrive(&format!("init:{}", std::process::id()));
    crate::payloads::exit(INIT_EXIT)
}

/// Takes a [`Deep`] list (with the gate, to record `"ran"` if it ever
/// runs) and returns its length.
#[task]
pub fn take_deep((gate, list): (GateRef, Deep)) -> u32 {
    gate.arrive("ran");
    let mut links = 0;
    let mut link = &list;
    while let Deep::Cons(next) = link {
        links += 1;
        link = next;
    }
    links
}

/// A [`Deep`] list of `links` links.
#[task]
pub fn make_deep(links: u32) -> Deep {
    Deep::with_links(links)
}

/// An initializer that takes a [`Deep`] list.
#[task]
pub fn init_deep(_: Deep) {}
