//! The policy file: strict YAML, owner-only permissions, keys kept as digests.

use std::fmt;
use std::fs::File;
use std::io;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::AutosignError;
use crate::decode::de::{Context, from_node};
use crate::decode::{Limits, yaml};
use crate::values;

/// Bounds for the policy file and the keys file.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// A pre-shared key as written in the policy. Its `Debug` never shows it, and it is not
/// `Serialize`, so it cannot end up in a plan or a report by accident.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(key: impl Into<String>) -> Secret {
        Secret(key.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The autosign policy (default `/etc/cloudcfg/autosign.yaml`): which certificate requests
/// `cloudcfg autosign` signs. Every rule that is configured must hold, and the CSR's common name
/// must always equal the certname. A policy that configures no rule refuses every request.
/// Unknown keys are errors. The file must not be readable or writable by others (0640
/// root:puppet or 0600 puppet).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields, title = "cloudcfg autosign policy")]
pub struct Policy {
    /// Accepted pre-shared keys. When this or `preshared_keys_file` is given, a request must
    /// carry one of the keys, as its `challengePassword` attribute (recommended) or as its
    /// `pp_preshared_key` extension request. Given but empty, nothing is accepted.
    pub preshared_keys: Option<Vec<Secret>>,
    /// More accepted keys, from a file (absolute path): one key per line; blank lines and lines
    /// whose first non-blank character is `#` are ignored, spaces around a key are dropped. It
    /// must not be readable or writable by others.
    pub preshared_keys_file: Option<String>,
    /// Also accept the key as the `pp_preshared_key` extension request (default true). Set it to
    /// false to accept `challengePassword` only: puppetserver copies extension requests into the
    /// signed certificate, where everyone who sees the certificate can read the key.
    pub accept_pp_preshared_key: Option<bool>,
    /// A directory (absolute path) of expected certnames: a request is signed only when a
    /// regular file there is named exactly like its certname, or like the certname's first
    /// dot-separated label (the instance id: `i-0abc` for `i-0abc.web1.example.org`). The file is
    /// removed when the request is signed, so each one signs once. The puppet user must be able
    /// to remove files there; others must not be able to write there.
    pub expected_certnames_dir: Option<String>,
    /// Expected certnames kept by the launchers: an absolute directory (as
    /// `expected_certnames_dir`), or `s3://bucket/prefix/`, one object per expected certname
    /// (or instance id), claimed once across CA replicas by a conditional write of
    /// `prefix/claimed/NAME` (docs/autosign.md). Not both this and `expected_certnames_dir`.
    pub expected_certnames: Option<String>,
    /// The S3 endpoint (S3-compatible stores; path-style requests). Default:
    /// `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, then AWS's regional endpoint.
    pub s3_endpoint: Option<String>,
    /// The bucket's region. Default: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then us-east-1.
    pub s3_region: Option<String>,
    /// Seconds one request to the store may take (default 5, at most 30): a store that is down
    /// or slow refuses the request well before puppetserver gives up on the policy.
    pub store_timeout_secs: Option<u64>,
    /// EC2's signed instance identity (instances with `puppet: {attest: aws_iid}`): the
    /// request must carry the instance identity document and its `rsa2048` PKCS#7 signature,
    /// verified against these certificates, for an allowed account (docs/autosign.md).
    pub aws_identity: Option<AwsIdentityPolicy>,
    /// A regular expression (Rust `regex` syntax) that the whole certname must match, e.g.
    /// `i-[0-9a-f]+\.web\.example\.org`. Alone it is as weak as puppet's autosign.conf globs:
    /// anyone who can reach the CA chooses their certname.
    pub certname_pattern: Option<String>,
}

/// The `aws_identity` rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AwsIdentityPolicy {
    /// PEM files (absolute paths) of the certificates that sign identity documents: AWS's
    /// published RSA certificate of each region the fleet runs in.
    pub certificates: Vec<String>,
    /// The AWS accounts whose instances may be signed.
    pub accounts: Vec<String>,
    /// Allowed regions; default any.
    pub regions: Option<Vec<String>>,
    /// The document's `pendingTime` may be at most this old (seconds; default 600).
    pub max_age_secs: Option<u64>,
    /// A directory (absolute path) that records the instance ids signed, so that each signs
    /// once (not needed when the expected certnames are in S3: their store records them).
    pub signed_instances_dir: Option<String>,
}

