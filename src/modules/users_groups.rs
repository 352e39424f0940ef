//! `users_groups`: groups, users and their own SSH keys (cloud-init's `cc_users_groups`). The
//! default user comes from the system config (`default_user`, cloud-init's
//! `system_info.default_user`) with Debian's or Ubuntu's cloud-init defaults; `users` absent
//! means `[default]`. The instance's public keys and the top-level `ssh_authorized_keys` are
//! the `ssh` module's, which gives them to the default user, as cloud-init's `cc_ssh` does.
//!
//! Accounts are made and amended with groupadd, useradd, usermod, gpasswd and chpasswd through
//! the one runner (chrooted under `--root`), never recreated. The sudoers drop-in is checked
//! with `visudo -cf` before it is moved into place.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Distro, Frequency, PlanError, Stage, Text};
use crate::module::{Checker, Module, Need, Planner};
use crate::values;

/// cloud-init's sudoers drop-in.
pub const SUDOERS_FILE: &str = "/etc/sudoers.d/90-cloud-init-users";

/// The top-level keys `users_groups` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct UsersGroups {
    /// Accounts: `default` (the system config's default user), a name, or a mapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserSpec>>,
    /// Groups to create: a name, or `{name: [members]}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupSpec>>,
}

/// One item of `users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum UserSpec {
    /// `default`, or a user name.
    Name(String),
    User(Box<User>),
}

/// One item of `groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GroupSpec {
    Name(String),
    Members(indexmap::IndexMap<String, Option<NameList>>),
}

/// A list of names, or the same as one comma-separated string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NameList {
    Text(String),
    List(Vec<String>),
}

impl NameList {
    pub fn names(&self) -> Vec<String> {
        match self {
            NameList::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
            NameList::List(list) => list.iter().map(|n| n.trim().to_owned()).collect(),
        }
    }
}

/// `sudo`: one rule, several, or `false` for none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Sudo {
    Rule(String),
    Rules(Vec<String>),
    Switch(bool),
}

/// A user mapping of `users`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gecos: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_group: Option<String>,
    /// Supplementary groups, made when missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<NameList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo: Option<Sudo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homedir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_create_home: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>")]
    pub uid: Option<u32>,
    /// Lock the password (default true): keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_passwd: Option<bool>,
    /// A crypt(3) hash (`$6$...`), as cloud-init's `passwd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passwd: Option<String>,
    /// A crypt(3) hash (`$6$...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashed_passwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_authorized_keys: Option<Vec<String>>,
    /// `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiredate: Option<String>,
    /// Days after the password expires until the account is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::values::TextOrNumber>")]
    pub inactive: Option<String>,
    /// Not handled by cloudcfg: a warning says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_import_id: Option<serde_json::Value>,
    /// Not handled by cloudcfg: a warning says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_redirect_user: Option<bool>,
}

/// The default user as the system config and the distribution give it.
pub fn default_user(planner_system: &crate::system::SystemConfig, distro: Distro) -> User {
    let given = planner_system.default_user.clone().unwrap_or_default();
    let (name, gecos, groups): (&str, &str, &[&str]) = match distro {
        // cloud-init 22.4's Debian cloud.cfg.
        Distro::Debian => (
            "debian",
            "Debian",
            &[
                "adm", "audio", "cdrom", "dialout", "dip", "floppy", "netdev", "plugdev", "sudo",
                "video",
            ],
        ),
        Distro::Ubuntu => ("ubuntu", "Ubuntu", &["adm", "cdrom", "dip", "lxd", "sudo"]),
    };
    let rules = given
        .sudo
        .unwrap_or_else(|| vec!["ALL=(ALL) NOPASSWD:ALL".to_owned()]);
    User {
        name: given.name.unwrap_or_else(|| name.to_owned()),
        gecos: Some(given.gecos.unwrap_or_else(|| gecos.to_owned())),
        groups: Some(NameList::List(given.groups.unwrap_or_else(|| {
            groups.iter().map(|g| (*g).to_owned()).collect()
        }))),
        sudo: Some(Sudo::Rules(rules)),
        shell: Some(given.shell.unwrap_or_else(|| "/bin/bash".to_owned())),
        lock_passwd: Some(given.lock_passwd.unwrap_or(true)),
        ..User::default()
    }
}

