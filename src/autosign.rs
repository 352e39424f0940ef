//! `cloudcfg autosign`: puppetserver's policy executable (contract.md, "Commands";
//! docs/autosign.md for operators).
//!
//! puppetserver runs it, as the `puppet` user, once per certificate request: the certname is
//! the one argument and the CSR (PEM) comes on standard input. Exit 0 signs; any other code
//! leaves the request pending for a person. cloudcfg uses 1 for "refused by a rule" and 2 for
//! "could not decide" (the policy or the CSR is unreadable, invalid or insecure), so the two
//! read differently in puppetserver's log.
//!
//! The flow, in [`evaluate`]: read the CSR bytes (before anything can fail, so puppetserver never
//! writes into a closed pipe) -> [`load_policy`] (permissions, strict YAML, keys file, regex) ->
//! [`parse_csr`] -> [`decide`] -> [`claim`] the expected-certname files -> one line on stderr
//! ([`log_line`]). Everything fails closed: a policy without rules refuses everything, an
//! unknown policy key is an error, a CSR whose signature cannot be checked is refused.
//!
//! Keys never leave this module in the clear: accepted keys are kept as SHA-256 digests,
//! compared in constant time with every candidate from the CSR, and neither keys nor candidates
//! appear in any message or `Debug` output.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::error::X509Error;
use x509_parser::pem::Pem;

use crate::decode::de::{Context, from_node};
use crate::decode::{Limits, yaml};
use crate::system::SystemConfigError;
use crate::values;

/// The name the binary answers to as puppetserver's policy executable
/// (`/usr/lib/cloudcfg/autosign`, a link to `cloudcfg`).
pub const POLICY_EXECUTABLE_NAME: &str = "autosign";
/// First word of every decision line, so they are easy to find in puppetserver's log.
pub const LOG_PREFIX: &str = "cloudcfg-autosign";
/// PKCS#9 challengePassword.
pub const CHALLENGE_PASSWORD_OID: &str = "1.2.840.113549.1.9.7";
/// Puppet's `pp_preshared_key` extension request.
pub const PP_PRESHARED_KEY_OID: &str = "1.3.6.1.4.1.34380.1.1.4";
/// Puppet's CSRs are about 2 KiB; anything this large is not one.
pub const MAX_CSR_BYTES: usize = 256 * 1024;
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
    /// A regular expression (Rust `regex` syntax) that the whole certname must match, e.g.
    /// `i-[0-9a-f]+\.web\.example\.org`. Alone it is as weak as puppet's autosign.conf globs:
    /// anyone who can reach the CA chooses their certname.
    pub certname_pattern: Option<String>,
}

/// Why the policy or the CSR could not be used: all of these exit 2.
#[derive(Debug, thiserror::Error)]
pub enum AutosignError {
    #[error("{path}: {source}")]
    Read { path: String, source: io::Error },
    #[error(
        "{path}: readable by others (mode {mode:04o}); the puppet user runs this policy, so \
         make it 0640 root:puppet or 0600 puppet"
    )]
    WorldReadable { path: String, mode: u32 },
    #[error("{path}: writable by others (mode {mode:04o}); remove the write bit for others")]
    WorldWritable { path: String, mode: u32 },
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: String, limit: usize },
    /// Every problem as `LINE:COL: message`, or `line N: message` for the keys file.
    #[error("{path}: {}", .problems.join("; "))]
    InvalidPolicy { path: String, problems: Vec<String> },
    #[error(transparent)]
    SystemConfig(#[from] SystemConfigError),
    #[error("standard input: {0}")]
    ReadCsr(io::Error),
    #[error("the CSR on standard input is larger than {limit} bytes")]
    CsrTooLarge { limit: usize },
    #[error("unreadable CSR: {reason}")]
    InvalidCsr { reason: String },
    #[error("{path}: {source}")]
    ExpectedCertname { path: String, source: io::Error },
}

impl AutosignError {
    /// The `rule=` word of the decision line.
    pub fn rule(&self) -> &'static str {
        match self {
            AutosignError::ReadCsr(_)
            | AutosignError::CsrTooLarge { .. }
            | AutosignError::InvalidCsr { .. } => "csr",
            AutosignError::ExpectedCertname { .. } => "expected_certname",
            _ => "policy",
        }
    }
}

