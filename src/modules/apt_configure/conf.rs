//! apt.conf.d snippets (the seed's `apt_conf`, `apt.conf`) and the proxy file, and the rule
//! for every file of apt's that cloudcfg writes: 0600 and redacted when it carries URL
//! credentials.

use indexmap::IndexMap;

use super::lines::url_credentials;
use super::types::{APT_CONF_DIR, APT_CONFIG_FILE, APT_PROXY_FILE, AptConfigure, SEED_CONF_FILE};
use crate::action::Text;
use crate::module::{Checker, Planner};
use crate::values;

/// The proxies after merging legacy keys: (apt.conf option, config path, URL).
fn proxies(config: &AptConfigure) -> Vec<(&'static str, &'static str, &str)> {
    let apt = config.apt.as_ref();
    fn pick<'c>(
        v3: Option<&'c String>,
        legacy: Option<&'c String>,
        v3_path: &'static str,
        legacy_path: &'static str,
    ) -> Option<(&'static str, &'c str)> {
        v3.map(|v| (v3_path, v.as_str()))
            .or(legacy.map(|v| (legacy_path, v.as_str())))
    }
    let http = pick(
        apt.and_then(|a| a.http_proxy.as_ref()),
        config.apt_http_proxy.as_ref(),
        "apt.http_proxy",
        "apt_http_proxy",
    )
    .or(pick(
        apt.and_then(|a| a.proxy.as_ref()),
        config.apt_proxy.as_ref(),
        "apt.proxy",
        "apt_proxy",
    ));
    let ftp = pick(
        apt.and_then(|a| a.ftp_proxy.as_ref()),
        config.apt_ftp_proxy.as_ref(),
        "apt.ftp_proxy",
        "apt_ftp_proxy",
    );
    let https = pick(
        apt.and_then(|a| a.https_proxy.as_ref()),
        config.apt_https_proxy.as_ref(),
        "apt.https_proxy",
        "apt_https_proxy",
    );
    [("http", http), ("ftp", ftp), ("https", https)]
        .into_iter()
        .filter_map(|(scheme, v)| v.map(|(path, url)| (scheme, path, url)))
        .collect()
}

/// The proxies a key fetch goes through, as apt would choose them for its own downloads:
/// (for http:// URLs, for https:// URLs); https falls back to the http proxy, as apt's https
/// method does. Credentials in them are secrets.
pub fn key_fetch_proxies(config: &AptConfigure) -> (Option<Text>, Option<Text>) {
    let all = proxies(config);
    let find = |scheme: &str| {
        all.iter()
            .find(|(s, _, _)| *s == scheme)
            .map(|(_, _, url)| (*url).to_owned())
    };
    let http = find("http");
    let https = find("https").or_else(|| http.clone());
    let text = |url: String| Text {
        secrets: url_credentials(&url),
        text: url,
    };
    (http.map(text), https.map(text))
}

/// A file of apt's: 0600 and redacted when it carries URL credentials, whatever the file
/// (contract.md asks it of the proxy file; a mirror, a deb line or an apt.conf snippet can
/// carry a password just as well, and sources.list is world-readable otherwise).
pub fn apt_file(planner: &mut Planner<'_>, path: String, content: String) {
    let secrets = url_credentials(&content);
    let mode = if secrets.is_empty() { 0o644 } else { 0o600 };
    planner.write_file(
        path,
        mode,
        Text {
            text: content,
            secrets,
        },
    );
}

/// An apt.conf.d file: 0600 when it carries credentials (contract.md).
fn conf_file(planner: &mut Planner<'_>, name: &str, content: String) {
    apt_file(planner, format!("{APT_CONF_DIR}/{name}"), content);
}

pub fn check(config: &AptConfigure, cx: &mut Checker<'_>) {
    for (_, path, url) in proxies(config) {
        cx.check(path, values::url(url));
    }
    if let Some(apt) = &config.apt
        && apt.proxy.is_some()
        && apt.http_proxy.is_some()
        && apt.proxy != apt.http_proxy
    {
        cx.warning(
            "apt.proxy",
            "`proxy` and `http_proxy` differ: `http_proxy` is used",
        );
    }
    // Files that other keys write: an apt_conf entry of the same name would be overwritten.
    let generated = [
        (
            APT_PROXY_FILE,
            !proxies(config).is_empty(),
            "the proxy keys",
        ),
        (
            APT_CONFIG_FILE,
            config.apt.as_ref().is_some_and(|a| a.conf.is_some()),
            "`apt.conf`",
        ),
    ];
    for (i, entry) in config.apt_conf.iter().flatten().enumerate() {
        if let Some(filename) = &entry.filename {
            let p = format!("apt_conf[{i}].filename");
            cx.check(&p, values::plain_file_name(filename));
            if let Some((_, _, by)) = generated
                .iter()
                .find(|(name, written, _)| *written && filename == name)
            {
                cx.error(&p, format!("{filename:?} is the file {by} write"));
            }
        }
    }
}

/// The seed's snippets, `apt.conf`, then the proxy file.
pub fn plan(config: &AptConfigure, planner: &mut Planner<'_>) {
    let mut snippets: IndexMap<String, String> = IndexMap::new();
    for entry in config.apt_conf.iter().flatten() {
        let name = entry
            .filename
            .clone()
            .unwrap_or_else(|| SEED_CONF_FILE.into());
        snippets.entry(name).or_default().push_str(&entry.content);
    }
    for (name, content) in snippets {
        conf_file(planner, &name, content);
    }
    if let Some(conf) = config.apt.as_ref().and_then(|a| a.conf.clone()) {
        conf_file(planner, APT_CONFIG_FILE, conf);
    }
    let proxies = proxies(config);
    if !proxies.is_empty() {
        let text: String = proxies
            .iter()
            .map(|(scheme, _, url)| format!("Acquire::{scheme}::Proxy \"{url}\";\n"))
            .collect();
        conf_file(planner, APT_PROXY_FILE, text);
    }
}
