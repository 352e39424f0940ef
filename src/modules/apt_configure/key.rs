//! The signing key of one source or mirror: `key` (an armored block, written as is), `keyid`
//! (fetched from `keyserver`, its fingerprint checked), each into a keyring of its own.

use crate::action::{ActionKind, Facts, PlanError, Text};
use crate::module::{Checker, Planner};
use crate::values::{self, KeyId};

pub fn check_key_fields(
    cx: &mut Checker<'_>,
    path: &str,
    keyid: Option<&String>,
    key: Option<&String>,
    keyserver: Option<&String>,
) {
    if let Some(keyid) = keyid {
        let p = format!("{path}.keyid");
        if let Some(id) = cx.check(&p, KeyId::parse(keyid))
            && id.is_short()
        {
            cx.warning(
                &p,
                "an 8-digit key id is easy to collide with; use the 40-digit fingerprint",
            );
        }
    }
    if let Some(key) = key {
        let fingerprints = cx.check(
            &format!("{path}.key"),
            values::armored_key_fingerprints(key).map_err(|e| format!("key {e}")),
        );
        if fingerprints.is_some()
            && let Some(reason) = values::apt3_refusal(key)
        {
            cx.warning(
                &format!("{path}.key"),
                format!("{reason}; apt-get update fails with it on Debian 13 and later"),
            );
        }
        let wanted = keyid.and_then(|k| KeyId::parse(k).ok());
        if let (Some(fingerprints), Some(wanted)) = (fingerprints, wanted)
            && !fingerprints.iter().any(|f| wanted.matches(f))
        {
            cx.error(
                &format!("{path}.keyid"),
                format!(
                    "the key block's fingerprint ({}) does not end with keyid {}",
                    fingerprints.join(", "),
                    wanted.as_str()
                ),
            );
        }
    }
    if let Some(keyserver) = keyserver {
        cx.check(&format!("{path}.keyserver"), values::keyserver(keyserver));
        if keyid.is_none() {
            cx.warning(
                &format!("{path}.keyserver"),
                "`keyserver` without `keyid` is not used",
            );
        }
    }
}

/// Where an entry's signing key comes from: its `key`, `keyid`, `keyserver` and `key_url`.
pub struct KeyFields<'a> {
    pub key: Option<&'a String>,
    pub keyid: Option<&'a String>,
    pub keyserver: Option<&'a String>,
    pub key_url: Option<&'a String>,
}

/// `key_url`: https only, with the `keyid` its key must have, instead of `key`.
pub fn check_key_url(cx: &mut Checker<'_>, path: &str, key_url: &str, keyid: bool, key: bool) {
    let p = format!("{path}.key_url");
    if cx.check(&p, values::url(key_url)).is_some() && !key_url.starts_with("https://") {
        cx.error(&p, "must be an https:// URL: the key decides what apt trusts");
    }
    if !keyid {
        cx.error(
            &p,
            "needs `keyid` (the fingerprint the fetched key must have): a URL alone proves nothing",
        );
    }
    if key {
        cx.error(&p, "give `key` or `key_url`, not both");
    }
}

/// Plans a source's or mirror's key: an inline block is written, a `key_url` or keyid
/// fetched. Returns whether there was one.
pub fn plan_key(
    planner: &mut Planner<'_>,
    path: &str,
    dest: String,
    fields: KeyFields<'_>,
    proxies: &(Option<Text>, Option<Text>),
) -> Result<bool, PlanError> {
    let KeyFields {
        key,
        keyid,
        keyserver,
        key_url,
    } = fields;
    if let Some(key) = key {
        if target_verifies_with_sqv(planner.facts)
            && let Some(reason) = values::apt3_refusal(key)
        {
            return Err(PlanError::Unsupported {
                path: format!("{path}.key"),
                reason: format!("{reason}: apt-get update would fail on this target"),
            });
        }
        let mut text = key.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        planner.write_file(dest, 0o644, Text::plain(text));
        Ok(true)
    } else if let (Some(url), Some(keyid)) = (key_url, keyid) {
        let keyid = KeyId::parse(keyid).map_or_else(|_| keyid.clone(), |k| k.as_str().to_owned());
        planner.push(ActionKind::FetchKey {
            keyid: Some(keyid),
            keyserver: None,
            ppa: None,
            url: Some(url.clone()),
            http_proxy: proxies.0.clone(),
            https_proxy: proxies.1.clone(),
            dest,
        });
        Ok(true)
    } else if let Some(keyid) = keyid {
        let keyid = KeyId::parse(keyid).map_or_else(|_| keyid.clone(), |k| k.as_str().to_owned());
        let keyserver = values::keyserver_url(
            keyserver.map_or_else(|| planner.system.keyserver(), String::as_str),
        );
        planner.push(ActionKind::FetchKey {
            keyid: Some(keyid),
            keyserver: Some(keyserver),
            ppa: None,
            url: None,
            http_proxy: proxies.0.clone(),
            https_proxy: proxies.1.clone(),
            dest,
        });
        Ok(true)
    } else {
        Ok(false)
    }
}

/// Whether the target's apt verifies with Sequoia's `sqv` (apt 3): Debian 13 and later (and
/// Ubuntu 25.10 and later), or a root that has `/usr/bin/sqv`.
pub fn target_verifies_with_sqv(facts: &Facts) -> bool {
    if facts.apt_sqv {
        return true;
    }
    facts.release_at_least("trixie", "questing")
}