/// A rule of the policy, as named in decision lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The policy itself (it has no rules).
    Policy,
    /// The certname must be a plain file name.
    Certname,
    /// The CSR's common name must be the certname.
    Cn,
    /// The CSR must be signed by its own key.
    CsrSignature,
    CertnamePattern,
    PresharedKey,
    ExpectedCertname,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Policy => "policy",
            Rule::Certname => "certname",
            Rule::Cn => "cn",
            Rule::CsrSignature => "csr_signature",
            Rule::CertnamePattern => "certname_pattern",
            Rule::PresharedKey => "preshared_key",
            Rule::ExpectedCertname => "expected_certname",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    key_digests: Option<Vec<[u8; 32]>>,
    accept_pp_preshared_key: bool,
    pattern: Option<Regex>,
    expected_dir: Option<PathBuf>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("keys", &self.key_digests.as_ref().map(Vec::len))
            .field("accept_pp_preshared_key", &self.accept_pp_preshared_key)
            .field("pattern", &self.pattern.as_ref().map(Regex::as_str))
            .field("expected_dir", &self.expected_dir)
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
        let expected_dir = match &policy.expected_certnames_dir {
            Some(dir) => {
                check_expected_dir(Path::new(dir))?;
                Some(PathBuf::from(dir))
            }
            None => None,
        };
        Ok(Rules {
            key_digests: keys.map(|keys| keys.iter().map(|k| digest(k.as_bytes())).collect()),
            accept_pp_preshared_key: policy.accept_pp_preshared_key.unwrap_or(true),
            pattern,
            expected_dir,
        })
    }

    /// Whether the policy configures any rule besides CN == certname.
    pub fn has_rules(&self) -> bool {
        self.key_digests.is_some() || self.pattern.is_some() || self.expected_dir.is_some()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Opens a file that holds secrets and refuses it when others may read or change it. The
/// mode is taken from the open file, so it is the file that is then read.
fn open_private(path: &Path) -> Result<(File, String), AutosignError> {
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

fn read_bounded(file: File, path: &str) -> Result<String, AutosignError> {
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

fn check_expected_dir(dir: &Path) -> Result<(), AutosignError> {
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
    for key in ["preshared_keys_file", "expected_certnames_dir"] {
        let value = match key {
            "preshared_keys_file" => policy.preshared_keys_file.as_deref(),
            _ => policy.expected_certnames_dir.as_deref(),
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

/// Whether the CSR's signature was made with the key it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Invalid,
    /// An algorithm that x509-parser (with ring) cannot check, e.g. RSA under 2048 bits.
    Unsupported,
}

/// What the policy reads from a certificate request.
#[derive(Clone, PartialEq, Eq)]
pub struct Csr {
    /// Every CN of the subject (a proper request has exactly one).
    pub common_names: Vec<String>,
    /// The values of every `challengePassword` attribute.
    pub challenge_passwords: Vec<Vec<u8>>,
    /// The values of every `pp_preshared_key` extension request: the string inside the DER
    /// value, or the raw bytes when the value is not one DER string.
    pub pp_preshared_keys: Vec<Vec<u8>>,
    pub signature: SignatureCheck,
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csr")
            .field("common_names", &self.common_names)
            .field("challenge_passwords", &self.challenge_passwords.len())
            .field("pp_preshared_keys", &self.pp_preshared_keys.len())
            .field("signature", &self.signature)
            .finish()
    }
}

fn invalid_csr(reason: impl Into<String>) -> AutosignError {
    AutosignError::InvalidCsr {
        reason: reason.into(),
    }
}

/// Parses the one PEM certificate request puppetserver sends.
pub fn parse_csr(pem: &[u8]) -> Result<Csr, AutosignError> {
    let mut blocks = Pem::iter_from_buffer(pem);
    let block = match blocks.next() {
        None => return Err(invalid_csr("no PEM block on standard input")),
        Some(Err(e)) => return Err(invalid_csr(format!("bad PEM: {e}"))),
        Some(Ok(block)) => block,
    };
    if blocks.next().is_some() {
        return Err(invalid_csr(
            "more than one PEM block; expected exactly one CSR",
        ));
    }
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(invalid_csr(format!(
            "a PEM block labelled {:?}, expected CERTIFICATE REQUEST",
            block.label
        )));
    }
    parse_csr_der(&block.contents)
}

/// Parses a DER certificate request.
pub fn parse_csr_der(der: &[u8]) -> Result<Csr, AutosignError> {
    let (rest, request) = X509CertificationRequest::from_der(der)
        .map_err(|e| invalid_csr(format!("not a PKCS#10 certificate request: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid_csr("trailing bytes after the certificate request"));
    }
    let info = &request.certification_request_info;
    let mut common_names = Vec::new();
    for cn in info.subject.iter_common_name() {
        let text = cn
            .as_str()
            .map_err(|e| invalid_csr(format!("the subject's CN is not text: {e}")))?;
        common_names.push(text.to_owned());
    }
    let mut challenge_passwords = Vec::new();
    let mut pp_preshared_keys = Vec::new();
    for attribute in info.iter_attributes() {
        match attribute.parsed_attribute() {
            ParsedCriAttribute::ChallengePassword(password) => {
                challenge_passwords.push(password.0.as_bytes().to_vec());
            }
            ParsedCriAttribute::ExtensionRequest(request) => {
                for extension in &request.extensions {
                    if extension.oid.to_id_string() == PP_PRESHARED_KEY_OID {
                        pp_preshared_keys.push(extension_string(extension.value));
                    }
                }
            }
            ParsedCriAttribute::UnsupportedAttribute => {}
        }
    }
    let signature = match request.verify_signature() {
        Ok(()) => SignatureCheck::Valid,
        Err(X509Error::SignatureUnsupportedAlgorithm) => SignatureCheck::Unsupported,
        Err(_) => SignatureCheck::Invalid,
    };
    Ok(Csr {
        common_names,
        challenge_passwords,
        pp_preshared_keys,
        signature,
    })
}

/// Puppet puts a DER UTF8String inside the extension's OCTET STRING; other tools may put the
/// text itself there.
fn extension_string(value: &[u8]) -> Vec<u8> {
    if let Ok((rest, any)) = Any::from_der(value) {
        let string_tags = [
            Tag::Utf8String,
            Tag::PrintableString,
            Tag::Ia5String,
            Tag::VisibleString,
        ];
        if rest.is_empty()
            && any.class() == Class::Universal
            && !any.header.is_constructed()
            && string_tags.contains(&any.tag())
        {
            return any.data.to_vec();
        }
    }
    value.to_vec()
}

/// What the rules say about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sign, once the `claims` (expected-certname files, empty without that rule) are removed.
    Sign {
        claims: Vec<PathBuf>,
        /// What held, for the decision line.
        detail: String,
    },
    Refuse {
        rule: Rule,
        reason: String,
    },
}

fn refuse(rule: Rule, reason: impl Into<String>) -> Decision {
    Decision::Refuse {
        rule,
        reason: reason.into(),
    }
}

/// Matches every candidate against every key, in constant time, without stopping at a match.
fn any_key_matches(key_digests: &[[u8; 32]], candidates: &[Vec<u8>]) -> bool {
    let mut found = Choice::from(0u8);
    for candidate in candidates {
        let candidate = digest(candidate);
        for key in key_digests {
            found |= key.as_slice().ct_eq(candidate.as_slice());
        }
    }
    found.into()
}

/// The files whose existence approves `certname`: its own name, then its first label.
pub fn expected_names(certname: &str) -> Vec<&str> {
    let mut names = vec![certname];
    if let Some((first, _)) = certname.split_once('.')
        && !first.is_empty()
    {
        names.push(first);
    }
    names
}

/// Applies the rules to a request. Only the expected-certname rule looks at the file system
/// (read-only; [`claim`] removes the files after a signing decision).
pub fn decide(rules: &Rules, certname: &str, csr: &Csr) -> Result<Decision, AutosignError> {
    if !rules.has_rules() {
        return Ok(refuse(Rule::Policy, "policy has no rules"));
    }
    // Before the certname is used as a file name, or compared with anything.
    if let Err(e) = values::plain_file_name(certname) {
        return Ok(refuse(Rule::Certname, format!("certname {e}")));
    }
    match csr.common_names.as_slice() {
        [cn] if cn == certname => {}
        [] => return Ok(refuse(Rule::Cn, "the CSR's subject has no CN")),
        [cn] => {
            return Ok(refuse(
                Rule::Cn,
                format!("the CSR's CN {cn:?} is not the certname"),
            ));
        }
        many => {
            return Ok(refuse(
                Rule::Cn,
                format!("the CSR's subject has {} CNs, expected one", many.len()),
            ));
        }
    }
    match csr.signature {
        SignatureCheck::Valid => {}
        SignatureCheck::Invalid => {
            return Ok(refuse(
                Rule::CsrSignature,
                "the CSR is not signed by the key it carries",
            ));
        }
        SignatureCheck::Unsupported => {
            return Ok(refuse(
                Rule::CsrSignature,
                "the CSR's signature algorithm cannot be checked",
            ));
        }
    }
    let mut held = vec![Rule::Cn.to_string(), Rule::CsrSignature.to_string()];
    if let Some(pattern) = &rules.pattern {
        if !pattern.is_match(certname) {
            return Ok(refuse(
                Rule::CertnamePattern,
                format!("certname does not match {:?}", pattern.as_str()),
            ));
        }
        held.push(Rule::CertnamePattern.to_string());
    }
    if let Some(key_digests) = &rules.key_digests {
        // Both sources are always compared (when accepted), so the time taken does not tell
        // which one matched, or whether one did.
        let by_challenge = any_key_matches(key_digests, &csr.challenge_passwords);
        let by_extension =
            rules.accept_pp_preshared_key && any_key_matches(key_digests, &csr.pp_preshared_keys);
        let source = match (by_challenge, by_extension) {
            (true, _) => KeySource::ChallengePassword,
            (false, true) => KeySource::PpPresharedKey,
            (false, false) => {
                let offered = !csr.challenge_passwords.is_empty()
                    || (rules.accept_pp_preshared_key && !csr.pp_preshared_keys.is_empty());
                let reason = if key_digests.is_empty() {
                    "the policy accepts no key (its key list is empty)"
                } else if offered {
                    "the CSR's key is not an accepted one"
                } else if !csr.pp_preshared_keys.is_empty() {
                    "the CSR has no challengePassword, and pp_preshared_key is not accepted"
                } else {
                    "the CSR carries no key"
                };
                return Ok(refuse(Rule::PresharedKey, reason));
            }
        };
        held.push(format!("{} ({})", Rule::PresharedKey, source.as_str()));
    }
    let mut claims = Vec::new();
    if let Some(dir) = &rules.expected_dir {
        let mut found = Vec::new();
        for name in expected_names(certname) {
            let path = dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    found.push(name.to_owned());
                    claims.push(path);
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(AutosignError::ExpectedCertname {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        if claims.is_empty() {
            return Ok(refuse(
                Rule::ExpectedCertname,
                format!(
                    "no file named {} in {}",
                    expected_names(certname).join(" or "),
                    dir.display()
                ),
            ));
        }
        held.push(format!("{} ({})", Rule::ExpectedCertname, found.join(", ")));
    }
    Ok(Decision::Sign {
        claims,
        detail: held.join(", "),
    })
}

/// The end of one run: what is logged and which exit code puppetserver sees.
#[derive(Debug)]
pub enum Outcome {
    Signed { detail: String },
    Refused { rule: Rule, reason: String },
    Error(AutosignError),
}

impl Outcome {
    /// The one mapping to the contract's exit codes.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Signed { .. } => 0,
            Outcome::Refused { .. } => 1,
            Outcome::Error(_) => 2,
        }
    }
}

/// Removes the expected-certname files of a signing decision. Removing is the claim: when two
/// requests race, only the one whose removal succeeded signs, so each file signs once.
pub fn claim(decision: Decision) -> Outcome {
    match decision {
        Decision::Refuse { rule, reason } => Outcome::Refused { rule, reason },
        Decision::Sign { claims, detail } if claims.is_empty() => Outcome::Signed { detail },
        Decision::Sign { claims, detail } => {
            let mut claimed = false;
            for path in &claims {
                match std::fs::remove_file(path) {
                    Ok(()) => claimed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Outcome::Error(AutosignError::ExpectedCertname {
                            path: path.display().to_string(),
                            source,
                        });
                    }
                }
            }
            if claimed {
                Outcome::Signed { detail }
            } else {
                Outcome::Refused {
                    rule: Rule::ExpectedCertname,
                    reason: "the expected-certname file was used by a concurrent request".into(),
                }
            }
        }
    }
}

/// A log field value: bare when it is plainly safe, else quoted with escapes, so a certname
/// can never forge a second log line or a field.
fn field(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '@'));
    if bare {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// The one decision line:
/// `cloudcfg-autosign: certname=C rule=R result=signed|refused|error detail="..."`;
/// `rule=all` when signed.
pub fn log_line(certname: &str, outcome: &Outcome) -> String {
    let (rule, result, detail) = match outcome {
        Outcome::Signed { detail } => ("all", "signed", detail.clone()),
        Outcome::Refused { rule, reason } => (rule.as_str(), "refused", reason.clone()),
        Outcome::Error(e) => (e.rule(), "error", e.to_string()),
    };
    format!(
        "{LOG_PREFIX}: certname={} rule={rule} result={result} detail={detail:?}",
        field(certname)
    )
}

/// Reads the CSR bytes, bounded.
pub fn read_csr(input: &mut dyn Read) -> Result<Vec<u8>, AutosignError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_CSR_BYTES).unwrap_or(u64::MAX);
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(AutosignError::ReadCsr)?;
    if bytes.len() > MAX_CSR_BYTES {
        return Err(AutosignError::CsrTooLarge {
            limit: MAX_CSR_BYTES,
        });
    }
    Ok(bytes)
}

/// The whole decision for one request, without printing it.
pub fn evaluate(policy_path: &Path, certname: &str, csr: &mut dyn Read) -> Outcome {
    // Read standard input first, whatever happens next: puppetserver writes the CSR into it.
    let pem = match read_csr(csr) {
        Ok(pem) => pem,
        Err(e) => return Outcome::Error(e),
    };
    let rules = match load_policy(policy_path) {
        Ok(rules) => rules,
        Err(e) => return Outcome::Error(e),
    };
    let csr = match parse_csr(&pem) {
        Ok(csr) => csr,
        Err(e) => return Outcome::Error(e),
    };
    log::debug!("autosign request {certname:?}: {csr:?}");
    match decide(&rules, certname, &csr) {
        Ok(decision) => claim(decision),
        Err(e) => Outcome::Error(e),
    }
}

/// Writes the decision line for `outcome` and returns its exit code.
pub fn report(certname: &str, outcome: &Outcome, err: &mut dyn Write) -> u8 {
    // A closed stderr must not turn a decision into a panic; the exit code still tells.
    let _ = writeln!(err, "{}", log_line(certname, outcome));
    let _ = err.flush();
    outcome.exit_code()
}

/// `cloudcfg autosign`: decides on the CSR in `csr` for `certname` under the policy at
/// `policy_path`, writes one decision line to `err`, and returns the exit code (0 sign,
/// 1 refuse, 2 unreadable CSR or policy).
pub fn run(policy_path: &Path, certname: &str, csr: &mut dyn Read, err: &mut dyn Write) -> u8 {
    let outcome = evaluate(policy_path, certname, csr);
    report(certname, &outcome, err)
}

/// Whether the binary was started as `autosign` (argv[0]'s file name), i.e. as
/// `/usr/lib/cloudcfg/autosign` by puppetserver.
pub fn invoked_as_policy_executable(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(POLICY_EXECUTABLE_NAME))
}

/// The command line `autosign CERTNAME` stands for: `cloudcfg autosign -- CERTNAME`. The `--`
/// keeps a certname such as `--policy=/tmp/x` from being read as an option.
pub fn policy_executable_args(args: &[OsString]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["cloudcfg".into(), "autosign".into(), "--".into()];
    out.extend(args.iter().skip(1).cloned());
    out
}

/// The JSON Schema of [`Policy`] (`schema/autosign-policy.schema.json`).
pub fn policy_schema() -> String {
    let schema = schemars::schema_for!(Policy);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
