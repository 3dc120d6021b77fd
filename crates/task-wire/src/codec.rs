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
//! The lengths of sequences and maps, which serde takes as a hint of how
//! much to allocate ahead, are granted only up to one element per byte of
//! the input, all of them together: nested sequences cannot each reserve
//! ahead for lengths the input does not hold.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most bytes one decoded value may claim (1 GiB). Larger payloads
/// fail with [`CodecError`] instead of allocating.
///
/// ```
/// assert_eq!(concurrent_futures_task_wire::codec::DECODE_LIMIT, 1 << 30);
/// ```
pub const DECODE_LIMIT: usize = 1 << 30;

/// The deepest a decoded value may nest: each `Some`, newtype struct,
/// sequence, tuple, struct, map and enum opens a level (so a linked list
/// of `Option<Box<Node>>` takes two per node). Deeper values fail with
/// [`CodecError`] instead of overflowing the decoding thread's stack, which
/// would abort the process: neither codec limits the depth itself, and
/// every byte of a corrupt message can open a level. 512 levels take about
/// 0.6 MiB of stack in a debug build (under 0.1 MiB optimised), well inside
/// the 2 MiB of a Rust thread such as the pool's handlers, which decode
/// results.
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
/// let deeper = codec::encode(&list(DECODE_DEPTH_LIMIT / 2)).unwrap();
/// let err = codec::decode::<List>(&deeper).unwrap_err();
/// assert!(err.reason.contains("nests deeper than"), "{err}");
/// ```
pub const DECODE_DEPTH_LIMIT: usize = 512;

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

/// Encodes `value` with the pool's codec.
///
/// ```
/// use concurrent_futures_task_wire::codec;
/// let bytes = codec::encode(&(7_u32, String::from("seven"))).unwrap();
/// assert_eq!(codec::decode::<(u32, String)>(&bytes).unwrap(), (7, "seven".into()));
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    #[cfg(not(feature = "postcard"))]
    let bytes = bincode::serde::encode_to_vec(value, config()).map_err(|e| error::<T>("encode", e));
    #[cfg(feature = "postcard")]
    let bytes = postcard::to_stdvec(value).map_err(|e| error::<T>("encode", e));
    bytes
}

/// Encodes `value` with the pool's codec, appending to `out` (which is
/// left with a partial value on error: callers truncate).
///
/// ```
/// use concurrent_futures_task_wire::codec;
/// let mut out = vec![1, 2];
/// codec::encode_into(&5_u8, &mut out).unwrap();
/// assert_eq!(codec::decode::<u8>(&out[2..]), Ok(5));
/// ```
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    #[cfg(not(feature = "postcard"))]
    let done = bincode::serde::encode_into_std_write(value, out, config())
        .map(drop)
        .map_err(|e| error::<T>("encode", e));
    #[cfg(feature = "postcard")]
    // Written through `&mut out`, so that an error or a panic leaves what
    // was there before (a taken-and-extended `Vec` would be lost with it).
    let done = postcard::to_io(value, &mut *out)
        .map(drop)
        .map_err(|e| error::<T>("encode", e));
    done
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

/// A `serde` deserializer adapter that bounds what a decode may do beyond
/// what the codec bounds; everything else is passed through unchanged.
///
/// * Depth: a level opens wherever a visitor is handed something to
///   deserialize more from (`visit_some`, `visit_newtype_struct`,
///   `visit_seq`, `visit_map`, `visit_enum`); past [`DECODE_DEPTH_LIMIT`]
///   the decode fails. Each wrapper carries the levels still allowed below
///   it.
/// * Size hints: the length of a sequence or a map is a hint from which
///   serde allocates ahead (up to 1 MiB each). The hints granted in one
///   decode add up to at most the input's length, so that a corrupt length
///   in every level of a nested value cannot make each level reserve ahead.
///   A value that decodes has an input byte for each element at least
///   (unless its elements encode to nothing), so its hints are granted in
///   full; a hint cut short only means a `Vec` grows as it fills.
mod bounded {
    use std::cell::Cell;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{
        self, Deserialize, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
        VariantAccess, Visitor,
    };

    use super::DECODE_DEPTH_LIMIT;

    /// Deserializes a `T` within the bounds: the top of the adapter.
    pub(super) struct Limited<T>(PhantomData<fn() -> T>);

    impl<T> Limited<T> {
        pub(super) fn new() -> Self {
            Limited(PhantomData)
        }
    }

    impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Limited<T> {
        type Value = T;
        fn deserialize<D: Deserializer<'de>>(self, inner: D) -> Result<T, D::Error> {
            T::deserialize(De {
                inner,
                left: DECODE_DEPTH_LIMIT,
            })
        }
    }

    /// The decode in progress on this thread.
    #[derive(Clone, Copy)]
    struct Decode {
        /// Whether it went too deep.
        too_deep: bool,
        /// How many more elements size hints may announce.
        hints_left: usize,
    }

    thread_local! {
        static DECODE: Cell<Decode> = const {
            Cell::new(Decode { too_deep: false, hints_left: 0 })
        };
    }

    /// The error past the limit.
    struct TooDeep;

    impl fmt::Display for TooDeep {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "the value nests deeper than {DECODE_DEPTH_LIMIT} levels")
        }
    }

    /// Runs a decode of `input_len` bytes; if it failed for its depth, the
    /// error says so (a codec may drop the message of the error the adapter
    /// raised: postcard does).
    pub(super) fn watch<T, E: fmt::Display>(
        input_len: usize,
        decode: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, impl fmt::Display> {
        // A `Deserialize` impl may decode a payload of its own inside.
        let outer = DECODE.replace(Decode {
            too_deep: false,
            hints_left: input_len,
        });
        let result = decode();
        let too_deep = DECODE.replace(outer).too_deep;
        result.map_err(|e| TooDeepOr { too_deep, error: e })
    }

    struct TooDeepOr<E> {
        too_deep: bool,
        error: E,
    }

    impl<E: fmt::Display> fmt::Display for TooDeepOr<E> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.too_deep {
                TooDeep.fmt(f)
            } else {
                self.error.fmt(f)
            }
        }
    }

    /// As much of a size hint as is left to grant.
    fn grant(hint: Option<usize>) -> Option<usize> {
        let hint = hint?;
        let mut decode = DECODE.get();
        let granted = hint.min(decode.hints_left);
        decode.hints_left -= granted;
        DECODE.set(decode);
        Some(granted)
    }

    /// One level down from `left`, or the error.
    fn deeper<E: de::Error>(left: usize) -> Result<usize, E> {
        left.checked_sub(1).ok_or_else(|| {
            DECODE.set(Decode {
                too_deep: true,
                ..DECODE.get()
            });
            E::custom(TooDeep)
        })
    }

    struct De<D> {
        inner: D,
        left: usize,
    }

    struct Vis<V> {
        inner: V,
        left: usize,
    }

    struct Seed<S> {
        inner: S,
        left: usize,
    }

    struct Seq<A> {
        inner: A,
        left: usize,
    }

    struct Map<A> {
        inner: A,
        left: usize,
    }

    struct Enum<A> {
        inner: A,
        left: usize,
    }

    struct Variant<A> {
        inner: A,
        left: usize,
    }

    macro_rules! forward_deserialize {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* Vis { inner: visitor, left: self.left })
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<D> {
        type Error = D::Error;

        forward_deserialize! {
            deserialize_any();
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_i128();
            deserialize_u8();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_u128();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_bytes();
            deserialize_byte_buf();
            deserialize_option();
            deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str);
            deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_identifier();
            deserialize_ignored_any();
        }

        fn is_human_readable(&self) -> bool {
            self.inner.is_human_readable()
        }
    }

    macro_rules! forward_visit {
        ($($method:ident($ty:ty);)*) => {$(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*};
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.inner.expecting(f)
        }

        forward_visit! {
            visit_bool(bool);
            visit_i8(i8);
            visit_i16(i16);
            visit_i32(i32);
            visit_i64(i64);
            visit_i128(i128);
            visit_u8(u8);
            visit_u16(u16);
            visit_u32(u32);
            visit_u64(u64);
            visit_u128(u128);
            visit_f32(f32);
            visit_f64(f64);
            visit_char(char);
            visit_str(&str);
            visit_borrowed_str(&'de str);
            visit_string(String);
            visit_bytes(&[u8]);
            visit_borrowed_bytes(&'de [u8]);
            visit_byte_buf(Vec<u8>);
        }

        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.inner.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
            let left = deeper(self.left)?;
            self.inner.visit_some(De { inner, left })
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(
            self,
            inner: D,
        ) -> Result<V::Value, D::Error> {
            let left = deeper(self.left)?;
            self.inner.visit_newtype_struct(De { inner, left })
        }

        fn visit_seq<A: SeqAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
            let left = deeper(self.left)?;
            self.inner.visit_seq(Seq { inner, left })
        }

        fn visit_map<A: MapAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
            let left = deeper(self.left)?;
            self.inner.visit_map(Map { inner, left })
        }

        fn visit_enum<A: EnumAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
            let left = deeper(self.left)?;
            self.inner.visit_enum(Enum { inner, left })
        }
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
        type Value = S::Value;
        fn deserialize<D: Deserializer<'de>>(self, inner: D) -> Result<S::Value, D::Error> {
            self.inner.deserialize(De {
                inner,
                left: self.left,
            })
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.inner.next_element_seed(Seed {
                inner: seed,
                left: self.left,
            })
        }

        fn size_hint(&self) -> Option<usize> {
            grant(self.inner.size_hint())
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.inner.next_key_seed(Seed {
                inner: seed,
                left: self.left,
            })
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.inner.next_value_seed(Seed {
                inner: seed,
                left: self.left,
            })
        }

        fn next_entry_seed<K: DeserializeSeed<'de>, T: DeserializeSeed<'de>>(
            &mut self,
            key: K,
            value: T,
        ) -> Result<Option<(K::Value, T::Value)>, A::Error> {
            let left = self.left;
            self.inner
                .next_entry_seed(Seed { inner: key, left }, Seed { inner: value, left })
        }

        fn size_hint(&self) -> Option<usize> {
            grant(self.inner.size_hint())
        }
    }

    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
        type Error = A::Error;
        type Variant = Variant<A::Variant>;

        fn variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<(T::Value, Self::Variant), A::Error> {
            let left = self.left;
            let (tag, inner) = self.inner.variant_seed(Seed { inner: seed, left })?;
            Ok((tag, Variant { inner, left }))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
        type Error = A::Error;

        fn unit_variant(self) -> Result<(), A::Error> {
            self.inner.unit_variant()
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.inner.newtype_variant_seed(Seed {
                inner: seed,
                left: self.left,
            })
        }

        fn tuple_variant<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.inner.tuple_variant(
                len,
                Vis {
                    inner: visitor,
                    left: self.left,
                },
            )
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.inner.struct_variant(
                fields,
                Vis {
                    inner: visitor,
                    left: self.left,
                },
            )
        }
    }
}
