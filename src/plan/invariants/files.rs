//! What a plan may write: contract.md's paths, each by the module that owns it and once, with
//! the modes it names, one-line files that stay one line, and credentials never world-readable.

use super::text::{has_control, replace_markers, userinfos};
use super::violation::{Violation, violation};
use crate::action::{Action, ActionKind};
use std::collections::BTreeMap;

use crate::action::Text;
use crate::module::Module;
use crate::modules::apt_configure::AptConfigure;
use crate::modules::apt_pipelining::{AptPipelining, PIPELINING_FILE};
use crate::modules::bootcmd::Bootcmd;
use crate::modules::puppet::Puppet;
use crate::modules::runcmd::Runcmd;
use crate::modules::scripts_user::ScriptsUser;
use crate::modules::set_hostname::SetHostname;
use crate::modules::ssh::{SSHD_DROP_IN, Ssh};
use crate::modules::ssh_host_keys_deferred::SshHostKeysDeferred;
use crate::modules::update_etc_hosts::{HOSTS_FILE, UpdateEtcHosts};
use crate::modules::users_groups::UsersGroups;
use crate::modules::write_files::WriteFiles;
use crate::modules::write_files_deferred::WriteFilesDeferred;

/// Where user-given puppet paths may lie (contract.md, "Paths and modes").
pub const PUPPET_ROOTS: &[&str] = &[
    "/etc/puppet",
    "/etc/puppetlabs",
    "/var/lib/puppet",
    "/opt/puppetlabs",
];

pub const SOURCES_LIST: &str = "/etc/apt/sources.list";

pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d/";

pub const KEYRINGS_DIR: &str = "/etc/apt/keyrings/";

pub const APT_CONF_DIR: &str = "/etc/apt/apt.conf.d/";

pub const PROXY_FILE: &str = "/etc/apt/apt.conf.d/90cloud-init-aptproxy";

/// Linux's NAME_MAX and PATH_MAX - 1: longer paths cannot be written at all.
pub const NAME_MAX: usize = 255;

pub const PATH_MAX: usize = 4095;

/// Absolute, normalised, writable at all: no `.`, `..` or empty components, no control
/// characters, within NAME_MAX and PATH_MAX.
pub fn normalised(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} is not absolute"));
    }
    if let Some(c) = has_control(path) {
        return Err(format!("{path:?} holds control character {c:?}"));
    }
    if path.len() > PATH_MAX {
        return Err(format!("a path of {} bytes", path.len()));
    }
    for component in path[1..].split('/') {
        match component {
            "" => return Err(format!("{path:?} has an empty component")),
            "." | ".." => return Err(format!("{path:?} has a {component:?} component")),
            c if c.len() > NAME_MAX => {
                return Err(format!("{path:?} has a component of {} bytes", c.len()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A plain, non-empty file name directly inside `dir`, ending with `suffix`.
pub fn file_in<'p>(path: &'p str, dir: &str, suffix: &str) -> Option<&'p str> {
    let name = path.strip_prefix(dir)?.strip_suffix(suffix)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// One of contract.md's paths, and written by the module that owns it.
pub fn allowed_path(module: &str, path: &str) -> Result<(), String> {
    normalised(path)?;
    let apt = path == SOURCES_LIST
        || file_in(path, SOURCES_DIR, ".list").is_some()
        || file_in(path, SOURCES_DIR, ".sources").is_some()
        || file_in(path, KEYRINGS_DIR, ".asc").is_some()
        || file_in(path, APT_CONF_DIR, "").is_some();
    let puppet = PUPPET_ROOTS.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    });
    let script = super::scripts::instance_script(path);
    let allowed = (module == AptConfigure::NAME && apt)
        // The user's own files may lie anywhere the path rules allow.
        || module == WriteFiles::NAME
        || module == WriteFilesDeferred::NAME
        || (module == Bootcmd::NAME
            && script
            && (path.ends_with("/bootcmd") || path.contains("/boothooks/")))
        || (module == Runcmd::NAME && script && path.ends_with("/scripts/runcmd"))
        || (module == ScriptsUser::NAME && script && path.contains("/scripts/part-"))
        || (module == UsersGroups::NAME && path == crate::modules::users_groups::SUDOERS_FILE)
        || (module == Puppet::NAME && puppet)
        || (module == AptPipelining::NAME && path == PIPELINING_FILE)
        || (module == Ssh::NAME && path == SSHD_DROP_IN)
        || ([Ssh::NAME, SshHostKeysDeferred::NAME].contains(&module)
            && file_in(path, "/etc/ssh/", "").is_some_and(|n| n.starts_with("ssh_host_")))
        || (module == SetHostname::NAME && path == crate::action::HOSTNAME_FILE)
        || (module == UpdateEtcHosts::NAME && path == HOSTS_FILE);
    match allowed {
        true => Ok(()),
        false => Err(format!(
            "{module} may not write {path:?} (contract.md, \"Paths and modes\")"
        )),
    }
}

/// One action per path, except that puppet.conf takes one `edit_ini` per key.
pub fn check_writes_once<'p>(
    writers: &mut BTreeMap<&'p str, (usize, &'p str)>,
    i: usize,
    action: &'p Action,
) -> Result<(), Violation> {
    let kind = match &action.kind {
        ActionKind::WriteFile { .. } => "write_file",
        // Entries of write_files may name one path several times, appending or replacing.
        ActionKind::WriteUserFile { .. } => "write_user_file",
        ActionKind::WriteSudoers { .. } => "write_sudoers",
        ActionKind::FetchKey { .. } => "fetch_key",
        ActionKind::EditIni { .. } => "edit_ini",
        _ => return Ok(()),
    };
    for path in action.written_paths() {
        if let Some((first, first_kind)) = writers.insert(path, (i, kind))
            && !(kind == first_kind && matches!(kind, "edit_ini" | "write_user_file"))
        {
            return Err(violation(
                "written once",
                Some(i),
                format!("{path} is written by action {first} and again by action {i}"),
            ));
        }
    }
    Ok(())
}

