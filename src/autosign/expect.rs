//! The launcher's side of the expected-certname rule: `cloudcfg autosign expect CERTNAME
//! [--ttl DURATION]` writes the expectation that a later request is signed by, `forget` takes
//! it back. An expectation may carry an expiry (`expires: RFC 3339` on its first line); past
//! it, the policy no longer honours the file (an empty file, as earlier versions and people
//! write them, never expires).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::AutosignError;
use super::policy::Rules;
use crate::values;
use crate::writer::Writer;

const EXPIRES: &str = "expires:";

/// More than any expectation file cloudcfg writes; a bigger one is read no further.
const MAX_EXPECTATION_BYTES: u64 = 4096;

/// The content of an expectation file.
pub fn expectation_text(expires: Option<SystemTime>) -> String {
    match expires {
        Some(t) => format!(
            "{EXPIRES} {}\n# Written by `cloudcfg autosign expect`; removed when the request is signed.\n",
            humantime::format_rfc3339_seconds(t)
        ),
        None => "# Written by `cloudcfg autosign expect`; removed when the request is signed.\n"
            .to_owned(),
    }
}

/// When the expectation in `path` stopped counting, if it has (its `expires:` is not after
/// `now`). An `expires:` line that cannot be read counts as expired: fail closed.
pub fn expired_at(path: &Path, now: SystemTime) -> Result<Option<String>, std::io::Error> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_EXPECTATION_BYTES)
        .read_to_string(&mut text)
        .or_else(|e| match e.kind() {
            // Not text: no `expires:` line to honour or to refuse.
            std::io::ErrorKind::InvalidData => Ok(0),
            _ => Err(e),
        })?;
    Ok(expired_in(&text, now))
}

/// [`expired_at`] for an expectation's text (an S3 object's body).
pub fn expired_in(text: &str, now: SystemTime) -> Option<String> {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(EXPIRES))
        .map(str::trim)?;
    match humantime::parse_rfc3339(value) {
        Ok(t) if t > now => None,
        Ok(_) => Some(value.to_owned()),
        Err(_) => Some(format!("{value:?} (not an RFC 3339 time)")),
    }
}

fn expected_dir(rules: &Rules, policy_path: &str) -> Result<PathBuf, AutosignError> {
    rules
        .expected_dir
        .clone()
        .ok_or_else(|| AutosignError::InvalidPolicy {
            path: policy_path.to_owned(),
            problems: vec!["no expected_certnames_dir: there is nothing to expect".into()],
        })
}

fn file_for(dir: &Path, certname: &str) -> Result<PathBuf, AutosignError> {
    values::plain_file_name(certname).map_err(|reason| AutosignError::InvalidCertname {
        certname: certname.to_owned(),
        reason,
    })?;
    Ok(dir.join(certname))
}

/// Writes the expectation for `certname` (atomically, 0644: the name is no secret) in the
/// policy's directory; `ttl` from `now` sets its expiry. Returns the file.
pub fn expect(
    rules: &Rules,
    policy_path: &str,
    certname: &str,
    ttl: Option<Duration>,
    now: SystemTime,
) -> Result<String, AutosignError> {
    let text = expectation_text(ttl.map(|ttl| now + ttl));
    if let Some(store) = &rules.expected_s3 {
        values::plain_file_name(certname).map_err(|reason| AutosignError::InvalidCertname {
            certname: certname.to_owned(),
            reason,
        })?;
        // A launcher that expects a name again (a rebuilt instance) also takes back the claim
        // of the earlier signing, which would refuse the new request as a replay.
        store
            .delete(&format!("{}{certname}", super::s3::CLAIMED))
            .and_then(|()| store.put(certname, text.as_bytes(), false))
            .map_err(|e| AutosignError::Store(e.to_string()))?;
        return Ok(format!("{}{certname}", store.describe()));
    }
    let dir = expected_dir(rules, policy_path)?;
    let path = file_for(&dir, certname)?;
    let target = path.to_string_lossy().into_owned();
    let meta = std::fs::metadata(&dir).map_err(|source| AutosignError::ExpectedCertname {
        path: dir.display().to_string(),
        source,
    })?;
    // Owned like the directory, whose owner (the puppet user) removes it when it signs.
    use std::os::unix::fs::MetadataExt;
    Writer::new("/")
        .write(&target, text.as_bytes(), 0o644, meta.uid(), meta.gid())
        .map_err(|e| AutosignError::ExpectedCertname {
            path: target.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(path.display().to_string())
}

/// Removes the expectation for `certname`; `false` when there was none.
pub fn forget(rules: &Rules, policy_path: &str, certname: &str) -> Result<bool, AutosignError> {
    if let Some(store) = &rules.expected_s3 {
        values::plain_file_name(certname).map_err(|reason| AutosignError::InvalidCertname {
            certname: certname.to_owned(),
            reason,
        })?;
        let store_error = |e: super::s3::StoreError| AutosignError::Store(e.to_string());
        let existed = store.get(certname).map_err(store_error)?.is_some();
        store.delete(certname).map_err(store_error)?;
        return Ok(existed);
    }
    let dir = expected_dir(rules, policy_path)?;
    let path = file_for(&dir, certname)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(AutosignError::ExpectedCertname {
            path: path.display().to_string(),
            source,
        }),
    }
}
