//! `scripts_user`: runs the instance's scripts in name order in the final stage (cloud-init's
//! `cc_scripts_user`): the user data's script parts (`part-001`, ...), which it writes into the
//! instance's scripts directory (0700) first, then `runcmd`, which the runcmd module wrote and
//! names as a need. It owns no key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage, Text};
use crate::decode::UserScript;
use crate::module::{Module, Need, Planner};

/// No keys of its own: the script parts come from the user data itself.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ScriptsUser {
    #[serde(skip)]
    #[schemars(skip)]
    pub parts: Vec<UserScript>,
}

impl Module for ScriptsUser {
    const NAME: &'static str = "scripts_user";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let mut names: Vec<String> = planner
            .needs()
            .iter()
            .filter_map(|need| match need {
                Need::UserScript(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        if names.is_empty() && self.parts.is_empty() {
            return Ok(());
        }
        let dir = planner.facts.instance_dir("the instance's scripts are kept per instance")?;
        for part in &self.parts {
            planner.write_file(
                format!("{dir}/scripts/{}", part.name),
                0o700,
                Text::plain(part.text.clone()),
            );
            names.push(part.name.clone());
        }
        names.sort();
        for name in names {
            planner.push(ActionKind::RunScript {
                path: format!("{dir}/scripts/{name}"),
                env: Default::default(),
            });
        }
        Ok(())
    }
}
