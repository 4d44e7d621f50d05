//! [`TsqlError`]: why a T-SQL script was refused. Every variant carries the 1-based line and
//! column of the token (or character) where the problem is, and says what was expected there.

use crate::config::ConfigError;

/// Why a T-SQL script was refused. The message starts with `line L, column C:`; columns count
/// characters (a tab is one column).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsqlError {
    /// A `'…'` or `N'…'` string has no closing quote.
    #[error("line {line}, column {column}: unterminated string: expected a closing ' before the end of the script (write '' for a quote inside a string)")]
    UnterminatedString {
        /// Line of the opening quote (or of the `N`).
        line: usize,
        /// Column of the opening quote (or of the `N`).
        column: usize,
    },
    /// A `[bracketed]` or `"quoted"` identifier has no closing delimiter.
    #[error("line {line}, column {column}: unterminated quoted name: expected a closing {close} before the end of the script (write {close}{close} for a {close} inside the name)")]
    UnterminatedIdentifier {
        /// Line of the opening delimiter.
        line: usize,
        /// Column of the opening delimiter.
        column: usize,
        /// The delimiter that would close it: `]` or `"`.
        close: char,
    },
    /// `[]` or `""`: SQL Server refuses a name with no characters.
    #[error("line {line}, column {column}: empty quoted name: a name needs at least one character between its delimiters")]
    EmptyIdentifier {
        /// Line of the opening delimiter.
        line: usize,
        /// Column of the opening delimiter.
        column: usize,
    },
    /// A `/* … */` comment is still open at the end of the script.
    #[error("line {line}, column {column}: unterminated block comment: expected */ before the end of the script ({depth} still open at the end; block comments nest, so every /* needs its own */)")]
    UnterminatedComment {
        /// Line of the outermost `/*` that is not closed.
        line: usize,
        /// Column of the outermost `/*` that is not closed.
        column: usize,
        /// How many comments are open at the end of the script.
        depth: usize,
    },
    /// A character that begins no T-SQL token (a control character, or a symbol outside ASCII).
    #[error("line {line}, column {column}: unexpected character {found:?}; remove it or put it inside a string")]
    UnexpectedCharacter {
        /// Its line.
        line: usize,
        /// Its column.
        column: usize,
        /// The character.
        found: char,
    },
    /// The grammar does not allow the token found here.
    #[error("line {line}, column {column}: expected {expected}, found {found}")]
    Expected {
        /// Line of the token found.
        line: usize,
        /// Column of the token found.
        column: usize,
        /// What the grammar allows here.
        expected: String,
        /// The token found, as written (shortened when long).
        found: String,
    },
    /// A reserved keyword of T-SQL where a name belongs (e.g. a missing name before `WITH`).
    #[error("line {line}, column {column}: expected {expected}, found the reserved keyword '{word}'; if it really is the name, write it as [{word}]")]
    ReservedWord {
        /// Line of the keyword.
        line: usize,
        /// Column of the keyword.
        column: usize,
        /// The kind of name expected.
        expected: &'static str,
        /// The keyword, as written.
        word: String,
    },
    /// An option's value is not one the option takes.
    #[error("line {line}, column {column}: expected {option} value {expected}, found {found}")]
    InvalidValue {
        /// Line of the value.
        line: usize,
        /// Column of the value.
        column: usize,
        /// The option, in T-SQL spelling.
        option: &'static str,
        /// The values it takes.
        expected: &'static str,
        /// The token found.
        found: String,
    },
    /// An integer too large for the option it is given to.
    #[error(
        "line {line}, column {column}: {option} value {found} is out of range; expected {expected}"
    )]
    IntegerOutOfRange {
        /// Line of the integer.
        line: usize,
        /// Column of the integer.
        column: usize,
        /// The option, in T-SQL spelling.
        option: &'static str,
        /// The values it takes.
        expected: &'static str,
        /// The integer as written.
        found: String,
    },
    /// An option name that this option list does not have, in T-SQL or in hadr.
    #[error("line {line}, column {column}: unknown option {found} in {list}; expected one of {expected}")]
    UnknownOption {
        /// Line of the option name.
        line: usize,
        /// Column of the option name.
        column: usize,
        /// Which list it is in (e.g. `the WITH list of replica 'B'`).
        list: String,
        /// The options the list takes.
        expected: &'static str,
        /// The name found.
        found: String,
    },
    /// The same option twice in one list.
    #[error("line {line}, column {column}: {option} appears twice in {list} (first at line {first_line}, column {first_column}); give each option once")]
    DuplicateOption {
        /// Line of the second occurrence.
        line: usize,
        /// Column of the second occurrence.
        column: usize,
        /// The option, in T-SQL spelling.
        option: String,
        /// Which list it is in.
        list: String,
        /// Line of the first occurrence.
        first_line: usize,
        /// Column of the first occurrence.
        first_column: usize,
    },
    /// A replica without AVAILABILITY_MODE or FAILOVER_MODE, which T-SQL requires.
    #[error("line {line}, column {column}: replica '{replica}' has no {option}; every replica needs AVAILABILITY_MODE and FAILOVER_MODE in its WITH list")]
    MissingOption {
        /// Line of the replica's name.
        line: usize,
        /// Column of the replica's name.
        column: usize,
        /// The replica.
        replica: String,
        /// The missing option.
        option: &'static str,
    },
    /// Valid T-SQL that hadr does not model (an option, a clause, an action or a statement).
    #[error("line {line}, column {column}: {what} is not supported by hadr; remove it (docs/tsql.md lists what is supported)")]
    Unsupported {
        /// Line of the first token of the unsupported part.
        line: usize,
        /// Column of the first token of the unsupported part.
        column: usize,
        /// What it is, e.g. `the availability-group option DTC_SUPPORT`.
        what: String,
    },
    /// An availability-group option that only CREATE sets (`ALTER … SET (CLUSTER_TYPE = …)`).
    #[error("line {line}, column {column}: {option} is fixed when the availability group is created; ALTER AVAILABILITY GROUP … SET cannot change it")]
    NotAlterable {
        /// Line of the option name.
        line: usize,
        /// Column of the option name.
        column: usize,
        /// The option.
        option: &'static str,
    },
    /// [`Script::ag_config`](super::Script::ag_config) on a script without a CREATE statement.
    #[error("line {line}, column {column}: the script has no CREATE AVAILABILITY GROUP statement; expected exactly one")]
    NoCreateStatement {
        /// Line of the first statement (1 for an empty script).
        line: usize,
        /// Column of the first statement (1 for an empty script).
        column: usize,
    },
    /// [`Script::ag_config`](super::Script::ag_config) on a script with two CREATE statements.
    #[error("line {line}, column {column}: a second CREATE AVAILABILITY GROUP (the first is at line {first_line}); expected exactly one per script")]
    SeveralCreateStatements {
        /// Line of the second CREATE.
        line: usize,
        /// Column of the second CREATE.
        column: usize,
        /// Line of the first CREATE.
        first_line: usize,
    },
    /// The availability group parsed but breaks limits of the rule book; `error` is
    /// [`ConfigError::Invalid`] and names every broken rule.
    #[error("line {line}, column {column}: CREATE AVAILABILITY GROUP [{ag}]: {error}")]
    Invalid {
        /// Line of the CREATE statement.
        line: usize,
        /// Column of the CREATE statement.
        column: usize,
        /// The availability group's name.
        ag: String,
        /// The validation error, naming each broken rule.
        error: ConfigError,
    },
}

impl TsqlError {
    /// The 1-based line and column the error points at.
    pub fn position(&self) -> (usize, usize) {
        use TsqlError::*;
        match *self {
            UnterminatedString { line, column }
            | UnterminatedIdentifier { line, column, .. }
            | EmptyIdentifier { line, column }
            | UnterminatedComment { line, column, .. }
            | UnexpectedCharacter { line, column, .. }
            | Expected { line, column, .. }
            | ReservedWord { line, column, .. }
            | InvalidValue { line, column, .. }
            | IntegerOutOfRange { line, column, .. }
            | UnknownOption { line, column, .. }
            | DuplicateOption { line, column, .. }
            | MissingOption { line, column, .. }
            | Unsupported { line, column, .. }
            | NotAlterable { line, column, .. }
            | NoCreateStatement { line, column }
            | SeveralCreateStatements { line, column, .. }
            | Invalid { line, column, .. } => (line, column),
        }
    }
}
