//! The decoders under bad input (issue 5, item 4): every decoder that takes
//! bytes from the other side of the process boundary returns `Ok` or `Err`
//! for any byte string, never panics or aborts, and never allocates more
//! than its bound.
//!
//! The entry points, all public functions on bytes:
//!
//! * [`wire::decode_request`]: the worker's decoder of what the parent
//!   sends (`RUN`, `CHUNK`, `INIT`; shutdown is the channel closing, no
//!   message). Its bound: one `Vec` of slices, at most 4 × the message's
//!   length in bytes.
//! * [`wire::decode_response`]: the parent's decoder of what a worker sends
//!   (`DONE`, `CHUNK`, `INIT` with their outcomes, errors included). Its
//!   bound: one `Vec` of outcomes, at most `size_of::<Outcome>() / 5` × the
//!   message's length.
//! * [`codec::decode`]: task arguments (in the worker, through
//!   [`registry::invoke`]), results and the initializer's result (in the
//!   parent). Its bounds: no single allocation over [`DECODE_LIMIT`] (with
//!   bincode, the buffer for a string's claimed length, allocated before it
//!   is read), besides that no more live at once than 512 × the input's
//!   length plus 64 KiB, and no nesting deeper than
//!   [`codec::DECODE_DEPTH_LIMIT`] (the stack).
//!
//! (The worker's greeting is a fixed string compared byte for byte, with
//! the kernel's word on who wrote it: no decoder to fuzz; the process
//! pool's unit tests `process::hand_off` cover it.)
//!
//! A counting global allocator checks the bounds on every decode. The case
//! counts suit CI (a few seconds in debug); set `PROPTEST_CASES` for a soak,
//! which multiplies every property's count by `PROPTEST_CASES / 2000`.
//! Proptest keeps failing inputs in `wire_fuzz.proptest-regressions`
//! beside this file; inputs that once failed are also spelled out below as
//! named tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use concurrent_futures_task_wire::codec::{self, CodecError, DECODE_LIMIT};
use concurrent_futures_task_wire::registry::{self, InvokeError};
use concurrent_futures_task_wire::wire::{self, Outcome, Request, Response, WireError};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

// ---- the counting allocator ----

/// What the current thread allocated while [`measure`] watched it.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    /// Allocations (and reallocations) asked for.
    count: usize,
    /// The largest single request, in bytes.
    largest: usize,
    /// Bytes allocated and not yet freed, now.
    live: isize,
    /// The most bytes live at once.
    peak: isize,
}

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static USAGE: Cell<Usage> = const {
        Cell::new(Usage { count: 0, largest: 0, live: 0, peak: 0 })
    };
}

/// Counts the current thread's allocations while it is watched; tests run
/// on several threads, and each watches only its own.
struct Counting;

fn note(allocated: usize, freed: usize) {
    let _ = WATCHING.try_with(|watching| {
        if !watching.get() {
            return;
        }
        let _ = USAGE.try_with(|usage| {
            let mut u = usage.get();
            if allocated > 0 {
                u.count += 1;
                u.largest = u.largest.max(allocated);
            }
            u.live += allocated as isize - freed as isize;
            u.peak = u.peak.max(u.live);
            usage.set(u);
        });
    });
}

// SAFETY: every call is passed on to `System` unchanged; only counts are
// kept, in thread-locals that need no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Passed on as such: a huge zeroed buffer stays untouched pages.
        note(layout.size(), 0);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Old and new may both be live for a moment: count the new first.
        note(new_size, layout.size());
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, counting what it allocates on this thread.
fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    USAGE.with(|u| u.set(Usage::default()));
    WATCHING.with(|w| w.set(true));
    let result = f();
    WATCHING.with(|w| w.set(false));
    (result, USAGE.with(Cell::get))
}

// ---- the decoders, with their bounds checked ----

/// The worker's decoder: at most one allocation, a `Vec` of at most
/// `len / 4` slices.
fn decode_request(bytes: &[u8]) -> Result<Request<'_>, WireError> {
    let (result, usage) = measure(|| wire::decode_request(bytes));
    let bound = bytes.len() / 4 * size_of::<&[u8]>();
    assert!(
        usage.count <= 1 && usage.largest <= bound,
        "decode_request of {} bytes allocated {usage:?}, bound {bound}",
        bytes.len()
    );
    result
}

