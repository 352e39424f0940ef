//! What a run reports (contract.md, "Report files"): /run/cloudcfg/status.json and
//! result.json, and, where cloud-init is not installed, cloud-init's own status files and
//! boot-finished marker, so tooling written for cloud-init (`cloud-init status --wait`
//! clients, image builders) works unchanged.

pub mod status;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::writer::Writer;

/// Where runtime reports go: `/run`, or `$CLOUDCFG_RUNTIME_DIR` (tests and sandboxes, which
/// must not share the host's).
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("CLOUDCFG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run"))
}

/// The file whose presence keeps cloudcfg.service from running (the unit's
/// `ConditionPathExists=!`), for images that must not configure themselves.
pub const DISABLE_FILE: &str = "/etc/cloudcfg/cloudcfg.disabled";

/// The kernel command-line word that keeps cloudcfg.service from running (the unit's
/// `ConditionKernelCommandLine=!`), like cloud-init's `cloud-init=disabled`.
pub const DISABLE_KERNEL_ARG: &str = "cloudcfg=disabled";

/// Why cloudcfg.service does not run this boot, checked as the unit's conditions check it: the
/// kernel command line `cmdline` (the text of /proc/cmdline) has the word `cloudcfg=disabled`,
/// or `disable_file` exists.
pub fn disabled_reason(cmdline: &str, disable_file: &Path) -> Option<String> {
    if cmdline
        .split_whitespace()
        .any(|word| word.trim_matches('"') == DISABLE_KERNEL_ARG)
    {
        return Some(format!("the kernel command line has {DISABLE_KERNEL_ARG}"));
    }
    if disable_file.exists() {
        return Some(format!("{} exists", disable_file.display()));
    }
    None
}

