//! `cloudcfg apply --root` against real apt, dpkg and debconf in a debootstrapped Debian
//! bookworm root, with a signed apt repository and an HKP keyserver on 127.0.0.1 (issue 4).
//!
//! Each test mounts its own overlay on the one cached root (tests/e2e/bookworm-root.sh) and
//! builds its own repository with new keys (tests/e2e/make-repo.sh). Without root or the
//! tools, the tests skip loudly; under CI=true a skip fails.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Output};

use support::http::{self, Server};
use support::root::{self, Overlay, Repo};

const TOOLS: &[&str] = &[
    "debootstrap",
    "gpg",
    "dpkg-scanpackages",
    "chroot",
    "mount",
    "flock",
];
const PACKAGE: &str = "cloudcfg-e2e-hello";

struct Env {
    overlay: Overlay,
    repo: Repo,
    server: Server,
    scratch: tempfile::TempDir,
}

/// A root, a repository and a server that serves both the repository and, as keyserver, the
/// key `served` under the repository's fingerprint.
fn setup(test: &str, serve_wrong_key: bool) -> Option<Env> {
    setup_suite(test, "bookworm", serve_wrong_key)
}

/// The same on the root of `suite` (bookworm, or trixie as its cloud images are).
fn setup_suite(test: &str, suite: &str, serve_wrong_key: bool) -> Option<Env> {
    if !root::can_run(test, TOOLS) {
        return None;
    }
    let lower = root::suite_root(suite);
    let overlay = Overlay::new(&lower);
    let repo = root::make_suite_repo(suite, &[PACKAGE]);
    let served = if serve_wrong_key {
        &repo.wrong_key
    } else {
        &repo.key
    };
    let keys = vec![(repo.fingerprint.clone(), served.clone())];
    let server = http::serve(http::or_else(
        http::hkp(keys),
        http::static_files(repo.web_root.clone()),
    ));
    let scratch = tempfile::tempdir().unwrap();
    Some(Env {
        overlay,
        repo,
        server,
        scratch,
    })
}

impl Env {
    fn user_data(&self, extra_packages: &[&str]) -> String {
        let mut packages = vec![PACKAGE];
        packages.extend_from_slice(extra_packages);
        format!(
            r#"#cloud-config
apt:
  sources:
    e2e:
      source: "deb {url}/debian $RELEASE main"
      keyid: "{fpr}"
      keyserver: "{url}"
apt_conf:
  - filename: 99-e2e
    content: |
      APT::Install-Recommends "false";
debconf_selections: |
  tzdata tzdata/Areas select Europe
  tzdata tzdata/Zones/Europe select Berlin
packages: [{packages}]
"#,
            url = self.server.url(),
            fpr = self.repo.fingerprint,
            packages = packages.join(", ")
        )
    }

    fn files(&self, user_data: &str) -> (PathBuf, PathBuf, PathBuf) {
        let ud = self.scratch.path().join("user-data.yaml");
        std::fs::write(&ud, user_data).unwrap();
        let sys = self.scratch.path().join("cloudcfg.yaml");
        if !sys.exists() {
            // Short bounds: a broken test should fail in seconds, not minutes.
            std::fs::write(&sys, "dpkg_lock_timeout_secs: 60\napt_update_attempts: 2\n").unwrap();
        }
        let run = self.scratch.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        (ud, sys, run)
    }

    fn system_config(&self, text: &str) {
        std::fs::write(self.scratch.path().join("cloudcfg.yaml"), text).unwrap();
    }

