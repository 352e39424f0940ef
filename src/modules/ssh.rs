//! `ssh`: the instance's SSH host keys and who may log in with which key (cloud-init's
//! `cc_ssh`), plus `ssh_pwauth`, which cloud-init sets in `set_passwords` (config stage,
//! restarting sshd) and cloudcfg sets here, before sshd first starts (docs/compat.md).
//!
//! At an instance's first boot the image's host keys go (`ssh_deletekeys`) and the types of
//! `ssh_genkeytypes` are made, unless `ssh_keys` gives the keys. The instance's public keys
//! (the datasource's, unless `allow_public_ssh_keys: false`) and `ssh_authorized_keys` go to
//! the default user and, behind a stub that only prints whom to log in as, to root
//! (`disable_root`, default true).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, HostKeyFile, PlanError, Stage, Text};
use crate::module::{Checker, Module, Need, Planner};
use crate::modules::users_groups::{authorized_key, default_user};
use crate::values;

/// The sshd drop-in for `ssh_pwauth` and host certificates (cloud-init 23.x and later write
/// the same file where sshd_config includes sshd_config.d, as Debian's and Ubuntu's do).
pub const SSHD_DROP_IN: &str = "/etc/ssh/sshd_config.d/50-cloud-init.conf";

/// The key types cloud-init generates by default, and the ones it knows in `ssh_keys`.
pub const KEY_TYPES: &[&str] = &["rsa", "ecdsa", "ed25519"];

/// cloud-init's `disable_root_opts`: root's keys only print whom to log in as, then exit 142.
pub const DISABLE_ROOT_OPTS: &str = "no-port-forwarding,no-agent-forwarding,no-X11-forwarding,\
command=\"echo 'Please login as the user \\\"$USER\\\" rather than the user \\\"$DISABLE_USER\\\".';echo;sleep 10;exit 142\"";

/// `ssh_pwauth`: a boolean, or cloud-init's older strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PasswordAuth {
    Switch(bool),
    /// `unchanged` leaves sshd as it is; `yes`/`no` are the older spelling of true/false.
    Word(String),
}

impl PasswordAuth {
    /// sshd's value, or none for "leave it".
    fn sshd_value(&self) -> Result<Option<&'static str>, String> {
        match self {
            PasswordAuth::Switch(true) => Ok(Some("yes")),
            PasswordAuth::Switch(false) => Ok(Some("no")),
            PasswordAuth::Word(w) => match w.to_ascii_lowercase().as_str() {
                "unchanged" => Ok(None),
                "yes" | "true" | "on" | "1" => Ok(Some("yes")),
                "no" | "false" | "off" | "0" => Ok(Some("no")),
                _ => Err(format!(
                    "{w:?} is not true, false or \"unchanged\" (cloud-init leaves sshd as it is \
                     and warns; cloudcfg refuses it)"
                )),
            },
        }
    }
}

/// `ssh_publish_hostkeys`: accepted, and a warning says no datasource of cloudcfg publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct PublishHostKeys {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blacklist: Option<Vec<String>>,
}

/// The top-level keys `ssh` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Ssh {
    /// Remove the image's host keys at the instance's first boot (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_deletekeys: Option<bool>,
    /// Host key types to make when missing (default rsa, ecdsa, ed25519); not used when
    /// `ssh_keys` is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_genkeytypes: Option<Vec<String>>,
    /// Host keys to install: `TYPE_private`, `TYPE_public`, `TYPE_certificate` for rsa,
    /// ecdsa, ed25519. Private keys are secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_keys: Option<IndexMap<String, String>>,
    /// Keys for the default user (and root's stub).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_authorized_keys: Option<Vec<String>>,
    /// Give root the instance's keys only behind a stub that names the user to log in as
    /// (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_root: Option<bool>,
    /// The options in front of root's keys; `$USER` is the default user, `$DISABLE_USER`
    /// root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_root_opts: Option<String>,
    /// Use the datasource's public keys (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_public_ssh_keys: Option<bool>,
    /// Keep ssh-keygen's output off the console (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_quiet_keygen: Option<bool>,
    /// sshd's `PasswordAuthentication`: true, false, or `unchanged` (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_pwauth: Option<PasswordAuth>,
    /// Not done by cloudcfg (its datasources take no host keys back): a warning says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_publish_hostkeys: Option<PublishHostKeys>,
}

