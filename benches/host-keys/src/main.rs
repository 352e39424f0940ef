//! SSH host key generation: `ssh-keygen -q -t TYPE -N '' -f FILE` spawned as a process (what
//! cloud-init's cc_ssh does) against the RustCrypto `ssh-key` crate in-process (RSA 3072 bits and
//! ECDSA P-256, ssh-keygen's defaults; Ed25519), each writing the unencrypted OpenSSH private key
//! and the `.pub` line.
//!
//! usage: host-keys-bench [--runs N] [--out DIR] [--sides keygen,inproc,inproc-rc]
//!                        [--types rsa,ecdsa,ed25519]
//!
//! Sides: `keygen` (ssh-keygen), `inproc` (ssh-key 0.6.7, feature `inprocess`, on by default),
//! `inproc-rc` (ssh-key 0.7.0-rc.12, feature `rc`). Default: every side the binary was built with.
//!
//! Every key is kept as DIR/SIDE/TYPE/NNN/ssh_host_TYPE_key{,.pub} for benches/host-keys.sh to
//! check with ssh-keygen and sshd. Each timing covers generating and writing both files (for
//! ssh-keygen: spawn, run, wait), as wall time and as CPU time (user + system of this process and
//! of its children, getrusage: what a 1-vCPU VM with nothing else to run would wait for, and
//! what other load on the host does not inflate). Runs interleave types and sides, the side order
//! alternating from one run to the next, so that drift in the host's load spreads over all.
//! Writes DIR/timings.tsv (side, type, run, wall and CPU microseconds) and prints two Markdown
//! tables (wall, CPU) of median, p10, p90 per type and side, and of the per-run total of the
//! three types per side, then a summary table: ssh-keygen's median and p90 against each
//! in-process side's median, with the ratio of the CPU medians.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use std::{env, fs};

const TYPES: [&str; 3] = ["rsa", "ecdsa", "ed25519"];
const SIDES: [&str; 3] = ["keygen", "inproc", "inproc-rc"];
/// Whether each side of SIDES was compiled in.
const BUILT: [bool; 3] = [true, cfg!(feature = "inprocess"), cfg!(feature = "rc")];

fn built(side: &str) -> bool {
    SIDES.iter().zip(BUILT).any(|(s, b)| *s == side && b)
}

fn keygen(ty: &str, path: &Path) -> Result<(), String> {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", ty, "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("ssh-keygen -t {ty}: {st}"))
    }
}

#[cfg(feature = "inprocess")]
fn inproc(ty: &str, path: &Path, comment: &str) -> Result<(), String> {
    use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
    use ssh_key::rand_core::OsRng;
    use ssh_key::{EcdsaCurve, LineEnding, PrivateKey};
    let e = |e: ssh_key::Error| format!("ssh-key {ty}: {e}");
    let data = match ty {
        // PrivateKey::random(Algorithm::Rsa) would make 4096 bits; ssh-keygen's default is 3072.
        "rsa" => KeypairData::from(RsaKeypair::random(&mut OsRng, 3072).map_err(e)?),
        "ecdsa" => {
            KeypairData::from(EcdsaKeypair::random(&mut OsRng, EcdsaCurve::NistP256).map_err(e)?)
        }
        "ed25519" => KeypairData::from(Ed25519Keypair::random(&mut OsRng)),
        _ => return Err(format!("unknown type {ty}")),
    };
    let key = PrivateKey::new(data, comment).map_err(e)?;
    // Mode 0600 for the private key (the crate's write_openssh_file), the umask's for .pub.
    key.write_openssh_file(path, LineEnding::LF).map_err(e)?;
    key.public_key()
        .write_openssh_file(&pub_path(path))
        .map_err(e)?;
    Ok(())
}

