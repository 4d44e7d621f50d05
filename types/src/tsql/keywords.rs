//! The words the parser knows: T-SQL's reserved keywords (which cannot be bare names), the
//! keywords that begin a statement, and the keyword values of each option.

use crate::vocabulary::{
    AvailabilityMode, BackupPreference, ClusterType, FailoverMode, PrimaryConnections,
    SecondaryConnections, SeedingMode,
};

/// T-SQL's reserved keywords, in upper case and sorted. A name that is one must be quoted
/// (`[primary]`), as in SQL Server.
#[rustfmt::skip]
const RESERVED: &[&str] = &[
    "ADD", "ALL", "ALTER", "AND", "ANY", "AS", "ASC", "AUTHORIZATION", "BACKUP", "BEGIN",
    "BETWEEN", "BREAK", "BROWSE", "BULK", "BY", "CASCADE", "CASE", "CHECK", "CHECKPOINT", "CLOSE",
    "CLUSTERED", "COALESCE", "COLLATE", "COLUMN", "COMMIT", "COMPUTE", "CONSTRAINT", "CONTAINS",
    "CONTAINSTABLE", "CONTINUE", "CONVERT", "CREATE", "CROSS", "CURRENT", "CURRENT_DATE",
    "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER", "CURSOR", "DATABASE", "DBCC",
    "DEALLOCATE", "DECLARE", "DEFAULT", "DELETE", "DENY", "DESC", "DISK", "DISTINCT",
    "DISTRIBUTED", "DOUBLE", "DROP", "DUMP", "ELSE", "END", "ERRLVL", "ESCAPE", "EXCEPT", "EXEC",
    "EXECUTE", "EXISTS", "EXIT", "EXTERNAL", "FETCH", "FILE", "FILLFACTOR", "FOR", "FOREIGN",
    "FREETEXT", "FREETEXTTABLE", "FROM", "FULL", "FUNCTION", "GOTO", "GRANT", "GROUP", "HAVING",
    "HOLDLOCK", "IDENTITY", "IDENTITYCOL", "IDENTITY_INSERT", "IF", "IN", "INDEX", "INNER",
    "INSERT", "INTERSECT", "INTO", "IS", "JOIN", "KEY", "KILL", "LEFT", "LIKE", "LINENO", "LOAD",
    "MERGE", "NATIONAL", "NOCHECK", "NONCLUSTERED", "NOT", "NULL", "NULLIF", "OF", "OFF",
    "OFFSETS", "ON", "OPEN", "OPENDATASOURCE", "OPENQUERY", "OPENROWSET", "OPENXML", "OPTION",
    "OR", "ORDER", "OUTER", "OVER", "PERCENT", "PIVOT", "PLAN", "PRECISION", "PRIMARY", "PRINT",
    "PROC", "PROCEDURE", "PUBLIC", "RAISERROR", "READ", "READTEXT", "RECONFIGURE", "REFERENCES",
    "REPLICATION", "RESTORE", "RESTRICT", "RETURN", "REVERT", "REVOKE", "RIGHT", "ROLLBACK",
    "ROWCOUNT", "ROWGUIDCOL", "RULE", "SAVE", "SCHEMA", "SECURITYAUDIT", "SELECT",
    "SEMANTICKEYPHRASETABLE", "SEMANTICSIMILARITYDETAILSTABLE", "SEMANTICSIMILARITYTABLE",
    "SESSION_USER", "SET", "SETUSER", "SHUTDOWN", "SOME", "STATISTICS", "SYSTEM_USER", "TABLE",
    "TABLESAMPLE", "TEXTSIZE", "THEN", "TO", "TOP", "TRAN", "TRANSACTION", "TRIGGER", "TRUNCATE",
    "TRY_CONVERT", "TSEQUAL", "UNION", "UNIQUE", "UNPIVOT", "UPDATE", "UPDATETEXT", "USE", "USER",
    "VALUES", "VARYING", "VIEW", "WAITFOR", "WHEN", "WHERE", "WHILE", "WITH", "WITHIN",
    "WRITETEXT",
];

