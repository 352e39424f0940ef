#![allow(dead_code)] // Each test binary uses only some of these helpers.

//! The Debian package, built once per source state and cached, for the packaging tests and for
//! the VM tests that install it.
//!
//! `dpkg-buildpackage -b -uc -us` runs in a scratch copy of the package's inputs
//! (`target/debian-pkg/build/cloudcfg-VERSION/`), never in the checkout, with the test build's
//! own CARGO_TARGET_DIR, so compiled dependencies are shared. The result lands in
//! `target/debian-pkg/<key>/` where the key hashes the inputs and the toolchain: a later test
//! run, or another test binary of the same run, reuses it; a file lock keeps two binaries from
//! building at once. Older keys are removed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use sha2::{Digest, Sha256};

/// What the package is built from, relative to the repository: the key hashes exactly these,
/// and only these are copied, so the build cannot use anything the key does not cover.
pub const INPUTS: &[&str] = &["Cargo.toml", "Cargo.lock", "src", "debian", "schema"];

/// Tools the build and the checks need on PATH.
pub const TOOLS: &[&str] = &[
    "dpkg-buildpackage",
    "dpkg-deb",
    "dh",
    "cargo",
    "rustc",
    "cp",
];

#[derive(Debug, Clone)]
pub struct Package {
    /// `cloudcfg_<version>_<arch>.deb`.
    pub deb: PathBuf,
    /// The `.changes` beside it (what lintian checks).
    pub changes: PathBuf,
    /// Wall seconds the build took (when it was built, possibly by an earlier run).
    pub build_seconds: f64,
    /// Whether this call found it in the cache.
    pub cached: bool,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test build's target directory (CARGO_TARGET_TMPDIR is `<target>/tmp`).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf()
}

/// Whether the package can be built here; skips loudly (a failure under CI=true) when not.
/// Root is not needed: the package says `Rules-Requires-Root: no`.
pub fn can_build(test: &str) -> bool {
    super::root::have_tools(test, TOOLS)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The cache key: every input file's path, executable bit and bytes, and the toolchain.
pub fn key() -> String {
    use std::os::unix::fs::PermissionsExt;
    let repo = repo();
    assert!(
        !repo.join("build.rs").exists(),
        "the crate has a build.rs: add it to INPUTS in tests/support/deb.rs"
    );
    let mut files = Vec::new();
    for input in INPUTS {
        let path = repo.join(input);
        if path.is_dir() {
            files_under(&path, &mut files);
        } else {
            files.push(path);
        }
    }
    let mut hash = Sha256::new();
    for file in files {
        let rel = file.strip_prefix(&repo).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0, u8::from(meta.permissions().mode() & 0o111 != 0)]);
        let bytes = std::fs::read(&file).unwrap();
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    for tool in [["rustc", "-vV"], ["cargo", "-V"]] {
        let out = Command::new(tool[0]).arg(tool[1]).output();
        hash.update(out.map(|o| o.stdout).unwrap_or_default());
    }
    hex::encode(&hash.finalize()[..12])
}

fn find(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let path = e.ok()?.path();
        let name = path.file_name()?.to_str()?;
        (name.starts_with("cloudcfg_") && name.ends_with(suffix)).then_some(path)
    })
}

fn cached(dir: &Path) -> Option<Package> {
    let deb = find(dir, ".deb")?;
    let changes = find(dir, ".changes")?;
    let build_seconds = std::fs::read_to_string(dir.join("build-seconds"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Package {
        deb,
        changes,
        build_seconds,
        cached: true,
    })
}

fn run(what: &str, cmd: &mut Command, log: &Path) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    std::fs::write(log, &text).map_err(|e| format!("{}: {e}", log.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&text);
    let tail: Vec<&str> = text.lines().rev().take(60).collect();
    Err(format!(
        "{what} failed ({}); full log {}\n--- last lines\n{}",
        out.status,
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

fn build(root: &Path, key: &str) -> Result<Package, String> {
    let out_dir = root.join(key);
    let scratch = root.join("build");
    let _ = std::fs::remove_dir_all(&scratch);
    let src = scratch.join(format!("cloudcfg-{}", env!("CARGO_PKG_VERSION")));
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    // cp -a keeps modification times, so cargo recompiles only what changed since the last
    // package build in this (stable) scratch path.
    let mut cp = Command::new("cp");
    cp.arg("-a").args(INPUTS).arg(&src).current_dir(repo());
    run("cp -a", &mut cp, &scratch.join("cp.log"))?;

    let started = Instant::now();
    let mut dpkg = Command::new("dpkg-buildpackage");
    dpkg.args(["-b", "-uc", "-us"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", target_dir());
    // Not the variables `cargo test` sets for this test process (CARGO_PKG_NAME, ...): some
    // build scripts (ring's) track them, and they would make this build's dependencies differ
    // from a dpkg-buildpackage run from a shell, and rebuild them.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR")
            || name == "CARGO"
            || name == "OUT_DIR"
        {
            dpkg.env_remove(name.as_ref());
        }
    }
    let log = scratch.join("dpkg-buildpackage.log");
    run("dpkg-buildpackage -b -uc -us", &mut dpkg, &log)?;
    let seconds = started.elapsed().as_secs_f64();

    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&scratch).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && name.starts_with("cloudcfg") {
            std::fs::rename(&path, out_dir.join(&name)).map_err(|e| e.to_string())?;
        }
    }
    let _ = std::fs::copy(&log, out_dir.join("dpkg-buildpackage.log"));
    std::fs::write(out_dir.join("build-seconds"), format!("{seconds:.1}\n"))
        .map_err(|e| e.to_string())?;
    // Keep one package: older keys are stale.
    for entry in std::fs::read_dir(root)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && name != key && name != "build" {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let mut package = cached(&out_dir).ok_or("dpkg-buildpackage wrote no cloudcfg_*.deb")?;
    package.cached = false;
    Ok(package)
}

fn build_or_reuse() -> Result<Package, String> {
    let root = target_dir().join("debian-pkg");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let lock = std::fs::File::create(root.join("lock")).map_err(|e| e.to_string())?;
    // Held until this function returns: another test binary waits, then finds the package.
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {}: {e}", root.display()))
        .and_then(|_guard| {
            let key = key();
            match cached(&root.join(&key)) {
                Some(package) => Ok(package),
                None => build(&root, &key),
            }
        })
}

/// The package for the current sources: from the cache, or built now (once per test binary,
/// whatever the number of tests asking). Panics with the build's log when the build fails.
pub fn package() -> Package {
    static BUILT: OnceLock<Result<Package, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let result = build_or_reuse();
        if let Ok(p) = &result {
            eprintln!(
                "packaging: {} {} ({:.1} s to build)",
                p.deb.display(),
                if p.cached {
                    "from the cache"
                } else {
                    "built now"
                },
                p.build_seconds
            );
        }
        result
    });
    match result {
        Ok(package) => package.clone(),
        Err(e) => panic!("building the Debian package: {e}"),
    }
}
