//! HTTP for datasources: one agent without proxy, and the retry policy as a value.
//!
//! Why a policy with a deadline rather than a fixed number of tries: at first boot the network
//! may come up after cloudcfg starts, so a refused connection or a timeout is worth trying again
//! for a while, but a boot must not wait forever either. Connect errors, timeouts and 5xx are
//! retried with a doubling backoff until the deadline (or the attempt bound) runs out; any other
//! answer is final, and the caller decides what a 404 means.

use std::time::{Duration, Instant};

use super::DatasourceError;

/// How often and how long a datasource asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// What one request may take (connect, send, receive headers and body).
    pub timeout: Duration,
    /// What all requests of one fetch may take together, backoff included.
    pub deadline: Duration,
    /// The wait after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// An upper bound on attempts per request, whatever the deadline.
    pub max_attempts: u32,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(120),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_attempts: 100,
        }
    }
}

/// What one attempt came to.
pub(crate) enum Step<T> {
    Done(T),
    /// Worth another attempt; the reason is logged and reported if none succeeds.
    Retry(String),
    Fail(DatasourceError),
}

/// The agent every datasource request goes through. Metadata services are link-local or on
/// the local network: an `http_proxy` from the environment must not see these requests (nor
/// the IMDSv2 token), so none is used. Redirects are not followed, so that a header such as the
/// token never goes to another host.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("cloudcfg/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Whether a transport error is worth another attempt (the network may not be up yet).
pub(crate) fn transient(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Timeout(_)
            | ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
    )
}

/// Reads a response body of at most `limit` bytes.
pub(crate) fn body(
    response: &mut ureq::http::Response<ureq::Body>,
    url: &str,
    limit: u64,
) -> Step<Vec<u8>> {
    match response.body_mut().with_config().limit(limit).read_to_vec() {
        Ok(bytes) => Step::Done(bytes),
        Err(ureq::Error::BodyExceedsLimit(_)) => Step::Fail(DatasourceError::TooLarge {
            what: url.to_owned(),
            limit,
        }),
        Err(e) if transient(&e) => Step::Retry(format!("reading the body: {e}")),
        Err(e) => Step::Fail(DatasourceError::Transport {
            url: url.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The result of a plain GET: the body, or `None` for 404.
pub(crate) fn get_step(
    agent: &ureq::Agent,
    url: &str,
    timeout: Duration,
    limit: u64,
) -> Step<Option<Vec<u8>>> {
    let request = agent
        .get(url)
        .config()
        .timeout_global(Some(timeout))
        .build();
    match request.call() {
        Ok(mut response) => match response.status().as_u16() {
            200 => match body(&mut response, url, limit) {
                Step::Done(bytes) => Step::Done(Some(bytes)),
                Step::Retry(r) => Step::Retry(r),
                Step::Fail(e) => Step::Fail(e),
            },
            404 => Step::Done(None),
            status if status >= 500 => Step::Retry(format!("HTTP {status}")),
            status => Step::Fail(DatasourceError::Http {
                url: url.to_owned(),
                status,
            }),
        },
        Err(e) if transient(&e) => Step::Retry(e.to_string()),
        Err(e) => Step::Fail(DatasourceError::Transport {
            url: url.to_owned(),
            reason: e.to_string(),
        }),
    }
}

impl Retry {
    /// The instant a fetch starting now must be done by.
    pub fn deadline_from_now(&self) -> Instant {
        Instant::now() + self.deadline
    }

    /// Runs `attempt` (given the time it may take) until it is done or fails for good, or
    /// until `deadline` or the attempt bound. Every failed attempt is logged: a slow boot
    /// should say what it is waiting for.
    pub(crate) fn run<T>(
        &self,
        what: &str,
        deadline: Instant,
        mut attempt: impl FnMut(Duration) -> Step<T>,
    ) -> Result<T, DatasourceError> {
        let started = Instant::now();
        let mut backoff = self.initial_backoff;
        let mut attempts = 0u32;
        let mut last = String::from("no attempt was made before the deadline");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            attempts += 1;
            log::debug!("{what}: attempt {attempts}");
            match attempt(self.timeout.min(remaining)) {
                Step::Done(value) => {
                    if attempts > 1 {
                        log::info!("{what}: succeeded at attempt {attempts}");
                    }
                    return Ok(value);
                }
                Step::Fail(e) => return Err(e),
                Step::Retry(reason) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() || attempts >= self.max_attempts.max(1) {
                        log::warn!("{what}: attempt {attempts} failed ({reason}); giving up");
                        last = reason;
                        break;
                    }
                    let wait = backoff.min(remaining);
                    log::warn!(
                        "{what}: attempt {attempts} failed ({reason}); retrying in {} ms",
                        wait.as_millis()
                    );
                    last = reason;
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
        Err(DatasourceError::Unreachable {
            what: what.to_owned(),
            attempts,
            seconds: started.elapsed().as_secs_f64(),
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Retry {
        Retry {
            timeout: Duration::from_millis(50),
            deadline: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_attempts: 4,
        }
    }

    #[test]
    fn retries_until_done() {
        let mut calls = 0;
        let retry = quick();
        let result = retry.run("x", retry.deadline_from_now(), |_| {
            calls += 1;
            if calls < 3 {
                Step::Retry("503".into())
            } else {
                Step::Done(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
    }

    #[test]
    fn a_failure_is_final() {
        let mut calls = 0;
        let retry = quick();
        let result: Result<(), _> = retry.run("x", retry.deadline_from_now(), |_| {
            calls += 1;
            Step::Fail(DatasourceError::Http {
                url: "u".into(),
                status: 400,
            })
        });
        assert!(matches!(result, Err(DatasourceError::Http { .. })));
        assert_eq!(calls, 1);
    }

    #[test]
    fn attempts_are_bounded() {
        let mut calls = 0;
        let retry = quick();
        let result: Result<(), _> = retry.run("x", retry.deadline_from_now(), |_| {
            calls += 1;
            Step::Retry("refused".into())
        });
        match result {
            Err(DatasourceError::Unreachable { attempts, last, .. }) => {
                assert_eq!(attempts, 4);
                assert_eq!(last, "refused");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(calls, 4);
    }

    #[test]
    fn the_timeout_never_exceeds_the_deadline() {
        let retry = Retry {
            timeout: Duration::from_secs(60),
            ..quick()
        };
        let mut seen = Duration::ZERO;
        let _ = retry.run("x", retry.deadline_from_now(), |timeout| {
            seen = timeout;
            Step::Done(())
        });
        assert!(seen <= Duration::from_secs(5), "{seen:?}");
    }
}
