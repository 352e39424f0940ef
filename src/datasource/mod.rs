//! Datasources: where `cloudcfg run` learns who this instance is and what its user data says.
//!
//! One file per datasource behind the small [`Datasource`] trait; [`detect`] picks one without
//! network probes where the machine says what it is, and [`Choice::build`] is the dispatch
//! table. Detection order (docs/datasources.md):
//! 1. `--datasource ec2|nocloud` on the command line;
//! 2. the kernel command line: `cloudcfg.ds=ec2;url=...`, `cloudcfg.ds=nocloud;s=...`, or
//!    cloud-init's `ds=nocloud;s=...` / `ds=nocloud-net;...` / `ds=ec2`;
//! 3. the system config's `datasource_list` (default `[nocloud, ec2]`), in its order, each
//!    taken only on local evidence: NoCloud when a seed exists (the seed directory, a
//!    `cidata` filesystem), EC2 when DMI says so (`sys_vendor` "Amazon EC2", `product_version`
//!    containing "amazon", or `board_asset_tag` starting with "i-");
//! 4. EC2 without such evidence only when `datasource_list` is set explicitly and names it
//!    (EC2-compatible clouds, test VMs): a machine without a configured list never waits for
//!    169.254.169.254.
//!
//! The detected datasource is the one: when its fetch fails, the run stops with that error
//! rather than falling through to another source (which could configure the machine from
//! the wrong user data).
//!
//! With `--root DIR` ([`Host::image`]) nothing of the running host is read: no kernel command
//! line, no DMI, no block devices, only DIR's seed directory and the configured list.
//!
//! # Adding a datasource
//! 1. `src/datasource/<name>.rs`: a struct built from its settings (base URL, seed path: the
//!    constructor is the test seam, never test-only fields), implementing [`Datasource`];
//!    network reads go through [`http::agent`] and a [`Retry`].
//! 2. A variant in `system::DatasourceName` (and a settings struct in the system config
//!    when it has settings; regenerate the schema).
//! 3. A [`Choice`] variant, its arm in [`Choice::build`] and [`Choice::name`], its local evidence
//!    in [`detect`], its kernel command line name in [`parse_cmdline`].
//! 4. cloud-init's class name in `report::cloud_init_datasource`.
//! 5. Tests against a fake server on 127.0.0.1:0 (tests/support/http.rs) or fixture seeds in
//!    `tests/fixtures/<name>/<case>/`, and a section in docs/datasources.md.

pub mod ec2;
pub mod http;
pub mod nocloud;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::system::{DatasourceName, SystemConfig};
use crate::target::FactArgs;

pub use self::ec2::Ec2;
pub use self::http::Retry;
pub use self::nocloud::{NoCloud, Overrides, Seed};

/// A source of instance metadata and user data.
pub trait Datasource {
    /// The short name used in reports and status.json (`ec2`, `nocloud`).
    fn name(&self) -> &'static str;
    /// Reads everything cloudcfg needs about the instance, within the datasource's deadline.
    fn fetch(&self) -> Result<InstanceData, DatasourceError>;
}

/// What a datasource knows about the instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceData {
    pub datasource: &'static str,
    /// Where it came from: the metadata URL or the seed.
    pub source: String,
    /// Checked to be a plain file name (it names the state directory).
    pub instance_id: String,
    pub local_hostname: Option<String>,
    /// EC2's `hostname`, NoCloud's `hostname`: the FQDN when given.
    pub hostname: Option<String>,
    pub availability_zone: Option<String>,
    pub public_keys: Vec<String>,
    /// The raw user data; `None` when the datasource has none.
    pub user_data: Option<Vec<u8>>,
    /// The meta-data as read (EC2: the keys read; NoCloud: the whole meta-data file).
    pub meta_data: serde_json::Value,
    /// EC2's signed instance identity: the document (its bytes, as signed) and the `rsa2048`
    /// PKCS#7 signature (base64, as served), for `puppet: {attest: aws_iid}`.
    pub identity: Option<(Vec<u8>, String)>,
}