/// The parent's decoder: at most one allocation, a `Vec` of at most
/// `len / 5` outcomes.
fn decode_response(bytes: &[u8]) -> Result<Response<'_>, WireError> {
    let (result, usage) = measure(|| wire::decode_response(bytes));
    let bound = bytes.len() / 5 * size_of::<Outcome<'static>>();
    assert!(
        usage.count <= 1 && usage.largest <= bound,
        "decode_response of {} bytes allocated {usage:?}, bound {bound}",
        bytes.len()
    );
    result
}

/// What a payload decode may have live at once besides one up-front
/// buffer: serde's allocations ahead for sequences and maps (the codec
/// grants their lengths one element per input byte in all, and no payload
/// type's element is over 512 bytes), the value built so far (a small
/// multiple of the input), and an error message.
fn payload_margin(len: usize) -> isize {
    (64 << 10) + 512 * len as isize
}

/// The payload decoder, as the worker (arguments) and the parent (results)
/// call it. bincode allocates a string's or a byte buffer's claimed length
/// before it reads it (up to [`DECODE_LIMIT`]: untouched pages, freed as
/// the decode fails); postcard reads nothing it has not checked is there.
fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (result, usage) = measure(|| codec::decode::<T>(bytes));
    let up_front = if cfg!(feature = "postcard") {
        0
    } else {
        usage.largest
    };
    assert!(
        usage.largest <= DECODE_LIMIT
            && usage.peak <= up_front as isize + payload_margin(bytes.len()),
        "decode::<{}> of {} bytes allocated {usage:?}",
        std::any::type_name::<T>(),
        bytes.len()
    );
    result
}

/// Decodes `bytes` as `T`; if that works, what it re-encodes to decodes
/// to the same value (equal, or, as a float may be NaN, encoding to the
/// same bytes; a `HashMap` encodes in no fixed order).
fn payload_path<T: DeserializeOwned + Serialize + PartialEq + fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = decode_payload::<T>(bytes) {
        let once = codec::encode(&value).expect("a decoded value encodes");
        let again = decode_payload::<T>(&once).expect("a re-encoded value decodes");
        assert!(
            again == value || codec::encode(&again).expect("encodes") == once,
            "{value:?} came back as {again:?}"
        );
    }
}

/// The bytes a message re-encodes to: the same, except that the id of an
/// `INIT` (ignored by both decoders) is 0.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    if bytes.first() == Some(&3) && bytes.len() >= 9 {
        bytes[1..9].fill(0);
    }
    bytes
}

fn echo(record: Record) -> Record {
    record
}

/// What a worker does with a message: decode the request, then decode
/// each argument (as [`registry::invoke`] does, and through it).
fn worker_path(bytes: &[u8]) {
    let Ok(request) = decode_request(bytes) else {
        return;
    };
    assert_eq!(wire::encode_request(&request), canonical(bytes));
    let args = match &request {
        Request::Run { arg, .. } | Request::Init { arg, .. } => vec![*arg],
        Request::Chunk { args, .. } => args.clone(),
    };
    for arg in args {
        every_payload_type(arg);
        let mut out = Vec::new();
        match registry::invoke(echo, arg, &mut out) {
            // As bytes: a float may be NaN.
            Ok(()) => {
                let record = decode_payload::<Record>(arg).expect("echo decoded it");
                assert_eq!(out, codec::encode(&record).expect("encodes"));
            }
            Err(InvokeError::DecodeArgs(e)) => {
                assert!(!e.reason.contains("panicked"), "{e}")
            }
            Err(other) => panic!("echo failed otherwise than to decode: {other:?}"),
        }
    }
}

