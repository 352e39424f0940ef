//! The plan's vocabulary: what a module asks apply to do, as data. Pure: nothing here reads or
//! changes the system. Kinds whose effect depends on the target's current state (`edit_ini`,
//! `reconfigure_installed`, the service kinds, `fetch_key`) are resolved by `apply`.

mod facts;

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

pub use self::facts::{Distro, Facts, IMAGE_SCRIPTS_DIR, INSTANCES_DIR, PlanError};

/// cloud-init's boot stages, in the order they run: `init` before the network is needed
/// (host keys, users, hostname, bootcmd, write_files), `config` (apt configuration, runcmd's
/// script), `final` (packages, puppet, user scripts, the final message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Init,
    Config,
    Final,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Init, Stage::Config, Stage::Final];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Init => "init",
            Stage::Config => "config",
            Stage::Final => "final",
        }
    }
}

/// How often a module runs (cloud-init's `frequency`, plus per boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    /// Once for each instance id: a clone of the image (a new id) runs it again.
    PerInstance,
    /// Once in each boot (the kernel's boot id), however often `cloudcfg run` is started.
    PerBoot,
    /// Once in the life of the system, whatever the instance id.
    Once,
    /// Every run.
    Always,
}

impl Frequency {
    pub fn name(self) -> &'static str {
        match self {
            Frequency::PerInstance => "per-instance",
            Frequency::PerBoot => "per-boot",
            Frequency::Once => "once",
            Frequency::Always => "always",
        }
    }
}

/// Text that may hold secrets: `secrets` are the substrings redacted in plan output and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    pub text: String,
    pub secrets: Vec<String>,
}

impl Text {
    pub fn plain(text: impl Into<String>) -> Text {
        Text {
            text: text.into(),
            secrets: Vec::new(),
        }
    }

    pub fn secret(text: impl Into<String>) -> Text {
        let text = text.into();
        Text {
            secrets: vec![text.clone()],
            text,
        }
    }

