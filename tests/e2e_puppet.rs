//! First boot of a puppet agent against Debian's real puppetserver (issue 6): `cloudcfg apply
//! --root` configures an agent root (an overlay on the cached bookworm root), installs the
//! agent and runs it once (`exec: true`); puppetserver signs with cloudcfg's policy executable,
//! `/usr/lib/cloudcfg/autosign`.
//!
//! One server for the whole binary (a single test with sub-cases, so its guard stops it on
//! any failure): tests/e2e/puppetserver.sh sets it up in a scratch directory, isolated from the
//! host's /etc/puppet and /var/lib/puppet/ssl, and the test runs it in the foreground as user
//! puppet and stops it by PID. While it starts, a second layer is built: bookworm plus
//! `apt-get install puppet`, done without cloudcfg, which is also where Debian's package is
//! checked to enable and start nothing. Cases:
//!
//! | case | root | key | expected certname | result |
//! |---|---|---|---|---|
//! | fresh | bookworm, puppet installed by cloudcfg | right | file named like the certname | signed, catalog applied (exit 2) |
//! | wrong key (`--debug`) | layer | wrong | file named like the instance id | refused: preshared_key |
//! | unexpected | layer | right | none | refused: expected_certname |
//! | once | layer, FQDN in capitals | right | file named like the instance id | signed |
//! | once again | layer, same instance id, other FQDN | right | (consumed by "once") | refused: expected_certname |
//!
//! The agent runs through `exec: true` with `exec_args`, not by chrooting in afterwards: that is
//! the first-boot path users get (after the install and the offline enable, before the start
//! that is skipped), exit 2 must count as success, and its output lands in the run log, which
//! is where the "no key in any log" check must look anyway. Without root, the tools or the
//! puppetserver package, the test skips loudly; under CI=true a skip fails.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::puppet::{self, HostFile, RootReaper, Server, ServerDir};
use support::root::{self, Overlay};

const TEST: &str = "puppet_first_boot_against_debian_puppetserver";
const TOOLS: &[&str] = &[
    "debootstrap",
    "chroot",
    "mount",
    "umount",
    "flock",
    "curl",
    "setpriv",
    "java",
    "puppetserver",
];
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// An apply that installs puppet from Debian's mirror, and one that does not.
const FRESH_DEADLINE: Duration = Duration::from_secs(420);
const LAYER_DEADLINE: Duration = Duration::from_secs(180);
const DEBIAN_HEADER: &str = "# This file can be used to override the default puppet settings.";
const MARKER: &str = "/var/lib/cloudcfg-e2e/puppet-marker";

/// One agent first boot.
struct Case {
    name: &'static str,
    instance_id: &'static str,
    fqdn: &'static str,
    /// `server =` in puppet.conf: both names are in the server certificate.
    server: &'static str,
    key: String,
    /// A fresh root where cloudcfg installs puppet, or the root with puppet preinstalled.
    fresh: bool,
    debug: bool,
    /// `puppet: {attest: aws_iid}`, first boot through the EC2 datasource of this IMDS
    /// (`cloudcfg run`) instead of `cloudcfg apply`.
    imds: Option<String>,
}

impl Case {
    fn certname(&self) -> String {
        format!("{}.{}", self.instance_id, self.fqdn).to_lowercase()
    }
}

struct Ctx {
    scratch: PathBuf,
    bookworm: PathBuf,
    layer: PathBuf,
    port: u16,
    ca: String,
    resolv: String,
    /// Every text that must not contain a key: gathered from each case, checked at the end.
    outputs: Vec<(String, String)>,
    timings: Vec<(String, Duration)>,
}

/// What one case left behind.
struct Applied {
    /// First: processes left in the root are killed before the overlay is unmounted.
    _reaper: RootReaper,
    overlay: Overlay,
    out: Output,
    status: serde_json::Value,
    log: String,
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn check(what: &str, out: Output) -> Output {
    assert!(out.status.success(), "{what} failed: {}", text(&out));
    out
}

fn user_data(ctx: &Ctx, case: &Case) -> String {
    let ca: String = ctx
        .ca
        .trim_end()
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    let mut args = vec![
        "--test",
        "--http_keepalive_timeout",
        "0",
        "--waitforcert",
        "0",
    ];
    if case.debug {
        args.push("--debug");
    }
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"#cloud-config
puppet:
  install: {install}
  exec: true
  exec_args: [{args}]
  conf:
    agent:
      server: "{server}"
      serverport: {port}
      certname: "%i.%f"
    ca_cert: |
{ca}  csr_attributes:
    custom_attributes:
      challengePassword: "{key}"
    extension_requests:
      pp_instance_id: "{iid}"
{attest}"#,
        install = case.fresh,
        args = args.join(", "),
        server = case.server,
        port = ctx.port,
        key = case.key,
        iid = case.instance_id,
        attest = if case.imds.is_some() {
            "  attest: aws_iid\n"
        } else {
            ""
        },
    )
}

