//! Tests of the policy on CSRs made with openssl (tests/fixtures/autosign/make.sh).

use std::os::unix::fs::PermissionsExt;

use std::path::{Path, PathBuf};

use x509_parser::pem::Pem;

use super::*;

const KEY: &str = "S3cret";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/autosign/",
            $name,
            ".pem"
        ))
        .as_slice()
    };
}

fn csr(pem: &[u8]) -> Csr {
    parse_csr(pem).unwrap()
}

fn rules(yaml: &str) -> Rules {
    let policy = parse_policy(yaml, "policy.yaml").unwrap();
    Rules::from_policy(&policy, "policy.yaml").unwrap()
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A policy file, 0600, in `dir`.
fn policy_file(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("autosign.yaml");
    write_mode(&path, yaml, 0o600);
    path
}

fn refused(decision: Decision) -> (Rule, String) {
    match decision {
        Decision::Refuse { rule, reason } => (rule, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Runs the whole flow; returns the exit code and stderr, which must be exactly one line.
fn run_with(policy: &Path, certname: &str, stdin: &[u8]) -> (u8, String) {
    let mut err = Vec::new();
    let code = run(policy, certname, &mut &stdin[..], &mut err);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(
        err.lines().count(),
        1,
        "exactly one line on stderr: {err:?}"
    );
    assert!(err.ends_with('\n'), "{err:?}");
    assert!(err.starts_with("cloudcfg-autosign: certname="), "{err}");
    (code, err)
}

#[test]
fn reads_challenge_password_cn_and_signature() {
    let csr = csr(fixture!("challenge-ok"));
    assert_eq!(csr.common_names, vec!["i-0abc.test.example"]);
    assert_eq!(csr.challenge_passwords, vec![KEY.as_bytes().to_vec()]);
    assert!(csr.pp_preshared_keys.is_empty());
    assert_eq!(csr.signature, SignatureCheck::Valid);
}

#[test]
fn reads_utf8_challenge_password() {
    let csr = csr(fixture!("challenge-utf8"));
    assert_eq!(csr.challenge_passwords, vec![KEY.as_bytes().to_vec()]);
}

#[test]
fn reads_pp_preshared_key_inside_its_der_string() {
    let csr = csr(fixture!("psk-ok"));
    assert!(csr.challenge_passwords.is_empty());
    assert_eq!(csr.pp_preshared_keys, vec![KEY.as_bytes().to_vec()]);
}

#[test]
fn reads_pp_preshared_key_given_as_raw_bytes() {
    let csr = csr(fixture!("psk-raw"));
    assert_eq!(csr.pp_preshared_keys, vec![KEY.as_bytes().to_vec()]);
}

#[test]
fn checks_rsa_signatures_too() {
    assert_eq!(csr(fixture!("rsa-ok")).signature, SignatureCheck::Valid);
}

#[test]
fn csr_debug_output_hides_keys() {
    let text = format!("{:?}", csr(fixture!("wrong-challenge-right-psk")));
    assert!(!text.contains(KEY) && !text.contains("WRONG"), "{text}");
    let rules = format!("{:?}", rules("preshared_keys: [S3cret]\n"));
    assert!(!rules.contains(KEY), "{rules}");
    let policy = format!(
        "{:?}",
        parse_policy("preshared_keys: [S3cret]\n", "p").unwrap()
    );
    assert!(!policy.contains(KEY), "{policy}");
}

#[test]
fn garbage_is_not_a_csr() {
    for input in [
        &b""[..],
        b"hello\n",
        b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n",
        b"-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        assert!(
            matches!(parse_csr(input), Err(AutosignError::InvalidCsr { .. })),
            "{input:?}"
        );
    }
    let mut two = fixture!("challenge-ok").to_vec();
    two.extend_from_slice(fixture!("no-key"));
    let err = parse_csr(&two).unwrap_err();
    assert!(err.to_string().contains("more than one PEM block"), "{err}");
}

#[test]
fn a_tampered_csr_fails_its_signature_check() {
    let pem = Pem::iter_from_buffer(fixture!("challenge-ok"))
        .next()
        .unwrap()
        .unwrap();
    // The last byte is inside the ECDSA signature's `s`: the request still parses.
    let mut der = pem.contents.clone();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let csr = parse_csr_der(&der).unwrap();
    assert_eq!(csr.signature, SignatureCheck::Invalid);
    let rules = rules("preshared_keys: [S3cret]\n");
    let (rule, _) = refused(decide(&rules, "i-0abc.test.example", &csr).unwrap());
    assert_eq!(rule, Rule::CsrSignature);
}

#[test]
fn right_key_as_challenge_password_signs() {
    let rules = rules("preshared_keys: [S3cret]\n");
    let decision = decide(
        &rules,
        "i-0abc.test.example",
        &csr(fixture!("challenge-ok")),
    )
    .unwrap();
    let Decision::Sign { claims, detail, .. } = decision else {
        panic!("{decision:?}");
    };
    assert!(claims.is_empty());
    assert!(
        detail.contains("preshared_key (challengePassword)"),
        "{detail}"
    );
}

#[test]
fn right_key_as_pp_preshared_key_signs() {
    let rules = rules("preshared_keys: [S3cret]\n");
    let decision = decide(&rules, "i-0def.test.example", &csr(fixture!("psk-ok"))).unwrap();
    let Decision::Sign { detail, .. } = decision else {
        panic!("{decision:?}");
    };
    assert!(
        detail.contains("preshared_key (pp_preshared_key)"),
        "{detail}"
    );
}

#[test]
fn either_source_may_carry_the_key() {
    let rules = rules("preshared_keys: [S3cret]\n");
    let csr = csr(fixture!("wrong-challenge-right-psk"));
    assert!(matches!(
        decide(&rules, "i-0mix.test.example", &csr).unwrap(),
        Decision::Sign { .. }
    ));
}

#[test]
fn pp_preshared_key_can_be_turned_off() {
    let rules = rules("preshared_keys: [S3cret]\naccept_pp_preshared_key: false\n");
    let (rule, reason) =
        refused(decide(&rules, "i-0def.test.example", &csr(fixture!("psk-ok"))).unwrap());
    assert_eq!(rule, Rule::PresharedKey);
    assert!(
        reason.contains("pp_preshared_key is not accepted"),
        "{reason}"
    );
    let (rule, _) = refused(
        decide(
            &rules,
            "i-0mix.test.example",
            &csr(fixture!("wrong-challenge-right-psk")),
        )
        .unwrap(),
    );
    assert_eq!(rule, Rule::PresharedKey);
}

#[test]
fn wrong_key_and_no_key_are_refused() {
    let rules = rules("preshared_keys: [S3cret, other-key]\n");
    let (rule, reason) =
        refused(decide(&rules, "i-0bad.test.example", &csr(fixture!("wrong-key"))).unwrap());
    assert_eq!(
        (rule, reason.as_str()),
        (Rule::PresharedKey, "the CSR's key is not an accepted one")
    );
    let (rule, reason) =
        refused(decide(&rules, "i-0none.test.example", &csr(fixture!("no-key"))).unwrap());
    assert_eq!(
        (rule, reason.as_str()),
        (Rule::PresharedKey, "the CSR carries no key")
    );
}

#[test]
fn any_accepted_key_matches_wherever_it_is_in_the_list() {
    for list in ["[S3cret, a, b]", "[a, S3cret, b]", "[a, b, S3cret]"] {
        let rules = rules(&format!("preshared_keys: {list}\n"));
        let decision = decide(
            &rules,
            "i-0abc.test.example",
            &csr(fixture!("challenge-ok")),
        );
        assert!(matches!(decision.unwrap(), Decision::Sign { .. }), "{list}");
    }
    // Prefixes and extensions of the key are other keys.
    for list in ["[S3cre]", "[S3cret0]", "[s3cret]"] {
        let rules = rules(&format!("preshared_keys: {list}\n"));
        let decision = decide(
            &rules,
            "i-0abc.test.example",
            &csr(fixture!("challenge-ok")),
        );
        assert!(
            matches!(decision.unwrap(), Decision::Refuse { .. }),
            "{list}"
        );
    }
}

#[test]
fn an_empty_key_list_accepts_nothing() {
    let rules = rules("preshared_keys: []\n");
    let (rule, reason) = refused(
        decide(
            &rules,
            "i-0abc.test.example",
            &csr(fixture!("challenge-ok")),
        )
        .unwrap(),
    );
    assert_eq!(rule, Rule::PresharedKey);
    assert!(reason.contains("accepts no key"), "{reason}");
}

#[test]
fn cn_must_be_the_certname() {
    let rules = rules("preshared_keys: [S3cret]\n");
    let (rule, reason) =
        refused(decide(&rules, "i-0abc.test.example", &csr(fixture!("cn-mismatch"))).unwrap());
    assert_eq!(rule, Rule::Cn);
    assert!(reason.contains("i-0evil.test.example"), "{reason}");
    let (rule, reason) =
        refused(decide(&rules, "i-0abc.test.example", &csr(fixture!("two-cns"))).unwrap());
    assert_eq!(rule, Rule::Cn);
    assert!(reason.contains("2 CNs"), "{reason}");
}

#[test]
fn a_policy_without_rules_refuses_everything() {
    for yaml in ["", "# nothing\n", "{}\n", "accept_pp_preshared_key: true\n"] {
        let rules = rules(yaml);
        let (rule, reason) = refused(
            decide(
                &rules,
                "i-0abc.test.example",
                &csr(fixture!("challenge-ok")),
            )
            .unwrap(),
        );
        assert_eq!(
            (rule, reason.as_str()),
            (Rule::Policy, "policy has no rules"),
            "{yaml:?}"
        );
    }
}

#[test]
fn certname_pattern_is_anchored() {
    let rules = rules("certname_pattern: 'i-[0-9a-f]+\\.test\\.example'\n");
    let csr = csr(fixture!("challenge-ok"));
    assert!(matches!(
        decide(&rules, "i-0abc.test.example", &csr).unwrap(),
        Decision::Sign { .. }
    ));
    // Unanchored, `test` alone would match the certname.
    let rules = self::rules("certname_pattern: test\n");
    let (rule, _) = refused(decide(&rules, "i-0abc.test.example", &csr).unwrap());
    assert_eq!(rule, Rule::CertnamePattern);
    // Alternatives are anchored as a whole.
    let rules = self::rules("certname_pattern: 'x|i-0abc'\n");
    let (rule, _) = refused(decide(&rules, "i-0abc.test.example", &csr).unwrap());
    assert_eq!(rule, Rule::CertnamePattern);
}

#[test]
fn certnames_that_are_not_plain_file_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = format!("expected_certnames_dir: {}\n", tmp.path().display());
    let rules = rules(&yaml);
    let csr = csr(fixture!("challenge-ok"));
    for certname in ["../i-0abc.test.example", "a/b", "..", "i-0abc\n.test", ""] {
        let (rule, _) = refused(decide(&rules, certname, &csr).unwrap());
        assert_eq!(rule, Rule::Certname, "{certname:?}");
    }
}

#[test]
fn expected_certnames_are_used_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("expected");
    std::fs::create_dir(&dir).unwrap();
    let rules = rules(&format!(
        "preshared_keys: [S3cret]\nexpected_certnames_dir: {}\n",
        dir.display()
    ));
    let csr = csr(fixture!("challenge-ok"));
    let certname = "i-0abc.test.example";

    // Not expected yet.
    let (rule, reason) = refused(decide(&rules, certname, &csr).unwrap());
    assert_eq!(rule, Rule::ExpectedCertname);
    assert!(reason.contains("i-0abc.test.example or i-0abc"), "{reason}");

    // Expected by instance id.
    std::fs::write(dir.join("i-0abc"), "").unwrap();
    let decision = decide(&rules, certname, &csr).unwrap();
    assert_eq!(
        decision,
        Decision::Sign {
            store_claims: Vec::new(),
            instance_record: None,
            claims: vec![dir.join("i-0abc")],
            detail:
                "cn, csr_signature, preshared_key (challengePassword), expected_certname (i-0abc)"
                    .into(),
        }
    );
    assert!(matches!(claim(decision), Outcome::Signed { .. }));
    assert!(!dir.join("i-0abc").exists(), "the file is consumed");

    // A replay of the same certname is refused.
    let (rule, _) = refused(decide(&rules, certname, &csr).unwrap());
    assert_eq!(rule, Rule::ExpectedCertname);

    // Expected by full certname and by instance id: both are consumed.
    std::fs::write(dir.join(certname), "").unwrap();
    std::fs::write(dir.join("i-0abc"), "").unwrap();
    let decision = decide(&rules, certname, &csr).unwrap();
    assert!(matches!(claim(decision), Outcome::Signed { .. }));
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());

    // A directory of that name does not count.
    std::fs::create_dir(dir.join(certname)).unwrap();
    let (rule, _) = refused(decide(&rules, certname, &csr).unwrap());
    assert_eq!(rule, Rule::ExpectedCertname);
}

