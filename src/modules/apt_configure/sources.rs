//! apt sources: `apt_sources` (the seed's list) and `apt.sources` (by name), one file per name
//! with the entries in order, each naming its key's keyring: a `.list` of one-line entries
//! (`signed-by=`), or a `.sources` of deb822 stanzas (`Signed-By:`) where the target keeps its
//! own sources so or the entry was given so ([`super::deb822`]).

use std::collections::BTreeSet;

use indexmap::IndexMap;

use super::conf::apt_file;
use super::deb822;
use super::key::{check_key_fields, check_key_url};
use super::lines::{SOURCE_VARIABLES, VARIABLE, substitute, with_signed_by};
use super::mirrors::{mirrors, writes_sources_list};
use super::types::{AptConfigure, KEYRINGS_DIR, SEED_SOURCES_STEM, SOURCES_DIR, Source};
use crate::action::{Distro, Facts, PlanError};
use crate::module::{Checker, Planner};
use crate::values::{self, Ppa};

/// A source wherever it was written: `apt_sources[i]` or `apt.sources.NAME`.
pub struct SourceEntry<'a> {
    pub path: String,
    /// The v3 name (the key in `apt.sources`).
    pub name: Option<&'a str>,
    /// 1-based position in its list.
    pub position: usize,
    pub source: &'a Source,
}

impl SourceEntry<'_> {
    pub fn ppa(&self) -> Option<Ppa> {
        let line = self.source.source.as_deref()?;
        Ppa::parse(line).and_then(Result::ok)
    }

    pub fn list_stem(&self) -> String {
        let name = self
            .source
            .filename
            .clone()
            .or_else(|| self.name.map(str::to_owned))
            .or_else(|| self.ppa().map(|p| p.stem()))
            .unwrap_or_else(|| SEED_SOURCES_STEM.to_owned());
        name.strip_suffix(".list")
            .map(str::to_owned)
            .unwrap_or(name)
    }

    /// `/etc/apt/sources.list.d/<name>.list`.
    pub fn list_file(&self) -> String {
        format!("{SOURCES_DIR}/{}.list", self.list_stem())
    }

    /// `/etc/apt/sources.list.d/<name>.sources`, where the entry is written as deb822.
    pub fn sources_file(&self) -> String {
        let stem = self.list_stem();
        let stem = stem.strip_suffix(".sources").unwrap_or(&stem);
        format!("{SOURCES_DIR}/{stem}.sources")
    }

    /// Whether the entry is written as a deb822 stanza: on a deb822 target, or when the user
    /// gave it as one.
    pub fn writes_deb822(&self, facts: &Facts) -> bool {
        deb822::target_uses_deb822(facts)
            || self.source.source.as_deref().is_some_and(deb822::is_deb822)
    }

    /// `/etc/apt/keyrings/<name>.asc` (contract.md, "Paths and modes").
    pub fn keyring(&self) -> String {
        let stem = match (self.name, self.ppa()) {
            // A name given as a file name (`my-repo.list`) names the keyring by its stem, as
            // cloud-init names its keyring files.
            (Some(name), _) => name.strip_suffix(".list").unwrap_or(name).to_owned(),
            (None, Some(ppa)) => ppa.stem(),
            (None, None) => format!("{}-{}", self.list_stem(), self.position),
        };
        format!("{KEYRINGS_DIR}/{stem}.asc")
    }

    pub fn has_key(&self) -> bool {
        self.source.key.is_some()
            || self.source.keyid.is_some()
            || self.source.key_url.is_some()
            || self.ppa().is_some()
    }
}

/// Legacy `apt_sources` first (the seed's), then `apt.sources`.
pub fn source_entries(config: &AptConfigure) -> Vec<SourceEntry<'_>> {
    let mut entries = Vec::new();
    for (i, source) in config.apt_sources.iter().flatten().enumerate() {
        entries.push(SourceEntry {
            path: format!("apt_sources[{i}]"),
            name: None,
            position: i + 1,
            source,
        });
    }
    if let Some(sources) = config.apt.as_ref().and_then(|a| a.sources.as_ref()) {
        for (i, (name, source)) in sources.iter().enumerate() {
            entries.push(SourceEntry {
                path: crate::decode::de::join_key("apt.sources", name),
                name: Some(name),
                position: i + 1,
                source,
            });
        }
    }
    entries
}

/// Whether the module adds any apt source (so package lists must be refreshed).
pub fn adds_sources(config: &AptConfigure) -> bool {
    source_entries(config)
        .iter()
        .any(|e| e.source.source.is_some())
        || writes_sources_list(config)
}

