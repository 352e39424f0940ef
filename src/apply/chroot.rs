//! What commands need to run inside an image root (`apply --root DIR`): /proc, /sys and /dev
//! mounted, and a policy-rc.d that stops maintainer scripts from starting services. Made only
//! when the first command runs, so a plan of files alone applies to any directory; undone on
//! drop, also when a module failed (an existing policy-rc.d is kept aside and restored).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

pub const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
const POLICY_RC_D_SAVED: &str = "usr/sbin/policy-rc.d.cloudcfg-saved";
/// Exit 101: "action forbidden by policy", which invoke-rc.d and deb-systemd-invoke honour.
const POLICY_SCRIPT: &str = "#!/bin/sh\n# Written by cloudcfg while it runs commands in this image; removed afterwards.\nexit 101\n";

#[derive(Debug, thiserror::Error)]
pub enum ChrootError {
    #[error("mounting {what} on {path}: {source}")]
    Mount {
        what: &'static str,
        path: String,
        source: nix::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{root} does not look like a root filesystem (no /usr/bin or /bin)")]
    NotARoot { root: String },
}

/// Mounts and the policy-rc.d guard of one image root, undone on drop.
#[derive(Debug)]
pub struct ChrootGuard {
    root: PathBuf,
    mounted: Vec<PathBuf>,
    saved_policy: bool,
    wrote_policy: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChrootError + '_ {
    move |source| ChrootError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl ChrootGuard {
    pub fn enter(root: &Path) -> Result<ChrootGuard, ChrootError> {
        if !root.join("usr/bin").is_dir() && !root.join("bin").is_dir() {
            return Err(ChrootError::NotARoot {
                root: root.display().to_string(),
            });
        }
        let mut guard = ChrootGuard {
            root: root.to_path_buf(),
            mounted: Vec::new(),
            saved_policy: false,
            wrote_policy: false,
        };
        guard.install_policy()?;
        guard.mount("proc", "proc", Some("proc"), MsFlags::empty())?;
        guard.mount("sys", "sysfs", Some("sysfs"), MsFlags::MS_RDONLY)?;
        guard.mount("dev", "/dev", None, MsFlags::MS_BIND | MsFlags::MS_REC)?;
        Ok(guard)
    }

    fn mount(
        &mut self,
        dir: &str,
        source: &'static str,
        fstype: Option<&'static str>,
        flags: MsFlags,
    ) -> Result<(), ChrootError> {
        let target = self.root.join(dir);
        fs::create_dir_all(&target).map_err(io(&target))?;
        // A run killed earlier left this mounted: take it over, so it is undone this time.
        if is_mount_point(&target) {
            self.mounted.push(target);
            return Ok(());
        }
        mount(Some(source), &target, fstype, flags, None::<&str>).map_err(|source_err| {
            ChrootError::Mount {
                what: source,
                path: target.display().to_string(),
                source: source_err,
            }
        })?;
        self.mounted.push(target);
        Ok(())
    }

    fn install_policy(&mut self) -> Result<(), ChrootError> {
        let policy = self.root.join(POLICY_RC_D);
        let saved = self.root.join(POLICY_RC_D_SAVED);
        if let Some(dir) = policy.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // A saved copy left by a killed run is the true original: keep it. A policy-rc.d that
        // is our own guard, left by a killed run, is not the image's and is not saved.
        let ours = fs::read_to_string(&policy).is_ok_and(|text| text == POLICY_SCRIPT);
        if saved.exists() {
            self.saved_policy = true;
        } else if policy.exists() && !ours {
            fs::rename(&policy, &saved).map_err(io(&policy))?;
            self.saved_policy = true;
        }
        fs::write(&policy, POLICY_SCRIPT).map_err(io(&policy))?;
        fs::set_permissions(&policy, fs::Permissions::from_mode(0o755)).map_err(io(&policy))?;
        self.wrote_policy = true;
        Ok(())
    }
}

/// Undoes what a killed run left in `root` (its policy-rc.d, the saved original, the mounts),
/// even when this run has no command to run: taking the leftovers over and dropping them is
/// what a finished run would have done.
pub fn undo_leftovers(root: &Path) -> Result<(), ChrootError> {
    let ours = fs::read_to_string(root.join(POLICY_RC_D)).is_ok_and(|t| t == POLICY_SCRIPT);
    let mounted = ["proc", "sys", "dev"]
        .iter()
        .any(|d| is_mount_point(&root.join(d)));
    if ours || root.join(POLICY_RC_D_SAVED).exists() || mounted {
        drop(ChrootGuard::enter(root)?);
    }
    Ok(())
}

/// Whether `path` is a mount point (per /proc/self/mountinfo).
fn is_mount_point(path: &Path) -> bool {
    let Ok(real) = fs::canonicalize(path) else {
        return false;
    };
    let real = real.display().to_string();
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .any(|l| l.split_whitespace().nth(4) == Some(real.as_str()))
    })
}

/// Mount points at or below `dir`, deepest first (a recursive bind of /dev brings /dev/pts,
/// /dev/shm, /dev/mqueue, which must go before /dev itself).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.display().to_string();
    let mut found: Vec<PathBuf> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(PathBuf::from)
        .collect();
    // Stacked mounts (the host's /dev/pts can be mounted twice) appear once each.
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found
}

impl Drop for ChrootGuard {
    fn drop(&mut self) {
        for target in self.mounted.iter().rev() {
            let real = fs::canonicalize(target).unwrap_or_else(|_| target.clone());
            let mut remaining = mounts_under(&real);
            // Each pass unmounts the deepest layer; stop when a pass makes no progress.
            while !remaining.is_empty() {
                for mount_point in &remaining {
                    let _ = umount2(mount_point, MntFlags::empty());
                }
                let left = mounts_under(&real);
                if left.len() >= remaining.len() {
                    // Lazy only as a last resort: a process still holding /dev must not keep
                    // the image busy.
                    for mount_point in &left {
                        log::warn!("{} is busy: detaching it lazily", mount_point.display());
                        let _ = umount2(mount_point, MntFlags::MNT_DETACH);
                    }
                    break;
                }
                remaining = left;
            }
        }
        if self.wrote_policy {
            let policy = self.root.join(POLICY_RC_D);
            let saved = self.root.join(POLICY_RC_D_SAVED);
            let restored = if self.saved_policy {
                fs::rename(&saved, &policy)
            } else {
                fs::remove_file(&policy)
            };
            if let Err(e) = restored {
                log::warn!("restoring {}: {e}", policy.display());
            }
        }
    }
}
