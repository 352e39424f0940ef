//! The README's Design section draws the crate as floors; this test reads that picture and the
//! code's `crate::` paths and fails when a room imports from its own floor or one above, or when
//! a room of `src/` is missing from the picture. So the picture cannot drift from the code.

use std::collections::BTreeMap;
use std::path::Path;

/// Room name -> floor, from the README block between the layer markers.
fn floors_in_readme() -> BTreeMap<String, u32> {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let block = readme
        .split("<!-- layers: begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- layers: end -->").next())
        .expect("README.md has the layer markers");
    let mut floors = BTreeMap::new();
    for line in block.lines() {
        let line = line.trim_start();
        let Some((floor, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(floor) = floor.parse::<u32>() else {
            continue;
        };
        // Rooms come first, then at least three spaces and what the floor is for.
        let rooms = rest.trim_start().split("   ").next().unwrap();
        for room in rooms.split_whitespace().filter(|w| *w != "·") {
            let previous = floors.insert(room.to_owned(), floor);
            assert!(previous.is_none(), "{room} is drawn twice");
        }
    }
    assert!(
        floors.len() > 10,
        "the picture lists too few rooms: {floors:?}"
    );
    floors
}

/// The top-level rooms of `src/` each file belongs to, lib.rs and main.rs aside.
fn source_files() -> Vec<(String, std::path::PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new("src"), &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix("src").unwrap();
            let first = relative.components().next()?.as_os_str().to_str()?;
            let room = first.strip_suffix(".rs").unwrap_or(first).to_owned();
            (room != "lib" && room != "main").then_some((room, path))
        })
        .collect()
}

/// Code without its comments, so that a doc link to another layer is not an import.
fn without_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rooms a file names through `crate::room` or `crate::{room::.., room}`.
fn rooms_used(code: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    used.push(first_word(&item));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            used.push(first_word(rest));
        }
    }
    used.retain(|room| !room.is_empty());
    used
}

fn first_word(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn every_import_runs_down_the_floors_of_the_readme() {
    let floors = floors_in_readme();
    let mut wrong = Vec::new();
    let mut imports = 0;
    for (room, path) in source_files() {
        let Some(&floor) = floors.get(&room) else {
            wrong.push(format!(
                "{room} ({}) is not in the README's picture",
                path.display()
            ));
            continue;
        };
        let code = without_comments(&std::fs::read_to_string(&path).unwrap());
        for used in rooms_used(&code) {
            if used == room || used == "self" {
                continue;
            }
            imports += 1;
            match floors.get(&used) {
                Some(&below) if below < floor => {}
                Some(&other) => wrong.push(format!(
                    "{} (floor {floor}) imports {used} (floor {other})",
                    path.display()
                )),
                None => wrong.push(format!(
                    "{} imports {used}, which the picture lacks",
                    path.display()
                )),
            }
        }
    }
    assert!(
        imports > 40,
        "only {imports} imports read: is the parser blind?"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_parser_reads_grouped_and_nested_paths() {
    let code = "use crate::{action::{Action, Text}, values};\nlet x = crate::diag::Report::new();";
    assert_eq!(rooms_used(code), ["action", "values", "diag"]);
    assert_eq!(
        rooms_used(&without_comments("// see crate::plan\nuse crate::writer;")),
        ["writer"]
    );
}
