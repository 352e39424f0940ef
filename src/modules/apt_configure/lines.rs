//! Text of apt's files: cloud-init's `$NAME` substitution, `signed-by=` in a deb line, the URI
//! of a line, and the credentials a URL carries.

use std::sync::LazyLock;

use regex::Regex;

pub static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{([A-Za-z0-9_.]+)\}|\$([A-Za-z0-9_.]+)").expect("static regex")
});

pub const SOURCE_VARIABLES: &[&str] = &["RELEASE", "MIRROR", "PRIMARY", "SECURITY", "KEY_FILE"];

/// cloud-init's basic template rendering: `$NAME` and `${NAME}`; unknown names stay as written.
pub fn substitute(template: &str, vars: &[(&str, &str)]) -> String {
    if !template.contains('$') {
        return template.to_owned();
    }
    VARIABLE
        .replace_all(template, |caps: &regex::Captures<'_>| {
            let name = caps.get(1).or(caps.get(2)).map_or("", |m| m.as_str());
            vars.iter()
                .find(|(k, _)| *k == name)
                .map_or_else(|| caps[0].to_owned(), |(_, v)| (*v).to_owned())
        })
        .into_owned()
}

/// Adds `signed-by=KEYRING` to a deb line's options unless it names one already.
pub fn with_signed_by(line: &str, keyring: &str) -> String {
    if line.contains("signed-by=") {
        return line.to_owned();
    }
    let trimmed = line.trim();
    let Some((kind, rest)) = trimmed.split_once(char::is_whitespace) else {
        return line.to_owned();
    };
    let rest = rest.trim_start();
    match rest.strip_prefix('[') {
        Some(options) => {
            let (inside, after) = options.split_once(']').unwrap_or((options, ""));
            let inside = inside.trim();
            let sep = if inside.is_empty() { "" } else { " " };
            format!("{kind} [{inside}{sep}signed-by={keyring}]{after}")
        }
        None => format!("{kind} [signed-by={keyring}] {rest}"),
    }
}

/// The URI of a deb line (after its `[...]` options).
pub fn line_uri(line: &str) -> Option<&str> {
    let rest = line
        .trim_start()
        .split_once(char::is_whitespace)?
        .1
        .trim_start();
    let rest = match rest.strip_prefix('[') {
        Some(options) => options.split_once(']')?.1.trim_start(),
        None => rest,
    };
    rest.split_whitespace().next()
}

/// Userinfo (`user:password`) of every URL in a text: the secrets of an apt file. The
/// authority runs from `://` to the first whitespace, `"`, `/`, `?` or `#`, and the userinfo
/// ends at its *last* `@`, as apt's URI parser reads it: stopping at the first `@` left the
/// rest of a password such as `p@ss` in clear.
pub fn url_credentials(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '/' | '?' | '#'))
            .unwrap_or(after.len());
        if let Some(last) = after[..end].rfind('@')
            && last > 0
        {
            found.push(after[..last].to_owned());
        }
        rest = after;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_by_is_merged_into_options() {
        assert_eq!(
            with_signed_by("deb http://x y main", "/k.asc"),
            "deb [signed-by=/k.asc] http://x y main"
        );
        assert_eq!(
            with_signed_by("deb [arch=amd64] http://x y main", "/k.asc"),
            "deb [arch=amd64 signed-by=/k.asc] http://x y main"
        );
        assert_eq!(
            with_signed_by("deb [signed-by=/a.gpg] http://x y main", "/k.asc"),
            "deb [signed-by=/a.gpg] http://x y main"
        );
    }

    #[test]
    fn substitution_keeps_unknown_names() {
        assert_eq!(
            substitute(
                "deb $MIRROR ${RELEASE} main $OTHER",
                &[("MIRROR", "m"), ("RELEASE", "r")]
            ),
            "deb m r main $OTHER"
        );
    }

    #[test]
    fn credentials_run_to_the_last_at() {
        assert_eq!(
            url_credentials("Acquire::http::Proxy \"http://u:p@ss@proxy:3128\";\n"),
            vec!["u:p@ss"]
        );
        assert_eq!(
            url_credentials("deb http://h/a@b x main\ndeb ftp://u;x@h/ y main"),
            vec!["u;x"]
        );
    }
}
