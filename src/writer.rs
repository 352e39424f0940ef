//! The one place files are written: atomically (a temporary file in the same directory, its
//! mode set before any byte is written, fsync, rename, fsync of the directory), so a crash
//! leaves either the old file or the new one, never half of one, and a secret is never
//! readable by others, not even for a moment. A file whose content, mode and owner already
//! match is left alone: no rewrite, no new mtime.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {action}: {source}")]
    Io {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: resolves outside the target root {root} (through a symbolic link)")]
    Escapes { path: String, root: String },
    #[error("{path}: not an absolute, normalised path")]
    BadPath { path: String },
}

/// Whether a write changed the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
}

/// Where files go: `/`, or an image root.
#[derive(Debug, Clone)]
pub struct Writer {
    root: PathBuf,
}

/// Files written in a batch and not yet on disk: their directories, and the file system to
/// sync. A batch trades one fsync per file for one `syncfs` when it ends; until then a crash
/// may leave a written file empty, so the caller ends the batch before it records the work as
/// done (a module's marker), and a rerun rewrites whatever did not reach the disk.
#[derive(Debug, Default)]
pub struct SyncBatch(std::collections::BTreeSet<PathBuf>);

impl SyncBatch {
    /// Puts everything written in the batch on disk.
    pub fn finish(&mut self) -> Result<(), WriteError> {
        let mut synced = std::collections::BTreeSet::new();
        for dir in std::mem::take(&mut self.0) {
            let handle = File::open(&dir).map_err(io(&dir, "opening for syncfs"))?;
            let device = handle.metadata().map_err(io(&dir, "stat"))?.dev();
            if !synced.insert(device) {
                continue;
            }
            // SAFETY: syncfs only reads the descriptor, which `handle` keeps open.
            if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&handle)) } != 0 {
                return Err(io(&dir, "syncfs")(std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        path: path.display().to_string(),
        action,
        source,
    }
}

impl Writer {
    pub fn new(root: impl Into<PathBuf>) -> Writer {
        Writer { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of a target path, refusing anything that is not absolute and normalised.
    pub fn host_path(&self, target: &str) -> Result<PathBuf, WriteError> {
        let path = Path::new(target);
        let normal = path.is_absolute()
            && path
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)));
        if !normal {
            return Err(WriteError::BadPath {
                path: target.to_owned(),
            });
        }
        Ok(self.root.join(target.trim_start_matches('/')))
    }

    /// Creates the parents of `host` (0755), refusing a parent that leaves the root through a
    /// symbolic link (an image whose /etc/apt points at the build host's).
    fn prepare_parent(&self, target: &str, host: &Path) -> Result<PathBuf, WriteError> {
        let parent = host.parent().unwrap_or(&self.root).to_path_buf();
        if self.root != Path::new("/") {
            // Check the deepest existing ancestor before creating anything below it.
            let mut existing = parent.as_path();
            while !existing.exists() {
                existing = existing.parent().unwrap_or(&self.root);
            }
            let real_root = fs::canonicalize(&self.root).map_err(io(&self.root, "resolving"))?;
            let real = fs::canonicalize(existing).map_err(io(existing, "resolving"))?;
            if !real.starts_with(&real_root) {
                return Err(WriteError::Escapes {
                    path: target.to_owned(),
                    root: self.root.display().to_string(),
                });
            }
        }
        if !parent.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&parent)
                .map_err(io(&parent, "creating directory"))?;
        }
        Ok(parent)
    }

    /// Writes `content` to target path `target` with `mode`, owned by `uid:gid`.
    pub fn write(
        &self,
        target: &str,
        content: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Outcome, WriteError> {
        self.write_with(target, content, mode, uid, gid, None)
    }

    /// As [`Writer::write`], atomic for readers, but the file reaches the disk when `batch`
    /// ends: a module writing a thousand files pays one sync, not two thousand.
    pub fn write_in_batch(
        &self,
        target: &str,
        content: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        batch: &mut SyncBatch,
    ) -> Result<Outcome, WriteError> {
        self.write_with(target, content, mode, uid, gid, Some(batch))
    }

    fn write_with(
        &self,
        target: &str,
        content: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        batch: Option<&mut SyncBatch>,
    ) -> Result<Outcome, WriteError> {
        let host = self.host_path(target)?;
        let parent = self.prepare_parent(target, &host)?;
        if let Ok(meta) = fs::symlink_metadata(&host) {
            let same = meta.is_file()
                && meta.mode() & 0o7777 == mode
                && meta.uid() == uid
                && meta.gid() == gid
                && meta.len() == content.len() as u64
                && fs::read(&host).is_ok_and(|old| old == content);
            if same {
                return Ok(Outcome::Unchanged);
            }
        }
        let name = host
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = parent.join(format!(
            ".{name}.cloudcfg-{}-{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(io(&temp, "creating"))?;
            // Mode and owner first: the content may be a secret.
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io(&temp, "chown"))?;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io(&temp, "chmod"))?;
            file.write_all(content).map_err(io(&temp, "writing"))?;
            if batch.is_none() {
                file.sync_all().map_err(io(&temp, "fsync"))?;
            }
            fs::rename(&temp, &host).map_err(io(&host, "renaming into place"))?;
            match batch {
                Some(batch) => {
                    batch.0.insert(parent.clone());
                    Ok(())
                }
                None => File::open(&parent)
                    .and_then(|d| d.sync_all())
                    .map_err(io(&parent, "fsync of directory")),
            }
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map(|()| Outcome::Written)
    }

    /// Reads a target file, `None` when it does not exist.
    pub fn read(&self, target: &str) -> Result<Option<Vec<u8>>, WriteError> {
        let host = self.host_path(target)?;
        match fs::read(&host) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&host, "reading")(e)),
        }
    }

    /// Mode, uid and gid of a target file, if it exists.
    pub fn metadata(&self, target: &str) -> Result<Option<(u32, u32, u32)>, WriteError> {
        let host = self.host_path(target)?;
        match fs::metadata(&host) {
            Ok(m) => Ok(Some((m.mode() & 0o7777, m.uid(), m.gid()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&host, "reading")(e)),
        }
    }

    /// Creates a directory (and parents) with `mode`; an existing one gets `mode` too.
    pub fn dir(&self, target: &str, mode: u32) -> Result<PathBuf, WriteError> {
        let host = self.host_path(target)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&host)
            .map_err(io(&host, "creating directory"))?;
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).map_err(io(&host, "chmod"))?;
        Ok(host)
    }

    /// Gives a target file or directory to `uid:gid`.
    pub fn chown(&self, target: &str, uid: u32, gid: u32) -> Result<(), WriteError> {
        let host = self.host_path(target)?;
        std::os::unix::fs::lchown(&host, Some(uid), Some(gid)).map_err(io(&host, "chown"))
    }

    /// Removes a target file, link or directory tree if it exists (links are removed, never
    /// followed).
    pub fn remove_tree(&self, target: &str) -> Result<bool, WriteError> {
        let host = self.host_path(target)?;
        let result = match fs::symlink_metadata(&host) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&host),
            Ok(_) => fs::remove_file(&host),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&host, "removing")(e)),
        }
    }

    /// Removes a target file if it exists.
    pub fn remove(&self, target: &str) -> Result<bool, WriteError> {
        let host = self.host_path(target)?;
        match fs::remove_file(&host) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&host, "removing")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid_gid() -> (u32, u32) {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }

    #[test]
    fn writes_with_mode_and_parents() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::new(dir.path());
        let (u, g) = uid_gid();
        assert_eq!(
            w.write("/etc/a/b/secret", b"x", 0o600, u, g).unwrap(),
            Outcome::Written
        );
        let meta = fs::metadata(dir.path().join("etc/a/b/secret")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(fs::read(dir.path().join("etc/a/b/secret")).unwrap(), b"x");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path().join("etc/a/b")).unwrap().count(), 1);
    }

    #[test]
    fn same_content_and_mode_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::new(dir.path());
        let (u, g) = uid_gid();
        w.write("/f", b"same", 0o644, u, g).unwrap();
        let before = fs::metadata(dir.path().join("f")).unwrap();
        assert_eq!(
            w.write("/f", b"same", 0o644, u, g).unwrap(),
            Outcome::Unchanged
        );
        let after = fs::metadata(dir.path().join("f")).unwrap();
        assert_eq!(before.ino(), after.ino());
        assert_eq!(before.mtime_nsec(), after.mtime_nsec());
        // A mode change is a change.
        assert_eq!(
            w.write("/f", b"same", 0o600, u, g).unwrap(),
            Outcome::Written
        );
    }

    #[test]
    fn refuses_paths_that_are_not_normalised() {
        let w = Writer::new("/tmp");
        assert!(matches!(
            w.host_path("etc/x"),
            Err(WriteError::BadPath { .. })
        ));
        assert!(matches!(
            w.host_path("/etc/../x"),
            Err(WriteError::BadPath { .. })
        ));
    }

    #[test]
    fn refuses_a_symlink_out_of_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("etc")).unwrap();
        let w = Writer::new(root.path());
        let (u, g) = uid_gid();
        let err = w.write("/etc/passwd", b"x", 0o644, u, g).unwrap_err();
        assert!(matches!(err, WriteError::Escapes { .. }), "{err}");
        assert!(!outside.path().join("passwd").exists());
        let err = w
            .write("/etc/apt/sources.list.d/x.list", b"x", 0o644, u, g)
            .unwrap_err();
        assert!(matches!(err, WriteError::Escapes { .. }), "{err}");
        assert!(
            !outside.path().join("apt").exists(),
            "no directory was made outside"
        );
    }
}
