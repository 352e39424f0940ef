//! The distribution's own sources from `apt.primary`, `apt.security`, `apt.sources_list` and
//! the legacy mirror keys, written only when one of them is given and `preserve_sources_list`
//! is not set: /etc/apt/sources.list on a one-line target, `debian.sources`/`ubuntu.sources`
//! replaced in place (and sources.list left a comment) on a deb822 one.

use std::sync::LazyLock;

use regex::Regex;

use super::conf::apt_file;
use super::deb822::{self, Stanza};
use super::key::check_key_fields;
use super::lines::{line_uri, substitute, with_signed_by};
use super::types::{AptConfigure, KEYRINGS_DIR, Mirror, SOURCES_LIST};
use crate::action::{Distro, Facts};
use crate::action::PlanError;
use crate::module::{Checker, Planner};
use crate::values;

pub fn preserve_sources_list(config: &AptConfigure) -> bool {
    config
        .apt
        .as_ref()
        .and_then(|a| a.preserve_sources_list)
        .or(config.apt_preserve_sources_list)
        .unwrap_or(false)
}

pub fn custom_sources_list(config: &AptConfigure) -> Option<&str> {
    config
        .apt
        .as_ref()
        .and_then(|a| a.sources_list.as_deref())
        .or(config.apt_custom_sources_list.as_deref())
}

pub fn has_mirror_config(config: &AptConfigure) -> bool {
    let apt = config.apt.as_ref();
    apt.is_some_and(|a| a.primary.is_some() || a.security.is_some())
        || config.apt_mirror.is_some()
        || config.apt_mirror_search.is_some()
}

/// Whether this config writes /etc/apt/sources.list (contract.md: only when asked to).
pub fn writes_sources_list(config: &AptConfigure) -> bool {
    !preserve_sources_list(config)
        && (has_mirror_config(config) || custom_sources_list(config).is_some())
}

pub struct Mirrors {
    pub primary: String,
    pub security: String,
}

fn arch_mirror<'m>(mirrors: Option<&'m Vec<Mirror>>, arch: &str) -> Option<&'m Mirror> {
    let mirrors = mirrors?;
    mirrors
        .iter()
        .find(|m| m.arches.iter().any(|a| a == arch))
        .or_else(|| {
            mirrors
                .iter()
                .find(|m| m.arches.iter().any(|a| a == "default"))
        })
}

fn mirror_uri(mirror: &Mirror) -> Option<String> {
    mirror
        .uri
        .clone()
        .or_else(|| mirror.search.as_ref().and_then(|s| s.first().cloned()))
}

/// `$MIRROR`/`$PRIMARY` and `$SECURITY`: configured, else the distribution's defaults
/// (cloud-init's failsafe mirrors).
pub fn mirrors(config: &AptConfigure, facts: &Facts) -> Mirrors {
    let apt = config.apt.as_ref();
    let primary = arch_mirror(apt.and_then(|a| a.primary.as_ref()), &facts.arch)
        .and_then(mirror_uri)
        .or_else(|| config.apt_mirror.clone())
        .or_else(|| {
            config
                .apt_mirror_search
                .as_ref()
                .and_then(|s| s.first().cloned())
        });
    let security =
        arch_mirror(apt.and_then(|a| a.security.as_ref()), &facts.arch).and_then(mirror_uri);
    let ports = !matches!(facts.arch.as_str(), "amd64" | "i386");
    let (default_primary, default_security) = match facts.distro() {
        // Kept as the image has it: its mirror lists pick a mirror near the instance.
        Distro::Debian if facts.debian_mirror_lists && deb822::target_uses_deb822(facts) => (
            "mirror+file:///etc/apt/mirrors/debian.list",
            "mirror+file:///etc/apt/mirrors/debian-security.list",
        ),
        Distro::Debian => (
            "https://deb.debian.org/debian",
            "https://deb.debian.org/debian-security",
        ),
        Distro::Ubuntu if ports => (
            "http://ports.ubuntu.com/ubuntu-ports",
            "http://ports.ubuntu.com/ubuntu-ports",
        ),
        Distro::Ubuntu => (
            "http://archive.ubuntu.com/ubuntu",
            "http://security.ubuntu.com/ubuntu",
        ),
    };
    match primary {
        Some(p) => Mirrors {
            security: security.unwrap_or_else(|| p.clone()),
            primary: p,
        },
        None => Mirrors {
            primary: default_primary.to_owned(),
            security: security.unwrap_or_else(|| default_security.to_owned()),
        },
    }
}

