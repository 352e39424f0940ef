//! The S3 store of expected certnames against a real S3 API server on 127.0.0.1 (moto's
//! server, from PyPI, installed by scripts/test.sh into the e2e cache): the launcher's
//! `cloudcfg autosign expect`, the policy signing once, a replay, an expired expectation, two
//! CA runs racing for one expectation, and a store that is stopped (issue 17, item 1).

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use support::http::{self, Response};
use support::moto::{BUCKET, Moto, moto_server};

const BIN: &str = env!("CARGO_BIN_EXE_cloudcfg");
const CERTNAME: &str = "i-0abc.test.example";

fn csr() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/autosign/challenge-ok.pem"),
    )
    .unwrap()
}

struct Ca {
    policy: PathBuf,
    /// Holds the policy file.
    _dir: tempfile::TempDir,
    home: tempfile::TempDir,
    endpoint: String,
    /// Credentials from this instance metadata service instead of the environment.
    imds: Option<String>,
}

impl Ca {
    /// A CA replica with this policy (0640, as the policy must be) against `moto`.
    fn new(policy_text: &str, moto: &Moto, imds: Option<String>) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("autosign.yaml");
        std::fs::write(&policy, policy_text).unwrap();
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o640)).unwrap();
        Ca {
            policy,
            _dir: dir,
            home: tempfile::tempdir().unwrap(),
            endpoint: moto.url(),
            imds,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("AWS_REGION", "us-east-1");
        match &self.imds {
            Some(imds) => cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds),
            None => cmd
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing"),
        };
        cmd.env("AWS_ENDPOINT_URL_S3", &self.endpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn launcher(&self, args: &[&str]) -> Output {
        let mut all = vec!["autosign"];
        all.extend_from_slice(args);
        all.extend(["--policy", self.policy.to_str().unwrap()]);
        let out = self.command(&all).output().unwrap();
        eprintln!(
            "{args:?} -> {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn spawn_decision(&self) -> Child {
        let mut child = self
            .command(&[
                "autosign",
                "--policy",
                self.policy.to_str().unwrap(),
                CERTNAME,
            ])
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&csr()).unwrap();
        child
    }

    fn decide(&self) -> (i32, String) {
        let out = self.spawn_decision().wait_with_output().unwrap();
        let line = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("decide -> {:?}: {line}", out.status);
        (out.status.code().unwrap_or(-1), line)
    }
}

#[test]
fn an_s3_store_of_expected_certnames_signs_once_across_ca_replicas_and_fails_closed() {
    const TEST: &str = "autosign_s3::an_s3_store_of_expected_certnames_signs_once_across_ca_replicas_and_fails_closed";
    let Some(server) = moto_server() else {
        support::root::skip(
            TEST,
            "no moto_server (scripts/test.sh installs moto[server] from PyPI into the e2e cache)",
        );
        return;
    };
    let mut moto = Moto::start(&server);
    moto.create_bucket(&server);
    let ca = Ca::new(
        &format!("expected_certnames: s3://{BUCKET}/fleet/\nstore_timeout_secs: 3\n"),
        &moto,
        None,
    );

    // Nothing expected: refused, by name.
    let (code, line) = ca.decide();
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("rule=expected_certname result=refused") && line.contains("no object"),
        "{line}"
    );

    // The launcher expects the instance id; its request signs once, its replay is refused.
    assert_eq!(
        ca.launcher(&["expect", "--ttl", "1h", "i-0abc"])
            .status
            .code(),
        Some(0)
    );
    let (code, line) = ca.decide();
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("result=signed"), "{line}");
    let (code, line) = ca.decide();
    assert_eq!(code, 1, "a replay: {line}");

    // Past its TTL an expectation is refused, and the line says so.
    assert_eq!(
        ca.launcher(&["expect", "--ttl", "0s", CERTNAME])
            .status
            .code(),
        Some(0)
    );
    let (code, line) = ca.decide();
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("expired at"), "{line}");
    assert_eq!(ca.launcher(&["forget", CERTNAME]).status.code(), Some(0));
    assert_eq!(ca.launcher(&["forget", CERTNAME]).status.code(), Some(1));

    // Another replica claimed the expectation between this one's read and its claim: the
    // conditional write (If-None-Match: *) fails, and this one refuses.
    assert_eq!(ca.launcher(&["expect", "i-0abc"]).status.code(), Some(0));
    moto.put(&server, "fleet/claimed/i-0abc");
    let (code, line) = ca.decide();
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("already claimed"), "{line}");
    assert_eq!(ca.launcher(&["forget", "i-0abc"]).status.code(), Some(0));

    // Two CA replicas decide on one expectation at once: exactly one signs.
    assert_eq!(ca.launcher(&["expect", "i-0abc"]).status.code(), Some(0));
    let racers: Vec<Child> = (0..2).map(|_| ca.spawn_decision()).collect();
    let codes: Vec<i32> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1], "one signs, one is refused: {codes:?}");

    // Bad input never becomes an S3 key.
    assert_eq!(
        ca.launcher(&["expect", "../fleet/x"]).status.code(),
        Some(2)
    );

    // A store that is stopped refuses (fails closed), naming the store.
    assert_eq!(ca.launcher(&["expect", "i-0abc"]).status.code(), Some(0));
    moto.stop();
    let (code, line) = ca.decide();
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("store:") && line.contains(BUCKET), "{line}");
    assert!(
        !line.contains("testing"),
        "no credentials in the line: {line}"
    );
}

/// The CA host's instance profile: credentials through IMDSv2 (a token first, then the role
/// and its credentials, each asked with the token), from an instance metadata service on
/// 127.0.0.1 (AWS_EC2_METADATA_SERVICE_ENDPOINT, as the SDKs read it).
#[test]
fn the_ca_hosts_instance_profile_supplies_the_credentials_through_imdsv2() {
    const TEST: &str =
        "autosign_s3::the_ca_hosts_instance_profile_supplies_the_credentials_through_imdsv2";
    let Some(server) = moto_server() else {
        support::root::skip(TEST, "no moto_server (scripts/test.sh installs it)");
        return;
    };
    let moto = Moto::start(&server);
    moto.create_bucket(&server);
    let imds = http::serve(|r: &http::Request| {
        let token_ok = r.header("x-aws-ec2-metadata-token") == Some("imds-token");
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token")
                if r.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
            {
                Response::ok("imds-token")
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") if token_ok => {
                Response::ok("ca-role\n")
            }
            ("GET", "/latest/meta-data/iam/security-credentials/ca-role") if token_ok => {
                Response::ok(
                    r#"{"Code": "Success", "AccessKeyId": "ASIATESTING", "SecretAccessKey": "testing", "Token": "session-token", "Expiration": "2099-01-01T00:00:00Z"}"#,
                )
            }
            _ => Response::status(401),
        }
    });
    let ca = Ca::new(
        &format!("expected_certnames: s3://{BUCKET}/profile/\n"),
        &moto,
        Some(imds.url()),
    );
    assert_eq!(ca.launcher(&["expect", "i-0abc"]).status.code(), Some(0));
    let (code, line) = ca.decide();
    assert_eq!(code, 0, "{line}");
    let requests = imds.requests();
    assert!(
        requests.iter().any(|r| r.method == "PUT"),
        "a token was asked for"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.method == "GET")
            .all(|r| r.header("x-aws-ec2-metadata-token") == Some("imds-token")),
        "every read carries the token (IMDSv2)"
    );
    assert!(
        !line.contains("session-token") && !line.contains("ASIATESTING"),
        "{line}"
    );
}
