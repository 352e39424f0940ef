//! Per-instance state, `/var/lib/cloudcfg/instances/<instance-id>/` (0700).
//!
//! Semaphore rules (contract.md, "Per-instance semantics"): a module that succeeded for an
//! instance id leaves a marker `<module>.done` and does not run again for that id; a module
//! that failed leaves none and runs again at the next boot; a new instance id (an image clone)
//! has no markers and runs everything; `--force` ignores the markers. Markers are written only
//! after every action of a module succeeded, so a run killed anywhere redoes that module, whose
//! actions are idempotent (files are compared before they are written, apt skips what is
//! installed, an interrupted dpkg is recovered first).

use super::writer::{WriteError, Writer};

pub const STATE_ROOT: &str = "/var/lib/cloudcfg/instances";

pub struct InstanceState<'w> {
    writer: &'w Writer,
    dir: String,
}

impl<'w> InstanceState<'w> {
    /// Creates the instance's directory (0700). `instance_id` was checked to be a file name.
    pub fn open(writer: &'w Writer, instance_id: &str) -> Result<InstanceState<'w>, WriteError> {
        writer.dir("/var/lib/cloudcfg", 0o755)?;
        writer.dir(STATE_ROOT, 0o700)?;
        let dir = format!("{STATE_ROOT}/{instance_id}");
        writer.dir(&dir, 0o700)?;
        Ok(InstanceState { writer, dir })
    }

    fn marker(&self, module: &str) -> String {
        format!("{}/{module}.done", self.dir)
    }

    pub fn done(&self, module: &str) -> bool {
        self.writer
            .metadata(&self.marker(module))
            .is_ok_and(|m| m.is_some())
    }

    pub fn mark_done(&self, module: &str) -> Result<(), WriteError> {
        let text = format!("{}\n", crate::report::now());
        self.writer
            .write(&self.marker(module), text.as_bytes(), 0o600, 0, 0)
            .map(|_| ())
    }

    /// Keeps the user data exactly as fetched, and what was known about the instance.
    pub fn store(
        &self,
        user_data: &[u8],
        instance_data: &serde_json::Value,
    ) -> Result<(), WriteError> {
        self.writer
            .write(&format!("{}/user-data", self.dir), user_data, 0o600, 0, 0)?;
        let mut json = serde_json::to_string_pretty(instance_data).unwrap_or_default();
        json.push('\n');
        self.writer
            .write(
                &format!("{}/instance-data.json", self.dir),
                json.as_bytes(),
                0o600,
                0,
                0,
            )
            .map(|_| ())
    }
}
