//! Storage, group commit and flushing: appends as the core asks for them, every fsync a batch
//! of outputs asked for once after the batch (on this task, or on the database's flusher
//! thread under load), redo reported in batches, reverts, and the completions reported to the
//! core in the order it emitted the operations (the ordering contract).
//!
//! ```text
//!  after_input: perform outputs ─▶ fsyncs pending? ─no─▶ done (network, event log)
//!                    ▲                   │ yes
//!                    │      yield once (ship first), gather what queued meanwhile, once
//!                    │                   ▼
//!                    └──── one append since? sync here : start_flush ─▶ flusher thread
//!                                                               Event::Flushed ◀─┘
//! ```

use super::error::NodeError;
use super::run::Inbox;
use super::storage::StorageError;
use super::{Event, State};
use crate::wal::{FlushJob, Wal};
use hadr_core::{LogRecord, Output, StorageEvent};
use hadr_types::{DatabaseId, Lsn};
use std::collections::HashMap;

/// Redo runs this long after the hardening it follows, in batches: it is asynchronous
/// (R-SYNC-2), and each report makes a secondary send a `Progress`, so batching saves the
/// primary a wake-up per commit.
const REDO_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

/// Background fsyncs in flight, per database, and the storage outputs that wait for them.
///
/// Completions are reported in emission order (the ordering contract). A background fsync
/// completes after the appends performed meanwhile, which is harmless (an append reports
/// nothing); but a revert must neither truncate the log under it nor report before it. So
/// while a background fsync of a database runs, a `RevertLog` of it waits, and so does every
/// append, fsync and revert of that database after it, until the fsync completes. Redo is
/// not held: a redo reported late is the one relaxation of the order the core accepts.
#[derive(Default)]
pub(super) struct BackgroundFlushes {
    /// Per database with a background fsync in flight: the outputs waiting for it, in order.
    waiting: HashMap<DatabaseId, Vec<Output>>,
}

impl BackgroundFlushes {
    /// A background fsync of `database` started.
    fn started(&mut self, database: DatabaseId) {
        self.waiting.insert(database, Vec::new());
    }

    /// Whether a background fsync of `database` is in flight.
    pub(super) fn running(&self, database: DatabaseId) -> bool {
        self.waiting.contains_key(&database)
    }

    /// `output` if it may be performed now; `None` if it waits for the background fsync of
    /// its database ([`BackgroundFlushes::finished`] hands it back).
    pub(super) fn admit(&mut self, output: Output) -> Option<Output> {
        let (Output::AppendLog { database, .. }
        | Output::Fsync { database, .. }
        | Output::RevertLog { database, .. }
        | Output::TruncateLog { database, .. }) = &output
        else {
            return Some(output);
        };
        match self.waiting.get_mut(database) {
            Some(waiting)
                if !waiting.is_empty()
                    || matches!(
                        output,
                        Output::RevertLog { .. } | Output::TruncateLog { .. }
                    ) =>
            {
                waiting.push(output);
                None
            }
            _ => Some(output),
        }
    }

    /// The background fsync of `database` finished: the outputs that waited for it, in order.
    fn finished(&mut self, database: DatabaseId) -> Vec<Output> {
        self.waiting.remove(&database).unwrap_or_default()
    }
}

impl State {
    /// Performs every output of the core, in order, then the fsyncs they asked for.
    ///
    /// Storage is performed on this task: appends as they come, and every fsync requested by
    /// a batch of outputs once, after the batch (group commit: commits that arrive while it
    /// runs share the next one). Before blocking in fsync the task yields once, so that the
    /// connection writers put the log just shipped on the wire: secondaries harden it while
    /// the primary does (R-COMMIT-2 waits for both).
    pub(super) async fn after_input(&mut self, inbox: &mut Inbox) -> Result<(), NodeError> {
        let mut gathered = false;
        loop {
            while let Some(output) = self.replica.poll_output() {
                self.perform(output)?;
            }
            if self.sync_pending.iter().all(|db| self.flushes.running(*db)) {
                // Nothing to sync, or only databases whose fsync in flight will be followed
                // by another when it completes.
                break;
            }
            if std::mem::take(&mut self.sent) {
                tokio::task::yield_now().await;
            }
            // Group commit: what arrived meanwhile (commits, acknowledgements) joins this
            // fsync, once, so that a steady load cannot put the fsync off.
            if !gathered {
                gathered = true;
                if self.handle_queued(None, inbox)? > 0 {
                    continue;
                }
            }
            self.flush_pending()?;
        }
        if self.net.is_none() {
            if let Some(config) = self.replica.config().cloned() {
                self.start_network(&config).await?;
            }
        }
        if let Some(log) = &mut self.event_log {
            if !log.record(self.replica.observe()) {
                self.event_log = None;
            }
        }
        Ok(())
    }

