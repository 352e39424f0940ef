//! Datasources against fake metadata services on 127.0.0.1:0 (tests/support/http.rs), counting
//! requests to prove the retry policy, and NoCloud against fixture seeds
//! (tests/fixtures/nocloud/<case>/). Nothing here reaches 169.254.169.254.

mod support;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudcfg::datasource::{
    Datasource, DatasourceError, Ec2, InstanceData, NoCloud, Overrides, Retry, Seed,
};
use support::http::{self, Request, Response, Server};

const TOKEN: &str = "AQAEAFakeImdsV2Token-0c9f==";

// ---------------------------------------------------------------------------------------------
// Log capture: each test thread sees the records it caused, through the same filter as the
// binary's logger (which drops HTTP wire dumps).

thread_local! {
    static CAPTURED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        CAPTURED.with(|c| c.borrow_mut().push(line));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_boxed_logger(Box::new(cloudcfg::cli::NoWireDumps(Capture)))
            .expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
    CAPTURED.with(|c| c.borrow_mut().clear());
}

fn captured() -> String {
    CAPTURED.with(|c| c.borrow().join("\n"))
}

// ---------------------------------------------------------------------------------------------
// A fake IMDS

/// Retries fast, so that tests of the policy take milliseconds.
fn quick(deadline_ms: u64) -> Retry {
    Retry {
        timeout: Duration::from_millis(500),
        deadline: Duration::from_millis(deadline_ms),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_attempts: 50,
    }
}

fn meta(path: &str) -> Option<&'static str> {
    Some(match path {
        "/latest/meta-data/instance-id" => "i-0123456789abcdef0",
        "/latest/meta-data/local-hostname" => "ip-10-0-0-5.eu-west-1.compute.internal",
        "/latest/meta-data/hostname" => "ip-10-0-0-5.eu-west-1.compute.internal",
        "/latest/meta-data/placement/availability-zone" => "eu-west-1a",
        "/latest/meta-data/public-keys/" => "0=deploy\n1=backup",
        "/latest/meta-data/public-keys/0/openssh-key" => "ssh-ed25519 AAAAC3Nz deploy",
        "/latest/meta-data/public-keys/1/openssh-key" => "ssh-ed25519 AAAAC3Nz backup",
        "/latest/user-data" => "#cloud-config\npackages: [hello]\n",
        "/latest/dynamic/instance-identity/document" => {
            "{\"instanceId\" : \"i-0123456789abcdef0\"}"
        }
        "/latest/dynamic/instance-identity/rsa2048" => "MIIAsig\nnature==\n",
        _ => return None,
    })
}

fn answer(path: &str) -> Response {
    meta(path).map_or_else(Response::not_found, Response::ok)
}

/// IMDSv2 as AWS runs it: a token for a PUT with a TTL, 401 for a GET without the token.
fn imds_v2(req: &Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("PUT", "/latest/api/token") => {
            if req.header("X-aws-ec2-metadata-token-ttl-seconds") == Some("21600") {
                Response::ok(TOKEN)
            } else {
                Response::status(400)
            }
        }
        ("GET", path) if req.header("X-aws-ec2-metadata-token") == Some(TOKEN) => answer(path),
        ("GET", _) => Response::status(401),
        _ => Response::status(405),
    }
}

fn ec2(server: &Server, retry: Retry) -> Ec2 {
    Ec2::new(&server.url(), retry)
}

fn gets(server: &Server) -> usize {
    server.count_where(|r| r.method == "GET")
}

fn token_requests(server: &Server) -> usize {
    server.count("/latest/api/token")
}

