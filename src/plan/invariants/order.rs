//! The order of a plan: modules in run order and stage, keys before sources, sources before the
//! update, puppet's files before its install.

use super::files::{KEYRINGS_DIR, SOURCES_DIR, SOURCES_LIST};
use super::violation::{Violation, violation};
use crate::action::{Action, ActionKind, Plan};
use crate::config::registry;
use crate::module::Module;
use crate::modules::puppet::Puppet;

pub fn check_module_order(plan: &Plan) -> Result<(), Violation> {
    let order: Vec<&registry::Registered> = registry::run_order();
    let mut last = 0;
    for (i, action) in plan.actions.iter().enumerate() {
        let Some(rank) = order.iter().position(|m| m.name == action.module) else {
            return Err(violation("module", Some(i), action.module));
        };
        if order[rank].stage != action.stage {
            return Err(violation(
                "stage",
                Some(i),
                format!(
                    "{} is a {} stage module",
                    action.module,
                    order[rank].stage.name()
                ),
            ));
        }
        if rank < last {
            return Err(violation(
                "module order",
                Some(i),
                format!("{} after {}", action.module, order[last].name),
            ));
        }
        last = rank;
    }
    Ok(())
}

pub fn apt_sub(action: &Action) -> Option<&str> {
    match &action.kind {
        ActionKind::Command { argv, .. } if argv.first().is_some_and(|a| a == "apt-get") => {
            argv.get(5).map(String::as_str)
        }
        _ => None,
    }
}

/// contract.md, "Order and ownership": keys before sources; one update, before upgrade and
/// install, present whenever sources are added or packages installed; puppet's files before
/// its install; enable, then the agent's run, then the start.
pub fn check_order(plan: &Plan) -> Result<(), Violation> {
    let actions = &plan.actions;
    let position = |pred: &dyn Fn(&Action) -> bool| actions.iter().position(pred);
    let last_position = |pred: &dyn Fn(&Action) -> bool| actions.iter().rposition(pred);
    let is_key = |a: &Action| {
        a.written_paths()
            .iter()
            .any(|p| p.starts_with(KEYRINGS_DIR))
    };
    let is_source = |a: &Action| {
        a.written_paths()
            .iter()
            .any(|p| p.starts_with(SOURCES_DIR) || *p == SOURCES_LIST)
    };
    if let (Some(k), Some(s)) = (last_position(&is_key), position(&is_source))
        && k > s
    {
        return Err(violation(
            "order",
            Some(k),
            "a key is written after a source",
        ));
    }
    let updates: Vec<usize> = (0..actions.len())
        .filter(|i| apt_sub(&actions[*i]) == Some("update"))
        .collect();
    if updates.len() > 1 {
        return Err(violation(
            "order",
            Some(updates[1]),
            "a second apt-get update",
        ));
    }
    let needs_update = actions
        .iter()
        .any(|a| matches!(apt_sub(a), Some("upgrade" | "install")) || is_source(a));
    match (updates.first(), needs_update) {
        (None, true) => {
            return Err(violation(
                "order",
                None,
                "sources are added or packages installed without apt-get update",
            ));
        }
        (Some(&u), _) => {
            if let Some(i) =
                position(&|a: &Action| matches!(apt_sub(a), Some("upgrade" | "install")))
                && i < u
            {
                return Err(violation("order", Some(i), "before apt-get update"));
            }
            if let Some(i) = last_position(&is_source)
                && i > u
            {
                return Err(violation("order", Some(i), "a source after apt-get update"));
            }
        }
        (None, false) => {}
    }
    let puppet = Puppet::NAME;
    let puppet_install = position(&|a: &Action| a.module == puppet && apt_sub(a).is_some());
    if let Some(install) = puppet_install
        && let Some(i) =
            last_position(&|a: &Action| a.module == puppet && !a.written_paths().is_empty())
        && i > install
    {
        return Err(violation(
            "order",
            Some(i),
            "a puppet file after the agent's install",
        ));
    }
    let enable = position(&|a: &Action| matches!(a.kind, ActionKind::EnableService { .. }));
    let start = position(&|a: &Action| matches!(a.kind, ActionKind::StartService { .. }));
    let agent = position(
        &|a: &Action| matches!(&a.kind, ActionKind::Command { argv, .. } if argv.get(1).is_some_and(|x| x == "agent")),
    );
    match (enable, start) {
        (Some(e), Some(s)) if e < s => {}
        (None, None) => {}
        _ => {
            return Err(violation(
                "order",
                None,
                "enable and start go together, enable first",
            ));
        }
    }
    if let (Some(a), Some(s)) = (agent, start)
        && a > s
    {
        return Err(violation(
            "order",
            Some(a),
            "the agent's run after the service start",
        ));
    }
    if let (Some(a), Some(i)) = (agent, puppet_install)
        && a < i
    {
        return Err(violation(
            "order",
            Some(a),
            "the agent's run before its install",
        ));
    }
    Ok(())
}