    /// Runs `cloudcfg apply` as the leader of its own process group (the kill tests kill that
    /// group, never the test runner).
    fn apply(&self, user_data: &str, instance_id: &str, env: &[(&str, &str)]) -> Output {
        self.spawn_apply(user_data, instance_id, env)
            .wait_with_output()
            .inspect(|out| {
                eprintln!(
                    "apply {instance_id} -> {:?}\n--- stdout\n{}--- stderr\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            })
            .expect("cloudcfg runs")
    }

    fn spawn_apply(
        &self,
        user_data: &str,
        instance_id: &str,
        env: &[(&str, &str)],
    ) -> std::process::Child {
        let (ud, sys, run) = self.files(user_data);
        Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
            .arg("--config")
            .arg(&sys)
            .args(["apply", "--instance-id", instance_id, "--user-data"])
            .arg(&ud)
            .arg("--root")
            .arg(&self.overlay.root)
            .env("CLOUDCFG_RUNTIME_DIR", &run)
            .envs(env.iter().copied())
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cloudcfg starts")
    }

    fn status(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.scratch.path().join("run/cloudcfg/status.json"))
            .expect("status.json written");
        serde_json::from_str(&text).unwrap()
    }

    fn plan_json(&self, user_data: &str, instance_id: &str) -> serde_json::Value {
        let (ud, sys, _) = self.files(user_data);
        let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
            .arg("--config")
            .arg(&sys)
            .args([
                "plan",
                "--format",
                "json",
                "--show-secrets",
                "--instance-id",
                instance_id,
            ])
            .arg("--user-data")
            .arg(&ud)
            .arg("--root")
            .arg(&self.overlay.root)
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Only the local repository (no network beyond 127.0.0.1).
    fn local_sources_only(&self) {
        self.overlay.write("/etc/apt/sources.list", "");
    }
}

/// One module's entry of status.json.
fn module<'s>(status: &'s serde_json::Value, name: &str) -> &'s serde_json::Value {
    status["modules"]
        .as_array()
        .and_then(|modules| modules.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not in {status}"))
}

/// The modules that ran (were not skipped), with their states.
fn module_states(status: &serde_json::Value) -> BTreeMap<String, String> {
    status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] != "skipped")
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn debconf_value(overlay: &Overlay, question: &str) -> Option<String> {
    let db = overlay.read("/var/cache/debconf/config.dat");
    let stanza = db
        .split("\n\n")
        .find(|s| s.lines().any(|l| l == format!("Name: {question}")))?;
    stanza
        .lines()
        .find_map(|l| l.strip_prefix("Value: ").map(str::to_owned))
}

/// Every file the plan writes is there with the planned content, mode and owner.
fn assert_files_as_planned(overlay: &Overlay, plan: &serde_json::Value) -> usize {
    let mut checked = 0;
    for action in plan["actions"].as_array().unwrap() {
        if action["kind"] != "write_file" {
            continue;
        }
        let path = action["path"].as_str().unwrap();
        let host = overlay.path(path);
        let meta = std::fs::metadata(&host).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            std::fs::read_to_string(&host).unwrap(),
            action["content"].as_str().unwrap(),
            "{path}"
        );
        let mode = u32::from_str_radix(action["mode"].as_str().unwrap(), 8).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{path} mode");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path} owner");
        checked += 1;
    }
    checked
}

fn assert_nothing_left_mounted_or_guarded(overlay: &Overlay) {
    let root = overlay.root.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let inside: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&format!("{root}/")))
        .collect();
    assert!(inside.is_empty(), "left mounted: {inside:?}");
    assert!(
        !overlay.path("/usr/sbin/policy-rc.d").exists(),
        "the chroot guard policy-rc.d was not removed"
    );
}

#[test]
fn apply_configures_apt_debconf_and_packages_then_runs_once_per_instance() {
    configures_apt_debconf_and_packages_then_runs_once_per_instance("bookworm");
}

/// The same on Debian 13 (deb822 sources, apt 3 with sqv): one run of each release.
#[test]
fn on_trixie_apply_configures_apt_debconf_and_packages_then_runs_once_per_instance() {
    configures_apt_debconf_and_packages_then_runs_once_per_instance("trixie");
}