/// A host key file name of `ssh_keys` (`rsa_private` -> `ssh_host_rsa_key`), with its mode
/// and whether it is secret.
fn key_file(entry: &str) -> Option<(String, u32, bool)> {
    let (key_type, part) = entry.rsplit_once('_')?;
    if !KEY_TYPES.contains(&key_type) {
        return None;
    }
    let base = format!("ssh_host_{key_type}_key");
    match part {
        "private" => Some((base, 0o600, true)),
        "public" => Some((format!("{base}.pub"), 0o644, false)),
        "certificate" => Some((format!("{base}-cert.pub"), 0o644, false)),
        _ => None,
    }
}

/// A private key as ssh-keygen writes them: one PEM block of base64.
fn private_key(text: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.trim().lines().map(str::trim_end).collect();
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return Err("is empty".into());
    };
    let label = first
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("PRIVATE KEY-----"));
    let body_ok = lines.len() > 2
        && lines[1..lines.len() - 1].iter().all(|l| {
            l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        });
    match label {
        Some(label) if *last == format!("-----END {label}PRIVATE KEY-----") && body_ok => Ok(()),
        _ => Err(
            "is not a private key (`-----BEGIN OPENSSH PRIVATE KEY-----` ... base64 ... \
             `-----END OPENSSH PRIVATE KEY-----`)"
                .into(),
        ),
    }
}

/// A public key or certificate line: `TYPE BASE64 [comment]`.
fn public_line(text: &str) -> Result<(), String> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    values::single_line(line)?;
    let mut words = line.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err("is not `TYPE BASE64 [comment]`".into());
    };
    let kind_ok = kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-");
    let blob_ok = blob.len() >= 16
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    match kind_ok && blob_ok {
        true => Ok(()),
        false => Err("is not `TYPE BASE64 [comment]` of an SSH key".into()),
    }
}

impl Ssh {
    fn public_keys_allowed(&self) -> bool {
        self.allow_public_ssh_keys.unwrap_or(true)
    }

    /// The types made before sshd starts, and the ones left to the config stage.
    ///
    /// RSA is the slow one (a 3072-bit key takes about a second of a fast core, several under
    /// emulation or on a small burstable VM), and sshd does not need every type to start: with
    /// an Ed25519 or ECDSA key it accepts the first login, and the RSA key reaches it by a
    /// reload moments later (docs/compat.md, "SSH host keys"). Only when RSA is the one type
    /// asked for is it made before sshd.
    fn host_key_types(&self) -> (Vec<String>, Vec<String>) {
        let all: Vec<String> = match &self.ssh_keys {
            // cloud-init makes no other keys when some are given.
            Some(_) => Vec::new(),
            None => self
                .ssh_genkeytypes
                .clone()
                .unwrap_or_else(|| KEY_TYPES.iter().map(|t| (*t).to_owned()).collect()),
        };
        let (slow, fast): (Vec<String>, Vec<String>) =
            all.iter().cloned().partition(|t| t == SLOW_KEY_TYPE);
        match fast.is_empty() {
            true => (all, Vec::new()),
            false => (fast, slow),
        }
    }
}

/// The host key type whose generation sshd does not wait for when another type is made.
pub const SLOW_KEY_TYPE: &str = "rsa";

/// The comment of the host keys cloudcfg makes: `root@HOSTNAME`, as ssh-keygen in cloud-init.
pub fn host_key_comment(planner: &Planner<'_>) -> String {
    let hostname = crate::modules::set_hostname::names(planner.needs(), planner.facts)
        .map(|n| n.hostname)
        .unwrap_or_else(|| "localhost".into());
    format!("root@{hostname}")
}

impl Module for Ssh {
    const NAME: &'static str = "ssh";
    const STAGE: Stage = Stage::Init;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn needs(&self) -> Vec<Need> {
        let (_, deferred) = self.host_key_types();
        match deferred.is_empty() {
            true => Vec::new(),
            false => vec![Need::DeferredHostKeys {
                types: deferred,
                quiet: self.ssh_quiet_keygen.unwrap_or(false),
            }],
        }
    }

