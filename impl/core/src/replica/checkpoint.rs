//! Checkpoints and log truncation (R-SYNC-7): the log after the last checkpoint is what the
//! core keeps in memory; the shell's data file holds the rest.
//!
//! ```text
//!  log:   1 ……………… checkpointed ……… asked ……… stable ……… redone ……… hardened ……… end
//!         └─ in the data file ─┘└─ being written ─┘
//! ```
//!
//! A database asks for a checkpoint ([`Output::Checkpoint`]) once the log after the last one
//! holds [`CoreOptions::checkpoint_bytes`](crate::CoreOptions::checkpoint_bytes), up to the
//! highest LSN that is
//! - **stable**: every data replica of the group hardened it in this history, so no copy ever
//!   reverts below it (a fork point is never before it) and no copy needs it shipped again.
//!   The primary computes it from what each secondary reported hardened in its epoch (a
//!   replica it has not heard from in this epoch counts as nothing) and sends it with every
//!   log block; a secondary takes it from there. A suspended, lagging or disconnected
//!   secondary holds it back: the `AVAILABILITY_REPLICA` of `log_reuse_wait_desc`;
//! - **redone** (the data as of it is what the core indexes), and on the primary **read**:
//!   no read is as of an LSN before it, so a data file written up to it never shows a read a
//!   value from its future.
//!
//! When the shell reports the checkpoint durable ([`StorageEvent::Checkpointed`]) the core
//! drops those records, persists the new checkpoint (with the fork history and transaction
//! ids up to it), and then asks the shell to drop them from the log file
//! ([`Output::TruncateLog`]): persist first, so a restart never looks for records the log file
//! no longer has.
//!
//! [`StorageEvent::Checkpointed`]: crate::StorageEvent::Checkpointed

use super::{Core, Out};
use crate::error::StorageContractError;
use crate::output::{ClientReply, Output};
use hadr_types::{LogReuseWait, Lsn, ReplicaId, Role};
use std::collections::btree_map::Entry;

impl Core {
    /// The primary's view of what every data replica hardened (R-SYNC-7), raised into
    /// `stable` (never lowered).
    fn refresh_stable(&mut self, index: usize, peers: &[ReplicaId]) {
        let db = &mut self.dbs[index];
        let hardened = db.hardened;
        let Some(primary) = db.primary() else {
            return;
        };
        let stable = peers
            .iter()
            .map(|peer| primary.hardened_acked.get(peer).copied().unwrap_or(Lsn(0)))
            .fold(hardened, Lsn::min);
        db.stable = db.stable.max(stable);
    }

    /// How far a checkpoint of database `index` may go now: stable, redone, hardened, and on
    /// the primary no later than what its reads see.
    fn checkpointable(&self, index: usize) -> Lsn {
        let db = &self.dbs[index];
        let mut limit = db.stable.min(db.redone).min(db.hardened);
        if self.role == Role::Primary && db.primary().is_some() {
            limit = limit.min(self.primary_read_lsn(index));
        }
        limit
    }

    /// After every input: asks for a checkpoint of each database whose log after the last
    /// one reached the interval, when none is in flight.
    pub(super) fn checkpoint(&mut self, out: &mut Out) {
        let interval = self.options.checkpoint_bytes;
        if interval == 0 {
            return;
        }
        let peers = (self.role == Role::Primary).then(|| self.data_peers());
        for index in 0..self.dbs.len() {
            if let Some(peers) = &peers {
                self.refresh_stable(index, peers);
            }
            let db = &self.dbs[index];
            let base = db.checkpointed();
            // One at a time; none while a revert runs (its completions count up to its
            // fork point), none of a copy whose log is damaged (it waits for a reseed).
            if db.checkpoint_asked > base
                || db.log_bytes() < interval
                || !db.truncations.is_empty()
                || db.reverting().is_some()
                || db.damaged.is_some()
            {
                continue;
            }
            let up_to = self.checkpointable(index);
            if up_to <= base {
                continue;
            }
            let db = &mut self.dbs[index];
            let records = db.records(Lsn(base.0 + 1), up_to).to_vec();
            db.checkpoint_asked = up_to;
            tracing::debug!(
                database = db.id.0,
                from = base.0 + 1,
                up_to = up_to.0,
                "checkpoint asked"
            );
            out.push_back(Output::Checkpoint {
                database: db.id,
                records,
                up_to,
            });
        }
    }

    /// The shell made the checkpoint asked durable: the log up to it leaves memory, then the
    /// log file.
    pub(super) fn checkpointed(
        &mut self,
        index: usize,
        up_to: Lsn,
        out: &mut Out,
    ) -> Result<(), StorageContractError> {
        let db = &mut self.dbs[index];
        if up_to != db.checkpoint_asked || up_to <= db.checkpointed() {
            return Err(StorageContractError::UnexpectedCheckpoint {
                database: db.id,
                up_to,
                asked: db.checkpoint_asked,
                checkpointed: db.checkpointed(),
            });
        }
        let database = db.id;
        // Replies to acknowledged commits that are checkpointed are not kept: a retry of one
        // learns that its id is checkpointed (`IndefiniteCause::OutcomeCheckpointed`).
        for txn in db.checkpoint_done(up_to) {
            if let Entry::Occupied(entry) = self.outcomes.entry((database, txn)) {
                if matches!(entry.get().reply, Some(ClientReply::Committed { .. })) {
                    entry.remove();
                }
            }
        }
        let db = &self.dbs[index];
        // The new checkpoint is persisted before this (the outputs of an input follow its
        // `PersistState`).
        out.push_back(Output::TruncateLog {
            database: db.id,
            through: up_to,
        });
        Ok(())
    }

    /// `log_reuse_wait_desc`: what keeps the log after the last checkpoint from being
    /// truncated.
    pub(super) fn log_reuse_wait(&self, index: usize) -> LogReuseWait {
        let db = &self.dbs[index];
        let base = db.checkpointed();
        if db.end() == base {
            return LogReuseWait::Nothing;
        }
        if db.stable.min(db.hardened) <= base || db.stable < db.redone.min(db.hardened) {
            // A copy (maybe this one's primary's view of another) has not hardened it.
            return LogReuseWait::AvailabilityReplica;
        }
        LogReuseWait::Checkpoint
    }
}
