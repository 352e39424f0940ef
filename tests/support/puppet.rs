#![allow(dead_code)] // Each test binary uses only some of these helpers.

//! Debian's puppetserver for end-to-end tests (tests/e2e/puppetserver.sh), started in the
//! foreground as user `puppet` and stopped by its PID; the host files puppetserver's `autosign`
//! needs (the policy executable and the policy), put in place and taken away again; agent roots
//! layered on the cached bookworm root; commands with a deadline.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::root;

/// Where puppetserver's `autosign =` points (contract.md, "Commands").
pub const AUTOSIGN_PATH: &str = "/usr/lib/cloudcfg/autosign";
/// The policy `autosign` reads when the system config names none.
pub const POLICY_PATH: &str = "/etc/cloudcfg/autosign.yaml";

pub fn script() -> PathBuf {
    root::repo_dir().join("tests/e2e/puppetserver.sh")
}

/// Whether Debian's puppetserver is installed; skips loudly (fails under CI) when not.
pub fn have_puppetserver(test: &str) -> bool {
    let installed = Path::new("/etc/puppet/puppetserver/conf.d").is_dir()
        && Path::new("/usr/share/puppetserver/puppetserver.jar").is_file()
        && nix::unistd::User::from_name("puppet").is_ok_and(|u| u.is_some());
    if !installed {
        root::skip(
            test,
            "needs Debian's puppetserver package (scripts/test.sh installs it)",
        );
    }
    installed
}

pub fn puppet_gid() -> u32 {
    nix::unistd::Group::from_name("puppet")
        .ok()
        .flatten()
        .expect("group puppet (from the puppet-agent package)")
        .gid
        .as_raw()
}

/// One puppet end-to-end run per host at a time: the policy executable and the policy are
/// host-wide files. Held until dropped.
pub struct HostLock(nix::fcntl::Flock<fs::File>);

pub fn host_lock() -> HostLock {
    let dir = root::cache_dir();
    fs::create_dir_all(&dir).unwrap();
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("puppet.lock"))
        .unwrap();
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock puppet.lock");
    HostLock(lock)
}

/// A host file put in place for the test (atomically, with mode and group) and taken away
/// on drop. A file that was there before is kept aside and restored; a copy kept aside by a
/// killed run is the true original and is kept.
pub struct HostFile {
    path: PathBuf,
    saved: PathBuf,
    created_dirs: Vec<PathBuf>,
}

