//! Differential test against cloud-init 22.4 (issue 7): each case of tests/compat/cases is
//! planned by cloudcfg and compared, fact by fact, with what cloud-init's own module code did
//! with it (the committed records, made by tests/compat/record.sh with the oracle).
//!
//! Facts and normalisation (docs/compat.md, "How the comparison works"):
//! - a file fact per path written: `file:PATH` = mode + content. cloudcfg's `edit_ini` actions
//!   are applied to the same seeded target the oracle used (tests/compat/target), `fetch_key`
//!   gives a file naming the key, and only files that end up different from the seed count.
//! - a command fact per side-effecting command: `command:ARGV` = environment + stdin, with
//!   cloud-init's `eatmydata` prefix removed, regardless of which module ran it and in what
//!   order (order between modules is the contract's; order of independent files is not a
//!   behaviour). cloud-init's look-ups (lsb_release, dpkg --print-architecture, puppet config
//!   print) are not facts. cloudcfg's `reconfigure_installed` becomes the dpkg-reconfigure of
//!   the installed packages the oracle reported; its service kinds become the systemctl calls
//!   of a running system.
//! - a config cloudcfg refuses is one fact, `config`, that differs.
//! - the validate verdict is `cloudcfg validate`'s (the config has no errors), compared with
//!   `cloud-init schema` run on the input alone.
//!
//! Every difference must match an entry of docs/compat.md; an entry matching nothing fails too,
//! and so does a stale agreement figure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cloudcfg::action::{ActionKind, Facts};
use cloudcfg::apply::ini;
use cloudcfg::decode::Limits;
use cloudcfg::plan;
use cloudcfg::{config, system::SystemConfig};

const CASES: &str = "tests/compat/cases";
const TARGET: &str = "tests/compat/target";
const DOC: &str = "docs/compat.md";
/// What the oracle reported installed (tests/compat/README.md, "Oracle flags").
const INSTALLED: &[&str] = &["apt", "cloud-init", "debconf", "openssh-server", "tzdata"];

type FactMap = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    case: String,
    fact: String,
    kind: &'static str,
}

fn seeded_target() -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let target = format!("/{}", path.strip_prefix(base).unwrap().display());
                out.insert(target, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new(TARGET), Path::new(TARGET), &mut out);
    out
}

fn command_fact(
    facts: &mut FactMap,
    argv: &[String],
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
) {
    let argv: Vec<&str> = argv
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "eatmydata")
        .collect();
    let mut key = format!("command:{}", argv.join(" "));
    while facts.contains_key(&key) {
        key.push_str(" (again)");
    }
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    facts.insert(key, format!("env [{}] stdin {:?}", env.join(" "), stdin));
}

fn file_fact(facts: &mut FactMap, path: &str, mode: &str, content: &str) {
    facts.insert(format!("file:{path}"), format!("{mode} {content}"));
}

