//! Why the policy could not decide (exit 2).

use std::io;

use crate::system::SystemConfigError;

/// Why the policy or the CSR could not be used: all of these exit 2.
#[derive(Debug, thiserror::Error)]
pub enum AutosignError {
    #[error("{path}: {source}")]
    Read { path: String, source: io::Error },
    #[error(
        "{path}: readable by others (mode {mode:04o}); the puppet user runs this policy, so \
         make it 0640 root:puppet or 0600 puppet"
    )]
    WorldReadable { path: String, mode: u32 },
    #[error("{path}: writable by others (mode {mode:04o}); remove the write bit for others")]
    WorldWritable { path: String, mode: u32 },
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: String, limit: usize },
    /// Every problem as `LINE:COL: message`, or `line N: message` for the keys file.
    #[error("{path}: {}", .problems.join("; "))]
    InvalidPolicy { path: String, problems: Vec<String> },
    #[error(transparent)]
    SystemConfig(#[from] SystemConfigError),
    #[error("standard input: {0}")]
    ReadCsr(io::Error),
    #[error("the CSR on standard input is larger than {limit} bytes")]
    CsrTooLarge { limit: usize },
    #[error("unreadable CSR: {reason}")]
    InvalidCsr { reason: String },
    #[error("{path}: {source}")]
    ExpectedCertname { path: String, source: io::Error },
    #[error("certname {reason}")]
    InvalidCertname { certname: String, reason: String },
    /// The expected-certnames store did not answer as it should (the launcher's side; the
    /// policy refuses instead).
    #[error("expected-certnames store: {0}")]
    Store(String),
}

impl AutosignError {
    /// The `rule=` word of the decision line.
    pub fn rule(&self) -> &'static str {
        match self {
            AutosignError::ReadCsr(_)
            | AutosignError::CsrTooLarge { .. }
            | AutosignError::InvalidCsr { .. } => "csr",
            AutosignError::ExpectedCertname { .. } => "expected_certname",
            AutosignError::InvalidCertname { .. } => "certname",
            AutosignError::Store(_) => "expected_certname",
            _ => "policy",
        }
    }
}
