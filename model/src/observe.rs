//! The projection of a spec state onto an [`Observation`]: what the `sys.dm_hadr_*` views and
//! the clients of a real group would show (R-HEALTH-2). Ghost variables are not observable.

use crate::spec::AgModel;
use crate::state::{Did, Rid, State};
use hadr_types::{
    DatabaseId, DatabaseObservation, DatabaseState, Lsn, Observation, ReplicaId,
    ReplicaObservation, Role, SuspendReason, SyncState, TransactionObservation, TxnId,
};

impl AgModel {
    /// R-SYNC-3: the synchronization state of a secondary database, or `None` for a primary's
    /// own databases and for a replica that is down.
    pub fn sync_state(&self, s: &State, replica: Rid, db: Did) -> Option<SyncState> {
        let r = &s.replicas[usize::from(replica)];
        let d = s.db(replica, db);
        if !r.up || r.role == Role::Primary {
            return None;
        }
        let primary_suspended = s
            .serving_primary()
            .is_some_and(|p| s.db(p, db).suspended.is_some());
        Some(
            if r.role != Role::Secondary
                || !r.session
                || d.suspended.is_some()
                || primary_suspended
                || !AgModel::joined(s, replica, db)
                || d.page != crate::state::Page::Healthy
            {
                SyncState::NotSynchronizing
            } else if d.reverting {
                SyncState::Reverting
            } else if d.failover_ready && d.suspect.is_none() {
                // A SUSPECT copy is never SYNCHRONIZED, whatever the manager still records.
                SyncState::Synchronized
            } else {
                SyncState::Synchronizing
            },
        )
    }

    /// Why a database is suspended as the views show it: its own reason, or the primary's
    /// database being suspended (R-SYNC-7), which only a secondary in session with the primary
    /// knows. A replica that is down shows only what it holds itself.
    pub fn suspend_reason(&self, s: &State, replica: Rid, db: Did) -> Option<SuspendReason> {
        let d = s.db(replica, db);
        if !s.replicas[usize::from(replica)].up {
            return d.suspended;
        }
        let redo_stopped = (s.serving_primary() != Some(replica)
            && d.page != crate::state::Page::Healthy)
            .then_some(SuspendReason::Redo);
        d.suspended.or(redo_stopped).or_else(|| {
            let p = s.serving_primary()?;
            let r = &s.replicas[usize::from(replica)];
            let told = p != replica && r.role == Role::Secondary && r.session;
            (told && s.db(p, db).suspended.is_some()).then_some(SuspendReason::Primary)
        })
    }

    /// What can be seen of a state from outside.
    pub fn observe(&self, s: &State) -> Observation {
        let replicas = s
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let id = i as Rid;
                ReplicaObservation {
                    replica: ReplicaId(id),
                    up: r.up,
                    role: r.up.then_some(r.role),
                    databases: s
                        .dbs_of(id)
                        .iter()
                        .enumerate()
                        .map(|(db, d)| {
                            let sync = self.sync_state(s, id, db as Did);
                            DatabaseObservation {
                                database: DatabaseId(db as Did),
                                database_state: if d.restoring {
                                    DatabaseState::Restoring
                                } else if d.suspect.is_some() {
                                    DatabaseState::Suspect
                                } else {
                                    DatabaseState::Online
                                },
                                synchronization_state: sync,
                                suspended: self.suspend_reason(s, id, db as Did),
                                end_of_log_lsn: Lsn(d.log.len() as u64),
                                last_hardened_lsn: Lsn(u64::from(d.hardened)),
                                last_redone_lsn: Lsn(u64::from(d.redone)),
                                // What the replica's views show: SYNCHRONIZED now. (The manager's
                                // record, `failover_ready`, outlives a lost session or quorum.)
                                is_failover_ready: sync == Some(SyncState::Synchronized),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let transactions = s
            .txns
            .iter()
            .enumerate()
            .map(|(i, t)| TransactionObservation {
                txn: TxnId(i as u32 + 1),
                database: DatabaseId(t.db),
                outcome: t.outcome,
            })
            .collect();
        Observation {
            replicas,
            transactions,
        }
    }
}
