//! `scripts_per_instance`: the executables an image keeps in `/var/lib/cloud/scripts/per-instance/`, run
//! once for each instance in the final stage, in name order (cloud-init's `cc_scripts_per_instance`), so images
//! that ship scripts there keep working. It owns no key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{Frequency, PlanError, Stage};
use crate::module::{Module, Planner};

/// No keys of its own: the scripts are the image's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ScriptsPerInstance {}

impl Module for ScriptsPerInstance {
    const NAME: &'static str = "scripts_per_instance";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        planner.run_image_scripts("per-instance");
        Ok(())
    }
}
