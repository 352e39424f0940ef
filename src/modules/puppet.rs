//! `puppet`: the agent's configuration, CA certificate and CSR attributes, its package, its
//! service and an optional first run.
//!
//! Everything the agent reads at its first start (puppet.conf, the CA certificate,
//! csr_attributes.yaml) is written *before* the package is installed, so no start of the
//! service, by the package or by anyone, can race ahead of it. csr_attributes.yaml carries the
//! pre-shared key and is written 0600 (cloud-init writes it 0644). The service is enabled, not
//! only started, so the agent also runs after a reboot (cloud-init 22.4 on Debian never enables
//! it).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::action::{APT_ENV, ActionKind, Frequency, PlanError, Stage, Text, apt_get};
use crate::decode::de::{RawScalar, ScalarKind, join_key};
use crate::module::{Checker, Module, Need, Planner};
use crate::values;

/// The top-level key `puppet` owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Puppet {
    /// The puppet agent: package, puppet.conf, CA certificate, CSR attributes, service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub puppet: Option<PuppetOptions>,
}
pub const SERVICE: &str = "puppet.service";

/// `puppet: {attest: aws_iid}`.
pub const ATTEST_AWS_IID: &str = "aws_iid";
/// Where user-given puppet paths may point (contract.md, "Paths and modes").
pub const ALLOWED_ROOTS: &[&str] = &[
    "/etc/puppet",
    "/etc/puppetlabs",
    "/var/lib/puppet",
    "/opt/puppetlabs",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstallType {
    /// The distribution's packages (`puppet`; Debian paths /etc/puppet, /var/lib/puppet).
    #[default]
    Packages,
    /// Puppet's all-in-one `puppet-agent` package, from an apt source you configure
    /// (/etc/puppetlabs, /opt/puppetlabs).
    Aio,
}

/// `exec_args`: a list of arguments, or one string split at spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ExecArgs {
    List(Vec<String>),
    Line(String),
}

impl ExecArgs {
    pub fn args(&self) -> Vec<String> {
        match self {
            ExecArgs::List(list) => list.clone(),
            ExecArgs::Line(line) => line.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for ExecArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = ExecArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of arguments or one string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ExecArgs::Line(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    list.push(arg);
                }
                Ok(ExecArgs::List(list))
            }
        }
        deserializer.deserialize_any(ArgsVisitor)
    }
}

/// `puppet.conf` settings by section, and `ca_cert`, the puppetmaster's CA certificate(s).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PuppetConf {
    pub ca_cert: Option<String>,
    pub sections: IndexMap<String, IndexMap<String, RawScalar>>,
}

/// puppet.conf settings by section (`main`, `agent`, ...), and `ca_cert`.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct PuppetConfSchema {
    /// The puppetmaster's CA certificate (PEM), written to `<ssl_dir>/certs/ca.pem`.
    ca_cert: Option<String>,
    /// Sections (`main`, `agent`, ...) of key/value settings; `certname` expands `%i` to the
    /// instance id and `%f` to the FQDN, lower-cased.
    #[serde(flatten)]
    sections: IndexMap<String, PuppetSectionSchema>,
}

/// One puppet.conf section: settings of one line each; `certname` is text.
struct PuppetSectionSchema;

impl JsonSchema for PuppetSectionSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PuppetSection".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let setting = generator.subschema_for::<RawScalar>();
        schemars::json_schema!({
            "description": "One puppet.conf section: settings of one line each.",
            "type": "object",
            "properties": {
                "certname": {
                    "description": "The agent's certificate name: text (a number is refused; \
                                    quote it), `%i` and `%f` expanded.",
                    "type": "string"
                }
            },
            "additionalProperties": setting
        })
    }
}

impl JsonSchema for PuppetConf {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PuppetConf".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        PuppetConfSchema::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for PuppetConf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConfVisitor;
        impl<'de> Visitor<'de> for ConfVisitor {
            type Value = PuppetConf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of puppet.conf sections")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut conf = PuppetConf::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "ca_cert" {
                        conf.ca_cert = Some(map.next_value()?);
                    } else {
                        let section: Option<IndexMap<String, RawScalar>> = map.next_value()?;
                        conf.sections.insert(key, section.unwrap_or_default());
                    }
                }
                Ok(conf)
            }
        }
        deserializer.deserialize_map(ConfVisitor)
    }
}