fn default_sources_list(distro: Distro) -> &'static str {
    match distro {
        Distro::Debian => {
            "# Written by cloudcfg on first boot from apt.primary/apt.security.\n\
# To keep your own sources.list, set apt.preserve_sources_list: true.\n\
deb $MIRROR $RELEASE main\n\
deb-src $MIRROR $RELEASE main\n\
deb $SECURITY $SECURITY_SUITE main\n\
deb-src $SECURITY $SECURITY_SUITE main\n\
deb $MIRROR $RELEASE-updates main\n\
deb-src $MIRROR $RELEASE-updates main\n\
deb $MIRROR $RELEASE-backports main\n\
deb-src $MIRROR $RELEASE-backports main\n"
        }
        Distro::Ubuntu => {
            "# Written by cloudcfg on first boot from apt.primary/apt.security.\n\
# To keep your own sources.list, set apt.preserve_sources_list: true.\n\
deb $MIRROR $RELEASE main restricted\n\
deb $MIRROR $RELEASE-updates main restricted\n\
deb $MIRROR $RELEASE universe\n\
deb $MIRROR $RELEASE-updates universe\n\
deb $MIRROR $RELEASE multiverse\n\
deb $MIRROR $RELEASE-updates multiverse\n\
deb $MIRROR $RELEASE-backports main restricted universe multiverse\n\
deb $SECURITY $RELEASE-security main restricted\n\
deb $SECURITY $RELEASE-security universe\n\
deb $SECURITY $RELEASE-security multiverse\n"
        }
    }
}

fn default_sources_deb822(distro: Distro) -> &'static str {
    match distro {
        Distro::Debian => {
            "Types: deb deb-src\n\
URIs: $MIRROR\n\
Suites: $RELEASE $RELEASE-updates $RELEASE-backports\n\
Components: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
\n\
Types: deb deb-src\n\
URIs: $SECURITY\n\
Suites: $SECURITY_SUITE\n\
Components: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        }
        Distro::Ubuntu => {
            "Types: deb\n\
URIs: $MIRROR\n\
Suites: $RELEASE $RELEASE-updates $RELEASE-backports\n\
Components: main restricted universe multiverse\n\
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\
\n\
Types: deb\n\
URIs: $SECURITY\n\
Suites: $RELEASE-security\n\
Components: main restricted universe multiverse\n\
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"
        }
    }
}

/// What a deb822 target's /etc/apt/sources.list keeps once its sources moved to the
/// distribution's `.sources` file: nothing apt reads, so no archive is there twice.
fn sources_list_stub(sources_file: &str) -> String {
    format!(
        "# Written by cloudcfg on first boot: this system's apt sources are in {sources_file}\n\
         # (deb822, see sources.list(5)). To keep your own sources.list, set\n\
         # apt.preserve_sources_list: true.\n"
    )
}

static JINJA_VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}").expect("static regex"));

