//! The data file of each database ([`crate::pages::DataFile`]): what the core reads keys that
//! were checkpointed from ([`DataFiles`], its [`DataStore`]), and the checkpoints it asks for
//! ([`hadr_core::Output::Checkpoint`]), written on a thread per database so that applying tens
//! of megabytes of records and the fsyncs never hold up the replica's task.
//!
//! ```text
//!  Output::Checkpoint ─▶ checkpoint thread: put every write (the file's lock taken per
//!                        batch, so reads go on) ─▶ DataFile::checkpoint (fsync)
//!  StorageEvent::Checkpointed ◀── Event::Checkpointed ◀──┘
//! ```
//!
//! A data file may be ahead of the checkpoint the state file records (a crash after the data
//! file's checkpoint and before the report): the records after the recorded checkpoint are
//! still in the log, the core reads keys they wrote from it, and the next checkpoint puts them
//! again, in order. It is never behind: the core asks for `TruncateLog` only after the report.

use super::storage::{DataDir, StorageError};
use super::{Event, State};
use crate::pages::{DataFile, DataFileOptions, PageError};
use hadr_core::{DataStore, LogRecord, StoreError};
use hadr_types::{DatabaseId, Lsn};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// Writes put per hold of a data file's lock while a checkpoint is written: reads wait for at
/// most this many.
const PUTS_PER_LOCK: usize = 256;

/// The data files of the replica's databases, shared by the core (reads) and the checkpoint
/// threads (writes).
#[derive(Debug, Default)]
pub struct DataFiles {
    files: RwLock<HashMap<DatabaseId, Arc<Mutex<DataFile>>>>,
}

impl DataFiles {
    /// Opens the data file of `database` (creating an empty one if it has none), checking that
    /// it holds at least the checkpoint the state file records.
    pub fn open(
        &self,
        dir: &DataDir,
        database: DatabaseId,
        checkpointed: Lsn,
        options: DataFileOptions,
    ) -> Result<(), StorageError> {
        if self.file(database).is_some() {
            return Ok(());
        }
        let path = dir.data_path(database);
        let data_error = |source| StorageError::Data { database, source };
        let file = if path.exists() {
            let (file, at) = DataFile::open(&path, database, options).map_err(data_error)?;
            if at < checkpointed {
                return Err(StorageError::DataFileBehind {
                    database,
                    path,
                    at,
                    checkpointed,
                });
            }
            file
        } else if checkpointed > Lsn(0) {
            return Err(StorageError::DataFileMissing {
                database,
                path,
                checkpointed,
            });
        } else {
            DataFile::create(&path, database, options).map_err(data_error)?
        };
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(database, Arc::new(Mutex::new(file)));
        Ok(())
    }

    fn file(&self, database: DatabaseId) -> Option<Arc<Mutex<DataFile>>> {
        self.files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&database)
            .cloned()
    }
}

impl DataStore for DataFiles {
    fn get(&self, database: DatabaseId, key: &str) -> Result<Option<String>, StoreError> {
        let Some(file) = self.file(database) else {
            return Err(StoreError::Unreadable {
                database,
                detail: "the database has no data file open".into(),
            });
        };
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        file.get(key).map_err(|error| match error {
            PageError::Damaged { .. } | PageError::Inconsistent { .. } => StoreError::Damaged {
                database,
                detail: error.to_string(),
            },
            _ => StoreError::Unreadable {
                database,
                detail: error.to_string(),
            },
        })
    }
}

/// A checkpoint for a checkpoint thread: the records to put, and the LSN it covers.
pub(super) struct CheckpointJob {
    records: Vec<LogRecord>,
    up_to: Lsn,
}

/// Puts the records' writes into `file`, then makes it durable labelled `up_to` (or the LSN
/// the file already holds, if it is ahead: see the module docs).
fn write_checkpoint(file: &Mutex<DataFile>, job: &CheckpointJob) -> Result<(), PageError> {
    for batch in job.records.chunks(PUTS_PER_LOCK) {
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        for record in batch {
            for write in &record.writes {
                file.put(&write.key, &write.value, record.lsn)?;
            }
        }
    }
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    let label = job.up_to.max(file.checkpoint_lsn());
    file.checkpoint(label)
}

impl State {
    /// `Output::Checkpoint`: handed to the database's checkpoint thread.
    pub(super) fn checkpoint(
        &mut self,
        database: DatabaseId,
        records: Vec<LogRecord>,
        up_to: Lsn,
    ) -> Result<(), super::error::NodeError> {
        if !self.checkpointers.contains_key(&database) {
            let file = self
                .data_files
                .file(database)
                .ok_or(super::error::NodeError::NoDataFile(database))?;
            let thread = start_checkpointer(database, file, self.events.clone())?;
            self.checkpointers.insert(database, thread);
        }
        let sent = self
            .checkpointers
            .get(&database)
            .is_some_and(|tx| tx.send(CheckpointJob { records, up_to }).is_ok());
        if !sent {
            return Err(StorageError::CheckpointerGone { database }.into());
        }
        Ok(())
    }

    /// A checkpoint thread finished: reported to the core, or the node stops on its error
    /// (the data file must be repaired before the replica can checkpoint again).
    pub(super) fn checkpointed(
        &mut self,
        database: DatabaseId,
        up_to: Lsn,
        result: Result<(), PageError>,
    ) -> Result<(), super::error::NodeError> {
        result.map_err(|source| StorageError::Data { database, source })?;
        self.report(hadr_core::StorageEvent::Checkpointed { database, up_to })
    }
}

/// The checkpoint thread of `database`: it writes the checkpoints handed to it and reports
/// each as `Event::Checkpointed`, until one fails.
fn start_checkpointer(
    database: DatabaseId,
    file: Arc<Mutex<DataFile>>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
) -> Result<std::sync::mpsc::Sender<CheckpointJob>, StorageError> {
    let (tx, rx) = std::sync::mpsc::channel::<CheckpointJob>();
    std::thread::Builder::new()
        .name(format!("checkpoint-{}", database.0))
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                let result = write_checkpoint(&file, &job);
                let failed = result.is_err();
                let _ = events.send(Event::Checkpointed {
                    database,
                    up_to: job.up_to,
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
