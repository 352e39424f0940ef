//! Signing keys: fetched over HKP/HKPS (or a PPA's through Launchpad) into memory, parsed in
//! process, and kept only when the fingerprint is the one asked for. Only the matching key is
//! written, re-armored, so a keyserver that answers with extra keys adds nothing apt trusts.

use std::time::Duration;

use pgp::composed::{ArmorOptions, Deserializable, SignedPublicKey};
use pgp::types::KeyDetails;

use crate::values::KeyId;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("fetching {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("keyserver {keyserver} has no key {keyid}")]
    NotFound { keyid: String, keyserver: String },
    #[error(
        "the key fetched for {keyid} has fingerprint {fingerprints}, which does not end with {keyid}: refusing it"
    )]
    Mismatch { keyid: String, fingerprints: String },
    #[error("{count} keys fetched for the short id {keyid}: use the 40-digit fingerprint")]
    Ambiguous { keyid: String, count: usize },
    #[error("the key fetched for {keyid} is not a readable OpenPGP public key: {reason}")]
    Unreadable { keyid: String, reason: String },
    #[error("Launchpad has no signing key for ppa:{ppa}: {reason}")]
    Launchpad { ppa: String, reason: String },
    #[error("{url} has no key (HTTP 404)")]
    UrlNotFound { url: String },
    #[error("{reason}: apt-get update would fail with it on this target")]
    RefusedByApt { reason: String },
}

impl KeyError {
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::Http { .. } => "key-fetch-failed",
            KeyError::NotFound { .. } => "key-not-found",
            KeyError::Mismatch { .. } => "key-fingerprint-mismatch",
            KeyError::Ambiguous { .. } => "key-id-ambiguous",
            KeyError::Unreadable { .. } => "key-unreadable",
            KeyError::Launchpad { .. } => "ppa-key-unknown",
            KeyError::UrlNotFound { .. } => "key-not-found",
            KeyError::RefusedByApt { .. } => "key-refused-by-apt",
        }
    }
}

/// The HTTP(S) base URL of a keyserver (contract.md: `hkps://HOST` is HTTPS on 443,
/// `hkp://HOST` plain HTTP on 11371 unless a port is given, http(s) URLs as given).
pub fn keyserver_base(keyserver: &str) -> String {
    let url = crate::values::keyserver_url(keyserver);
    if let Some(rest) = url.strip_prefix("hkps://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("hkp://") {
        let host = rest.split('/').next().unwrap_or(rest);
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            && !host.ends_with(']');
        if has_port {
            format!("http://{rest}")
        } else {
            format!("http://{host}:11371")
        }
    } else {
        url
    }
}

/// Keeps the key among `armored` whose primary or subkey fingerprint ends with `keyid`, and
/// returns it re-armored.
pub fn select_verified(armored: &str, keyid: &KeyId) -> Result<String, KeyError> {
    let unreadable = |e: &dyn std::fmt::Display| KeyError::Unreadable {
        keyid: keyid.as_str().to_owned(),
        reason: e.to_string(),
    };
    let (keys, _) = SignedPublicKey::from_string_many(armored).map_err(|e| unreadable(&e))?;
    select_from(keys, keyid)
}

/// The same for a key file as a URL serves it: armored, or binary as `gpg --export` writes.
pub fn select_verified_bytes(bytes: &[u8], keyid: &KeyId) -> Result<String, KeyError> {
    let text = std::str::from_utf8(bytes).ok();
    if let Some(text) = text.filter(|t| t.trim_start().starts_with("-----BEGIN PGP")) {
        return select_verified(text, keyid);
    }
    let keys = SignedPublicKey::from_bytes_many(std::io::Cursor::new(bytes)).map_err(|e| {
        KeyError::Unreadable {
            keyid: keyid.as_str().to_owned(),
            reason: e.to_string(),
        }
    })?;
    select_from(keys, keyid)
}

