//! Storage completions, on either role: each is checked against what the core asked of the
//! shell (the ordering contract, see [`Replica`](super::Replica)), then taken by the role's
//! side: the primary redoes what it hardened at once, a secondary reports it and has the shell
//! redo it (R-SYNC-2: harden, then redo).

use super::{Core, Out};
use crate::error::StorageContractError;
use crate::input::StorageEvent;
use hadr_types::{Lsn, Role};

impl Core {
    pub(super) fn on_storage(
        &mut self,
        event: StorageEvent,
        out: &mut Out,
    ) -> Result<(), StorageContractError> {
        let database = match event {
            StorageEvent::LogWritten { database, .. }
            | StorageEvent::LogHardened { database, .. }
            | StorageEvent::RedoApplied { database, .. }
            | StorageEvent::LogReverted { database, .. }
            | StorageEvent::Checkpointed { database, .. } => database,
        };
        let index = self
            .db_index(database)
            .ok_or(StorageContractError::UnknownDatabase { database })?;
        let result = match event {
            StorageEvent::LogWritten { up_to, .. } => self.log_written(index, up_to),
            StorageEvent::LogHardened { up_to, .. } => self.log_hardened(index, up_to, out),
            StorageEvent::RedoApplied { up_to, .. } => self.redo_applied(index, up_to, out),
            StorageEvent::LogReverted { to, .. } => self.log_reverted(index, to, out),
            StorageEvent::Checkpointed { up_to, .. } => self.checkpointed(index, up_to, out),
        };
        // Taken or refused, a completion leaves redo behind hardening, hardening within the
        // log, and every acknowledged commit hardened on the primary.
        let db = &self.dbs[index];
        let acknowledged = db.primary().map(|primary| primary.acknowledged);
        invariant!(
            self,
            db.redone <= db.hardened
                && db.hardened <= db.end()
                && acknowledged.is_none_or(|acknowledged| acknowledged <= db.hardened),
            "R-COMMIT-6: {database}: redone {}, hardened {}, end {}, acknowledged {acknowledged:?} after a storage completion",
            db.redone,
            db.hardened,
            db.end()
        );
        result
    }

    /// R-SYNC-2, the local log pointers: `end_of_log ≥ fsync_requested ≥ hardened ≥
    /// redo_requested ≥ redone`, and `end_of_log ≥ written ≥ hardened`.
    pub(super) fn assert_log_pointers(&self, index: usize) {
        let db = &self.dbs[index];
        let end = db.end();
        invariant!(
            self,
            db.fsync_requested <= end,
            "R-SYNC-2: {}: fsync asked up to {}, beyond the end of the log {end}",
            db.id,
            db.fsync_requested
        );
        invariant!(
            self,
            db.written <= end,
            "R-SYNC-2: {}: written up to {}, beyond the end of the log {end}",
            db.id,
            db.written
        );
        invariant!(
            self,
            db.hardened <= db.fsync_requested && db.hardened <= db.written,
            "R-SYNC-2: {}: hardened up to {}, beyond the fsync asked for ({}) or the log written ({})",
            db.id,
            db.hardened,
            db.fsync_requested,
            db.written
        );
        invariant!(
            self,
            db.redo_requested <= db.hardened,
            "R-SYNC-2: {}: redo asked up to {}, beyond hardened {}",
            db.id,
            db.redo_requested,
            db.hardened
        );
        invariant!(
            self,
            db.redone <= db.redo_requested,
            "R-SYNC-2: {}: redone up to {}, beyond the redo asked for ({})",
            db.id,
            db.redone,
            db.redo_requested
        );
    }

    /// What a completion reporting `up_to` covers. While truncations run, completions of
    /// operations issued before them may still cover records they discard: they count only up
    /// to the lowest fork point in flight.
    fn covered(&self, index: usize, up_to: Lsn) -> Lsn {
        let limit = self.dbs[index].truncations.iter().min().copied();
        // The last truncation emitted cut the log to its fork point, and the log only grew
        // since: no fork point in flight lies beyond the end of the log.
        let end = self.dbs[index].end();
        invariant!(
            self,
            limit.is_none_or(|to| to <= end),
            "R-FAIL-4: {}: a truncation to {limit:?} in flight, beyond the end of the log {end}",
            self.dbs[index].id
        );
        limit.map_or(up_to, |to| up_to.min(to))
    }