#[cfg(feature = "rc")]
fn inproc_rc(ty: &str, path: &Path, comment: &str) -> Result<(), String> {
    use ssh_key_rc::getrandom::{SysRng, rand_core::UnwrapErr};
    use ssh_key_rc::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
    use ssh_key_rc::{EcdsaCurve, LineEnding, PrivateKey};
    let e = |e: ssh_key_rc::Error| format!("ssh-key (rc) {ty}: {e}");
    let mut rng = UnwrapErr(SysRng);
    let data = match ty {
        "rsa" => KeypairData::from(RsaKeypair::random(&mut rng, 3072).map_err(e)?),
        "ecdsa" => {
            KeypairData::from(EcdsaKeypair::random(&mut rng, EcdsaCurve::NistP256).map_err(e)?)
        }
        "ed25519" => KeypairData::from(Ed25519Keypair::random(&mut rng)),
        _ => return Err(format!("unknown type {ty}")),
    };
    let key = PrivateKey::new(data, comment).map_err(e)?;
    key.write_openssh_file(path, LineEnding::LF).map_err(e)?;
    key.public_key()
        .write_openssh_file(pub_path(path))
        .map_err(e)?;
    Ok(())
}

fn generate(side: &str, ty: &str, path: &Path, comment: &str) -> Result<(), String> {
    let _ = comment; // unused when neither in-process side is built
    match side {
        "keygen" => keygen(ty, path),
        #[cfg(feature = "inprocess")]
        "inproc" => inproc(ty, path, comment),
        #[cfg(feature = "rc")]
        "inproc-rc" => inproc_rc(ty, path, comment),
        _ => Err(format!(
            "side `{side}`: not built in (features `inprocess`, `rc`)"
        )),
    }
}

#[cfg(any(feature = "inprocess", feature = "rc"))]
fn pub_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".pub");
    s.into()
}

/// User + system CPU time of this process and of its waited-for children, in microseconds.
fn cpu_us() -> f64 {
    let mut t = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage only writes the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::getrusage(who, &mut ru) }, 0, "getrusage");
        for tv in [ru.ru_utime, ru.ru_stime] {
            t += tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
        }
    }
    t
}

/// Linear interpolation between closest ranks (numpy's default); `v` sorted.
fn pct(v: &[f64], q: f64) -> f64 {
    let x = q * (v.len() - 1) as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
}

/// median, p10, p90, min, max, mean of microseconds, in milliseconds.
fn stats(us: &[f64]) -> [f64; 6] {
    let mut v: Vec<f64> = us.iter().map(|u| u / 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    [
        pct(&v, 0.5),
        pct(&v, 0.1),
        pct(&v, 0.9),
        v[0],
        v[v.len() - 1],
        mean,
    ]
}

fn row(out: &mut String, ty: &str, side: &str, us: &[f64]) {
    let [med, p10, p90, min, max, mean] = stats(us);
    let _ = writeln!(
        out,
        "| {ty} | {side} | {} | {med:.2} | {p10:.2} | {p90:.2} | {min:.2} | {max:.2} | {mean:.2} |",
        us.len()
    );
}

/// Per run, the sum over the types: `m[type][run]` -> `[run]`.
fn totals(m: &[Vec<f64>]) -> Vec<f64> {
    (0..m[0].len())
        .map(|r| m.iter().map(|t| t[r]).sum())
        .collect()
}

/// The table for the results file: ssh-keygen's median and p90 (wall, CPU) against each
/// in-process side's medians, and the ratio of the CPU medians (in-process / ssh-keygen: under
/// 1 = in-process faster).
fn summary(
    types: &[&str],
    sides: &[&str],
    wall: &[Vec<Vec<f64>>],
    cpu: &[Vec<Vec<f64>>],
) -> String {
    let Some(k) = sides.iter().position(|s| *s == "keygen") else {
        return String::new();
    };
    let others: Vec<usize> = (0..sides.len()).filter(|i| *i != k).collect();
    let mut md = String::from(
        "Summary, ms (medians unless p90; ratio = in-process CPU median / ssh-keygen CPU median):\n\n\
         | type | ssh-keygen wall median | wall p90 | CPU median | CPU p90 |",
    );
    for &o in &others {
        let _ = write!(
            md,
            " {0} wall median | {0} CPU median | {0} ratio |",
            sides[o]
        );
    }
    md.push_str("\n|---|---|---|---|---|");
    md.push_str(&"---|---|---|".repeat(others.len()));
    md.push('\n');
    let total = format!("total {}", types.join("+"));
    for ti in 0..=types.len() {
        let pick = |m: &[Vec<Vec<f64>>], si: usize| -> [f64; 6] {
            if ti < types.len() {
                stats(&m[si][ti])
            } else {
                stats(&totals(&m[si]))
            }
        };
        let (kw, kc) = (pick(wall, k), pick(cpu, k));
        let name = types.get(ti).copied().unwrap_or(&total);
        let _ = write!(
            md,
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} |",
            kw[0], kw[2], kc[0], kc[2]
        );
        for &o in &others {
            let (w, c) = (pick(wall, o), pick(cpu, o));
            let _ = write!(md, " {:.2} | {:.2} | {:.3}x |", w[0], c[0], c[0] / kc[0]);
        }
        md.push('\n');
    }
    md
}

