//! The cloud-config modules, one file (or folder) each, named after cloud-init's module.
//!
//! To add one: write `src/modules/<cloud-init name>.rs` with a type whose fields are the
//! module's top-level keys (serde + schemars, every field documented) and an `impl Module`
//! giving its stage, frequency, checks and plan (`crate::module`), then add one line to the
//! registry, `crate::config::registry`, at its place in cloud-init's Debian order.

pub mod apt_configure;
pub mod apt_pipelining;
pub mod package_update_upgrade_install;
pub mod puppet;
