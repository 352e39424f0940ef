//! NoCloud: meta-data and user-data from a seed, as cloud-init's DataSourceNoCloud reads them.
//!
//! A seed is one of:
//! - a directory, `/var/lib/cloud/seed/nocloud/` (or `nocloud-net/`) of the target root, as image
//!   builders bake it, or `file:///path/` from the kernel command line;
//! - a filesystem labelled `cidata` or `CIDATA` (an ISO 9660 or VFAT image attached as a disk;
//!   ext2/3/4 too), mounted read-only (and nosuid, nodev, noexec) in a temporary directory for
//!   the read and unmounted before anything else happens;
//! - an `http://` or `https://` base URL from the kernel command line (`s=`), read with the same
//!   retry policy as EC2 and no proxy.
//!
//! `meta-data` is YAML with `instance-id` (required: per-instance state hangs on it),
//! `local-hostname` and `hostname` (both optional); `user-data` is optional (no user data means
//! nothing to do). `i=` and `h=` on the kernel command line override the seed's instance id and
//! local host name, as cloud-init's command-line meta-data does.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::decode::Limits;
use crate::decode::yaml::{self, Node, Resolved, Value};

use super::http::{self, Retry};
use super::{Datasource, DatasourceError, InstanceData, check_hostname, check_id};

const META_LIMIT: u64 = 1024 * 1024;
const USER_DATA_LIMIT: u64 = 16 * 1024 * 1024;
/// Filesystem types a cidata seed is tried as, in order: what seed images are made as
/// (`genisoimage -volid cidata`, `mkfs.vfat -n CIDATA`), then ext4 (which also mounts ext2 and
/// ext3), since cloud-init lets mount(8) take any filesystem with that label.
pub const SEED_FILESYSTEMS: &[&str] = &["iso9660", "vfat", "ext4"];

/// Where the seed is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// A directory holding `meta-data` and, optionally, `user-data`.
    Dir(PathBuf),
    /// A block device with a `cidata` filesystem.
    Device(PathBuf),
    /// A base URL ending in `/`; `meta-data` and `user-data` are read below it.
    Url(String),
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seed::Dir(p) => write!(f, "{}", p.display()),
            Seed::Device(p) => write!(f, "{} (cidata)", p.display()),
            Seed::Url(u) => f.write_str(u),
        }
    }
}

impl Seed {
    /// The seed named by `s=` on the kernel command line: `file:///path/` or an HTTP(S) URL.
    pub fn from_url(url: &str) -> Result<Seed, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!("{url:?}: a file:// seed needs an absolute path"));
            }
            return Ok(Seed::Dir(PathBuf::from(path)));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            crate::values::url(url)?;
            // cloud-init appends the file names to the URL as written; a missing `/` there
            // would silently read `.../seeduser-data`, so the directory form is made explicit.
            let mut base = url.to_owned();
            if !base.ends_with('/') {
                base.push('/');
            }
            return Ok(Seed::Url(base));
        }
        Err(format!(
            "{url:?}: a NoCloud seed is file:///path/, http://... or https://..."
        ))
    }
}

/// Meta-data from the kernel command line, which wins over the seed's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub instance_id: Option<String>,
    pub local_hostname: Option<String>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.instance_id.is_none() && self.local_hostname.is_none()
    }
}

pub struct NoCloud {
    seed: Option<Seed>,
    overrides: Overrides,
    retry: Retry,
}

/// The two files of a seed, raw.
struct SeedFiles {
    meta_data: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
}

impl NoCloud {
    /// A NoCloud datasource reading `seed`.
    pub fn new(seed: Seed) -> NoCloud {
        NoCloud::with_overrides(Some(seed), Overrides::default())
    }

    /// A seed (or none: then the kernel command line must give the instance id) plus the
    /// command line's meta-data.
    pub fn with_overrides(seed: Option<Seed>, overrides: Overrides) -> NoCloud {
        NoCloud {
            seed,
            overrides,
            // A seed server on the local network may take longer to answer than the
            // link-local IMDS; the deadline is the same.
            retry: Retry {
                timeout: Duration::from_secs(10),
                ..Retry::default()
            },
        }
    }

    /// The retry policy for an HTTP seed.
    pub fn with_retry(mut self, retry: Retry) -> NoCloud {
        self.retry = retry;
        self
    }

