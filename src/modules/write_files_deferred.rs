//! `write_files_deferred`: the `write_files` entries with `defer: true`, written in the final
//! stage, after the users module and packages have made the owners and directories they need.
//! It owns no key: `write_files` hands the entries over as needs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{Frequency, PlanError, Stage};
use crate::module::{Module, Need, Planner};

/// No keys of its own (the entries are `write_files`').
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct WriteFilesDeferred {}

impl Module for WriteFilesDeferred {
    const NAME: &'static str = "write_files_deferred";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let deferred: Vec<_> = planner
            .needs()
            .iter()
            .filter_map(|need| match need {
                Need::DeferredWrite(action) => Some((**action).clone()),
                _ => None,
            })
            .collect();
        for action in deferred {
            planner.push(action);
        }
        Ok(())
    }
}
