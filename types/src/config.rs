//! [`AgConfig`]: an availability group as a user describes it, in TOML or JSON, and its
//! validation against every limit of the rule book.
//!
//! ```text
//!  TOML / JSON bytes ──parse──▶ AgConfig ──validate──▶ Ok(AgConfig)
//!        │                          │
//!        ▼                          ▼
//!  ConfigError::Toml/Json    ConfigError::Invalid([LimitViolation, …])  (every problem at once)
//! ```
//!
//! The first replica listed is the initial primary. Timeouts carry their unit in their name.

use crate::vocabulary::{
    AvailabilityMode, BackupPreference, BackupTieBreak, ClusterType, FailoverMode,
    PrimaryConnections, ReplicaId, SecondaryConnections, SeedingMode,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// R-LIMIT-1: at most 8 secondary replicas.
pub const MAX_SECONDARY_REPLICAS: usize = 8;
/// R-LIMIT-1: availability group names are at most 128 characters.
pub const MAX_NAME_CHARS: usize = 128;
/// R-LIMIT-1: SESSION_TIMEOUT is at least 5 seconds.
pub const MIN_SESSION_TIMEOUT_S: u32 = 5;
/// R-LIMIT-1: HEALTH_CHECK_TIMEOUT is at least 15 seconds.
pub const MIN_HEALTH_CHECK_TIMEOUT_MS: u32 = 15_000;
/// R-LIMIT-1: BACKUP_PRIORITY is 0..=100.
pub const MAX_BACKUP_PRIORITY: u32 = 100;
/// hadr numbers availability databases in one byte ([`DatabaseId`](crate::DatabaseId)).
pub const MAX_DATABASES: usize = 255;

/// An availability group: its replicas, databases and policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgConfig {
    /// The availability group's name (1..=128 characters).
    pub name: String,
    /// `CLUSTER_TYPE` (R-QUORUM-5). Default: EXTERNAL (the etcd-backed manager).
    #[serde(default = "defaults::cluster_type")]
    pub cluster_type: ClusterType,
    /// `REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT` (R-COMMIT-5), 0..=data replicas − 1.
    #[serde(default)]
    pub required_synchronized_secondaries_to_commit: u32,
    /// `FAILURE_CONDITION_LEVEL` of the flexible failover policy (R-FAIL-7), 1..=5.
    #[serde(default = "defaults::failure_condition_level")]
    pub failure_condition_level: u8,
    /// `HEALTH_CHECK_TIMEOUT` in milliseconds (R-FAIL-7), at least 15,000.
    #[serde(default = "defaults::health_check_timeout_ms")]
    pub health_check_timeout_ms: u32,
    /// `DB_FAILOVER`: also fail over when a database is not ONLINE (R-FAIL-7).
    #[serde(default)]
    pub db_failover: bool,
    /// `AUTOMATED_BACKUP_PREFERENCE` (R-BACKUP-4). Default SECONDARY.
    #[serde(default)]
    pub automated_backup_preference: BackupPreference,
    /// The availability databases, by name.
    #[serde(default)]
    pub databases: Vec<String>,
    /// The replicas; the first one is the initial primary.
    pub replicas: Vec<ReplicaConfig>,
    /// The primary's lease from the cluster manager (R-QUORUM-3).
    #[serde(default)]
    pub lease: LeaseConfig,
    /// The rule book's **\[param\]** choices.
    #[serde(default)]
    pub policy: PolicyConfig,
}

/// One availability replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Server instance name, unique in the AG (compared case-insensitively, as SQL Server does).
    pub name: String,
    /// `ENDPOINT_URL` of the replica's database-mirroring endpoint, e.g. `tcp://host:5022`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// `AVAILABILITY_MODE`.
    pub availability_mode: AvailabilityMode,
    /// `FAILOVER_MODE`.
    pub failover_mode: FailoverMode,
    /// `SESSION_TIMEOUT` in seconds (R-COMMIT-4, R-HEALTH-1), at least 5. Default 10.
    #[serde(default = "defaults::session_timeout_s")]
    pub session_timeout_s: u32,
    /// `BACKUP_PRIORITY` 0..=100 (R-BACKUP-4); 0 = never chosen for backups. Default 50.
    #[serde(default = "defaults::backup_priority")]
    pub backup_priority: u32,
    /// `SEEDING_MODE` (R-DB-2). Default MANUAL.
    #[serde(default)]
    pub seeding_mode: SeedingMode,
    /// `SECONDARY_ROLE (…)`: how the replica serves clients while it is a secondary.
    #[serde(default)]
    pub secondary_role: SecondaryRole,
    /// `PRIMARY_ROLE (…)`: how the replica serves clients while it is the primary.
    #[serde(default)]
    pub primary_role: PrimaryRole,
}

/// `SECONDARY_ROLE (ALLOW_CONNECTIONS = …, READ_ONLY_ROUTING_URL = …)` (R-READ-1/3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryRole {
    /// Which connections a secondary accepts. Default NO.
    #[serde(default)]
    pub allow_connections: SecondaryConnections,
    /// Where read-only routing sends read-intent connections for this replica, e.g.
    /// `tcp://host:1433`; a replica needs one to appear in a routing list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_routing_url: Option<String>,
}

