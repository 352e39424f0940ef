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

#[cfg(test)]
mod tests {
    use crate::action::{ActionKind, Facts, Stage};
    use crate::decode::Limits;
    use crate::system::SystemConfig;

    /// Where a HostKeys action runs and which types it makes.
    type Made = (Stage, &'static str, Vec<String>);

    /// Every HostKeys action, and whether sshd is reloaded after the config stage's.
    fn host_key_actions(user_data: &str) -> (Vec<Made>, bool) {
        let loaded = crate::config::load(user_data.as_bytes(), &Limits::default());
        let config = loaded.config.expect("the config loads");
        let facts = Facts {
            instance_id: Some("i-1".into()),
            hostname: Some("web1".into()),
            ..Facts::default()
        };
        let plan = crate::plan::plan(&config, &facts, &SystemConfig::default()).unwrap();
        let keys = plan
            .actions
            .iter()
            .filter_map(|a| match &a.kind {
                ActionKind::HostKeys { generate, .. } => Some((a.stage, a.module, generate.clone())),
                _ => None,
            })
            .collect();
        let reload = plan.actions.iter().any(|a| {
            a.module == "ssh_host_keys_deferred"
                && matches!(&a.kind, ActionKind::ReloadService { unit } if unit == "ssh.service")
        });
        (keys, reload)
    }

    fn types(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn rsa_waits_for_the_config_stage_when_another_type_is_made() {
        let (keys, reload) = host_key_actions("#cloud-config\n{}\n");
        assert_eq!(
            keys,
            [
                (Stage::Init, "ssh", types(&["ecdsa", "ed25519"])),
                (Stage::Config, "ssh_host_keys_deferred", types(&["rsa"])),
            ]
        );
        assert!(reload, "sshd is reloaded to offer the RSA key");
    }

    #[test]
    fn rsa_alone_is_made_before_sshd() {
        let (keys, reload) = host_key_actions("#cloud-config\nssh_genkeytypes: [rsa]\n");
        assert_eq!(keys, [(Stage::Init, "ssh", types(&["rsa"]))]);
        assert!(!reload);
        let (keys, _) = host_key_actions("#cloud-config\nssh_genkeytypes: [ed25519]\n");
        assert_eq!(keys, [(Stage::Init, "ssh", types(&["ed25519"]))]);
    }

    #[test]
    fn given_keys_leave_nothing_to_make_later() {
        let (keys, reload) = host_key_actions(
            "#cloud-config\nssh_keys:\n  ed25519_public: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n",
        );
        assert_eq!(keys, [(Stage::Init, "ssh", Vec::new())]);
        assert!(!reload);
    }
}