fn configures_apt_debconf_and_packages_then_runs_once_per_instance(suite: &str) {
    let Some(env) = setup_suite(
        &format!("apply_configures_apt_debconf_and_packages ({suite})"),
        suite,
        false,
    ) else {
        return;
    };
    // One small package from Debian's mirror, so the root needs DNS.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    env.overlay.write("/etc/resolv.conf", &resolv);
    let user_data = env.user_data(&["hello"]);

    let out = env.apply(&user_data, "i-e2e-first", &[]);
    assert!(out.status.success(), "first apply failed");
    let status = env.status();
    assert_eq!(status["status"], "done");
    // Every other module had nothing to do (no apt_pipelining key: as cloud-init's default
    // "os", apt keeps its own) and was skipped.
    let ran = BTreeMap::from([
        // What every config gets, as in cloud-init: the datasource's (here the root's)
        // hostname, the default user, new host keys and their fingerprints on the console.
        ("set_hostname".to_owned(), "ok".to_owned()),
        ("users_groups".to_owned(), "ok".to_owned()),
        ("ssh".to_owned(), "ok".to_owned()),
        ("ssh_host_keys_deferred".to_owned(), "ok".to_owned()),
        ("keys_to_console".to_owned(), "ok".to_owned()),
        ("apt_configure".to_owned(), "ok".to_owned()),
        ("package_update_upgrade_install".to_owned(), "ok".to_owned()),
        ("final_message".to_owned(), "ok".to_owned()),
    ]);
    assert_eq!(module_states(&status), ran, "{status}");

    // Packages from the signed local repository and from Debian's mirror.
    assert_eq!(env.overlay.package_status(PACKAGE), "install ok installed");
    assert_eq!(env.overlay.package_status("hello"), "install ok installed");
    assert_eq!(
        env.overlay.read(&format!("/usr/share/{PACKAGE}/marker")),
        format!("{PACKAGE} 1.0-1\n")
    );
    // apt verified the repository's signature with the key in its own keyring: a one-line
    // entry on bookworm, a deb822 stanza where apt keeps its own sources so (trixie).
    let source_file = match suite {
        "bookworm" => "/etc/apt/sources.list.d/e2e.list",
        _ => "/etc/apt/sources.list.d/e2e.sources",
    };
    let list = env.overlay.read(source_file);
    let expected = match suite {
        "bookworm" => format!(
            "deb [signed-by=/etc/apt/keyrings/e2e.asc] {}/debian bookworm main\n",
            env.server.url()
        ),
        _ => format!(
            "Types: deb\nURIs: {}/debian\nSuites: {suite}\nComponents: main\n\
             Signed-By: /etc/apt/keyrings/e2e.asc\n",
            env.server.url()
        ),
    };
    assert_eq!(list, expected);
    assert!(!list.to_lowercase().contains("trusted"));
    let keyring = env.overlay.read("/etc/apt/keyrings/e2e.asc");
    let fingerprints = cloudcfg::values::armored_key_fingerprints(&keyring).unwrap();
    assert!(
        fingerprints.contains(&env.repo.fingerprint),
        "{fingerprints:?}"
    );
    let lists = std::fs::read_dir(env.overlay.path("/var/lib/apt/lists")).unwrap();
    assert!(
        lists.filter_map(Result::ok).any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with("127.0.0.1")
            && e.file_name().to_string_lossy().ends_with("_InRelease")),
        "apt kept the repository's signed InRelease"
    );
    // The debconf answers are set and tzdata was reconfigured with them.
    assert_eq!(
        debconf_value(&env.overlay, "tzdata/Areas").as_deref(),
        Some("Europe")
    );
    // (tzdata in trixie no longer writes /etc/timezone; both point /etc/localtime there.)
    let localtime = std::fs::read_link(env.overlay.path("/etc/localtime")).unwrap();
    assert!(
        localtime.ends_with("zoneinfo/Europe/Berlin"),
        "{}",
        localtime.display()
    );
    // Files as planned: content, mode, owner.
    let plan = env.plan_json(&user_data, "i-e2e-first");
    assert!(assert_files_as_planned(&env.overlay, &plan) >= 2);
    // The log is private and holds no key material.
    let log = env.overlay.path("/var/log/cloudcfg.log");
    assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains("BEGIN PGP"), "key material in the log");
    assert!(log_text.contains("run: apt-get"));
    // Per-instance state.
    let state = env.overlay.path("/var/lib/cloudcfg/instances/i-e2e-first");
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::read_to_string(state.join("user-data")).unwrap(),
        user_data
    );
    assert_nothing_left_mounted_or_guarded(&env.overlay);

    // Second boot of the same instance: nothing runs again, nothing is fetched again.
    let requests = env.server.requests().len();
    let timezone_mtime = std::fs::metadata(env.overlay.path(source_file))
        .unwrap()
        .mtime_nsec();
    let out = env.apply(&user_data, "i-e2e-first", &[]);
    assert!(out.status.success());
    let status = env.status();
    // Only the final message, which is printed at every boot.
    assert_eq!(
        module_states(&status),
        BTreeMap::from([("final_message".to_owned(), "ok".to_owned())]),
        "{status}"
    );
    assert_eq!(
        module(&status, "apt_configure")["reason"],
        "already ran for i-e2e-first"
    );
    assert_eq!(
        env.server.requests().len(),
        requests,
        "the second run fetched something"
    );

    // A clone with a new instance id runs everything again, to the same end state.
    let out = env.apply(&user_data, "i-e2e-clone", &[]);
    assert!(out.status.success());
    assert_eq!(module_states(&env.status()), ran);
    assert!(
        env.server.requests().len() > requests,
        "the clone fetched its key again"
    );
    assert_eq!(env.overlay.package_status(PACKAGE), "install ok installed");
    assert_eq!(
        std::fs::metadata(env.overlay.path(source_file))
            .unwrap()
            .mtime_nsec(),
        timezone_mtime,
        "an unchanged file is not rewritten"
    );
    assert_files_as_planned(&env.overlay, &env.plan_json(&user_data, "i-e2e-clone"));
    assert_nothing_left_mounted_or_guarded(&env.overlay);
}

