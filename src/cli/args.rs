//! The command line's definition (contract.md, "Commands"): clap derives, also the source of
//! the manual page.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::system;
use crate::target::FactArgs;

#[derive(Debug, Parser)]
#[command(
    name = "cloudcfg",
    version,
    about = "Boot-time cloud-config processor for Debian and Ubuntu instances",
    long_about = "cloudcfg reads #cloud-config user data (apt sources, keys and proxy, debconf \
                  answers, packages, the puppet agent), validates it offline, prints what first \
                  boot will do, and applies it to a running system or an image root."
)]
pub struct Cli {
    /// The system config (default /etc/cloudcfg/cloudcfg.yaml; absent file = defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum DatasourceArg {
    #[default]
    Auto,
    Ec2,
    Nocloud,
}

impl DatasourceArg {
    pub fn requested(self) -> Option<system::DatasourceName> {
        match self {
            DatasourceArg::Auto => None,
            DatasourceArg::Ec2 => Some(system::DatasourceName::Ec2),
            DatasourceArg::Nocloud => Some(system::DatasourceName::Nocloud),
        }
    }
}

/// A boot stage of `run` (cloud-init's init, config and final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    Init,
    Config,
    Final,
}

impl StageArg {
    pub fn stage(self) -> crate::action::Stage {
        match self {
            StageArg::Init => crate::action::Stage::Init,
            StageArg::Config => crate::action::Stage::Config,
            StageArg::Final => crate::action::Stage::Final,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check user data offline: diagnostics as FILE:LINE:COL, exit 1 when there are errors.
    Validate {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// User-data files (`-` reads standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
    /// Print the ordered actions first boot would take; touches nothing.
    Plan {
        /// The user-data file (`-` reads standard input).
        #[arg(long, value_name = "FILE")]
        user_data: String,
        /// Plan for an image root: facts not given are read from DIR.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(flatten)]
        facts: FactArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print pre-shared keys, passwords and proxy credentials instead of their hashes.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Apply user data to this system, or to an image root with --root.
    Apply {
        /// The user-data file (`-` reads standard input).
        #[arg(long, value_name = "FILE")]
        user_data: String,
        /// Apply to an image root: files land under DIR, commands run chrooted into DIR.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(flatten)]
        facts: FactArgs,
        /// Print the plan and touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run modules that already succeeded for this instance again.
        #[arg(long)]
        force: bool,
        /// With --root: run bootcmd, runcmd and the user's scripts chrooted into DIR too.
        /// Without it they are kept for the first boot, which runs them.
        #[arg(long, requires = "root")]
        run_scripts: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The boot entry point: find the datasource, fetch user data, apply it, report.
    Run {
        /// Configure an image root: read its NoCloud seed directory, write under DIR (the
        /// host's kernel command line, DMI and disks are not looked at).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// The datasource; `auto` detects it (docs/datasources.md).
        #[arg(long, value_enum, default_value_t = DatasourceArg::Auto)]
        datasource: DatasourceArg,
        /// Run only these stages (comma-separated; default all). The package's units run
        /// `init` before sshd starts and `config,final` after it; a later stage whose earlier
        /// ones did not run this boot runs them first.
        #[arg(
            long = "stage",
            value_enum,
            value_delimiter = ',',
            value_name = "STAGE"
        )]
        stages: Vec<StageArg>,
    },
    /// Make the next boot a first boot, like `cloud-init clean`: remove the instance state
    /// and cloud-init's compatibility files (an image builder's last step). The image's own
    /// scripts in /var/lib/cloud/scripts are kept.
    Clean {
        /// Clean an image root instead of this system.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Remove the log, /var/log/cloudcfg.log, too.
        #[arg(long)]
        logs: bool,
        /// Remove the NoCloud seed, /var/lib/cloud/seed, too.
        #[arg(long)]
        seed: bool,
        /// Empty /etc/machine-id, so that systemd makes a new one at the next boot.
        #[arg(long)]
        machine_id: bool,
    },
    /// Report the state of this boot's run, like `cloud-init status`.
    Status {
        /// Wait until the run has finished.
        #[arg(long)]
        wait: bool,
        /// Also print the datasource, the modules and the errors.
        #[arg(long)]
        long: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of the cloud-config (or, with --system, of the system config).
    Schema {
        /// Print the system config's schema instead.
        #[arg(long)]
        system: bool,
    },
    /// puppetserver's policy executable: decide on the CSR (PEM) on standard input; exit 0
    /// signs, 1 refuses, 2 means the CSR or the policy is unreadable. Also run as `autosign
    /// CERTNAME` (the binary linked as /usr/lib/cloudcfg/autosign).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Autosign {
        /// The policy (default: the system config's `autosign_policy`, else
        /// /etc/cloudcfg/autosign.yaml).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The certname puppetserver asks about.
        #[arg(required = true)]
        certname: Option<String>,
        /// The launcher's side: record or take back an expected certname.
        #[command(subcommand)]
        launcher: Option<AutosignLauncher>,
    },
    /// Print the manual page, cloudcfg(1), in roff (for packaging).
    #[command(hide = true)]
    Manpage,
    /// cloudcfg.service's ExecStopPost=: close a report that a killed or crashed run left
    /// `running`, so that `status --wait` returns. Reads systemd's $SERVICE_RESULT,
    /// $EXIT_CODE and $EXIT_STATUS.
    #[command(hide = true)]
    StopPost {
        /// The unit ran only up to this stage: its success leaves the report open for the
        /// unit that runs the rest.
        #[arg(long, value_enum)]
        stage: Option<StageArg>,
    },
}

/// `cloudcfg autosign expect|forget`: what a launch script runs, on the CA host, for the
/// instances it starts (the policy's `expected_certnames_dir`).
#[derive(Debug, Subcommand)]
pub enum AutosignLauncher {
    /// Expect CERTNAME (or an instance id): its next certificate request is signed once, if
    /// the other rules hold. Exit 0 written, 2 on an unusable policy or certname.
    Expect {
        /// The policy whose `expected_certnames_dir` holds the expectation.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Not honoured after this long (`15m`, `2h`, `1d`); default: until it is used.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<humantime::Duration>,
        certname: String,
    },
    /// Take the expectation for CERTNAME back. Exit 0 removed, 1 there was none, 2 on an
    /// unusable policy or certname.
    Forget {
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        certname: String,
    },
}
