//! EC2 instance metadata service (IMDS), IMDSv2 first.
//!
//! The flow, as AWS documents it and cloud-init implements it:
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 21600`; the token goes
//!   in `X-aws-ec2-metadata-token` on every GET. The token is a credential: it is held in a type
//!   whose `Debug` hides it and is never logged.
//! - 404 or 405 on the token request: the service predates IMDSv2 (or is an EC2-compatible one
//!   without it), so plain IMDSv1 GETs follow. 403: the instance's metadata service is
//!   disabled; that is final.
//! - 401 on a GET: the token expired (a slow boot); one new token, then the GET once more.
//! - Connect errors, timeouts and 5xx are retried until the fetch's deadline ([`Retry`]); other
//!   4xx are final. 404 means "absent": an error only for `instance-id`.
//!
//! What is read: `meta-data/instance-id`, `local-hostname`, `hostname`,
//! `placement/availability-zone`, `public-keys/` (the index, then each `N/openssh-key`), and
//! `user-data`, and the signed instance identity (`dynamic/instance-identity/document` and
//! `rsa2048`). Nothing else: IAM credentials under `meta-data/iam/` stay on the service.

use std::time::{Duration, Instant};

use super::http::{self, Retry, Step};
use super::{Datasource, DatasourceError, InstanceData, check_hostname, check_id};

/// The token's lifetime asked for: 6 hours, as cloud-init asks; a boot takes far less.
pub const TOKEN_TTL_SECONDS: &str = "21600";
const TOKEN_PATH: &str = "/latest/api/token";
const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Meta-data values are short; a larger answer is not a metadata service.
const META_LIMIT: u64 = 64 * 1024;
/// EC2 caps user data at 16 KiB; other EC2-compatible services allow more, up to what the
/// decoder accepts anyway.
const USER_DATA_LIMIT: u64 = 16 * 1024 * 1024;
const MAX_PUBLIC_KEYS: usize = 100;

/// An IMDSv2 session token. Deliberately without `Display`, and `Debug` hides the value.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

#[derive(Debug, Clone)]
enum Session {
    V2(Token),
    V1,
}

/// The EC2 datasource. The base URL is given to the constructor (`http://169.254.169.254` on
/// EC2, a fake server's `http://127.0.0.1:PORT` in tests).
pub struct Ec2 {
    base: String,
    retry: Retry,
    agent: ureq::Agent,
}

/// What one GET came to, before the 401 handling.
enum Got {
    Body(Vec<u8>),
    NotFound,
    Unauthorized,
}

