//! Text the checks look through: control characters, redaction markers, URL userinfo.

pub fn has_control(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// The text without its `<redacted sha256:…>` markers (12 hex digits each).
pub fn strip_markers(text: &str) -> String {
    replace_markers(text, "")
}

/// The text with each `<redacted sha256:…>` marker replaced by `with`.
pub fn replace_markers(text: &str, with: &str) -> String {
    const OPEN: &str = "<redacted sha256:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let hex_len = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len == 12 && after[12..].starts_with('>') {
            out.push_str(with);
            rest = &after[13..];
        } else {
            out.push_str(OPEN);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `user[:password]` of every URL in a text, found independently of the planner: the
/// authority runs from `://` to the first whitespace, `"`, `/`, `?` or `#`, and the userinfo
/// ends at its last `@` (as URL parsers read it).
pub fn userinfos(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '/' | '?' | '#'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        if let Some(last) = authority.rfind('@')
            && last > 0
        {
            found.push(&authority[..last]);
        }
        rest = after;
    }
    found
}
