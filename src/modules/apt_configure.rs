//! `apt_configure`: apt.conf snippets and proxy, signing keys, sources, debconf answers.
//!
//! Keys: the seed's `apt_sources` list and cloud-init's `apt:` mapping (v3), the legacy
//! `apt_*` keys cloud-init still maps, the seed's `apt_conf` list and `debconf_selections`.
//! Legacy and v3 keys given together are merged (cloud-init 22.4 drops the legacy sources).
//!
//! Every key goes into a keyring of its own under `/etc/apt/keyrings/`, named in its source's
//! line with `signed-by=`, never into a keyring apt trusts for every repository. Keys are all
//! fetched and verified before any source file is written, so a bad key never leaves apt with a
//! source it cannot verify (apply enforces this; the plan lists keys before sources).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use indexmap::IndexMap;
use regex::Regex;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::config::values::{self, KeyId, Ppa};
use crate::config::{Checker, CloudConfig};
use crate::plan::{ActionKind, Distro, Facts, PlanError, Planner, Text};

pub const NAME: &str = "apt_configure";

pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
pub const KEYRINGS_DIR: &str = "/etc/apt/keyrings";
pub const APT_CONF_DIR: &str = "/etc/apt/apt.conf.d";
pub const SOURCES_LIST: &str = "/etc/apt/sources.list";
/// The seed's default sources file stem (cloud-init uses `cloud_config_sources`).
pub const SEED_SOURCES_STEM: &str = "00-boot-sources";
/// The seed's default apt.conf.d snippet name.
pub const SEED_CONF_FILE: &str = "00-boot-conf";
pub const APT_CONFIG_FILE: &str = "94cloud-init-config";
pub const APT_PROXY_FILE: &str = "90cloud-init-aptproxy";

/// One apt source: a `deb` line or `ppa:owner/name`, and its signing key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Source {
    /// A one-line `deb`/`deb-src` entry, or `ppa:owner/name`. `$RELEASE`, `$MIRROR`,
    /// `$PRIMARY`, `$SECURITY` and `$KEY_FILE` are substituted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Key id (8 or 16 hex digits) or fingerprint (40) of the signing key, fetched from
    /// `keyserver`; its fingerprint is checked against this. With `key` too, the key block is
    /// used and must have this fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::config::TextOrNumber>")]
    pub keyid: Option<String>,
    /// The signing key as an ASCII-armored OpenPGP public key block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where `keyid` is fetched: a host (HKPS), or an hkp://, hkps://, http:// or https:// URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyserver: Option<String>,
    /// File name in /etc/apt/sources.list.d (`.list` is appended when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// false: this line replaces what earlier entries put into the same file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
}

/// A mirror for one set of architectures (`apt.primary`, `apt.security`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Mirror {
    /// dpkg architectures this entry is for; `default` matches any.
    pub arches: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Candidate mirrors; cloudcfg does not probe the network at plan time and takes the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Vec<String>>,
    /// Not supported (it needs DNS probing); a warning says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_dns: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::config::TextOrNumber>")]
    pub keyid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyserver: Option<String>,
}

/// cloud-init's `apt:` mapping (v3 format).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Apt {
    /// Leave /etc/apt/sources.list alone even when `primary`, `security` or `sources_list`
    /// are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_sources_list: Option<bool>,
    /// Suites commented out of a generated sources.list (`updates`, `backports`, `security`,
    /// `proposed`, `release`, or a suite name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_suites: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<Vec<Mirror>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Vec<Mirror>>,
    /// Used by cloud-init to decide which sources go to add-apt-repository; cloudcfg writes
    /// every line itself, so it is ignored with a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_apt_repo_match: Option<String>,
    /// Named debconf-set-selections texts, applied in sorted name order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debconf_selections: Option<IndexMap<String, String>>,
    /// A template for /etc/apt/sources.list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources_list: Option<String>,
    /// apt.conf text for /etc/apt/apt.conf.d/94cloud-init-config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<String>,
    /// HTTP proxy for apt (same as `http_proxy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ftp_proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,
    /// cloud-init writes /etc/apt/mirrors/*.list for apt-transport-mirror instead of
    /// sources.list; cloudcfg does not write there (a warning says so) and writes sources.list
    /// from the mirrors as usual.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_mirrorlists: Option<bool>,
    /// Sources by name; the name is the default file name and the keyring name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<IndexMap<String, Source>>,
}

/// One of the seed's apt.conf.d snippets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AptConfEntry {
    /// File name in /etc/apt/apt.conf.d (default `00-boot-conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub content: String,
}

/// debconf answers: the seed's text, or cloud-init's mapping of named texts.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum DebconfSelections {
    Text(String),
    Named(IndexMap<String, String>),
}

