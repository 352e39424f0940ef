//! Setting one key of an INI file (puppet.conf) in place: comments, order, spacing and every
//! other key are kept, which is what separates this from cloud-init's configparser rewrite.

/// `[name]` when `line` is a section header.
fn section_name(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// The key of a `key = value` line (not a comment, not a header).
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') || t.starts_with(';') || t.starts_with('[') {
        return None;
    }
    t.split_once('=').map(|(k, _)| k.trim())
}

/// Returns `text` with `key = value` set in `[section]`: the existing line replaced, else a
/// line added at the end of the section's last block, else the section appended.
pub fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let new_line = format!("{key} = {value}");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut current: Option<String> = None;
    let mut last_in_section: Option<usize> = None;
    for (i, line) in lines.iter_mut().enumerate() {
        if let Some(name) = section_name(line) {
            current = Some(name.to_owned());
            if name == section {
                last_in_section = Some(i);
            }
            continue;
        }
        if current.as_deref() == Some(section) {
            if key_of(line) == Some(key) {
                *line = new_line;
                return join(lines);
            }
            if !line.trim().is_empty() {
                last_in_section = Some(i);
            }
        }
    }
    match last_in_section {
        Some(i) => lines.insert(i + 1, new_line),
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[{section}]"));
            lines.push(new_line);
        }
    }
    join(lines)
}

fn join(lines: Vec<String>) -> String {
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The value of `key` in `[section]`, if set.
pub fn get<'t>(text: &'t str, section: &str, key: &str) -> Option<&'t str> {
    let mut current = None;
    let mut found = None;
    for line in text.lines() {
        if let Some(name) = section_name(line) {
            current = Some(name);
        } else if current == Some(section) && key_of(line) == Some(key) {
            found = line.split_once('=').map(|(_, v)| v.trim());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "# See puppet.conf(5)\n# comment\n\n[main]\n# keep me\nlogdir=/var/log/puppet\n\n[server]\nvardir = /var/lib/puppet\n";

    #[test]
    fn replaces_in_place_keeping_everything_else() {
        let out = set(DEBIAN, "main", "logdir", "/srv/log");
        assert_eq!(
            out,
            "# See puppet.conf(5)\n# comment\n\n[main]\n# keep me\nlogdir = /srv/log\n\n[server]\nvardir = /var/lib/puppet\n"
        );
    }

    #[test]
    fn adds_to_an_existing_section() {
        let out = set(DEBIAN, "main", "server", "puppet.example.org");
        assert!(
            out.contains("logdir=/var/log/puppet\nserver = puppet.example.org\n\n[server]"),
            "{out}"
        );
    }

    #[test]
    fn appends_a_missing_section() {
        let out = set(DEBIAN, "agent", "certname", "i-0abc.example.org");
        assert!(
            out.ends_with("vardir = /var/lib/puppet\n\n[agent]\ncertname = i-0abc.example.org\n"),
            "{out}"
        );
        assert_eq!(get(&out, "agent", "certname"), Some("i-0abc.example.org"));
    }

    #[test]
    fn creates_a_file_from_nothing_and_is_idempotent() {
        let once = set("", "agent", "server", "p");
        assert_eq!(once, "[agent]\nserver = p\n");
        assert_eq!(set(&once, "agent", "server", "p"), once);
    }

    #[test]
    fn comments_that_look_like_keys_are_not_touched() {
        let out = set("[agent]\n# server = old\n", "agent", "server", "new");
        assert_eq!(out, "[agent]\n# server = old\nserver = new\n");
    }
}
