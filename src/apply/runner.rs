//! The one place commands run. Argv vectors, never shell strings; environment and stdin as
//! planned; stdout and stderr captured into the log with every known secret scrubbed.
//!
//! apt and dpkg get the care first boot needs: the dpkg lock is waited for (bounded, naming
//! its holder when the wait times out), an interrupted dpkg is recovered with
//! `dpkg --configure -a` before anything is installed, and `apt-get update` is retried on
//! transient network failures. `apt-get update` also counts as failed when apt only warned
//! that some index could not be fetched or verified (it exits 0 then, and cloud-init reports
//! success).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::chroot::{ChrootError, ChrootGuard};
use super::log::RunLog;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{command} exited {status}: {detail}")]
    Failed {
        command: String,
        status: String,
        /// The last lines of output, for the report.
        detail: String,
        /// All of it (secrets scrubbed), for deciding whether to retry.
        output: String,
    },
    #[error("{command}: {detail}")]
    AptWarnings { command: String, detail: String },
    #[error(
        "the dpkg lock {lock} is still held by {holder} after {waited} s; \
         first boot gave up waiting (another apt or dpkg is running)"
    )]
    LockTimeout {
        lock: String,
        holder: String,
        waited: u64,
    },
    #[error(transparent)]
    Chroot(#[from] ChrootError),
}

impl RunError {
    /// A stable short reason for reports.
    pub fn reason(&self) -> &'static str {
        match self {
            RunError::Spawn { .. } => "command-not-started",
            RunError::Failed { .. } => "command-failed",
            RunError::AptWarnings { .. } => "apt-update-incomplete",
            RunError::LockTimeout { .. } => "dpkg-lock-timeout",
            RunError::Chroot(_) => "chroot-setup-failed",
        }
    }
}

/// How commands are run for one apply.
pub struct RunnerConfig {
    /// Run inside this image root (chroot), or on the host when `None`.
    pub root: Option<PathBuf>,
    pub lock_timeout: Duration,
    /// `apt-get update` attempts on transient network failures.
    pub update_attempts: u32,
    /// The first retry waits this long; each next one twice as long.
    pub retry_backoff: Duration,
    /// The environment of the `dpkg --configure -a` that recovers an interrupted dpkg (the
    /// plan's apt environment, handed in by apply).
    pub recovery_env: BTreeMap<String, String>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            root: None,
            lock_timeout: Duration::from_secs(300),
            update_attempts: 4,
            retry_backoff: Duration::from_secs(2),
            recovery_env: BTreeMap::new(),
        }
    }
}

pub struct Runner {
    config: RunnerConfig,
    guard: Option<ChrootGuard>,
    secrets: Vec<String>,
}

/// Lines of output that make an `apt-get update` incomplete although it exited 0.
const APT_UPDATE_PROBLEMS: &[&str] = &[
    "W: Failed to fetch",
    "W: Some index files failed to download",
    "W: GPG error",
    "NO_PUBKEY",
    "is not signed",
    "E: ",
];

/// Output that says a failure was the network's, worth another try.
const TRANSIENT: &[&str] = &[
    "Temporary failure resolving",
    "Could not resolve",
    "Could not connect",
    "Connection timed out",
    "Connection failed",
    "Connection refused",
    "Unable to connect",
    "503  Service Unavailable",
    "502  Bad Gateway",
    "504  Gateway Time-out",
    "Hash Sum mismatch",
    "Undetermined Error",
];

/// Command output as plain text: puppet colours its output even into a pipe, and escape
/// sequences must not reach the run log, status.json or a terminal that shows them. CSI
/// sequences (`ESC [ ... final byte`) and other control characters except newline and tab are
/// dropped.
fn strip_terminal_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else if !c.is_control() || c == '\n' || c == '\t' {
            out.push(c);
        }
    }
    out
}

fn shell_words(argv: &[String]) -> String {
    argv.join(" ")
}

