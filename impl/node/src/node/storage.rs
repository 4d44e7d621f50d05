//! Durable storage of one replica: the state file (`state.json`, hadr-core's
//! [`PersistentState`]) and one write-ahead log per database (performed by the driver, see
//! `after_input`); and [`offline_observation`], what a stopped replica's files say.

use crate::config::NodeConfig;
use crate::wal::{Recovered, Wal, WalError, WalOptions};
use hadr_core::{CoreOptions, LogDamage, LogRecord, PersistentState, Replica};
use hadr_types::{DatabaseId, DatabaseObservation, DatabaseState, Lsn, ReplicaObservation};
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
    /// The flusher thread of a write-ahead log is gone (it stopped after a failed flush, or
    /// panicked): the node cannot make that log durable any more.
    #[error("the flusher thread of the write-ahead log of {database} is gone: restart the node")]
    FlusherGone {
        /// The database.
        database: DatabaseId,
    },
    /// A flusher thread could not be started.
    #[error("cannot start a flusher thread: {source}")]
    Thread {
        /// The system's error.
        source: std::io::Error,
    },
    /// A data file failed (it could not be opened, read or written, or a page in it is
    /// damaged).
    #[error("data file of {database}: {source}")]
    Data {
        /// The database.
        database: DatabaseId,
        /// The data file's error.
        source: crate::pages::PageError,
    },
    /// The data file holds less than the checkpoint the state file records.
    #[error("the data file {} of {database} holds the log up to {at}, but the replica checkpointed up to {checkpointed} and dropped that log: the data file was replaced by an older one; restore it, or remove the data directory and reseed the replica", path.display())]
    DataFileBehind {
        /// The database.
        database: DatabaseId,
        /// The file.
        path: PathBuf,
        /// What it holds.
        at: Lsn,
        /// What the state file records.
        checkpointed: Lsn,
    },
    /// The data file is missing while the state file records a checkpoint.
    #[error("the data file {} of {database} is missing, but the replica checkpointed up to {checkpointed} and dropped that log: restore the file, or remove the data directory and reseed the replica", path.display())]
    DataFileMissing {
        /// The database.
        database: DatabaseId,
        /// The file.
        path: PathBuf,
        /// What the state file records.
        checkpointed: Lsn,
    },
    /// The checkpoint thread of a data file is gone (it stopped after a failed checkpoint).
    #[error("the checkpoint thread of the data file of {database} is gone: restart the node")]
    CheckpointerGone {
        /// The database.
        database: DatabaseId,
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

    /// The data file of a database.
    pub fn data_path(&self, database: DatabaseId) -> PathBuf {
        self.path.join(format!("db-{}.data", database.0))
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

/// Opens a database's WAL, cutting a torn tail, and returns its records. A damaged log is
/// refused ([`WalError::Damaged`]) with nothing changed: see [`open_wals`].
pub fn open_wal(
    dir: &DataDir,
    database: DatabaseId,
) -> Result<(Wal, Vec<LogRecord>), StorageError> {
    let (wal, recovered) = Wal::open(&dir.wal_path(database), database)
        .map_err(|source| StorageError::Wal { database, source })?;
    warn_torn_tail(database, &recovered);
    Ok((wal, recovered.records))
}

fn warn_torn_tail(database: DatabaseId, recovered: &Recovered) {
    if recovered.truncated_bytes > 0 {
        tracing::warn!(
            %database,
            truncated_bytes = recovered.truncated_bytes,
            reason = ?recovered.stop_reason,
            "write-ahead log had a torn tail (a write interrupted by a crash, nothing valid after it); it was cut at the last good record"
        );
    }
}

/// What the core records of damage the WAL's recovery found, in a log whose records up to
/// `checkpointed` are in the data file: nothing when every record lost is there too (a damaged
/// record in the prefix a checkpoint covers, not dropped from the file yet), else the damage
/// with the data file's records counted as kept.
fn log_damage(damage: &crate::wal::Damage, checkpointed: Lsn) -> Option<LogDamage> {
    (damage.lost_through > checkpointed).then(|| LogDamage {
        kept: damage.kept.max(checkpointed),
        lost_through: damage.lost_through,
    })
}

/// Opens the WAL of every database of a replica that stored `state` and returns them with
/// their records after the database's checkpoint (the ones recovery takes; a log file may
/// still hold older ones, which the data file holds), in configuration order.
///
/// A torn tail (a write a crash interrupted) is cut. A **damaged** log (a record that fails its
/// checksum with valid records after it) is not: the damage is logged as an ERROR naming the
/// file and offset, recorded in the database's [`PersistentDatabase::damaged`] (stored durably
/// in `state` first), and only then is the damaged file kept aside and the log started again
/// from its intact prefix ([`Wal::quarantine`]). The core then holds the database SUSPECT:
/// never led, reseeded from a primary, or brought online by an operator accepting the loss.
///
/// [`PersistentDatabase::damaged`]: hadr_core::PersistentDatabase::damaged
pub fn open_wals(
    dir: &DataDir,
    state: &mut PersistentState,
) -> Result<Vec<(Wal, Vec<LogRecord>)>, StorageError> {
    let mut opened = Vec::with_capacity(state.databases.len());
    for index in 0..state.databases.len() {
        let database = DatabaseId(index as u8);
        let checkpointed = state.databases[index].checkpointed;
        let damage = match open_wal(dir, database) {
            Err(StorageError::Wal {
                source: WalError::Damaged { damage, .. },
                ..
            }) => damage,
            other => {
                let (wal, records) = other?;
                opened.push(after_checkpoint(wal, records, database, checkpointed)?);
                continue;
            }
        };
        let path = dir.wal_path(database);
        match log_damage(&damage, checkpointed) {
            Some(lost) => {
                tracing::error!(
                    %database,
                    path = %path.display(),
                    offset = damage.kept_bytes,
                    %damage,
                    "write-ahead log damaged: the database is SUSPECT; nothing was deleted"
                );
                state.databases[index].record_damage(lost);
                dir.store_state(state)?;
            }
            None => tracing::warn!(
                %database,
                path = %path.display(),
                offset = damage.kept_bytes,
                %damage,
                %checkpointed,
                "write-ahead log damaged only where the data file's checkpoint holds every record: nothing is lost, the log starts again after the checkpoint"
            ),
        }
        let (wal, recovered, kept) = Wal::quarantine(&path, database, WalOptions::default())
            .map_err(|source| StorageError::Wal { database, source })?;
        if let Some(kept) = kept {
            tracing::error!(%database, kept = %kept.display(), "the damaged write-ahead log is kept for inspection");
        }
        warn_torn_tail(database, &recovered);
        opened.push(after_checkpoint(
            wal,
            recovered.records,
            database,
            checkpointed,
        )?);
    }
    Ok(opened)
}

/// A log and its records as recovery takes them after the data file's checkpoint: the
/// records it covers are left out (a crash can come before the log file dropped them), and a
/// log that ends before it (its intact part was cut before the checkpointed records were
/// dropped from it) starts again after it: the next record it takes is the one after it.
fn after_checkpoint(
    mut wal: Wal,
    mut records: Vec<LogRecord>,
    database: DatabaseId,
    checkpointed: Lsn,
) -> Result<(Wal, Vec<LogRecord>), StorageError> {
    if wal.last_lsn() < checkpointed {
        wal.restart_after(checkpointed)
            .map_err(|source| StorageError::Wal { database, source })?;
    }
    records.retain(|record| record.lsn > checkpointed);
    Ok((wal, records))
}

/// Why [`offline_observation`] could not observe a stopped replica.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The data directory does not exist.
    #[error("the data directory {} of replica {name} does not exist; check `data_dir` in its node.toml", path.display())]
    NoDataDir {
        /// The instance name.
        name: String,
        /// The directory.
        path: PathBuf,
    },
    /// The replica never stored a state: it never joined an availability group.
    #[error("replica {name} has no state file in {}: it never joined an availability group, so there is nothing to observe", path.display())]
    NotInAvailabilityGroup {
        /// The instance name.
        name: String,
        /// The data directory.
        path: PathBuf,
    },
    /// The state file or a write-ahead log cannot be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The files do not make a replica that could restart (the checks of a restart).
    #[error("replica {name} could not restart from {}: {source}", path.display())]
    Recovery {
        /// The instance name.
        name: String,
        /// The data directory.
        path: PathBuf,
        /// What recovery refused.
        source: hadr_core::RecoveryError,
    },
}

/// The observation of a stopped (crashed) replica, read from its data directory without
/// changing anything: the shape `GET /observation` has, as the reference simulation reports a
/// crashed node (`hadr_core::testing::Cluster::observation`). `up` is false and `role` is
/// `None`; per database, `end_of_log_lsn`, `last_hardened_lsn` and `last_redone_lsn` are all
/// the last record a restart would recover from the WAL (a torn or corrupt tail excluded,
/// though left on disk), `suspended` comes from the state file (except SUSPEND_FROM_PRIMARY), `synchronization_state` is
/// `None`, `is_failover_ready` false and `database_state` ONLINE.
///
/// The files must make a replica that could restart (the same checks as a restart:
/// [`Replica::recover`]); a replica that never joined a group has nothing to observe. Meant
/// for a stopped replica: the files of a running one may change while they are read.
pub fn offline_observation(config: &NodeConfig) -> Result<ReplicaObservation, OfflineError> {
    let name = &config.name;
    let path = &config.data_dir;
    if !path.is_dir() {
        return Err(OfflineError::NoDataDir {
            name: name.clone(),
            path: path.clone(),
        });
    }
    let dir = DataDir { path: path.clone() };
    let mut state = dir
        .load_state()?
        .ok_or_else(|| OfflineError::NotInAvailabilityGroup {
            name: name.clone(),
            path: path.clone(),
        })?;
    let mut logs = Vec::with_capacity(state.config.databases.len());
    for i in 0..state.config.databases.len() {
        let database = DatabaseId(i as u8);
        let recovered = Wal::inspect(&dir.wal_path(database), database)
            .map_err(|source| StorageError::Wal { database, source })?;
        // What a restart would record (without recording it: nothing changes here).
        if let (Some(damage), Some(stored)) = (&recovered.damage, state.databases.get_mut(i)) {
            if let Some(lost) = log_damage(damage, stored.checkpointed) {
                stored.record_damage(lost);
            }
        }
        // Records the last checkpoint covers are in the data file (see `open_replica`).
        let checkpointed = state.databases.get(i).map_or(Lsn(0), |d| d.checkpointed);
        let mut records = recovered.records;
        records.retain(|record| record.lsn > checkpointed);
        logs.push(records);
    }
    let databases = logs
        .iter()
        .zip(&state.databases)
        .enumerate()
        .map(|(i, (log, stored))| {
            let durable = log.last().map_or(stored.checkpointed, |record| record.lsn);
            DatabaseObservation {
                database: DatabaseId(i as u8),
                database_state: match stored.damaged {
                    Some(_) => DatabaseState::Suspect,
                    None => DatabaseState::Online,
                },
                synchronization_state: None,
                // The primary's suspension is the primary's to tell: a stopped replica does
                // not know it still holds (as the core's views of a replica without session).
                suspended: stored
                    .suspended
                    .filter(|r| *r != hadr_types::SuspendReason::Primary),
                end_of_log_lsn: durable,
                last_hardened_lsn: durable,
                last_redone_lsn: durable,
                is_failover_ready: false,
            }
        })
        .collect();
    let replica = state.replica;
    // The checks of a restart, on a throwaway replica (the core does no I/O).
    Replica::recover(0, name.clone(), state, logs, CoreOptions::default()).map_err(|source| {
        OfflineError::Recovery {
            name: name.clone(),
            path: path.clone(),
            source,
        }
    })?;
    Ok(ReplicaObservation {
        replica,
        up: false,
        role: None,
        databases,
    })
}
