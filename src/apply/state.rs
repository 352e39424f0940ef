//! What has run: `/var/lib/cloudcfg/` (contract.md, "Frequencies").
//!
//! Markers by frequency, each written only after every action of its module succeeded, so a
//! run killed anywhere redoes that module, whose actions are idempotent (files are compared
//! before they are written, apt skips what is installed, an interrupted dpkg is recovered
//! first); a module that failed leaves none and runs again at the next run:
//! - per instance: `instances/<instance-id>/<module>.done`; a new instance id (an image clone)
//!   has none and runs everything;
//! - once: `once/<module>.done`, whatever the instance id;
//! - per boot: `boot/<module>.done`, holding the kernel's boot id; another boot's id is no
//!   marker;
//! - always: none.
//!
//! `--force` ignores the markers. Each marker says its frequency and when its module finished.
//! The instance's directory also keeps the user data as fetched and `instance-data.json`.

use crate::action::{Frequency, ModuleEntry};
use crate::writer::{WriteError, Writer};

pub const STATE_DIR: &str = "/var/lib/cloudcfg";
pub const STATE_ROOT: &str = crate::action::INSTANCES_DIR;
const ONCE_DIR: &str = "/var/lib/cloudcfg/once";
const BOOT_DIR: &str = "/var/lib/cloudcfg/boot";

pub struct InstanceState<'w> {
    writer: &'w Writer,
    dir: String,
    boot_id: String,
}

impl<'w> InstanceState<'w> {
    /// Creates the state directories (the instance's 0700). `instance_id` was checked to be a
    /// file name.
    pub fn open(
        writer: &'w Writer,
        instance_id: &str,
        boot_id: &str,
    ) -> Result<InstanceState<'w>, WriteError> {
        writer.dir(STATE_DIR, 0o755)?;
        writer.dir(STATE_ROOT, 0o700)?;
        let dir = format!("{STATE_ROOT}/{instance_id}");
        writer.dir(&dir, 0o700)?;
        Ok(InstanceState {
            writer,
            dir,
            boot_id: boot_id.to_owned(),
        })
    }

    fn marker(&self, module: &ModuleEntry) -> Option<String> {
        let dir = match module.frequency {
            Frequency::PerInstance => self.dir.as_str(),
            Frequency::Once => ONCE_DIR,
            Frequency::PerBoot => BOOT_DIR,
            Frequency::Always => return None,
        };
        Some(format!("{dir}/{}.done", module.name))
    }

    /// Why `module` does not run again, if it does not.
    pub fn done(&self, module: &ModuleEntry) -> Option<String> {
        let path = self.marker(module)?;
        let text = self.writer.read(&path).ok()??;
        let text = String::from_utf8_lossy(&text);
        match module.frequency {
            Frequency::PerBoot => text
                .lines()
                .any(|l| l.strip_prefix("boot_id=") == Some(self.boot_id.as_str()))
                .then(|| "already ran in this boot".to_owned()),
            Frequency::Once => Some("already ran once on this system".to_owned()),
            _ => {
                let id = self.dir.rsplit('/').next().unwrap_or_default();
                Some(format!("already ran for {id}"))
            }
        }
    }

    pub fn mark_done(&self, module: &ModuleEntry) -> Result<(), WriteError> {
        let Some(path) = self.marker(module) else {
            return Ok(());
        };
        if let Some((dir, _)) = path.rsplit_once('/')
            && dir != self.dir
        {
            self.writer.dir(dir, 0o700)?;
        }
        let mut text = format!(
            "frequency={}\nfinished={}\n",
            module.frequency.name(),
            crate::report::now()
        );
        if module.frequency == Frequency::PerBoot {
            text.push_str(&format!("boot_id={}\n", self.boot_id));
        }
        self.writer
            .write(&path, text.as_bytes(), 0o600, 0, 0)
            .map(|_| ())
    }

    /// A script's own marker, beside its module's (`scripts-done/` of the instance's or the
    /// once directory), named by its path: of a module's scripts, one that succeeded never
    /// runs again when a later one failed.
    fn script_marker(&self, frequency: Frequency, script: &str) -> (String, String) {
        let dir = match frequency {
            Frequency::Once => format!("{ONCE_DIR}/scripts-done"),
            _ => format!("{}/scripts-done", self.dir),
        };
        let name = script.trim_start_matches('/').replace('/', "%");
        (format!("{dir}/{name}"), dir)
    }

    pub fn script_done(&self, frequency: Frequency, script: &str) -> bool {
        let (marker, _) = self.script_marker(frequency, script);
        matches!(self.writer.read(&marker), Ok(Some(_)))
    }

    pub fn mark_script_done(&self, frequency: Frequency, script: &str) -> Result<(), WriteError> {
        let (marker, dir) = self.script_marker(frequency, script);
        if frequency == Frequency::Once {
            self.writer.dir(ONCE_DIR, 0o700)?;
        }
        self.writer.dir(&dir, 0o700)?;
        let text = format!("finished={}\n", crate::report::now());
        self.writer
            .write(&marker, text.as_bytes(), 0o600, 0, 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Stage;

    fn module(frequency: Frequency) -> ModuleEntry {
        ModuleEntry {
            name: "m",
            stage: Stage::Init,
            frequency,
        }
    }

    #[test]
    fn markers_follow_the_frequency() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::new(dir.path());
        let first = InstanceState::open(&writer, "i-1", "boot-a").unwrap();
        for frequency in [
            Frequency::PerInstance,
            Frequency::PerBoot,
            Frequency::Once,
            Frequency::Always,
        ] {
            assert_eq!(first.done(&module(frequency)), None, "{frequency:?}");
            first.mark_done(&module(frequency)).unwrap();
        }
        assert!(first.done(&module(Frequency::PerInstance)).is_some());
        assert!(first.done(&module(Frequency::PerBoot)).is_some());
        assert!(first.done(&module(Frequency::Once)).is_some());
        assert_eq!(first.done(&module(Frequency::Always)), None);

        // The next boot of the same instance: per-boot runs again.
        let next_boot = InstanceState::open(&writer, "i-1", "boot-b").unwrap();
        assert_eq!(next_boot.done(&module(Frequency::PerBoot)), None);
        assert!(next_boot.done(&module(Frequency::PerInstance)).is_some());

        // A clone (new instance id): per-instance runs again, once does not.
        let clone = InstanceState::open(&writer, "i-2", "boot-b").unwrap();
        assert_eq!(clone.done(&module(Frequency::PerInstance)), None);
        assert_eq!(
            clone.done(&module(Frequency::Once)).as_deref(),
            Some("already ran once on this system")
        );

        let marker =
            std::fs::read_to_string(dir.path().join("var/lib/cloudcfg/boot/m.done")).unwrap();
        assert!(
            marker.starts_with("frequency=per-boot\nfinished="),
            "{marker}"
        );
        assert!(marker.ends_with("boot_id=boot-a\n"), "{marker}");
    }
}
