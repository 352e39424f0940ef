//! Properties every plan of an accepted config must have, whatever the user data: the fuzz
//! targets (`fuzz/`) and the stable property test (`tests/invariants.rs`) both check them
//! through this one module, so a property is stated once.
//!
//! The checks read the plan only, as an auditor would: they do not trust the validators that
//! ran before planning, so a validator that lets something through shows up here. They cover
//! contract.md's "Paths and modes" and "Order and ownership", argv hygiene (no user-given word
//! can become an option, except puppet's `exec_args`), one-line values, modes and secrets.
//!
//! Time is not checked here: it is bounded by libFuzzer's `-timeout` (see fuzz/README.md), never
//! by a clock in a test.

mod commands;
mod files;
mod order;
mod redaction;
mod scripts;
mod text;
mod violation;

use std::collections::BTreeMap;

use self::commands::{
    check_command, check_debconf_secrets, check_fetch_key, check_ini, package_word,
};
use self::files::{allowed_path, check_content, check_credentials, check_mode, check_writes_once};
use self::order::{check_module_order, check_order};
use self::redaction::check_redaction;
use self::scripts::{check_power_state, check_script, check_user_file};
use crate::action::{ActionKind, Facts, Plan};
use crate::config::{CloudConfig, Loaded};
use crate::diag::Report;
use crate::system::SystemConfig;

pub use self::commands::{APT_GET_OPTIONS, COMMANDS};
pub use self::files::PUPPET_ROOTS;
pub use self::violation::Violation;
use self::violation::violation;

/// Checks every property of one plan. Determinism needs two plans: see [`plan_and_check`].
pub fn check(plan: &Plan) -> Result<(), Violation> {
    check_module_order(plan)?;
    let mut writers: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (i, action) in plan.actions.iter().enumerate() {
        let at = Some(i);
        for path in action.written_paths() {
            allowed_path(action.module, path).map_err(|e| violation("path", at, e))?;
        }
        for path in action.host_key_paths() {
            allowed_path(action.module, &path).map_err(|e| violation("path", at, e))?;
        }
        check_writes_once(&mut writers, i, action)?;
        match &action.kind {
            ActionKind::WriteFile {
                path,
                mode,
                owner,
                group,
                content,
            } => {
                check_mode(action.module, path, mode, content)
                    .map_err(|e| violation("mode", at, e))?;
                if owner != "root" || group != "root" {
                    return Err(violation(
                        "owner",
                        at,
                        format!("{path} is {owner}:{group}, not root:root"),
                    ));
                }
                check_content(path, content).map_err(|e| violation("content", at, e))?;
                check_credentials(path, mode, content)
                    .map_err(|e| violation("credentials", at, e))?;
            }
            ActionKind::WriteUserFile {
                path,
                mode,
                owner,
                group,
                content,
                content_base64,
                ..
            } => check_user_file(path, mode, owner, group, content, content_base64)
                .map_err(|e| violation("write_user_file", at, e))?,
            ActionKind::EnsureGroup { name, members } => {
                for n in std::iter::once(name).chain(members) {
                    crate::values::account_name(n).map_err(|e| violation("group", at, e))?;
                }
            }
            ActionKind::EnsureUser { name, groups, .. } => {
                for n in std::iter::once(name).chain(groups) {
                    crate::values::account_name(n).map_err(|e| violation("user", at, e))?;
                }
            }
            ActionKind::WriteSudoers { content, .. } => {
                if content.lines().any(|l| {
                    !l.is_empty() && !l.starts_with('#') && l.split_whitespace().count() < 2
                }) {
                    return Err(violation("sudoers", at, "a rule line without a rule"));
                }
            }
            ActionKind::AuthorizedKeys {
                user,
                keys,
                options,
            } => {
                crate::values::account_name(user).map_err(|e| violation("keys", at, e))?;
                for key in keys.iter().chain(options) {
                    crate::values::single_line(key).map_err(|e| violation("keys", at, e))?;
                }
            }
            ActionKind::HostKeys {
                generate,
                given,
                comment,
                ..
            } => check_host_keys(generate, given, comment)
                .map_err(|e| violation("host_keys", at, e))?,
            ActionKind::HostKeysToConsole {
                skip_fingerprints,
                skip_keys,
            } => {
                for word in skip_fingerprints.iter().chain(skip_keys) {
                    crate::values::single_line(word).map_err(|e| violation("console", at, e))?;
                }
            }
            ActionKind::SetHostname { hostname, .. } => {
                crate::values::host_name(hostname).map_err(|e| violation("hostname", at, e))?
            }
            ActionKind::HostsEntry { address, names } => {
                if address.parse::<std::net::IpAddr>().is_err() {
                    return Err(violation("hosts", at, format!("{address:?} is no address")));
                }
                for name in names {
                    crate::values::host_name(name).map_err(|e| violation("hosts", at, e))?;
                }
            }
            ActionKind::SetPasswords { passwords, expire } => {
                check_passwords(passwords, expire).map_err(|e| violation("passwords", at, e))?
            }
            ActionKind::ReloadService { unit } => {
                if unit != "ssh.service" {
                    return Err(violation("service", at, format!("reload of {unit:?}")));
                }
            }
            ActionKind::FinalMessage { template } => {
                if template.contains('\0') {
                    return Err(violation("final_message", at, "a NUL byte"));
                }
            }
            ActionKind::PowerState { argv, .. } => {
                check_power_state(argv).map_err(|e| violation("power_state", at, e))?
            }
            ActionKind::RunScript { path, env } => {
                check_script(&plan.actions[..i], action.module, path, env)
                    .map_err(|e| violation("run_script", at, e))?;
            }
            ActionKind::Command {
                argv,
                env,
                stdin,
                ok_exit_codes,
            } => {
                check_command(argv, env, stdin.as_ref(), ok_exit_codes.as_deref())
                    .map_err(|e| violation("command", at, e))?;
                if let Some(stdin) = stdin {
                    check_debconf_secrets(stdin).map_err(|e| violation("secrets", at, e))?;
                }
            }
            ActionKind::FetchKey {
                keyid,
                keyserver,
                ppa,
                url,
                dest: _,
                ..
            } => check_fetch_key(
                keyid.as_deref(),
                keyserver.as_deref(),
                ppa.as_deref(),
                url.as_deref(),
            )
            .map_err(|e| violation("fetch_key", at, e))?,
            ActionKind::EditIni {
                section,
                key,
                value,
                ..
            } => check_ini(section, key, value).map_err(|e| violation("edit_ini", at, e))?,
            ActionKind::ReconfigureInstalled { packages } => {
                for p in packages {
                    package_word(p).map_err(|e| violation("reconfigure_installed", at, e))?;
                }
                if packages.is_empty() {
                    return Err(violation(
                        "reconfigure_installed",
                        at,
                        "an empty package list",
                    ));
                }
            }
            ActionKind::EnableService { unit } | ActionKind::StartService { unit } => {
                if unit != "puppet.service" {
                    return Err(violation("service", at, format!("unit {unit:?}")));
                }
            }
        }
    }
    // An edit_ini keeps the original as `<path>.old`: no action may write that file.
    for (i, action) in plan.actions.iter().enumerate() {
        if let ActionKind::EditIni { path, .. } = &action.kind
            && let Some((j, _)) = writers.get(format!("{path}.old").as_str())
        {
            return Err(violation(
                "written once",
                Some(*j),
                format!("{path}.old keeps puppet.conf's original (action {i}) but is written"),
            ));
        }
    }
    check_order(plan)?;
    check_redaction(plan)?;
    Ok(())
}

