#![allow(dead_code)] // Each test binary uses only some of these helpers.

//! Logging in to a test VM with the host's OpenSSH client (tests/e2e_vm.rs): QEMU forwards
//! `127.0.0.1:PORT` to the guest's port 22 (`hostfwd=tcp:127.0.0.1:PORT-:22`), and every
//! command is one `ssh` run with the test's own key, a known_hosts file of the test's own and no
//! host or user ssh config (`-F /dev/null`). Nothing but 127.0.0.1 is ever contacted.
//!
//! Host keys are recorded under an alias (`HostKeyAlias`), not under `[127.0.0.1]:PORT`, so one
//! known_hosts file can check a guest again on a later boot whatever port it then has.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test's key pair (ed25519, no passphrase): `private` is the file ssh's `-i` takes,
/// `public` the `ssh-ed25519 AAAA... comment` line a guest must authorize.
pub struct Key {
    pub private: PathBuf,
    pub public: String,
}

/// Generates the key once per test process in `dir` (a previous run's key is replaced).
pub fn test_key(dir: &Path) -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        std::fs::create_dir_all(dir).unwrap();
        let private = dir.join("id_ed25519");
        let _ = std::fs::remove_file(&private);
        let _ = std::fs::remove_file(private.with_extension("pub"));
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "cloudcfg-e2e-vm",
                "-f",
            ])
            .arg(&private)
            .stdin(Stdio::null())
            .output()
            .expect("ssh-keygen runs");
        assert!(
            out.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = std::fs::read_to_string(private.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned();
        Key { private, public }
    })
}

/// How ssh treats the guest's host key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKey {
    /// `StrictHostKeyChecking=accept-new`: the first key seen is recorded, a changed one refused.
    AcceptNew,
    /// `StrictHostKeyChecking=yes`: only the key already in the known_hosts file is accepted.
    Known,
}

/// One ssh command's result.
#[derive(Debug)]
pub struct Run {
    /// None when ssh was killed (the deadline) or died of a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// The way in to one guest.
pub struct Ssh {
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub alias: String,
    pub host_key: HostKey,
}

/// How long one command may take (ssh's own ConnectTimeout bounds the connection).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

impl Ssh {
    fn command(&self, user: &str, remote: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-o")
            .arg(match self.host_key {
                HostKey::AcceptNew => "StrictHostKeyChecking=accept-new",
                HostKey::Known => "StrictHostKeyChecking=yes",
            })
            .arg("-o")
            .arg(format!("HostKeyAlias={}", self.alias))
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "HashKnownHosts=no",
            ])
            .args([
                "-o",
                "ServerAliveInterval=10",
                "-o",
                "ServerAliveCountMax=3",
            ])
            .args(["-o", "LogLevel=ERROR", "-T"])
            .arg(format!("{user}@127.0.0.1"))
            .arg("--")
            .arg(remote);
        cmd
    }

    /// Runs `remote` (a shell command line) as `user`; ssh is killed after two minutes.
    pub fn run(&self, user: &str, remote: &str) -> Run {
        let mut child = self
            .command(user, remote)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("ssh runs");
        let reader = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = pipe.read_to_end(&mut text);
                String::from_utf8_lossy(&text).into_owned()
            })
        };
        let stdout = reader(Box::new(child.stdout.take().unwrap()));
        let stderr = reader(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                // SAFETY: kill(2) on the process group of the ssh this function started.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.and_then(|s| s.code()),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }

    /// Runs `remote` as `user` and fails the test unless it exits 0; returns its stdout.
    pub fn check(&self, user: &str, remote: &str) -> String {
        let run = self.run(user, remote);
        assert!(
            run.ok(),
            "ssh -p {} {user}@127.0.0.1 {remote:?}: exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.port,
            run.code,
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// Tries `ssh USER@ true` until it succeeds (sshd comes up during the boot; the user and
    /// its key may come later) or `deadline`; returns the time it took and the attempts.
    /// A host key that does not match the known one fails at once: no later try can succeed.
    pub fn wait_login(&self, user: &str, deadline: Instant) -> Result<(Duration, u32), String> {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let run = self.run(user, "true");
            if run.ok() {
                return Ok((started.elapsed(), attempts));
            }
            if run.stderr.contains("Host key verification failed")
                || run
                    .stderr
                    .contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            {
                return Err(format!(
                    "ssh {user}@127.0.0.1:{}: the host key is not the known one ({}):\n{}",
                    self.port,
                    self.known_hosts.display(),
                    run.stderr
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ssh {user}@127.0.0.1:{}: no login after {:.0} s ({attempts} attempts); last: \
                     exit {:?}, {}",
                    self.port,
                    started.elapsed().as_secs_f64(),
                    run.code,
                    run.stderr.trim()
                ));
            }
            // Polling a port for a login (connection refused returns at once).
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The host keys the known_hosts file holds for the alias: `TYPE BASE64` each.
    pub fn known_keys(&self) -> Vec<String> {
        std::fs::read_to_string(&self.known_hosts)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && f[0].split(',').any(|h| h == self.alias))
                    .then(|| format!("{} {}", f[1], f[2]))
            })
            .collect()
    }

    /// `SHA256:...` fingerprints of the known_hosts file's keys (`ssh-keygen -lf`).
    pub fn known_fingerprints(&self) -> Vec<String> {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&self.known_hosts)
            .output()
            .expect("ssh-keygen runs");
        assert!(
            out.status.success(),
            "ssh-keygen -lf {}: {}",
            self.known_hosts.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with("SHA256:"))
            .map(str::to_owned)
            .collect()
    }
}

impl Ssh {
    /// Every host key the guest's sshd offers (`ssh-keyscan` for rsa, ecdsa and ed25519), as
    /// `TYPE BASE64`, sorted; fails the test when it gets none.
    pub fn scan(&self) -> Vec<String> {
        let out = Command::new("ssh-keyscan")
            .args([
                "-T",
                "20",
                "-t",
                "rsa,ecdsa,ed25519",
                "-p",
                &self.port.to_string(),
            ])
            .arg("127.0.0.1")
            .stdin(Stdio::null())
            .output()
            .expect("ssh-keyscan runs");
        let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && !f[0].starts_with('#')).then(|| format!("{} {}", f[1], f[2]))
            })
            .collect();
        keys.sort();
        assert!(
            !keys.is_empty(),
            "ssh-keyscan -p {} 127.0.0.1 found no host key: {}",
            self.port,
            String::from_utf8_lossy(&out.stderr)
        );
        keys
    }

    /// Adds `keys` (`TYPE BASE64`) to the known_hosts file under the alias, so that a later
    /// `HostKey::Known` login accepts whichever of them sshd offers, and no other.
    pub fn remember(&self, keys: &[String]) {
        let mut text = std::fs::read_to_string(&self.known_hosts).unwrap_or_default();
        for k in keys {
            if !self.known_keys().contains(k) {
                text.push_str(&format!("{} {k}\n", self.alias));
            }
        }
        std::fs::write(&self.known_hosts, text).unwrap();
    }
}

/// `ssh-keygen -lf` of public key lines (`TYPE BASE64 [comment]`): one
/// `BITS SHA256:... COMMENT (TYPE)` line each, in the order given.
pub fn fingerprints(keys: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.pub");
    std::fs::write(
        &file,
        keys.iter().map(|k| format!("{k}\n")).collect::<String>(),
    )
    .unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&file)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen -lf of {keys:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
