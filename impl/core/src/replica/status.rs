//! What a replica shows of itself (R-HEALTH-2): the `sys.dm_hadr_*`-like [`ReplicaStatus`]
//! (serializable to JSON) and the [`ReplicaObservation`] the conformance harness compares.

use super::{Core, Replica};
use crate::ids::Epoch;
use crate::log::ForkSegment;
use crate::persist::LogDamage;
use hadr_types::{
    ClusterType, CommitOutcome, DatabaseId, DatabaseObservation, DatabaseState, LogReuseWait, Lsn,
    ReplicaId, ReplicaObservation, Role, SuspendReason, SyncState, SynchronizationHealth,
    TransactionObservation,
};
use serde::Serialize;

/// `sys.dm_hadr_availability_replica_states` of this replica, with its databases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaStatus {
    /// This replica.
    pub replica: ReplicaId,
    /// Its server instance name.
    pub name: String,
    /// The availability group.
    pub ag_name: String,
    /// `role_desc`.
    pub role: Role,
    /// The epoch of the primary it leads or follows.
    pub epoch: Epoch,
    /// The primary it knows of.
    pub primary: Option<ReplicaId>,
    /// `CLUSTER_TYPE`.
    pub cluster_type: ClusterType,
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT as this replica knows it.
    pub required_synchronized_secondaries_to_commit: u32,
    /// The end of the primary's lease (with a cluster manager).
    pub lease_until_ms: Option<u64>,
    /// `synchronization_health_desc`: the worst of its databases' (R-SYNC-8).
    pub synchronization_health: SynchronizationHealth,
    /// `connected_state_desc` of each other replica.
    pub peers: Vec<PeerStatus>,
    /// `sys.dm_hadr_database_replica_states` of each local database.
    pub databases: Vec<DatabaseStatus>,
}

/// `connected_state_desc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ConnectedState {
    /// Connected and handshaken.
    #[serde(rename = "CONNECTED")]
    Connected,
    /// No session.
    #[serde(rename = "DISCONNECTED")]
    Disconnected,
}

/// Another replica, as this one sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// The replica.
    pub replica: ReplicaId,
    /// Its name.
    pub name: String,
    /// The session state.
    pub connected_state: ConnectedState,
    /// The role its last handshake announced.
    pub role: Option<Role>,
}

/// One local database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatabaseStatus {
    /// The database.
    pub database: DatabaseId,
    /// Its name.
    pub name: String,
    /// `synchronization_state_desc`; `None` on the primary.
    pub synchronization_state: Option<SyncState>,
    /// `synchronization_health_desc` (R-SYNC-8); on the primary, the worst of its secondaries'.
    pub synchronization_health: SynchronizationHealth,
    /// `is_suspended` + `suspend_reason_desc`.
    pub suspended: Option<SuspendReason>,
    /// `database_state_desc`: SUSPECT while its log is damaged.
    pub database_state: DatabaseState,
    /// What the damaged log lost, while the database is SUSPECT.
    pub damaged: Option<LogDamage>,
    /// `is_failover_ready`: a SYNCHRONIZED secondary.
    pub is_failover_ready: bool,
    /// `end_of_log_lsn`: pick the forced-failover target with the highest (R-FAIL-6).
    pub end_of_log_lsn: Lsn,
    /// `last_received_lsn`.
    pub last_received_lsn: Lsn,
    /// Written to the log file (informational).
    pub last_written_lsn: Lsn,
    /// `last_hardened_lsn`.
    pub last_hardened_lsn: Lsn,
    /// `last_redone_lsn`.
    pub last_redone_lsn: Lsn,
    /// `last_commit_lsn` (every record is a commit, so the last record).
    pub last_commit_lsn: Lsn,
    /// `redo_queue_size`, in records: hardened but not redone.
    pub redo_queue_size: u64,
    /// The last checkpoint: the log up to here is in the data file and out of memory.
    pub checkpoint_lsn: Lsn,
    /// Every data replica hardened the log up to here (as this replica knows): the most a
    /// checkpoint may cover (R-SYNC-7).
    pub stable_lsn: Lsn,
    /// `log_reuse_wait_desc`: what keeps the log after the checkpoint from being truncated.
    pub log_reuse_wait: LogReuseWait,
    /// The latest epoch whose history it accepted.
    pub accepted_epoch: Epoch,
    /// The fork history of its log.
    pub fork_history: Vec<ForkSegment>,
    /// Commits waiting on this primary.
    pub pending_commits: usize,
    /// On the primary: every secondary copy.
    pub secondaries: Vec<SecondaryDatabaseStatus>,
}

