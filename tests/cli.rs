//! The binary as users and other programs meet it: exit codes, output shapes, secrets.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn cloudcfg(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .args(args)
        // A system config of this machine must not change what the tests see.
        .args(["--config", "/nonexistent/cloudcfg.yaml"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cloudcfg runs");
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "cloudcfg {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FACTS: &[&str] = &[
    "--instance-id",
    "i-0abc",
    "--hostname",
    "web1",
    "--fqdn",
    "web1.example.org",
    "--release",
    "bookworm",
];

#[test]
fn validate_exit_codes() {
    assert_eq!(
        code(&cloudcfg(&["validate", "examples/seed-rfc.yaml"], None)),
        0
    );
    assert_eq!(
        code(&cloudcfg(
            &["validate", "tests/fixtures/invalid/keyid-not-hex.yaml"],
            None
        )),
        1
    );
    assert_eq!(
        code(&cloudcfg(&["validate", "/nonexistent/user-data"], None)),
        2
    );
    assert_eq!(code(&cloudcfg(&["validate"], None)), 2);
    // Warnings alone do not fail validation.
    assert_eq!(
        code(&cloudcfg(
            &["validate", "tests/fixtures/valid/unknown-keys.yaml"],
            None
        )),
        0
    );
}

#[test]
fn validate_text_is_compiler_style_with_a_summary() {
    let out = cloudcfg(
        &[
            "validate",
            "tests/fixtures/invalid/filename-traversal.yaml",
            "examples/seed-puppet.yaml",
        ],
        None,
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "tests/fixtures/invalid/filename-traversal.yaml:4:15: error: apt_sources[0].filename:"
        ),
        "{text}"
    );
    assert_eq!(lines.last(), Some(&"1 error, 0 warnings in 2 files"));
}

