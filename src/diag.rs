//! Diagnostics: what `validate` prints, in the compilers' `FILE:LINE:COL: severity: message`
//! form that editors and CI annotate, or as JSON (contract.md, "Diagnostics").

use serde::Serialize;

use crate::decode::yaml::Pos;
use crate::decode::{PartInfo, UserData};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    /// JSON-path-like location in the config, 0-based indices (`apt_sources[1].keyid`); empty for
    /// the document as a whole.
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            pos,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn warning(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            pos,
            path: path.into(),
            message: message.into(),
        }
    }

    /// The message as printed: the part it came from (inside multipart or gzip user data) and
    /// the config path go in front.
    pub fn full_message(&self, parts: &[PartInfo]) -> String {
        let mut out = String::new();
        if let Some(part) = parts
            .iter()
            .find(|p| p.index == usize::from(self.pos.part) && p.named)
        {
            out.push_str(&part.label());
            out.push_str(": ");
        }
        // A message may name its own key first (`apt_update: false is overridden`).
        if !self.path.is_empty() && !self.message.starts_with(&format!("{}:", self.path)) {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        escape_controls(&out)
    }
}

/// Control characters as Rust escapes (`\n`, `\u{1b}`): messages quote user text (keys, file
/// names), and a line break there would forge a second diagnostic line, an escape sequence
/// would reach the terminal.
fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Diagnostics of one file, in source order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub parts: Vec<PartInfo>,
}

impl Report {
    pub fn from_user_data(user_data: &UserData) -> Report {
        Report {
            diagnostics: Vec::new(),
            parts: user_data.parts.clone(),
        }
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }

    pub fn sort(&mut self) {
        self.diagnostics.sort_by(|a, b| {
            (a.pos.part, a.pos.line, a.pos.col, a.severity)
                .cmp(&(b.pos.part, b.pos.line, b.pos.col, b.severity))
        });
        self.diagnostics.dedup();
    }

    /// `FILE:LINE:COL: severity: message`, one line each.
    pub fn render_text(&self, file: &str) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&format!(
                "{file}:{}:{}: {}: {}\n",
                d.pos.line,
                d.pos.col,
                d.severity.as_str(),
                d.full_message(&self.parts)
            ));
        }
        out
    }

    pub fn to_json(&self, file: &str) -> serde_json::Value {
        let diagnostics: Vec<serde_json::Value> = self
            .diagnostics
            .iter()
            .map(|d| {
                serde_json::json!({
                    "severity": d.severity,
                    "line": d.pos.line,
                    "column": d.pos.col,
                    "path": d.path,
                    "message": d.full_message(&self.parts),
                })
            })
            .collect();
        serde_json::json!({"file": file, "valid": !self.has_errors(), "diagnostics": diagnostics})
    }
}

/// The closing line of text output: `2 errors, 1 warning in 3 files`.
pub fn summary(errors: usize, warnings: usize, files: usize) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "{}, {} in {}",
        plural(errors, "error"),
        plural(warnings, "warning"),
        plural(files, "file")
    )
}
