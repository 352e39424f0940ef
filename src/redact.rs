//! Secrets out of every text a person or a log sees: each occurrence becomes
//! `<redacted sha256:…>`, the first 12 hex digits of its SHA-256, so two outputs can still be
//! compared without showing the secret. Used by plan output (`Text`) and by the runner, which
//! scrubs command output before it is logged.

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use sha2::{Digest, Sha256};

/// The marker that stands for `secret`.
pub fn redaction(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    format!("<redacted sha256:{}>", &hex::encode(digest)[..12])
}

/// An automaton finding any of `secrets`. A contiguous NFA: texts are redacted a few times
/// each, so a cheap build matters more than the fastest scan (the default picks a DFA for
/// small sets, whose build cost dominated plans of many small files).
pub fn secret_finder(secrets: &[&str]) -> Result<AhoCorasick, aho_corasick::BuildError> {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(secrets)
}

/// `text` with every occurrence of every secret replaced by its marker.
///
/// One pass over the original text: every occurrence of every secret is found first and
/// overlapping ones are joined, then each span is replaced once. Replacing secret after
/// secret would also replace inside the markers already written (a one-letter password
/// `a` garbled every `<redacted sha256:…>`) and could cut an overlapping secret in two.
/// The occurrences are found by one Aho-Corasick scan for all secrets together: thousands
/// of debconf passwords or proxy URLs must not cost one scan of the text each.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return text.to_owned();
    }
    let mut spans: Vec<(usize, usize)> = match secret_finder(&secrets) {
        Ok(automaton) => automaton
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect(),
        // Only a pattern set past the automaton's size limits fails to build: hide the
        // whole text rather than show any of it.
        Err(_) => vec![(0, text.len())],
    };
    if spans.is_empty() {
        return text.to_owned();
    }
    spans.sort_unstable();
    let mut joined: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match joined.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => joined.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (start, end) in joined {
        out.push_str(&text[done..start]);
        out.push_str(&redaction(&text[start..end]));
        done = end;
    }
    out.push_str(&text[done..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_secret_is_replaced() {
        let r = redact("a S3cret b S3cret", &secrets(&["S3cret"]));
        assert!(!r.contains("S3cret"));
        assert!(r.starts_with("a <redacted sha256:"));
        assert_eq!(r.matches("<redacted").count(), 2);
    }

    #[test]
    fn markers_are_left_alone_and_overlaps_joined() {
        let r = redact("pw=S3cret a=a", &secrets(&["S3cret", "a"]));
        assert_eq!(
            r,
            format!(
                "pw={} {}={}",
                redaction("S3cret"),
                redaction("a"),
                redaction("a")
            )
        );
        assert_eq!(redact("xyz", &secrets(&["xy", "yz"])), redaction("xyz"));
    }
}
