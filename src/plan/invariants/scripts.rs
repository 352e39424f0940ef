//! The user's files and scripts: `write_user_file` modes and owners as names, and every script
//! run is one the plan itself wrote, 0700, in the instance's state directory.

use std::collections::BTreeMap;

use crate::action::{Action, ActionKind, IMAGE_SCRIPTS_DIR, INSTANCES_DIR, Text};

/// An image's script: `/var/lib/cloud/scripts/<per-boot|per-instance|per-once>/<name>`.
pub fn image_script(path: &str) -> bool {
    let Some(rest) = path
        .strip_prefix(IMAGE_SCRIPTS_DIR)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    matches!(rest.split('/').collect::<Vec<_>>().as_slice(),
        [dir, name] if ["per-boot", "per-instance", "per-once"].contains(dir) && !name.is_empty())
}

/// A script kept for the instance: `<INSTANCES_DIR>/<id>/bootcmd`, `.../scripts/<name>` or
/// `.../boothooks/<name>`.
pub fn instance_script(path: &str) -> bool {
    let Some(rest) = path
        .strip_prefix(INSTANCES_DIR)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(parts.as_slice(), [id, "bootcmd"] if !id.is_empty())
        || matches!(parts.as_slice(), [id, "scripts" | "boothooks", name] if !id.is_empty() && !name.is_empty())
}

pub fn check_user_file(
    path: &str,
    mode: &str,
    owner: &str,
    group: &str,
    content: &Option<Text>,
    content_base64: &Option<Text>,
) -> Result<(), String> {
    let octal = mode.len() == 4 && mode.bytes().all(|b| matches!(b, b'0'..=b'7'));
    if !octal {
        return Err(format!("{path}: mode {mode:?} is not 4 octal digits"));
    }
    for name in [owner, group] {
        crate::values::account_name(name).map_err(|e| format!("{path}: {e}"))?;
    }
    if content.is_some() == content_base64.is_some() {
        return Err(format!(
            "{path}: exactly one of content and content_base64 is given"
        ));
    }
    let private = u32::from_str_radix(mode, 8).unwrap_or(0) & 0o004 == 0;
    if private && !content.iter().chain(content_base64).all(Text::is_sensitive) {
        return Err(format!(
            "{path} is {mode}, not for others to read, but its content is not redacted"
        ));
    }
    Ok(())
}

pub fn check_script(
    before: &[Action],
    module: &str,
    path: &str,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    if image_script(path) {
        let dir = match module {
            "scripts_per_once" => "per-once",
            "scripts_per_boot" => "per-boot",
            "scripts_per_instance" => "per-instance",
            _ => return Err(format!("{module} may not run the image's script {path}")),
        };
        return match path.starts_with(&format!("{IMAGE_SCRIPTS_DIR}/{dir}/")) {
            true => Ok(()),
            false => Err(format!("{module} runs {path}, outside {dir}")),
        };
    }
    if !instance_script(path) {
        return Err(format!("{path} is not a script of the instance's state"));
    }
    let written = before.iter().any(|a| {
        matches!(&a.kind, ActionKind::WriteFile { path: p, mode, .. } if p == path && mode == "0700")
    });
    if !written {
        return Err(format!(
            "{module} runs {path}, which no earlier action wrote with mode 0700"
        ));
    }
    if let Some(key) = env
        .keys()
        .find(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    {
        return Err(format!("environment variable {key:?}"));
    }
    Ok(())
}

/// `shutdown -P|-r|-H now|+N [message]`, the message one line.
pub fn check_power_state(argv: &[String]) -> Result<(), String> {
    let [command, flag, when, rest @ ..] = argv else {
        return Err(format!("{argv:?} is too short"));
    };
    let when_ok = when == "now"
        || when
            .strip_prefix('+')
            .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    let message_ok = match rest {
        [] => true,
        [message] => crate::values::single_line(message).is_ok() && !message.starts_with('-'),
        _ => false,
    };
    if command != "shutdown"
        || !["-P", "-r", "-H"].contains(&flag.as_str())
        || !when_ok
        || !message_ok
    {
        return Err(format!("{argv:?} is not shutdown MODE WHEN [MESSAGE]"));
    }
    Ok(())
}
