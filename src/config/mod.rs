//! The typed cloud-config: the one source of truth for the format. `schema/` is generated from
//! these types (`cloudcfg schema`), and a test fails when the committed schema drifts.
//!
//! Loading is pure: bytes in, a [`CloudConfig`] and diagnostics out. Each module's keys, and the
//! checks beyond types, live in that module's file under `src/modules/`.

pub mod system;
pub mod values;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decode::de::{Context, UnknownKey, from_node};
use crate::decode::yaml::Pos;
use crate::decode::{self, DecodeError, Limits, UserData};
use crate::diag::{Diagnostic, Report};
use crate::modules::apt_configure::{Apt, AptConfEntry, DebconfSelections, Source};
use crate::modules::package_update_upgrade_install::PackageSpec;
use crate::modules::puppet::Puppet;

/// A `#cloud-config` document: the keys cloudcfg runs. Other cloud-init keys are accepted with
/// a warning that cloudcfg does not handle them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(title = "cloudcfg cloud-config")]
pub struct CloudConfig {
    /// Run `apt-get update` on first boot. Absent means false, as in cloud-init; it runs anyway
    /// when sources are added or packages installed, with a warning when that overrides `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_update: Option<bool>,
    /// The seed's name for `package_update`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_update: Option<bool>,
    /// Run `apt-get upgrade` on first boot (the seed RFC's rule; cloud-init runs `dist-upgrade`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_upgrade: Option<bool>,
    /// The seed's name for `package_upgrade`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt_upgrade: Option<bool>,
    /// cloud-init reboots when an upgrade asks for it; cloudcfg never reboots (a warning says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_reboot_if_required: Option<bool>,
    /// Packages to install: names (`hello`, `hello=2.10-3`) or `[name, version]` pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<PackageSpec>>,

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

    /// The puppet agent: package, puppet.conf, CA certificate, CSR attributes, service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub puppet: Option<Puppet>,
}

/// Schema of text that may be written as a bare number (`keyid: 12345678`, `[hello, 2.10]`):
/// read as the characters written.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
pub(crate) enum TextOrNumber {
    Text(String),
    Number(f64),
}

/// Keys cloud-init reads at the top level that cloudcfg does not run (from cloud-init 22.4's
/// schema and module list). They get their own warning rather than "unknown key".
pub const CLOUD_INIT_KEYS_NOT_HANDLED: &[&str] = &[
    "allow_public_ssh_keys",
    "ansible",
    "apk_repos",
    "apt_pipelining",
    "apt_reboot_if_required",
    "autoinstall",
    "bootcmd",
    "byobu_by_default",
    "ca-certs",
    "ca_certs",
    "chef",
    "chpasswd",
    "cloud_config_modules",
    "cloud_final_modules",
    "cloud_init_modules",
    "create_hostname_file",
    "datasource",
    "datasource_list",
    "device_aliases",
    "disable_ec2_metadata",
    "disable_root",
    "disable_root_opts",
    "disk_setup",
    "drivers",
    "fan",
    "final_message",
    "fqdn",
    "fs_setup",
    "groups",
    "growpart",
    "grub_dpkg",
    "grub-dpkg",
    "hostname",
    "keyboard",
    "landscape",
    "locale",
    "locale_configfile",
    "lxd",
    "manage_etc_hosts",
    "manage_resolv_conf",
    "mcollective",
    "merge_how",
    "merge_type",
    "mount_default_fields",
    "mounts",
    "no_ssh_fingerprints",
    "ntp",
    "output",
    "password",
    "phone_home",
    "power_state",
    "prefer_fqdn_over_hostname",
    "preserve_hostname",
    "random_seed",
    "reporting",
    "resize_rootfs",
    "resolv_conf",
    "rh_subscription",
    "rsyslog",
    "runcmd",
    "salt_minion",
    "snap",
    "spacewalk",
    "ssh",
    "ssh_authorized_keys",
    "ssh_deletekeys",
    "ssh_fp_console_blacklist",
    "ssh_genkeytypes",
    "ssh_import_id",
    "ssh_key_console_blacklist",
    "ssh_keys",
    "ssh_publish_hostkeys",
    "ssh_pwauth",
    "ssh_quiet_keygen",
    "swap",
    "system_info",
    "timezone",
    "ubuntu_advantage",
    "ubuntu_pro",
    "updates",
    "user",
    "users",
    "vendor_data",
    "wireguard",
    "write_files",
    "yum_repos",
    "zypper",
];