/// cloudcfg's facts for a case, or `None` when it refuses the config.
fn cloudcfg_facts(case_dir: &Path, meta: &serde_json::Value) -> Option<FactMap> {
    let bytes = std::fs::read(case_dir.join("user-data.yaml")).unwrap();
    let loaded = config::load(&bytes, &Limits::default());
    if !loaded.is_valid() {
        return None;
    }
    let fact = |k: &str| meta[k].as_str().map(str::to_owned);
    let facts = Facts {
        instance_id: fact("instance_id"),
        hostname: fact("hostname"),
        fqdn: fact("fqdn"),
        release: fact("release"),
        arch: "amd64".into(),
        ..Facts::default()
    };
    let plan = plan::plan(
        loaded.config.as_ref().unwrap(),
        &facts,
        &SystemConfig::default(),
    )
    .ok()?;
    let seed = seeded_target();
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut out = FactMap::new();
    for action in &plan.actions {
        match &action.kind {
            ActionKind::WriteFile {
                path,
                mode,
                content,
                ..
            } => {
                files.insert(path.clone(), (mode.clone(), content.text.clone()));
            }
            ActionKind::WriteUserFile {
                path,
                mode,
                content,
                content_base64,
                ..
            } => {
                let text = content.iter().chain(content_base64).map(|t| t.text.clone());
                files.insert(path.clone(), (mode.clone(), text.collect()));
            }
            // Console lines, not states of the system; accounts, host keys and names are not
            // recorded by the oracle yet (issue 18 compares them as outcomes).
            ActionKind::FinalMessage { .. }
            | ActionKind::HostKeysToConsole { .. }
            | ActionKind::EnsureGroup { .. }
            | ActionKind::EnsureUser { .. }
            | ActionKind::WriteSudoers { .. }
            | ActionKind::AuthorizedKeys { .. }
            | ActionKind::SetPasswords { .. }
            | ActionKind::HostKeys { .. }
            | ActionKind::SetHostname { .. }
            | ActionKind::HostsEntry { .. }
            | ActionKind::ReloadService { .. } => {}
            ActionKind::PowerState { argv, .. } => {
                command_fact(&mut out, argv, &BTreeMap::new(), None);
            }
            ActionKind::RunScript { path, .. } => {
                command_fact(&mut out, std::slice::from_ref(path), &BTreeMap::new(), None);
            }
            ActionKind::FetchKey {
                keyid,
                keyserver,
                ppa,
                url,
                dest,
                ..
            } => {
                let what = match (keyid, ppa) {
                    (Some(id), _) => {
                        let from = url.clone().or_else(|| keyserver.clone());
                        format!("<key {id} from {}>", from.unwrap_or_default())
                    }
                    (None, Some(ppa)) => format!("<signing key of ppa:{ppa}>"),
                    (None, None) => "<key>".into(),
                };
                files.insert(dest.clone(), ("0644".into(), what));
            }
            ActionKind::EditIni {
                path,
                section,
                key,
                value,
            } => {
                let current = files
                    .get(path)
                    .map(|(_, c)| c.clone())
                    .or_else(|| seed.get(path).cloned());
                let mode = files
                    .get(path)
                    .map_or("0644".to_owned(), |(m, _)| m.clone());
                if let Some(original) = seed.get(path) {
                    files
                        .entry(format!("{path}.old"))
                        .or_insert_with(|| ("0644".into(), original.clone()));
                }
                let updated = ini::set(current.as_deref().unwrap_or(""), section, key, value);
                files.insert(path.clone(), (mode, updated));
            }
            ActionKind::Command {
                argv, env, stdin, ..
            } => {
                command_fact(&mut out, argv, env, stdin.as_ref().map(|t| t.text.as_str()));
            }
            ActionKind::ReconfigureInstalled { packages } => {
                let chosen: Vec<String> = packages
                    .iter()
                    .filter(|p| INSTALLED.contains(&p.as_str()))
                    .cloned()
                    .collect();
                if !chosen.is_empty() {
                    let mut argv = vec![
                        "dpkg-reconfigure".to_owned(),
                        "--frontend=noninteractive".to_owned(),
                    ];
                    argv.extend(chosen);
                    let env = BTreeMap::from([(
                        "DEBIAN_FRONTEND".to_owned(),
                        "noninteractive".to_owned(),
                    )]);
                    command_fact(&mut out, &argv, &env, None);
                }
            }
            ActionKind::EnableService { unit } => {
                let argv: Vec<String> = ["systemctl", "enable", unit].map(str::to_owned).to_vec();
                command_fact(&mut out, &argv, &BTreeMap::new(), None);
            }
            ActionKind::StartService { unit } => {
                let argv: Vec<String> = ["systemctl", "start", "--no-block", unit]
                    .map(str::to_owned)
                    .to_vec();
                command_fact(&mut out, &argv, &BTreeMap::new(), None);
            }
        }
    }
    for (path, (mode, content)) in files {
        if seed.get(&path) != Some(&content) {
            file_fact(&mut out, &path, &mode, &content);
        }
    }
    Some(out)
}