    /// Performs the pending fsyncs. Under load (several appends since the last fsync) the
    /// fsync runs on a flusher thread while this task goes on receiving, appending and
    /// shipping, so that the disk is never idle between two flushes; otherwise it runs here,
    /// which spares a lone commit two thread hand-offs.
    fn flush_pending(&mut self) -> Result<(), NodeError> {
        let background = std::mem::take(&mut self.turn_appends) > 1;
        let pending: Vec<DatabaseId> = self
            .sync_pending
            .iter()
            .copied()
            .filter(|db| !self.flushes.running(*db))
            .collect();
        for database in pending {
            if background {
                self.start_flush(database)?;
            } else {
                self.sync(database)?;
            }
        }
        Ok(())
    }

    /// `Output::AppendLog`: the records go to the log file (the page cache), at its end.
    pub(super) fn append(
        &mut self,
        database: DatabaseId,
        records: &[LogRecord],
    ) -> Result<(), NodeError> {
        self.turn_appends += 1;
        self.wal(database)?
            .append(records)
            .map_err(|source| StorageError::Wal { database, source })?;
        Ok(())
    }

    /// `Output::Redo`: the data is the core's; redo is reported in batches (`REDO_DELAY`),
    /// never on a commit's path (R-SYNC-2), always after the fsync that covered it. A batch may
    /// be reported after the completions of later fsyncs: the one relaxation of the emission
    /// order, which the core accepts (redo only moves forward and is clamped to what is
    /// hardened; a revert reports the pending redo first).
    pub(super) fn queue_redo(&mut self, database: DatabaseId, up_to: Lsn) {
        let pending = self.redo_pending.entry(database).or_insert(up_to);
        *pending = (*pending).max(up_to);
        self.redo_due
            .get_or_insert_with(|| tokio::time::Instant::now() + REDO_DELAY);
    }

    /// `Output::RevertLog`: completions in emission order, so an fsync and a redo asked for
    /// before the revert are reported first; then the log is cut back durably.
    pub(super) fn revert(&mut self, database: DatabaseId, to: Lsn) -> Result<(), NodeError> {
        self.sync(database)?;
        if let Some(up_to) = self.redo_pending.remove(&database) {
            self.report(StorageEvent::RedoApplied { database, up_to })?;
        }
        self.wal(database)?
            .truncate_after(to)
            .map_err(|source| StorageError::Wal { database, source })?;
        self.report(StorageEvent::LogReverted { database, to })
    }

    /// `Output::TruncateLog`: the log file drops the checkpointed records, after the fsyncs
    /// asked before (a background fsync of the database holds it, see `BackgroundFlushes`).
    pub(super) fn truncate_log(
        &mut self,
        database: DatabaseId,
        through: Lsn,
    ) -> Result<(), NodeError> {
        self.sync(database)?;
        self.wal(database)?
            .truncate_through(through)
            .map_err(|source| StorageError::Wal { database, source })?;
        // The flusher thread's handle follows the log to its new file.
        Ok(())
    }

    /// A flusher thread finished an fsync: it is reported, then what waited for it is
    /// performed, in order.
    pub(super) fn flushed(
        &mut self,
        database: DatabaseId,
        up_to: Lsn,
        result: std::io::Result<()>,
    ) -> Result<(), NodeError> {
        if let Err(error) = result {
            let source = self.wal(database)?.flush_failed(error);
            return Err(StorageError::Wal { database, source }.into());
        }
        let waited = self.flushes.finished(database);
        self.wal(database)?.mark_durable(up_to);
        self.report(StorageEvent::LogHardened { database, up_to })?;
        for output in waited {
            self.perform(output)?;
        }
        Ok(())
    }

    fn wal(&mut self, database: DatabaseId) -> Result<&mut Wal, NodeError> {
        self.wals
            .get_mut(&database)
            .ok_or(NodeError::NoWal(database))
    }

