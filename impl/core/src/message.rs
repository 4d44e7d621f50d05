//! Messages between replicas, already decoded: the core never sees bytes (the node crate frames
//! and encodes them). Every message carries the sender's current [`Epoch`].
//!
//! ```text
//!  secondary                                   primary
//!     │── Hello (ends of log, fork histories) ──▶│  fork point per database
//!     │◀── Hello ────────────────────────────────│
//!     │◀── Log(first_lsn, records) ──────────────│  R-SYNC-1: in LSN order, no gap
//!     │── GapRefused(expected) ─────────────────▶│  resend from `expected`
//!     │── Progress(received, hardened, redone) ─▶│  R-COMMIT-2: hardening acks
//!     │◀── SyncState(SYNCHRONIZED …) ────────────│
//!     │◀── Revert(to) / Suspend(reason) ─────────│  R-FAIL-4/6, R-SYNC-7
//! ```

use crate::ids::Epoch;
use crate::log::{ForkSegment, LogRecord};
use hadr_types::{DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState};
use serde::{Deserialize, Serialize};

/// One message from another replica of the availability group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerMessage {
    /// The sender's current epoch (the epoch of the primary it follows or leads).
    pub epoch: Epoch,
    /// What it says.
    pub body: MessageBody,
}

impl PeerMessage {
    /// Every epoch the message carries is within [`Epoch::MAX_TERM`].
    pub fn epochs_in_range(&self) -> bool {
        let ok = |e: &Epoch| e.term <= Epoch::MAX_TERM;
        let hello_ok =
            |h: &DatabaseHello| ok(&h.accepted_epoch) && h.forks.iter().all(|f| ok(&f.epoch));
        ok(&self.epoch)
            && match &self.body {
                MessageBody::Hello(hello) => {
                    ok(&hello.last_forced_epoch) && hello.databases.iter().all(hello_ok)
                }
                MessageBody::Rejoin(hello) => hello_ok(hello),
                MessageBody::Log(block) => block.records.iter().all(|r| ok(&r.epoch)),
                _ => true,
            }
    }
}

/// The kinds of peer message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// The handshake, sent by both sides when a connection opens and again whenever the
    /// sender's role or epoch changes.
    Hello(Hello),
    /// A secondary database asks to synchronize again after a RESUME (R-SYNC-7, R-FAIL-4).
    Rejoin(DatabaseHello),
    /// Keeps the session alive (R-HEALTH-1).
    Ping,
    /// Primary → secondary: consecutive log records of one database (R-SYNC-1).
    Log(LogBlock),
    /// Secondary → primary: a block did not start at my end of log; resend from `expected`.
    GapRefused {
        /// The database.
        database: DatabaseId,
        /// The first LSN the secondary is missing.
        expected: Lsn,
    },
    /// Secondary → primary: how far this database got (R-SYNC-2; the hardened LSN is the
    /// acknowledgement sync commits wait for, R-COMMIT-2).
    Progress {
        /// The database.
        database: DatabaseId,
        /// Last LSN received.
        received: Lsn,
        /// Last LSN hardened (fsync reported done).
        hardened: Lsn,
        /// Last LSN redone.
        redone: Lsn,
    },
    /// Primary → secondary: the synchronization state the primary assigned (R-SYNC-3).
    SyncState {
        /// The database.
        database: DatabaseId,
        /// Its state.
        state: SyncState,
    },
    /// Primary → secondary: data movement to this database stopped (R-SYNC-7, R-FAIL-4).
    Suspend {
        /// The database.
        database: DatabaseId,
        /// Why.
        reason: SuspendReason,
    },
    /// Secondary → primary: an operator suspended this secondary database.
    Suspended {
        /// The database.
        database: DatabaseId,
    },
    /// Primary → secondary: the primary database was resumed; rejoin if you were suspended
    /// because of it (R-SYNC-7).
    ResumeFromPrimary {
        /// The database.
        database: DatabaseId,
    },
    /// Primary → secondary: discard your log after `to` (the fork point) and roll back to it
    /// (R-FAIL-4, R-FAIL-6).
    Revert {
        /// The database.
        database: DatabaseId,
        /// The fork point: the last LSN to keep.
        to: Lsn,
    },
    /// Secondary → primary: the revert is durable; send from `end + 1`.
    Reverted {
        /// The database.
        database: DatabaseId,
        /// The end of log after the revert.
        end: Lsn,
        /// Last LSN hardened.
        hardened: Lsn,
        /// Last LSN redone.
        redone: Lsn,
    },
    /// Target → primary: planned failover to me (R-FAIL-3).
    FailoverRequest,
    /// Primary → target: you may not take over.
    FailoverRefused {
        /// Why, in the primary's words.
        reason: FailoverRefusal,
    },
    /// Primary → target: I stopped committing; these are my ends of log; take over once you
    /// have received them.
    FailoverGranted {
        /// End of log of each database, in configuration order.
        ends: Vec<Lsn>,
    },
    /// Primary → secondaries: REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT changed (R-COMMIT-5).
    SetRequiredSynchronized {
        /// The new value.
        required: u32,
    },
}

