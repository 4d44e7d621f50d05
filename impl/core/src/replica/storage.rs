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
            | StorageEvent::LogReverted { database, .. } => database,
        };
        let index = self
            .db_index(database)
            .ok_or(StorageContractError::UnknownDatabase { database })?;
        match event {
            StorageEvent::LogWritten { up_to, .. } => self.log_written(index, up_to),
            StorageEvent::LogHardened { up_to, .. } => self.log_hardened(index, up_to, out),
            StorageEvent::RedoApplied { up_to, .. } => self.redo_applied(index, up_to, out),
            StorageEvent::LogReverted { to, .. } => self.log_reverted(index, to, out),
        }
    }

    /// What a completion reporting `up_to` covers. While truncations run, completions of
    /// operations issued before them may still cover records they discard: they count only up
    /// to the lowest fork point in flight.
    fn covered(&self, index: usize, up_to: Lsn) -> Lsn {
        let limit = self.dbs[index].truncations.iter().min().copied();
        limit.map_or(up_to, |to| up_to.min(to))
    }

    /// What a write or an fsync completion covers, which must be in the log.
    fn covered_log(
        &self,
        index: usize,
        what: &'static str,
        up_to: Lsn,
    ) -> Result<Lsn, StorageContractError> {
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
        Ok(up_to)
    }

    fn log_written(&mut self, index: usize, up_to: Lsn) -> Result<(), StorageContractError> {
        let up_to = self.covered_log(index, "a write", up_to)?;
        let db = &mut self.dbs[index];
        db.written = db.written.max(up_to);
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
        if self.role == Role::Primary {
            self.primary_hardened(index, up_to, redo);
        } else {
            self.secondary_hardened(index, up_to, redo, out);
        }
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
        if !db.truncations.is_empty() {
            return Ok(()); // a deeper revert follows
        }
        self.revert_done(index, out);
        Ok(())
    }
}