/// CSR attributes the agent puts into its certificate request (csr_attributes.yaml).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct CsrAttributes {
    /// Attributes of the request only, e.g. `challengePassword` (1.2.840.113549.1.9.7): the
    /// recommended place for a pre-shared key, as it is not copied into the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_attributes: Option<IndexMap<String, RawScalar>>,
    /// Extensions the CA copies into the signed certificate (`pp_instance_id`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_requests: Option<IndexMap<String, RawScalar>>,
}

/// `puppet:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct PuppetOptions {
    /// Install the agent package (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<bool>,
    /// Package version to install (`puppet=VERSION`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_type: Option<InstallType>,
    /// aio install script option: not supported (cloudcfg downloads no scripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// aio install script option: not supported (cloudcfg downloads no scripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aio_install_url: Option<String>,
    /// aio install script option: not supported (cloudcfg downloads no scripts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<bool>,
    /// Package name (default `puppet`, or `puppet-agent` for aio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_name: Option<String>,
    /// puppet.conf path (default /etc/puppet/puppet.conf; aio /etc/puppetlabs/puppet/puppet.conf).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf_file: Option<String>,
    /// SSL directory (default /var/lib/puppet/ssl; aio /etc/puppetlabs/puppet/ssl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_dir: Option<String>,
    /// csr_attributes.yaml path (default /etc/puppet/csr_attributes.yaml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csr_attributes_path: Option<String>,
    /// Run `puppet agent` once during first boot (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<bool>,
    /// Arguments of that run (default `--test`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_args: Option<ExecArgs>,
    /// Enable and start puppet.service (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_service: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<PuppetConf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csr_attributes: Option<CsrAttributes>,
    /// cloudcfg's extension: `aws_iid` adds EC2's signed instance identity (the document and
    /// its `rsa2048` PKCS#7 signature, from the metadata service) to the request's custom
    /// attributes, for the CA's `aws_identity` rule (docs/autosign.md). Custom attributes, not
    /// extension requests: they are not copied into the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attest: Option<String>,
}

/// The paths and names the module uses, after defaults.
pub struct Layout {
    pub conf_file: String,
    pub ssl_dir: String,
    pub csr_attributes_path: String,
    pub package: String,
    pub binary: &'static str,
}

impl PuppetOptions {
    pub fn install_type(&self) -> InstallType {
        self.install_type.unwrap_or_default()
    }

    pub fn layout(&self) -> Layout {
        let aio = self.install_type() == InstallType::Aio;
        let (etc, ssl, package, binary) = if aio {
            (
                "/etc/puppetlabs/puppet",
                "/etc/puppetlabs/puppet/ssl",
                "puppet-agent",
                "/opt/puppetlabs/bin/puppet",
            )
        } else {
            ("/etc/puppet", "/var/lib/puppet/ssl", "puppet", "puppet")
        };
        Layout {
            conf_file: self
                .conf_file
                .clone()
                .unwrap_or_else(|| format!("{etc}/puppet.conf")),
            ssl_dir: self.ssl_dir.clone().unwrap_or_else(|| ssl.to_owned()),
            csr_attributes_path: self
                .csr_attributes_path
                .clone()
                .unwrap_or_else(|| format!("{etc}/csr_attributes.yaml")),
            package: self
                .package_name
                .clone()
                .unwrap_or_else(|| package.to_owned()),
            binary,
        }
    }
}

/// Whether the config installs the agent package.
pub fn installs(config: &Puppet) -> bool {
    config
        .puppet
        .as_ref()
        .is_some_and(|p| p.install != Some(false))
}

