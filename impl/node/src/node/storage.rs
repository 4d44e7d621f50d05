//! Durable storage of one replica: the state file (`state.json`, hadr-core's
//! [`PersistentState`]) and one write-ahead log per database (performed by the driver, see
//! `after_input`).

use crate::wal::{Wal, WalError};
use hadr_core::{LogRecord, PersistentState};
use hadr_types::DatabaseId;
use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    /// A background fsync of a write-ahead log failed.
    #[error("fsync of the write-ahead log of {database} failed: {message}")]
    Flush {
        /// The database.
        database: DatabaseId,
        /// The system's error.
        message: String,
    },
    /// A flusher thread could not be started.
    #[error("cannot start a flusher thread: {source}")]
    Thread {
        /// The system's error.
        source: std::io::Error,
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
