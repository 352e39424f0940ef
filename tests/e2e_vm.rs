//! First boot in a real VM, no mocks (issue 5, item 5): a bookworm disk image with cloudcfg and
//! its systemd unit, booted by QEMU from the root's own kernel and initrd; the datasource is a
//! `cidata` ISO (NoCloud) or a fake EC2 instance metadata service on 127.0.0.1 that the guest
//! reaches at the real address 169.254.169.254 (EC2); the user data adds a signed apt source from
//! a repository on 127.0.0.1 (reached at 169.254.0.50:8080), preseeds debconf and installs a
//! package. Everything is asserted from outside: markers and facts that the image's report unit
//! (tests/vm/guest/cloudcfg-vm-report) prints on the serial console, the servers' request logs,
//! and files read back from the powered-off disk (qemu-img convert + debugfs).
//!
//! The guest network is always QEMU's user network with `restrict=on`: the guest reaches nothing
//! but the two `guestfwd` relays (tests/vm/fwd.py) to this process's servers on 127.0.0.1.
//!
//! Each case boots its own qcow2 overlay of the one cached image (tests/vm/build-image.sh) up to
//! three times: first boot (everything runs), a reboot (no module runs again), and for EC2 a boot
//! with a new instance id (everything runs again). The guest powers itself off after its report;
//! every wait is bounded and QEMU (with its relays) is killed on timeout or panic.
//!
//! Knobs: `CLOUDCFG_VM_BIN` (a bare cloudcfg binary put in the image instead of the package that
//! tests/support/deb.rs builds, for quick local iterations),
//! `CLOUDCFG_VM_JOBS` (guests at a time, default 2), `CLOUDCFG_VM_TIMEOUT` (seconds per boot,
//! default 420), `CLOUDCFG_VM_APPEND` (more kernel command line, e.g. `systemd.mask=UNIT` to
//! debug). Serial logs: `$CARGO_TARGET_TMPDIR/e2e-vm/`. Without root or the tools, or when
//! QEMU cannot start at all, the tests skip loudly (and fail under CI=true).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use support::http::{self, Request, Response, Server};
use support::root;

const TOOLS: &[&str] = &[
    "qemu-system-x86_64",
    "qemu-img",
    "genisoimage",
    "mkfs.ext4",
    "debugfs",
    "debootstrap",
    "gpg",
    "dpkg-scanpackages",
    "chroot",
    "mount",
    "flock",
    "strip",
];
const PACKAGE: &str = "cloudcfg-e2e-hello";
/// Where the guest finds the host's apt repository (and keyserver): a guestfwd relay.
const REPO_GUEST: &str = "169.254.0.50:8080";
const REPO_URL: &str = "http://169.254.0.50:8080";
/// What a `cloudcfg` marker line of the report unit starts with.
const MARK: &str = "CCVM-";

// ---------------------------------------------------------------------------------------------
// Printing that libtest does not capture: timings show in every run, passing or not.

fn say(msg: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "e2e_vm: {}", msg.as_ref());
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn python3() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

// ---------------------------------------------------------------------------------------------
// Preconditions, the accelerator, the image.

/// QEMU options for the accelerator: TCG when /dev/kvm is PVM (a software KVM whose guests need
/// a PVM kernel; Debian's hangs) or the CPU has no vmx/svm (shared/spec/vm-notes.md), else KVM.
fn accel() -> (&'static str, Vec<&'static str>) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if Path::new("/sys/module/kvm_pvm").exists() || !hw || !kvm_usable {
        ("tcg", vec!["-machine", "pc,accel=tcg", "-cpu", "max"])
    } else {
        ("kvm", vec!["-machine", "pc,accel=kvm", "-cpu", "host"])
    }
}

