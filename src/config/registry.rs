//! What the registry (`crate::modules`, one line per module) gives the rest: the run order,
//! what modules need of each other, which module owns a key, and the keys cloud-init reads
//! that no module of cloudcfg owns.

use crate::module::Need;
pub use crate::modules::{CloudConfig, MODULES, Registered};

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
    "ansible",
    "apk_repos",
    "apt_reboot_if_required",
    "autoinstall",
    "authkey_hash",
    "byobu_by_default",
    "ca-certs",
    "ca_certs",
    "chef",
    "cloud_config_modules",
    "cloud_final_modules",
    "cloud_init_modules",
    "datasource",
    "datasource_list",
    "device_aliases",
    "disable_ec2_metadata",
    "disk_setup",
    "drivers",
    "fan",
    "fs_setup",
    "growpart",
    "grub_dpkg",
    "grub-dpkg",
    "keyboard",
    "landscape",
    "locale",
    "locale_configfile",
    "lxd",
    "manage_resolv_conf",
    "mcollective",
    "merge_how",
    "merge_type",
    "mount_default_fields",
    "mounts",
    "no_ssh_fingerprints",
    "ntp",
    "output",
    "phone_home",
    "random_seed",
    "reporting",
    "resize_rootfs",
    "resolv_conf",
    "rh_subscription",
    "rsyslog",
    "salt_minion",
    "snap",
    "spacewalk",
    "ssh_import_id",
    "swap",
    "system_info",
    "timezone",
    "ubuntu_advantage",
    "ubuntu_pro",
    "updates",
    "user",
    "vendor_data",
    "wireguard",
    "yum_repos",
    "zypper",
];
