//! `package_update_upgrade_install`: the run's one `apt-get update`, `upgrade`, `install`.
//!
//! Update runs when asked for, and also when something needs fresh package lists (sources were
//! added, packages or puppet are installed, an upgrade is asked for); a warning says so when that
//! overrides an explicit `false`. Upgrade is `apt-get upgrade`, the seed's rule (cloud-init runs
//! `dist-upgrade`). Argv and environment are cloud-init's, byte for byte.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::action::{APT_ENV, Frequency, PlanError, Stage, apt_get};
use crate::module::{Checker, Module, Need, Planner};
use crate::values;

/// The top-level keys `package_update_upgrade_install` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct PackageUpdateUpgradeInstall {
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
}

/// A package: `name` (also `name=version`, `name/release`), or a `[name, version]` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PackageSpec {
    Name(String),
    Pinned(
        String,
        #[schemars(with = "crate::values::TextOrNumber")] String,
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
pub fn update_setting(config: &PackageUpdateUpgradeInstall) -> Option<bool> {
    either(config.package_update, config.apt_update)
}

pub fn upgrade_setting(config: &PackageUpdateUpgradeInstall) -> bool {
    either(config.package_upgrade, config.apt_upgrade).unwrap_or(false)
}

/// Why package lists must be fresh, whatever the update setting says: every module's needs.
fn update_reasons(needs: &[Need]) -> Vec<String> {
    needs
        .iter()
        .filter_map(|need| match need {
            Need::PackageLists(reason) => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn check_packages(config: &PackageUpdateUpgradeInstall, cx: &mut Checker<'_>) {
    let count = config.packages.as_ref().map_or(0, Vec::len);
    if count > cx.limits().max_packages {
        let message = format!(
            "{count} packages: at most {} are allowed",
            cx.limits().max_packages
        );
        cx.error("packages", message);
    }
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
        let reasons = update_reasons(cx.needs());
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

impl Module for PackageUpdateUpgradeInstall {
    const NAME: &'static str = "package_update_upgrade_install";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        check_packages(self, cx);
    }

    fn needs(&self) -> Vec<Need> {
        let mut needs = Vec::new();
        if let Some(packages) = self.packages.as_ref().filter(|p| !p.is_empty()) {
            let n = packages.len();
            needs.push(Need::PackageLists(format!(
                "{n} package{} {} installed",
                if n == 1 { "" } else { "s" },
                if n == 1 { "is" } else { "are" }
            )));
        }
        if upgrade_setting(self) {
            needs.push(Need::PackageLists("an upgrade is asked for".to_owned()));
        }
        needs
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let config = self;
        if update_setting(config) == Some(true) || !update_reasons(planner.needs()).is_empty() {
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
}