/// Host keys: the types sshd knows, file names of /etc/ssh's host keys, private keys 0600 and
/// secret, a one-line comment.
fn check_host_keys(
    generate: &[String],
    given: &[crate::action::HostKeyFile],
    comment: &str,
) -> Result<(), String> {
    use crate::modules::ssh::KEY_TYPES;
    for key_type in generate {
        if !KEY_TYPES.contains(&key_type.as_str()) {
            return Err(format!("key type {key_type:?}"));
        }
    }
    for file in given {
        let key_type = file
            .name
            .strip_prefix("ssh_host_")
            .and_then(|n| n.split_once("_key"))
            .filter(|(t, rest)| KEY_TYPES.contains(t) && ["", ".pub", "-cert.pub"].contains(rest));
        let Some((_, rest)) = key_type else {
            return Err(format!("{:?} is not a host key file", file.name));
        };
        let private = rest.is_empty();
        if private != file.content.is_sensitive() || (private && file.mode != "0600") {
            return Err(format!(
                "{} is {} and secret: {}",
                file.name, file.mode, private
            ));
        }
        if !private && file.mode != "0644" {
            return Err(format!("{} is {}, not 0644", file.name, file.mode));
        }
    }
    crate::values::single_line(comment)?;
    if comment.starts_with('-') {
        return Err(format!("comment {comment:?} reads as an option"));
    }
    Ok(())
}

/// Passwords: account names, a secret for every given one, none for a random one, and only
/// users whose password is set expire.
fn check_passwords(passwords: &[crate::action::Password], expire: &[String]) -> Result<(), String> {
    use crate::action::PasswordKind;
    for p in passwords {
        crate::values::account_name(&p.user)?;
        // chpasswd reads `user:password` lines: no line break anywhere, no `:` in a hash.
        let ok = match (&p.password, p.kind) {
            (None, PasswordKind::Random) => true,
            (Some(text), PasswordKind::Text) => text.is_sensitive() && !text.text.contains('\n'),
            (Some(text), PasswordKind::Hash) => {
                text.is_sensitive() && !text.text.contains(['\n', ':'])
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "the password of {} is not a secret of its kind",
                p.user
            ));
        }
    }
    for user in expire {
        if !passwords.iter().any(|p| &p.user == user) {
            return Err(format!("{user} expires without a new password"));
        }
    }
    Ok(())
}

