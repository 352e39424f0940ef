//! `cloudcfg manpage` (hidden): the manual page, cloudcfg(1), generated from the CLI definition
//! so it cannot drift from `--help`. debian/rules runs it after the build.
//!
//! One page for the whole program: clap_mangen's top-level page, then a COMMANDS section with
//! every subcommand's synopsis and options (clap_mangen alone would refer to `cloudcfg-*(1)`
//! pages that are not shipped), then what `--help` does not say: exit status, files, how to
//! disable first boot, environment.

use std::io::Write;

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// The `.TH` date: `SOURCE_DATE_EPOCH` (dpkg-buildpackage sets it from debian/changelog), so
/// the package builds reproducibly; empty without it.
fn date() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
        })
        .unwrap_or_default()
}

/// A section rendered by clap_mangen, without its own `.SH` heading and without the roff
/// preamble that every rendering repeats.
fn body(render: impl Fn(&mut Vec<u8>) -> std::io::Result<()>) -> std::io::Result<String> {
    let mut out = Vec::new();
    render(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let mut body = String::new();
    for line in text.lines() {
        if line.starts_with(".SH ") || line.starts_with(".ie \\n(.g") || line == ".el .ds Aq '" {
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    Ok(body)
}

/// Term and description pairs, as `.TP` paragraphs.
fn items(roff: &mut Roff, rows: &[(&str, &str)]) {
    for (term, text) in rows {
        roff.control("TP", []);
        roff.text([bold(*term)]);
        roff.text([roman(*text)]);
    }
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    roff.text([roman(text)]);
}

const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "validate",
        "0 no errors (warnings allowed), 1 errors, 2 usage or I/O error.",
    ),
    ("plan", "0, 1 invalid user data, 2 usage or I/O error."),
    (
        "apply, run",
        "0 every module succeeded, 1 invalid user data, no datasource or a module failed, \
         2 usage or I/O error before any module ran.",
    ),
    (
        "status",
        "0 done, still running, not started or disabled; 1 critical error (nothing could run); \
         2 finished with recoverable errors (a module failed); a usage error also exits 2.",
    ),
    ("schema", "0."),
    (
        "autosign",
        "0 sign, 1 refuse (one line on standard error says which rule), 2 unreadable CSR or \
         policy.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "/etc/cloudcfg/cloudcfg.yaml",
        "The system config (--config FILE overrides the path). Every key is optional; an absent \
         file means all defaults; unknown keys are errors. Its JSON Schema is printed by \
         cloudcfg schema --system.",
    ),
    (
        "/etc/cloudcfg/autosign.yaml",
        "The default autosign policy.",
    ),
    (
        "/etc/cloudcfg/cloudcfg.disabled",
        "When this file exists, cloudcfg.service does not run at boot and cloudcfg status \
         reports disabled.",
    ),
    (
        "/run/cloudcfg/status.json, /run/cloudcfg/result.json",
        "This boot's run: what cloudcfg status reads and cloudcfg status --wait polls.",
    ),
    (
        "/var/lib/cloudcfg/instances/ID/",
        "Per-instance state: the user data as fetched and one marker per module that succeeded.",
    ),
    ("/var/log/cloudcfg.log", "The run log."),
    (
        "/usr/lib/cloudcfg/autosign",
        "A link to cloudcfg: started under the name autosign, it is puppetserver's policy \
         executable (cloudcfg autosign CERTNAME).",
    ),
    (
        "/usr/share/cloudcfg/*.schema.json",
        "JSON Schemas of the cloud-config user data, the system config and the autosign policy.",
    ),
    (
        "/lib/systemd/system/cloudcfg.service",
        "The first-boot unit: runs cloudcfg run once per boot, before logins and the puppet agent.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "RUST_LOG",
        "Log filter for messages on standard error (default warn; debug shows every command run).",
    ),
    (
        "CLOUDCFG_RUNTIME_DIR",
        "Where the report files go instead of /run (tests and sandboxes).",
    ),
];

/// Writes cloudcfg(1) in roff, from the CLI definition the caller hands in.
pub fn render(cli: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = cli.disable_help_subcommand(true);
    cmd.build();
    let man = Man::new(cmd.clone())
        .date(date())
        .source(format!("cloudcfg {}", env!("CARGO_PKG_VERSION")))
        .manual("User Commands");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;

    let mut commands = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_man = Man::new(sub.clone());
        commands.push_str(&format!(".SS \"cloudcfg {}\"\n", sub.get_name()));
        commands.push_str(&body(|out| sub_man.render_synopsis_section(out))?);
        commands.push_str(".PP\n");
        commands.push_str(&body(|out| sub_man.render_description_section(out))?);
        commands.push_str(&body(|out| sub_man.render_options_section(out))?);
    }
    w.write_all(commands.as_bytes())?;

    let mut roff = Roff::new();
    roff.control("SH", ["FIRST BOOT"]);
    paragraph(
        &mut roff,
        "cloudcfg.service runs cloudcfg run once per boot: it finds the datasource (NoCloud or \
         EC2), applies the user data, and writes the report files. Modules that succeeded for \
         an instance do not run again for it. Image builders and scripts wait for it with \
         cloudcfg status --wait (or systemctl is-system-running --wait).",
    );
    paragraph(
        &mut roff,
        "To keep it from running, boot with cloudcfg=disabled on the kernel command line, or \
         create /etc/cloudcfg/cloudcfg.disabled (in an image, before its first boot).",
    );
    roff.control("SH", ["EXIT STATUS"]);
    items(&mut roff, EXIT_STATUS);
    roff.control("SH", ["FILES"]);
    items(&mut roff, FILES);
    roff.control("SH", ["ENVIRONMENT"]);
    items(&mut roff, ENVIRONMENT);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "systemctl(1), systemd.service(5), apt-get(8), debconf-set-selections(1), puppet(8)",
    )]);
    roff.to_writer(w)?;
    man.render_version_section(w)
}
