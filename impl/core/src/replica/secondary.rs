//! The secondary's side: taking log blocks with no gap (R-SYNC-1), hardening then redoing
//! them (R-SYNC-2), acknowledging only what was hardened, reverting to a fork point (R-FAIL-4/6).

use super::{ignored, send, Core, Out};
use crate::error::IgnoredReason;
use crate::ids::Epoch;
use crate::log::{check_run, LogShapeError};
use crate::message::{LogBlock, MessageBody};
use crate::mutants::Mutant;
use crate::output::{InputSource, Output};
use hadr_types::{DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState};

impl Core {
    /// Whether `from` is the primary this replica takes log from, in `epoch`.
    fn is_my_primary(&self, from: ReplicaId, epoch: Epoch) -> bool {
        // `on_message` hands on messages from peers only; a secondary never follows itself.
        invariant!(
            self,
            self.is_peer(from) && (self.role != Role::Secondary || self.primary != Some(self.me)),
            "R-ROLE-1: a {} {} that follows {:?} judges a message from {from}",
            self.role,
            self.me,
            self.primary
        );
        if epoch != self.epoch || self.role != Role::Secondary {
            return false;
        }
        self.primary == Some(from) || self.failover.as_ref().is_some_and(|f| f.primary == from)
    }

    /// The index of `database` in a message from `from`, if `from` is the primary this replica
    /// takes log from in `epoch`; otherwise the message is ignored.
    fn my_primary_db(
        &self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        what: &'static str,
        out: &mut Out,
    ) -> Option<usize> {
        let index = self.peer_db(from, database, out)?;
        if !self.is_my_primary(from, epoch) {
            self.unexpected(from, what, out);
            return None;
        }
        invariant!(
            self,
            self.dbs[index].secondary().is_some(),
            "R-ROLE-3: {} of a {} that follows {from} holds a primary's books",
            self.dbs[index].id,
            self.role
        );
        Some(index)
    }

    /// R-SYNC-3 as this secondary sees its own database.
    pub(super) fn local_sync_state(&self, index: usize) -> SyncState {
        let db = &self.dbs[index];
        let primary_up = self
            .primary
            .is_some_and(|p| self.peers[usize::from(p.0)].is_up());
        invariant!(
            self,
            db.secondary().is_some() == (self.role != Role::Primary),
            "R-ROLE-3: {} of a {} holds the books of the other role",
            db.id,
            self.role
        );
        let state = match db.secondary() {
            Some(secondary)
                if self.role == Role::Secondary && db.suspended.is_none() && primary_up =>
            {
                if secondary.reverting.is_some() {
                    // Until the truncation is on disk, even across a new session (a stalled
                    // disk).
                    SyncState::Reverting
                } else {
                    secondary.told_state
                }
            }
            _ => SyncState::NotSynchronizing,
        };
        // The primary refuses SYNCHRONIZED for an asynchronous pair (`on_sync_state`).
        invariant!(
            self,
            state != SyncState::Synchronized
                || self.primary.is_some_and(|p| self.pair_is_sync(self.me, p)),
            "R-SYNC-4: {} is SYNCHRONIZED with {:?}, not a synchronous partner",
            db.id,
            self.primary
        );
        state
    }

    /// A damaged (SUSPECT) database is reseeded by following a primary: once, in a session
    /// with it and not reverting, it is SYNCHRONIZED or has hardened the primary's log past
    /// everything the damaged log held, it lacks nothing it ever acknowledged and comes online.
    pub(super) fn clear_repaired_damage(&mut self) {
        if self.primary_link().is_none() {
            return;
        }
        for index in 0..self.dbs.len() {
            let Some(damage) = self.dbs[index].damaged else {
                continue;
            };
            let state = self.local_sync_state(index);
            let db = &mut self.dbs[index];
            let caught_up = state == SyncState::Synchronized
                || (state != SyncState::Reverting && db.hardened >= damage.lost_through);
            if caught_up {
                tracing::info!(
                    database = %db.id,
                    hardened = %db.hardened,
                    lost_through = %damage.lost_through,
                    "the damaged copy is reseeded from the primary: online again"
                );
                db.damaged = None;
            }
        }
        invariant!(
            self,
            self.dbs.iter().all(|db| db
                .damaged
                .is_none_or(|d| d.kept <= d.lost_through && db.primary().is_none())),
            "R-COMMIT-6: a damaged copy is led, or its damage record is malformed"
        );
    }