#[test]
fn validate_json_has_the_contract_shape() {
    let out = cloudcfg(
        &[
            "validate",
            "--format",
            "json",
            "tests/fixtures/invalid/keyid-not-hex.yaml",
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = &json["files"][0];
    assert_eq!(file["file"], "tests/fixtures/invalid/keyid-not-hex.yaml");
    assert_eq!(file["valid"], false);
    let d = &file["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 4);
    assert_eq!(d["column"], 12);
    assert_eq!(d["path"], "apt_sources[0].keyid");
    assert!(d["message"].as_str().unwrap().contains("hexadecimal"));
}

#[test]
fn validate_reads_stdin() {
    let out = cloudcfg(
        &["validate", "-"],
        Some(b"#cloud-config\npackages: [\"bad name\"]\n"),
    );
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).starts_with("<stdin>:2:12: error:"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_never_panics_on_binary_garbage() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let out = cloudcfg(&["validate", "-"], Some(&garbage));
    assert!(matches!(code(&out), 0 | 1), "exit {}", code(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn plan_exit_codes() {
    let mut args = vec!["plan", "--user-data", "examples/seed-rfc.yaml"];
    args.extend_from_slice(FACTS);
    assert_eq!(code(&cloudcfg(&args, None)), 0);
    let mut args = vec![
        "plan",
        "--user-data",
        "tests/fixtures/invalid/package-shell-chars.yaml",
    ];
    args.extend_from_slice(FACTS);
    let out = cloudcfg(&args, None);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("package-shell-chars.yaml:4:5: error"));
    assert_eq!(
        code(&cloudcfg(&["plan", "--user-data", "/nonexistent"], None)),
        2
    );
}

#[test]
fn plan_names_the_flag_of_a_missing_fact() {
    // The root's machine-id is empty (an image before first boot): %i cannot be expanded.
    let out = cloudcfg(
        &[
            "plan",
            "--user-data",
            "tests/fixtures/valid/puppet-full.yaml",
            "--root",
            "tests/fixtures/roots/empty-machine-id",
        ],
        None,
    );
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--instance-id"));
    // The same root gives the other facts.
    let out = cloudcfg(
        &[
            "plan",
            "--format",
            "json",
            "--user-data",
            "tests/fixtures/valid/puppet-full.yaml",
            "--root",
            "tests/fixtures/roots/empty-machine-id",
            "--instance-id",
            "i-0abc",
        ],
        None,
    );
    assert_eq!(code(&out), 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["facts"]["release"], "bookworm");
    assert_eq!(json["facts"]["hostname"], "web1");
    assert_eq!(json["facts"]["fqdn"], "web1");
}

const SECRETS: &[&str] = &["S3cretProxyPass", "Sup3rS3cret", "PreSharedS3cret"];

fn plan_of(file: &str, extra: &[&str]) -> String {
    let mut args = vec!["plan", "--user-data", file];
    args.extend_from_slice(FACTS);
    args.extend_from_slice(extra);
    let out = cloudcfg(&args, None);
    assert_eq!(code(&out), 0);
    stdout(&out) + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn plan_output_never_shows_secrets() {
    for file in [
        "tests/fixtures/valid/apt-proxy-credentials.yaml",
        "tests/fixtures/valid/debconf-both-forms.yaml",
        "tests/fixtures/valid/puppet-full.yaml",
    ] {
        for format in ["text", "json"] {
            let out = plan_of(file, &["--format", format]);
            for secret in SECRETS {
                assert!(
                    !out.contains(secret),
                    "{file} ({format}) shows {secret}:\n{out}"
                );
            }
        }
    }
    let json = plan_of(
        "tests/fixtures/valid/apt-proxy-credentials.yaml",
        &["--format", "json"],
    );
    assert!(json.contains("<redacted sha256:"), "{json}");
    assert!(json.contains("\"mode\": \"0600\""), "{json}");
}

#[test]
fn show_secrets_shows_them() {
    let json = plan_of(
        "tests/fixtures/valid/puppet-full.yaml",
        &["--format", "json", "--show-secrets"],
    );
    assert!(json.contains("PreSharedS3cret"), "{json}");
}

#[test]
fn help_never_mentions_a_password_value() {
    let out = cloudcfg(&["--help"], None);
    assert_eq!(code(&out), 0);
    assert!(!stdout(&out).to_lowercase().contains("s3cret"));
}

#[test]
fn committed_schemas_match_the_types() {
    for (args, file) in [
        (vec!["schema"], "schema/cloud-config.schema.json"),
        (
            vec!["schema", "--system"],
            "schema/system-config.schema.json",
        ),
    ] {
        let out = cloudcfg(&args, None);
        assert_eq!(code(&out), 0);
        let committed = std::fs::read_to_string(file).unwrap();
        assert!(
            stdout(&out) == committed,
            "{file} is out of date: run `cargo run -- schema{} > {file}`",
            if args.len() > 1 { " --system" } else { "" }
        );
    }
}

#[test]
fn every_example_validates_and_plans() {
    let mut seen = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        let path = path.to_str().unwrap();
        assert_eq!(code(&cloudcfg(&["validate", path], None)), 0, "{path}");
        let mut args = vec!["plan", "--user-data", path];
        args.extend_from_slice(FACTS);
        assert_eq!(code(&cloudcfg(&args, None)), 0, "{path}");
        seen += 1;
    }
    assert!(seen >= 2, "examples/ holds at least the two seed examples");
}

#[test]
fn apply_dry_run_prints_the_plan_and_touches_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = cloudcfg(
        &[
            "apply",
            "--dry-run",
            "--user-data",
            "tests/fixtures/valid/apt-conf.yaml",
            "--root",
            root.path().to_str().unwrap(),
            "--instance-id",
            "i-dry",
            "--release",
            "bookworm",
        ],
        None,
    );
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("write   /etc/apt/apt.conf.d/00-boot-conf"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "dry run wrote into the root"
    );
}

/// cloudcfg.service's ExecStopPost=: a run killed at TimeoutStartSec leaves status.json
/// `running`; `stop-post` closes it, so `status --wait` returns (exit 1) instead of hanging.
#[test]
fn stop_post_closes_a_killed_run_and_status_wait_returns() {
    let run = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(run.path().join("cloudcfg")).unwrap();
    std::fs::write(
        run.path().join("cloudcfg/status.json"),
        r#"{"status": "running", "datasource": "ec2", "instance_id": "i-1",
            "started": "2026-11-25T12:00:01.120Z", "finished": null,
            "modules": [{"name": "package_update_upgrade_install", "status": "running"}],
            "errors": [], "recoverable_errors": []}"#,
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_cloudcfg");
    let stop_post = Command::new(bin)
        .arg("stop-post")
        .env("CLOUDCFG_RUNTIME_DIR", run.path())
        .env("SERVICE_RESULT", "timeout")
        .env("EXIT_CODE", "killed")
        .env("EXIT_STATUS", "TERM")
        .output()
        .unwrap();
    assert_eq!(code(&stop_post), 0, "{stop_post:?}");
    assert!(
        String::from_utf8_lossy(&stop_post.stderr).contains("service result timeout"),
        "{stop_post:?}"
    );
    let mut wait = Command::new(bin)
        .args(["status", "--wait", "--long"])
        .env("CLOUDCFG_RUNTIME_DIR", run.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while wait.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = wait.kill();
            panic!("status --wait still waits for a closed run");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = wait.wait_with_output().unwrap();
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(text.starts_with("status: error\n"), "{text}");
    assert!(
        text.contains("package_update_upgrade_install: failed (interrupted"),
        "{text}"
    );
}

#[test]
fn manpage_is_hidden_from_help() {
    let help = stdout(&cloudcfg(&["--help"], None));
    assert!(
        !help.contains("manpage") && !help.contains("stop-post"),
        "{help}"
    );
    let page = cloudcfg(&["manpage"], None);
    assert_eq!(code(&page), 0);
    assert!(stdout(&page).contains(".SH COMMANDS"));
}

#[test]
fn a_malformed_key_is_one_diagnostic_even_with_backtraces_on() {
    // pgp captures a backtrace in its errors when RUST_BACKTRACE is set and warns about each
    // packet it cannot read with a Debug dump of one: neither may reach the user, who gets
    // cloudcfg's own error at the key's position.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/regressions/pgp-error-backtrace.yaml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .args([
            "--config",
            "/nonexistent/cloudcfg.yaml",
            "validate",
            fixture,
        ])
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = stdout(&out);
    assert_eq!(code(&out), 1, "{report}{stderr}");
    assert_eq!(stderr, "", "nothing but the report");
    // (The fixture's own name has "backtrace" in it: look for pgp's dump.)
    assert!(
        !report.contains("Backtrace [") && !report.contains("backtrace: "),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with(&format!("{fixture}:14:9: error: "))
                && l.contains(".key: key is not a readable OpenPGP public key")),
        "{report}"
    );
}

#[test]
fn clean_makes_the_next_boot_a_first_boot_and_keeps_the_images_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for path in [
        "var/lib/cloudcfg/instances/i-1/runcmd.done",
        "var/lib/cloud/instance/boot-finished",
        "var/lib/cloud/scripts/per-instance/10-x",
        "var/log/cloudcfg.log",
        "etc/machine-id",
    ] {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::fs::write(root.join(path), "x").unwrap();
    }
    let root_arg = root.to_str().unwrap();
    let out = cloudcfg(
        &["clean", "--root", root_arg, "--logs", "--machine-id"],
        None,
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout(&out),
        "removed /var/lib/cloudcfg\nremoved /var/lib/cloud/instance\n\
         removed /var/log/cloudcfg.log\nremoved /etc/machine-id (emptied)\n"
    );
    assert!(!root.join("var/lib/cloudcfg").exists());
    assert!(
        root.join("var/lib/cloud/scripts/per-instance/10-x")
            .exists()
    );
    assert_eq!(std::fs::read(root.join("etc/machine-id")).unwrap(), b"");
    // A root that is not there is a usage error, not a silent success.
    let missing = root.join("missing");
    let out = cloudcfg(&["clean", "--root", missing.to_str().unwrap()], None);
    assert_eq!(code(&out), 2);
}

#[test]
fn a_key_apt_3_refuses_is_an_error_at_its_position_for_a_debian_13_target_and_nothing_is_written() {
    let key = include_str!("compat/keys/weak-rsa1024.asc");
    let indented: String = key.lines().map(|l| format!("        {l}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let ud = dir.path().join("weak.yaml");
    std::fs::write(
        &ud,
        format!(
            "#cloud-config\napt:\n  sources:\n    old:\n      source: \"deb http://old.example.org/debian trixie main\"\n      key: |\n{indented}"
        ),
    )
    .unwrap();
    let ud = ud.to_str().unwrap();
    // Offline, the target is unknown: a warning that names the key and the reason.
    let out = cloudcfg(&["validate", ud], None);
    assert_eq!(code(&out), 0);
    let err = stdout(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":7:9: warning: apt.sources.old.key: apt 3 (sqv) refuses key"),
        "{err}"
    );
    // For Debian 13 it is an error at the key, and apply writes nothing.
    let root = tempfile::tempdir().unwrap();
    for command in ["plan", "apply"] {
        let mut args = vec![
            command,
            "--user-data",
            ud,
            "--instance-id",
            "i-1",
            "--release",
            "trixie",
        ];
        if command == "apply" {
            args.extend(["--root", root.path().to_str().unwrap()]);
        }
        let out = cloudcfg(&args, None);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(code(&out), 1, "{command}: {err}");
        assert!(
            err.contains("weak.yaml:7:9: error: apt.sources.old.key: apt 3 (sqv) refuses key")
                && err.contains("RSA with 1024 bits"),
            "{command}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
