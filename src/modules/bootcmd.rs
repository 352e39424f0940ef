//! `bootcmd`: commands run early in every boot, before the network is needed, with
//! `INSTANCE_ID` in the environment (cloud-init's `cc_bootcmd`). The script is kept in the
//! instance's state directory (0700) and run with `/bin/sh`. The user data's boothooks
//! (`#cloud-boothook` parts), which cloud-init runs at every boot with `INSTANCE_ID` while it
//! reads the user data, run here too, before the bootcmd script, as `boothooks/part-NNN`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage, Text, env_map};
use crate::decode::UserScript;
use crate::module::{Checker, Module, Planner};
use crate::values::{ShellCommand, shell_script};

/// The top-level key `bootcmd` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Bootcmd {
    /// Commands for every boot: a string is a shell line, a list is an argv.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootcmd: Option<Vec<ShellCommand>>,
    /// The user data's boothook parts.
    #[serde(skip)]
    #[schemars(skip)]
    pub boothooks: Vec<UserScript>,
}

impl Module for Bootcmd {
    const NAME: &'static str = "bootcmd";
    const STAGE: Stage = Stage::Init;
    const FREQUENCY: Frequency = Frequency::Always;

    fn check(&self, cx: &mut Checker<'_>) {
        for (i, command) in self.bootcmd.iter().flatten().enumerate() {
            cx.check(&format!("bootcmd[{i}]"), command.check());
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let commands = self.bootcmd.as_ref().filter(|c| !c.is_empty());
        if commands.is_none() && self.boothooks.is_empty() {
            return Ok(());
        }
        let dir = planner.facts.instance_dir("bootcmd's script is kept per instance")?;
        let id = planner.facts.instance_id.clone().unwrap_or_default();
        let mut scripts: Vec<(String, String)> = self
            .boothooks
            .iter()
            .map(|hook| (format!("{dir}/boothooks/{}", hook.name), hook.text.clone()))
            .collect();
        if let Some(commands) = commands {
            scripts.push((format!("{dir}/bootcmd"), shell_script(commands)));
        }
        for (path, text) in scripts {
            planner.write_file(&path, 0o700, Text::plain(text));
            planner.push(ActionKind::RunScript {
                path,
                env: env_map(&[("INSTANCE_ID", &id)]),
            });
        }
        Ok(())
    }
}
