//! cloud-init's own documentation examples for apt and packages (copied into
//! tests/compat/cloud-init-docs/ with their origin) validate and plan on Debian 12 and 13 and
//! Ubuntu 22.04 and 24.04; the one that is a template of placeholders is refused, each
//! placeholder with its position (issue 16).

use std::path::Path;

use cloudcfg::action::Facts;
use cloudcfg::decode::Limits;
use cloudcfg::{config, plan, system::SystemConfig};

const DIR: &str = "tests/compat/cloud-init-docs";

fn facts(release: &str) -> Facts {
    Facts {
        instance_id: Some("i-docs".into()),
        hostname: Some("docs".into()),
        release: Some(release.into()),
        arch: "amd64".into(),
        ..Facts::default()
    }
}

#[test]
fn the_documentation_examples_validate_and_plan_on_every_target() {
    let mut seen = 0;
    for entry in std::fs::read_dir(DIR).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        seen += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# Origin: cloud-init, "),
            "{name} names its origin"
        );
        let loaded = config::load(text.as_bytes(), &Limits::default());
        assert!(
            loaded.is_valid(),
            "{name}:\n{}",
            loaded.report.render_text(&name)
        );
        let config = loaded.config.unwrap();
        for release in ["bookworm", "trixie", "jammy", "noble"] {
            let planned = plan::plan(&config, &facts(release), &SystemConfig::default());
            assert!(planned.is_ok(), "{name} on {release}: {:?}", planned.err());
        }
    }
    assert!(seen >= 3, "the examples are there ({seen})");
}

#[test]
fn the_deb822_sources_list_example_replaces_the_distributions_sources_file() {
    let text = std::fs::read_to_string(Path::new(DIR).join("apt-example2.yaml")).unwrap();
    let config = config::load(text.as_bytes(), &Limits::default())
        .config
        .unwrap();
    for (release, file) in [
        ("noble", "/etc/apt/sources.list.d/ubuntu.sources"),
        ("trixie", "/etc/apt/sources.list.d/debian.sources"),
        // apt 2.6 reads .sources too: a deb822 sources_list never lands in sources.list.
        ("bookworm", "/etc/apt/sources.list.d/debian.sources"),
    ] {
        let plan = plan::plan(&config, &facts(release), &SystemConfig::default()).unwrap();
        let json = serde_json::to_value(&plan.actions).unwrap();
        let written: Vec<(String, String)> = json
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "write_file")
            .map(|a| {
                (
                    a["path"].as_str().unwrap().to_owned(),
                    a["content"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let sources = written
            .iter()
            .find(|(p, _)| p == file)
            .unwrap_or_else(|| panic!("{release}: {file} written: {written:?}"));
        assert!(
            sources.1.contains(&format!("Suites: {release}\n")),
            "{}",
            sources.1
        );
        let list = written
            .iter()
            .find(|(p, _)| p == "/etc/apt/sources.list")
            .expect("sources.list replaced");
        assert!(
            list.1.lines().all(|l| l.starts_with('#')),
            "{release}: sources.list names no archive: {}",
            list.1
        );
    }
}

#[test]
fn the_packages_example_installs_apt_ones_and_snaps_only_on_ubuntu() {
    let text = std::fs::read_to_string(Path::new(DIR).join("packages-example1.yaml")).unwrap();
    let config = config::load(text.as_bytes(), &Limits::default())
        .config
        .unwrap();
    let commands = |release: &str| -> (Vec<Vec<String>>, Vec<String>) {
        let plan = plan::plan(&config, &facts(release), &SystemConfig::default()).unwrap();
        let json = serde_json::to_value(&plan.actions).unwrap();
        let argvs = json
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "command")
            .map(|a| serde_json::from_value(a["argv"].clone()).unwrap())
            .collect();
        (
            argvs,
            plan.warnings.iter().map(|w| w.message.clone()).collect(),
        )
    };
    let (noble, _) = commands("noble");
    let install = noble
        .iter()
        .find(|a| a.iter().any(|w| w == "install") && a[0] == "apt-get")
        .expect("apt-get install");
    for package in [
        "pwgen",
        "pastebinit",
        "libpython3.8=3.8.10-0ubuntu1~20.04.2",
        "mg",
    ] {
        assert!(install.contains(&package.to_owned()), "{install:?}");
    }
    let snaps: Vec<&Vec<String>> = noble.iter().filter(|a| a[0] == "snap").collect();
    assert_eq!(
        snaps,
        [
            &vec!["snap".to_owned(), "install".into(), "certbot".into()],
            &vec![
                "snap".to_owned(),
                "install".into(),
                "juju".into(),
                "--edge".into()
            ],
            &vec![
                "snap".to_owned(),
                "install".into(),
                "lxd".into(),
                "--channel=5.15/stable".into()
            ],
        ]
    );
    let (trixie, warnings) = commands("trixie");
    assert!(trixie.iter().all(|a| a[0] != "snap"));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("snap packages are not installed on Debian")
                && w.contains("certbot, juju, lxd")),
        "{warnings:?}"
    );
}

#[test]
fn the_apt_template_example_is_refused_placeholder_by_placeholder() {
    let name = "apt-example1.yaml";
    let text = std::fs::read_to_string(Path::new(DIR).join("placeholders").join(name)).unwrap();
    let loaded = config::load(text.as_bytes(), &Limits::default());
    assert!(!loaded.is_valid());
    let report = loaded.report.render_text(name);
    for expected in [
        "apt-example1.yaml:52:18: error: apt.sources.source1.keyid",
        "apt-example1.yaml:56:19: error: apt.sources.source2.source",
        "apt-example1.yaml:60:15: error: apt.sources.source3.key",
        "apt-example1.yaml:67:15: error: apt.sources.source4.key",
        "warning: apt.sources.source5.keyurl: unknown key `keyurl`: ignored (did you mean `key_url`?)",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
}
