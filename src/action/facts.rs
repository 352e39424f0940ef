//! What the plan knows about the instance and the target: facts read from the datasource or
//! the target (`crate::target`), or given as flags.

use serde::Serialize;

/// What the plan knows about the instance and the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub instance_id: Option<String>,
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub release: Option<String>,
    /// dpkg's architecture name of the target (`amd64`).
    #[serde(skip)]
    pub arch: String,
    /// The executables the image keeps in cloud-init's script directories, by directory
    /// (`per-boot`, `per-instance`, `per-once`), in name order.
    #[serde(skip)]
    pub image_scripts: std::collections::BTreeMap<String, Vec<String>>,
    /// The SSH public keys the instance was launched with (the datasource's), for the
    /// default user.
    #[serde(skip)]
    pub public_keys: Vec<String>,
    /// The root keeps apt's own sources in deb822 (`debian.sources` or `ubuntu.sources`
    /// exists), whatever its release.
    #[serde(skip)]
    pub deb822_sources: bool,
    /// Debian's cloud images name their mirrors in `/etc/apt/mirrors/debian.list` and
    /// `debian-security.list` (`URIs: mirror+file:...`); the root has both.
    #[serde(skip)]
    pub debian_mirror_lists: bool,
    /// The root's apt verifies signatures with Sequoia's `sqv` (`/usr/bin/sqv`, apt 3).
    #[serde(skip)]
    pub apt_sqv: bool,
    /// EC2's signed instance identity (document bytes, base64 PKCS#7), from the datasource.
    #[serde(skip)]
    pub instance_identity: Option<(Vec<u8>, String)>,
}

/// cloud-init's directories of scripts that images ship, run in the final stage.
pub const IMAGE_SCRIPTS_DIR: &str = "/var/lib/cloud/scripts";

/// Each instance's state directory lies here (contract.md, "Paths and modes"): its user data,
/// its markers and the scripts its user data brought (`scripts/`).
pub const INSTANCES_DIR: &str = "/var/lib/cloudcfg/instances";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Ubuntu,
}

/// Ubuntu series names, oldest first; any other codename is taken for Debian.
const UBUNTU_SERIES: &[&str] = &[
    "lucid", "precise", "trusty", "xenial", "bionic", "focal", "jammy", "kinetic", "lunar",
    "mantic", "noble", "oracular", "plucky", "questing", "resolute",
];

/// Debian releases, oldest first; a codename not here (sid, a later one) counts as newer.
const DEBIAN_RELEASES: &[&str] = &[
    "jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke",
];

impl Facts {
    /// Whether the target's release is `debian` or later on Debian, `ubuntu` or later on
    /// Ubuntu; `false` when the release is not known.
    pub fn release_at_least(&self, debian: &str, ubuntu: &str) -> bool {
        let Some(release) = self.release.as_deref() else {
            return false;
        };
        let (order, since) = match self.distro() {
            Distro::Debian => (DEBIAN_RELEASES, debian),
            Distro::Ubuntu => (UBUNTU_SERIES, ubuntu),
        };
        let at = |name: &str| order.iter().position(|r| *r == name);
        match (at(release), at(since)) {
            (Some(r), Some(s)) => r >= s,
            // Unlisted on Debian: unstable or a release newer than the list.
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    pub fn distro(&self) -> Distro {
        match &self.release {
            Some(r) if UBUNTU_SERIES.contains(&r.as_str()) => Distro::Ubuntu,
            _ => Distro::Debian,
        }
    }

    /// The instance's state directory, which scripts are kept in.
    pub fn instance_dir(&self, why: &str) -> Result<String, PlanError> {
        let id = self.require(&self.instance_id, "--instance-id", why)?;
        Ok(format!("{INSTANCES_DIR}/{id}"))
    }

    /// A fact the plan cannot do without, or the usage error that names its flag.
    pub fn require<'a>(
        &self,
        value: &'a Option<String>,
        flag: &'static str,
        why: &str,
    ) -> Result<&'a str, PlanError> {
        value.as_deref().ok_or_else(|| PlanError::MissingFact {
            flag,
            why: why.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{why}: pass {flag}")]
    MissingFact { flag: &'static str, why: String },
    /// A value that is valid in general but cannot be written for this target (a one-line
    /// option with no deb822 form, on a deb822 target).
    #[error("{path}: {reason}")]
    Unsupported { path: String, reason: String },
}
