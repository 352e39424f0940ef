//! plan -> the system. The only code that touches it.
//!
//! Modules run in plan order. A module whose actions all succeeded is marked done for the
//! instance (see [`state`]); a module that fails is recorded, nothing of it is undone (its
//! writes are atomic and its keys verified before any source is written), and the next module
//! still runs. Kinds that depend on the target's state are resolved here: `edit_ini` reads the
//! file, `reconfigure_installed` asks dpkg's status file, the service kinds look for a running
//! systemd.

mod accounts;
pub mod chroot;
pub mod clean;
mod hostname;
pub mod ini;
pub mod keys;
pub mod log;
pub mod runner;
mod ssh;
pub mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::action::{APT_ENV, Action, ActionKind, Frequency, ModuleEntry, Plan, Stage, env_map};
use crate::report::{ModuleState, Reporter, RunStatus, Status, now};

use self::keys::{KeyError, KeyFetcher};
use self::log::RunLog;
use self::runner::{RunError, Runner, RunnerConfig};
use self::state::InstanceState;
use crate::writer::{SyncBatch, WriteError, Writer};

/// Set to N (tests only): the process kills itself with SIGKILL right after its N-th action,
/// to prove that a run killed at any point converges when started again.
pub const KILL_HOOK_ENV: &str = "CLOUDCFG_TEST_KILL_AFTER_ACTION";

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{path}: {reason}")]
    Target { path: String, reason: String },
}

impl ActionError {
    pub fn reason(&self) -> &'static str {
        match self {
            ActionError::Write(_) => "write-failed",
            ActionError::Run(e) => e.reason(),
            ActionError::Key(e) => e.reason(),
            ActionError::Target { .. } => "target-unreadable",
        }
    }
}

/// An error before any module ran: nothing was changed (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("instance state: {0}")]
    State(#[from] WriteError),
    #[error("{root}: not a directory")]
    NoRoot { root: String },
}

pub struct ApplyOptions {
    /// The stages to run (empty: all). A run of later stages continues this boot's report
    /// when the earlier stages ran; when they did not, it runs them too.
    pub stages: Vec<Stage>,
    /// `/`, or the image root given with `--root`.
    pub root: PathBuf,
    pub image_root: bool,
    pub force: bool,
    pub datasource: String,
    pub instance_id: String,
    /// The kernel's boot id, for per-boot markers.
    pub boot_id: String,
    /// The raw user data, kept in the instance's state directory.
    pub user_data: Vec<u8>,
    pub instance_data: serde_json::Value,
    pub runner: RunnerConfig,
    /// In an image root, scripts (bootcmd, runcmd, user scripts) run only when asked.
    pub run_scripts: bool,
    pub launchpad_api: String,
    pub default_keyserver: String,
    pub runtime_dir: PathBuf,
}

/// What happened, for the caller's exit code and message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub warnings: Vec<String>,
    /// `final_message`, filled in, for the console.
    pub final_message: Option<String>,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        !self.status.recoverable_errors.is_empty() || !self.status.errors.is_empty()
    }
}

struct Executor<'a> {
    opts: &'a ApplyOptions,
    writer: Writer,
    runner: Runner,
    keys: KeyFetcher,
    log: RunLog,
    warnings: Vec<String>,
    /// The final message, printed by the caller once the run is reported.
    final_message: Option<String>,
    /// The shutdown asked for, run once the report is written.
    power_state: Option<Vec<String>>,
    /// The module's user files, put on disk once when the module ends, before its marker.
    sync_batch: SyncBatch,
    /// `(owner, group)` of the module's user files -> `(uid, gid)` in the target.
    user_file_owners: HashMap<(String, String), (u32, u32)>,
    actions_done: usize,
    kill_after: Option<usize>,
}

