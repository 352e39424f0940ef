//! `write_files`: files the user data carries, written in the init stage; entries with
//! `defer: true` are handed to `write_files_deferred` (final stage), once users and packages
//! exist.
//!
//! Semantics are cloud-init's (`cc_write_files`): `content` decoded by `encoding`, `owner`
//! `user:group` (default root:root, resolved in the target's passwd and group when written),
//! `permissions` octal (default 0644), `append` adds to the end. Where cloudcfg differs: a bare
//! number such as `permissions: 644` is YAML's decimal 644, which cloud-init turns into mode
//! 1204; cloudcfg reads the digits as octal, as the writer surely meant, with a warning. Bad
//! encodings, content that does not decode, relative or climbing paths are errors at
//! validation, never a half-written module.

use std::io::Read;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage};
use crate::decode::de::{RawScalar, ScalarKind};
use crate::module::{Checker, Module, Need, Planner};
use crate::values;

/// cloud-init's default mode for a written file.
const DEFAULT_MODE: u32 = 0o644;

/// The top-level key `write_files` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct WriteFiles {
    /// Files to write: path, content, encoding, owner, permissions, append, defer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_files: Option<Vec<FileEntry>>,
}

/// One file of `write_files`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct FileEntry {
    /// Absolute path of the file (inside the root with `apply --root`).
    pub path: String,
    /// The content, encoded as `encoding` says; empty when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// How `content` is encoded: text (the default), b64/base64, gz/gzip, gz+b64/gzip+base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// `user:group` or `user` (group root), names in the target's passwd and group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Octal mode, `'0644'` (quoted) or an unquoted `0644`; default 0644.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::values::TextOrNumber>")]
    pub permissions: Option<RawScalar>,
    /// Add the content to the end of the file instead of replacing it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
    /// Write in the final stage, after users and packages exist (`write_files_deferred`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defer: Option<bool>,
}

/// cloud-init's content encodings, with its aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Encoding {
    #[serde(rename = "text/plain", alias = "text")]
    Text,
    #[serde(rename = "b64", alias = "base64")]
    Base64,
    #[serde(rename = "gz", alias = "gzip")]
    Gzip,
    #[serde(
        rename = "gz+b64",
        alias = "gzip+base64",
        alias = "gz+base64",
        alias = "gzip+b64"
    )]
    GzipBase64,
}

impl FileEntry {
    /// The bytes to write, with decompression bounded by `budget` (what is left of the user
    /// data's decompressed budget).
    pub fn decoded(&self, budget: usize) -> Result<Vec<u8>, String> {
        let content = self.content.as_deref().unwrap_or_default();
        let base64 = |text: &str| {
            use base64::Engine;
            let compact: String = text.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| format!("content is not base64: {e}"))
        };
        match self.encoding.unwrap_or(Encoding::Text) {
            Encoding::Text => Ok(content.as_bytes().to_vec()),
            Encoding::Base64 => base64(content),
            Encoding::Gzip => gunzip(content.as_bytes(), budget),
            Encoding::GzipBase64 => gunzip(&base64(content)?, budget),
        }
    }

    /// The mode, and a warning when a bare decimal number was read as octal digits.
    pub fn mode(&self) -> Result<(u32, Option<String>), String> {
        let Some(raw) = &self.permissions else {
            return Ok((DEFAULT_MODE, None));
        };
        let text = raw.text.trim();
        let digits = text
            .strip_prefix("0o")
            .or_else(|| text.strip_prefix('0').filter(|d| !d.is_empty()))
            .unwrap_or(text);
        let mode = match raw.kind {
            ScalarKind::Int | ScalarKind::Str => u32::from_str_radix(digits, 8).ok(),
            _ => None,
        }
        .filter(|m| *m <= 0o7777 && !digits.is_empty());
        let Some(mode) = mode else {
            return Err(format!(
                "permissions {text:?} is not an octal mode such as '0644'"
            ));
        };
        // PyYAML reads a bare 644 as the decimal number, which cloud-init turns into mode 1204.
        let decimal = raw.kind == ScalarKind::Int && !text.starts_with('0');
        let warning = decimal.then(|| {
            format!(
                "permissions {text} is a decimal number in YAML (cloud-init would make it mode \
                 {:o}); cloudcfg reads it as octal {mode:04o}: quote it, '0{text}'",
                text.parse::<u32>().unwrap_or_default()
            )
        });
        Ok((mode, warning))
    }

    /// `(user, group)`: root:root by default, a lone user's group is root (cloud-init's).
    pub fn owner_group(&self) -> Result<(String, String), String> {
        let owner = self.owner.as_deref().unwrap_or("root:root");
        let (user, group) = owner.split_once(':').unwrap_or((owner, "root"));
        values::account_name(user)?;
        values::account_name(group)?;
        Ok((user.to_owned(), group.to_owned()))
    }

    /// A file readable by no one but its owner and group holds something private: its content
    /// is a secret in plans and logs. So is anything holding a private key.
    fn sensitive(&self, mode: u32, bytes: &[u8]) -> bool {
        let private_key = bytes
            .windows(b"PRIVATE KEY-----".len())
            .any(|w| w == b"PRIVATE KEY-----");
        mode & 0o004 == 0 || private_key
    }

    pub fn action(&self, budget: usize) -> Option<ActionKind> {
        let bytes = self.decoded(budget).ok()?;
        let (mode, _) = self.mode().ok()?;
        let owner = self.owner_group().ok()?;
        let sensitive = self.sensitive(mode, &bytes);
        Some(ActionKind::user_file(
            self.path.clone(),
            mode,
            owner,
            self.append.unwrap_or(false),
            bytes,
            sensitive,
        ))
    }
}

