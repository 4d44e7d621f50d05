//! T-SQL for availability groups: `CREATE AVAILABILITY GROUP` becomes an [`AgConfig`],
//! `ALTER AVAILABILITY GROUP` and `ALTER DATABASE … SET HADR` become typed commands, and
//! [`render_create`] writes an [`AgConfig`] back as T-SQL.
//!
//! ```text
//!  script ──lexer──▶ tokens ──parser──▶ Script ──ag_config──▶ AgConfig ──render_create──▶ script
//!   (GO batches, comments,       │  (each CREATE validated:
//!    strings, [names])           │   ConfigError::Invalid names the rule)
//!                                └──▶ AgCommand / DatabaseCommand (the ALTERs, in order)
//! ```
//!
//! Start reading at [`parse_script`], then [`Statement`]; the language accepted, what is
//! reported as unsupported, and how errors look are in `docs/tsql.md`. The first replica of a
//! CREATE is the initial primary, as in [`AgConfig::replicas`].

mod command;
mod error;
mod keywords;
mod lexer;
mod parser;
mod render;

pub use command::{AgAction, AgCommand, AgSetting, DatabaseCommand, HadrAction, ReplicaChange};
pub use error::TsqlError;
pub use render::render_create;

use crate::config::AgConfig;
use serde::{Deserialize, Serialize};

/// Parses a T-SQL script: its statements in order, each with its position and batch.
///
/// Every `CREATE AVAILABILITY GROUP` is validated ([`AgConfig::validate`]); a configuration
/// that breaks a limit is refused as [`TsqlError::Invalid`] at the CREATE's line. Parsing stops
/// at the first error. Never panics.
///
/// ```
/// use hadr_types::tsql::{parse_script, AgAction, Statement};
///
/// let script = parse_script(
///     "CREATE AVAILABILITY GROUP ag1 FOR DATABASE db1
///      REPLICA ON N'A' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC),
///                 N'B' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC);
///      GO
///      ALTER AVAILABILITY GROUP ag1 FAILOVER;",
/// )?;
/// assert_eq!(script.ag_config()?.replicas[0].name, "A"); // the initial primary
/// let Statement::AlterAvailabilityGroup(command) = &script.statements[1].statement else {
///     unreachable!()
/// };
/// assert_eq!((command.ag.as_str(), &command.action), ("ag1", &AgAction::Failover));
/// assert_eq!(script.statements[1].batch, 2);
/// # Ok::<(), hadr_types::tsql::TsqlError>(())
/// ```
pub fn parse_script(text: &str) -> Result<Script, TsqlError> {
    parser::parse(text)
}

/// The statements of a script, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The statements, in the order they appear; empty statements (a lone `;`) are dropped.
    pub statements: Vec<ScriptStatement>,
}

/// One statement of a script and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptStatement {
    /// 1-based line of its first keyword.
    pub line: usize,
    /// 1-based column of its first keyword.
    pub column: usize,
    /// 1-based number of its batch: batches are separated by `GO` lines.
    pub batch: usize,
    /// The statement.
    pub statement: Statement,
}

/// A statement hadr understands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statement {
    /// `CREATE AVAILABILITY GROUP …`: the configuration, validated. Its `lease` and `policy`
    /// are the defaults (T-SQL has no syntax for them).
    CreateAvailabilityGroup(Box<AgConfig>),
    /// `ALTER AVAILABILITY GROUP ag …`.
    AlterAvailabilityGroup(AgCommand),
    /// `ALTER DATABASE db SET HADR …`.
    AlterDatabase(DatabaseCommand),
}

impl Script {
    /// The configuration of the script's one `CREATE AVAILABILITY GROUP`, validated. The ALTER
    /// statements of the script are not applied to it.
    ///
    /// Refused when the script has no CREATE or more than one.
    pub fn ag_config(&self) -> Result<AgConfig, TsqlError> {
        let mut creates = self.statements.iter().filter_map(|s| match &s.statement {
            Statement::CreateAvailabilityGroup(config) => Some((s, config)),
            _ => None,
        });
        let Some((first, config)) = creates.next() else {
            let (line, column) = self
                .statements
                .first()
                .map_or((1, 1), |s| (s.line, s.column));
            return Err(TsqlError::NoCreateStatement { line, column });
        };
        if let Some((second, _)) = creates.next() {
            return Err(TsqlError::SeveralCreateStatements {
                line: second.line,
                column: second.column,
                first_line: first.line,
            });
        }
        config.validate().map_err(|error| TsqlError::Invalid {
            line: first.line,
            column: first.column,
            ag: config.name.clone(),
            error,
        })?;
        Ok(AgConfig::clone(config))
    }

    /// The ALTER statements, in order, as commands.
    pub fn commands(&self) -> impl Iterator<Item = Command<'_>> {
        self.statements.iter().filter_map(|s| match &s.statement {
            Statement::CreateAvailabilityGroup(_) => None,
            Statement::AlterAvailabilityGroup(command) => Some(Command::AvailabilityGroup(command)),
            Statement::AlterDatabase(command) => Some(Command::Database(command)),
        })
    }
}

/// A command of a script: what [`Script::commands`] yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// An `ALTER AVAILABILITY GROUP`.
    AvailabilityGroup(&'a AgCommand),
    /// An `ALTER DATABASE … SET HADR`.
    Database(&'a DatabaseCommand),
}
