//! The decision: every rule of the policy must hold; an expected certname is claimed once.

use std::fmt;
use std::io;

use subtle::{Choice, ConstantTimeEq};

use std::path::PathBuf;

use super::csr::{Csr, SignatureCheck};
use super::error::AutosignError;
use super::policy::{KeySource, Rules, digest};
use crate::values;

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
    /// EC2's signed instance identity (`aws_identity`).
    AwsIdentity,
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
            Rule::AwsIdentity => "aws_identity",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rules say about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sign, once the `claims` (expected-certname files, empty without that rule) are removed
    /// and the `store_claims` made.
    Sign {
        claims: Vec<PathBuf>,
        store_claims: Vec<StoreClaim>,
        /// Where the signed instance id is recorded (`aws_identity`): signing once.
        instance_record: Option<InstanceRecord>,
        /// What held, for the decision line.
        detail: String,
    },
    Refuse {
        rule: Rule,
        reason: String,
    },
}

pub fn refuse(rule: Rule, reason: impl Into<String>) -> Decision {
    Decision::Refuse {
        rule,
        reason: reason.into(),
    }
}

/// Matches every candidate against every key, in constant time, without stopping at a match.
pub fn any_key_matches(key_digests: &[[u8; 32]], candidates: &[Vec<u8>]) -> bool {
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

/// Where an instance id signed under `aws_identity` is recorded; the record is the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceRecord {
    /// Created with `O_EXCL` in `signed_instances_dir`.
    File(PathBuf),
    /// `prefix/identity-signed/ID` in the S3 store, created with `If-None-Match: *`.
    Store(StoreClaim),
}

/// An expectation in the S3 store that a signing decision claims.
#[derive(Clone)]
pub struct StoreClaim {
    pub store: std::sync::Arc<super::s3::S3Store>,
    pub name: String,
}

/// The same expectation of the same store.
impl PartialEq for StoreClaim {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.store, &other.store) && self.name == other.name
    }
}

impl Eq for StoreClaim {}

impl std::fmt::Debug for StoreClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.store.describe(), self.name)
    }
}

