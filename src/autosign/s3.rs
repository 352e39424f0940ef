//! The S3 store of expected certnames (`expected_certnames: s3://bucket/prefix/`): one object
//! per expected certname, `prefix + CERTNAME` (or the instance id), written by the launchers
//! (`cloudcfg autosign expect`), read by every CA replica.
//!
//! Claiming is sign-once across replicas: a replica that decides to sign first creates
//! `prefix + "claimed/" + NAME` with `If-None-Match: *`, which S3 (and compatible stores that
//! implement conditional writes) lets exactly one request do; the others get 412 and refuse.
//! The claim marker stays, so a replay of the same name is refused too, until an operator
//! removes it. Requests are signed with SigV4 by `rusty-s3` and sent with the same bounded
//! HTTP client as key fetches; every failure of the store refuses (fail closed).

use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::error::AutosignError;

/// Where the claim markers of a store's expectations live, under its prefix.
pub const CLAIMED: &str = "claimed/";

/// How long a presigned request stays valid: it is sent at once.
const PRESIGN_FOR: Duration = Duration::from_secs(60);

/// More than any expectation object; a bigger answer is garbage.
const MAX_OBJECT_BYTES: u64 = 4096;

/// `s3://bucket/prefix/`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Empty, or ending with `/`.
    pub prefix: String,
}

