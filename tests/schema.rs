//! `validate` and `schema/cloud-config.schema.json` agree: every user data that validate
//! accepts, the schema accepts; every one refused for a type (the document does not fit the
//! types), the schema refuses too. Checks beyond types (README, "Validate") are validate's alone.

use std::path::PathBuf;

use cloudcfg::config;
use cloudcfg::decode::Limits;
use cloudcfg::decode::yaml::{Node, Resolved, Value};
use cloudcfg::diag::Severity;

/// The tree as the JSON a schema validator reads, scalars typed as YAML 1.1 (PyYAML) types them.
fn json(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Scalar(s) => match s.resolve() {
            Resolved::Null => serde_json::Value::Null,
            Resolved::Bool(b) => b.into(),
            Resolved::Int => s
                .text
                .replace('_', "")
                .parse::<i64>()
                .map_or_else(|_| serde_json::json!(0), Into::into),
            Resolved::Float => serde_json::json!(s.text.parse::<f64>().unwrap_or(0.5)),
            Resolved::Str => s.text.clone().into(),
        },
        Value::Seq(items) => items.iter().map(json).collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|e| {
                (
                    e.key.scalar_text().unwrap_or_default().to_owned(),
                    json(&e.value),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// Removes the value at a diagnostic path (`apt.sorces`, `apt_sources[1].keyid`).
fn remove_path(instance: &mut serde_json::Value, path: &str) {
    let steps: Vec<&str> = path
        .split(['.', '['])
        .map(|s| s.trim_end_matches(']'))
        .collect();
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut at = instance;
    for step in parents {
        at = match step.parse::<usize>() {
            Ok(i) => match at.get_mut(i) {
                Some(next) => next,
                None => return,
            },
            Err(_) => match at.get_mut(*step) {
                Some(next) => next,
                None => return,
            },
        };
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(*last);
    }
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn user_data() -> Vec<PathBuf> {
    let mut all = files("tests/fixtures/valid");
    all.extend(files("tests/fixtures/invalid"));
    all.extend(files("examples"));
    all.extend(
        files("tests/compat/cases")
            .into_iter()
            .map(|case| case.join("user-data.yaml")),
    );
    all.retain(|p| p.is_file());
    all
}

#[test]
fn validate_and_the_schema_agree() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schema/cloud-config.schema.json").unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let (mut accepted, mut typed_refusals) = (0, 0);
    let mut disagreements = Vec::new();
    for path in user_data() {
        let loaded = config::load(&std::fs::read(&path).unwrap(), &Limits::default());
        let Some(root) = &loaded.user_data.root else {
            continue;
        };
        let mut instance = json(root);
        // An unknown nested key is a warning for validate and `additionalProperties: false`
        // for the schema, so editors flag the typo; either way it is named. Without the keys
        // validate warned about, the schema must accept what validate accepts.
        for warning in loaded
            .report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning && d.message.starts_with("unknown key"))
        {
            remove_path(&mut instance, &warning.path);
        }
        let schema_ok = validator.is_valid(&instance);
        let name = path.display().to_string();
        if loaded.is_valid() {
            accepted += 1;
            if !schema_ok {
                let why: Vec<String> = validator
                    .iter_errors(&instance)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                disagreements.push(format!(
                    "{name}: validate accepts, the schema refuses: {why:?}"
                ));
            }
        } else if loaded.config.is_none() {
            typed_refusals += 1;
            if schema_ok {
                disagreements.push(format!(
                    "{name}: validate refuses a type, the schema accepts:\n{}",
                    loaded.report.render_text(&name)
                ));
            }
        }
    }
    assert!(
        accepted > 80 && typed_refusals > 5,
        "{accepted} {typed_refusals}"
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn a_certname_written_as_a_number_is_refused_by_both() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schema/cloud-config.schema.json").unwrap())
            .unwrap();
    let text = "#cloud-config\npuppet: {conf: {agent: {certname: 5}}}\n";
    let loaded = config::load(text.as_bytes(), &Limits::default());
    assert!(!loaded.is_valid());
    let instance = json(loaded.user_data.root.as_ref().unwrap());
    assert!(!jsonschema::is_valid(&schema, &instance));
}