/// The case's files: user data, a system config with short bounds, a runtime directory.
fn case_dir(ctx: &Ctx, case: &Case) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = ctx.scratch.join(format!("case-{}", case.name));
    std::fs::create_dir_all(dir.join("run")).unwrap();
    let ud = dir.join("user-data.yaml");
    std::fs::write(&ud, user_data(ctx, case)).unwrap();
    let sys = dir.join("cloudcfg.yaml");
    let mut system = "dpkg_lock_timeout_secs: 60\napt_update_attempts: 3\n".to_owned();
    if let Some(url) = &case.imds {
        system.push_str(&format!(
            "datasource_list: [ec2]\nec2:\n  metadata_url: {url}\n  timeout_secs: 2\n  deadline_secs: 10\n"
        ));
    }
    std::fs::write(&sys, system).unwrap();
    (dir.clone(), ud, sys, dir.join("run"))
}

fn cloudcfg(sys: &Path, sub: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudcfg"));
    c.arg("--config").arg(sys).arg(sub);
    c
}

fn plan(ctx: &mut Ctx, case: &Case, root: &Path, show_secrets: bool) -> Output {
    let (_, ud, sys, _) = case_dir(ctx, case);
    let mut c = cloudcfg(&sys, "plan");
    c.args(["--format", "json", "--instance-id", case.instance_id])
        .args(["--fqdn", case.fqdn, "--user-data"])
        .arg(&ud)
        .arg("--root")
        .arg(root);
    if show_secrets {
        c.arg("--show-secrets");
    }
    let out = check("cloudcfg plan", c.output().unwrap());
    if !show_secrets {
        ctx.outputs
            .push((format!("{}: plan", case.name), text(&out)));
    }
    out
}

fn new_root(ctx: &Ctx, case: &Case) -> Overlay {
    let overlay = if case.fresh {
        Overlay::new(&ctx.bookworm)
    } else {
        Overlay::new(&puppet::layered(&[&ctx.layer, &ctx.bookworm]))
    };
    overlay.write("/etc/resolv.conf", &ctx.resolv);
    overlay
}