#[test]
fn a_key_whose_fingerprint_differs_from_the_keyid_writes_nothing() {
    let Some(env) = setup("a_key_whose_fingerprint_differs", true) else {
        return;
    };
    env.local_sources_only();
    let user_data = env.user_data(&[]);
    let out = env.apply(&user_data, "i-e2e-wrongkey", &[]);
    assert_eq!(out.status.code(), Some(1), "a failed module exits 1");
    let status = env.status();
    assert_eq!(status["status"], "degraded");
    let apt = module(&status, "apt_configure");
    assert_eq!(apt["status"], "failed");
    let error = apt["error"].as_str().unwrap();
    assert!(error.contains(&env.repo.wrong_fingerprint), "{error}");
    assert!(error.contains("does not end with"), "{error}");
    // Nothing of the module was written: no source, no keyring, no apt.conf snippet.
    for path in [
        "/etc/apt/sources.list.d/e2e.list",
        "/etc/apt/keyrings/e2e.asc",
        "/etc/apt/apt.conf.d/99-e2e",
    ] {
        assert!(!env.overlay.path(path).exists(), "{path} was written");
    }
    // apt still works.
    let update = env.overlay.chroot(&["apt-get", "update"]);
    let text = String::from_utf8_lossy(&update.stdout).into_owned()
        + &String::from_utf8_lossy(&update.stderr);
    assert!(update.status.success(), "{text}");
    assert!(!text.contains("W:") && !text.contains("E:"), "{text}");
    // The failed module runs again at the next boot.
    assert!(
        !env.overlay
            .path("/var/lib/cloudcfg/instances/i-e2e-wrongkey/apt_configure.done")
            .exists()
    );
    assert_nothing_left_mounted_or_guarded(&env.overlay);
}

