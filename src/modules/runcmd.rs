//! `runcmd`: the instance's commands, written as a script in the config stage and run by
//! `scripts_user` in the final stage, after packages and puppet's configuration, in the order
//! of the instance's scripts (user-data script parts, then runcmd), as cloud-init does.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{Frequency, PlanError, Stage, Text};
use crate::module::{Checker, Module, Need, Planner};
use crate::values::{ShellCommand, shell_script};

/// The script's name in the instance's scripts directory (cloud-init's).
pub const SCRIPT_NAME: &str = "runcmd";

/// The top-level key `runcmd` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Runcmd {
    /// Commands for the first boot of an instance: a string is a shell line, a list an argv.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runcmd: Option<Vec<ShellCommand>>,
}

impl Runcmd {
    fn commands(&self) -> Option<&Vec<ShellCommand>> {
        self.runcmd.as_ref().filter(|c| !c.is_empty())
    }
}

impl Module for Runcmd {
    const NAME: &'static str = "runcmd";
    const STAGE: Stage = Stage::Config;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        for (i, command) in self.runcmd.iter().flatten().enumerate() {
            cx.check(&format!("runcmd[{i}]"), command.check());
        }
    }

    fn needs(&self) -> Vec<Need> {
        self.commands()
            .map(|_| Need::UserScript(SCRIPT_NAME.to_owned()))
            .into_iter()
            .collect()
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let Some(commands) = self.commands() else {
            return Ok(());
        };
        let dir = planner.facts.instance_dir("runcmd's script is kept per instance")?;
        planner.write_file(
            format!("{dir}/scripts/{SCRIPT_NAME}"),
            0o700,
            Text::plain(shell_script(commands)),
        );
        Ok(())
    }
}
