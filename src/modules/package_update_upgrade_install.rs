//! `package_update_upgrade_install`: the run's one `apt-get update`, `upgrade`, `install`.
//!
//! Update runs when asked for, and also when something needs fresh package lists (sources were
//! added, packages or puppet are installed, an upgrade is asked for); a warning says so when that
//! overrides an explicit `false`. Upgrade is `apt-get upgrade`, the seed's rule (cloud-init runs
//! `dist-upgrade`). Argv and environment are cloud-init's, byte for byte.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::config::values;
use crate::config::{Checker, CloudConfig};
use crate::modules::{apt_configure, puppet};
use crate::plan::{APT_ENV, PlanError, Planner, apt_get};

pub const NAME: &str = "package_update_upgrade_install";

/// A package: `name` (also `name=version`, `name/release`), or a `[name, version]` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PackageSpec {
    Name(String),
    Pinned(
        String,
        #[schemars(with = "crate::config::TextOrNumber")] String,
    ),
}

impl PackageSpec {
    /// What apt-get install takes.
    pub fn apt_arg(&self) -> String {
        match self {
            PackageSpec::Name(name) => name.clone(),
            PackageSpec::Pinned(name, version) => format!("{name}={version}"),
        }
    }
}

impl<'de> Deserialize<'de> for PackageSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = PackageSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a package name or a [name, version] pair")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PackageSpec::Name(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let pair_error =
                    || de::Error::custom("a [name, version] pair has exactly two items");
                let name: String = seq.next_element()?.ok_or_else(pair_error)?;
                let version: String = seq.next_element()?.ok_or_else(pair_error)?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(pair_error());
                }
                Ok(PackageSpec::Pinned(name, version))
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

fn either(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(false) || b.unwrap_or(false)),
    }
}

/// `package_update`/`apt_update`: as cloud-init, either true means true.
pub fn update_setting(config: &CloudConfig) -> Option<bool> {
    either(config.package_update, config.apt_update)
}

pub fn upgrade_setting(config: &CloudConfig) -> bool {
    either(config.package_upgrade, config.apt_upgrade).unwrap_or(false)
}

/// Why package lists must be fresh, whatever the update setting says.
fn update_reasons(config: &CloudConfig) -> Vec<String> {
    let mut reasons = Vec::new();
    if apt_configure::adds_sources(config) {
        reasons.push("sources are added".to_owned());
    }
    if let Some(packages) = config.packages.as_ref().filter(|p| !p.is_empty()) {
        let n = packages.len();
        reasons.push(format!(
            "{n} package{} {} installed",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        ));
    }
    if upgrade_setting(config) {
        reasons.push("an upgrade is asked for".to_owned());
    }
    if puppet::installs(config) {
        reasons.push("puppet is installed".to_owned());
    }
    reasons
}

pub fn check(config: &CloudConfig, cx: &mut Checker<'_>) {
    // Paths are formatted only for the entries that fail: lists run to 20,000 entries.
    for (i, spec) in config.packages.iter().flatten().enumerate() {
        match spec {
            PackageSpec::Name(name) => {
                if let Err(e) = values::package_spec(name) {
                    cx.error(&format!("packages[{i}]"), e);
                }
            }
            PackageSpec::Pinned(name, version) => {
                if let Err(e) = values::package_name(name) {
                    cx.error(&format!("packages[{i}][0]"), e);
                }
                if let Err(e) = values::package_version(version) {
                    cx.error(&format!("packages[{i}][1]"), e);
                }
            }
        }
    }
    for (seed, current) in [
        ("apt_update", "package_update"),
        ("apt_upgrade", "package_upgrade"),
    ] {
        let (a, b) = match seed {
            "apt_update" => (config.apt_update, config.package_update),
            _ => (config.apt_upgrade, config.package_upgrade),
        };
        if let (Some(a), Some(b)) = (a, b)
            && a != b
        {
            cx.warning(
                seed,
                format!("`{seed}: {a}` and `{current}: {b}` disagree: true wins, as in cloud-init"),
            );
        }
    }
    if update_setting(config) == Some(false) {
        let reasons = update_reasons(config);
        if !reasons.is_empty() {
            let key = if config.package_update == Some(false) {
                "package_update"
            } else {
                "apt_update"
            };
            cx.warning(
                key,
                format!("{key}: false is overridden: {}", reasons.join(", ")),
            );
        }
    }
    if config.package_reboot_if_required == Some(true) {
        cx.warning(
            "package_reboot_if_required",
            "cloudcfg never reboots: ignored (check /run/reboot-required after first boot)",
        );
    }
}

pub fn plan(planner: &mut Planner<'_>) -> Result<(), PlanError> {
    let config = planner.config;
    if update_setting(config) == Some(true) || !update_reasons(config).is_empty() {
        planner.command(apt_get(&["update"]), APT_ENV, None);
    }
    if upgrade_setting(config) {
        planner.command(apt_get(&["upgrade"]), APT_ENV, None);
    }
    let packages: Vec<String> = config
        .packages
        .iter()
        .flatten()
        .map(PackageSpec::apt_arg)
        .collect();
    if !packages.is_empty() {
        let mut args = vec!["install"];
        args.extend(packages.iter().map(String::as_str));
        planner.command(apt_get(&args), APT_ENV, None);
    }
    Ok(())
}