fn check_source(cx: &mut Checker<'_>, entry: &SourceEntry<'_>) {
    let path = &entry.path;
    let src = entry.source;
    if let Some(name) = entry.name {
        cx.check(
            path,
            values::apt_file_name(name).map_err(|e| format!("source name {e}")),
        );
    }
    if let Some(filename) = &src.filename {
        cx.check(&format!("{path}.filename"), values::apt_file_name(filename));
    }
    if entry.list_stem().is_empty() {
        // `filename: .list` would write /etc/apt/sources.list.d/.list.
        let at = if src.filename.is_some() {
            format!("{path}.filename")
        } else {
            path.clone()
        };
        cx.error(&at, "the file name before `.list` must not be empty");
    }
    check_key_fields(
        cx,
        path,
        src.keyid.as_ref(),
        src.key.as_ref(),
        src.keyserver.as_ref(),
    );
    if let Some(url) = &src.key_url {
        check_key_url(cx, path, url, src.keyid.is_some(), src.key.is_some());
    }
    match &src.source {
        None => {
            if src.key.is_some() || src.keyid.is_some() {
                cx.warning(
                    path,
                    format!(
                        "a key without a source is written to {} but trusted by no source; \
                         name it with signed-by in a source line",
                        entry.keyring()
                    ),
                );
            } else {
                cx.error(
                    path,
                    "needs `source` (a deb line or ppa:owner/name) or a key",
                );
            }
        }
        Some(line) => {
            let p = format!("{path}.source");
            match Ppa::parse(line) {
                Some(ppa) => {
                    cx.check(&p, ppa);
                }
                None => {
                    match deb822::is_deb822(line) {
                        true => cx.check(&p, deb822::parse(line).and_then(|s| deb822::check(&s))),
                        false => cx.check(&p, values::deb_line(line)),
                    };
                    if line.contains("$KEY_FILE") && src.key.is_none() && src.keyid.is_none() {
                        cx.error(&p, "`$KEY_FILE` needs `key` or `keyid` in the same entry");
                    }
                    for var in VARIABLE.captures_iter(line) {
                        let name = var.get(1).or(var.get(2)).map_or("", |m| m.as_str());
                        if !SOURCE_VARIABLES.contains(&name) {
                            cx.warning(
                                &p,
                                format!(
                                    "`${name}` is not one of {}: it is written as is",
                                    SOURCE_VARIABLES
                                        .iter()
                                        .map(|v| format!("${v}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The Ubuntu series a Debian release's PPA users want (same toolchain era).
fn ppa_series(facts: &Facts, release: &str) -> Option<&'static str> {
    if facts.distro() == Distro::Ubuntu {
        return None;
    }
    Some(match release {
        "buster" => "bionic",
        "bullseye" => "focal",
        "bookworm" => "jammy",
        "trixie" => "noble",
        _ => "noble",
    })
}

pub fn check(config: &AptConfigure, cx: &mut Checker<'_>) {
    let entries = source_entries(config);
    if entries.len() > cx.limits().max_sources {
        let path = if config.apt_sources.is_some() {
            "apt_sources"
        } else {
            "apt.sources"
        };
        let message = format!(
            "{} apt sources: at most {} are allowed",
            entries.len(),
            cx.limits().max_sources
        );
        cx.error(path, message);
    }
    for entry in &entries {
        check_source(cx, entry);
    }
    // Two entries must not end up in one keyring.
    let mut keyrings = BTreeSet::new();
    for entry in entries.iter().filter(|e| e.has_key()) {
        if !keyrings.insert(entry.keyring()) {
            cx.error(
                &entry.path,
                format!("its keyring {} is also another source's", entry.keyring()),
            );
        }
    }
}

/// One file per name, its entries in order (`append: false` restarts a file): a `.list` of
/// one-line entries, or, on a deb822 target and for entries given as deb822, a `.sources` of
/// stanzas. `release` is known whenever a line needs it (the caller asked for it).
pub fn plan(
    config: &AptConfigure,
    planner: &mut Planner<'_>,
    release: Option<&str>,
) -> Result<(), PlanError> {
    let facts = planner.facts;
    let entries = source_entries(config);
    let mirrors = mirrors(config, facts);
    let mut files: IndexMap<String, String> = IndexMap::new();
    for entry in &entries {
        let Some(line) = &entry.source.source else {
            continue;
        };
        let keyring = entry.keyring();
        let line = match entry.ppa() {
            Some(ppa) => {
                let release = release.unwrap_or_default();
                let series = match ppa_series(facts, release) {
                    Some(series) => {
                        planner.warn(
                            &format!("{}.source", entry.path),
                            format!(
                                "PPAs publish Ubuntu series: {release} is not one, so the line \
                                 uses {series}, the series of the same era; give a deb line to choose"
                            ),
                        );
                        series
                    }
                    None => release,
                };
                format!(
                    "deb [signed-by={keyring}] https://ppa.launchpadcontent.net/{}/{}/ubuntu {series} main",
                    ppa.owner, ppa.name
                )
            }
            None => {
                let key_file = entry.has_key().then_some(keyring.as_str());
                let mut vars: Vec<(&str, &str)> = vec![
                    ("MIRROR", &mirrors.primary),
                    ("PRIMARY", &mirrors.primary),
                    ("SECURITY", &mirrors.security),
                ];
                if let Some(release) = release {
                    vars.push(("RELEASE", release));
                }
                if let Some(key_file) = key_file {
                    vars.push(("KEY_FILE", key_file));
                }
                let rendered = substitute(line.trim(), &vars);
                match (key_file, deb822::is_deb822(line)) {
                    (Some(keyring), false) => with_signed_by(&rendered, keyring),
                    _ => rendered,
                }
            }
        };
        let deb822_out = entry.writes_deb822(facts);
        let (file, text) = match deb822_out {
            true => {
                let unsupported = |reason: String| PlanError::Unsupported {
                    path: format!("{}.source", entry.path),
                    reason,
                };
                let mut stanzas = match deb822::is_deb822(&line) {
                    true => deb822::parse(&line).map_err(unsupported)?,
                    false => vec![deb822::from_one_line(&line).map_err(unsupported)?],
                };
                if entry.has_key() {
                    for stanza in &mut stanzas {
                        if stanza.get("Signed-By").is_none() {
                            stanza.set("Signed-By", &keyring);
                        }
                    }
                }
                (entry.sources_file(), deb822::render(&stanzas))
            }
            false => (entry.list_file(), format!("{line}\n")),
        };
        let content = files.entry(file).or_default();
        if entry.source.append == Some(false) {
            content.clear();
        }
        // Stanzas are separated by a blank line.
        if deb822_out && !content.is_empty() {
            content.push('\n');
        }
        content.push_str(&text);
    }
    for (path, content) in files {
        apt_file(planner, path, content);
    }
    Ok(())
}
