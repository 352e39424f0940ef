//! A broken invariant: which rule, at which action, and what was seen.

use std::fmt;

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

pub fn violation(
    rule: &'static str,
    action: Option<usize>,
    detail: impl Into<String>,
) -> Violation {
    Violation {
        rule,
        action,
        detail: detail.into(),
    }
}
