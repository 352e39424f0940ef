//! The command line (contract.md, "Commands"): one file per group of commands, the errors'
//! exit codes in [`error`].

mod args;
mod boot;
mod check;
mod error;
mod fetched;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use self::args::{Cli, Command, DatasourceArg, Format};
pub use self::error::CliError;

use self::boot::{apply_command, run_command, stop_post_command};
use self::check::{plan_command, validate};
use self::error::write_out;
use crate::autosign;
use crate::system;

fn status_command(wait: bool, long: bool, format: Format) -> Result<u8, CliError> {
    let dir = crate::report::runtime_dir();
    let io = |source| CliError::Io {
        path: dir.join("cloudcfg/status.json").display().to_string(),
        source,
    };
    let status = if wait {
        crate::report::status::wait(&dir, crate::report::disabled_here).map_err(io)?
    } else {
        crate::report::read_status(&dir).map_err(io)?
    };
    // No run this boot, and the unit's conditions keep one from starting: say so, as
    // cloud-init says `status: disabled`, rather than `not started`.
    if status.is_none()
        && let Some(reason) = crate::report::disabled_here()
    {
        match format {
            Format::Text => write_out(&crate::report::status::disabled_text(&reason, long)),
            Format::Json => write_out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&crate::report::status::disabled_json(&reason))
                    .unwrap_or_default()
            )),
        }
        return Ok(0);
    }
    match format {
        Format::Text => write_out(&crate::report::status::text(status.as_ref(), long)),
        Format::Json => write_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&crate::report::status::json(status.as_ref()))
                .unwrap_or_default()
        )),
    }
    Ok(crate::report::status::exit_code(status.as_ref()))
}

/// Autosign reports every failure itself, as its one decision line, and returns its exit code.
fn autosign_command(cli_config: Option<&Path>, policy: Option<&Path>, certname: &str) -> u8 {
    let mut stderr = std::io::stderr().lock();
    let path = match policy {
        Some(path) => path.to_path_buf(),
        None => match system::load(cli_config.unwrap_or(Path::new(system::DEFAULT_PATH))) {
            Ok(system) => PathBuf::from(system.autosign_policy()),
            Err(e) => {
                let outcome = autosign::Outcome::Error(e.into());
                return autosign::report(certname, &outcome, &mut stderr);
            }
        },
    };
    autosign::run(&path, certname, &mut std::io::stdin().lock(), &mut stderr)
}

/// `autosign expect|forget`: one line on stderr, like the decisions, and the exit code.
fn autosign_launcher(cli_config: Option<&Path>, launcher: &args::AutosignLauncher) -> u8 {
    let (policy, certname) = match launcher {
        args::AutosignLauncher::Expect {
            policy, certname, ..
        }
        | args::AutosignLauncher::Forget { policy, certname } => (policy.as_deref(), certname),
    };
    let policy_path = match policy {
        Some(path) => path.to_path_buf(),
        None => match system::load(cli_config.unwrap_or(Path::new(system::DEFAULT_PATH))) {
            Ok(system) => PathBuf::from(system.autosign_policy()),
            Err(e) => {
                eprintln!("{}: {e}", autosign::LOG_PREFIX);
                return 2;
            }
        },
    };
    let shown = policy_path.display().to_string();
    let result = autosign::load_policy(&policy_path).and_then(|rules| match launcher {
        args::AutosignLauncher::Expect { ttl, .. } => autosign::expect(
            &rules,
            &shown,
            certname,
            ttl.map(Into::into),
            std::time::SystemTime::now(),
        )
        .map(|place| (0, format!("expected: {place}"))),
        args::AutosignLauncher::Forget { .. } => {
            autosign::forget(&rules, &shown, certname).map(|removed| match removed {
                true => (0, format!("forgotten: {certname}")),
                false => (1, format!("no expectation for {certname}")),
            })
        }
    });
    match result {
        Ok((code, line)) => {
            eprintln!("{}: {line}", autosign::LOG_PREFIX);
            code
        }
        Err(e) => {
            eprintln!("{}: {e}", autosign::LOG_PREFIX);
            2
        }
    }
}