/// Finds diagnostics' positions for checks that run on typed values.
pub struct Checker<'a> {
    ctx: &'a Context,
    report: &'a mut Report,
    fallback: Pos,
}

impl<'a> Checker<'a> {
    pub fn new(ctx: &'a Context, report: &'a mut Report, fallback: Pos) -> Checker<'a> {
        Checker {
            ctx,
            report,
            fallback,
        }
    }

    /// Where `path` was written; for a key that was not written, where its parent was.
    pub fn pos(&self, path: &str) -> Pos {
        let mut path = path;
        loop {
            if let Some(pos) = self.ctx.pos(path) {
                return pos;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return self.fallback,
            }
        }
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.pos(path);
        self.report.push(Diagnostic::error(pos, path, message));
    }

    pub fn warning(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.pos(path);
        self.report.push(Diagnostic::warning(pos, path, message));
    }

    /// Runs a value check, turning its error into a diagnostic at `path`.
    pub fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }
}

/// A loaded user-data file: the config when it could be typed, and every finding.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub user_data: UserData,
    /// `None` when decoding or typing failed (see `report`), or for a config with nothing to do
    /// it is `Some(CloudConfig::default())`.
    pub config: Option<CloudConfig>,
    pub report: Report,
}

impl Loaded {
    pub fn is_valid(&self) -> bool {
        self.config.is_some() && !self.report.has_errors()
    }

    /// The warnings as `(path, message)`, the message naming its part when there are parts.
    pub fn warnings(&self) -> Vec<(String, String)> {
        self.report
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Warning)
            .map(|d| {
                let full = d.full_message(&self.report.parts);
                let message = full
                    .strip_prefix(&format!("{}: ", d.path))
                    .filter(|_| !d.path.is_empty())
                    .map_or_else(|| full.clone(), str::to_owned);
                (d.path.clone(), message)
            })
            .collect()
    }
}

