//! Values whose serde impls misbehave on purpose (CPython's
//! `ErrorAtPickle`, `ExitAtUnpickle`, `CrashAtPickle`, ...), and the ways a
//! worker process can be made to die.

use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

/// The reason every refusing `Serialize` gives.
pub const ENCODE_REFUSAL: &str = "refused to encode on purpose";
/// The reason every refusing `Deserialize` gives.
pub const DECODE_REFUSAL: &str = "refused to decode on purpose";
/// The message of every panicking `Serialize`.
pub const ENCODE_PANIC: &str = "Serialize panicked on purpose";
/// The message of every panicking `Deserialize`.
pub const DECODE_PANIC: &str = "Deserialize panicked on purpose";

/// How to end the current process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crash {
    /// `exit(code)`: libc's, which ends the process as `std::process::exit`
    /// does but without std's clean-up. That clean-up takes a lock of
    /// std's that a forked worker can inherit held (another thread of the
    /// test harness starting or ending at the fork), and then hangs: the
    /// fork hazard that `StartMethod::Fork` documents, not the pool's
    /// behaviour under test (it hung one run of the fault suite in ~300).
    Exit(i32),
    /// `std::process::abort()`: SIGABRT.
    Abort,
    /// A write to an unmapped page: SIGSEGV.
    Segfault,
}

impl Crash {
    /// Ends this process now.
    pub fn now(self) -> ! {
        match self {
            Crash::Exit(code) => exit(code),
            Crash::Abort => {
                no_core_dump();
                std::process::abort()
            }
            Crash::Segfault => {
                no_core_dump();
                segfault()
            }
        }
    }
}

/// libc's `exit`: see [`Crash::Exit`].
pub fn exit(code: i32) -> ! {
    // SAFETY: ends the process; no Rust state is used afterwards.
    unsafe { libc::exit(code) }
}

pub use crate::support::no_core_dump;

/// A real segmentation fault, not a `raise`: a volatile write to address
/// 8, in the first page, which is never mapped. The pointer is non-null
/// and aligned, so no debug precondition check turns it into a panic or an
/// abort first.
pub fn segfault() -> ! {
    // SAFETY: none; faulting is the point. The write is volatile, so it
    // is neither removed nor reordered.
    unsafe { std::ptr::dangling_mut::<u64>().write_volatile(1) };
    unreachable!("a write to address 8 did not fault")
}

/// Overflows the calling thread's stack: recursion without a bound whose
/// frames the optimiser can neither drop nor turn into a loop. Each frame
/// holds a 1 KiB buffer that `black_box` sees before and after the
/// recursive call, so the buffer must live in the frame and the call is
/// not in tail position. A spawned worker runs its tasks on its main
/// thread, whose stack grows up to the soft `RLIMIT_STACK`; that is capped
/// at 8 MiB first (Linux's usual default), so that where it is unlimited
/// the recursion overflows within 8 MiB instead of eating memory.
pub fn overflow_stack() -> u64 {
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

/// Lowers this process's address-space limit to 64 MiB above what it maps
/// now, then allocates 1 GiB: the allocation fails and Rust's
/// allocation-error handler aborts (SIGABRT).
pub fn exhaust_memory() -> usize {
    no_core_dump();
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this process's own limits.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0);
        limit.rlim_cur = (vm_kib * 1024 + (64 << 20)) as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0);
    }
    let big = vec![1_u8; 1 << 30];
    std::hint::black_box(&big);
    big.len()
}

/// `Serialize` returns an error (CPython's `ErrorAtPickle`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RefuseEncode;

impl Serialize for RefuseEncode {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(ser::Error::custom(ENCODE_REFUSAL))
    }
}

/// `Serialize` panics.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PanicOnEncode;

impl Serialize for PanicOnEncode {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("{ENCODE_PANIC}")
    }
}

/// `Serialize` ends the process (CPython's `ExitAtPickle`,
/// `CrashAtPickle`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CrashOnEncode(pub Crash);

impl Serialize for CrashOnEncode {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        self.0.now()
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

/// `Deserialize` panics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PanicOnDecode;

impl<'de> Deserialize<'de> for PanicOnDecode {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("{DECODE_PANIC}")
    }
}

/// `Deserialize` ends the process (CPython's `ExitAtUnpickle`,
/// `CrashAtUnpickle`). Only ever decoded in a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashOnDecode(pub Crash);

impl Serialize for CrashOnDecode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CrashOnDecode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Crash::deserialize(d)?.now()
    }
}

/// A boxed linked list, for values nested far deeper than the codec
/// allows (`concurrent_futures_task_wire::codec::DECODE_DEPTH_LIMIT`, 512
/// levels): one level per link. It drops itself with a loop, since the
/// compiler's recursive drop of 100,000 links would overflow the stack
/// before the pool had a say.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deep {
    Nil,
    Cons(Box<Deep>),
}

impl Deep {
    /// `n` links, built with a loop.
    pub fn with_links(n: u32) -> Deep {
        (0..n).fold(Deep::Nil, |tail, _| Deep::Cons(Box::new(tail)))
    }
}

impl Drop for Deep {
    fn drop(&mut self) {
        let Deep::Cons(next) = self else { return };
        // Each link is dropped with `Nil` as its tail: no recursion.
        let mut link = std::mem::replace(&mut **next, Deep::Nil);
        while let Deep::Cons(next) = &mut link {
            let below = std::mem::replace(&mut **next, Deep::Nil);
            link = below;
        }
    }
}