/// What the pool does with a worker's message: decode the response, then
/// each result.
fn parent_path(bytes: &[u8]) {
    let Ok(response) = decode_response(bytes) else {
        return;
    };
    assert_eq!(wire::encode_response(&response), canonical(bytes));
    let outcomes = match response {
        Response::Done { outcome, .. } | Response::Init(outcome) => vec![outcome],
        Response::Chunk { outcomes, .. } => outcomes,
    };
    for outcome in outcomes {
        if let Outcome::Ok(result) = outcome {
            every_payload_type(result);
        }
    }
}

/// Everything a message from the other side may meet.
fn every_decoder(bytes: &[u8]) {
    worker_path(bytes);
    parent_path(bytes);
    every_payload_type(bytes);
}

// ---- the payload types ----

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Newtype(u16),
    Tuple(i8, String),
    Struct { xs: Vec<u32>, name: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    delta: i64,
    wide: u128,
    ratio: f64,
    flag: bool,
    letter: char,
    name: String,
    tags: Vec<String>,
    bytes: Vec<u8>,
    grid: Vec<Vec<u16>>,
    index: BTreeMap<String, i32>,
    shape: Shape,
    boxed: Option<Box<Shape>>,
    pair: ((), i16),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

/// A linked list: two levels of nesting per link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct List {
    value: i32,
    next: Option<Box<List>>,
}

fn list() -> impl Strategy<Value = List> {
    prop::collection::vec(any::<i32>(), 1..24).prop_map(|values| {
        let mut values = values.into_iter();
        let last = List {
            value: values.next().expect("at least one"),
            next: None,
        };
        values.fold(last, |next, value| List {
            value,
            next: Some(Box::new(next)),
        })
    })
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

fn float() -> impl Strategy<Value = f64> {
    use prop::num::f64::*;
    // NaN is left out: it is not equal to itself.
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | INFINITE
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Unit),
        any::<u16>().prop_map(Shape::Newtype),
        (any::<i8>(), text()).prop_map(|(a, b)| Shape::Tuple(a, b)),
        (
            prop::collection::vec(any::<u32>(), 0..6),
            prop::option::of(text())
        )
            .prop_map(|(xs, name)| Shape::Struct { xs, name }),
    ]
}

prop_compose! {
    fn record()(
        (id, delta, wide, ratio, flag, letter) in
            (any::<u64>(), any::<i64>(), any::<u128>(), float(), any::<bool>(), any::<char>()),
        (name, tags, bytes) in (
            text(),
            prop::collection::vec(text(), 0..4),
            prop::collection::vec(any::<u8>(), 0..24),
        ),
        grid in prop::collection::vec(prop::collection::vec(any::<u16>(), 0..4), 0..4),
        index in prop::collection::btree_map(text(), any::<i32>(), 0..4),
        (shape, boxed, last) in (shape(), prop::option::of(shape().prop_map(Box::new)), any::<i16>()),
    ) -> Record {
        Record {
            id, delta, wide, ratio, flag, letter, name, tags, bytes, grid, index, shape, boxed,
            pair: ((), last),
        }
    }
}

fn tree() -> impl Strategy<Value = Tree> {
    any::<u32>()
        .prop_map(Tree::Leaf)
        .prop_recursive(4, 24, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(Tree::Node)
        })
}

macro_rules! payloads {
    ($($variant:ident: $ty:ty = $strategy:expr;)*) => {
        /// A value of one of the payload types.
        #[derive(Clone, Debug, PartialEq)]
        enum Payload {
            $($variant($ty),)*
        }

        fn payload() -> impl Strategy<Value = Payload> {
            prop_oneof![$($strategy.prop_map(Payload::$variant)),*]
        }

        impl Payload {
            fn encode(&self) -> Vec<u8> {
                match self {
                    $(Payload::$variant(v) => codec::encode(v).expect("encodes"),)*
                }
            }

            /// Decodes `bytes` as this payload's type.
            fn decode_same(&self, bytes: &[u8]) -> Result<Payload, CodecError> {
                match self {
                    $(Payload::$variant(_) => decode_payload::<$ty>(bytes).map(Payload::$variant),)*
                }
            }
        }

        /// Decodes `bytes` as every payload type.
        fn every_payload_type(bytes: &[u8]) {
            $(payload_path::<$ty>(bytes);)*
        }
    };
}

