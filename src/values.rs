//! Checks of single values that several modules share. Each returns the reason a value is
//! refused, in words a user can act on; [`super::Checker`] adds the position.

use std::sync::LazyLock;

use regex::Regex;

/// A name that becomes one path component: `filename`, v3 source names, instance ids.
pub fn plain_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.contains('/') {
        return Err(format!("{name:?} must be a plain file name, without `/`"));
    }
    if name.contains("..") || name == "." {
        return Err(format!("{name:?} must be a plain file name, without `..`"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?} must not contain control characters"));
    }
    if name.len() > 200 {
        return Err("file name longer than 200 bytes".into());
    }
    Ok(())
}

/// A name under /etc/apt/sources.list.d or /etc/apt/keyrings (a v3 source name, `filename`):
/// apt reads only the files of sources.list.d named with ASCII letters, digits, `_`, `-`, `.`
/// and `:`, and skips the others without a word, so such a source would silently do nothing;
/// and the keyring path goes into `signed-by=`, where a space or `]` would break the line.
pub fn apt_file_name(name: &str) -> Result<(), String> {
    plain_file_name(name)?;
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        Some(c) => Err(format!(
            "{name:?}: apt reads only file names of ASCII letters, digits, `_`, `-`, `.` and `:` \
             (it skips the others silently); {c:?} is not one"
        )),
        None => Ok(()),
    }
}

/// Linux's limits on a path that is written: NAME_MAX per component, PATH_MAX in all.
pub fn path_fits(path: &str) -> Result<(), String> {
    if path.len() > 4095 {
        return Err(format!(
            "path of {} bytes: at most 4095 are allowed",
            path.len()
        ));
    }
    if let Some(long) = path.split('/').find(|c| c.len() > 255) {
        return Err(format!(
            "path component of {} bytes ({}…): at most 255 are allowed",
            long.len(),
            long.chars().take(20).collect::<String>()
        ));
    }
    Ok(())
}

