//! The registry: every module cloudcfg runs, one line each, in cloud-init's Debian order
//! (docs/modules.md lists that order with each module's status in cloudcfg).
//!
//! From these lines come the typed document ([`CloudConfig`], one field per module), the
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
        /// A `#cloud-config` document: the keys of every module cloudcfg runs. Other
        /// cloud-init keys are accepted with a warning that cloudcfg does not handle them.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
        #[schemars(title = "cloudcfg cloud-config")]
        pub struct CloudConfig {
            $(
                #[serde(flatten)]
                pub $module: crate::modules::$module::$keys,
            )*
        }

        /// Every module, in cloud-init's Debian order.
        pub static MODULES: &[Registered] = &[
            $(
                Registered {
                    name: <crate::modules::$module::$keys as Module>::NAME,
                    stage: <crate::modules::$module::$keys as Module>::STAGE,
                    frequency: <crate::modules::$module::$keys as Module>::FREQUENCY,
                    keys: struct_fields::<crate::modules::$module::$keys>,
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
    apt_pipelining::AptPipelining,
    apt_configure::AptConfigure,
    package_update_upgrade_install::PackageUpdateUpgradeInstall,
    puppet::Puppet,
}

/// The modules in the order they run: by stage, then in registry order.
pub fn run_order() -> Vec<&'static Registered> {
    let mut order: Vec<&Registered> = MODULES.iter().collect();
    order.sort_by_key(|m| m.stage);
    order
}

/// What every module of `config` needs, in registry order.
pub fn needs(config: &CloudConfig) -> Vec<Need> {
    MODULES.iter().flat_map(|m| (m.needs)(config)).collect()
}

/// The module that owns a top-level key.
pub fn owner(key: &str) -> Option<&'static Registered> {
    MODULES.iter().find(|m| (m.keys)().contains(&key))
}

/// Keys cloud-init reads at the top level that cloudcfg does not run (from cloud-init 22.4's
/// schema and module list). They get their own warning rather than "unknown key".
pub const CLOUD_INIT_KEYS_NOT_HANDLED: &[&str] = &[
    "allow_public_ssh_keys",
    "ansible",
    "apk_repos",
    "apt_reboot_if_required",
    "autoinstall",
    "bootcmd",
    "byobu_by_default",
    "ca-certs",
    "ca_certs",
    "chef",
    "chpasswd",
    "cloud_config_modules",
    "cloud_final_modules",
    "cloud_init_modules",
    "create_hostname_file",
    "datasource",
    "datasource_list",
    "device_aliases",
    "disable_ec2_metadata",
    "disable_root",
    "disable_root_opts",
    "disk_setup",
    "drivers",
    "fan",
    "final_message",
    "fqdn",
    "fs_setup",
    "groups",
    "growpart",
    "grub_dpkg",
    "grub-dpkg",
    "hostname",
    "keyboard",
    "landscape",
    "locale",
    "locale_configfile",
    "lxd",
    "manage_etc_hosts",
    "manage_resolv_conf",
    "mcollective",
    "merge_how",
    "merge_type",
    "mount_default_fields",
    "mounts",
    "no_ssh_fingerprints",
    "ntp",
    "output",
    "password",
    "phone_home",
    "power_state",
    "prefer_fqdn_over_hostname",
    "preserve_hostname",
    "random_seed",
    "reporting",
    "resize_rootfs",
    "resolv_conf",
    "rh_subscription",
    "rsyslog",
    "runcmd",
    "salt_minion",
    "snap",
    "spacewalk",
    "ssh",
    "ssh_authorized_keys",
    "ssh_deletekeys",
    "ssh_fp_console_blacklist",
    "ssh_genkeytypes",
    "ssh_import_id",
    "ssh_key_console_blacklist",
    "ssh_keys",
    "ssh_publish_hostkeys",
    "ssh_pwauth",
    "ssh_quiet_keygen",
    "swap",
    "system_info",
    "timezone",
    "ubuntu_advantage",
    "ubuntu_pro",
    "updates",
    "user",
    "users",
    "vendor_data",
    "wireguard",
    "write_files",
    "yum_repos",
    "zypper",
];