#[test]
fn a_claim_lost_to_a_concurrent_request_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let decision = Decision::Sign {
        store_claims: Vec::new(),
        instance_record: None,
        claims: vec![tmp.path().join("i-0abc")],
        detail: String::new(),
    };
    let outcome = claim(decision);
    assert!(matches!(
        outcome,
        Outcome::Refused {
            rule: Rule::ExpectedCertname,
            ..
        }
    ));
}

#[test]
fn keys_file_lines() {
    let keys = parse_keys("# accepted keys\n\nalpha\n  beta  \r\n   # indented comment\ngam#ma\n");
    assert_eq!(keys, vec!["alpha", "beta", "gam#ma"]);
}

#[test]
fn run_signs_with_one_line_and_never_prints_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    write_mode(&keys, "# fleet keys\nold-key\nS3cret\n", 0o640);
    let policy = policy_file(
        tmp.path(),
        &format!("preshared_keys_file: {}\n", keys.display()),
    );
    let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with(
            "cloudcfg-autosign: certname=i-0abc.test.example rule=all result=signed detail="
        ),
        "{err}"
    );
    assert!(!err.contains(KEY), "{err}");

    let (code, err) = run_with(&policy, "i-0def.test.example", fixture!("psk-ok"));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(KEY), "{err}");
}

