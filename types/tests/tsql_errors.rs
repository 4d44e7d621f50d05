//! T-SQL scripts that hadr refuses, one distinct mistake each, and the message each gets: the
//! line and column of the mistake, what was expected there and what was found. The messages
//! are pinned in one snapshot that shows each script beside its message.

use hadr_types::tsql::{parse_script, TsqlError};
use std::collections::BTreeSet;

/// Two replicas that are fine, to complete the CREATE statements below.
const REPLICAS: &str = "REPLICA ON
    N'A' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC),
    N'B' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC)";

/// (the mistake, the script).
fn bad_scripts() -> Vec<(&'static str, String)> {
    let create = |with: &str| {
        format!("CREATE AVAILABILITY GROUP ag1\nWITH ({with})\nFOR DATABASE db1\n{REPLICAS};")
    };
    let replica_c = |options: &str| {
        format!("CREATE AVAILABILITY GROUP ag1\nFOR DATABASE db1\n{REPLICAS},\n    N'C' WITH ({options});")
    };
    vec![
        ("unknown availability-group option", create("BACKUP_PREFERENCE = SECONDARY")),
        (
            "bad AVAILABILITY_MODE value",
            replica_c("AVAILABILITY_MODE = SYNC, FAILOVER_MODE = MANUAL"),
        ),
        (
            "missing comma between two options",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT FAILOVER_MODE = MANUAL"),
        ),
        (
            "missing comma between two replicas",
            format!("CREATE AVAILABILITY GROUP ag1 FOR\n{REPLICAS}\n    N'C' WITH (AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL);"),
        ),
        (
            "unterminated string",
            replica_c("ENDPOINT_URL = N'tcp://c:5022, AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL"),
        ),
        (
            "unterminated nested comment",
            format!("/* set-up /* see the runbook */ \nCREATE AVAILABILITY GROUP ag1 FOR\n{REPLICAS};"),
        ),
        (
            "unterminated bracketed name",
            format!("CREATE AVAILABILITY GROUP ag1\nFOR DATABASE [db1, db2\n{REPLICAS};"),
        ),
        (
            "empty bracketed name",
            format!("CREATE AVAILABILITY GROUP []\nFOR\n{REPLICAS};"),
        ),
        (
            "duplicate option",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,\n        FAILOVER_MODE = AUTOMATIC"),
        ),
        (
            "duplicate option inside a role",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,\n        SECONDARY_ROLE (ALLOW_CONNECTIONS = ALL, ALLOW_CONNECTIONS = NO)"),
        ),
        ("unsupported availability-group option", create("DTC_SUPPORT = PER_DB")),
        ("unsupported keyword option", create("BASIC")),
        (
            "unsupported LISTENER clause",
            format!("CREATE AVAILABILITY GROUP ag1\nFOR DATABASE db1\n{REPLICAS}\nLISTENER N'ag1-listener' (WITH DHCP);"),
        ),
        (
            "limit violation: SESSION_TIMEOUT under 5 s",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, SESSION_TIMEOUT = 2"),
        ),
        ("limit violation: FAILURE_CONDITION_LEVEL 6", create("FAILURE_CONDITION_LEVEL = 6")),
        (
            "unknown replica in a routing list",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,\n        PRIMARY_ROLE (READ_ONLY_ROUTING_LIST = ('A', 'D'))"),
        ),
        (
            "routing to a replica without READ_ONLY_ROUTING_URL",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,\n        PRIMARY_ROLE (READ_ONLY_ROUTING_LIST = (('A', 'B')))"),
        ),
        (
            "routing groups nested two levels",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,\n        PRIMARY_ROLE (READ_ONLY_ROUTING_LIST = (('A', ('B'))))"),
        ),
        (
            "option of the other role",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,\n        SECONDARY_ROLE (READ_ONLY_ROUTING_LIST = ('A'))"),
        ),
        ("missing FAILOVER_MODE", replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT")),
        (
            "integer too large",
            replica_c("AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, BACKUP_PRIORITY = 4294967296"),
        ),
        ("a unit after a number", create("HEALTH_CHECK_TIMEOUT = 30s")),
        ("a string where a keyword belongs", create("CLUSTER_TYPE = 'EXTERNAL'")),
        (
            "missing availability group name",
            format!("CREATE AVAILABILITY GROUP\nWITH (CLUSTER_TYPE = EXTERNAL)\nFOR\n{REPLICAS};"),
        ),
        ("missing FOR", format!("CREATE AVAILABILITY GROUP ag1\n{REPLICAS};")),
        (
            "unquoted replica name",
            "CREATE AVAILABILITY GROUP ag1 FOR\nREPLICA ON A WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC);".to_string(),
        ),
        (
            "typographic quotes pasted from a document",
            "CREATE AVAILABILITY GROUP ag1 FOR\nREPLICA ON \u{2018}A\u{2019} WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC);".to_string(),
        ),
        ("unclosed WITH list", "CREATE AVAILABILITY GROUP ag1\nWITH (CLUSTER_TYPE = EXTERNAL".to_string()),
        (
            "GO in the middle of a statement",
            format!("CREATE AVAILABILITY GROUP ag1\nGO\nFOR\n{REPLICAS};"),
        ),
        (
            "GO with a count",
            format!("CREATE AVAILABILITY GROUP ag1 FOR\n{REPLICAS}\nGO 2"),
        ),
        ("no CREATE statement", "ALTER AVAILABILITY GROUP ag1 FAILOVER;".to_string()),
        (
            "two CREATE statements",
            format!("CREATE AVAILABILITY GROUP ag1 FOR\n{REPLICAS}\nGO\nCREATE AVAILABILITY GROUP ag2 FOR\n{REPLICAS}"),
        ),
        ("unsupported statement", "USE master;\nGO".to_string()),
        ("unsupported CREATE statement", "CREATE ENDPOINT hadr_endpoint STATE = STARTED".to_string()),
        ("unknown ALTER action", "ALTER AVAILABILITY GROUP ag1 FAILOVER_NOW;".to_string()),
        ("unsupported ALTER action", "ALTER AVAILABILITY GROUP ag1 JOIN;".to_string()),
        ("unsupported listener action", "ALTER AVAILABILITY GROUP ag1 ADD LISTENER N'l' (WITH DHCP);".to_string()),
        ("words after a complete statement", "ALTER AVAILABILITY GROUP ag1 FAILOVER NOW;".to_string()),
        (
            "CLUSTER_TYPE in ALTER … SET",
            "ALTER AVAILABILITY GROUP ag1 SET (CLUSTER_TYPE = NONE);".to_string(),
        ),
        (
            "two options in one ALTER … SET",
            "ALTER AVAILABILITY GROUP ag1 SET (DB_FAILOVER = ON, FAILURE_CONDITION_LEVEL = 4);".to_string(),
        ),
        (
            "two options in one MODIFY REPLICA",
            "ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C'\nWITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT, FAILOVER_MODE = AUTOMATIC);".to_string(),
        ),
        (
            "two sub-options in one MODIFY REPLICA",
            "ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C'\nWITH (SECONDARY_ROLE (ALLOW_CONNECTIONS = ALL, READ_ONLY_ROUTING_URL = N'tcp://c:1433'));".to_string(),
        ),
        ("two databases in one ADD DATABASE", "ALTER AVAILABILITY GROUP ag1 ADD DATABASE db2, db3;".to_string()),
        ("ADD REPLICA without its modes", "ALTER AVAILABILITY GROUP ag1 ADD REPLICA ON N'D' WITH (ENDPOINT_URL = N'tcp://d:5022');".to_string()),
        ("unsupported ALTER DATABASE option", "ALTER DATABASE db1 SET RECOVERY FULL;".to_string()),
        ("bad SET HADR value", "ALTER DATABASE db1 SET HADR PAUSE;".to_string()),
        ("reserved word as a database name", "ALTER AVAILABILITY GROUP ag1 ADD DATABASE backup;".to_string()),
    ]
}

fn refuse(script: &str) -> TsqlError {
    match parse_script(script).and_then(|s| s.ag_config()) {
        Ok(config) => panic!("accepted:\n{script}\nas {config:?}"),
        Err(error) => error,
    }
}

#[test]
fn every_bad_script_is_refused_with_its_line_column_and_what_was_expected() {
    let mut out = String::new();
    for (mistake, script) in bad_scripts() {
        let error = refuse(&script);
        out.push_str(&format!("## {mistake}\n{script}\n=> {error}\n\n"));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn every_message_is_different_and_points_inside_its_script() {
    let scripts = bad_scripts();
    assert!(scripts.len() >= 15);
    let mut messages = BTreeSet::new();
    for (mistake, script) in &scripts {
        let error = refuse(script);
        let message = error.to_string();
        let (line, column) = error.position();
        assert!(
            message.starts_with(&format!("line {line}, column {column}: ")),
            "{mistake}: {message}"
        );
        let lines: Vec<&str> = script.split('\n').collect();
        assert!((1..=lines.len()).contains(&line), "{mistake}: line {line}");
        let width = lines[line - 1].chars().count();
        assert!(
            (1..=width + 1).contains(&column),
            "{mistake}: column {column}"
        );
        assert!(
            messages.insert(message),
            "{mistake}: same message as another"
        );
    }
}

/// A limit violation keeps the validation error, which names the rule, and adds the line.
#[test]
fn a_limit_violation_wraps_the_validation_error() {
    let script = format!(
        "\n\nCREATE AVAILABILITY GROUP ag1\nWITH (HEALTH_CHECK_TIMEOUT = 1000)\nFOR\n{REPLICAS};"
    );
    let TsqlError::Invalid {
        line,
        column,
        ag,
        error,
    } = refuse(&script)
    else {
        panic!("a limit violation is TsqlError::Invalid")
    };
    assert_eq!((line, column, ag.as_str()), (3, 1, "ag1"));
    let hadr_types::ConfigError::Invalid(violations) = error else {
        panic!("the validation error is ConfigError::Invalid")
    };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].rule(), "R-LIMIT-1");
}

/// The example from the brief: the column is that of the bad value.
#[test]
fn a_bad_value_is_reported_at_the_value() {
    let script = format!("CREATE AVAILABILITY GROUP ag1\nFOR\n{REPLICAS},\n  N'C' WITH (AVAILABILITY_MODE = SYNC, FAILOVER_MODE = MANUAL)");
    assert_eq!(
        refuse(&script).to_string(),
        "line 6, column 34: expected AVAILABILITY_MODE value SYNCHRONOUS_COMMIT, ASYNCHRONOUS_COMMIT or CONFIGURATION_ONLY, found 'SYNC'"
    );
}