/// `PRIMARY_ROLE (ALLOW_CONNECTIONS = …, READ_ONLY_ROUTING_LIST = …, READ_WRITE_ROUTING_URL = …)`
/// (R-READ-1/3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryRole {
    /// Which connections the primary accepts. Default ALL.
    #[serde(default)]
    pub allow_connections: PrimaryConnections,
    /// Where the listener routes read-intent connections while this replica is primary, in
    /// order; a group is load-balanced round-robin (one level of nesting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_routing_list: Vec<RoutingEntry>,
    /// Where a read-write connection that reaches this replica as a secondary is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_write_routing_url: Option<String>,
}

/// One entry of a READ_ONLY_ROUTING_LIST: a replica, or a load-balanced group of replicas
/// (`('B', 'C')` in T-SQL, `["B", "C"]` in TOML).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoutingEntry {
    /// One replica, by name.
    Replica(String),
    /// Replicas served round-robin, by name.
    Group(Vec<String>),
}

impl RoutingEntry {
    /// The replica names of the entry, in order.
    pub fn names(&self) -> &[String] {
        match self {
            RoutingEntry::Replica(name) => std::slice::from_ref(name),
            RoutingEntry::Group(names) => names,
        }
    }
}

/// Lease timing (R-QUORUM-3). The primary may commit only until `validity_ms` after its last
/// successful renewal; the cluster manager may declare it failed `ttl_ms` after that renewal.
/// Safety needs `validity_ms + clock_drift_margin_ms < ttl_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// Time after the last renewal at which the cluster manager may promote another replica
    /// (SQL Server: LeaseTimeout, 20 s). Default 20,000.
    #[serde(default = "defaults::lease_ttl_ms")]
    pub ttl_ms: u32,
    /// Time after the last renewal during which the primary may commit (SQL Server: half of
    /// LeaseTimeout). Default 10,000.
    #[serde(default = "defaults::lease_validity_ms")]
    pub validity_ms: u32,
    /// How often the primary renews its lease. Must be below `validity_ms`. Default 2,500.
    #[serde(default = "defaults::lease_renew_interval_ms")]
    pub renew_interval_ms: u32,
    /// Allowance for clock drift between the primary and the manager. Default 500.
    #[serde(default = "defaults::clock_drift_margin_ms")]
    pub clock_drift_margin_ms: u32,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl_ms: defaults::lease_ttl_ms(),
            validity_ms: defaults::lease_validity_ms(),
            renew_interval_ms: defaults::lease_renew_interval_ms(),
            clock_drift_margin_ms: defaults::clock_drift_margin_ms(),
        }
    }
}

impl LeaseConfig {
    /// R-QUORUM-3: the primary's lease always runs out before the manager may promote another.
    pub fn is_safe(&self) -> bool {
        u64::from(self.validity_ms) + u64::from(self.clock_drift_margin_ms) < u64::from(self.ttl_ms)
    }
}

/// The rule book's **\[param\]** choices, with its defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// R-FAIL-8: at most this many replicas with AUTOMATIC (or EXTERNAL) failover mode. Default 3.
    #[serde(default = "defaults::max_automatic_failover_replicas")]
    pub max_automatic_failover_replicas: u32,
    /// R-FAIL-8: at most this many SYNCHRONOUS_COMMIT replicas. Default 5.
    #[serde(default = "defaults::max_synchronous_commit_replicas")]
    pub max_synchronous_commit_replicas: u32,
    /// R-FAIL-7: automatic failovers allowed per period; unset = number of replicas − 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_threshold: Option<u32>,
    /// R-FAIL-7: the period of the failure threshold, in hours. Default 6.
    #[serde(default = "defaults::failover_period_h")]
    pub failover_period_h: u32,
    /// R-BACKUP-5: how the preferred backup replica is chosen among equals. Default: the
    /// lowest replica name.
    #[serde(default)]
    pub backup_tie_break: BackupTieBreak,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_automatic_failover_replicas: defaults::max_automatic_failover_replicas(),
            max_synchronous_commit_replicas: defaults::max_synchronous_commit_replicas(),
            failover_threshold: None,
            failover_period_h: defaults::failover_period_h(),
            backup_tie_break: BackupTieBreak::default(),
        }
    }
}

mod defaults {
    use crate::vocabulary::ClusterType;
    pub fn cluster_type() -> ClusterType {
        ClusterType::External
    }
    pub fn failure_condition_level() -> u8 {
        3
    }
    pub fn health_check_timeout_ms() -> u32 {
        30_000
    }
    pub fn session_timeout_s() -> u32 {
        10
    }
    pub fn backup_priority() -> u32 {
        50
    }
    pub fn lease_ttl_ms() -> u32 {
        20_000
    }
    pub fn lease_validity_ms() -> u32 {
        10_000
    }
    pub fn lease_renew_interval_ms() -> u32 {
        2_500
    }
    pub fn clock_drift_margin_ms() -> u32 {
        500
    }
    pub fn max_automatic_failover_replicas() -> u32 {
        3
    }
    pub fn max_synchronous_commit_replicas() -> u32 {
        5
    }
    pub fn failover_period_h() -> u32 {
        6
    }
}

