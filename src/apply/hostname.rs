//! The `set_hostname` and `update_etc_hosts` kinds: /etc/hostname, the running hostname and
//! the host's own line of /etc/hosts.

use std::collections::BTreeMap;

use super::runner::{Runner, RunnerConfig};
use super::{ActionError, Executor};
use crate::action::HOSTNAME_FILE;

const HOSTS_FILE: &str = "/etc/hosts";

/// `hosts` with `names` on the (first) line of `address`, every other line kept; a missing
/// line goes after `127.0.0.1`'s, or first. cloud-init's `localhost` mode keeps a stale line
/// of an older name beside the new one; one line per address is what a renamed host needs.
pub fn hosts_with_entry(hosts: &str, address: &str, names: &[String]) -> String {
    let entry = format!("{address} {}", names.join(" "));
    let is_address = |line: &str, wanted: &str| {
        let line = line.split('#').next().unwrap_or_default();
        line.split_whitespace().next() == Some(wanted)
    };
    let mut lines: Vec<String> = Vec::new();
    let mut placed = false;
    for line in hosts.lines() {
        if is_address(line, address) {
            if !placed {
                lines.push(entry.clone());
                placed = true;
            }
            continue;
        }
        lines.push(line.to_owned());
    }
    if !placed {
        let at = lines
            .iter()
            .position(|l| is_address(l, "127.0.0.1"))
            .map_or(0, |i| i + 1);
        lines.insert(at, entry);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

impl Executor<'_> {
    pub(super) fn set_hostname(
        &mut self,
        hostname: &str,
        create_file: bool,
    ) -> Result<(), ActionError> {
        let existing = self.writer.metadata(HOSTNAME_FILE)?;
        if create_file || existing.is_some() {
            let mode = existing.map_or(0o644, |(mode, _, _)| mode);
            let outcome = self.writer.write(
                HOSTNAME_FILE,
                format!("{hostname}\n").as_bytes(),
                mode,
                0,
                0,
            )?;
            self.log
                .line(&format!("hostname {HOSTNAME_FILE}: {outcome:?}"));
        }
        // An image root's name is its file; the kernel running apply is the build host's.
        if self.opts.image_root || self.opts.root != std::path::Path::new("/") {
            return Ok(());
        }
        let argv: Vec<String> = vec!["hostname".into(), hostname.into()];
        let mut host = Runner::new(RunnerConfig::default(), Vec::new());
        host.run(&argv, &BTreeMap::new(), None, &[0], &mut self.log)?;
        Ok(())
    }

    pub(super) fn hosts_entry(
        &mut self,
        address: &str,
        names: &[String],
    ) -> Result<(), ActionError> {
        let old = self.writer.read(HOSTS_FILE)?.unwrap_or_default();
        let mode = self
            .writer
            .metadata(HOSTS_FILE)?
            .map_or(0o644, |(mode, _, _)| mode);
        let text = hosts_with_entry(&String::from_utf8_lossy(&old), address, names);
        let outcome = self.writer.write(HOSTS_FILE, text.as_bytes(), mode, 0, 0)?;
        self.log.line(&format!("hosts {HOSTS_FILE}: {outcome:?}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["web-1.example.test".into(), "web-1".into()]
    }

    #[test]
    fn the_own_line_is_replaced_and_the_rest_kept() {
        let debian =
            "127.0.0.1\tlocalhost\n127.0.1.1\tbookworm # image\n\n::1 localhost ip6-localhost\n";
        let new = hosts_with_entry(debian, "127.0.1.1", &names());
        assert_eq!(
            new,
            "127.0.0.1\tlocalhost\n127.0.1.1 web-1.example.test web-1\n\n::1 localhost ip6-localhost\n"
        );
        assert_eq!(hosts_with_entry(&new, "127.0.1.1", &names()), new);
    }

    #[test]
    fn a_missing_line_goes_after_localhost() {
        let new = hosts_with_entry(
            "# hosts\n127.0.0.1 localhost\n::1 ip6-localhost\n",
            "127.0.1.1",
            &names(),
        );
        assert_eq!(
            new,
            "# hosts\n127.0.0.1 localhost\n127.0.1.1 web-1.example.test web-1\n::1 ip6-localhost\n"
        );
        assert_eq!(
            hosts_with_entry("", "127.0.1.1", &names()),
            "127.0.1.1 web-1.example.test web-1\n"
        );
    }

    #[test]
    fn a_commented_address_is_not_the_line() {
        let new = hosts_with_entry("#127.0.1.1 old\n", "127.0.1.1", &names());
        assert_eq!(new, "127.0.1.1 web-1.example.test web-1\n#127.0.1.1 old\n");
    }
}