/// `ip-10-0-0-1` for `10.0.0.1`, as cloud-init names hosts whose metadata gives an address.
fn address_hostname(name: &str) -> Option<String> {
    name.parse::<Ipv4Addr>()
        .ok()
        .map(|ip| format!("ip-{}", ip.to_string().replace('.', "-")))
}

impl InstanceData {
    /// The short host name: `local-hostname` up to its first dot.
    pub fn short_hostname(&self) -> Option<String> {
        let local = self.local_hostname.as_deref()?;
        Some(
            address_hostname(local)
                .unwrap_or_else(|| local.split('.').next().unwrap_or(local).to_owned()),
        )
    }

    /// The FQDN: `hostname` when the meta-data has one, else `local-hostname` as given.
    pub fn fqdn(&self) -> Option<String> {
        self.hostname
            .as_deref()
            .or(self.local_hostname.as_deref())
            .map(|h| {
                let h = h.trim_end_matches('.');
                address_hostname(h).unwrap_or_else(|| h.to_owned())
            })
    }

    /// The facts this datasource gives; the release (and what is missing) comes from the target.
    pub fn fact_args(&self) -> FactArgs {
        FactArgs {
            instance_id: Some(self.instance_id.clone()),
            hostname: self.short_hostname(),
            fqdn: self.fqdn(),
            release: None,
        }
    }

    /// What instance-data.json keeps (the user data itself is stored beside it, raw).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "datasource": self.datasource,
            "source": self.source,
            "instance_id": self.instance_id,
            "local_hostname": self.local_hostname,
            "hostname": self.hostname,
            "availability_zone": self.availability_zone,
            "public_keys": self.public_keys,
            "user_data_bytes": self.user_data.as_ref().map(Vec::len),
            "meta_data": self.meta_data,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasourceError {
    #[error("no datasource found: {tried}")]
    NotFound { tried: String },
    #[error(
        "the instance metadata service is disabled ({url} answered 403 Forbidden); enable it \
         (EC2: `aws ec2 modify-instance-metadata-options --http-endpoint enabled`) or use another datasource"
    )]
    Disabled { url: String },
    #[error("{url}: HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{what}: gave up after {attempts} attempts in {seconds:.1} s (last: {last})")]
    Unreachable {
        what: String,
        attempts: u32,
        seconds: f64,
        last: String,
    },
    #[error("{origin}: no {key}")]
    Missing { origin: String, key: String },
    #[error("{origin}: {key}: {reason}")]
    Invalid {
        origin: String,
        key: String,
        reason: String,
    },
    #[error("{what}: larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("mounting {device} read-only: {reason}")]
    Mount { device: String, reason: String },
    #[error("kernel command line: {0}")]
    Cmdline(String),
}

impl DatasourceError {
    /// A stable short name for reports.
    pub fn reason(&self) -> &'static str {
        match self {
            DatasourceError::NotFound { .. } => "no-datasource",
            DatasourceError::Disabled { .. } => "imds-disabled",
            DatasourceError::Http { .. } => "http-status",
            DatasourceError::Transport { .. } => "transport",
            DatasourceError::Unreachable { .. } => "unreachable",
            DatasourceError::Missing { .. } => "missing-metadata",
            DatasourceError::Invalid { .. } => "invalid-metadata",
            DatasourceError::TooLarge { .. } => "too-large",
            DatasourceError::Io { .. } => "io",
            DatasourceError::Mount { .. } => "mount-failed",
            DatasourceError::Cmdline(_) => "cmdline",
        }
    }
}