/// The format a configuration was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Toml => "TOML",
            ConfigFormat::Json => "JSON",
        })
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The text is not valid TOML, or does not have the shape of a configuration.
    #[error("invalid TOML configuration: {message}")]
    Toml {
        /// The parser's message, with the line and column.
        message: String,
    },
    /// The text is not valid JSON, or does not have the shape of a configuration.
    #[error("invalid JSON configuration at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The configuration parsed but breaks one or more limits of the rule book.
    #[error("{}", list_violations(.0))]
    Invalid(Vec<LimitViolation>),
}

fn list_violations(violations: &[LimitViolation]) -> String {
    let mut out = format!(
        "the configuration breaks {} rule{}:",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for violation in violations {
        out.push_str(&format!("\n  - {}: {violation}", violation.rule()));
    }
    out
}

/// One broken limit, naming the rule, the offending value and what is allowed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitViolation {
    /// The AG name is empty.
    #[error(
        "the availability group name is empty; give it a name of 1 to {MAX_NAME_CHARS} characters"
    )]
    AgNameEmpty,
    /// The AG name is longer than 128 characters.
    #[error("the availability group name has {chars} characters; the maximum is {MAX_NAME_CHARS}")]
    AgNameTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// There is no replica that could be a secondary.
    #[error("the availability group has {data_replicas} replica(s) that hold data; it needs a primary and at least one secondary")]
    TooFewReplicas {
        /// Replicas that are not CONFIGURATION_ONLY.
        data_replicas: usize,
    },
    /// More than 8 secondaries.
    #[error("the availability group has {secondaries} secondary replicas; the maximum is {MAX_SECONDARY_REPLICAS} (1 primary + 8 secondaries)")]
    TooManySecondaries {
        /// Replicas after the first.
        secondaries: usize,
    },
    /// A replica name is empty.
    #[error("replica #{index} has an empty name")]
    ReplicaNameEmpty {
        /// Position in the replica list (from 0).
        index: usize,
    },
    /// Two replicas share a name.
    #[error(
        "replica name '{name}' appears more than once (names are compared case-insensitively)"
    )]
    DuplicateReplicaName {
        /// The repeated name.
        name: String,
    },
    /// A database name is empty or longer than 128 characters.
    #[error(
        "database #{index} has a name of {chars} characters; names have 1 to {MAX_NAME_CHARS}"
    )]
    DatabaseNameLength {
        /// Position in the database list (from 0).
        index: usize,
        /// Its length in characters.
        chars: usize,
    },
    /// More databases than hadr can number.
    #[error("the availability group has {count} databases; hadr numbers them in one byte, so the maximum is {MAX_DATABASES}")]
    TooManyDatabases {
        /// How many there are.
        count: usize,
    },
    /// Two databases share a name.
    #[error(
        "database name '{name}' appears more than once (names are compared case-insensitively)"
    )]
    DuplicateDatabaseName {
        /// The repeated name.
        name: String,
    },
    /// SESSION_TIMEOUT under 5 seconds.
    #[error("SESSION_TIMEOUT of replica '{replica}' is {seconds} s; the minimum is {MIN_SESSION_TIMEOUT_S} s")]
    SessionTimeoutTooShort {
        /// The replica.
        replica: String,
        /// The configured timeout.
        seconds: u32,
    },
    /// HEALTH_CHECK_TIMEOUT under 15 seconds.
    #[error("HEALTH_CHECK_TIMEOUT is {ms} ms; the minimum is {MIN_HEALTH_CHECK_TIMEOUT_MS} ms")]
    HealthCheckTimeoutTooShort {
        /// The configured timeout.
        ms: u32,
    },
    /// BACKUP_PRIORITY outside 0..=100.
    #[error("BACKUP_PRIORITY of replica '{replica}' is {priority}; it must be 0 to {MAX_BACKUP_PRIORITY}")]
    BackupPriorityOutOfRange {
        /// The replica.
        replica: String,
        /// The configured priority.
        priority: u32,
    },
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT above the number of data replicas − 1.
    #[error("REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT is {required}; with {data_replicas} replicas that hold data the maximum is {max}", max = .data_replicas.saturating_sub(1))]
    RequiredSynchronizedTooHigh {
        /// The configured k.
        required: u32,
        /// Replicas that are not CONFIGURATION_ONLY.
        data_replicas: usize,
    },
    /// FAILURE_CONDITION_LEVEL outside 1..=5.
    #[error("FAILURE_CONDITION_LEVEL is {level}; it must be 1 to 5")]
    FailureConditionLevelOutOfRange {
        /// The configured level.
        level: u8,
    },
    /// AUTOMATIC failover on an asynchronous replica.
    #[error("replica '{replica}' has FAILOVER_MODE = {failover_mode} but AVAILABILITY_MODE = {availability_mode}; automatic failover needs SYNCHRONOUS_COMMIT")]
    AutomaticFailoverNeedsSynchronousCommit {
        /// The replica.
        replica: String,
        /// Its failover mode.
        failover_mode: FailoverMode,
        /// Its availability mode.
        availability_mode: AvailabilityMode,
    },
    /// FAILOVER_MODE = EXTERNAL without CLUSTER_TYPE = EXTERNAL.
    #[error("replica '{replica}' has FAILOVER_MODE = EXTERNAL, which needs CLUSTER_TYPE = EXTERNAL (this group is {cluster_type})")]
    ExternalFailoverModeNeedsExternalCluster {
        /// The replica.
        replica: String,
        /// The group's cluster type.
        cluster_type: ClusterType,
    },
    /// Automatic failover with no cluster manager.
    #[error("replica '{replica}' has FAILOVER_MODE = {failover_mode}, but CLUSTER_TYPE = NONE has no cluster manager to fail over automatically; use MANUAL")]
    AutomaticFailoverWithoutManager {
        /// The replica.
        replica: String,
        /// Its failover mode.
        failover_mode: FailoverMode,
    },
    /// Too many automatic-failover replicas.
    #[error("{count} replicas have automatic failover; at most {max} may (policy.max_automatic_failover_replicas)")]
    TooManyAutomaticFailoverReplicas {
        /// How many there are.
        count: usize,
        /// The configured maximum.
        max: u32,
    },
    /// Too many synchronous-commit replicas.
    #[error("{count} replicas are SYNCHRONOUS_COMMIT; at most {max} may be (policy.max_synchronous_commit_replicas)")]
    TooManySynchronousCommitReplicas {
        /// How many there are.
        count: usize,
        /// The configured maximum.
        max: u32,
    },
    /// A configuration-only replica in a WSFC group.
    #[error("replica '{replica}' is CONFIGURATION_ONLY, which needs CLUSTER_TYPE = EXTERNAL or NONE (this group is {cluster_type})")]
    ConfigurationOnlyNeedsExternalOrNone {
        /// The replica.
        replica: String,
        /// The group's cluster type.
        cluster_type: ClusterType,
    },
    /// More than one configuration-only replica.
    #[error("{count} replicas are CONFIGURATION_ONLY; at most one may be")]
    TooManyConfigurationOnlyReplicas {
        /// How many there are.
        count: usize,
    },
    /// A configuration-only replica that could become primary.
    #[error("replica '{replica}' is CONFIGURATION_ONLY and can never be primary: it cannot be listed first (the initial primary) and its FAILOVER_MODE must be MANUAL")]
    ConfigurationOnlyCannotBePrimary {
        /// The replica.
        replica: String,
    },
    /// The primary could still commit after the manager may promote another replica.
    #[error("lease validity {validity_ms} ms + clock drift margin {clock_drift_margin_ms} ms is not below the lease TTL {ttl_ms} ms: the primary could still commit after another replica is promoted (split brain)")]
    LeaseOutlivesFailureDetection {
        /// lease.validity_ms
        validity_ms: u32,
        /// lease.clock_drift_margin_ms
        clock_drift_margin_ms: u32,
        /// lease.ttl_ms
        ttl_ms: u32,
    },
    /// The primary would not renew its lease before it runs out.
    #[error("lease renewal every {renew_interval_ms} ms is not below the lease validity {validity_ms} ms: the primary would lose its lease between renewals")]
    LeaseRenewalTooSlow {
        /// lease.renew_interval_ms
        renew_interval_ms: u32,
        /// lease.validity_ms
        validity_ms: u32,
    },
    /// A routing list names a replica that is not in the group.
    #[error("the READ_ONLY_ROUTING_LIST of replica '{owner}' names '{name}', which is not a replica of this availability group")]
    RoutingUnknownReplica {
        /// The replica whose list it is.
        owner: String,
        /// The unknown name.
        name: String,
    },
    /// A routing list names a replica without a READ_ONLY_ROUTING_URL.
    #[error("the READ_ONLY_ROUTING_LIST of replica '{owner}' names '{name}', which has no READ_ONLY_ROUTING_URL; give it SECONDARY_ROLE (READ_ONLY_ROUTING_URL = '…')")]
    RoutingReplicaWithoutUrl {
        /// The replica whose list it is.
        owner: String,
        /// The replica without a URL.
        name: String,
    },
    /// A routing list names a replica twice, or has an empty group.
    #[error("the READ_ONLY_ROUTING_LIST of replica '{owner}' {problem}")]
    RoutingListMalformed {
        /// The replica whose list it is.
        owner: String,
        /// What is wrong.
        problem: String,
    },
    /// A zero timing or policy value.
    #[error("{field} is 0; it must be positive")]
    ZeroValue {
        /// The field's path in the configuration.
        field: &'static str,
    },
}