/// A secondary copy of a database, as the primary sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecondaryDatabaseStatus {
    /// The secondary replica.
    pub replica: ReplicaId,
    /// `synchronization_state_desc`.
    pub synchronization_state: SyncState,
    /// `synchronization_health_desc` (R-SYNC-8).
    pub synchronization_health: SynchronizationHealth,
    /// `suspend_reason_desc`.
    pub suspended: Option<SuspendReason>,
    /// `is_commit_participant` (R-COMMIT-2).
    pub is_commit_participant: bool,
    /// Whether its session is up.
    pub connected: bool,
    /// `last_sent_lsn`.
    pub last_sent_lsn: Lsn,
    /// `last_received_lsn`.
    pub last_received_lsn: Lsn,
    /// `last_hardened_lsn`.
    pub last_hardened_lsn: Lsn,
    /// `last_redone_lsn`.
    pub last_redone_lsn: Lsn,
    /// `log_send_queue_size`, in records: in the primary's log, not received.
    pub log_send_queue_size: u64,
    /// `redo_queue_size`, in records.
    pub redo_queue_size: u64,
    /// Its copy ends before this replica's last checkpoint: the log it needs is only in the
    /// data file, so none is shipped to it; it needs a reseed.
    pub needs_reseed: bool,
}

impl Replica {
    /// The dm_hadr views of this replica; `None` before it belongs to a group.
    pub fn status(&self) -> Option<ReplicaStatus> {
        let core = self.core.as_ref()?;
        let status = core.status(&self.name);
        // Every database, and every other replica of the group.
        invariant!(
            self,
            status.databases.len() == core.dbs.len()
                && status.peers.len() + 1 == core.config.replicas.len(),
            "R-HEALTH-2: the status shows {} databases of {} and {} peers of {} replicas",
            status.databases.len(),
            core.dbs.len(),
            status.peers.len(),
            core.config.replicas.len()
        );
        Some(status)
    }

    /// This replica as the observation format shows it (R-HEALTH-2).
    pub fn observe(&self) -> Option<ReplicaObservation> {
        let core = self.core.as_ref()?;
        let observation = core.observe();
        invariant!(
            self,
            observation.replica == core.me
                && observation.role == Some(core.role)
                && observation.databases.len() == core.dbs.len(),
            "R-HEALTH-2: {} {} observed as {} {:?} with {} databases of {}",
            core.role,
            core.me,
            observation.replica,
            observation.role,
            observation.databases.len(),
            core.dbs.len()
        );
        Some(observation)
    }