impl<'de> Deserialize<'de> for DebconfSelections {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SelectionsVisitor;
        impl<'de> Visitor<'de> for SelectionsVisitor {
            type Value = DebconfSelections;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("debconf-set-selections text or a mapping of named texts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(DebconfSelections::Text(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut named = IndexMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    named.insert(k, v);
                }
                Ok(DebconfSelections::Named(named))
            }
        }
        deserializer.deserialize_any(SelectionsVisitor)
    }
}

/// A source wherever it was written: `apt_sources[i]` or `apt.sources.NAME`.
pub struct SourceEntry<'a> {
    pub path: String,
    /// The v3 name (the key in `apt.sources`).
    pub name: Option<&'a str>,
    /// 1-based position in its list.
    pub position: usize,
    pub source: &'a Source,
}

impl SourceEntry<'_> {
    pub fn ppa(&self) -> Option<Ppa> {
        let line = self.source.source.as_deref()?;
        Ppa::parse(line).and_then(Result::ok)
    }

    pub fn list_stem(&self) -> String {
        let name = self
            .source
            .filename
            .clone()
            .or_else(|| self.name.map(str::to_owned))
            .or_else(|| self.ppa().map(|p| p.stem()))
            .unwrap_or_else(|| SEED_SOURCES_STEM.to_owned());
        name.strip_suffix(".list")
            .map(str::to_owned)
            .unwrap_or(name)
    }

    /// `/etc/apt/sources.list.d/<name>.list`.
    pub fn list_file(&self) -> String {
        format!("{SOURCES_DIR}/{}.list", self.list_stem())
    }

    /// `/etc/apt/keyrings/<name>.asc` (contract.md, "Paths and modes").
    pub fn keyring(&self) -> String {
        let stem = match (self.name, self.ppa()) {
            // A name given as a file name (`my-repo.list`) names the keyring by its stem, as
            // cloud-init names its keyring files.
            (Some(name), _) => name.strip_suffix(".list").unwrap_or(name).to_owned(),
            (None, Some(ppa)) => ppa.stem(),
            (None, None) => format!("{}-{}", self.list_stem(), self.position),
        };
        format!("{KEYRINGS_DIR}/{stem}.asc")
    }

    pub fn has_key(&self) -> bool {
        self.source.key.is_some() || self.source.keyid.is_some() || self.ppa().is_some()
    }
}

/// Legacy `apt_sources` first (the seed's), then `apt.sources`.
pub fn source_entries(config: &CloudConfig) -> Vec<SourceEntry<'_>> {
    let mut entries = Vec::new();
    for (i, source) in config.apt_sources.iter().flatten().enumerate() {
        entries.push(SourceEntry {
            path: format!("apt_sources[{i}]"),
            name: None,
            position: i + 1,
            source,
        });
    }
    if let Some(sources) = config.apt.as_ref().and_then(|a| a.sources.as_ref()) {
        for (i, (name, source)) in sources.iter().enumerate() {
            entries.push(SourceEntry {
                path: crate::decode::de::join_key("apt.sources", name),
                name: Some(name),
                position: i + 1,
                source,
            });
        }
    }
    entries
}