    /// The primary this secondary reports to, if a connection to it is open.
    ///
    /// The primary's handshake need not have arrived: our reports follow our own handshake on
    /// the same FIFO connection, so the primary reads them after it set us up (or ignores them
    /// if it could not); whatever happens while no connection is open, our next handshake
    /// tells.
    pub(super) fn primary_link(&self) -> Option<ReplicaId> {
        invariant!(
            self,
            self.role != Role::Secondary || self.primary.is_none_or(|p| self.is_peer(p)),
            "R-ROLE-1: secondary {} follows {:?}, not one of its peers",
            self.me,
            self.primary
        );
        self.primary
            .filter(|p| self.role == Role::Secondary && self.peers[usize::from(p.0)].connected())
    }

    /// Tells the primary how far this database got. Only hardened LSNs that a `LogHardened`
    /// input reported are acknowledged (the secondary half of the ordering contract).
    pub(super) fn send_progress(&self, index: usize, out: &mut Out) {
        let db = &self.dbs[index];
        let Some(primary) = self.primary_link() else {
            return;
        };
        if db.suspended.is_some() || db.reverting().is_some() {
            return;
        }
        // Only what a `LogHardened` covered is reported hardened, and redo follows it.
        invariant!(
            self,
            db.redone <= db.hardened && db.hardened <= db.end(),
            "R-SYNC-2: {}: a progress report of received {}, hardened {}, redone {} out of order",
            db.id,
            db.end(),
            db.hardened,
            db.redone
        );
        send(
            out,
            &self.peers,
            primary,
            self.epoch,
            MessageBody::Progress {
                database: db.id,
                received: db.end(),
                hardened: db.hardened,
                redone: db.redone,
            },
        );
    }

    /// R-SYNC-1: a block must start at our end of log + 1. A gap is refused once (the primary
    /// resends from our end); an overlap with identical records is trimmed.
    pub(super) fn on_log(&mut self, from: ReplicaId, epoch: Epoch, block: LogBlock, out: &mut Out) {
        let source = InputSource::Peer(from);
        let Some(index) = self.my_primary_db(from, epoch, block.database, "log block", out) else {
            return;
        };
        if self.dbs[index].suspended.is_some() || self.dbs[index].reverting().is_some() {
            self.unexpected(from, "log block for a suspended or reverting database", out);
            return;
        }
        // R-SYNC-7: what every copy hardened, in the history this one follows from here on
        // (it reverted to its fork point with this primary before any block came).
        let db = &mut self.dbs[index];
        db.stable = db.stable.max(block.stable.min(db.hardened));
        let first = block.first_lsn;
        if first.0 == 0 || block.records.is_empty() {
            ignored(
                out,
                source,
                IgnoredReason::MalformedLog(LogShapeError::NotContiguous {
                    index: 0,
                    found: first,
                    expected: Lsn(first.0.max(1)),
                }),
            );
            return;
        }
        if let Err(error) = check_run(&block.records, Lsn(first.0 - 1), Epoch::NONE) {
            ignored(out, source, IgnoredReason::MalformedLog(error));
            return;
        }
        if let Some(newer) = block.records.iter().find(|r| r.epoch > epoch) {
            ignored(
                out,
                source,
                IgnoredReason::MalformedLog(LogShapeError::EpochGoesBack {
                    lsn: newer.lsn,
                    epoch,
                    previous: newer.epoch,
                }),
            );
            return;
        }
        let accept_gap = self.planted(Mutant::AcceptLogGap);
        let mut block = block;
        let mut first = first;
        let db = &mut self.dbs[index];
        let end = db.end();
        if first.0 > end.0 + 1 && accept_gap {
            for (i, record) in block.records.iter_mut().enumerate() {
                record.lsn = Lsn(end.0 + 1 + i as u64);
            }
            first = Lsn(end.0 + 1);
        }
        if first.0 > end.0 + 1 {
            let expected = Lsn(end.0 + 1);
            if db.as_secondary().gap_reported != Some(expected) {
                tracing::debug!(
                    database = db.id.0,
                    first = first.0,
                    expected = expected.0,
                    "gap: block refused"
                );
                db.as_secondary().gap_reported = Some(expected);
                let database = db.id;
                send(
                    out,
                    &self.peers,
                    from,
                    epoch,
                    MessageBody::GapRefused { database, expected },
                );
            }
            return;
        }
        let overlap = (end.0 + 1 - first.0) as usize;
        // Records up to the checkpoint every copy held when it was taken: only the ones
        // after it can be compared.
        for record in block.records.iter().take(overlap) {
            if db.record(record.lsn).is_some_and(|held| held != record) {
                ignored(
                    out,
                    source,
                    IgnoredReason::DivergentOverlap {
                        database: db.id,
                        lsn: record.lsn,
                    },
                );
                return;
            }
        }
        let new: Vec<_> = block.records.into_iter().skip(overlap).collect();
        let Some(head) = new.first() else {
            return; // all duplicates
        };
        if head.epoch < db.last_epoch() {
            ignored(
                out,
                source,
                IgnoredReason::MalformedLog(LogShapeError::EpochGoesBack {
                    lsn: head.lsn,
                    epoch: head.epoch,
                    previous: db.last_epoch(),
                }),
            );
            return;
        }
        let database = db.id;
        let head = head.lsn;
        db.append(new.iter().cloned());
        db.as_secondary().gap_reported = None;
        db.accepted_epoch = db.accepted_epoch.max(epoch);
        let up_to = db.end();
        db.fsync_requested = up_to;
        invariant!(
            self,
            head == Lsn(end.0 + 1),
            "R-SYNC-1: {database}: records from {head} appended to a log that ended at {end}"
        );
        self.assert_log_pointers(index);
        out.push_back(Output::AppendLog {
            database,
            records: new,
        });
        out.push_back(Output::Fsync { database, up_to });
        self.try_complete_failover(out);
    }