    /// The commits clients asked this replica for, and what they were told (R-COMMIT-7).
    pub fn transactions(&self) -> Vec<TransactionObservation> {
        self.core
            .as_ref()
            .map(|core| {
                // Each outcome is filed under its own database and transaction, and only a
                // commit still waiting has no reply yet.
                invariant!(
                    core,
                    core.outcomes.iter().all(|((database, txn), o)| {
                        o.observation.database == *database
                            && o.observation.txn == *txn
                            && (o.reply.is_some()
                                || o.observation.outcome == CommitOutcome::Pending)
                    }),
                    "R-COMMIT-7: an outcome on record contradicts its key or its reply"
                );
                core.outcomes
                    .values()
                    .map(|o| o.observation.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Core {
    fn status(&self, name: &str) -> ReplicaStatus {
        // Peers are listed by their position in the configuration.
        invariant!(
            self,
            self.peers.len() == self.config.replicas.len(),
            "R-HEALTH-2: {} peer entries for {} replicas",
            self.peers.len(),
            self.config.replicas.len()
        );
        let databases: Vec<DatabaseStatus> = (0..self.dbs.len())
            .map(|i| self.database_status(i))
            .collect();
        let synchronization_health = if self.role == Role::Resolving {
            SynchronizationHealth::NotHealthy
        } else {
            databases
                .iter()
                .map(|d| d.synchronization_health)
                .min()
                .unwrap_or(SynchronizationHealth::Healthy)
        };
        ReplicaStatus {
            replica: self.me,
            name: name.to_string(),
            ag_name: self.config.name.clone(),
            role: self.role,
            epoch: self.epoch,
            primary: self.primary,
            cluster_type: self.config.cluster_type,
            required_synchronized_secondaries_to_commit: self
                .config
                .required_synchronized_secondaries_to_commit,
            lease_until_ms: self.lease_until_ms,
            synchronization_health,
            peers: self
                .peers
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != usize::from(self.me.0))
                .map(|(i, peer)| PeerStatus {
                    replica: ReplicaId(i as u8),
                    name: self.config.replicas[i].name.clone(),
                    connected_state: if peer.is_up() {
                        ConnectedState::Connected
                    } else {
                        ConnectedState::Disconnected
                    },
                    role: peer.hello.map(|h| h.role),
                })
                .collect(),
            databases,
        }
    }

    fn database_status(&self, index: usize) -> DatabaseStatus {
        let db = &self.dbs[index];
        let is_primary = self.role == Role::Primary;
        let secondaries: Vec<SecondaryDatabaseStatus> = if is_primary {
            db.primary()
                .into_iter()
                .flat_map(|primary| &primary.secondaries)
                .map(|(replica, p)| {
                    let state = p.sync_state();
                    SecondaryDatabaseStatus {
                        replica: *replica,
                        synchronization_state: state,
                        synchronization_health: SynchronizationHealth::of(
                            state,
                            self.pair_is_sync(self.me, *replica),
                        ),
                        suspended: p.suspended(),
                        is_commit_participant: p.synchronized,
                        connected: self.peers[usize::from(replica.0)].is_up(),
                        last_sent_lsn: p.last_sent,
                        last_received_lsn: p.received,
                        last_hardened_lsn: p.hardened,
                        last_redone_lsn: p.redone,
                        log_send_queue_size: db.end().0.saturating_sub(p.received.0),
                        redo_queue_size: p.hardened.0.saturating_sub(p.redone.0),
                        needs_reseed: p.last_sent < db.checkpointed()
                            && db
                                .primary()
                                .is_some_and(|primary| primary.below_checkpoint.contains(replica)),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        // Only a SYNCHRONIZED secondary is a commit participant (R-SYNC-4: one that stops
        // streaming drops out).
        invariant!(
            self,
            secondaries.iter().all(|s| {
                !s.is_commit_participant || s.synchronization_state == SyncState::Synchronized
            }),
            "R-COMMIT-2: {}: a commit participant that is not SYNCHRONIZED",
            db.id
        );
        let state = (!is_primary).then(|| self.local_sync_state(index));
        let synchronization_health = match state {
            Some(state) => SynchronizationHealth::of(
                state,
                self.primary.is_some_and(|p| self.pair_is_sync(self.me, p)),
            ),
            None => secondaries
                .iter()
                .map(|s| s.synchronization_health)
                .min()
                .unwrap_or(SynchronizationHealth::Healthy),
        };
        DatabaseStatus {
            database: db.id,
            name: self.config.databases[index].clone(),
            synchronization_state: state,
            synchronization_health,
            suspended: db.suspended,
            database_state: db.state(),
            damaged: db.damaged,
            is_failover_ready: state == Some(SyncState::Synchronized) && db.damaged.is_none(),
            end_of_log_lsn: db.end(),
            last_received_lsn: db.end(),
            last_written_lsn: db.written,
            last_hardened_lsn: db.hardened,
            last_redone_lsn: db.redone,
            last_commit_lsn: db.end(),
            redo_queue_size: db.hardened.0.saturating_sub(db.redone.0),
            checkpoint_lsn: db.checkpointed(),
            stable_lsn: db.stable,
            log_reuse_wait: self.log_reuse_wait(index),
            accepted_epoch: db.accepted_epoch,
            fork_history: db.forks(),
            pending_commits: db.primary().map_or(0, |primary| primary.pending.len()),
            secondaries,
        }
    }

    fn observe(&self) -> ReplicaObservation {
        let observation = ReplicaObservation {
            replica: self.me,
            up: true,
            role: Some(self.role),
            databases: (0..self.dbs.len())
                .map(|index| {
                    let db = &self.dbs[index];
                    let state = (self.role != Role::Primary).then(|| self.local_sync_state(index));
                    DatabaseObservation {
                        database_state: db.state(),
                        database: db.id,
                        synchronization_state: state,
                        // The primary's suspension is the primary's to tell: a secondary with
                        // no session with it does not know it still holds.
                        suspended: db.suspended.filter(|reason| {
                            *reason != SuspendReason::Primary || self.primary_link().is_some()
                        }),
                        end_of_log_lsn: db.end(),
                        last_hardened_lsn: db.hardened,
                        last_redone_lsn: db.redone,
                        is_failover_ready: state == Some(SyncState::Synchronized)
                            && db.damaged.is_none(),
                    }
                })
                .collect(),
        };
        // A RESOLVING replica's databases are NOT SYNCHRONIZING.
        invariant!(
            self,
            self.role != Role::Resolving
                || observation
                    .databases
                    .iter()
                    .all(|d| { d.synchronization_state == Some(SyncState::NotSynchronizing) }),
            "R-ROLE-2: a RESOLVING replica observed synchronizing"
        );
        observation
    }
}
