//! `ssh_host_keys_deferred` (cloudcfg's own, no keys): the host key types `ssh` did not make
//! before sshd started, made early in the config stage, then handed to the running sshd by a
//! reload, so that the first login does not wait for RSA key generation. It owns no key:
//! `ssh` hands the types over as a need.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage};
use crate::module::{Module, Need, Planner};
use crate::modules::ssh::host_key_comment;

/// No keys of its own (the types are `ssh_genkeytypes`').
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct SshHostKeysDeferred {}

impl Module for SshHostKeysDeferred {
    const NAME: &'static str = "ssh_host_keys_deferred";
    const STAGE: Stage = Stage::Config;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let Some((types, quiet)) = planner.needs().iter().find_map(|need| match need {
            Need::DeferredHostKeys { types, quiet } => Some((types.clone(), *quiet)),
            _ => None,
        }) else {
            return Ok(());
        };
        let comment = host_key_comment(planner);
        planner.push(ActionKind::HostKeys {
            // The init stage removed the image's keys: only what is still missing is made.
            delete_existing: false,
            generate: types,
            given: Vec::new(),
            comment,
            quiet,
        });
        // sshd started with the init stage's keys; a reload makes it offer the new ones.
        planner.push(ActionKind::ReloadService {
            unit: "ssh.service".into(),
        });
        Ok(())
    }
}
