//! `bootcmd`: commands run early in every boot, before the network is needed, with
//! `INSTANCE_ID` in the environment (cloud-init's `cc_bootcmd`). The script is kept in the
//! instance's state directory (0700) and run with `/bin/sh`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage, Text, env_map};
use crate::module::{Checker, Module, Planner};
use crate::values::{ShellCommand, shell_script};

/// The top-level key `bootcmd` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Bootcmd {
    /// Commands for every boot: a string is a shell line, a list is an argv.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootcmd: Option<Vec<ShellCommand>>,
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
        let Some(commands) = self.bootcmd.as_ref().filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        let dir = planner.facts.instance_dir("bootcmd's script is kept per instance")?;
        let id = planner.facts.instance_id.clone().unwrap_or_default();
        let path = format!("{dir}/bootcmd");
        planner.write_file(&path, 0o700, Text::plain(shell_script(commands)));
        planner.push(ActionKind::RunScript {
            path,
            env: env_map(&[("INSTANCE_ID", &id)]),
        });
        Ok(())
    }
}
