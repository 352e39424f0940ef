//! The cloud-config modules cloudcfg runs, one file each, in run order.
//!
//! Each module owns its keys' types, the checks beyond types, and its planning. To add one:
//! write `src/modules/<cloud-init name>.rs` with its types (serde + schemars), a `check` and a
//! `plan` function, add its keys to [`crate::config::CloudConfig`], and list it in [`MODULES`]
//! at its place in the run order (contract.md, "Order and ownership").

pub mod apt_configure;
pub mod package_update_upgrade_install;
pub mod puppet;

use crate::config::{Checker, CloudConfig};
use crate::plan::{PlanError, Planner};

pub struct Module {
    /// cloud-init's module name, used in plans, reports and state markers.
    pub name: &'static str,
    pub check: fn(&CloudConfig, &mut Checker<'_>),
    pub plan: fn(&mut Planner<'_>) -> Result<(), PlanError>,
}

/// Run order: apt configuration, then packages (which owns the run's one `apt-get update`),
/// then puppet (whose package needs fresh lists and whose config must precede its install).
pub const MODULES: &[Module] = &[
    Module {
        name: apt_configure::NAME,
        check: apt_configure::check,
        plan: apt_configure::plan,
    },
    Module {
        name: package_update_upgrade_install::NAME,
        check: package_update_upgrade_install::check,
        plan: package_update_upgrade_install::plan,
    },
    Module {
        name: puppet::NAME,
        check: puppet::check,
        plan: puppet::plan,
    },
];

pub fn check_all(config: &CloudConfig, checker: &mut Checker<'_>) {
    for module in MODULES {
        (module.check)(config, checker);
    }
}
