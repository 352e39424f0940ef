//! Facts read from the target (the host, or an image root with `--root`), for flags not given.

use std::path::{Path, PathBuf};

use crate::action::Facts;
use crate::values;

/// Facts given on the command line; any left out are read from the target.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FactArgs {
    /// Instance id (default: `iid-` + the target's /etc/machine-id).
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// Short host name (default: the target's /etc/hostname).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Fully qualified domain name (default: the host name).
    #[arg(long, value_name = "FQDN")]
    pub fqdn: Option<String>,
    /// Release codename, e.g. bookworm (default: VERSION_CODENAME of the target's os-release).
    #[arg(long, value_name = "CODENAME")]
    pub release: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("--instance-id {id:?}: {reason}")]
    BadInstanceId { id: String, reason: String },
    #[error("--{flag} {value:?}: {reason}")]
    BadValue {
        flag: &'static str,
        value: String,
        reason: String,
    },
}

/// `path` inside `root` (`/` when there is none).
pub fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

fn os_release_codename(root: &Path) -> Option<String> {
    for candidate in ["etc/os-release", "usr/lib/os-release"] {
        if let Ok(text) = std::fs::read_to_string(root.join(candidate)) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("VERSION_CODENAME=") {
                    let v = v.trim().trim_matches('"').to_owned();
                    if !v.is_empty() {
                        return Some(v);
                    }
                }
            }
        }
    }
    None
}

/// dpkg's name for the architecture cloudcfg was built for (the target's, as it runs there).
pub fn dpkg_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Checks an instance id that will become a path component.
pub fn check_instance_id(id: &str) -> Result<(), FactsError> {
    values::plain_file_name(id).map_err(|reason| FactsError::BadInstanceId {
        id: id.to_owned(),
        reason,
    })
}

/// Fills the facts not given from the target under `root`.
pub fn resolve(args: &FactArgs, root: &Path) -> Result<Facts, FactsError> {
    let hostname = args
        .hostname
        .clone()
        .or_else(|| read_trimmed(&root.join("etc/hostname")));
    let fqdn = args.fqdn.clone().or_else(|| hostname.clone());
    let instance_id = args
        .instance_id
        .clone()
        .or_else(|| read_trimmed(&root.join("etc/machine-id")).map(|id| format!("iid-{id}")));
    if let Some(id) = &instance_id {
        check_instance_id(id)?;
    }
    for (flag, value) in [("hostname", &hostname), ("fqdn", &fqdn)] {
        if let Some(v) = value {
            values::single_line(v).map_err(|reason| FactsError::BadValue {
                flag,
                value: v.clone(),
                reason,
            })?;
        }
    }
    // The root's apt layout describes the target only when the target's release is the root's
    // own: `--release` names another system (plan for an image not at hand).
    let layout_from_root = args.release.is_none();
    let release = args.release.clone().or_else(|| os_release_codename(root));
    if let Some(r) = &release {
        values::plain_file_name(r).map_err(|reason| FactsError::BadValue {
            flag: "release",
            value: r.clone(),
            reason,
        })?;
    }
    Ok(Facts {
        instance_id,
        hostname,
        fqdn,
        release,
        arch: dpkg_arch().to_owned(),
        image_scripts: image_scripts(root),
        public_keys: Vec::new(),
        deb822_sources: layout_from_root
            && ["debian.sources", "ubuntu.sources"]
                .iter()
                .any(|f| root.join("etc/apt/sources.list.d").join(f).is_file()),
        debian_mirror_lists: layout_from_root
            && ["debian.list", "debian-security.list"]
                .iter()
                .all(|f| root.join("etc/apt/mirrors").join(f).is_file()),
        apt_sqv: layout_from_root && root.join("usr/bin/sqv").is_file(),
        instance_identity: None,
    })
}

/// The executables in cloud-init's script directories of the root (run-parts takes regular
/// files with an execute bit; others are ignored, as cloud-init ignores them).
fn image_scripts(root: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = std::collections::BTreeMap::new();
    for dir in ["per-boot", "per-instance", "per-once"] {
        let path = in_root(root, &format!("{}/{dir}", crate::action::IMAGE_SCRIPTS_DIR));
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                std::fs::symlink_metadata(e.path())
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| values::plain_file_name(name).is_ok())
            .collect();
        names.sort();
        if !names.is_empty() {
            found.insert(dir.to_owned(), names);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "web1\n").unwrap();
        std::fs::write(dir.path().join("etc/machine-id"), "abc123\n").unwrap();
        std::fs::write(
            dir.path().join("etc/os-release"),
            "ID=debian\nVERSION_CODENAME=bookworm\n",
        )
        .unwrap();
        let facts = resolve(&FactArgs::default(), dir.path()).unwrap();
        assert_eq!(facts.hostname.as_deref(), Some("web1"));
        assert_eq!(facts.fqdn.as_deref(), Some("web1"));
        assert_eq!(facts.instance_id.as_deref(), Some("iid-abc123"));
        assert_eq!(facts.release.as_deref(), Some("bookworm"));
    }

    #[test]
    fn an_empty_machine_id_gives_no_instance_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/machine-id"), "").unwrap();
        let facts = resolve(&FactArgs::default(), dir.path()).unwrap();
        assert_eq!(facts.instance_id, None);
    }

    #[test]
    fn instance_ids_must_be_file_names() {
        let args = FactArgs {
            instance_id: Some("../../etc".into()),
            ..FactArgs::default()
        };
        assert!(resolve(&args, Path::new("/nonexistent")).is_err());
    }
}
