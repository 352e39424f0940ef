//! docs/modules.md and the registry agree: the `done` rows are the registered modules, in
//! registry order, with the stage and frequency each module declares.

use cloudcfg::config::registry::{MODULES, run_order};

const DOC: &str = "docs/modules.md";

fn rows() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let table = doc
        .split("<!-- modules: begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- modules: end -->").next())
        .expect("docs/modules.md has the modules table markers");
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| stage") && !l.starts_with("|---"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_done_rows_are_the_registry() {
    let done: Vec<(String, String, String)> = rows()
        .into_iter()
        .filter(|r| r[3] == "done")
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    let registered: Vec<(String, String, String)> = MODULES
        .iter()
        .map(|m| {
            (
                m.stage.name().to_owned(),
                m.name.to_owned(),
                m.frequency.name().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        done, registered,
        "{DOC} and the registry in src/modules/mod.rs differ"
    );
}

#[test]
fn the_table_is_in_stage_order_and_the_run_order_follows_it() {
    let stages: Vec<String> = rows().into_iter().map(|r| r[0].clone()).collect();
    let mut sorted = stages.clone();
    sorted.sort_by_key(|s| ["init", "config", "final"].iter().position(|x| x == s));
    assert_eq!(stages, sorted, "{DOC} lists a stage out of order");
    let table: Vec<String> = rows().into_iter().map(|r| r[1].clone()).collect();
    let positions: Vec<usize> = run_order()
        .iter()
        .map(|m| table.iter().position(|t| t == m.name).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "the run order is not the table's order: {positions:?}"
    );
}

#[test]
fn every_module_owns_distinct_keys_none_of_them_unhandled() {
    let mut seen: Vec<&str> = Vec::new();
    for module in MODULES {
        for key in (module.keys)() {
            assert!(!seen.contains(key), "{key} is owned twice");
            assert!(
                !cloudcfg::config::CLOUD_INIT_KEYS_NOT_HANDLED.contains(key),
                "{key} is handled by {} but listed as not handled",
                module.name
            );
            seen.push(key);
        }
    }
    assert!(seen.contains(&"apt_pipelining") && seen.contains(&"packages"));
}
