//! Secrets: no secret of the plan survives its redacted form, and redaction changes nothing else.

use super::text::{strip_markers, userinfos};
use super::violation::{Violation, violation};
use crate::action::Text;
use crate::action::{ActionKind, Plan};

/// The redacted plan shows none of a text's secrets, and no URL credentials anywhere.
pub fn check_redaction(plan: &Plan) -> Result<(), Violation> {
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
                keyserver,
                url,
                dest,
                ..
            } => keyserver
                .iter()
                .chain(url)
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