payloads! {
    Unit: () = Just(());
    Bool: bool = any::<bool>();
    Char: char = any::<char>();
    U64: u64 = any::<u64>();
    I128: i128 = any::<i128>();
    F32: f32 = any::<f32>().prop_filter("not NaN", |f| !f.is_nan());
    Text: String = text();
    Bytes: Vec<u8> = prop::collection::vec(any::<u8>(), 0..64);
    Texts: Vec<String> = prop::collection::vec(text(), 0..6);
    Pair: (u32, Option<String>) = (any::<u32>(), prop::option::of(text()));
    Map: HashMap<String, Vec<u8>> =
        prop::collection::hash_map(text(), prop::collection::vec(any::<u8>(), 0..8), 0..4);
    Shape: Shape = shape();
    Record: Record = record();
    Records: Vec<Record> = prop::collection::vec(record(), 0..3);
    Tree: Tree = tree();
    List: List = list();
}

// ---- the wire messages ----

/// A request that owns its parts.
#[derive(Clone, Debug)]
enum OwnedRequest {
    Run {
        id: u64,
        task: String,
        arg: Vec<u8>,
    },
    Chunk {
        id: u64,
        task: String,
        args: Vec<Vec<u8>>,
    },
    Init {
        task: String,
        arg: Vec<u8>,
    },
}

impl OwnedRequest {
    fn borrow(&self) -> Request<'_> {
        match self {
            OwnedRequest::Run { id, task, arg } => Request::Run { id: *id, task, arg },
            OwnedRequest::Chunk { id, task, args } => Request::Chunk {
                id: *id,
                task,
                args: args.iter().map(Vec::as_slice).collect(),
            },
            OwnedRequest::Init { task, arg } => Request::Init { task, arg },
        }
    }
}

#[derive(Clone, Debug)]
enum OwnedOutcome {
    Ok(Vec<u8>),
    Panicked(String),
    DecodeArgs(String, String),
    EncodeResult(String, String),
    UnknownTask(String),
}

impl OwnedOutcome {
    fn borrow(&self) -> Outcome<'_> {
        match self {
            OwnedOutcome::Ok(bytes) => Outcome::Ok(bytes),
            OwnedOutcome::Panicked(m) => Outcome::Panicked(m),
            OwnedOutcome::DecodeArgs(t, r) => Outcome::DecodeArgs {
                type_name: t,
                reason: r,
            },
            OwnedOutcome::EncodeResult(t, r) => Outcome::EncodeResult {
                type_name: t,
                reason: r,
            },
            OwnedOutcome::UnknownTask(name) => Outcome::UnknownTask(name),
        }
    }
}

/// A response that owns its parts.
#[derive(Clone, Debug)]
enum OwnedResponse {
    Done {
        id: u64,
        outcome: OwnedOutcome,
    },
    Chunk {
        id: u64,
        outcomes: Vec<OwnedOutcome>,
    },
    Init(OwnedOutcome),
}

impl OwnedResponse {
    fn borrow(&self) -> Response<'_> {
        match self {
            OwnedResponse::Done { id, outcome } => Response::Done {
                id: *id,
                outcome: outcome.borrow(),
            },
            OwnedResponse::Chunk { id, outcomes } => Response::Chunk {
                id: *id,
                outcomes: outcomes.iter().map(OwnedOutcome::borrow).collect(),
            },
            OwnedResponse::Init(outcome) => Response::Init(outcome.borrow()),
        }
    }
}

/// An argument or a result: a payload's encoding, or any bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        payload().prop_map(|p| p.encode()),
        prop::collection::vec(any::<u8>(), 0..48),
    ]
}

fn request() -> impl Strategy<Value = OwnedRequest> {
    prop_oneof![
        (any::<u64>(), text(), body()).prop_map(|(id, task, arg)| OwnedRequest::Run {
            id,
            task,
            arg
        }),
        (any::<u64>(), text(), prop::collection::vec(body(), 0..5))
            .prop_map(|(id, task, args)| OwnedRequest::Chunk { id, task, args }),
        (text(), body()).prop_map(|(task, arg)| OwnedRequest::Init { task, arg }),
    ]
}

