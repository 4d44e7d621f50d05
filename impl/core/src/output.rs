//! What the core asks the shell to do, in the order it must be done ([`Output`]), and the
//! replies to clients, operators and the cluster manager.
//!
//! The ordering contract is documented on [`Replica`](crate::Replica); in short: perform the
//! outputs in order, make `PersistState` durable before anything after it, and report storage
//! completions only when they are true.

use crate::error::{AdminError, ClientError, IgnoredReason};
use crate::ids::{ConnectionId, Epoch, RequestId, TimerId};
use crate::input::PromotionKind;
use crate::log::LogRecord;
use crate::message::PeerMessage;
use crate::persist::PersistentState;
use hadr_types::{CommitOutcome, DatabaseId, DefiniteReason, Lsn, ReplicaId, Role};
use serde::{Deserialize, Serialize};

/// One thing for the shell to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// Durably store the replica's metadata (role, epoch, suspensions, configuration) **before**
    /// performing any output that follows (raft-rs's "persist, then send"). Recovery hands the
    /// last stored one back to [`Replica::recover`](crate::Replica::recover).
    PersistState(PersistentState),
    /// Send a message to a peer on `connection`, after every earlier `Send` on it. If that
    /// connection is already closed, drop the message (its `Closed` is reported, or will be).
    /// If the write fails, or the shell gives up on it, close the connection and report
    /// [`ConnectionEvent::Closed`](crate::ConnectionEvent::Closed): a `Send` must never be
    /// lost silently on a connection the core believes open.
    Send {
        /// The peer.
        to: ReplicaId,
        /// The connection it goes out on.
        connection: ConnectionId,
        /// The message.
        message: PeerMessage,
    },
    /// Close a connection to a peer (the core already considers that session over).
    CloseConnection {
        /// The peer.
        peer: ReplicaId,
        /// The connection.
        connection: ConnectionId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Append records to a database's log file, right after its current end.
    AppendLog {
        /// The database.
        database: DatabaseId,
        /// The records, consecutive, the first one at the end of log + 1.
        records: Vec<LogRecord>,
    },
    /// Fsync a database's log at least up to `up_to`, then report
    /// [`StorageEvent::LogHardened`](crate::StorageEvent::LogHardened).
    Fsync {
        /// The database.
        database: DatabaseId,
        /// Last LSN that must be durable.
        up_to: Lsn,
    },
    /// Apply the hardened log up to `up_to` to the data, then report
    /// [`StorageEvent::RedoApplied`](crate::StorageEvent::RedoApplied). Never awaited by a
    /// commit (R-SYNC-2), and never asked of the primary: the primary's data is current as soon
    /// as its log is hardened, and the core redoes it then without a round trip. (A replica
    /// promoted with a redo still outstanding reports it when it completes, as before.)
    Redo {
        /// The database.
        database: DatabaseId,
        /// Last LSN to redo.
        up_to: Lsn,
    },
    /// Discard the log after `to` (durably) and roll the data back to `to`, then report
    /// [`StorageEvent::LogReverted`](crate::StorageEvent::LogReverted) (R-FAIL-4/6).
    RevertLog {
        /// The database.
        database: DatabaseId,
        /// The fork point: the last LSN to keep.
        to: Lsn,
    },
    /// Write the records after the last checkpoint asked for, up to `up_to`, into the
    /// database's data file and make it durable (a **checkpoint**), then report
    /// [`StorageEvent::Checkpointed`](crate::StorageEvent::Checkpointed). The records are
    /// hardened, redone and held by every data replica of the group (they are never reverted),
    /// so the data file never holds a write that a revert would take back. Until the report
    /// the core keeps them and reads keys they wrote from them; after it, it reads keys not
    /// written since from the shell's [`DataStore`](crate::DataStore). One checkpoint per
    /// database is in flight at a time, and checkpoints of a database are asked in LSN order.
    Checkpoint {
        /// The database.
        database: DatabaseId,
        /// The records to write, consecutive, ending at `up_to`.
        records: Vec<LogRecord>,
        /// The last LSN the data file holds once this checkpoint is durable.
        up_to: Lsn,
    },
    /// The log's records up to `through` are checkpointed and every data replica holds them:
    /// drop them from the log file, after the operations emitted before this one (the file
    /// may keep them; recovery skips what the stored state's
    /// [`PersistentDatabase::checkpointed`](crate::PersistentDatabase::checkpointed) covers).
    /// Nothing is reported.
    TruncateLog {
        /// The database.
        database: DatabaseId,
        /// The last LSN dropped.
        through: Lsn,
    },
    /// The answer to a client request.
    ClientReply {
        /// The request.
        request: RequestId,
        /// The answer.
        reply: ClientReply,
    },
    /// Close every client connection: the role changed, or the replica now follows the
    /// primary of a new epoch (R-FAIL-6).
    DisconnectClients,
    /// The primary this replica knows of changed: itself after a promotion, the primary of a
    /// newer epoch it now follows, or none (it stepped down, or its primary did). The shell
    /// points the listener and READ_WRITE_ROUTING_URL redirection at it (R-READ-3).
    PrimaryChanged {
        /// The primary, if this replica knows one.
        primary: Option<ReplicaId>,
        /// The epoch it leads (or this replica's epoch when there is none).
        epoch: Epoch,
    },
    /// The answer to an admin command.
    AdminReply {
        /// The request.
        request: RequestId,
        /// The answer.
        result: Result<AdminOutcome, AdminError>,
    },
    /// Run `timer` at `at_ms` (replacing an earlier deadline of the same timer).
    SetTimer {
        /// The timer.
        timer: TimerId,
        /// When, on the caller's clock.
        at_ms: u64,
    },
    /// Forget `timer`.
    CancelTimer {
        /// The timer.
        timer: TimerId,
    },
    /// The replica's role changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The epoch of the primary it leads or follows.
        epoch: Epoch,
    },
    /// A request to the cluster manager.
    Manager(ManagerRequest),
    /// An input was not acted on; nothing changed because of it.
    Ignored {
        /// Where it came from.
        source: InputSource,
        /// Why.
        reason: IgnoredReason,
    },
}

