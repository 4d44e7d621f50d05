//! The words of the rule book (`docs/rules.md`): identifiers, LSNs, roles, synchronization states
//! and the modes an availability replica is configured with.
//!
//! Enum values serialize as the T-SQL keywords they stand for (`SYNCHRONOUS_COMMIT`,
//! `NOT_SYNCHRONIZING` …); lower-case spellings are accepted on input.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An availability replica, by its position in [`AgConfig::replicas`](crate::AgConfig).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ReplicaId(pub u8);

/// An availability database, by its position in [`AgConfig::databases`](crate::AgConfig).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct DatabaseId(pub u8);

/// A client transaction, numbered in the order clients submitted them (from 1).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TxnId(pub u32);

/// Log sequence number: the position of a record in a database's transaction log.
///
/// The spec numbers records by their ordinal position: the first record has LSN 1, and
/// `Lsn(0)` means "before the first record" (an empty log). Implementations that use other
/// LSNs report ordinal positions in their observations.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replica#{}", self.0)
    }
}

impl fmt::Display for DatabaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database#{}", self.0)
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}", self.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Role of an availability replica (R-ROLE-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Accepts read-write connections and commits transactions (R-ROLE-3).
    #[serde(rename = "PRIMARY", alias = "primary")]
    Primary,
    /// Hosts read-only (or unreadable) copies of the databases.
    #[serde(rename = "SECONDARY", alias = "secondary")]
    Secondary,
    /// The role is indeterminate: during failover, after lease expiry or quorum loss, AG offline.
    #[serde(rename = "RESOLVING", alias = "resolving")]
    Resolving,
}

