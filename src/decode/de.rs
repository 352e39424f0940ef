//! A serde `Deserializer` over the spanned YAML tree.
//!
//! It is what lets the typed model stay the one description of the format (serde derives plus
//! schemars) while every finding still points at `LINE:COL`:
//! - each node visited is recorded with its path (`apt_sources[1].keyid`), so checks that run
//!   on typed values can find where a value was written;
//! - a struct's unknown keys are not handed to serde (which would either ignore them silently or
//!   fail the whole document) but collected with their position, for a warning;
//! - scalars follow PyYAML's YAML 1.1 reading, as cloud-init does, except that a number written
//!   where text is expected is the text as written (`keyid: 01234567` keeps its zero, `version:
//!   2.10` does not become 2.1).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::raw::RAW_SCALAR;
use super::yaml::{Node, Pos, Resolved, Value};

pub use super::raw::{RawScalar, ScalarKind};
pub use super::section::{from_node_section, struct_fields};

/// A key that the target struct does not have.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownKey {
    /// The struct's Rust name, e.g. `CloudConfig`.
    pub within: &'static str,
    /// The keys the struct does have, for suggestions.
    pub expected: &'static [&'static str],
    pub key: String,
    pub path: String,
    pub pos: Pos,
}

/// What a deserialization run learned besides the value.
#[derive(Debug, Default)]
pub struct Context {
    /// Every visited node in visiting order; hashed into `index` only when a position is asked
    /// for (a finding), so a clean document of 20,000 entries never pays for the hashing.
    visited: RefCell<Vec<(String, Pos)>>,
    index: RefCell<HashMap<String, Pos>>,
    unknown: RefCell<Vec<UnknownKey>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Where the value at `path` was written.
    pub fn pos(&self, path: &str) -> Option<Pos> {
        let mut index = self.index.borrow_mut();
        // In visiting order, so that a path visited twice keeps its last position.
        index.extend(self.visited.borrow_mut().drain(..));
        index.get(path).copied()
    }

    pub fn take_unknown(&self) -> Vec<UnknownKey> {
        std::mem::take(&mut self.unknown.borrow_mut())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DeError {
    pub pos: Option<Pos>,
    pub path: String,
    pub message: String,
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            pos: None,
            path: String::new(),
            message: msg.to_string(),
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let found = match unexp {
            de::Unexpected::Bool(b) => format!("a boolean ({b})"),
            de::Unexpected::Str(s) => format!("text ({s:?})"),
            de::Unexpected::Seq => "a list".into(),
            de::Unexpected::Map => "a mapping".into(),
            de::Unexpected::Unit | de::Unexpected::Option => "nothing (null)".into(),
            de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) => "an integer".into(),
            de::Unexpected::Float(_) => "a number".into(),
            other => other.to_string(),
        };
        Self::custom(format_args!("expected {exp}, found {found}"))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format_args!("missing required key `{field}`"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let list = expected
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Self::custom(format_args!(
            "unknown value `{variant}`, expected one of {list}"
        ))
    }
}

/// Appends a key to a path, quoting keys that would make the path ambiguous.
pub fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// Deserializes one node at `path`.
#[derive(Clone, Copy)]
pub struct NodeDe<'a> {
    pub(super) node: &'a Node,
    pub(super) path: &'a str,
    pub(super) ctx: &'a Context,
}

impl<'a> NodeDe<'a> {
    pub fn new(node: &'a Node, path: &'a str, ctx: &'a Context) -> NodeDe<'a> {
        ctx.visited.borrow_mut().push((path.to_owned(), node.pos));
        NodeDe { node, path, ctx }
    }

    pub(super) fn locate(&self, mut err: DeError) -> DeError {
        if err.pos.is_none() {
            err.pos = Some(self.node.pos);
            err.path = self.path.to_owned();
        }
        err
    }

    fn error(&self, message: impl fmt::Display) -> DeError {
        DeError {
            pos: Some(self.node.pos),
            path: self.path.to_owned(),
            message: message.to_string(),
        }
    }

    fn expected(&self, what: &str) -> DeError {
        self.error(format_args!("expected {what}, found {}", self.describe()))
    }

    fn describe(&self) -> String {
        match &self.node.value {
            Value::Scalar(s) if s.resolve() == Resolved::Null => "nothing (null)".into(),
            Value::Scalar(s) => format!("{} ({:?})", s.resolve().describe(), short(&s.text)),
            _ => self.node.describe().into(),
        }
    }

    /// The text of a scalar read as a string: numbers as written, booleans and null refused
    /// (PyYAML would hand cloud-init a bool or None there).
    fn text(&self) -> Result<&'a str, DeError> {
        match &self.node.value {
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => Err(self.error("expected text, found nothing (null)")),
                Resolved::Bool(_) => Err(self.error(format_args!(
                    "expected text, found a boolean ({:?}); quote it if you mean the text",
                    s.text
                ))),
                _ => Ok(s.text.as_str()),
            },
            _ => Err(self.expected("text")),
        }
    }

    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        match &self.node.value {
            Value::Scalar(s) if s.resolve() == Resolved::Int => s
                .text
                .replace('_', "")
                .parse()
                .map_err(|_| self.expected(what)),
            _ => Err(self.expected(what)),
        }
    }
}

