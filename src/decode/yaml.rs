//! A YAML document as a tree of spanned nodes, built from granit-parser events.
//!
//! Why not deserialize straight into the typed model with serde-saphyr: cloudcfg must report
//! duplicate keys as *warnings* naming both positions (serde-saphyr errors or silently picks one),
//! report unknown keys as warnings with their position, and keep positions inside values that may
//! take several shapes (a package is a name or a `[name, version]` pair), where serde buffers and
//! drops spans. So the tree keeps every node's position, the raw text of every scalar (a keyid
//! written `01234567` stays those eight digits) and its style, and [`super::de`] deserializes the
//! typed model from it.
//!
//! Resource use is bounded by counted budgets, never by a clock: nesting depth and the number of
//! nodes, counting every node an alias expands to, so a "billion laughs" document stops after
//! [`Limits::max_nodes`] nodes however it is built, and the text aliases repeat, so one long
//! scalar aliased many times stops after [`Limits::max_alias_bytes`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use granit_parser::{Event, Parser, ScalarStyle};

use super::Limits;

/// A position in the source text: 1-based line, 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
    /// The 1-based user-data part the node came from (0 outside multipart and gzip).
    pub part: u16,
}

impl Pos {
    pub const fn new(line: u32, col: u32) -> Pos {
        Pos { line, col, part: 0 }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

/// What a scalar means under PyYAML's YAML 1.1 resolver, which is what cloud-init reads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int,
    Float,
    Str,
}

impl Resolved {
    pub fn describe(self) -> &'static str {
        match self {
            Resolved::Null => "null",
            Resolved::Bool(_) => "a boolean",
            Resolved::Int => "an integer",
            Resolved::Float => "a number",
            Resolved::Str => "a string",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub style: Style,
    /// The suffix of a core-schema tag (`str`, `int`, ...) when one was written.
    pub tag: Option<String>,
}

impl Scalar {
    pub fn resolve(&self) -> Resolved {
        match self.tag.as_deref() {
            Some("str") | Some("binary") => return Resolved::Str,
            Some("null") => return Resolved::Null,
            Some("bool") => return resolve_plain(&self.text),
            Some("int") => return Resolved::Int,
            Some("float") => return Resolved::Float,
            _ => {}
        }
        if self.style == Style::Plain {
            resolve_plain(&self.text)
        } else {
            Resolved::Str
        }
    }
}

/// PyYAML's implicit resolvers (yaml/resolver.py), restricted to what our model reads.
fn resolve_plain(text: &str) -> Resolved {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true);
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false);
        }
        _ => {}
    }
    if is_yaml11_int(text) {
        Resolved::Int
    } else if is_yaml11_float(text) {
        Resolved::Float
    } else {
        Resolved::Str
    }
}

// PyYAML's resolver patterns for int and float (yaml/resolver.py), verbatim in meaning.
static YAML11_INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("static regex")
});
static YAML11_FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("static regex")
});

fn is_yaml11_int(text: &str) -> bool {
    YAML11_INT.is_match(text)
}

fn is_yaml11_float(text: &str) -> bool {
    YAML11_FLOAT.is_match(text)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Node,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
    /// Nodes in this subtree, itself included: what an alias to it costs.
    pub size: usize,
    /// Nesting levels below this node (0 for a scalar).
    pub height: usize,
    /// Bytes of scalar text in this subtree, keys included: what an alias to it repeats.
    pub bytes: usize,
}

impl Node {
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.resolve() == Resolved::Null)
    }

    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Scalar(s) => s.resolve().describe(),
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value of a mapping entry by its key's text.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|e| e.key.scalar_text() == Some(key))
                .map(|e| &e.value),
            _ => None,
        }
    }
}