impl Role {
    /// The T-SQL spelling, as `sys.dm_hadr_availability_replica_states.role_desc` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "PRIMARY",
            Role::Secondary => "SECONDARY",
            Role::Resolving => "RESOLVING",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Synchronization state of a secondary database (R-SYNC-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SyncState {
    /// Not moving data: disconnected, suspended, role change, RESOLVING.
    #[serde(rename = "NOT_SYNCHRONIZING", alias = "not_synchronizing")]
    NotSynchronizing,
    /// Moving data, not caught up, or asynchronous-commit.
    #[serde(rename = "SYNCHRONIZING", alias = "synchronizing")]
    Synchronizing,
    /// Synchronous-commit only: hardened log caught up with the primary; failover-ready.
    #[serde(rename = "SYNCHRONIZED", alias = "synchronized")]
    Synchronized,
    /// Undoing log beyond the fork point after a failover to another history.
    #[serde(rename = "REVERTING", alias = "reverting")]
    Reverting,
    /// Receiving the log it needs from the new primary after a revert.
    #[serde(rename = "INITIALIZING", alias = "initializing")]
    Initializing,
}

impl SyncState {
    /// The T-SQL spelling, as `synchronization_state_desc` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::NotSynchronizing => "NOT_SYNCHRONIZING",
            SyncState::Synchronizing => "SYNCHRONIZING",
            SyncState::Synchronized => "SYNCHRONIZED",
            SyncState::Reverting => "REVERTING",
            SyncState::Initializing => "INITIALIZING",
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health of a database or replica (R-SYNC-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SynchronizationHealth {
    /// NOT SYNCHRONIZING.
    #[serde(rename = "NOT_HEALTHY", alias = "not_healthy")]
    NotHealthy,
    /// A synchronous-commit database that is SYNCHRONIZING.
    #[serde(rename = "PARTIALLY_HEALTHY", alias = "partially_healthy")]
    PartiallyHealthy,
    /// SYNCHRONIZED (sync), or SYNCHRONIZING (async).
    #[serde(rename = "HEALTHY", alias = "healthy")]
    Healthy,
}

impl SynchronizationHealth {
    /// R-SYNC-8: the health of one secondary database from its state and whether it commits
    /// synchronously with the primary.
    pub fn of(state: SyncState, synchronous: bool) -> Self {
        match state {
            SyncState::Synchronized => SynchronizationHealth::Healthy,
            SyncState::Synchronizing if !synchronous => SynchronizationHealth::Healthy,
            SyncState::Synchronizing => SynchronizationHealth::PartiallyHealthy,
            SyncState::NotSynchronizing | SyncState::Reverting | SyncState::Initializing => {
                SynchronizationHealth::NotHealthy
            }
        }
    }
}

/// Why a database is suspended (`suspend_reason_desc`, R-SYNC-7 and R-FAIL-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SuspendReason {
    /// `ALTER DATABASE … SET HADR SUSPEND` by an operator.
    #[serde(rename = "SUSPEND_FROM_USER", alias = "user")]
    User,
    /// The primary database was suspended, so data movement to this secondary stopped.
    #[serde(rename = "SUSPEND_FROM_PRIMARY", alias = "primary")]
    Primary,
    /// A forced failover moved the AG to another history; resume to revert to the fork point.
    #[serde(rename = "SUSPEND_FROM_PARTNER", alias = "partner")]
    Partner,
    /// Redo stopped at a page it cannot read, until automatic page repair replaces it
    /// (R-PAGE-1).
    #[serde(rename = "SUSPEND_FROM_REDO", alias = "redo")]
    Redo,
}

impl SuspendReason {
    /// The T-SQL spelling of `suspend_reason_desc`.
    pub fn as_str(self) -> &'static str {
        match self {
            SuspendReason::User => "SUSPEND_FROM_USER",
            SuspendReason::Primary => "SUSPEND_FROM_PRIMARY",
            SuspendReason::Partner => "SUSPEND_FROM_PARTNER",
            SuspendReason::Redo => "SUSPEND_FROM_REDO",
        }
    }
}

impl fmt::Display for SuspendReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `AVAILABILITY_MODE` of a replica (R-COMMIT-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AvailabilityMode {
    /// Commits wait for this replica's hardening once it is SYNCHRONIZED.
    #[serde(rename = "SYNCHRONOUS_COMMIT", alias = "synchronous_commit")]
    SynchronousCommit,
    /// Commits never wait for this replica.
    #[serde(rename = "ASYNCHRONOUS_COMMIT", alias = "asynchronous_commit")]
    AsynchronousCommit,
    /// Holds no data, votes, can never be primary (R-QUORUM-6; EXTERNAL and NONE only).
    #[serde(rename = "CONFIGURATION_ONLY", alias = "configuration_only")]
    ConfigurationOnly,
}

impl AvailabilityMode {
    /// The T-SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            AvailabilityMode::SynchronousCommit => "SYNCHRONOUS_COMMIT",
            AvailabilityMode::AsynchronousCommit => "ASYNCHRONOUS_COMMIT",
            AvailabilityMode::ConfigurationOnly => "CONFIGURATION_ONLY",
        }
    }
}

impl fmt::Display for AvailabilityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `FAILOVER_MODE` of a replica (R-FAIL-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FailoverMode {
    /// The cluster may fail over to this replica without an operator (needs SYNCHRONOUS_COMMIT).
    #[serde(rename = "AUTOMATIC", alias = "automatic")]
    Automatic,
    /// Only an operator fails over to this replica.
    #[serde(rename = "MANUAL", alias = "manual")]
    Manual,
    /// An external cluster manager decides (CLUSTER_TYPE = EXTERNAL only).
    #[serde(rename = "EXTERNAL", alias = "external")]
    External,
}

impl FailoverMode {
    /// The T-SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverMode::Automatic => "AUTOMATIC",
            FailoverMode::Manual => "MANUAL",
            FailoverMode::External => "EXTERNAL",
        }
    }

    /// Whether a cluster manager may promote a replica with this mode on its own (R-FAIL-2).
    pub fn allows_automatic_failover(self) -> bool {
        matches!(self, FailoverMode::Automatic | FailoverMode::External)
    }
}

impl fmt::Display for FailoverMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `CLUSTER_TYPE` of an availability group (R-QUORUM-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClusterType {
    /// Windows Server Failover Cluster.
    #[serde(rename = "WSFC", alias = "wsfc")]
    Wsfc,
    /// An external cluster manager (Pacemaker; here etcd) decides; automatic failover possible.
    #[serde(rename = "EXTERNAL", alias = "external")]
    External,
    /// Read-scale: no manager, no automatic failover, manual and forced failover only.
    #[serde(rename = "NONE", alias = "none")]
    None,
}

impl ClusterType {
    /// The T-SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterType::Wsfc => "WSFC",
            ClusterType::External => "EXTERNAL",
            ClusterType::None => "NONE",
        }
    }

    /// Whether a cluster manager with quorum and leases governs the AG.
    pub fn has_manager(self) -> bool {
        !matches!(self, ClusterType::None)
    }
}

