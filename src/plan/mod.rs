//! config + facts -> ordered actions. Pure and total: no I/O, no clock, no environment; what
//! depends on the target's current state is an action kind that `apply` resolves
//! (`edit_ini`, `reconfigure_installed`, `enable_service`, `start_service`, `fetch_key`).
//!
//! The modules run in the order of [`crate::modules::MODULES`]; each plans its own actions.

pub mod invariants;
pub mod render;

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::config::CloudConfig;
use crate::config::system::SystemConfig;

/// What the plan knows about the instance and the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub release: Option<String>,
    /// dpkg's architecture name of the target (`amd64`).
    #[serde(skip)]
    pub arch: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Ubuntu,
}

/// Ubuntu series names, oldest first; any other codename is taken for Debian.
const UBUNTU_SERIES: &[&str] = &[
    "lucid", "precise", "trusty", "xenial", "bionic", "focal", "jammy", "kinetic", "lunar",
    "mantic", "noble", "oracular", "plucky", "questing", "resolute",
];

impl Facts {
    pub fn distro(&self) -> Distro {
        match &self.release {
            Some(r) if UBUNTU_SERIES.contains(&r.as_str()) => Distro::Ubuntu,
            _ => Distro::Debian,
        }
    }

    /// A fact the plan cannot do without, or the usage error that names its flag.
    pub fn require<'a>(
        &self,
        value: &'a Option<String>,
        flag: &'static str,
        why: &str,
    ) -> Result<&'a str, PlanError> {
        value.as_deref().ok_or_else(|| PlanError::MissingFact {
            flag,
            why: why.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{why}: pass {flag}")]
    MissingFact { flag: &'static str, why: String },
}

/// Text that may hold secrets: `secrets` are the substrings redacted in plan output and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    pub text: String,
    pub secrets: Vec<String>,
}

impl Text {
    pub fn plain(text: impl Into<String>) -> Text {
        Text {
            text: text.into(),
            secrets: Vec::new(),
        }
    }

    pub fn secret(text: impl Into<String>) -> Text {
        let text = text.into();
        Text {
            secrets: vec![text.clone()],
            text,
        }
    }

    pub fn is_sensitive(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The text with every secret replaced by `<redacted sha256:…>`.
    ///
    /// One pass over the original text: every occurrence of every secret is found first and
    /// overlapping ones are joined, then each span is replaced once. Replacing secret after
    /// secret would also replace inside the markers already written (a one-letter password
    /// `a` garbled every `<redacted sha256:…>`) and could cut an overlapping secret in two.
    /// The occurrences are found by one Aho-Corasick scan for all secrets together: thousands
    /// of debconf passwords or proxy URLs must not cost one scan of the text each.
    pub fn redacted(&self) -> String {
        let secrets: Vec<&str> = self
            .secrets
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        if secrets.is_empty() {
            return self.text.clone();
        }
        let mut spans: Vec<(usize, usize)> = match secret_finder(&secrets) {
            Ok(automaton) => automaton
                .find_overlapping_iter(&self.text)
                .map(|m| (m.start(), m.end()))
                .collect(),
            // Only a pattern set past the automaton's size limits fails to build: hide the
            // whole text rather than show any of it.
            Err(_) => vec![(0, self.text.len())],
        };
        if spans.is_empty() {
            return self.text.clone();
        }
        spans.sort_unstable();
        let mut joined: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match joined.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => joined.push((start, end)),
            }
        }
        let mut out = String::with_capacity(self.text.len());
        let mut done = 0;
        for (start, end) in joined {
            out.push_str(&self.text[done..start]);
            out.push_str(&redaction(&self.text[start..end]));
            done = end;
        }
        out.push_str(&self.text[done..]);
        out
    }
}

/// An automaton finding any of `secrets`. A contiguous NFA: texts are redacted a few times
/// each, so a cheap build matters more than the fastest scan (the default picks a DFA for
/// small sets, whose build cost dominated plans of many small files).
pub fn secret_finder(secrets: &[&str]) -> Result<AhoCorasick, aho_corasick::BuildError> {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(secrets)
}

