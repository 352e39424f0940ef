//! deb822 sources (`Types:`/`URIs:`/`Suites:` stanzas, `.sources` files), the format apt uses
//! for its own sources on Debian 13 and Ubuntu 24.04 and later.
//!
//! On such a target cloudcfg writes every source it adds as a `.sources` file and replaces the
//! distribution's own `debian.sources` (`ubuntu.sources`) when mirrors or `sources_list` are
//! given, so that an archive is never configured twice (apt's "configured multiple times") and
//! a replaced mirror is really gone. One-line entries from user data are converted; deb822
//! entries are checked field by field (sources.list(5), "DEB822-STYLE FORMAT").

use crate::action::{Distro, Facts};
use crate::values;

/// The fields of a deb822 source stanza apt knows (sources.list(5) of apt 2.6 and 3.0).
pub const FIELDS: &[&str] = &[
    "Types",
    "URIs",
    "Suites",
    "Components",
    "Enabled",
    "Architectures",
    "Languages",
    "Targets",
    "PDiffs",
    "By-Hash",
    "Allow-Insecure",
    "Allow-Weak",
    "Allow-Downgrade-To-Insecure",
    "Trusted",
    "Signed-By",
    "Check-Valid-Until",
    "Valid-Until-Min",
    "Valid-Until-Max",
    "Check-Date",
    "Date-Max-Future",
    "InRelease-Path",
    "Snapshot",
    "Include",
    "Exclude",
];

/// One-line options (`[arch=amd64 signed-by=...]`) and their deb822 fields.
const OPTIONS: &[(&str, &str)] = &[
    ("arch", "Architectures"),
    ("lang", "Languages"),
    ("target", "Targets"),
    ("pdiffs", "PDiffs"),
    ("by-hash", "By-Hash"),
    ("allow-insecure", "Allow-Insecure"),
    ("allow-weak", "Allow-Weak"),
    ("allow-downgrade-to-insecure", "Allow-Downgrade-To-Insecure"),
    ("trusted", "Trusted"),
    ("signed-by", "Signed-By"),
    ("check-valid-until", "Check-Valid-Until"),
    ("valid-until-min", "Valid-Until-Min"),
    ("valid-until-max", "Valid-Until-Max"),
    ("check-date", "Check-Date"),
    ("date-max-future", "Date-Max-Future"),
    ("inrelease-path", "InRelease-Path"),
    ("snapshot", "Snapshot"),
];

/// A source stanza: its fields in order, values without the field name (a multi-line value,
/// an inline key, keeps its continuation lines, each starting with a space).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets a field, in place when present, else after the others.
    pub fn set(&mut self, name: &str, value: &str) {
        match self
            .fields
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
    }

    pub fn words(&self, name: &str) -> Vec<&str> {
        self.get(name)
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default()
    }
}

/// cloud-init's test (`is_deb822_sources_format`): no one-line entry, and one of the
/// required fields at the start of a line.
pub fn is_deb822(text: &str) -> bool {
    let lines = || text.lines().map(str::trim_start);
    !lines().any(|l| l.starts_with("deb ") || l.starts_with("deb-src "))
        && lines().any(|l| {
            ["Types:", "URIs:", "Suites:", "Components:"]
                .iter()
                .any(|f| l.starts_with(f))
        })
}

/// Whether the target's apt keeps its own sources in deb822: Debian 13 and later (14 and sid
/// count as 13), Ubuntu 24.04 and later, or any root where `debian.sources`/`ubuntu.sources`
/// exists already.
pub fn target_uses_deb822(facts: &Facts) -> bool {
    if facts.deb822_sources {
        return true;
    }
    facts.release_at_least("trixie", "noble")
}

/// The distribution's own deb822 file, which mirrors and `sources_list` replace.
pub fn distro_sources_file(facts: &Facts) -> &'static str {
    match facts.distro() {
        Distro::Debian => "/etc/apt/sources.list.d/debian.sources",
        Distro::Ubuntu => "/etc/apt/sources.list.d/ubuntu.sources",
    }
}