fn outcome() -> impl Strategy<Value = OwnedOutcome> {
    prop_oneof![
        3 => body().prop_map(OwnedOutcome::Ok),
        1 => text().prop_map(OwnedOutcome::Panicked),
        1 => (text(), text()).prop_map(|(t, r)| OwnedOutcome::DecodeArgs(t, r)),
        1 => (text(), text()).prop_map(|(t, r)| OwnedOutcome::EncodeResult(t, r)),
        1 => text().prop_map(OwnedOutcome::UnknownTask),
    ]
}

fn response() -> impl Strategy<Value = OwnedResponse> {
    prop_oneof![
        (any::<u64>(), outcome()).prop_map(|(id, outcome)| OwnedResponse::Done { id, outcome }),
        (any::<u64>(), prop::collection::vec(outcome(), 0..5))
            .prop_map(|(id, outcomes)| OwnedResponse::Chunk { id, outcomes }),
        outcome().prop_map(OwnedResponse::Init),
    ]
}

/// A valid message of any kind: a request, a response, or a payload.
fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        request().prop_map(|r| wire::encode_request(&r.borrow())),
        response().prop_map(|r| wire::encode_response(&r.borrow())),
        payload().prop_map(|p| p.encode()),
    ]
}

// ---- bad input ----

/// Length fields at and past every limit, in each encoding a decoder reads
/// lengths in: the wire's fixed-width little-endian u16 / u32, fixed u64,
/// bincode's varint (a 0xfb..0xfe marker, then 2 / 4 / 8 / 16 bytes) and
/// postcard's LEB128.
const HUGE: &[&[u8]] = &[
    // u16::MAX; u32::MAX; u64::MAX
    &[0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    // DECODE_LIMIT - 1, DECODE_LIMIT, DECODE_LIMIT + 1 as u32
    &[0xff, 0xff, 0xff, 0x3f],
    &[0x00, 0x00, 0x00, 0x40],
    &[0x01, 0x00, 0x00, 0x40],
    // u32::MAX / 5 + 1: a count of outcomes just past what a 4 GiB
    // response could hold (u32::MAX / 4 + 1, for chunk items, is the
    // limit's)
    &[0x34, 0x33, 0x33, 0x33],
    // bincode varints: u16::MAX, u32::MAX, u64::MAX, u128::MAX
    &[0xfb, 0xff, 0xff],
    &[0xfc, 0xff, 0xff, 0xff, 0xff],
    &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff,
    ],
    // bincode varints: DECODE_LIMIT - 1, DECODE_LIMIT, DECODE_LIMIT + 1
    &[0xfc, 0xff, 0xff, 0xff, 0x3f],
    &[0xfc, 0x00, 0x00, 0x00, 0x40],
    &[0xfc, 0x01, 0x00, 0x00, 0x40],
    // LEB128: u64::MAX, one byte too long, DECODE_LIMIT - 1, DECODE_LIMIT
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ],
    &[0xff, 0xff, 0xff, 0xff, 0x03],
    &[0x80, 0x80, 0x80, 0x80, 0x04],
];