#[test]
fn run_refuses_with_the_rule_and_never_prints_either_key() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = policy_file(tmp.path(), "preshared_keys: [S3cret]\n");
    let (code, err) = run_with(&policy, "i-0bad.test.example", fixture!("wrong-key"));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        "cloudcfg-autosign: certname=i-0bad.test.example rule=preshared_key result=refused \
         detail=\"the CSR's key is not an accepted one\"\n"
    );
    assert!(!err.contains(KEY) && !err.contains("WRONG"), "{err}");

    let (code, err) = run_with(&policy, "i-0none.test.example", fixture!("no-key"));
    assert_eq!(code, 1);
    assert!(err.contains("rule=preshared_key result=refused"), "{err}");

    let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("cn-mismatch"));
    assert_eq!(code, 1);
    assert!(err.contains("rule=cn result=refused"), "{err}");
    assert!(!err.contains(KEY), "{err}");
}

#[test]
fn run_consumes_expected_certnames() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("expected");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("i-0abc.test.example"), "").unwrap();
    let policy = policy_file(
        tmp.path(),
        &format!(
            "preshared_keys: [S3cret]\nexpected_certnames_dir: {}\n",
            dir.display()
        ),
    );
    let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("expected_certname (i-0abc.test.example)"),
        "{err}"
    );
    let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("rule=expected_certname result=refused"),
        "{err}"
    );
    // Not expected at all.
    let (code, err) = run_with(&policy, "i-0rsa.test.example", fixture!("rsa-ok"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rule=expected_certname"), "{err}");
}

#[test]
fn run_refuses_path_like_certnames() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = policy_file(tmp.path(), "preshared_keys: [S3cret]\n");
    for certname in ["../../etc/passwd", "a/b", ".."] {
        let (code, err) = run_with(&policy, certname, fixture!("challenge-ok"));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("rule=certname result=refused"), "{err}");
    }
}