/// A value that ends up on one line of a file.
pub fn single_line(value: &str) -> Result<(), String> {
    if value.contains(['\n', '\r']) {
        return Err("must be a single line (it contains a line break)".into());
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// An OpenPGP key id or fingerprint as users write it: hex, spaces allowed, `0x` prefix allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(text: &str) -> Result<KeyId, String> {
        let compact: String = text.chars().filter(|c| *c != ' ').collect();
        let hex = compact
            .strip_prefix("0x")
            .or_else(|| compact.strip_prefix("0X"))
            .unwrap_or(&compact);
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "keyid {text:?} must be hexadecimal (a key id or fingerprint)"
            ));
        }
        if !matches!(hex.len(), 8 | 16 | 40) {
            return Err(format!(
                "keyid {text:?} has {} hex digits: a key id has 8 or 16, a fingerprint 40",
                hex.len()
            ));
        }
        Ok(KeyId(hex.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_short(&self) -> bool {
        self.0.len() == 8
    }

    /// Whether a key with this fingerprint is the one asked for.
    pub fn matches(&self, fingerprint: &str) -> bool {
        fingerprint.to_ascii_uppercase().ends_with(&self.0)
    }
}

/// The fingerprints (upper-case hex, primary key and subkeys) of every public key in an
/// ASCII-armored block.
pub fn armored_key_fingerprints(text: &str) -> Result<Vec<String>, String> {
    use pgp::composed::{Deserializable, SignedPublicKey};
    use pgp::types::KeyDetails;

    if !text
        .trim_start()
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    {
        return Err("must be an ASCII-armored OpenPGP public key block \
                    (-----BEGIN PGP PUBLIC KEY BLOCK-----)"
            .into());
    }
    let (keys, _headers) = SignedPublicKey::from_string_many(text)
        .map_err(|e| format!("is not a readable OpenPGP public key: {}", pgp_reason(&e)))?;
    let mut fingerprints = Vec::new();
    for key in keys {
        let key =
            key.map_err(|e| format!("is not a readable OpenPGP public key: {}", pgp_reason(&e)))?;
        fingerprints.push(format!("{:X}", key.primary_key.fingerprint()));
        for sub in &key.public_subkeys {
            fingerprints.push(format!("{:X}", sub.key.fingerprint()));
        }
    }
    if fingerprints.is_empty() {
        return Err("contains no OpenPGP public key".into());
    }
    Ok(fingerprints)
}

/// Why apt 3, which verifies with Sequoia's `sqv` (Debian 13's policy,
/// /usr/share/apt/default-sequoia.config), would refuse signatures of this key block, naming
/// the key: RSA under 2048 bits, DSA (refused since 2024-02-01), or self-signatures made with
/// SHA-1 or weaker (refused since 2026-02-01). `None` when every key is acceptable. apt 2.6 and
/// gpgv accept all of these, so the caller decides whether the target's apt is apt 3.
pub fn apt3_refusal(text: &str) -> Option<String> {
    use pgp::composed::{Deserializable, SignedPublicKey};
    use pgp::crypto::hash::HashAlgorithm;
    use pgp::types::{KeyDetails, PublicParams};
    use rsa::traits::PublicKeyParts;

    let (keys, _) = SignedPublicKey::from_string_many(text).ok()?;
    for key in keys.flatten() {
        let fingerprint = format!("{:X}", key.primary_key.fingerprint());
        let refuse = |why: String| Some(format!("apt 3 (sqv) refuses key {fingerprint}: {why}"));
        let params = std::iter::once(key.primary_key.public_params())
            .chain(key.public_subkeys.iter().map(|s| s.key.public_params()));
        for p in params {
            match p {
                PublicParams::RSA(rsa) if rsa.key.n().bits() < 2048 => {
                    return refuse(format!(
                        "RSA with {} bits (2048 at least)",
                        rsa.key.n().bits()
                    ));
                }
                PublicParams::DSA(_) => {
                    return refuse("a DSA key (refused since 2024-02-01)".into());
                }
                _ => {}
            }
        }
        let weak = |alg: Option<HashAlgorithm>| {
            matches!(
                alg,
                Some(HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160)
            )
        };
        let self_signatures = key
            .details
            .users
            .iter()
            .flat_map(|u| u.signatures.iter())
            .chain(key.details.direct_signatures.iter())
            .chain(key.public_subkeys.iter().flat_map(|s| s.signatures.iter()));
        for sig in self_signatures {
            if weak(sig.hash_alg()) {
                return refuse(format!(
                    "a self-signature made with {:?} (SHA-1 and weaker are refused since 2026-02-01)",
                    sig.hash_alg().unwrap_or(HashAlgorithm::Sha1)
                ));
            }
        }
    }
    None
}

/// pgp's reason for refusing a key, without the backtrace that some of its errors carry:
/// `InvalidPacketContent` prints its cause with `{:?}`, which includes a captured backtrace
/// whenever RUST_BACKTRACE is set, so the diagnostic became a hundred-frame dump and took
/// 150 ms or more to symbolize (found by timing the fuzz corpus).
fn pgp_reason(error: &pgp::errors::Error) -> String {
    match error {
        pgp::errors::Error::InvalidPacketContent { source } => {
            format!("invalid packet content: {}", pgp_reason(source))
        }
        other => other.to_string(),
    }
}

/// The subjects of every certificate in a PEM block (a CA bundle may hold several).
pub fn pem_certificates(text: &str) -> Result<Vec<String>, String> {
    let mut subjects = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| format!("is not a readable PEM certificate: {e}"))?;
        if pem.label != "CERTIFICATE" {
            return Err(format!(
                "must hold certificates only, found a PEM block labelled {:?}",
                pem.label
            ));
        }
        let cert = pem
            .parse_x509()
            .map_err(|e| format!("is not a readable X.509 certificate: {e}"))?;
        subjects.push(cert.subject().to_string());
    }
    if subjects.is_empty() {
        return Err("must be a PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(subjects)
}

static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$").expect("static regex"));
static RELEASE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9.+~-]*$").expect("static regex"));

/// A package as apt-get takes it: `name`, `name:arch`, `name=version` or `name/release`.
pub fn package_spec(spec: &str) -> Result<(), String> {
    package_spec_parts(spec).map_err(|reason| {
        if reason.starts_with(&format!("{spec:?}")) {
            reason
        } else {
            format!("{spec:?}: {reason}")
        }
    })
}

fn package_spec_parts(spec: &str) -> Result<(), String> {
    if let Some((name, version)) = spec.split_once('=') {
        package_name(name)?;
        return package_version(version);
    }
    if let Some((name, release)) = spec.split_once('/') {
        package_name(name)?;
        if !RELEASE_NAME.is_match(release) {
            return Err(format!("{release:?} is not a release name"));
        }
        return Ok(());
    }
    package_name(spec)
}