/// The last lines of output, for an error message.
fn tail(output: &str, lines: usize) -> String {
    let all: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

fn is_apt(argv: &[String]) -> bool {
    matches!(
        argv.first().map(String::as_str),
        Some("apt-get" | "apt" | "dpkg" | "dpkg-reconfigure")
    )
}

fn apt_subcommand(argv: &[String]) -> Option<&str> {
    if argv.first().map(String::as_str) != Some("apt-get") {
        return None;
    }
    argv.iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
}

impl Runner {
    pub fn new(config: RunnerConfig, secrets: Vec<String>) -> Runner {
        Runner {
            config,
            guard: None,
            secrets,
        }
    }

    /// A secret made during the run (a random password), scrubbed from output from now on.
    pub fn add_secret(&mut self, secret: &str) {
        self.secrets.push(secret.to_owned());
    }

    fn host_path(&self, target: &str) -> PathBuf {
        match &self.config.root {
            Some(root) => root.join(target.trim_start_matches('/')),
            None => PathBuf::from(target),
        }
    }

    fn scrub(&self, text: &str) -> String {
        crate::redact::redact(text, &self.secrets)
    }

    /// Who holds the dpkg frontend lock, if anyone: `pid 123 (apt-get)`.
    fn lock_holder(&self) -> Option<(String, String)> {
        for lock in ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"] {
            let path = self.host_path(lock);
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            let mut probe = libc::flock {
                l_type: libc::F_WRLCK as libc::c_short,
                l_whence: libc::SEEK_SET as libc::c_short,
                l_start: 0,
                l_len: 0,
                l_pid: 0,
            };
            if nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETLK(&mut probe)).is_ok()
                && probe.l_type != libc::F_UNLCK as libc::c_short
            {
                let comm = std::fs::read_to_string(format!("/proc/{}/comm", probe.l_pid))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_else(|_| "unknown".into());
                return Some((lock.to_owned(), format!("pid {} ({comm})", probe.l_pid)));
            }
        }
        None
    }

    fn wait_for_dpkg_lock(&self, log: &mut RunLog) -> Result<(), RunError> {
        let start = Instant::now();
        let mut announced = false;
        while let Some((lock, holder)) = self.lock_holder() {
            if start.elapsed() >= self.config.lock_timeout {
                return Err(RunError::LockTimeout {
                    lock,
                    holder,
                    waited: start.elapsed().as_secs(),
                });
            }
            if !announced {
                log.line(&format!(
                    "waiting for the dpkg lock {lock}, held by {holder}"
                ));
                announced = true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    /// Whether a previous dpkg run was interrupted (pending entries in dpkg's journal, or
    /// packages left half-installed or half-configured).
    fn dpkg_interrupted(&self) -> bool {
        let journal = self.host_path("/var/lib/dpkg/updates");
        let pending = std::fs::read_dir(journal).is_ok_and(|mut d| {
            d.any(|e| {
                e.is_ok_and(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
                })
            })
        });
        let half = std::fs::read_to_string(self.host_path("/var/lib/dpkg/status")).is_ok_and(|s| {
            s.lines().any(|l| {
                l.starts_with("Status:")
                    && (l.contains("half-") || l.contains("unpacked") || l.contains("triggers-"))
            })
        });
        pending || half
    }

    /// Runs one planned command. `ok_exit_codes` defaults to `[0]`.
    pub fn run(
        &mut self,
        argv: &[String],
        env: &BTreeMap<String, String>,
        stdin: Option<&str>,
        ok_exit_codes: &[i32],
        log: &mut RunLog,
    ) -> Result<(), RunError> {
        let subcommand = apt_subcommand(argv);
        if matches!(subcommand, Some("install" | "upgrade" | "dist-upgrade"))
            && self.dpkg_interrupted()
        {
            log.line("dpkg was interrupted earlier: recovering with dpkg --configure -a");
            let recover: Vec<String> = ["dpkg", "--configure", "-a"].map(String::from).to_vec();
            let env = self.config.recovery_env.clone();
            self.run_with_lock_retry(&recover, &env, None, &[0], log)?;
        }
        if subcommand == Some("update") {
            return self.run_update(argv, env, log);
        }
        self.run_with_lock_retry(argv, env, stdin, ok_exit_codes, log)
            .map(|_| ())
    }

    /// Runs a command that only reads or makes files of its own (ssh-keygen), for its output
    /// (stdout, then stderr), scrubbed like the log.
    pub fn run_output(&mut self, argv: &[String], log: &mut RunLog) -> Result<String, RunError> {
        self.run_with_lock_retry(argv, &BTreeMap::new(), None, &[0], log)
    }

    fn run_update(
        &mut self,
        argv: &[String],
        env: &BTreeMap<String, String>,
        log: &mut RunLog,
    ) -> Result<(), RunError> {
        let mut backoff = self.config.retry_backoff;
        let mut attempt = 1;
        loop {
            let result = self.run_with_lock_retry(argv, env, None, &[0], log);
            let output = match &result {
                Ok(output) => output.clone(),
                Err(RunError::Failed { output, .. }) => output.clone(),
                Err(_) => return result.map(|_| ()),
            };
            let problems: Vec<&str> = output
                .lines()
                .filter(|l| APT_UPDATE_PROBLEMS.iter().any(|p| l.contains(p)))
                .collect();
            if result.is_ok() && problems.is_empty() {
                return Ok(());
            }
            let transient = output
                .lines()
                .any(|l| TRANSIENT.iter().any(|t| l.contains(t)));
            if !transient || attempt >= self.config.update_attempts {
                return Err(match result {
                    Err(e) => e,
                    Ok(_) => RunError::AptWarnings {
                        command: shell_words(argv),
                        detail: self.scrub(&problems.join(" | ")),
                    },
                });
            }
            log.line(&format!(
                "apt-get update failed on the network (attempt {attempt} of {}); retrying in {} s",
                self.config.update_attempts,
                backoff.as_secs_f32()
            ));
            std::thread::sleep(backoff);
            backoff *= 2;
            attempt += 1;
        }
    }

    /// Runs a command, waiting for the dpkg lock first and again when apt lost the race for
    /// it. Returns the (scrubbed) output.
    fn run_with_lock_retry(
        &mut self,
        argv: &[String],
        env: &BTreeMap<String, String>,
        stdin: Option<&str>,
        ok_exit_codes: &[i32],
        log: &mut RunLog,
    ) -> Result<String, RunError> {
        let start = Instant::now();
        loop {
            if is_apt(argv) {
                self.wait_for_dpkg_lock(log)?;
            }
            let result = self.spawn(argv, env, stdin, ok_exit_codes, log);
            let lost_race = matches!(&result, Err(RunError::Failed { output, .. })
                if output.contains("Could not get lock") || output.contains("Unable to acquire the dpkg"));
            if !(is_apt(argv) && lost_race && start.elapsed() < self.config.lock_timeout) {
                return result;
            }
            log.line("apt could not get the dpkg lock: waiting and trying again");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn spawn(
        &mut self,
        argv: &[String],
        env: &BTreeMap<String, String>,
        stdin: Option<&str>,
        ok_exit_codes: &[i32],
        log: &mut RunLog,
    ) -> Result<String, RunError> {
        let Some(program) = argv.first() else {
            return Err(RunError::Spawn {
                program: String::new(),
                source: std::io::Error::other("empty argv"),
            });
        };
        let mut command = match &self.config.root {
            Some(root) => {
                if self.guard.is_none() {
                    self.guard = Some(ChrootGuard::enter(root)?);
                }
                let mut c = Command::new("chroot");
                c.arg(root).args(argv);
                // The image's environment, not the build host's.
                c.env_clear()
                    .env(
                        "PATH",
                        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    )
                    .env("HOME", "/root")
                    .env("LANG", "C.UTF-8");
                c
            }
            None => {
                let mut c = Command::new(program);
                c.args(&argv[1..]);
                c
            }
        };
        command.envs(env);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        log.line(&format!("run: {}", shell_words(argv)));
        let started = Instant::now();
        let mut child = command.spawn().map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
        let writer = match (stdin, child.stdin.take()) {
            (Some(text), Some(mut pipe)) => {
                let bytes = text.as_bytes().to_vec();
                Some(std::thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                }))
            }
            _ => None,
        };
        let mut stderr_pipe = child.stderr.take();
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(pipe) = stderr_pipe.as_mut() {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        });
        let mut out = Vec::new();
        if let Some(mut pipe) = child.stdout.take() {
            let _ = pipe.read_to_end(&mut out);
        }
        let status = child.wait().map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        let err = err_reader.join().unwrap_or_default();
        let mut output = String::from_utf8_lossy(&out).into_owned();
        output.push_str(&String::from_utf8_lossy(&err));
        let output = self.scrub(&strip_terminal_controls(&output));
        log.output(&output);
        let code = status.code();
        log.line(&format!(
            "{} after {:.1} s",
            code.map_or_else(|| format!("killed by {status}"), |c| format!("exit {c}")),
            started.elapsed().as_secs_f32()
        ));
        match code {
            Some(c) if ok_exit_codes.contains(&c) => Ok(output),
            _ => Err(RunError::Failed {
                command: shell_words(argv),
                status: code.map_or_else(|| status.to_string(), |c| c.to_string()),
                detail: tail(&output, 3),
                output,
            }),
        }
    }

    /// Whether commands run inside an image root.
    pub fn root(&self) -> Option<&Path> {
        self.config.root.as_deref()
    }
}

#[cfg(test)]
mod strip_tests {
    use super::strip_terminal_controls;

    #[test]
    fn colours_and_controls_are_dropped() {
        assert_eq!(
            strip_terminal_controls(
                "\u{1b}[0;32mInfo: signed\u{1b}[0m\n\u{1b}[mNotice: x\u{1b}[0m\r\n\ta\u{7}b"
            ),
            "Info: signed\nNotice: x\n\tab"
        );
    }
}
