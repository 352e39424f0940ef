//! User data bytes -> one cloud-config tree.
//!
//! Accepted: a `#cloud-config` document, the same gzip-compressed (detected by its magic bytes),
//! MIME multipart whose `text/cloud-config` parts are merged in order (a later part's top-level
//! key replaces an earlier one's, cloud-init's default merge), shell scripts (`#!`,
//! `text/x-shellscript`, kept for `scripts_user`), boothooks (`#cloud-boothook`, kept for
//! `bootcmd`), and empty user data. Parts that cloud-init would run but cloudcfg does not
//! (includes, archives, Jinja templates, ...) are reported by name as warnings, never dropped
//! silently.

pub mod de;
mod raw;
mod section;
pub mod yaml;

use std::collections::HashMap;
use std::io::Read;

use self::yaml::{DuplicateKey, Node, Pos, Value};

/// Resource limits for everything derived from user data. See the README's limits table.
#[derive(Debug, Clone)]
pub struct Limits {
    /// User data as fetched, compressed or not.
    pub max_input_bytes: usize,
    /// User data after gzip decompression (all parts together).
    pub max_decompressed_bytes: usize,
    /// Nesting levels of lists and mappings.
    pub max_depth: usize,
    /// YAML nodes, counting every node an alias repeats.
    pub max_nodes: usize,
    /// Bytes of scalar text that aliases repeat (all aliases together).
    pub max_alias_bytes: usize,
    /// Bytes of one scalar value.
    pub max_value_bytes: usize,
    /// MIME parts.
    pub max_parts: usize,
    /// Entries of `packages`.
    pub max_packages: usize,
    /// apt sources (`apt_sources` and `apt.sources` together).
    pub max_sources: usize,
}

pub const MIB: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 16 * MIB,
            max_decompressed_bytes: 16 * MIB,
            max_depth: 64,
            max_nodes: 100_000,
            // As much as one value may hold: anchors share a key block or a few settings,
            // and more is an amplification attack, not a config.
            max_alias_bytes: MIB,
            max_value_bytes: MIB,
            max_parts: 100,
            max_packages: 20_000,
            max_sources: 5_000,
        }
    }
}

/// Where a user-data part came from, for messages: `part 2 (text/cloud-config)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// 1-based.
    pub index: usize,
    pub content_type: String,
    pub gzip: bool,
    /// Only a MIME message or gzip names its parts; a plain document is just the file.
    pub named: bool,
}

impl PartInfo {
    pub fn label(&self) -> String {
        if self.gzip {
            format!("part {} (gzip, {})", self.index, self.content_type)
        } else {
            format!("part {} ({})", self.index, self.content_type)
        }
    }
}

/// A finding of the decode layer that is not fatal.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeWarning {
    pub part: usize,
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("user data is {size} bytes, more than the {limit} allowed")]
    TooLarge { size: usize, limit: usize },
    #[error("user data is more than {limit} bytes once decompressed")]
    DecompressedTooLarge { limit: usize },
    #[error("gzip data is corrupt: {reason}")]
    Gzip { reason: String },
    #[error("MIME multipart message cannot be read: {reason}")]
    Mime { reason: String },
    #[error("more than {limit} MIME parts")]
    TooManyParts { limit: usize },
    #[error("{pos}: not UTF-8 text: invalid byte 0x{byte:02x}")]
    NotUtf8 {
        part: Option<String>,
        pos: Pos,
        byte: u8,
    },
    #[error("{}: {}", .error.pos, .error.message)]
    Yaml {
        part: Option<String>,
        error: yaml::YamlError,
    },
    #[error("{pos}: cloud-config must be a mapping of keys, found {found}")]
    NotAMapping {
        part: Option<String>,
        pos: Pos,
        found: &'static str,
    },
}

impl DecodeError {
    /// The part (named when user data has parts) and position an error points at.
    pub fn location(&self) -> (Option<&str>, Pos) {
        match self {
            DecodeError::NotUtf8 { part, pos, .. } | DecodeError::NotAMapping { part, pos, .. } => {
                (part.as_deref(), *pos)
            }
            DecodeError::Yaml { part, error } => (part.as_deref(), error.pos),
            _ => (None, Pos::new(1, 1)),
        }
    }

    /// The message without the position, which diagnostics print separately.
    pub fn bare_message(&self) -> String {
        match self {
            DecodeError::NotUtf8 { byte, .. } => {
                format!("not UTF-8 text: invalid byte 0x{byte:02x}")
            }
            DecodeError::Yaml { error, .. } => error.message.clone(),
            DecodeError::NotAMapping { found, .. } => {
                format!("cloud-config must be a mapping of keys, found {found}")
            }
            other => other.to_string(),
        }
    }
}

