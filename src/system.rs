//! The system config, `/etc/cloudcfg/cloudcfg.yaml` (contract.md): typed like user data, every
//! key optional, and unknown keys are errors here, because this file is written by the image's
//! maker, who wants a typo to stop the build rather than a boot to go wrong quietly.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decode::de::{Context, from_node};
use crate::decode::{Limits, yaml};
use crate::diag::Diagnostic;

pub const DEFAULT_PATH: &str = "/etc/cloudcfg/cloudcfg.yaml";
pub const DEFAULT_KEYSERVER: &str = "keyserver.ubuntu.com";
pub const DEFAULT_LAUNCHPAD_API: &str = "https://api.launchpad.net/1.0";
pub const DEFAULT_AUTOSIGN_POLICY: &str = "/etc/cloudcfg/autosign.yaml";
pub const DEFAULT_EC2_URL: &str = "http://169.254.169.254";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatasourceName {
    Nocloud,
    Ec2,
}

/// EC2 instance metadata service settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Ec2Settings {
    /// Base URL of the metadata service (default `http://169.254.169.254`).
    pub metadata_url: Option<String>,
    /// Seconds one HTTP request may take (default 2).
    pub timeout_secs: Option<u64>,
    /// Seconds all attempts together may take before first boot gives up (default 120): the
    /// network may come up after cloudcfg starts.
    pub deadline_secs: Option<u64>,
}

/// The image's login user (cloud-init's `system_info.default_user`); every field falls back
/// to the distribution's cloud-init default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DefaultUser {
    /// Login name (default `debian` on Debian, `ubuntu` on Ubuntu; EC2's Debian images use
    /// `admin`).
    pub name: Option<String>,
    pub gecos: Option<String>,
    /// Supplementary groups (default cloud-init's list for the distribution).
    pub groups: Option<Vec<String>>,
    /// sudoers rules (default `ALL=(ALL) NOPASSWD:ALL`); an empty list gives none.
    pub sudo: Option<Vec<String>>,
    /// Login shell (default `/bin/bash`).
    pub shell: Option<String>,
    /// Lock the password, so only keys log in (default true).
    pub lock_passwd: Option<bool>,
}

/// `/etc/cloudcfg/cloudcfg.yaml`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields, title = "cloudcfg system config")]
pub struct SystemConfig {
    /// Datasources `run` tries, in order (default: nocloud, then ec2).
    pub datasource_list: Option<Vec<DatasourceName>>,
    pub ec2: Option<Ec2Settings>,
    /// Keyserver for `keyid` entries without their own (default `keyserver.ubuntu.com`,
    /// meaning `hkps://keyserver.ubuntu.com`).
    pub keyserver: Option<String>,
    /// Launchpad API base URL for PPA signing keys (default `https://api.launchpad.net/1.0`).
    pub launchpad_api: Option<String>,
    /// The autosign policy file (default `/etc/cloudcfg/autosign.yaml`).
    pub autosign_policy: Option<String>,
    /// Seconds to wait for another apt or dpkg to release the dpkg lock (default 300).
    pub dpkg_lock_timeout_secs: Option<u64>,
    /// `apt-get update` attempts on network failures (default 4).
    pub apt_update_attempts: Option<u32>,
    /// The login user that `users: [default]` and the instance's SSH keys are for.
    pub default_user: Option<DefaultUser>,
}

impl SystemConfig {
    pub fn keyserver(&self) -> &str {
        self.keyserver.as_deref().unwrap_or(DEFAULT_KEYSERVER)
    }

    pub fn launchpad_api(&self) -> &str {
        self.launchpad_api
            .as_deref()
            .unwrap_or(DEFAULT_LAUNCHPAD_API)
    }

    pub fn autosign_policy(&self) -> &str {
        self.autosign_policy
            .as_deref()
            .unwrap_or(DEFAULT_AUTOSIGN_POLICY)
    }

    /// How long first boot waits for another apt or dpkg to release the dpkg lock.
    pub fn dpkg_lock_timeout(&self) -> Option<std::time::Duration> {
        self.dpkg_lock_timeout_secs
            .map(std::time::Duration::from_secs)
    }

