//! The plan as a person reads it: a change summary, one line per action.

use crate::action::{Action, ActionKind, Plan, Text};

fn quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c));
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn lines(text: &str) -> String {
    let n = text.lines().count();
    if n == 1 {
        "1 line".into()
    } else {
        format!("{n} lines")
    }
}

/// One line describing an action. Contents are summarised, never printed, so secrets cannot
/// leak through this form.
pub fn describe(action: &Action) -> String {
    match &action.kind {
        ActionKind::WriteFile {
            path,
            mode,
            owner,
            group,
            content,
        } => {
            let sensitive = if content.is_sensitive() {
                ", holds secrets"
            } else {
                ""
            };
            format!(
                "write   {path} ({mode} {owner}:{group}, {}{sensitive})",
                lines(&content.text)
            )
        }
        ActionKind::WriteUserFile {
            path,
            mode,
            owner,
            group,
            append,
            content,
            content_base64,
        } => {
            let size = match (content, content_base64) {
                (Some(text), _) => lines(&text.text),
                (None, Some(encoded)) => format!("{} bytes of base64", encoded.text.len()),
                (None, None) => "empty".to_owned(),
            };
            let verb = if *append { "append  " } else { "write   " };
            let sensitive = if content.iter().chain(content_base64).any(Text::is_sensitive) {
                ", holds secrets"
            } else {
                ""
            };
            format!("{verb}{path} ({mode} {owner}:{group}, {size}{sensitive})")
        }
        ActionKind::EnsureGroup { name, members } if members.is_empty() => {
            format!("group   {name}")
        }
        ActionKind::EnsureGroup { name, members } => {
            format!("group   {name} (members {})", members.join(", "))
        }
        ActionKind::EnsureUser {
            name,
            groups,
            shell,
            hashed_passwd,
            lock_passwd,
            ..
        } => {
            let mut out = format!("user    {name}");
            if !groups.is_empty() {
                out.push_str(&format!(" groups {}", groups.join(",")));
            }
            if let Some(shell) = shell {
                out.push_str(&format!(" shell {shell}"));
            }
            if hashed_passwd.is_some() {
                out.push_str(", password hash set");
            }
            if *lock_passwd {
                out.push_str(", password locked");
            }
            out
        }
        ActionKind::WriteSudoers { path, content } => {
            format!(
                "sudoers {path} (0440, {}, checked with visudo)",
                lines(content)
            )
        }
        ActionKind::AuthorizedKeys {
            user,
            keys,
            options,
        } => {
            let n = keys.len();
            format!(
                "keys    {n} SSH key{} for {user}{}",
                if n == 1 { "" } else { "s" },
                if options.is_some() {
                    ", each behind the options (the disable_root stub)"
                } else {
                    ""
                }
            )
        }
        ActionKind::HostKeys {
            delete_existing,
            generate,
            given,
            comment,
            quiet,
        } => {
            let mut parts = Vec::new();
            if *delete_existing {
                parts.push("remove the image's".to_owned());
            }
            for file in given {
                let secret = if file.content.is_sensitive() {
                    ", secret"
                } else {
                    ""
                };
                parts.push(format!("write {} ({}{secret})", file.name, file.mode));
            }
            if !generate.is_empty() {
                parts.push(format!(
                    "make {} when missing ({comment}{})",
                    generate.join(", "),
                    if *quiet { ", quietly" } else { "" }
                ));
            }
            format!("hostkeys {}", parts.join("; "))
        }
        ActionKind::HostKeysToConsole {
            skip_fingerprints,
            skip_keys,
        } => {
            let mut out = String::from("console host key fingerprints and keys");
            for (what, list) in [("fingerprints", skip_fingerprints), ("keys", skip_keys)] {
                if !list.is_empty() {
                    out.push_str(&format!(", no {what} of {}", list.join(", ")));
                }
            }
            out
        }
        ActionKind::SetHostname {
            hostname,
            create_file,
        } => format!(
            "hostname {hostname} (/etc/hostname{}; the running system's unless an image root)",
            if *create_file { "" } else { " if it exists" }
        ),
        ActionKind::HostsEntry { address, names } => {
            format!("hosts   {address} {} in /etc/hosts", names.join(" "))
        }
        ActionKind::SetPasswords { passwords, expire } => {
            let set: Vec<String> = passwords
                .iter()
                .map(|p| match p.kind {
                    crate::action::PasswordKind::Text => format!("{} (text)", p.user),
                    crate::action::PasswordKind::Hash => format!("{} (hash)", p.user),
                    crate::action::PasswordKind::Random => {
                        format!("{} (random, shown on the console only)", p.user)
                    }
                })
                .collect();
            let mut out = format!("passwd  {}", set.join(", "));
            if !expire.is_empty() {
                out.push_str(&format!("; expire {}", expire.join(", ")));
            }
            out
        }
        ActionKind::ReloadService { unit } => {
            format!("reload  {unit} if it is running (--no-block)")
        }
        ActionKind::FinalMessage { template } => format!("message {}", quote(template)),
        ActionKind::PowerState { argv, condition } => {
            let when = if condition.is_some() {
                ", if its condition exits 0"
            } else {
                ""
            };
            format!(
                "power   {} (after the report{when})",
                argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
            )
        }
        ActionKind::RunScript { path, env } => {
            let mut out = String::from("script  ");
            for (k, v) in env {
                out.push_str(&format!("{k}={} ", quote(v)));
            }
            out.push_str(&quote(path));
            out
        }
        ActionKind::Command {
            argv,
            env,
            stdin,
            ok_exit_codes,
        } => {
            let mut out = String::from("run     ");
            for (k, v) in env {
                out.push_str(&format!("{k}={} ", quote(v)));
            }
            out.push_str(&argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "));
            if let Some(stdin) = stdin {
                out.push_str(&format!(" < ({} of input)", lines(&stdin.text)));
            }
            if let Some(codes) = ok_exit_codes {
                let codes: Vec<String> = codes.iter().map(i32::to_string).collect();
                out.push_str(&format!(" (exit {} is success)", codes.join(" or ")));
            }
            out
        }
        ActionKind::FetchKey {
            keyid,
            keyserver,
            ppa,
            url,
            dest,
            http_proxy,
            https_proxy,
        } => {
            let via = match (http_proxy, https_proxy) {
                (None, None) => String::new(),
                _ => " through apt's proxy".to_owned(),
            };
            let line = match (keyid, ppa) {
                (Some(keyid), _) if url.is_some() => format!(
                    "fetch   key {keyid} from {} -> {dest} (fingerprint checked)",
                    url.as_deref().unwrap_or_default()
                ),
                (Some(keyid), _) => format!(
                    "fetch   key {keyid} from {} -> {dest} (fingerprint checked)",
                    keyserver.as_deref().unwrap_or("the keyserver")
                ),
                (None, Some(ppa)) => {
                    format!(
                        "fetch   signing key of ppa:{ppa} via Launchpad -> {dest} (fingerprint checked)"
                    )
                }
                (None, None) => format!("fetch   key -> {dest}"),
            };
            format!("{line}{via}")
        }
        ActionKind::EditIni {
            path,
            section,
            key,
            value,
        } => format!("set     [{section}] {key} = {value} in {path}"),
        ActionKind::ReconfigureInstalled { packages } => {
            format!("reconfigure the installed ones of: {}", packages.join(" "))
        }
        ActionKind::EnableService { unit } => format!("enable  {unit}"),
        ActionKind::StartService { unit } => format!("start   {unit} (--no-block)"),
    }
}

fn warning_line(path: &str, message: &str) -> String {
    if path.is_empty() || message.starts_with(&format!("{path}:")) {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// The plan JSON of contract.md: facts, actions, and the config's warnings then the plan's.
pub fn json(plan: &Plan, config_warnings: &[(String, String)]) -> serde_json::Value {
    let warnings: Vec<serde_json::Value> = config_warnings
        .iter()
        .map(|(path, message)| (path.as_str(), message.as_str()))
        .chain(
            plan.warnings
                .iter()
                .map(|w| (w.path.as_str(), w.message.as_str())),
        )
        .map(|(path, message)| serde_json::json!({"path": path, "message": message}))
        .collect();
    serde_json::json!({
        "facts": {
            "instance_id": plan.facts.instance_id,
            "hostname": plan.facts.hostname,
            "fqdn": plan.facts.fqdn,
            "release": plan.facts.release,
        },
        "modules": plan.modules,
        "actions": plan.actions,
        "warnings": warnings,
    })
}

/// The whole plan as text. Contents are summarised, so the unredacted plan is safe to pass.
pub fn text(plan: &Plan, config_warnings: &[(String, String)]) -> String {
    let mut out = String::new();
    let facts = &plan.facts;
    let mut known: Vec<String> = Vec::new();
    for (name, value) in [
        ("instance_id", &facts.instance_id),
        ("hostname", &facts.hostname),
        ("fqdn", &facts.fqdn),
        ("release", &facts.release),
    ] {
        if let Some(v) = value {
            known.push(format!("{name}={v}"));
        }
    }
    out.push_str(&format!("facts: {}\n", known.join(" ")));
    let mut module = "";
    for action in &plan.actions {
        if action.module != module {
            module = action.module;
            let frequency = plan
                .modules
                .iter()
                .find(|m| m.name == module)
                .map_or("", |m| m.frequency.name());
            out.push_str(&format!(
                "{module} ({} stage, {frequency}):\n",
                action.stage.name()
            ));
        }
        out.push_str(&format!("  {}\n", describe(action)));
    }
    let all = config_warnings
        .iter()
        .map(|(p, m)| (p.as_str(), m.as_str()))
        .chain(
            plan.warnings
                .iter()
                .map(|w| (w.path.as_str(), w.message.as_str())),
        );
    for (path, message) in all {
        out.push_str(&format!("warning: {}\n", warning_line(path, message)));
    }
    let n = plan.actions.len();
    out.push_str(&format!(
        "{n} action{} in {} module{}\n",
        if n == 1 { "" } else { "s" },
        plan.modules_with_actions().len(),
        if plan.modules_with_actions().len() == 1 {
            ""
        } else {
            "s"
        }
    ));
    out
}
