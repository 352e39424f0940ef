//! What a plan may run: argv vectors of the documented commands, no user word where an option
//! goes, keys fetched by well-formed ids, puppet.conf edits that stay one line.

use std::collections::BTreeMap;

use super::text::{strip_markers, userinfos};

use crate::action::Text;

/// The commands a plan may run (contract.md, "Order and ownership"). Service kinds are not
/// commands, and `dpkg-reconfigure` is chosen at apply time from `reconfigure_installed`.
pub const COMMANDS: &[&str] = &[
    "apt-get",
    "debconf-set-selections",
    "puppet",
    "/opt/puppetlabs/bin/puppet",
];

/// The options cloudcfg puts before every apt-get subcommand (cloud-init's, byte for byte).
pub const APT_GET_OPTIONS: &[&str] = &[
    "--option=Dpkg::Options::=--force-confold",
    "--option=Dpkg::options::=--force-unsafe-io",
    "--assume-yes",
    "--quiet",
];

/// Every `password` answer given to debconf-set-selections is redacted: the value is the rest
/// of the line after the type word, however it is spaced (debconf-set-selections reads it so).
pub fn check_debconf_secrets(stdin: &Text) -> Result<(), String> {
    let redacted = stdin.redacted();
    for (line, shown) in stdin.text.lines().zip(redacted.lines()) {
        let mut rest = line.trim_start();
        let mut words = Vec::new();
        for _ in 0..3 {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
        let value = rest.trim_end();
        if words[2] == "password" && !value.is_empty() && strip_markers(shown).contains(value) {
            return Err(format!(
                "the password answer to {:?} shows in the redacted input",
                words[1]
            ));
        }
    }
    if stdin.text.lines().count() != redacted.lines().count() {
        return Err("redaction changed the number of lines".into());
    }
    Ok(())
}

pub fn package_word(word: &str) -> Result<(), String> {
    let first_ok = word
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-.:=~/_".contains(c));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "{word:?} is not a package (it could be read as an option)"
        ))
    }
}

pub fn check_command(
    argv: &[String],
    env: &BTreeMap<String, String>,
    stdin: Option<&Text>,
    ok_exit_codes: Option<&[i32]>,
) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err("an empty argv".into());
    };
    if !COMMANDS.contains(&program.as_str()) {
        return Err(format!("{program:?} is not a command cloudcfg runs"));
    }
    for arg in argv {
        if let Some(c) = arg.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!("argument {arg:?} holds control character {c:?}"));
        }
    }
    for (k, v) in env {
        if k != "DEBIAN_FRONTEND" || v != "noninteractive" {
            return Err(format!("environment {k}={v:?}"));
        }
    }
    match program.as_str() {
        "apt-get" => {
            let options = argv.get(1..5).unwrap_or_default();
            if !options
                .iter()
                .map(String::as_str)
                .eq(APT_GET_OPTIONS.iter().copied())
            {
                return Err(format!("apt-get without its fixed options: {argv:?}"));
            }
            if env.get("DEBIAN_FRONTEND").is_none() || stdin.is_some() {
                return Err("apt-get runs noninteractive, without input".into());
            }
            let sub = argv.get(5).map(String::as_str);
            let args = argv.get(6..).unwrap_or_default();
            match sub {
                Some("update" | "upgrade") if args.is_empty() => {}
                Some("install") if !args.is_empty() => {
                    for arg in args {
                        package_word(arg)?;
                    }
                }
                _ => return Err(format!("apt-get {:?}", argv.get(5..))),
            }
            if ok_exit_codes.is_some() {
                return Err("apt-get's exit codes are 0 only".into());
            }
        }
        "debconf-set-selections" => {
            if argv.len() != 1 || stdin.is_none() || !env.is_empty() {
                return Err(format!("debconf-set-selections {argv:?}"));
            }
        }
        _ => {
            // puppet: `agent` then exec_args, the one place a user's words may be options.
            if argv.get(1).map(String::as_str) != Some("agent") {
                return Err(format!("puppet runs only `agent`: {argv:?}"));
            }
            if ok_exit_codes != Some(&[0, 2]) || stdin.is_some() || !env.is_empty() {
                return Err("puppet agent: exit codes 0 and 2, no input, no environment".into());
            }
        }
    }
    Ok(())
}

fn upper_hex_keyid(id: &str) -> Result<(), String> {
    match matches!(id.len(), 8 | 16 | 40)
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        true => Ok(()),
        false => Err(format!("keyid {id:?}")),
    }
}

pub fn check_fetch_key(
    keyid: Option<&str>,
    keyserver: Option<&str>,
    ppa: Option<&str>,
    url: Option<&str>,
) -> Result<(), String> {
    if let Some(url) = url {
        // A key URL always comes with the fingerprint it must have.
        upper_hex_keyid(keyid.unwrap_or_default())?;
        let ok = url.starts_with("https://")
            && !url.contains(|c: char| c.is_whitespace() || c.is_control())
            && keyserver.is_none()
            && ppa.is_none();
        return match ok {
            true => Ok(()),
            false => Err(format!("key url {url:?}")),
        };
    }
    match (keyid, keyserver, ppa) {
        (Some(id), Some(server), None) => {
            upper_hex_keyid(id)?;
            let scheme_ok = ["hkp://", "hkps://", "http://", "https://"]
                .iter()
                .any(|s| server.starts_with(s));
            if !scheme_ok
                || server.contains(|c: char| c.is_whitespace() || c.is_control())
                || !userinfos(server).is_empty()
            {
                return Err(format!("keyserver {server:?}"));
            }
            Ok(())
        }
        (None, None, Some(ppa)) => {
            let ok = ppa.split_once('/').is_some_and(|(owner, name)| {
                [owner, name].iter().all(|p| {
                    !p.is_empty()
                        && p.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c)
                        })
                })
            });
            if ok {
                Ok(())
            } else {
                Err(format!("ppa {ppa:?}"))
            }
        }
        other => Err(format!("keyid/keyserver/ppa {other:?}")),
    }
}

pub fn check_ini(section: &str, key: &str, value: &str) -> Result<(), String> {
    for (what, text) in [("section", section), ("key", key)] {
        if text.trim().is_empty() || text.contains(['[', ']', '=']) {
            return Err(format!("{what} {text:?}"));
        }
    }
    for (what, text) in [("section", section), ("key", key), ("value", value)] {
        // A tab is whitespace to puppet's INI reader, like a space; nothing else may pass.
        if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!("{what} {text:?} holds control character {c:?}"));
        }
    }
    Ok(())
}
