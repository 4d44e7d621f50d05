//! The typed commands that `ALTER AVAILABILITY GROUP` and `ALTER DATABASE … SET HADR`
//! statements become, for an admin API to carry out. They hold values as written: the admin
//! API validates the configuration that results from applying them.

use crate::config::{AgConfig, ReplicaConfig, RoutingEntry};
use crate::vocabulary::{
    AvailabilityMode, BackupPreference, FailoverMode, PrimaryConnections, SecondaryConnections,
    SeedingMode,
};
use serde::{Deserialize, Serialize};

/// `ALTER AVAILABILITY GROUP ag …`: one action on the availability group `ag`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgCommand {
    /// The availability group the statement names.
    pub ag: String,
    /// What to do to it.
    pub action: AgAction,
}

/// The action of an `ALTER AVAILABILITY GROUP` statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgAction {
    /// `FAILOVER`: planned manual failover to the replica the statement runs on (R-FAIL-3).
    Failover,
    /// `FORCE_FAILOVER_ALLOW_DATA_LOSS`: forced failover to the replica the statement runs on
    /// (R-FAIL-4).
    ForceFailoverAllowDataLoss,
    /// `SET (ROLE = SECONDARY)`: demote the primary of a CLUSTER_TYPE = NONE group (R-QUORUM-5).
    SetRoleSecondary,
    /// `SET (option = value)`: change one availability-group option.
    Set(AgSetting),
    /// `ADD DATABASE db` (R-DB-1).
    AddDatabase(String),
    /// `REMOVE DATABASE db` (R-DB-4).
    RemoveDatabase(String),
    /// `ADD REPLICA ON 'X' WITH (…)`: a new secondary replica.
    AddReplica(ReplicaConfig),
    /// `REMOVE REPLICA ON 'X'` (R-DB-4).
    RemoveReplica(String),
    /// `MODIFY REPLICA ON 'X' WITH (option = value)`: change one option of one replica.
    ModifyReplica {
        /// The replica, as named in the statement.
        replica: String,
        /// The option and its new value.
        change: ReplicaChange,
    },
}

/// An availability-group option that `ALTER AVAILABILITY GROUP … SET` changes. CLUSTER_TYPE is
/// not one: SQL Server fixes it at CREATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgSetting {
    /// `AUTOMATED_BACKUP_PREFERENCE` (R-BACKUP-4).
    AutomatedBackupPreference(BackupPreference),
    /// `FAILURE_CONDITION_LEVEL` (R-FAIL-7).
    FailureConditionLevel(u8),
    /// `HEALTH_CHECK_TIMEOUT`, in milliseconds (R-FAIL-7).
    HealthCheckTimeoutMs(u32),
    /// `DB_FAILOVER = ON | OFF` (R-FAIL-7).
    DbFailover(bool),
    /// `REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT` (R-COMMIT-5).
    RequiredSynchronizedSecondariesToCommit(u32),
}

impl AgSetting {
    /// Writes the new value into `config` (without validating the result).
    pub fn apply(self, config: &mut AgConfig) {
        match self {
            AgSetting::AutomatedBackupPreference(v) => config.automated_backup_preference = v,
            AgSetting::FailureConditionLevel(v) => config.failure_condition_level = v,
            AgSetting::HealthCheckTimeoutMs(v) => config.health_check_timeout_ms = v,
            AgSetting::DbFailover(v) => config.db_failover = v,
            AgSetting::RequiredSynchronizedSecondariesToCommit(v) => {
                config.required_synchronized_secondaries_to_commit = v
            }
        }
    }
}

/// One replica option and its new value: what `MODIFY REPLICA ON 'X' WITH (…)` changes, and
/// each option of a replica's WITH list in CREATE and ADD REPLICA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaChange {
    /// `ENDPOINT_URL = '…'`.
    EndpointUrl(String),
    /// `AVAILABILITY_MODE` (R-COMMIT-1).
    AvailabilityMode(AvailabilityMode),
    /// `FAILOVER_MODE` (R-FAIL-1).
    FailoverMode(FailoverMode),
    /// `SEEDING_MODE` (R-DB-2).
    SeedingMode(SeedingMode),
    /// `BACKUP_PRIORITY` (R-BACKUP-4).
    BackupPriority(u32),
    /// `SESSION_TIMEOUT`, in seconds (R-COMMIT-4).
    SessionTimeoutS(u32),
    /// `SECONDARY_ROLE (ALLOW_CONNECTIONS = …)` (R-READ-1).
    SecondaryAllowConnections(SecondaryConnections),
    /// `SECONDARY_ROLE (READ_ONLY_ROUTING_URL = '…')` (R-READ-3).
    ReadOnlyRoutingUrl(String),
    /// `PRIMARY_ROLE (ALLOW_CONNECTIONS = …)` (R-READ-1).
    PrimaryAllowConnections(PrimaryConnections),
    /// `PRIMARY_ROLE (READ_ONLY_ROUTING_LIST = (…) | NONE)` (R-READ-3); NONE is empty.
    ReadOnlyRoutingList(Vec<RoutingEntry>),
    /// `PRIMARY_ROLE (READ_WRITE_ROUTING_URL = '…')` (R-READ-3).
    ReadWriteRoutingUrl(String),
}

impl ReplicaChange {
    /// Writes the new value into `replica` (without validating the result).
    pub fn apply(self, replica: &mut ReplicaConfig) {
        match self {
            ReplicaChange::EndpointUrl(v) => replica.endpoint_url = Some(v),
            ReplicaChange::AvailabilityMode(v) => replica.availability_mode = v,
            ReplicaChange::FailoverMode(v) => replica.failover_mode = v,
            ReplicaChange::SeedingMode(v) => replica.seeding_mode = v,
            ReplicaChange::BackupPriority(v) => replica.backup_priority = v,
            ReplicaChange::SessionTimeoutS(v) => replica.session_timeout_s = v,
            ReplicaChange::SecondaryAllowConnections(v) => {
                replica.secondary_role.allow_connections = v
            }
            ReplicaChange::ReadOnlyRoutingUrl(v) => {
                replica.secondary_role.read_only_routing_url = Some(v)
            }
            ReplicaChange::PrimaryAllowConnections(v) => replica.primary_role.allow_connections = v,
            ReplicaChange::ReadOnlyRoutingList(v) => {
                replica.primary_role.read_only_routing_list = v
            }
            ReplicaChange::ReadWriteRoutingUrl(v) => {
                replica.primary_role.read_write_routing_url = Some(v)
            }
        }
    }
}

/// `ALTER DATABASE db SET HADR …`: one action on the availability database `db` of the replica
/// the statement runs on. Only joining names an availability group; the others act on whichever
/// group the database is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseCommand {
    /// The database the statement names.
    pub database: String,
    /// What to do to it.
    pub action: HadrAction,
}

/// The action of an `ALTER DATABASE … SET HADR` statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HadrAction {
    /// `SET HADR AVAILABILITY GROUP = ag`: join a restored secondary database to `ag` (R-DB-2).
    Join {
        /// The availability group joined.
        ag: String,
    },
    /// `SET HADR OFF`: take the database out of its availability group (R-DB-4).
    Leave,
    /// `SET HADR SUSPEND`: stop data movement (R-SYNC-7).
    Suspend,
    /// `SET HADR RESUME`: restart data movement (R-SYNC-7).
    Resume,
}
