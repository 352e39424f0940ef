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

use std::collections::BTreeMap;
use std::fmt;

use crate::action::{Action, ActionKind, Facts, Plan, Text};
use crate::config::registry;
use crate::config::{CloudConfig, Loaded};
use crate::diag::Report;
use crate::module::Module;
use crate::modules::apt_configure::AptConfigure;
use crate::modules::apt_pipelining::{AptPipelining, PIPELINING_FILE};
use crate::modules::puppet::Puppet;
use crate::system::SystemConfig;

/// A broken property: which rule, which action (index into `plan.actions`), and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub action: Option<usize>,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Some(i) => write!(f, "{} (action {i}): {}", self.rule, self.detail),
            None => write!(f, "{}: {}", self.rule, self.detail),
        }
    }
}

impl std::error::Error for Violation {}

fn violation(rule: &'static str, action: Option<usize>, detail: impl Into<String>) -> Violation {
    Violation {
        rule,
        action,
        detail: detail.into(),
    }
}

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

/// Where user-given puppet paths may lie (contract.md, "Paths and modes").
pub const PUPPET_ROOTS: &[&str] = &[
    "/etc/puppet",
    "/etc/puppetlabs",
    "/var/lib/puppet",
    "/opt/puppetlabs",
];

const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d/";
const KEYRINGS_DIR: &str = "/etc/apt/keyrings/";
const APT_CONF_DIR: &str = "/etc/apt/apt.conf.d/";
const PROXY_FILE: &str = "/etc/apt/apt.conf.d/90cloud-init-aptproxy";

/// Linux's NAME_MAX and PATH_MAX - 1: longer paths cannot be written at all.
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4095;

