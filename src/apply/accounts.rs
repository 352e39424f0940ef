//! Groups, users, sudo rules and SSH keys, as the target's own tools make them (groupadd,
//! useradd, usermod, gpasswd, chpasswd, visudo: chrooted under `--root`), looked up in the
//! target's passwd and group files, never the host's.

use std::collections::BTreeMap;

use super::{ActionError, Executor};
use crate::action::{ActionKind, Password, PasswordKind};
use crate::writer::Writer;

/// The line of a passwd or group text whose first field is `name`, split at `:`.
fn fields_of(text: &[u8], name: &str) -> Option<Vec<String>> {
    String::from_utf8_lossy(text).lines().find_map(|line| {
        let fields: Vec<String> = line.split(':').map(str::to_owned).collect();
        (fields.first().map(String::as_str) == Some(name)).then_some(fields)
    })
}

/// `name`'s line of the target's passwd or group file; a missing file has no lines.
fn entry(writer: &Writer, file: &str, name: &str) -> Result<Option<Vec<String>>, ActionError> {
    Ok(fields_of(&writer.read(file)?.unwrap_or_default(), name))
}

/// The id of a user or group by name in the target's passwd or group file: owners of the
/// user's files are the target's accounts (the users module made them), never the host's.
fn account_id(writer: &Writer, file: &str, name: &str) -> Result<u32, ActionError> {
    if name == "root" {
        return Ok(0);
    }
    let unreadable = |reason: String| ActionError::Target {
        path: file.to_owned(),
        reason,
    };
    let text = writer
        .read(file)?
        .ok_or_else(|| unreadable("does not exist".into()))?;
    fields_of(&text, name)
        .and_then(|fields| fields.get(2)?.parse().ok())
        .ok_or_else(|| unreadable(format!("no account {name:?}")))
}

/// `(uid, gid)` of a `write_files` owner in the target.
pub(super) fn user_file_ids(
    writer: &Writer,
    owner: &str,
    group: &str,
) -> Result<(u32, u32), ActionError> {
    Ok((
        account_id(writer, "/etc/passwd", owner)?,
        account_id(writer, "/etc/group", group)?,
    ))
}

/// The base64 blob of an authorized_keys line (after any options), which names the key.
fn key_blob(line: &str) -> Option<&str> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"))?;
    words.get(at + 1).copied()
}