/// Plans twice, checks that both plans are the same (planning is pure), then [`check`]s it.
/// Facts must be complete: a planning error is a violation too.
pub fn plan_and_check(
    config: &CloudConfig,
    facts: &Facts,
    system: &SystemConfig,
) -> Result<Plan, Violation> {
    let first = super::plan(config, facts, system)
        .map_err(|e| violation("plan", None, format!("planning failed: {e}")))?;
    let second = super::plan(config, facts, system)
        .map_err(|e| violation("plan", None, format!("second planning failed: {e}")))?;
    if first != second {
        return Err(violation(
            "deterministic",
            None,
            "planning the same config twice gave two plans",
        ));
    }
    check(&first)?;
    Ok(first)
}

/// The facts the fuzz targets and tests/invariants.rs plan with: all known, so that a planning
/// error can only come from the config.
pub fn fixed_facts() -> Facts {
    Facts {
        instance_id: Some("i-0fuzz".into()),
        hostname: Some("fuzz".into()),
        fqdn: Some("fuzz.example.org".into()),
        release: Some("bookworm".into()),
        arch: "amd64".into(),
        ..Facts::default()
    }
}

/// What any loaded user data must hold: the report's invariants ([`check_report`]); a config
/// the CLI refuses still plans without panicking; an accepted one passes [`plan_and_check`]
/// with [`fixed_facts`] and the default system config. Returns the plan of an accepted config.
pub fn check_loaded(loaded: &Loaded) -> Result<Option<Plan>, Violation> {
    check_report(&loaded.report)?;
    let Some(config) = &loaded.config else {
        return Ok(None);
    };
    let system = SystemConfig::default();
    if !loaded.is_valid() {
        let _ = super::plan(config, &fixed_facts(), &system);
        return Ok(None);
    }
    plan_and_check(config, &fixed_facts(), &system).map(Some)
}

/// Diagnostics as `validate` prints them: each one line (`FILE:LINE:COL: severity: message`,
/// contract.md), with a 1-based position and no control characters, so user text cannot forge
/// lines or send terminal escapes.
pub fn check_report(report: &Report) -> Result<(), Violation> {
    for d in &report.diagnostics {
        if d.pos.line < 1 || d.pos.col < 1 {
            return Err(violation(
                "diagnostic",
                None,
                format!("{d:?} has no 1-based position"),
            ));
        }
        let message = d.full_message(&report.parts);
        if let Some(c) = message.chars().find(|c| c.is_control()) {
            return Err(violation(
                "diagnostic",
                None,
                format!("message {message:?} holds control character {c:?}"),
            ));
        }
    }
    let text = report.render_text("f");
    if text.lines().count() != report.diagnostics.len() {
        return Err(violation(
            "diagnostic",
            None,
            format!(
                "{} diagnostics render as {} lines",
                report.diagnostics.len(),
                text.lines().count()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::text::{strip_markers, userinfos};
    use super::*;

    #[test]
    fn userinfo_is_found_up_to_the_last_at() {
        assert_eq!(userinfos("\"http://u:p@ss@h:1/x\";"), vec!["u:p@ss"]);
        assert_eq!(userinfos("deb http://h/a@b x main"), Vec::<&str>::new());
        assert_eq!(userinfos("a ftp://x;y@h b https://u@h"), vec!["x;y", "u"]);
    }

    #[test]
    fn markers_are_stripped() {
        let m = crate::redact::redaction("s");
        assert_eq!(strip_markers(&format!("a{m}b{m}")), "ab");
        assert_eq!(
            strip_markers("<redacted sha256:xyz>"),
            "<redacted sha256:xyz>"
        );
    }

    #[test]
    fn paths() {
        assert!(allowed_path("apt_configure", "/etc/apt/sources.list.d/a.list").is_ok());
        assert!(allowed_path("apt_configure", "/etc/apt/sources.list.d/.list").is_err());
        assert!(allowed_path("apt_configure", "/etc/apt/sources.list.d/a/b.list").is_err());
        assert!(allowed_path("apt_configure", "/etc/apt/keyrings/../x.asc").is_err());
        assert!(allowed_path("apt_configure", "/etc/puppet/puppet.conf").is_err());
        assert!(allowed_path("puppet", "/etc/puppet/puppet.conf").is_ok());
        assert!(allowed_path("puppet", "/etc/puppet").is_err());
        assert!(allowed_path("puppet", "/etc/puppetx/a").is_err());
        assert!(allowed_path("puppet", "/etc/puppet//a").is_err());
    }

    #[test]
    fn argv() {
        let env: BTreeMap<String, String> =
            [("DEBIAN_FRONTEND".to_owned(), "noninteractive".to_owned())].into();
        let ok = crate::action::apt_get(&["install", "hello=2.10-3"]);
        assert!(check_command(&ok, &env, None, None).is_ok());
        let bad = crate::action::apt_get(&["install", "-oAPT::X=1"]);
        assert!(check_command(&bad, &env, None, None).is_err());
        let sh = vec!["sh".to_owned()];
        assert!(check_command(&sh, &BTreeMap::new(), None, None).is_err());
    }
}
