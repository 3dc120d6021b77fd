//! The messages between the pool (the parent) and a worker process.
//!
//! Every message is one frame on the worker's long-lived channel (the
//! process pool's `channel.rs`); none carries a descriptor. The framing is hand-written,
//! little-endian and length-checked, so that a payload is never copied
//! through serde a second time and a decoder can reject any byte string
//! with an error: it reads only inside the message it was given and
//! allocates at most one `Vec` of slices, bounded by that message's length.
//!
//! ```text
//! request   = tag:u8 id:u64 task_len:u16 task:[u8; task_len] body
//!   RUN   1   body = argument bytes (the rest of the message)
//!   CHUNK 2   body = count:u32 (len:u32 bytes:[u8; len]){count}
//!   INIT  3   body = argument bytes (id is 0)
//! response  = tag:u8 id:u64 body
//!   DONE  1   body = outcome
//!   CHUNK 2   body = count:u32 outcome{count}
//!   INIT  3   body = outcome
//! outcome   = kind:u8 ...
//!   OK            0  len:u32 result bytes
//!   PANICKED      1  text(message)
//!   DECODE_ARGS   2  text(type) text(reason)
//!   ENCODE_RESULT 3  text(type) text(reason)
//!   UNKNOWN_TASK  4  text(task name)
//! text      = len:u32 utf-8 bytes
//! ```
//!
//! Argument and result bytes are the codec's ([`crate::codec`]) encoding of
//! the task's `A` and `R`.

use std::fmt;

/// The tag of a `Run` request (for [`request_header`]).
pub const REQ_RUN: u8 = 1;
/// The tag of a `Chunk` request (for [`request_header`]).
pub const REQ_CHUNK: u8 = 2;
/// The tag of the `Init` request (for [`request_header`]).
pub const REQ_INIT: u8 = 3;

const RESP_DONE: u8 = 1;
const RESP_CHUNK: u8 = 2;
const RESP_INIT: u8 = 3;

const OUT_OK: u8 = 0;
const OUT_PANICKED: u8 = 1;
const OUT_DECODE_ARGS: u8 = 2;
const OUT_ENCODE_RESULT: u8 = 3;
const OUT_UNKNOWN_TASK: u8 = 4;

/// A message that does not parse. Carries what was wrong, for the error
/// that fails the pool or the future.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed message: {}", self.0)
    }
}

impl std::error::Error for WireError {}

/// A decoded request, borrowing from the message bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Run `task` once on `arg`.
    Run {
        /// Matches the response to the job.
        id: u64,
        /// The registered task's name.
        task: &'a str,
        /// The encoded argument.
        arg: &'a [u8],
    },
    /// Run `task` on each of `args`, one outcome per item.
    Chunk {
        /// Matches the response to the job.
        id: u64,
        /// The registered task's name.
        task: &'a str,
        /// The encoded arguments.
        args: Vec<&'a [u8]>,
    },
    /// Run the initializer `task` on `arg` before any task.
    Init {
        /// The registered initializer's name.
        task: &'a str,
        /// The encoded argument.
        arg: &'a [u8],
    },
}