/// An authorized_keys line: one line, and a key of a type sshd knows, options allowed before
/// it.
pub fn authorized_key(line: &str) -> Result<(), String> {
    values::single_line(line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let is_type = |w: &str| {
        w.starts_with("ssh-") || w.starts_with("ecdsa-sha2-") || w.starts_with("sk-")
    };
    let key_ok = words.windows(2).any(|pair| {
        is_type(pair[0])
            && pair[1].len() >= 16
            && pair[1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    });
    match key_ok {
        true => Ok(()),
        false => Err("is not an SSH public key (`ssh-ed25519 AAAA... comment`)".into()),
    }
}

/// A crypt(3) hash as shadow stores it, or a locked (`!`, `*`) one.
pub fn crypt_hash(hash: &str) -> Result<(), String> {
    let ok = hash.starts_with('$')
        && hash.split('$').count() >= 4
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'$' | b'.' | b'/' | b'='));
    match ok || hash == "!" || hash == "*" {
        true => Ok(()),
        false => Err("is not a crypt(3) hash such as `$6$salt$...`".into()),
    }
}

fn absolute(path: &str) -> Result<(), String> {
    values::absolute_path(path)
}

impl UsersGroups {
    /// The users to make, `default` resolved.
    fn users(&self, planner_system: &crate::system::SystemConfig, distro: Distro) -> Vec<User> {
        let specs = self
            .users
            .clone()
            .unwrap_or_else(|| vec![UserSpec::Name("default".into())]);
        specs
            .into_iter()
            .map(|spec| match spec {
                UserSpec::Name(name) if name == "default" => default_user(planner_system, distro),
                UserSpec::Name(name) => User {
                    name,
                    ..User::default()
                },
                UserSpec::User(user) => *user,
            })
            .collect()
    }

    fn has_default(&self) -> bool {
        self.users.as_ref().is_none_or(|specs| {
            specs
                .iter()
                .any(|s| matches!(s, UserSpec::Name(n) if n == "default"))
        })
    }
}

fn check_user(cx: &mut Checker<'_>, at: &str, user: &User) {
    cx.check(&format!("{at}.name"), values::account_name(&user.name));
    if let Some(gecos) = &user.gecos {
        let no_colon = match gecos.contains(':') {
            true => Err("must not contain `:` (it separates passwd's fields)".to_owned()),
            false => Ok(()),
        };
        cx.check(&format!("{at}.gecos"), values::single_line(gecos).and(no_colon));
    }
    if let Some(group) = &user.primary_group {
        cx.check(&format!("{at}.primary_group"), values::account_name(group));
    }
    for group in user.groups.iter().flat_map(NameList::names) {
        cx.check(&format!("{at}.groups"), values::account_name(&group));
    }
    for (field, path) in [("shell", &user.shell), ("homedir", &user.homedir)] {
        if let Some(path) = path {
            cx.check(&format!("{at}.{field}"), absolute(path));
        }
    }
    match &user.sudo {
        Some(Sudo::Rule(rule)) => {
            cx.check(&format!("{at}.sudo"), values::single_line(rule));
        }
        Some(Sudo::Rules(rules)) => {
            for (i, rule) in rules.iter().enumerate() {
                cx.check(&format!("{at}.sudo[{i}]"), values::single_line(rule));
            }
        }
        Some(Sudo::Switch(true)) => cx.error(
            &format!("{at}.sudo"),
            "true is not a sudo rule: give one such as `ALL=(ALL) NOPASSWD:ALL`, or false",
        ),
        _ => {}
    }
    for (field, hash) in [("passwd", &user.passwd), ("hashed_passwd", &user.hashed_passwd)] {
        if let Some(hash) = hash {
            cx.check(&format!("{at}.{field}"), crypt_hash(hash));
        }
    }
    for (i, key) in user.ssh_authorized_keys.iter().flatten().enumerate() {
        cx.check(&format!("{at}.ssh_authorized_keys[{i}]"), authorized_key(key));
    }
    if let Some(date) = &user.expiredate {
        let ok = date.len() == 10
            && date
                .bytes()
                .enumerate()
                .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        if !ok {
            cx.error(&format!("{at}.expiredate"), format!("{date:?} is not YYYY-MM-DD"));
        }
    }
    if let Some(days) = &user.inactive
        && days.parse::<u32>().is_err()
    {
        cx.error(&format!("{at}.inactive"), format!("{days:?} is not a number of days"));
    }
    for (field, given) in [
        ("ssh_import_id", user.ssh_import_id.is_some()),
        ("ssh_redirect_user", user.ssh_redirect_user.is_some()),
    ] {
        if given {
            cx.warning(
                &format!("{at}.{field}"),
                format!("`{field}` is not handled by cloudcfg: ignored"),
            );
        }
    }
}

