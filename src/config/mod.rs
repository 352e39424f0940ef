//! The typed cloud-config: the one source of truth for the format. Each module's file owns its
//! keys' types; [`registry`] assembles them into [`CloudConfig`], and `schema/` is generated
//! from that (`cloudcfg schema`); a test fails when the committed schema drifts.
//!
//! Loading is pure: bytes in, a [`CloudConfig`] and diagnostics out.

pub mod registry;

use crate::decode::de::Context;
use crate::decode::yaml::{Node, Pos, Value};
use crate::decode::{self, DecodeError, Limits, UserData};
use crate::diag::{Diagnostic, Report};
use crate::module::Checker;

pub use self::registry::{CLOUD_INIT_KEYS_NOT_HANDLED, CloudConfig, MODULES};

/// A loaded user-data file: the config when it could be typed, and every finding.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub user_data: UserData,
    /// `None` when decoding or typing failed (see `report`), or for a config with nothing to do
    /// it is `Some(CloudConfig::default())`.
    pub config: Option<CloudConfig>,
    pub report: Report,
    /// Where each typed path of the document is, for findings made later (a plan that cannot
    /// be made for the target).
    pub positions: Option<std::rc::Rc<Context>>,
}

impl Loaded {
    /// The position of a config path (`apt.sources.old.key`), when the document has it.
    pub fn position_of(&self, path: &str) -> Option<crate::decode::yaml::Pos> {
        self.positions.as_ref().and_then(|ctx| ctx.pos(path))
    }

    pub fn is_valid(&self) -> bool {
        self.config.is_some() && !self.report.has_errors()
    }

    /// The warnings as `(path, message)`, the message naming its part when there are parts.
    pub fn warnings(&self) -> Vec<(String, String)> {
        self.report
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Warning)
            .map(|d| {
                let full = d.full_message(&self.report.parts);
                let message = full
                    .strip_prefix(&format!("{}: ", d.path))
                    .filter(|_| !d.path.is_empty())
                    .map_or_else(|| full.clone(), str::to_owned);
                (d.path.clone(), message)
            })
            .collect()
    }
}