static SNAP_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(-[a-z0-9]+)*$").expect("static regex"));
static SNAP_OPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^--[a-z][a-z-]*(=[A-Za-z0-9._/+-]+)?$").expect("static regex"));

/// The snap store's rule: lower-case letters, digits and single hyphens, at most 40.
pub fn snap_name(name: &str) -> Result<(), String> {
    match name.len() <= 40
        && SNAP_NAME.is_match(name)
        && name.chars().any(|c| c.is_ascii_lowercase())
    {
        true => Ok(()),
        false => Err(format!(
            "{name:?} is not a snap name (lower-case letters, digits, single hyphens, at most 40)"
        )),
    }
}

/// The second item of a snap entry: one `snap install` option (`--classic`,
/// `--channel=5.15/stable`), never a second snap or a shell word.
pub fn snap_option(option: &str) -> Result<(), String> {
    match SNAP_OPTION.is_match(option) {
        true => Ok(()),
        false => Err(format!(
            "{option:?} is not a `snap install` option (`--classic`, `--channel=CHANNEL`)"
        )),
    }
}

/// Debian policy 5.6.1: lower-case letters, digits, `+`, `-`, `.`; at least two characters,
/// starting with a letter or digit.
pub fn package_name(name: &str) -> Result<(), String> {
    if is_package_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`)"
        ))
    }
}

/// `name` or `name:arch`. By hand rather than a regex: it runs once per package, and lists run
/// to 20,000 of them.
fn is_package_name(name: &str) -> bool {
    let (base, arch) = match name.split_once(':') {
        Some((base, arch)) => (base, Some(arch)),
        None => (name, None),
    };
    let lower_or_digit = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let base_ok = match base.as_bytes() {
        [first, rest @ ..] => {
            lower_or_digit(*first)
                && !rest.is_empty()
                && rest
                    .iter()
                    .all(|&c| lower_or_digit(c) || matches!(c, b'+' | b'.' | b'-'))
        }
        [] => false,
    };
    base_ok
        && arch.is_none_or(|arch| {
            !arch.is_empty() && arch.bytes().all(|c| lower_or_digit(c) || c == b'-')
        })
}

/// Debian policy 5.6.12: `[epoch:]upstream[-revision]`, upstream starting with a digit.
pub fn package_version(version: &str) -> Result<(), String> {
    if VERSION.is_match(version) {
        Ok(())
    } else {
        Err(format!(
            "{version:?} is not a Debian version ([epoch:]upstream[-revision], starting with a digit)"
        ))
    }
}

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+(/[^\s]*)?$").expect("static regex")
});

/// An absolute URL on one line (proxies, mirrors, keyservers given as URLs). Characters that
/// RFC 3986 never allows in a URL are refused: a `"` would end the quoted value of the apt.conf
/// proxy line and let the rest be read as apt configuration.
pub fn url(value: &str) -> Result<(), String> {
    single_line(value)?;
    if let Some(c) = value.chars().find(|c| "\"<>\\^`{|}".contains(*c)) {
        return Err(format!(
            "{value:?} is not a URL: {c:?} is not allowed in one"
        ));
    }
    if URL.is_match(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a URL (scheme://host[:port][/path])"
        ))
    }
}

