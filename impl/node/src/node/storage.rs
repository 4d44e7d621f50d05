//! Durable storage of one replica: the state file (`state.json`, hadr-core's
//! [`PersistentState`]) and one write-ahead log per database, each driven by its own thread.
//!
//! A WAL thread performs its database's `AppendLog`, `Fsync`, `Redo` and `RevertLog` outputs
//! strictly in the order the core emitted them and reports each completion in that order
//! (the core's ordering contract). **Group commit**: the thread takes every command that is
//! already queued, writes all the appends, and covers all the fsyncs of that batch with one
//! `fdatasync`; commits that arrive during the fsync form the next batch.

use crate::wal::{Wal, WalError};
use hadr_core::{LogRecord, PersistentState, StorageEvent};
use hadr_types::{DatabaseId, Lsn};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Why storage failed. Any of these stops the replica: it cannot keep its promises.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file could not be written durably.
    #[error("cannot write the replica state {path}: {source}")]
    WriteState {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file could not be read.
    #[error("cannot read the replica state {path}: {source}")]
    ReadState {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not a replica state.
    #[error("the replica state {path} is corrupt ({message}); restore it from a backup or remove the data directory and JOIN again")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// A write-ahead log failed.
    #[error("write-ahead log of {database}: {source}")]
    Wal {
        /// The database.
        database: DatabaseId,
        /// The WAL's error.
        source: WalError,
    },
}

/// The replica's data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens (creating it if needed) a data directory.
    pub fn open(path: &Path) -> Result<DataDir, StorageError> {
        std::fs::create_dir_all(path).map_err(|source| StorageError::DataDir {
            path: path.to_owned(),
            source,
        })?;
        Ok(DataDir {
            path: path.to_owned(),
        })
    }

    fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// The WAL file of a database.
    pub fn wal_path(&self, database: DatabaseId) -> PathBuf {
        self.path.join(format!("db-{}.wal", database.0))
    }

    /// The last stored state, if the replica ever stored one.
    pub fn load_state(&self) -> Result<Option<PersistentState>, StorageError> {
        let path = self.state_path();
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StorageError::ReadState { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| StorageError::CorruptState {
                path,
                message: e.to_string(),
            })
    }

    /// Stores `state` durably: write a temporary file, fsync it, rename it over the old one,
    /// fsync the directory.
    pub fn store_state(&self, state: &PersistentState) -> Result<(), StorageError> {
        let path = self.state_path();
        let tmp = self.path.join("state.json.tmp");
        let write = || -> std::io::Result<()> {
            let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.path)?.sync_all()
        };
        write().map_err(|source| StorageError::WriteState {
            path: path.clone(),
            source,
        })
    }
}

/// A storage operation for a WAL thread.
#[derive(Debug)]
pub enum WalCommand {
    /// `Output::AppendLog`.
    Append(Vec<LogRecord>),
    /// `Output::Fsync`.
    Fsync,
    /// `Output::Redo`: the core applies the records to its key-value data when the
    /// completion arrives; the thread reports it after everything queued before it.
    Redo(Lsn),
    /// `Output::RevertLog`.
    Revert(Lsn),
}

/// A completion or a failure, from a WAL thread.
pub type WalReport = Result<StorageEvent, StorageError>;

/// Opens a database's WAL (recovering a torn tail) and returns its good records.
pub fn open_wal(
    dir: &DataDir,
    database: DatabaseId,
) -> Result<(Wal, Vec<LogRecord>), StorageError> {
    let (wal, recovered) = Wal::open(&dir.wal_path(database), database)
        .map_err(|source| StorageError::Wal { database, source })?;
    if recovered.truncated_bytes > 0 {
        tracing::warn!(
            %database,
            truncated_bytes = recovered.truncated_bytes,
            reason = ?recovered.stop_reason,
            "write-ahead log had a torn or corrupt tail; it was cut at the last good record"
        );
    }
    Ok((wal, recovered.records))
}

/// Starts the WAL thread of `database`; `report` receives its completions in order.
pub fn spawn_wal_thread(
    database: DatabaseId,
    mut wal: Wal,
    report: impl Fn(WalReport) + Send + 'static,
) -> mpsc::Sender<WalCommand> {
    let (tx, rx) = mpsc::channel::<WalCommand>();
    std::thread::Builder::new()
        .name(format!("wal-{}", database.0))
        .spawn(move || {
            let fail = |source| StorageError::Wal { database, source };
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter());
                let mut sync_pending = false;
                let mut written: Option<Lsn> = None;
                for command in batch {
                    let result: Result<(), StorageError> = (|| {
                        match command {
                            WalCommand::Append(records) => {
                                if let Some(last) = records.last() {
                                    wal.append(&records).map_err(fail)?;
                                    written = Some(last.lsn);
                                }
                            }
                            WalCommand::Fsync => sync_pending = true,
                            WalCommand::Redo(up_to) => {
                                flush(
                                    &mut wal,
                                    &mut sync_pending,
                                    &mut written,
                                    database,
                                    &report,
                                )?;
                                report(Ok(StorageEvent::RedoApplied { database, up_to }));
                            }
                            WalCommand::Revert(to) => {
                                flush(
                                    &mut wal,
                                    &mut sync_pending,
                                    &mut written,
                                    database,
                                    &report,
                                )?;
                                wal.truncate_after(to).map_err(fail)?;
                                report(Ok(StorageEvent::LogReverted { database, to }));
                            }
                        }
                        Ok(())
                    })();
                    if let Err(error) = result {
                        report(Err(error));
                        return;
                    }
                }
                if let Err(error) =
                    flush(&mut wal, &mut sync_pending, &mut written, database, &report)
                {
                    report(Err(error));
                    return;
                }
            }
        })
        .expect("spawning a thread");
    tx
}

/// Reports what was written and, if an fsync was asked for, syncs once and reports it.
fn flush(
    wal: &mut Wal,
    sync_pending: &mut bool,
    written: &mut Option<Lsn>,
    database: DatabaseId,
    report: &impl Fn(WalReport),
) -> Result<(), StorageError> {
    let written = written.take();
    if !*sync_pending {
        // Written but not yet durable: worth reporting only when no fsync follows (the
        // hardened report covers it, and saves the driver a wake-up per commit).
        if let Some(up_to) = written {
            report(Ok(StorageEvent::LogWritten { database, up_to }));
        }
    }
    if std::mem::take(sync_pending) {
        let up_to = wal
            .sync()
            .map_err(|source| StorageError::Wal { database, source })?;
        report(Ok(StorageEvent::LogHardened { database, up_to }));
    }
    Ok(())
}