#[test]
fn imdsv2_token_flow_reads_everything() {
    capture_logs();
    let server = http::serve(imds_v2);
    let data = ec2(&server, quick(5000)).fetch().unwrap();
    assert_eq!(
        data,
        InstanceData {
            datasource: "ec2",
            source: server.url(),
            instance_id: "i-0123456789abcdef0".into(),
            local_hostname: Some("ip-10-0-0-5.eu-west-1.compute.internal".into()),
            hostname: Some("ip-10-0-0-5.eu-west-1.compute.internal".into()),
            availability_zone: Some("eu-west-1a".into()),
            public_keys: vec![
                "ssh-ed25519 AAAAC3Nz deploy".into(),
                "ssh-ed25519 AAAAC3Nz backup".into()
            ],
            user_data: Some(b"#cloud-config\npackages: [hello]\n".to_vec()),
            meta_data: data.meta_data.clone(),
            // The signed instance identity, for `puppet: {attest: aws_iid}`, read with the
            // token like everything else.
            identity: Some((
                b"{\"instanceId\" : \"i-0123456789abcdef0\"}".to_vec(),
                "MIIAsig\nnature==".into()
            )),
        }
    );
    assert_eq!(data.meta_data["public-keys"]["1"]["name"], "backup");
    assert_eq!(data.meta_data["placement/availability-zone"], "eu-west-1a");
    // One token for the whole fetch, and on every GET.
    assert_eq!(token_requests(&server), 1);
    assert_eq!(
        server.count_where(
            |r| r.method == "GET" && r.header("X-aws-ec2-metadata-token") != Some(TOKEN)
        ),
        0
    );
    // Nothing but what cloudcfg uses is asked for (IAM credentials stay on the service).
    assert_eq!(server.count_where(|r| r.path.contains("/iam/")), 0);
    let log = captured();
    assert!(log.contains("IMDSv2 session token obtained"), "{log}");
    assert!(!log.contains(TOKEN), "the token reached the log:\n{log}");
    assert!(
        !log.contains(&TOKEN[..12]),
        "part of the token reached the log:\n{log}"
    );
}

#[test]
fn imdsv1_when_the_token_endpoint_does_not_exist() {
    for status in [404, 405] {
        let server = http::serve(move |req| match req.path.as_str() {
            "/latest/api/token" => Response::status(status),
            path => answer(path),
        });
        let data = ec2(&server, quick(5000)).fetch().unwrap();
        assert_eq!(data.instance_id, "i-0123456789abcdef0", "{status}");
        assert_eq!(token_requests(&server), 1, "{status}");
        assert_eq!(
            server.count_where(|r| r.header("X-aws-ec2-metadata-token").is_some()),
            0
        );
    }
}

#[test]
fn forbidden_token_request_means_the_service_is_disabled() {
    let server = http::serve(|_| Response::status(403));
    let err = ec2(&server, quick(5000)).fetch().unwrap_err();
    assert_eq!(err.reason(), "imds-disabled");
    assert!(err.to_string().contains("disabled"), "{err}");
    // No retry, no IMDSv1 attempt.
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn server_errors_are_retried() {
    // The first three requests, whatever they ask, get 503, 500, 502.
    let seen = AtomicUsize::new(0);
    let server = http::serve(move |req| match seen.fetch_add(1, Ordering::SeqCst) {
        0 => Response::status(503),
        1 => Response::status(500),
        2 => Response::status(502),
        _ => imds_v2(req),
    });
    let data = ec2(&server, quick(5000)).fetch().unwrap();
    assert_eq!(data.instance_id, "i-0123456789abcdef0");
    assert_eq!(token_requests(&server), 4);
}

#[test]
fn server_errors_on_a_get_are_retried_too() {
    let seen = AtomicUsize::new(0);
    let server = http::serve(move |req| {
        if req.path == "/latest/user-data" && seen.fetch_add(1, Ordering::SeqCst) < 2 {
            Response::status(503)
        } else {
            imds_v2(req)
        }
    });
    let data = ec2(&server, quick(5000)).fetch().unwrap();
    assert!(data.user_data.is_some());
    assert_eq!(server.count("/latest/user-data"), 3);
}

#[test]
fn client_errors_are_final() {
    for status in [400, 403, 410] {
        let server = http::serve(move |req| match req.path.as_str() {
            "/latest/meta-data/instance-id" => Response::status(status),
            _ => imds_v2(req),
        });
        let err = ec2(&server, quick(5000)).fetch().unwrap_err();
        assert_eq!(err.reason(), "http-status", "{status}: {err}");
        assert_eq!(server.count("/latest/meta-data/instance-id"), 1, "{status}");
    }
}

#[test]
fn an_expired_token_is_renewed_once() {
    // The first token expires at the first GET; the second one works.
    let issued = AtomicUsize::new(0);
    let server = http::serve(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("PUT", _) => match issued.fetch_add(1, Ordering::SeqCst) {
            0 => Response::ok("old-token"),
            _ => Response::ok(TOKEN),
        },
        _ => imds_v2(req),
    });
    let data = ec2(&server, quick(5000)).fetch().unwrap();
    assert_eq!(data.instance_id, "i-0123456789abcdef0");
    assert_eq!(token_requests(&server), 2);
    assert_eq!(server.count("/latest/meta-data/instance-id"), 2);
}

