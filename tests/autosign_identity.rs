//! The `aws_identity` rule end to end through the binary: a test CA stands in for AWS's
//! signing certificate, openssl signs instance identity documents the way EC2's `rsa2048`
//! endpoint does (PKCS#7 SignedData, the document inside), and CSRs carry document and
//! signature as custom attributes. The genuine request signs once; a tampered document, a
//! wrong signer, an old pendingTime, a foreign account, a certname of another instance, a
//! second request of the same instance, a signature that is not DER and a request without an
//! identity are refused, each naming its check (issue 17, item 3, the CA side).

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use support::https::{identity_signature as sign, identity_signer as signer, openssl};

const BIN: &str = env!("CARGO_BIN_EXE_cloudcfg");
const DOCUMENT_OID: &str = "2.25.113021915545913526792366058188791605927.1";
const SIGNATURE_OID: &str = "2.25.113021915545913526792366058188791605927.2";
const ACCOUNT: &str = "123456789012";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn document(instance: &str, account: &str, pending: SystemTime) -> Vec<u8> {
    format!(
        r#"{{"accountId" : "{account}", "architecture" : "x86_64", "availabilityZone" : "eu-west-1a", "imageId" : "ami-0123456789abcdef0", "instanceId" : "{instance}", "instanceType" : "t3.micro", "pendingTime" : "{}", "privateIp" : "10.0.0.5", "region" : "eu-west-1", "version" : "2017-09-30"}}"#,
        humantime::format_rfc3339_seconds(pending)
    )
    .into_bytes()
}

/// A CSR for `certname` with the identity attributes (base64 text), if any.
fn csr(dir: &Path, certname: &str, identity: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let mut cnf = format!(
        "oid_section = oids\n[oids]\niiddoc = {DOCUMENT_OID}\niidsig = {SIGNATURE_OID}\n\
         [req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = {certname}\n[attrs]\n"
    );
    if let Some((doc, sig)) = identity {
        cnf.push_str(&format!("iiddoc = {}\niidsig = {}\n", b64(doc), b64(sig)));
    }
    std::fs::write(dir.join("req.cnf"), cnf).unwrap();
    openssl(
        dir,
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "csr.key", "-config",
            "req.cnf", "-out", "csr.pem",
        ],
    );
    std::fs::read(dir.join("csr.pem")).unwrap()
}

fn decide(policy: &Path, certname: &str, pem: &[u8]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(["autosign", "--policy", policy.to_str().unwrap(), certname])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(pem).unwrap();
    let out = child.wait_with_output().unwrap();
    let line = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), line)
}

#[test]
fn the_signed_instance_identity_signs_the_genuine_instance_once_and_refuses_each_forgery() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    signer(d, "aws");
    signer(d, "other");
    let signed = d.join("signed");
    std::fs::create_dir(&signed).unwrap();
    let policy = d.join("autosign.yaml");
    std::fs::write(
        &policy,
        format!(
            "aws_identity:\n  certificates: [{}]\n  accounts: [\"{ACCOUNT}\"]\n  regions: [eu-west-1]\n  max_age_secs: 600\n  signed_instances_dir: {}\n",
            d.join("aws.pem").display(),
            signed.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o640)).unwrap();
    let now = SystemTime::now() - Duration::from_secs(60);

    // Genuine, with signed attributes (openssl's and EC2's default): signed, once.
    let doc = document("i-0aaa", ACCOUNT, now);
    let sig = sign(d, "aws", &doc, true);
    let genuine = csr(d, "i-0aaa.web.example", Some((&doc, &sig)));
    let (code, line) = decide(&policy, "i-0aaa.web.example", &genuine);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.contains("aws_identity (i-0aaa in 123456789012)"),
        "{line}"
    );
    assert!(signed.join("i-0aaa").exists(), "the instance is recorded");
    let again = csr(d, "i-0aaa.other.example", Some((&doc, &sig)));
    let (code, line) = decide(&policy, "i-0aaa.other.example", &again);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("rule=aws_identity") && line.contains("signed before"),
        "{line}"
    );

    // Without signed attributes too.
    let doc = document("i-0bbb", ACCOUNT, now);
    let sig = sign(d, "aws", &doc, false);
    let (code, line) = decide(
        &policy,
        "i-0bbb.web.example",
        &csr(d, "i-0bbb.web.example", Some((&doc, &sig))),
    );
    assert_eq!(code, 0, "{line}");

    let refused = |certname: &str, pem: &[u8], reason: &str| {
        let (code, line) = decide(&policy, certname, pem);
        assert_eq!(code, 1, "{reason}: {line}");
        assert!(
            line.contains("rule=aws_identity result=refused") && line.contains(reason),
            "{reason}: {line}"
        );
    };
    // A tampered document: another region than the signed one.
    let doc = document("i-0ccc", ACCOUNT, now);
    let sig = sign(d, "aws", &doc, true);
    let tampered = String::from_utf8(doc.clone())
        .unwrap()
        .replace("eu-west-1a", "us-east-1a");
    refused(
        "i-0ccc.web.example",
        &csr(d, "i-0ccc.web.example", Some((tampered.as_bytes(), &sig))),
        "another document",
    );
    // A signer that is not AWS's.
    let sig = sign(d, "other", &doc, true);
    refused(
        "i-0ccc.web.example",
        &csr(d, "i-0ccc.web.example", Some((&doc, &sig))),
        "not made by a configured signing certificate",
    );
    // An old pendingTime.
    let old = document(
        "i-0ddd",
        ACCOUNT,
        SystemTime::now() - Duration::from_secs(7200),
    );
    let sig = sign(d, "aws", &old, true);
    refused(
        "i-0ddd.web.example",
        &csr(d, "i-0ddd.web.example", Some((&old, &sig))),
        "pendingTime is",
    );
    // A foreign account.
    let foreign = document("i-0eee", "999999999999", now);
    let sig = sign(d, "aws", &foreign, true);
    refused(
        "i-0eee.web.example",
        &csr(d, "i-0eee.web.example", Some((&foreign, &sig))),
        "accountId 999999999999",
    );
    // A certname of another instance than the document's.
    let doc = document("i-0fff", ACCOUNT, now);
    let sig = sign(d, "aws", &doc, true);
    refused(
        "i-0999.web.example",
        &csr(d, "i-0999.web.example", Some((&doc, &sig))),
        "instanceId i-0fff",
    );
    // A signature that is not DER, and no identity at all.
    refused(
        "i-0fff.web.example",
        &csr(d, "i-0fff.web.example", Some((&doc, b"not DER at all"))),
        "not DER",
    );
    refused(
        "i-0fff.web.example",
        &csr(d, "i-0fff.web.example", None),
        "carries no instance identity",
    );
    // None of the refused ones was recorded.
    let recorded: Vec<String> = std::fs::read_dir(&signed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut recorded = recorded;
    recorded.sort();
    assert_eq!(recorded, ["i-0aaa", "i-0bbb"]);
}