/// gzip, decompressed up to `budget` bytes: a bomb is refused, not expanded.
fn gunzip(bytes: &[u8], budget: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let limit = u64::try_from(budget).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| format!("content is not gzip data: {e}"))?;
    if out.len() > budget {
        return Err(format!(
            "content is more than {budget} bytes once decompressed (the user data's budget)"
        ));
    }
    Ok(out)
}

impl WriteFiles {
    fn entries(&self) -> impl Iterator<Item = (usize, &FileEntry)> {
        self.write_files.iter().flatten().enumerate()
    }
}

impl Module for WriteFiles {
    const NAME: &'static str = "write_files";
    const STAGE: Stage = Stage::Init;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        // What the user data's own gzip left of the budget.
        let mut budget = cx.limits().max_decompressed_bytes;
        for (i, entry) in self.entries() {
            let at = |field: &str| format!("write_files[{i}].{field}");
            cx.check(&at("path"), values::absolute_path(&entry.path));
            cx.check(&at("owner"), entry.owner_group());
            if let Some((_, Some(warning))) = cx.check(&at("permissions"), entry.mode()) {
                cx.warning(&at("permissions"), warning);
            }
            if let Some(bytes) = cx.check(&at("content"), entry.decoded(budget)) {
                budget = budget.saturating_sub(bytes.len());
            }
        }
    }

    fn needs(&self) -> Vec<Need> {
        // Budgets were checked; planning decodes without one.
        self.entries()
            .filter(|(_, e)| e.defer == Some(true))
            .filter_map(|(_, e)| e.action(usize::MAX).map(|a| Need::DeferredWrite(Box::new(a))))
            .collect()
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        for (_, entry) in self.entries().filter(|(_, e)| e.defer != Some(true)) {
            if let Some(action) = entry.action(usize::MAX) {
                planner.push(action);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(permissions: Option<(&str, ScalarKind)>) -> FileEntry {
        FileEntry {
            path: "/etc/x".into(),
            permissions: permissions.map(|(text, kind)| RawScalar {
                text: text.into(),
                kind,
            }),
            ..FileEntry::default()
        }
    }

    #[test]
    fn permissions_are_octal_whatever_the_form() {
        let mode = |p| entry(Some(p)).mode();
        assert_eq!(mode(("0644", ScalarKind::Int)), Ok((0o644, None)));
        assert_eq!(mode(("0600", ScalarKind::Str)), Ok((0o600, None)));
        assert_eq!(mode(("0o755", ScalarKind::Str)), Ok((0o755, None)));
        assert_eq!(mode(("640", ScalarKind::Str)), Ok((0o640, None)));
        let (decimal, warning) = mode(("644", ScalarKind::Int)).unwrap();
        assert_eq!(decimal, 0o644);
        assert!(warning.unwrap().contains("mode 1204"));
        assert!(mode(("0899", ScalarKind::Str)).is_err());
        assert!(mode(("rw-r--r--", ScalarKind::Str)).is_err());
        assert!(mode(("true", ScalarKind::Bool)).is_err());
        assert!(mode(("017777", ScalarKind::Int)).is_err());
        assert_eq!(entry(None).mode(), Ok((0o644, None)));
    }

    #[test]
    fn content_decodes_and_a_bomb_stops_at_the_budget() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; 100_000]).unwrap();
        let gz = gz.finish().unwrap();
        let encoded = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&gz)
        };
        let file = FileEntry {
            content: Some(encoded),
            encoding: Some(Encoding::GzipBase64),
            ..entry(None)
        };
        assert_eq!(file.decoded(1_000_000).unwrap().len(), 100_000);
        assert!(file.decoded(1_000).unwrap_err().contains("more than 1000 bytes"));
        let bad = FileEntry {
            content: Some("not base64!".into()),
            encoding: Some(Encoding::Base64),
            ..entry(None)
        };
        assert!(bad.decoded(100).unwrap_err().contains("not base64"));
    }

    #[test]
    fn owners_default_to_root_and_are_names() {
        let owner = |o: &str| {
            FileEntry {
                owner: Some(o.into()),
                ..entry(None)
            }
            .owner_group()
        };
        assert_eq!(entry(None).owner_group().unwrap(), ("root".into(), "root".into()));
        assert_eq!(owner("www-data").unwrap(), ("www-data".into(), "root".into()));
        assert_eq!(owner("app:adm").unwrap(), ("app".into(), "adm".into()));
        assert!(owner("app;rm -rf /").is_err());
        assert!(owner("1000:1000").is_err());
    }

    #[test]
    fn private_files_are_secrets() {
        let action = FileEntry {
            content: Some("token".into()),
            permissions: Some(RawScalar::str("0600")),
            ..entry(None)
        }
        .action(100)
        .unwrap();
        let ActionKind::WriteUserFile { content, .. } = action else {
            panic!("{action:?}")
        };
        assert!(content.unwrap().is_sensitive());
    }
}
