//! T-SQL scripts that hadr accepts, and what they become: the configuration of a CREATE, the
//! commands of the ALTERs, their positions and batches. The results are pinned as snapshots.

use hadr_types::tsql::{
    parse_script, AgAction, AgCommand, AgSetting, Command, HadrAction, ReplicaChange, Statement,
};
use hadr_types::{
    AgConfig, AvailabilityMode, BackupPreference, ClusterType, FailoverMode, PrimaryConnections,
    RoutingEntry, SecondaryConnections, SeedingMode,
};

const THREE_REPLICAS: &str = include_str!("../../examples/ag-three-replicas.sql");
const WITH_ERROR: &str = include_str!("../../examples/ag-with-error.sql");

/// Comments (nested, and after GO), GO batches, N'' strings with '' escapes, [bracketed] and
/// "quoted" names with escapes, mixed case, a routing list with a load-balanced group, two
/// databases and no `;` between statements.
const LEXICAL_VARIETY: &str = r#"/* hadr test script
   /* nested: GO on its own line inside a comment is not a batch separator
GO
   */
*/
Create Availability Group [sales]]ag]
with ( automated_backup_preference = primary , Db_Failover = on,
       FAILURE_CONDITION_LEVEL = 2, health_check_timeout = 15000,
       REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1, cluster_type = wsfc )
for database "Sales ""EU""", [stock]
replica on
  n'SQL-1\PROD' with (endpoint_url = 'tcp://sql-1:5022', availability_mode = synchronous_commit,
      failover_mode = automatic, seeding_mode = automatic, backup_priority = 0,
      session_timeout = 5,
      primary_role (read_only_routing_list = (('SQL-2', N'O''Brien'), 'SQL-3'),
                    read_write_routing_url = N'tcp://sql-1:1433', allow_connections = all)),
  'SQL-2' With (Availability_Mode = Synchronous_Commit, Failover_Mode = Automatic,
      secondary_role (read_only_routing_url = N'tcp://sql-2:1433', allow_connections = all)),
  N'O''Brien' WITH (AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL, -- reporting
      SECONDARY_ROLE (ALLOW_CONNECTIONS = READ_ONLY, READ_ONLY_ROUTING_URL = N'tcp://obrien:1433')),
  'SQL-3' WITH (AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL,
      SECONDARY_ROLE (READ_ONLY_ROUTING_URL = N'tcp://sql-3:1433'))
  go   -- end of the first batch
alter availability group [sales]]ag] failover
ALTER DATABASE "Sales ""EU""" SET HADR SUSPEND;;
"#;

/// Every ALTER form, one per statement.
const EVERY_ALTER: &str = r"
ALTER AVAILABILITY GROUP ag1 FAILOVER;
ALTER AVAILABILITY GROUP ag1 FORCE_FAILOVER_ALLOW_DATA_LOSS;
ALTER AVAILABILITY GROUP ag1 SET (ROLE = SECONDARY);
ALTER AVAILABILITY GROUP ag1 SET (AUTOMATED_BACKUP_PREFERENCE = SECONDARY_ONLY);
ALTER AVAILABILITY GROUP ag1 SET (FAILURE_CONDITION_LEVEL = 4);
ALTER AVAILABILITY GROUP ag1 SET (HEALTH_CHECK_TIMEOUT = 60000);
ALTER AVAILABILITY GROUP ag1 SET (DB_FAILOVER = OFF);
ALTER AVAILABILITY GROUP ag1 SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1);
GO
ALTER AVAILABILITY GROUP ag1 ADD DATABASE [db2];
ALTER AVAILABILITY GROUP ag1 REMOVE DATABASE db2;
ALTER AVAILABILITY GROUP ag1 ADD REPLICA ON N'D' WITH (
    ENDPOINT_URL = N'tcp://d:5022', AVAILABILITY_MODE = ASYNCHRONOUS_COMMIT,
    FAILOVER_MODE = MANUAL, SECONDARY_ROLE (ALLOW_CONNECTIONS = ALL));