    /// The primary assigned a synchronization state (R-SYNC-3).
    pub(super) fn on_sync_state(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        state: SyncState,
        out: &mut Out,
    ) {
        let Some(index) = self.my_primary_db(from, epoch, database, "synchronization state", out)
        else {
            return;
        };
        if state == SyncState::Synchronized
            && !self.pair_is_sync(self.me, from)
            && !self.planted(Mutant::AsyncSecondarySynchronized)
        {
            // R-SYNC-4: impossible for this pair, whatever the sender says.
            self.unexpected(from, "SYNCHRONIZED for an asynchronous pair", out);
            return;
        }
        let db = &mut self.dbs[index];
        if db.suspended.is_some() {
            return; // our own suspension report is on its way to the primary
        }
        db.as_secondary().told_state = state;
        if state != SyncState::NotSynchronizing {
            db.accepted_epoch = db.accepted_epoch.max(epoch);
        }
        let accepted = db.accepted_epoch;
        invariant!(
            self,
            accepted <= self.epoch,
            "R-FAIL-4: {database} accepted {accepted}, beyond the epoch {} it follows",
            self.epoch
        );
    }

    /// R-SYNC-7 / R-FAIL-4: the primary stopped data movement to this database.
    pub(super) fn on_suspend_from_primary(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        reason: SuspendReason,
        out: &mut Out,
    ) {
        let Some(index) = self.my_primary_db(from, epoch, database, "suspension", out) else {
            return;
        };
        if !matches!(reason, SuspendReason::Primary | SuspendReason::Partner) {
            self.unexpected(
                from,
                "a suspension reason only a secondary gives itself",
                out,
            );
            return;
        }
        let db = &mut self.dbs[index];
        // A forced failover's suspension overrides any other (R-FAIL-4): only its resume
        // reverts to the fork point.
        let overrides = reason == SuspendReason::Partner && db.suspended != Some(reason);
        if db.suspended.is_none() || overrides {
            tracing::info!(database = db.id.0, %reason, "database suspended by the primary");
            db.suspended = Some(reason);
            db.suspended_by_epoch = epoch;
            db.as_secondary().told_state = SyncState::NotSynchronizing;
        } else if db.suspended == Some(reason) {
            db.suspended_by_epoch = db.suspended_by_epoch.max(epoch);
        }
        let suspended = db.suspended;
        invariant!(
            self,
            suspended.is_some() && self.local_sync_state(index) == SyncState::NotSynchronizing,
            "R-SYNC-7: {database} suspended by the primary is {suspended:?}, {}",
            self.local_sync_state(index)
        );
    }

    /// R-SYNC-7: resuming the primary resumes the secondaries suspended because of it.
    pub(super) fn on_resume_from_primary(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        out: &mut Out,
    ) {
        let Some(index) = self.my_primary_db(from, epoch, database, "resume", out) else {
            return;
        };
        let before = self.dbs[index].suspended;
        if self.dbs[index].suspended == Some(SuspendReason::Primary) {
            self.dbs[index].suspended = None;
            self.rejoin(index, out);
        }
        // Resuming the primary resumes only what its suspension stopped.
        let after = self.dbs[index].suspended;
        invariant!(
            self,
            after == before.filter(|reason| *reason != SuspendReason::Primary),
            "R-SYNC-7: {database} suspended {before:?} is {after:?} after the primary resumed"
        );
    }

    /// Asks the primary to set this database up again (after a RESUME).
    pub(super) fn rejoin(&self, index: usize, out: &mut Out) {
        invariant!(
            self,
            self.role == Role::Secondary && self.dbs[index].suspended.is_none(),
            "R-SYNC-7: a {} asks to set {} up again while it is suspended ({:?})",
            self.role,
            self.dbs[index].id,
            self.dbs[index].suspended
        );
        if let Some(primary) = self.primary_link() {
            send(
                out,
                &self.peers,
                primary,
                self.epoch,
                MessageBody::Rejoin(self.dbs[index].hello()),
            );
        }
    }