/// What running one item gave, as it travels back.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The encoded result.
    Ok(&'a [u8]),
    /// The task panicked with this message.
    Panicked(&'a str),
    /// The argument did not decode as the task's argument type.
    DecodeArgs {
        /// The argument type.
        type_name: &'a str,
        /// The codec's reason.
        reason: &'a str,
    },
    /// The result could not be encoded.
    EncodeResult {
        /// The result type.
        type_name: &'a str,
        /// The codec's reason.
        reason: &'a str,
    },
    /// The worker binary has no task of this name.
    UnknownTask(&'a str),
}

/// A decoded response.
#[derive(Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// The outcome of a `Run`.
    Done {
        /// The request's id.
        id: u64,
        /// What running it gave.
        outcome: Outcome<'a>,
    },
    /// The outcomes of a `Chunk`, in order.
    Chunk {
        /// The request's id.
        id: u64,
        /// One per argument.
        outcomes: Vec<Outcome<'a>>,
    },
    /// The outcome of an `Init`.
    Init(Outcome<'a>),
}

// ---- writing ----

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("message parts are bounded by the decode limit");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_u32(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// Starts a request: tag, id and task name. The body is appended by the
/// caller (the encoded argument, or [`put_chunk_item`]s after
/// [`put_count`]).
pub fn request_header(out: &mut Vec<u8>, tag: u8, id: u64, task: &str) {
    out.push(tag);
    out.extend_from_slice(&id.to_le_bytes());
    let len = u16::try_from(task.len()).expect("task names are shorter than 64 KiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(task.as_bytes());
}

/// Writes a count (of chunk items or outcomes).
pub fn put_count(out: &mut Vec<u8>, n: usize) {
    put_u32(out, n);
}

/// Appends one chunk item, encoded by `encode` straight into the message.
pub fn put_chunk_item<E>(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode(out)?;
    let len = u32::try_from(out.len() - at - 4).expect("bounded by the decode limit");
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Starts a response to a `Run` (`chunk = false`) or `Chunk` request, or
/// to the `Init` request (`init = true`).
pub fn response_header(out: &mut Vec<u8>, id: u64, chunk: bool, init: bool) {
    out.push(match (init, chunk) {
        (true, _) => RESP_INIT,
        (false, true) => RESP_CHUNK,
        (false, false) => RESP_DONE,
    });
    out.extend_from_slice(&id.to_le_bytes());
}

/// Appends an `OK` outcome whose result bytes `encode` writes straight
/// into the message; if `encode` fails, nothing is left of the attempt.
pub fn put_ok<E>(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let at = out.len();
    out.push(OUT_OK);
    put_chunk_item(out, encode).inspect_err(|_| out.truncate(at))
}

/// Appends a failed outcome.
pub fn put_failure(out: &mut Vec<u8>, outcome: &Outcome<'_>) {
    match outcome {
        Outcome::Ok(bytes) => {
            out.push(OUT_OK);
            put_u32(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        Outcome::Panicked(message) => {
            out.push(OUT_PANICKED);
            put_text(out, message);
        }
        Outcome::DecodeArgs { type_name, reason } => {
            out.push(OUT_DECODE_ARGS);
            put_text(out, type_name);
            put_text(out, reason);
        }
        Outcome::EncodeResult { type_name, reason } => {
            out.push(OUT_ENCODE_RESULT);
            put_text(out, type_name);
            put_text(out, reason);
        }
        Outcome::UnknownTask(name) => {
            out.push(OUT_UNKNOWN_TASK);
            put_text(out, name);
        }
    }
}

/// Encodes a whole request with the writers the pool uses (which write
/// requests piecewise, straight from the typed arguments): the inverse of
/// [`decode_request`]. `Init`'s id is 0. For tests (`tests/wire_fuzz.rs`).
///
/// # Panics
///
/// If the task name is 64 KiB or longer, or a part 4 GiB or longer.
#[doc(hidden)]
pub fn encode_request(request: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match request {
        Request::Run { id, task, arg } => {
            request_header(&mut out, REQ_RUN, *id, task);
            out.extend_from_slice(arg);
        }
        Request::Chunk { id, task, args } => {
            request_header(&mut out, REQ_CHUNK, *id, task);
            put_count(&mut out, args.len());
            for arg in args {
                put_chunk_item(&mut out, copy_in(arg)).unwrap_or_else(|never| match never {});
            }
        }
        Request::Init { task, arg } => {
            request_header(&mut out, REQ_INIT, 0, task);
            out.extend_from_slice(arg);
        }
    }
    out
}

/// Encodes a whole response with the writers the worker uses: the inverse
/// of [`decode_response`]. `Init`'s id is 0. For tests
/// (`tests/wire_fuzz.rs`).
///
/// # Panics
///
/// If a part is 4 GiB or longer.
#[doc(hidden)]
pub fn encode_response(response: &Response<'_>) -> Vec<u8> {
    fn put_outcome(out: &mut Vec<u8>, outcome: &Outcome<'_>) {
        match outcome {
            Outcome::Ok(bytes) => {
                put_ok(out, copy_in(bytes)).unwrap_or_else(|never| match never {})
            }
            failure => put_failure(out, failure),
        }
    }
    let mut out = Vec::new();
    match response {
        Response::Done { id, outcome } => {
            response_header(&mut out, *id, false, false);
            put_outcome(&mut out, outcome);
        }
        Response::Chunk { id, outcomes } => {
            response_header(&mut out, *id, true, false);
            put_count(&mut out, outcomes.len());
            for outcome in outcomes {
                put_outcome(&mut out, outcome);
            }
        }
        Response::Init(outcome) => {
            response_header(&mut out, 0, false, true);
            put_outcome(&mut out, outcome);
        }
    }
    out
}

/// An encoder for [`put_chunk_item`] and [`put_ok`] that copies `bytes`.
fn copy_in(bytes: &[u8]) -> impl FnOnce(&mut Vec<u8>) -> Result<(), std::convert::Infallible> + '_ {
    move |out| {
        out.extend_from_slice(bytes);
        Ok(())
    }
}

// ---- reading ----

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<usize, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]) as usize)
    }

    fn u32(&mut self, what: &'static str) -> Result<usize, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn text(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        let n = self.u32(what)?;
        std::str::from_utf8(self.take(n, what)?).map_err(|_| WireError("text that is not UTF-8"))
    }

    /// A count of items each at least `min_size` bytes long, checked
    /// against what is left so that it cannot ask for a huge allocation.
    fn count(&mut self, min_size: usize, what: &'static str) -> Result<usize, WireError> {
        let n = self.u32(what)?;
        if n.saturating_mul(min_size) > self.rest.len() {
            return Err(WireError("a count larger than the message"));
        }
        Ok(n)
    }

    fn end(&self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError("trailing bytes"))
        }
    }

    fn outcome(&mut self) -> Result<Outcome<'a>, WireError> {
        Ok(match self.u8("an outcome kind")? {
            OUT_OK => {
                let n = self.u32("a result length")?;
                Outcome::Ok(self.take(n, "result bytes")?)
            }
            OUT_PANICKED => Outcome::Panicked(self.text("a panic message")?),
            OUT_DECODE_ARGS => Outcome::DecodeArgs {
                type_name: self.text("a type name")?,
                reason: self.text("a reason")?,
            },
            OUT_ENCODE_RESULT => Outcome::EncodeResult {
                type_name: self.text("a type name")?,
                reason: self.text("a reason")?,
            },
            OUT_UNKNOWN_TASK => Outcome::UnknownTask(self.text("a task name")?),
            _ => return Err(WireError("an unknown outcome kind")),
        })
    }
}