/// The handshake (see [`MessageBody::Hello`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The availability group's name; a mismatch closes the connection.
    pub ag_name: String,
    /// The sender.
    pub replica: ReplicaId,
    /// The sender's server instance name (must match the configuration).
    pub replica_name: String,
    /// The sender's role.
    pub role: Role,
    /// The most recent forced-failover epoch the sender knows of (`Epoch::NONE` if none).
    pub last_forced_epoch: Epoch,
    /// The sender's REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT (authoritative from a primary).
    pub required_synchronized: u32,
    /// One entry per database, in configuration order.
    pub databases: Vec<DatabaseHello>,
}

/// What a replica tells about one of its databases in a handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseHello {
    /// The database.
    pub database: DatabaseId,
    /// Its end of log.
    pub end_of_log: Lsn,
    /// Last LSN hardened.
    pub hardened: Lsn,
    /// Last LSN redone.
    pub redone: Lsn,
    /// The fork history of its log.
    pub forks: Vec<ForkSegment>,
    /// The latest epoch whose primary accepted this database (it follows that history).
    pub accepted_epoch: Epoch,
    /// Whether, and why, it is suspended.
    pub suspended: Option<SuspendReason>,
    /// A revert to `end_of_log` is still running: a `Reverted` report will follow.
    pub reverting: bool,
}

/// A block of log for one database (see [`MessageBody::Log`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBlock {
    /// The database.
    pub database: DatabaseId,
    /// LSN of the first record; the records are consecutive from it.
    pub first_lsn: Lsn,
    /// The records.
    pub records: Vec<LogRecord>,
    /// Every data replica of the group hardened the log up to here in the sender's epoch (as
    /// far as the sender knows): no copy will ever revert below it, so a secondary may
    /// checkpoint and truncate its log up to it (R-SYNC-7).
    pub stable: Lsn,
}

/// Why a primary refused a planned failover (R-FAIL-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FailoverRefusal {
    /// The receiver is not the primary of the requester's epoch.
    #[error("the replica asked is not the primary")]
    NotPrimary,
    /// One of the two replicas is not SYNCHRONOUS_COMMIT.
    #[error("{replica} is not SYNCHRONOUS_COMMIT")]
    NotSynchronousCommit {
        /// The asynchronous one.
        replica: ReplicaId,
    },
    /// A database of the target is not SYNCHRONIZED on the primary's books.
    #[error("{database} of the target is {state}, not SYNCHRONIZED")]
    NotSynchronized {
        /// The database.
        database: DatabaseId,
        /// Its state as the primary sees it.
        state: SyncState,
    },
    /// Another failover is already under way.
    #[error("another failover is already under way")]
    FailoverInProgress,
}