impl LimitViolation {
    /// The rule-book id of the limit this breaks.
    pub fn rule(&self) -> &'static str {
        use LimitViolation::*;
        match self {
            AgNameEmpty | AgNameTooLong { .. } => "R-LIMIT-1",
            TooFewReplicas { .. } | TooManySecondaries { .. } => "R-LIMIT-1",
            ReplicaNameEmpty { .. } | DuplicateReplicaName { .. } => "R-LIMIT-1",
            DatabaseNameLength { .. } | DuplicateDatabaseName { .. } => "R-LIMIT-1",
            TooManyDatabases { .. } => "R-LIMIT-1",
            SessionTimeoutTooShort { .. } | HealthCheckTimeoutTooShort { .. } => "R-LIMIT-1",
            BackupPriorityOutOfRange { .. } | RequiredSynchronizedTooHigh { .. } => "R-LIMIT-1",
            FailureConditionLevelOutOfRange { .. } => "R-FAIL-7",
            AutomaticFailoverNeedsSynchronousCommit { .. } => "R-FAIL-1",
            ExternalFailoverModeNeedsExternalCluster { .. } => "R-FAIL-1",
            AutomaticFailoverWithoutManager { .. } => "R-QUORUM-5",
            TooManyAutomaticFailoverReplicas { .. } | TooManySynchronousCommitReplicas { .. } => {
                "R-FAIL-8"
            }
            ConfigurationOnlyNeedsExternalOrNone { .. }
            | TooManyConfigurationOnlyReplicas { .. }
            | ConfigurationOnlyCannotBePrimary { .. } => "R-QUORUM-6",
            LeaseOutlivesFailureDetection { .. } | LeaseRenewalTooSlow { .. } => "R-QUORUM-3",
            RoutingUnknownReplica { .. }
            | RoutingReplicaWithoutUrl { .. }
            | RoutingListMalformed { .. } => "R-READ-3",
            ZeroValue { field } if field.starts_with("lease.") => "R-QUORUM-3",
            ZeroValue { .. } => "R-FAIL-7",
        }
    }
}