/// Keywords that begin a T-SQL statement, in upper case and sorted. After a statement that is
/// not closed by `;`, one of these begins the next statement; at the start of a statement, all
/// but CREATE and ALTER are reported as unsupported.
#[rustfmt::skip]
const STATEMENT_STARTERS: &[&str] = &[
    "ALTER", "BACKUP", "BEGIN", "BREAK", "BULK", "CHECKPOINT", "CLOSE", "COMMIT", "CONTINUE",
    "CREATE", "DBCC", "DEALLOCATE", "DECLARE", "DELETE", "DENY", "DISABLE", "DROP", "ENABLE",
    "EXEC", "EXECUTE", "FETCH", "GOTO", "GRANT", "IF", "INSERT", "KILL", "MERGE", "OPEN", "PRINT",
    "RAISERROR", "READTEXT", "RECONFIGURE", "RESTORE", "RETURN", "REVERT", "REVOKE", "ROLLBACK",
    "SAVE", "SELECT", "SET", "SETUSER", "SHUTDOWN", "THROW", "TRUNCATE", "UPDATE", "UPDATETEXT",
    "USE", "WAITFOR", "WHILE", "WRITETEXT",
];

fn contains(sorted: &[&str], word: &str) -> bool {
    sorted
        .binary_search(&word.to_ascii_uppercase().as_str())
        .is_ok()
}

/// Whether `word` is a reserved keyword of T-SQL (in any case).
pub(crate) fn is_reserved(word: &str) -> bool {
    contains(RESERVED, word)
}

/// Whether `word` begins a T-SQL statement (in any case).
pub(crate) fn starts_statement(word: &str) -> bool {
    contains(STATEMENT_STARTERS, word)
}

/// `AUTOMATED_BACKUP_PREFERENCE` values.
pub(crate) const BACKUP_PREFERENCES: &[(&str, BackupPreference)] = &[
    ("PRIMARY", BackupPreference::Primary),
    ("SECONDARY_ONLY", BackupPreference::SecondaryOnly),
    ("SECONDARY", BackupPreference::Secondary),
    ("NONE", BackupPreference::None),
];

/// `CLUSTER_TYPE` values.
pub(crate) const CLUSTER_TYPES: &[(&str, ClusterType)] = &[
    ("WSFC", ClusterType::Wsfc),
    ("EXTERNAL", ClusterType::External),
    ("NONE", ClusterType::None),
];

/// `DB_FAILOVER` values.
pub(crate) const ON_OFF: &[(&str, bool)] = &[("ON", true), ("OFF", false)];

/// `AVAILABILITY_MODE` values.
pub(crate) const AVAILABILITY_MODES: &[(&str, AvailabilityMode)] = &[
    ("SYNCHRONOUS_COMMIT", AvailabilityMode::SynchronousCommit),
    ("ASYNCHRONOUS_COMMIT", AvailabilityMode::AsynchronousCommit),
    ("CONFIGURATION_ONLY", AvailabilityMode::ConfigurationOnly),
];

/// `FAILOVER_MODE` values.
pub(crate) const FAILOVER_MODES: &[(&str, FailoverMode)] = &[
    ("AUTOMATIC", FailoverMode::Automatic),
    ("MANUAL", FailoverMode::Manual),
    ("EXTERNAL", FailoverMode::External),
];

/// `SEEDING_MODE` values.
pub(crate) const SEEDING_MODES: &[(&str, SeedingMode)] = &[
    ("AUTOMATIC", SeedingMode::Automatic),
    ("MANUAL", SeedingMode::Manual),
];

/// `SECONDARY_ROLE (ALLOW_CONNECTIONS = …)` values.
pub(crate) const SECONDARY_CONNECTIONS: &[(&str, SecondaryConnections)] = &[
    ("NO", SecondaryConnections::No),
    ("READ_ONLY", SecondaryConnections::ReadOnly),
    ("ALL", SecondaryConnections::All),
];

/// `PRIMARY_ROLE (ALLOW_CONNECTIONS = …)` values.
pub(crate) const PRIMARY_CONNECTIONS: &[(&str, PrimaryConnections)] = &[
    ("READ_WRITE", PrimaryConnections::ReadWrite),
    ("ALL", PrimaryConnections::All),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_lists_are_sorted_upper_case_and_without_repeats() {
        for list in [RESERVED, STATEMENT_STARTERS] {
            for pair in list.windows(2) {
                assert!(pair[0] < pair[1], "{} before {}", pair[0], pair[1]);
            }
            assert!(list.iter().all(|w| *w == w.to_ascii_uppercase()));
        }
    }

    #[test]
    fn lookups_ignore_case() {
        assert!(is_reserved("with"));
        assert!(is_reserved("Primary"));
        assert!(!is_reserved("ag1"));
        assert!(!is_reserved("GO"), "GO is a batch separator, not a keyword");
        assert!(starts_statement("use"));
        assert!(!starts_statement("WITH"));
    }
}
