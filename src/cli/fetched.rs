//! This boot's fetch, kept for the unit that runs the later stages.
//!
//! The package runs `init` before sshd and `config,final` after it, as two units. Fetching the
//! user data again in the second would double the requests to the metadata service (which
//! counts and throttles them) and could even see other user data than the modules of the first
//! ran on, if the metadata changed in between. cloud-init keeps its datasource object between
//! its stages for the same reasons. The copy lives in the runtime directory, which a reboot
//! empties, and names its boot id and target root: a copy of another boot or root is ignored.
//! It holds the user data, so it is root's alone (0600).

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::datasource::InstanceData;
use crate::writer::Writer;

/// Inside the runtime directory.
const FETCHED_FILE: &str = "/cloudcfg/fetched.json";

#[derive(Serialize, Deserialize)]
struct Kept {
    boot_id: String,
    root: String,
    datasource: String,
    why: String,
    source: String,
    instance_id: String,
    local_hostname: Option<String>,
    hostname: Option<String>,
    availability_zone: Option<String>,
    public_keys: Vec<String>,
    user_data_base64: Option<String>,
    meta_data: serde_json::Value,
    #[serde(default)]
    identity: Option<(String, String)>,
}

/// Keeps `data` for a later stage of this boot. A copy that cannot be written only costs the
/// later stage a second fetch, so it is a warning.
pub fn keep(runtime: &Path, boot_id: &str, root: &Path, why: &str, data: &InstanceData) {
    let kept = Kept {
        boot_id: boot_id.to_owned(),
        root: root.display().to_string(),
        datasource: data.datasource.to_owned(),
        why: why.to_owned(),
        source: data.source.clone(),
        instance_id: data.instance_id.clone(),
        local_hostname: data.local_hostname.clone(),
        hostname: data.hostname.clone(),
        availability_zone: data.availability_zone.clone(),
        public_keys: data.public_keys.clone(),
        user_data_base64: data
            .user_data
            .as_ref()
            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
        meta_data: data.meta_data.clone(),
        identity: data.identity.as_ref().map(|(doc, sig)| {
            (
                base64::engine::general_purpose::STANDARD.encode(doc),
                sig.clone(),
            )
        }),
    };
    let text = serde_json::to_vec(&kept).unwrap_or_default();
    if let Err(e) = Writer::new(runtime).write(FETCHED_FILE, &text, 0o600, 0, 0) {
        log::warn!("keeping the fetched user data for the later stages: {e}");
    }
}

/// This boot's fetch for `root`, with why its datasource was chosen, if an earlier stage kept
/// one; anything else (none, another boot, another root, unreadable) means fetching again.
pub fn kept(runtime: &Path, boot_id: &str, root: &Path) -> Option<(String, InstanceData)> {
    let bytes = std::fs::read(runtime.join(FETCHED_FILE.trim_start_matches('/'))).ok()?;
    let kept: Kept = serde_json::from_slice(&bytes)
        .map_err(|e| log::warn!("{FETCHED_FILE}: {e}; fetching again"))
        .ok()?;
    if boot_id.is_empty() || kept.boot_id != boot_id || kept.root != root.display().to_string() {
        return None;
    }
    let datasource = crate::datasource::NAMES
        .iter()
        .copied()
        .find(|name| *name == kept.datasource)?;
    let user_data = match kept.user_data_base64 {
        Some(text) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| log::warn!("{FETCHED_FILE}: user data: {e}; fetching again"))
                .ok()?,
        ),
        None => None,
    };
    let data = InstanceData {
        datasource,
        source: kept.source,
        instance_id: kept.instance_id,
        local_hostname: kept.local_hostname,
        hostname: kept.hostname,
        availability_zone: kept.availability_zone,
        public_keys: kept.public_keys,
        user_data,
        meta_data: kept.meta_data,
        identity: match kept.identity {
            Some((doc, sig)) => Some((
                base64::engine::general_purpose::STANDARD.decode(doc).ok()?,
                sig,
            )),
            None => None,
        },
    };
    // The id names a state directory; a copy edited by hand must not lead anywhere else.
    crate::target::check_instance_id(&data.instance_id).ok()?;
    Some((kept.why, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> InstanceData {
        InstanceData {
            datasource: "ec2",
            source: "http://169.254.169.254".into(),
            instance_id: "i-0123".into(),
            local_hostname: Some("ip-10-0-0-5".into()),
            hostname: None,
            availability_zone: Some("eu-central-1a".into()),
            public_keys: vec!["ssh-ed25519 AAAA k".into()],
            user_data: Some(b"#cloud-config\x00\xff".to_vec()),
            meta_data: serde_json::json!({"instance-id": "i-0123"}),
            identity: Some((b"{\"instanceId\": \"i-0123\"}".to_vec(), "MIIB".into())),
        }
    }

    #[test]
    fn a_later_stage_of_the_same_boot_and_root_gets_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        keep(dir.path(), "boot-a", Path::new("/"), "dmi", &data());
        let (why, back) = kept(dir.path(), "boot-a", Path::new("/")).unwrap();
        assert_eq!(why, "dmi");
        assert_eq!(back.to_json(), data().to_json());
        assert_eq!(back.user_data, data().user_data);
        assert_eq!(back.identity, data().identity);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("cloudcfg/fetched.json"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn another_boot_another_root_or_a_bad_copy_fetch_again() {
        let dir = tempfile::tempdir().unwrap();
        keep(dir.path(), "boot-a", Path::new("/"), "dmi", &data());
        assert!(kept(dir.path(), "boot-b", Path::new("/")).is_none());
        assert!(kept(dir.path(), "", Path::new("/")).is_none());
        assert!(kept(dir.path(), "boot-a", Path::new("/mnt/image")).is_none());
        let mut bad = data();
        bad.instance_id = "../etc".into();
        keep(dir.path(), "boot-a", Path::new("/"), "dmi", &bad);
        assert!(kept(dir.path(), "boot-a", Path::new("/")).is_none());
        std::fs::write(dir.path().join("cloudcfg/fetched.json"), b"{not json").unwrap();
        assert!(kept(dir.path(), "boot-a", Path::new("/")).is_none());
    }
}