/// Where a matching key was found in the CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    ChallengePassword,
    PpPresharedKey,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::ChallengePassword => "challengePassword",
            KeySource::PpPresharedKey => "pp_preshared_key",
        }
    }
}

/// The policy, ready to decide: keys hashed, the keys file read, the pattern compiled.
pub struct Rules {
    /// `None`: no key rule. `Some(empty)`: a key rule that accepts nothing.
    pub(super) key_digests: Option<Vec<[u8; 32]>>,
    pub(super) accept_pp_preshared_key: bool,
    pub(super) pattern: Option<Regex>,
    pub(super) expected_dir: Option<PathBuf>,
    pub(super) expected_s3: Option<std::sync::Arc<super::s3::S3Store>>,
    pub(super) identity: Option<super::identity::IdentityRule>,
    /// Where signed instance ids are recorded without S3.
    pub(super) signed_instances_dir: Option<PathBuf>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("keys", &self.key_digests.as_ref().map(Vec::len))
            .field("accept_pp_preshared_key", &self.accept_pp_preshared_key)
            .field("pattern", &self.pattern.as_ref().map(Regex::as_str))
            .field("expected_dir", &self.expected_dir)
            .field("expected_s3", &self.expected_s3)
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl Rules {
    /// Resolves a parsed policy: reads and checks the keys file and the expected-certnames
    /// directory. `policy_path` is only for messages.
    pub fn from_policy(policy: &Policy, policy_path: &str) -> Result<Rules, AutosignError> {
        let mut keys: Option<Vec<String>> = policy
            .preshared_keys
            .as_ref()
            .map(|list| list.iter().map(|s| s.0.clone()).collect());
        if let Some(file) = &policy.preshared_keys_file {
            let file_keys = read_keys_file(Path::new(file))?;
            keys.get_or_insert_with(Vec::new).extend(file_keys);
        }
        let pattern = match &policy.certname_pattern {
            Some(p) => Some(anchored(p).map_err(|e| AutosignError::InvalidPolicy {
                path: policy_path.to_owned(),
                problems: vec![format!("certname_pattern: {e}")],
            })?),
            None => None,
        };
        let invalid = |problem: String| AutosignError::InvalidPolicy {
            path: policy_path.to_owned(),
            problems: vec![problem],
        };
        let (dir, s3) = match (&policy.expected_certnames_dir, &policy.expected_certnames) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "expected_certnames and expected_certnames_dir: give one".into(),
                ));
            }
            (Some(dir), None) => (Some(dir.clone()), None),
            (None, Some(url)) if url.starts_with("s3://") => (None, Some(url.clone())),
            (None, Some(dir)) => (Some(dir.clone()), None),
            (None, None) => (None, None),
        };
        let expected_dir = match dir {
            Some(dir) => {
                check_expected_dir(Path::new(&dir))?;
                Some(PathBuf::from(dir))
            }
            None => None,
        };
        let expected_s3 = match s3 {
            Some(url) => {
                let location = super::s3::S3Location::parse(&url)
                    .map_err(|e| invalid(format!("expected_certnames: {e}")))?;
                let timeout = policy.store_timeout_secs.unwrap_or(5);
                if !(1..=30).contains(&timeout) {
                    return Err(invalid(format!(
                        "store_timeout_secs: {timeout} is not between 1 and 30"
                    )));
                }
                let endpoint = super::s3::Endpoint {
                    url: policy.s3_endpoint.clone(),
                    region: policy.s3_region.clone(),
                };
                Some(std::sync::Arc::new(super::s3::S3Store::new(
                    location,
                    &endpoint,
                    std::time::Duration::from_secs(timeout),
                    policy_path,
                )?))
            }
            None => None,
        };
        let mut signed_instances_dir = None;
        let identity = match &policy.aws_identity {
            Some(rule) => {
                let mut keys = Vec::new();
                for file in &rule.certificates {
                    let pem = std::fs::read(file).map_err(|source| AutosignError::Read {
                        path: file.clone(),
                        source,
                    })?;
                    keys.extend(
                        super::identity::certificate_keys(&pem).map_err(|e| {
                            invalid(format!("aws_identity.certificates: {file}: {e}"))
                        })?,
                    );
                }
                if keys.is_empty() || rule.accounts.is_empty() {
                    return Err(invalid(
                        "aws_identity needs certificates and accounts: without them it signs nothing"
                            .into(),
                    ));
                }
                match (&rule.signed_instances_dir, &expected_s3) {
                    (Some(dir), _) => {
                        check_expected_dir(Path::new(dir))?;
                        signed_instances_dir = Some(PathBuf::from(dir));
                    }
                    (None, Some(_)) => {}
                    (None, None) => {
                        return Err(invalid(
                            "aws_identity needs signed_instances_dir (or the S3 store) to sign \
                             each instance once"
                                .into(),
                        ));
                    }
                }
                Some(super::identity::IdentityRule {
                    keys,
                    accounts: rule.accounts.clone(),
                    regions: rule.regions.clone(),
                    max_age: std::time::Duration::from_secs(rule.max_age_secs.unwrap_or(600)),
                })
            }
            None => None,
        };
        Ok(Rules {
            key_digests: keys.map(|keys| keys.iter().map(|k| digest(k.as_bytes())).collect()),
            accept_pp_preshared_key: policy.accept_pp_preshared_key.unwrap_or(true),
            pattern,
            expected_dir,
            identity,
            signed_instances_dir,
            expected_s3,
        })
    }

    /// Whether the policy configures any rule besides CN == certname.
    pub fn has_rules(&self) -> bool {
        self.key_digests.is_some()
            || self.pattern.is_some()
            || self.expected_dir.is_some()
            || self.expected_s3.is_some()
            || self.identity.is_some()
    }
}

pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Opens a file that holds secrets and refuses it when others may read or change it. The
/// mode is taken from the open file, so it is the file that is then read.
pub fn open_private(path: &Path) -> Result<(File, String), AutosignError> {
    let shown = path.display().to_string();
    let read_err = |source| AutosignError::Read {
        path: shown.clone(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(io::Error::other("not a regular file")));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o004 != 0 {
        return Err(AutosignError::WorldReadable { path: shown, mode });
    }
    if mode & 0o002 != 0 {
        return Err(AutosignError::WorldWritable { path: shown, mode });
    }
    Ok((file, shown))
}

pub fn read_bounded(file: File, path: &str) -> Result<String, AutosignError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_POLICY_BYTES).unwrap_or(u64::MAX);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| AutosignError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(AutosignError::TooLarge {
            path: path.to_owned(),
            limit: MAX_POLICY_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| AutosignError::InvalidPolicy {
        path: path.to_owned(),
        problems: vec!["not UTF-8 text".into()],
    })
}

/// The keys of a keys file, in file order.
pub fn read_keys_file(path: &Path) -> Result<Vec<String>, AutosignError> {
    let (file, shown) = open_private(path)?;
    let text = read_bounded(file, &shown)?;
    Ok(parse_keys(&text))
}

/// One key per line; blank lines and `#` comment lines are skipped, spaces around keys dropped.
pub fn parse_keys(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

pub fn check_expected_dir(dir: &Path) -> Result<(), AutosignError> {
    let shown = dir.display().to_string();
    let meta = std::fs::metadata(dir).map_err(|source| AutosignError::Read {
        path: shown.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(AutosignError::Read {
            path: shown,
            source: io::Error::other("expected_certnames_dir is not a directory"),
        });
    }
    let mode = meta.mode() & 0o7777;
    // Whoever can create a file there can approve a certname.
    if mode & 0o002 != 0 {
        return Err(AutosignError::WorldWritable { path: shown, mode });
    }
    Ok(())
}

/// Parses the policy text (pure: no file is read). Syntax errors, unknown keys, duplicate keys
/// and invalid values are all errors, each with its position.
pub fn parse_policy(text: &str, path: &str) -> Result<Policy, AutosignError> {
    let invalid = |problems| AutosignError::InvalidPolicy {
        path: path.to_owned(),
        problems,
    };
    let doc = yaml::parse(text, &Limits::default()).map_err(|e| {
        // The YAML parser leaves the message empty for some syntax errors (`[a` unclosed).
        let message = if e.message.trim().is_empty() {
            "invalid YAML".to_owned()
        } else {
            e.message.replace('\n', " ")
        };
        invalid(vec![format!("{}: {message}", e.pos)])
    })?;
    let Some(root) = doc.root else {
        return Ok(Policy::default());
    };
    let ctx = Context::new();
    let result: Result<Policy, _> = from_node(&root, &ctx);
    let mut problems: Vec<String> = ctx
        .take_unknown()
        .into_iter()
        .map(|u| format!("{}: unknown key `{}`", u.pos, u.path))
        .collect();
    for dup in doc.duplicates {
        problems.push(format!("{}: duplicate key `{}`", dup.second, dup.key));
    }
    let policy = match result {
        Err(e) => {
            let pos = e.pos.unwrap_or(root.pos);
            // A type error quotes the value it found; under `preshared_keys` (or for the
            // whole document) that value may be a key, and this message goes to a log.
            let secret = e.path.is_empty()
                || e.path == "preshared_keys"
                || e.path.starts_with("preshared_keys[");
            let message = if secret {
                let general = e.message.split(" (").next().unwrap_or_default();
                format!("{general} (the value is not shown: it may be a key)")
            } else {
                e.message
            };
            let at = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path)
            };
            problems.push(format!("{pos}: {at}{message}"));
            return Err(invalid(problems));
        }
        Ok(policy) => policy,
    };
    let at = |key: &str| ctx.pos(key).unwrap_or(root.pos);
    for (i, key) in policy.preshared_keys.iter().flatten().enumerate() {
        if key.0.is_empty() {
            let path = format!("preshared_keys[{i}]");
            problems.push(format!(
                "{}: {path}: an empty key is not accepted",
                at(&path)
            ));
        }
    }
    let expected_dir = policy
        .expected_certnames
        .as_deref()
        .filter(|v| !v.starts_with("s3://"));
    for key in [
        "preshared_keys_file",
        "expected_certnames_dir",
        "expected_certnames",
    ] {
        let value = match key {
            "preshared_keys_file" => policy.preshared_keys_file.as_deref(),
            "expected_certnames_dir" => policy.expected_certnames_dir.as_deref(),
            _ => expected_dir,
        };
        if let Some(value) = value {
            let check = values::single_line(value).and_then(|()| {
                if value.starts_with('/') {
                    Ok(())
                } else {
                    Err(format!("{value:?} must be an absolute path"))
                }
            });
            if let Err(e) = check {
                problems.push(format!("{}: {key}: {e}", at(key)));
            }
        }
    }
    if let Some(pattern) = &policy.certname_pattern {
        // The pattern as written, for a message about what the user wrote; then anchored.
        if let Err(e) = Regex::new(pattern).and_then(|_| anchored(pattern)) {
            // The regex crate's message spans lines (pattern, caret, reason).
            let e = e.to_string().replace('\n', " ");
            problems.push(format!("{}: certname_pattern: {e}", at("certname_pattern")));
        }
    }
    if problems.is_empty() {
        Ok(policy)
    } else {
        Err(invalid(problems))
    }
}

/// Reads the policy at `path` with its permission checks, then its keys file and directory.
pub fn load_policy(path: &Path) -> Result<Rules, AutosignError> {
    let (file, shown) = open_private(path)?;
    let text = read_bounded(file, &shown)?;
    let policy = parse_policy(&text, &shown)?;
    let rules = Rules::from_policy(&policy, &shown)?;
    log::debug!("autosign policy {shown}: {rules:?}");
    Ok(rules)
}

/// The JSON Schema of [`Policy`] (`schema/autosign-policy.schema.json`).
pub fn policy_schema() -> String {
    let schema = schemars::schema_for!(Policy);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