/// Parses stanzas; `Err` names the line (1-based, within `text`) and what is wrong.
pub fn parse(text: &str) -> Result<Vec<Stanza>, String> {
    let mut stanzas = Vec::new();
    let mut current = Stanza::default();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            if !current.fields.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
            continue;
        }
        if raw.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            let Some((_, value)) = current.fields.last_mut() else {
                return Err(format!("line {n}: a continuation line without a field"));
            };
            value.push('\n');
            value.push_str(raw);
            continue;
        }
        let Some((name, value)) = raw.split_once(':') else {
            return Err(format!("line {n}: {raw:?} is not `Field: value`"));
        };
        let Some(known) = FIELDS.iter().find(|f| f.eq_ignore_ascii_case(name)) else {
            return Err(format!(
                "line {n}: `{name}` is not a field of a deb822 source (sources.list(5))"
            ));
        };
        if current.get(known).is_some() {
            return Err(format!("line {n}: `{known}` is given twice in one stanza"));
        }
        current.fields.push(((*known).to_owned(), value.trim().to_owned()));
    }
    if !current.fields.is_empty() {
        stanzas.push(current);
    }
    if stanzas.is_empty() {
        return Err("no stanza: a deb822 source needs Types, URIs and Suites".into());
    }
    Ok(stanzas)
}

/// What apt needs of every stanza, with template variables (`$RELEASE`, `$MIRROR`) allowed
/// where they are substituted later.
pub fn check(stanzas: &[Stanza]) -> Result<(), String> {
    for (i, s) in stanzas.iter().enumerate() {
        let at = |field: &str| format!("stanza {}, {field}", i + 1);
        for field in ["Types", "URIs", "Suites"] {
            if s.words(field).is_empty() {
                return Err(format!("{}: required", at(field)));
            }
        }
        for t in s.words("Types") {
            if !matches!(t, "deb" | "deb-src") {
                return Err(format!("{}: {t:?} is not deb or deb-src", at("Types")));
            }
        }
        for uri in s.words("URIs") {
            if !uri.starts_with('$') {
                let plain = uri.strip_prefix("mirror+").unwrap_or(uri);
                let ok = values::url(plain).is_ok()
                    || plain.starts_with("file:/")
                    || plain.starts_with("cdrom:");
                if !ok {
                    return Err(format!("{}: {uri:?} is not a URI", at("URIs")));
                }
            }
        }
        let suites = s.words("Suites");
        let exact = suites.iter().any(|s| s.ends_with('/'));
        if exact && !s.words("Components").is_empty() {
            return Err(format!(
                "{}: an exact path (ending in /) takes no Components",
                at("Suites")
            ));
        }
        if !exact && s.words("Components").is_empty() {
            return Err(format!("{}: required unless Suites is an exact path", at("Components")));
        }
        for (name, value) in &s.fields {
            // Only Signed-By may span lines (an inline key); elsewhere a line break would
            // start what apt reads as another field.
            if name != "Signed-By" && value.contains('\n') {
                return Err(format!("{}: a line break inside the value", at(name)));
            }
            if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\n' && *c != '\t') {
                return Err(format!("{}: control character {c:?}", at(name)));
            }
        }
    }
    Ok(())
}

/// A one-line entry (`deb [opts] URI SUITE [COMPONENT...]`) as a stanza.
pub fn from_one_line(line: &str) -> Result<Stanza, String> {
    let mut words = line.split_whitespace().peekable();
    let kind = words.next().unwrap_or_default();
    if !matches!(kind, "deb" | "deb-src") {
        return Err(format!("{line:?} does not start with deb or deb-src"));
    }
    let mut stanza = Stanza::default();
    stanza.set("Types", kind);
    let mut options = Vec::new();
    if words.peek().is_some_and(|w| w.starts_with('[')) {
        let mut inside = String::new();
        for w in words.by_ref() {
            inside.push_str(w);
            inside.push(' ');
            if w.ends_with(']') {
                break;
            }
        }
        let inside = inside.trim().trim_start_matches('[').trim_end_matches(']');
        for opt in inside.split_whitespace() {
            let Some((key, value)) = opt.split_once('=') else {
                return Err(format!("option {opt:?} is not key=value"));
            };
            let (key, sign) = match key.strip_suffix(['+', '-']) {
                Some(k) => (k, &key[k.len()..]),
                None => (key, ""),
            };
            if !sign.is_empty() {
                return Err(format!(
                    "option {opt:?}: `{key}{sign}=` has no deb822 form cloudcfg writes"
                ));
            }
            let Some((_, field)) = OPTIONS.iter().find(|(o, _)| *o == key) else {
                return Err(format!("option `{key}` is not one apt knows"));
            };
            options.push((*field, value.replace(',', " ")));
        }
    }
    let uri = words.next().ok_or("no URI")?;
    let suite = words.next().ok_or("no suite")?;
    stanza.set("URIs", uri);
    stanza.set("Suites", suite);
    let components: Vec<&str> = words.collect();
    if !components.is_empty() {
        stanza.set("Components", &components.join(" "));
    }
    for (field, value) in options {
        stanza.set(field, &value);
    }
    Ok(stanza)
}