fn run(cli: Cli) -> Result<u8, CliError> {
    match &cli.command {
        Command::Validate { format, files } => validate(*format, files),
        Command::Plan {
            user_data,
            root,
            facts,
            format,
            show_secrets,
        } => plan_command(
            cli.config.as_deref(),
            user_data,
            root.as_deref(),
            facts,
            *format,
            *show_secrets,
        ),
        Command::Apply {
            user_data,
            root,
            facts,
            dry_run,
            force,
            run_scripts,
            format,
        } => apply_command(
            cli.config.as_deref(),
            user_data,
            root.as_deref(),
            facts,
            *dry_run,
            *run_scripts,
            *force,
            *format,
        ),
        Command::Run {
            root,
            datasource,
            stages,
        } => run_command(
            cli.config.as_deref(),
            root.as_deref(),
            *datasource,
            &stages.iter().map(|s| s.stage()).collect::<Vec<_>>(),
        ),
        Command::Clean {
            root,
            logs,
            seed,
            machine_id,
        } => {
            let root = root.as_deref().unwrap_or(std::path::Path::new("/"));
            let options = crate::apply::clean::CleanOptions {
                logs: *logs,
                seed: *seed,
                machine_id: *machine_id,
            };
            if !root.is_dir() {
                return Err(CliError::Io {
                    path: root.display().to_string(),
                    source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
                });
            }
            let writer = crate::writer::Writer::new(root);
            let removed =
                crate::apply::clean::clean(&writer, options).map_err(|e| CliError::Io {
                    path: root.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            for what in removed {
                println!("removed {what}");
            }
            Ok(0)
        }
        Command::Status { wait, long, format } => status_command(*wait, *long, *format),
        Command::Schema { system } => {
            write_out(&if *system {
                crate::schema::system_config()
            } else {
                crate::schema::cloud_config()
            });
            Ok(0)
        }
        Command::Autosign {
            launcher: Some(launcher),
            ..
        } => Ok(autosign_launcher(cli.config.as_deref(), launcher)),
        Command::Autosign {
            policy, certname, ..
        } => Ok(autosign_command(
            cli.config.as_deref(),
            policy.as_deref(),
            certname.as_deref().unwrap_or_default(),
        )),
        Command::Manpage => {
            let mut stdout = std::io::stdout().lock();
            crate::manpage::render(Cli::command(), &mut stdout)
                .and_then(|()| stdout.flush())
                .map_err(|source| CliError::Io {
                    path: "<stdout>".into(),
                    source,
                })?;
            Ok(0)
        }
        Command::StopPost { stage } => stop_post_command(stage.map(|s| s.stage())),
    }
}

/// Drops HTTP clients' wire dumps from the log: at trace level ureq hex-dumps every request,
/// headers included, which would put the IMDSv2 token (and any other credential a request
/// carries) in the journal of anyone who set `RUST_LOG=trace`.
pub struct NoWireDumps<L>(pub L);

impl<L> NoWireDumps<L> {
    fn is_wire(metadata: &log::Metadata) -> bool {
        metadata.level() == log::Level::Trace && metadata.target().starts_with("ureq")
    }
}

impl<L: log::Log> log::Log for NoWireDumps<L> {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        !Self::is_wire(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !Self::is_wire(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

pub fn main() -> ExitCode {
    // pgp's errors capture a backtrace whenever RUST_BACKTRACE is set (std reads
    // RUST_LIB_BACKTRACE first): with it, one malformed key in user data cost 78 ms of
    // unwinding instead of 2 ms. Panics keep their backtraces; library errors never need one.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the first thing main does, before any other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    // pgp warns about every packet it cannot read, as a Debug dump of its error; cloudcfg
    // reports a bad key itself, with its position, so those warnings are only noise.
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,pgp=off"))
            .format_target(false)
            .build();
    let max_level = logger.filter();
    if log::set_boxed_logger(Box::new(NoWireDumps(logger))).is_ok() {
        log::set_max_level(max_level);
    }
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args
        .first()
        .is_some_and(|argv0| autosign::invoked_as_policy_executable(argv0))
    {
        args = autosign::policy_executable_args(&args);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 0 for --help/--version and 2 for usage errors, as the contract wants.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if !matches!(e, CliError::InvalidConfig { .. } | CliError::ModuleFailed) {
                eprintln!("cloudcfg: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_visible_command_has_a_section_and_hidden_ones_none() {
        let mut out = Vec::new();
        crate::manpage::render(Cli::command(), &mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert!(page.contains(".TH cloudcfg 1"), "{page}");
        for sub in Cli::command().get_subcommands() {
            let heading = format!(".SS \"cloudcfg {}\"", sub.get_name());
            assert_eq!(page.contains(&heading), !sub.is_hide_set(), "{heading}");
        }
        assert!(page.contains("\\-\\-user\\-data"), "{page}");
        assert!(page.contains("cloudcfg=disabled"), "{page}");
        assert!(!page.contains("cloudcfg-validate(1)"), "{page}");
        // One heading per section, none left over from the subcommands' renderings.
        assert_eq!(page.matches(".SH SYNOPSIS").count(), 1);
        assert_eq!(page.matches(".SH OPTIONS").count(), 1);
    }
}