/// Comments out the lines of `text` whose suite is one of `disabled` (cloud-init's
/// disable_suites, same marker).
fn disable_suites(text: &str, disabled: &[String], release: &str) -> String {
    let suites = disabled_suite_names(disabled, release);
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut suite_at = 2;
        if words.get(1).is_some_and(|w| w.starts_with('[')) {
            for w in &words[1..] {
                suite_at += 1;
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let disabled = !line.starts_with('#')
            && words.len() > 1
            && words
                .get(suite_at)
                .is_some_and(|s| suites.iter().any(|d| d == s));
        if disabled {
            out.push_str("# suite disabled by cloud-init: ");
        }
        out.push_str(line);
    }
    out
}

/// cloud-init's names in `disable_suites` (`updates`, `$RELEASE-backports`) as suites.
fn disabled_suite_names(disabled: &[String], release: &str) -> Vec<String> {
    disabled
        .iter()
        .map(|s| match s.as_str() {
            "updates" => format!("{release}-updates"),
            "backports" => format!("{release}-backports"),
            "security" => format!("{release}-security"),
            "proposed" => format!("{release}-proposed"),
            "release" => release.to_owned(),
            other => substitute(other, &[("RELEASE", release)]),
        })
        .collect()
}

/// `/etc/apt/keyrings/primary.asc` and `security.asc`, the keyrings of the mirrors' own keys
/// (cloud-init names its key files for them the same way).
pub fn mirror_keyring(name: &str) -> String {
    format!("{KEYRINGS_DIR}/{name}.asc")
}

/// The `primary` and `security` mirror entries in effect for the target's architecture.
pub fn selected_mirrors<'c>(
    config: &'c AptConfigure,
    facts: &Facts,
) -> Vec<(&'static str, &'c Mirror)> {
    let apt = config.apt.as_ref();
    [
        (
            "primary",
            arch_mirror(apt.and_then(|a| a.primary.as_ref()), &facts.arch),
        ),
        (
            "security",
            arch_mirror(apt.and_then(|a| a.security.as_ref()), &facts.arch),
        ),
    ]
    .into_iter()
    .filter_map(|(name, m)| m.map(|m| (name, m)))
    .collect()
}

/// Names each keyed mirror's keyring in the sources.list lines that use that mirror.
fn sign_mirror_lines(text: &str, keyed: &[(String, String)]) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let is_entry = line.starts_with("deb ") || line.starts_with("deb-src ");
            let keyring = is_entry
                .then(|| line_uri(line))
                .flatten()
                .and_then(|uri| {
                    keyed.iter().find(|(mirror, _)| {
                        mirror.trim_end_matches('/') == uri.trim_end_matches('/')
                    })
                })
                .map(|(_, keyring)| keyring);
            match keyring {
                Some(keyring) => {
                    let newline = if line.ends_with('\n') { "\n" } else { "" };
                    format!(
                        "{}{newline}",
                        with_signed_by(line.trim_end_matches('\n'), keyring)
                    )
                }
                None => line.to_owned(),
            }
        })
        .collect()
}

/// The template with its variables substituted: the user's `sources_list`, else the
/// distribution's default in the target's format.
fn rendered_template(config: &AptConfigure, facts: &Facts, release: &str) -> String {
    let mirrors = mirrors(config, facts);
    let security_suite = if matches!(release, "buster" | "stretch") {
        format!("{release}/updates")
    } else {
        format!("{release}-security")
    };
    let template = custom_sources_list(config).unwrap_or_else(|| {
        match deb822::target_uses_deb822(facts) {
            true => default_sources_deb822(facts.distro()),
            false => default_sources_list(facts.distro()),
        }
    });
    let template = template
        .strip_prefix("## template:jinja\n")
        .unwrap_or(template);
    let vars: [(&str, &str); 9] = [
        ("RELEASE", release),
        ("codename", release),
        ("MIRROR", &mirrors.primary),
        ("mirror", &mirrors.primary),
        ("PRIMARY", &mirrors.primary),
        ("primary", &mirrors.primary),
        ("SECURITY", &mirrors.security),
        ("security", &mirrors.security),
        ("SECURITY_SUITE", &security_suite),
    ];
    let rendered = JINJA_VAR
        .replace_all(template, |caps: &regex::Captures<'_>| {
            vars.iter()
                .find(|(k, _)| *k == &caps[1])
                .map_or_else(|| caps[0].to_owned(), |(_, v)| (*v).to_owned())
        })
        .into_owned();
    substitute(&rendered, &vars)
}

