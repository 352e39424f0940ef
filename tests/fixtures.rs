//! Every file under tests/fixtures/valid plans, every file under tests/fixtures/invalid is
//! refused; their plans and diagnostics are checked as snapshots (tests/snapshots/).
//!
//! A fixture may set facts in a comment line: `# test-facts: release=jammy`.

use std::path::Path;

use cloudcfg::action::Facts;
use cloudcfg::decode::Limits;
use cloudcfg::plan::{self, render};
use cloudcfg::{config, system::SystemConfig};

fn facts_for(text: &str) -> Facts {
    let mut facts = Facts {
        instance_id: Some("i-0abc123def4567890".into()),
        hostname: Some("web1".into()),
        fqdn: Some("Web1.Example.org".into()),
        release: Some("bookworm".into()),
        arch: "amd64".into(),
        ..Facts::default()
    };
    for line in text.lines() {
        if let Some(spec) = line.strip_prefix("# test-facts:") {
            for pair in spec.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .expect("test-facts entries are key=value");
                let names = || v.split(',').map(str::to_owned).collect();
                let v = Some(v.to_owned());
                match k {
                    "release" => facts.release = v,
                    "instance_id" => facts.instance_id = v,
                    "fqdn" => facts.fqdn = v,
                    "hostname" => facts.hostname = v,
                    // What the root would show: debian.sources, /etc/apt/mirrors/*.list.
                    "deb822_sources" => facts.deb822_sources = v.as_deref() == Some("true"),
                    "mirror_lists" => facts.debian_mirror_lists = v.as_deref() == Some("true"),
                    // The image's executables in a cloud-init script directory: `per-boot=a,b`.
                    dir @ ("per-boot" | "per-instance" | "per-once") => {
                        facts.image_scripts.insert(dir.to_owned(), names());
                    }
                    other => panic!("unknown test fact {other}"),
                }
            }
        }
    }
    facts
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn valid_fixtures_plan() {
    insta::glob!("fixtures/valid/*", |path| {
        let bytes = std::fs::read(path).unwrap();
        let loaded = config::load(&bytes, &Limits::default());
        let file = name(path);
        assert!(
            loaded.is_valid(),
            "{file} should be valid:\n{}",
            loaded.report.render_text(&file)
        );
        let text = String::from_utf8_lossy(&bytes);
        let plan = plan::plan(
            loaded.config.as_ref().unwrap(),
            &facts_for(&text),
            &SystemConfig::default(),
        )
        .unwrap();
        let snapshot = format!(
            "{}--- plan (text)\n{}--- plan (json)\n{}\n",
            loaded.report.render_text(&file),
            render::text(&plan, &loaded.warnings()),
            serde_json::to_string_pretty(&render::json(&plan.redacted(), &loaded.warnings()))
                .unwrap()
        );
        insta::assert_snapshot!(snapshot);
    });
}

#[test]
fn invalid_fixtures_are_refused_with_positions() {
    insta::glob!("fixtures/invalid/*", |path| {
        let bytes = std::fs::read(path).unwrap();
        let loaded = config::load(&bytes, &Limits::default());
        let file = name(path);
        assert!(!loaded.is_valid(), "{file} should be invalid");
        for d in &loaded.report.diagnostics {
            assert!(
                d.pos.line >= 1 && d.pos.col >= 1,
                "{file}: {d:?} has no position"
            );
        }
        insta::assert_snapshot!(loaded.report.render_text(&file));
    });
}

#[test]
fn gzip_user_data_plans_like_the_plain_text() {
    use std::io::Write;
    let text = std::fs::read("examples/seed-rfc.yaml").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&text).unwrap();
    let gz = gz.finish().unwrap();
    let facts = facts_for("");
    let plain = config::load(&text, &Limits::default());
    let zipped = config::load(&gz, &Limits::default());
    assert!(zipped.is_valid());
    let system = SystemConfig::default();
    assert_eq!(
        plan::plan(plain.config.as_ref().unwrap(), &facts, &system).unwrap(),
        plan::plan(zipped.config.as_ref().unwrap(), &facts, &system).unwrap()
    );
    // Positions inside gzip name the part.
    let bad = b"#cloud-config\npackages: [\"a;b\"]\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bad).unwrap();
    let loaded = config::load(&gz.finish().unwrap(), &Limits::default());
    let text = loaded.report.render_text("ud.gz");
    assert!(
        text.starts_with("ud.gz:2:12: error: part 1 (gzip, text/cloud-config): packages[0]:"),
        "{text}"
    );
}
