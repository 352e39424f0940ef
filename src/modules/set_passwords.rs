//! `set_passwords`: passwords (cloud-init's `cc_set_passwords`): `chpasswd.users` (name,
//! password, type `text`, `hash` or `RANDOM`), the older `chpasswd.list` (`user:password`
//! lines; `R`/`RANDOM` for a random one, a crypt string for a hash), and `password` for the
//! default user. Then, unless `chpasswd.expire: false`, every one of them must change its
//! password at the first login (hashed ones too, as cloud-init 22.3 and later do).
//!
//! Passwords are secrets in the plan and the log. Random ones are made by apply and printed
//! on the console once, as cloud-init does, and nowhere else. `ssh_pwauth` is the `ssh`
//! module's here (set before sshd starts).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, Password, PasswordKind, PlanError, Stage, Text};
use crate::module::{Checker, Module, Need, Planner};
use crate::modules::users_groups::{crypt_hash, default_user};
use crate::values;

/// `chpasswd.list`: lines, or one text of lines (cloud-init's older form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PasswordList {
    Lines(Vec<String>),
    Text(String),
}

impl PasswordList {
    fn lines(&self) -> Vec<String> {
        match self {
            PasswordList::Lines(lines) => lines.clone(),
            PasswordList::Text(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// The `type` of a `chpasswd.users` entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EntryType {
    #[serde(rename = "text")]
    Text,
    /// cloud-init's default for an entry without a type.
    #[default]
    #[serde(rename = "hash")]
    Hash,
    #[serde(rename = "RANDOM")]
    Random,
}

/// One entry of `chpasswd.users`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct UserPassword {
    pub name: String,
    /// The password, or its hash; absent means a random one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `hash` (the default), `text` or `RANDOM`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<EntryType>,
}

/// `chpasswd`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Chpasswd {
    /// Make the users change these passwords at their first login (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserPassword>>,
    /// `user:password` lines (cloud-init's older form of `users`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<PasswordList>,
}

/// The top-level keys `set_passwords` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct SetPasswords {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chpasswd: Option<Chpasswd>,
    /// The default user's password (`R` or `RANDOM` for a random one, a crypt string for a
    /// hash); used only when `chpasswd` gives none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A password as cloud-init reads `list` and `password`: random, a hash, or text.
fn read_password(user: &str, password: &str) -> Password {
    let kind = if password == "R" || password == "RANDOM" {
        PasswordKind::Random
    } else if is_crypt_hash(password) {
        PasswordKind::Hash
    } else {
        PasswordKind::Text
    };
    Password {
        user: user.to_owned(),
        kind,
        password: (kind != PasswordKind::Random).then(|| Text::secret(password)),
    }
}

/// cloud-init's test for a hash in `list`: `$1$`, `$2a$`, `$2y$`, `$5$` or `$6$`, two more
/// `$` fields, no `:`.
fn is_crypt_hash(password: &str) -> bool {
    let rest = ["$1$", "$2a$", "$2y$", "$5$", "$6$"]
        .iter()
        .find_map(|p| password.strip_prefix(p));
    rest.is_some_and(|r| r.contains('$') && !r.starts_with('$') && !password.contains(':'))
}

/// A password chpasswd reads on one line of its input.
fn password_text(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("is empty".into());
    }
    match password.chars().find(|c| c.is_control()) {
        Some(_) => Err("holds a line break or another control character, which chpasswd \
                        cannot take"
            .into()),
        None => Ok(()),
    }
}

impl SetPasswords {
    fn entries(&self) -> Vec<(String, Password)> {
        let chpasswd = self.chpasswd.clone().unwrap_or_default();
        let mut entries = Vec::new();
        for (i, entry) in chpasswd.users.iter().flatten().enumerate() {
            let kind = match entry.kind.unwrap_or_default() {
                EntryType::Text => PasswordKind::Text,
                EntryType::Hash => PasswordKind::Hash,
                EntryType::Random => PasswordKind::Random,
            };
            let password = match (kind, &entry.password) {
                (PasswordKind::Random, _) | (_, None) => None,
                (_, Some(p)) => Some(Text::secret(p.clone())),
            };
            let kind = if password.is_none() {
                PasswordKind::Random
            } else {
                kind
            };
            entries.push((
                format!("chpasswd.users[{i}]"),
                Password {
                    user: entry.name.clone(),
                    kind,
                    password,
                },
            ));
        }
        for (i, line) in chpasswd.list.iter().flat_map(|l| l.lines()).enumerate() {
            // A line without `:` is an error of its own (check); it names no password.
            let Some((user, password)) = line.split_once(':') else {
                continue;
            };
            entries.push((
                format!("chpasswd.list[{i}]"),
                read_password(user, password),
            ));
        }
        entries
    }
}

impl Module for SetPasswords {
    const NAME: &'static str = "set_passwords";
    const STAGE: Stage = Stage::Config;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        let list_lines = self
            .chpasswd
            .as_ref()
            .and_then(|c| c.list.as_ref())
            .map(|l| l.lines())
            .unwrap_or_default();
        for (i, line) in list_lines.iter().enumerate() {
            if !line.contains(':') {
                cx.error(
                    &format!("chpasswd.list[{i}]"),
                    "is not `user:password` (the password is not shown)",
                );
            }
        }
        for (at, entry) in self.entries() {
            cx.check(&format!("{at}.name"), values::account_name(&entry.user));
            if let Some(password) = &entry.password {
                let checked = match entry.kind {
                    PasswordKind::Hash => crypt_hash(&password.text),
                    _ => password_text(&password.text),
                };
                if let Err(e) = checked {
                    cx.error(&at, format!("the password of {:?} {e}", entry.user));
                }
            }
        }
        if let Some(password) = &self.password
            && let Err(e) = password_text(password)
        {
            cx.error("password", format!("the password {e}"));
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let mut passwords: Vec<Password> = self.entries().into_iter().map(|(_, p)| p).collect();
        if passwords.is_empty()
            && let Some(password) = &self.password
        {
            match planner.needs().contains(&Need::DefaultUser) {
                true => {
                    let user = default_user(planner.system, planner.facts.distro()).name;
                    passwords.push(read_password(&user, password));
                }
                false => planner.warn(
                    "password",
                    "`users` has no default user to set the password of: ignored",
                ),
            }
        }
        if passwords.is_empty() {
            return Ok(());
        }
        let expire = match self.chpasswd.as_ref().and_then(|c| c.expire) {
            Some(false) => Vec::new(),
            _ => {
                let mut users: Vec<String> = Vec::new();
                for p in &passwords {
                    if !users.contains(&p.user) {
                        users.push(p.user.clone());
                    }
                }
                users
            }
        };
        planner.push(ActionKind::SetPasswords { passwords, expire });
        Ok(())
    }
}