/// Whether a URL carries `user[:password]@` before its host.
pub fn url_userinfo(value: &str) -> Option<&str> {
    let rest = &value[value.find("://")? + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rfind('@').map(|at| &authority[..at])
}

/// A keyserver: a bare host name, or an `hkp://`, `hkps://`, `http://` or `https://` URL.
pub fn keyserver(value: &str) -> Result<(), String> {
    single_line(value)?;
    if url_userinfo(value).is_some() {
        // fetch_key shows its keyserver in the plan and logs, where nothing is redacted.
        return Err(format!(
            "keyserver {value:?}: a keyserver takes no credentials (`user:password@`)"
        ));
    }
    if value.contains("://") {
        let scheme = value.split("://").next().unwrap_or_default();
        if !matches!(scheme, "hkp" | "hkps" | "http" | "https") {
            return Err(format!(
                "keyserver {value:?}: scheme must be hkp, hkps, http or https"
            ));
        }
        return url(value);
    }
    let host_ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if host_ok {
        Ok(())
    } else {
        Err(format!("keyserver {value:?} is not a host name or URL"))
    }
}

/// The keyserver URL to fetch from (contract.md: a bare host means `hkps://HOST`).
pub fn keyserver_url(value: &str) -> String {
    if value.contains("://") {
        value.trim_end_matches('/').to_owned()
    } else {
        format!("hkps://{value}")
    }
}

/// A one-line `deb`/`deb-src` entry as sources.list(5) has it; `$VARIABLES` count as words.
pub fn deb_line(line: &str) -> Result<(), String> {
    single_line(line)?;
    let line = line.trim();
    let (kind, rest) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("{line:?} is not a `deb` line (deb URI SUITE [COMPONENT...])"))?;
    if kind != "deb" && kind != "deb-src" {
        return Err(format!(
            "{line:?} must start with `deb` or `deb-src` (or be `ppa:owner/name`)"
        ));
    }
    let mut rest = rest.trim_start();
    if rest.starts_with('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| "options `[...]` are not closed with `]`".to_string())?;
        let options = &rest[1..end];
        for option in options.split_whitespace() {
            if !option.contains('=') {
                return Err(format!("option {option:?} must be `name=value`"));
            }
        }
        rest = rest[end + 1..].trim_start();
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let Some(uri) = words.first() else {
        return Err(format!("{line:?} has no URI"));
    };
    let is_variable = |w: &str| w.starts_with('$');
    if !is_variable(uri) && !uri.contains(':') {
        return Err(format!(
            "{uri:?} is not a URI (e.g. http://deb.debian.org/debian)"
        ));
    }
    let Some(suite) = words.get(1) else {
        return Err(format!("{line:?} has no suite (e.g. bookworm)"));
    };
    if !suite.ends_with('/') && words.len() < 3 {
        return Err(format!(
            "{line:?} needs at least one component after the suite (e.g. main), \
             unless the suite is an exact path ending in `/`"
        ));
    }
    Ok(())
}

/// `ppa:owner/name`, as add-apt-repository takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ppa {
    pub owner: String,
    pub name: String,
}

static PPA_PART: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9+.-]*$").expect("static regex"));

impl Ppa {
    /// `None` when `source` is not a PPA shortcut at all.
    pub fn parse(source: &str) -> Option<Result<Ppa, String>> {
        let spec = source.trim().strip_prefix("ppa:")?;
        let Some((owner, name)) = spec.split_once('/') else {
            return Some(Err(format!(
                "{source:?}: a PPA is `ppa:owner/name` (the owner is missing)"
            )));
        };
        if !PPA_PART.is_match(owner) || !PPA_PART.is_match(name) {
            return Some(Err(format!(
                "{source:?}: PPA owner and name are lower-case letters, digits, `+`, `-`, `.`"
            )));
        }
        Some(Ok(Ppa {
            owner: owner.into(),
            name: name.into(),
        }))
    }

    /// `owner-ubuntu-name`, the file stem add-apt-repository uses.
    pub fn stem(&self) -> String {
        format!("{}-ubuntu-{}", self.owner, self.name)
    }
}

/// A path a module writes: one line, absolute, normalised (no `.`, `..` or empty components,
/// so nothing climbs out of an image root), within Linux's limits.
pub fn absolute_path(path: &str) -> Result<(), String> {
    single_line(path)?;
    if !path.starts_with('/') {
        return Err(format!("{path:?} must be an absolute path"));
    }
    if path
        .split('/')
        .skip(1)
        .any(|c| c == ".." || c == "." || c.is_empty())
    {
        return Err(format!(
            "{path:?} must be a normalised path (no `.`, `..` or `//`)"
        ));
    }
    path_fits(path)
}

/// A path the puppet module may write: absolute, normalised, under one of `roots`.
pub fn path_under(path: &str, roots: &[&str]) -> Result<(), String> {
    absolute_path(path)?;
    if roots.iter().any(|root| {
        path.len() > root.len() && path.starts_with(root) && path[root.len()..].starts_with('/')
    }) {
        Ok(())
    } else {
        Err(format!("{path:?} must lie under {}", roots.join(", ")))
    }
}

/// Schema of text that may be written as a bare number (`keyid: 12345678`, `[hello, 2.10]`):
/// read as the characters written.
#[derive(schemars::JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
pub enum TextOrNumber {
    Text(String),
    Number(f64),
}

#[cfg(test)]
mod tests {

