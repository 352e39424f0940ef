//! The signing key of one source or mirror: `key` (an armored block, written as is), `keyid`
//! (fetched from `keyserver`, its fingerprint checked), each into a keyring of its own.

use crate::action::{ActionKind, Text};
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

/// Plans a source's or mirror's key: an inline block is written, a keyid fetched. Returns
/// whether there was one.
pub fn plan_key(
    planner: &mut Planner<'_>,
    dest: String,
    key: Option<&String>,
    keyid: Option<&String>,
    keyserver: Option<&String>,
) -> bool {
    if let Some(key) = key {
        let mut text = key.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        planner.write_file(dest, 0o644, Text::plain(text));
        true
    } else if let Some(keyid) = keyid {
        let keyid = KeyId::parse(keyid).map_or_else(|_| keyid.clone(), |k| k.as_str().to_owned());
        let keyserver = values::keyserver_url(
            keyserver.map_or_else(|| planner.system.keyserver(), String::as_str),
        );
        planner.push(ActionKind::FetchKey {
            keyid: Some(keyid),
            keyserver: Some(keyserver),
            ppa: None,
            dest,
        });
        true
    } else {
        false
    }
}
