#![allow(dead_code)] // Each test binary uses only some of these helpers.

//! End-to-end helpers: the cached Debian bookworm root under a throw-away overlay, the local
//! signed apt repository, and skipping loudly (failing under CI=true) when a test cannot run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Reports a test that cannot run here. Under CI a skip is a failure.
pub fn skip(test: &str, reason: &str) {
    let message = format!("\n*** SKIPPED {test}: {reason} ***\n");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}(CI=true: a skipped test fails the run)");
    }
    eprintln!("{message}");
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Whether the test can run: root, and every tool on PATH. Skips loudly when not.
pub fn can_run(test: &str, tools: &[&str]) -> bool {
    if !nix_is_root() {
        skip(test, "needs root (mounts, chroot, debootstrap)");
        return false;
    }
    have_tools(test, tools)
}

/// Whether every tool is on PATH (root or not). Skips loudly when not.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    skip(
        test,
        &format!(
            "missing {} (scripts/test.sh installs them)",
            missing.join(", ")
        ),
    );
    false
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One cache for every end-to-end test of a run (and of later local runs).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CLOUDCFG_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/cloudcfg-e2e"))
}

/// Fails the test with the command's output unless it succeeded.
pub fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The cached root, built on first use (debootstrap, retried by the script).
pub fn bookworm() -> PathBuf {
    suite_root("bookworm")
}

/// The cached root of `suite` (bookworm, or trixie shaped as its cloud images: deb822).
pub fn suite_root(suite: &str) -> PathBuf {
    let cache = cache_dir();
    let script = repo_dir().join("tests/e2e/bookworm-root.sh");
    check(
        "tests/e2e/bookworm-root.sh",
        Command::new(&script)
            .arg(&cache)
            .arg(suite)
            .output()
            .expect("bash runs"),
    );
    cache.join(suite)
}

/// A writable copy-on-write view of the cached root, unmounted (with anything mounted below
/// it) on drop.
pub struct Overlay {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Overlay {
    pub fn new(lower: &Path) -> Overlay {
        let dir = tempfile::Builder::new()
            .prefix("cloudcfg-e2e-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let (upper, work, root) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("root"),
        );
        for d in [&upper, &work, &root] {
            std::fs::create_dir(d).unwrap();
        }
        // The merged / takes the upper directory's mode; apt's _apt sandbox needs 0755.
        check(
            "chmod",
            Command::new("chmod")
                .arg("0755")
                .arg(&upper)
                .output()
                .unwrap(),
        );
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        check(
            "mount overlay",
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &options])
                .arg(&root)
                .output()
                .unwrap(),
        );
        Overlay { _dir: dir, root }
    }

    pub fn path(&self, target: &str) -> PathBuf {
        self.root.join(target.trim_start_matches('/'))
    }

    pub fn write(&self, target: &str, content: &str) {
        let path = self.path(target);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn read(&self, target: &str) -> String {
        std::fs::read_to_string(self.path(target))
            .unwrap_or_else(|e| panic!("reading {target} in the root: {e}"))
    }

    /// Runs a command chrooted into the root (with /proc mounted for it).
    pub fn chroot(&self, args: &[&str]) -> Output {
        let proc_dir = self.root.join("proc");
        let mounted = Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(&proc_dir)
            .status()
            .is_ok_and(|s| s.success());
        let out = Command::new("chroot")
            .arg(&self.root)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .output()
            .expect("chroot runs");
        if mounted {
            let _ = Command::new("umount").arg(&proc_dir).status();
        }
        out
    }

    /// dpkg's status of a package in the root (`install ok installed`), or empty.
    pub fn package_status(&self, package: &str) -> String {
        let out = self.chroot(&["dpkg-query", "-W", "-f=${Status}", package]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn mounts_below(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        for mount in self.mounts_below() {
            let _ = Command::new("umount").arg(&mount).status();
        }
        for mount in self.mounts_below() {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
    }
}

/// A signed local apt repository (tests/e2e/make-repo.sh), new keys each time.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub web_root: PathBuf,
    pub key: String,
    pub fingerprint: String,
    pub wrong_key: String,
    pub wrong_fingerprint: String,
}

pub fn make_repo(packages: &[&str]) -> Repo {
    make_suite_repo("bookworm", packages)
}

/// The same repository for another suite (its one `dists/SUITE`).
pub fn make_suite_repo(suite: &str, packages: &[&str]) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let script = repo_dir().join("tests/e2e/make-repo.sh");
    check(
        "tests/e2e/make-repo.sh",
        Command::new(&script)
            .arg(dir.path())
            .args(packages)
            .env("SUITE", suite)
            .output()
            .unwrap(),
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    Repo {
        web_root: dir.path().join("repo"),
        key: read("key.asc"),
        fingerprint: read("fingerprint").trim().to_owned(),
        wrong_key: read("wrong-key.asc"),
        wrong_fingerprint: read("wrong-fingerprint").trim().to_owned(),
        dir,
    }
}
