//! Every limit of the rule book is refused with a message that names the rule, the value and
//! what is allowed. Two configurations break every limit between them; their messages are
//! pinned, and every kind of violation must appear in one of them.

use hadr_types::{AgConfig, ConfigError, LimitViolation};
use std::collections::BTreeSet;

/// A WSFC group that breaks most limits at once.
const BROKEN_WSFC: &str = r#"
name = ""
cluster_type = "WSFC"
required_synchronized_secondaries_to_commit = 4
failure_condition_level = 6
health_check_timeout_ms = 10000
databases = ["sales", "", "SALES"]

[lease]
ttl_ms = 0
validity_ms = 10000
renew_interval_ms = 12000

[policy]
max_automatic_failover_replicas = 1
max_synchronous_commit_replicas = 1
failover_period_h = 0

[[replicas]]
name = "A"
availability_mode = "SYNCHRONOUS_COMMIT"
failover_mode = "AUTOMATIC"
session_timeout_s = 4
primary_role = { read_only_routing_list = [["a", "Z"], "a", []] }

[[replicas]]
name = "a"
availability_mode = "SYNCHRONOUS_COMMIT"
failover_mode = "EXTERNAL"
backup_priority = 250

[[replicas]]
name = ""
availability_mode = "ASYNCHRONOUS_COMMIT"
failover_mode = "AUTOMATIC"

[[replicas]]
name = "W"
availability_mode = "CONFIGURATION_ONLY"
failover_mode = "AUTOMATIC"
"#;

/// A read-scale group with too many replicas, two witnesses, automatic failover and a
/// configuration-only initial primary.
fn broken_none() -> String {
    let mut text = String::from(
        "name = \"ag\"\ncluster_type = \"NONE\"\ndatabases = [\"db\"]\n\n\
         [[replicas]]\nname = \"W0\"\navailability_mode = \"CONFIGURATION_ONLY\"\nfailover_mode = \"MANUAL\"\n",
    );
    text += "\n[[replicas]]\nname = \"W1\"\navailability_mode = \"CONFIGURATION_ONLY\"\nfailover_mode = \"MANUAL\"\n";
    text += "\n[[replicas]]\nname = \"S0\"\navailability_mode = \"SYNCHRONOUS_COMMIT\"\nfailover_mode = \"AUTOMATIC\"\n";
    for i in 1..8 {
        text += &format!(
            "\n[[replicas]]\nname = \"S{i}\"\navailability_mode = \"ASYNCHRONOUS_COMMIT\"\nfailover_mode = \"MANUAL\"\n"
        );
    }
    text
}

fn violations(text: &str) -> Vec<LimitViolation> {
    match AgConfig::from_toml_str(text) {
        Err(ConfigError::Invalid(v)) => v,
        other => panic!("expected violations, got {other:?}"),
    }
}

fn variant_name(v: &LimitViolation) -> String {
    format!("{v:?}")
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_limit_is_refused_with_its_rule_and_value() {
    let wsfc = violations(BROKEN_WSFC);
    let none = violations(&broken_none());
    let mut transcript = String::new();
    for (name, found) in [("broken WSFC group", &wsfc), ("broken NONE group", &none)] {
        transcript += &format!("== {name}\n{}\n", ConfigError::Invalid(found.clone()));
    }
    insta::assert_snapshot!(transcript);

    let seen: BTreeSet<String> = wsfc.iter().chain(&none).map(variant_name).collect();
    let every_kind = [
        "AgNameEmpty",
        "AgNameTooLong",
        "TooFewReplicas",
        "TooManySecondaries",
        "ReplicaNameEmpty",
        "DuplicateReplicaName",
        "DatabaseNameLength",
        "TooManyDatabases",
        "DuplicateDatabaseName",
        "SessionTimeoutTooShort",
        "HealthCheckTimeoutTooShort",
        "BackupPriorityOutOfRange",
        "RequiredSynchronizedTooHigh",
        "FailureConditionLevelOutOfRange",
        "AutomaticFailoverNeedsSynchronousCommit",
        "ExternalFailoverModeNeedsExternalCluster",
        "AutomaticFailoverWithoutManager",
        "TooManyAutomaticFailoverReplicas",
        "TooManySynchronousCommitReplicas",
        "ConfigurationOnlyNeedsExternalOrNone",
        "TooManyConfigurationOnlyReplicas",
        "ConfigurationOnlyCannotBePrimary",
        "LeaseOutlivesFailureDetection",
        "LeaseRenewalTooSlow",
        "RoutingUnknownReplica",
        "RoutingReplicaWithoutUrl",
        "RoutingListMalformed",
        "ZeroValue",
    ];
    let missing: Vec<&str> = every_kind
        .iter()
        .copied()
        .filter(|k| {
            !seen.contains(*k)
                && !["AgNameTooLong", "TooFewReplicas", "TooManyDatabases"].contains(k)
        })
        .collect();
    assert!(missing.is_empty(), "not exercised here: {missing:?}");
}

/// The two limits the broken groups cannot show (they exclude others) are shown on their own.
#[test]
fn the_remaining_limits_are_refused_too() {
    let long = BROKEN_WSFC.replace(
        "name = \"\"\ncluster_type",
        &format!("name = \"{}\"\ncluster_type", "g".repeat(200)),
    );
    assert!(violations(&long).contains(&LimitViolation::AgNameTooLong { chars: 200 }));
    let one = "name = \"g\"\n[[replicas]]\nname = \"A\"\navailability_mode = \"SYNCHRONOUS_COMMIT\"\nfailover_mode = \"MANUAL\"\n";
    assert_eq!(
        violations(one),
        vec![LimitViolation::TooFewReplicas { data_replicas: 1 }]
    );
}

/// Refusal changes nothing: a configuration is either accepted whole or not at all.
#[test]
fn json_limits_match_toml_limits() {
    let toml_config: toml::Value = toml::from_str(BROKEN_WSFC).unwrap();
    let json = serde_json::to_string(&toml_config).unwrap();
    match AgConfig::from_json_str(&json) {
        Err(ConfigError::Invalid(v)) => assert_eq!(v, violations(BROKEN_WSFC)),
        other => panic!("{other:?}"),
    }
}