    pub fn is_sensitive(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The text with every secret replaced by `<redacted sha256:…>`.
    pub fn redacted(&self) -> String {
        crate::redact::redact(&self.text, &self.secrets)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionKind {
    /// Write a whole file atomically.
    WriteFile {
        path: String,
        /// Four octal digits, e.g. `0644`.
        mode: String,
        owner: String,
        group: String,
        content: Text,
    },
    /// Run a command: an argv vector, never a shell string.
    Command {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        stdin: Option<Text>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ok_exit_codes: Option<Vec<i32>>,
    },
    /// Write a file of the user's (`write_files`): owner and group are names, resolved in the
    /// target's passwd and group when it is written; the content is text, or base64 when it is
    /// not UTF-8; `append` adds it to the end of what is there.
    WriteUserFile {
        path: String,
        /// Four octal digits.
        mode: String,
        owner: String,
        group: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        append: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Text>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content_base64: Option<Text>,
    },
    /// Run a script the plan wrote (bootcmd, runcmd, user-data scripts) with this environment
    /// added. Never in an image root unless apply is asked to (`--run-scripts`).
    RunScript {
        path: String,
        env: BTreeMap<String, String>,
    },
    /// Make a group unless the target has it; add those `members` that exist.
    EnsureGroup { name: String, members: Vec<String> },
    /// Make a user with useradd, or amend an existing one with usermod (never recreated);
    /// missing groups are made first. A hash is set with `chpasswd -e` (on standard input,
    /// a secret); `lock_passwd` locks the password afterwards.
    EnsureUser {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        gecos: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        primary_group: Option<String>,
        groups: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        shell: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        homedir: Option<String>,
        create_home: bool,
        system: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expiredate: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        inactive: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hashed_passwd: Option<Text>,
        lock_passwd: bool,
    },
    /// Write a sudoers drop-in (0440) only after `visudo -cf` accepted it.
    WriteSudoers { path: String, content: String },
    /// Put `keys` into the user's `~/.ssh/authorized_keys` (0600, `.ssh` 0700, owned by the
    /// user): a line that holds the same key is replaced, other lines are kept, missing keys
    /// are added; `options` (the root stub of `disable_root`) goes in front of each key.
    AuthorizedKeys {
        user: String,
        keys: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        options: Option<String>,
    },
    /// The instance's SSH host keys in /etc/ssh: the given files, the public keys of given
    /// private keys that came without theirs, and the types of `generate` that are then still
    /// missing (ssh-keygen in the target, comment `comment`). Everything is made first and
    /// the image's keys (`delete_existing`) removed only then, so a failure leaves the old
    /// keys in place.
    HostKeys {
        delete_existing: bool,
        generate: Vec<String>,
        given: Vec<HostKeyFile>,
        comment: String,
        /// Keep ssh-keygen's fingerprint and randomart off the console.
        quiet: bool,
    },
    /// The host keys' fingerprints and public keys on the console, in cloud-init's blocks,
    /// leaving out the key types named.
    HostKeysToConsole {
        skip_fingerprints: Vec<String>,
        skip_keys: Vec<String>,
    },
    /// `/etc/hostname` (when it exists or `create_file`), and the running kernel's hostname
    /// unless apply targets an image root.
    SetHostname { hostname: String, create_file: bool },
    /// `/etc/hosts` as it is, with `names` on the line of `address` (added when missing).
    HostsEntry { address: String, names: Vec<String> },
    /// Passwords with chpasswd (hashes with `chpasswd -e`); random ones are made by apply and
    /// shown on the console only; then `passwd --expire` for the users of `expire`.
    SetPasswords {
        passwords: Vec<Password>,
        expire: Vec<String>,
    },
    /// `systemctl try-reload-or-restart --no-block UNIT` when systemd runs the target (a
    /// changed config reaches a daemon that already started); nothing in an image root.
    ReloadService { unit: String },
    /// Print the final message (its `$UPTIME`, `$TIMESTAMP`, `$VERSION`, `$DATASOURCE`
    /// filled in by apply) to the console and the log.
    FinalMessage { template: String },
    /// Run `argv` (shutdown) once the report is written, never in an image root; when a
    /// `condition` script is given, only if it exits 0.
    PowerState {
        argv: Vec<String>,
        condition: Option<String>,
    },
    /// Fetch an OpenPGP key (by id from a keyserver, from an https `url`, or a PPA's key
    /// through Launchpad), check that its fingerprint is the one asked for, and write it
    /// armored to `dest`.
    FetchKey {
        #[serde(skip_serializing_if = "Option::is_none")]
        keyid: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        keyserver: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ppa: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// The proxy for http:// URLs and the one for https:// URLs, as apt would use them
        /// (`apt.http_proxy`/`proxy`, `apt.https_proxy`, else the http one); credentials are
        /// secrets.
        #[serde(skip_serializing_if = "Option::is_none")]
        http_proxy: Option<Text>,
        #[serde(skip_serializing_if = "Option::is_none")]
        https_proxy: Option<Text>,
        dest: String,
    },
    /// Set one key of an INI file in place (comments, order and other keys kept; the original
    /// saved as `<path>.old` once).
    EditIni {
        path: String,
        section: String,
        key: String,
        value: String,
    },
    /// `dpkg-reconfigure` those of `packages` that are installed on the target.
    ReconfigureInstalled { packages: Vec<String> },
    /// `systemctl enable UNIT`, offline (`--root`) when systemd is not running the target.
    EnableService { unit: String },
    /// `systemctl start --no-block UNIT`; skipped with a warning when systemd is not running
    /// the target.
    StartService { unit: String },
}

/// A host key file given in the user data, in /etc/ssh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostKeyFile {
    /// The file name, e.g. `ssh_host_ed25519_key`.
    pub name: String,
    /// Four octal digits.
    pub mode: String,
    pub content: Text,
}

/// How a password of `set_passwords` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordKind {
    Text,
    Hash,
    /// Made by apply, 20 characters, shown once on the console.
    Random,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Password {
    pub user: String,
    pub kind: PasswordKind,
    /// The text or the hash (a secret); none for a random one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Text>,
}

/// The name the system takes at boot.
pub const HOSTNAME_FILE: &str = "/etc/hostname";

/// Where sshd finds the instance's host keys.
pub const SSH_DIR: &str = "/etc/ssh";

/// The host key file of a key type (`rsa`, `ecdsa`, `ed25519`).
pub fn host_key_path(key_type: &str) -> String {
    format!("{SSH_DIR}/ssh_host_{key_type}_key")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub module: &'static str,
    pub stage: Stage,
    #[serde(flatten)]
    pub kind: ActionKind,
}

impl ActionKind {
    /// A `write_user_file` of these bytes: as text when they are UTF-8, else as base64. A
    /// sensitive file's content is a secret (redacted in plans and logs).
    pub fn user_file(
        path: impl Into<String>,
        mode: u32,
        (owner, group): (String, String),
        append: bool,
        bytes: Vec<u8>,
        sensitive: bool,
    ) -> ActionKind {
        let text = |t: String| {
            if sensitive {
                Text::secret(t)
            } else {
                Text::plain(t)
            }
        };
        let (content, content_base64) = match String::from_utf8(bytes) {
            Ok(utf8) => (Some(text(utf8)), None),
            Err(e) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                (None, Some(text(encoded)))
            }
        };
        ActionKind::WriteUserFile {
            path: path.into(),
            mode: format!("{mode:04o}"),
            owner,
            group,
            append,
            content,
            content_base64,
        }
    }

    /// The fields that may hold secrets: the one list that redaction and scrubbing read.
    fn texts_mut(&mut self) -> Vec<&mut Text> {
        match self {
            ActionKind::WriteFile { content, .. } => vec![content],
            ActionKind::Command { stdin, .. } => stdin.iter_mut().collect(),
            ActionKind::WriteUserFile {
                content,
                content_base64,
                ..
            } => content
                .iter_mut()
                .chain(content_base64.iter_mut())
                .collect(),
            ActionKind::EnsureUser { hashed_passwd, .. } => hashed_passwd.iter_mut().collect(),
            ActionKind::HostKeys { given, .. } => {
                given.iter_mut().map(|f| &mut f.content).collect()
            }
            ActionKind::SetPasswords { passwords, .. } => passwords
                .iter_mut()
                .filter_map(|p| p.password.as_mut())
                .collect(),
            ActionKind::FetchKey {
                http_proxy,
                https_proxy,
                ..
            } => http_proxy
                .iter_mut()
                .chain(https_proxy.iter_mut())
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Action {
    /// The same action with every secret replaced, for output and logs.
    pub fn redacted(&self) -> Action {
        let mut kind = self.kind.clone();
        for text in kind.texts_mut() {
            *text = Text::plain(text.redacted());
        }
        Action {
            module: self.module,
            stage: self.stage,
            kind,
        }
    }

    /// Every secret the action's texts hold.
    pub fn secrets(&self) -> Vec<String> {
        let mut kind = self.kind.clone();
        kind.texts_mut()
            .into_iter()
            .flat_map(|t| std::mem::take(&mut t.secrets))
            .collect()
    }

    /// Paths this action writes (for checks and tests).
    pub fn written_paths(&self) -> Vec<&str> {
        match &self.kind {
            ActionKind::WriteFile { path, .. }
            | ActionKind::WriteUserFile { path, .. }
            | ActionKind::WriteSudoers { path, .. }
            | ActionKind::EditIni { path, .. } => vec![path.as_str()],
            ActionKind::FetchKey { dest, .. } => vec![dest.as_str()],
            ActionKind::SetHostname { .. } => vec![HOSTNAME_FILE],
            ActionKind::HostsEntry { .. } => vec!["/etc/hosts"],
            _ => Vec::new(),
        }
    }

    /// The host key files this action may write, for the path checks.
    pub fn host_key_paths(&self) -> Vec<String> {
        match &self.kind {
            ActionKind::HostKeys {
                generate, given, ..
            } => given
                .iter()
                .map(|f| format!("{SSH_DIR}/{}", f.name))
                .chain(generate.iter().flat_map(|t| {
                    let path = host_key_path(t);
                    [format!("{path}.pub"), path]
                }))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The message with its variables filled in.
pub fn final_message_text(
    template: &str,
    uptime: &str,
    timestamp: &str,
    datasource: &str,
) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = template.to_owned();
    for (name, value) in [
        ("UPTIME", uptime),
        ("TIMESTAMP", timestamp),
        ("VERSION", version),
        ("DATASOURCE", datasource),
    ] {
        for form in [
            format!("${{{name}}}"),
            format!("${{{}}}", name.to_lowercase()),
            format!("${name}"),
            format!("${}", name.to_lowercase()),
        ] {
            out = out.replace(&form, value);
        }
    }
    out
}

/// A module as the plan runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModuleEntry {
    pub name: &'static str,
    pub stage: Stage,
    pub frequency: Frequency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanWarning {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub facts: Facts,
    /// Every module of the registry, in run order, with or without actions.
    pub modules: Vec<ModuleEntry>,
    pub actions: Vec<Action>,
    pub warnings: Vec<PlanWarning>,
}

impl Plan {
    pub fn redacted(&self) -> Plan {
        Plan {
            facts: self.facts.clone(),
            modules: self.modules.clone(),
            actions: self.actions.iter().map(Action::redacted).collect(),
            warnings: self.warnings.clone(),
        }
    }

    /// The modules that have actions, in order.
    pub fn modules_with_actions(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for action in &self.actions {
            if !names.contains(&action.module) {
                names.push(action.module);
            }
        }
        names
    }
}

/// The argv prefix cloud-init uses for every apt-get call (kept byte for byte).
pub fn apt_get(args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = [
        "apt-get",
        "--option=Dpkg::Options::=--force-confold",
        "--option=Dpkg::options::=--force-unsafe-io",
        "--assume-yes",
        "--quiet",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    argv.extend(args.iter().map(|s| (*s).to_owned()));
    argv
}

pub const APT_ENV: &[(&str, &str)] = &[("DEBIAN_FRONTEND", "noninteractive")];

/// A command's added environment from literal pairs.
pub fn env_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod final_message_tests {
    #[test]
    fn variables_are_filled_in_every_form() {
        let text = super::final_message_text(
            "up $UPTIME s, ${timestamp}, $datasource, v$VERSION",
            "12.5",
            "Fri, 04 Dec 2026 20:00:00 +0000",
            "DataSourceEc2",
        );
        assert_eq!(
            text,
            format!(
                "up 12.5 s, Fri, 04 Dec 2026 20:00:00 +0000, DataSourceEc2, v{}",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