/// `old` with each of `keys` (prefixed by `options`): a line holding the same key is
/// replaced where it stands, as cloud-init's update of authorized_keys does (so the root stub
/// replaces a plain line of the same key), other lines are kept, the rest added at the end.
fn merge_authorized_keys(old: &str, keys: &[String], options: Option<&str>) -> String {
    let wanted: Vec<(Option<&str>, String)> = keys
        .iter()
        .map(|k| {
            let line = match options {
                Some(o) => format!("{o} {}", k.trim()),
                None => k.trim().to_owned(),
            };
            (key_blob(k), line)
        })
        .collect();
    let mut placed = vec![false; wanted.len()];
    let mut lines: Vec<String> = Vec::new();
    for line in old.lines() {
        let blob = key_blob(line).filter(|_| !line.trim_start().starts_with('#'));
        let same = wanted.iter().enumerate().find(|(i, (b, new))| {
            !placed[*i] && ((blob.is_some() && *b == blob) || new == line.trim())
        });
        match same {
            Some((i, (_, new))) => {
                placed[i] = true;
                lines.push(new.clone());
            }
            None => lines.push(line.to_owned()),
        }
    }
    for (i, (_, new)) in wanted.iter().enumerate() {
        if !placed[i] && !lines.iter().any(|l| l == new) {
            lines.push(new.clone());
        }
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

/// Characters of a random password: cloud-init's set (letters, digits, punctuation) less
/// `:`, which chpasswd would read as the end of the name.
const PASSWORD_CLASSES: [&[u8]; 4] = [
    b"abcdefghijklmnopqrstuvwxyz",
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    b"0123456789",
    b"!\"#$%&'()*+,-./;<=>?@[\\]^_`{|}~",
];
const RANDOM_PASSWORD_LEN: usize = 20;

/// A password of 20 characters from the kernel's random source, with one of each class at
/// least (as cloud-init's `rand_user_password`).
fn random_password() -> Result<String, ActionError> {
    use std::io::Read;
    let all: Vec<u8> = PASSWORD_CLASSES.concat();
    let mut urandom = std::fs::File::open("/dev/urandom").map_err(|e| ActionError::Target {
        path: "/dev/urandom".into(),
        reason: e.to_string(),
    })?;
    loop {
        let mut bytes = [0u8; 64];
        urandom
            .read_exact(&mut bytes)
            .map_err(|e| ActionError::Target {
                path: "/dev/urandom".into(),
                reason: e.to_string(),
            })?;
        // Rejection sampling: only bytes below the largest multiple of the alphabet's size,
        // so that every character is equally likely.
        let limit = 256 - 256 % all.len();
        let password: Vec<u8> = bytes
            .iter()
            .filter(|b| usize::from(**b) < limit)
            .map(|b| all[usize::from(*b) % all.len()])
            .take(RANDOM_PASSWORD_LEN)
            .collect();
        let every_class = PASSWORD_CLASSES
            .iter()
            .all(|class| password.iter().any(|c| class.contains(c)));
        if password.len() == RANDOM_PASSWORD_LEN && every_class {
            return Ok(String::from_utf8_lossy(&password).into_owned());
        }
    }
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

impl Executor<'_> {
    fn run_tool(&mut self, argv: Vec<String>, stdin: Option<&str>) -> Result<(), ActionError> {
        self.runner
            .run(&argv, &BTreeMap::new(), stdin, &[0], &mut self.log)?;
        Ok(())
    }

    fn ensure_group(&mut self, name: &str) -> Result<(), ActionError> {
        if entry(&self.writer, "/etc/group", name)?.is_none() {
            self.run_tool(words(&["groupadd", name]), None)?;
        }
        Ok(())
    }

    pub(super) fn account_action(&mut self, kind: &ActionKind) -> Result<(), ActionError> {
        // The tools would change the host's accounts while the files read are the root's.
        if !self.opts.image_root && self.opts.root != std::path::Path::new("/") {
            return Err(ActionError::Target {
                path: self.opts.root.display().to_string(),
                reason: "accounts are made on the running system or in an image root, not in \
                         another directory"
                    .into(),
            });
        }
        match kind {
            ActionKind::EnsureGroup { name, members } => {
                self.ensure_group(name)?;
                for member in members {
                    if entry(&self.writer, "/etc/passwd", member)?.is_none() {
                        let warning = format!("group {name}: no user {member} to add");
                        self.log.line(&warning);
                        self.warnings.push(warning);
                        continue;
                    }
                    let listed = entry(&self.writer, "/etc/group", name)?
                        .and_then(|f| f.get(3).cloned())
                        .unwrap_or_default();
                    if !listed.split(',').any(|m| m == member) {
                        self.run_tool(words(&["gpasswd", "-a", member, name]), None)?;
                    }
                }
            }
            ActionKind::EnsureUser {
                name,
                gecos,
                primary_group,
                groups,
                shell,
                homedir,
                create_home,
                system,
                uid,
                expiredate,
                inactive,
                hashed_passwd,
                lock_passwd,
            } => {
                for group in primary_group.iter().chain(groups) {
                    self.ensure_group(group)?;
                }
                let exists = entry(&self.writer, "/etc/passwd", name)?.is_some();
                let mut argv = words(&[if exists { "usermod" } else { "useradd" }]);
                let mut option = |flag: &str, value: &Option<String>| {
                    if let Some(value) = value {
                        argv.push(flag.to_owned());
                        argv.push(value.clone());
                    }
                };
                option("--comment", gecos);
                option("--gid", primary_group);
                option("--shell", shell);
                option("--expiredate", expiredate);
                option("--inactive", inactive);
                if !exists {
                    option("--home-dir", homedir);
                    option("--uid", &uid.map(|u| u.to_string()));
                }
                if !groups.is_empty() {
                    if exists {
                        argv.push("--append".into());
                    }
                    argv.push("--groups".into());
                    argv.push(groups.join(","));
                }
                if !exists {
                    argv.push(
                        if *create_home {
                            "--create-home"
                        } else {
                            "--no-create-home"
                        }
                        .into(),
                    );
                    if *system {
                        argv.push("--system".into());
                    }
                }
                // Existing accounts are amended, never recreated; nothing to amend, no usermod.
                if !exists || argv.len() > 1 {
                    argv.push(name.clone());
                    self.run_tool(argv, None)?;
                }
                if let Some(hash) = hashed_passwd {
                    // On standard input: a hash in argv would show in every process list.
                    let line = format!("{name}:{}\n", hash.text);
                    self.run_tool(words(&["chpasswd", "--encrypted"]), Some(&line))?;
                }
                if *lock_passwd {
                    self.run_tool(words(&["usermod", "--lock", name]), None)?;
                }
            }
            ActionKind::WriteSudoers { path, content } => {
                if self.writer.metadata("/usr/sbin/visudo")?.is_none() {
                    let warning = format!(
                        "{path} not written: sudo is not installed, so visudo cannot check it"
                    );
                    self.log.line(&warning);
                    self.warnings.push(warning);
                    return Ok(());
                }
                let check = format!("{path}.cloudcfg-check");
                self.writer.write(&check, content.as_bytes(), 0o440, 0, 0)?;
                let checked = self.run_tool(words(&["visudo", "-cf", &check]), None);
                self.writer.remove(&check)?;
                checked?;
                let outcome = self.writer.write(path, content.as_bytes(), 0o440, 0, 0)?;
                self.log.line(&format!("sudoers {path}: {outcome:?}"));
            }
            ActionKind::AuthorizedKeys {
                user,
                keys,
                options,
            } => {
                let fields = entry(&self.writer, "/etc/passwd", user)?.ok_or_else(|| {
                    ActionError::Target {
                        path: "/etc/passwd".into(),
                        reason: format!("no account {user:?} for its SSH keys"),
                    }
                })?;
                let id = |i: usize| fields.get(i).and_then(|v| v.parse::<u32>().ok());
                let (Some(uid), Some(gid), Some(home)) = (id(2), id(3), fields.get(5)) else {
                    return Err(ActionError::Target {
                        path: "/etc/passwd".into(),
                        reason: format!("the entry of {user:?} is not uid, gid and home"),
                    });
                };
                let dir = format!("{}/.ssh", home.trim_end_matches('/'));
                self.writer.dir(&dir, 0o700)?;
                self.writer.chown(&dir, uid, gid)?;
                let path = format!("{dir}/authorized_keys");
                let old = self.writer.read(&path)?.unwrap_or_default();
                let text = String::from_utf8_lossy(&old).into_owned();
                let text = merge_authorized_keys(&text, keys, options.as_deref());
                let outcome = self.writer.write(&path, text.as_bytes(), 0o600, uid, gid)?;
                self.log.line(&format!("keys {path}: {outcome:?}"));
            }
            ActionKind::SetPasswords { passwords, expire } => {
                self.set_passwords(passwords, expire)?
            }
            _ => {}
        }
        Ok(())
    }

    /// Every user is checked first, so a missing one changes no password; then chpasswd
    /// (hashes with `--encrypted`) on standard input, and `passwd --expire`.
    fn set_passwords(
        &mut self,
        passwords: &[Password],
        expire: &[String],
    ) -> Result<(), ActionError> {
        for user in passwords.iter().map(|p| &p.user).chain(expire) {
            if entry(&self.writer, "/etc/passwd", user)?.is_none() {
                return Err(ActionError::Target {
                    path: "/etc/passwd".into(),
                    reason: format!("no account {user:?} for its password"),
                });
            }
        }
        let mut plain = String::new();
        let mut hashed = String::new();
        let mut randoms = Vec::new();
        for password in passwords {
            let text = match (password.kind, &password.password) {
                (PasswordKind::Random, _) => {
                    let random = random_password()?;
                    self.runner.add_secret(&random);
                    randoms.push(format!("{}:{random}", password.user));
                    random
                }
                (_, Some(text)) => text.text.clone(),
                (_, None) => continue,
            };
            let lines = if password.kind == PasswordKind::Hash {
                &mut hashed
            } else {
                &mut plain
            };
            lines.push_str(&format!("{}:{text}\n", password.user));
        }
        if !plain.is_empty() {
            self.run_tool(words(&["chpasswd"]), Some(&plain))?;
        }
        if !hashed.is_empty() {
            self.run_tool(words(&["chpasswd", "--encrypted"]), Some(&hashed))?;
        }
        for user in expire {
            self.run_tool(words(&["passwd", "--expire", user]), None)?;
        }
        if !randoms.is_empty() {
            self.show_random_passwords(&randoms);
        }
        Ok(())
    }

    /// The console only, as cloud-init: the journal and the log are kept and readable by more
    /// people than the one who reads the console. An image build has no console but the
    /// terminal of whoever runs it.
    fn show_random_passwords(&mut self, randoms: &[String]) {
        use std::io::Write;
        let text = format!(
            "Set the following 'random' passwords\n{}\n",
            randoms.join("\n")
        );
        let users: Vec<&str> = randoms.iter().filter_map(|r| r.split(':').next()).collect();
        let live = !self.opts.image_root && self.opts.root == std::path::Path::new("/");
        let shown = if live {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/console")
                .and_then(|mut console| console.write_all(text.as_bytes()))
                .is_ok()
        } else {
            std::io::stderr().write_all(text.as_bytes()).is_ok()
        };
        let line = format!(
            "random passwords of {}: {}",
            users.join(", "),
            if shown {
                if live {
                    "shown on /dev/console"
                } else {
                    "shown on standard error"
                }
            } else {
                "not shown: /dev/console cannot be opened"
            }
        );
        self.log.line(&line);
        if !shown {
            self.warnings.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 a@x";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2 b@x";

    #[test]
    fn random_passwords_have_every_class_and_no_colon() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.len(), RANDOM_PASSWORD_LEN);
            assert!(!p.contains(':') && !p.contains(char::is_whitespace), "{p}");
            for class in PASSWORD_CLASSES {
                assert!(p.bytes().any(|c| class.contains(&c)), "{p}");
            }
        }
    }

    #[test]
    fn keys_are_added_once_and_other_lines_kept() {
        let old = "# mine\nssh-rsa AAAAB3Nza other\n";
        let keys = vec![KEY_A.to_owned(), KEY_B.to_owned(), KEY_A.to_owned()];
        let once = merge_authorized_keys(old, &keys, None);
        assert_eq!(
            once,
            format!("# mine\nssh-rsa AAAAB3Nza other\n{KEY_A}\n{KEY_B}\n")
        );
        assert_eq!(merge_authorized_keys(&once, &keys, None), once);
    }

    #[test]
    fn the_stub_replaces_a_plain_line_of_the_same_key() {
        let old = format!("{KEY_A}\n{KEY_B}\n");
        let stub = "no-pty,command=\"echo 'Please login as the user \\\"debian\\\"';exit 142\"";
        let new = merge_authorized_keys(&old, &[KEY_A.to_owned()], Some(stub));
        assert_eq!(new, format!("{stub} {KEY_A}\n{KEY_B}\n"));
        assert_eq!(
            merge_authorized_keys(&new, &[KEY_A.to_owned()], Some(stub)),
            new
        );
    }
}