/// Installed packages per dpkg's status file (`install ok installed`).
fn installed_packages(root: &Path) -> Result<BTreeSet<String>, ActionError> {
    let path = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&path).map_err(|e| ActionError::Target {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut installed = BTreeSet::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut ok = false;
        for line in stanza.lines() {
            if let Some(n) = line.strip_prefix("Package: ") {
                name = Some(n.trim().to_owned());
            } else if let Some(s) = line.strip_prefix("Status: ") {
                ok = s.trim().ends_with(" installed") && !s.contains("not-installed");
            }
        }
        if let (Some(name), true) = (name, ok) {
            installed.insert(name);
        }
    }
    Ok(installed)
}

/// Files a package's config script reads back in preference to the debconf database, so a
/// preseeded answer only takes effect on reconfigure once they are gone (cloud-init keeps the
/// same kind of table, CONFIG_CLEANERS, for its own package). tzdata's config takes the zone of
/// /etc/localtime and /etc/timezone over a preseeded tzdata/Areas.
const RECONFIGURE_CLEANERS: &[(&str, &[&str])] =
    &[("tzdata", &["/etc/localtime", "/etc/timezone"])];

/// Plans only ever name root (contract.md: the puppet user may not exist yet); anything else
/// is a planning bug, refused rather than guessed.
fn owner_ids(path: &str, owner: &str, group: &str) -> Result<(u32, u32), ActionError> {
    if owner == "root" && group == "root" {
        Ok((0, 0))
    } else {
        Err(ActionError::Target {
            path: path.to_owned(),
            reason: format!("owner {owner}:{group} is not supported"),
        })
    }
}

