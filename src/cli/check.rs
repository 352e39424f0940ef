//! `validate` and `plan`: user data checked and planned, nothing touched.

use std::path::Path;

use super::args::Format;
use super::error::{CliError, display_name, read_input, system_config, write_out};
use crate::config::{self, CloudConfig, Loaded};
use crate::decode::Limits;
use crate::diag;
use crate::plan::{self, render};
use crate::target::{self, FactArgs};

pub fn validate(format: Format, files: &[String]) -> Result<u8, CliError> {
    let limits = Limits::default();
    let mut worst = 0u8;
    let mut reports = Vec::new();
    let (mut errors, mut warnings) = (0, 0);
    for file in files {
        let bytes = match read_input(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cloudcfg: {e}");
                worst = 2;
                continue;
            }
        };
        let loaded = config::load(&bytes, &limits);
        errors += loaded.report.errors();
        warnings += loaded.report.warnings();
        if !loaded.is_valid() && worst == 0 {
            worst = 1;
        }
        reports.push((display_name(file).to_owned(), loaded));
    }
    match format {
        Format::Text => {
            let mut out = String::new();
            for (name, loaded) in &reports {
                out.push_str(&loaded.report.render_text(name));
            }
            out.push_str(&diag::summary(errors, warnings, reports.len()));
            out.push('\n');
            write_out(&out);
        }
        Format::Json => {
            let files: Vec<serde_json::Value> = reports
                .iter()
                .map(|(name, loaded)| loaded.report.to_json(name))
                .collect();
            let json = serde_json::json!({ "files": files });
            write_out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            ));
        }
    }
    // As in plan_command: the process ends here.
    std::mem::forget(reports);
    Ok(worst)
}

/// Loads user data and fails with its diagnostics on stderr when it is invalid.
pub fn load_valid(file: &str) -> Result<Loaded, CliError> {
    let bytes = read_input(file)?;
    check_loaded(display_name(file), &bytes)
}

/// Loads user data already read (standard input can be read only once).
pub fn check_loaded(name: &str, bytes: &[u8]) -> Result<Loaded, CliError> {
    let loaded = config::load(bytes, &Limits::default());
    if !loaded.is_valid() {
        eprint!("{}", loaded.report.render_text(name));
        return Err(CliError::InvalidConfig {
            file: name.to_owned(),
        });
    }
    Ok(loaded)
}

/// The plan of `loaded` for this target. A value the target cannot take (an apt 3 target and
/// a key apt 3 refuses) is invalid user data here: a diagnostic at its position, exit 1.
pub fn plan_for(
    loaded: &Loaded,
    name: &str,
    facts: &crate::action::Facts,
    system: &crate::system::SystemConfig,
) -> Result<crate::action::Plan, CliError> {
    let nothing_to_do = CloudConfig::default();
    let config = loaded.config.as_ref().unwrap_or(&nothing_to_do);
    match plan::plan(config, facts, system) {
        Ok(plan) => Ok(plan),
        Err(crate::action::PlanError::Unsupported { path, reason }) => {
            let pos = loaded.position_of(&path).unwrap_or_default();
            let mut report = crate::diag::Report::default();
            report.push(crate::diag::Diagnostic::error(pos, path, reason));
            eprint!("{}", report.render_text(name));
            Err(CliError::InvalidConfig {
                file: name.to_owned(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

pub fn plan_command(
    cli_config: Option<&Path>,
    user_data: &str,
    root: Option<&Path>,
    fact_args: &FactArgs,
    format: Format,
    show_secrets: bool,
) -> Result<u8, CliError> {
    let system = system_config(cli_config)?;
    let loaded = load_valid(user_data)?;
    let facts = target::resolve(fact_args, root.unwrap_or(Path::new("/")))?;
    let mut plan = plan_for(&loaded, display_name(user_data), &facts, &system)?;
    if root.is_some() {
        let mut running: Vec<&str> = plan
            .actions
            .iter()
            .filter(|a| matches!(a.kind, crate::action::ActionKind::RunScript { .. }))
            .map(|a| a.module)
            .collect();
        running.dedup();
        if !running.is_empty() {
            plan.warnings.push(crate::action::PlanWarning {
                path: String::new(),
                message: format!(
                    "in an image root the scripts of {} run only with `apply --run-scripts`; \
                     otherwise the first boot runs them",
                    running.join(", ")
                ),
            });
        }
    }
    let warnings = loaded.warnings();
    match format {
        // The text form summarises contents and never prints them, secrets or not.
        Format::Text => write_out(&render::text(&plan, &warnings)),
        Format::Json => {
            let shown = if show_secrets { plan } else { plan.redacted() };
            write_out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&render::json(&shown, &warnings)).unwrap_or_default()
            ))
        }
    }
    // The process ends here: freeing a large config entry by entry only costs time (5 % of
    // planning 10,000 packages), and the kernel takes the memory back at exit anyway.
    std::mem::forget(loaded);
    Ok(0)
}