/// The keyed mirrors' URIs and their keyrings.
fn keyed_mirrors(config: &AptConfigure, facts: &Facts) -> Vec<(String, String)> {
    let mirrors = mirrors(config, facts);
    selected_mirrors(config, facts)
        .into_iter()
        .filter(|(_, m)| m.key.is_some() || m.keyid.is_some())
        .map(|(name, _)| {
            let uri = if name == "primary" {
                &mirrors.primary
            } else {
                &mirrors.security
            };
            (uri.clone(), mirror_keyring(name))
        })
        .collect()
}

fn disabled(config: &AptConfigure) -> Vec<String> {
    config
        .apt
        .as_ref()
        .and_then(|a| a.disable_suites.clone())
        .unwrap_or_default()
}

fn sources_list_text(config: &AptConfigure, facts: &Facts, release: &str) -> String {
    let rendered = rendered_template(config, facts, release);
    let rendered = sign_mirror_lines(&rendered, &keyed_mirrors(config, facts));
    disable_suites(&rendered, &disabled(config), release)
}

/// The stanzas of the distribution's `.sources` file: the template's, or its one-line
/// entries converted (comments and entries already commented out are left behind).
fn distro_stanzas(
    config: &AptConfigure,
    facts: &Facts,
    release: &str,
) -> Result<Vec<Stanza>, String> {
    let rendered = rendered_template(config, facts, release);
    let mut stanzas = match deb822::is_deb822(&rendered) {
        true => deb822::parse(&rendered)?,
        false => rendered
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("deb ") || l.starts_with("deb-src "))
            .map(deb822::from_one_line)
            .collect::<Result<_, _>>()?,
    };
    deb822::check(&stanzas)?;
    let keyed = keyed_mirrors(config, facts);
    for stanza in &mut stanzas {
        let keyring = stanza.words("URIs").iter().find_map(|uri| {
            keyed
                .iter()
                .find(|(m, _)| m.trim_end_matches('/') == uri.trim_end_matches('/'))
                .map(|(_, k)| k.clone())
        });
        if let Some(keyring) = keyring {
            stanza.set("Signed-By", &keyring);
        }
    }
    deb822::disable_suites(
        &mut stanzas,
        &disabled_suite_names(&disabled(config), release),
    );
    Ok(stanzas)
}

fn check_mirrors(cx: &mut Checker<'_>, path: &str, mirrors: &[Mirror]) {
    for (i, mirror) in mirrors.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if mirror.arches.is_empty() {
            cx.error(&p, "needs `arches` (e.g. [default])");
        }
        if let Some(uri) = &mirror.uri {
            cx.check(&format!("{p}.uri"), values::url(uri));
        }
        if let Some(search) = &mirror.search {
            for (j, uri) in search.iter().enumerate() {
                cx.check(&format!("{p}.search[{j}]"), values::url(uri));
            }
            if mirror.uri.is_none() {
                cx.warning(
                    &format!("{p}.search"),
                    "cloudcfg does not probe mirrors: the first one is used",
                );
            }
        }
        if mirror.search_dns == Some(true) {
            cx.warning(
                &format!("{p}.search_dns"),
                "not supported by cloudcfg (it needs DNS probing): ignored",
            );
        }
        check_key_fields(
            cx,
            &p,
            mirror.keyid.as_ref(),
            mirror.key.as_ref(),
            mirror.keyserver.as_ref(),
        );
    }
}