/// Decoded user data: the merged cloud-config (if any) and what was found on the way.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserData {
    /// Every part seen, 1-based index order. A plain document is part 1, unnamed.
    pub parts: Vec<PartInfo>,
    /// The merged top-level mapping of all cloud-config parts, or `None` when there is nothing
    /// to do.
    pub root: Option<Node>,
    pub duplicates: Vec<(usize, DuplicateKey)>,
    pub warnings: Vec<DecodeWarning>,
    /// Shell-script parts (`#!` user data, `text/x-shellscript`), in part order.
    pub scripts: Vec<UserScript>,
    /// Boothooks (`#cloud-boothook`, `text/cloud-boothook`), run early in every boot.
    pub boothooks: Vec<UserScript>,
    /// What is left of the decompression budget: content that `write_files` decompresses
    /// counts against the same budget.
    pub budget_left: usize,
}

/// A user-data part that is a script, run by `scripts_user` in the final stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserScript {
    /// `part-001` and so on, from the part's index (cloud-init's names for unnamed parts).
    pub name: String,
    pub text: String,
}

impl UserData {
    pub fn part(&self, index: usize) -> Option<&PartInfo> {
        self.parts.iter().find(|p| p.index == index)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The kinds of user data cloud-init recognises by their first line, longest prefix first.
const STARTS_WITH: &[(&str, &str)] = &[
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("#cloud-config", "text/cloud-config"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include-once", "text/x-include-once-url"),
    ("#include", "text/x-include-url"),
    ("#part-handler", "text/part-handler"),
    ("#upstart-job", "text/upstart-job"),
    ("## template: jinja", "text/jinja2"),
    ("#!", "text/x-shellscript"),
];

const GZIP_TYPES: &[&str] = &[
    "application/gzip",
    "application/gzip-compressed",
    "application/gzipped",
    "application/x-compress",
    "application/x-compressed",
    "application/x-gunzip",
    "application/x-gzip",
    "application/x-gzip-compressed",
];

fn sniff(body: &[u8]) -> Option<&'static str> {
    let head: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(32)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    STARTS_WITH
        .iter()
        .find(|(prefix, _)| head.starts_with(prefix.as_bytes()))
        .map(|(_, ctype)| *ctype)
}

fn is_mime(body: &[u8]) -> bool {
    let head: Vec<u8> = body
        .iter()
        .take(256)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let starts = |p: &[u8]| head.starts_with(p);
    starts(b"content-type:") || starts(b"mime-version:")
}

fn gunzip(data: &[u8], budget: &mut usize, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(data).take(*budget as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip {
            reason: e.to_string(),
        })?;
    if out.len() > *budget {
        return Err(DecodeError::DecompressedTooLarge { limit });
    }
    *budget -= out.len();
    Ok(out)
}

fn utf8_text(part: Option<String>, bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        DecodeError::NotUtf8 {
            part,
            pos: Pos::new(
                u32::try_from(line).unwrap_or(u32::MAX),
                u32::try_from(col).unwrap_or(u32::MAX),
            ),
            byte: bytes[e.valid_up_to()],
        }
    })
}

struct Decoder<'l> {
    limits: &'l Limits,
    budget: usize,
    out: UserData,
    roots: Vec<(usize, Node)>,
}

