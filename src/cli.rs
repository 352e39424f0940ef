//! The command line (contract.md, "Commands"). Errors of every layer become exit codes here,
//! in [`CliError::exit_code`], and nowhere else.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::action::{Facts, PlanError};
use crate::autosign;
use crate::config::{self, CloudConfig, Loaded};
use crate::datasource::{self, DatasourceError, Host, InstanceData};
use crate::decode::Limits;
use crate::diag;
use crate::plan::{self, render};
use crate::system::{self, SystemConfig, SystemConfigError};
use crate::target::{self, FactArgs, FactsError};

#[derive(Debug, Parser)]
#[command(
    name = "cloudcfg",
    version,
    about = "Boot-time cloud-config processor for Debian and Ubuntu instances",
    long_about = "cloudcfg reads #cloud-config user data (apt sources, keys and proxy, debconf \
                  answers, packages, the puppet agent), validates it offline, prints what first \
                  boot will do, and applies it to a running system or an image root."
)]
pub struct Cli {
    /// The system config (default /etc/cloudcfg/cloudcfg.yaml; absent file = defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum DatasourceArg {
    #[default]
    Auto,
    Ec2,
    Nocloud,
}

impl DatasourceArg {
    fn requested(self) -> Option<system::DatasourceName> {
        match self {
            DatasourceArg::Auto => None,
            DatasourceArg::Ec2 => Some(system::DatasourceName::Ec2),
            DatasourceArg::Nocloud => Some(system::DatasourceName::Nocloud),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check user data offline: diagnostics as FILE:LINE:COL, exit 1 when there are errors.
    Validate {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// User-data files (`-` reads standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
    /// Print the ordered actions first boot would take; touches nothing.
    Plan {
        /// The user-data file (`-` reads standard input).
        #[arg(long, value_name = "FILE")]
        user_data: String,
        /// Plan for an image root: facts not given are read from DIR.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(flatten)]
        facts: FactArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print pre-shared keys, passwords and proxy credentials instead of their hashes.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Apply user data to this system, or to an image root with --root.
    Apply {
        /// The user-data file (`-` reads standard input).
        #[arg(long, value_name = "FILE")]
        user_data: String,
        /// Apply to an image root: files land under DIR, commands run chrooted into DIR.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(flatten)]
        facts: FactArgs,
        /// Print the plan and touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run modules that already succeeded for this instance again.
        #[arg(long)]
        force: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The boot entry point: find the datasource, fetch user data, apply it, report.
    Run {
        /// Configure an image root: read its NoCloud seed directory, write under DIR (the
        /// host's kernel command line, DMI and disks are not looked at).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// The datasource; `auto` detects it (docs/datasources.md).
        #[arg(long, value_enum, default_value_t = DatasourceArg::Auto)]
        datasource: DatasourceArg,
    },
    /// Report the state of this boot's run, like `cloud-init status`.
    Status {
        /// Wait until the run has finished.
        #[arg(long)]
        wait: bool,
        /// Also print the datasource, the modules and the errors.
        #[arg(long)]
        long: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of the cloud-config (or, with --system, of the system config).
    Schema {
        /// Print the system config's schema instead.
        #[arg(long)]
        system: bool,
    },
    /// puppetserver's policy executable: decide on the CSR (PEM) on standard input; exit 0
    /// signs, 1 refuses, 2 means the CSR or the policy is unreadable. Also run as `autosign
    /// CERTNAME` (the binary linked as /usr/lib/cloudcfg/autosign).
    Autosign {
        /// The policy (default: the system config's `autosign_policy`, else
        /// /etc/cloudcfg/autosign.yaml).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The certname puppetserver asks about.
        certname: String,
    },
    /// Print the manual page, cloudcfg(1), in roff (for packaging).
    #[command(hide = true)]
    Manpage,
    /// cloudcfg.service's ExecStopPost=: close a report that a killed or crashed run left
    /// `running`, so that `status --wait` returns. Reads systemd's $SERVICE_RESULT,
    /// $EXIT_CODE and $EXIT_STATUS.
    #[command(hide = true)]
    StopPost,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    SystemConfig(#[from] SystemConfigError),
    #[error(transparent)]
    Facts(#[from] FactsError),
    #[error(transparent)]
    MissingFact(#[from] PlanError),
    /// The diagnostics were printed already.
    #[error("{file}: invalid user data")]
    InvalidConfig { file: String },
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    /// `run` found no datasource, or its datasource could not be read.
    #[error(transparent)]
    Datasource(#[from] DatasourceError),
    /// The report was printed already.
    #[error("a module failed")]
    ModuleFailed,
}

impl CliError {
    /// The one mapping from errors to the contract's exit codes.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidConfig { .. } | CliError::ModuleFailed | CliError::Datasource(_) => 1,
            CliError::Io { .. }
            | CliError::SystemConfig(_)
            | CliError::Facts(_)
            | CliError::MissingFact(_)
            | CliError::Apply(_) => 2,
        }
    }
}

fn read_input(file: &str) -> Result<Vec<u8>, CliError> {
    let io = |source| CliError::Io {
        path: file.to_owned(),
        source,
    };
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(io)?;
        Ok(buf)
    } else {
        std::fs::read(file).map_err(io)
    }
}

fn display_name(file: &str) -> &str {
    if file == "-" { "<stdin>" } else { file }
}

fn system_config(path: Option<&Path>) -> Result<SystemConfig, CliError> {
    let path = path.unwrap_or_else(|| Path::new(system::DEFAULT_PATH));
    Ok(system::load(path)?)
}

fn write_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn validate(format: Format, files: &[String]) -> Result<u8, CliError> {
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
fn check_loaded(name: &str, bytes: &[u8]) -> Result<Loaded, CliError> {
    let loaded = config::load(bytes, &Limits::default());
    if !loaded.is_valid() {
        eprint!("{}", loaded.report.render_text(name));
        return Err(CliError::InvalidConfig {
            file: name.to_owned(),
        });
    }
    Ok(loaded)
}

fn plan_command(
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
    let nothing_to_do = CloudConfig::default();
    let plan = plan::plan(
        loaded.config.as_ref().unwrap_or(&nothing_to_do),
        &facts,
        &system,
    )?;
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

#[allow(clippy::too_many_arguments)]
fn apply_command(
    cli_config: Option<&Path>,
    user_data: &str,
    root: Option<&Path>,
    fact_args: &FactArgs,
    dry_run: bool,
    force: bool,
    format: Format,
) -> Result<u8, CliError> {
    if dry_run {
        return plan_command(cli_config, user_data, root, fact_args, format, false);
    }
    let system = system_config(cli_config)?;
    let bytes = read_input(user_data)?;
    let loaded = check_loaded(display_name(user_data), &bytes)?;
    let facts = target::resolve(fact_args, root.unwrap_or(Path::new("/")))?;
    let instance_data = serde_json::json!({"datasource": "none", "facts": facts_json(&facts)});
    apply_loaded(Applying {
        system: &system,
        root,
        loaded: &loaded,
        user_data: bytes,
        facts,
        datasource: "none",
        instance_data,
        force,
        format,
    })
}

fn facts_json(facts: &Facts) -> serde_json::Value {
    serde_json::json!({
        "instance_id": facts.instance_id, "hostname": facts.hostname,
        "fqdn": facts.fqdn, "release": facts.release,
    })
}

/// What `apply` and `run` share once the user data is loaded and the facts are known.
struct Applying<'a> {
    system: &'a SystemConfig,
    root: Option<&'a Path>,
    loaded: &'a Loaded,
    /// The raw bytes, kept in the instance's state directory.
    user_data: Vec<u8>,
    facts: Facts,
    datasource: &'a str,
    instance_data: serde_json::Value,
    force: bool,
    format: Format,
}

/// Plans, applies, prints the outcome.
fn apply_loaded(a: Applying<'_>) -> Result<u8, CliError> {
    let facts = &a.facts;
    let instance_id = facts
        .require(
            &facts.instance_id,
            "--instance-id",
            "per-instance state needs the instance id (the target's machine-id is empty)",
        )?
        .to_owned();
    let config = a.loaded.config.clone().unwrap_or_default();
    let plan = plan::plan(&config, facts, a.system)?;
    for (path, message) in a.loaded.warnings() {
        eprintln!(
            "cloudcfg: warning: {}",
            if path.is_empty() {
                message
            } else {
                format!("{path}: {message}")
            }
        );
    }
    for w in &plan.warnings {
        eprintln!("cloudcfg: warning: {}: {}", w.path, w.message);
    }
    let opts = crate::apply::ApplyOptions {
        root: a.root.unwrap_or(Path::new("/")).to_path_buf(),
        image_root: a.root.is_some(),
        force: a.force,
        datasource: a.datasource.to_owned(),
        instance_id,
        user_data: a.user_data,
        instance_data: a.instance_data,
        runner: runner_config(a.system),
        boot_id: boot_id(),
        launchpad_api: a.system.launchpad_api().to_owned(),
        default_keyserver: a.system.keyserver().to_owned(),
        runtime_dir: crate::report::runtime_dir(),
    };
    let outcome = crate::apply::apply(&plan, &opts)?;
    for w in &outcome.warnings {
        eprintln!("cloudcfg: warning: {w}");
    }
    match a.format {
        Format::Text => write_out(&crate::report::status::text(Some(&outcome.status), true)),
        Format::Json => write_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&outcome.status).unwrap_or_default()
        )),
    }
    if outcome.failed() {
        Err(CliError::ModuleFailed)
    } else {
        Ok(0)
    }
}

/// The runner's settings from the system config.
fn runner_config(system: &SystemConfig) -> crate::apply::runner::RunnerConfig {
    let mut config = crate::apply::runner::RunnerConfig::default();
    if let Some(timeout) = system.dpkg_lock_timeout() {
        config.lock_timeout = timeout;
    }
    if let Some(attempts) = system.apt_update_attempts() {
        config.update_attempts = attempts;
    }
    config
}

/// The kernel's id of this boot: per-boot modules run once for each.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// What a critical status.json says about a run that stopped before any module ran.
#[derive(Default)]
struct Critical {
    datasource: Option<&'static str>,
    instance_id: Option<String>,
    /// Lines after the error itself (the diagnostics of invalid user data).
    details: Vec<String>,
}

/// `cloudcfg run`: datasource -> user data -> apply. Whatever stops it before a module runs (no
/// datasource, an unreadable one, invalid user data, I/O) is written to status.json as a
/// critical error, so that `cloudcfg status --wait` and cloud-init's clients never wait for a
/// run that has ended.
fn run_command(
    cli_config: Option<&Path>,
    root: Option<&Path>,
    datasource: DatasourceArg,
) -> Result<u8, CliError> {
    let mut critical = Critical::default();
    let result = boot(cli_config, root, datasource, &mut critical);
    match &result {
        Ok(_) | Err(CliError::ModuleFailed) => {}
        Err(e) => {
            let mut status = crate::report::Status::critical(
                critical.datasource.unwrap_or("none"),
                critical.instance_id.as_deref(),
                e.to_string(),
            );
            status.errors.extend(critical.details);
            let target = root.unwrap_or(Path::new("/"));
            let reporter =
                crate::report::Reporter::new(&crate::report::runtime_dir(), target, root.is_some());
            reporter.write(&status);
            // Image builders wait for boot-finished whatever the outcome, as with cloud-init,
            // which falls back to its "none" datasource and its instance id.
            let instance = critical
                .instance_id
                .as_deref()
                .filter(|id| target::check_instance_id(id).is_ok())
                .unwrap_or("iid-datasource-none");
            reporter.begin_instance(instance);
            reporter.boot_finished(instance);
        }
    }
    result
}

fn boot(
    cli_config: Option<&Path>,
    root: Option<&Path>,
    requested: DatasourceArg,
    critical: &mut Critical,
) -> Result<u8, CliError> {
    let system = system_config(cli_config)?;
    let target = root.unwrap_or(Path::new("/"));
    let host = match root {
        Some(dir) => Host::image(dir),
        None => Host::running(),
    };
    let detected = datasource::detect(requested.requested(), &host, &system)?;
    let name = detected.choice.name();
    critical.datasource = Some(name);
    log::info!("datasource {name}: {}", detected.why);
    let data: InstanceData = detected.choice.build().fetch()?;
    critical.instance_id = Some(data.instance_id.clone());
    let facts = target::resolve(&data.fact_args(), target)?;
    let mut instance_data = data.to_json();
    instance_data["detected"] = detected.why.clone().into();
    instance_data["facts"] = facts_json(&facts);
    let bytes = data.user_data.unwrap_or_default();
    let loaded = config::load(&bytes, &Limits::default());
    if !loaded.is_valid() {
        // Kept all the same, so that `cloudcfg validate` can be run on the very bytes.
        let writer = crate::writer::Writer::new(target);
        crate::apply::state::InstanceState::open(&writer, &data.instance_id, &boot_id())
            .and_then(|state| state.store(&bytes, &instance_data))
            .map_err(|e| CliError::Apply(crate::apply::ApplyError::State(e)))?;
        let name = format!(
            "{}/{}/user-data",
            target::in_root(target, crate::apply::state::STATE_ROOT).display(),
            data.instance_id
        );
        let text = loaded.report.render_text(&name);
        eprint!("{text}");
        critical.details = text
            .lines()
            .filter(|l| l.contains(": error: "))
            .map(str::to_owned)
            .collect();
        return Err(CliError::InvalidConfig { file: name });
    }
    apply_loaded(Applying {
        system: &system,
        root,
        loaded: &loaded,
        user_data: bytes,
        facts,
        datasource: name,
        instance_data,
        force: false,
        format: Format::Text,
    })
}

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

fn stop_post_command() -> Result<u8, CliError> {
    let var = |name| std::env::var(name).unwrap_or_default();
    let result = var("SERVICE_RESULT");
    let why = format!(
        "service result {}, {} {}",
        if result.is_empty() {
            "unknown"
        } else {
            &result
        },
        var("EXIT_CODE"),
        var("EXIT_STATUS")
    );
    let dir = crate::report::runtime_dir();
    let closed = crate::report::close_interrupted(&dir, Path::new("/"), result != "success", &why)
        .map_err(|source| CliError::Io {
            path: dir.join("cloudcfg/status.json").display().to_string(),
            source,
        })?;
    if closed {
        eprintln!(
            "cloudcfg: the run ended before it finished its report ({why}); marked as an error"
        );
    }
    Ok(0)
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
            format,
        } => apply_command(
            cli.config.as_deref(),
            user_data,
            root.as_deref(),
            facts,
            *dry_run,
            *force,
            *format,
        ),
        Command::Run { root, datasource } => {
            run_command(cli.config.as_deref(), root.as_deref(), *datasource)
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
        Command::Autosign { policy, certname } => Ok(autosign_command(
            cli.config.as_deref(),
            policy.as_deref(),
            certname,
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
        Command::StopPost => stop_post_command(),
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