    /// R-FAIL-4/6: discard the log after the fork point and roll back to it.
    pub(super) fn on_revert(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        database: DatabaseId,
        to: Lsn,
        out: &mut Out,
    ) {
        let Some(index) = self.my_primary_db(from, epoch, database, "revert", out) else {
            return;
        };
        let db = &mut self.dbs[index];
        if db.suspended.is_some() || to > db.end() || db.reverting() == Some(to) {
            self.unexpected(from, "revert of a suspended or shorter database", out);
            return;
        }
        if to < db.checkpoint_asked {
            // Every data replica held the log up to a checkpoint when it was asked, so no
            // fork point lies before it; a primary asking for one is wrong or lost its log.
            self.unexpected(from, "revert to before the checkpoint", out);
            return;
        }
        db.accepted_epoch = db.accepted_epoch.max(epoch);
        db.as_secondary().gap_reported = None;
        if to == db.end() && !db.truncations.is_empty() {
            // Nothing more to discard, but earlier truncations are still running: report when
            // they are done.
            db.as_secondary().reverting = Some(to);
            db.as_secondary().told_state = SyncState::Reverting;
            return;
        }
        if to == db.end() {
            let body = MessageBody::Reverted {
                database,
                end: to,
                hardened: db.hardened,
                redone: db.redone,
            };
            db.as_secondary().told_state = SyncState::Initializing;
            send(out, &self.peers, from, epoch, body);
            return;
        }
        tracing::info!(
            database = database.0,
            from = db.end().0,
            to = to.0,
            "REVERTING to the fork point"
        );
        db.as_secondary().reverting = Some(to);
        db.truncate(to);
        db.as_secondary().told_state = SyncState::Reverting;
        let end = db.end();
        invariant!(
            self,
            end == to,
            "R-FAIL-4: {database}: reverting to {to}, but the log ends at {end}"
        );
        self.assert_log_pointers(index);
        out.push_back(Output::RevertLog { database, to });
    }

    /// A new value of REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT from the primary.
    pub(super) fn on_set_required(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        required: u32,
        out: &mut Out,
    ) {
        if !self.is_my_primary(from, epoch) {
            self.unexpected(from, "REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT", out);
            return;
        }
        if required > self.max_required() {
            self.unexpected(
                from,
                "REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT above its limit",
                out,
            );
            return;
        }
        // k gates commits of a primary only: a secondary holds none waiting.
        invariant!(
            self,
            self.dbs.iter().all(|db| db.primary().is_none()),
            "R-COMMIT-5: a {} that follows {from} holds a primary's books",
            self.role
        );
        self.config.required_synchronized_secondaries_to_commit = required;
    }

    /// A revert to the fork point is on disk, and no deeper one follows: report it to the
    /// primary that asked (R-FAIL-4/6), which streams from there (INITIALIZING).
    pub(super) fn revert_done(&mut self, index: usize, out: &mut Out) {
        let Some(to) = self.dbs[index].reverting() else {
            return; // nobody waits for a report
        };
        let end = self.dbs[index].end();
        invariant!(
            self,
            end == to,
            "R-FAIL-4: {}: reverted to the fork point {to}, but the log ends at {end}",
            self.dbs[index].id
        );
        self.assert_log_pointers(index);
        let db = &mut self.dbs[index];
        let secondary = db.as_secondary();
        secondary.reverting = None;
        secondary.told_state = SyncState::Initializing;
        let body = MessageBody::Reverted {
            database: db.id,
            end: db.end(),
            hardened: db.hardened,
            redone: db.redone,
        };
        let suspended = db.suspended.is_some();
        // The primary waits for this report if our handshake said we were reverting.
        if let Some(primary) = self.primary_link().filter(|_| !suspended) {
            send(out, &self.peers, primary, self.epoch, body);
        }
    }

    /// The log is hardened up to `up_to` (beyond what it was): report it, and have the shell
    /// redo it when `redo` (R-SYNC-2: redo follows hardening, asynchronously).
    pub(super) fn secondary_hardened(&self, index: usize, up_to: Lsn, redo: bool, out: &mut Out) {
        let db = &self.dbs[index];
        invariant!(
            self,
            db.hardened == up_to && (!redo || db.redo_requested == up_to),
            "R-SYNC-2: {}: hardened {} and redo asked up to {}, after an fsync up to {up_to}",
            db.id,
            db.hardened,
            db.redo_requested
        );
        self.send_progress(index, out);
        if redo {
            let database = self.dbs[index].id;
            out.push_back(Output::Redo { database, up_to });
        }
    }
}