ALTER AVAILABILITY GROUP ag1 REMOVE REPLICA ON N'D';
GO
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (ENDPOINT_URL = N'tcp://c2:5022');
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT);
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (FAILOVER_MODE = AUTOMATIC);
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (SEEDING_MODE = AUTOMATIC);
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (BACKUP_PRIORITY = 100);
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (SESSION_TIMEOUT = 20);
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (SECONDARY_ROLE (ALLOW_CONNECTIONS = NO));
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (SECONDARY_ROLE (READ_ONLY_ROUTING_URL = N'tcp://c2:1433'));
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (PRIMARY_ROLE (ALLOW_CONNECTIONS = ALL));
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (PRIMARY_ROLE (READ_ONLY_ROUTING_LIST = (('A', 'B'))));
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (PRIMARY_ROLE (READ_ONLY_ROUTING_LIST = NONE));
ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (PRIMARY_ROLE (READ_WRITE_ROUTING_URL = N'tcp://c2:1433'));
GO
ALTER DATABASE db1 SET HADR AVAILABILITY GROUP = ag1;
ALTER DATABASE db1 SET HADR SUSPEND;
ALTER DATABASE db1 SET HADR RESUME;
ALTER DATABASE db1 SET HADR OFF;
";

#[test]
fn the_three_replica_example_gives_its_configuration() {
    let config = parse_script(THREE_REPLICAS)
        .and_then(|script| script.ag_config())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.replicas[0].name, "A",
        "the first replica is the primary"
    );
    assert_eq!(config.cluster_type, ClusterType::External);
    assert_eq!(
        config.automated_backup_preference,
        BackupPreference::Secondary
    );
    assert_eq!(config.databases, ["sales", "stock"]);
    let c = &config.replicas[2];
    assert_eq!(
        (c.availability_mode, c.failover_mode),
        (AvailabilityMode::AsynchronousCommit, FailoverMode::Manual)
    );
    assert_eq!(
        c.secondary_role.allow_connections,
        SecondaryConnections::ReadOnly
    );
    assert_eq!(
        config.replicas[0].primary_role.read_only_routing_list,
        [RoutingEntry::Group(vec!["C".into(), "B".into()])]
    );
    insta::assert_json_snapshot!(config);
}

/// The example with a mistake is refused with the message its header comment shows.
#[test]
fn the_error_example_is_refused_as_its_comment_says() {
    let error = parse_script(WITH_ERROR).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("R-FAIL-1"), "{message}");
    let commented: String = message
        .lines()
        .map(|line| format!("--   {line}\n"))
        .collect();
    assert!(
        WITH_ERROR.contains(&commented),
        "examples/ag-with-error.sql should quote the message:\n{commented}"
    );
    insta::assert_snapshot!(message);
}

#[test]
fn comments_batches_strings_and_quoted_names_parse() {
    let script = parse_script(LEXICAL_VARIETY).unwrap_or_else(|e| panic!("{e}"));
    let batches: Vec<(usize, usize)> = script
        .statements
        .iter()
        .map(|s| (s.line, s.batch))
        .collect();
    assert_eq!(batches, [(6, 1), (24, 2), (25, 2)]);
    let config = script.ag_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.name, "sales]ag");
    assert_eq!(config.databases, ["Sales \"EU\"", "stock"]);
    assert_eq!(config.replicas[0].name, "SQL-1\\PROD");
    assert_eq!(
        config.replicas[0].primary_role.read_only_routing_list,
        [
            RoutingEntry::Group(vec!["SQL-2".into(), "O'Brien".into()]),
            RoutingEntry::Replica("SQL-3".into()),
        ]
    );
    assert_eq!(config.cluster_type, ClusterType::Wsfc);
    insta::assert_json_snapshot!(script);
}

#[test]
fn every_alter_form_becomes_its_command() {
    let script = parse_script(EVERY_ALTER).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(script.statements.len(), 28);
    let commands: Vec<Command<'_>> = script.commands().collect();
    assert!(commands[..24]
        .iter()
        .all(|c| matches!(c, Command::AvailabilityGroup(AgCommand { ag, .. }) if ag == "ag1")));
    assert!(commands[24..]
        .iter()
        .all(|c| matches!(c, Command::Database(d) if d.database == "db1")));
    insta::assert_json_snapshot!(script);
}

