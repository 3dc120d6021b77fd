//! The one codec seam: every payload that crosses a process boundary (task
//! arguments, results, and later the pool's own messages) goes through
//! [`encode`] and [`decode`].
//!
//! The default is bincode 2.0.1 with its serde support, as the design names
//! it; the `postcard` feature switches to postcard (the codec ipc-channel
//! itself uses). Decoding is bounded by [`DECODE_LIMIT`], so a corrupt
//! length prefix cannot make us allocate without bound, and by
//! [`DECODE_DEPTH_LIMIT`], so that corrupt bytes read as a recursive type
//! cannot nest the decoder's calls until the thread's stack overflows.
//! Encoding is bounded by the same depth: a value nested deeper than the
//! decoder accepts fails to encode, before it could overflow the encoding
//! thread's stack (a recursive value's `Serialize` recurses once per
//! level), so that an argument fails at `submit` and a result fails its
//! own future, with the caller and the worker alive.
//! The lengths of sequences and maps, which serde takes as a hint of how
//! much to allocate ahead, are granted only up to one element per byte of
//! the input, all of them together: nested sequences cannot each reserve
//! ahead for lengths the input does not hold.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

// The deserializer adapter that bounds a decode's depth and size hints.
mod bounded;
// The serializer adapter that bounds an encode's depth.
mod depth;

/// The most bytes one decoded value may claim (1 GiB). Larger payloads
/// fail with [`CodecError`] instead of allocating.
///
/// ```
/// assert_eq!(concurrent_futures_task_wire::codec::DECODE_LIMIT, 1 << 30);
/// ```
pub const DECODE_LIMIT: usize = 1 << 30;

/// The deepest a value may nest, decoded or encoded: each `Some`, newtype
/// struct, sequence, tuple, struct, map and enum opens a level, and a
/// tuple or struct variant two (so a linked list of `Option<Box<Node>>`
/// takes two per node). Deeper values fail with [`CodecError`] instead of
/// overflowing the decoding or encoding thread's stack, which would abort
/// the process: neither codec limits the depth itself, every byte of a
/// corrupt message can open a level, and a recursive value's `Serialize`
/// recurses once per level. 512 levels take about 0.6 MiB of stack in a
/// debug build (under 0.1 MiB optimised), well inside the 2 MiB of a Rust
/// thread such as the pool's handlers, which decode results. Encoding
/// counts the levels as decoding does, so whatever encodes decodes, as far
/// as its depth goes.
///
/// ```
/// use concurrent_futures_task_wire::codec::{self, DECODE_DEPTH_LIMIT};
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// struct List(Option<Box<List>>);
///
/// // `List` itself, then a `Some` and a `List` per link.
/// let list = |links| (0..links).fold(List(None), |tail, _| List(Some(Box::new(tail))));
/// let deepest = codec::encode(&list(DECODE_DEPTH_LIMIT / 2 - 1)).unwrap();
/// assert!(codec::decode::<List>(&deepest).is_ok());
///
/// // One link more is refused both ways: it does not encode, and its bytes
/// // (a `Some` tag, 1, per link, then `None`, 0, in either codec) do not
/// // decode.
/// let err = codec::encode(&list(DECODE_DEPTH_LIMIT / 2)).unwrap_err();
/// assert!(err.reason.contains("nests deeper than 512 levels"), "{err}");
/// let mut deeper = vec![1; DECODE_DEPTH_LIMIT / 2];
/// deeper.push(0);
/// let err = codec::decode::<List>(&deeper).unwrap_err();
/// assert!(err.reason.contains("nests deeper than 512 levels"), "{err}");
/// ```
pub const DECODE_DEPTH_LIMIT: usize = 512;

/// The reason a value nested past [`DECODE_DEPTH_LIMIT`] gives.
struct TooDeep;

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the value nests deeper than {DECODE_DEPTH_LIMIT} levels")
    }
}

/// Why a payload could not be encoded or decoded. The message names the
/// Rust type and the codec's own reason.
///
/// ```
/// use concurrent_futures_task_wire::codec;
/// let err = codec::decode::<String>(&[0xff, 0xff]).unwrap_err();
/// assert!(err.to_string().contains("alloc::string::String"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    /// `"encode"` or `"decode"`.
    pub direction: &'static str,
    /// `std::any::type_name` of the value.
    pub type_name: &'static str,
    /// What the codec said.
    pub reason: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not {} a value of type {}: {}",
            self.direction, self.type_name, self.reason
        )
    }
}

impl std::error::Error for CodecError {}

fn error<T: ?Sized>(direction: &'static str, reason: impl fmt::Display) -> CodecError {
    let reason = reason.to_string();
    // bincode shows a serde error's own message in its Debug form,
    // `OtherString("...")`: keep the message.
    let reason = match reason
        .strip_prefix("OtherString(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        Some(message) => message.replace("\\\"", "\""),
        None => reason,
    };
    CodecError {
        direction,
        type_name: std::any::type_name::<T>(),
        reason,
    }
}