    #[test]
    fn keys_apt_3_would_refuse_are_named_with_the_reason() {
        let good = include_str!("../tests/compat/keys/throwaway.asc");
        assert_eq!(apt3_refusal(good), None);
        let rsa = apt3_refusal(include_str!("../tests/compat/keys/weak-rsa1024.asc")).unwrap();
        assert!(rsa.contains("RSA with 1024 bits"), "{rsa}");
        let sha1 = apt3_refusal(include_str!("../tests/compat/keys/sha1-selfsig.asc")).unwrap();
        assert!(
            sha1.contains("Sha1") && sha1.contains("2026-02-01"),
            "{sha1}"
        );
        assert!(sha1.starts_with("apt 3 (sqv) refuses key "), "{sha1}");
    }

    use super::*;

    #[test]
    fn package_names_follow_policy_and_the_arch_suffix() {
        // The grammar as a regex, next to the hand-written check that replaced it.
        let grammar = Regex::new(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$").unwrap();
        let names = [
            "",
            "a",
            "ab",
            "0ad",
            "g++",
            "libc6:i386",
            "libc6:",
            ":amd64",
            "libc6:i386:x",
            "Foo",
            "-ab",
            "+ab",
            ".ab",
            "a b",
            "ab;ls",
            "ab\n",
            "ab:x86_64",
            "ab:arm-64",
            "lib.x+y-z",
            "é",
            "ab\u{0}",
        ];
        for name in names {
            assert_eq!(is_package_name(name), grammar.is_match(name), "{name:?}");
        }
        assert!(package_name("libc6:i386").is_ok());
        assert!(package_name("ab;ls").is_err());
    }

    #[test]
    fn file_names() {
        assert!(plain_file_name("00-boot-sources.list").is_ok());
        assert!(plain_file_name("../../etc/evil").is_err());
        assert!(plain_file_name("a/b").is_err());
        assert!(plain_file_name("a\u{7}b").is_err());
        assert!(plain_file_name("").is_err());
    }

    #[test]
    fn apt_file_names() {
        assert!(apt_file_name("00-boot-sources.list").is_ok());
        assert!(apt_file_name("docker_ce:x").is_ok());
        assert!(apt_file_name("a b").is_err());
        assert!(apt_file_name("a]b").is_err());
        assert!(apt_file_name("a+b").is_err());
        assert!(path_fits(&format!("/etc/puppet/{}", "x".repeat(256))).is_err());
        assert!(path_fits(&format!("/etc/puppet/{}", "x".repeat(255))).is_ok());
    }

    #[test]
    fn key_ids() {
        assert_eq!(
            KeyId::parse("b54f83ba163d7715").unwrap().as_str(),
            "B54F83BA163D7715"
        );
        assert!(KeyId::parse("12345678").unwrap().is_short());
        let fpr = KeyId::parse("897F B1D8 6845 F884 F323  74A8 B54F 83BA 163D 7715").unwrap();
        assert!(fpr.matches("897FB1D86845F884F32374A8B54F83BA163D7715"));
        assert!(KeyId::parse("0xB54F83BA163D7715").is_ok());
        assert!(KeyId::parse("1234567").is_err());
        assert!(KeyId::parse("12345678; rm -rf /").is_err());
        assert!(KeyId::parse("GGGGGGGG").is_err());
    }

    #[test]
    fn deb_lines() {
        assert!(deb_line("deb http://deb.debian.org/debian bookworm main").is_ok());
        assert!(deb_line("deb [arch=amd64 signed-by=$KEY_FILE] $MIRROR $RELEASE main").is_ok());
        assert!(deb_line("deb http://local.example.org/debs ./").is_ok());
        assert!(deb_line("deb ./").is_err());
        assert!(deb_line("deb http://x bookworm").is_err());
        assert!(deb_line("deb http://x bookworm main\ndeb http://y z main").is_err());
        assert!(deb_line("rpm http://x bookworm main").is_err());
    }

    #[test]
    fn packages() {
        assert!(package_spec("openssh-server").is_ok());
        assert!(package_spec("libc6:i386").is_ok());
        assert!(package_spec("hello=2.10-3").is_ok());
        assert!(package_spec("hello/bookworm-backports").is_ok());
        assert!(package_spec("hello; rm -rf /").is_err());
        assert!(package_spec("Hello").is_err());
        assert!(package_spec("-oDebug=1").is_err());
        assert!(package_version("1:2.3~rc1-1+b1").is_ok());
        assert!(package_version("$(reboot)").is_err());
    }

    #[test]
    fn ppas() {
        assert_eq!(
            Ppa::parse("ppa:example-team/example-ppa")
                .unwrap()
                .unwrap()
                .stem(),
            "example-team-ubuntu-example-ppa"
        );
        assert!(Ppa::parse("ppa:nameonly").unwrap().is_err());
        assert!(Ppa::parse("deb http://x y z").is_none());
    }

    #[test]
    fn urls_refuse_what_rfc_3986_never_allows() {
        assert!(url("http://proxy.example.org:3128").is_ok());
        assert!(url("http://h\";Acquire::AllowInsecureRepositories\"true").is_err());
        assert!(url("http://h/a\\b").is_err());
    }

    #[test]
    fn url_userinfo_is_found() {
        assert_eq!(url_userinfo("http://u:p@proxy:3128"), Some("u:p"));
        assert_eq!(url_userinfo("http://proxy:3128/a@b"), None);
        assert!(keyserver("https://u:p@ks.example.org").is_err());
    }

    #[test]
    fn puppet_paths() {
        let roots = ["/etc/puppet", "/var/lib/puppet"];
        assert!(path_under("/etc/puppet/puppet.conf", &roots).is_ok());
        assert!(path_under("/etc/puppet/../shadow", &roots).is_err());
        assert!(path_under("/etc/puppetx/a", &roots).is_err());
        assert!(path_under("etc/puppet/a", &roots).is_err());
    }
}

/// A host name as the kernel and resolvers take it (RFC 1123): dot-separated labels of
/// letters, digits and inner `-`, each 1 to 63 bytes, 253 bytes in all; the first label at
/// most 63, since the kernel keeps at most 64 bytes.
pub fn host_name(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(label_ok)
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match name_ok {
        true => Ok(()),
        false => Err(format!(
            "{:?} is not a valid hostname (labels of letters, digits and inner `-`, 1 to 63 each, joined by `.`)",
            name.chars().take(80).collect::<String>()
        )),
    }
}

/// A user or group name as Debian's useradd and adduser accept it: a letter, digit or `_`
/// first, then letters, digits, `_`, `.`, `-`, an optional final `$` (Samba machine accounts),
/// at most 32 bytes. No name may be all digits: it would read as an id.
pub fn account_name(name: &str) -> Result<(), String> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let first_ok = body
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.len() > 32 || !first_ok || !rest_ok || body.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{name:?} is not a user or group name (letters, digits, `_`, `.`, `-`, at most 32, \
             not all digits)"
        ));
    }
    Ok(())
}