/// Where an ignored input came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputSource {
    /// A peer message from this replica.
    Peer(ReplicaId),
    /// A connection event about this peer.
    Connection(ReplicaId),
    /// The cluster manager.
    Manager,
    /// A timer.
    Timer(TimerId),
}

/// Why the core closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisconnectReason {
    /// No message within SESSION_TIMEOUT (R-HEALTH-1).
    SessionTimeout,
    /// The handshake named another availability group or another replica.
    HandshakeMismatch,
    /// This replica lost the cluster manager and went RESOLVING (R-QUORUM-2).
    ManagerUnreachable,
}

/// What a client is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// The transaction is open.
    Begun,
    /// The write was added to the transaction.
    Written,
    /// The value read (`None`: no such key).
    Value(Option<String>),
    /// The transaction was abandoned.
    RolledBack,
    /// The commit is acknowledged: durable as R-COMMIT-6 says.
    Committed {
        /// Its log record.
        lsn: Lsn,
    },
    /// The request was refused and nothing it asked for was done; for a commit a definite
    /// error: not committed, and never will be (R-COMMIT-7).
    Refused(ClientError),
    /// The outcome of the commit is unknown: it may or may not survive (R-COMMIT-7).
    Indefinite(IndefiniteCause),
}

impl ClientReply {
    /// What this reply means for a commit, in the observation vocabulary (R-COMMIT-7); `None`
    /// for replies that answer no commit.
    pub fn commit_outcome(&self) -> Option<CommitOutcome> {
        match self {
            ClientReply::Committed { .. } => Some(CommitOutcome::Acknowledged),
            ClientReply::Indefinite(_) => Some(CommitOutcome::Indefinite),
            ClientReply::Refused(error) => {
                error.definite_reason().map(CommitOutcome::DefiniteError)
            }
            _ => None,
        }
    }
}

/// Why a commit's outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IndefiniteCause {
    /// The replica stopped being primary (failover, demotion, a newer primary) while the commit
    /// waited: its log may survive on the new primary.
    #[error("the replica stopped being the primary while the commit waited; reconnect to the new primary and check whether the transaction committed")]
    RoleChanged,
    /// The lease from the cluster manager ran out while the commit waited (R-QUORUM-3).
    #[error("the primary lost its cluster lease while the commit waited; reconnect to the new primary and check whether the transaction committed")]
    LeaseLost,
    /// A commit of a transaction whose commit already waits under an earlier request: that
    /// request's reply tells the outcome.
    #[error("this transaction's commit is already waiting under an earlier request; its reply tells the outcome")]
    CommitInProgress,
    /// A commit of a transaction this primary has no open transaction and no commit on record
    /// for: never begun, rolled back, dropped by a role change, or committed through an earlier
    /// primary (a retry after an indefinite reply). Nothing was committed by *this* request,
    /// but the transaction's outcome is unknown here.
    #[error("this primary has no open transaction with this id and no record of its commit; if it was committed through an earlier primary its outcome is unknown here: read the data to find out")]
    UnknownTransaction,
    /// A commit of a transaction whose id is in the part of the log this replica
    /// checkpointed: a record of it is durable on every data replica, but this replica keeps
    /// no replies for checkpointed transactions (so that memory stays bounded), and no longer
    /// knows whether that record is this request's.
    #[error("this transaction id is in the part of the log this replica checkpointed, whose replies it no longer keeps; read the data to find out whether this transaction committed")]
    OutcomeCheckpointed,
}

impl ClientError {
    /// The observation's reason for a definite error on a commit, if this error is one a
    /// commit can get.
    pub fn definite_reason(&self) -> Option<DefiniteReason> {
        match self {
            ClientError::TooFewSynchronized { .. } => Some(DefiniteReason::TooFewSynchronized),
            ClientError::UnknownDatabase { .. } => Some(DefiniteReason::NotInGroup),
            ClientError::NotPrimary { .. } | ClientError::NotInAvailabilityGroup => {
                Some(DefiniteReason::NoPrimary)
            }
            _ => None,
        }
    }
}