impl fmt::Display for ClusterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of the primary that the flexible failover policy weighs (R-FAIL-7).
///
/// The policy's `FAILURE_CONDITION_LEVEL` is cumulative: a condition triggers automatic failover
/// when its [`level`](Self::level) is at most the configured level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FailureCondition {
    /// Level 1: the server is down or its lease expired.
    #[serde(rename = "SERVER_DOWN", alias = "server_down")]
    ServerDown,
    /// Level 2: no answer within HEALTH_CHECK_TIMEOUT, or the replica is in a failed state.
    #[serde(rename = "UNRESPONSIVE", alias = "unresponsive")]
    Unresponsive,
    /// Level 3: a critical internal error (e.g. orphaned spinlock, write-access violation).
    #[serde(rename = "CRITICAL_ERROR", alias = "critical_error")]
    CriticalError,
    /// Level 4: a moderate error (e.g. persistent out-of-memory).
    #[serde(rename = "MODERATE_ERROR", alias = "moderate_error")]
    ModerateError,
    /// Level 5: any qualified failure condition.
    #[serde(rename = "QUALIFIED_FAILURE", alias = "qualified_failure")]
    QualifiedFailure,
}

impl FailureCondition {
    /// All conditions, from the most to the least severe.
    pub const ALL: [FailureCondition; 5] = [
        FailureCondition::ServerDown,
        FailureCondition::Unresponsive,
        FailureCondition::CriticalError,
        FailureCondition::ModerateError,
        FailureCondition::QualifiedFailure,
    ];

    /// The lowest FAILURE_CONDITION_LEVEL at which this condition triggers a failover.
    pub fn level(self) -> u8 {
        match self {
            FailureCondition::ServerDown => 1,
            FailureCondition::Unresponsive => 2,
            FailureCondition::CriticalError => 3,
            FailureCondition::ModerateError => 4,
            FailureCondition::QualifiedFailure => 5,
        }
    }

    /// The rule book's words for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCondition::ServerDown => "server down",
            FailureCondition::Unresponsive => "unresponsive past HEALTH_CHECK_TIMEOUT",
            FailureCondition::CriticalError => "critical internal error",
            FailureCondition::ModerateError => "moderate error",
            FailureCondition::QualifiedFailure => "qualified failure",
        }
    }
}

impl fmt::Display for FailureCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `database_state_desc` of a database on a replica (R-DB-2/4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DatabaseState {
    /// Joined to the availability group and usable in its role.
    #[serde(rename = "ONLINE", alias = "online")]
    Online,
    /// Restored WITH NORECOVERY and not joined (or removed from the group).
    #[serde(rename = "RESTORING", alias = "restoring")]
    Restoring,
    /// Its log was found damaged at recovery (a record that fails its checksum with valid
    /// records after it): not online, never led, until it is reseeded from a primary or an
    /// operator accepts the loss.
    #[serde(rename = "SUSPECT", alias = "suspect")]
    Suspect,
}

/// `log_reuse_wait_desc` of a database on a replica: what keeps the log after the last
/// checkpoint from being truncated (R-SYNC-7). More reasons come with more features (log
/// backups add `LOG_BACKUP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LogReuseWait {
    /// Nothing: the log holds no record after the last checkpoint.
    #[serde(rename = "NOTHING", alias = "nothing")]
    Nothing,
    /// The records after the last checkpoint wait for the next one (the checkpoint interval
    /// was not reached, or a checkpoint is being written).
    #[serde(rename = "CHECKPOINT", alias = "checkpoint")]
    Checkpoint,
    /// A data replica of the group has not hardened them yet (lagging, suspended or
    /// disconnected): they may still have to be shipped to it, or be its fork point.
    #[serde(rename = "AVAILABILITY_REPLICA", alias = "availability_replica")]
    AvailabilityReplica,
}

impl fmt::Display for LogReuseWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogReuseWait::Nothing => "NOTHING",
            LogReuseWait::Checkpoint => "CHECKPOINT",
            LogReuseWait::AvailabilityReplica => "AVAILABILITY_REPLICA",
        })
    }
}

/// `SEEDING_MODE` of a replica (R-DB-2 **\[param\]**): how a secondary database gets its
/// first copy.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum SeedingMode {
    /// An operator restores a backup WITH NORECOVERY, then joins the database.
    #[default]
    #[serde(rename = "MANUAL", alias = "manual")]
    Manual,
    /// The primary streams the database to the secondary (automatic seeding).
    #[serde(rename = "AUTOMATIC", alias = "automatic")]
    Automatic,
}