/// This system's [`disabled_reason`].
pub fn disabled_here() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    disabled_reason(&cmdline, Path::new(DISABLE_FILE))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Done,
    Degraded,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleState {
    Pending,
    Running,
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleReport {
    pub name: String,
    pub status: ModuleState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `/run/cloudcfg/status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub status: RunStatus,
    pub datasource: String,
    pub instance_id: Option<String>,
    pub started: String,
    pub finished: Option<String>,
    pub modules: Vec<ModuleReport>,
    pub errors: Vec<String>,
    pub recoverable_errors: Vec<String>,
}

pub fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now() -> String {
    timestamp(std::time::SystemTime::now())
}

fn epoch_seconds(stamp: &str) -> Option<f64> {
    humantime::parse_rfc3339(stamp)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// cloud-init's class name for a datasource, as `result.json` names it.
pub fn cloud_init_datasource(name: &str) -> String {
    match name {
        "ec2" => "DataSourceEc2".into(),
        "nocloud" => "DataSourceNoCloud".into(),
        other => format!("DataSource{other}"),
    }
}

impl Status {
    pub fn new(datasource: &str, instance_id: Option<&str>, modules: &[&str]) -> Status {
        Status {
            status: RunStatus::Running,
            datasource: datasource.to_owned(),
            instance_id: instance_id.map(str::to_owned),
            started: now(),
            finished: None,
            modules: modules
                .iter()
                .map(|m| ModuleReport {
                    name: (*m).to_owned(),
                    status: ModuleState::Pending,
                    started: None,
                    finished: None,
                    error: None,
                    reason: None,
                })
                .collect(),
            errors: Vec::new(),
            recoverable_errors: Vec::new(),
        }
    }

    /// A run that could not start any module (no datasource, invalid user data, I/O).
    pub fn critical(datasource: &str, instance_id: Option<&str>, error: String) -> Status {
        let mut status = Status::new(datasource, instance_id, &[]);
        status.status = RunStatus::Error;
        status.finished = Some(now());
        status.errors.push(error);
        status
    }

    pub fn module_mut(&mut self, name: &str) -> Option<&mut ModuleReport> {
        self.modules.iter_mut().find(|m| m.name == name)
    }

    /// Closes the run: `degraded` when a module failed, else `done`.
    pub fn finish(&mut self) {
        self.finished = Some(now());
        if self.status == RunStatus::Running {
            self.status = if self.recoverable_errors.is_empty() {
                RunStatus::Done
            } else {
                RunStatus::Degraded
            };
        }
    }

    /// All errors, critical then recoverable, for result.json.
    pub fn all_errors(&self) -> Vec<String> {
        self.errors
            .iter()
            .chain(&self.recoverable_errors)
            .cloned()
            .collect()
    }

    /// `/run/cloud-init/status.json` in cloud-init's v1 shape: cloudcfg's whole run is
    /// `modules-final`; the other stages are empty.
    pub fn cloud_init_status(&self) -> serde_json::Value {
        let empty = serde_json::json!({"start": null, "finished": null, "errors": []});
        let start = epoch_seconds(&self.started);
        let finished = self.finished.as_deref().and_then(epoch_seconds);
        serde_json::json!({
            "v1": {
                "datasource": cloud_init_datasource(&self.datasource),
                "init-local": empty,
                "init": empty,
                "modules-config": empty,
                "modules-final": {"start": start, "finished": finished, "errors": self.all_errors()},
                "stage": if self.status == RunStatus::Running { serde_json::json!("modules-final") } else { serde_json::Value::Null },
            }
        })
    }

    pub fn result(&self) -> serde_json::Value {
        serde_json::json!({
            "v1": {
                "datasource": cloud_init_datasource(&self.datasource),
                "errors": self.all_errors(),
            }
        })
    }
}

/// Writes the run's report files.
pub struct Reporter {
    runtime: Writer,
    /// The target root for cloud-init's compatibility files, `None` with `--root` (an image
    /// must not look finished before its first boot) or when cloud-init itself is installed.
    compat_root: Option<Writer>,
}

impl Reporter {
    pub fn new(runtime_dir: &Path, target_root: &Path, image_root: bool) -> Reporter {
        let cloud_init_installed = ["usr/bin/cloud-init", "usr/local/bin/cloud-init"]
            .iter()
            .any(|p| target_root.join(p).exists());
        if let Err(e) = std::fs::create_dir_all(runtime_dir) {
            log::warn!("creating {}: {e}", runtime_dir.display());
        }
        Reporter {
            runtime: Writer::new(runtime_dir),
            compat_root: (!image_root && !cloud_init_installed).then(|| Writer::new(target_root)),
        }
    }

    fn write_json(writer: &Writer, path: &str, value: &impl Serialize) {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        text.push('\n');
        if let Err(e) = writer.write(path, text.as_bytes(), 0o644, 0, 0) {
            log::warn!("writing {path}: {e}");
        }
    }

    /// Writes status.json (and cloud-init's), plus result.json once the run is finished.
    pub fn write(&self, status: &Status) {
        Self::write_json(&self.runtime, "/cloudcfg/status.json", status);
        let finished = status.status != RunStatus::Running;
        if finished {
            Self::write_json(&self.runtime, "/cloudcfg/result.json", &status.result());
        }
        if self.compat_root.is_some() {
            Self::write_json(
                &self.runtime,
                "/cloud-init/status.json",
                &status.cloud_init_status(),
            );
            if finished {
                Self::write_json(&self.runtime, "/cloud-init/result.json", &status.result());
            }
        }
    }

    /// Points /var/lib/cloud/instance at this instance's directory, as cloud-init does, so a
    /// clone never sees its image's boot-finished; then removes this boot's stale marker.
    pub fn begin_instance(&self, instance_id: &str) {
        let Some(root) = &self.compat_root else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            let dir = root
                .root()
                .join("var/lib/cloud/instances")
                .join(instance_id);
            std::fs::create_dir_all(&dir)?;
            let link = root.root().join("var/lib/cloud/instance");
            let temp = root.root().join("var/lib/cloud/.instance.cloudcfg-tmp");
            let _ = std::fs::remove_file(&temp);
            std::os::unix::fs::symlink(format!("/var/lib/cloud/instances/{instance_id}"), &temp)?;
            if link.is_dir() && !link.is_symlink() {
                std::fs::remove_dir_all(&link)?;
            }
            std::fs::rename(&temp, &link)?;
            let _ = std::fs::remove_file(dir.join("boot-finished"));
            Ok(())
        })();
        if let Err(e) = result {
            log::warn!("setting up /var/lib/cloud/instance: {e}");
        }
    }

    /// `/var/lib/cloud/instance/boot-finished`, what image builders wait for.
    pub fn boot_finished(&self, instance_id: &str) {
        let Some(root) = &self.compat_root else {
            return;
        };
        let uptime = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|u| u.split_whitespace().next().map(str::to_owned))
            .unwrap_or_default();
        let text = format!(
            "{uptime} - {} - cloudcfg {}\n",
            now(),
            env!("CARGO_PKG_VERSION")
        );
        let path = format!("/var/lib/cloud/instances/{instance_id}/boot-finished");
        if let Err(e) = root.write(&path, text.as_bytes(), 0o644, 0, 0) {
            log::warn!("writing {path}: {e}");
        }
    }
}

/// Reads status.json, `None` when no run has started this boot.
pub fn read_status(runtime_dir: &Path) -> Result<Option<Status>, std::io::Error> {
    let path = runtime_dir.join("cloudcfg/status.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `cloudcfg stop-post`, the unit's `ExecStopPost=`, which systemd runs once `cloudcfg run` has
/// exited, however it ended. A report still saying `running` then belongs to a run that was
/// killed (the unit's `TimeoutStartSec=`, a stop) or crashed: it is closed as `error`, so that
/// `cloudcfg status --wait` (and cloud-init's) return instead of waiting forever. Without any
/// report, a failed service (`why` is systemd's `$SERVICE_RESULT` and exit status) gets a
/// critical one. Returns whether it wrote.
pub fn close_interrupted(
    runtime_dir: &Path,
    target_root: &Path,
    service_failed: bool,
    why: &str,
) -> std::io::Result<bool> {
    let status = match read_status(runtime_dir)? {
        Some(mut status) if status.status == RunStatus::Running => {
            for module in &mut status.modules {
                if module.status == ModuleState::Running {
                    module.status = ModuleState::Failed;
                    module.finished = Some(now());
                    module.error = Some(format!("interrupted ({why})"));
                }
            }
            status.status = RunStatus::Error;
            status.finished = Some(now());
            status
                .errors
                .push(format!("the run ended before it finished ({why})"));
            status
        }
        None if service_failed => Status::critical(
            "none",
            None,
            format!("cloudcfg run ended before it reported anything ({why})"),
        ),
        _ => return Ok(false),
    };
    Reporter::new(runtime_dir, target_root, false).write(&status);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_by_kernel_word_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cloudcfg.disabled");
        assert_eq!(disabled_reason("ro quiet cloudcfg=enabled\n", &file), None);
        assert_eq!(disabled_reason("xcloudcfg=disabled cloudcfg", &file), None);
        assert!(
            disabled_reason("root=/dev/vda cloudcfg=disabled quiet\n", &file)
                .unwrap()
                .contains("kernel command line")
        );
        std::fs::write(&file, "").unwrap();
        assert!(disabled_reason("", &file).unwrap().contains("exists"));
    }

    #[test]
    fn an_interrupted_run_is_closed_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (run, root) = (dir.path().join("run"), dir.path().join("root"));
        std::fs::create_dir_all(&root).unwrap();
        let reporter = Reporter::new(&run, &root, true);
        let mut status = Status::new("ec2", Some("i-1"), &["apt_configure", "puppet"]);
        status.modules[0].status = ModuleState::Running;
        reporter.write(&status);

        assert!(close_interrupted(&run, &root, true, "timeout").unwrap());
        let closed = read_status(&run).unwrap().unwrap();
        assert_eq!(closed.status, RunStatus::Error);
        assert!(closed.finished.is_some());
        assert_eq!(closed.modules[0].status, ModuleState::Failed);
        assert_eq!(closed.modules[1].status, ModuleState::Pending);
        assert!(closed.errors[0].contains("timeout"), "{:?}", closed.errors);
        assert_eq!(status::exit_code(Some(&closed)), 1);
        assert!(run.join("cloudcfg/result.json").exists());
        // Closed once: a finished report is left alone.
        assert!(!close_interrupted(&run, &root, true, "timeout").unwrap());
    }

    #[test]
    fn a_failed_service_without_a_report_gets_a_critical_one() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        assert!(!close_interrupted(&run, dir.path(), false, "success").unwrap());
        assert!(read_status(&run).unwrap().is_none());
        assert!(close_interrupted(&run, dir.path(), true, "signal").unwrap());
        let status = read_status(&run).unwrap().unwrap();
        assert_eq!(status.status, RunStatus::Error);
        assert!(status.errors[0].contains("signal"));
    }
}
