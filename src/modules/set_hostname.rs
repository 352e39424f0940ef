//! `set_hostname`: the instance's hostname (cloud-init's `cc_set_hostname`), from `fqdn` and
//! `hostname`, else the datasource's local-hostname, written to /etc/hostname and given to the
//! running kernel, in the init stage: puppet's `%f` certname and facter then agree with the
//! system. `update_etc_hosts` and the host keys' comment use the same names ([`names`]).
//!
//! cloud-init's `update_hostname`, which sets the same names again at every boot, is not a
//! module of cloudcfg: the names come from the instance's user data and datasource, which a
//! reboot does not change (docs/compat.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Facts, Frequency, PlanError, Stage};
use crate::module::{Checker, HostnameKeys, Module, Need, Planner};
use crate::values;

/// The top-level keys `set_hostname` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct SetHostname {
    /// The host name; one with a dot is taken as the FQDN, as cloud-init does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The fully qualified name; `hostname` defaults to its first label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// Write the FQDN to /etc/hostname instead of the short name (default false on Debian and
    /// Ubuntu).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefer_fqdn_over_hostname: Option<bool>,
    /// Leave the hostname as the image has it (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_hostname: Option<bool>,
    /// Create /etc/hostname when the image has none (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_hostname_file: Option<bool>,
}

/// The instance's names as `set_hostname` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The short name (or the FQDN with `prefer_fqdn_over_hostname`).
    pub hostname: String,
    pub fqdn: String,
}

/// The instance's names: the user data's, else the datasource's; none when neither has one.
/// cloud-init's rules: `fqdn` wins and `hostname` defaults to its first label; a `hostname`
/// with a dot is the FQDN; a plain `hostname` keeps the datasource's FQDN.
pub fn names(needs: &[Need], facts: &Facts) -> Option<Names> {
    let keys = needs
        .iter()
        .find_map(|n| match n {
            Need::Hostname(keys) => Some(keys.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let first_label = |name: &str| name.split('.').next().unwrap_or(name).to_owned();
    let datasource_fqdn = facts
        .fqdn
        .clone()
        .or_else(|| facts.hostname.clone().filter(|h| h.contains('.')));
    let (hostname, fqdn) = match (&keys.fqdn, &keys.hostname) {
        (Some(fqdn), hostname) => (
            hostname.clone().unwrap_or_else(|| first_label(fqdn)),
            fqdn.clone(),
        ),
        (None, Some(name)) if name.contains('.') => (first_label(name), name.clone()),
        (None, Some(name)) => (name.clone(), datasource_fqdn.unwrap_or_else(|| name.clone())),
        (None, None) => {
            let hostname = facts.hostname.as_deref().map(first_label)?;
            (hostname.clone(), datasource_fqdn.unwrap_or(hostname))
        }
    };
    Some(Names {
        hostname: if keys.prefer_fqdn {
            fqdn.clone()
        } else {
            hostname
        },
        fqdn,
    })
}

impl Module for SetHostname {
    const NAME: &'static str = "set_hostname";
    const STAGE: Stage = Stage::Init;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        if let Some(name) = &self.hostname {
            cx.check("hostname", values::host_name(name));
        }
        if let Some(fqdn) = &self.fqdn {
            cx.check("fqdn", values::host_name(fqdn));
        }
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::Hostname(HostnameKeys {
            hostname: self.hostname.clone(),
            fqdn: self.fqdn.clone(),
            prefer_fqdn: self.prefer_fqdn_over_hostname.unwrap_or(false),
        })]
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        if self.preserve_hostname.unwrap_or(false) {
            return Ok(());
        }
        let Some(names) = names(planner.needs(), planner.facts) else {
            return Ok(());
        };
        // The user data's names were checked; the datasource's are taken only when valid.
        if let Err(e) = values::host_name(&names.hostname).and(values::host_name(&names.fqdn)) {
            planner.warn("hostname", format!("the datasource's hostname {e}: not set"));
            return Ok(());
        }
        planner.push(ActionKind::SetHostname {
            hostname: names.hostname,
            create_file: self.create_hostname_file.unwrap_or(true),
        });
        Ok(())
    }
}