fn select_from(
    keys: impl Iterator<Item = pgp::errors::Result<SignedPublicKey>>,
    keyid: &KeyId,
) -> Result<String, KeyError> {
    let unreadable = |e: &dyn std::fmt::Display| KeyError::Unreadable {
        keyid: keyid.as_str().to_owned(),
        reason: e.to_string(),
    };
    let mut matching = Vec::new();
    let mut seen = Vec::new();
    for key in keys {
        let key = key.map_err(|e| unreadable(&e))?;
        let mut fingerprints = vec![format!("{:X}", key.primary_key.fingerprint())];
        fingerprints.extend(
            key.public_subkeys
                .iter()
                .map(|s| format!("{:X}", s.key.fingerprint())),
        );
        if fingerprints.iter().any(|f| keyid.matches(f)) {
            matching.push(key);
        }
        seen.extend(fingerprints);
    }
    match matching.len() {
        0 if seen.is_empty() => Err(unreadable(&"no public key in the answer")),
        0 => Err(KeyError::Mismatch {
            keyid: keyid.as_str().to_owned(),
            fingerprints: seen.join(", "),
        }),
        1 => matching[0]
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| unreadable(&e)),
        count => Err(KeyError::Ambiguous {
            keyid: keyid.as_str().to_owned(),
            count,
        }),
    }
}

/// Fetches keys with bounded retries.
pub struct KeyFetcher {
    /// For `key_url`: the target's CA bundle, as the instance itself would trust.
    target_roots: Vec<ureq::tls::Certificate<'static>>,
    /// Proxies for http:// and https:// URLs (apt's, from the user data).
    http_proxy: Option<String>,
    https_proxy: Option<String>,
    attempts: u32,
    backoff: Duration,
    launchpad_api: String,
    default_keyserver: String,
}

impl KeyFetcher {
    /// `ca_bundle`: the target's `/etc/ssl/certs/ca-certificates.crt`, when it has one.
    pub fn new(
        launchpad_api: &str,
        default_keyserver: &str,
        ca_bundle: Option<&[u8]>,
    ) -> KeyFetcher {
        let target_roots = ca_bundle
            .map(|pem| {
                ureq::tls::parse_pem(pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        KeyFetcher {
            target_roots,
            http_proxy: None,
            https_proxy: None,
            attempts: 3,
            backoff: Duration::from_secs(1),
            launchpad_api: launchpad_api.trim_end_matches('/').to_owned(),
            default_keyserver: default_keyserver.to_owned(),
        }
    }

    /// The same fetcher with every request through these proxies (`None`: direct).
    pub fn through(&self, http_proxy: Option<&str>, https_proxy: Option<&str>) -> KeyFetcher {
        KeyFetcher {
            target_roots: self.target_roots.clone(),
            http_proxy: http_proxy.map(str::to_owned),
            https_proxy: https_proxy.map(str::to_owned),
            attempts: self.attempts,
            backoff: self.backoff,
            launchpad_api: self.launchpad_api.clone(),
            default_keyserver: self.default_keyserver.clone(),
        }
    }

    /// The proxy `url` goes through.
    fn proxy_for(&self, url: &str) -> Option<&str> {
        match url.starts_with("https://") {
            true => self.https_proxy.as_deref(),
            false => self.http_proxy.as_deref(),
        }
    }

    /// An agent for one fetch: through its proxy, trusting the target's CAs for `key_url`.
    fn agent(&self, url: &str, target_trust: bool) -> Result<ureq::Agent, KeyError> {
        // A proxy or keyserver that never answers fails each attempt in 10 s, not 30.
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .http_status_as_error(false);
        if let Some(proxy) = self.proxy_for(url) {
            let proxy = ureq::Proxy::new(proxy).map_err(|e| KeyError::Http {
                url: url.to_owned(),
                reason: format!("proxy {}: {e}", without_credentials(proxy)),
            })?;
            config = config.proxy(Some(proxy));
        }
        if target_trust && !self.target_roots.is_empty() {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&self.target_roots))
                    .build(),
            );
        }
        Ok(config.build().into())
    }