fn check_ini_word(cx: &mut Checker<'_>, path: &str, what: &str, text: &str) {
    if text.trim().is_empty() {
        cx.error(path, format!("{what} must not be empty"));
    } else if text.contains(['\n', '\r', '[', ']']) {
        cx.error(
            path,
            format!("{what} {text:?} must not contain line breaks or brackets"),
        );
    } else if text.contains('=') && what != "value" {
        cx.error(path, format!("{what} {text:?} must not contain `=`"));
    } else if text.chars().any(|c| c.is_control() && c != '\t') {
        cx.error(
            path,
            format!("{what} {text:?} must not contain control characters"),
        );
    }
}

fn check_puppet(config: &Puppet, cx: &mut Checker<'_>) {
    let Some(puppet) = &config.puppet else {
        return;
    };
    if let Some(attest) = &puppet.attest
        && attest != ATTEST_AWS_IID
    {
        cx.error(
            "puppet.attest",
            format!("{attest:?} is not an attestation cloudcfg makes: {ATTEST_AWS_IID}"),
        );
    }
    for (key, value) in [
        ("conf_file", &puppet.conf_file),
        ("ssl_dir", &puppet.ssl_dir),
        ("csr_attributes_path", &puppet.csr_attributes_path),
    ] {
        if let Some(path) = value {
            cx.check(
                &format!("puppet.{key}"),
                values::path_under(path, ALLOWED_ROOTS),
            );
        }
    }
    check_written_paths(puppet, cx);
    if let Some(name) = &puppet.package_name {
        cx.check("puppet.package_name", values::package_name(name));
    }
    if let Some(version) = &puppet.version {
        cx.check("puppet.version", values::package_version(version));
        if puppet.install_type() == InstallType::Aio && !version.contains('-') {
            cx.warning(
                "puppet.version",
                format!(
                    "puppet-agent packages are versioned like {version}-1bookworm: \
                     apt-get install puppet-agent={version} matches only that exact version"
                ),
            );
        }
        if puppet.install == Some(false) {
            cx.warning(
                "puppet.version",
                "`install: false`: the version is not used",
            );
        }
    }
    for key in ["collection", "aio_install_url", "cleanup"] {
        let given = match key {
            "collection" => puppet.collection.is_some(),
            "aio_install_url" => puppet.aio_install_url.is_some(),
            _ => puppet.cleanup.is_some(),
        };
        if given {
            cx.warning(
                &format!("puppet.{key}"),
                "downloading puppet's install script is not supported: \
                 install puppet-agent from an apt source you configure (ignored)",
            );
        }
    }
    if let Some(args) = &puppet.exec_args {
        for (i, arg) in args.args().iter().enumerate() {
            cx.check(&format!("puppet.exec_args[{i}]"), values::single_line(arg));
        }
        if puppet.exec != Some(true) {
            cx.warning("puppet.exec_args", "not used unless `exec: true`");
        }
    }
    if let Some(conf) = &puppet.conf {
        if let Some(cert) = &conf.ca_cert {
            cx.check(
                "puppet.conf.ca_cert",
                values::pem_certificates(cert).map_err(|e| format!("ca_cert {e}")),
            );
        }
        for (section, settings) in &conf.sections {
            let section_path = join_key("puppet.conf", section);
            check_ini_word(cx, &section_path, "section name", section);
            for (key, value) in settings {
                let path = join_key(&section_path, key);
                check_ini_word(cx, &path, "key", key);
                if key == "certname" && value.kind != ScalarKind::Str {
                    cx.error(&path, "certname must be text (quote it)");
                    continue;
                }
                if value.kind == ScalarKind::Null {
                    cx.error(&path, "needs a value");
                    continue;
                }
                if value.text.contains(['\n', '\r', '[', ']']) {
                    cx.error(&path, "value must not contain line breaks or brackets");
                } else if value.text.chars().any(|c| c.is_control() && c != '\t') {
                    cx.error(&path, "value must not contain control characters");
                }
            }
        }
    }
    if let Some(csr) = &puppet.csr_attributes {
        for (name, map) in [
            ("custom_attributes", &csr.custom_attributes),
            ("extension_requests", &csr.extension_requests),
        ] {
            for (key, value) in map.iter().flatten() {
                let path = join_key(&format!("puppet.csr_attributes.{name}"), key);
                cx.check(&path, values::single_line(key));
                cx.check(&path, values::single_line(&value.text));
            }
        }
        if csr
            .extension_requests
            .as_ref()
            .is_some_and(|e| e.contains_key("pp_preshared_key"))
        {
            cx.warning(
                "puppet.csr_attributes.extension_requests.pp_preshared_key",
                "puppetserver copies extension requests into the signed certificate, where anyone \
                 can read this key: prefer custom_attributes.challengePassword",
            );
        }
    }
}

