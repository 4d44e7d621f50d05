//! [`Observation`]: what can be seen of an availability group from outside, at one instant.
//!
//! It mirrors the `sys.dm_hadr_availability_replica_states` and
//! `sys.dm_hadr_database_replica_states` views (R-HEALTH-2) plus the client outcomes. The spec
//! projects each of its states onto an observation; the conformance harness reads one from the
//! system under test and asks whether the spec can be in a state that projects onto it.

use crate::vocabulary::{
    DatabaseId, DatabaseState, Lsn, ReplicaId, Role, SuspendReason, SyncState, TxnId,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The whole availability group at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Observation {
    /// One entry per replica, in configuration order.
    pub replicas: Vec<ReplicaObservation>,
    /// Every transaction a client submitted, in submission order.
    pub transactions: Vec<TransactionObservation>,
}

/// One replica, as `sys.dm_hadr_availability_replica_states` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaObservation {
    /// The replica.
    pub replica: ReplicaId,
    /// Whether its server process is running.
    pub up: bool,
    /// Its role; `None` while it is down.
    pub role: Option<Role>,
    /// One entry per availability database, in configuration order.
    pub databases: Vec<DatabaseObservation>,
}

/// One database on one replica, as `sys.dm_hadr_database_replica_states` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatabaseObservation {
    /// The database.
    pub database: DatabaseId,
    /// ONLINE when joined to the group, RESTORING when not (R-DB-2/4).
    pub database_state: DatabaseState,
    /// Synchronization state of a secondary database; `None` on the primary and while down.
    pub synchronization_state: Option<SyncState>,
    /// Why the database is suspended, if it is.
    pub suspended: Option<SuspendReason>,
    /// Last LSN in its log (received, on a secondary).
    pub end_of_log_lsn: Lsn,
    /// Last LSN hardened to stable storage.
    pub last_hardened_lsn: Lsn,
    /// Last LSN redone into the data.
    pub last_redone_lsn: Lsn,
    /// Whether the cluster manager records it as failover-ready (SYNCHRONIZED, R-FAIL-2).
    pub is_failover_ready: bool,
}

/// One client transaction and what its client was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransactionObservation {
    /// The transaction.
    pub txn: TxnId,
    /// The database it wrote.
    pub database: DatabaseId,
    /// What the client was told (R-COMMIT-7).
    pub outcome: CommitOutcome,
}

/// What a client was told about its commit (R-COMMIT-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum CommitOutcome {
    /// No answer yet.
    Pending,
    /// Committed: durable as R-COMMIT-6 says.
    Acknowledged,
    /// Not committed, and never will be.
    DefiniteError(DefiniteReason),
    /// The outcome is unknown (e.g. the connection was lost during a failover).
    Indefinite,
}

/// Why a commit was refused with a definite error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefiniteReason {
    /// No replica could accept a write (no primary, or the primary has no lease).
    NoPrimary,
    /// Fewer secondaries are SYNCHRONIZED than REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT
    /// (R-COMMIT-5).
    TooFewSynchronized,
    /// The database is not (or no longer) an availability database of the group (R-DB-4).
    NotInGroup,
}

impl fmt::Display for CommitOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitOutcome::Pending => f.write_str("pending"),
            CommitOutcome::Acknowledged => f.write_str("acknowledged"),
            CommitOutcome::DefiniteError(DefiniteReason::NoPrimary) => {
                f.write_str("definite error (no primary)")
            }
            CommitOutcome::DefiniteError(DefiniteReason::TooFewSynchronized) => {
                f.write_str("definite error (too few synchronized secondaries)")
            }
            CommitOutcome::DefiniteError(DefiniteReason::NotInGroup) => {
                f.write_str("definite error (not an availability database)")
            }
            CommitOutcome::Indefinite => f.write_str("indefinite error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialize_with_their_reason() {
        let refused = CommitOutcome::DefiniteError(DefiniteReason::TooFewSynchronized);
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"outcome":"definite_error","reason":"too_few_synchronized"}"#
        );
        assert_eq!(
            serde_json::to_string(&CommitOutcome::Acknowledged).unwrap(),
            r#"{"outcome":"acknowledged"}"#
        );
    }
}
