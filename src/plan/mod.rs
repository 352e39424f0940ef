//! config + facts -> ordered actions. Pure and total: no I/O, no clock, no environment; what
//! depends on the target's current state is an action kind that `apply` resolves.
//!
//! Modules are planned in run order ([`crate::config::registry::run_order`]: by stage, then in
//! cloud-init's Debian order); each plans its own actions.

pub mod invariants;
pub mod render;

use crate::action::{Facts, ModuleEntry, Plan, PlanError};
use crate::config::{CloudConfig, registry};
use crate::module::Planner;
use crate::system::SystemConfig;

/// Plans the whole config. `warnings` of the config itself (validate's) are not repeated here;
/// the CLI shows both.
pub fn plan(config: &CloudConfig, facts: &Facts, system: &SystemConfig) -> Result<Plan, PlanError> {
    let needs = registry::needs(config);
    let mut planner = Planner::new(facts, system, &needs);
    let order = registry::run_order();
    for module in &order {
        planner.begin(module.name, module.stage);
        (module.plan)(config, &mut planner)?;
    }
    let (actions, warnings) = planner.finish();
    Ok(Plan {
        facts: facts.clone(),
        modules: order
            .iter()
            .map(|m| ModuleEntry {
                name: m.name,
                stage: m.stage,
                frequency: m.frequency,
            })
            .collect(),
        actions,
        warnings,
    })
}