/// The instance id names a directory: a plain file name (`crate::target::check_instance_id`).
pub(crate) fn check_id(origin: &str, id: &str) -> Result<(), DatasourceError> {
    crate::target::check_instance_id(id).map_err(|e| DatasourceError::Invalid {
        origin: origin.to_owned(),
        key: "instance-id".into(),
        reason: match e {
            crate::target::FactsError::BadInstanceId { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// A host name as metadata gives it: DNS labels of letters, digits and `-` (and `_`, which
/// some clouds use), joined by dots, or an IPv4 address. It ends up in files (puppet's
/// certname), so anything else is refused rather than passed on.
pub fn hostname_problem(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > 253 {
        return Some("is longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Some(format!(
                "{name:?} has a label of {} characters",
                label.len()
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Some(format!(
                "{name:?} may hold only letters, digits, `-`, `_` and dots"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("{name:?} has a label that starts or ends with `-`"));
        }
    }
    None
}

pub(crate) fn check_hostname(origin: &str, key: &str, value: &str) -> Result<(), DatasourceError> {
    match hostname_problem(value) {
        None => Ok(()),
        Some(reason) => Err(DatasourceError::Invalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            reason,
        }),
    }
}

/// Where detection looks. [`Host::running`] is this machine; [`Host::image`] is an image root,
/// where only the root's own files count; tests point the paths at fixture directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The target root; the NoCloud seed directory is read inside it.
    pub root: PathBuf,
    /// The kernel command line (`/proc/cmdline`), `None` for an image root.
    pub proc_cmdline: Option<PathBuf>,
    /// `/sys/class/dmi/id`, `None` for an image root.
    pub dmi_dir: Option<PathBuf>,
    /// `/dev/disk/by-label`, `None` for an image root.
    pub by_label_dir: Option<PathBuf>,
    /// Whether `blkid` may be asked for a `cidata` label (when udev has not made the link).
    pub blkid: bool,
}

/// Seed directories inside the root, in the order cloud-init reads them.
pub const SEED_DIRS: &[&str] = &[
    "var/lib/cloud/seed/nocloud",
    "var/lib/cloud/seed/nocloud-net",
];
/// Filesystem labels of a NoCloud seed.
pub const SEED_LABELS: &[&str] = &["cidata", "CIDATA"];

impl Host {
    pub fn running() -> Host {
        Host {
            root: PathBuf::from("/"),
            proc_cmdline: Some(PathBuf::from("/proc/cmdline")),
            dmi_dir: Some(PathBuf::from("/sys/class/dmi/id")),
            by_label_dir: Some(PathBuf::from("/dev/disk/by-label")),
            blkid: true,
        }
    }

    pub fn image(root: &Path) -> Host {
        Host {
            root: root.to_path_buf(),
            proc_cmdline: None,
            dmi_dir: None,
            by_label_dir: None,
            blkid: false,
        }
    }

    fn cmdline(&self) -> Result<Option<KernelDs>, DatasourceError> {
        let Some(path) = &self.proc_cmdline else {
            return Ok(None);
        };
        match std::fs::read_to_string(path) {
            Ok(text) => parse_cmdline(&text),
            Err(source) => Err(DatasourceError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The seed directory holding a `meta-data`, if any.
    pub fn seed_dir(&self) -> Option<PathBuf> {
        SEED_DIRS
            .iter()
            .map(|d| self.root.join(d))
            .find(|d| d.join("meta-data").is_file())
    }

    /// A block device labelled `cidata`, by udev's link or by asking blkid.
    pub fn seed_device(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.by_label_dir {
            for label in SEED_LABELS {
                let link = dir.join(label);
                if link.exists() {
                    return Some(std::fs::canonicalize(&link).unwrap_or(link));
                }
            }
        }
        if self.blkid {
            for label in SEED_LABELS {
                let out = std::process::Command::new("blkid")
                    .args([
                        "--match-token",
                        &format!("LABEL={label}"),
                        "--output",
                        "device",
                    ])
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .output();
                if let Ok(out) = out
                    && out.status.success()
                    && let Some(device) = String::from_utf8_lossy(&out.stdout).lines().next()
                    && !device.trim().is_empty()
                {
                    return Some(PathBuf::from(device.trim()));
                }
            }
        }
        None
    }

    /// Why DMI says this is EC2, or `None`.
    pub fn dmi_ec2(&self) -> Option<String> {
        let dir = self.dmi_dir.as_ref()?;
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        if let Some(v) = read("sys_vendor")
            && v == "Amazon EC2"
        {
            return Some(format!("DMI sys_vendor {v:?}"));
        }
        if let Some(v) = read("product_version")
            && v.to_ascii_lowercase().contains("amazon")
        {
            return Some(format!("DMI product_version {v:?}"));
        }
        if let Some(v) = read("board_asset_tag")
            && v.starts_with("i-")
        {
            return Some(format!("DMI board_asset_tag {v:?}"));
        }
        None
    }
}

/// A datasource named on the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelDs {
    pub name: DatasourceName,
    /// `key=value` pairs after the name, in order.
    pub params: Vec<(String, String)>,
    /// The parameter that named it: `cloudcfg.ds` or `ds`.
    pub via: &'static str,
}

impl KernelDs {
    /// The last value of any of `keys`.
    pub fn param(&self, keys: &[&str]) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a kernel command line into parameters, keeping double-quoted spaces.
fn cmdline_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Finds `cloudcfg.ds=NAME;k=v;...` (ours, which wins) or cloud-init's `ds=NAME;k=v;...`.
/// The last occurrence of a parameter counts, as for other kernel parameters. `\;` is read as
/// `;` (GRUB needs the escape). An unknown name after `cloudcfg.ds=` is an error; after `ds=` it
/// is left to cloud-init, with a warning.
pub fn parse_cmdline(text: &str) -> Result<Option<KernelDs>, DatasourceError> {
    let words = cmdline_words(text);
    let find = |prefix: &str| {
        words
            .iter()
            .rev()
            .find_map(|w| w.strip_prefix(prefix).map(|v| v.replace("\\;", ";")))
    };
    let (via, value) = match (find("cloudcfg.ds="), find("ds=")) {
        (Some(v), _) => ("cloudcfg.ds", v),
        (None, Some(v)) => ("ds", v),
        (None, None) => return Ok(None),
    };
    let mut parts = value.split(';');
    let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let name = match name.as_str() {
        "nocloud" | "nocloud-net" => DatasourceName::Nocloud,
        "ec2" => DatasourceName::Ec2,
        other if via == "ds" => {
            log::warn!(
                "kernel command line: ds={other} is not a datasource cloudcfg reads; ignored"
            );
            return Ok(None);
        }
        other => {
            return Err(DatasourceError::Cmdline(format!(
                "cloudcfg.ds={other}: unknown datasource (ec2, nocloud)"
            )));
        }
    };
    let params = parts
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Ok(Some(KernelDs { name, params, via }))
}

/// The datasource detection chose, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    Ec2 {
        url: String,
        retry: Retry,
    },
    NoCloud {
        seed: Option<Seed>,
        overrides: Overrides,
    },
}

/// Every name [`Choice::name`] gives, for reading a name back from a file.
pub const NAMES: &[&str] = &["ec2", "nocloud"];

impl Choice {
    pub fn name(&self) -> &'static str {
        match self {
            Choice::Ec2 { .. } => "ec2",
            Choice::NoCloud { .. } => "nocloud",
        }
    }

    /// The dispatch table: one arm per datasource.
    pub fn build(&self) -> Box<dyn Datasource> {
        match self {
            Choice::Ec2 { url, retry } => Box::new(Ec2::new(url, *retry)),
            Choice::NoCloud { seed, overrides } => {
                Box::new(NoCloud::with_overrides(seed.clone(), overrides.clone()))
            }
        }
    }
}

/// What [`detect`] found and why (logged, and kept in instance-data.json).
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub choice: Choice,
    pub why: String,
}

/// Picks the datasource: `requested` (`--datasource`), else the kernel command line, else the
/// system config's list on local evidence, else EC2 when the list names it explicitly.
pub fn detect(
    requested: Option<DatasourceName>,
    host: &Host,
    system: &SystemConfig,
) -> Result<Detected, DatasourceError> {
    let kernel = host.cmdline()?;
    let kernel_for = |name| kernel.as_ref().filter(|k| k.name == name);
    // Settings the kernel command line gives a datasource, whoever chose it.
    let ec2_url = match kernel_for(DatasourceName::Ec2).and_then(|k| k.param(&["url"])) {
        Some(url) => {
            crate::values::url(url).map_err(|e| DatasourceError::Cmdline(format!("url: {e}")))?;
            Some(url.to_owned())
        }
        None => None,
    };
    let nocloud = kernel_for(DatasourceName::Nocloud);
    let seed_from = match nocloud.and_then(|k| k.param(&["s", "seedfrom"])) {
        Some(url) => Some(Seed::from_url(url).map_err(DatasourceError::Cmdline)?),
        None => None,
    };
    let overrides = Overrides {
        instance_id: nocloud
            .and_then(|k| k.param(&["i", "instance-id"]))
            .map(str::to_owned),
        local_hostname: nocloud
            .and_then(|k| k.param(&["h", "local-hostname"]))
            .map(str::to_owned),
    };
    let find_seed = || {
        seed_from
            .clone()
            .or_else(|| host.seed_dir().map(Seed::Dir))
            .or_else(|| host.seed_device().map(Seed::Device))
    };
    let ec2 = |why: String| {
        let (url, retry) = ec2::settings(system, ec2_url.as_deref());
        Ok(Detected {
            choice: Choice::Ec2 { url, retry },
            why,
        })
    };
    let nocloud_with = |seed: Option<Seed>, why: String| {
        if seed.is_none() && overrides.instance_id.is_none() {
            return Err(DatasourceError::NotFound {
                tried: format!(
                    "{why}, but there is no NoCloud seed ({})",
                    seed_places(host)
                ),
            });
        }
        Ok(Detected {
            choice: Choice::NoCloud {
                seed,
                overrides: overrides.clone(),
            },
            why,
        })
    };
    let named = |name: DatasourceName, why: String| match name {
        DatasourceName::Ec2 => ec2(why),
        DatasourceName::Nocloud => nocloud_with(find_seed(), why),
    };

    if let Some(name) = requested {
        return named(name, "named by --datasource".into());
    }
    if let Some(k) = &kernel {
        return named(
            k.name,
            format!("named on the kernel command line ({}=)", k.via),
        );
    }
    let list = system.datasources();
    for name in &list {
        match name {
            DatasourceName::Nocloud => {
                if let Some(seed) = find_seed() {
                    let why = format!("NoCloud seed {seed}");
                    return nocloud_with(Some(seed), why);
                }
            }
            DatasourceName::Ec2 => {
                if let Some(evidence) = host.dmi_ec2() {
                    return ec2(evidence);
                }
            }
        }
    }
    if system.datasource_list.is_some() && list.contains(&DatasourceName::Ec2) {
        return ec2("ec2 is in the system config's datasource_list".into());
    }
    let mut tried = Vec::new();
    if list.contains(&DatasourceName::Nocloud) {
        tried.push(format!("no NoCloud seed ({})", seed_places(host)));
    }
    if list.contains(&DatasourceName::Ec2) {
        tried.push(match &host.dmi_dir {
            Some(dir) => format!(
                "DMI ({}) does not say EC2 and the system config does not list ec2",
                dir.display()
            ),
            None => "an image root has no DMI and the system config does not list ec2".into(),
        });
    }
    if tried.is_empty() {
        tried.push("the system config's datasource_list is empty".into());
    }
    Err(DatasourceError::NotFound {
        tried: tried.join("; "),
    })
}

fn seed_places(host: &Host) -> String {
    let mut places: Vec<String> = SEED_DIRS
        .iter()
        .map(|d| format!("{}/meta-data", host.root.join(d).display()))
        .collect();
    if host.by_label_dir.is_some() || host.blkid {
        places.push("a filesystem labelled cidata".into());
    }
    places.join(", ")
}

#[cfg(test)]
mod tests;
