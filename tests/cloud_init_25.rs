//! Outcome against Debian 13's cloud-init (25.1, recorded by tests/compat/cloud-init-25.1/
//! record.sh with its own cc_apt_configure code on a trixie cloud image's sources): for each
//! case, the archives apt would use after cloudcfg (its plan on the same seed) and after
//! cloud-init, as (type, URI, suite, components, Signed-By) entries. Equal, or different for a
//! reason written here (issue 16: "docs/compat.md compares with cloud-init 22.4 and 25.1").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cloudcfg::action::{ActionKind, Facts};
use cloudcfg::decode::Limits;
use cloudcfg::modules::apt_configure::deb822;
use cloudcfg::{config, plan, system::SystemConfig};

const DIR: &str = "tests/compat/cloud-init-25.1";

type Entry = (String, String, String, String, Option<String>);

/// The enabled entries of one file of apt's sources, one-line or deb822.
fn entries(path: &str, text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    if path.ends_with(".sources") {
        for s in deb822::parse(text).unwrap_or_default() {
            if s.get("Enabled")
                .is_some_and(|v| v.eq_ignore_ascii_case("no"))
            {
                continue;
            }
            let comps = s.words("Components").join(" ");
            let signed = s.get("Signed-By").map(str::to_owned);
            for t in s.words("Types") {
                for u in s.words("URIs") {
                    for suite in s.words("Suites") {
                        out.push((
                            t.to_owned(),
                            u.trim_end_matches('/').to_owned(),
                            suite.to_owned(),
                            comps.clone(),
                            signed.clone(),
                        ));
                    }
                }
            }
        }
        return out;
    }
    for line in text.lines().map(str::trim) {
        if !(line.starts_with("deb ") || line.starts_with("deb-src ")) {
            continue;
        }
        let s = deb822::from_one_line(line).expect("a one-line entry");
        out.push((
            s.words("Types").join(""),
            s.words("URIs").join("").trim_end_matches('/').to_owned(),
            s.words("Suites").join(""),
            s.words("Components").join(" "),
            s.get("Signed-By").map(str::to_owned),
        ));
    }
    out
}

/// `==> PATH` sections of a record.
fn recorded(text: &str) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        if let Some(path) = line.strip_prefix("==> ") {
            if let Some((p, c)) = current.take() {
                files.insert(p, c);
            }
            current = Some((path.trim().to_owned(), String::new()));
        } else if let Some((_, c)) = current.as_mut() {
            c.push_str(line);
        }
    }
    if let Some((p, c)) = current {
        files.insert(p, c);
    }
    files
}

fn outcome(files: &BTreeMap<String, String>) -> BTreeSet<Entry> {
    files
        .iter()
        .filter(|(p, _)| p.starts_with("/etc/apt/sources.list"))
        .flat_map(|(p, c)| entries(p, c))
        .collect()
}

/// cloudcfg's end state: the seed, with what its plan writes over it.
fn cloudcfg_files(user_data: &str, seed: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let loaded = config::load(user_data.as_bytes(), &Limits::default());
    assert!(
        loaded.is_valid(),
        "{}",
        loaded.report.render_text("user-data")
    );
    let facts = Facts {
        instance_id: Some("i-0123456789abcdef0".into()),
        hostname: Some("testhost".into()),
        release: Some("trixie".into()),
        arch: "amd64".into(),
        deb822_sources: true,
        debian_mirror_lists: true,
        ..Facts::default()
    };
    let plan = plan::plan(&loaded.config.unwrap(), &facts, &SystemConfig::default()).unwrap();
    let mut files = seed.clone();
    for action in &plan.actions {
        if let ActionKind::WriteFile { path, content, .. } = &action.kind
            && path.starts_with("/etc/apt/")
        {
            files.insert(path.clone(), content.text.clone());
        }
    }
    files
}

#[test]
fn archives_after_cloudcfg_and_after_cloud_init_25_1_on_trixie() {
    let seed_path = "/etc/apt/sources.list.d/debian.sources";
    let seed = BTreeMap::from([(
        seed_path.to_owned(),
        std::fs::read_to_string(Path::new(DIR).join("seed").join(&seed_path[1..])).unwrap(),
    )]);
    let image_archive = outcome(&seed);
    // Why cloudcfg's archives differ from cloud-init 25.1's, by case; absent = the same.
    let deliberate: BTreeMap<&str, &str> = BTreeMap::from([(
        "one-line-sources-list",
        "cloud-init writes the one-line sources_list to sources.list and leaves the image's \
         debian.sources: every archive twice (apt: configured multiple times) and the old \
         mirror still active; cloudcfg converts it and replaces debian.sources",
    )]);
    let mut seen = 0;
    for case in std::fs::read_dir(Path::new(DIR).join("cases"))
        .unwrap()
        .flatten()
    {
        seen += 1;
        let name = case.file_name().to_string_lossy().into_owned();
        let user_data = std::fs::read_to_string(case.path().join("user-data.yaml")).unwrap();
        let theirs =
            recorded(&std::fs::read_to_string(case.path().join("cloud-init-25.1.apt")).unwrap());
        let ours = outcome(&cloudcfg_files(&user_data, &seed));
        let theirs = outcome(&theirs);
        match deliberate.get(name.as_str()) {
            None => assert_eq!(ours, theirs, "{name}: the archives differ"),
            Some(why) => {
                // The difference is exactly the image's archive that cloud-init left beside.
                let extra: BTreeSet<Entry> = theirs.difference(&ours).cloned().collect();
                assert_eq!(extra, image_archive, "{name} ({why})");
                assert!(ours.is_subset(&theirs), "{name}: {ours:?}");
            }
        }
    }
    assert_eq!(seen, 4);
}