/// The proxies after merging legacy keys: (apt.conf option, config path, URL).
fn proxies(config: &CloudConfig) -> Vec<(&'static str, &'static str, &str)> {
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

fn preserve_sources_list(config: &CloudConfig) -> bool {
    config
        .apt
        .as_ref()
        .and_then(|a| a.preserve_sources_list)
        .or(config.apt_preserve_sources_list)
        .unwrap_or(false)
}

fn custom_sources_list(config: &CloudConfig) -> Option<&str> {
    config
        .apt
        .as_ref()
        .and_then(|a| a.sources_list.as_deref())
        .or(config.apt_custom_sources_list.as_deref())
}

fn has_mirror_config(config: &CloudConfig) -> bool {
    let apt = config.apt.as_ref();
    apt.is_some_and(|a| a.primary.is_some() || a.security.is_some())
        || config.apt_mirror.is_some()
        || config.apt_mirror_search.is_some()
}

/// Whether this config writes /etc/apt/sources.list (contract.md: only when asked to).
fn writes_sources_list(config: &CloudConfig) -> bool {
    !preserve_sources_list(config)
        && (has_mirror_config(config) || custom_sources_list(config).is_some())
}

/// Whether the module adds any apt source (so package lists must be refreshed).
pub fn adds_sources(config: &CloudConfig) -> bool {
    source_entries(config)
        .iter()
        .any(|e| e.source.source.is_some())
        || writes_sources_list(config)
}

// ---------------------------------------------------------------------------------------------
// Checks

fn check_key_fields(
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

fn check_source(cx: &mut Checker<'_>, entry: &SourceEntry<'_>) {
    let path = &entry.path;
    let src = entry.source;
    if let Some(name) = entry.name {
        cx.check(
            path,
            values::apt_file_name(name).map_err(|e| format!("source name {e}")),
        );
    }
    if let Some(filename) = &src.filename {
        cx.check(&format!("{path}.filename"), values::apt_file_name(filename));
    }
    if entry.list_stem().is_empty() {
        // `filename: .list` would write /etc/apt/sources.list.d/.list.
        let at = if src.filename.is_some() {
            format!("{path}.filename")
        } else {
            path.clone()
        };
        cx.error(&at, "the file name before `.list` must not be empty");
    }
    check_key_fields(
        cx,
        path,
        src.keyid.as_ref(),
        src.key.as_ref(),
        src.keyserver.as_ref(),
    );
    match &src.source {
        None => {
            if src.key.is_some() || src.keyid.is_some() {
                cx.warning(
                    path,
                    format!(
                        "a key without a source is written to {} but trusted by no source; \
                         name it with signed-by in a source line",
                        entry.keyring()
                    ),
                );
            } else {
                cx.error(
                    path,
                    "needs `source` (a deb line or ppa:owner/name) or a key",
                );
            }
        }
        Some(line) => {
            let p = format!("{path}.source");
            match Ppa::parse(line) {
                Some(ppa) => {
                    cx.check(&p, ppa);
                }
                None => {
                    cx.check(&p, values::deb_line(line));
                    if line.contains("$KEY_FILE") && src.key.is_none() && src.keyid.is_none() {
                        cx.error(&p, "`$KEY_FILE` needs `key` or `keyid` in the same entry");
                    }
                    for var in VARIABLE.captures_iter(line) {
                        let name = var.get(1).or(var.get(2)).map_or("", |m| m.as_str());
                        if !SOURCE_VARIABLES.contains(&name) {
                            cx.warning(
                                &p,
                                format!(
                                    "`${name}` is not one of {}: it is written as is",
                                    SOURCE_VARIABLES
                                        .iter()
                                        .map(|v| format!("${v}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

fn check_mirrors(cx: &mut Checker<'_>, path: &str, mirrors: &[Mirror]) {
    for (i, mirror) in mirrors.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if mirror.arches.is_empty() {
            cx.error(&p, "needs `arches` (e.g. [default])");
        }
        if let Some(uri) = &mirror.uri {
            cx.check(&format!("{p}.uri"), values::url(uri));
        }
        if let Some(search) = &mirror.search {
            for (j, uri) in search.iter().enumerate() {
                cx.check(&format!("{p}.search[{j}]"), values::url(uri));
            }
            if mirror.uri.is_none() {
                cx.warning(
                    &format!("{p}.search"),
                    "cloudcfg does not probe mirrors: the first one is used",
                );
            }
        }
        if mirror.search_dns == Some(true) {
            cx.warning(
                &format!("{p}.search_dns"),
                "not supported by cloudcfg (it needs DNS probing): ignored",
            );
        }
        check_key_fields(
            cx,
            &p,
            mirror.keyid.as_ref(),
            mirror.key.as_ref(),
            mirror.keyserver.as_ref(),
        );
    }
}

const DEBCONF_TYPES: &[&str] = &[
    "string",
    "boolean",
    "select",
    "multiselect",
    "note",
    "text",
    "password",
    "title",
    "error",
    "seen",
];

fn check_debconf_text(cx: &mut Checker<'_>, path: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 3 {
            cx.error(
                path,
                format!(
                    "line {} of the selections: expected `OWNER QUESTION TYPE [VALUE]`, found {line:?}",
                    n + 1
                ),
            );
        } else if let Err(e) = values::package_name(words[0].split(':').next().unwrap_or_default())
        {
            // The owner is the package dpkg-reconfigure gets (reconfigure_installed): a word
            // that is no package name could be read as one of its options.
            cx.error(
                path,
                format!("line {} of the selections: the owner {e}", n + 1),
            );
        } else if !DEBCONF_TYPES.contains(&words[2]) {
            cx.warning(
                path,
                format!("line {}: unknown debconf type `{}`", n + 1, words[2]),
            );
        }
    }
}

pub fn check(config: &CloudConfig, cx: &mut Checker<'_>) {
    let entries = source_entries(config);
    for entry in &entries {
        check_source(cx, entry);
    }
    // Two entries must not end up in one keyring.
    let mut keyrings = BTreeSet::new();
    for entry in entries.iter().filter(|e| e.has_key()) {
        if !keyrings.insert(entry.keyring()) {
            cx.error(
                &entry.path,
                format!("its keyring {} is also another source's", entry.keyring()),
            );
        }
    }
    let legacy: Vec<&str> = [
        ("apt_sources", config.apt_sources.is_some()),
        ("apt_proxy", config.apt_proxy.is_some()),
        ("apt_http_proxy", config.apt_http_proxy.is_some()),
        ("apt_ftp_proxy", config.apt_ftp_proxy.is_some()),
        ("apt_https_proxy", config.apt_https_proxy.is_some()),
        (
            "apt_preserve_sources_list",
            config.apt_preserve_sources_list.is_some(),
        ),
        ("apt_mirror", config.apt_mirror.is_some()),
        ("apt_mirror_search", config.apt_mirror_search.is_some()),
        (
            "apt_mirror_search_dns",
            config.apt_mirror_search_dns.is_some(),
        ),
        (
            "apt_custom_sources_list",
            config.apt_custom_sources_list.is_some(),
        ),
        ("add_apt_repo_match", config.add_apt_repo_match.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect();
    if let (Some(_), Some(first)) = (&config.apt, legacy.first()) {
        cx.warning(
            first,
            format!(
                "legacy keys ({}) and `apt:` are both given: cloudcfg merges them (cloud-init 22.4 \
                 ignores the legacy ones); where both set the same thing, `apt:` wins",
                legacy.join(", ")
            ),
        );
    }
    for (_, path, url) in proxies(config) {
        cx.check(path, values::url(url));
    }
    if let Some(apt) = &config.apt {
        if apt.proxy.is_some() && apt.http_proxy.is_some() && apt.proxy != apt.http_proxy {
            cx.warning(
                "apt.proxy",
                "`proxy` and `http_proxy` differ: `http_proxy` is used",
            );
        }
        if let Some(primary) = &apt.primary {
            check_mirrors(cx, "apt.primary", primary);
        }
        if let Some(security) = &apt.security {
            check_mirrors(cx, "apt.security", security);
        }
        if let Some(selections) = &apt.debconf_selections {
            for (name, text) in selections {
                check_debconf_text(
                    cx,
                    &crate::decode::de::join_key("apt.debconf_selections", name),
                    text,
                );
            }
        }
        if apt.generate_mirrorlists == Some(true) {
            cx.warning(
                "apt.generate_mirrorlists",
                "not supported: cloudcfg does not write /etc/apt/mirrors/ (ignored; \
                 sources.list is written from the mirrors instead)",
            );
        }
        if apt.add_apt_repo_match.is_some() {
            cx.warning(
                "apt.add_apt_repo_match",
                "ignored: cloudcfg writes every source line itself, without add-apt-repository",
            );
        }
        if apt.disable_suites.is_some() && !writes_sources_list(config) {
            cx.warning(
                "apt.disable_suites",
                "only applies to a sources.list that cloudcfg writes \
                 (apt.primary, apt.security or apt.sources_list): ignored",
            );
        }
    }
    if config.add_apt_repo_match.is_some() {
        cx.warning(
            "add_apt_repo_match",
            "ignored: cloudcfg writes every source line itself, without add-apt-repository",
        );
    }
    if let Some(uri) = &config.apt_mirror {
        cx.check("apt_mirror", values::url(uri));
    }
    if let Some(search) = &config.apt_mirror_search {
        for (j, uri) in search.iter().enumerate() {
            cx.check(&format!("apt_mirror_search[{j}]"), values::url(uri));
        }
        if config.apt_mirror.is_none() {
            cx.warning(
                "apt_mirror_search",
                "cloudcfg does not probe mirrors: the first one is used",
            );
        }
    }
    if config.apt_mirror_search_dns == Some(true) {
        cx.warning(
            "apt_mirror_search_dns",
            "not supported by cloudcfg (it needs DNS probing): ignored",
        );
    }
    if preserve_sources_list(config)
        && (has_mirror_config(config) || custom_sources_list(config).is_some())
    {
        cx.warning(
            "apt.preserve_sources_list",
            "sources.list is preserved: the mirrors and sources_list given are not written",
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
    match &config.debconf_selections {
        Some(DebconfSelections::Text(text)) => check_debconf_text(cx, "debconf_selections", text),
        Some(DebconfSelections::Named(named)) => {
            for (name, text) in named {
                check_debconf_text(
                    cx,
                    &crate::decode::de::join_key("debconf_selections", name),
                    text,
                );
            }
        }
        None => {}
    }
    if config.debconf_selections.is_some()
        && config
            .apt
            .as_ref()
            .is_some_and(|a| a.debconf_selections.is_some())
    {
        cx.warning(
            "debconf_selections",
            "given at the top level and under `apt:`: both are applied, the top-level ones first",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Plan

static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{([A-Za-z0-9_.]+)\}|\$([A-Za-z0-9_.]+)").expect("static regex")
});
const SOURCE_VARIABLES: &[&str] = &["RELEASE", "MIRROR", "PRIMARY", "SECURITY", "KEY_FILE"];

/// cloud-init's basic template rendering: `$NAME` and `${NAME}`; unknown names stay as written.
pub fn substitute(template: &str, vars: &[(&str, &str)]) -> String {
    if !template.contains('$') {
        return template.to_owned();
    }
    VARIABLE
        .replace_all(template, |caps: &regex::Captures<'_>| {
            let name = caps.get(1).or(caps.get(2)).map_or("", |m| m.as_str());
            vars.iter()
                .find(|(k, _)| *k == name)
                .map_or_else(|| caps[0].to_owned(), |(_, v)| (*v).to_owned())
        })
        .into_owned()
}

/// Adds `signed-by=KEYRING` to a deb line's options unless it names one already.
pub fn with_signed_by(line: &str, keyring: &str) -> String {
    if line.contains("signed-by=") {
        return line.to_owned();
    }
    let trimmed = line.trim();
    let Some((kind, rest)) = trimmed.split_once(char::is_whitespace) else {
        return line.to_owned();
    };
    let rest = rest.trim_start();
    match rest.strip_prefix('[') {
        Some(options) => {
            let (inside, after) = options.split_once(']').unwrap_or((options, ""));
            let inside = inside.trim();
            let sep = if inside.is_empty() { "" } else { " " };
            format!("{kind} [{inside}{sep}signed-by={keyring}]{after}")
        }
        None => format!("{kind} [signed-by={keyring}] {rest}"),
    }
}

/// The Ubuntu series a Debian release's PPA users want (same toolchain era).
fn ppa_series(facts: &Facts, release: &str) -> Option<&'static str> {
    if facts.distro() == Distro::Ubuntu {
        return None;
    }
    Some(match release {
        "buster" => "bionic",
        "bullseye" => "focal",
        "bookworm" => "jammy",
        "trixie" => "noble",
        _ => "noble",
    })
}

pub struct Mirrors {
    pub primary: String,
    pub security: String,
}

fn arch_mirror<'m>(mirrors: Option<&'m Vec<Mirror>>, arch: &str) -> Option<&'m Mirror> {
    let mirrors = mirrors?;
    mirrors
        .iter()
        .find(|m| m.arches.iter().any(|a| a == arch))
        .or_else(|| {
            mirrors
                .iter()
                .find(|m| m.arches.iter().any(|a| a == "default"))
        })
}

fn mirror_uri(mirror: &Mirror) -> Option<String> {
    mirror
        .uri
        .clone()
        .or_else(|| mirror.search.as_ref().and_then(|s| s.first().cloned()))
}

/// `$MIRROR`/`$PRIMARY` and `$SECURITY`: configured, else the distribution's defaults
/// (cloud-init's failsafe mirrors).
pub fn mirrors(config: &CloudConfig, facts: &Facts) -> Mirrors {
    let apt = config.apt.as_ref();
    let primary = arch_mirror(apt.and_then(|a| a.primary.as_ref()), &facts.arch)
        .and_then(mirror_uri)
        .or_else(|| config.apt_mirror.clone())
        .or_else(|| {
            config
                .apt_mirror_search
                .as_ref()
                .and_then(|s| s.first().cloned())
        });
    let security =
        arch_mirror(apt.and_then(|a| a.security.as_ref()), &facts.arch).and_then(mirror_uri);
    let ports = !matches!(facts.arch.as_str(), "amd64" | "i386");
    let (default_primary, default_security) = match facts.distro() {
        Distro::Debian => (
            "https://deb.debian.org/debian",
            "https://deb.debian.org/debian-security",
        ),
        Distro::Ubuntu if ports => (
            "http://ports.ubuntu.com/ubuntu-ports",
            "http://ports.ubuntu.com/ubuntu-ports",
        ),
        Distro::Ubuntu => (
            "http://archive.ubuntu.com/ubuntu",
            "http://security.ubuntu.com/ubuntu",
        ),
    };
    match primary {
        Some(p) => Mirrors {
            security: security.unwrap_or_else(|| p.clone()),
            primary: p,
        },
        None => Mirrors {
            primary: default_primary.to_owned(),
            security: security.unwrap_or_else(|| default_security.to_owned()),
        },
    }
}

fn default_sources_list(distro: Distro) -> &'static str {
    match distro {
        Distro::Debian => {
            "# Written by cloudcfg on first boot from apt.primary/apt.security.\n\
# To keep your own sources.list, set apt.preserve_sources_list: true.\n\
deb $MIRROR $RELEASE main\n\
deb-src $MIRROR $RELEASE main\n\
deb $SECURITY $SECURITY_SUITE main\n\
deb-src $SECURITY $SECURITY_SUITE main\n\
deb $MIRROR $RELEASE-updates main\n\
deb-src $MIRROR $RELEASE-updates main\n\
deb $MIRROR $RELEASE-backports main\n\
deb-src $MIRROR $RELEASE-backports main\n"
        }
        Distro::Ubuntu => {
            "# Written by cloudcfg on first boot from apt.primary/apt.security.\n\
# To keep your own sources.list, set apt.preserve_sources_list: true.\n\
deb $MIRROR $RELEASE main restricted\n\
deb $MIRROR $RELEASE-updates main restricted\n\
deb $MIRROR $RELEASE universe\n\
deb $MIRROR $RELEASE-updates universe\n\
deb $MIRROR $RELEASE multiverse\n\
deb $MIRROR $RELEASE-updates multiverse\n\
deb $MIRROR $RELEASE-backports main restricted universe multiverse\n\
deb $SECURITY $RELEASE-security main restricted\n\
deb $SECURITY $RELEASE-security universe\n\
deb $SECURITY $RELEASE-security multiverse\n"
        }
    }
}

static JINJA_VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}").expect("static regex"));

/// Comments out the lines of `text` whose suite is one of `disabled` (cloud-init's
/// disable_suites, same marker).
fn disable_suites(text: &str, disabled: &[String], release: &str) -> String {
    let suites: Vec<String> = disabled
        .iter()
        .map(|s| match s.as_str() {
            "updates" => format!("{release}-updates"),
            "backports" => format!("{release}-backports"),
            "security" => format!("{release}-security"),
            "proposed" => format!("{release}-proposed"),
            "release" => release.to_owned(),
            other => substitute(other, &[("RELEASE", release)]),
        })
        .collect();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut suite_at = 2;
        if words.get(1).is_some_and(|w| w.starts_with('[')) {
            for w in &words[1..] {
                suite_at += 1;
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let disabled = !line.starts_with('#')
            && words.len() > 1
            && words
                .get(suite_at)
                .is_some_and(|s| suites.iter().any(|d| d == s));
        if disabled {
            out.push_str("# suite disabled by cloud-init: ");
        }
        out.push_str(line);
    }
    out
}

/// Plans a source's or mirror's key: an inline block is written, a keyid fetched. Returns
/// whether there was one.
fn plan_key(
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

/// `/etc/apt/keyrings/primary.asc` and `security.asc`, the keyrings of the mirrors' own keys
/// (cloud-init names its key files for them the same way).
fn mirror_keyring(name: &str) -> String {
    format!("{KEYRINGS_DIR}/{name}.asc")
}

/// The `primary` and `security` mirror entries in effect for the target's architecture.
fn selected_mirrors<'c>(config: &'c CloudConfig, facts: &Facts) -> Vec<(&'static str, &'c Mirror)> {
    let apt = config.apt.as_ref();
    [
        (
            "primary",
            arch_mirror(apt.and_then(|a| a.primary.as_ref()), &facts.arch),
        ),
        (
            "security",
            arch_mirror(apt.and_then(|a| a.security.as_ref()), &facts.arch),
        ),
    ]
    .into_iter()
    .filter_map(|(name, m)| m.map(|m| (name, m)))
    .collect()
}

/// The URI of a deb line (after its `[...]` options).
fn line_uri(line: &str) -> Option<&str> {
    let rest = line
        .trim_start()
        .split_once(char::is_whitespace)?
        .1
        .trim_start();
    let rest = match rest.strip_prefix('[') {
        Some(options) => options.split_once(']')?.1.trim_start(),
        None => rest,
    };
    rest.split_whitespace().next()
}

/// Names each keyed mirror's keyring in the sources.list lines that use that mirror.
fn sign_mirror_lines(text: &str, keyed: &[(String, String)]) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let is_entry = line.starts_with("deb ") || line.starts_with("deb-src ");
            let keyring = is_entry
                .then(|| line_uri(line))
                .flatten()
                .and_then(|uri| {
                    keyed.iter().find(|(mirror, _)| {
                        mirror.trim_end_matches('/') == uri.trim_end_matches('/')
                    })
                })
                .map(|(_, keyring)| keyring);
            match keyring {
                Some(keyring) => {
                    let newline = if line.ends_with('\n') { "\n" } else { "" };
                    format!(
                        "{}{newline}",
                        with_signed_by(line.trim_end_matches('\n'), keyring)
                    )
                }
                None => line.to_owned(),
            }
        })
        .collect()
}

fn sources_list_text(config: &CloudConfig, facts: &Facts, release: &str) -> String {
    let mirrors = mirrors(config, facts);
    let security_suite = if matches!(release, "buster" | "stretch") {
        format!("{release}/updates")
    } else {
        format!("{release}-security")
    };
    let template =
        custom_sources_list(config).unwrap_or_else(|| default_sources_list(facts.distro()));
    let template = template
        .strip_prefix("## template:jinja\n")
        .unwrap_or(template);
    let vars: [(&str, &str); 9] = [
        ("RELEASE", release),
        ("codename", release),
        ("MIRROR", &mirrors.primary),
        ("mirror", &mirrors.primary),
        ("PRIMARY", &mirrors.primary),
        ("primary", &mirrors.primary),
        ("SECURITY", &mirrors.security),
        ("security", &mirrors.security),
        ("SECURITY_SUITE", &security_suite),
    ];
    let rendered = JINJA_VAR
        .replace_all(template, |caps: &regex::Captures<'_>| {
            vars.iter()
                .find(|(k, _)| *k == &caps[1])
                .map_or_else(|| caps[0].to_owned(), |(_, v)| (*v).to_owned())
        })
        .into_owned();
    let rendered = substitute(&rendered, &vars);
    let keyed: Vec<(String, String)> = selected_mirrors(config, facts)
        .into_iter()
        .filter(|(_, m)| m.key.is_some() || m.keyid.is_some())
        .map(|(name, _)| {
            let uri = if name == "primary" {
                &mirrors.primary
            } else {
                &mirrors.security
            };
            (uri.clone(), mirror_keyring(name))
        })
        .collect();
    let rendered = sign_mirror_lines(&rendered, &keyed);
    let disabled = config
        .apt
        .as_ref()
        .and_then(|a| a.disable_suites.clone())
        .unwrap_or_default();
    disable_suites(&rendered, &disabled, release)
}

/// Userinfo (`user:password`) of every URL in a text: the secrets of an apt file. The
/// authority runs from `://` to the first whitespace, `"`, `/`, `?` or `#`, and the userinfo
/// ends at its *last* `@`, as apt's URI parser reads it: stopping at the first `@` left the
/// rest of a password such as `p@ss` in clear.
fn url_credentials(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '/' | '?' | '#'))
            .unwrap_or(after.len());
        if let Some(last) = after[..end].rfind('@')
            && last > 0
        {
            found.push(after[..last].to_owned());
        }
        rest = after;
    }
    found
}

/// A file of apt's: 0600 and redacted when it carries URL credentials, whatever the file
/// (contract.md asks it of the proxy file; a mirror, a deb line or an apt.conf snippet can
/// carry a password just as well, and sources.list is world-readable otherwise).
fn apt_file(planner: &mut Planner<'_>, path: String, content: String) {
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

fn selections_text(config: &CloudConfig) -> Option<String> {
    fn named(map: &IndexMap<String, String>) -> String {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        keys.iter()
            .map(|k| map[*k].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
    let mut texts: Vec<String> = Vec::new();
    match &config.debconf_selections {
        Some(DebconfSelections::Text(text)) => texts.push(text.clone()),
        Some(DebconfSelections::Named(map)) => texts.push(named(map)),
        None => {}
    }
    if let Some(map) = config
        .apt
        .as_ref()
        .and_then(|a| a.debconf_selections.as_ref())
    {
        texts.push(named(map));
    }
    let mut text = texts
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if text.trim().is_empty() {
        return None;
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

/// The values of `password` questions: secrets of the selections. A value is the rest of its
/// line after the type word, as written: debconf-set-selections keeps inner spacing, so words
/// joined again with single spaces would miss `s3  cr3t` and leave it unredacted.
fn debconf_secrets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut rest = line.trim_start();
            let mut words = [""; 3];
            for word in &mut words {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                *word = &rest[..end];
                rest = rest[end..].trim_start();
            }
            (words[2] == "password").then(|| rest.trim_end().to_owned())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Packages named in selections, as cloud-init finds them (the first word, up to `:`).
fn selection_packages(text: &str) -> Vec<String> {
    let mut packages = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| *c != ':' && !c.is_whitespace())
            .collect();
        if !name.is_empty() {
            packages.insert(name);
        }
    }
    packages.into_iter().collect()
}

pub fn plan(planner: &mut Planner<'_>) -> Result<(), PlanError> {
    let config = planner.config;
    let facts = planner.facts;

    // 1. apt.conf.d snippets and the proxy file.
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

    // 2. Keys, all before any source.
    let entries = source_entries(config);
    let needs_release = entries.iter().any(|e| {
        e.ppa().is_some()
            || e.source
                .source
                .as_deref()
                .is_some_and(|s| s.contains("$RELEASE") || s.contains("${RELEASE}"))
    }) || writes_sources_list(config);
    let release = if needs_release {
        Some(facts.require(
            &facts.release,
            "--release",
            "the target's release is needed for $RELEASE, PPAs and sources.list",
        )?)
    } else {
        facts.release.as_deref()
    };
    for entry in &entries {
        let src = entry.source;
        let planned = plan_key(
            planner,
            entry.keyring(),
            src.key.as_ref(),
            src.keyid.as_ref(),
            src.keyserver.as_ref(),
        );
        if !planned && let Some(ppa) = entry.ppa() {
            planner.push(ActionKind::FetchKey {
                keyid: None,
                keyserver: None,
                ppa: Some(format!("{}/{}", ppa.owner, ppa.name)),
                dest: entry.keyring(),
            });
        }
    }
    if writes_sources_list(config) {
        for (name, mirror) in selected_mirrors(config, facts) {
            plan_key(
                planner,
                mirror_keyring(name),
                mirror.key.as_ref(),
                mirror.keyid.as_ref(),
                mirror.keyserver.as_ref(),
            );
        }
    }

    // 3. Sources: sources.list when asked for, then one file per name, lines in order.
    let mirrors = mirrors(config, facts);
    if writes_sources_list(config) {
        let release = release.unwrap_or_default();
        apt_file(
            planner,
            SOURCES_LIST.to_owned(),
            sources_list_text(config, facts, release),
        );
    }
    let mut files: IndexMap<String, String> = IndexMap::new();
    for entry in &entries {
        let Some(line) = &entry.source.source else {
            continue;
        };
        let keyring = entry.keyring();
        let line = match entry.ppa() {
            Some(ppa) => {
                let release = release.unwrap_or_default();
                let series = match ppa_series(facts, release) {
                    Some(series) => {
                        planner.warn(
                            &format!("{}.source", entry.path),
                            format!(
                                "PPAs publish Ubuntu series: {release} is not one, so the line \
                                 uses {series}, the series of the same era; give a deb line to choose"
                            ),
                        );
                        series
                    }
                    None => release,
                };
                format!(
                    "deb [signed-by={keyring}] https://ppa.launchpadcontent.net/{}/{}/ubuntu {series} main",
                    ppa.owner, ppa.name
                )
            }
            None => {
                let key_file = entry.has_key().then_some(keyring.as_str());
                let mut vars: Vec<(&str, &str)> = vec![
                    ("MIRROR", &mirrors.primary),
                    ("PRIMARY", &mirrors.primary),
                    ("SECURITY", &mirrors.security),
                ];
                if let Some(release) = release {
                    vars.push(("RELEASE", release));
                }
                if let Some(key_file) = key_file {
                    vars.push(("KEY_FILE", key_file));
                }
                let rendered = substitute(line.trim(), &vars);
                match key_file {
                    Some(keyring) => with_signed_by(&rendered, keyring),
                    None => rendered,
                }
            }
        };
        let content = files.entry(entry.list_file()).or_default();
        if entry.source.append == Some(false) {
            content.clear();
        }
        content.push_str(&line);
        content.push('\n');
    }
    for (path, content) in files {
        apt_file(planner, path, content);
    }

    // 4. debconf answers, then reconfigure what is already installed.
    if let Some(text) = selections_text(config) {
        let packages = selection_packages(&text);
        let secrets = debconf_secrets(&text);
        planner.command(
            vec!["debconf-set-selections".into()],
            &[],
            Some(Text { text, secrets }),
        );
        if !packages.is_empty() {
            planner.push(ActionKind::ReconfigureInstalled { packages });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_by_is_merged_into_options() {
        assert_eq!(
            with_signed_by("deb http://x y main", "/k.asc"),
            "deb [signed-by=/k.asc] http://x y main"
        );
        assert_eq!(
            with_signed_by("deb [arch=amd64] http://x y main", "/k.asc"),
            "deb [arch=amd64 signed-by=/k.asc] http://x y main"
        );
        assert_eq!(
            with_signed_by("deb [signed-by=/a.gpg] http://x y main", "/k.asc"),
            "deb [signed-by=/a.gpg] http://x y main"
        );
    }

    #[test]
    fn substitution_keeps_unknown_names() {
        assert_eq!(
            substitute(
                "deb $MIRROR ${RELEASE} main $OTHER",
                &[("MIRROR", "m"), ("RELEASE", "r")]
            ),
            "deb m r main $OTHER"
        );
    }

    #[test]
    fn selections_name_their_packages_and_passwords() {
        let text = "# c\ntzdata tzdata/Areas select Europe\nmysql-server mysql-server/root_password password s3 cr\n";
        assert_eq!(selection_packages(text), vec!["mysql-server", "tzdata"]);
        assert_eq!(debconf_secrets(text), vec!["s3 cr"]);
        let spaced = "mysql-server mysql-server/root_password password  s3  cr3t \n";
        assert_eq!(debconf_secrets(spaced), vec!["s3  cr3t"]);
    }

    #[test]
    fn credentials_run_to_the_last_at() {
        assert_eq!(
            url_credentials("Acquire::http::Proxy \"http://u:p@ss@proxy:3128\";\n"),
            vec!["u:p@ss"]
        );
        assert_eq!(
            url_credentials("deb http://h/a@b x main\ndeb ftp://u;x@h/ y main"),
            vec!["u;x"]
        );
    }

    #[test]
    fn suites_are_disabled_like_cloud_init() {
        let text = "deb m bookworm main\ndeb [arch=amd64] m bookworm-backports main\n";
        let out = disable_suites(text, &["backports".into()], "bookworm");
        assert_eq!(
            out,
            "deb m bookworm main\n# suite disabled by cloud-init: deb [arch=amd64] m bookworm-backports main\n"
        );
    }
}
