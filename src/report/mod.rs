//! What a run reports (contract.md, "Report files"): /run/cloudcfg/status.json and
//! result.json, and, where cloud-init is not installed, cloud-init's own status files and
//! boot-finished marker, so tooling written for cloud-init (`cloud-init status --wait`
//! clients, image builders) works unchanged.

pub mod status;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apply::writer::Writer;

/// Where runtime reports go: `/run`, or `$CLOUDCFG_RUNTIME_DIR` (tests and sandboxes, which
/// must not share the host's).
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("CLOUDCFG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run"))
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
