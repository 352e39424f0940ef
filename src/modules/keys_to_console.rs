//! `keys_to_console`: the host keys' fingerprints and public keys on the console in
//! cloud-init's blocks (`-----BEGIN SSH HOST KEY FINGERPRINTS-----`, `-----BEGIN SSH HOST KEY
//! KEYS-----`), because people check a new host's key against `aws ec2 get-console-output`
//! before they trust it (cloud-init's `cc_keys_to_console`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage};
use crate::module::{Checker, Module, Planner};

/// `ssh`: what cloud-init keeps under it for this module.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct SshConsole {
    /// Print the blocks (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emit_keys_to_console: Option<bool>,
}

/// The top-level keys `keys_to_console` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct KeysToConsole {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshConsole>,
    /// Key types (`ssh-rsa`, ...) whose fingerprints are left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_fp_console_blacklist: Option<Vec<String>>,
    /// Key types whose public keys are left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_key_console_blacklist: Option<Vec<String>>,
}

impl Module for KeysToConsole {
    const NAME: &'static str = "keys_to_console";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        for (field, list) in [
            ("ssh_fp_console_blacklist", &self.ssh_fp_console_blacklist),
            ("ssh_key_console_blacklist", &self.ssh_key_console_blacklist),
        ] {
            for (i, key_type) in list.iter().flatten().enumerate() {
                cx.check(
                    &format!("{field}[{i}]"),
                    crate::values::single_line(key_type),
                );
            }
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        if self.ssh.as_ref().and_then(|s| s.emit_keys_to_console) == Some(false) {
            return Ok(());
        }
        planner.push(ActionKind::HostKeysToConsole {
            skip_fingerprints: self.ssh_fp_console_blacklist.clone().unwrap_or_default(),
            skip_keys: self.ssh_key_console_blacklist.clone().unwrap_or_default(),
        });
        Ok(())
    }
}