    /// GET with retries on network errors and 5xx; `Ok(None)` on 404.
    fn get(&self, url: &str) -> Result<Option<String>, KeyError> {
        match self.get_bytes(url, false)? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| KeyError::Http {
                    url: url.to_owned(),
                    reason: "the answer is not UTF-8 text".into(),
                }),
            None => Ok(None),
        }
    }

    fn get_bytes(&self, url: &str, target_trust: bool) -> Result<Option<Vec<u8>>, KeyError> {
        let agent = self.agent(url, target_trust)?;
        let mut backoff = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match agent.get(url).call() {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    if status == 404 {
                        return Ok(None);
                    }
                    if status == 200 {
                        return response
                            .body_mut()
                            .with_config()
                            .limit(1024 * 1024)
                            .read_to_vec()
                            .map(Some)
                            .map_err(|e| KeyError::Http {
                                url: url.to_owned(),
                                reason: e.to_string(),
                            });
                    }
                    last = format!("HTTP status {status}");
                    if status < 500 {
                        break;
                    }
                }
                Err(e) => {
                    last = match self.proxy_for(url) {
                        Some(proxy) => {
                            format!("through proxy {}: {e}", without_credentials(proxy))
                        }
                        None => e.to_string(),
                    }
                }
            }
            if attempt < self.attempts {
                log::info!(
                    "fetching {url} failed ({last}); retrying in {} s",
                    backoff.as_secs()
                );
                std::thread::sleep(backoff);
                backoff *= 2;
            }
        }
        Err(KeyError::Http {
            url: url.to_owned(),
            reason: last,
        })
    }

    /// The verified key for `keyid` from `keyserver`.
    pub fn by_keyid(&self, keyid: &str, keyserver: &str) -> Result<String, KeyError> {
        let id = KeyId::parse(keyid).map_err(|reason| KeyError::Unreadable {
            keyid: keyid.to_owned(),
            reason,
        })?;
        let base = keyserver_base(keyserver);
        let url = format!(
            "{base}/pks/lookup?op=get&options=mr&search=0x{}",
            id.as_str()
        );
        match self.get(&url)? {
            Some(text) => select_verified(&text, &id),
            None => Err(KeyError::NotFound {
                keyid: id.as_str().to_owned(),
                keyserver: base,
            }),
        }
    }

    /// The verified key for `keyid` at an https `url` (`key_url`).
    pub fn by_url(&self, url: &str, keyid: &str) -> Result<String, KeyError> {
        let id = KeyId::parse(keyid).map_err(|reason| KeyError::Unreadable {
            keyid: keyid.to_owned(),
            reason,
        })?;
        match self.get_bytes(url, true)? {
            Some(bytes) => select_verified_bytes(&bytes, &id),
            None => Err(KeyError::UrlNotFound {
                url: url.to_owned(),
            }),
        }
    }

    /// A PPA's signing key: Launchpad names its fingerprint, the keyserver serves it.
    pub fn for_ppa(&self, ppa: &str) -> Result<String, KeyError> {
        let (owner, name) = ppa.split_once('/').unwrap_or((ppa, ""));
        let url = format!("{}/~{owner}/+archive/ubuntu/{name}", self.launchpad_api);
        let launchpad = |reason: String| KeyError::Launchpad {
            ppa: ppa.to_owned(),
            reason,
        };
        let body = self
            .get(&url)?
            .ok_or_else(|| launchpad(format!("{url} answered 404")))?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| launchpad(format!("unreadable answer: {e}")))?;
        let fingerprint = json
            .get("signing_key_fingerprint")
            .and_then(|v| v.as_str())
            .filter(|f| !f.is_empty())
            .ok_or_else(|| launchpad("no signing_key_fingerprint in the archive".into()))?;
        self.by_keyid(fingerprint, &self.default_keyserver)
    }
}

/// A proxy URL as it may be shown: its user and password replaced.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://<credentials>@{host}{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../tests/compat/keys/throwaway.asc");

    #[test]
    fn proxies_are_shown_without_their_credentials() {
        assert_eq!(
            without_credentials("http://user:s3cret@proxy.example:3128/"),
            "http://<credentials>@proxy.example:3128/"
        );
        assert_eq!(
            without_credentials("http://proxy:3128"),
            "http://proxy:3128"
        );
    }

    #[test]
    fn keyserver_urls() {
        assert_eq!(
            keyserver_base("keyserver.ubuntu.com"),
            "https://keyserver.ubuntu.com"
        );
        assert_eq!(
            keyserver_base("hkp://pgp.mit.edu"),
            "http://pgp.mit.edu:11371"
        );
        assert_eq!(
            keyserver_base("hkp://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            keyserver_base("hkps://ks.example.org"),
            "https://ks.example.org"
        );
        assert_eq!(keyserver_base("http://127.0.0.1:9/"), "http://127.0.0.1:9");
    }

    #[test]
    fn the_key_must_have_the_fingerprint_asked_for() {
        let ok = KeyId::parse("B54F83BA163D7715").unwrap();
        let armored = select_verified(KEY, &ok).unwrap();
        assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let other = KeyId::parse("0123456789ABCDEF").unwrap();
        assert!(matches!(
            select_verified(KEY, &other),
            Err(KeyError::Mismatch { .. })
        ));
        assert!(matches!(
            select_verified("garbage", &ok),
            Err(KeyError::Unreadable { .. })
        ));
    }
}
