//! debconf answers: the seed's `debconf_selections` (text, or cloud-init's mapping of named
//! texts) and `apt.debconf_selections`, applied with `debconf-set-selections`, then the
//! installed packages they name reconfigured.

use std::collections::BTreeSet;

use indexmap::IndexMap;

use super::types::{AptConfigure, DebconfSelections};
use crate::action::{ActionKind, Text};
use crate::decode::de::join_key;
use crate::module::{Checker, Planner};
use crate::values;

const DEBCONF_TYPES: &[&str] = &[
    "string",
    "boolean",
    "select",
    "multiselect",
    "note",
    "text",
    "password",
    "title",
    "error",
    "seen",
];

fn check_debconf_text(cx: &mut Checker<'_>, path: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 3 {
            cx.error(
                path,
                format!(
                    "line {} of the selections: expected `OWNER QUESTION TYPE [VALUE]`, found {line:?}",
                    n + 1
                ),
            );
        } else if let Err(e) = values::package_name(words[0].split(':').next().unwrap_or_default())
        {
            // The owner is the package dpkg-reconfigure gets (reconfigure_installed): a word
            // that is no package name could be read as one of its options.
            cx.error(
                path,
                format!("line {} of the selections: the owner {e}", n + 1),
            );
        } else if !DEBCONF_TYPES.contains(&words[2]) {
            cx.warning(
                path,
                format!("line {}: unknown debconf type `{}`", n + 1, words[2]),
            );
        }
    }
}

pub fn check(config: &AptConfigure, cx: &mut Checker<'_>) {
    if let Some(selections) = config
        .apt
        .as_ref()
        .and_then(|a| a.debconf_selections.as_ref())
    {
        for (name, text) in selections {
            check_debconf_text(cx, &join_key("apt.debconf_selections", name), text);
        }
    }
    match &config.debconf_selections {
        Some(DebconfSelections::Text(text)) => check_debconf_text(cx, "debconf_selections", text),
        Some(DebconfSelections::Named(named)) => {
            for (name, text) in named {
                check_debconf_text(cx, &join_key("debconf_selections", name), text);
            }
        }
        None => {}
    }
    if config.debconf_selections.is_some()
        && config
            .apt
            .as_ref()
            .is_some_and(|a| a.debconf_selections.is_some())
    {
        cx.warning(
            "debconf_selections",
            "given at the top level and under `apt:`: both are applied, the top-level ones first",
        );
    }
}

fn selections_text(config: &AptConfigure) -> Option<String> {
    fn named(map: &IndexMap<String, String>) -> String {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        keys.iter()
            .map(|k| map[*k].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
    let mut texts: Vec<String> = Vec::new();
    match &config.debconf_selections {
        Some(DebconfSelections::Text(text)) => texts.push(text.clone()),
        Some(DebconfSelections::Named(map)) => texts.push(named(map)),
        None => {}
    }
    if let Some(map) = config
        .apt
        .as_ref()
        .and_then(|a| a.debconf_selections.as_ref())
    {
        texts.push(named(map));
    }
    let mut text = texts
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if text.trim().is_empty() {
        return None;
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

/// The values of `password` questions: secrets of the selections. A value is the rest of its
/// line after the type word, as written: debconf-set-selections keeps inner spacing, so words
/// joined again with single spaces would miss `s3  cr3t` and leave it unredacted.
fn debconf_secrets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut rest = line.trim_start();
            let mut words = [""; 3];
            for word in &mut words {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                *word = &rest[..end];
                rest = rest[end..].trim_start();
            }
            (words[2] == "password").then(|| rest.trim_end().to_owned())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Packages named in selections, as cloud-init finds them (the first word, up to `:`).
fn selection_packages(text: &str) -> Vec<String> {
    let mut packages = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| *c != ':' && !c.is_whitespace())
            .collect();
        if !name.is_empty() {
            packages.insert(name);
        }
    }
    packages.into_iter().collect()
}

/// The answers, then `reconfigure_installed` for the packages they name.
pub fn plan(config: &AptConfigure, planner: &mut Planner<'_>) {
    if let Some(text) = selections_text(config) {
        let packages = selection_packages(&text);
        let secrets = debconf_secrets(&text);
        planner.command(
            vec!["debconf-set-selections".into()],
            &[],
            Some(Text { text, secrets }),
        );
        if !packages.is_empty() {
            planner.push(ActionKind::ReconfigureInstalled { packages });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_name_their_packages_and_passwords() {
        let text = "# c\ntzdata tzdata/Areas select Europe\nmysql-server mysql-server/root_password password s3 cr\n";
        assert_eq!(selection_packages(text), vec!["mysql-server", "tzdata"]);
        assert_eq!(debconf_secrets(text), vec!["s3 cr"]);
        let spaced = "mysql-server mysql-server/root_password password  s3  cr3t \n";
        assert_eq!(debconf_secrets(spaced), vec!["s3  cr3t"]);
    }
}