/// Applies the rules to a request. Only the expected-certname rule looks outside the request:
/// at its directory or its S3 store, read-only ([`claim`] removes the files, or claims the
/// objects, after a signing decision).
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
    let mut instance_record = None;
    if let Some(rule) = &rules.identity {
        let (Some(document), Some(signature)) = (&csr.identity_document, &csr.identity_signature)
        else {
            return Ok(refuse(
                Rule::AwsIdentity,
                "the CSR carries no instance identity (puppet: {attest: aws_iid} on the instance)",
            ));
        };
        use base64::Engine;
        let b64 = |what: &str, text: &[u8], limit: usize| {
            if text.len() > limit * 2 {
                return Err(format!("the {what} is larger than {limit} bytes"));
            }
            let text: Vec<u8> = text
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("the {what} is not base64: {e}"))
        };
        let checked = b64("document", document, super::identity::MAX_DOCUMENT_BYTES)
            .and_then(|doc| {
                b64("signature", signature, super::identity::MAX_SIGNATURE_BYTES)
                    .map(|sig| (doc, sig))
            })
            .and_then(|(doc, sig)| super::identity::verify(&doc, &sig, &rule.keys));
        let identity = match checked {
            Ok(identity) => identity,
            Err(reason) => return Ok(refuse(Rule::AwsIdentity, reason)),
        };
        let instance_id = certname.split('.').next().unwrap_or(certname);
        if let Err(reason) = rule.check(&identity, instance_id, std::time::SystemTime::now()) {
            return Ok(refuse(Rule::AwsIdentity, reason));
        }
        held.push(format!(
            "{} ({} in {})",
            Rule::AwsIdentity,
            identity.instance_id,
            identity.account_id
        ));
        instance_record = Some(match (&rules.signed_instances_dir, &rules.expected_s3) {
            (Some(dir), _) => InstanceRecord::File(dir.join(&identity.instance_id)),
            (None, Some(store)) => InstanceRecord::Store(StoreClaim {
                store: std::sync::Arc::clone(store),
                name: format!("identity-signed/{}", identity.instance_id),
            }),
            // The policy refuses to load without one of them.
            (None, None) => return Ok(refuse(Rule::Policy, "aws_identity has no record")),
        });
    }
    let mut claims = Vec::new();
    if let Some(dir) = &rules.expected_dir {
        let mut found = Vec::new();
        let mut expired = Vec::new();
        let now = std::time::SystemTime::now();
        for name in expected_names(certname) {
            let path = dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => match super::expect::expired_at(&path, now) {
                    Ok(None) => {
                        found.push(name.to_owned());
                        claims.push(path);
                    }
                    Ok(Some(at)) => expired.push(format!("{name} expired at {at}")),
                    Err(source) => {
                        return Err(AutosignError::ExpectedCertname {
                            path: path.display().to_string(),
                            source,
                        });
                    }
                },
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
        if claims.is_empty() && !expired.is_empty() {
            return Ok(refuse(
                Rule::ExpectedCertname,
                format!("the expectation {}", expired.join("; ")),
            ));
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
    let mut store_claims = Vec::new();
    if let Some(store) = &rules.expected_s3 {
        let now = std::time::SystemTime::now();
        let mut found = Vec::new();
        let mut expired = Vec::new();
        for name in expected_names(certname) {
            match store.get(name) {
                Ok(Some(body)) => {
                    match super::expect::expired_in(&String::from_utf8_lossy(&body), now) {
                        None => {
                            found.push(name.to_owned());
                            store_claims.push(StoreClaim {
                                store: std::sync::Arc::clone(store),
                                name: name.to_owned(),
                            });
                        }
                        Some(at) => expired.push(format!("{name} expired at {at}")),
                    }
                }
                Ok(None) => {}
                // Fail closed: a store that is down, slow or answers garbage refuses.
                Err(e) => return Ok(refuse(Rule::ExpectedCertname, format!("store: {e}"))),
            }
        }
        if store_claims.is_empty() {
            let reason = match expired.is_empty() {
                true => format!(
                    "no object {} in {}",
                    expected_names(certname).join(" or "),
                    store.describe()
                ),
                false => format!("the expectation {}", expired.join("; ")),
            };
            return Ok(refuse(Rule::ExpectedCertname, reason));
        }
        held.push(format!(
            "{} ({} in {})",
            Rule::ExpectedCertname,
            found.join(", "),
            store.describe()
        ));
    }
    Ok(Decision::Sign {
        claims,
        store_claims,
        instance_record,
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
    let (claims, store_claims, instance_record, detail) = match decision {
        Decision::Refuse { rule, reason } => return Outcome::Refused { rule, reason },
        Decision::Sign {
            claims,
            store_claims,
            instance_record,
            detail,
        } => (claims, store_claims, instance_record, detail),
    };
    // The instance's record first: a second request of the same instance must not use up an
    // expectation.
    let signed_before = || Outcome::Refused {
        rule: Rule::AwsIdentity,
        reason: "this instance was signed before".into(),
    };
    match &instance_record {
        None => {}
        Some(InstanceRecord::File(path)) => {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return signed_before(),
                Err(source) => {
                    return Outcome::Error(AutosignError::ExpectedCertname {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Some(InstanceRecord::Store(StoreClaim { store, name })) => {
            match store.put(name, b"signed\n", true) {
                Ok(true) => {}
                Ok(false) => return signed_before(),
                Err(e) => {
                    return Outcome::Refused {
                        rule: Rule::AwsIdentity,
                        reason: format!("store: {e}"),
                    };
                }
            }
        }
    }
    if !claims.is_empty() {
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
        if !claimed {
            return Outcome::Refused {
                rule: Rule::ExpectedCertname,
                reason: "the expected-certname file was used by a concurrent request".into(),
            };
        }
    }
    if !store_claims.is_empty() {
        let mut claimed = false;
        for StoreClaim { store, name } in &store_claims {
            match store.claim(name) {
                Ok(true) => {
                    claimed = true;
                    // Used up; the claim marker stays and refuses a replay. A failure to
                    // remove it changes nothing: the marker decides.
                    if let Err(e) = store.delete(name) {
                        log::warn!("{e}: the used expectation stays (its claim refuses it)");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    return Outcome::Refused {
                        rule: Rule::ExpectedCertname,
                        reason: format!("store: {e}"),
                    };
                }
            }
        }
        if !claimed {
            return Outcome::Refused {
                rule: Rule::ExpectedCertname,
                reason: "already claimed: signed before, or by a concurrent request on another CA"
                    .into(),
            };
        }
    }
    Outcome::Signed { detail }
}
