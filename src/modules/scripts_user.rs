//! `scripts_user`: runs the instance's scripts (`runcmd`, and the user data's script parts) in
//! name order, in the final stage (cloud-init's `cc_scripts_user`). It owns no key: the
//! modules that write scripts name them as needs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage};
use crate::module::{Module, Need, Planner};

/// No keys of its own.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ScriptsUser {}

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
        if names.is_empty() {
            return Ok(());
        }
        names.sort();
        let dir = planner.facts.instance_dir("the instance's scripts are kept per instance")?;
        for name in names {
            planner.push(ActionKind::RunScript {
                path: format!("{dir}/scripts/{name}"),
                env: Default::default(),
            });
        }
        Ok(())
    }
}
