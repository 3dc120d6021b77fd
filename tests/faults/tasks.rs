//! The `#[task]` functions and the misbehaving payloads of the fault
//! matrix: short versions of `tests/process_pool_faults`' own, which
//! another test binary cannot share. The thread-pool cells submit the same
//! functions (a `#[task]` is a plain `fn`).
//!
//! Fork safety: a forked worker inherits locks that other threads of the
//! test binary held at the fork, so what ends a worker process uses libc's
//! `exit` (not `std::process::exit`, whose clean-up takes a lock of std's)
//! and nothing here starts a std thread. See `StartMethod::Fork`.

use concurrent_futures::task;
use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

use crate::support::GateRef;

/// The message of [`panics`].
pub const TASK_PANIC: &str = "the task panicked on purpose";
/// The message of [`init_panics`].
pub const INIT_PANIC: &str = "the initializer panicked on purpose";
/// The reason [`RefuseEncode`] gives.
pub const ENCODE_REFUSAL: &str = "refused to encode on purpose";
/// The reason [`RefuseDecode`] gives.
pub const DECODE_REFUSAL: &str = "refused to decode on purpose";
/// The status [`exit`] ends its worker with.
pub const EXIT_CODE: i32 = 3;

#[task]
pub fn square(x: u64) -> u64 {
    x * x
}

/// The pid of the process that runs it.
#[task]
pub fn whoami(_: ()) -> u32 {
    std::process::id()
}

/// Reaches the gate as `"<tag>:<pid>"`, blocks until it opens, returns the
/// pid.
#[task]
pub fn block_report((gate, tag): (GateRef, String)) -> u32 {
    let pid = std::process::id();
    gate.wait_as(&format!("{tag}:{pid}"));
    pid
}

/// Records `tag` at the gate without blocking, returns it.
#[task]
pub fn arrive((gate, tag): (GateRef, String)) -> String {
    gate.arrive(&tag);
    tag
}

#[task]
pub fn panics(_: ()) -> u32 {
    panic!("{TASK_PANIC}")
}

#[task]
pub fn abort(_: ()) -> u32 {
    no_core_dump();
    std::process::abort()
}

/// libc's `exit(EXIT_CODE)`: see the module docs.
#[task]
pub fn exit(_: ()) -> u32 {
    // SAFETY: ends the process; no Rust state is used afterwards.
    unsafe { libc::exit(EXIT_CODE) }
}

/// A real segmentation fault: a volatile write to address 8, in the first
/// page, which is never mapped (non-null and aligned, so no debug check
/// turns it into a panic first).
#[task]
pub fn segfault(_: ()) -> u32 {
    no_core_dump();
    // SAFETY: none; faulting is the point.
    unsafe { std::ptr::dangling_mut::<u64>().write_volatile(1) };
    unreachable!("a write to address 8 did not fault")
}

/// Overflows its thread's stack: recursion without a bound, each frame
/// holding a 1 KiB buffer that `black_box` sees before and after the
/// recursive call (so neither the frame nor the call can be optimised
/// away). A spawned worker runs tasks on its main thread, whose stack
/// grows up to the soft `RLIMIT_STACK`: that is capped at 8 MiB first, so
/// that where it is unlimited the recursion overflows instead of eating
/// memory.
#[task]
pub fn overflow_stack(_: ()) -> u64 {
    no_core_dump();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process's own limits, with a
    // valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_STACK, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_cur.min(8 << 20);
            libc::setrlimit(libc::RLIMIT_STACK, &limit);
        }
    }
    recurse(0)
}

/// One frame of [`overflow_stack`]; `depth` never reaches `u64::MAX`.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0_u8; 1024];
    frame[0] = depth as u8;
    std::hint::black_box(&mut frame);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse(depth + 1);
    std::hint::black_box(&frame);
    below.wrapping_add(u64::from(frame[0]))
}

/// Reserves `bytes` of address space, touching none of it: fails only
/// under an address-space limit (and then Rust aborts the process).
#[task]
pub fn reserve(bytes: u64) -> u64 {
    no_core_dump();
    let v: Vec<u8> = Vec::with_capacity(bytes as usize);
    std::hint::black_box(&v);
    v.capacity() as u64
}

/// Its argument cannot be encoded; records `"ran"` if it ever runs.
#[task]
pub fn take_refuse_encode((gate, _): (GateRef, RefuseEncode)) -> u32 {
    gate.arrive("ran");
    1
}

#[task]
pub fn make_refuse_encode(_: ()) -> RefuseEncode {
    RefuseEncode
}

#[task]
pub fn make_refuse_decode(_: ()) -> RefuseDecode {
    RefuseDecode
}

/// An initializer that records `"init:<pid>"`, then panics.
#[task]
pub fn init_panics(gate: GateRef) {
    gate.arrive(&format!("init:{}", std::process::id()));
    panic!("{INIT_PANIC}")
}

use crate::support::no_core_dump;

/// `Serialize` returns an error (CPython's `ErrorAtPickle`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RefuseEncode;

impl Serialize for RefuseEncode {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(ser::Error::custom(ENCODE_REFUSAL))
    }
}

/// `Deserialize` returns an error (CPython's `ErrorAtUnpickle`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefuseDecode;

impl<'de> Deserialize<'de> for RefuseDecode {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::custom(DECODE_REFUSAL))
    }
}
