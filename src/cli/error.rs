//! Errors of every layer become exit codes here, in [`CliError::exit_code`], and nowhere else;
//! and the input and output every command shares.

use std::io::{Read, Write};
use std::path::Path;

use crate::action::PlanError;
use crate::datasource::DatasourceError;
use crate::system::{self, SystemConfig, SystemConfigError};
use crate::target::FactsError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    SystemConfig(#[from] SystemConfigError),
    #[error(transparent)]
    Facts(#[from] FactsError),
    #[error(transparent)]
    MissingFact(#[from] PlanError),
    /// The diagnostics were printed already.
    #[error("{file}: invalid user data")]
    InvalidConfig { file: String },
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    /// `run` found no datasource, or its datasource could not be read.
    #[error(transparent)]
    Datasource(#[from] DatasourceError),
    /// The report was printed already.
    #[error("a module failed")]
    ModuleFailed,
}

impl CliError {
    /// The one mapping from errors to the contract's exit codes.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidConfig { .. } | CliError::ModuleFailed | CliError::Datasource(_) => 1,
            CliError::Io { .. }
            | CliError::SystemConfig(_)
            | CliError::Facts(_)
            | CliError::MissingFact(_)
            | CliError::Apply(_) => 2,
        }
    }
}

pub fn read_input(file: &str) -> Result<Vec<u8>, CliError> {
    let io = |source| CliError::Io {
        path: file.to_owned(),
        source,
    };
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(io)?;
        Ok(buf)
    } else {
        std::fs::read(file).map_err(io)
    }
}

pub fn display_name(file: &str) -> &str {
    if file == "-" { "<stdin>" } else { file }
}

pub fn system_config(path: Option<&Path>) -> Result<SystemConfig, CliError> {
    let path = path.unwrap_or_else(|| Path::new(system::DEFAULT_PATH));
    Ok(system::load(path)?)
}

pub fn write_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