    fn read(&self, seed: &Seed) -> Result<SeedFiles, DatasourceError> {
        match seed {
            Seed::Dir(dir) => read_dir(dir),
            Seed::Device(device) => with_mounted(device, read_dir),
            Seed::Url(base) => {
                let agent = http::agent();
                let deadline = self.retry.deadline_from_now();
                let get = |name: &str, limit: u64| {
                    let url = format!("{base}{name}");
                    self.retry.run(&format!("GET {url}"), deadline, |timeout| {
                        http::get_step(&agent, &url, timeout, limit)
                    })
                };
                Ok(SeedFiles {
                    meta_data: get("meta-data", META_LIMIT)?,
                    user_data: get("user-data", USER_DATA_LIMIT)?,
                })
            }
        }
    }
}

/// Reads at most `limit` bytes of `path`; `None` when it does not exist.
fn read_limited(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, DatasourceError> {
    let io = |source| DatasourceError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(DatasourceError::TooLarge {
            what: path.display().to_string(),
            limit,
        });
    }
    Ok(Some(bytes))
}

fn read_dir(dir: &Path) -> Result<SeedFiles, DatasourceError> {
    Ok(SeedFiles {
        meta_data: read_limited(&dir.join("meta-data"), META_LIMIT)?,
        user_data: read_limited(&dir.join("user-data"), USER_DATA_LIMIT)?,
    })
}

/// Unmounts on drop, so that an early return or a panic while reading leaves nothing mounted.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount(self.0) {
            // Lazily, then: the directory must not stay busy for the rest of the boot.
            log::warn!("unmounting {}: {e}; detaching it", self.0.display());
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mounts `device` read-only in a temporary directory, runs `read` on it, unmounts.
fn with_mounted<T>(
    device: &Path,
    read: impl FnOnce(&Path) -> Result<T, DatasourceError>,
) -> Result<T, DatasourceError> {
    use nix::mount::{MsFlags, mount};
    let dir = tempfile::Builder::new()
        .prefix("cloudcfg-cidata.")
        .tempdir()
        .map_err(|source| DatasourceError::Io {
            path: std::env::temp_dir().display().to_string(),
            source,
        })?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut errors = Vec::new();
    for fstype in SEED_FILESYSTEMS {
        match mount(Some(device), dir.path(), Some(*fstype), flags, None::<&str>) {
            Ok(()) => {
                log::info!(
                    "nocloud: mounted {} ({fstype}) read-only on {}",
                    device.display(),
                    dir.path().display()
                );
                let result = {
                    let _mounted = Mounted(dir.path());
                    read(dir.path())
                };
                return result;
            }
            Err(e) => errors.push(format!("{fstype}: {e}")),
        }
    }
    Err(DatasourceError::Mount {
        device: device.display().to_string(),
        reason: errors.join("; "),
    })
}

/// A YAML node as JSON for instance-data.json: scalars as written (null stays null), so the
/// record shows what the seed said rather than an interpretation of it.
pub fn node_json(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Scalar(s) if s.resolve() == Resolved::Null => serde_json::Value::Null,
        Value::Scalar(s) => serde_json::Value::String(s.text.clone()),
        Value::Seq(items) => items.iter().map(node_json).collect(),
        Value::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|e| {
                    let key = e
                        .key
                        .scalar_text()
                        .map_or_else(|| "<non-scalar key>".to_owned(), str::to_owned);
                    (key, node_json(&e.value))
                })
                .collect(),
        ),
    }
}