    /// Hands a pending fsync of `database` to its flusher thread.
    fn start_flush(&mut self, database: DatabaseId) -> Result<(), NodeError> {
        self.sync_pending.remove(&database);
        let wal = self.wal(database)?;
        let Some(job) = wal
            .prepare_flush()
            .map_err(|source| StorageError::Wal { database, source })?
        else {
            let durable = wal.durable_lsn();
            return self.report(StorageEvent::LogHardened {
                database,
                up_to: durable,
            });
        };
        if !self.flushers.contains_key(&database) {
            let flusher = self.start_flusher(database)?;
            self.flushers.insert(database, flusher);
        }
        let sent = self
            .flushers
            .get(&database)
            .is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            return Err(StorageError::FlusherGone { database }.into());
        }
        self.flushes.started(database);
        Ok(())
    }

    /// The flusher thread of `database`: it runs the fsyncs handed to it and reports each as
    /// `Event::Flushed`, until one fails.
    fn start_flusher(
        &mut self,
        database: DatabaseId,
    ) -> Result<std::sync::mpsc::Sender<FlushJob>, NodeError> {
        let handle = self
            .wal(database)?
            .flush_handle()
            .map_err(|source| StorageError::Wal { database, source })?;
        let events = self.events.clone();
        let (tx, rx) = std::sync::mpsc::channel::<FlushJob>();
        std::thread::Builder::new()
            .name(format!("flush-{}", database.0))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let result = job.run(&handle);
                    let failed = result.is_err();
                    let _ = events.send(Event::Flushed {
                        database,
                        up_to: job.up_to(),
                        result,
                    });
                    if failed {
                        return;
                    }
                }
            })
            .map_err(|source| StorageError::Thread { source })?;
        Ok(tx)
    }

    /// Performs a pending fsync of `database`, if any, and reports it.
    fn sync(&mut self, database: DatabaseId) -> Result<(), NodeError> {
        if self.sync_pending.remove(&database) {
            let up_to = self
                .wal(database)?
                .sync()
                .map_err(|source| StorageError::Wal { database, source })?;
            self.report(StorageEvent::LogHardened { database, up_to })?;
        }
        Ok(())
    }

    /// Reports every pending redo.
    pub(super) fn redo(&mut self) -> Result<(), NodeError> {
        self.redo_due = None;
        for (database, up_to) in std::mem::take(&mut self.redo_pending) {
            self.report(StorageEvent::RedoApplied { database, up_to })?;
        }
        Ok(())
    }

    pub(super) fn report(&mut self, event: StorageEvent) -> Result<(), NodeError> {
        let now = self.now();
        self.replica
            .handle_storage(now, event)
            .map_err(NodeError::StorageContract)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::run::tests::driver_at;
    use hadr_core::Replica;

    const DB0: DatabaseId = DatabaseId(0);
    const DB1: DatabaseId = DatabaseId(1);

    fn append(database: DatabaseId) -> Output {
        Output::AppendLog {
            database,
            records: Vec::new(),
        }
    }

    fn fsync(database: DatabaseId, up_to: u64) -> Output {
        Output::Fsync {
            database,
            up_to: Lsn(up_to),
        }
    }

    fn revert(database: DatabaseId, to: u64) -> Output {
        Output::RevertLog {
            database,
            to: Lsn(to),
        }
    }

    #[test]
    fn a_revert_waits_behind_a_background_fsync_and_so_does_what_follows_it() {
        let mut flushes = BackgroundFlushes::default();
        assert_eq!(
            flushes.admit(revert(DB0, 1)),
            Some(revert(DB0, 1)),
            "none in flight"
        );
        flushes.started(DB0);
        assert!(flushes.running(DB0) && !flushes.running(DB1));
        // Appends and fsyncs go on meanwhile (the next fsync covers them)...
        assert_eq!(flushes.admit(append(DB0)), Some(append(DB0)));
        assert_eq!(flushes.admit(fsync(DB0, 2)), Some(fsync(DB0, 2)));
        // ... but a revert waits, and every storage output of that database after it.
        assert_eq!(flushes.admit(revert(DB0, 1)), None);
        assert_eq!(flushes.admit(append(DB0)), None);
        assert_eq!(flushes.admit(fsync(DB0, 2)), None);
        // Other databases go on, and so does what is not a log write: redo too.
        assert_eq!(flushes.admit(append(DB1)), Some(append(DB1)));
        let redo = Output::Redo {
            database: DB0,
            up_to: Lsn(1),
        };
        assert_eq!(flushes.admit(redo.clone()), Some(redo));
        assert_eq!(
            flushes.admit(Output::DisconnectClients),
            Some(Output::DisconnectClients)
        );
        // When the fsync completes they come back, in the order they were emitted.
        assert_eq!(
            flushes.finished(DB0),
            vec![revert(DB0, 1), append(DB0), fsync(DB0, 2)]
        );
        assert!(!flushes.running(DB0));
        assert_eq!(flushes.admit(revert(DB0, 1)), Some(revert(DB0, 1)));
    }

    #[test]
    fn the_driver_holds_a_revert_while_a_background_fsync_of_its_database_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut state, _inbox, _events) = driver_at(Replica::new("R0"), 0, &dir);
        state.flushes.started(DB0);
        // Performed now, the revert would need the database's log (there is none here).
        state.perform(revert(DB0, 1)).unwrap();
        state.perform(append(DB0)).unwrap();
        assert_eq!(
            state.flushes.finished(DB0),
            vec![revert(DB0, 1), append(DB0)]
        );
        assert!(matches!(
            state.perform(revert(DB0, 1)),
            Err(NodeError::NoWal(DB0))
        ));
    }
}