#[test]
fn a_second_401_is_final() {
    let server = http::serve(|req| match req.method.as_str() {
        "PUT" => Response::ok(TOKEN),
        _ => Response::status(401),
    });
    let err = ec2(&server, quick(5000)).fetch().unwrap_err();
    assert!(
        matches!(err, DatasourceError::Http { status: 401, .. }),
        "{err}"
    );
    assert_eq!(token_requests(&server), 2);
    assert_eq!(gets(&server), 2);
}

#[test]
fn absent_user_data_and_optional_keys_are_not_errors() {
    let server = http::serve(|req| match req.path.as_str() {
        "/latest/user-data"
        | "/latest/meta-data/public-keys/"
        | "/latest/meta-data/hostname"
        | "/latest/meta-data/local-hostname"
        | "/latest/meta-data/placement/availability-zone" => Response::not_found(),
        _ => imds_v2(req),
    });
    let data = ec2(&server, quick(5000)).fetch().unwrap();
    assert_eq!(data.user_data, None);
    assert_eq!(data.public_keys, Vec::<String>::new());
    assert_eq!(
        (data.local_hostname, data.hostname, data.availability_zone),
        (None, None, None)
    );
    assert_eq!(server.count("/latest/user-data"), 1);
}

#[test]
fn instance_id_is_required_and_checked() {
    for (answer, reason) in [
        (Response::not_found(), "missing-metadata"),
        (Response::ok("../../etc"), "invalid-metadata"),
        (Response::ok("i-1/x"), "invalid-metadata"),
    ] {
        let server = http::serve(move |req| match req.path.as_str() {
            "/latest/meta-data/instance-id" => answer.clone(),
            _ => imds_v2(req),
        });
        let err = ec2(&server, quick(5000)).fetch().unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
        // Nothing more is read for an instance cloudcfg cannot name.
        assert_eq!(server.count("/latest/user-data"), 0);
    }
}

#[test]
fn hostnames_are_checked() {
    let server = http::serve(|req| match req.path.as_str() {
        "/latest/meta-data/local-hostname" => Response::ok("web1; rm -rf /"),
        _ => imds_v2(req),
    });
    let err = ec2(&server, quick(5000)).fetch().unwrap_err();
    assert_eq!(err.reason(), "invalid-metadata");
    assert!(err.to_string().contains("local-hostname"), "{err}");
}

#[test]
fn a_hanging_service_times_out_within_the_deadline() {
    let server = http::serve(|_| {
        std::thread::sleep(Duration::from_secs(5));
        Response::ok("too late")
    });
    let retry = Retry {
        timeout: Duration::from_millis(200),
        deadline: Duration::from_millis(900),
        ..quick(0)
    };
    let started = Instant::now();
    let err = ec2(&server, retry).fetch().unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, DatasourceError::Unreachable { attempts, .. } if attempts >= 2),
        "{err}"
    );
    assert!(elapsed < Duration::from_millis(1800), "took {elapsed:?}");
    assert!(token_requests(&server) >= 2);
}