/// What an applied root looks like, for comparing runs. Keys are compared by fingerprint; this
/// env's server URL and fingerprint read as URL and FPR, since every env has its own.
fn end_state(env: &Env, instance_id: &str) -> BTreeMap<String, String> {
    let overlay = &env.overlay;
    let mut state = BTreeMap::new();
    for dir in [
        "/etc/apt/sources.list.d",
        "/etc/apt/keyrings",
        "/etc/apt/apt.conf.d",
    ] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(overlay.path(dir))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for path in names {
            let meta = std::fs::metadata(&path).unwrap();
            let mut content = std::fs::read_to_string(&path).unwrap_or_default();
            if dir.ends_with("keyrings") {
                content = cloudcfg::values::armored_key_fingerprints(&content)
                    .map(|f| f.join(","))
                    .unwrap_or_else(|e| e);
            }
            let content = content
                .replace(&env.server.url(), "URL")
                .replace(&env.repo.fingerprint, "FPR");
            state.insert(
                format!("{dir}/{}", path.file_name().unwrap().to_string_lossy()),
                format!("{:o} {content}", meta.mode() & 0o7777),
            );
        }
    }
    state.insert("package".into(), overlay.package_status(PACKAGE));
    state.insert("timezone".into(), overlay.read("/etc/timezone"));
    state.insert(
        "debconf".into(),
        format!("{:?}", debconf_value(overlay, "tzdata/Zones/Europe")),
    );
    let markers = overlay.path(&format!("/var/lib/cloudcfg/instances/{instance_id}"));
    let mut done: Vec<String> = std::fs::read_dir(markers)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".done"))
        .collect();
    done.sort();
    state.insert("markers".into(), done.join(" "));
    state.insert(
        "policy-rc.d".into(),
        overlay.path("/usr/sbin/policy-rc.d").exists().to_string(),
    );
    state
}

#[test]
fn a_run_killed_at_any_point_converges_when_started_again() {
    let Some(reference) = setup("a_run_killed_at_any_point_converges", false) else {
        return;
    };
    reference.local_sources_only();
    let user_data = reference.user_data(&[]);
    let plan = reference.plan_json(&user_data, "i-e2e-kill");
    let actions = plan["actions"].as_array().unwrap().len();
    assert!(
        actions >= 7,
        "the plan has the actions this test kills between"
    );
    assert!(
        reference
            .apply(&user_data, "i-e2e-kill", &[])
            .status
            .success()
    );
    let want = end_state(&reference, "i-e2e-kill");
    assert_eq!(want["package"], "install ok installed");

    // Killed right after action N (SIGKILL from the test hook), for points in every module;
    // and killed by the package's own postinst, in the middle of dpkg's install.
    let mut points: Vec<Option<usize>> = vec![Some(1), Some(3), Some(actions - 1)];
    points.push(None);
    for point in points {
        let env = setup("a_run_killed_at_any_point_converges", false).unwrap();
        env.local_sources_only();
        let user_data = env.user_data(&[]);
        let out = match point {
            Some(n) => env.apply(
                &user_data,
                "i-e2e-kill",
                &[("CLOUDCFG_TEST_KILL_AFTER_ACTION", &n.to_string())],
            ),
            None => {
                env.overlay.write("/etc/cloudcfg-e2e/kill-in-postinst", "");
                env.apply(&user_data, "i-e2e-kill", &[])
            }
        };
        assert_eq!(out.status.signal(), Some(9), "killed at {point:?}");
        if point.is_none() {
            assert!(
                env.overlay
                    .package_status(PACKAGE)
                    .contains("half-configured"),
                "the kill interrupted dpkg: {}",
                env.overlay.package_status(PACKAGE)
            );
        }
        let out = env.apply(&user_data, "i-e2e-kill", &[]);
        assert!(out.status.success(), "rerun after a kill at {point:?}");
        assert_eq!(end_state(&env, "i-e2e-kill"), want, "killed at {point:?}");
        assert_nothing_left_mounted_or_guarded(&env.overlay);
    }
}