fn short(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int => match s.text.parse::<i64>() {
                    Ok(n) => visitor.visit_i64(n),
                    Err(_) => visitor.visit_str(&s.text),
                },
                Resolved::Float => match s.text.parse::<f64>() {
                    Ok(f) => visitor.visit_f64(f),
                    Err(_) => visitor.visit_str(&s.text),
                },
                Resolved::Str => visitor.visit_str(&s.text),
            },
            Value::Seq(items) => visitor.visit_seq(SeqAccess::new(items, self.path, self.ctx)),
            Value::Map(_) => {
                visitor.visit_map(MapAccess::new(self.node, self.path, self.ctx, None))
            }
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar(s) => match s.resolve() {
                Resolved::Bool(b) => visitor.visit_bool(b).map_err(|e| self.locate(e)),
                _ => Err(self.expected("true or false")),
            },
            _ => Err(self.expected("true or false")),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.number::<u64>("a whole number")?;
        visitor.visit_u64(n).map_err(|e| self.locate(e))
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.number::<i64>("a whole number")?;
        visitor.visit_i64(n).map_err(|e| self.locate(e))
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.text()?;
        let f = text
            .replace('_', "")
            .parse::<f64>()
            .map_err(|_| self.expected("a number"))?;
        visitor.visit_f64(f).map_err(|e| self.locate(e))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.text()?;
        visitor.visit_str(text).map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none().map_err(|e| self.locate(e))
        } else {
            visitor.visit_some(self).map_err(|e| self.locate(e))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit().map_err(|e| self.locate(e))
        } else {
            Err(self.expected("nothing (null)"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == RAW_SCALAR {
            let Value::Scalar(s) = &self.node.value else {
                return Err(self.expected("a single value"));
            };
            let kind = match s.resolve() {
                Resolved::Null => "null",
                Resolved::Bool(_) => "bool",
                Resolved::Int => "int",
                Resolved::Float => "float",
                Resolved::Str => "str",
            };
            let parts = [kind.to_owned(), s.text.clone()];
            return visitor
                .visit_seq(de::value::SeqDeserializer::new(parts.into_iter()))
                .map_err(|e| self.locate(e));
        }
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| self.locate(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => visitor
                .visit_seq(SeqAccess::new(items, self.path, self.ctx))
                .map_err(|e| self.locate(e)),
            _ => Err(self.expected("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(_) => visitor
                .visit_map(MapAccess::new(self.node, self.path, self.ctx, None))
                .map_err(|e| self.locate(e)),
            _ => Err(self.expected("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(_) => visitor
                .visit_map(MapAccess::new(
                    self.node,
                    self.path,
                    self.ctx,
                    Some((name, fields)),
                ))
                .map_err(|e| self.locate(e)),
            _ => Err(self.expected("a mapping")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar(_) => {
                let text = self.text()?;
                visitor
                    .visit_enum(text.into_deserializer())
                    .map_err(|e: DeError| self.locate(e))
            }
            _ => Err(self.expected("one of the listed values")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'a> {
    items: &'a [Node],
    path: &'a str,
    ctx: &'a Context,
    next: usize,
    item_path: String,
}

impl<'a> SeqAccess<'a> {
    fn new(items: &'a [Node], path: &'a str, ctx: &'a Context) -> SeqAccess<'a> {
        SeqAccess {
            items,
            path,
            ctx,
            next: 0,
            item_path: String::new(),
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.next) else {
            return Ok(None);
        };
        self.item_path = join_index(self.path, self.next);
        self.next += 1;
        seed.deserialize(NodeDe::new(item, &self.item_path, self.ctx))
            .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

pub(super) struct MapAccess<'a> {
    entries: Vec<&'a super::yaml::Entry>,
    path: &'a str,
    ctx: &'a Context,
    next: usize,
    value_path: String,
}

impl<'a> MapAccess<'a> {
    fn new(
        node: &'a Node,
        path: &'a str,
        ctx: &'a Context,
        strukt: Option<(&'static str, &'static [&'static str])>,
    ) -> MapAccess<'a> {
        MapAccess::with_unknown(node, path, ctx, strukt, true)
    }

    /// `record_unknown: false` skips the keys a struct does not have without a finding: at the
    /// root, they belong to another module.
    pub(super) fn with_unknown(
        node: &'a Node,
        path: &'a str,
        ctx: &'a Context,
        strukt: Option<(&'static str, &'static [&'static str])>,
        record_unknown: bool,
    ) -> MapAccess<'a> {
        let Value::Map(all) = &node.value else {
            return MapAccess {
                entries: Vec::new(),
                path,
                ctx,
                next: 0,
                value_path: String::new(),
            };
        };
        let mut entries = Vec::with_capacity(all.len());
        for entry in all {
            let key = entry.key.scalar_text().unwrap_or_default();
            match strukt {
                Some(_) if !record_unknown && !strukt.is_some_and(|(_, e)| e.contains(&key)) => {}
                Some((within, expected)) if !expected.contains(&key) => {
                    ctx.unknown.borrow_mut().push(UnknownKey {
                        within,
                        expected,
                        key: key.to_owned(),
                        path: join_key(path, key),
                        pos: entry.key.pos,
                    });
                }
                _ => entries.push(entry),
            }
        }
        MapAccess {
            entries,
            path,
            ctx,
            next: 0,
            value_path: String::new(),
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.get(self.next) else {
            return Ok(None);
        };
        let key = entry.key.scalar_text().unwrap_or_default();
        self.value_path = join_key(self.path, key);
        let key_de = KeyDe {
            key,
            pos: entry.key.pos,
            path: &self.value_path,
        };
        seed.deserialize(key_de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.entries.get(self.next) else {
            return Err(de::Error::custom("value without a key"));
        };
        self.next += 1;
        seed.deserialize(NodeDe::new(&entry.value, &self.value_path, self.ctx))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

/// Mapping keys are always text, whatever they look like (`1.2.840.113549.1.9.7`, `yes`).
struct KeyDe<'a> {
    key: &'a str,
    pos: Pos,
    path: &'a str,
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.key).map_err(|mut e: DeError| {
            if e.pos.is_none() {
                e.pos = Some(self.pos);
                e.path = self.path.to_owned();
            }
            e
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Deserializes `T` from `node`, returning the value and what was learned on the way.
pub fn from_node<T: de::DeserializeOwned>(node: &Node, ctx: &Context) -> Result<T, DeError> {
    T::deserialize(NodeDe::new(node, "", ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Limits, yaml};
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Source {
        source: String,
        keyid: Option<String>,
        enabled: Option<bool>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Top {
        sources: Vec<Source>,
    }

    fn de<T: de::DeserializeOwned>(text: &str) -> (Result<T, DeError>, Context) {
        let doc = yaml::parse(text, &Limits::default()).unwrap();
        let ctx = Context::new();
        let result = from_node(&doc.root.unwrap(), &ctx);
        (result, ctx)
    }

    #[test]
    fn unknown_keys_are_collected_with_position_not_fatal() {
        let (top, ctx) = de::<Top>("sources:\n  - source: x\n    keyd: 1234\n");
        assert_eq!(top.unwrap().sources[0].keyid, None);
        let unknown = ctx.take_unknown();
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].path, "sources[0].keyd");
        assert_eq!(unknown[0].pos, Pos::new(3, 5));
    }

    #[test]
    fn numbers_read_as_text_keep_their_spelling() {
        let (top, ctx) = de::<Top>("sources:\n  - source: x\n    keyid: 01234567\n");
        assert_eq!(top.unwrap().sources[0].keyid.as_deref(), Some("01234567"));
        assert_eq!(ctx.pos("sources[0].keyid"), Some(Pos::new(3, 12)));
    }

    #[test]
    fn errors_point_at_the_value() {
        let (top, _) = de::<Top>("sources:\n  - source: x\n    enabled: maybe\n");
        let err = top.unwrap_err();
        assert_eq!(err.pos, Some(Pos::new(3, 14)));
        assert_eq!(err.path, "sources[0].enabled");
        assert!(err.message.contains("true or false"), "{}", err.message);
    }

    #[test]
    fn booleans_where_text_is_expected_are_refused() {
        let (top, _) = de::<Top>("sources:\n  - source: yes\n");
        assert!(top.unwrap_err().message.contains("quote it"));
    }

    #[test]
    fn missing_keys_point_at_the_mapping() {
        let (top, _) = de::<Top>("sources:\n  - keyid: AB\n");
        let err = top.unwrap_err();
        assert_eq!(err.path, "sources[0]");
        assert!(err.message.contains("`source`"));
    }
}