impl Ec2 {
    pub fn new(base_url: &str, retry: Retry) -> Ec2 {
        Ec2 {
            base: base_url.trim_end_matches('/').to_owned(),
            retry,
            agent: http::agent(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn session(&self, deadline: Instant) -> Result<Session, DatasourceError> {
        let url = format!("{}{TOKEN_PATH}", self.base);
        self.retry.run(&format!("PUT {url}"), deadline, |timeout| {
            let request = self
                .agent
                .put(&url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .header(TTL_HEADER, TOKEN_TTL_SECONDS);
            match request.send_empty() {
                Ok(mut response) => match response.status().as_u16() {
                    200 => match http::body(&mut response, &url, 4096) {
                        Step::Done(bytes) => match token(&bytes) {
                            Ok(t) => Step::Done(Session::V2(t)),
                            Err(reason) => Step::Fail(DatasourceError::Invalid {
                                origin: url.clone(),
                                key: "token".into(),
                                reason,
                            }),
                        },
                        Step::Retry(r) => Step::Retry(r),
                        Step::Fail(e) => Step::Fail(e),
                    },
                    status @ (404 | 405) => {
                        log::info!("{url}: HTTP {status}, no IMDSv2 token endpoint: using IMDSv1");
                        Step::Done(Session::V1)
                    }
                    403 => Step::Fail(DatasourceError::Disabled { url: url.clone() }),
                    status if status >= 500 => Step::Retry(format!("HTTP {status}")),
                    status => Step::Fail(DatasourceError::Http {
                        url: url.clone(),
                        status,
                    }),
                },
                Err(e) if http::transient(&e) => Step::Retry(e.to_string()),
                Err(e) => Step::Fail(DatasourceError::Transport {
                    url: url.clone(),
                    reason: e.to_string(),
                }),
            }
        })
    }

    fn get_once(
        &self,
        session: &Session,
        path: &str,
        limit: u64,
        deadline: Instant,
    ) -> Result<Got, DatasourceError> {
        let url = format!("{}/latest/{path}", self.base);
        self.retry.run(&format!("GET {url}"), deadline, |timeout| {
            let mut request = self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(timeout))
                .build();
            if let Session::V2(Token(token)) = session {
                request = request.header(TOKEN_HEADER, token.as_str());
            }
            match request.call() {
                Ok(mut response) => match response.status().as_u16() {
                    200 => match http::body(&mut response, &url, limit) {
                        Step::Done(bytes) => Step::Done(Got::Body(bytes)),
                        Step::Retry(r) => Step::Retry(r),
                        Step::Fail(e) => Step::Fail(e),
                    },
                    404 => Step::Done(Got::NotFound),
                    401 => Step::Done(Got::Unauthorized),
                    status if status >= 500 => Step::Retry(format!("HTTP {status}")),
                    status => Step::Fail(DatasourceError::Http {
                        url: url.clone(),
                        status,
                    }),
                },
                Err(e) if http::transient(&e) => Step::Retry(e.to_string()),
                Err(e) => Step::Fail(DatasourceError::Transport {
                    url: url.clone(),
                    reason: e.to_string(),
                }),
            }
        })
    }

    /// GETs `latest/<path>`: `None` on 404. A 401 with a token gets one new token and one
    /// more try; a second 401 (or one without a token) is final.
    fn get(
        &self,
        session: &mut Session,
        path: &str,
        limit: u64,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, DatasourceError> {
        let mut renewed = false;
        loop {
            match self.get_once(session, path, limit, deadline)? {
                Got::Body(bytes) => return Ok(Some(bytes)),
                Got::NotFound => return Ok(None),
                Got::Unauthorized if matches!(session, Session::V2(_)) && !renewed => {
                    log::info!(
                        "GET {}/latest/{path}: HTTP 401, renewing the token",
                        self.base
                    );
                    *session = self.session(deadline)?;
                    renewed = true;
                }
                Got::Unauthorized => {
                    return Err(DatasourceError::Http {
                        url: format!("{}/latest/{path}", self.base),
                        status: 401,
                    });
                }
            }
        }
    }

    /// A meta-data value as one trimmed line of text, `None` when absent or empty.
    fn text(
        &self,
        session: &mut Session,
        path: &str,
        deadline: Instant,
    ) -> Result<Option<String>, DatasourceError> {
        let Some(bytes) = self.get(session, &format!("meta-data/{path}"), META_LIMIT, deadline)?
        else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| DatasourceError::Invalid {
            origin: self.base.clone(),
            key: path.to_owned(),
            reason: "not UTF-8 text".into(),
        })?;
        let text = text.trim();
        Ok((!text.is_empty()).then(|| text.to_owned()))
    }

    fn public_keys(
        &self,
        session: &mut Session,
        deadline: Instant,
        meta: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<String>, DatasourceError> {
        let Some(index) = self.text(session, "public-keys/", deadline)? else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        let mut listed = serde_json::Map::new();
        // Lines read `0=my-key`; the number is the path component of the key.
        for line in index.lines().take(MAX_PUBLIC_KEYS) {
            let (number, name) = line.split_once('=').unwrap_or((line, ""));
            let number = number.trim();
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                log::warn!("ec2: ignoring public-keys entry {line:?}");
                continue;
            }
            let key = self.text(
                session,
                &format!("public-keys/{number}/openssh-key"),
                deadline,
            )?;
            listed.insert(
                number.to_owned(),
                serde_json::json!({"name": name.trim(), "openssh-key": key}),
            );
            keys.extend(key);
        }
        meta.insert("public-keys".into(), serde_json::Value::Object(listed));
        Ok(keys)
    }
}

/// Checks the token's text: it is sent back as a header value.
fn token(bytes: &[u8]) -> Result<Token, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the token is not text".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("the token is empty".into());
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token has characters a header cannot carry".into());
    }
    Ok(Token(text.to_owned()))
}

impl Datasource for Ec2 {
    fn name(&self) -> &'static str {
        "ec2"
    }