pub fn suggest<'k>(key: &str, candidates: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    // Jaro-Winkler reaches 0.85 only when neither string is over 4 times the other's length
    // (jaro <= (1/4 + 1 + 1) / 3 = 0.75, and the prefix bonus lifts 0.75 to 0.85 at most), so
    // other candidates are skipped unscored: scoring a 64 KiB key costs its length times each
    // candidate's.
    let len = key.chars().count();
    candidates
        .into_iter()
        .filter(|c| len <= 4 * c.len() && c.len() <= 4 * len)
        .map(|c| (strsim::jaro_winkler(key, c), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Unknown keys that get a "did you mean": typos come one or two at a time; a document with
/// thousands of unknown keys is not a typo, and scoring each against some hundred known keys
/// took a second for 8,000 keys in 64 KiB.
const MAX_SUGGESTIONS: usize = 100;

fn unknown_key_diagnostic(unknown: &UnknownKey, suggest_near: bool) -> Diagnostic {
    let top_level = unknown.within == "CloudConfig";
    if top_level && CLOUD_INIT_KEYS_NOT_HANDLED.contains(&unknown.key.as_str()) {
        return Diagnostic::warning(
            unknown.pos,
            &unknown.path,
            format!(
                "`{}` is a cloud-init key not handled by cloudcfg: ignored",
                unknown.key
            ),
        );
    }
    let mut message = format!("unknown key `{}`: ignored", unknown.key);
    let candidates = unknown.expected.iter().copied().chain(
        top_level
            .then_some(CLOUD_INIT_KEYS_NOT_HANDLED.iter().copied())
            .into_iter()
            .flatten(),
    );
    if let Some(near) = suggest_near
        .then(|| suggest(&unknown.key, candidates))
        .flatten()
    {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    Diagnostic::warning(unknown.pos, &unknown.path, message)
}

fn decode_error_diagnostic(err: &DecodeError) -> Diagnostic {
    let (label, pos) = err.location();
    let message = match label {
        Some(label) => format!("{label}: {}", err.bare_message()),
        None => err.bare_message(),
    };
    Diagnostic::error(pos, "", message)
}

/// Lists whose length drives the work of apply are bounded too (README, "Limits").
fn check_counts(config: &CloudConfig, limits: &Limits, cx: &mut Checker<'_>) {
    let packages = config.packages.as_ref().map_or(0, Vec::len);
    if packages > limits.max_packages {
        cx.error(
            "packages",
            format!(
                "{packages} packages: at most {} are allowed",
                limits.max_packages
            ),
        );
    }
    let sources = config.apt_sources.as_ref().map_or(0, Vec::len)
        + config
            .apt
            .as_ref()
            .and_then(|a| a.sources.as_ref())
            .map_or(0, |s| s.len());
    if sources > limits.max_sources {
        let path = if config.apt_sources.is_some() {
            "apt_sources"
        } else {
            "apt.sources"
        };
        cx.error(
            path,
            format!(
                "{sources} apt sources: at most {} are allowed",
                limits.max_sources
            ),
        );
    }
}

/// Decodes, types and checks user data. Never panics, whatever the bytes.
pub fn load(bytes: &[u8], limits: &Limits) -> Loaded {
    let user_data = match decode::decode(bytes, limits) {
        Ok(ud) => ud,
        Err(err) => {
            let mut report = Report::default();
            report.push(decode_error_diagnostic(&err));
            return Loaded {
                user_data: UserData::default(),
                config: None,
                report,
            };
        }
    };
    let mut report = Report::from_user_data(&user_data);
    for warning in &user_data.warnings {
        let mut pos = warning.pos;
        pos.part = u16::try_from(warning.part).unwrap_or(u16::MAX);
        report.push(Diagnostic::warning(pos, "", &warning.message));
    }
    for (part, dup) in &user_data.duplicates {
        let mut pos = dup.second;
        pos.part = u16::try_from(*part).unwrap_or(u16::MAX);
        report.push(Diagnostic::warning(
            pos,
            "",
            format!(
                "duplicate key `{}` (first at line {}, column {}): this later value wins",
                dup.key, dup.first.line, dup.first.col
            ),
        ));
    }
    let Some(root) = &user_data.root else {
        report.sort();
        return Loaded {
            user_data,
            config: Some(CloudConfig::default()),
            report,
        };
    };
    let ctx = Context::new();
    let typed: Result<CloudConfig, _> = from_node(root, &ctx);
    for (i, unknown) in ctx.take_unknown().iter().enumerate() {
        report.push(unknown_key_diagnostic(unknown, i < MAX_SUGGESTIONS));
    }
    let config = match typed {
        Ok(config) => {
            let mut checker = Checker::new(&ctx, &mut report, root.pos);
            check_counts(&config, limits, &mut checker);
            crate::modules::check_all(&config, &mut checker);
            Some(config)
        }
        Err(err) => {
            report.push(Diagnostic::error(
                err.pos.unwrap_or(root.pos),
                err.path,
                err.message,
            ));
            None
        }
    };
    report.sort();
    Loaded {
        user_data,
        config,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The length filter of `suggest` drops only candidates that could not score 0.85.
        #[test]
        fn suggest_skips_only_hopeless_candidates(key in "[a-z_]{1,12}", extra in "[a-z_]{1,60}") {
            let long = format!("{key}{extra}");
            let (short_len, long_len) = (key.chars().count(), long.chars().count());
            if long_len > 4 * short_len {
                prop_assert!(strsim::jaro_winkler(&long, &key) < 0.85);
                prop_assert!(strsim::jaro_winkler(&key, &long) < 0.85);
            }
        }
    }

    #[test]
    fn suggestions_still_find_typos() {
        assert_eq!(suggest("pakages", ["packages", "puppet"]), Some("packages"));
        assert_eq!(suggest(&"p".repeat(70_000), ["packages"]), None);
    }
}
