//! The encoder's depth bound: a value nested deeper than
//! [`DECODE_DEPTH_LIMIT`] fails to encode with an error that names its type
//! and the limit, writes nothing, and does not overflow the encoding
//! thread's stack however deep it is; and the encoder counts levels exactly
//! as the decoder does, so the deepest value that encodes decodes, and one
//! level more is refused both ways.
//!
//! The deep values here are 100,000 levels deep. Each type drops itself
//! with a loop: the compiler's recursive drop would overflow the stack
//! first, and these tests are about the codec, not about `Drop`.

use std::any::type_name;
use std::collections::BTreeMap;

use concurrent_futures_task_wire::codec::{self, CodecError, DECODE_DEPTH_LIMIT};
use concurrent_futures_task_wire::registry::{InvokeError, invoke};
use serde::{Deserialize, Serialize};

/// Deeper than any stack holds: 100,000 levels took several MiB of stack
/// to encode, past the 8 MiB of a main thread in a debug build.
const DEEP: usize = 100_000;

/// Every encode below runs on a thread with this much stack, Rust's
/// default for spawned threads (the pool's handler threads have it).
const STACK: usize = 2 << 20;

/// A boxed linked list: a unit variant ends it, each link is a newtype
/// variant. One level per link, and one for `Nil`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum List {
    Nil,
    Cons(Box<List>),
}

impl List {
    fn with_links(n: usize) -> List {
        (0..n).fold(List::Nil, |tail, _| List::Cons(Box::new(tail)))
    }
}

impl Drop for List {
    fn drop(&mut self) {
        let List::Cons(next) = self else { return };
        // Each link is dropped with `Nil` as its tail: no recursion.
        let mut link = std::mem::replace(&mut **next, List::Nil);
        while let List::Cons(next) = &mut link {
            let below = std::mem::replace(&mut **next, List::Nil);
            link = below;
        }
    }
}

/// `Vec<Vec<…>>` built through a recursive enum: two levels per `Many`
/// (the variant and the sequence), one for `Leaf`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Nest {
    Leaf(u8),
    Many(Vec<Nest>),
}

impl Nest {
    fn with_links(n: usize) -> Nest {
        (0..n).fold(Nest::Leaf(7), |inner, _| Nest::Many(vec![inner]))
    }
}

impl Drop for Nest {
    fn drop(&mut self) {
        let mut below = Vec::new();
        if let Nest::Many(children) = self {
            below.append(children);
        }
        while let Some(mut nest) = below.pop() {
            if let Nest::Many(children) = &mut nest {
                below.append(children);
            }
        }
    }
}

/// Runs `f` on a thread with [`STACK`] bytes of stack and returns what it
/// returns (an overflow there would abort this test binary).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .expect("a thread")
        .join()
        .expect("the encode did not panic")
}

/// Asserts that `err` is the depth refusal of an encode of `T`.
#[track_caller]
fn assert_too_deep<T>(err: &CodecError) {
    assert_eq!(
        err,
        &CodecError {
            direction: "encode",
            type_name: type_name::<T>(),
            reason: format!("the value nests deeper than {DECODE_DEPTH_LIMIT} levels"),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "could not encode a value of type {}: the value nests deeper than 512 levels",
            type_name::<T>()
        )
    );
}

#[test]
fn a_deep_list_fails_to_encode_and_writes_nothing() {
    on_small_stack(|| {
        let list = List::with_links(DEEP);
        assert_too_deep::<List>(&codec::encode(&list).unwrap_err());
        let mut out = vec![9, 8, 7];
        assert_too_deep::<List>(&codec::encode_into(&list, &mut out).unwrap_err());
        assert_eq!(out, [9, 8, 7], "nothing written");
        // Behind a reference and in a tuple, the outer type is named.
        let err = codec::encode(&(1_u8, &list)).unwrap_err();
        assert_too_deep::<(u8, &List)>(&err);
    });
}

#[test]
fn deep_nested_vectors_fail_to_encode_and_write_nothing() {
    on_small_stack(|| {
        let nest = Nest::with_links(DEEP);
        assert_too_deep::<Nest>(&codec::encode(&nest).unwrap_err());
        let mut out = Vec::new();
        assert_too_deep::<Nest>(&codec::encode_into(&nest, &mut out).unwrap_err());
        assert!(out.is_empty(), "nothing written: {} bytes", out.len());
    });
}

/// The worker's path: `invoke` runs the task and encodes its result; a
/// result too deep is `EncodeResult` naming the result's type, with
/// nothing written after what `out` held.
#[test]
fn a_deep_result_fails_in_invoke() {
    fn deep_list(n: u32) -> List {
        List::with_links(n as usize)
    }
    on_small_stack(|| {
        let arg = codec::encode(&(DEEP as u32)).unwrap();
        let mut out = vec![1, 2, 3];
        match invoke(deep_list, &arg, &mut out) {
            Err(InvokeError::EncodeResult(err)) => assert_too_deep::<List>(&err),
            other => panic!("expected EncodeResult, got {other:?}"),
        }
        assert_eq!(out, [1, 2, 3]);
        // A shallow result of the same type still encodes.
        let arg = codec::encode(&3_u32).unwrap();
        invoke(deep_list, &arg, &mut out).unwrap();
        assert_eq!(codec::decode::<List>(&out[3..]), Ok(List::with_links(3)));
    });
}

