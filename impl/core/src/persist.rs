//! [`PersistentState`]: the metadata that must survive a restart beside the log (the analogue of
//! Raft's hard state). The log itself is persisted through `AppendLog`/`Fsync`/`RevertLog`.

use crate::ids::Epoch;
use hadr_types::{AgConfig, ReplicaId, Role, SuspendReason};
use serde::{Deserialize, Serialize};

/// What [`Output::PersistState`](crate::Output::PersistState) asks the shell to store durably,
/// and what [`Replica::recover`](crate::Replica::recover) takes back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentState {
    /// The configuration, including changes of REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT.
    pub config: AgConfig,
    /// This replica.
    pub replica: ReplicaId,
    /// Its role when stored (PRIMARY survives a restart only with `CLUSTER_TYPE = NONE`).
    pub role: Role,
    /// The epoch of the primary it leads or follows. Never reused for a new epoch.
    pub epoch: Epoch,
    /// The latest epoch started by a forced failover that this replica knows of.
    pub last_forced_epoch: Epoch,
    /// One entry per database, in configuration order.
    pub databases: Vec<PersistentDatabase>,
}

/// The durable per-database metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentDatabase {
    /// Whether, and why, the database is suspended (R-SYNC-7, R-FAIL-4).
    pub suspended: Option<SuspendReason>,
    /// The epoch whose primary suspended it (a RESUME accepts that history).
    pub suspended_by_epoch: Epoch,
    /// The latest epoch whose history this database accepted.
    pub accepted_epoch: Epoch,
}
