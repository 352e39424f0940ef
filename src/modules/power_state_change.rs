//! `power_state`: power off, reboot or halt once the run is over (cloud-init's
//! `cc_power_state_change`). Apply asks `shutdown` only after the report is written, so a
//! poller never misses the end of the run, and never in an image root. `condition` (true,
//! false, or a command: exit 0 means go) is checked when the module runs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, Frequency, PlanError, Stage};
use crate::module::{Checker, Module, Planner};
use crate::values::{self, ShellCommand};

/// The top-level key `power_state` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct PowerStateChange {
    /// What to do when the run is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
}

/// `power_state`'s mapping.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct PowerState {
    /// poweroff, reboot or halt.
    pub mode: String,
    /// `now` (the default), `+N` minutes, or N minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::values::TextOrNumber>")]
    pub delay: Option<crate::decode::de::RawScalar>,
    /// Shown to logged-in users by shutdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// cloud-init waits this long for its own process to end; cloudcfg asks shutdown after
    /// its report is written, so it is accepted and not needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// true (the default), false, or a command whose exit 0 lets the change happen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Condition {
    Fixed(bool),
    Command(ShellCommand),
}

impl PowerState {
    /// shutdown's flag for the mode.
    fn flag(&self) -> Result<&'static str, String> {
        match self.mode.as_str() {
            "poweroff" => Ok("-P"),
            "reboot" => Ok("-r"),
            "halt" => Ok("-H"),
            other => Err(format!(
                "mode {other:?} is not one of poweroff, reboot, halt"
            )),
        }
    }

    /// shutdown's time argument: `now` or `+N`.
    fn when(&self) -> Result<String, String> {
        let Some(delay) = &self.delay else {
            return Ok("now".into());
        };
        let text = delay.text.trim();
        let minutes = text.strip_prefix('+').unwrap_or(text);
        match text {
            "now" => Ok("now".into()),
            _ if !minutes.is_empty() && minutes.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(format!("+{}", minutes.parse::<u32>().map_err(|e| e.to_string())?))
            }
            _ => Err(format!(
                "delay {text:?} is not `now`, `+N` or N (minutes)"
            )),
        }
    }
}

impl Module for PowerStateChange {
    const NAME: &'static str = "power_state_change";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        let Some(state) = &self.power_state else {
            return;
        };
        cx.check("power_state.mode", state.flag());
        cx.check("power_state.delay", state.when());
        if let Some(message) = &state.message {
            let not_an_option = match message.starts_with('-') {
                true => Err("must not start with `-` (shutdown would read an option)".into()),
                false => Ok(()),
            };
            cx.check("power_state.message", values::single_line(message).and(not_an_option));
        }
        if let Some(Condition::Command(command)) = &state.condition {
            cx.check("power_state.condition", command.check());
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        let Some(state) = &self.power_state else {
            return Ok(());
        };
        let (Ok(flag), Ok(when)) = (state.flag(), state.when()) else {
            return Ok(());
        };
        if state.condition == Some(Condition::Fixed(false)) {
            planner.warn("power_state.condition", "condition is false: no power change");
            return Ok(());
        }
        let mut argv = vec!["shutdown".to_owned(), flag.to_owned(), when];
        argv.extend(state.message.clone());
        let condition = match &state.condition {
            Some(Condition::Command(command)) => Some(values::shell_script(std::slice::from_ref(command))),
            _ => None,
        };
        planner.push(ActionKind::PowerState { argv, condition });
        Ok(())
    }
}