/// The parsed meta-data: the three keys cloudcfg uses, and all of it as JSON.
/// NoCloud's `public-keys`: a list of keys, or one key (cloud-init reads both), one line each.
fn meta_public_keys(meta: &serde_json::Value) -> Vec<String> {
    let one_per_line = |v: &serde_json::Value| {
        v.as_str()
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    match &meta["public-keys"] {
        serde_json::Value::Array(keys) => keys.iter().flat_map(one_per_line).collect(),
        other => one_per_line(other),
    }
}

#[derive(Debug, Default)]
struct MetaData {
    instance_id: Option<String>,
    local_hostname: Option<String>,
    hostname: Option<String>,
    json: serde_json::Value,
}

fn parse_meta_data(source: &str, bytes: &[u8]) -> Result<MetaData, DatasourceError> {
    let invalid = |key: &str, reason: String| DatasourceError::Invalid {
        origin: source.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let text =
        std::str::from_utf8(bytes).map_err(|_| invalid("meta-data", "not UTF-8 text".into()))?;
    let doc = yaml::parse(text, &Limits::default())
        .map_err(|e| invalid("meta-data", format!("line {}: {}", e.pos, e.message)))?;
    let Some(root) = doc.root else {
        return Ok(MetaData {
            json: serde_json::json!({}),
            ..MetaData::default()
        });
    };
    if !matches!(root.value, Value::Map(_)) {
        return Err(invalid(
            "meta-data",
            format!("must be a mapping, not {}", root.describe()),
        ));
    }
    let scalar = |key: &str| -> Result<Option<String>, DatasourceError> {
        match root.get(key) {
            None => Ok(None),
            Some(node) if node.is_null() => Ok(None),
            Some(node) => match node.scalar_text() {
                Some(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
                None => Err(invalid(
                    key,
                    format!("must be a string, not {}", node.describe()),
                )),
            },
        }
    };
    Ok(MetaData {
        instance_id: scalar("instance-id")?,
        local_hostname: scalar("local-hostname")?,
        hostname: scalar("hostname")?,
        json: node_json(&root),
    })
}

impl Datasource for NoCloud {
    fn name(&self) -> &'static str {
        "nocloud"
    }

    fn fetch(&self) -> Result<InstanceData, DatasourceError> {
        let (source, files) = match &self.seed {
            Some(seed) => {
                log::info!("nocloud: reading the seed {seed}");
                (seed.to_string(), self.read(seed)?)
            }
            None => (
                "kernel command line".to_owned(),
                SeedFiles {
                    meta_data: None,
                    user_data: None,
                },
            ),
        };
        let mut meta = match (&files.meta_data, &self.seed) {
            (Some(bytes), _) => parse_meta_data(&source, bytes)?,
            // Without meta-data the seed is not one, unless the command line alone says who
            // this instance is.
            (None, Some(_)) if self.overrides.instance_id.is_none() => {
                return Err(DatasourceError::Missing {
                    origin: source,
                    key: "meta-data".into(),
                });
            }
            (None, _) => MetaData {
                json: serde_json::json!({}),
                ..MetaData::default()
            },
        };
        if let serde_json::Value::Object(map) = &mut meta.json {
            if let Some(id) = &self.overrides.instance_id {
                map.insert("instance-id".into(), id.clone().into());
            }
            if let Some(h) = &self.overrides.local_hostname {
                map.insert("local-hostname".into(), h.clone().into());
            }
        }
        let instance_id = self
            .overrides
            .instance_id
            .clone()
            .or(meta.instance_id)
            .ok_or_else(|| DatasourceError::Missing {
                origin: source.clone(),
                key: "instance-id".into(),
            })?;
        check_id(&source, &instance_id)?;
        let local_hostname = self
            .overrides
            .local_hostname
            .clone()
            .or(meta.local_hostname);
        for (key, value) in [
            ("local-hostname", &local_hostname),
            ("hostname", &meta.hostname),
        ] {
            if let Some(v) = value {
                check_hostname(&source, key, v)?;
            }
        }
        Ok(InstanceData {
            datasource: "nocloud",
            source,
            instance_id,
            local_hostname,
            hostname: meta.hostname,
            availability_zone: None,
            public_keys: meta_public_keys(&meta.json),
            user_data: files.user_data,
            meta_data: meta.json,
            identity: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_urls() {
        assert_eq!(
            Seed::from_url("file:///srv/seed/"),
            Ok(Seed::Dir(PathBuf::from("/srv/seed/")))
        );
        assert_eq!(
            Seed::from_url("http://10.0.0.2:8000/seed"),
            Ok(Seed::Url("http://10.0.0.2:8000/seed/".into()))
        );
        assert!(Seed::from_url("file://relative").is_err());
        assert!(Seed::from_url("ftp://host/").is_err());
    }

    #[test]
    fn meta_data_keeps_scalars_as_written() {
        let meta = parse_meta_data(
            "seed",
            b"instance-id: 0123\nlocal-hostname: web1\nextra: {a: [1, ~]}\n",
        )
        .unwrap();
        assert_eq!(meta.instance_id.as_deref(), Some("0123"));
        assert_eq!(
            meta.json,
            serde_json::json!({"instance-id": "0123", "local-hostname": "web1", "extra": {"a": ["1", null]}})
        );
        assert!(parse_meta_data("seed", b"- a\n").is_err());
        assert!(parse_meta_data("seed", b"instance-id: [a]\n").is_err());
    }
}
