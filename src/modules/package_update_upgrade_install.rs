//! `package_update_upgrade_install`: the run's one `apt-get update`, `upgrade`, `install`.
//!
//! Update runs when asked for, and also when something needs fresh package lists (sources were
//! added, packages or puppet are installed, an upgrade is asked for); a warning says so when that
//! overrides an explicit `false`. Upgrade is `apt-get upgrade`, the seed's rule (cloud-init runs
//! `dist-upgrade`). Argv and environment are cloud-init's, byte for byte.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::action::{APT_ENV, Distro, Frequency, PlanError, Stage, apt_get};
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

/// An entry of `packages`: a package for apt, or cloud-init 23.x's lists by package manager
/// (`- apt: [...]`, `- snap: [...]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PackageSpec {
    Item(PackageItem),
    ByManager(PackageManagers),
}

/// A package: `name` (also `name=version`, `name/release`), or a `[name, version]` pair; for
/// snap the second item is passed to `snap install` (`[juju, --edge]`), as cloud-init does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PackageItem {
    Name(String),
    Pinned(
        String,
        #[schemars(with = "crate::values::TextOrNumber")] String,
    ),
}

/// `- apt: [...]` and `- snap: [...]`: packages by the manager that installs them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PackageManagers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apt: Option<Vec<PackageItem>>,
    /// Installed with `snap install` on Ubuntu; on Debian (no snapd in its images) a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snap: Option<Vec<PackageItem>>,
}

impl PackageItem {
    /// What apt-get install takes.
    pub fn apt_arg(&self) -> String {
        match self {
            PackageItem::Name(name) => name.clone(),
            PackageItem::Pinned(name, version) => format!("{name}={version}"),
        }
    }

    /// `snap install`'s arguments.
    fn snap_args(&self) -> Vec<String> {
        match self {
            PackageItem::Name(name) => vec![name.clone()],
            PackageItem::Pinned(name, arg) => vec![name.clone(), arg.clone()],
        }
    }
}

impl PackageSpec {
    /// The apt packages of the entry, in order.
    fn apt_items(&self) -> Vec<&PackageItem> {
        match self {
            PackageSpec::Item(item) => vec![item],
            PackageSpec::ByManager(m) => m.apt.iter().flatten().collect(),
        }
    }

    fn snap_items(&self) -> Vec<&PackageItem> {
        match self {
            PackageSpec::Item(_) => Vec::new(),
            PackageSpec::ByManager(m) => m.snap.iter().flatten().collect(),
        }
    }
}

impl<'de> Deserialize<'de> for PackageItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpecVisitor { managers: false })
            .and_then(|spec| match spec {
                PackageSpec::Item(item) => Ok(item),
                PackageSpec::ByManager(_) => Err(de::Error::custom(
                    "a package name or a [name, version] pair",
                )),
            })
    }
}

impl<'de> Deserialize<'de> for PackageSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpecVisitor { managers: true })
    }
}

/// One visitor for both: `managers` says whether a mapping of managers may stand here.
struct SpecVisitor {
    managers: bool,
}

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = PackageSpec;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.managers {
            true => f.write_str("a package name, a [name, version] pair, or `apt:`/`snap:` lists"),
            false => f.write_str("a package name or a [name, version] pair"),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PackageSpec::Item(PackageItem::Name(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let pair_error = || de::Error::custom("a [name, version] pair has exactly two items");
        let name: String = seq.next_element()?.ok_or_else(pair_error)?;
        let version: String = seq.next_element()?.ok_or_else(pair_error)?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(pair_error());
        }
        Ok(PackageSpec::Item(PackageItem::Pinned(name, version)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if !self.managers {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        }
        let mut managers = PackageManagers::default();
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "apt" => &mut managers.apt,
                "snap" => &mut managers.snap,
                other => {
                    return Err(de::Error::custom(format!(
                        "`{other}` is not a package manager cloudcfg knows: apt or snap"
                    )));
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format!("`{key}` is given twice")));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(PackageSpec::ByManager(managers))
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

fn check_apt_item(item: &PackageItem, at: &str, cx: &mut Checker<'_>) {
    match item {
        PackageItem::Name(name) => {
            if let Err(e) = values::package_spec(name) {
                cx.error(at, e);
            }
        }
        PackageItem::Pinned(name, version) => {
            if let Err(e) = values::package_name(name) {
                cx.error(&format!("{at}[0]"), e);
            }
            if let Err(e) = values::package_version(version) {
                cx.error(&format!("{at}[1]"), e);
            }
        }
    }
}

/// Every package of the list, apt's and snap's, for the count limit.
fn package_count(config: &PackageUpdateUpgradeInstall) -> usize {
    config
        .packages
        .iter()
        .flatten()
        .map(|spec| spec.apt_items().len() + spec.snap_items().len())
        .sum()
}

fn apt_packages(config: &PackageUpdateUpgradeInstall) -> Vec<String> {
    config
        .packages
        .iter()
        .flatten()
        .flat_map(PackageSpec::apt_items)
        .map(PackageItem::apt_arg)
        .collect()
}

fn check_packages(config: &PackageUpdateUpgradeInstall, cx: &mut Checker<'_>) {
    let count = package_count(config);
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
            PackageSpec::Item(item) => check_apt_item(item, &format!("packages[{i}]"), cx),
            PackageSpec::ByManager(m) => {
                if m.apt.is_none() && m.snap.is_none() {
                    cx.warning(&format!("packages[{i}]"), "no `apt:` or `snap:` list: nothing to install");
                }
                for (j, item) in m.apt.iter().flatten().enumerate() {
                    check_apt_item(item, &format!("packages[{i}].apt[{j}]"), cx);
                }
                for (j, item) in m.snap.iter().flatten().enumerate() {
                    let at = format!("packages[{i}].snap[{j}]");
                    let args = item.snap_args();
                    if let Err(e) = values::snap_name(&args[0]) {
                        let at = if args.len() > 1 { format!("{at}[0]") } else { at.clone() };
                        cx.error(&at, e);
                    }
                    if let Some(arg) = args.get(1)
                        && let Err(e) = values::snap_option(arg)
                    {
                        cx.error(&format!("{at}[1]"), e);
                    }
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
        let n = apt_packages(self).len();
        if n > 0 {
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
        let packages = apt_packages(config);
        if !packages.is_empty() {
            let mut args = vec!["install"];
            args.extend(packages.iter().map(String::as_str));
            planner.command(apt_get(&args), APT_ENV, None);
        }
        let snaps: Vec<&PackageItem> = config
            .packages
            .iter()
            .flatten()
            .flat_map(PackageSpec::snap_items)
            .collect();
        if !snaps.is_empty() {
            match planner.facts.distro() {
                // One at a time, as cloud-init: `snap install` takes options per snap.
                Distro::Ubuntu => {
                    for snap in snaps {
                        let mut argv = vec!["snap".to_owned(), "install".to_owned()];
                        argv.extend(snap.snap_args());
                        planner.command(argv, &[], None);
                    }
                }
                Distro::Debian => {
                    let names: Vec<String> = snaps.iter().map(|s| s.snap_args()[0].clone()).collect();
                    planner.warn(
                        "packages",
                        format!(
                            "snap packages are not installed on Debian (its images have no snapd): {}",
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}