pub fn suggest<'k>(key: &str, candidates: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    // Jaro-Winkler reaches 0.85 only when neither string is over 4 times the other's length
    // (jaro <= (1/4 + 1 + 1) / 3 = 0.75, and the prefix bonus lifts 0.75 to 0.85 at most), so
    // other candidates are skipped unscored: scoring a 64 KiB key costs its length times each
    // candidate's.
    let len = key.chars().count();
    candidates
        .into_iter()
        .filter(|c| len <= 4 * c.len() && c.len() <= 4 * len)
        .map(|c| (strsim::jaro_winkler(key, c), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Unknown keys that get a "did you mean": typos come one or two at a time; a document with
/// thousands of unknown keys is not a typo, and scoring each against some hundred known keys
/// took a second for 8,000 keys in 64 KiB.
const MAX_SUGGESTIONS: usize = 100;

/// A top-level key that no module owns.
fn top_level_unknown(key: &str, pos: Pos, suggest_near: bool) -> Diagnostic {
    if CLOUD_INIT_KEYS_NOT_HANDLED.contains(&key) {
        return Diagnostic::warning(
            pos,
            key,
            format!("`{key}` is a cloud-init key not handled by cloudcfg: ignored"),
        );
    }
    let mut message = format!("unknown key `{key}`: ignored");
    let known = MODULES
        .iter()
        .flat_map(|m| (m.keys)().iter().copied())
        .chain(CLOUD_INIT_KEYS_NOT_HANDLED.iter().copied());
    if let Some(near) = suggest_near.then(|| suggest(key, known)).flatten() {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    Diagnostic::warning(pos, crate::decode::de::join_key("", key), message)
}

fn unknown_key_diagnostic(
    unknown: &crate::decode::de::UnknownKey,
    suggest_near: bool,
) -> Diagnostic {
    let mut message = format!("unknown key `{}`: ignored", unknown.key);
    if let Some(near) = suggest_near
        .then(|| suggest(&unknown.key, unknown.expected.iter().copied()))
        .flatten()
    {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    Diagnostic::warning(unknown.pos, &unknown.path, message)
}

fn decode_error_diagnostic(err: &DecodeError) -> Diagnostic {
    let (label, pos) = err.location();
    let message = match label {
        Some(label) => format!("{label}: {}", err.bare_message()),
        None => err.bare_message(),
    };
    Diagnostic::error(pos, "", message)
}

/// Types every module's keys from the root mapping. A root that is no mapping is reported
/// once, by the first module, rather than once per module.
fn type_modules(root: &Node, ctx: &Context, report: &mut Report) -> Option<CloudConfig> {
    let mut config = CloudConfig::default();
    let mut typed = true;
    for module in MODULES {
        if let Err(err) = (module.load)(&mut config, root, ctx) {
            report.push(Diagnostic::error(
                err.pos.unwrap_or(root.pos),
                err.path,
                err.message,
            ));
            typed = false;
        }
        if !matches!(root.value, Value::Map(_)) {
            return None;
        }
    }
    typed.then_some(config)
}

/// Decodes, types and checks user data. Never panics, whatever the bytes.
pub fn load(bytes: &[u8], limits: &Limits) -> Loaded {
    let user_data = match decode::decode(bytes, limits) {
        Ok(ud) => ud,
        Err(err) => {
            let mut report = Report::default();
            report.push(decode_error_diagnostic(&err));
            return Loaded {
                user_data: UserData::default(),
                config: None,
                report,
                positions: None,
            };
        }
    };
    let mut report = Report::from_user_data(&user_data);
    for warning in &user_data.warnings {
        let mut pos = warning.pos;
        pos.part = u16::try_from(warning.part).unwrap_or(u16::MAX);
        report.push(Diagnostic::warning(pos, "", &warning.message));
    }
    for (part, dup) in &user_data.duplicates {
        let mut pos = dup.second;
        pos.part = u16::try_from(*part).unwrap_or(u16::MAX);
        report.push(Diagnostic::warning(
            pos,
            "",
            format!(
                "duplicate key `{}` (first at line {}, column {}): this later value wins",
                dup.key, dup.first.line, dup.first.col
            ),
        ));
    }
    let Some(root) = &user_data.root else {
        report.sort();
        let mut config = CloudConfig::default();
        config.scripts_user.parts = user_data.scripts.clone();
        config.bootcmd.boothooks = user_data.boothooks.clone();
        return Loaded {
            user_data,
            config: Some(config),
            report,
            positions: None,
        };
    };
    let ctx = Context::new();
    let mut config = type_modules(root, &ctx, &mut report);
    if let Some(config) = &mut config {
        // Script parts are user data beside the cloud-config, not keys of it.
        config.scripts_user.parts = user_data.scripts.clone();
        config.bootcmd.boothooks = user_data.boothooks.clone();
    }
    let mut suggestions = 0;
    if let Value::Map(entries) = &root.value {
        for entry in entries {
            let key = entry.key.scalar_text().unwrap_or_default();
            if registry::owner(key).is_none() {
                report.push(top_level_unknown(
                    key,
                    entry.key.pos,
                    suggestions < MAX_SUGGESTIONS,
                ));
                suggestions += 1;
            }
        }
    }
    for unknown in ctx.take_unknown() {
        report.push(unknown_key_diagnostic(
            &unknown,
            suggestions < MAX_SUGGESTIONS,
        ));
        suggestions += 1;
    }
    if let Some(config) = &config {
        let needs = registry::needs(config);
        let mut left = limits.clone();
        left.max_decompressed_bytes = user_data.budget_left;
        let mut checker = Checker::new(&ctx, &mut report, root.pos, &left, &needs);
        for module in MODULES {
            (module.check)(config, &mut checker);
        }
    }
    report.sort();
    Loaded {
        user_data,
        config,
        report,
        positions: Some(std::rc::Rc::new(ctx)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The length filter of `suggest` drops only candidates that could not score 0.85.
        #[test]
        fn suggest_skips_only_hopeless_candidates(key in "[a-z_]{1,12}", extra in "[a-z_]{1,60}") {
            let long = format!("{key}{extra}");
            let (short_len, long_len) = (key.chars().count(), long.chars().count());
            if long_len > 4 * short_len {
                prop_assert!(strsim::jaro_winkler(&long, &key) < 0.85);
                prop_assert!(strsim::jaro_winkler(&key, &long) < 0.85);
            }
        }
    }

    #[test]
    fn suggestions_still_find_typos() {
        assert_eq!(suggest("pakages", ["packages", "puppet"]), Some("packages"));
        assert_eq!(suggest(&"p".repeat(70_000), ["packages"]), None);
    }
}