#[test]
fn a_refused_connection_is_retried_until_the_deadline() {
    capture_logs();
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = Ec2::new(&format!("http://127.0.0.1:{port}"), quick(300))
        .fetch()
        .unwrap_err();
    assert_eq!(err.reason(), "unreachable", "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    match err {
        DatasourceError::Unreachable { attempts, .. } => assert!(attempts >= 2, "{attempts}"),
        other => panic!("{other}"),
    }
    // Each failed attempt is in the log.
    let log = captured();
    assert!(log.contains("attempt 1 failed"), "{log}");
    assert!(log.contains("attempt 2 failed"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// NoCloud

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nocloud")
}

/// (instance id, local-hostname, hostname, user data present)
type Expected = Result<
    (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        bool,
    ),
    &'static str,
>;

const NOCLOUD_CASES: &[(&str, Expected)] = &[
    (
        "valid",
        Ok(("iid-local01", Some("web1"), Some("web1.example.org"), true)),
    ),
    (
        "no-user-data",
        Ok(("iid-local02", Some("web2"), None, false)),
    ),
    ("no-hostname", Ok(("iid-local03", None, None, true))),
    ("invalid-meta-data", Err("invalid-metadata")),
    ("not-a-mapping", Err("invalid-metadata")),
    ("instance-id-with-slash", Err("invalid-metadata")),
    ("instance-id-dot-dot", Err("invalid-metadata")),
    ("missing-instance-id", Err("missing-metadata")),
    ("bad-hostname", Err("invalid-metadata")),
    ("no-meta-data", Err("missing-metadata")),
];

fn check_case(case: &str, got: Result<InstanceData, DatasourceError>, expected: &Expected) {
    match (got, expected) {
        (Ok(data), Ok((id, local, host, has_user_data))) => {
            assert_eq!(data.datasource, "nocloud");
            assert_eq!(data.instance_id, *id, "{case}");
            assert_eq!(data.local_hostname.as_deref(), *local, "{case}");
            assert_eq!(data.hostname.as_deref(), *host, "{case}");
            assert_eq!(data.user_data.is_some(), *has_user_data, "{case}");
            assert_eq!(data.meta_data["instance-id"], *id, "{case}");
            if *has_user_data {
                let user_data = std::fs::read(fixtures().join(case).join("user-data")).unwrap();
                assert_eq!(data.user_data.as_deref(), Some(&user_data[..]), "{case}");
            }
        }
        (Err(e), Err(reason)) => assert_eq!(e.reason(), *reason, "{case}: {e}"),
        (got, _) => panic!("{case}: got {got:?}, want {expected:?}"),
    }
}

#[test]
fn nocloud_seed_directories() {
    // Every fixture directory has a row, so a new fixture cannot go untested.
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = NOCLOUD_CASES.iter().map(|(c, _)| (*c).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);

    for (case, expected) in NOCLOUD_CASES {
        let got = NoCloud::new(Seed::Dir(fixtures().join(case))).fetch();
        check_case(case, got, expected);
    }
}

#[test]
fn nocloud_file_url_seeds() {
    for (case, expected) in NOCLOUD_CASES {
        let url = format!("file://{}/", fixtures().join(case).display());
        let got = NoCloud::new(Seed::from_url(&url).unwrap()).fetch();
        check_case(case, got, expected);
    }
}

#[test]
fn nocloud_http_seeds() {
    let server = http::serve(http::static_files(fixtures()));
    let retry = quick(5000);
    for (case, expected) in NOCLOUD_CASES {
        let seed = Seed::from_url(&format!("{}/{case}", server.url())).unwrap();
        let got = NoCloud::new(seed).with_retry(retry).fetch();
        check_case(case, got, expected);
    }
    // Both files are asked for once per case that got that far, nothing else.
    assert_eq!(
        server.count_where(|r| !r.path.ends_with("/meta-data") && !r.path.ends_with("/user-data")),
        0
    );
}

#[test]
fn nocloud_http_seed_server_errors_are_retried() {
    let seen = AtomicUsize::new(0);
    let files = http::static_files(fixtures());
    let server = http::serve(move |req| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            Response::status(503)
        } else {
            files(req)
        }
    });
    let seed = Seed::from_url(&format!("{}/valid/", server.url())).unwrap();
    let data = NoCloud::new(seed).with_retry(quick(5000)).fetch().unwrap();
    assert_eq!(data.instance_id, "iid-local01");
    assert_eq!(server.count("/valid/meta-data"), 3);
}

#[test]
fn kernel_command_line_meta_data_wins() {
    let overrides = Overrides {
        instance_id: Some("iid-cmdline".into()),
        local_hostname: Some("cmdhost".into()),
    };
    let data =
        NoCloud::with_overrides(Some(Seed::Dir(fixtures().join("valid"))), overrides.clone())
            .fetch()
            .unwrap();
    assert_eq!(data.instance_id, "iid-cmdline");
    assert_eq!(data.local_hostname.as_deref(), Some("cmdhost"));
    assert_eq!(data.meta_data["instance-id"], "iid-cmdline");
    // The command line alone may name the instance: no seed, no user data.
    let data = NoCloud::with_overrides(None, overrides).fetch().unwrap();
    assert_eq!(data.instance_id, "iid-cmdline");
    assert_eq!(data.user_data, None);
    // It is checked like any other instance id.
    let err = NoCloud::with_overrides(
        None,
        Overrides {
            instance_id: Some("a/b".into()),
            local_hostname: None,
        },
    )
    .fetch()
    .unwrap_err();
    assert_eq!(err.reason(), "invalid-metadata");
}

// ---------------------------------------------------------------------------------------------
// A cidata filesystem, found by label and mounted read-only (root, loop devices, mkfs tools).

struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["--detach", &self.0])
            .status();
    }
}