/// A duplicate key in one mapping: the later value replaced the earlier one.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateKey {
    pub key: String,
    pub first: Pos,
    pub second: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `None` for an empty document.
    pub root: Option<Node>,
    pub duplicates: Vec<DuplicateKey>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(marker: &granit_parser::Marker) -> Pos {
    Pos::new(
        u32::try_from(marker.line()).unwrap_or(u32::MAX),
        u32::try_from(marker.col().saturating_add(1)).unwrap_or(u32::MAX),
    )
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        pending_key: Option<Node>,
    },
}

struct Builder<'l> {
    limits: &'l Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    alias_bytes: usize,
    duplicates: Vec<DuplicateKey>,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    fn charge(&mut self, count: usize, pos: Pos) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError {
                pos,
                message: format!(
                    "document too large: more than {} nodes (aliases count every node they repeat)",
                    self.limits.max_nodes
                ),
            });
        }
        Ok(())
    }

    /// Text an alias repeats: counting nodes alone would let one 1 MiB scalar, aliased as
    /// often as the node budget allows (100,000 times), fill 100 GB.
    fn charge_alias_bytes(&mut self, bytes: usize, pos: Pos) -> Result<(), YamlError> {
        self.alias_bytes = self.alias_bytes.saturating_add(bytes);
        if self.alias_bytes > self.limits.max_alias_bytes {
            return Err(YamlError {
                pos,
                message: format!(
                    "aliases repeat more than {} bytes of text",
                    self.limits.max_alias_bytes
                ),
            });
        }
        Ok(())
    }

    fn check_depth(&self, extra: usize, pos: Pos) -> Result<(), YamlError> {
        if self.stack.len() + extra > self.limits.max_depth {
            return Err(YamlError {
                pos,
                message: format!("nesting deeper than {} levels", self.limits.max_depth),
            });
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                pending_key,
                entries,
                ..
            }) => {
                match pending_key.take() {
                    None => {
                        if !matches!(node.value, Value::Scalar(_)) {
                            return Err(YamlError {
                                pos: node.pos,
                                message: "mapping keys must be plain values, not lists or mappings"
                                    .into(),
                            });
                        }
                        *pending_key = Some(node);
                    }
                    Some(key) => entries.push(Entry { key, value: node }),
                }
                Ok(())
            }
        }
    }

    fn finish_map(&mut self, pos: Pos, entries: Vec<Entry>) -> Result<Node, YamlError> {
        let mut merged: Vec<Entry> = Vec::new();
        let mut merged_keys: HashSet<String> = HashSet::new();
        let mut explicit: Vec<Entry> = Vec::with_capacity(entries.len());
        for entry in entries {
            let is_merge = matches!(&entry.key.value,
                Value::Scalar(s) if s.style == Style::Plain && s.text == "<<");
            if !is_merge {
                explicit.push(entry);
                continue;
            }
            // PyYAML merge keys: a mapping or a list of mappings; earlier sources win. The
            // sources are this entry's own nodes (alias copies included), so their entries are
            // moved, not copied again: merging a large anchor several times stays linear.
            let value_pos = entry.value.pos;
            let not_mappings = || YamlError {
                pos: value_pos,
                message: "a merge key (<<) takes a mapping or a list of mappings".into(),
            };
            let sources: Vec<Vec<Entry>> = match entry.value.value {
                Value::Map(source) => vec![source],
                Value::Seq(items) if !items.is_empty() => items
                    .into_iter()
                    .map(|n| match n.value {
                        Value::Map(source) => Ok(source),
                        _ => Err(not_mappings()),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(not_mappings()),
            };
            for source in sources {
                for e in source {
                    let key = e.key.scalar_text().unwrap_or_default();
                    if !merged_keys.contains(key) {
                        merged_keys.insert(key.to_owned());
                        merged.push(e);
                    }
                }
            }
        }
        // Later explicit duplicates replace the value but keep the first position, as a Python
        // dict does; each is remembered so validate can name both places. Keys are found by
        // hashing: a mapping may have tens of thousands of keys, and merge keys repeat them.
        let mut result: Vec<Entry> = Vec::with_capacity(merged.len() + explicit.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(explicit.len());
        for entry in explicit {
            let key_text = entry.key.scalar_text().unwrap_or_default().to_owned();
            if let Some(existing) = index.get(&key_text).and_then(|&i| result.get_mut(i)) {
                self.duplicates.push(DuplicateKey {
                    key: key_text,
                    first: existing.key.pos,
                    second: entry.key.pos,
                });
                existing.value = entry.value;
            } else {
                index.insert(key_text, result.len());
                result.push(entry);
            }
        }
        for entry in merged {
            if !index.contains_key(entry.key.scalar_text().unwrap_or_default()) {
                result.push(entry);
            }
        }
        let size = 1 + result
            .iter()
            .map(|e| e.key.size + e.value.size)
            .sum::<usize>();
        let height = 1 + result
            .iter()
            .map(|e| e.value.height.max(e.key.height))
            .max()
            .unwrap_or(0);
        let bytes = result
            .iter()
            .map(|e| e.key.bytes.saturating_add(e.value.bytes))
            .fold(0, usize::saturating_add);
        Ok(Node {
            pos,
            value: Value::Map(result),
            size,
            height,
            bytes,
        })
    }

    fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(YamlError {
                        pos,
                        message: "expected one YAML document, found a second one".into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.charge(1, pos)?;
                if text.len() > self.limits.max_value_bytes {
                    return Err(YamlError {
                        pos,
                        message: format!(
                            "value too long: {} bytes, at most {} are allowed",
                            text.len(),
                            self.limits.max_value_bytes
                        ),
                    });
                }
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                let tag = tag.and_then(|t| {
                    (t.handle() == "tag:yaml.org,2002:").then(|| t.suffix().to_owned())
                });
                let node = Node {
                    pos,
                    bytes: text.len(),
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        style,
                        tag,
                    }),
                    size: 1,
                    height: 0,
                };
                self.push_node(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.charge(1, pos)?;
                self.check_depth(1, pos)?;
                self.stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(_, anchor, _) => {
                self.charge(1, pos)?;
                self.check_depth(1, pos)?;
                self.stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { pos, anchor, items }) = self.stack.pop() {
                    let size = 1 + items.iter().map(|n| n.size).sum::<usize>();
                    let height = 1 + items.iter().map(|n| n.height).max().unwrap_or(0);
                    let bytes = items.iter().map(|n| n.bytes).fold(0, usize::saturating_add);
                    let node = Node {
                        pos,
                        value: Value::Seq(items),
                        size,
                        height,
                        bytes,
                    };
                    self.push_node(node, anchor)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    pos,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let node = self.finish_map(pos, entries)?;
                    self.push_node(node, anchor)?;
                }
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(YamlError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                let (size, height, bytes) = (target.size, target.height, target.bytes);
                self.charge(size, pos)?;
                self.check_depth(height, pos)?;
                self.charge_alias_bytes(bytes, pos)?;
                let Some(mut node) = self.anchors.get(&id).cloned() else {
                    return Ok(());
                };
                node.pos = pos;
                self.push_node(node, 0)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses one YAML document into a spanned tree, within `limits`.
pub fn parse(text: &str, limits: &Limits) -> Result<Document, YamlError> {
    let mut options = granit_parser::Options::default();
    options.set_emit_comments(false);
    // The parser's own nesting guards sit well above ours, so ours normally report first; the
    // scanner looks ahead of the events we count.
    options.flow_nesting_limit = limits.max_depth + 64;
    options.block_nesting_limit = limits.max_depth + 64;
    let parser = Parser::new_from_str_with_options(text, options);
    let mut builder = Builder {
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        alias_bytes: 0,
        duplicates: Vec::new(),
        root: None,
        documents: 0,
    };
    for item in parser {
        let (event, span) = item.map_err(|e| YamlError {
            pos: pos_of(e.marker()),
            message: e.info(),
        })?;
        builder.event(event, pos_of(&span.start))?;
    }
    let root = builder.root.filter(|n| !n.is_null());
    Ok(Document {
        root,
        duplicates: builder.duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Document {
        parse(text, &Limits::default()).unwrap()
    }

    #[test]
    fn keeps_raw_scalar_text_and_positions() {
        let doc = parse_ok("a:\n  keyid: 01234567\n");
        let keyid = doc
            .root
            .unwrap()
            .get("a")
            .unwrap()
            .get("keyid")
            .unwrap()
            .clone();
        assert_eq!(keyid.scalar_text(), Some("01234567"));
        assert_eq!(keyid.pos, Pos::new(2, 10));
    }

    #[test]
    fn resolves_exactly_pyyaml_booleans() {
        for yes in [
            "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
        ] {
            assert_eq!(resolve_plain(yes), Resolved::Bool(true), "{yes}");
        }
        for no in [
            "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
        ] {
            assert_eq!(resolve_plain(no), Resolved::Bool(false), "{no}");
        }
        for not_bool in ["y", "n", "yEs", "tRUE", "oN", "1"] {
            assert!(
                !matches!(resolve_plain(not_bool), Resolved::Bool(_)),
                "{not_bool}"
            );
        }
    }

    #[test]
    fn resolves_numbers_like_pyyaml() {
        assert_eq!(resolve_plain("12345678"), Resolved::Int);
        assert_eq!(resolve_plain("0x1F"), Resolved::Int);
        assert_eq!(resolve_plain("2.10"), Resolved::Float);
        assert_eq!(resolve_plain("1e5"), Resolved::Str);
        assert_eq!(resolve_plain("1.0e+5"), Resolved::Float);
        assert_eq!(resolve_plain("B54F83BA"), Resolved::Str);
        assert_eq!(resolve_plain("2.10-1"), Resolved::Str);
        assert_eq!(resolve_plain("1.2.840.113549.1.9.7"), Resolved::Str);
        assert_eq!(resolve_plain("0777"), Resolved::Int);
        assert_eq!(resolve_plain("0789"), Resolved::Str);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_both_positions() {
        let doc = parse_ok("a: 1\nb: 2\na: 3\n");
        let root = doc.root.unwrap();
        assert_eq!(root.get("a").unwrap().scalar_text(), Some("3"));
        assert_eq!(
            doc.duplicates,
            vec![DuplicateKey {
                key: "a".into(),
                first: Pos::new(1, 1),
                second: Pos::new(3, 1),
            }]
        );
    }

    #[test]
    fn merge_keys_fill_in_missing_entries() {
        let doc = parse_ok("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n");
        let c = doc.root.unwrap().get("c").unwrap().clone();
        assert_eq!(c.get("x").unwrap().scalar_text(), Some("1"));
        assert_eq!(c.get("y").unwrap().scalar_text(), Some("3"));
    }

    #[test]
    fn billion_laughs_stops_at_the_node_budget() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 9].join(", ")));
        }
        let limits = Limits::default();
        let err = parse(&text, &limits).unwrap_err();
        assert!(err.message.contains("more than"), "{err}");
    }

    #[test]
    fn depth_is_bounded() {
        let limits = Limits::default();
        let deep = "[".repeat(limits.max_depth + 1) + &"]".repeat(limits.max_depth + 1);
        assert!(
            parse(&deep, &limits)
                .unwrap_err()
                .message
                .contains("nesting")
        );
        let ok = "[".repeat(limits.max_depth) + &"]".repeat(limits.max_depth);
        assert!(parse(&ok, &limits).is_ok());
    }

    #[test]
    fn second_document_is_an_error() {
        let err = parse("a: 1\n---\nb: 2\n", &Limits::default()).unwrap_err();
        assert_eq!(err.pos.line, 2);
    }
}
