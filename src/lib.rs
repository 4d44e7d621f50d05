//! # hadr: the command-line tool
//!
//! `hadr check` model-checks an availability group against the spec (`hadr-model`);
//! `hadr explore` serves Stateright's Explorer on the same model. The command definitions are in
//! [`cli`], each command in its own module, and every failure a user can cause is a
//! [`CliError`] with a message that says what to do.

pub mod bench_cmd;
pub mod certify_cmd;
pub mod check_cmd;
pub mod cli;
pub mod demo_cmd;
pub mod explore_cmd;

/// What `hadr demo --cluster etcd` and `hadr bench failover` say in a build without etcd.
pub const NO_ETCD_SUPPORT: &str = "this hadr was built without etcd support: rebuild with `cargo build --release --features etcd` (needs protoc: apt-get install -y protobuf-compiler) and install etcd (apt-get install -y etcd-server)";
pub mod format;
pub mod listener_cmd;
pub mod progress;
pub mod replica_cmd;
pub mod trace_cmd;
pub mod validate_cmd;

use hadr_model::{ModelConfig, ModelConfigError, Mutant, UnknownMutant};
use std::path::{Path, PathBuf};

/// How `hadr` exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything checked holds.
    Passed = 0,
    /// A property is violated, or an action kind is dead.
    Failed = 1,
    /// Bad input: a configuration, a flag, a name.
    Usage = 2,
    /// The check stopped before searching every state (timeout).
    Incomplete = 3,
}

/// A failure `hadr` reports instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration file could not be read.
    #[error("cannot read the check configuration {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not a valid check configuration.
    #[error("{}: {source}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: ModelConfigError,
    },
    /// `--mutant` named no mutant.
    #[error(transparent)]
    UnknownMutant(#[from] UnknownMutant),
    /// The Explorer's address is taken or not ours.
    #[error("cannot listen on {address}: {source}; choose another --port or --host")]
    Listen {
        /// The address asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the report failed (e.g. a closed pipe).
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
    /// A file named on the command line could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The T-SQL script is not accepted (`file:line:column: what is wrong`).
    #[error("{}:{line}:{column}: {}", path.display(), without_position(source))]
    Tsql {
        /// The script.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong.
        source: Box<hadr_types::tsql::TsqlError>,
    },
}

/// A T-SQL error's message without its leading `line L, column C: `, which the CLI writes as
/// `file:L:C:` instead.
fn without_position(error: &hadr_types::tsql::TsqlError) -> String {
    let (line, column) = error.position();
    let message = error.to_string();
    let prefix = format!("line {line}, column {column}: ");
    message
        .strip_prefix(&prefix)
        .map_or(message.clone(), str::to_string)
}

impl CliError {
    /// The exit code for this failure.
    pub fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// Loads a check configuration from a file, or the embedded one: the default, or for a mutant
/// the configuration that turns on the feature it breaks.
pub fn load_config(path: Option<&Path>, mutant: Option<Mutant>) -> Result<ModelConfig, CliError> {
    let Some(path) = path else {
        let embedded = mutant.map_or(
            hadr_model::DEFAULT_CONFIG_TOML,
            hadr_model::mutant::configuration_for,
        );
        return Ok(ModelConfig::from_toml_str(embedded).expect("embedded configurations are valid"));
    };
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    ModelConfig::from_toml_str(&text).map_err(|source| CliError::Config {
        path: path.to_owned(),
        source,
    })
}

/// Loads the check configuration of a T-SQL script: the availability group its CREATE
/// statement defines, with the bounds of a `[bounds]` file or the embedded script bounds.
pub fn load_tsql(script: &Path, bounds: Option<&Path>) -> Result<ModelConfig, CliError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CliError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let tsql_error = |source: hadr_types::tsql::TsqlError| {
        let (line, column) = source.position();
        CliError::Tsql {
            path: script.to_owned(),
            line,
            column,
            source: Box::new(source),
        }
    };
    let text = read(script)?;
    let ag = hadr_types::tsql::parse_script(&text)
        .and_then(|s| s.ag_config())
        .map_err(tsql_error)?;
    let bounds = match bounds {
        None => hadr_model::Bounds::for_scripts(),
        Some(path) => {
            hadr_model::Bounds::from_toml_str(&read(path)?).map_err(|source| CliError::Config {
                path: path.to_owned(),
                source,
            })?
        }
    };
    ModelConfig::new(ag, bounds).map_err(|source| CliError::Config {
        path: script.to_owned(),
        source,
    })
}

/// Parses a `--mutant` value.
pub fn parse_mutant(name: Option<&str>) -> Result<Option<Mutant>, CliError> {
    name.map(str::parse).transpose().map_err(CliError::from)
}