fn list(s: &str, allowed: &[&'static str]) -> Vec<&'static str> {
    s.split(',')
        .map(|x| {
            *allowed.iter().find(|a| **a == x).unwrap_or_else(|| {
                eprintln!("host-keys-bench: `{x}` is not one of {allowed:?}");
                std::process::exit(2)
            })
        })
        .collect()
}

fn main() {
    let mut runs = 30usize;
    let mut out = PathBuf::from("host-keys-out");
    let mut sides: Vec<&str> = SIDES.into_iter().filter(|s| built(s)).collect();
    let mut types: Vec<&str> = TYPES.to_vec();
    let mut args = env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--runs" => runs = val().parse().expect("--runs N"),
            "--out" => out = val().into(),
            "--sides" => sides = list(&val(), &SIDES),
            "--types" => types = list(&val(), &TYPES),
            _ => {
                eprintln!(
                    "usage: host-keys-bench [--runs N] [--out DIR] [--sides keygen,inproc,inproc-rc] [--types rsa,ecdsa,ed25519]"
                );
                std::process::exit(2)
            }
        }
    }
    assert!(runs > 0, "--runs must be at least 1");
    if let Some(s) = sides.iter().find(|s| !built(s)) {
        eprintln!("host-keys-bench: side `{s}` not built in (features `inprocess`, `rc`)");
        std::process::exit(2)
    }
    // ssh-keygen's default comment is user@host; give the in-process keys the same.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let comment = format!("root@{}", host.trim());
    let _ = fs::remove_dir_all(&out);

    let mut tsv = String::from("side\ttype\trun\twall_us\tcpu_us\n");
    let mut us: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); types.len()]; sides.len()];
    let mut cpu: Vec<Vec<Vec<f64>>> = us.clone();
    for run in 0..runs {
        for (ti, ty) in types.iter().enumerate() {
            for k in 0..sides.len() {
                let si = if run % 2 == 0 { k } else { sides.len() - 1 - k };
                let side = sides[si];
                let dir = out.join(side).join(ty).join(format!("{run:03}"));
                fs::create_dir_all(&dir).expect("create output directory");
                let path = dir.join(format!("ssh_host_{ty}_key"));
                let (t, c) = (Instant::now(), cpu_us());
                let r = generate(side, ty, &path, &comment);
                let (e, c) = (t.elapsed().as_secs_f64() * 1e6, cpu_us() - c);
                if let Err(m) = r {
                    eprintln!("host-keys-bench: {m}");
                    std::process::exit(1);
                }
                us[si][ti].push(e);
                cpu[si][ti].push(c);
                let _ = writeln!(tsv, "{side}\t{ty}\t{run}\t{e:.0}\t{c:.0}");
            }
        }
    }
    fs::write(out.join("timings.tsv"), tsv).expect("write timings.tsv");

    for (what, m) in [("wall", &us), ("CPU", &cpu)] {
        let mut md = format!(
            "{what} time, ms:\n\n| type | side | n | median | p10 | p90 | min | max | mean |\n|---|---|---|---|---|---|---|---|---|\n"
        );
        for (ti, ty) in types.iter().enumerate() {
            for (si, side) in sides.iter().enumerate() {
                row(&mut md, ty, side, &m[si][ti]);
            }
        }
        for (si, side) in sides.iter().enumerate() {
            row(
                &mut md,
                &format!("total {}", types.join("+")),
                side,
                &totals(&m[si]),
            );
        }
        println!("{md}");
    }
    print!("{}", summary(&types, &sides, &us, &cpu));
}
