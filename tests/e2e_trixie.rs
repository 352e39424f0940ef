//! `cloudcfg apply --root` on a debootstrapped Debian 13 root shaped as trixie's cloud images
//! (deb822 `debian.sources` naming `/etc/apt/mirrors/*.list`, no sources.list; apt 3 with sqv),
//! against signed repositories on 127.0.0.1 and a `key_url` on a local HTTPS server whose CA
//! the root trusts (issue 16). Without root or the tools, the tests skip loudly; under CI=true
//! a skip fails.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::http::{self, Server};
use support::https::HttpsServer;
use support::root::{self, Overlay, Repo};

const TOOLS: &[&str] = &[
    "debootstrap",
    "gpg",
    "dpkg-scanpackages",
    "chroot",
    "mount",
    "flock",
    "openssl",
    "python3",
];
const SUITE: &str = "trixie";

struct Env {
    overlay: Overlay,
    /// The mirror that replaces the image's archive.
    mirror: Repo,
    mirror_server: Server,
    /// A third-party repository whose key comes from `key_url`.
    extra: Repo,
    extra_server: Server,
    keys: HttpsServer,
    scratch: tempfile::TempDir,
}

/// `served_key`: what the HTTPS server hands out as the extra repository's key.
fn setup(test: &str, serve_wrong_key: bool) -> Option<Env> {
    if !root::can_run(test, TOOLS) {
        return None;
    }
    let overlay = Overlay::new(&root::suite_root(SUITE));
    let mirror = root::make_suite_repo(SUITE, &["cloudcfg-e2e-hello"]);
    let extra = root::make_suite_repo(SUITE, &["cloudcfg-e2e-extra"]);
    let mirror_server = http::serve(http::static_files(mirror.web_root.clone()));
    let extra_server = http::serve(http::static_files(extra.web_root.clone()));
    let served = if serve_wrong_key {
        &extra.wrong_key
    } else {
        &extra.key
    };
    let keys = HttpsServer::start(&[("extra.asc", served.as_bytes())]);
    // The root trusts the test's CA, as an image that ships its company's CA would.
    let bundle = overlay.path("/etc/ssl/certs/ca-certificates.crt");
    let mut pem = std::fs::read(&bundle).unwrap_or_default();
    pem.extend_from_slice(&keys.ca_pem);
    std::fs::write(&bundle, pem).unwrap();
    Some(Env {
        overlay,
        mirror,
        mirror_server,
        extra,
        extra_server,
        keys,
        scratch: tempfile::tempdir().unwrap(),
    })
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}

impl Env {
    fn user_data(&self) -> String {
        format!(
            r#"#cloud-config
apt:
  primary:
    - arches: [default]
      uri: "{mirror}/debian"
      key: |
{mirror_key}  security:
    - arches: [default]
      uri: "{mirror}/debian"
  sources_list: |
    Types: deb
    URIs: $MIRROR
    Suites: $RELEASE
    Components: main
  sources:
    extra:
      source: "deb {extra}/debian $RELEASE main"
      keyid: "{extra_fpr}"
      key_url: "{key_url}"
packages: [cloudcfg-e2e-hello, cloudcfg-e2e-extra]
"#,
            mirror = self.mirror_server.url(),
            mirror_key = indent(&self.mirror.key, 8),
            extra = self.extra_server.url(),
            extra_fpr = self.extra.fingerprint,
            key_url = self.keys.url("extra.asc"),
        )
    }

    fn apply(&self, user_data: &str) -> Output {
        let ud = self.scratch.path().join("user-data.yaml");
        std::fs::write(&ud, user_data).unwrap();
        let sys = self.scratch.path().join("cloudcfg.yaml");
        std::fs::write(&sys, "dpkg_lock_timeout_secs: 60\napt_update_attempts: 2\n").unwrap();
        let run = self.scratch.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
            .arg("--config")
            .arg(&sys)
            .args(["apply", "--instance-id", "i-trixie", "--user-data"])
            .arg(&ud)
            .arg("--root")
            .arg(&self.overlay.root)
            .env("CLOUDCFG_RUNTIME_DIR", &run)
            .output()
            .expect("cloudcfg runs");
        eprintln!(
            "apply -> {:?}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.overlay.path(path)).ok()
    }

    /// Every file under the root's /etc/apt, with its content, for "unchanged" checks.
    fn apt_tree(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.overlay.path("/etc/apt")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
                }
            }
        }
        out.sort();
        out
    }
}

/// The lines of `apt-get update` that are warnings, errors or notices.
fn apt_complaints(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| l.starts_with("W:") || l.starts_with("E:") || l.starts_with("N:"))
        .collect()
}