#[cfg(not(feature = "postcard"))]
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes `value` with the pool's codec. A value nested deeper than
/// [`DECODE_DEPTH_LIMIT`] is refused (the error names its type and the
/// limit) without recursing further into it.
///
/// ```
/// use concurrent_futures_task_wire::codec;
/// let bytes = codec::encode(&(7_u32, String::from("seven"))).unwrap();
/// assert_eq!(codec::decode::<(u32, String)>(&bytes).unwrap(), (7, "seven".into()));
///
/// // 600 vectors, one inside the other: each opens a level.
/// #[derive(serde::Serialize)]
/// struct Nest(Vec<Nest>);
/// let deep = (0..600).fold(Nest(Vec::new()), |inner, _| Nest(vec![inner]));
/// let err = codec::encode(&deep).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     format!("could not encode a value of type {}: the value nests deeper \
///              than 512 levels", std::any::type_name::<Nest>()),
/// );
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let value = depth::limited(value);
    depth::watch(|| {
        #[cfg(not(feature = "postcard"))]
        let bytes = bincode::serde::encode_to_vec(&value, config());
        #[cfg(feature = "postcard")]
        let bytes = postcard::to_stdvec(&value);
        bytes
    })
    .map_err(|e| error::<T>("encode", e))
}

/// Encodes `value` with the pool's codec, appending to `out`. On an error
/// (a value nested too deep, as [`encode`] says, or a `Serialize` that
/// fails) or a panic in the value's `Serialize`, `out` is left as it was.
///
/// ```
/// use concurrent_futures_task_wire::codec;
/// let mut out = vec![1, 2];
/// codec::encode_into(&5_u8, &mut out).unwrap();
/// assert_eq!(codec::decode::<u8>(&out[2..]), Ok(5));
///
/// #[derive(serde::Serialize)]
/// struct List(Option<Box<List>>);
/// let deep = (0..600).fold(List(None), |tail, _| List(Some(Box::new(tail))));
/// assert!(codec::encode_into(&deep, &mut out).is_err());
/// assert_eq!(out.len(), 3);
/// ```
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let value = depth::limited(value);
    // Cuts `out` back to where it was unless the encode succeeds, also when
    // a `Serialize` panics.
    let mut written = Rewind {
        len: out.len(),
        out,
    };
    let out = &mut *written.out;
    depth::watch(|| {
        #[cfg(not(feature = "postcard"))]
        let done = bincode::serde::encode_into_std_write(&value, out, config()).map(drop);
        #[cfg(feature = "postcard")]
        // Written through `&mut out`, so that an error or a panic leaves what
        // was there before (a taken-and-extended `Vec` would be lost with it).
        let done = postcard::to_io(&value, &mut *out).map(drop);
        done
    })
    .map_err(|e| error::<T>("encode", e))?;
    written.len = written.out.len();
    Ok(())
}

/// Truncates `out` to `len` when dropped.
struct Rewind<'a> {
    out: &'a mut Vec<u8>,
    len: usize,
}

impl Drop for Rewind<'_> {
    fn drop(&mut self) {
        self.out.truncate(self.len);
    }
}

/// Decodes a `T` from `bytes`, which must hold exactly one value. Never
/// panics and never allocates more than [`DECODE_LIMIT`] for it, whatever
/// the bytes are.
///
/// ```
/// use concurrent_futures_task_wire::codec;
/// assert!(codec::decode::<u8>(&[]).is_err());
/// ```
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > DECODE_LIMIT {
        return Err(error::<T>(
            "decode",
            format!("{} bytes exceed the limit of {DECODE_LIMIT}", bytes.len()),
        ));
    }
    #[cfg(not(feature = "postcard"))]
    {
        let (value, used) = bounded::watch(bytes.len(), || {
            bincode::serde::seed_decode_from_slice(bounded::Limited::<T>::new(), bytes, config())
        })
        .map_err(|e| error::<T>("decode", e))?;
        if used != bytes.len() {
            return Err(error::<T>(
                "decode",
                format!("{} trailing bytes after the value", bytes.len() - used),
            ));
        }
        Ok(value)
    }
    #[cfg(feature = "postcard")]
    {
        use serde::de::DeserializeSeed;
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        let value = bounded::watch(bytes.len(), || {
            bounded::Limited::<T>::new().deserialize(&mut deserializer)
        })
        .map_err(|e| error::<T>("decode", e))?;
        let rest = deserializer
            .finalize()
            .map_err(|e| error::<T>("decode", e))?;
        if !rest.is_empty() {
            return Err(error::<T>(
                "decode",
                format!("{} trailing bytes after the value", rest.len()),
            ));
        }
        Ok(value)
    }
}