pub fn check(config: &AptConfigure, cx: &mut Checker<'_>) {
    if let Some(text) = custom_sources_list(config).filter(|t| deb822::is_deb822(t)) {
        let path = match config.apt.as_ref().is_some_and(|a| a.sources_list.is_some()) {
            true => "apt.sources_list",
            false => "apt_custom_sources_list",
        };
        cx.check(path, deb822::parse(text).and_then(|s| deb822::check(&s)));
    }
    if let Some(apt) = &config.apt {
        if let Some(primary) = &apt.primary {
            check_mirrors(cx, "apt.primary", primary);
        }
        if let Some(security) = &apt.security {
            check_mirrors(cx, "apt.security", security);
        }
        if apt.generate_mirrorlists == Some(true) {
            cx.warning(
                "apt.generate_mirrorlists",
                "not supported: cloudcfg does not write /etc/apt/mirrors/ (ignored; \
                 sources.list is written from the mirrors instead)",
            );
        }
        if apt.add_apt_repo_match.is_some() {
            cx.warning(
                "apt.add_apt_repo_match",
                "ignored: cloudcfg writes every source line itself, without add-apt-repository",
            );
        }
        if apt.disable_suites.is_some() && !writes_sources_list(config) {
            cx.warning(
                "apt.disable_suites",
                "only applies to a sources.list that cloudcfg writes \
                 (apt.primary, apt.security or apt.sources_list): ignored",
            );
        }
    }
    if config.add_apt_repo_match.is_some() {
        cx.warning(
            "add_apt_repo_match",
            "ignored: cloudcfg writes every source line itself, without add-apt-repository",
        );
    }
    if let Some(uri) = &config.apt_mirror {
        cx.check("apt_mirror", values::url(uri));
    }
    if let Some(search) = &config.apt_mirror_search {
        for (j, uri) in search.iter().enumerate() {
            cx.check(&format!("apt_mirror_search[{j}]"), values::url(uri));
        }
        if config.apt_mirror.is_none() {
            cx.warning(
                "apt_mirror_search",
                "cloudcfg does not probe mirrors: the first one is used",
            );
        }
    }
    if config.apt_mirror_search_dns == Some(true) {
        cx.warning(
            "apt_mirror_search_dns",
            "not supported by cloudcfg (it needs DNS probing): ignored",
        );
    }
    if preserve_sources_list(config)
        && (has_mirror_config(config) || custom_sources_list(config).is_some())
    {
        cx.warning(
            "apt.preserve_sources_list",
            "sources.list is preserved: the mirrors and sources_list given are not written",
        );
    }
}

/// sources.list, when the config asks for it.
///
/// On a deb822 target (and for a deb822 `sources_list` on any target, as cloud-init 24.1 and
/// later) the distribution's `.sources` file is written instead, and sources.list keeps only a
/// comment that points there.
pub fn plan(config: &AptConfigure, planner: &mut Planner<'_>, release: &str) -> Result<(), PlanError> {
    if !writes_sources_list(config) {
        return Ok(());
    }
    let facts = planner.facts;
    let deb822 = deb822::target_uses_deb822(facts)
        || custom_sources_list(config).is_some_and(deb822::is_deb822);
    if !deb822 {
        let text = sources_list_text(config, facts, release);
        apt_file(planner, SOURCES_LIST.to_owned(), text);
        return Ok(());
    }
    let file = deb822::distro_sources_file(facts);
    let stanzas = distro_stanzas(config, facts, release).map_err(|reason| PlanError::Unsupported {
        path: "apt.sources_list".into(),
        reason,
    })?;
    let text = format!(
        "# Written by cloudcfg on first boot from apt.primary/apt.security/apt.sources_list.\n\
         # To keep the image's sources, set apt.preserve_sources_list: true.\n{}",
        deb822::render(&stanzas)
    );
    apt_file(planner, file.to_owned(), text);
    apt_file(planner, SOURCES_LIST.to_owned(), sources_list_stub(file));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_disabled_like_cloud_init() {
        let text = "deb m bookworm main\ndeb [arch=amd64] m bookworm-backports main\n";
        let out = disable_suites(text, &["backports".into()], "bookworm");
        assert_eq!(
            out,
            "deb m bookworm main\n# suite disabled by cloud-init: deb [arch=amd64] m bookworm-backports main\n"
        );
    }
}