impl AgConfig {
    /// Parses a TOML configuration and validates it.
    pub fn from_toml_str(text: &str) -> Result<AgConfig, ConfigError> {
        let config: AgConfig = toml::from_str(text).map_err(|e| ConfigError::Toml {
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a JSON configuration and validates it.
    pub fn from_json_str(text: &str) -> Result<AgConfig, ConfigError> {
        let config: AgConfig = serde_json::from_str(text).map_err(|e| ConfigError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a configuration in the given format.
    pub fn parse(text: &str, format: ConfigFormat) -> Result<AgConfig, ConfigError> {
        match format {
            ConfigFormat::Toml => AgConfig::from_toml_str(text),
            ConfigFormat::Json => AgConfig::from_json_str(text),
        }
    }

    /// The configuration as TOML (always parses back to an equal configuration).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("an AgConfig always serializes to TOML")
    }

    /// Checks every limit of the rule book and reports all that are broken, in a fixed order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let violations = self.violations();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(violations))
        }
    }

    /// Every broken limit, in the order the checks run (empty when the configuration is valid).
    pub fn violations(&self) -> Vec<LimitViolation> {
        let mut out = Vec::new();
        self.check_names(&mut out);
        self.check_counts(&mut out);
        self.check_timeouts(&mut out);
        self.check_modes(&mut out);
        self.check_lease(&mut out);
        self.check_routing(&mut out);
        out
    }

    /// R-READ-3: every routing list names replicas of the group that have a
    /// READ_ONLY_ROUTING_URL, each once, with no empty group.
    fn check_routing(&self, out: &mut Vec<LimitViolation>) {
        for owner in &self.replicas {
            let mut seen = BTreeSet::new();
            for entry in &owner.primary_role.read_only_routing_list {
                if entry.names().is_empty() {
                    out.push(LimitViolation::RoutingListMalformed {
                        owner: owner.name.clone(),
                        problem: "has an empty load-balanced group".into(),
                    });
                }
                for name in entry.names() {
                    if !seen.insert(name.to_lowercase()) {
                        out.push(LimitViolation::RoutingListMalformed {
                            owner: owner.name.clone(),
                            problem: format!("names '{name}' more than once"),
                        });
                        continue;
                    }
                    match self.replica_id(name).and_then(|id| self.replica(id)) {
                        None => out.push(LimitViolation::RoutingUnknownReplica {
                            owner: owner.name.clone(),
                            name: name.clone(),
                        }),
                        Some(r) if r.secondary_role.read_only_routing_url.is_none() => {
                            out.push(LimitViolation::RoutingReplicaWithoutUrl {
                                owner: owner.name.clone(),
                                name: name.clone(),
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }

    fn check_names(&self, out: &mut Vec<LimitViolation>) {
        let chars = self.name.chars().count();
        if chars == 0 {
            out.push(LimitViolation::AgNameEmpty);
        } else if chars > MAX_NAME_CHARS {
            out.push(LimitViolation::AgNameTooLong { chars });
        }
        let mut seen = BTreeSet::new();
        for (index, replica) in self.replicas.iter().enumerate() {
            if replica.name.is_empty() {
                out.push(LimitViolation::ReplicaNameEmpty { index });
            } else if !seen.insert(replica.name.to_lowercase()) {
                out.push(LimitViolation::DuplicateReplicaName {
                    name: replica.name.clone(),
                });
            }
        }
        if self.databases.len() > MAX_DATABASES {
            out.push(LimitViolation::TooManyDatabases {
                count: self.databases.len(),
            });
        }
        let mut seen = BTreeSet::new();
        for (index, database) in self.databases.iter().enumerate() {
            let chars = database.chars().count();
            if chars == 0 || chars > MAX_NAME_CHARS {
                out.push(LimitViolation::DatabaseNameLength { index, chars });
            } else if !seen.insert(database.to_lowercase()) {
                out.push(LimitViolation::DuplicateDatabaseName {
                    name: database.clone(),
                });
            }
        }
    }

    fn check_counts(&self, out: &mut Vec<LimitViolation>) {
        let data_replicas = self.data_replica_count();
        if data_replicas < 2 {
            out.push(LimitViolation::TooFewReplicas { data_replicas });
        }
        let secondaries = self.replicas.len().saturating_sub(1);
        if secondaries > MAX_SECONDARY_REPLICAS {
            out.push(LimitViolation::TooManySecondaries { secondaries });
        }
        let required = self.required_synchronized_secondaries_to_commit;
        if usize::try_from(required).map_or(true, |k| k + 1 > data_replicas.max(1)) {
            out.push(LimitViolation::RequiredSynchronizedTooHigh {
                required,
                data_replicas,
            });
        }
        let automatic = self
            .replicas
            .iter()
            .filter(|r| r.failover_mode.allows_automatic_failover())
            .count();
        let max = self.policy.max_automatic_failover_replicas;
        if automatic > max as usize {
            out.push(LimitViolation::TooManyAutomaticFailoverReplicas {
                count: automatic,
                max,
            });
        }
        let synchronous = self
            .replicas
            .iter()
            .filter(|r| r.availability_mode == AvailabilityMode::SynchronousCommit)
            .count();
        let max = self.policy.max_synchronous_commit_replicas;
        if synchronous > max as usize {
            out.push(LimitViolation::TooManySynchronousCommitReplicas {
                count: synchronous,
                max,
            });
        }
        if self.policy.failover_period_h == 0 {
            out.push(LimitViolation::ZeroValue {
                field: "policy.failover_period_h",
            });
        }
    }

    fn check_timeouts(&self, out: &mut Vec<LimitViolation>) {
        for replica in &self.replicas {
            if replica.session_timeout_s < MIN_SESSION_TIMEOUT_S {
                out.push(LimitViolation::SessionTimeoutTooShort {
                    replica: replica.name.clone(),
                    seconds: replica.session_timeout_s,
                });
            }
            if replica.backup_priority > MAX_BACKUP_PRIORITY {
                out.push(LimitViolation::BackupPriorityOutOfRange {
                    replica: replica.name.clone(),
                    priority: replica.backup_priority,
                });
            }
        }
        if self.health_check_timeout_ms < MIN_HEALTH_CHECK_TIMEOUT_MS {
            out.push(LimitViolation::HealthCheckTimeoutTooShort {
                ms: self.health_check_timeout_ms,
            });
        }
        if !(1..=5).contains(&self.failure_condition_level) {
            out.push(LimitViolation::FailureConditionLevelOutOfRange {
                level: self.failure_condition_level,
            });
        }
    }

    fn check_modes(&self, out: &mut Vec<LimitViolation>) {
        let mut configuration_only = 0;
        for (index, replica) in self.replicas.iter().enumerate() {
            let name = || replica.name.clone();
            if replica.availability_mode == AvailabilityMode::ConfigurationOnly {
                configuration_only += 1;
                if self.cluster_type == ClusterType::Wsfc {
                    out.push(LimitViolation::ConfigurationOnlyNeedsExternalOrNone {
                        replica: name(),
                        cluster_type: self.cluster_type,
                    });
                }
                if index == 0 || replica.failover_mode != FailoverMode::Manual {
                    out.push(LimitViolation::ConfigurationOnlyCannotBePrimary { replica: name() });
                }
                continue;
            }
            if replica.failover_mode.allows_automatic_failover()
                && replica.availability_mode != AvailabilityMode::SynchronousCommit
            {
                out.push(LimitViolation::AutomaticFailoverNeedsSynchronousCommit {
                    replica: name(),
                    failover_mode: replica.failover_mode,
                    availability_mode: replica.availability_mode,
                });
            }
            if replica.failover_mode == FailoverMode::External
                && self.cluster_type != ClusterType::External
            {
                out.push(LimitViolation::ExternalFailoverModeNeedsExternalCluster {
                    replica: name(),
                    cluster_type: self.cluster_type,
                });
            } else if replica.failover_mode.allows_automatic_failover()
                && !self.cluster_type.has_manager()
            {
                out.push(LimitViolation::AutomaticFailoverWithoutManager {
                    replica: name(),
                    failover_mode: replica.failover_mode,
                });
            }
        }
        if configuration_only > 1 {
            out.push(LimitViolation::TooManyConfigurationOnlyReplicas {
                count: configuration_only,
            });
        }
    }

    fn check_lease(&self, out: &mut Vec<LimitViolation>) {
        if !self.cluster_type.has_manager() {
            return;
        }
        let lease = self.lease;
        for (field, value) in [
            ("lease.ttl_ms", lease.ttl_ms),
            ("lease.validity_ms", lease.validity_ms),
            ("lease.renew_interval_ms", lease.renew_interval_ms),
        ] {
            if value == 0 {
                out.push(LimitViolation::ZeroValue { field });
            }
        }
        if !lease.is_safe() {
            out.push(LimitViolation::LeaseOutlivesFailureDetection {
                validity_ms: lease.validity_ms,
                clock_drift_margin_ms: lease.clock_drift_margin_ms,
                ttl_ms: lease.ttl_ms,
            });
        }
        if lease.renew_interval_ms >= lease.validity_ms {
            out.push(LimitViolation::LeaseRenewalTooSlow {
                renew_interval_ms: lease.renew_interval_ms,
                validity_ms: lease.validity_ms,
            });
        }
    }

    /// Replicas that hold data (all but CONFIGURATION_ONLY ones).
    pub fn data_replica_count(&self) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.availability_mode != AvailabilityMode::ConfigurationOnly)
            .count()
    }

    /// The replica with this id.
    pub fn replica(&self, id: ReplicaId) -> Option<&ReplicaConfig> {
        self.replicas.get(usize::from(id.0))
    }

    /// The id of the replica with this name (case-insensitive).
    pub fn replica_id(&self, name: &str) -> Option<ReplicaId> {
        self.replicas
            .iter()
            .position(|r| r.name.eq_ignore_ascii_case(name))
            .and_then(|i| u8::try_from(i).ok())
            .map(ReplicaId)
    }

    /// R-FAIL-7: automatic failovers allowed per period (default: replicas − 1).
    pub fn failover_threshold(&self) -> u32 {
        self.policy.failover_threshold.unwrap_or_else(|| {
            u32::try_from(self.replicas.len().saturating_sub(1)).unwrap_or(u32::MAX)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_REPLICAS: &str = r#"
        name = "ag1"
        cluster_type = "EXTERNAL"
        databases = ["db1"]

        [[replicas]]
        name = "A"
        availability_mode = "SYNCHRONOUS_COMMIT"
        failover_mode = "AUTOMATIC"

        [[replicas]]
        name = "B"
        availability_mode = "SYNCHRONOUS_COMMIT"
        failover_mode = "AUTOMATIC"

        [[replicas]]
        name = "C"
        availability_mode = "ASYNCHRONOUS_COMMIT"
        failover_mode = "MANUAL"
    "#;

    fn base() -> AgConfig {
        AgConfig::from_toml_str(THREE_REPLICAS).expect("the base configuration is valid")
    }

    fn violations_of(config: &AgConfig) -> Vec<LimitViolation> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid(v)) => v,
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn defaults_are_the_rule_books() {
        let config = base();
        assert_eq!(config.required_synchronized_secondaries_to_commit, 0);
        assert_eq!(config.failure_condition_level, 3);
        assert_eq!(config.health_check_timeout_ms, 30_000);
        assert_eq!(config.replicas[1].session_timeout_s, 10);
        assert_eq!(config.replicas[1].backup_priority, 50);
        assert_eq!(config.failover_threshold(), 2);
        assert!(config.lease.is_safe());
    }

    #[test]
    fn toml_and_json_round_trip() {
        let config = base();
        let toml_text = config.to_toml_string();
        assert_eq!(AgConfig::from_toml_str(&toml_text).unwrap(), config);
        let json_text = serde_json::to_string(&config).unwrap();
        assert_eq!(AgConfig::from_json_str(&json_text).unwrap(), config);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let text = THREE_REPLICAS.replace("databases", "databses");
        let err = AgConfig::from_toml_str(&text).unwrap_err();
        assert!(err.to_string().contains("databses"), "{err}");
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let err = AgConfig::from_json_str("{\n  \"name\": 3\n}").unwrap_err();
        match err {
            ConfigError::Json { line, column, .. } => assert_eq!((line, column), (2, 11)),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Every R-LIMIT-1 limit, at its edge: the last allowed value passes, the first refused
    /// one is refused with the variant that names it.
    #[test]
    fn every_r_limit_1_edge_is_enforced() {
        let mut c = base();
        c.name = "x".repeat(MAX_NAME_CHARS);
        assert!(violations_of(&c).is_empty());
        c.name.push('x');
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::AgNameTooLong { chars: 129 }]
        );

        let mut c = base();
        c.replicas[2].session_timeout_s = 5;
        assert!(violations_of(&c).is_empty());
        c.replicas[2].session_timeout_s = 4;
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::SessionTimeoutTooShort {
                replica: "C".into(),
                seconds: 4
            }]
        );

        let mut c = base();
        c.health_check_timeout_ms = 15_000;
        assert!(violations_of(&c).is_empty());
        c.health_check_timeout_ms = 14_999;
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::HealthCheckTimeoutTooShort { ms: 14_999 }]
        );

        let mut c = base();
        c.replicas[0].backup_priority = 100;
        c.replicas[1].backup_priority = 0;
        assert!(violations_of(&c).is_empty());
        c.replicas[0].backup_priority = 101;
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::BackupPriorityOutOfRange {
                replica: "A".into(),
                priority: 101
            }]
        );

        let mut c = base();
        c.required_synchronized_secondaries_to_commit = 2;
        assert!(violations_of(&c).is_empty());
        c.required_synchronized_secondaries_to_commit = 3;
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::RequiredSynchronizedTooHigh {
                required: 3,
                data_replicas: 3
            }]
        );

        let mut c = base();
        let template = c.replicas[2].clone();
        for i in 0..6 {
            let mut r = template.clone();
            r.name = format!("S{i}");
            c.replicas.push(r);
        }
        assert_eq!(c.replicas.len(), 9);
        assert!(violations_of(&c).is_empty());
        let mut r = template;
        r.name = "S9".into();
        c.replicas.push(r);
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::TooManySecondaries { secondaries: 9 }]
        );