impl Decoder<'_> {
    fn next_index(&self) -> usize {
        self.out.parts.len() + 1
    }

    fn add_part(
        &mut self,
        content_type: &str,
        gzip: bool,
        named: bool,
    ) -> Result<usize, DecodeError> {
        if self.out.parts.len() >= self.limits.max_parts {
            return Err(DecodeError::TooManyParts {
                limit: self.limits.max_parts,
            });
        }
        let index = self.next_index();
        self.out.parts.push(PartInfo {
            index,
            content_type: content_type.to_owned(),
            gzip,
            named,
        });
        Ok(index)
    }

    fn warn(&mut self, part: usize, message: String) {
        self.out.warnings.push(DecodeWarning {
            part,
            pos: Pos::new(1, 1),
            message,
        });
    }

    fn label(&self, part: usize) -> Option<String> {
        self.out.part(part).filter(|p| p.named).map(PartInfo::label)
    }

    fn cloud_config(&mut self, part: usize, body: &[u8]) -> Result<(), DecodeError> {
        let text = utf8_text(self.label(part), body)?;
        let doc = yaml::parse(text, self.limits).map_err(|error| DecodeError::Yaml {
            part: self.label(part),
            error,
        })?;
        self.out
            .duplicates
            .extend(doc.duplicates.into_iter().map(|d| (part, d)));
        if let Some(mut root) = doc.root {
            if !matches!(root.value, Value::Map(_)) {
                return Err(DecodeError::NotAMapping {
                    part: self.label(part),
                    pos: root.pos,
                    found: root.describe(),
                });
            }
            set_part(&mut root, part);
            self.roots.push((part, root));
        }
        Ok(())
    }

    /// A body whose kind is known: a cloud-config is parsed, anything else reported.
    fn typed_body(
        &mut self,
        content_type: &str,
        body: &[u8],
        gzip: bool,
        named: bool,
    ) -> Result<(), DecodeError> {
        let part = self.add_part(content_type, gzip, named)?;
        match content_type {
            "text/cloud-config" => self.cloud_config(part, body),
            "text/x-shellscript" => {
                let text = utf8_text(self.label(part), body)?;
                self.out.scripts.push(UserScript {
                    name: format!("part-{part:03}"),
                    text: text.to_owned(),
                });
                Ok(())
            }
            "text/cloud-boothook" => {
                let text = utf8_text(self.label(part), body)?;
                // cloud-init drops the marker line and runs the rest as a program.
                let rest = match text.split_once('\n') {
                    Some((first, rest)) if first.trim_end() == "#cloud-boothook" => rest,
                    _ => text,
                };
                let text = if rest.starts_with("#!") {
                    rest.to_owned()
                } else {
                    format!("#!/bin/sh\n{rest}")
                };
                self.out.boothooks.push(UserScript {
                    name: format!("part-{part:03}"),
                    text,
                });
                Ok(())
            }
            "text/x-shellscript-per-boot"
            | "text/x-shellscript-per-instance"
            | "text/x-shellscript-per-once"
            | "text/x-include-url"
            | "text/x-include-once-url"
            | "text/part-handler"
            | "text/upstart-job"
            | "text/jinja2"
            | "text/cloud-config-archive"
            | "text/cloud-config-jsonp" => {
                self.warn(
                    part,
                    format!(
                        "{content_type} user data is not handled by cloudcfg: this part is not run"
                    ),
                );
                Ok(())
            }
            other => {
                self.warn(
                    part,
                    format!("unrecognised user data ({other}): this part is ignored"),
                );
                Ok(())
            }
        }
    }

    /// A body whose kind must be found out: gzip, MIME, or a first-line marker.
    fn untyped_body(&mut self, body: &[u8], gzip: bool, named: bool) -> Result<(), DecodeError> {
        if body.starts_with(&GZIP_MAGIC) {
            let inner = gunzip(body, &mut self.budget, self.limits.max_decompressed_bytes)?;
            return self.untyped_body(&inner, true, true);
        }
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        if is_mime(body) {
            return self.mime(body, gzip);
        }
        match sniff(body) {
            Some(ctype) => self.typed_body(ctype, body, gzip, named),
            None => self.typed_body("text/x-not-multipart", body, gzip, named),
        }
    }

    fn mime(&mut self, body: &[u8], gzip: bool) -> Result<(), DecodeError> {
        let mail = mailparse::parse_mail(body).map_err(|e| DecodeError::Mime {
            reason: e.to_string(),
        })?;
        self.mime_part(&mail, gzip, 0)
    }

    fn mime_part(
        &mut self,
        mail: &mailparse::ParsedMail<'_>,
        gzip: bool,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if depth > self.limits.max_depth {
            return Err(DecodeError::Mime {
                reason: "multipart nesting too deep".into(),
            });
        }
        let mimetype = mail.ctype.mimetype.to_ascii_lowercase();
        if mimetype.starts_with("multipart/") {
            for sub in &mail.subparts {
                self.mime_part(sub, gzip, depth + 1)?;
            }
            return Ok(());
        }
        let raw = mail.get_body_raw().map_err(|e| DecodeError::Mime {
            reason: e.to_string(),
        })?;
        if raw.len() > self.budget {
            return Err(DecodeError::DecompressedTooLarge {
                limit: self.limits.max_decompressed_bytes,
            });
        }
        if GZIP_TYPES.contains(&mimetype.as_str()) || raw.starts_with(&GZIP_MAGIC) {
            let inner = gunzip(&raw, &mut self.budget, self.limits.max_decompressed_bytes)?;
            return self.sniffed_part(&inner, true);
        }
        match mimetype.as_str() {
            "text/plain" | "text/x-not-multipart" | "application/octet-stream" => {
                self.sniffed_part(&raw, gzip)
            }
            other => self.typed_body(other, &raw, gzip, true),
        }
    }

    fn sniffed_part(&mut self, body: &[u8], gzip: bool) -> Result<(), DecodeError> {
        match sniff(body) {
            Some(ctype) => self.typed_body(ctype, body, gzip, true),
            None if body.iter().all(|b| b.is_ascii_whitespace()) => Ok(()),
            None => self.typed_body("text/plain", body, gzip, true),
        }
    }
}