fn huge() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(HUGE).prop_map(<[u8]>::to_vec)
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Remove(Index, usize),
    Insert(Index, Vec<u8>),
    /// Writes over the bytes from a position on (a length field, say).
    Overwrite(Index, Vec<u8>),
    /// Repeats a run of bytes in place.
    Repeat(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), 1..16usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<Index>(), huge()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        1 => (any::<Index>(), huge()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1..16usize).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    // A position to cut or insert at (0..=len), and one of a byte (0..len).
    let gap = |i: &Index| i.index(len + 1);
    match mutation {
        Mutation::FlipBit(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
        Mutation::SetByte(i, b) if len > 0 => bytes[i.index(len)] = *b,
        Mutation::Truncate(i) => bytes.truncate(gap(i)),
        Mutation::Remove(i, n) => {
            let at = gap(i);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Insert(i, new) => {
            let at = gap(i);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Overwrite(i, new) => {
            let at = gap(i);
            let end = (at + new.len()).min(len);
            bytes.splice(at..end, new.iter().copied());
        }
        Mutation::Repeat(i, n) => {
            let at = gap(i);
            let run = bytes[at..(at + n).min(len)].to_vec();
            bytes.splice(at..at, run);
        }
        _ => {}
    }
}

/// Arbitrary bytes, bytes behind each tag and an id (to get past the tag
/// checks), and bytes behind a huge length.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let noise = || prop::collection::vec(any::<u8>(), 0..96);
    prop_oneof![
        noise(),
        (0..5u8, any::<u64>(), noise()).prop_map(|(tag, id, rest)| {
            let mut m = vec![tag];
            m.extend_from_slice(&id.to_le_bytes());
            m.extend(rest);
            m
        }),
        (huge(), noise()).prop_map(|(mut m, rest)| {
            m.extend(rest);
            m
        }),
    ]
}

// ---- the properties ----

/// The CI-sized count, or `PROPTEST_CASES / 2000` times it.
fn cases(ci: u32) -> Config {
    let scale = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(1.0, |n| n as f64 / 2000.0);
    Config {
        cases: ((f64::from(ci) * scale).ceil() as u32).max(1),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Any bytes: every decoder answers, within its bound.
    #[test]
    fn arbitrary_bytes(bytes in garbage()) {
        every_decoder(&bytes);
    }

    /// What the pool writes, the worker reads back as it was.
    #[test]
    fn requests_round_trip(request in request()) {
        let bytes = wire::encode_request(&request.borrow());
        prop_assert_eq!(decode_request(&bytes), Ok(request.borrow()));
        worker_path(&bytes);
    }

    /// What a worker writes, the pool reads back as it was.
    #[test]
    fn responses_round_trip(response in response()) {
        let bytes = wire::encode_response(&response.borrow());
        prop_assert_eq!(decode_response(&bytes), Ok(response.borrow()));
        parent_path(&bytes);
    }

    /// What the codec encodes, it decodes as it was.
    #[test]
    fn payloads_round_trip(payload in payload()) {
        let bytes = payload.encode();
        prop_assert_eq!(payload.decode_same(&bytes), Ok(payload.clone()));
        // One byte short, or one too many, is an error.
        if let Some((_, short)) = bytes.split_last() {
            prop_assert!(payload.decode_same(short).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        prop_assert!(payload.decode_same(&long).is_err());
    }

    /// Valid messages of every kind, mutated a few times over.
    #[test]
    fn mutated_messages(
        mut bytes in message(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        for m in &mutations {
            apply(&mut bytes, m);
        }
        every_decoder(&bytes);
    }

    /// The head of one valid message on the tail of another.
    #[test]
    fn spliced_messages(a in message(), b in message(), i in any::<Index>(), j in any::<Index>()) {
        let mut bytes = a[..i.index(a.len() + 1)].to_vec();
        bytes.extend_from_slice(&b[j.index(b.len() + 1)..]);
        every_decoder(&bytes);
    }
}

proptest! {
    #![proptest_config(cases(200))]

    /// A run of a valid payload repeated thousands of times over in place:
    /// in a recursive type, a value nested far deeper than any stack.
    #[test]
    fn deeply_repeated(
        payload in prop_oneof![
            tree().prop_map(Payload::Tree),
            list().prop_map(Payload::List),
            payload(),
        ],
        at in any::<Index>(),
        len in 1..8usize,
        times in 1..6000usize,
    ) {
        let bytes = payload.encode();
        let at = at.index(bytes.len() + 1);
        let run = &bytes[at..(at + len).min(bytes.len())];
        let mut deep = bytes[..at].to_vec();
        for _ in 0..times {
            deep.extend_from_slice(run);
        }
        deep.extend_from_slice(&bytes[at..]);
        let _ = payload.decode_same(&deep);
        let _ = decode_payload::<Tree>(&deep);
        let _ = decode_payload::<List>(&deep);
    }
}

proptest! {
    // Each case decodes the message thousands of times over.
    #![proptest_config(cases(60))]

    /// Every position of a valid message overwritten with every huge
    /// length: whichever byte starts a length field, it is inflated. (Short
    /// messages only: the sweep is quadratic in the length.)
    #[test]
    fn every_field_inflated(
        bytes in message().prop_filter("short enough to sweep", |m| m.len() <= 160),
    ) {
        for at in 0..bytes.len() {
            for field in HUGE {
                let mut bad = bytes.clone();
                let end = (at + field.len()).min(bad.len());
                bad.splice(at..end, field.iter().copied());
                every_decoder(&bad);
            }
        }
    }
}

// ---- fixed cases ----

/// `payload_margin` counts on no payload type's element being larger.
#[test]
fn payload_elements_are_at_most_512_bytes() {
    assert!(size_of::<Record>() <= 512, "{}", size_of::<Record>());
    assert!(size_of::<(String, Vec<u8>)>() <= 512);
    assert!(size_of::<Tree>() <= 512);
}

/// The allocator counts what it should, or the bounds above prove nothing.
#[test]
fn the_counting_allocator_counts() {
    let (v, usage) = measure(|| {
        let mut v = std::hint::black_box(Vec::<u8>::with_capacity(1000));
        v.reserve_exact(3000);
        drop(std::hint::black_box(vec![0u8; 100_000]));
        v
    });
    assert_eq!(usage.count, 3, "{usage:?}");
    assert_eq!(usage.largest, 100_000);
    assert_eq!(usage.live, 3000);
    assert!(usage.peak >= 103_000, "{usage:?}");
    drop(v);
}

/// A chunk whose count is u32::MAX is refused before anything is allocated.
#[test]
fn a_huge_count_allocates_nothing() {
    let mut m = wire::encode_request(&Request::Chunk {
        id: 1,
        task: "t",
        args: vec![],
    });
    let at = m.len() - 4;
    m[at..].copy_from_slice(&u32::MAX.to_le_bytes());
    m.extend_from_slice(&[0; 64]);
    let (result, usage) = measure(|| wire::decode_request(&m).map(drop));
    assert_eq!(result, Err(WireError("a count larger than the message")));
    assert_eq!(usage.count, 0);

    let mut m = wire::encode_response(&Response::Chunk {
        id: 1,
        outcomes: vec![],
    });
    let at = m.len() - 4;
    m[at..].copy_from_slice(&u32::MAX.to_le_bytes());
    let (result, usage) = measure(|| wire::decode_response(&m).map(drop));
    assert_eq!(result, Err(WireError("a count larger than the message")));
    assert_eq!(usage.count, 0);
}

/// A string whose length is the limit, then one past it, in 5 bytes: the
/// limit holds. (bincode allocates the claimed length, zeroed, before it
/// finds the bytes missing: untouched pages, but up to the limit. postcard
/// checks the input first.)
#[test]
fn a_string_as_long_as_the_limit() {
    for (len, bytes) in [
        (DECODE_LIMIT, codec_length(DECODE_LIMIT as u64)),
        (DECODE_LIMIT + 1, codec_length(DECODE_LIMIT as u64 + 1)),
        (usize::MAX, codec_length(u64::MAX)),
    ] {
        let (result, usage) = measure(|| codec::decode::<String>(&bytes).map(drop));
        assert!(result.is_err(), "{len}");
        assert!(usage.largest <= DECODE_LIMIT, "{len}: {usage:?}");
        if cfg!(feature = "postcard") || len > DECODE_LIMIT {
            assert!(usage.largest < 4096, "{len}: {usage:?}");
        }
    }
}

/// `n` as the codec writes a length.
fn codec_length(n: u64) -> Vec<u8> {
    let bytes = codec::encode(&n).unwrap();
    // Both codecs write a usize length as they write a u64.
    assert_eq!(codec::decode::<u64>(&bytes), Ok(n));
    bytes
}

/// `Tree::Node(vec![..])` 5,000 times over, then `Tree::Leaf(0)`: 10,002
/// bytes, the same in both codecs. Before the codec limited the depth
/// (`DECODE_DEPTH_LIMIT`), decoding it overflowed a 2 MiB thread's stack
/// and aborted the process: in the parent, whose handler threads decode
/// results, a corrupt result of a recursive type took the whole program
/// down.
#[test]
fn regression_a_deep_tree_overflowed_the_stack() {
    let mut bytes = [[1_u8, 1]; 5000].concat();
    bytes.extend_from_slice(&[0, 0]);
    let response = wire::encode_response(&Response::Done {
        id: 1,
        outcome: Outcome::Ok(&bytes),
    });
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let Ok(Response::Done {
                outcome: Outcome::Ok(result),
                ..
            }) = decode_response(&response)
            else {
                panic!("the response itself is well-formed");
            };
            let err = decode_payload::<Tree>(result).unwrap_err();
            assert!(err.reason.contains("nests deeper than"), "{err}");
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A value nested as deep as the limit allows decodes within a default
/// thread's 2 MiB of stack, in a debug build too (512 levels of `Tree` or
/// `List` took about 0.6 MiB there, under 0.1 MiB optimised): raise the
/// limit only as far as that holds.
#[test]
fn the_deepest_value_fits_a_threads_stack() {
    let mut tree = Tree::Leaf(7);
    for _ in 0..codec::DECODE_DEPTH_LIMIT / 2 - 1 {
        tree = Tree::Node(vec![tree]);
    }
    let bytes = codec::encode(&tree).unwrap();
    let decoded = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || codec::decode::<Tree>(&bytes).map(|t| t == tree))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(decoded, Ok(true));
}

/// A `Serialize` that fails, or panics, after writing part of itself.
struct HalfWritten {
    panic: bool,
}

impl Serialize for HalfWritten {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeTuple};
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&0xabcd_u32)?;
        if self.panic {
            panic!("half written");
        }
        Err(S::Error::custom("refused half way"))
    }
}

/// The worker encodes each result straight into the response after its
/// header (and, in a chunk, after the outcomes before it). With postcard,
/// `encode_into` moved the response out and dropped it when the result
/// failed to encode, or its `Serialize` panicked: the worker then sent a
/// response that was only the failure's outcome, which the parent refused
/// as malformed ("an unknown outcome kind") and killed the worker for.
#[test]
fn regression_a_failed_encode_keeps_the_message_before_it() {
    for panic in [false, true] {
        let mut out = vec![1, 2, 3];
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            codec::encode_into(&HalfWritten { panic }, &mut out)
        }));
        assert_eq!(result.is_err(), panic);
        assert_eq!(out[..3], [1, 2, 3], "panic: {panic}");
    }
}

