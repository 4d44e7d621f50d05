//! [`PersistentState`]: the metadata that must survive a restart beside the log (the analogue of
//! Raft's hard state). The log itself is persisted through `AppendLog`/`Fsync`/`RevertLog`.

use crate::ids::Epoch;
use crate::log::ForkSegment;
use hadr_types::{AgConfig, Lsn, ReplicaId, Role, SuspendReason, TxnId};
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentDatabase {
    /// Whether, and why, the database is suspended (R-SYNC-7, R-FAIL-4).
    pub suspended: Option<SuspendReason>,
    /// The epoch whose primary suspended it (a RESUME accepts that history).
    pub suspended_by_epoch: Epoch,
    /// The latest epoch whose history this database accepted.
    pub accepted_epoch: Epoch,
    /// The log was found damaged at a restart and the copy is short of records it held
    /// (SUSPECT until reseeded or accepted). Set by the shell when its recovery finds damage
    /// (durably, before it cuts anything); cleared by the core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<LogDamage>,
    /// The log up to here is in the shell's data file (a checkpoint the shell reported,
    /// [`StorageEvent::Checkpointed`](crate::StorageEvent::Checkpointed)), and every data
    /// replica held it: recovery takes the log records after it only (the log file may still
    /// hold older ones, which are skipped), and reads keys not written since from the data
    /// file.
    #[serde(default)]
    pub checkpointed: Lsn,
    /// The fork history of the log up to `checkpointed`: one segment per epoch, as
    /// [`fork_history`](crate::log::fork_history) gives it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpointed_forks: Vec<ForkSegment>,
    /// The transaction ids committed up to `checkpointed`, as inclusive ranges in increasing
    /// order: ids are never reused on a database (R-COMMIT-7), checkpointed or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpointed_txns: Vec<(TxnId, TxnId)>,
}

impl PersistentDatabase {
    /// Records damage a shell's recovery found in this database's log, merged with damage
    /// recorded before and not repaired yet ([`LogDamage::merge`]).
    pub fn record_damage(&mut self, found: LogDamage) {
        self.damaged = Some(self.damaged.map_or(found, |earlier| earlier.merge(found)));
    }
}

/// What a damaged log lost: it held records up to `lost_through`, and only the prefix up to
/// `kept` could be read back intact when the damage was found. Such a copy is never led (it
/// could lack acknowledged commits) until it holds a primary's log past `lost_through` again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogDamage {
    /// The intact prefix ended here when the damage was found (the log has moved on since
    /// if the copy is being reseeded).
    pub kept: Lsn,
    /// The highest LSN the damaged log held (`> kept`).
    pub lost_through: Lsn,
}

impl LogDamage {
    /// Both damages in one (a second damage found before the first was repaired): the earlier
    /// damage point, the higher LSN held.
    pub fn merge(self, other: LogDamage) -> LogDamage {
        LogDamage {
            kept: self.kept.min(other.kept),
            lost_through: self.lost_through.max(other.lost_through),
        }
    }
}