    fn fetch(&self) -> Result<InstanceData, DatasourceError> {
        let started = Instant::now();
        let deadline = self.retry.deadline_from_now();
        log::info!(
            "ec2: reading instance metadata from {} (deadline {} s)",
            self.base,
            self.retry.deadline.as_secs()
        );
        let mut session = self.session(deadline)?;
        log::info!(
            "ec2: {}",
            match session {
                Session::V2(_) => "IMDSv2 session token obtained",
                Session::V1 => "IMDSv1",
            }
        );
        let mut meta = serde_json::Map::new();
        let instance_id = self
            .text(&mut session, "instance-id", deadline)?
            .ok_or_else(|| DatasourceError::Missing {
                origin: self.base.clone(),
                key: "instance-id".into(),
            })?;
        check_id(&self.base, &instance_id)?;
        meta.insert("instance-id".into(), instance_id.clone().into());
        let mut read = |key: &str, path: &str, session: &mut Session| {
            let value = self.text(session, path, deadline)?;
            meta.insert(key.to_owned(), value.clone().into());
            Ok::<_, DatasourceError>(value)
        };
        let local_hostname = read("local-hostname", "local-hostname", &mut session)?;
        let hostname = read("hostname", "hostname", &mut session)?;
        let availability_zone = read(
            "placement/availability-zone",
            "placement/availability-zone",
            &mut session,
        )?;
        for (key, value) in [("local-hostname", &local_hostname), ("hostname", &hostname)] {
            if let Some(v) = value {
                check_hostname(&self.base, key, v)?;
            }
        }
        let public_keys = self.public_keys(&mut session, deadline, &mut meta)?;
        let user_data = self.get(&mut session, "user-data", USER_DATA_LIMIT, deadline)?;
        // The signed instance identity, for `puppet: {attest: aws_iid}`; an instance without
        // one (an older fake, another cloud's EC2 emulation) just has none.
        let document = self.get(
            &mut session,
            "dynamic/instance-identity/document",
            META_LIMIT,
            deadline,
        )?;
        let signature = match &document {
            Some(_) => self.get(
                &mut session,
                "dynamic/instance-identity/rsa2048",
                META_LIMIT,
                deadline,
            )?,
            None => None,
        };
        let identity = match (document, signature) {
            (Some(doc), Some(sig)) => Some((doc, String::from_utf8_lossy(&sig).trim().to_owned())),
            _ => None,
        };
        log::info!(
            "ec2: instance {instance_id}, {} in {} ms",
            match &user_data {
                Some(u) => format!("{} bytes of user data", u.len()),
                None => "no user data".into(),
            },
            started.elapsed().as_millis()
        );
        Ok(InstanceData {
            datasource: "ec2",
            source: self.base.clone(),
            instance_id,
            local_hostname,
            hostname,
            availability_zone,
            public_keys,
            user_data,
            meta_data: serde_json::Value::Object(meta),
            identity,
        })
    }
}

/// Settings from the system config, then the kernel command line's `url=` over them.
pub fn settings(
    system: &crate::system::SystemConfig,
    cmdline_url: Option<&str>,
) -> (String, Retry) {
    let ec2 = system.ec2.clone().unwrap_or_default();
    let url = cmdline_url
        .map(str::to_owned)
        .or(ec2.metadata_url)
        .unwrap_or_else(|| crate::system::DEFAULT_EC2_URL.to_owned());
    let mut retry = Retry::default();
    if let Some(secs) = ec2.timeout_secs {
        retry.timeout = Duration::from_secs(secs.max(1));
    }
    if let Some(secs) = ec2.deadline_secs {
        retry.deadline = Duration::from_secs(secs);
    }
    (url, retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_hidden() {
        assert!(token(b"AQAEA-abc==\n").is_ok());
        assert!(token(b"").is_err());
        assert!(token(b"a b").is_err());
        assert!(token(b"a\r\nX-Injected: 1").is_err());
        let t = token(b"s3cret").unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(!format!("{:?}", Session::V2(t)).contains("s3cret"));
    }

    #[test]
    fn settings_defaults_and_overrides() {
        let system = crate::system::SystemConfig::default();
        let (url, retry) = settings(&system, None);
        assert_eq!(url, "http://169.254.169.254");
        assert_eq!(retry.timeout, Duration::from_secs(2));
        assert_eq!(retry.deadline, Duration::from_secs(120));
        let system = crate::system::parse(
            "ec2: {metadata_url: 'http://10.0.0.1', timeout_secs: 5, deadline_secs: 30}\n",
            "c.yaml",
        )
        .unwrap();
        let (url, retry) = settings(&system, None);
        assert_eq!(url, "http://10.0.0.1");
        assert_eq!(retry.timeout, Duration::from_secs(5));
        assert_eq!(retry.deadline, Duration::from_secs(30));
        let (url, _) = settings(&system, Some("http://127.0.0.1:9"));
        assert_eq!(url, "http://127.0.0.1:9");
    }
}