    /// What a write or an fsync completion covers, which must be in the log.
    fn covered_log(
        &self,
        index: usize,
        what: &'static str,
        up_to: Lsn,
    ) -> Result<Lsn, StorageContractError> {
        let reported = up_to;
        let up_to = self.covered(index, up_to);
        let db = &self.dbs[index];
        if up_to > db.end() {
            return Err(StorageContractError::BeyondEndOfLog {
                database: db.id,
                what,
                up_to,
                end_of_log: db.end(),
            });
        }
        // The ordering contract: the core counts no more than the shell reported.
        invariant!(
            self,
            up_to <= reported,
            "R-SYNC-2: {}: {what} up to {reported} counted as covering {up_to}",
            db.id
        );
        Ok(up_to)
    }

    fn log_written(&mut self, index: usize, up_to: Lsn) -> Result<(), StorageContractError> {
        let up_to = self.covered_log(index, "a write", up_to)?;
        let db = &mut self.dbs[index];
        let hardened = db.hardened;
        db.written = db.written.max(up_to);
        self.assert_log_pointers(index);
        // A write is not an fsync: it hardens nothing, so it acknowledges nothing.
        invariant!(
            self,
            self.dbs[index].hardened == hardened,
            "R-SYNC-2: {}: a write completion up to {up_to} moved hardened from {hardened} to {}",
            self.dbs[index].id,
            self.dbs[index].hardened
        );
        Ok(())
    }

    fn log_hardened(
        &mut self,
        index: usize,
        up_to: Lsn,
        out: &mut Out,
    ) -> Result<(), StorageContractError> {
        let up_to = self.covered_log(index, "an fsync", up_to)?;
        let db = &mut self.dbs[index];
        if up_to <= db.hardened {
            return Ok(());
        }
        db.hardened = up_to;
        db.written = db.written.max(up_to);
        let redo = up_to > db.redo_requested;
        if redo {
            db.redo_requested = up_to;
        }
        self.assert_log_pointers(index);
        if self.role == Role::Primary {
            self.primary_hardened(index, up_to, redo);
        } else {
            self.secondary_hardened(index, up_to, redo, out);
        }
        let hardened = self.dbs[index].hardened;
        invariant!(
            self,
            hardened == up_to,
            "R-SYNC-2: {}: an fsync up to {up_to} left hardened at {hardened}",
            self.dbs[index].id
        );
        Ok(())
    }

    fn redo_applied(
        &mut self,
        index: usize,
        up_to: Lsn,
        out: &mut Out,
    ) -> Result<(), StorageContractError> {
        let up_to = self.covered(index, up_to);
        let db = &mut self.dbs[index];
        if up_to > db.hardened {
            return Err(StorageContractError::RedoBeyondHardened {
                database: db.id,
                up_to,
                hardened: db.hardened,
            });
        }
        if up_to <= db.redone {
            return Ok(());
        }
        db.apply_redo(up_to);
        let redone = db.redone;
        invariant!(
            self,
            redone == up_to,
            "R-SYNC-2: {}: a redo up to {up_to} left redone at {redone}",
            self.dbs[index].id
        );
        self.assert_log_pointers(index);
        // A secondary reports it; a primary (whose redo the shell ran before its promotion)
        // has no one to report to.
        self.send_progress(index, out);
        Ok(())
    }

    fn log_reverted(
        &mut self,
        index: usize,
        to: Lsn,
        out: &mut Out,
    ) -> Result<(), StorageContractError> {
        let db = &mut self.dbs[index];
        if db.truncations.front() != Some(&to) {
            return Err(StorageContractError::UnexpectedRevert {
                database: db.id,
                to,
                expected: db.truncations.front().copied(),
            });
        }
        db.truncations.pop_front();
        self.assert_log_pointers(index);
        if !self.dbs[index].truncations.is_empty() {
            return Ok(()); // a deeper revert follows
        }
        self.revert_done(index, out);
        // Every truncation is on disk: no revert report is left owed.
        invariant!(
            self,
            self.dbs[index].reverting().is_none(),
            "R-FAIL-4: {}: every truncation done, yet still reverting to {:?}",
            self.dbs[index].id,
            self.dbs[index].reverting()
        );
        Ok(())
    }
}