        let mut c = base();
        c.replicas.truncate(1);
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::TooFewReplicas { data_replicas: 1 }]
        );
    }

    #[test]
    fn databases_fit_their_one_byte_ids() {
        let mut c = base();
        c.databases = (0..MAX_DATABASES).map(|i| format!("d{i}")).collect();
        assert!(violations_of(&c).is_empty());
        c.databases.push("one_more".into());
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::TooManyDatabases { count: 256 }]
        );
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let mut c = base();
        c.name.clear();
        c.replicas[1].name = "a".into();
        c.replicas[2].session_timeout_s = 1;
        c.failure_condition_level = 0;
        let rules: Vec<&str> = violations_of(&c).iter().map(|v| v.rule()).collect();
        assert_eq!(
            rules,
            vec!["R-LIMIT-1", "R-LIMIT-1", "R-LIMIT-1", "R-FAIL-7"]
        );
    }

    #[test]
    fn modes_follow_r_fail_1_and_r_quorum_5() {
        let mut c = base();
        c.replicas[2].failover_mode = FailoverMode::Automatic;
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::AutomaticFailoverNeedsSynchronousCommit {
                replica: "C".into(),
                failover_mode: FailoverMode::Automatic,
                availability_mode: AvailabilityMode::AsynchronousCommit
            }]
        );

        let mut c = base();
        c.cluster_type = ClusterType::None;
        let v = violations_of(&c);
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| v.rule() == "R-QUORUM-5"));

        let mut c = base();
        c.cluster_type = ClusterType::Wsfc;
        c.replicas[1].failover_mode = FailoverMode::External;
        assert_eq!(violations_of(&c)[0].rule(), "R-FAIL-1");
    }

    /// R-QUORUM-3: a lease that could outlive the manager's failure detection is refused.
    #[test]
    fn unsafe_lease_is_refused() {
        let mut c = base();
        c.lease.validity_ms = 19_500;
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::LeaseOutlivesFailureDetection {
                validity_ms: 19_500,
                clock_drift_margin_ms: 500,
                ttl_ms: 20_000
            }]
        );
        c.lease.validity_ms = 19_499;
        assert!(violations_of(&c).is_empty());
        c.cluster_type = ClusterType::None;
        c.replicas[0].failover_mode = FailoverMode::Manual;
        c.replicas[1].failover_mode = FailoverMode::Manual;
        c.lease.validity_ms = 50_000;
        assert!(violations_of(&c).is_empty(), "NONE has no lease to check");
    }

    #[test]
    fn r_fail_8_counts_are_parameters() {
        let mut c = base();
        c.policy.max_automatic_failover_replicas = 1;
        c.policy.max_synchronous_commit_replicas = 1;
        let rules: Vec<&str> = violations_of(&c).iter().map(|v| v.rule()).collect();
        assert_eq!(rules, vec!["R-FAIL-8", "R-FAIL-8"]);
    }

    /// R-READ-3: routing lists name replicas of the group that have a routing URL.
    #[test]
    fn routing_lists_follow_r_read_3() {
        let text = THREE_REPLICAS.replace(
            "failover_mode = \"MANUAL\"",
            "failover_mode = \"MANUAL\"\nsecondary_role = { allow_connections = \"READ_ONLY\", read_only_routing_url = \"tcp://c:1433\" }",
        ) + "\n[replicas.primary_role]\nread_only_routing_list = [[\"C\", \"B\"], \"D\", \"C\"]\n";
        let c: AgConfig = toml::from_str(&text).unwrap();
        assert_eq!(
            c.replicas[2].primary_role.read_only_routing_list,
            vec![
                RoutingEntry::Group(vec!["C".into(), "B".into()]),
                RoutingEntry::Replica("D".into()),
                RoutingEntry::Replica("C".into()),
            ]
        );
        let rules: Vec<String> = violations_of(&c).iter().map(|v| v.to_string()).collect();
        assert_eq!(
            rules,
            vec![
                "the READ_ONLY_ROUTING_LIST of replica 'C' names 'B', which has no READ_ONLY_ROUTING_URL; give it SECONDARY_ROLE (READ_ONLY_ROUTING_URL = '…')",
                "the READ_ONLY_ROUTING_LIST of replica 'C' names 'D', which is not a replica of this availability group",
                "the READ_ONLY_ROUTING_LIST of replica 'C' names 'C' more than once",
            ]
        );
        let toml_text = c.to_toml_string();
        assert_eq!(
            toml::from_str::<AgConfig>(&toml_text).unwrap(),
            c,
            "round trip"
        );
    }

    #[test]
    fn configuration_only_replicas_follow_r_quorum_6() {
        let mut c = base();
        let mut witness = c.replicas[2].clone();
        witness.name = "W".into();
        witness.availability_mode = AvailabilityMode::ConfigurationOnly;
        c.replicas.push(witness.clone());
        assert!(violations_of(&c).is_empty());
        witness.name = "W2".into();
        c.replicas.push(witness);
        assert_eq!(
            violations_of(&c),
            vec![LimitViolation::TooManyConfigurationOnlyReplicas { count: 2 }]
        );
        c.replicas.pop();
        c.cluster_type = ClusterType::Wsfc;
        assert_eq!(violations_of(&c)[0].rule(), "R-QUORUM-6");
    }
}