#[test]
fn certnames_cannot_forge_log_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = policy_file(tmp.path(), "preshared_keys: [S3cret]\n");
    let forged = "x\ncloudcfg-autosign: certname=y rule=all result=signed";
    let (code, err) = run_with(&policy, forged, fixture!("challenge-ok"));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("cloudcfg-autosign: certname=\"x\\ncloudcfg-autosign"),
        "{err}"
    );
}

#[test]
fn run_exits_2_on_garbage_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = policy_file(tmp.path(), "preshared_keys: [S3cret]\n");
    let (code, err) = run_with(&policy, "i-0abc.test.example", b"not a CSR\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rule=csr result=error"), "{err}");
    let big = vec![b'A'; MAX_CSR_BYTES + 1];
    let (code, err) = run_with(&policy, "i-0abc.test.example", &big);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn run_exits_2_on_insecure_policy_files() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = policy_file(tmp.path(), "preshared_keys: [S3cret]\n");
    for (mode, what) in [
        (0o644, "readable by others"),
        (0o604, "readable by others"),
        (0o602, "writable by others"),
    ] {
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
        assert_eq!(code, 2, "{mode:o}: {err}");
        assert!(
            err.contains("rule=policy result=error") && err.contains(what),
            "{err}"
        );
    }
    for mode in [0o600, 0o640, 0o660] {
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
        assert_eq!(code, 0, "{mode:o}: {err}");
    }

    // The keys file, likewise.
    let keys = tmp.path().join("keys");
    write_mode(&keys, "S3cret\n", 0o644);
    let policy = policy_file(
        tmp.path(),
        &format!("preshared_keys_file: {}\n", keys.display()),
    );
    let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("keys: readable by others (mode 0644)"),
        "{err}"
    );

    // And a world-writable expected-certnames directory.
    let dir = tmp.path().join("expected");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let policy = policy_file(
        tmp.path(),
        &format!("expected_certnames_dir: {}\n", dir.display()),
    );
    let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("writable by others"), "{err}");
}

