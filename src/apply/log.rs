//! The run log, /var/log/cloudcfg.log (0600): what ran, for how long, and what it printed.
//! It never holds file contents, command input, key material or certificates; command output
//! arrives here with every secret of the plan already replaced.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const LOG_PATH: &str = "/var/log/cloudcfg.log";

/// Appends to the log file (when it could be opened) and to the process log at debug level.
pub struct RunLog {
    file: Option<File>,
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl RunLog {
    /// Opens `LOG_PATH` under `root`; a log that cannot be opened is reported, not fatal.
    pub fn open(root: &Path) -> RunLog {
        let path = root.join(LOG_PATH.trim_start_matches('/'));
        let file = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)
            })
            .and_then(|f| {
                // An existing log keeps no wider mode than ours.
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                Ok(f)
            });
        match file {
            Ok(file) => RunLog { file: Some(file) },
            Err(e) => {
                log::warn!(
                    "cannot open {}: {e}; logging to stderr only",
                    path.display()
                );
                RunLog { file: None }
            }
        }
    }

    /// A log that only goes to the process log (dry runs, tests).
    pub fn discard() -> RunLog {
        RunLog { file: None }
    }

    pub fn line(&mut self, message: &str) {
        log::info!("{message}");
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{} {message}", now());
        }
    }

    /// Command output, indented under the line that ran it.
    pub fn output(&mut self, output: &str) {
        for line in output.lines() {
            log::debug!("  {line}");
        }
        if let Some(file) = &mut self.file {
            for line in output.lines() {
                let _ = writeln!(file, "    {line}");
            }
        }
    }
}