impl Executor<'_> {
    fn systemd_running(&self) -> bool {
        !self.opts.image_root && self.opts.root.join("run/systemd/system").is_dir()
    }

    fn offline_systemctl(&mut self, args: &[&str]) -> Result<(), ActionError> {
        // `systemctl --root=DIR` works from outside the root; inside an image root without a
        // host systemctl, the image's own systemctl detects the chroot and works offline too.
        let root = self.opts.root.display().to_string();
        let mut argv = vec!["systemctl".to_owned(), format!("--root={root}")];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let mut host = Runner::new(RunnerConfig::default(), Vec::new());
        match host.run(&argv, &BTreeMap::new(), None, &[0], &mut self.log) {
            Err(RunError::Spawn { .. }) if self.opts.image_root => {
                let mut inside = vec!["systemctl".to_owned()];
                inside.extend(args.iter().map(|a| (*a).to_owned()));
                self.runner
                    .run(&inside, &BTreeMap::new(), None, &[0], &mut self.log)?;
                Ok(())
            }
            other => Ok(other?),
        }
    }

    fn execute(
        &mut self,
        action: &Action,
        fetched: &HashMap<String, String>,
    ) -> Result<(), ActionError> {
        match &action.kind {
            ActionKind::WriteFile {
                path,
                mode,
                owner,
                group,
                content,
            } => {
                let mode = u32::from_str_radix(mode, 8).unwrap_or(0o644);
                let (uid, gid) = owner_ids(path, owner, group)?;
                let outcome = self
                    .writer
                    .write(path, content.text.as_bytes(), mode, uid, gid)?;
                self.log
                    .line(&format!("write {path} ({mode:04o}): {outcome:?}"));
            }
            ActionKind::WriteUserFile {
                path,
                mode,
                owner,
                group,
                append,
                content,
                content_base64,
            } => {
                let mode = u32::from_str_radix(mode, 8).unwrap_or(0o644);
                let key = (owner.clone(), group.clone());
                let (uid, gid) = match self.user_file_owners.get(&key) {
                    Some(ids) => *ids,
                    None => accounts::user_file_ids(&self.writer, owner, group)?,
                };
                let mut bytes = match (content, content_base64) {
                    (Some(text), _) => text.text.as_bytes().to_vec(),
                    (None, Some(encoded)) => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(&encoded.text)
                            .map_err(|e| ActionError::Target {
                                path: path.clone(),
                                reason: format!("planned content is not base64: {e}"),
                            })?
                    }
                    (None, None) => Vec::new(),
                };
                if *append && let Some(mut old) = self.writer.read(path)? {
                    old.extend_from_slice(&bytes);
                    bytes = old;
                }
                let outcome = self.writer.write_in_batch(
                    path,
                    &bytes,
                    mode,
                    uid,
                    gid,
                    &mut self.sync_batch,
                )?;
                self.log.line(&format!(
                    "write {path} ({mode:04o} {owner}:{group}): {outcome:?}"
                ));
            }
            ActionKind::FinalMessage { template } => {
                let uptime = std::fs::read_to_string("/proc/uptime")
                    .ok()
                    .and_then(|t| t.split_whitespace().next().map(str::to_owned))
                    .unwrap_or_default();
                let datasource = crate::report::cloud_init_datasource(&self.opts.datasource);
                let text =
                    crate::action::final_message_text(template, &uptime, &now(), &datasource);
                self.log.line(&text);
                self.final_message = Some(text);
            }
            ActionKind::PowerState { argv, condition } => {
                if self.opts.image_root {
                    let warning = "power_state: an image root is not powered off or rebooted";
                    self.log.line(warning);
                    self.warnings.push(warning.to_owned());
                    return Ok(());
                }
                if let Some(script) = condition {
                    let argv = ["/bin/sh", "-c", script.as_str()].map(String::from);
                    if let Err(e) =
                        self.runner
                            .run(&argv, &BTreeMap::new(), None, &[0], &mut self.log)
                    {
                        self.log
                            .line(&format!("power_state: condition not met ({e}): no change"));
                        return Ok(());
                    }
                }
                self.log.line(&format!(
                    "power_state: after the report, {}",
                    argv.join(" ")
                ));
                self.power_state = Some(argv.clone());
            }
            ActionKind::EnsureGroup { .. }
            | ActionKind::EnsureUser { .. }
            | ActionKind::WriteSudoers { .. }
            | ActionKind::AuthorizedKeys { .. }
            | ActionKind::SetPasswords { .. } => self.account_action(&action.kind)?,
            ActionKind::HostKeys {
                delete_existing,
                generate,
                given,
                comment,
                quiet,
            } => self.host_keys(*delete_existing, generate, given, comment, *quiet)?,
            ActionKind::HostKeysToConsole {
                skip_fingerprints,
                skip_keys,
            } => self.host_keys_to_console(skip_fingerprints, skip_keys)?,
            ActionKind::ReloadService { unit } => self.reload_service(unit)?,
            ActionKind::SetHostname {
                hostname,
                create_file,
            } => self.set_hostname(hostname, *create_file)?,
            ActionKind::HostsEntry { address, names } => self.hosts_entry(address, names)?,
            ActionKind::RunScript { path, env } => {
                self.log.line(&format!("script {path}"));
                self.runner
                    .run(std::slice::from_ref(path), env, None, &[0], &mut self.log)?;
            }
            ActionKind::Command {
                argv,
                env,
                stdin,
                ok_exit_codes,
            } => {
                let ok = ok_exit_codes.clone().unwrap_or_else(|| vec![0]);
                self.runner.run(
                    argv,
                    env,
                    stdin.as_ref().map(|t| t.text.as_str()),
                    &ok,
                    &mut self.log,
                )?;
            }
            ActionKind::FetchKey { dest, .. } => {
                let key = fetched.get(dest).ok_or_else(|| ActionError::Target {
                    path: dest.clone(),
                    reason: "key was not fetched".into(),
                })?;
                let outcome = self.writer.write(dest, key.as_bytes(), 0o644, 0, 0)?;
                self.log.line(&format!("key {dest}: {outcome:?}"));
            }
            ActionKind::EditIni { .. } => self.edit_ini(std::slice::from_ref(&action))?,
            ActionKind::ReconfigureInstalled { packages } => {
                let installed = installed_packages(&self.opts.root)?;
                let chosen: Vec<String> = packages
                    .iter()
                    .filter(|p| installed.contains(*p))
                    .cloned()
                    .collect();
                if chosen.is_empty() {
                    self.log
                        .line("reconfigure: none of the preseeded packages is installed");
                } else {
                    for (package, paths) in RECONFIGURE_CLEANERS {
                        if !chosen.iter().any(|c| c == package) {
                            continue;
                        }
                        for path in *paths {
                            if self.writer.remove(path)? {
                                self.log.line(&format!(
                                    "{package}: removed {path} so that the preseeded answer applies"
                                ));
                            }
                        }
                    }
                    let mut argv = vec![
                        "dpkg-reconfigure".to_owned(),
                        "--frontend=noninteractive".to_owned(),
                    ];
                    argv.extend(chosen);
                    let env = env_map(APT_ENV);
                    self.runner.run(&argv, &env, None, &[0], &mut self.log)?;
                }
            }
            ActionKind::EnableService { unit } => {
                if self.systemd_running() {
                    let argv: Vec<String> = ["systemctl", "enable", unit.as_str()]
                        .map(String::from)
                        .to_vec();
                    self.runner
                        .run(&argv, &BTreeMap::new(), None, &[0], &mut self.log)?;
                } else {
                    self.offline_systemctl(&["enable", unit])?;
                }
            }
            ActionKind::StartService { unit } => {
                if self.systemd_running() {
                    let argv: Vec<String> = ["systemctl", "start", "--no-block", unit.as_str()]
                        .map(String::from)
                        .to_vec();
                    self.runner
                        .run(&argv, &BTreeMap::new(), None, &[0], &mut self.log)?;
                } else {
                    let why = if self.opts.image_root {
                        "an image root is not running"
                    } else {
                        "systemd is not running this system"
                    };
                    let warning = format!(
                        "{unit} not started: {why}; it is enabled and starts at the next boot"
                    );
                    self.log.line(&warning);
                    self.warnings.push(warning);
                }
            }
        }
        Ok(())
    }

    /// Every key of a module, fetched and verified before any of its actions runs.
    fn prefetch(&mut self, actions: &[&Action]) -> Result<HashMap<String, String>, ActionError> {
        let mut fetched = HashMap::new();
        for action in actions {
            if let ActionKind::FetchKey {
                keyid,
                keyserver,
                ppa,
                url,
                http_proxy,
                https_proxy,
                dest,
            } = &action.kind
            {
                let keys = self.keys.through(
                    http_proxy.as_ref().map(|t| t.text.as_str()),
                    https_proxy.as_ref().map(|t| t.text.as_str()),
                );
                let key = match (keyid, ppa) {
                    (Some(keyid), _) if url.is_some() => {
                        let url = url.as_deref().unwrap_or_default();
                        self.log.line(&format!("fetch key {keyid} from {url}"));
                        keys.by_url(url, keyid)?
                    }
                    (Some(keyid), _) => {
                        let keyserver =
                            keyserver.as_deref().unwrap_or(&self.opts.default_keyserver);
                        self.log
                            .line(&format!("fetch key {keyid} from {keyserver}"));
                        keys.by_keyid(keyid, keyserver)?
                    }
                    (None, Some(ppa)) => {
                        self.log.line(&format!("fetch signing key of ppa:{ppa}"));
                        keys.for_ppa(ppa)?
                    }
                    (None, None) => continue,
                };
                // apt 3 checks with sqv: a key it refuses would fail every apt-get update.
                if self.opts.root.join("usr/bin/sqv").is_file()
                    && let Some(reason) = crate::values::apt3_refusal(&key)
                {
                    return Err(KeyError::RefusedByApt { reason }.into());
                }
                fetched.insert(dest.clone(), key);
            }
        }
        Ok(fetched)
    }

    fn after_action(&mut self) {
        self.actions_done += 1;
        if self.kill_after == Some(self.actions_done) {
            self.log.line(&format!(
                "{KILL_HOOK_ENV}: killing this run after action {}",
                self.actions_done
            ));
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Applies the edits of one INI file in one write. A file the plan creates has no original
    /// to save, and a run killed between two edits cannot leave a half-edited file that the
    /// next run would take for the original.
    fn edit_ini(&mut self, edits: &[&Action]) -> Result<(), ActionError> {
        let Some(ActionKind::EditIni { path, .. }) = edits.first().map(|a| &a.kind) else {
            return Ok(());
        };
        let original = self.writer.read(path)?;
        let text = original
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let mut updated = text.clone();
        for edit in edits {
            if let ActionKind::EditIni {
                section,
                key,
                value,
                ..
            } = &edit.kind
            {
                updated = ini::set(&updated, section, key, value);
                self.log.line(&format!("set [{section}] {key} in {path}"));
            }
        }
        let old = format!("{path}.old");
        let (mode, uid, gid) = self.writer.metadata(path)?.unwrap_or((0o644, 0, 0));
        // The true original is saved once; reruns must not overwrite it.
        if let Some(original) = &original
            && updated != text
            && self.writer.metadata(&old)?.is_none()
        {
            self.writer.write(&old, original, mode, uid, gid)?;
        }
        let outcome = self
            .writer
            .write(path, updated.as_bytes(), mode, uid, gid)?;
        self.log.line(&format!("{path}: {outcome:?}"));
        Ok(())
    }

    fn run_module(
        &mut self,
        module: &ModuleEntry,
        actions: &[&Action],
        state: &InstanceState<'_>,
    ) -> Result<(), ActionError> {
        let fetched = self.prefetch(actions)?;
        // Every owner is looked up before the first file is written: a missing account fails
        // the module with nothing of it written.
        // The ids are kept for the writes, so passwd and group are read once per owner.
        self.user_file_owners.clear();
        for action in actions {
            if let ActionKind::WriteUserFile { owner, group, .. } = &action.kind {
                let key = (owner.clone(), group.clone());
                if !self.user_file_owners.contains_key(&key) {
                    let ids = accounts::user_file_ids(&self.writer, owner, group)?;
                    self.user_file_owners.insert(key, ids);
                }
            }
        }
        // Scripts run on after one fails, as cloud-init's run-parts does; the module fails
        // with the first failure once all have run.
        let mut script_failure = None;
        let mut next = 0;
        while next < actions.len() {
            if let ActionKind::RunScript { path, .. } = &actions[next].kind {
                let once = module.frequency != Frequency::Always;
                if once && !self.opts.force && state.script_done(module.frequency, path) {
                    self.log
                        .line(&format!("script {path}: skipped, it succeeded before"));
                } else {
                    match self.execute(actions[next], &fetched) {
                        Ok(()) if once => state.mark_script_done(module.frequency, path)?,
                        Ok(()) => {}
                        Err(e) => {
                            self.log.line(&format!("script {path}: failed: {e}"));
                            script_failure.get_or_insert(e);
                        }
                    }
                }
                self.after_action();
                next += 1;
                continue;
            }
            let batch = match &actions[next].kind {
                ActionKind::EditIni { path, .. } => actions[next..]
                    .iter()
                    .take_while(
                        |a| matches!(&a.kind, ActionKind::EditIni { path: p, .. } if p == path),
                    )
                    .count(),
                _ => 1,
            };
            if batch > 1 {
                self.edit_ini(&actions[next..next + batch])?;
            } else {
                self.execute(actions[next], &fetched)?;
            }
            for _ in 0..batch {
                self.after_action();
            }
            next += batch;
        }
        // Before the module's marker: what it wrote is on disk.
        self.sync_batch.finish()?;
        script_failure.map_or(Ok(()), Err)
    }
}

/// Every secret the plan holds, to be scrubbed from command output before it is logged.
fn plan_secrets(plan: &Plan) -> Vec<String> {
    plan.actions.iter().flat_map(Action::secrets).collect()
}

/// The stages this run applies and, when it continues a run of the earlier stages in this boot,
/// that run's report. Earlier stages that did not run this boot (their unit failed before it
/// reported, or only the later stages were asked for) run first: nothing is skipped unseen.
fn stages_to_run(plan: &Plan, opts: &ApplyOptions, names: &[&str]) -> (Vec<Stage>, Option<Status>) {
    if opts.stages.is_empty() || opts.stages.contains(&Stage::Init) {
        let mut stages = opts.stages.clone();
        if stages.is_empty() {
            stages = Stage::ALL.to_vec();
        }
        return (stages, None);
    }
    let same_run = |s: &Status| {
        s.status == RunStatus::Running
            && s.instance_id.as_deref() == Some(opts.instance_id.as_str())
            && s.modules
                .iter()
                .map(|m| m.name.as_str())
                .eq(names.iter().copied())
    };
    let previous = crate::report::read_status(&opts.runtime_dir)
        .ok()
        .flatten()
        .filter(same_run);
    let first = opts.stages.iter().min().copied().unwrap_or(Stage::Init);
    let earlier_ran = previous.as_ref().is_some_and(|s| {
        plan.modules.iter().zip(&s.modules).all(|(m, r)| {
            m.stage >= first || !matches!(r.status, ModuleState::Pending | ModuleState::Running)
        })
    });
    match earlier_ran {
        true => (opts.stages.clone(), previous),
        false => {
            let last = opts.stages.iter().max().copied().unwrap_or(Stage::Final);
            (
                Stage::ALL.into_iter().filter(|s| *s <= last).collect(),
                None,
            )
        }
    }
}

/// Applies `plan` to the target. Errors before any module ran are `Err`; module failures are
/// in the returned status.
pub fn apply(plan: &Plan, opts: &ApplyOptions) -> Result<Outcome, ApplyError> {
    if !opts.root.is_dir() {
        return Err(ApplyError::NoRoot {
            root: opts.root.display().to_string(),
        });
    }
    let writer = Writer::new(&opts.root);
    let state = InstanceState::open(&writer, &opts.instance_id, &opts.boot_id)?;
    state.store(&opts.user_data, &opts.instance_data)?;
    let reporter = Reporter::new(&opts.runtime_dir, &opts.root, opts.image_root);
    reporter.begin_instance(&opts.instance_id);
    let names: Vec<&str> = plan.modules.iter().map(|m| m.name).collect();
    let (stages, continued) = stages_to_run(plan, opts, &names);
    let mut status =
        continued.unwrap_or_else(|| Status::new(&opts.datasource, Some(&opts.instance_id), &names));
    reporter.write(&status);

    let mut runner_config = RunnerConfig {
        root: opts.image_root.then(|| opts.root.clone()),
        ..RunnerConfig::default()
    };
    runner_config.lock_timeout = opts.runner.lock_timeout;
    runner_config.update_attempts = opts.runner.update_attempts;
    runner_config.retry_backoff = opts.runner.retry_backoff;
    runner_config.recovery_env = env_map(APT_ENV);
    let mut exec = Executor {
        opts,
        writer: writer.clone(),
        runner: Runner::new(runner_config, plan_secrets(plan)),
        keys: KeyFetcher::new(
            &opts.launchpad_api,
            &opts.default_keyserver,
            std::fs::read(opts.root.join("etc/ssl/certs/ca-certificates.crt"))
                .ok()
                .as_deref(),
        ),
        log: RunLog::open(&opts.root),
        warnings: Vec::new(),
        final_message: None,
        power_state: None,
        sync_batch: SyncBatch::default(),
        user_file_owners: HashMap::new(),
        actions_done: 0,
        kill_after: std::env::var(KILL_HOOK_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    exec.log.line(&format!(
        "cloudcfg {} apply: instance {}, datasource {}, {} actions",
        env!("CARGO_PKG_VERSION"),
        opts.instance_id,
        opts.datasource,
        plan.actions.len()
    ));
    if opts.image_root
        && let Err(e) = chroot::undo_leftovers(&opts.root)
    {
        // The first command's guard tries again and fails its module with the reason.
        exec.log.line(&format!("leftovers of a killed run: {e}"));
    }

    for module in plan.modules.iter().filter(|m| stages.contains(&m.stage)) {
        let actions: Vec<&Action> = plan
            .actions
            .iter()
            .filter(|a| a.module == module.name)
            .collect();
        let report_skip = |status: &mut Status, reason: String| {
            if let Some(m) = status.module_mut(module.name) {
                m.status = ModuleState::Skipped;
                m.reason = Some(reason);
            }
        };
        if let Some(reason) = state.done(module).filter(|_| !opts.force) {
            exec.log
                .line(&format!("{}: skipped, {reason}", module.name));
            report_skip(&mut status, reason);
            reporter.write(&status);
            continue;
        }
        if actions.is_empty() {
            report_skip(&mut status, "nothing to do".into());
            continue;
        }
        let runs_scripts = actions
            .iter()
            .any(|a| matches!(a.kind, ActionKind::RunScript { .. }));
        if runs_scripts && opts.image_root && !opts.run_scripts {
            // Not marked done: the instance's first boot runs the module.
            let reason = "scripts are not run in an image root without --run-scripts";
            exec.log
                .line(&format!("{}: skipped, {reason}", module.name));
            exec.warnings.push(format!(
                "{}: skipped, {reason}; the first boot runs them",
                module.name
            ));
            report_skip(&mut status, reason.into());
            reporter.write(&status);
            continue;
        }
        let started = now();
        if let Some(m) = status.module_mut(module.name) {
            m.status = ModuleState::Running;
            m.started = Some(started.clone());
        }
        reporter.write(&status);
        exec.log
            .line(&format!("{}: {} actions", module.name, actions.len()));
        let result = exec
            .run_module(module, &actions, &state)
            .and_then(|()| state.mark_done(module).map_err(ActionError::from));
        let m = status.module_mut(module.name);
        match result {
            Ok(()) => {
                exec.log.line(&format!("{}: ok", module.name));
                if let Some(m) = m {
                    m.status = ModuleState::Ok;
                    m.finished = Some(now());
                }
            }
            Err(e) => {
                let message = e.to_string();
                exec.log
                    .line(&format!("{}: failed: {message}", module.name));
                if let Some(m) = m {
                    m.status = ModuleState::Failed;
                    m.finished = Some(now());
                    m.error = Some(message.clone());
                    m.reason = Some(e.reason().to_owned());
                }
                status
                    .recoverable_errors
                    .push(format!("{}: {message}", module.name));
            }
        }
        reporter.write(&status);
    }
    // Mounts and the policy-rc.d guard are undone before the run is reported finished.
    drop(exec.runner);
    if !stages.contains(&Stage::Final) {
        // The unit of the later stages finishes the report.
        exec.log.line(&format!(
            "stages {} done",
            stages
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(",")
        ));
        return Ok(Outcome {
            status,
            warnings: exec.warnings,
            final_message: exec.final_message,
        });
    }
    status.finish();
    reporter.write(&status);
    reporter.boot_finished(&opts.instance_id);
    exec.log.line(&format!("finished: {:?}", status.status));
    if let Some(argv) = exec.power_state.take() {
        // Only now: the report says the run is over before the machine goes down.
        let mut host = Runner::new(RunnerConfig::default(), Vec::new());
        if let Err(e) = host.run(&argv, &BTreeMap::new(), None, &[0], &mut exec.log) {
            let warning = format!("power_state: {e}");
            exec.log.line(&warning);
            exec.warnings.push(warning);
        }
    }
    Ok(Outcome {
        status,
        warnings: exec.warnings,
        final_message: exec.final_message,
    })
}

#[cfg(test)]
mod tests;
