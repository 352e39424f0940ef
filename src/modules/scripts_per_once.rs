//! `scripts_per_once`: the executables an image keeps in `/var/lib/cloud/scripts/per-once/`, run
//! once in the life of the system in the final stage, in name order (cloud-init's `cc_scripts_per_once`), so images
//! that ship scripts there keep working. It owns no key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{Frequency, PlanError, Stage};
use crate::module::{Module, Planner};

/// No keys of its own: the scripts are the image's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ScriptsPerOnce {}

impl Module for ScriptsPerOnce {
    const NAME: &'static str = "scripts_per_once";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::Once;

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        planner.run_image_scripts("per-once");
        Ok(())
    }
}