/// Whether QEMU starts at all here: a machine-less QEMU with its monitor on stdin, told to quit.
fn qemu_starts() -> Result<(), String> {
    let (_, accel) = accel();
    let mut child = Command::new("qemu-system-x86_64")
        .args(&accel)
        .args(["-nodefaults", "-display", "none", "-S", "-monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64 does not start: {e}"))?;
    let _ = child.stdin.take().unwrap().write_all(b"quit\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return if status.success() {
                Ok(())
            } else {
                Err(format!("qemu-system-x86_64 failed ({status}): {err}"))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("qemu-system-x86_64 did not quit within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Root, the tools, QEMU. Skips loudly when something is missing (a failure under CI=true).
fn can_run(test: &str) -> bool {
    if !root::can_run(test, TOOLS) {
        return false;
    }
    static QEMU: OnceLock<Result<(), String>> = OnceLock::new();
    match QEMU.get_or_init(qemu_starts) {
        Ok(()) => true,
        Err(e) => {
            root::skip(test, &format!("QEMU cannot start: {e}"));
            false
        }
    }
}

/// The image (built once per set of inputs; cached across runs under the e2e cache).
fn image() -> PathBuf {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            // The package users install (built once per source state, shared with
            // tests/packaging.rs); a bare binary only when asked, for quick local iterations.
            let input = match std::env::var_os("CLOUDCFG_VM_BIN") {
                Some(bin) => PathBuf::from(bin),
                None => support::deb::package().deb,
            };
            let started = Instant::now();
            let out = Command::new(root::repo_dir().join("tests/vm/build-image.sh"))
                .arg(root::cache_dir())
                .arg("cloudcfg")
                .arg(&input)
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| format!("tests/vm/build-image.sh: {e}"))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                return Err(format!(
                    "tests/vm/build-image.sh failed ({}):\n{stderr}",
                    out.status
                ));
            }
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            let how = if stderr.contains("cached: ") {
                "cached"
            } else {
                "built"
            };
            say(format!(
                "image {how} in {:.1} s: {} (cloudcfg from {})",
                started.elapsed().as_secs_f64(),
                dir.display(),
                input.display()
            ));
            Ok(dir)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// Guests at a time: the two cases run as two tests (in parallel under libtest's default), and
// every boot takes a slot.

struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Slot(&'static Slots);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

fn slot() -> Slot {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| Slots {
        free: Mutex::new(jobs() as usize),
        cv: Condvar::new(),
    });
    let mut free = slots.free.lock().unwrap_or_else(|e| e.into_inner());
    while *free == 0 {
        free = slots.cv.wait(free).unwrap_or_else(|e| e.into_inner());
    }
    *free -= 1;
    Slot(slots)
}

/// Guests at a time (`CLOUDCFG_VM_JOBS`, default 2).
fn jobs() -> u64 {
    env_u64("CLOUDCFG_VM_JOBS", 2).max(1)
}

/// vCPUs per guest: the host's CPUs shared by the guests that run at once, at most 2. Measured on
/// the 2-core TCG host: two guests with one vCPU each finish together 25-35 % sooner than the two
/// one after the other with two vCPUs each, and sooner than two parallel 2-vCPU guests.
fn vcpus() -> u64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    (cpus / jobs()).clamp(1, 2)
}

// ---------------------------------------------------------------------------------------------
// One VM: an overlay on the image, booted as often as the case needs.

/// QEMU and everything it started (the guestfwd relays), killed as a process group on drop.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created for QEMU (process_group(0)).
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[derive(Default)]
struct BootSpec {
    cdrom: Option<PathBuf>,
    smbios: Option<String>,
    /// guestfwd `IP:PORT` in the guest → port on 127.0.0.1.
    fwd: Vec<(&'static str, u16)>,
}

struct Vm {
    name: String,
    image: PathBuf,
    dir: tempfile::TempDir,
    overlay: PathBuf,
    boots: usize,
}

impl Vm {
    fn new(name: &str) -> Vm {
        let image = image();
        let dir = tempfile::Builder::new()
            .prefix(&format!("cloudcfg-vm-{name}-"))
            .tempdir_in("/var/tmp")
            .unwrap();
        let overlay = dir.path().join("overlay.qcow2");
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(image.join("base.img"))
            .arg(&overlay)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "qemu-img create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Vm {
            name: name.to_owned(),
            image,
            dir,
            overlay,
            boots: 0,
        }
    }

    fn log_dir() -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-vm");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Boots the overlay until the guest powers off after its report (or the timeout).
    fn boot(&mut self, spec: &BootSpec) -> Boot {
        self.boots += 1;
        let label = format!("{} boot {}", self.name, self.boots);
        let log_path = Self::log_dir().join(format!("{}-boot{}.log", self.name, self.boots));
        let timeout = Duration::from_secs(env_u64("CLOUDCFG_VM_TIMEOUT", 420));
        let (accel_name, accel) = accel();
        let fwd_py = root::repo_dir().join("tests/vm/fwd.py");
        let mut net = String::from("user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.1");
        for (guest, port) in &spec.fwd {
            net.push_str(&format!(
                ",guestfwd=tcp:{guest}-cmd:{} {} 127.0.0.1 {port}",
                python3(),
                fwd_py.display()
            ));
        }
        assert!(net.contains("restrict=on"));
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(&accel)
            .args(["-smp", &vcpus().to_string(), "-m", "1024"])
            .args(["-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio", "-no-reboot"])
            .arg("-kernel")
            .arg(self.image.join("vmlinuz"))
            .arg("-initrd")
            .arg(self.image.join("initrd.img"))
            .arg("-append")
            .arg(
                format!(
                    "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 {}",
                    std::env::var("CLOUDCFG_VM_APPEND").unwrap_or_default()
                )
                .trim_end(),
            )
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=qcow2",
                self.overlay.display()
            ))
            .args(["-netdev", &net, "-device", "virtio-net-pci,netdev=n0"]);
        if let Some(iso) = &spec.cdrom {
            cmd.arg("-drive")
                .arg(format!("file={},media=cdrom,readonly=on", iso.display()));
        }
        if let Some(smbios) = &spec.smbios {
            cmd.args(["-smbios", smbios]);
        }
        let stderr_path = self.dir.path().join(format!("qemu-{}.err", self.boots));

        let asked = Instant::now();
        let _slot = slot();
        let slot_wait = asked.elapsed();
        let mut log = std::fs::File::create(&log_path).unwrap();
        let _ = writeln!(log, "# {cmd:?}");
        let started = Instant::now();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .process_group(0);
        // SAFETY: only prctl(2), which is async-signal-safe, between fork and exec. QEMU dies
        // with the thread that started it, even when the test process is killed; its relays
        // then read EOF and exit.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut qemu = Qemu(cmd.spawn().expect("qemu-system-x86_64 starts"));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout = qemu.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                buf.clear();
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut boot = Boot {
            label: label.clone(),
            log_path: log_path.clone(),
            ..Boot::default()
        };
        let mut tail: Vec<String> = Vec::new();
        let mut timed_out = false;
        let mut end_deadline: Option<Instant> = None;
        loop {
            let deadline = end_deadline.unwrap_or(started + timeout);
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let t = started.elapsed().as_secs_f64();
                    let _ = writeln!(log, "[{t:8.3}] {line}");
                    if let Some(i) = line.find(MARK) {
                        let mark = &line[i..];
                        if boot.marker.is_none() && mark.starts_with("CCVM-DONE") {
                            boot.marker = Some(t);
                        }
                        if boot.end.is_none() && mark.starts_with("CCVM-END") {
                            boot.end = Some(t);
                            // The power-off follows; it must not take long either.
                            end_deadline = Some(Instant::now() + Duration::from_secs(90));
                        }
                        boot.marks.push(mark.to_owned());
                    }
                    tail.push(line);
                    if tail.len() > 80 {
                        tail.remove(0);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    break;
                }
            }
        }
        if timed_out {
            drop(qemu); // kills QEMU and its relays
        } else {
            // stdout closed: QEMU is exiting.
            let deadline = Instant::now() + Duration::from_secs(30);
            while qemu.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            boot.rc = qemu.0.try_wait().ok().flatten().and_then(|s| s.code());
            drop(qemu);
        }
        boot.exit = started.elapsed().as_secs_f64();
        let qemu_err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let _ = writeln!(log, "# qemu stderr:\n{qemu_err}");
        say(format!(
            "{label} ({accel_name}, {} vCPU): marker {} s, report end {} s, qemu exit {:.1} s \
             (rc {:?}){}{} (serial log {})",
            vcpus(),
            fmt_t(boot.marker),
            fmt_t(boot.end),
            boot.exit,
            boot.rc,
            if slot_wait > Duration::from_secs(1) {
                format!(
                    ", after waiting {:.0} s for a slot",
                    slot_wait.as_secs_f64()
                )
            } else {
                String::new()
            },
            if timed_out { " TIMED OUT" } else { "" },
            log_path.display()
        ));
        assert!(
            !timed_out && boot.end.is_some(),
            "{label}: {} after {:.0} s (timeout {} s); QEMU stderr: {qemu_err}\nlast serial lines \
             (whole log: {}):\n{}",
            if timed_out {
                "no power-off"
            } else {
                "QEMU exited without the report"
            },
            boot.exit,
            timeout.as_secs(),
            log_path.display(),
            tail.join("\n")
        );
        boot
    }

    /// Files of the powered-off guest's disk (the overlay, converted to raw, read by debugfs).
    fn read_back(&self, paths: &[&str]) -> BTreeMap<String, (String, Vec<u8>)> {
        let started = Instant::now();
        let raw = self.dir.path().join("disk.raw");
        let out = Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&self.overlay)
            .arg(&raw)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "qemu-img convert: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files = BTreeMap::new();
        for path in paths {
            let debugfs = |request: String| {
                let out = Command::new("debugfs")
                    .arg("-R")
                    .arg(request)
                    .arg(&raw)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "debugfs on {}", raw.display());
                out
            };
            let stat =
                String::from_utf8_lossy(&debugfs(format!("stat {path}")).stdout).into_owned();
            // "Inode: 1234   Type: regular    Mode:  0600   Flags: ..."
            let mode = stat
                .split("Mode:")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or_else(|| panic!("{path} is not on the guest's disk: {stat}"))
                .to_owned();
            let content = debugfs(format!("cat {path}")).stdout;
            files.insert(path.to_string(), (mode, content));
        }
        let _ = std::fs::remove_file(&raw);
        say(format!(
            "{}: read {} files back from the disk in {:.1} s",
            self.name,
            paths.len(),
            started.elapsed().as_secs_f64()
        ));
        files
    }
}

