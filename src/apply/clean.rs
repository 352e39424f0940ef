//! `cloudcfg clean`: what an image builder runs last, so that the image's next boot is a first
//! boot (cloud-init's `clean`). It removes cloudcfg's state (instances, once and per-boot
//! markers) and cloud-init's compatibility files; on request the log, the NoCloud seed and the
//! machine id. The image's own scripts in `/var/lib/cloud/scripts` stay: they are part of the
//! image, not of a boot.

use crate::writer::{WriteError, Writer};

/// What to remove beyond the state.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanOptions {
    pub logs: bool,
    pub seed: bool,
    /// Empty `/etc/machine-id`: systemd makes a new id at the next boot.
    pub machine_id: bool,
}

/// cloudcfg's state, and what it writes for cloud-init's pollers.
const STATE: &[&str] = &[
    "/var/lib/cloudcfg",
    "/var/lib/cloud/instance",
    "/var/lib/cloud/instances",
    "/var/lib/cloud/data",
];
const LOGS: &[&str] = &["/var/log/cloudcfg.log"];
const SEED: &[&str] = &["/var/lib/cloud/seed"];
pub const MACHINE_ID: &str = "/etc/machine-id";

/// Removes what `options` asks for under `writer`'s root; returns what was there.
pub fn clean(writer: &Writer, options: CleanOptions) -> Result<Vec<String>, WriteError> {
    let mut targets: Vec<&str> = STATE.to_vec();
    if options.logs {
        targets.extend(LOGS);
    }
    if options.seed {
        targets.extend(SEED);
    }
    let mut removed = Vec::new();
    for target in targets {
        if writer.remove_tree(target)? {
            removed.push(target.to_owned());
        }
    }
    if options.machine_id {
        writer.write(MACHINE_ID, b"", 0o444, 0, 0)?;
        removed.push(format!("{MACHINE_ID} (emptied)"));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_goes_and_the_images_scripts_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "var/lib/cloudcfg/instances/i-1/user-data",
            "var/lib/cloudcfg/once/x.done",
            "var/lib/cloud/instance/boot-finished",
            "var/lib/cloud/seed/nocloud/user-data",
            "var/lib/cloud/scripts/per-boot/10-x",
            "var/log/cloudcfg.log",
            "etc/machine-id",
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), "x").unwrap();
        }
        let writer = Writer::new(root);
        let removed = clean(&writer, CleanOptions::default()).unwrap();
        assert_eq!(removed, ["/var/lib/cloudcfg", "/var/lib/cloud/instance"]);
        assert!(root.join("var/lib/cloud/seed/nocloud/user-data").exists());
        assert!(root.join("var/log/cloudcfg.log").exists());
        assert!(root.join("var/lib/cloud/scripts/per-boot/10-x").exists());
        let all = CleanOptions {
            logs: true,
            seed: true,
            machine_id: true,
        };
        clean(&writer, all).unwrap();
        assert!(!root.join("var/lib/cloud/seed").exists());
        assert!(!root.join("var/log/cloudcfg.log").exists());
        assert_eq!(std::fs::read(root.join("etc/machine-id")).unwrap(), b"");
        assert!(root.join("var/lib/cloud/scripts/per-boot/10-x").exists());
    }
}
