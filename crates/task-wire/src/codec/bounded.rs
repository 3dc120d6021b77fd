//! A `serde` deserializer adapter that bounds what a decode may do beyond
//! what the codec bounds; everything else is passed through unchanged.
//!
//! * Depth: a level opens wherever a visitor is handed something to
//!   deserialize more from (`visit_some`, `visit_newtype_struct`,
//!   `visit_seq`, `visit_map`, `visit_enum`); past [`DECODE_DEPTH_LIMIT`]
//!   the decode fails. Each wrapper carries the levels still allowed below
//!   it.
//! * Size hints: the length of a sequence or a map is a hint from which
//!   serde allocates ahead (up to 1 MiB each). The hints granted in one
//!   decode add up to at most the input's length, so that a corrupt length
//!   in every level of a nested value cannot make each level reserve ahead.
//!   A value that decodes has an input byte for each element at least
//!   (unless its elements encode to nothing), so its hints are granted in
//!   full; a hint cut short only means a `Vec` grows as it fills.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::{DECODE_DEPTH_LIMIT, TooDeep};

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

    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
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

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
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

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            left: self.left,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
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