fn set_part(node: &mut Node, part: usize) {
    node.pos.part = u16::try_from(part).unwrap_or(u16::MAX);
    match &mut node.value {
        Value::Scalar(_) => {}
        Value::Seq(items) => items.iter_mut().for_each(|n| set_part(n, part)),
        Value::Map(entries) => entries.iter_mut().for_each(|e| {
            set_part(&mut e.key, part);
            set_part(&mut e.value, part);
        }),
    }
}

/// Decodes user data bytes into one cloud-config tree.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<UserData, DecodeError> {
    if bytes.len() > limits.max_input_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: limits.max_input_bytes,
        });
    }
    let mut decoder = Decoder {
        limits,
        budget: limits.max_decompressed_bytes,
        out: UserData::default(),
        roots: Vec::new(),
    };
    decoder.untyped_body(bytes, false, false)?;
    let mut out = decoder.out;
    out.budget_left = decoder.budget;
    out.root = merge_roots(decoder.roots);
    Ok(out)
}

/// cloud-init's default merge of cloud-config parts: a later part's top-level key replaces
/// an earlier part's.
fn merge_roots(roots: Vec<(usize, Node)>) -> Option<Node> {
    let mut iter = roots.into_iter();
    let (_, mut merged) = iter.next()?;
    // Keys by hash: up to max_parts parts of many keys each must not cost parts x keys^2.
    let mut index: HashMap<String, usize> = HashMap::new();
    if let Value::Map(into) = &merged.value {
        for (i, e) in into.iter().enumerate() {
            index.insert(e.key.scalar_text().unwrap_or_default().to_owned(), i);
        }
    }
    for (_, root) in iter {
        let (Value::Map(into), Value::Map(from)) = (&mut merged.value, root.value) else {
            continue;
        };
        for entry in from {
            let key = entry.key.scalar_text().unwrap_or_default().to_owned();
            match index.get(&key).and_then(|&i| into.get_mut(i)) {
                Some(existing) => *existing = entry,
                None => {
                    index.insert(key, into.len());
                    into.push(entry);
                }
            }
        }
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn empty_user_data_is_nothing_to_do() {
        let ud = decode(b"", &Limits::default()).unwrap();
        assert!(ud.root.is_none());
        assert!(ud.warnings.is_empty());
        let ud = decode(b"#cloud-config\n", &Limits::default()).unwrap();
        assert!(ud.root.is_none());
    }

    #[test]
    fn gzip_is_detected_by_magic() {
        let ud = decode(
            &gzip(b"#cloud-config\npackages: [hello]\n"),
            &Limits::default(),
        )
        .unwrap();
        assert!(ud.root.unwrap().get("packages").is_some());
        assert!(ud.parts[0].gzip);
    }

    #[test]
    fn gzip_bomb_is_stopped_at_the_limit() {
        let limits = Limits {
            max_decompressed_bytes: 1000,
            ..Limits::default()
        };
        let big = format!("#cloud-config\n#{}\n", "x".repeat(2000));
        let err = decode(&gzip(big.as_bytes()), &limits).unwrap_err();
        assert_eq!(err, DecodeError::DecompressedTooLarge { limit: 1000 });
    }

    #[test]
    fn non_utf8_reports_its_position() {
        let err = decode(
            b"#cloud-config\npackages:\n  - h\xffllo\n",
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            DecodeError::NotUtf8 {
                part: None,
                pos: Pos::new(3, 6),
                byte: 0xff
            }
        );
    }

    #[test]
    fn a_script_is_kept_for_scripts_user_under_its_part_name() {
        let ud = decode(b"#!/bin/sh\necho hi\n", &Limits::default()).unwrap();
        assert!(ud.root.is_none());
        assert!(ud.warnings.is_empty());
        assert_eq!(
            ud.scripts,
            [UserScript {
                name: "part-001".into(),
                text: "#!/bin/sh\necho hi\n".into()
            }]
        );
        let boothook = decode(b"#cloud-boothook\necho hi\n", &Limits::default()).unwrap();
        assert!(boothook.warnings.is_empty());
        assert_eq!(boothook.boothooks[0].text, "#!/bin/sh\necho hi\n");
    }

    #[test]
    fn multipart_parts_merge_later_keys_over_earlier() {
        let msg = "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n\
--XX\nContent-Type: text/cloud-config\n\n#cloud-config\npackages: [a]\napt_upgrade: true\n\
--XX\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n\
--XX\nContent-Type: text/cloud-config\n\n#cloud-config\npackages: [b]\n--XX--\n";
        let ud = decode(msg.as_bytes(), &Limits::default()).unwrap();
        let root = ud.root.unwrap();
        let packages = root.get("packages").unwrap();
        assert_eq!(packages.pos.part, 3);
        assert!(root.get("apt_upgrade").is_some());
        assert_eq!(ud.parts.len(), 3);
        assert!(ud.warnings.is_empty());
        assert_eq!(ud.scripts[0].name, "part-002");
    }
}
