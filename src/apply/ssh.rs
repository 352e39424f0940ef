//! The `ssh` and `keys_to_console` modules' kinds: host keys made beside /etc/ssh and put in
//! place only once all of them exist, their fingerprints and keys on the console, and a reload
//! of an sshd that already runs.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::runner::{Runner, RunnerConfig};
use super::{ActionError, Executor};
use crate::action::{HostKeyFile, SSH_DIR, host_key_path};

/// Where new host keys are made, inside /etc/ssh so that the same file system takes them;
/// the name matches no `ssh_host_*key*` pattern that sshd or cloud-init look for.
const STAGING: &str = "/etc/ssh/.cloudcfg-host-keys";

/// A host key file's mode: private keys 0600 (sshd refuses group- or world-readable ones),
/// public keys and certificates 0644.
fn host_key_mode(name: &str) -> u32 {
    if name.ends_with(".pub") { 0o644 } else { 0o600 }
}

/// The host key files in /etc/ssh that cloud-init's `ssh_deletekeys` removes
/// (`ssh_host_*key*`).
fn image_host_keys(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ssh_host_") && n["ssh_host_".len()..].contains("key"))
        .collect();
    names.sort();
    names
}

/// `BITS SHA256:... COMMENT (TYPE)`, as `ssh-keygen -l` prints a public key line.
pub fn fingerprint_line(public_line: &str) -> Option<String> {
    use base64::Engine;
    let mut words = public_line.split_whitespace();
    let (key_type, blob) = (words.next()?, words.next()?);
    let comment = words.collect::<Vec<_>>().join(" ");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = Sha256::digest(&bytes);
    let fingerprint = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest);
    let (bits, label) = match key_type {
        "ssh-ed25519" => (256, "ED25519".to_owned()),
        "ssh-rsa" => (rsa_bits(&bytes)?, "RSA".to_owned()),
        "ssh-dss" => (1024, "DSA".to_owned()),
        t if t.starts_with("ecdsa-sha2-nistp") => (
            t["ecdsa-sha2-nistp".len()..].parse().ok()?,
            "ECDSA".to_owned(),
        ),
        other => (0, other.to_uppercase()),
    };
    let comment = if comment.is_empty() {
        "no comment".to_owned()
    } else {
        comment
    };
    Some(format!("{bits} SHA256:{fingerprint} {comment} ({label})"))
}

/// The modulus size of an `ssh-rsa` key blob: string type, mpint e, mpint n.
fn rsa_bits(blob: &[u8]) -> Option<u32> {
    let mut rest = blob;
    let mut field = || -> Option<&[u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(value)
    };
    let (_, _, n) = (field()?, field()?, field()?);
    let n: Vec<u8> = n.iter().copied().skip_while(|b| *b == 0).collect();
    let first = *n.first()?;
    Some((n.len() as u32 - 1) * 8 + (8 - first.leading_zeros()))
}