#[test]
fn run_exits_2_on_missing_or_invalid_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = run_with(
        &tmp.path().join("absent.yaml"),
        "i-0abc.test.example",
        fixture!("challenge-ok"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rule=policy result=error"), "{err}");

    let cases = [
        (
            "preshared_keys: [S3cret]\npreshared_key: [x]\n",
            "2:1: unknown key `preshared_key`",
        ),
        (
            "preshared_keys: [S3cret]\npreshared_keys: [S3cret]\n",
            "duplicate key `preshared_keys`",
        ),
        (
            "preshared_keys_file: keys.txt\n",
            "must be an absolute path",
        ),
        (
            "expected_certnames_dir: /nonexistent/cloudcfg-test\n",
            "/nonexistent/cloudcfg-test",
        ),
        (
            "preshared_keys_file: /nonexistent/cloudcfg-keys\n",
            "/nonexistent/cloudcfg-keys",
        ),
        (
            "certname_pattern: '(unclosed'\n",
            "1:19: certname_pattern: regex parse error",
        ),
        ("preshared_keys: ['']\n", "an empty key is not accepted"),
        ("accept_pp_preshared_key: maybe\n", "true or false"),
        ("preshared_keys: [S3cret\n", "1:17: unclosed bracket"),
    ];
    for (yaml, expected) in cases {
        let policy = policy_file(tmp.path(), yaml);
        let (code, err) = run_with(&policy, "i-0abc.test.example", fixture!("challenge-ok"));
        assert_eq!(code, 2, "{yaml:?}: {err}");
        assert!(err.contains("rule=policy result=error"), "{err}");
        assert!(err.contains(expected), "{yaml:?}: {err}");
        assert!(!err.contains(KEY), "{yaml:?}: {err}");
    }
}

#[test]
fn policy_type_errors_do_not_quote_keys() {
    for yaml in [
        "preshared_keys: S3cret\n",
        "preshared_keys: [yes, [S3cret]]\n",
        "S3cret\n",
    ] {
        let err = parse_policy(yaml, "p.yaml").unwrap_err().to_string();
        assert!(
            !err.contains(KEY) && !err.contains("yes"),
            "{yaml:?}: {err}"
        );
        assert!(err.contains("the value is not shown"), "{err}");
    }
    // Elsewhere the value helps and is shown.
    let err = parse_policy("certname_pattern: [a]\n", "p.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certname_pattern: expected text, found a list"),
        "{err}"
    );
}

#[test]
fn policy_executable_dispatch() {
    assert!(invoked_as_policy_executable(OsStr::new("autosign")));
    assert!(invoked_as_policy_executable(OsStr::new(
        "/usr/lib/cloudcfg/autosign"
    )));
    assert!(!invoked_as_policy_executable(OsStr::new(
        "/usr/bin/cloudcfg"
    )));
    assert!(!invoked_as_policy_executable(OsStr::new("autosign-policy")));
    let args: Vec<OsString> = ["/usr/lib/cloudcfg/autosign", "--policy=/tmp/evil"]
        .iter()
        .map(OsString::from)
        .collect();
    assert_eq!(
        policy_executable_args(&args),
        ["cloudcfg", "autosign", "--", "--policy=/tmp/evil"]
            .iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
    );
}

#[test]
fn expected_names_are_certname_then_instance_id() {
    assert_eq!(
        expected_names("i-0abc.web1.example.org"),
        vec!["i-0abc.web1.example.org", "i-0abc"]
    );
    assert_eq!(expected_names("web1"), vec!["web1"]);
}

#[test]
fn committed_policy_schema_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/autosign-policy.schema.json"
    );
    let generated = policy_schema();
    if std::env::var_os("CLOUDCFG_UPDATE_SCHEMAS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} is out of date; regenerate it with CLOUDCFG_UPDATE_SCHEMAS=1 cargo test \
         committed_policy_schema_is_current"
    );
}
