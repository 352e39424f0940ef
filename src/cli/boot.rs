//! `apply`, `run` and the unit's `stop-post`: the commands that change the target.

use std::path::Path;

use super::args::{DatasourceArg, Format};
use super::check::{check_loaded, plan_command};
use super::error::{CliError, display_name, read_input, system_config, write_out};
use super::fetched;
use crate::action::{Facts, Stage};
use crate::config::{self, Loaded};
use crate::datasource::{self, Host, InstanceData};
use crate::decode::Limits;
use crate::system::SystemConfig;
use crate::target::{self, FactArgs};

#[allow(clippy::too_many_arguments)]
pub fn apply_command(
    cli_config: Option<&Path>,
    user_data: &str,
    root: Option<&Path>,
    fact_args: &FactArgs,
    dry_run: bool,
    run_scripts: bool,
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
        name: display_name(user_data),
        user_data: bytes,
        facts,
        datasource: "none",
        instance_data,
        force,
        run_scripts,
        format,
        stages: &[],
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
    /// What the user data is called in diagnostics: its file, or the datasource.
    name: &'a str,
    /// The raw bytes, kept in the instance's state directory.
    user_data: Vec<u8>,
    facts: Facts,
    datasource: &'a str,
    instance_data: serde_json::Value,
    force: bool,
    run_scripts: bool,
    format: Format,
    /// The stages to run (empty: all).
    stages: &'a [Stage],
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
    let plan = super::check::plan_for(a.loaded, a.name, facts, a.system)?;
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
        stages: a.stages.to_vec(),
        root: a.root.unwrap_or(Path::new("/")).to_path_buf(),
        image_root: a.root.is_some(),
        force: a.force,
        run_scripts: a.run_scripts,
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
    if let Some(message) = &outcome.final_message {
        // The unit sends standard error to the console too, where cloud-init's line is read.
        eprintln!("{message}");
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
pub fn run_command(
    cli_config: Option<&Path>,
    root: Option<&Path>,
    datasource: DatasourceArg,
    stages: &[Stage],
) -> Result<u8, CliError> {
    let mut critical = Critical::default();
    let result = boot(cli_config, root, datasource, stages, &mut critical);
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
            // A run of the early stages only is followed by the unit that runs the rest,
            // which tries again and says when the boot is finished.
            if stages.is_empty() || stages.contains(&Stage::Final) {
                reporter.boot_finished(instance);
            }
        }
    }
    result
}

fn boot(
    cli_config: Option<&Path>,
    root: Option<&Path>,
    requested: DatasourceArg,
    stages: &[Stage],
    critical: &mut Critical,
) -> Result<u8, CliError> {
    let system = system_config(cli_config)?;
    let target = root.unwrap_or(Path::new("/"));
    let host = match root {
        Some(dir) => Host::image(dir),
        None => Host::running(),
    };
    let runtime = crate::report::runtime_dir();
    let this_boot = boot_id();
    let earlier_stage_ran = !stages.is_empty() && !stages.contains(&Stage::Init);
    let (why, data): (String, InstanceData) = match earlier_stage_ran
        .then(|| fetched::kept(&runtime, &this_boot, target))
        .flatten()
    {
        Some((why, data)) => {
            log::info!(
                "datasource {}: as the init stage fetched it",
                data.datasource
            );
            (why, data)
        }
        None => {
            let detected = datasource::detect(requested.requested(), &host, &system)?;
            critical.datasource = Some(detected.choice.name());
            log::info!("datasource {}: {}", detected.choice.name(), detected.why);
            let data = detected.choice.build().fetch()?;
            if !stages.is_empty() && !stages.contains(&Stage::Final) {
                fetched::keep(&runtime, &this_boot, target, &detected.why, &data);
            }
            (detected.why, data)
        }
    };
    let name = data.datasource;
    critical.datasource = Some(name);
    critical.instance_id = Some(data.instance_id.clone());
    let mut facts = target::resolve(&data.fact_args(), target)?;
    facts.public_keys = data.public_keys.clone();
    facts.instance_identity = data.identity.clone();
    let mut instance_data = data.to_json();
    instance_data["detected"] = why.into();
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
        name,
        user_data: bytes,
        facts,
        datasource: name,
        instance_data,
        force: false,
        run_scripts: false,
        format: Format::Text,
        stages,
    })
}

pub fn stop_post_command(ran_up_to: Option<Stage>) -> Result<u8, CliError> {
    let var = |name| std::env::var(name).unwrap_or_default();
    let result = var("SERVICE_RESULT");
    if result == "success" && ran_up_to.is_some_and(|stage| stage != Stage::Final) {
        // The report stays `running` for the unit that runs the later stages.
        return Ok(0);
    }
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