impl HostFile {
    pub fn install(path: &str, content: &[u8], mode: u32, gid: u32) -> HostFile {
        let path = PathBuf::from(path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let saved = path.with_file_name(format!("{name}.cloudcfg-e2e-saved"));
        let mut created_dirs = Vec::new();
        let mut dir = path.parent().unwrap().to_path_buf();
        while !dir.exists() {
            created_dirs.push(dir.clone());
            dir = dir.parent().unwrap().to_path_buf();
        }
        for d in created_dirs.iter().rev() {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        if !saved.exists() && path.exists() {
            fs::rename(&path, &saved).unwrap();
        }
        let tmp = path.with_file_name(format!("{name}.cloudcfg-e2e-new"));
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .unwrap();
        file.write_all(content).unwrap();
        drop(file);
        std::os::unix::fs::chown(&tmp, Some(0), Some(gid)).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).unwrap();
        fs::rename(&tmp, &path).unwrap();
        HostFile {
            path,
            saved,
            created_dirs,
        }
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if self.saved.exists() {
            let _ = fs::rename(&self.saved, &self.path);
        }
        for d in &self.created_dirs {
            let _ = fs::remove_dir(d); // only when empty
        }
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it a few seconds later).
use super::net::free_port;

use super::root::check;

/// A configured, not yet started server directory (puppetserver.sh setup).
pub struct ServerDir {
    pub dir: PathBuf,
    pub port: u16,
}

impl ServerDir {
    /// `dir` and its parents must be searchable by user puppet.
    pub fn setup(dir: &Path) -> ServerDir {
        let port = free_port();
        check(
            "puppetserver.sh setup",
            Command::new(script())
                .arg("setup")
                .arg(dir)
                .arg(port.to_string())
                .env("AUTOSIGN", AUTOSIGN_PATH)
                .output()
                .expect("bash runs"),
        );
        ServerDir {
            dir: dir.to_path_buf(),
            port,
        }
    }

    /// The CA bundle agents need as ca.pem (intermediate + root).
    pub fn ca_bundle(&self) -> String {
        fs::read_to_string(self.dir.join("ca/ca_crt.pem")).unwrap()
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// `puppetserver.sh run DIR`, which execs java: the child's PID is the server's. Its
    /// console goes to DIR/log/console.log.
    pub fn start(self) -> Server {
        let console = self.log_dir().join("console.log");
        let out = fs::File::create(&console).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(script())
            .arg("run")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("puppetserver.sh runs");
        Server {
            dir: self,
            child: Some(child),
            spawned: Instant::now(),
        }
    }
}

/// The running server; stopped with SIGTERM on drop (and SIGKILL if it does not go).
pub struct Server {
    pub dir: ServerDir,
    child: Option<Child>,
    spawned: Instant,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn console_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.log_dir().join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Polls /status/v1/simple (curl with the CA bundle) until it says `running`; panics
    /// when the server exits first or `timeout` passes. Returns the time since the start.
    pub fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let url = format!("https://127.0.0.1:{}/status/v1/simple", self.dir.port);
        let ca = self.dir.dir.join("ca/ca_crt.pem");
        loop {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "5", "--cacert"])
                .arg(&ca)
                .arg(&url)
                .output()
                .expect("curl runs");
            if out.stdout == b"running" {
                return self.spawned.elapsed();
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "puppetserver exited ({status}) before it was ready\n{}",
                    self.console_tail()
                );
            }
            assert!(
                self.spawned.elapsed() < timeout,
                "puppetserver not ready after {timeout:?}\n{}",
                self.console_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// SIGTERM, then SIGKILL after 20 s; the exit status (143 is a normal stop).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(status) = self.stop() {
            eprintln!("puppetserver (dropped) stopped: {status}");
        }
    }
}

/// Exit code as a shell reports it: 143 for SIGTERM.
pub fn shell_code(status: ExitStatus) -> Option<i32> {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
}

/// `lowerdir=` for an overlay of several layers, uppermost first (overlayfs takes
/// `lowerdir=upper:lower`): give it to `root::Overlay::new` as the lower directory.
pub fn layered(layers: &[&Path]) -> PathBuf {
    let parts: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
    assert!(
        parts.iter().all(|p| !p.contains([':', ','])),
        "layer paths must not contain ':' or ','"
    );
    PathBuf::from(parts.join(":"))
}

/// PIDs of processes whose root directory is `root` (run chrooted into it).
pub fn processes_in(root: &Path) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if fs::read_link(entry.path().join("root")).is_ok_and(|r| r == root) {
            let cmdline = fs::read(entry.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            found.push((pid, cmdline));
        }
    }
    found
}

/// Kills (SIGKILL, by PID) whatever still runs chrooted into `root`, on drop: processes the
/// test started there, for instance an agent left behind by a failed run.
pub struct RootReaper(pub PathBuf);

impl Drop for RootReaper {
    fn drop(&mut self) {
        for (pid, cmdline) in processes_in(&self.0) {
            eprintln!("killing pid {pid} left in {}: {cmdline}", self.0.display());
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs `command` as the leader of its own process group, stdout and stderr to files next to
/// `out_prefix`; after `deadline` the whole group (its own, by id) is killed and the test fails.
pub fn run_with_deadline(command: &mut Command, out_prefix: &Path, deadline: Duration) -> Output {
    let stdout = out_prefix.with_extension("stdout");
    let stderr = out_prefix.with_extension("stderr");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).unwrap())
        .stderr(fs::File::create(&stderr).unwrap())
        .process_group(0)
        .spawn()
        .expect("command runs");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{command:?} still running after {deadline:?}: killed its process group\n--- stdout\n{}--- stderr\n{}",
                fs::read_to_string(&stdout).unwrap_or_default(),
                fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: fs::read(&stdout).unwrap_or_default(),
        stderr: fs::read(&stderr).unwrap_or_default(),
    }
}

/// `psk-` and 32 hex digits from /dev/urandom: a key no log can contain by chance.
pub fn random_key() -> String {
    let mut bytes = [0u8; 16];
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("psk-{hex}")
}
