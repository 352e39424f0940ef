//! `cloudcfg autosign` as puppetserver runs it: the built binary, a CSR on stdin, the exit code
//! and the one decision line on stderr; also through a link named `autosign` (argv[0]).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cloudcfg");
const KEY: &str = "S3cret";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/autosign")
        .join(format!("{name}.pem"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `program args...` with `stdin`, and fails with everything needed to see why.
fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    if let Some(mut input) = child.stdin.take() {
        // The program may exit before reading everything (it does not here); ignore EPIPE.
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("wait for the child")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn policy(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("autosign.yaml");
    std::fs::write(&path, yaml).expect("write policy");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    path
}

fn check(output: &Output, code: i32, line_start: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one decision line: {err:?}");
    assert!(
        err.starts_with(line_start),
        "expected {line_start:?}, got {err:?}"
    );
    assert!(!err.contains(KEY), "the key leaked: {err}");
    assert!(output.stdout.is_empty(), "stdout: {:?}", output.stdout);
}

#[test]
fn subcommand_signs_and_refuses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = policy(tmp.path(), "preshared_keys: [S3cret]\n");
    let policy = policy.to_str().expect("utf-8 path");

    let signed = run(
        Path::new(BIN),
        &["autosign", "--policy", policy, "i-0abc.test.example"],
        &fixture("challenge-ok"),
    );
    check(
        &signed,
        0,
        "cloudcfg-autosign: certname=i-0abc.test.example rule=all result=signed",
    );

    let refused = run(
        Path::new(BIN),
        &["autosign", "--policy", policy, "i-0bad.test.example"],
        &fixture("wrong-key"),
    );
    check(
        &refused,
        1,
        "cloudcfg-autosign: certname=i-0bad.test.example rule=preshared_key result=refused",
    );

    let garbage = run(
        Path::new(BIN),
        &["autosign", "--policy", policy, "i-0abc.test.example"],
        b"GET / HTTP/1.0\r\n\r\n",
    );
    check(
        &garbage,
        2,
        "cloudcfg-autosign: certname=i-0abc.test.example rule=csr result=error",
    );
}

#[test]
fn subcommand_refuses_a_world_readable_policy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = policy(tmp.path(), "preshared_keys: [S3cret]\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = run(
        Path::new(BIN),
        &[
            "autosign",
            "--policy",
            path.to_str().expect("utf-8"),
            "i-0abc.test.example",
        ],
        &fixture("challenge-ok"),
    );
    check(
        &output,
        2,
        "cloudcfg-autosign: certname=i-0abc.test.example rule=policy result=error",
    );
    assert!(stderr(&output).contains("readable by others (mode 0644)"));
}

#[test]
fn system_config_names_the_policy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = policy(tmp.path(), "preshared_keys: [S3cret]\n");
    let config = tmp.path().join("cloudcfg.yaml");
    std::fs::write(&config, format!("autosign_policy: {}\n", policy.display())).expect("write");
    let output = run(
        Path::new(BIN),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "autosign",
            "i-0def.test.example",
        ],
        &fixture("psk-ok"),
    );
    check(
        &output,
        0,
        "cloudcfg-autosign: certname=i-0def.test.example rule=all result=signed",
    );

    // An invalid system config is reported on the decision line too.
    std::fs::write(&config, "autosign_polic: /x\n").expect("write");
    let output = run(
        Path::new(BIN),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "autosign",
            "i-0def.test.example",
        ],
        &fixture("psk-ok"),
    );
    check(
        &output,
        2,
        "cloudcfg-autosign: certname=i-0def.test.example rule=policy result=error",
    );
}

#[test]
fn runs_as_policy_executable_through_a_link_named_autosign() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let link = tmp.path().join("autosign");
    std::os::unix::fs::symlink(BIN, &link).expect("symlink");

    // puppetserver passes only the certname; the default policy path is used. A test cannot
    // write /etc, so the decision here is "policy unreadable", naming the path it looked at.
    let system_config = Path::new("/etc/cloudcfg/cloudcfg.yaml");
    let default_policy = Path::new("/etc/cloudcfg/autosign.yaml");
    let output = run(&link, &["i-0abc.test.example"], &fixture("challenge-ok"));
    if system_config.exists() || default_policy.exists() {
        eprintln!("skipping the default-policy check: this host has /etc/cloudcfg");
    } else {
        check(
            &output,
            2,
            "cloudcfg-autosign: certname=i-0abc.test.example rule=policy result=error",
        );
        assert!(
            stderr(&output).contains("/etc/cloudcfg/autosign.yaml"),
            "{}",
            stderr(&output)
        );
    }

    // The argument is always the certname, never an option.
    let output = run(
        &link,
        &["--policy=/tmp/evil.yaml"],
        &fixture("challenge-ok"),
    );
    let err = stderr(&output);
    assert!(
        err.starts_with("cloudcfg-autosign: certname=\"--policy=/tmp/evil.yaml\""),
        "{err}"
    );
    assert!(!err.contains("/tmp/evil.yaml rule"), "{err}");
    assert_ne!(output.status.code(), Some(0));

    // Anything but exactly one argument is a usage error.
    for args in [&[][..], &["a.example", "b.example"][..]] {
        let output = run(&link, args, b"");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn the_launcher_expects_a_certname_that_signs_once_and_not_past_its_ttl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("expected");
    std::fs::create_dir(&dir).unwrap();
    let policy = policy(
        tmp.path(),
        &format!("expected_certnames_dir: {}\n", dir.display()),
    );
    let policy = policy.to_str().expect("utf-8 path");
    let certname = "i-0abc.test.example";
    let decide = || {
        run(
            Path::new(BIN),
            &["autosign", "--policy", policy, certname],
            &fixture("challenge-ok"),
        )
    };
    let launcher = |args: &[&str]| {
        let mut all = vec!["autosign"];
        all.extend_from_slice(args);
        run(Path::new(BIN), &all, b"")
    };
    let refused =
        format!("cloudcfg-autosign: certname={certname} rule=expected_certname result=refused");
    check(&decide(), 1, &refused);

    // Expected (by its instance id, as a launcher knows it), signed once, then a replay refused.
    let out = launcher(&["expect", "--policy", policy, "--ttl", "1h", "i-0abc"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.join("i-0abc")).unwrap();
    assert!(text.starts_with("expires: "), "{text}");
    check(
        &decide(),
        0,
        &format!("cloudcfg-autosign: certname={certname} rule=all result=signed"),
    );
    assert!(!dir.join("i-0abc").exists(), "the expectation is used up");
    check(&decide(), 1, &refused);

    // Past its TTL the expectation no longer counts, and says so.
    let out = launcher(&["expect", "--policy", policy, "--ttl", "0s", certname]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expired = decide();
    check(&expired, 1, &refused);
    assert!(
        stderr(&expired).contains("expired at"),
        "{}",
        stderr(&expired)
    );

    // Taken back, once.
    let out = launcher(&["forget", "--policy", policy, certname]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!dir.join(certname).exists());
    let out = launcher(&["forget", "--policy", policy, certname]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // A certname that is not a plain file name never becomes a path.
    let out = launcher(&["expect", "--policy", policy, "../escape"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!tmp.path().join("escape").exists());
    // `expect` after `--` is a certname puppetserver asks about, not the launcher's command.
    let asked = run(
        Path::new(BIN),
        &["autosign", "--policy", policy, "--", "expect"],
        &fixture("challenge-ok"),
    );
    assert_eq!(asked.status.code(), Some(1), "{}", stderr(&asked));
    assert!(
        stderr(&asked).contains("certname=expect rule=cn"),
        "{}",
        stderr(&asked)
    );
}