/// Checks every property of one plan. Determinism needs two plans: see [`plan_and_check`].
pub fn check(plan: &Plan) -> Result<(), Violation> {
    check_module_order(plan)?;
    let mut writers: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (i, action) in plan.actions.iter().enumerate() {
        let at = Some(i);
        for path in action.written_paths() {
            allowed_path(action.module, path).map_err(|e| violation("path", at, e))?;
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
                dest: _,
            } => check_fetch_key(keyid.as_deref(), keyserver.as_deref(), ppa.as_deref())
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

// ---------------------------------------------------------------------------------------------
// Paths

fn has_control(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// Absolute, normalised, writable at all: no `.`, `..` or empty components, no control
/// characters, within NAME_MAX and PATH_MAX.
fn normalised(path: &str) -> Result<(), String> {
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
fn file_in<'p>(path: &'p str, dir: &str, suffix: &str) -> Option<&'p str> {
    let name = path.strip_prefix(dir)?.strip_suffix(suffix)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// One of contract.md's paths, and written by the module that owns it.
fn allowed_path(module: &str, path: &str) -> Result<(), String> {
    normalised(path)?;
    let apt = path == SOURCES_LIST
        || file_in(path, SOURCES_DIR, ".list").is_some()
        || file_in(path, KEYRINGS_DIR, ".asc").is_some()
        || file_in(path, APT_CONF_DIR, "").is_some();
    let puppet = PUPPET_ROOTS.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    });
    let allowed = (module == AptConfigure::NAME && apt)
        || (module == Puppet::NAME && puppet)
        || (module == AptPipelining::NAME && path == PIPELINING_FILE);
    match allowed {
        true => Ok(()),
        false => Err(format!(
            "{module} may not write {path:?} (contract.md, \"Paths and modes\")"
        )),
    }
}

/// One action per path, except that puppet.conf takes one `edit_ini` per key.
fn check_writes_once<'p>(
    writers: &mut BTreeMap<&'p str, (usize, &'p str)>,
    i: usize,
    action: &'p Action,
) -> Result<(), Violation> {
    let kind = match &action.kind {
        ActionKind::WriteFile { .. } => "write_file",
        ActionKind::FetchKey { .. } => "fetch_key",
        ActionKind::EditIni { .. } => "edit_ini",
        _ => return Ok(()),
    };
    for path in action.written_paths() {
        if let Some((first, first_kind)) = writers.insert(path, (i, kind))
            && !(kind == "edit_ini" && first_kind == "edit_ini")
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

// ---------------------------------------------------------------------------------------------
// Files

fn check_mode(module: &str, path: &str, mode: &str, content: &Text) -> Result<(), String> {
    if mode.len() != 4 || !mode.starts_with('0') || !mode.bytes().all(|b| matches!(b, b'0'..=b'7'))
    {
        return Err(format!("{path}: mode {mode:?} is not 4 octal digits"));
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

/// `.list` files: `deb`/`deb-src` lines only, each a well-formed one-line entry.
fn check_content(path: &str, content: &Text) -> Result<(), String> {
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

/// `user[:password]` of every URL in a text, found independently of the planner: the
/// authority runs from `://` to the first whitespace, `"`, `/`, `?` or `#`, and the userinfo
/// ends at its last `@` (as URL parsers read it).
fn userinfos(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '/' | '?' | '#'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        if let Some(last) = authority.rfind('@')
            && last > 0
        {
            found.push(&authority[..last]);
        }
        rest = after;
    }
    found
}

/// A file of apt's holding URL credentials is 0600, and in its redacted form every userinfo
/// is redaction markers and `:` only (nothing of a user or password shows).
fn check_credentials(path: &str, mode: &str, content: &Text) -> Result<(), String> {
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

/// Every `password` answer given to debconf-set-selections is redacted: the value is the rest
/// of the line after the type word, however it is spaced (debconf-set-selections reads it so).
fn check_debconf_secrets(stdin: &Text) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// Commands

fn package_word(word: &str) -> Result<(), String> {
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

fn check_command(
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

fn check_fetch_key(
    keyid: Option<&str>,
    keyserver: Option<&str>,
    ppa: Option<&str>,
) -> Result<(), String> {
    match (keyid, keyserver, ppa) {
        (Some(id), Some(server), None) => {
            if !matches!(id.len(), 8 | 16 | 40)
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            {
                return Err(format!("keyid {id:?}"));
            }
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

fn check_ini(section: &str, key: &str, value: &str) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// Order

fn check_module_order(plan: &Plan) -> Result<(), Violation> {
    let order: Vec<&registry::Registered> = registry::run_order();
    let mut last = 0;
    for (i, action) in plan.actions.iter().enumerate() {
        let Some(rank) = order.iter().position(|m| m.name == action.module) else {
            return Err(violation("module", Some(i), action.module));
        };
        if order[rank].stage != action.stage {
            return Err(violation(
                "stage",
                Some(i),
                format!(
                    "{} is a {} stage module",
                    action.module,
                    order[rank].stage.name()
                ),
            ));
        }
        if rank < last {
            return Err(violation(
                "module order",
                Some(i),
                format!("{} after {}", action.module, order[last].name),
            ));
        }
        last = rank;
    }
    Ok(())
}

fn apt_sub(action: &Action) -> Option<&str> {
    match &action.kind {
        ActionKind::Command { argv, .. } if argv.first().is_some_and(|a| a == "apt-get") => {
            argv.get(5).map(String::as_str)
        }
        _ => None,
    }
}

/// contract.md, "Order and ownership": keys before sources; one update, before upgrade and
/// install, present whenever sources are added or packages installed; puppet's files before
/// its install; enable, then the agent's run, then the start.
fn check_order(plan: &Plan) -> Result<(), Violation> {
    let actions = &plan.actions;
    let position = |pred: &dyn Fn(&Action) -> bool| actions.iter().position(pred);
    let last_position = |pred: &dyn Fn(&Action) -> bool| actions.iter().rposition(pred);
    let is_key = |a: &Action| {
        a.written_paths()
            .iter()
            .any(|p| p.starts_with(KEYRINGS_DIR))
    };
    let is_source = |a: &Action| {
        a.written_paths()
            .iter()
            .any(|p| p.starts_with(SOURCES_DIR) || *p == SOURCES_LIST)
    };
    if let (Some(k), Some(s)) = (last_position(&is_key), position(&is_source))
        && k > s
    {
        return Err(violation(
            "order",
            Some(k),
            "a key is written after a source",
        ));
    }
    let updates: Vec<usize> = (0..actions.len())
        .filter(|i| apt_sub(&actions[*i]) == Some("update"))
        .collect();
    if updates.len() > 1 {
        return Err(violation(
            "order",
            Some(updates[1]),
            "a second apt-get update",
        ));
    }
    let needs_update = actions
        .iter()
        .any(|a| matches!(apt_sub(a), Some("upgrade" | "install")) || is_source(a));
    match (updates.first(), needs_update) {
        (None, true) => {
            return Err(violation(
                "order",
                None,
                "sources are added or packages installed without apt-get update",
            ));
        }
        (Some(&u), _) => {
            if let Some(i) =
                position(&|a: &Action| matches!(apt_sub(a), Some("upgrade" | "install")))
                && i < u
            {
                return Err(violation("order", Some(i), "before apt-get update"));
            }
            if let Some(i) = last_position(&is_source)
                && i > u
            {
                return Err(violation("order", Some(i), "a source after apt-get update"));
            }
        }
        (None, false) => {}
    }
    let puppet = Puppet::NAME;
    let puppet_install = position(&|a: &Action| a.module == puppet && apt_sub(a).is_some());
    if let Some(install) = puppet_install
        && let Some(i) =
            last_position(&|a: &Action| a.module == puppet && !a.written_paths().is_empty())
        && i > install
    {
        return Err(violation(
            "order",
            Some(i),
            "a puppet file after the agent's install",
        ));
    }
    let enable = position(&|a: &Action| matches!(a.kind, ActionKind::EnableService { .. }));
    let start = position(&|a: &Action| matches!(a.kind, ActionKind::StartService { .. }));
    let agent = position(
        &|a: &Action| matches!(&a.kind, ActionKind::Command { argv, .. } if argv.get(1).is_some_and(|x| x == "agent")),
    );
    match (enable, start) {
        (Some(e), Some(s)) if e < s => {}
        (None, None) => {}
        _ => {
            return Err(violation(
                "order",
                None,
                "enable and start go together, enable first",
            ));
        }
    }
    if let (Some(a), Some(s)) = (agent, start)
        && a > s
    {
        return Err(violation(
            "order",
            Some(a),
            "the agent's run after the service start",
        ));
    }
    if let (Some(a), Some(i)) = (agent, puppet_install)
        && a < i
    {
        return Err(violation(
            "order",
            Some(a),
            "the agent's run before its install",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// The text without its `<redacted sha256:…>` markers (12 hex digits each).
fn strip_markers(text: &str) -> String {
    replace_markers(text, "")
}

/// The text with each `<redacted sha256:…>` marker replaced by `with`.
fn replace_markers(text: &str, with: &str) -> String {
    const OPEN: &str = "<redacted sha256:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let hex_len = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len == 12 && after[12..].starts_with('>') {
            out.push_str(with);
            rest = &after[13..];
        } else {
            out.push_str(OPEN);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The redacted plan shows none of a text's secrets, and no URL credentials anywhere.
fn check_redaction(plan: &Plan) -> Result<(), Violation> {
    let redacted = plan.redacted();
    for (i, (action, shown)) in plan.actions.iter().zip(&redacted.actions).enumerate() {
        let texts: Vec<(&Text, &Text)> = match (&action.kind, &shown.kind) {
            (
                ActionKind::WriteFile { content: a, .. },
                ActionKind::WriteFile { content: b, .. },
            ) => vec![(a, b)],
            (
                ActionKind::Command { stdin: Some(a), .. },
                ActionKind::Command { stdin: Some(b), .. },
            ) => vec![(a, b)],
            _ => Vec::new(),
        };
        for (original, shown) in texts {
            if shown.is_sensitive() {
                return Err(violation(
                    "redaction",
                    Some(i),
                    "redacted text keeps its secrets list",
                ));
            }
            let visible = strip_markers(&shown.text);
            // Markers are `<…>`: a `<` more than the original had is a garbled marker.
            if visible.matches('<').count() > original.text.matches('<').count() {
                return Err(violation(
                    "redaction",
                    Some(i),
                    "a redaction marker was garbled by a later replacement",
                ));
            }
            // All secrets in one scan: thousands of them must not cost a scan each.
            let secrets: Vec<&str> = original
                .secrets
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            let survivor = if secrets.is_empty() {
                None
            } else {
                match crate::redact::secret_finder(&secrets) {
                    Ok(automaton) => automaton.find(&visible).map(|m| m.len()),
                    Err(e) => return Err(violation("redaction", Some(i), e.to_string())),
                }
            };
            if let Some(len) = survivor {
                return Err(violation(
                    "redaction",
                    Some(i),
                    format!("a secret of {len} bytes survives redaction"),
                ));
            }
        }
        // Fields that are not texts are never redacted: they must hold no credentials.
        let public = match &shown.kind {
            ActionKind::WriteFile { path, .. } | ActionKind::EditIni { path, .. } => {
                vec![path.as_str()]
            }
            ActionKind::Command { argv, .. } => argv.iter().map(String::as_str).collect(),
            ActionKind::FetchKey {
                keyserver, dest, ..
            } => keyserver
                .iter()
                .map(String::as_str)
                .chain([dest.as_str()])
                .collect(),
            _ => Vec::new(),
        };
        if let Some(field) = public.iter().find(|f| !userinfos(f).is_empty()) {
            return Err(violation(
                "redaction",
                Some(i),
                format!(
                    "URL credentials in a field that is never redacted ({} chars)",
                    field.len()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