pub fn redaction(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    format!("<redacted sha256:{}>", &hex::encode(digest)[..12])
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionKind {
    /// Write a whole file atomically.
    WriteFile {
        path: String,
        /// Four octal digits, e.g. `0644`.
        mode: String,
        owner: String,
        group: String,
        content: Text,
    },
    /// Run a command: an argv vector, never a shell string.
    Command {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        stdin: Option<Text>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ok_exit_codes: Option<Vec<i32>>,
    },
    /// Fetch an OpenPGP key (by id from a keyserver, or a PPA's key through Launchpad), check
    /// that its fingerprint is the one asked for, and write it armored to `dest`.
    FetchKey {
        #[serde(skip_serializing_if = "Option::is_none")]
        keyid: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        keyserver: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ppa: Option<String>,
        dest: String,
    },
    /// Set one key of an INI file in place (comments, order and other keys kept; the original
    /// saved as `<path>.old` once).
    EditIni {
        path: String,
        section: String,
        key: String,
        value: String,
    },
    /// `dpkg-reconfigure` those of `packages` that are installed on the target.
    ReconfigureInstalled { packages: Vec<String> },
    /// `systemctl enable UNIT`, offline (`--root`) when systemd is not running the target.
    EnableService { unit: String },
    /// `systemctl start --no-block UNIT`; skipped with a warning when systemd is not running
    /// the target.
    StartService { unit: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub module: &'static str,
    #[serde(flatten)]
    pub kind: ActionKind,
}

impl Action {
    /// The same action with every secret replaced, for output and logs.
    pub fn redacted(&self) -> Action {
        let redact = |t: &Text| Text::plain(t.redacted());
        let kind = match &self.kind {
            ActionKind::WriteFile {
                path,
                mode,
                owner,
                group,
                content,
            } => ActionKind::WriteFile {
                path: path.clone(),
                mode: mode.clone(),
                owner: owner.clone(),
                group: group.clone(),
                content: redact(content),
            },
            ActionKind::Command {
                argv,
                env,
                stdin,
                ok_exit_codes,
            } => ActionKind::Command {
                argv: argv.clone(),
                env: env.clone(),
                stdin: stdin.as_ref().map(redact),
                ok_exit_codes: ok_exit_codes.clone(),
            },
            other => other.clone(),
        };
        Action {
            module: self.module,
            kind,
        }
    }

    /// Paths this action writes (for checks and tests).
    pub fn written_paths(&self) -> Vec<&str> {
        match &self.kind {
            ActionKind::WriteFile { path, .. } | ActionKind::EditIni { path, .. } => {
                vec![path.as_str()]
            }
            ActionKind::FetchKey { dest, .. } => vec![dest.as_str()],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanWarning {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub facts: Facts,
    pub actions: Vec<Action>,
    pub warnings: Vec<PlanWarning>,
}

impl Plan {
    pub fn redacted(&self) -> Plan {
        Plan {
            facts: self.facts.clone(),
            actions: self.actions.iter().map(Action::redacted).collect(),
            warnings: self.warnings.clone(),
        }
    }

    pub fn modules(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for action in &self.actions {
            if !names.contains(&action.module) {
                names.push(action.module);
            }
        }
        names
    }
}

/// What a module's planner reads and writes.
pub struct Planner<'a> {
    pub config: &'a CloudConfig,
    pub facts: &'a Facts,
    pub system: &'a SystemConfig,
    module: &'static str,
    actions: Vec<Action>,
    warnings: Vec<PlanWarning>,
}

impl<'a> Planner<'a> {
    pub fn push(&mut self, kind: ActionKind) {
        self.actions.push(Action {
            module: self.module,
            kind,
        });
    }

    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(PlanWarning {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub fn write_file(&mut self, path: impl Into<String>, mode: u32, content: Text) {
        self.push(ActionKind::WriteFile {
            path: path.into(),
            mode: format!("{mode:04o}"),
            owner: "root".into(),
            group: "root".into(),
            content,
        });
    }

    pub fn command(&mut self, argv: Vec<String>, env: &[(&str, &str)], stdin: Option<Text>) {
        self.push(ActionKind::Command {
            argv,
            env: env_map(env),
            stdin,
            ok_exit_codes: None,
        });
    }

    /// Actions planned so far by every module, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }
}

/// Plans the whole config. `warnings` of the config itself (validate's) are not repeated here;
/// the CLI shows both.
pub fn plan(config: &CloudConfig, facts: &Facts, system: &SystemConfig) -> Result<Plan, PlanError> {
    let mut planner = Planner {
        config,
        facts,
        system,
        module: "",
        actions: Vec::new(),
        warnings: Vec::new(),
    };
    for module in crate::modules::MODULES {
        planner.module = module.name;
        (module.plan)(&mut planner)?;
    }
    Ok(Plan {
        facts: facts.clone(),
        actions: planner.actions,
        warnings: planner.warnings,
    })
}

/// The argv prefix cloud-init uses for every apt-get call (kept byte for byte).
pub fn apt_get(args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = [
        "apt-get",
        "--option=Dpkg::Options::=--force-confold",
        "--option=Dpkg::options::=--force-unsafe-io",
        "--assume-yes",
        "--quiet",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    argv.extend(args.iter().map(|s| (*s).to_owned()));
    argv
}

pub const APT_ENV: &[(&str, &str)] = &[("DEBIAN_FRONTEND", "noninteractive")];

/// A command's added environment from literal pairs.
pub fn env_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_every_secret() {
        let t = Text {
            text: "a S3cret b S3cret".into(),
            secrets: vec!["S3cret".into()],
        };
        let r = t.redacted();
        assert!(!r.contains("S3cret"));
        assert!(r.starts_with("a <redacted sha256:"));
        assert_eq!(r.matches("<redacted").count(), 2);
    }

    #[test]
    fn redaction_leaves_its_own_markers_alone() {
        let t = Text {
            text: "pw=S3cret a=a".into(),
            secrets: vec!["S3cret".into(), "a".into()],
        };
        let r = t.redacted();
        assert_eq!(
            r,
            format!(
                "pw={} {}={}",
                redaction("S3cret"),
                redaction("a"),
                redaction("a")
            )
        );
        // Overlapping secrets are hidden as one span.
        let t = Text {
            text: "xyz".into(),
            secrets: vec!["xy".into(), "yz".into()],
        };
        assert_eq!(t.redacted(), redaction("xyz"));
    }
}
