//! What the shell feeds the core: client requests, admin commands, storage completions,
//! connection events and cluster-manager events (peer messages are in [`crate::message`]).
//!
//! Each arrives through one `Replica::handle_*` method together with the current time.

use crate::ids::{ConnectionId, Epoch, RequestId};
use crate::log::Write;
use hadr_types::{AgConfig, ApplicationIntent, DatabaseId, Lsn, ReplicaId, TxnId};
use serde::{Deserialize, Serialize};

/// A client request on one availability database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// Numbered by the shell; the reply carries it.
    pub request: RequestId,
    /// The database.
    pub database: DatabaseId,
    /// `ApplicationIntent` of the client's connection (R-READ-1).
    pub intent: ApplicationIntent,
    /// What it asks.
    pub op: ClientOp,
}

/// The operations of the small key-value database each availability database holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Opens a read-write transaction (primary only, R-ROLE-3).
    Begin {
        /// The transaction, numbered by the client side.
        txn: TxnId,
    },
    /// Adds a write to an open transaction.
    Write {
        /// The transaction.
        txn: TxnId,
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Reads a key: inside a transaction it sees the transaction's own writes; otherwise (and
    /// on a readable secondary, R-READ-2) it sees the redone data.
    Read {
        /// The transaction, if any.
        txn: Option<TxnId>,
        /// The key.
        key: String,
    },
    /// Commits a transaction; the reply comes when R-COMMIT-2/3 allow it.
    Commit {
        /// The transaction.
        txn: TxnId,
    },
    /// Abandons an open transaction.
    Rollback {
        /// The transaction.
        txn: TxnId,
    },
    /// Begin, writes and commit in one request, answered like the commit, or with the first
    /// refusal (then nothing was committed: a transaction too large is rolled back). A
    /// transaction id already taken (open, or used: the retry of a commit that may have gone
    /// through, R-COMMIT-7) is answered as a commit of it: the outcome on record, or
    /// indefinite.
    Transact {
        /// The transaction, numbered by the client side.
        txn: TxnId,
        /// Its writes, in order.
        writes: Vec<Write>,
    },
}

/// An operator's command (T-SQL in the node; already parsed here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCommand {
    /// `CREATE AVAILABILITY GROUP`, run on the initial primary (the first replica listed).
    CreateAvailabilityGroup(AgConfig),
    /// `ALTER AVAILABILITY GROUP … JOIN` (plus joining every database), run on a secondary.
    JoinAvailabilityGroup(AgConfig),
    /// `ALTER AVAILABILITY GROUP … FAILOVER`, run on the target (R-FAIL-3).
    Failover,
    /// `ALTER AVAILABILITY GROUP … FORCE_FAILOVER_ALLOW_DATA_LOSS`, run on a SECONDARY or
    /// RESOLVING replica (R-FAIL-4).
    ForceFailoverAllowDataLoss,
    /// `ALTER AVAILABILITY GROUP … SET (ROLE = SECONDARY)`: demote the primary
    /// (CLUSTER_TYPE = NONE only, R-QUORUM-5).
    SetRoleSecondary,
    /// `ALTER DATABASE … SET HADR SUSPEND` (R-SYNC-7).
    SuspendDatabase(DatabaseId),
    /// `ALTER DATABASE … SET HADR RESUME` (R-SYNC-7, R-FAIL-4).
    ResumeDatabase(DatabaseId),
    /// `ALTER AVAILABILITY GROUP … SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = k)`, run
    /// on the primary (R-COMMIT-5).
    SetRequiredSynchronizedSecondariesToCommit(u32),
    /// Accept the loss of what a damaged log of this replica's database could not give back
    /// (`DBCC CHECKDB … REPAIR_ALLOW_DATA_LOSS` on a SUSPECT database): the database comes
    /// online with its intact prefix. For a lone surviving copy; a copy with a primary to
    /// follow is reseeded from it without any loss.
    AcceptDataLoss(DatabaseId),
}

/// A storage operation the shell finished.
///
/// Per database, completions must be reported in the order the core emitted the operations
/// (an fsync requested before a revert completes before the revert does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageEvent {
    /// The records up to `up_to` were written to the log file (not yet durable).
    LogWritten {
        /// The database.
        database: DatabaseId,
        /// Last LSN written.
        up_to: Lsn,
    },
    /// An fsync finished: the log is durable up to `up_to` (hardened, R-SYNC-2).
    LogHardened {
        /// The database.
        database: DatabaseId,
        /// Last LSN durable.
        up_to: Lsn,
    },
    /// Redo applied the log up to `up_to` to the shell's data (R-SYNC-2).
    RedoApplied {
        /// The database.
        database: DatabaseId,
        /// Last LSN redone.
        up_to: Lsn,
    },
    /// A revert finished: the log ends durably at `to` and the data is rolled back to it.
    LogReverted {
        /// The database.
        database: DatabaseId,
        /// The new end of log.
        to: Lsn,
    },
    /// A checkpoint ([`Output::Checkpoint`](crate::Output::Checkpoint)) is durable: the data
    /// file holds every record up to `up_to`.
    Checkpointed {
        /// The database.
        database: DatabaseId,
        /// The checkpoint's `up_to`.
        up_to: Lsn,
    },
}