pub fn check_mode(module: &str, path: &str, mode: &str, content: &Text) -> Result<(), String> {
    if mode.len() != 4 || !mode.starts_with('0') || !mode.bytes().all(|b| matches!(b, b'0'..=b'7'))
    {
        return Err(format!("{path}: mode {mode:?} is not 4 octal digits"));
    }
    let script = [Bootcmd::NAME, Runcmd::NAME, ScriptsUser::NAME].contains(&module)
        && super::scripts::instance_script(path);
    if script {
        return match mode {
            "0700" => Ok(()),
            _ => Err(format!(
                "{path}: a script kept for the instance is {mode}, not 0700"
            )),
        };
    }
    if !matches!(mode, "0644" | "0600") {
        return Err(format!("{path}: mode {mode} is neither 0644 nor 0600"));
    }
    if content.is_sensitive() && mode != "0600" {
        return Err(format!("{path} holds secrets but is {mode}"));
    }
    if module == Puppet::NAME {
        // csr_attributes.yaml (the pre-shared key) is the puppet module's one secret file; the
        // CA certificate is public and is the only other file it writes.
        let is_ca = path.ends_with("/certs/ca.pem") && !content.is_sensitive();
        if !is_ca && (mode != "0600" || !content.is_sensitive()) {
            return Err(format!(
                "{path}: csr_attributes.yaml must be 0600 and redacted, is {mode}"
            ));
        }
    }
    Ok(())
}

/// `.list` files: `deb`/`deb-src` lines only, each a well-formed one-line entry; `.sources`
/// files: deb822 stanzas apt reads (known fields, URIs, no stray line breaks).
pub fn check_content(path: &str, content: &Text) -> Result<(), String> {
    if file_in(path, SOURCES_DIR, ".sources").is_some() {
        use crate::modules::apt_configure::deb822;
        deb822::parse(&content.text)
            .and_then(|stanzas| deb822::check(&stanzas))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    if file_in(path, SOURCES_DIR, ".list").is_some() {
        if !content.text.ends_with('\n') {
            return Err(format!("{path} does not end with a newline"));
        }
        for line in content.text.lines() {
            if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
                return Err(format!(
                    "{path}: line {line:?} holds control character {c:?}"
                ));
            }
            let kind = line.split([' ', '\t']).next().unwrap_or_default();
            if kind != "deb" && kind != "deb-src" {
                return Err(format!("{path}: line {line:?} is not a deb/deb-src entry"));
            }
            crate::values::deb_line(line).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    if path == PROXY_FILE {
        for line in content.text.lines() {
            let url = ["http", "ftp", "https"].iter().find_map(|scheme| {
                line.strip_prefix(&format!("Acquire::{scheme}::Proxy \""))
                    .and_then(|rest| rest.strip_suffix("\";"))
            });
            match url {
                Some(url) if !url.contains(['"', '\\']) && has_control(url).is_none() => {}
                _ => {
                    return Err(format!(
                        "{path}: line {line:?} is not `Acquire::SCHEME::Proxy \"URL\";`"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A file of apt's holding URL credentials is 0600, and in its redacted form every userinfo
/// is redaction markers and `:` only (nothing of a user or password shows).
pub fn check_credentials(path: &str, mode: &str, content: &Text) -> Result<(), String> {
    if !path.starts_with("/etc/apt/") || path.starts_with(KEYRINGS_DIR) {
        return Ok(());
    }
    if !userinfos(&content.text).is_empty() && mode != "0600" {
        return Err(format!("{path} holds URL credentials but is {mode}"));
    }
    let redacted = replace_markers(&content.redacted(), "\u{e000}");
    if let Some(shown) = userinfos(&redacted)
        .into_iter()
        .find(|u| u.chars().any(|c| c != '\u{e000}' && c != ':'))
    {
        return Err(format!(
            "{path}: the redacted content still shows URL credentials ({} chars)",
            shown.replace('\u{e000}', "").chars().count()
        ));
    }
    Ok(())
}