fn cloud_init_facts(record: &serde_json::Value) -> FactMap {
    let mut out = FactMap::new();
    for command in record["commands"].as_array().unwrap() {
        if command["kind"] != "action" {
            continue;
        }
        let argv: Vec<String> = command["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap_or_default().to_owned())
            .collect();
        let env: BTreeMap<String, String> = command["env"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        command_fact(&mut out, &argv, &env, command["stdin"].as_str());
    }
    for file in record["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let mode = file["mode"].as_str().unwrap_or("?");
        match (file["status"].as_str(), file["content"].as_str()) {
            (Some("deleted"), _) => {
                out.insert(format!("file:{path}"), "deleted".into());
            }
            (_, Some(content)) => file_fact(&mut out, path, mode, content),
            (_, None) => file_fact(&mut out, path, mode, "<binary>"),
        }
    }
    out
}

struct Comparison {
    differences: Vec<Difference>,
    cases: usize,
    cases_without_difference: usize,
    facts: usize,
    facts_agreeing: usize,
    validate: Vec<(String, bool, bool)>,
}

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(CASES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn compare() -> Comparison {
    let mut cmp = Comparison {
        differences: Vec::new(),
        cases: 0,
        cases_without_difference: 0,
        facts: 0,
        facts_agreeing: 0,
        validate: Vec::new(),
    };
    for dir in case_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
        let ours = cloudcfg_facts(&dir, &meta);
        // `cloudcfg validate`'s verdict: the config itself has no errors. A valid config whose
        // plan cannot be made is a refusal below, but not a validation verdict.
        let bytes = std::fs::read(dir.join("user-data.yaml")).unwrap();
        let ours_valid = config::load(&bytes, &Limits::default()).is_valid();
        for variant in meta["system_cfg"].as_array().unwrap() {
            let variant = variant.as_str().unwrap();
            let (file, label) = match variant {
                "none" => ("cloud-init.json", name.clone()),
                other => (
                    match other {
                        "debian" => "cloud-init-debian.json",
                        _ => panic!("unknown system_cfg {other}"),
                    },
                    format!("{name}+{other}"),
                ),
            };
            let record: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
            if variant == "none" {
                let theirs_valid = record["schema"]["valid"].as_bool().unwrap();
                cmp.validate.push((name.clone(), ours_valid, theirs_valid));
            }
            let theirs = cloud_init_facts(&record);
            cmp.cases += 1;
            let before = cmp.differences.len();
            match &ours {
                None => {
                    cmp.facts += 1 + theirs.len();
                    cmp.differences.push(Difference {
                        case: label,
                        fact: "config".into(),
                        kind: "refused",
                    });
                }
                Some(ours) => {
                    let keys: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
                    for key in keys {
                        cmp.facts += 1;
                        let kind = match (ours.get(key), theirs.get(key)) {
                            (Some(a), Some(b)) if a == b => {
                                cmp.facts_agreeing += 1;
                                continue;
                            }
                            (Some(a), Some(b)) => {
                                if std::env::var_os("COMPAT_DUMP").is_some() {
                                    eprintln!(
                                        "== {label} {key}\n-- cloudcfg:\n{a}\n-- cloud-init:\n{b}"
                                    );
                                }
                                "differs"
                            }
                            (Some(_), None) => "only-cloudcfg",
                            (None, _) => "only-cloud-init",
                        };
                        cmp.differences.push(Difference {
                            case: label.clone(),
                            fact: key.clone(),
                            kind,
                        });
                    }
                }
            }
            if cmp.differences.len() == before {
                cmp.cases_without_difference += 1;
            }
        }
    }
    cmp
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

struct Entry {
    id: String,
    cases: Vec<String>,
    facts: Vec<String>,
    kinds: Vec<String>,
}

impl Entry {
    fn matches(&self, d: &Difference) -> bool {
        self.cases.iter().any(|c| glob(c, &d.case))
            && self.facts.iter().any(|f| glob(f, &d.fact))
            && self.kinds.iter().any(|k| k == "*" || k == d.kind)
    }
}

fn table_rows<'d>(doc: &'d str, marker: &str) -> Vec<Vec<&'d str>> {
    let begin = format!("<!-- {marker}: begin -->");
    let end = format!("<!-- {marker}: end -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("{DOC} lacks {begin}"));
    let stop = doc
        .find(&end)
        .unwrap_or_else(|| panic!("{DOC} lacks {end}"));
    doc[start + begin.len()..stop]
        .lines()
        .filter(|l| {
            l.starts_with('|')
                && !l.starts_with("|---")
                && !l.starts_with("| id ")
                && !l.starts_with("| case ")
        })
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect()
}

fn code_list(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(|s| s.trim().trim_matches('`').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn entries(doc: &str) -> Vec<Entry> {
    table_rows(doc, "compat-differences")
        .into_iter()
        .map(|row| {
            assert!(
                row.len() >= 5,
                "a row of the differences table needs 5 cells: {row:?}"
            );
            Entry {
                id: row[0].trim_matches('`').to_owned(),
                cases: code_list(row[1]),
                facts: code_list(row[2]),
                kinds: code_list(row[3]),
            }
        })
        .collect()
}

#[test]
fn every_difference_from_cloud_init_is_explained() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let entries = entries(&doc);
    let cmp = compare();
    assert!(cmp.cases >= 40, "the corpus has at least 40 cases");

    let unexplained: Vec<&Difference> = cmp
        .differences
        .iter()
        .filter(|d| !entries.iter().any(|e| e.matches(d)))
        .collect();
    let unused: Vec<&str> = entries
        .iter()
        .filter(|e| !cmp.differences.iter().any(|d| e.matches(d)))
        .map(|e| e.id.as_str())
        .collect();
    let listing: String = unexplained
        .iter()
        .map(|d| format!("| {} | {} | {} |\n", d.case, d.fact, d.kind))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{} differences not explained in {DOC}:\n{listing}",
        unexplained.len()
    );
    assert!(
        unused.is_empty(),
        "entries of {DOC} that match no difference: {unused:?}"
    );

    let figures = format!(
        "{}/{} cases without any difference, {}/{} facts agree",
        cmp.cases_without_difference, cmp.cases, cmp.facts_agreeing, cmp.facts
    );
    assert!(
        doc.contains(&figures),
        "{DOC} must state the current agreement figures: `{figures}`"
    );
}

#[test]
fn validate_disagreements_with_cloud_init_schema_are_listed() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let listed: BTreeMap<String, (String, String)> = table_rows(&doc, "compat-validate")
        .into_iter()
        .map(|row| {
            assert!(
                row.len() >= 4,
                "a row of the validate table needs 4 cells: {row:?}"
            );
            (
                row[0].trim_matches('`').to_owned(),
                (row[1].to_owned(), row[2].to_owned()),
            )
        })
        .collect();
    let word = |valid: bool| if valid { "valid" } else { "invalid" };
    let actual: BTreeMap<String, (String, String)> = compare()
        .validate
        .into_iter()
        .filter(|(_, ours, theirs)| ours != theirs)
        .map(|(case, ours, theirs)| (case, (word(ours).to_owned(), word(theirs).to_owned())))
        .collect();
    assert_eq!(
        listed, actual,
        "the validate table of {DOC} must list exactly the cases where `cloudcfg validate` and \
         `cloud-init schema` disagree (case | cloudcfg | cloud-init | why)"
    );
}