/// The files the module writes must be distinct (one would overwrite another: the CSR's
/// pre-shared key over puppet.conf, or puppet.conf's kept original) and short enough to be
/// written at all.
fn check_written_paths(puppet: &PuppetOptions, cx: &mut Checker<'_>) {
    let layout = puppet.layout();
    let conf = puppet.conf.as_ref();
    let mut written: Vec<(&str, String)> = Vec::new();
    if conf.is_some_and(|c| c.sections.values().any(|s| !s.is_empty())) {
        written.push(("puppet.conf_file", layout.conf_file.clone()));
        written.push(("puppet.conf_file", format!("{}.old", layout.conf_file)));
    }
    if conf.is_some_and(|c| c.ca_cert.is_some()) {
        written.push(("puppet.ssl_dir", format!("{}/certs/ca.pem", layout.ssl_dir)));
    }
    if puppet.csr_attributes.is_some() {
        written.push(("puppet.csr_attributes_path", layout.csr_attributes_path));
    }
    for (i, (key, path)) in written.iter().enumerate() {
        if let Err(e) = values::path_fits(path) {
            cx.error(key, format!("{path:?}: {e}"));
        }
        if let Some((other, _)) = written[..i].iter().find(|(_, p)| p == path) {
            cx.error(
                key,
                format!("{path} is also written for {other}: each file must be a different one"),
            );
        }
    }
}

/// `%i` -> instance id, `%f` -> FQDN, lower-cased (puppet refuses upper-case certnames).
fn expand_certname(planner: &Planner<'_>, template: &str) -> Result<String, PlanError> {
    let facts = planner.facts;
    let mut out = template.to_owned();
    if out.contains("%f") {
        let fqdn = facts.require(&facts.fqdn, "--fqdn", "the certname uses %f (the FQDN)")?;
        out = out.replace("%f", fqdn);
    }
    if out.contains("%i") {
        let id = facts.require(
            &facts.instance_id,
            "--instance-id",
            "the certname uses %i (the instance id)",
        )?;
        out = out.replace("%i", id);
    }
    Ok(out.to_lowercase())
}

/// csr_attributes.yaml as cloud-init writes it: `yaml.dump(..., default_flow_style=False)`.
pub fn csr_attributes_yaml(csr: &CsrAttributes) -> String {
    let mut groups: Vec<(&str, &IndexMap<String, RawScalar>)> = Vec::new();
    if let Some(c) = &csr.custom_attributes {
        groups.push(("custom_attributes", c));
    }
    if let Some(e) = &csr.extension_requests {
        groups.push(("extension_requests", e));
    }
    let mut out = String::new();
    for (name, map) in groups {
        if map.is_empty() {
            out.push_str(&format!("{name}: {{}}\n"));
            continue;
        }
        out.push_str(name);
        out.push_str(":\n");
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            out.push_str(&format!(
                "  {}: {}\n",
                pyyaml_scalar(&RawScalar::str(key.clone())),
                pyyaml_scalar(&map[key])
            ));
        }
    }
    if out.is_empty() {
        out.push_str("{}\n");
    }
    out
}

/// The keys inside csr_attributes.yaml, each a secret of its own besides the whole file, so
/// that command output quoting one is scrubbed before it reaches the run log (`puppet agent
/// --debug` prints every CSR attribute with its value): all custom attributes (they stay in the
/// request; challengePassword is one) and `pp_preshared_key`.
fn csr_secrets(csr: &CsrAttributes) -> Vec<String> {
    let custom = csr.custom_attributes.iter().flatten();
    let psk = csr.extension_requests.iter().flatten().filter(|(key, _)| {
        matches!(
            key.as_str(),
            "pp_preshared_key" | crate::autosign::PP_PRESHARED_KEY_OID
        )
    });
    custom
        .chain(psk)
        .map(|(_, value)| value.text.clone())
        .filter(|text| !text.is_empty())
        .collect()
}