impl Module for UsersGroups {
    const NAME: &'static str = "users_groups";
    const STAGE: Stage = Stage::Init;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        for (i, spec) in self.users.iter().flatten().enumerate() {
            match spec {
                UserSpec::Name(name) if name == "default" => {}
                UserSpec::Name(name) => {
                    cx.check(&format!("users[{i}]"), values::account_name(name));
                }
                UserSpec::User(user) => check_user(cx, &format!("users[{i}]"), user),
            }
        }
        for (i, spec) in self.groups.iter().flatten().enumerate() {
            let names: Vec<String> = match spec {
                GroupSpec::Name(name) => vec![name.clone()],
                GroupSpec::Members(map) => map
                    .iter()
                    .flat_map(|(g, m)| {
                        std::iter::once(g.clone()).chain(m.iter().flat_map(NameList::names))
                    })
                    .collect(),
            };
            for name in names {
                cx.check(&format!("groups[{i}]"), values::account_name(&name));
            }
        }
    }

    fn needs(&self) -> Vec<Need> {
        match self.has_default() {
            true => vec![Need::DefaultUser],
            false => Vec::new(),
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        for spec in self.groups.iter().flatten() {
            let groups: Vec<(String, Vec<String>)> = match spec {
                GroupSpec::Name(name) => vec![(name.clone(), Vec::new())],
                GroupSpec::Members(map) => map
                    .iter()
                    .map(|(g, m)| (g.clone(), m.iter().flat_map(NameList::names).collect()))
                    .collect(),
            };
            for (name, members) in groups {
                planner.push(ActionKind::EnsureGroup { name, members });
            }
        }
        let distro = planner.facts.distro();
        let users = self.users(planner.system, distro);
        let mut sudoers = String::new();
        for user in &users {
            let hash = user.hashed_passwd.clone().or(user.passwd.clone());
            planner.push(ActionKind::EnsureUser {
                name: user.name.clone(),
                gecos: user.gecos.clone(),
                primary_group: user.primary_group.clone(),
                groups: user.groups.iter().flat_map(NameList::names).collect(),
                shell: user.shell.clone(),
                homedir: user.homedir.clone(),
                create_home: !user.no_create_home.unwrap_or(false),
                system: user.system.unwrap_or(false),
                uid: user.uid,
                expiredate: user.expiredate.clone(),
                inactive: user.inactive.clone(),
                hashed_passwd: hash.map(Text::secret),
                lock_passwd: user.lock_passwd.unwrap_or(true),
            });
            let rules = match &user.sudo {
                Some(Sudo::Rule(rule)) => vec![rule.clone()],
                Some(Sudo::Rules(rules)) => rules.clone(),
                _ => Vec::new(),
            };
            if !rules.is_empty() {
                sudoers.push_str(&format!("\n# User rules for {}\n", user.name));
                for rule in rules {
                    sudoers.push_str(&format!("{} {rule}\n", user.name));
                }
            }
            let mut unique: Vec<String> = Vec::new();
            for key in user.ssh_authorized_keys.iter().flatten() {
                if !unique.contains(key) {
                    unique.push(key.clone());
                }
            }
            if !unique.is_empty() {
                planner.push(ActionKind::AuthorizedKeys {
                    user: user.name.clone(),
                    keys: unique,
                    options: None,
                });
            }
        }
        if !sudoers.is_empty() {
            planner.push(ActionKind::WriteSudoers {
                path: SUDOERS_FILE.to_owned(),
                content: format!("# Created by cloudcfg (users_groups)\n{sudoers}"),
            });
        }
        Ok(())
    }
}