fn run(argv: &[&str]) {
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a seed image of `kind` holding the `valid` fixture.
fn seed_image(kind: &str, dir: &Path) -> PathBuf {
    let image = dir.join(format!("seed.{kind}"));
    let seed = fixtures().join("valid");
    match kind {
        "iso9660" => run(&[
            "genisoimage",
            "-quiet",
            "-output",
            image.to_str().unwrap(),
            "-volid",
            "cidata",
            "-joliet",
            "-rock",
            seed.join("meta-data").to_str().unwrap(),
            seed.join("user-data").to_str().unwrap(),
        ]),
        "vfat" => {
            run(&[
                "mkfs.vfat",
                "-n",
                "CIDATA",
                "-C",
                image.to_str().unwrap(),
                "1024",
            ]);
            // Filled through a read-write loop mount of our own, then unmounted.
            let lo = losetup(&image);
            let mnt = dir.join("fill");
            std::fs::create_dir_all(&mnt).unwrap();
            run(&["mount", "-t", "vfat", &lo.0, mnt.to_str().unwrap()]);
            for f in ["meta-data", "user-data"] {
                std::fs::copy(seed.join(f), mnt.join(f)).unwrap();
            }
            run(&["umount", mnt.to_str().unwrap()]);
        }
        "ext4" => run(&[
            "mkfs.ext4",
            "-q",
            "-L",
            "cidata",
            "-d",
            seed.to_str().unwrap(),
            image.to_str().unwrap(),
            "4M",
        ]),
        other => panic!("{other}"),
    }
    image
}

fn losetup(image: &Path) -> Loop {
    let out = std::process::Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Loop(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn mounted_seeds() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("cloudcfg-cidata."))
        .count()
}

/// Every filesystem a seed may be made as. A kernel without a filesystem (this test host's
/// kernel has no iso9660 or vfat) says so with ENODEV: that case is reported and left out,
/// and at least one case must have run.
#[test]
fn nocloud_cidata_filesystems_are_found_by_label_and_mounted_read_only() {
    if !support::root::can_run(
        "nocloud_cidata_filesystems",
        &["losetup", "mount", "genisoimage", "mkfs.vfat", "mkfs.ext4"],
    ) {
        return;
    }
    let before = mounted_seeds();
    let mut ran = Vec::new();
    for (kind, label) in [
        ("iso9660", "cidata"),
        ("vfat", "CIDATA"),
        ("ext4", "cidata"),
    ] {
        if kind == "vfat" && !kernel_has(kind) {
            // Filling the image needs a vfat mount of our own.
            eprintln!("\n*** {kind} case not run: the running kernel has no {kind} ***\n");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = seed_image(kind, dir.path());
        let lo = losetup(&image);
        // udev's /dev/disk/by-label, as a fixture directory pointing at the loop device.
        let by_label = dir.path().join("by-label");
        std::fs::create_dir_all(&by_label).unwrap();
        std::os::unix::fs::symlink(&lo.0, by_label.join(label)).unwrap();
        let host = cloudcfg::datasource::Host {
            root: dir.path().join("root"),
            proc_cmdline: None,
            dmi_dir: None,
            by_label_dir: Some(by_label),
            blkid: false,
        };
        let detected = cloudcfg::datasource::detect(None, &host, &Default::default()).unwrap();
        assert_eq!(
            detected.choice.name(),
            "nocloud",
            "{kind}: {}",
            detected.why
        );
        let data = detected.choice.build().fetch();
        if let Err(DatasourceError::Mount { reason, .. }) = &data
            && reason.contains(&format!("{kind}: ENODEV"))
        {
            eprintln!(
                "\n*** {kind} case not run: the running kernel has no {kind} ({reason}) ***\n"
            );
            continue;
        }
        check_case("valid", data, &NOCLOUD_CASES[0].1);
        assert_eq!(mounted_seeds(), before, "{kind}: the seed stayed mounted");
        ran.push(kind);
    }
    assert!(!ran.is_empty(), "no seed filesystem could be mounted");
    eprintln!("cidata cases run: {ran:?}");
}

fn kernel_has(fstype: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fstype))
}

#[test]
fn nocloud_device_that_is_not_a_seed_filesystem() {
    if !support::root::can_run("nocloud_device_not_a_seed", &["losetup"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("zeros.img");
    std::fs::write(&image, vec![0u8; 1024 * 1024]).unwrap();
    let lo = losetup(&image);
    let err = NoCloud::new(Seed::Device(PathBuf::from(&lo.0)))
        .fetch()
        .unwrap_err();
    assert_eq!(err.reason(), "mount-failed", "{err}");
    assert!(err.to_string().contains("iso9660"), "{err}");
}