fn fmt_t(t: Option<f64>) -> String {
    t.map_or_else(|| "-".into(), |t| format!("{t:.1}"))
}

// ---------------------------------------------------------------------------------------------
// What a boot reported.

#[derive(Default)]
struct Boot {
    label: String,
    log_path: PathBuf,
    /// Serial lines from the first `CCVM-` on.
    marks: Vec<String>,
    marker: Option<f64>,
    end: Option<f64>,
    exit: f64,
    rc: Option<i32>,
}

impl Boot {
    fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.marks.iter().filter_map(move |m| {
            m.strip_prefix(prefix)
                .map(|rest| rest.strip_prefix(' ').unwrap_or(rest))
        })
    }

    fn done_line(&self) -> &str {
        self.with_prefix("CCVM-DONE").next().unwrap_or("")
    }

    fn fact(&self, name: &str) -> String {
        self.with_prefix("CCVM-FACT")
            .find_map(|rest| {
                let (n, v) = rest.split_once(' ').unwrap_or((rest, ""));
                (n == name).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{}: no fact {name} on the console", self.label))
    }

    fn status(&self) -> serde_json::Value {
        let text: Vec<&str> = self.with_prefix("CCVM-JSON").collect();
        serde_json::from_str(&text.join("\n")).unwrap_or_else(|e| {
            panic!(
                "{}: cloudcfg status --format json on the console is not JSON ({e}):\n{}",
                self.label,
                text.join("\n")
            )
        })
    }

    fn modules(&self) -> BTreeMap<String, (String, String)> {
        self.status()["modules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").to_owned(),
                    (
                        m["status"].as_str().unwrap_or("").to_owned(),
                        m["reason"].as_str().unwrap_or("").to_owned(),
                    ),
                )
            })
            .collect()
    }

    /// (mode, content) of a file the report printed, or None when it printed "absent".
    fn file(&self, path: &str) -> Option<(String, String)> {
        let head = self
            .with_prefix("CCVM-FILE")
            .find(|rest| rest.split(' ').next() == Some(path))
            .unwrap_or_else(|| panic!("{}: the report did not show {path}", self.label));
        let fields: Vec<&str> = head.split(' ').collect();
        if fields.get(1) == Some(&"absent") {
            return None;
        }
        let prefix = format!("{path}|");
        let mut content = String::new();
        for line in self.with_prefix("CCVM-LINE") {
            if let Some(text) = line.strip_prefix(&prefix) {
                content.push_str(text);
                content.push('\n');
            }
        }
        Some((fields[1].to_owned(), content))
    }

    fn debconf(&self) -> String {
        self.with_prefix("CCVM-DEBCONF")
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Commands cloudcfg ran, from /var/log/cloudcfg.log (all boots of this disk so far),
    /// bootcmd's script aside: it runs at every boot.
    fn commands(&self) -> Vec<String> {
        self.with_prefix("CCVM-LOG")
            .filter_map(|l| l.split_once(" run: ").map(|(_, c)| c.to_owned()))
            .filter(|c| !c.ends_with("/bootcmd"))
            .collect()
    }

    fn summary(&self) -> String {
        self.with_prefix("CCVM-STATUS")
            .collect::<Vec<_>>()
            .join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// Shared checks.

/// The user data as a multipart message, as EC2 launch templates send it: the cloud-config,
/// with bootcmd, write_files and runcmd added, and a shell-script part.
fn multipart(cloud_config: &str) -> String {
    format!(
        "Content-Type: multipart/mixed; boundary=\"==CCVM==\"\nMIME-Version: 1.0\n\n\
--==CCVM==\nContent-Type: text/cloud-config\n\n{cloud_config}\
bootcmd:
  - mkdir -p /var/lib/ccvm && echo \"$INSTANCE_ID\" >> /var/lib/ccvm/boot-ids
write_files:
  - path: /var/lib/ccvm/written
    content: from write_files
    permissions: '0640'
runcmd:
  - [sh, -c, 'echo \"runcmd $(cat /var/lib/ccvm/written)\" >> /var/lib/ccvm/order']
--==CCVM==\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho part >> /var/lib/ccvm/order
--==CCVM==--\n"
    )
}

/// What the multipart user data's scripts did, `boots` boots of `instance` in.
fn assert_scripts_ran(boot: &Boot, instance: &str, boots: usize) {
    let ctx = format!("{} (serial log {})", boot.label, boot.log_path.display());
    let modules = boot.modules();
    assert_eq!(modules["bootcmd"].0, "ok", "{ctx}");
    assert_eq!(
        boot.file("/var/lib/ccvm/boot-ids").map(|f| f.1),
        Some(format!("{instance}\n").repeat(boots)),
        "{ctx}: bootcmd runs at every boot with INSTANCE_ID"
    );
    // The script part first (part-002 sorts before runcmd), once for the instance; runcmd
    // after write_files.
    assert_eq!(
        boot.file("/var/lib/ccvm/order"),
        Some(("644".into(), "part\nruncmd from write_files\n".into())),
        "{ctx}"
    );
    assert_eq!(
        boot.file("/var/lib/ccvm/written").map(|f| f.0),
        Some("640".into()),
        "{ctx}"
    );
}

fn user_data(key_lines: &str) -> String {
    format!(
        r#"#cloud-config
apt:
  conf: |
    APT::Install-Recommends "false";
  debconf_selections:
    tz: |
      tzdata tzdata/Areas select Europe
      tzdata tzdata/Zones/Europe select Berlin
  sources:
    e2e:
      source: "deb {REPO_URL}/debian $RELEASE main"
{key_lines}packages: [{PACKAGE}]
"#
    )
}

/// The repository, and (as keyserver) its key, on one 127.0.0.1 port.
fn repo_server() -> (root::Repo, Server) {
    let repo = root::make_repo(&[PACKAGE]);
    let keys = vec![(repo.fingerprint.clone(), repo.key.clone())];
    let server = http::serve(http::or_else(
        http::hkp(keys),
        http::static_files(repo.web_root.clone()),
    ));
    (repo, server)
}

/// A clean boot that cloudcfg finished for `instance`; returns the context for later messages.
fn assert_done(boot: &Boot, instance: &str) -> String {
    let ctx = format!(
        "{}\n{}\n(serial log {})",
        boot.label,
        boot.summary(),
        boot.log_path.display()
    );
    assert!(
        boot.done_line().ends_with("state=running"),
        "{ctx}: the boot is not clean: {} (failed units: {})",
        boot.done_line(),
        boot.fact("failed-units")
    );
    let status = boot.status();
    assert_eq!(status["status"], "done", "{ctx}");
    assert_eq!(status["instance_id"], instance, "{ctx}");
    ctx
}

/// What the first boot of an instance must have left (asserted on the console's facts).
fn assert_configured(boot: &Boot, datasource: &str, instance: &str) {
    let ctx = assert_done(boot, instance);
    assert_eq!(boot.status()["datasource"], datasource, "{ctx}");
    let modules = boot.modules();
    assert_eq!(modules["apt_configure"].0, "ok", "{ctx}");
    assert_eq!(modules["package_update_upgrade_install"].0, "ok", "{ctx}");
    let unit = boot.fact("cloudcfg-unit");
    assert!(
        unit.contains("success") && unit.contains("active"),
        "{ctx}: cloudcfg.service: {unit}"
    );

    // apt: the conf snippet, the source with its key, the package from the signed repository.
    assert_eq!(
        boot.file("/etc/apt/apt.conf.d/94cloud-init-config"),
        Some(("644".into(), "APT::Install-Recommends \"false\";\n".into())),
        "{ctx}"
    );
    assert_eq!(
        boot.file("/etc/apt/sources.list.d/e2e.list"),
        Some((
            "644".into(),
            format!("deb [signed-by=/etc/apt/keyrings/e2e.asc] {REPO_URL}/debian bookworm main\n")
        )),
        "{ctx}"
    );
    let (mode, key) = boot.file("/etc/apt/keyrings/e2e.asc").expect("the key");
    assert_eq!(mode, "644", "{ctx}");
    assert!(
        key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{ctx}: {key}"
    );
    assert_eq!(boot.fact("dpkg-hello"), "install ok installed", "{ctx}");
    assert_eq!(
        boot.file(&format!("/usr/share/{PACKAGE}/marker")),
        Some(("644".into(), format!("{PACKAGE} 1.0-1\n"))),
        "{ctx}"
    );

    // debconf: preseeded, and tzdata (installed) reconfigured with the answers.
    let debconf = boot.debconf();
    assert!(
        debconf.contains("tzdata/Areas: Europe") && debconf.contains("tzdata/Zones/Europe: Berlin"),
        "{ctx}: debconf-show tzdata:\n{debconf}"
    );
    assert_eq!(
        boot.file("/etc/timezone"),
        Some(("644".into(), "Europe/Berlin\n".into())),
        "{ctx}"
    );
    assert!(boot.fact("localtime").ends_with("Europe/Berlin"), "{ctx}");

    // state and report files
    let (mode, data) = boot
        .file(&format!(
            "/var/lib/cloudcfg/instances/{instance}/instance-data.json"
        ))
        .expect("instance-data.json");
    assert_eq!(mode, "600", "{ctx}");
    let data: serde_json::Value = serde_json::from_str(&data).expect("instance-data.json is JSON");
    assert_eq!(data["datasource"], datasource, "{ctx}");
    assert_eq!(data["instance_id"], instance, "{ctx}");
    let modes = boot.fact("instance-dir-mode");
    assert!(
        modes.split(' ').all(|m| m == "700"),
        "{ctx}: instance dirs {modes}"
    );
    assert!(
        boot.file("/var/lib/cloud/instance/boot-finished").is_some(),
        "{ctx}"
    );
    let result = boot
        .file("/run/cloud-init/result.json")
        .expect("result.json")
        .1;
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["v1"]["errors"], serde_json::json!([]), "{ctx}");
}

/// What a later boot shows of the previous boot's /var/lib/cloud/instance/boot-finished
/// before cloudcfg runs (tests/vm/guest/cloudcfg-vm-early.service, right after
/// systemd-tmpfiles-setup): nothing. Tools that wait for the marker must not take the previous
/// boot's for this one's; the package's tmpfiles.d line removes it, as cloud-init's first stage
/// does.
fn assert_no_stale_marker(boot: &Boot) {
    assert_eq!(
        boot.fact("early-boot-finished"),
        "absent",
        "{}: the previous boot's boot-finished was still there early in this boot (serial log {})",
        boot.label,
        boot.log_path.display()
    );
}

/// A later boot of the same instance: cloudcfg ran (and reported) but no module ran again.
fn assert_nothing_reran(boot: &Boot, instance: &str, commands_before: usize) {
    assert_no_stale_marker(boot);
    let ctx = assert_done(boot, instance);
    for (name, (state, reason)) in boot.modules() {
        if name == "final_message" || name == "bootcmd" {
            // Run at every boot, as cloud-init does (bootcmd when the user data has one).
            let every_boot = state == "ok" || (name == "bootcmd" && reason == "nothing to do");
            assert!(every_boot, "{ctx}: module {name}: {state} {reason}");
            continue;
        }
        assert_eq!(state, "skipped", "{ctx}: module {name}");
        // A module with no actions for this user data is never marked, so it says so again.
        if name != "puppet" && reason != "nothing to do" {
            assert_eq!(
                reason,
                format!("already ran for {instance}"),
                "{ctx}: {name}"
            );
        }
    }
    assert_eq!(
        boot.commands().len(),
        commands_before,
        "{ctx}: cloudcfg ran commands again: {:?}",
        boot.commands()
    );
    assert_eq!(boot.fact("dpkg-hello"), "install ok installed", "{ctx}");
}

/// A boot with a new instance id (a clone of the disk): every module ran again.
fn assert_reran(boot: &Boot, instance: &str, commands_before: usize, repo: &Server) {
    assert_no_stale_marker(boot);
    let ctx = assert_done(boot, instance);
    for (name, (state, reason)) in boot.modules() {
        // Every module with something to do ran again; none was held back by a marker.
        let ran = state == "ok" || (state == "skipped" && reason == "nothing to do");
        assert!(
            ran,
            "{ctx}: {name} did not run for the new instance: {state} {reason}"
        );
    }
    assert_eq!(boot.modules()["apt_configure"].0, "ok", "{ctx}");
    assert!(boot.commands().len() > commands_before, "{ctx}");
    assert!(
        repo.requests()
            .iter()
            .any(|r| r.path.ends_with("/InRelease")),
        "{ctx}: no apt-get update for the new instance"
    );
    assert!(
        boot.fact("instances").split(' ').any(|i| i == instance),
        "{ctx}"
    );
}

fn seed_iso(dir: &Path, meta_data: &str, user_data: &str) -> PathBuf {
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("meta-data"), meta_data).unwrap();
    std::fs::write(seed.join("user-data"), user_data).unwrap();
    let iso = dir.join("seed.iso");
    let out = Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-o"])
        .arg(&iso)
        .arg(seed.join("user-data"))
        .arg(seed.join("meta-data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "genisoimage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    iso
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// NoCloud from a `cidata` ISO; the key comes from the keyserver (keyid), served with the repo.
#[test]
fn nocloud_first_boot_then_reboot() {
    const TEST: &str = "e2e_vm::nocloud_first_boot_then_reboot";
    if !can_run(TEST) {
        return;
    }
    let started = Instant::now();
    let (repo, server) = repo_server();
    let instance = "iid-vm-nocloud-1";
    let ud = multipart(&user_data(&format!(
        "      keyid: \"{}\"\n      keyserver: \"{REPO_URL}\"\n",
        repo.fingerprint
    )));
    let scratch = tempfile::tempdir().unwrap();
    let iso = seed_iso(
        scratch.path(),
        &format!("instance-id: {instance}\nlocal-hostname: vm-nocloud\n"),
        &ud,
    );
    let spec = BootSpec {
        cdrom: Some(iso),
        fwd: vec![(REPO_GUEST, server.port())],
        ..BootSpec::default()
    };
    let mut vm = Vm::new("nocloud");

    let first = vm.boot(&spec);
    assert_configured(&first, "nocloud", instance);
    assert_scripts_ran(&first, instance, 1);
    assert_eq!(first.modules()["scripts_user"].0, "ok");
    let data: serde_json::Value = serde_json::from_str(
        &first
            .file(&format!(
                "/var/lib/cloudcfg/instances/{instance}/instance-data.json"
            ))
            .unwrap()
            .1,
    )
    .unwrap();
    assert!(
        data["source"].as_str().unwrap_or("").contains("cidata"),
        "{data}"
    );
    assert_eq!(data["facts"]["hostname"], "vm-nocloud", "{data}");
    assert_eq!(first.fact("dmi-sys-vendor"), "QEMU");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().any(|p| p == "/pks/lookup"),
        "the key was not fetched from the keyserver: {paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("/InRelease"))
            && paths.iter().any(|p| p.ends_with(".deb")),
        "apt did not use the repository: {paths:?}"
    );
    let commands = first.commands();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("dpkg-reconfigure") && c.ends_with("tzdata")),
        "{commands:?}"
    );

    server.clear_requests();
    let second = vm.boot(&spec);
    assert_nothing_reran(&second, instance, commands.len());
    assert_scripts_ran(&second, instance, 2);
    assert_eq!(
        server.requests().len(),
        0,
        "the reboot fetched from the repository or keyserver: {:?}",
        server
            .requests()
            .iter()
            .map(|r| &r.path)
            .collect::<Vec<_>>()
    );

    // A clone: a seed with another instance id runs everything again.
    let clone = "iid-vm-nocloud-2";
    let iso = seed_iso(
        &scratch.path().join("clone"),
        &format!("instance-id: {clone}\nlocal-hostname: vm-nocloud\n"),
        &ud,
    );
    let third = vm.boot(&BootSpec {
        cdrom: Some(iso),
        ..spec
    });
    assert_reran(&third, clone, commands.len(), &server);

    // From the powered-off disk: the user data kept as fetched, the log's mode.
    let files = vm.read_back(&[
        &format!("/var/lib/cloudcfg/instances/{instance}/user-data"),
        "/var/log/cloudcfg.log",
    ]);
    let (mode, kept) = &files[&format!("/var/lib/cloudcfg/instances/{instance}/user-data")];
    assert_eq!(mode, "0600");
    assert_eq!(String::from_utf8_lossy(kept), ud);
    assert_eq!(files["/var/log/cloudcfg.log"].0, "0600");
    say(format!(
        "nocloud: whole case {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// The fake IMDS: IMDSv2 only (a GET without the session token gets 401), answering the
/// instance id the test sets.
fn imds(instance: Arc<Mutex<String>>, user_data: Arc<Mutex<String>>) -> Server {
    const TOKEN: &str = "AQAEAEX-e2e-vm-session-token==";
    http::serve(move |req: &Request| {
        if req.path == "/latest/api/token" {
            return match (
                req.method.as_str(),
                req.header("X-aws-ec2-metadata-token-ttl-seconds"),
            ) {
                ("PUT", Some(ttl))
                    if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) =>
                {
                    Response::ok(TOKEN)
                }
                ("PUT", _) => Response::status(400),
                _ => Response::status(405),
            };
        }
        if req.method != "GET" {
            return Response::status(405);
        }
        if req.header("X-aws-ec2-metadata-token") != Some(TOKEN) {
            return Response::status(401);
        }
        let id = instance.lock().unwrap().clone();
        match req.path.as_str() {
            "/latest/meta-data/instance-id" => Response::ok(id),
            "/latest/meta-data/local-hostname" | "/latest/meta-data/hostname" => {
                Response::ok("ip-10-0-0-5.eu-central-1.compute.internal")
            }
            "/latest/meta-data/placement/availability-zone" => Response::ok("eu-central-1a"),
            "/latest/user-data" => Response::ok(user_data.lock().unwrap().clone()),
            _ => Response::not_found(),
        }
    })
}

/// EC2: DMI says so (QEMU's SMBIOS), the metadata service is at 169.254.169.254 (no URL
/// override anywhere), IMDSv2; inline key. Third boot: a new instance id runs everything again.
/// Fourth: a new instance whose user data is a shell script.
#[test]
fn ec2_first_boot_reboot_and_new_instance() {
    const TEST: &str = "e2e_vm::ec2_first_boot_reboot_and_new_instance";
    if !can_run(TEST) {
        return;
    }
    let started = Instant::now();
    let (repo, server) = repo_server();
    let key: String = repo.key.lines().map(|l| format!("        {l}\n")).collect();
    let ud = user_data(&format!("      key: |\n{key}"));
    let instance = Arc::new(Mutex::new("i-0e2e0000000000001".to_owned()));
    let served = Arc::new(Mutex::new(ud.clone()));
    let metadata = imds(Arc::clone(&instance), Arc::clone(&served));
    let spec = BootSpec {
        smbios: Some("type=1,manufacturer=Amazon EC2,product=e2e".into()),
        fwd: vec![
            ("169.254.169.254:80", metadata.port()),
            (REPO_GUEST, server.port()),
        ],
        ..BootSpec::default()
    };
    let mut vm = Vm::new("ec2");

    let first = vm.boot(&spec);
    assert_configured(&first, "ec2", "i-0e2e0000000000001");
    assert_eq!(first.fact("dmi-sys-vendor"), "Amazon EC2");
    let data: serde_json::Value = serde_json::from_str(
        &first
            .file("/var/lib/cloudcfg/instances/i-0e2e0000000000001/instance-data.json")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(data["source"], "http://169.254.169.254", "{data}");
    assert!(
        data["detected"]
            .as_str()
            .unwrap_or("")
            .contains("Amazon EC2"),
        "detection did not use DMI: {data}"
    );
    assert_eq!(data["availability_zone"], "eu-central-1a", "{data}");
    assert_eq!(data["facts"]["hostname"], "ip-10-0-0-5", "{data}");
    assert_eq!(
        data["facts"]["fqdn"], "ip-10-0-0-5.eu-central-1.compute.internal",
        "{data}"
    );
    let requests = metadata.requests();
    assert_eq!(
        requests
            .first()
            .map(|r| (r.method.as_str(), r.path.as_str())),
        Some(("PUT", "/latest/api/token")),
        "IMDSv2 first"
    );
    let without_token: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.header("X-aws-ec2-metadata-token").is_none())
        .map(|r| r.path.as_str())
        .collect();
    assert!(
        without_token.is_empty(),
        "GETs without the token: {without_token:?}"
    );
    assert_eq!(metadata.count("/latest/user-data"), 1);
    assert!(
        server.requests().iter().all(|r| r.path != "/pks/lookup"),
        "an inline key needs no keyserver"
    );
    let commands = first.commands();

    metadata.clear_requests();
    server.clear_requests();
    let second = vm.boot(&spec);
    assert_nothing_reran(&second, "i-0e2e0000000000001", commands.len());
    assert_eq!(server.requests().len(), 0, "the reboot used the repository");
    let paths: Vec<String> = metadata
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    say(format!(
        "ec2 boot 2: IMDS requests (run reads the instance id on every boot): {paths:?}"
    ));
    assert!(
        paths
            .iter()
            .any(|p| p == "GET /latest/meta-data/instance-id")
    );

    // A clone: the metadata service now answers another instance id.
    *instance.lock().unwrap() = "i-0e2e0000000000002".to_owned();
    server.clear_requests();
    let third = vm.boot(&spec);
    assert_reran(&third, "i-0e2e0000000000002", commands.len(), &server);
    assert_eq!(
        third.fact("instances"),
        "i-0e2e0000000000001 i-0e2e0000000000002"
    );

    // Another instance whose user data is a shell script only, the most common kind on EC2.
    *instance.lock().unwrap() = "i-0e2e0000000000003".to_owned();
    *served.lock().unwrap() =
        "#!/bin/bash\nmkdir -p /var/lib/ccvm\necho \"shell script as $(id -un)\" > /var/lib/ccvm/shell-script\n"
            .to_owned();
    let fourth = vm.boot(&spec);
    let ctx = assert_done(&fourth, "i-0e2e0000000000003");
    let modules = fourth.modules();
    assert_eq!(modules["scripts_user"].0, "ok", "{ctx}");
    assert_eq!(
        modules["apt_configure"],
        ("skipped".into(), "nothing to do".into()),
        "{ctx}"
    );
    assert_eq!(
        fourth.file("/var/lib/ccvm/shell-script").map(|f| f.1),
        Some("shell script as root\n".into()),
        "{ctx}"
    );
    assert!(fourth.summary().contains("scripts_user: ok"), "{ctx}");

    let files = vm.read_back(&["/var/lib/cloudcfg/instances/i-0e2e0000000000002/user-data"]);
    let (mode, kept) = &files["/var/lib/cloudcfg/instances/i-0e2e0000000000002/user-data"];
    assert_eq!(mode, "0600");
    assert_eq!(String::from_utf8_lossy(kept), ud);
    say(format!(
        "ec2: whole case {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}