/// A successful admin command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOutcome {
    /// Done.
    Done,
    /// This replica is now the primary of `epoch`.
    BecamePrimary {
        /// The new epoch.
        epoch: Epoch,
        /// Whether log could have been lost (a forced failover that started a new fork).
        data_loss_possible: bool,
    },
    /// [`AdminCommand::AcceptDataLoss`](crate::AdminCommand::AcceptDataLoss): the database is
    /// online again with its log up to `kept`; records `kept + 1 ..= lost_through` are gone
    /// from this copy.
    DataLossAccepted {
        /// The database.
        database: DatabaseId,
        /// Its log ends here now.
        kept: Lsn,
        /// The highest LSN the damaged log had held.
        lost_through: Lsn,
    },
}

/// A request to the cluster manager (absent with `CLUSTER_TYPE = NONE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerRequest {
    /// Make me primary (answered by [`ManagerEvent::Promote`](crate::ManagerEvent::Promote) or
    /// [`ManagerEvent::PromotionDenied`](crate::ManagerEvent::PromotionDenied)).
    RequestPromotion {
        /// Why.
        kind: PromotionKind,
    },
    /// Release my lease so that another may be promoted. The core asks for it at every step
    /// down from PRIMARY (whatever the cause: also when its own lease deadline passed while the
    /// manager may still be renewing the lease), and when it ignores a
    /// [`ManagerEvent::Promote`](crate::ManagerEvent::Promote) (already primary, or the
    /// lease already ended): an unused lease would be renewed and block every other promotion.
    /// Releasing a lease the manager no longer holds does nothing.
    ReleaseLease,
    /// I granted a planned failover to `to` and stepped down (R-FAIL-3): reserve the next
    /// promotion for `to`, then release my lease. The reservation keeps the other replicas'
    /// automatic failover (R-FAIL-2) from taking the lease the target was handed; it lasts one
    /// lease TTL, so a target that never asks does not block failover for longer.
    HandOver {
        /// The target of the planned failover.
        to: ReplicaId,
    },
    /// Store which secondaries are SYNCHRONIZED and which are automatic-failover candidates
    /// (R-FAIL-2), then answer with
    /// [`ManagerEvent::SyncStatePublished`](crate::ManagerEvent::SyncStatePublished).
    ///
    /// **The manager must store publications in version order and refuse older ones**: a
    /// publication whose `(epoch, version)` is below one it already stored (a lower version of
    /// the same epoch, or any version of an older epoch than the newest stored) is discarded,
    /// never stored and never confirmed. It may skip versions (store 7 without ever storing 6);
    /// after it stored 7 it must refuse 6. It confirms only what it stored.
    ///
    /// The primary keeps waiting for a secondary that left the SYNCHRONIZED set until the
    /// manager confirmed a publication without it (R-COMMIT-4), and meanwhile it also waits for
    /// every secondary of every publication sent after the last confirmed one: any of those may
    /// be the next one the manager stores, and an automatic failover may then pick a replica
    /// it lists (R-FAIL-5, R-COMMIT-6).
    PublishSyncState(SyncStatePublication),
}

/// The primary's synchronization state, as published to the cluster manager.
///
/// Two lists with two purposes: `synchronized` is what commits wait for (the durability side,
/// R-COMMIT-4/6); `failover_ready` is the subset the manager may promote automatically
/// (R-FAIL-2). The manager still checks the rest of R-FAIL-2 itself: quorum (R-QUORUM-2), the
/// failure condition (R-FAIL-7) and promotion safety (R-QUORUM-4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatePublication {
    /// Increases with every publication of this primary (restarts at 1 in a new epoch).
    pub version: u64,
    /// The publishing primary's epoch.
    pub epoch: Epoch,
    /// Per database, in configuration order: the SYNCHRONIZED secondaries, whatever their
    /// failover mode. A forced failover to one of them loses nothing acknowledged.
    pub synchronized: Vec<Vec<ReplicaId>>,
    /// The automatic-failover candidates (R-FAIL-2): secondaries SYNCHRONIZED in every
    /// database whose availability mode is SYNCHRONOUS_COMMIT and whose failover mode is
    /// automatic (AUTOMATIC or EXTERNAL), and only if the primary itself is SYNCHRONOUS_COMMIT
    /// with an automatic failover mode; empty otherwise (a MANUAL primary is never failed over
    /// from automatically).
    pub failover_ready: Vec<ReplicaId>,
}

impl SyncStatePublication {
    /// Whether it records `replica` SYNCHRONIZED in every database: a forced failover onto it
    /// loses nothing acknowledged (R-FAIL-4), if no newer primary may have committed since.
    pub fn synchronized_everywhere(&self, replica: ReplicaId) -> bool {
        self.synchronized.iter().all(|dbs| dbs.contains(&replica))
    }
}
