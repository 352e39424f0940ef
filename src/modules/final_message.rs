//! `final_message`: one line to the console and the log when the run ends (cloud-init's
//! `cc_final_message`), so that `aws ec2 get-console-output` and pollers see that the boot's
//! configuration finished. `$UPTIME`, `$TIMESTAMP`, `$VERSION` and `$DATASOURCE` (also
//! lowercase, also `${...}`) are filled in by apply, since the plan has no clock.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage};
use crate::module::{Checker, Module, Planner};

/// cloud-init's default, with cloudcfg's name.
pub const DEFAULT_MESSAGE: &str =
    "cloudcfg v. $VERSION finished at $TIMESTAMP. Datasource $DATASOURCE.  Up $UPTIME seconds";

/// The top-level key `final_message` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct FinalMessage {
    /// The message printed when the run ends; `$UPTIME`, `$TIMESTAMP`, `$VERSION` and
    /// `$DATASOURCE` are substituted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_message: Option<String>,
}

impl Module for FinalMessage {
    const NAME: &'static str = "final_message";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::Always;

    fn check(&self, cx: &mut Checker<'_>) {
        if let Some(message) = &self.final_message
            && message.contains('\0')
        {
            cx.error("final_message", "the message cannot hold a NUL byte");
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let template = self.final_message.as_deref().unwrap_or(DEFAULT_MESSAGE);
        planner.push(ActionKind::FinalMessage {
            template: template.to_owned(),
        });
        Ok(())
    }
}
