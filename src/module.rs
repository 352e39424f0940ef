//! What a cloud-config module is: the contract every file under `src/modules/` fulfils.
//!
//! A module owns its top-level keys (the fields of its type, deserialized from the user data's
//! root mapping), the checks beyond types, and its planning. It declares cloud-init's stage and
//! frequency for itself; the registry (`crate::modules`) lists it once, at its place
//! in cloud-init's Debian order, and everything else (unknown-key warnings, the JSON Schema,
//! the run order, the state markers) follows from that one line.
//!
//! Modules do not read each other's keys. What one module's config asks of another is a
//! [`Need`], collected from every module before any checks or plans, so a module planned early
//! can still act on what a later one needs (the packages module refreshes the package lists
//! for puppet, which installs after it).

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::action::{Action, ActionKind, Facts, Frequency, PlanError, PlanWarning, Stage, Text};
use crate::decode::Limits;
use crate::decode::de::Context;
use crate::decode::yaml::Pos;
use crate::diag::{Diagnostic, Report};
use crate::system::SystemConfig;

pub trait Module:
    std::fmt::Debug + Clone + Default + PartialEq + DeserializeOwned + Serialize + JsonSchema
{
    /// cloud-init's module name, used in plans, reports and state markers.
    const NAME: &'static str;
    const STAGE: Stage;
    const FREQUENCY: Frequency;

    /// Checks beyond types, as diagnostics with positions.
    fn check(&self, _cx: &mut Checker<'_>) {}

    /// What this config asks of other modules.
    fn needs(&self) -> Vec<Need> {
        Vec::new()
    }

    /// This module's actions, in order.
    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError>;
}

/// What a module's config asks of the rest of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Fresh package lists (`apt-get update`) before anything is installed; the reason is
    /// told when it overrides `package_update: false`.
    PackageLists(String),
    /// A `write_files` entry with `defer: true`, planned as written by `write_files_deferred`
    /// in the final stage, once users and packages exist.
    DeferredWrite(Box<ActionKind>),
    /// A script in the instance's scripts directory (`runcmd`) for `scripts_user` to run.
    UserScript(String),
    /// `users` has the default user: it gets the instance's keys and `password`.
    DefaultUser,
    /// The names `set_hostname`'s keys give, for /etc/hosts and the host keys' comment.
    Hostname(HostnameKeys),
    /// Host key types `ssh` leaves to `ssh_host_keys_deferred`, and `ssh_quiet_keygen`.
    DeferredHostKeys { types: Vec<String>, quiet: bool },
}

/// What `set_hostname`'s keys say, for the modules that use the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostnameKeys {
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub prefer_fqdn: bool,
}

/// Finds diagnostics' positions for checks that run on typed values.
pub struct Checker<'a> {
    ctx: &'a Context,
    report: &'a mut Report,
    fallback: Pos,
    limits: &'a Limits,
    needs: &'a [Need],
}

impl<'a> Checker<'a> {
    pub fn new(
        ctx: &'a Context,
        report: &'a mut Report,
        fallback: Pos,
        limits: &'a Limits,
        needs: &'a [Need],
    ) -> Checker<'a> {
        Checker {
            ctx,
            report,
            fallback,
            limits,
            needs,
        }
    }

    /// Where `path` was written; for a key that was not written, where its parent was.
    pub fn pos(&self, path: &str) -> Pos {
        let mut path = path;
        loop {
            if let Some(pos) = self.ctx.pos(path) {
                return pos;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return self.fallback,
            }
        }
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.pos(path);
        self.report.push(Diagnostic::error(pos, path, message));
    }

    pub fn warning(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.pos(path);
        self.report.push(Diagnostic::warning(pos, path, message));
    }

    /// Runs a value check, turning its error into a diagnostic at `path`.
    pub fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    /// The budgets of this load (lists whose length drives apply's work are bounded too).
    pub fn limits(&self) -> &Limits {
        self.limits
    }

    /// What every module of the config needs, in registry order.
    pub fn needs(&self) -> &[Need] {
        self.needs
    }
}

/// What a module's planner reads and writes.
pub struct Planner<'a> {
    pub facts: &'a Facts,
    pub system: &'a SystemConfig,
    needs: &'a [Need],
    module: &'static str,
    stage: Stage,
    actions: Vec<Action>,
    warnings: Vec<PlanWarning>,
}

impl<'a> Planner<'a> {
    pub fn new(facts: &'a Facts, system: &'a SystemConfig, needs: &'a [Need]) -> Planner<'a> {
        Planner {
            facts,
            system,
            needs,
            module: "",
            stage: Stage::Init,
            actions: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Actions pushed from now on belong to this module.
    pub fn begin(&mut self, module: &'static str, stage: Stage) {
        self.module = module;
        self.stage = stage;
    }

    pub fn finish(self) -> (Vec<Action>, Vec<PlanWarning>) {
        (self.actions, self.warnings)
    }

    /// What every module of the config needs, in registry order.
    pub fn needs(&self) -> &[Need] {
        self.needs
    }

    pub fn push(&mut self, kind: ActionKind) {
        self.actions.push(Action {
            module: self.module,
            stage: self.stage,
            kind,
        });
    }

    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(PlanWarning {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub fn write_file(&mut self, path: impl Into<String>, mode: u32, content: Text) {
        self.push(ActionKind::WriteFile {
            path: path.into(),
            mode: format!("{mode:04o}"),
            owner: "root".into(),
            group: "root".into(),
            content,
        });
    }

    pub fn command(&mut self, argv: Vec<String>, env: &[(&str, &str)], stdin: Option<Text>) {
        self.push(ActionKind::Command {
            argv,
            env: crate::action::env_map(env),
            stdin,
            ok_exit_codes: None,
        });
    }

    /// Runs the image's executables in one of cloud-init's script directories (`per-boot`,
    /// `per-instance`, `per-once`), in name order, as the target's facts list them.
    pub fn run_image_scripts(&mut self, dir: &str) {
        let names = self
            .facts
            .image_scripts
            .get(dir)
            .cloned()
            .unwrap_or_default();
        for name in names {
            self.push(ActionKind::RunScript {
                path: format!("{}/{dir}/{name}", crate::action::IMAGE_SCRIPTS_DIR),
                env: Default::default(),
            });
        }
    }

    /// Actions planned so far by every module, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }
}