/// Parses a request (the worker's decoder).
pub fn decode_request(bytes: &[u8]) -> Result<Request<'_>, WireError> {
    let mut r = Reader { rest: bytes };
    let tag = r.u8("an empty request")?;
    let id = r.u64("a request id")?;
    let len = r.u16("a task name length")?;
    let task = std::str::from_utf8(r.take(len, "a task name")?)
        .map_err(|_| WireError("a task name that is not UTF-8"))?;
    match tag {
        REQ_RUN => Ok(Request::Run {
            id,
            task,
            arg: r.rest,
        }),
        REQ_INIT => Ok(Request::Init { task, arg: r.rest }),
        REQ_CHUNK => {
            let n = r.count(4, "a chunk length")?;
            let mut args = Vec::with_capacity(n);
            for _ in 0..n {
                let len = r.u32("an item length")?;
                args.push(r.take(len, "item bytes")?);
            }
            r.end()?;
            Ok(Request::Chunk { id, task, args })
        }
        _ => Err(WireError("an unknown request tag")),
    }
}

/// Parses a response (the parent's decoder).
pub fn decode_response(bytes: &[u8]) -> Result<Response<'_>, WireError> {
    let mut r = Reader { rest: bytes };
    let tag = r.u8("an empty response")?;
    let id = r.u64("a response id")?;
    let response = match tag {
        RESP_DONE => Response::Done {
            id,
            outcome: r.outcome()?,
        },
        RESP_INIT => Response::Init(r.outcome()?),
        RESP_CHUNK => {
            // The shortest outcome is a kind and a length: 5 bytes.
            let n = r.count(5, "an outcome count")?;
            let mut outcomes = Vec::with_capacity(n);
            for _ in 0..n {
                outcomes.push(r.outcome()?);
            }
            Response::Chunk { id, outcomes }
        }
        _ => return Err(WireError("an unknown response tag")),
    };
    r.end()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_into(bytes: &[u8]) -> impl FnOnce(&mut Vec<u8>) -> Result<(), ()> + '_ {
        move |out| {
            out.extend_from_slice(bytes);
            Ok(())
        }
    }

    #[test]
    fn requests_round_trip() {
        let mut m = Vec::new();
        request_header(&mut m, REQ_RUN, 7, "a::b");
        m.extend_from_slice(b"xyz");
        assert_eq!(
            decode_request(&m),
            Ok(Request::Run {
                id: 7,
                task: "a::b",
                arg: b"xyz"
            })
        );

        let mut m = Vec::new();
        request_header(&mut m, REQ_CHUNK, 9, "t");
        put_count(&mut m, 3);
        for item in [&b"1"[..], b"", b"333"] {
            put_chunk_item(&mut m, ok_into(item)).unwrap();
        }
        assert_eq!(
            decode_request(&m),
            Ok(Request::Chunk {
                id: 9,
                task: "t",
                args: vec![b"1", b"", b"333"]
            })
        );

        let mut m = Vec::new();
        request_header(&mut m, REQ_INIT, 0, "init");
        assert_eq!(
            decode_request(&m),
            Ok(Request::Init {
                task: "init",
                arg: b""
            })
        );
    }

    #[test]
    fn responses_round_trip() {
        let mut m = Vec::new();
        response_header(&mut m, 3, true, false);
        put_count(&mut m, 5);
        put_ok(&mut m, ok_into(b"r")).unwrap();
        put_failure(&mut m, &Outcome::Panicked("boom"));
        put_failure(
            &mut m,
            &Outcome::DecodeArgs {
                type_name: "u8",
                reason: "eof",
            },
        );
        put_failure(
            &mut m,
            &Outcome::EncodeResult {
                type_name: "T",
                reason: "no",
            },
        );
        put_failure(&mut m, &Outcome::UnknownTask("x::y"));
        assert_eq!(
            decode_response(&m),
            Ok(Response::Chunk {
                id: 3,
                outcomes: vec![
                    Outcome::Ok(b"r"),
                    Outcome::Panicked("boom"),
                    Outcome::DecodeArgs {
                        type_name: "u8",
                        reason: "eof"
                    },
                    Outcome::EncodeResult {
                        type_name: "T",
                        reason: "no"
                    },
                    Outcome::UnknownTask("x::y"),
                ]
            })
        );
    }

    #[test]
    fn a_failed_encode_leaves_no_trace() {
        let mut m = Vec::new();
        response_header(&mut m, 1, false, false);
        let before = m.clone();
        assert_eq!(
            put_ok(&mut m, |out: &mut Vec<u8>| {
                out.extend_from_slice(b"partial");
                Err("nope")
            }),
            Err("nope")
        );
        assert_eq!(m, before);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error() {
        let mut m = Vec::new();
        response_header(&mut m, 3, true, false);
        put_count(&mut m, 2);
        put_ok(&mut m, ok_into(b"result")).unwrap();
        put_failure(&mut m, &Outcome::Panicked("boom"));
        for cut in 0..m.len() {
            assert!(decode_response(&m[..cut]).is_err(), "cut at {cut}");
        }
        // A huge count is refused before anything is allocated for it.
        let mut huge = Vec::new();
        response_header(&mut huge, 1, true, false);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_response(&huge),
            Err(WireError("a count larger than the message"))
        );
        let mut huge = Vec::new();
        request_header(&mut huge, REQ_CHUNK, 1, "t");
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_request(&huge).is_err());
        // Flipping any single byte never panics.
        for i in 0..m.len() {
            for bit in 0..8 {
                let mut bad = m.clone();
                bad[i] ^= 1 << bit;
                let _ = decode_response(&bad);
                let _ = decode_request(&bad);
            }
        }
        assert_eq!(
            decode_request(b"\x09\0\0\0\0\0\0\0\0\0\0"),
            Err(WireError("an unknown request tag"))
        );
    }
}
