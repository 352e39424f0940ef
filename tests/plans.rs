//! Plans of single features, from user data to actions: which stage makes which host keys,
//! and when a key apt 3 refuses stops the plan (the unit tests of src/modules cannot reach
//! `config` and `plan`, which sit above them).

use cloudcfg::action::{ActionKind, Facts, PlanError, Stage};
use cloudcfg::decode::Limits;
use cloudcfg::system::SystemConfig;
use cloudcfg::{config, plan};

/// Where a HostKeys action runs and which types it makes.
type Made = (Stage, &'static str, Vec<String>);

/// Every HostKeys action, and whether sshd is reloaded after the config stage's.
fn host_key_actions(user_data: &str) -> (Vec<Made>, bool) {
    let loaded = config::load(user_data.as_bytes(), &Limits::default());
    let config = loaded.config.expect("the config loads");
    let facts = Facts {
        instance_id: Some("i-1".into()),
        hostname: Some("web1".into()),
        ..Facts::default()
    };
    let plan = plan::plan(&config, &facts, &SystemConfig::default()).unwrap();
    let keys = plan
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::HostKeys { generate, .. } => Some((a.stage, a.module, generate.clone())),
            _ => None,
        })
        .collect();
    let reload = plan.actions.iter().any(|a| {
        a.module == "ssh_host_keys_deferred"
            && matches!(&a.kind, ActionKind::ReloadService { unit } if unit == "ssh.service")
    });
    (keys, reload)
}

fn types(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn rsa_waits_for_the_config_stage_when_another_type_is_made() {
    let (keys, reload) = host_key_actions("#cloud-config\n{}\n");
    assert_eq!(
        keys,
        [
            (Stage::Init, "ssh", types(&["ecdsa", "ed25519"])),
            (Stage::Config, "ssh_host_keys_deferred", types(&["rsa"])),
        ]
    );
    assert!(reload, "sshd is reloaded to offer the RSA key");
}

#[test]
fn rsa_alone_is_made_before_sshd() {
    let (keys, reload) = host_key_actions("#cloud-config\nssh_genkeytypes: [rsa]\n");
    assert_eq!(keys, [(Stage::Init, "ssh", types(&["rsa"]))]);
    assert!(!reload);
    let (keys, _) = host_key_actions("#cloud-config\nssh_genkeytypes: [ed25519]\n");
    assert_eq!(keys, [(Stage::Init, "ssh", types(&["ed25519"]))]);
}

#[test]
fn given_keys_leave_nothing_to_make_later() {
    let (keys, reload) = host_key_actions(
        "#cloud-config\nssh_keys:\n  ed25519_public: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n",
    );
    assert_eq!(keys, [(Stage::Init, "ssh", Vec::new())]);
    assert!(!reload);
}

#[test]
fn a_key_apt_3_refuses_is_a_warning_in_general_and_an_error_for_an_apt_3_target() {
    let key = include_str!("compat/keys/weak-rsa1024.asc");
    let indented: String = key.lines().map(|l| format!("        {l}\n")).collect();
    let user_data = format!(
        "#cloud-config\napt:\n  sources:\n    old:\n      source: \"deb http://old.example.org/debian trixie main\"\n      key: |\n{indented}"
    );
    let loaded = config::load(user_data.as_bytes(), &Limits::default());
    assert!(loaded.is_valid());
    let report = loaded.report.render_text("ud");
    assert!(report.contains("apt 3 (sqv) refuses key"), "{report}");
    let config = loaded.config.unwrap();
    let plan_for = |release: &str, sqv: bool| {
        let facts = Facts {
            instance_id: Some("i-1".into()),
            release: Some(release.into()),
            apt_sqv: sqv,
            ..Facts::default()
        };
        plan::plan(&config, &facts, &SystemConfig::default())
    };
    assert!(plan_for("bookworm", false).is_ok(), "apt 2.6 takes it");
    for (release, sqv) in [("trixie", false), ("bookworm", true)] {
        match plan_for(release, sqv) {
            Err(PlanError::Unsupported { path, reason }) => {
                assert_eq!(path, "apt.sources.old.key");
                assert!(reason.contains("RSA with 1024 bits"), "{reason}");
            }
            other => panic!("{release}: {other:?}"),
        }
    }
}

/// `puppet: {attest: aws_iid}`: the datasource's signed instance identity goes into the
/// request's custom attributes (never its extension requests), beside the user's own.
#[test]
fn attest_aws_iid_puts_the_instance_identity_into_custom_attributes() {
    use base64::Engine;
    let user_data = "#cloud-config\npuppet:\n  install: false\n  attest: aws_iid\n  csr_attributes:\n    custom_attributes:\n      1.2.840.113549.1.9.7: S3cret\n";
    let loaded = config::load(user_data.as_bytes(), &Limits::default());
    assert!(loaded.is_valid(), "{}", loaded.report.render_text("ud"));
    let config = loaded.config.unwrap();
    let document = br#"{"instanceId" : "i-0abc", "accountId" : "123456789012"}"#.to_vec();
    let mut facts = Facts {
        instance_id: Some("i-0abc".into()),
        release: Some("bookworm".into()),
        instance_identity: Some((document.clone(), "MIIG\nsig==".into())),
        ..Facts::default()
    };
    let plan = plan::plan(&config, &facts, &SystemConfig::default()).unwrap();
    let (mode, text) = plan
        .actions
        .iter()
        .find_map(|a| match &a.kind {
            ActionKind::WriteFile {
                path,
                mode,
                content,
                ..
            } if path.ends_with("csr_attributes.yaml") => {
                Some((mode.clone(), content.text.clone()))
            }
            _ => None,
        })
        .expect("csr_attributes.yaml");
    assert_eq!(mode, "0600");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&document);
    assert!(
        text.starts_with("custom_attributes:\n")
            && text.contains("1.2.840.113549.1.9.7: S3cret\n")
            && text.contains(&format!(
                "  {}: {encoded}\n",
                cloudcfg::autosign::DOCUMENT_OID
            ))
            && text.contains(&format!(
                "  {}: MIIGsig==\n",
                cloudcfg::autosign::SIGNATURE_OID
            ))
            && !text.contains("extension_requests"),
        "{text}"
    );
    // Off EC2 there is no identity: said, and the request carries the rest.
    facts.instance_identity = None;
    let plan = plan::plan(&config, &facts, &SystemConfig::default()).unwrap();
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.path == "puppet.attest" && w.message.contains("no signed instance identity")),
        "{:?}",
        plan.warnings
    );
    // Only aws_iid is an attestation.
    let bad = config::load(
        b"#cloud-config\npuppet:\n  attest: tpm\n",
        &Limits::default(),
    );
    assert!(!bad.is_valid());
    assert!(bad.report.render_text("ud").contains("puppet.attest"));
}