#[test]
fn trixie_sources_are_deb822_the_mirror_replaces_the_image_archive_and_apt_warns_nothing() {
    let Some(env) = setup(
        "e2e_trixie::trixie_sources_are_deb822_the_mirror_replaces_the_image_archive_and_apt_warns_nothing",
        false,
    ) else {
        return;
    };
    assert!(
        env.overlay.path("/usr/bin/sqv").exists(),
        "the trixie root verifies with sqv (apt 3)"
    );
    let out = env.apply(&env.user_data());
    assert!(out.status.success(), "apply succeeds");

    // The image's archive is replaced in place, not configured a second time.
    let debian = env
        .read("/etc/apt/sources.list.d/debian.sources")
        .expect("debian.sources kept");
    let mirror = format!("{}/debian", env.mirror_server.url());
    assert!(debian.contains(&format!("URIs: {mirror}\n")), "{debian}");
    assert!(
        debian.contains("Signed-By: /etc/apt/keyrings/primary.asc\n"),
        "{debian}"
    );
    assert!(
        !debian.contains("mirror+file"),
        "the old mirror is gone:\n{debian}"
    );
    let list = env.read("/etc/apt/sources.list").unwrap_or_default();
    assert!(
        list.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "sources.list names no archive:\n{list}"
    );
    // The key_url source: a deb822 file, its key in its own keyring, the fingerprint asked for.
    let extra = env
        .read("/etc/apt/sources.list.d/extra.sources")
        .expect("extra.sources written");
    assert!(
        extra.contains("Signed-By: /etc/apt/keyrings/extra.asc\n"),
        "{extra}"
    );
    assert!(
        !env.overlay
            .path("/etc/apt/sources.list.d/extra.list")
            .exists(),
        "no one-line file beside it"
    );
    let keyring = env.read("/etc/apt/keyrings/extra.asc").expect("keyring");
    assert_eq!(
        cloudcfg::values::armored_key_fingerprints(&keyring).unwrap(),
        vec![env.extra.fingerprint.clone()]
    );
    // apt 3 verified both repositories: their packages are installed.
    for package in ["cloudcfg-e2e-hello", "cloudcfg-e2e-extra"] {
        assert!(
            env.overlay
                .package_status(package)
                .contains("install ok installed"),
            "{package} installed"
        );
    }

    // A second update: no warning of any kind, and only the configured mirrors are asked.
    let update = root::check("apt-get update", env.overlay.chroot(&["apt-get", "update"]));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&update.stdout),
        String::from_utf8_lossy(&update.stderr)
    );
    assert_eq!(apt_complaints(&text), Vec::<&str>::new(), "{text}");
    let fetched: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Hit:") || l.starts_with("Get:") || l.starts_with("Ign:"))
        .collect();
    assert!(!fetched.is_empty(), "{text}");
    for line in &fetched {
        assert!(
            line.contains(&env.mirror_server.url()) || line.contains(&env.extra_server.url()),
            "only the configured mirrors: {line}"
        );
    }
    assert!(
        env.mirror_server.requests().len() + env.extra_server.requests().len() > 0,
        "the servers were asked"
    );
}

#[test]
fn a_key_url_whose_key_has_another_fingerprint_leaves_apt_as_it_was() {
    let Some(env) = setup(
        "e2e_trixie::a_key_url_whose_key_has_another_fingerprint_leaves_apt_as_it_was",
        true,
    ) else {
        return;
    };
    let before = env.apt_tree();
    let out = env.apply(&env.user_data());
    assert!(!out.status.success(), "apply fails");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&env.extra.wrong_fingerprint) || stderr.contains("fingerprint"),
        "the error names the fingerprint: {stderr}"
    );
    assert_eq!(env.apt_tree(), before, "nothing under /etc/apt changed");
    assert!(
        !env.overlay
            .package_status("cloudcfg-e2e-hello")
            .contains("install ok installed")
    );
}

#[test]
fn a_proxy_that_cannot_be_reached_fails_the_key_fetch_by_name_and_leaves_apt_as_it_was() {
    let Some(env) = setup(
        "e2e_trixie::a_proxy_that_cannot_be_reached_fails_the_key_fetch_by_name_and_leaves_apt_as_it_was",
        false,
    ) else {
        return;
    };
    let before = env.apt_tree();
    let user_data = env.user_data().replace(
        "apt:\n",
        "apt:\n  proxy: \"http://fetcher:s3cret@127.0.0.1:9/\"\n",
    );
    let out = env.apply(&user_data);
    assert!(!out.status.success(), "apply fails");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("apt_configure: failed (fetching ")
            && said.contains("through proxy http://<credentials>@127.0.0.1:9/"),
        "the error names the proxy: {said}"
    );
    assert!(!said.contains("s3cret"), "{said}");
    assert_eq!(env.apt_tree(), before, "nothing under /etc/apt changed");
    assert!(env.extra_server.requests().is_empty() && env.mirror_server.requests().is_empty());
}