/// Takes the `disabled` suites out of every stanza; a stanza left without a suite is switched
/// off (`Enabled: no`) rather than removed, so that it stays visible.
pub fn disable_suites(stanzas: &mut [Stanza], disabled: &[String]) {
    for s in stanzas {
        let suites: Vec<String> = s.words("Suites").into_iter().map(str::to_owned).collect();
        let kept: Vec<&String> = suites.iter().filter(|x| !disabled.contains(x)).collect();
        if kept.len() == suites.len() {
            continue;
        }
        if kept.is_empty() {
            s.set("Enabled", "no");
        } else {
            let kept: Vec<&str> = kept.iter().map(|x| x.as_str()).collect();
            s.set("Suites", &kept.join(" "));
        }
    }
}

pub fn render(stanzas: &[Stanza]) -> String {
    stanzas
        .iter()
        .map(|s| {
            s.fields
                .iter()
                .map(|(n, v)| format!("{n}: {v}\n"))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_entries_become_stanzas() {
        let s = from_one_line(
            "deb [arch=amd64,arm64 signed-by=/etc/apt/keyrings/x.asc] https://r.example/debian trixie main contrib",
        )
        .unwrap();
        assert_eq!(
            render(&[s]),
            "Types: deb\nURIs: https://r.example/debian\nSuites: trixie\nComponents: main contrib\n\
             Architectures: amd64 arm64\nSigned-By: /etc/apt/keyrings/x.asc\n"
        );
        assert!(from_one_line("deb [arch+=i386] http://x/ s main").is_err());
        assert!(from_one_line("deb [bogus=1] http://x/ s main").is_err());
        assert!(from_one_line("deb http://x/").is_err());
    }

    #[test]
    fn stanzas_are_checked_field_by_field() {
        let ok = "Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: $RELEASE\nComponents: main\n";
        check(&parse(ok).unwrap()).unwrap();
        let err = |text: &str| match parse(text) {
            Err(e) => e,
            Ok(s) => check(&s).unwrap_err(),
        };
        assert!(err("Types: deb\nURI: http://x/\n").contains("line 2: `URI` is not a field"));
        assert!(err("Types: deb\nURIs: not a uri\nSuites: s\nComponents: main\n")
            .contains("is not a URI"));
        assert!(err("Types: rpm\nURIs: http://x/\nSuites: s\nComponents: main\n")
            .contains("not deb or deb-src"));
        assert!(err("Types: deb\nURIs: http://x/\nSuites: s\n").contains("Components: required"));
        assert!(err("Types: deb\nTypes: deb\n").contains("given twice"));
        assert!(err("Types: deb\nURIs: http://x/\nSuites: s\nComponents: main\n more\n")
            .contains("line break"));
        // An inline key may span lines.
        let inline = "Types: deb\nURIs: http://x/\nSuites: ./\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n";
        check(&parse(inline).unwrap()).unwrap();
    }

    #[test]
    fn deb822_is_told_from_one_line_as_cloud_init_does() {
        assert!(is_deb822("Types: deb\nURIs: http://x/\n"));
        assert!(!is_deb822("deb http://x/ s main\n"));
        assert!(!is_deb822("deb http://x/ s main\nTypes: deb\n"));
    }

    #[test]
    fn disabled_suites_leave_the_stanza_or_switch_it_off() {
        let mut s = parse("Types: deb\nURIs: http://x/\nSuites: trixie trixie-updates\nComponents: main\n\nTypes: deb\nURIs: http://y/\nSuites: trixie-backports\nComponents: main\n").unwrap();
        disable_suites(&mut s, &["trixie-updates".into(), "trixie-backports".into()]);
        assert_eq!(s[0].get("Suites"), Some("trixie"));
        assert_eq!(s[0].get("Enabled"), None);
        assert_eq!(s[1].get("Enabled"), Some("no"));
    }

    #[test]
    fn the_release_or_the_root_decides_the_format() {
        let facts = |release: &str, root: bool| Facts {
            release: Some(release.into()),
            deb822_sources: root,
            ..Facts::default()
        };
        assert!(target_uses_deb822(&facts("trixie", false)));
        assert!(target_uses_deb822(&facts("forky", false)));
        assert!(target_uses_deb822(&facts("noble", false)));
        assert!(!target_uses_deb822(&facts("bookworm", false)));
        assert!(!target_uses_deb822(&facts("jammy", false)));
        assert!(target_uses_deb822(&facts("bookworm", true)));
    }
}