impl Executor<'_> {
    /// Makes every new key in the staging directory, then removes the image's keys and moves
    /// the new ones in: a failure before the move leaves /etc/ssh as it was.
    pub(super) fn host_keys(
        &mut self,
        delete_existing: bool,
        generate: &[String],
        given: &[HostKeyFile],
        comment: &str,
        quiet: bool,
    ) -> Result<(), ActionError> {
        let ssh_dir = self.writer.host_path(SSH_DIR)?;
        let keygen = ["usr/bin/ssh-keygen", "bin/ssh-keygen"]
            .iter()
            .any(|p| self.opts.root.join(p).exists());
        self.writer.remove_tree(STAGING)?;
        self.writer.dir(STAGING, 0o700)?;
        let result = self.stage_host_keys(
            &ssh_dir,
            keygen,
            delete_existing,
            generate,
            given,
            comment,
            quiet,
        );
        let staged = match result {
            Ok(staged) => staged,
            Err(e) => {
                let _ = self.writer.remove_tree(STAGING);
                return Err(e);
            }
        };
        if delete_existing {
            for name in image_host_keys(&ssh_dir) {
                self.writer.remove(&format!("{SSH_DIR}/{name}"))?;
                self.log
                    .line(&format!("host key {SSH_DIR}/{name}: removed"));
            }
        }
        for (name, bytes) in staged {
            let path = format!("{SSH_DIR}/{name}");
            let outcome = self
                .writer
                .write(&path, &bytes, host_key_mode(&name), 0, 0)?;
            self.log.line(&format!("host key {path}: {outcome:?}"));
        }
        self.writer.remove_tree(STAGING)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn stage_host_keys(
        &mut self,
        ssh_dir: &std::path::Path,
        keygen: bool,
        delete_existing: bool,
        generate: &[String],
        given: &[HostKeyFile],
        comment: &str,
        quiet: bool,
    ) -> Result<Vec<(String, Vec<u8>)>, ActionError> {
        let mut staged: Vec<(String, Vec<u8>)> = given
            .iter()
            .map(|f| (f.name.clone(), f.content.text.as_bytes().to_vec()))
            .collect();
        let has = |staged: &[(String, Vec<u8>)], name: &str| staged.iter().any(|(n, _)| n == name);
        // A given private key without its public key: derived, as cloud-init does.
        let private: Vec<String> = given
            .iter()
            .filter(|f| host_key_mode(&f.name) == 0o600)
            .map(|f| f.name.clone())
            .collect();
        for name in private {
            let public = format!("{name}.pub");
            if has(&staged, &public) {
                continue;
            }
            if !keygen {
                self.warn(&format!(
                    "ssh: no ssh-keygen in the target: {public} not derived"
                ));
                continue;
            }
            let content = given
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.content.text.clone());
            let path = format!("{STAGING}/{name}");
            self.writer
                .write(&path, content.unwrap_or_default().as_bytes(), 0o600, 0, 0)?;
            let path = self.keygen_path(&path)?;
            let argv: Vec<String> = ["ssh-keygen", "-y", "-f", &path].map(String::from).to_vec();
            let out = self.runner.run_output(&argv, &mut self.log)?;
            let line: Vec<&str> = out.split_whitespace().take(2).collect();
            staged.push((
                public,
                format!("{} {comment}\n", line.join(" ")).into_bytes(),
            ));
        }
        for key_type in generate {
            let name = host_key_path(key_type)
                .trim_start_matches(&format!("{SSH_DIR}/"))
                .to_owned();
            let kept = !delete_existing && ssh_dir.join(&name).exists();
            if kept || has(&staged, &name) {
                continue;
            }
            if !keygen {
                self.warn(&format!(
                    "ssh: no ssh-keygen in the target (openssh-server is not installed): \
                     {key_type} host key not made"
                ));
                continue;
            }
            let path = self.keygen_path(&format!("{STAGING}/{name}"))?;
            let argv: Vec<String> = [
                "ssh-keygen",
                "-t",
                key_type,
                "-N",
                "",
                "-C",
                comment,
                "-f",
                &path,
            ]
            .map(String::from)
            .to_vec();
            let out = self.runner.run_output(&argv, &mut self.log)?;
            if !quiet {
                // The fingerprint and randomart, on the console as cloud-init prints them.
                eprint!("{out}");
            }
            for file in [name.clone(), format!("{name}.pub")] {
                let bytes = self
                    .writer
                    .read(&format!("{STAGING}/{file}"))?
                    .ok_or_else(|| ActionError::Target {
                        path: format!("{STAGING}/{file}"),
                        reason: "ssh-keygen did not write it".into(),
                    })?;
                staged.push((file, bytes));
            }
        }
        Ok(staged)
    }

    /// The path ssh-keygen is given: the target's path where the runner runs it inside the
    /// target (the system itself, an image root by chroot), the host's path of the target's
    /// file otherwise, so that it never writes into the host's /etc/ssh.
    fn keygen_path(&self, target: &str) -> Result<String, ActionError> {
        if self.opts.image_root || self.opts.root == std::path::Path::new("/") {
            Ok(target.to_owned())
        } else {
            Ok(self.writer.host_path(target)?.display().to_string())
        }
    }

    fn warn(&mut self, warning: &str) {
        self.log.line(warning);
        self.warnings.push(warning.to_owned());
    }

    /// cloud-init's two blocks, from the public keys in /etc/ssh in name order.
    pub(super) fn host_keys_to_console(
        &mut self,
        skip_fingerprints: &[String],
        skip_keys: &[String],
    ) -> Result<(), ActionError> {
        let ssh_dir = self.writer.host_path(SSH_DIR)?;
        let mut publics = Vec::new();
        for name in image_host_keys(&ssh_dir) {
            if !name.ends_with("key.pub") {
                continue;
            }
            if let Some(bytes) = self.writer.read(&format!("{SSH_DIR}/{name}"))? {
                let line = String::from_utf8_lossy(&bytes).trim().to_owned();
                let key_type = line
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                publics.push((key_type, line));
            }
        }
        let mut out = Vec::new();
        let fingerprints: Vec<String> = publics
            .iter()
            .filter(|(t, _)| !skip_fingerprints.contains(t))
            .filter_map(|(_, line)| fingerprint_line(line))
            .collect();
        let rule = "#".repeat(61);
        if !fingerprints.is_empty() {
            out.push(rule.clone());
            out.push("-----BEGIN SSH HOST KEY FINGERPRINTS-----".to_owned());
            out.extend(fingerprints);
            out.push("-----END SSH HOST KEY FINGERPRINTS-----".to_owned());
            out.push(rule);
        }
        let keys: Vec<String> = publics
            .iter()
            .filter(|(t, _)| !skip_keys.contains(t))
            .map(|(_, line)| line.clone())
            .collect();
        if !keys.is_empty() {
            out.push("-----BEGIN SSH HOST KEY KEYS-----".to_owned());
            out.extend(keys);
            out.push("-----END SSH HOST KEY KEYS-----".to_owned());
        }
        for line in &out {
            self.log.line(line);
        }
        if !out.is_empty() {
            eprintln!("{}", out.join("\n"));
        }
        Ok(())
    }

    /// A changed sshd config reaches an sshd that already runs; nothing where systemd does not
    /// run the target. `--no-block`: at first boot sshd's start may be queued behind us.
    pub(super) fn reload_service(&mut self, unit: &str) -> Result<(), ActionError> {
        if !self.systemd_running() {
            self.log.line(&format!(
                "reload {unit}: systemd does not run the target; not needed"
            ));
            return Ok(());
        }
        let argv: Vec<String> = ["systemctl", "--no-block", "try-reload-or-restart", unit]
            .map(String::from)
            .to_vec();
        let mut host = Runner::new(RunnerConfig::default(), Vec::new());
        // 5: the unit does not exist (no openssh-server): nothing to reload.
        host.run(&argv, &BTreeMap::new(), None, &[0, 5], &mut self.log)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_ssh_keygen_prints_them() {
        // `ssh-keygen -l -f` of this key printed the expected line (OpenSSH 9.2).
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@web-1";
        let line = fingerprint_line(ed).unwrap();
        assert!(line.starts_with("256 SHA256:"), "{line}");
        assert!(line.ends_with(" root@web-1 (ED25519)"), "{line}");
        assert_eq!(fingerprint_line("ssh-ed25519 !!!"), None);
        assert!(
            fingerprint_line(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
            )
            .unwrap()
            .contains(" no comment ")
        );
    }
}