/// A recursive shape: its bytes per link and levels per link, its last
/// element's bytes and levels, and its value with `n` links.
struct Shape {
    name: &'static str,
    link: &'static [u8],
    link_levels: usize,
    end: &'static [u8],
    end_levels: usize,
    check: fn(usize, &[u8]) -> Both,
}

/// What encoding a value gave, and what decoding its expected bytes gave.
type Both = (Result<Vec<u8>, CodecError>, Result<(), CodecError>);

/// Encodes `T` with `n` links (made by `make`) and decodes `bytes` as `T`.
fn check<T>(make: impl Fn(usize) -> T, n: usize, bytes: &[u8]) -> Both
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let value = make(n);
    let encoded = codec::encode(&value);
    let decoded = codec::decode::<T>(bytes).map(|back| assert_eq!(back, value));
    (encoded, decoded)
}

/// A newtype of `Some(Box(…))` per link: two levels each; the last one,
/// around `None`, one.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Options(Option<Box<Options>>);

/// A tuple variant per link: two levels each.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Pairs {
    End,
    Pair(u8, Box<Pairs>),
}

/// A struct variant per link: two levels each.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Records {
    End,
    Record { tag: u8, next: Box<Records> },
}

/// A one-entry map per link: two levels each (the variant, the map).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Maps {
    End,
    Map(BTreeMap<u8, Maps>),
}

/// A struct holding a tuple per link: two levels each.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Tuples {
    next: Option<(u8, Box<Tuples>)>,
}

/// Every shape, as both codecs write it: a variant index, a length and an
/// option's tag are one byte each while small, a `u8` is its byte.
const SHAPES: &[Shape] = &[
    Shape {
        name: "List",
        link: &[1],
        link_levels: 1,
        end: &[0],
        end_levels: 1,
        check: |n, b| check(List::with_links, n, b),
    },
    Shape {
        name: "Nest",
        link: &[1, 1],
        link_levels: 2,
        end: &[0, 7],
        end_levels: 1,
        check: |n, b| check(Nest::with_links, n, b),
    },
    Shape {
        name: "Option<Box<_>> in a newtype",
        link: &[1],
        link_levels: 2,
        end: &[0],
        end_levels: 1,
        check: |n, b| {
            let make = |n| (0..n).fold(Options(None), |t, _| Options(Some(Box::new(t))));
            check(make, n, b)
        },
    },
    Shape {
        name: "Pairs",
        link: &[1, 5],
        link_levels: 2,
        end: &[0],
        end_levels: 1,
        check: |n, b| {
            let make = |n| (0..n).fold(Pairs::End, |t, _| Pairs::Pair(5, Box::new(t)));
            check(make, n, b)
        },
    },
    Shape {
        name: "Records",
        link: &[1, 5],
        link_levels: 2,
        end: &[0],
        end_levels: 1,
        check: |n, b| {
            let make = |n| {
                (0..n).fold(Records::End, |t, _| Records::Record {
                    tag: 5,
                    next: Box::new(t),
                })
            };
            check(make, n, b)
        },
    },
    Shape {
        name: "Maps",
        link: &[1, 1, 5],
        link_levels: 2,
        end: &[0],
        end_levels: 1,
        check: |n, b| {
            let make = |n| (0..n).fold(Maps::End, |t, _| Maps::Map(BTreeMap::from([(5, t)])));
            check(make, n, b)
        },
    },
    Shape {
        name: "Tuples",
        link: &[1, 5],
        link_levels: 3,
        end: &[0],
        end_levels: 1,
        check: |n, b| {
            let make = |n| {
                (0..n).fold(Tuples { next: None }, |t, _| Tuples {
                    next: Some((5, Box::new(t))),
                })
            };
            check(make, n, b)
        },
    },
];

/// For every shape: the value with the most links that fit in
/// [`DECODE_DEPTH_LIMIT`] encodes to the expected bytes, which decode back
/// to it; one link more fails to encode, and its bytes fail to decode,
/// both for their depth. (With 2 levels per link the deepest value that
/// fits may use 511 levels; the shapes with 1 level per link reach 512.)
#[test]
fn the_deepest_value_round_trips_and_one_level_more_is_refused_both_ways() {
    on_small_stack(|| {
        for shape in SHAPES {
            let fits = (DECODE_DEPTH_LIMIT - shape.end_levels) / shape.link_levels;
            let bytes = |n: usize| [shape.link.repeat(n), shape.end.to_vec()].concat();

            let (encoded, decoded) = (shape.check)(fits, &bytes(fits));
            assert_eq!(encoded.as_deref(), Ok(&bytes(fits)[..]), "{}", shape.name);
            assert_eq!(decoded, Ok(()), "{}", shape.name);

            let (encoded, decoded) = (shape.check)(fits + 1, &bytes(fits + 1));
            let (encoded, decoded) = (encoded.unwrap_err(), decoded.unwrap_err());
            for err in [&encoded, &decoded] {
                assert!(
                    err.reason.contains("nests deeper than 512 levels"),
                    "{}: {err}",
                    shape.name
                );
            }
        }
    });
}

/// The limit is reached exactly: 512 levels encode, 513 do not.
#[test]
fn exactly_the_limit_encodes() {
    on_small_stack(|| {
        let at_limit = List::with_links(DECODE_DEPTH_LIMIT - 1);
        let bytes = codec::encode(&at_limit).expect("512 levels encode");
        assert_eq!(codec::decode::<List>(&bytes), Ok(at_limit));
        let past = List::with_links(DECODE_DEPTH_LIMIT);
        assert_too_deep::<List>(&codec::encode(&past).unwrap_err());
    });
}