/// A connection to a peer opened or closed (the shell owns the sockets).
///
/// Each event names the connection ([`ConnectionId`]) it is about: a `Closed` of a connection
/// that was already replaced by a newer one changes nothing.
///
/// **A failed write is a `Closed`.** When the shell cannot perform an
/// [`Output::Send`](crate::Output::Send) on its connection (a write error, a full send buffer
/// it will not wait for, a socket it gave up on), it must close that connection and report
/// `Closed` for it. A silently dropped `Log` or `Progress` would leave the core believing the
/// peer connected and synchronized while data no longer moves; a `Closed` makes it stop
/// counting on the peer (R-COMMIT-4) and start a fresh session, with a new handshake, on the
/// next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionEvent {
    /// A connection to the peer is up; the core answers with a handshake. It replaces any
    /// earlier connection to the same peer (that session ends).
    Opened {
        /// The peer.
        peer: ReplicaId,
        /// The new connection.
        connection: ConnectionId,
    },
    /// The connection is gone (reset, closed by the peer, closed by us, or a write on it
    /// failed).
    Closed {
        /// The peer.
        peer: ReplicaId,
        /// The connection that closed.
        connection: ConnectionId,
    },
}

impl ConnectionEvent {
    /// The peer the event is about.
    pub fn peer(&self) -> ReplicaId {
        match self {
            ConnectionEvent::Opened { peer, .. } | ConnectionEvent::Closed { peer, .. } => *peer,
        }
    }
}

/// Why the cluster manager promotes a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionKind {
    /// The first primary of a new availability group.
    Initial,
    /// Automatic failover (R-FAIL-2): the manager checked the published synchronization state.
    Automatic,
    /// The last step of a planned failover this replica requested (R-FAIL-3).
    Planned,
    /// A forced failover this replica requested (R-FAIL-4): starts a forced recovery fork.
    Forced,
    /// A forced failover this replica requested, granted onto a replica the manager records as
    /// SYNCHRONIZED in every database (the newest primary's newest publication): as R-FAIL-4
    /// says, a planned failover in effect. Nothing acknowledged is lost and no partner is
    /// suspended, even though the replica's own view may show NOT_SYNCHRONIZING (its primary
    /// is gone). The manager answers a [`Forced`](PromotionKind::Forced) request with this
    /// kind; a replica never asks for it.
    ForcedOntoSynchronized,
    /// The manager brings its recorded primary back online (R-QUORUM-2): that replica
    /// restarted, or reached the manager again, and nobody was promoted in between, so its log
    /// is the newest of the group.
    Restore,
}

/// What the cluster manager (etcd in the node) tells the core. `CLUSTER_TYPE = NONE` has no
/// manager and never sends these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerEvent {
    /// Become the primary, holding a lease until `lease_until_ms` (R-QUORUM-3), on the
    /// replica's own monotonic clock (the shell converts). A grant whose lease already ended
    /// when it arrives is not taken: the replica stays where it is, and a failover command
    /// waiting for the grant is answered with
    /// [`AdminError::PromotionLeaseExpired`](crate::AdminError::PromotionLeaseExpired).
    Promote {
        /// Why.
        kind: PromotionKind,
        /// The primary may commit only before this time.
        lease_until_ms: u64,
        /// The new epoch's term is at least this: the manager knows every term it granted,
        /// which this replica may not (0 when the manager does not count terms).
        term_at_least: u64,
        /// The group's REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT as the manager stores it
        /// (the primary stores the group's configuration after every change): a replica
        /// that missed an ALTER (it was cut off from the primary then) commits by the group's
        /// value once promoted, not by its own (R-COMMIT-5). `None`: the manager stores none.
        required_synchronized: Option<u32>,
    },
    /// The lease was renewed until `lease_until_ms`.
    LeaseRenewed {
        /// The new end of the lease.
        lease_until_ms: u64,
    },
    /// The lease is gone (the manager could not renew it): stop committing now.
    LeaseLost,
    /// The manager stored the synchronization state published with this version (and will
    /// refuse every older one, see
    /// [`ManagerRequest::PublishSyncState`](crate::ManagerRequest::PublishSyncState)).
    SyncStatePublished {
        /// The epoch of the [`SyncStatePublication`](crate::SyncStatePublication): versions
        /// start again in every epoch, so a late confirmation of an earlier epoch's publication
        /// must not pass for one of the current epoch.
        epoch: Epoch,
        /// The version of the publication.
        version: u64,
    },
    /// The manager refused a promotion this replica requested (e.g. no quorum, R-QUORUM-2).
    PromotionDenied,
    /// This replica cannot reach the manager's majority (R-QUORUM-2): a SECONDARY cannot know
    /// its role any more and goes RESOLVING (its session with the primary ends); a RESOLVING
    /// replica follows no primary until the manager is reachable again. (A primary loses its
    /// lease instead: [`ManagerEvent::LeaseLost`].)
    Unreachable,
    /// This replica reaches the manager's majority, which records `primary` as the group's
    /// primary. A RESOLVING replica that is not that primary learns it is a SECONDARY (R-FAIL-6)
    /// and follows the primary when it meets it.
    Reachable {
        /// The primary the manager records (the lease holder, or the last one).
        primary: Option<ReplicaId>,
    },
}
