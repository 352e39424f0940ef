//! Report files and `cloudcfg status` (issue 4, item 7): status.json and result.json in the
//! contract's shapes, cloud-init's compatibility files where cloud-init is absent (never for an
//! image root), and status's exit codes.

mod support;

use std::process::Command;

use cloudcfg::action::Facts;
use cloudcfg::apply::{self, ApplyOptions, runner::RunnerConfig};
use cloudcfg::decode::Limits;
use cloudcfg::plan;
use cloudcfg::{config, system::SystemConfig};

fn facts() -> Facts {
    Facts {
        instance_id: Some("i-report".into()),
        hostname: Some("web1".into()),
        fqdn: Some("web1.example.org".into()),
        release: Some("bookworm".into()),
        arch: "amd64".into(),
        ..Facts::default()
    }
}

/// Applies a files-only config to a temporary directory as if it were a running system.
fn apply_files_only(image_root: bool) -> (tempfile::TempDir, tempfile::TempDir, apply::Outcome) {
    let root = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let user_data = b"#cloud-config\n# Files only: no default user (it needs the target's useradd).\nusers: []\napt:\n  conf: |\n    APT::Install-Recommends \"false\";\n";
    let loaded = config::load(user_data, &Limits::default());
    let plan = plan::plan(
        loaded.config.as_ref().unwrap(),
        &facts(),
        &SystemConfig::default(),
    )
    .unwrap();
    let opts = ApplyOptions {
        stages: Vec::new(),
        root: root.path().to_path_buf(),
        image_root,
        force: false,
        run_scripts: false,
        datasource: "ec2".into(),
        instance_id: "i-report".into(),
        boot_id: "boot-report".into(),
        user_data: user_data.to_vec(),
        instance_data: serde_json::json!({}),
        runner: RunnerConfig::default(),
        launchpad_api: "http://127.0.0.1:1".into(),
        default_keyserver: "http://127.0.0.1:1".into(),
        runtime_dir: run.path().to_path_buf(),
    };
    let outcome = apply::apply(&plan, &opts).unwrap();
    (root, run, outcome)
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn a_run_reports_in_cloudcfg_and_cloud_init_shapes() {
    if !support::root::can_run("a_run_reports_in_cloudcfg_and_cloud_init_shapes", &[]) {
        return;
    }
    let (root, run, outcome) = apply_files_only(false);
    assert!(!outcome.failed());
    let status = read_json(&run.path().join("cloudcfg/status.json"));
    assert_eq!(status["status"], "done");
    assert_eq!(status["datasource"], "ec2");
    assert_eq!(status["instance_id"], "i-report");
    let modules = status["modules"].as_array().unwrap();
    let apt = modules
        .iter()
        .find(|m| m["name"] == "apt_configure")
        .expect("apt_configure is reported");
    assert_eq!(apt["status"], "ok");
    // Modules without actions are reported too, as skipped.
    assert_eq!(modules[0]["name"], "bootcmd");
    assert_eq!(modules[0]["status"], "skipped");
    assert!(status["started"].as_str().unwrap().ends_with('Z'));
    let result = read_json(&run.path().join("cloudcfg/result.json"));
    assert_eq!(
        result,
        serde_json::json!({"v1": {"datasource": "DataSourceEc2", "errors": []}})
    );
    // cloud-init's own files, for tools that wait for cloud-init.
    assert_eq!(
        read_json(&run.path().join("cloud-init/result.json")),
        result
    );
    let ci = read_json(&run.path().join("cloud-init/status.json"));
    assert_eq!(ci["v1"]["datasource"], "DataSourceEc2");
    assert!(ci["v1"]["stage"].is_null());
    assert!(ci["v1"]["modules-final"]["finished"].as_f64().unwrap() > 1.7e9);
    assert!(ci["v1"]["init"]["start"].is_null());
    let link = root.path().join("var/lib/cloud/instance");
    assert_eq!(
        std::fs::read_link(&link).unwrap().to_str(),
        Some("/var/lib/cloud/instances/i-report")
    );
    assert!(
        root.path()
            .join("var/lib/cloud/instances/i-report/boot-finished")
            .exists()
    );
}

#[test]
fn an_image_root_never_looks_finished() {
    if !support::root::can_run("an_image_root_never_looks_finished", &[]) {
        return;
    }
    let (root, run, _) = apply_files_only(true);
    assert!(run.path().join("cloudcfg/status.json").exists());
    assert!(!run.path().join("cloud-init").exists());
    assert!(!root.path().join("var/lib/cloud").exists());
}

fn status(run: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .arg("status")
        .args(args)
        .env("CLOUDCFG_RUNTIME_DIR", run)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn write_status(run: &std::path::Path, status: &str, recoverable: &[&str], errors: &[&str]) {
    std::fs::create_dir_all(run.join("cloudcfg")).unwrap();
    let json = serde_json::json!({
        "status": status, "datasource": "ec2", "instance_id": "i-0abc",
        "started": "2026-11-25T12:00:01.120Z", "finished": "2026-11-25T12:00:01.480Z",
        "modules": [{"name": "package_update_upgrade_install", "status": "failed",
                     "error": "apt-get install exited 100: E: Unable to locate package zap"}],
        "errors": errors, "recoverable_errors": recoverable});
    std::fs::write(run.join("cloudcfg/status.json"), json.to_string()).unwrap();
}

#[test]
fn status_exit_codes_follow_cloud_init() {
    let run = tempfile::tempdir().unwrap();
    assert_eq!(status(run.path(), &[]), (0, "status: not started\n".into()));
    write_status(run.path(), "running", &[], &[]);
    assert_eq!(status(run.path(), &[]).0, 0);
    write_status(run.path(), "done", &[], &[]);
    assert_eq!(
        status(run.path(), &["--wait"]),
        (0, "status: done\n".into())
    );
    write_status(
        run.path(),
        "degraded",
        &["package_update_upgrade_install: apt-get install exited 100"],
        &[],
    );
    let (code, text) = status(run.path(), &["--long"]);
    assert_eq!(code, 2);
    assert!(
        text.contains("package_update_upgrade_install: failed (apt-get install exited 100"),
        "{text}"
    );
    write_status(run.path(), "error", &[], &["no datasource found"]);
    let (code, text) = status(run.path(), &["--long", "--format", "json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["errors"][0], "no datasource found");
    // A usage error exits 2, as cloud-init's does.
    assert_eq!(status(run.path(), &["--bogus"]).0, 2);
}

#[test]
fn status_wait_returns_when_the_run_finishes() {
    let run = tempfile::tempdir().unwrap();
    write_status(run.path(), "running", &[], &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .args(["status", "--wait"])
        .env("CLOUDCFG_RUNTIME_DIR", run.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Still waiting while the run is running; the poll below observes the process, it does
    // not wait for a fixed time.
    assert!(child.try_wait().unwrap().is_none());
    write_status(run.path(), "done", &[], &[]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "status: done\n");
}
