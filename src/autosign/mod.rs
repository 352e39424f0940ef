//! `cloudcfg autosign`: puppetserver's policy executable (contract.md, "Commands";
//! docs/autosign.md for operators).
//!
//! puppetserver runs it, as the `puppet` user, once per certificate request: the certname is
//! the one argument and the CSR (PEM) comes on standard input. Exit 0 signs; any other code
//! leaves the request pending for a person. cloudcfg uses 1 for "refused by a rule" and 2 for
//! "could not decide" (the policy or the CSR is unreadable, invalid or insecure), so the two
//! read differently in puppetserver's log.
//!
//! The flow, in [`evaluate`]: read the CSR bytes (before anything can fail, so puppetserver never
//! writes into a closed pipe) -> [`load_policy`] (permissions, strict YAML, keys file, regex) ->
//! [`parse_csr`] -> [`decide`] -> [`claim`] the expected certnames (files, or S3 objects by a
//! conditional write) -> one line on stderr
//! ([`log_line`]). Everything fails closed: a policy without rules refuses everything, an
//! unknown policy key is an error, a CSR whose signature cannot be checked is refused.
//!
//! Keys never leave this module in the clear: accepted keys are kept as SHA-256 digests,
//! compared in constant time with every candidate from the CSR, and neither keys nor candidates
//! appear in any message or `Debug` output.

mod csr;
mod decide;
mod error;
mod expect;
mod identity;
mod policy;
mod s3;

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::Path;

pub use self::csr::*;
pub use self::decide::*;
pub use self::error::*;
pub use self::expect::{expect, expectation_text, forget};
pub use self::identity::{DOCUMENT_OID, SIGNATURE_OID};
pub use self::policy::*;

/// The name the binary answers to as puppetserver's policy executable
/// (`/usr/lib/cloudcfg/autosign`, a link to `cloudcfg`).
pub const POLICY_EXECUTABLE_NAME: &str = "autosign";

/// First word of every decision line, so they are easy to find in puppetserver's log.
pub const LOG_PREFIX: &str = "cloudcfg-autosign";

/// A log field value: bare when it is plainly safe, else quoted with escapes, so a certname
/// can never forge a second log line or a field.
fn field(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '@'));
    if bare {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// The one decision line:
/// `cloudcfg-autosign: certname=C rule=R result=signed|refused|error detail="..."`;
/// `rule=all` when signed.
pub fn log_line(certname: &str, outcome: &Outcome) -> String {
    let (rule, result, detail) = match outcome {
        Outcome::Signed { detail } => ("all", "signed", detail.clone()),
        Outcome::Refused { rule, reason } => (rule.as_str(), "refused", reason.clone()),
        Outcome::Error(e) => (e.rule(), "error", e.to_string()),
    };
    format!(
        "{LOG_PREFIX}: certname={} rule={rule} result={result} detail={detail:?}",
        field(certname)
    )
}

/// The whole decision for one request, without printing it.
pub fn evaluate(policy_path: &Path, certname: &str, csr: &mut dyn Read) -> Outcome {
    // Read standard input first, whatever happens next: puppetserver writes the CSR into it.
    let pem = match read_csr(csr) {
        Ok(pem) => pem,
        Err(e) => return Outcome::Error(e),
    };
    let rules = match load_policy(policy_path) {
        Ok(rules) => rules,
        Err(e) => return Outcome::Error(e),
    };
    let csr = match parse_csr(&pem) {
        Ok(csr) => csr,
        Err(e) => return Outcome::Error(e),
    };
    log::debug!("autosign request {certname:?}: {csr:?}");
    match decide(&rules, certname, &csr) {
        Ok(decision) => claim(decision),
        Err(e) => Outcome::Error(e),
    }
}

/// Writes the decision line for `outcome` and returns its exit code.
pub fn report(certname: &str, outcome: &Outcome, err: &mut dyn Write) -> u8 {
    // A closed stderr must not turn a decision into a panic; the exit code still tells.
    let _ = writeln!(err, "{}", log_line(certname, outcome));
    let _ = err.flush();
    outcome.exit_code()
}

/// `cloudcfg autosign`: decides on the CSR in `csr` for `certname` under the policy at
/// `policy_path`, writes one decision line to `err`, and returns the exit code (0 sign,
/// 1 refuse, 2 unreadable CSR or policy).
pub fn run(policy_path: &Path, certname: &str, csr: &mut dyn Read, err: &mut dyn Write) -> u8 {
    let outcome = evaluate(policy_path, certname, csr);
    report(certname, &outcome, err)
}

/// Whether the binary was started as `autosign` (argv[0]'s file name), i.e. as
/// `/usr/lib/cloudcfg/autosign` by puppetserver.
pub fn invoked_as_policy_executable(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(POLICY_EXECUTABLE_NAME))
}

/// The command line `autosign CERTNAME` stands for: `cloudcfg autosign -- CERTNAME`. The `--`
/// keeps a certname such as `--policy=/tmp/x` from being read as an option.
pub fn policy_executable_args(args: &[OsString]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["cloudcfg".into(), "autosign".into(), "--".into()];
    out.extend(args.iter().skip(1).cloned());
    out
}

#[cfg(test)]
mod tests;