    fn check(&self, cx: &mut Checker<'_>) {
        for (i, key_type) in self.ssh_genkeytypes.iter().flatten().enumerate() {
            if !KEY_TYPES.contains(&key_type.as_str()) {
                cx.error(
                    &format!("ssh_genkeytypes[{i}]"),
                    format!("{key_type:?} is not one of {}", KEY_TYPES.join(", ")),
                );
            }
        }
        for (entry, value) in self.ssh_keys.iter().flatten() {
            let at = format!("ssh_keys.{entry}");
            match key_file(entry) {
                None => cx.warning(
                    &at,
                    format!(
                        "`{entry}` is not TYPE_private, TYPE_public or TYPE_certificate of {}: \
                         ignored, as cloud-init does",
                        KEY_TYPES.join(", ")
                    ),
                ),
                Some((_, _, true)) => {
                    cx.check(&at, private_key(value));
                }
                Some(_) => {
                    cx.check(&at, public_line(value));
                }
            }
        }
        for (i, key) in self.ssh_authorized_keys.iter().flatten().enumerate() {
            cx.check(&format!("ssh_authorized_keys[{i}]"), authorized_key(key));
        }
        if let Some(opts) = &self.disable_root_opts {
            cx.check("disable_root_opts", values::single_line(opts));
        }
        if let Some(pwauth) = &self.ssh_pwauth {
            cx.check("ssh_pwauth", pwauth.sshd_value());
        }
        if self.ssh_publish_hostkeys.is_some() {
            cx.warning(
                "ssh_publish_hostkeys",
                "`ssh_publish_hostkeys` is not handled by cloudcfg: its datasources take no host \
                 keys back",
            );
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let mut given = Vec::new();
        let mut certificates = Vec::new();
        for (entry, value) in self.ssh_keys.iter().flatten() {
            let Some((name, mode, secret)) = key_file(entry) else {
                continue;
            };
            let mut content = value.clone();
            if !content.ends_with('\n') {
                content.push('\n');
            }
            if entry.ends_with("_certificate") {
                certificates.push(format!("{}/{name}", crate::action::SSH_DIR));
            }
            given.push(HostKeyFile {
                name,
                mode: format!("{mode:04o}"),
                content: if secret {
                    Text::secret(content)
                } else {
                    Text::plain(content)
                },
            });
        }
        let (generate, _) = self.host_key_types();
        planner.push(ActionKind::HostKeys {
            delete_existing: self.ssh_deletekeys.unwrap_or(true),
            generate,
            given,
            comment: host_key_comment(planner),
            quiet: self.ssh_quiet_keygen.unwrap_or(false),
        });

        let mut sshd = Vec::new();
        if let Some(value) = self.ssh_pwauth.as_ref().and_then(|p| p.sshd_value().ok()).flatten() {
            sshd.push(format!("PasswordAuthentication {value}"));
        }
        sshd.extend(certificates.iter().map(|c| format!("HostCertificate {c}")));
        if !sshd.is_empty() {
            planner.write_file(
                SSHD_DROP_IN,
                0o600,
                Text::plain(format!(
                    "# Written by cloudcfg (ssh) from the instance's user data.\n{}\n",
                    sshd.join("\n")
                )),
            );
            // Only a running sshd needs it (`cloudcfg apply` on a live system); at first boot
            // sshd starts after the init stage.
            planner.push(ActionKind::ReloadService {
                unit: "ssh.service".into(),
            });
        }

        let mut keys: Vec<String> = Vec::new();
        if self.public_keys_allowed() {
            keys.extend(planner.facts.public_keys.iter().cloned());
        }
        keys.extend(self.ssh_authorized_keys.iter().flatten().cloned());
        let mut unique: Vec<String> = Vec::new();
        for key in keys.into_iter().map(|k| k.trim().to_owned()) {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        let default = planner
            .needs()
            .contains(&Need::DefaultUser)
            .then(|| default_user(planner.system, planner.facts.distro()).name);
        if unique.is_empty() {
            return Ok(());
        }
        if let Some(user) = &default {
            planner.push(ActionKind::AuthorizedKeys {
                user: user.clone(),
                keys: unique.clone(),
                options: None,
            });
        }
        let options = self.disable_root.unwrap_or(true).then(|| {
            self.disable_root_opts
                .as_deref()
                .unwrap_or(DISABLE_ROOT_OPTS)
                .replace("$USER", default.as_deref().unwrap_or("NONE"))
                .replace("$DISABLE_USER", "root")
        });
        planner.push(ActionKind::AuthorizedKeys {
            user: "root".into(),
            keys: unique,
            options,
        });
        Ok(())
    }
}
