//! The registry: every cloud-config module cloudcfg runs, one line each, in cloud-init's
//! Debian order (docs/modules.md lists that order with each module's status in cloudcfg).
//!
//! A module is one file (a folder when it is big), `src/modules/<cloud-init name>.rs`, with a
//! type whose fields are the module's top-level keys (serde + schemars, every field
//! documented) and an `impl Module` giving its stage, frequency, checks and plan
//! ([`crate::module`]), plus one line below at its place in that order. From these lines come
//! the module declarations, the typed document ([`CloudConfig`], one field per module), the
//! top-level keys that are known, the JSON Schema, and the run order: by stage (init, config,
//! final), then by the order here.

use schemars::JsonSchema;
use serde::Serialize;

use crate::action::{Frequency, PlanError, Stage};
use crate::decode::de::{Context, DeError, from_node_section, struct_fields};
use crate::decode::yaml::Node;
use crate::module::{Checker, Module, Need, Planner};

/// A module as the registry runs it: its type's contract, with the type erased.
pub struct Registered {
    /// cloud-init's module name, used in plans, reports and state markers.
    pub name: &'static str,
    pub stage: Stage,
    pub frequency: Frequency,
    /// The top-level keys the module owns (its type's fields).
    pub keys: fn() -> &'static [&'static str],
    /// Types the module's keys from the document's root mapping into `config`.
    pub load: fn(&mut CloudConfig, &Node, &Context) -> Result<(), DeError>,
    pub check: fn(&CloudConfig, &mut Checker<'_>),
    pub needs: fn(&CloudConfig) -> Vec<Need>,
    pub plan: fn(&CloudConfig, &mut Planner<'_>) -> Result<(), PlanError>,
}

macro_rules! registry {
    ($($module:ident :: $keys:ident,)*) => {
        $(pub mod $module;)*

        /// A `#cloud-config` document: the keys of every module cloudcfg runs. Other
        /// cloud-init keys are accepted with a warning that cloudcfg does not handle them.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
        #[schemars(title = "cloudcfg cloud-config")]
        pub struct CloudConfig {
            $(
                #[serde(flatten)]
                pub $module: $module::$keys,
            )*
        }

        /// Every module, in cloud-init's Debian order.
        pub static MODULES: &[Registered] = &[
            $(
                Registered {
                    name: <$module::$keys as Module>::NAME,
                    stage: <$module::$keys as Module>::STAGE,
                    frequency: <$module::$keys as Module>::FREQUENCY,
                    keys: struct_fields::<$module::$keys>,
                    load: |config, root, ctx| {
                        config.$module = from_node_section(root, ctx)?;
                        Ok(())
                    },
                    check: |config, cx| Module::check(&config.$module, cx),
                    needs: |config| Module::needs(&config.$module),
                    plan: |config, planner| Module::plan(&config.$module, planner),
                },
            )*
        ];
    };
}

registry! {
    bootcmd::Bootcmd,
    write_files::WriteFiles,
    set_hostname::SetHostname,
    update_etc_hosts::UpdateEtcHosts,
    users_groups::UsersGroups,
    ssh::Ssh,
    set_passwords::SetPasswords,
    ssh_host_keys_deferred::SshHostKeysDeferred,
    apt_pipelining::AptPipelining,
    apt_configure::AptConfigure,
    runcmd::Runcmd,
    package_update_upgrade_install::PackageUpdateUpgradeInstall,
    write_files_deferred::WriteFilesDeferred,
    puppet::Puppet,
    scripts_per_once::ScriptsPerOnce,
    scripts_per_boot::ScriptsPerBoot,
    scripts_per_instance::ScriptsPerInstance,
    scripts_user::ScriptsUser,
    keys_to_console::KeysToConsole,
    final_message::FinalMessage,
    power_state_change::PowerStateChange,
}
