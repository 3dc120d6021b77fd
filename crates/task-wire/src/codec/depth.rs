//! A `serde` serializer adapter that bounds an encode's depth; everything
//! else is passed through to the codec's serializer unchanged.
//!
//! A level opens where the decoder's adapter (`bounded.rs`) opens one for
//! the same value, so that every value that encodes decodes as far as depth
//! goes, and a value the decoder would refuse is refused here, before any
//! of it crosses: `serialize_some`, `serialize_newtype_struct`,
//! `serialize_seq`, `serialize_tuple`, `serialize_tuple_struct`,
//! `serialize_map` and `serialize_struct` open one level each (the
//! decoder's `visit_some`, `visit_newtype_struct`, `visit_seq`,
//! `visit_map`), a unit or newtype variant one (`visit_enum`), and a tuple
//! or struct variant two (`visit_enum`, then `visit_seq` for its fields).
//! Past [`DECODE_DEPTH_LIMIT`] the encode fails instead of recursing
//! further: the value's own `Serialize` recurses once per level, so
//! without the bound a deep enough value overflows the encoding thread's
//! stack, which aborts the process.

use std::cell::Cell;
use std::fmt;

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

use super::{DECODE_DEPTH_LIMIT, TooDeep};

/// Serializes `value` within the depth bound: the top of the adapter.
pub(super) fn limited<T: Serialize + ?Sized>(value: &T) -> Nested<'_, T> {
    Nested {
        value,
        left: DECODE_DEPTH_LIMIT,
    }
}

thread_local! {
    /// Whether the encode in progress on this thread went too deep.
    static TOO_DEEP: Cell<bool> = const { Cell::new(false) };
}

/// Runs an encode; if it failed for its depth, the error says so (a codec
/// may drop the message of the error the adapter raised: postcard does).
pub(super) fn watch<T, E: fmt::Display>(
    encode: impl FnOnce() -> Result<T, E>,
) -> Result<T, impl fmt::Display> {
    // A `Serialize` impl may encode a payload of its own inside.
    let outer = TOO_DEEP.replace(false);
    let result = encode();
    let too_deep = TOO_DEEP.replace(outer);
    result.map_err(|error| TooDeepOr { too_deep, error })
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

/// `levels` down from `left`, or the error.
fn deeper<E: ser::Error>(left: usize, levels: usize) -> Result<usize, E> {
    left.checked_sub(levels).ok_or_else(|| {
        TOO_DEEP.set(true);
        E::custom(TooDeep)
    })
}

/// A value to serialize with `left` levels still allowed below it.
pub(super) struct Nested<'a, T: ?Sized> {
    value: &'a T,
    left: usize,
}

impl<T: Serialize + ?Sized> Serialize for Nested<'_, T> {
    fn serialize<S: Serializer>(&self, inner: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Ser {
            inner,
            left: self.left,
        })
    }
}

/// The codec's serializer with `left` levels still allowed.
struct Ser<S> {
    inner: S,
    left: usize,
}

/// A sequence, tuple, map, struct or variant being serialized, whose
/// elements may open `left` more levels.
struct Compound<C> {
    inner: C,
    left: usize,
}

impl<C> Compound<C> {
    fn nested<'a, T: ?Sized>(&self, value: &'a T) -> Nested<'a, T> {
        Nested {
            value,
            left: self.left,
        }
    }
}

macro_rules! forward_serialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Ser<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward_serialize! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        deeper::<S::Error>(self.left, 1)?;
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        self.inner.serialize_some(&Nested { value, left })
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        self.inner
            .serialize_newtype_struct(name, &Nested { value, left })
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        self.inner
            .serialize_newtype_variant(name, index, variant, &Nested { value, left })
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        let inner = self.inner.serialize_seq(len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        let inner = self.inner.serialize_tuple(len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let left = deeper::<S::Error>(self.left, 2)?;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        let inner = self.inner.serialize_map(len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let left = deeper::<S::Error>(self.left, 1)?;
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let left = deeper::<S::Error>(self.left, 2)?;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(Compound { inner, left })
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C: SerializeSeq> SerializeSeq for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.nested(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: SerializeTuple> SerializeTuple for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.nested(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: SerializeTupleStruct> SerializeTupleStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: SerializeTupleVariant> SerializeTupleVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: SerializeMap> SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let key = self.nested(key);
        self.inner.serialize_key(&key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.nested(value);
        self.inner.serialize_value(&value)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), C::Error> {
        let (key, value) = (self.nested(key), self.nested(value));
        self.inner.serialize_entry(&key, &value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: SerializeStruct> SerializeStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(key, &value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: SerializeStructVariant> SerializeStructVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(key, &value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}