impl S3Location {
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3://bucket/prefix/ URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules, which also keep the name safe in a host or a path.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!("{bucket:?} is not an S3 bucket name"));
        }
        let prefix_ok = prefix.is_empty()
            || (prefix.ends_with('/')
                && prefix.split('/').all(|p| p != "." && p != "..")
                && !prefix.starts_with('/')
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)));
        if !prefix_ok {
            return Err(format!(
                "prefix {prefix:?}: letters, digits, `-`, `_`, `.`, ending with `/`"
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("s3://{bucket}/{key}: {reason}")]
pub struct StoreError {
    pub bucket: String,
    pub key: String,
    pub reason: String,
}

/// A store, ready to ask: its bucket and endpoint, credentials, a bounded client.
pub struct S3Store {
    location: S3Location,
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("S3Store")
            .field("bucket", &self.location.bucket)
            .field("prefix", &self.location.prefix)
            .field("endpoint", &self.bucket.base_url().as_str())
            .finish()
    }
}

/// What the environment (or the policy) says about the endpoint and region.
pub struct Endpoint {
    pub url: Option<String>,
    pub region: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The credentials of the usual chain: the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`; profile `AWS_PROFILE`, else
/// `default`), then the CA host's instance profile through IMDSv2.
fn credentials(deadline: Duration) -> Result<Credentials, String> {
    match file_or_env_credentials() {
        Ok(c) => Ok(c),
        Err(none) => instance_profile(deadline).map_err(|e| format!("{none}; {e}")),
    }
}

/// The instance profile's temporary credentials, as the AWS SDKs fetch them: an IMDSv2 token,
/// the role's name, its credentials (`AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides the
/// address, as for the SDKs; `AWS_EC2_METADATA_DISABLED=true` skips it).
fn instance_profile(deadline: Duration) -> Result<Credentials, String> {
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err("the instance profile is disabled (AWS_EC2_METADATA_DISABLED)".into());
    }
    let base =
        env("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| "http://169.254.169.254".into());
    let base = base.trim_end_matches('/');
    // Off EC2 nothing answers: give up fast, within the policy's deadline.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(deadline.min(Duration::from_secs(2))))
        .http_status_as_error(false)
        .build()
        .into();
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("instance profile ({what}): {e}");
    let read = |mut r: ureq::http::Response<ureq::Body>, what: &str| -> Result<String, String> {
        match r.status().as_u16() {
            200 => r
                .body_mut()
                .with_config()
                .limit(MAX_OBJECT_BYTES)
                .read_to_string()
                .map_err(|e| fail(what, &e)),
            status => Err(fail(what, &format!("HTTP {status}"))),
        }
    };
    let token = agent
        .put(format!("{base}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "60")
        .send_empty()
        .map_err(|e| fail("token", &e))
        .and_then(|r| read(r, "token"))?;
    let get = |path: &str, what: &str| {
        agent
            .get(format!(
                "{base}/latest/meta-data/iam/security-credentials/{path}"
            ))
            .header("x-aws-ec2-metadata-token", token.trim())
            .call()
            .map_err(|e| fail(what, &e))
            .and_then(|r| read(r, what))
    };
    let role = get("", "role")?;
    let role = role.lines().next().unwrap_or("").trim().to_owned();
    if role.is_empty()
        || !role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Err(fail("role", &format!("{role:?} is not a role name")));
    }
    let json: serde_json::Value =
        serde_json::from_str(&get(&role, "credentials")?).map_err(|e| fail("credentials", &e))?;
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    match (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("Token"),
    ) {
        (Some(key), Some(secret), Some(token)) => {
            Ok(Credentials::new_with_token(key, secret, token))
        }
        _ => Err(fail(
            "credentials",
            &"no AccessKeyId, SecretAccessKey and Token",
        )),
    }
}

fn file_or_env_credentials() -> Result<Credentials, String> {
    if let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(match env("AWS_SESSION_TOKEN") {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        });
    }
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")));
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    if let Some(file) = file
        && let Ok(text) = std::fs::read_to_string(&file)
    {
        let mut in_profile = false;
        let (mut key, mut secret, mut token) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_profile = name.trim() == profile;
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if !in_profile {
                continue;
            }
            let v = Some(v.trim().to_owned());
            match k.trim() {
                "aws_access_key_id" => key = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
        if let (Some(key), Some(secret)) = (key, secret) {
            return Ok(match token {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            });
        }
    }
    Err(format!(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile \
         {profile:?} in the shared credentials file"
    ))
}

impl S3Store {
    /// The endpoint: the policy's, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (path
    /// style, for S3-compatible stores), else AWS's regional endpoint (virtual-host style).
    pub fn new(
        location: S3Location,
        endpoint: &Endpoint,
        deadline: Duration,
        policy_path: &str,
    ) -> Result<S3Store, AutosignError> {
        let invalid = |problem: String| AutosignError::InvalidPolicy {
            path: policy_path.to_owned(),
            problems: vec![problem],
        };
        let region = endpoint
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let custom = endpoint
            .url
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let (url, style) = match &custom {
            Some(url) => (url.clone(), UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                UrlStyle::VirtualHost,
            ),
        };
        let url: url::Url = url
            .parse()
            .map_err(|e| invalid(format!("S3 endpoint {url:?}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid(format!("S3 endpoint {url}: not http(s)")));
        }
        let bucket = Bucket::new(url, style, location.bucket.clone(), region)
            .map_err(|e| invalid(format!("S3 bucket {}: {e}", location.bucket)))?;
        let credentials = credentials(deadline).map_err(invalid)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(deadline))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(S3Store {
            location,
            bucket,
            credentials,
            agent,
        })
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.location.bucket, self.location.prefix)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.location.prefix)
    }

    fn error(&self, key: &str, reason: impl Into<String>) -> StoreError {
        StoreError {
            bucket: self.location.bucket.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// The expectation object `prefix + name`, if there is one.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(name);
        let url = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(PRESIGN_FOR);
        let mut response = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| self.error(&key, e.to_string()))?;
        match response.status().as_u16() {
            200 => response
                .body_mut()
                .with_config()
                .limit(MAX_OBJECT_BYTES)
                .read_to_vec()
                .map(Some)
                .map_err(|e| self.error(&key, e.to_string())),
            404 => Ok(None),
            status => Err(self.error(&key, format!("HTTP {status}"))),
        }
    }

    /// Writes `prefix + name`; with `only_if_absent`, only when no such object exists
    /// (`If-None-Match: *`): `Ok(false)` when it did.
    pub fn put(&self, name: &str, body: &[u8], only_if_absent: bool) -> Result<bool, StoreError> {
        let key = self.key(name);
        let mut action = self.bucket.put_object(Some(&self.credentials), &key);
        if only_if_absent {
            action.headers_mut().insert("if-none-match", "*");
        }
        let url = action.sign(PRESIGN_FOR);
        let mut request = self.agent.put(url.as_str());
        if only_if_absent {
            request = request.header("if-none-match", "*");
        }
        let response = request
            .send(body)
            .map_err(|e| self.error(&key, e.to_string()))?;
        match response.status().as_u16() {
            200 | 201 | 204 => Ok(true),
            // 412: another request created it first; 409: a conditional write in flight.
            412 | 409 if only_if_absent => Ok(false),
            status => Err(self.error(&key, format!("HTTP {status}"))),
        }
    }

    /// Removes `prefix + name` (S3 answers 204 whether or not it existed).
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        let key = self.key(name);
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(PRESIGN_FOR);
        let response = self
            .agent
            .delete(url.as_str())
            .call()
            .map_err(|e| self.error(&key, e.to_string()))?;
        match response.status().as_u16() {
            200 | 204 | 404 => Ok(()),
            status => Err(self.error(&key, format!("HTTP {status}"))),
        }
    }

    /// Claims `name` for this request: creates its marker unless another request did.
    pub fn claim(&self, name: &str) -> Result<bool, StoreError> {
        self.put(&format!("{CLAIMED}{name}"), b"claimed\n", true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_name_a_bucket_and_a_safe_prefix() {
        assert_eq!(
            S3Location::parse("s3://ca-expect/fleet/web/").unwrap(),
            S3Location {
                bucket: "ca-expect".into(),
                prefix: "fleet/web/".into()
            }
        );
        assert_eq!(S3Location::parse("s3://ca-expect").unwrap().prefix, "");
        for bad in [
            "https://ca-expect/x/",
            "s3://CA/x/",
            "s3://ca-expect/../x/",
            "s3://ca-expect/x",
            "s3://ab/",
            "s3://ca-expect/a b/",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }
}