/// One scalar as PyYAML's emitter writes it in block style.
fn pyyaml_scalar(value: &RawScalar) -> String {
    match value.kind {
        ScalarKind::Null => "null".into(),
        ScalarKind::Bool => match value.text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => "true".into(),
            _ => "false".into(),
        },
        ScalarKind::Int => {
            parse_yaml11_int(&value.text).map_or_else(|| value.text.clone(), |n| n.to_string())
        }
        ScalarKind::Float => value
            .text
            .replace('_', "")
            .parse::<f64>()
            .map_or_else(|_| value.text.clone(), python_float_repr),
        ScalarKind::Str => pyyaml_str(&value.text),
    }
}

fn parse_yaml11_int(text: &str) -> Option<i128> {
    let clean = text.replace('_', "");
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let n = if let Some(h) = body.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(b) = body.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i128::from_str_radix(&body[1..], 8).ok()?
    } else if body.contains(':') {
        body.split(':').try_fold(0i128, |acc, part| {
            Some(acc * 60 + part.parse::<i128>().ok()?)
        })?
    } else {
        body.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A string as PyYAML emits it: plain when that reads back as the same string, else quoted.
fn pyyaml_str(text: &str) -> String {
    let plain_ok = !text.is_empty()
        && !text.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`', ' ',
        ])
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !text.contains(" #")
        && text.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && crate::decode::yaml::Scalar {
            text: text.to_owned(),
            style: crate::decode::yaml::Style::Plain,
            tag: None,
        }
        .resolve()
            == crate::decode::yaml::Resolved::Str
        && !looks_like_timestamp(text);
    if plain_ok {
        return text.to_owned();
    }
    if text.chars().all(|c| !c.is_control() && c != '\u{feff}') && text.is_ascii() {
        return format!("'{}'", text.replace('\'', "''"));
    }
    serde_json::to_string(text).unwrap_or_else(|_| format!("'{text}'"))
}

fn looks_like_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && text[5..]
            .split(['-', 'T', 't', ' '])
            .next()
            .is_some_and(|m| !m.is_empty() && m.len() <= 2 && m.bytes().all(|c| c.is_ascii_digit()))
}

impl Module for Puppet {
    const NAME: &'static str = "puppet";
    const STAGE: Stage = Stage::Final;
    const FREQUENCY: Frequency = Frequency::PerInstance;

    fn check(&self, cx: &mut Checker<'_>) {
        check_puppet(self, cx);
    }

    fn needs(&self) -> Vec<Need> {
        if installs(self) {
            vec![Need::PackageLists("puppet is installed".to_owned())]
        } else {
            Vec::new()
        }
    }

    fn plan(&self, planner: &mut Planner<'_>) -> Result<(), PlanError> {
        plan_puppet(self, planner)
    }
}

fn plan_puppet(config: &Puppet, planner: &mut Planner<'_>) -> Result<(), PlanError> {
    let Some(puppet) = config.puppet.clone() else {
        return Ok(());
    };
    let layout = puppet.layout();
    if let Some(conf) = &puppet.conf {
        for (section, settings) in &conf.sections {
            for (key, value) in settings {
                let value = if key == "certname" {
                    expand_certname(planner, &value.text)?
                } else {
                    value.text.clone()
                };
                planner.push(ActionKind::EditIni {
                    path: layout.conf_file.clone(),
                    section: section.clone(),
                    key: key.clone(),
                    value,
                });
            }
        }
        if let Some(cert) = &conf.ca_cert {
            let mut text = cert.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            planner.write_file(
                format!("{}/certs/ca.pem", layout.ssl_dir),
                0o644,
                Text::plain(text),
            );
        }
    }
    let mut csr = puppet.csr_attributes.clone();
    if puppet.attest.as_deref() == Some(ATTEST_AWS_IID) {
        match &planner.facts.instance_identity {
            Some((document, signature)) => {
                use base64::Engine;
                let custom = csr
                    .get_or_insert_with(CsrAttributes::default)
                    .custom_attributes
                    .get_or_insert_with(IndexMap::new);
                let signature: String =
                    signature.chars().filter(|c| !c.is_whitespace()).collect();
                custom.insert(
                    crate::autosign::DOCUMENT_OID.to_owned(),
                    RawScalar::str(base64::engine::general_purpose::STANDARD.encode(document)),
                );
                custom.insert(
                    crate::autosign::SIGNATURE_OID.to_owned(),
                    RawScalar::str(signature),
                );
            }
            None => planner.warn(
                "puppet.attest",
                "no signed instance identity (not an EC2 instance, or its metadata service has \
                 none): the certificate request carries none",
            ),
        }
    }
    if let Some(csr) = &csr {
        let mut content = Text::secret(csr_attributes_yaml(csr));
        content.secrets.extend(csr_secrets(csr));
        planner.write_file(layout.csr_attributes_path.clone(), 0o600, content);
    }
    if puppet.install != Some(false) {
        let package = match &puppet.version {
            Some(version) => format!("{}={version}", layout.package),
            None => layout.package.clone(),
        };
        planner.command(apt_get(&["install", &package]), APT_ENV, None);
    }
    let start = puppet.start_service != Some(false);
    if start {
        planner.push(ActionKind::EnableService {
            unit: SERVICE.into(),
        });
    }
    if puppet.exec == Some(true) {
        let mut argv = vec![layout.binary.to_owned(), "agent".to_owned()];
        match &puppet.exec_args {
            Some(args) => argv.extend(args.args()),
            None => argv.push("--test".into()),
        }
        planner.push(ActionKind::Command {
            argv,
            env: Default::default(),
            stdin: None,
            ok_exit_codes: Some(vec![0, 2]),
        });
    }
    if start {
        planner.push(ActionKind::StartService {
            unit: SERVICE.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_attributes_dump_like_pyyaml() {
        let mut custom = IndexMap::new();
        custom.insert(
            "1.2.840.113549.1.9.7".to_owned(),
            RawScalar::str("342thbjkt82094y0uthhor289jnqthpc2290"),
        );
        let mut ext = IndexMap::new();
        ext.insert("pp_preshared_key".to_owned(), RawScalar::str("S3cret"));
        ext.insert("pp_cost_center".to_owned(), RawScalar::str("cc6000"));
        ext.insert("pp_number".to_owned(), RawScalar::str("1234"));
        let csr = CsrAttributes {
            custom_attributes: Some(custom),
            extension_requests: Some(ext),
        };
        assert_eq!(
            csr_attributes_yaml(&csr),
            "custom_attributes:\n  1.2.840.113549.1.9.7: 342thbjkt82094y0uthhor289jnqthpc2290\n\
             extension_requests:\n  pp_cost_center: cc6000\n  pp_number: '1234'\n  pp_preshared_key: S3cret\n"
        );
    }

    #[test]
    fn every_key_in_csr_attributes_is_a_secret_of_its_own() {
        let mut custom = IndexMap::new();
        custom.insert("challengePassword".to_owned(), RawScalar::str("S3cret"));
        let mut ext = IndexMap::new();
        ext.insert("pp_instance_id".to_owned(), RawScalar::str("i-0abc"));
        ext.insert("pp_preshared_key".to_owned(), RawScalar::str("Psk1"));
        ext.insert("1.3.6.1.4.1.34380.1.1.4".to_owned(), RawScalar::str("Psk2"));
        let csr = CsrAttributes {
            custom_attributes: Some(custom),
            extension_requests: Some(ext),
        };
        assert_eq!(csr_secrets(&csr), ["S3cret", "Psk1", "Psk2"]);
    }

    #[test]
    fn pyyaml_quotes_what_would_read_back_differently() {
        assert_eq!(pyyaml_str("yes"), "'yes'");
        assert_eq!(pyyaml_str("a: b"), "'a: b'");
        assert_eq!(pyyaml_str("it's"), "it's");
        assert_eq!(pyyaml_str("-x"), "'-x'");
        assert_eq!(pyyaml_str(""), "''");
        assert_eq!(pyyaml_str("2001-12-14"), "'2001-12-14'");
    }
}