/// `SECONDARY_ROLE (ALLOW_CONNECTIONS = …)` (R-READ-1).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum SecondaryConnections {
    /// No connections to the secondary databases (the default).
    #[default]
    #[serde(rename = "NO", alias = "no")]
    No,
    /// Only connections with ApplicationIntent=ReadOnly.
    #[serde(rename = "READ_ONLY", alias = "read_only")]
    ReadOnly,
    /// Any connection, for reads only.
    #[serde(rename = "ALL", alias = "all")]
    All,
}

/// `PRIMARY_ROLE (ALLOW_CONNECTIONS = …)` (R-READ-1).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum PrimaryConnections {
    /// Every connection (the default).
    #[default]
    #[serde(rename = "ALL", alias = "all")]
    All,
    /// Read-write connections only: read-intent connections are refused.
    #[serde(rename = "READ_WRITE", alias = "read_write")]
    ReadWrite,
}

/// `ApplicationIntent` of a client connection (R-READ-1/3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ApplicationIntent {
    /// `ApplicationIntent=ReadWrite` (the default of clients).
    #[serde(rename = "READ_WRITE", alias = "read_write")]
    ReadWrite,
    /// `ApplicationIntent=ReadOnly`.
    #[serde(rename = "READ_ONLY", alias = "read_only")]
    ReadOnly,
}

/// `AUTOMATED_BACKUP_PREFERENCE` (R-BACKUP-4).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum BackupPreference {
    /// Back up on the primary.
    #[serde(rename = "PRIMARY", alias = "primary")]
    Primary,
    /// Back up on a secondary, never on the primary.
    #[serde(rename = "SECONDARY_ONLY", alias = "secondary_only")]
    SecondaryOnly,
    /// Back up on a secondary; on the primary only if it is the only replica online (default).
    #[default]
    #[serde(rename = "SECONDARY", alias = "secondary")]
    Secondary,
    /// The role does not matter; only BACKUP_PRIORITY does.
    #[serde(rename = "NONE", alias = "none")]
    None,
}

impl BackupPreference {
    /// The T-SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupPreference::Primary => "PRIMARY",
            BackupPreference::SecondaryOnly => "SECONDARY_ONLY",
            BackupPreference::Secondary => "SECONDARY",
            BackupPreference::None => "NONE",
        }
    }
}

/// How `fn_hadr_backup_is_preferred_replica` breaks a tie between eligible replicas of the
/// same BACKUP_PRIORITY (R-BACKUP-5 **\[param\]**).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BackupTieBreak {
    /// The replica whose name sorts first, case-insensitively (the default).
    #[default]
    LowestReplicaName,
    /// The replica listed first in the configuration.
    ConfigurationOrder,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_through_serde() {
        let mode: AvailabilityMode = serde_json::from_str("\"SYNCHRONOUS_COMMIT\"").unwrap();
        assert_eq!(mode, AvailabilityMode::SynchronousCommit);
        let mode: AvailabilityMode = serde_json::from_str("\"asynchronous_commit\"").unwrap();
        assert_eq!(mode, AvailabilityMode::AsynchronousCommit);
        assert_eq!(
            serde_json::to_string(&SyncState::NotSynchronizing).unwrap(),
            "\"NOT_SYNCHRONIZING\""
        );
        assert!(serde_json::from_str::<Role>("\"LEADER\"").is_err());
    }

    /// R-SYNC-8: health follows the state and the commit mode.
    #[test]
    fn health_follows_rule_r_sync_8() {
        use SynchronizationHealth::*;
        assert_eq!(
            SynchronizationHealth::of(SyncState::Synchronized, true),
            Healthy
        );
        assert_eq!(
            SynchronizationHealth::of(SyncState::Synchronizing, true),
            PartiallyHealthy
        );
        assert_eq!(
            SynchronizationHealth::of(SyncState::Synchronizing, false),
            Healthy
        );
        assert_eq!(
            SynchronizationHealth::of(SyncState::NotSynchronizing, false),
            NotHealthy
        );
        assert_eq!(
            SynchronizationHealth::of(SyncState::Reverting, true),
            NotHealthy
        );
    }

    /// R-FAIL-7: the levels are cumulative, 1 (server down) to 5 (any qualified failure).
    #[test]
    fn failure_condition_levels_are_one_to_five_in_order() {
        let levels: Vec<u8> = FailureCondition::ALL.iter().map(|c| c.level()).collect();
        assert_eq!(levels, vec![1, 2, 3, 4, 5]);
    }
}
