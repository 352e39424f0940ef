//! Groups, users, sudo rules and SSH keys, as the target's own tools make them (groupadd,
//! useradd, usermod, gpasswd, chpasswd, visudo: chrooted under `--root`), looked up in the
//! target's passwd and group files, never the host's.

use std::collections::BTreeMap;

use super::{ActionError, Executor};
use crate::action::ActionKind;
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
            ActionKind::AuthorizedKeys { user, keys } => {
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
                let mut text = String::from_utf8_lossy(&old).into_owned();
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                for key in keys {
                    if !text.lines().any(|l| l.trim() == key.trim()) {
                        text.push_str(key.trim());
                        text.push('\n');
                    }
                }
                let outcome = self.writer.write(&path, text.as_bytes(), 0o600, uid, gid)?;
                self.log.line(&format!("keys {path}: {outcome:?}"));
            }
            _ => {}
        }
        Ok(())
    }
}