/// Nested `Tree::Node`s, each claiming a long vector of trees, with
/// nothing after. With bincode: 255 nodes of 32,768 trees (768 KiB of them
/// reserved ahead each), 1,020 bytes. With postcard, which grants a length
/// only while the rest of the input could hold it: 496 nodes of 859 trees
/// (`Shape::Newtype(859)` repeated, as `deeply_repeated` found it), 1,488
/// bytes.
#[cfg(not(feature = "postcard"))]
const NESTED_NODES: (&[u8], usize) = (&[0x01, 0xfb, 0x00, 0x80], 255);
#[cfg(feature = "postcard")]
const NESTED_NODES: (&[u8], usize) = (&[0x01, 0xdb, 0x06], 496);

/// serde allocates ahead for the length a sequence claims (up to 1 MiB),
/// and each nested sequence did so before the one inside it failed: 200
/// MB reserved for the 1,020 bytes with bincode, 4.3 MB for the 1,488 with
/// postcard (untouched pages, but under a memory limit a failed allocation
/// aborts). Now the lengths granted in one decode add up to at most the
/// input's length.
#[test]
fn regression_nested_lengths_each_reserved_ahead() {
    let (node, times) = NESTED_NODES;
    let bytes = node.repeat(times);
    let (result, usage) = measure(|| codec::decode::<Tree>(&bytes).map(drop));
    assert!(result.is_err());
    assert!(
        usage.peak < 64 * bytes.len() as isize,
        "{} bytes: {usage:?}",
        bytes.len()
    );
}
