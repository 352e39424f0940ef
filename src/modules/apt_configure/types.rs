//! The keys of `apt_configure`: the seed's `apt_sources`, `apt_conf` and `debconf_selections`,
//! cloud-init's `apt:` mapping (v3) and the legacy `apt_*` keys it still maps.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

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

/// The top-level keys `apt_configure` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct AptConfigure {
    /// cloud-init's apt configuration (v3 format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt: Option<Apt>,
    /// The seed's list of apt sources (cloud-init's legacy v1 format). Merged with `apt.sources`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_sources: Option<Vec<Source>>,
    /// The seed's apt.conf.d snippets: `{filename, content}`, default file name `00-boot-conf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_conf: Option<Vec<AptConfEntry>>,
    /// debconf answers: the seed's text (debconf-set-selections format) or cloud-init's mapping
    /// of named texts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debconf_selections: Option<DebconfSelections>,
    /// Legacy: `apt.proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_proxy: Option<String>,
    /// Legacy: `apt.http_proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_http_proxy: Option<String>,
    /// Legacy: `apt.ftp_proxy` (cloud-init 22.4 swaps it with https; cloudcfg does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_ftp_proxy: Option<String>,
    /// Legacy: `apt.https_proxy` (cloud-init 22.4 swaps it with ftp; cloudcfg does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_https_proxy: Option<String>,
    /// Legacy: `apt.preserve_sources_list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_preserve_sources_list: Option<bool>,
    /// Legacy: `apt.primary[0].uri` for every architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_mirror: Option<String>,
    /// Legacy: `apt.primary[0].search`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_mirror_search: Option<Vec<String>>,
    /// Legacy: `apt.primary[0].search_dns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_mirror_search_dns: Option<bool>,
    /// Legacy: `apt.sources_list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_custom_sources_list: Option<String>,
    /// Legacy: `apt.add_apt_repo_match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_apt_repo_match: Option<String>,
}

/// One apt source: a `deb` line or `ppa:owner/name`, and its signing key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Source {
    /// A one-line `deb`/`deb-src` entry, deb822 stanzas (`Types:`, `URIs:`, `Suites:` lines),
    /// or `ppa:owner/name`. `$RELEASE`, `$MIRROR`, `$PRIMARY`, `$SECURITY` and `$KEY_FILE` are
    /// substituted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Key id (8 or 16 hex digits) or fingerprint (40) of the signing key, fetched from
    /// `keyserver`; its fingerprint is checked against this. With `key` too, the key block is
    /// used and must have this fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::values::TextOrNumber>")]
    pub keyid: Option<String>,
    /// The signing key as an ASCII-armored OpenPGP public key block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where `keyid` is fetched: a host (HKPS), or an hkp://, hkps://, http:// or https:// URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyserver: Option<String>,
    /// cloudcfg's extension: an https:// URL of the signing key (armored or binary), fetched
    /// at first boot. `keyid` is required: the fetched key's fingerprint must match it, or
    /// nothing of the module is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_url: Option<String>,
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
    #[schemars(with = "Option<crate::values::TextOrNumber>")]
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
