//! The root mapping shared out among modules: each module's type is deserialized from the keys
//! its fields name, and those fields are read off the type itself.

use serde::de::{self, Visitor};

use super::de::{Context, DeError, MapAccess, NodeDe};
use super::yaml::{Node, Value};

/// Deserializes the part of a root mapping that `T`'s fields name. The other keys are another
/// module's and are skipped without a finding; unknown keys deeper down are collected as usual.
pub fn from_node_section<T: de::DeserializeOwned>(
    node: &Node,
    ctx: &Context,
) -> Result<T, DeError> {
    T::deserialize(SectionDe(NodeDe::new(node, "", ctx)))
}

struct SectionDe<'a>(NodeDe<'a>);

impl<'de> de::Deserializer<'de> for SectionDe<'_> {
    type Error = DeError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let inner = self.0;
        match &inner.node.value {
            Value::Map(_) => visitor
                .visit_map(MapAccess::with_unknown(
                    inner.node,
                    inner.path,
                    inner.ctx,
                    Some((name, fields)),
                    false,
                ))
                .map_err(|e| inner.locate(e)),
            _ => de::Deserializer::deserialize_struct(inner, name, fields, visitor),
        }
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self.0, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The keys of a struct as serde's derive names them, so that a module's top-level keys are
/// its type's fields and nothing else has to list them.
pub fn struct_fields<T: de::DeserializeOwned>() -> &'static [&'static str] {
    let found = std::cell::Cell::new(&[][..]);
    let _ = T::deserialize(FieldProbe(&found));
    found.get()
}

struct FieldProbe<'c>(&'c std::cell::Cell<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = DeError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        self.0.set(fields);
        Err(de::Error::custom("fields probed"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}
