//! `update_etc_hosts`: `/etc/hosts` with the instance's names (cloud-init's
//! `cc_update_etc_hosts`), at every boot. `manage_etc_hosts: true` (or `template`) writes
//! the whole file as cloud-init's Debian template has it; `localhost` puts the names on the
//! `127.0.1.1` line of the file that is there and keeps every other line; `false` (the
//! default) leaves the file alone.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage, Text};
use crate::module::{Checker, Module, Planner};
use crate::modules::set_hostname::names;

pub const HOSTS_FILE: &str = "/etc/hosts";

/// Debian's address for the host's own names (cloud-init's template and Debian's installer).
pub const OWN_ADDRESS: &str = "127.0.1.1";

/// `manage_etc_hosts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ManageHosts {
    Switch(bool),
    /// `template` (the same as true) or `localhost`.
    Mode(String),
}

/// The top-level key `update_etc_hosts` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct UpdateEtcHosts {
    /// true or `template`: write /etc/hosts; `localhost`: set the names' line only; false
    /// (default): leave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manage_etc_hosts: Option<ManageHosts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Template,
    Localhost,
    Off,
}

fn mode(value: Option<&ManageHosts>) -> Result<Mode, String> {
    match value {
        None | Some(ManageHosts::Switch(false)) => Ok(Mode::Off),
        Some(ManageHosts::Switch(true)) => Ok(Mode::Template),
        Some(ManageHosts::Mode(word)) => match word.as_str() {
            "template" => Ok(Mode::Template),
            "localhost" => Ok(Mode::Localhost),
            _ => Err(format!(
                "{word:?} is not true, false, \"template\" or \"localhost\""
            )),
        },
    }
}

/// The whole file of `manage_etc_hosts: true`: the lines of cloud-init's Debian template.
pub fn hosts_file(fqdn: &str, hostname: &str) -> String {
    let own = if fqdn == hostname {
        hostname.to_owned()
    } else {
        format!("{fqdn} {hostname}")
    };
    format!(
        "# Written by cloudcfg at every boot because the user data sets manage_etc_hosts; edits \
         here are lost\n# at the next boot: change the user data instead.\n\
         {OWN_ADDRESS} {own}\n127.0.0.1 localhost\n\n\
         # IPv6\n::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n\
         ff02::2 ip6-allrouters\n"
    )
}

impl Module for UpdateEtcHosts {
    const NAME: &'static str = "update_etc_hosts";
    const STAGE: Stage = Stage::Init;
    const FREQUENCY: Frequency = Frequency::Always;

    fn check(&self, cx: &mut Checker<'_>) {
        cx.check("manage_etc_hosts", mode(self.manage_etc_hosts.as_ref()));
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let mode = mode(self.manage_etc_hosts.as_ref()).unwrap_or(Mode::Off);
        if mode == Mode::Off {
            return Ok(());
        }
        let Some(names) = names(planner.needs(), planner.facts).filter(|n| {
            crate::values::host_name(&n.hostname).is_ok() && crate::values::host_name(&n.fqdn).is_ok()
        }) else {
            planner.warn(
                "manage_etc_hosts",
                "no valid hostname in the user data or the datasource: /etc/hosts left as it is",
            );
            return Ok(());
        };
        match mode {
            Mode::Template => planner.write_file(
                HOSTS_FILE,
                0o644,
                Text::plain(hosts_file(&names.fqdn, &names.hostname)),
            ),
            _ => {
                let mut own = vec![names.fqdn.clone()];
                if names.hostname != names.fqdn {
                    own.push(names.hostname);
                }
                planner.push(ActionKind::HostsEntry {
                    address: OWN_ADDRESS.into(),
                    names: own,
                });
            }
        }
        Ok(())
    }
}
