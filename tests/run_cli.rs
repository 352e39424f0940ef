//! `cloudcfg run` as the boot service runs it, against a fake IMDS on 127.0.0.1 and NoCloud
//! seeds under `--root`. The user data only writes files (an apt.conf snippet), so no command
//! needs a chroot and the tests run unprivileged.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use support::http::{self, Request, Response, Server};

const TOKEN: &str = "AQAEAFakeImdsV2Token-run-7d1e==";
const USER_DATA: &str = "#cloud-config\n# Files only: no default user (it needs the target's useradd).\nusers: []\napt:\n  conf: |\n    APT::Install-Recommends \"false\";\n";
const APT_CONF: &str = "etc/apt/apt.conf.d/94cloud-init-config";

/// A temporary target root, runtime directory and system config.
struct Boot {
    dir: tempfile::TempDir,
}

impl Boot {
    fn new(system_config: &str) -> Boot {
        let dir = tempfile::tempdir().unwrap();
        let boot = Boot { dir };
        boot.write(
            "root/etc/os-release",
            "ID=debian\nVERSION_CODENAME=bookworm\n",
        );
        boot.write("cloudcfg.yaml", system_config);
        std::fs::create_dir_all(boot.path("run")).unwrap();
        boot
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn root(&self, p: &str) -> PathBuf {
        self.path("root").join(p)
    }

    fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let root = self.path("root");
        let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
            .arg("--config")
            .arg(self.path("cloudcfg.yaml"))
            .arg("run")
            .arg("--root")
            .arg(&root)
            .args(args)
            .env("CLOUDCFG_RUNTIME_DIR", self.path("run"))
            .env_remove("RUST_LOG")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(env.iter().copied())
            .output()
            .expect("cloudcfg runs");
        eprintln!(
            "cloudcfg run {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn status(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path("run/cloudcfg/status.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn module_status(&self, module: &str) -> (String, String) {
        let status = self.status();
        let m = status["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == module)
            .unwrap_or_else(|| panic!("{module} in {status}"))
            .clone();
        (
            m["status"].as_str().unwrap_or_default().to_owned(),
            m["reason"].as_str().unwrap_or_default().to_owned(),
        )
    }

    fn state(&self, instance_id: &str, file: &str) -> PathBuf {
        self.root(&format!("var/lib/cloudcfg/instances/{instance_id}/{file}"))
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// An IMDSv2 service whose instance id and user data a test can change between boots.
struct Imds {
    server: Server,
    instance_id: Arc<Mutex<String>>,
}

fn imds(instance_id: &str, user_data: &str) -> Imds {
    let id = Arc::new(Mutex::new(instance_id.to_owned()));
    let user_data = user_data.to_owned();
    let id2 = Arc::clone(&id);
    let server = http::serve(move |req: &Request| {
        let authorized = req.header("X-aws-ec2-metadata-token") == Some(TOKEN);
        match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token") => Response::ok(TOKEN),
            ("GET", _) if !authorized => Response::status(401),
            ("GET", "/latest/meta-data/instance-id") => Response::ok(id2.lock().unwrap().clone()),
            ("GET", "/latest/meta-data/local-hostname") => Response::ok("ip-10-0-0-5.ec2.internal"),
            ("GET", "/latest/meta-data/hostname") => Response::ok("web1.example.org"),
            ("GET", "/latest/user-data") => Response::ok(user_data.clone()),
            _ => Response::not_found(),
        }
    });
    Imds {
        server,
        instance_id: id,
    }
}

fn ec2_config(server: &Server) -> String {
    format!(
        "datasource_list: [ec2]\nec2:\n  metadata_url: {}\n  timeout_secs: 2\n  deadline_secs: 5\n",
        server.url()
    )
}

#[test]
fn ec2_first_boot_second_boot_and_clone() {
    let imds = imds("i-0aaa", USER_DATA);
    let boot = Boot::new(&ec2_config(&imds.server));
    // A proxy from the environment must not see IMDS requests (nor the token).
    let proxy = http::serve(|_| Response::status(502));
    let proxy_url = proxy.url();
    let proxy_env = [
        ("http_proxy", proxy_url.as_str()),
        ("HTTP_PROXY", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("RUST_LOG", "trace"),
    ];

    // First boot: everything runs.
    let out = boot.run_with(&[], &proxy_env);
    assert_eq!(code(&out), 0);
    assert_eq!(
        proxy.requests().len(),
        0,
        "IMDS requests went through the proxy"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("IMDSv2 session token obtained"),
        "trace logging is on"
    );
    assert!(!stderr.contains(TOKEN), "the token reached the log");
    assert!(
        !stderr.contains(&TOKEN[..12]),
        "part of the token reached the log"
    );
    let status = boot.status();
    assert_eq!(status["status"], "done");
    assert_eq!(status["datasource"], "ec2");
    assert_eq!(status["instance_id"], "i-0aaa");
    assert_eq!(boot.module_status("apt_configure").0, "ok");
    assert_eq!(
        std::fs::read_to_string(boot.root(APT_CONF)).unwrap(),
        "APT::Install-Recommends \"false\";\n"
    );
    let user_data = boot.state("i-0aaa", "user-data");
    let instance_data = boot.state("i-0aaa", "instance-data.json");
    assert_eq!(std::fs::read_to_string(&user_data).unwrap(), USER_DATA);
    assert_eq!(mode(&user_data), 0o600);
    assert_eq!(mode(&instance_data), 0o600);
    let text = std::fs::read_to_string(&instance_data).unwrap();
    assert!(!text.contains(TOKEN));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["datasource"], "ec2");
    assert_eq!(json["source"], imds.server.url());
    assert_eq!(json["meta_data"]["instance-id"], "i-0aaa");
    // Facts: the short name from local-hostname, the FQDN from `hostname`, the release from
    // the target's os-release.
    assert_eq!(
        json["facts"],
        serde_json::json!({"instance_id": "i-0aaa", "hostname": "ip-10-0-0-5",
                           "fqdn": "web1.example.org", "release": "bookworm"})
    );
    // cloud-init's compatibility files are not written for an image root.
    assert!(!boot.path("run/cloud-init").exists());

    // Second boot of the same instance: nothing runs again.
    std::fs::remove_file(boot.root(APT_CONF)).unwrap();
    let out = boot.run(&[]);
    assert_eq!(code(&out), 0);
    assert_eq!(boot.status()["status"], "done");
    let (state, reason) = boot.module_status("apt_configure");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("skipped", "already ran for i-0aaa")
    );
    assert!(!boot.root(APT_CONF).exists(), "apt_configure ran again");

    // A clone: a new instance id runs everything again.
    *imds.instance_id.lock().unwrap() = "i-0bbb".into();
    let out = boot.run(&[]);
    assert_eq!(code(&out), 0);
    assert_eq!(boot.status()["instance_id"], "i-0bbb");
    assert_eq!(boot.module_status("apt_configure").0, "ok");
    assert!(boot.root(APT_CONF).exists());
    assert!(boot.state("i-0bbb", "user-data").exists());
}

#[test]
fn the_later_stages_use_the_fetch_of_the_init_stage() {
    // The package's two units: `init` before sshd, `config,final` after it.
    let imds = imds("i-0aaa", USER_DATA);
    let boot = Boot::new(&ec2_config(&imds.server));
    let out = boot.run(&["--stage", "init"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        boot.status()["status"],
        "running",
        "the later unit finishes it"
    );
    let fetched = boot.path("run/cloudcfg/fetched.json");
    assert_eq!(mode(&fetched), 0o600, "it holds the user data");

    // Metadata that changes between the units must not split the boot between two instances.
    *imds.instance_id.lock().unwrap() = "i-0bbb".into();
    let out = boot.run(&["--stage", "config,final"]);
    assert_eq!(code(&out), 0);
    let status = boot.status();
    assert_eq!(status["status"], "done");
    assert_eq!(status["instance_id"], "i-0aaa");
    assert_eq!(boot.module_status("apt_configure").0, "ok");
    let user_data_fetches = imds
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/latest/user-data")
        .count();
    assert_eq!(user_data_fetches, 1, "the later unit fetched again");

    // A copy of another boot is not used: the next boot fetches and sees the clone.
    let mut copy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fetched).unwrap()).unwrap();
    copy["boot_id"] = "another-boot".into();
    std::fs::write(&fetched, serde_json::to_vec(&copy).unwrap()).unwrap();
    let out = boot.run(&["--stage", "config,final"]);
    assert_eq!(code(&out), 0);
    assert_eq!(boot.status()["instance_id"], "i-0bbb");
}

#[test]
fn ec2_invalid_user_data_is_critical_and_kept() {
    let imds = imds("i-0bad", "#cloud-config\npackages: openssh-server\n");
    let boot = Boot::new(&ec2_config(&imds.server));
    let out = boot.run(&[]);
    assert_eq!(code(&out), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("i-0bad/user-data:2:"), "{stderr}");
    let status = boot.status();
    assert_eq!(status["status"], "error");
    assert_eq!(status["datasource"], "ec2");
    assert_eq!(status["instance_id"], "i-0bad");
    let errors = status["errors"].to_string();
    assert!(errors.contains("invalid user data"), "{errors}");
    assert!(errors.contains("packages"), "{errors}");
    // The bytes that failed are kept for `cloudcfg validate`.
    let kept = boot.state("i-0bad", "user-data");
    assert_eq!(mode(&kept), 0o600);
    assert!(
        std::fs::read_to_string(kept)
            .unwrap()
            .contains("openssh-server")
    );
    assert!(!boot.root(APT_CONF).exists());
    // Nothing was marked done: the next boot validates again.
    assert!(!boot.state("i-0bad", "apt_configure.done").exists());
}

#[test]
fn imdsv1_without_user_data_is_a_run_with_only_the_default_user_to_make() {
    let v1 = http::serve(|req| match req.path.as_str() {
        "/latest/api/token" => Response::status(404),
        "/latest/meta-data/instance-id" => Response::ok("i-0empty"),
        _ => Response::not_found(),
    });
    let boot = Boot::new(&ec2_config(&v1));
    let out = boot.run(&[]);
    // No user data still means the default user, as in cloud-init; this test's root is a bare
    // directory without useradd, so that module fails, and nothing else has anything to do.
    assert_eq!(code(&out), 1);
    assert_eq!(boot.status()["status"], "degraded");
    assert_eq!(boot.module_status("users_groups").0, "failed");
    assert_eq!(boot.module_status("apt_configure").1, "nothing to do");
    assert_eq!(
        std::fs::read(boot.state("i-0empty", "user-data")).unwrap(),
        b""
    );
    assert_eq!(v1.count("/latest/user-data"), 1);
}

#[test]
fn ec2_service_disabled_is_critical() {
    let forbidden = http::serve(|_| Response::status(403));
    let boot = Boot::new(&ec2_config(&forbidden));
    let out = boot.run(&[]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("disabled"));
    let status = boot.status();
    assert_eq!(status["status"], "error");
    assert_eq!(status["datasource"], "ec2");
    assert!(status["errors"][0].as_str().unwrap().contains("disabled"));
    assert_eq!(forbidden.requests().len(), 1);
}

#[test]
fn no_datasource_is_critical() {
    let boot = Boot::new("datasource_list: [nocloud]\n");
    let out = boot.run(&[]);
    assert_eq!(code(&out), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no datasource found"), "{stderr}");
    let status = boot.status();
    assert_eq!(status["status"], "error");
    assert_eq!(status["datasource"], "none");
    assert!(
        status["errors"][0]
            .as_str()
            .unwrap()
            .contains("no datasource found"),
        "{status}"
    );
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(boot.path("run/cloudcfg/result.json")).unwrap(),
    )
    .unwrap();
    assert!(
        result["v1"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("no datasource")
    );
    // `cloudcfg status` reads it as critical.
    let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .args(["status", "--wait"])
        .env("CLOUDCFG_RUNTIME_DIR", boot.path("run"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "status: error\n");
}

#[test]
fn default_list_without_evidence_never_probes_ec2() {
    // No datasource_list: with --root there is no DMI, so EC2 is not tried at all.
    let boot = Boot::new("");
    let started = std::time::Instant::now();
    let out = boot.run(&[]);
    assert_eq!(code(&out), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn nocloud_seed_dir_in_the_root() {
    let boot = Boot::new("");
    boot.write(
        "root/var/lib/cloud/seed/nocloud/meta-data",
        "instance-id: iid-seed01\nlocal-hostname: web1\n",
    );
    boot.write("root/var/lib/cloud/seed/nocloud/user-data", USER_DATA);
    let out = boot.run(&[]);
    assert_eq!(code(&out), 0);
    let status = boot.status();
    assert_eq!(status["status"], "done");
    assert_eq!(status["datasource"], "nocloud");
    assert_eq!(status["instance_id"], "iid-seed01");
    assert!(boot.root(APT_CONF).exists());
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(boot.state("iid-seed01", "instance-data.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["facts"]["fqdn"], "web1");
    assert_eq!(json["meta_data"]["local-hostname"], "web1");

    // Named explicitly, the same seed; named as EC2, the (unconfigured, unreachable) IMDS is
    // the one and only datasource: the seed is not a fallback. The URL points at a closed
    // port on 127.0.0.1 so that nothing leaves the machine.
    let out = boot.run(&["--datasource", "nocloud"]);
    assert_eq!(code(&out), 0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    boot.write(
        "cloudcfg.yaml",
        &format!("ec2: {{metadata_url: 'http://127.0.0.1:{port}', deadline_secs: 1}}\n"),
    );
    let out = boot.run(&["--datasource", "ec2"]);
    assert_eq!(code(&out), 1);
    assert_eq!(boot.status()["datasource"], "ec2");
}

#[test]
fn nocloud_bad_instance_id_is_critical() {
    let boot = Boot::new("");
    boot.write(
        "root/var/lib/cloud/seed/nocloud/meta-data",
        "instance-id: ../../../etc\n",
    );
    let out = boot.run(&[]);
    assert_eq!(code(&out), 1);
    let status = boot.status();
    assert_eq!(status["status"], "error");
    assert_eq!(status["datasource"], "nocloud");
    assert!(
        status["errors"][0]
            .as_str()
            .unwrap()
            .contains("instance-id")
    );
    assert!(!boot.root("var/lib/cloudcfg").exists());
}

/// `apply --user-data -` used to read standard input twice (once for the raw copy, once to
/// validate), so the plan came from the empty second read and nothing was applied.
#[test]
fn apply_reads_standard_input_once() {
    use std::io::Write;
    let boot = Boot::new("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .arg("--config")
        .arg(boot.path("cloudcfg.yaml"))
        .args([
            "apply",
            "--user-data",
            "-",
            "--instance-id",
            "i-stdin",
            "--root",
        ])
        .arg(boot.path("root"))
        .env("CLOUDCFG_RUNTIME_DIR", boot.path("run"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(USER_DATA.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        boot.root(APT_CONF).exists(),
        "the user data was not applied"
    );
    assert_eq!(
        std::fs::read_to_string(boot.state("i-stdin", "user-data")).unwrap(),
        USER_DATA
    );
}