/// One item of `bootcmd` or `runcmd`: a shell line, or an argv whose words are quoted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ShellCommand {
    Line(String),
    Argv(Vec<String>),
}

impl<'de> serde::Deserialize<'de> for ShellCommand {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> serde::de::Visitor<'de> for CommandVisitor {
            type Value = ShellCommand;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a shell line (text) or an argv (a list of text)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ShellCommand, E> {
                Ok(ShellCommand::Line(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ShellCommand, A::Error> {
                let mut words = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    words.push(word);
                }
                Ok(ShellCommand::Argv(words))
            }
        }
        deserializer.deserialize_any(CommandVisitor)
    }
}

impl ShellCommand {
    /// The item as a line of a `/bin/sh` script, as cloud-init's `shellify` writes it: a line
    /// as given, an argv with every word in single quotes.
    pub fn script_line(&self) -> String {
        match self {
            ShellCommand::Line(line) => line.clone(),
            ShellCommand::Argv(words) => words
                .iter()
                .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// A script's text cannot hold NUL, and an empty argv is no command.
    pub fn check(&self) -> Result<(), String> {
        match self {
            ShellCommand::Argv(words) if words.is_empty() => {
                Err("an empty list is no command".into())
            }
            ShellCommand::Line(text) if text.contains('\0') => {
                Err("a shell line cannot hold a NUL byte".into())
            }
            ShellCommand::Argv(words) if words.iter().any(|w| w.contains('\0')) => {
                Err("a word cannot hold a NUL byte".into())
            }
            _ => Ok(()),
        }
    }
}

/// The `/bin/sh` script of a list of commands (cloud-init's `shellify`).
pub fn shell_script(commands: &[ShellCommand]) -> String {
    let mut script = String::from("#!/bin/sh\n");
    for command in commands {
        script.push_str(&command.script_line());
        script.push('\n');
    }
    script
}