fn apply(ctx: &mut Ctx, case: &Case, overlay: Overlay) -> Applied {
    let reaper = RootReaper(overlay.root.clone());
    let (dir, ud, sys, run) = case_dir(ctx, case);
    let mut c = match case.imds {
        None => {
            let mut c = cloudcfg(&sys, "apply");
            c.args(["--instance-id", case.instance_id, "--fqdn", case.fqdn])
                .arg("--user-data")
                .arg(&ud);
            c
        }
        // First boot as on EC2: the datasource gives instance id, names and user data.
        Some(_) => {
            let mut c = cloudcfg(&sys, "run");
            c.args(["--datasource", "ec2"]);
            c
        }
    };
    c.arg("--root")
        .arg(&overlay.root)
        .env("CLOUDCFG_RUNTIME_DIR", &run);
    let deadline = if case.fresh {
        FRESH_DEADLINE
    } else {
        LAYER_DEADLINE
    };
    let start = Instant::now();
    let out = puppet::run_with_deadline(&mut c, &dir.join("apply"), deadline);
    let took = start.elapsed();
    ctx.timings
        .push((format!("{}: cloudcfg apply", case.name), took));
    let log = std::fs::read_to_string(overlay.path("/var/log/cloudcfg.log")).unwrap_or_default();
    eprintln!(
        "--- case {} ({}): apply {:?} in {:.1} s\n{}--- run log\n{}",
        case.name,
        case.certname(),
        out.status,
        took.as_secs_f32(),
        text(&out),
        log.lines()
            .filter(|l| !l.contains("Facter: Permission denied"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("cloudcfg/status.json")).expect("status.json"),
    )
    .unwrap();
    if let Some((code, secs)) = agent_run(&log) {
        ctx.timings.push((
            format!("{}: first agent run (exit {code})", case.name),
            Duration::from_secs_f32(secs),
        ));
    }
    ctx.outputs
        .push((format!("{}: apply output", case.name), text(&out)));
    ctx.outputs
        .push((format!("{}: /var/log/cloudcfg.log", case.name), log.clone()));
    for file in ["cloudcfg/status.json", "cloudcfg/result.json"] {
        ctx.outputs.push((
            format!("{}: {file}", case.name),
            std::fs::read_to_string(run.join(file)).unwrap_or_default(),
        ));
    }
    for entry in std::fs::read_dir(overlay.path("/var/log/puppet"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        ctx.outputs.push((
            format!("{}: {}", case.name, entry.path().display()),
            std::fs::read_to_string(entry.path()).unwrap_or_default(),
        ));
    }
    Applied {
        _reaper: reaper,
        overlay,
        out,
        status,
        log,
    }
}

/// Exit code and seconds of the `puppet agent` run in the run log.
fn agent_run(log: &str) -> Option<(i32, f32)> {
    let mut lines = log
        .lines()
        .skip_while(|l| !l.contains(" run: puppet agent"));
    lines.next()?;
    let line = lines.find(|l| !l.starts_with(' ') && l.contains(" after "))?;
    let rest = line.split(" exit ").nth(1)?;
    let (code, secs) = rest.split_once(" after ")?;
    Some((
        code.parse().ok()?,
        secs.trim_end_matches(" s").parse().ok()?,
    ))
}

fn puppet_status(status: &serde_json::Value) -> (String, String) {
    let m = status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "puppet")
        .unwrap();
    (
        m["status"].as_str().unwrap_or_default().to_owned(),
        m["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The decision line the policy executable wrote for `certname`, as puppetserver logged it.
fn decision(server: &Server, certname: &str) -> String {
    let log =
        std::fs::read_to_string(server.dir.log_dir().join("puppetserver.log")).unwrap_or_default();
    let needle = format!("cloudcfg-autosign: certname={certname} ");
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("[p.p.certificate-authority]") && l.contains(&needle))
        .unwrap_or_else(|| panic!("no decision line for {certname} in puppetserver.log:\n{log}"));
    line[line.find("cloudcfg-autosign:").unwrap()..].to_owned()
}

fn expect_certname(server: &Server, name: &str) {
    let path = server.dir.dir.join("expected").join(name);
    std::fs::write(&path, "").unwrap();
}

/// The line index of the first line containing all of `parts`.
fn position(log: &str, parts: &[&str]) -> usize {
    log.lines()
        .position(|l| !l.starts_with(' ') && parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in the run log"))
}

fn mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// bookworm + Debian's puppet, installed with plain apt-get in a chroot without cloudcfg and
/// without a policy-rc.d: the package alone must neither enable nor start the agent.
fn build_layer(bookworm: &Path, scratch: &Path, resolv: &str) -> (PathBuf, Duration) {
    let start = Instant::now();
    let overlay = Overlay::new(bookworm);
    let _reaper = RootReaper(overlay.root.clone());
    overlay.write("/etc/resolv.conf", resolv);
    assert!(
        !overlay.path("/usr/sbin/policy-rc.d").exists(),
        "the cached root has a policy-rc.d: the package check would prove nothing"
    );
    check(
        "apt-get update in the layer",
        overlay.chroot(&["apt-get", "-q", "-o", "Acquire::Retries=3", "update"]),
    );
    let install = check(
        "apt-get install puppet in the layer",
        overlay.chroot(&[
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "-q",
            "-y",
            "-o",
            "Acquire::Retries=3",
            "--option=Dpkg::Options::=--force-confold",
            "install",
            "puppet",
        ]),
    );
    let install_text = text(&install);
    eprintln!(
        "layer: apt-get install puppet: {} {:.1} s",
        install_text
            .lines()
            .find(|l| l.contains("newly installed"))
            .unwrap_or_default(),
        start.elapsed().as_secs_f32()
    );
    for line in install_text.lines().filter(|l| l.contains("invoke-rc.d")) {
        eprintln!("layer: {line}");
    }
    // Debian's package: installed, not enabled (no wants link, sysv K links only), not started.
    assert!(overlay.path("/usr/bin/puppet").exists());
    assert_eq!(
        overlay.read("/etc/default/puppet").lines().last(),
        Some("DAEMON_OPTS=\"\""),
        "Debian's /etc/default/puppet"
    );
    assert!(
        !overlay
            .path("/etc/systemd/system/multi-user.target.wants/puppet.service")
            .exists(),
        "the package enabled puppet.service"
    );
    for level in 2..=5 {
        let links: Vec<String> = std::fs::read_dir(overlay.path(&format!("/etc/rc{level}.d")))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with("puppet"))
            .collect();
        assert_eq!(links, ["K01puppet"], "rc{level}.d: defaults-disabled");
    }
    assert_eq!(
        puppet::processes_in(&overlay.root),
        [],
        "installing the package started something"
    );
    assert!(!overlay.path("/run/puppet/agent.pid").exists());
    assert!(
        overlay
            .read("/etc/puppet/puppet.conf")
            .starts_with(DEBIAN_HEADER)
    );
    // Keep the upper directory as a layer: unmount, move it out, let the overlay go.
    let upper = overlay.root.parent().unwrap().join("upper");
    check(
        "umount layer root",
        Command::new("umount").arg(&overlay.root).output().unwrap(),
    );
    let layer = scratch.join("layer-puppet");
    std::fs::rename(&upper, &layer).unwrap();
    drop(overlay);
    (layer, start.elapsed())
}

#[test]
fn puppet_first_boot_against_debian_puppetserver() {
    let t0 = Instant::now();
    if !root::can_run(TEST, TOOLS) || !puppet::have_puppetserver(TEST) {
        return;
    }
    let _lock = puppet::host_lock();
    let bookworm = root::bookworm();
    let scratch = tempfile::Builder::new()
        .prefix("cloudcfg-e2e-puppet-")
        .tempdir_in("/var/tmp")
        .unwrap();
    // puppet must reach the server directory inside.
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = puppet::random_key();
    let wrong_key = puppet::random_key();
    let gid = puppet::puppet_gid();

    // The policy executable: a copy (puppet cannot read a build directory under /root).
    let binary = std::fs::read(env!("CARGO_BIN_EXE_cloudcfg")).unwrap();
    let _exe = HostFile::install(puppet::AUTOSIGN_PATH, &binary, 0o755, 0);
    drop(binary);

    let setup_start = Instant::now();
    let server_dir = ServerDir::setup(&scratch.path().join("server"));
    let setup_took = setup_start.elapsed();
    let expected = server_dir.dir.join("expected");
    std::fs::create_dir(&expected).unwrap();
    std::os::unix::fs::chown(&expected, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&expected, std::fs::Permissions::from_mode(0o770)).unwrap();
    let policy = format!(
        "# Written by tests/e2e_puppet.rs for one test run; removed afterwards.\n\
         preshared_keys:\n  - \"{key}\"\n\
         accept_pp_preshared_key: false\n\
         expected_certnames_dir: {}\n",
        expected.display()
    );
    let _policy = HostFile::install(puppet::POLICY_PATH, policy.as_bytes(), 0o640, gid);

    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let port = server_dir.port;
    let ca = server_dir.ca_bundle();
    assert_eq!(
        ca.matches("BEGIN CERTIFICATE").count(),
        2,
        "root + intermediate"
    );

    // The server starts (CPU) while the layer installs (network, dpkg).
    let mut server = server_dir.start();
    let (ready, (layer, layer_took)) = std::thread::scope(|s| {
        let builder = s.spawn(|| build_layer(&bookworm, scratch.path(), &resolv));
        let ready = server.wait_ready(READY_TIMEOUT);
        let layer = builder
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (ready, layer)
    });
    eprintln!(
        "puppetserver pid {} ready after {:.1} s; layer built in {:.1} s",
        server.pid(),
        ready.as_secs_f32(),
        layer_took.as_secs_f32()
    );

    let mut ctx = Ctx {
        scratch: scratch.path().to_path_buf(),
        bookworm: bookworm.clone(),
        layer,
        port,
        ca: ca.clone(),
        resolv,
        outputs: Vec::new(),
        timings: vec![
            ("server setup (config + CA)".into(), setup_took),
            ("server start to ready".into(), ready),
            ("layer: apt-get install puppet".into(), layer_took),
        ],
    };

    // --- fresh: cloudcfg installs puppet, the agent's first run is signed and applies.
    let fresh = Case {
        name: "fresh",
        instance_id: "i-e2e-fresh",
        fqdn: "fresh.e2e.test",
        server: "127.0.0.1",
        key: key.clone(),
        fresh: true,
        debug: false,
        imds: None,
    };
    expect_certname(&server, &fresh.certname());
    let overlay = new_root(&ctx, &fresh);
    // The plan: everything the agent reads is written before the package is installed.
    let plan_json: serde_json::Value =
        serde_json::from_slice(&plan(&mut ctx, &fresh, &overlay.root, true).stdout).unwrap();
    plan(&mut ctx, &fresh, &overlay.root, false);
    let actions: Vec<&serde_json::Value> = plan_json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["module"] == "puppet")
        .collect();
    let kinds: Vec<String> = actions
        .iter()
        .map(|a| {
            let kind = a["kind"].as_str().unwrap();
            match kind {
                "edit_ini" => format!("edit_ini {}", a["key"].as_str().unwrap()),
                "write_file" => format!("write_file {}", a["path"].as_str().unwrap()),
                "command" => format!(
                    "command {}",
                    a["argv"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|v| v.as_str())
                        .filter(|v| !v.starts_with("--option") && !v.starts_with("--"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_owned(),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "edit_ini server",
            "edit_ini serverport",
            "edit_ini certname",
            "write_file /var/lib/puppet/ssl/certs/ca.pem",
            "write_file /etc/puppet/csr_attributes.yaml",
            "command apt-get install puppet",
            "enable_service",
            "command puppet agent 0 0",
            "start_service",
        ],
        "{plan_json:#}"
    );
    let csr_action = actions
        .iter()
        .find(|a| a["path"] == "/etc/puppet/csr_attributes.yaml")
        .unwrap();
    assert_eq!(csr_action["mode"], "0600");
    let csr_content = csr_action["content"].as_str().unwrap().to_owned();
    assert!(csr_content.contains(&key), "--show-secrets shows the key");
    assert_eq!(
        actions[7]["ok_exit_codes"],
        serde_json::json!([0, 2]),
        "exit 2 (changes applied) is a success"
    );

    let a = apply(&mut ctx, &fresh, overlay);
    assert!(a.out.status.success(), "fresh apply failed");
    assert_eq!(a.status["status"], "done", "{}", a.status);
    assert_eq!(
        a.overlay.package_status("puppet-agent"),
        "install ok installed"
    );
    // Order in the run log: config, CA, CSR attributes; install; enable; agent; start skipped.
    let order = [
        position(&a.log, &["set [agent] certname in /etc/puppet/puppet.conf"]),
        position(&a.log, &["write /var/lib/puppet/ssl/certs/ca.pem (0644)"]),
        position(&a.log, &["write /etc/puppet/csr_attributes.yaml (0600)"]),
        position(&a.log, &["run: apt-get", " install puppet"]),
        position(&a.log, &["run: systemctl --root=", "enable puppet.service"]),
        position(&a.log, &["run: puppet agent --test"]),
        position(&a.log, &["puppet.service not started"]),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{order:?}\n{}",
        a.log
    );
    assert!(
        position(&a.log, &["run: apt-get", " update"]) < order[3],
        "apt-get update runs before the install"
    );
    // The first agent run: signed by the policy, catalog applied (exit 2: changes).
    let certname = fresh.certname();
    let (code, _) = agent_run(&a.log).expect("the agent ran");
    assert_eq!(code, 2, "{}", a.log);
    for want in [
        format!("Downloaded certificate for {certname} from https://127.0.0.1:{port}/puppet-ca/v1"),
        format!("cloudcfg-e2e: catalog applied for {certname} iid=i-e2e-fresh"),
        "csr_attributes file loading from /etc/puppet/csr_attributes.yaml".to_owned(),
        "Applied catalog in".to_owned(),
    ] {
        assert!(a.log.contains(&want), "agent output lacks {want:?}");
    }
    assert_eq!(a.overlay.read(MARKER), format!("catalog for {certname}\n"));
    assert_eq!(
        decision(&server, &certname),
        format!(
            "cloudcfg-autosign: certname={certname} rule=all result=signed detail=\"cn, \
             csr_signature, preshared_key (challengePassword), expected_certname ({certname})\""
        )
    );
    assert!(
        server
            .dir
            .dir
            .join(format!("ca/signed/{certname}.pem"))
            .exists()
    );
    assert!(
        !expected.join(&certname).exists(),
        "the expected certname is consumed"
    );
    // Files: csr_attributes.yaml private, ca.pem the server's bundle, written before dpkg.
    assert_eq!(
        mode(&a.overlay.path("/etc/puppet/csr_attributes.yaml")),
        (0o600, 0, 0)
    );
    assert_eq!(
        a.overlay.read("/etc/puppet/csr_attributes.yaml"),
        csr_content
    );
    assert_eq!(a.overlay.read("/var/lib/puppet/ssl/certs/ca.pem"), ca);
    assert_eq!(
        mode(&a.overlay.path("/var/lib/puppet/ssl/certs/ca.pem")).0,
        0o644
    );
    let conf = a.overlay.read("/etc/puppet/puppet.conf");
    eprintln!("fresh: /etc/puppet/puppet.conf:\n{conf}");
    assert!(
        conf.contains(&format!(
            "[agent]\nserver = 127.0.0.1\nserverport = {port}\ncertname = {certname}\n"
        )),
        "{conf}"
    );
    // cloudcfg wrote puppet.conf before the package existed: dpkg kept it (--force-confold)
    // and put Debian's version beside it.
    let dist = a.overlay.read("/etc/puppet/puppet.conf.dpkg-dist");
    assert!(dist.starts_with(DEBIAN_HEADER), "{dist}");
    // There was no original, so there is no puppet.conf.old (not the state after the first
    // of the three edits).
    assert!(
        !a.overlay.path("/etc/puppet/puppet.conf.old").exists(),
        "puppet.conf.old = {:?}",
        std::fs::read_to_string(a.overlay.path("/etc/puppet/puppet.conf.old"))
    );
    // Enabled offline by cloudcfg, although /etc/default/puppet exists (cloud-init would only
    // sed it); not started.
    assert_eq!(
        a.overlay.read("/etc/default/puppet").lines().last(),
        Some("DAEMON_OPTS=\"\"")
    );
    let wants = a
        .overlay
        .path("/etc/systemd/system/multi-user.target.wants/puppet.service");
    assert_eq!(
        std::fs::read_link(&wants).unwrap(),
        Path::new("/lib/systemd/system/puppet.service")
    );
    assert!(
        text(&a.out).contains(
            "puppet.service not started: an image root is not running; it is enabled and starts at the next boot"
        ),
        "{}",
        text(&a.out)
    );
    assert_eq!(puppet::processes_in(&a.overlay.root), []);
    assert!(!a.overlay.path("/run/puppet/agent.pid").exists());
    assert!(!a.overlay.path("/usr/sbin/policy-rc.d").exists());
    drop(a);

    // --- wrong key (agent with --debug, which prints every CSR attribute): not signed.
    let wrong = Case {
        name: "wrong-key",
        instance_id: "i-e2e-wrongkey",
        fqdn: "wrongkey.e2e.test",
        server: "localhost",
        key: wrong_key.clone(),
        fresh: false,
        debug: true,
        imds: None,
    };
    expect_certname(&server, wrong.instance_id);
    let root = new_root(&ctx, &wrong);
    let original_conf = root.read("/etc/puppet/puppet.conf");
    let a = apply(&mut ctx, &wrong, root);
    let certname = wrong.certname();
    assert_eq!(
        a.out.status.code(),
        Some(1),
        "a failed first run fails apply"
    );
    let (state, error) = puppet_status(&a.status);
    assert_eq!(state, "failed");
    assert!(
        error.contains(&format!(
            "Certificate for {certname} has not been signed yet"
        )),
        "{error}"
    );
    assert_eq!(agent_run(&a.log).map(|r| r.0), Some(1));
    assert_eq!(
        decision(&server, &certname),
        format!(
            "cloudcfg-autosign: certname={certname} rule=preshared_key result=refused \
             detail=\"the CSR's key is not an accepted one\""
        )
    );
    assert!(
        server
            .dir
            .dir
            .join(format!("ca/requests/{certname}.pem"))
            .exists()
    );
    assert!(
        !server
            .dir
            .dir
            .join(format!("ca/signed/{certname}.pem"))
            .exists()
    );
    assert!(
        expected.join(wrong.instance_id).exists(),
        "a refused request consumes nothing"
    );
    // --debug printed the challengePassword; the run log has it redacted.
    assert!(
        a.log.contains("Added csr attribute: challengePassword"),
        "the agent printed its CSR attributes"
    );
    assert!(a.log.contains("<redacted sha256:"), "{}", a.log);
    // A root with puppet preinstalled: Debian's header kept, the original in puppet.conf.old.
    let conf = a.overlay.read("/etc/puppet/puppet.conf");
    assert!(conf.starts_with(&original_conf), "{conf}");
    assert!(
        conf.ends_with(&format!(
            "\n[agent]\nserver = localhost\nserverport = {port}\ncertname = {certname}\n"
        )),
        "{conf}"
    );
    assert_eq!(a.overlay.read("/etc/puppet/puppet.conf.old"), original_conf);
    assert_eq!(
        mode(&a.overlay.path("/etc/puppet/csr_attributes.yaml")),
        (0o600, 0, 0)
    );
    drop(a);

    // --- unexpected certname, right key: not signed.
    let unexpected = Case {
        name: "unexpected",
        instance_id: "i-e2e-unexpected",
        fqdn: "unexpected.e2e.test",
        server: "localhost",
        key: key.clone(),
        fresh: false,
        debug: false,
        imds: None,
    };
    let root = new_root(&ctx, &unexpected);
    let a = apply(&mut ctx, &unexpected, root);
    let certname = unexpected.certname();
    assert_eq!(a.out.status.code(), Some(1));
    assert!(
        puppet_status(&a.status)
            .1
            .contains("has not been signed yet")
    );
    let line = decision(&server, &certname);
    assert!(
        line.starts_with(&format!(
            "cloudcfg-autosign: certname={certname} rule=expected_certname result=refused \
             detail=\"no file named {certname} or i-e2e-unexpected in "
        )),
        "{line}"
    );
    drop(a);

    // --- an expected instance id signs once: a second certname with it is refused.
    let once = Case {
        name: "once",
        instance_id: "i-e2e-once",
        fqdn: "Once-A.E2E.Test",
        server: "localhost",
        key: key.clone(),
        fresh: false,
        debug: false,
        imds: None,
    };
    expect_certname(&server, once.instance_id);
    let root = new_root(&ctx, &once);
    let a = apply(&mut ctx, &once, root);
    let certname = once.certname();
    assert_eq!(certname, "i-e2e-once.once-a.e2e.test", "lower-cased");
    assert!(a.out.status.success(), "once: apply failed");
    assert_eq!(agent_run(&a.log).map(|r| r.0), Some(2));
    assert_eq!(a.overlay.read(MARKER), format!("catalog for {certname}\n"));
    assert!(
        decision(&server, &certname).contains("rule=all result=signed"),
        "{}",
        decision(&server, &certname)
    );
    assert!(!expected.join(once.instance_id).exists(), "consumed");
    drop(a);
    let again = Case {
        name: "once-again",
        fqdn: "once-b.e2e.test",
        ..once
    };
    let root = new_root(&ctx, &again);
    let a = apply(&mut ctx, &again, root);
    let certname = again.certname();
    assert_eq!(a.out.status.code(), Some(1));
    assert!(
        decision(&server, &certname)
            .contains("rule=expected_certname result=refused detail=\"no file named"),
        "{}",
        decision(&server, &certname)
    );
    assert!(
        !server
            .dir
            .dir
            .join(format!("ca/signed/{certname}.pem"))
            .exists()
    );
    drop(a);

    // --- the expected certnames in S3 (moto on 127.0.0.1): the launcher expects the instance
    // id with `cloudcfg autosign expect`, puppetserver's policy run signs the agent's request,
    // a second request of that instance id is refused. The policy process finds its
    // credentials in the server user's shared credentials file (HOME is the server's var/).
    let Some(moto_bin) = support::moto::moto_server() else {
        root::skip(
            &format!("{TEST} (S3 store)"),
            "no moto_server (scripts/test.sh installs it)",
        );
        return;
    };
    let moto = support::moto::Moto::start(&moto_bin);
    moto.create_bucket(&moto_bin);
    let aws = server.dir.dir.join("var/.aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = e2e\naws_secret_access_key = e2e-secret\n",
    )
    .unwrap();
    let puppet_uid = std::fs::metadata(server.dir.dir.join("var")).unwrap().uid();
    for path in [aws.clone(), aws.join("credentials")] {
        std::os::unix::fs::chown(&path, Some(puppet_uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(
        aws.join("credentials"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let s3_policy = format!(
        "# Written by tests/e2e_puppet.rs for one test run; removed afterwards.\n\
         preshared_keys:\n  - \"{key}\"\n\
         accept_pp_preshared_key: false\n\
         expected_certnames: s3://{}/fleet/\n\
         s3_endpoint: {}\n\
         s3_region: us-east-1\n",
        support::moto::BUCKET,
        moto.url()
    );
    // The installed policy file keeps its mode and owner (0640 root:puppet).
    std::fs::write(puppet::POLICY_PATH, s3_policy).unwrap();
    let s3 = Case {
        name: "s3",
        instance_id: "i-e2e-s3",
        fqdn: "s3.e2e.test",
        server: "localhost",
        key: key.clone(),
        fresh: false,
        debug: false,
        imds: None,
    };
    let launcher = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .args([
            "autosign",
            "expect",
            "--ttl",
            "30m",
            "--policy",
            puppet::POLICY_PATH,
        ])
        .arg(s3.instance_id)
        .env("AWS_ACCESS_KEY_ID", "e2e")
        .env("AWS_SECRET_ACCESS_KEY", "e2e-secret")
        .output()
        .unwrap();
    assert!(launcher.status.success(), "{}", text(&launcher));
    let root = new_root(&ctx, &s3);
    let a = apply(&mut ctx, &s3, root);
    let certname = s3.certname();
    assert!(a.out.status.success(), "s3: apply failed");
    assert_eq!(a.overlay.read(MARKER), format!("catalog for {certname}\n"));
    let line = decision(&server, &certname);
    assert!(
        line.contains("rule=all result=signed")
            && line.contains(&format!(
                "i-e2e-s3 in s3://{}/fleet/",
                support::moto::BUCKET
            )),
        "{line}"
    );
    drop(a);
    let s3_again = Case {
        name: "s3-again",
        fqdn: "s3-b.e2e.test",
        ..s3
    };
    let root = new_root(&ctx, &s3_again);
    let a = apply(&mut ctx, &s3_again, root);
    let certname = s3_again.certname();
    assert_eq!(a.out.status.code(), Some(1));
    let line = decision(&server, &certname);
    assert!(
        line.contains("rule=expected_certname result=refused"),
        "{line}"
    );
    drop(a);
    drop(moto);

    // --- the signed instance identity: a test CA stands in for AWS's signing certificate,
    // an IMDS on 127.0.0.1 serves the instance's document and its PKCS#7 signature, cloudcfg
    // runs first boot through the EC2 datasource with `attest: aws_iid`, the real agent's CSR
    // carries them, the policy's aws_identity rule signs it; the same instance again is
    // refused.
    let iid_dir = scratch.path().join("iid");
    std::fs::create_dir(&iid_dir).unwrap();
    std::fs::set_permissions(&iid_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    support::https::identity_signer(&iid_dir, "aws");
    std::fs::set_permissions(
        iid_dir.join("aws.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let document = format!(
        r#"{{"accountId" : "123456789012", "instanceId" : "i-e2e-iid", "region" : "eu-west-1", "pendingTime" : "{}"}}"#,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(support::https::identity_signature(
            &iid_dir,
            "aws",
            document.as_bytes(),
            true,
        ))
    };
    let signed_dir = server.dir.dir.join("signed-instances");
    std::fs::create_dir(&signed_dir).unwrap();
    std::os::unix::fs::chown(&signed_dir, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&signed_dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    std::fs::write(
        puppet::POLICY_PATH,
        format!(
            "# Written by tests/e2e_puppet.rs for one test run; removed afterwards.\n\
             preshared_keys:\n  - \"{key}\"\n\
             accept_pp_preshared_key: false\n\
             aws_identity:\n  certificates: [{}]\n  accounts: [\"123456789012\"]\n  \
             signed_instances_dir: {}\n",
            iid_dir.join("aws.pem").display(),
            signed_dir.display()
        ),
    )
    .unwrap();
    let attested = |name: &'static str, served: std::sync::Arc<std::sync::Mutex<String>>| {
        let document = document.clone();
        let signature = signature.clone();
        support::http::serve(move |r: &support::http::Request| {
            use support::http::Response;
            match (r.method.as_str(), r.path.as_str()) {
                ("PUT", "/latest/api/token") => Response::ok("e2e-token"),
                ("GET", "/latest/meta-data/instance-id") => Response::ok("i-e2e-iid"),
                ("GET", "/latest/meta-data/local-hostname" | "/latest/meta-data/hostname") => {
                    Response::ok(format!("{name}.e2e.test"))
                }
                ("GET", "/latest/user-data") => Response::ok(served.lock().unwrap().clone()),
                ("GET", "/latest/dynamic/instance-identity/document") => {
                    Response::ok(document.clone())
                }
                ("GET", "/latest/dynamic/instance-identity/rsa2048") => {
                    Response::ok(signature.clone())
                }
                _ => Response::status(404),
            }
        })
    };
    for (name, expect_signed) in [("iid", true), ("iid-again", false)] {
        let served = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let imds = attested(name, std::sync::Arc::clone(&served));
        let case = Case {
            name,
            instance_id: "i-e2e-iid",
            fqdn: if expect_signed {
                "iid.e2e.test"
            } else {
                "iid-again.e2e.test"
            },
            server: "localhost",
            key: key.clone(),
            fresh: false,
            debug: false,
            imds: Some(imds.url()),
        };
        *served.lock().unwrap() = user_data(&ctx, &case);
        let root = new_root(&ctx, &case);
        let a = apply(&mut ctx, &case, root);
        let certname = case.certname();
        let line = decision(&server, &certname);
        if expect_signed {
            assert!(a.out.status.success(), "iid: run failed");
            assert_eq!(a.overlay.read(MARKER), format!("catalog for {certname}\n"));
            assert!(
                line.contains("rule=all result=signed")
                    && line.contains("aws_identity (i-e2e-iid in 123456789012)"),
                "{line}"
            );
            assert!(signed_dir.join("i-e2e-iid").exists());
        } else {
            assert_eq!(a.out.status.code(), Some(1));
            assert!(
                line.contains("rule=aws_identity result=refused") && line.contains("signed before"),
                "{line}"
            );
        }
        drop(a);
    }

    // --- no key in any log: server logs (decision lines included), run logs, agent output,
    // apply output, report files, plan output.
    for entry in std::fs::read_dir(server.dir.log_dir()).unwrap() {
        let path = entry.unwrap().path();
        ctx.outputs.push((
            path.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
        ));
    }
    let server_log =
        std::fs::read_to_string(server.dir.log_dir().join("puppetserver.log")).unwrap();
    assert!(server_log.matches("cloudcfg-autosign: certname=").count() >= 9);
    for (what, content) in &ctx.outputs {
        let aws_secret = "e2e-secret".to_owned();
        for (name, secret) in [
            ("key", &key),
            ("wrong key", &wrong_key),
            ("S3 secret key", &aws_secret),
        ] {
            assert!(
                !content.contains(secret.as_str()),
                "the {name} is in {what}"
            );
        }
    }

    let status = server.stop().expect("the server was running");
    assert_eq!(
        puppet::shell_code(status),
        Some(143),
        "puppetserver stopped by SIGTERM"
    );
    ctx.timings.push(("total".into(), t0.elapsed()));
    eprintln!("\ntimings:");
    for (what, took) in &ctx.timings {
        eprintln!("  {what}: {:.1} s", took.as_secs_f32());
    }
}