    /// `apt-get update` attempts on network failures (at least one).
    pub fn apt_update_attempts(&self) -> Option<u32> {
        self.apt_update_attempts.map(|n| n.max(1))
    }

    pub fn datasources(&self) -> Vec<DatasourceName> {
        self.datasource_list
            .clone()
            .unwrap_or_else(|| vec![DatasourceName::Nocloud, DatasourceName::Ec2])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SystemConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", .diagnostics.iter().map(|d| format!("{}:{}:{}: error: {}{}", .path, d.pos.line, d.pos.col, if d.path.is_empty() { String::new() } else { format!("{}: ", d.path) }, d.message)).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        diagnostics: Vec<Diagnostic>,
    },
}

/// Parses the system config text; every finding is an error.
pub fn parse(text: &str, path: &str) -> Result<SystemConfig, SystemConfigError> {
    let invalid = |diagnostics| SystemConfigError::Invalid {
        path: path.to_owned(),
        diagnostics,
    };
    let doc = yaml::parse(text, &Limits::default())
        .map_err(|e| invalid(vec![Diagnostic::error(e.pos, "", e.message)]))?;
    let Some(root) = doc.root else {
        return Ok(SystemConfig::default());
    };
    let ctx = Context::new();
    let result: Result<SystemConfig, _> = from_node(&root, &ctx);
    let mut diagnostics: Vec<Diagnostic> = ctx
        .take_unknown()
        .into_iter()
        .map(|u| Diagnostic::error(u.pos, u.path, format!("unknown key `{}`", u.key)))
        .collect();
    for dup in doc.duplicates {
        diagnostics.push(Diagnostic::error(
            dup.second,
            "",
            format!("duplicate key `{}`", dup.key),
        ));
    }
    match result {
        Err(e) => {
            diagnostics.push(Diagnostic::error(
                e.pos.unwrap_or(root.pos),
                e.path,
                e.message,
            ));
            Err(invalid(diagnostics))
        }
        Ok(_) if !diagnostics.is_empty() => Err(invalid(diagnostics)),
        Ok(config) => {
            let mut problems = Vec::new();
            if let Some(ks) = &config.keyserver
                && let Err(e) = crate::values::keyserver(ks)
            {
                problems.push(Diagnostic::error(
                    ctx.pos("keyserver").unwrap_or(root.pos),
                    "keyserver",
                    e,
                ));
            }
            for (key, value) in [
                ("launchpad_api", config.launchpad_api.as_deref()),
                (
                    "ec2.metadata_url",
                    config.ec2.as_ref().and_then(|e| e.metadata_url.as_deref()),
                ),
            ] {
                if let Some(Err(e)) = value.map(crate::values::url) {
                    problems.push(Diagnostic::error(ctx.pos(key).unwrap_or(root.pos), key, e));
                }
            }
            if problems.is_empty() {
                Ok(config)
            } else {
                Err(invalid(problems))
            }
        }
    }
}

/// Reads the system config at `path`; a missing file means all defaults.
pub fn load(path: &Path) -> Result<SystemConfig, SystemConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SystemConfig::default()),
        Err(source) => Err(SystemConfigError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let err = parse("keyserver: ks.example.org\nkeysever: x\n", "c.yaml").unwrap_err();
        assert!(
            err.to_string()
                .contains("c.yaml:2:1: error: keysever: unknown key"),
            "{err}"
        );
    }

    #[test]
    fn defaults() {
        let config = parse("", "c.yaml").unwrap();
        assert_eq!(config.keyserver(), "keyserver.ubuntu.com");
        assert_eq!(
            config.datasources(),
            vec![DatasourceName::Nocloud, DatasourceName::Ec2]
        );
    }

    #[test]
    fn invalid_enum_values_are_rejected() {
        let err = parse("datasource_list: [azure]\n", "c.yaml").unwrap_err();
        assert!(err.to_string().contains("unknown value `azure`"), "{err}");
    }
}