/// Without WITH and FOR DATABASE, every option takes the default of `AgConfig`.
#[test]
fn a_minimal_create_takes_the_defaults() {
    let config = parse_script(
        "create availability group g for replica on 'A' with (availability_mode = synchronous_commit, failover_mode = automatic), 'B' with (availability_mode = synchronous_commit, failover_mode = automatic)",
    )
    .and_then(|script| script.ag_config())
    .unwrap_or_else(|e| panic!("{e}"));
    let toml = AgConfig::from_toml_str(
        r#"
        name = "g"
        [[replicas]]
        name = "A"
        availability_mode = "SYNCHRONOUS_COMMIT"
        failover_mode = "AUTOMATIC"
        [[replicas]]
        name = "B"
        availability_mode = "SYNCHRONOUS_COMMIT"
        failover_mode = "AUTOMATIC"
        "#,
    )
    .unwrap();
    assert_eq!(config, toml);
    assert!(config.databases.is_empty());
}

/// An admin API applies the commands to the configuration and validates the result.
#[test]
fn alter_commands_apply_to_a_configuration() {
    let mut config = parse_script(THREE_REPLICAS)
        .and_then(|script| script.ag_config())
        .unwrap();
    let alters = parse_script(
        "ALTER AVAILABILITY GROUP ag1 SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1)
         ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (AVAILABILITY_MODE = SYNCHRONOUS_COMMIT)
         ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (SEEDING_MODE = MANUAL)
         ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON N'C' WITH (PRIMARY_ROLE (ALLOW_CONNECTIONS = ALL))
         ALTER AVAILABILITY GROUP ag1 SET (AUTOMATED_BACKUP_PREFERENCE = NONE)",
    )
    .unwrap();
    for command in alters.commands() {
        let Command::AvailabilityGroup(command) = command else {
            panic!("only ALTER AVAILABILITY GROUP here")
        };
        match command.action.clone() {
            AgAction::Set(setting) => setting.apply(&mut config),
            AgAction::ModifyReplica { replica, change } => {
                let id = config.replica_id(&replica).unwrap();
                change.apply(&mut config.replicas[usize::from(id.0)]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    config.validate().unwrap();
    assert_eq!(config.required_synchronized_secondaries_to_commit, 1);
    assert_eq!(config.automated_backup_preference, BackupPreference::None);
    let c = &config.replicas[2];
    assert_eq!(c.availability_mode, AvailabilityMode::SynchronousCommit);
    assert_eq!(c.seeding_mode, SeedingMode::Manual);
    assert_eq!(c.primary_role.allow_connections, PrimaryConnections::All);
}

#[test]
fn statements_keep_their_order_position_and_batch() {
    let script = parse_script(
        "GO\n  ALTER DATABASE [db1] SET HADR RESUME\nGO\nGO\n;ALTER AVAILABILITY GROUP g SET (DB_FAILOVER = ON)",
    )
    .unwrap();
    let positions: Vec<(usize, usize, usize)> = script
        .statements
        .iter()
        .map(|s| (s.line, s.column, s.batch))
        .collect();
    assert_eq!(positions, [(2, 3, 2), (5, 2, 4)]);
    assert_eq!(
        script.statements[0].statement,
        Statement::AlterDatabase(hadr_types::tsql::DatabaseCommand {
            database: "db1".into(),
            action: HadrAction::Resume
        })
    );
    assert_eq!(
        script.statements[1].statement,
        Statement::AlterAvailabilityGroup(AgCommand {
            ag: "g".into(),
            action: AgAction::Set(AgSetting::DbFailover(true))
        })
    );
}

#[test]
fn an_empty_script_has_no_statements() {
    for text in [
        "",
        "  \n",
        "-- nothing\n/* at all */",
        ";;",
        "GO\nGO",
        "\u{feff}",
    ] {
        assert_eq!(parse_script(text).unwrap().statements, [], "{text:?}");
    }
}

#[test]
fn modify_replica_names_one_field() {
    let script = parse_script(
        "ALTER AVAILABILITY GROUP ag1 MODIFY REPLICA ON 'B' WITH (PRIMARY_ROLE (READ_ONLY_ROUTING_LIST = ('C', ('A', 'D'))))",
    )
    .unwrap();
    assert_eq!(
        script.statements[0].statement,
        Statement::AlterAvailabilityGroup(AgCommand {
            ag: "ag1".into(),
            action: AgAction::ModifyReplica {
                replica: "B".into(),
                change: ReplicaChange::ReadOnlyRoutingList(vec![
                    RoutingEntry::Replica("C".into()),
                    RoutingEntry::Group(vec!["A".into(), "D".into()]),
                ]),
            },
        })
    );
}