/// Holds dpkg's frontend lock in the root the way apt does (an fcntl write lock), until dropped.
struct DpkgLock {
    _file: std::fs::File,
}

impl DpkgLock {
    fn take(overlay: &Overlay) -> DpkgLock {
        use std::os::fd::AsRawFd;
        let path = overlay.path("/var/lib/dpkg/lock-frontend");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        // SAFETY: a valid descriptor and a valid flock struct for the duration of the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
        assert_eq!(rc, 0, "taking the dpkg lock");
        DpkgLock { _file: file }
    }
}

#[test]
fn apply_waits_for_the_dpkg_lock_and_names_its_holder_when_it_gives_up() {
    let Some(env) = setup("apply_waits_for_the_dpkg_lock", false) else {
        return;
    };
    env.local_sources_only();
    let user_data = env.user_data(&[]);

    // Held for longer than the bound: a clear error naming the holder.
    env.system_config("dpkg_lock_timeout_secs: 1\napt_update_attempts: 1\n");
    let held = DpkgLock::take(&env.overlay);
    let out = env.apply(&user_data, "i-e2e-lock", &[]);
    assert_eq!(out.status.code(), Some(1));
    let status = env.status();
    let packages = module(&status, "package_update_upgrade_install");
    assert_eq!(packages["status"], "failed");
    let error = packages["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("held by pid {}", std::process::id())),
        "{error}"
    );
    assert_eq!(packages["reason"], "dpkg-lock-timeout");

    // Released while apply waits: it goes on. The test releases the lock when the log says
    // apply is waiting, not after some time.
    env.system_config("dpkg_lock_timeout_secs: 120\napt_update_attempts: 1\n");
    let child = env.spawn_apply(&user_data, "i-e2e-lock", &[]);
    let log = env.overlay.path("/var/log/cloudcfg.log");
    let waited_before = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("waiting for the dpkg lock")
        .count();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("waiting for the dpkg lock").count() > waited_before {
            break;
        }
        // A poll interval, not a wait for something to have happened: the condition is checked.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.overlay.package_status(PACKAGE), "install ok installed");
}

#[test]
fn apt_get_update_is_retried_when_the_network_fails() {
    if !root::can_run("apt_get_update_is_retried", TOOLS) {
        return;
    }
    let lower = root::bookworm();
    let overlay = Overlay::new(&lower);
    let repo = root::make_repo(&[PACKAGE]);
    // The repository answers 503 to its first request, then works: the first apt-get update
    // fails (apt's own retries are off in this user data), cloudcfg's second one succeeds.
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let keys = http::hkp(vec![(repo.fingerprint.clone(), repo.key.clone())]);
    let files = http::static_files(repo.web_root.clone());
    let left = failures.clone();
    let server = http::serve(move |r: &http::Request| {
        if let Some(answer) = keys(r) {
            return answer;
        }
        if r.path.starts_with("/debian/")
            && left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
        {
            return http::Response::status(503);
        }
        files(r)
    });
    let env = Env {
        overlay,
        repo,
        server,
        scratch: tempfile::tempdir().unwrap(),
    };
    env.local_sources_only();
    env.system_config("apt_update_attempts: 3\n");
    let user_data = env.user_data(&[]).replace(
        "APT::Install-Recommends \"false\";",
        "Acquire::Retries \"0\";",
    );
    let out = env.apply(&user_data, "i-e2e-retry", &[]);
    assert!(out.status.success());
    let log = env.overlay.read("/var/log/cloudcfg.log");
    assert!(
        log.contains("apt-get update failed on the network (attempt 1 of 3)"),
        "{log}"
    );
    assert!(log.contains("503"), "{log}");
    assert_eq!(env.overlay.package_status(PACKAGE), "install ok installed");
    assert_eq!(failures.load(std::sync::atomic::Ordering::SeqCst), 0);
}
