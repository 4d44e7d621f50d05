//! The seam between the core's in-memory log and the shell's data files: [`DataStore`].
//!
//! The core keeps a database's log only after its last checkpoint, and the data as the keys
//! written since then. Everything older is in the shell's data file, which the core reads
//! through this trait when a key was not written after the checkpoint. The shell writes the
//! data file only when the core asks ([`Output::Checkpoint`](crate::Output::Checkpoint)), with
//! records every data replica holds and that are never reverted, so the data file is never
//! ahead of what a read may see.

use hadr_types::DatabaseId;
use std::sync::Arc;

/// Why a read of the data file failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A page of the data file failed its checks (checksum, identity): the value cannot be
    /// trusted, and none is returned.
    #[error("{database}: the data file is damaged ({detail}); the copy needs repair or a reseed")]
    Damaged {
        /// The database.
        database: DatabaseId,
        /// What the data file said (file, page, offset, problem).
        detail: String,
    },
    /// The data file could not be read.
    #[error("{database}: the data file cannot be read ({detail})")]
    Unreadable {
        /// The database.
        database: DatabaseId,
        /// The I/O error.
        detail: String,
    },
    /// The core has checkpointed data but was given no store to read it from (a shell bug).
    #[error("{database}: checkpointed data, but no data store was given to the replica")]
    NoStore {
        /// The database.
        database: DatabaseId,
    },
}

impl StoreError {
    /// The database whose data file failed.
    pub fn database(&self) -> DatabaseId {
        match self {
            StoreError::Damaged { database, .. }
            | StoreError::Unreadable { database, .. }
            | StoreError::NoStore { database } => *database,
        }
    }
}

/// The shell's data files, as the core reads them: the value of a key as of the database's
/// last checkpoint (or later: a checkpoint the core asked for and the shell has not reported
/// yet may already be partly written).
///
/// Reads are synchronous: the core calls [`DataStore::get`] while it handles an input, and a
/// page that is not cached is read from disk then. A store is shared with the shell that
/// writes it (`Arc`), so it synchronizes internally.
pub trait DataStore: Send + Sync + std::fmt::Debug {
    /// The value of `key` in `database`'s data file, `None` if it holds none.
    fn get(&self, database: DatabaseId, key: &str) -> Result<Option<String>, StoreError>;
}

/// A shared store.
pub type SharedStore = Arc<dyn DataStore>;
