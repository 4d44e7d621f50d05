//! Every way an input can fail: client errors (definite, R-COMMIT-7), admin errors, ignored
//! peer/manager inputs, broken storage contracts, bad recovery data, broken invariants.
//!
//! Messages name what was wrong and what to do about it.

use crate::ids::{ConnectionId, Epoch};
use crate::log::LogShapeError;
use crate::message::FailoverRefusal;
use hadr_types::{
    ApplicationIntent, ConfigError, DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState,
    TxnId,
};
use serde::{Deserialize, Serialize};

/// A refused client request: nothing it asked for was done. For a commit this is a definite
/// error: the transaction was not committed and never will be (R-COMMIT-7). (A commit whose
/// outcome this replica cannot vouch for gets
/// [`ClientReply::Indefinite`](crate::ClientReply::Indefinite) instead, never one of these.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClientError {
    /// The replica is not in an availability group yet.
    #[error("this replica is not part of an availability group; create or join one first")]
    NotInAvailabilityGroup,
    /// The database id is not one of the availability group's.
    #[error("{database} is not an availability database of this group")]
    UnknownDatabase {
        /// The id asked for.
        database: DatabaseId,
    },
    /// Writes go to the primary only (R-ROLE-3). (A commit on a non-primary names no open
    /// transaction, so it is answered as a commit of an unknown transaction instead.)
    #[error("this replica is {role}, not the primary; send read-write requests to the primary{}", primary.map(|p| format!(" ({p})")).unwrap_or_default())]
    NotPrimary {
        /// This replica's role.
        role: Role,
        /// The primary it knows of, if any.
        primary: Option<ReplicaId>,
    },
    /// Fewer secondaries are SYNCHRONIZED than REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT
    /// (R-COMMIT-5).
    #[error("{database} has {synchronized} SYNCHRONIZED secondaries but REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT is {required}; the transaction was not committed: bring secondaries back to SYNCHRONIZED or lower the setting")]
    TooFewSynchronized {
        /// The database.
        database: DatabaseId,
        /// SYNCHRONIZED secondaries now.
        synchronized: usize,
        /// The setting.
        required: u32,
    },
    /// Begin on a transaction id that is already open.
    #[error("{txn} is already open on this database; use a new transaction id")]
    TransactionAlreadyOpen {
        /// The transaction.
        txn: TxnId,
    },
    /// A write, a rollback or a read in a transaction that is not open here (never begun,
    /// already committed or rolled back, or discarded by a role change). A *commit* of such a
    /// transaction is never answered with this error (see
    /// [`IndefiniteCause::UnknownTransaction`](crate::IndefiniteCause::UnknownTransaction)).
    #[error("{txn} is not an open transaction on this primary; begin it first")]
    UnknownTransaction {
        /// The transaction.
        txn: TxnId,
    },
    /// Begin with a transaction id this database has already used (its commit is on record, or
    /// in the log): ids are never reused, so that a retried commit has one answer (R-COMMIT-7).
    #[error("{txn} was already used on {database}; transaction ids are never reused: begin with a new id")]
    TransactionIdReused {
        /// The database.
        database: DatabaseId,
        /// The transaction id.
        txn: TxnId,
    },
    /// The write would take the transaction beyond
    /// [`CoreOptions::max_transaction_bytes`](crate::CoreOptions::max_transaction_bytes): the
    /// transaction was rolled back (its commit is one log record, which must fit a message).
    #[error("the transaction writes more than {limit} bytes (keys plus values, and 8 bytes per write); it was rolled back: split it into smaller transactions")]
    TransactionTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A write (begin, write, commit, rollback) on a connection with
    /// `ApplicationIntent = ReadOnly` (R-READ-1). A transaction whose commit arrives this way
    /// is rolled back, so for a commit the error is definite.
    #[error("a connection with ApplicationIntent=ReadOnly cannot write; reconnect with ApplicationIntent=ReadWrite to the primary")]
    ReadOnlyIntent,
    /// The connection's intent is not allowed by the replica's ALLOW_CONNECTIONS (R-READ-1).
    #[error("this {role} replica does not accept {intent:?} connections (ALLOW_CONNECTIONS); connect with another ApplicationIntent or to another replica")]
    ConnectionNotAllowed {
        /// The replica's role.
        role: Role,
        /// The connection's intent.
        intent: ApplicationIntent,
    },
    /// A secondary database serves reads only while it follows the primary's history
    /// (R-READ-2, R-SYNC-5).
    #[error("{database} is {state} on this secondary and serves no reads now; read from the primary or wait until it is SYNCHRONIZING")]
    NotReadable {
        /// The database.
        database: DatabaseId,
        /// Its state.
        state: SyncState,
    },
    /// The database's log was found damaged on this replica (SUSPECT): it serves nothing until
    /// it is reseeded from the primary (or an operator accepts the loss).
    #[error("{database} is SUSPECT on this replica (its log was found damaged) and serves no reads until it is reseeded from the primary; read from another replica")]
    DatabaseSuspect {
        /// The database.
        database: DatabaseId,
    },
    /// The value of the key is in the data file ([`DataStore`](crate::DataStore)), which could
    /// not be read or failed its checks: no value is served rather than a wrong one.
    #[error("{database}: the value cannot be read from the data file ({detail}); read from another replica")]
    DataUnreadable {
        /// The database.
        database: DatabaseId,
        /// What the data file said.
        detail: String,
    },
}

/// An admin command that failed; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AdminError {
    /// The command needs an availability group.
    #[error("this replica is not part of an availability group; run CREATE AVAILABILITY GROUP on the initial primary or JOIN on a secondary first")]
    NotInAvailabilityGroup,
    /// CREATE or JOIN on a replica that already belongs to a group.
    #[error("this replica already belongs to availability group '{name}'")]
    AlreadyInAvailabilityGroup {
        /// The group.
        name: String,
    },
    /// The configuration breaks a limit of the rule book.
    #[error("{message}")]
    InvalidConfiguration {
        /// What [`AgConfig::validate`](hadr_types::AgConfig::validate) said.
        message: String,
    },
    /// This server is not a replica of the configuration.
    #[error("this server ('{name}') is not one of the replicas of the configuration; add it or run the command on a listed server")]
    NotInConfiguration {
        /// This server's name.
        name: String,
    },
    /// CREATE runs on the initial primary, JOIN on the others.
    #[error("{command} must run on {expected}; this server is '{name}'")]
    WrongReplicaForCommand {
        /// CREATE or JOIN.
        command: String,
        /// Which replica it must run on.
        expected: String,
        /// This server's name.
        name: String,
    },
    /// A configuration-only replica holds no data and runs no replica state machine (R-QUORUM-6).
    #[error(
        "'{name}' is CONFIGURATION_ONLY: it holds no data and hosts no availability databases"
    )]
    ConfigurationOnlyReplica {
        /// This server's name.
        name: String,
    },
    /// The database id is not one of the availability group's.
    #[error("{database} is not an availability database of this group")]
    UnknownDatabase {
        /// The id given.
        database: DatabaseId,
    },
    /// A planned failover needs a cluster manager (R-QUORUM-5).
    #[error("CLUSTER_TYPE = NONE does not support a planned FAILOVER: make the target SYNCHRONOUS_COMMIT, wait until it is SYNCHRONIZED, set REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1, run SET (ROLE = SECONDARY) on the primary, then FORCE_FAILOVER_ALLOW_DATA_LOSS on the target")]
    PlannedFailoverNeedsClusterManager,
    /// FAILOVER or FORCE on the primary itself.
    #[error(
        "this replica is already the primary; run the failover command on the target secondary"
    )]
    AlreadyPrimary,
    /// A planned failover runs on a SECONDARY.
    #[error("this replica is {role}; a planned FAILOVER runs on a SECONDARY that is connected to the primary (use FORCE_FAILOVER_ALLOW_DATA_LOSS on a RESOLVING replica)")]
    NotSecondary {
        /// This replica's role.
        role: Role,
    },
    /// The target is not connected to a primary.
    #[error("this secondary is not connected to a primary, so a planned FAILOVER cannot run; reconnect it or use FORCE_FAILOVER_ALLOW_DATA_LOSS (possible data loss)")]
    PrimaryNotConnected,
    /// R-FAIL-3 needs both replicas SYNCHRONOUS_COMMIT (SQL Server error 41142).
    #[error("this replica cannot become primary without data loss: {replica} is not SYNCHRONOUS_COMMIT (error 41142); make both SYNCHRONOUS_COMMIT and wait for SYNCHRONIZED, or use FORCE_FAILOVER_ALLOW_DATA_LOSS")]
    NotSynchronousCommit {
        /// The asynchronous replica.
        replica: ReplicaId,
    },
    /// A database of this replica is SUSPECT: its log was found damaged, and the copy may lack
    /// acknowledged commits, so this replica does not become primary (R-COMMIT-6).
    #[error("this replica cannot become primary: the log of {database} was found damaged at its restart (SUSPECT), and records {}..={lost_through} could not be read back. Fail over to a replica with an intact copy (this one is then reseeded from it); if this is the only copy left, accept the loss first (POST /databases/{}/accept-data-loss)", Lsn(kept.0 + 1), database.0)]
    DatabaseDamaged {
        /// The first damaged database.
        database: DatabaseId,
        /// Its intact prefix ends here.
        kept: Lsn,
        /// The highest LSN its damaged log held.
        lost_through: Lsn,
    },
    /// `accept-data-loss` on a database whose log is not damaged.
    #[error("{database} is not SUSPECT: its log is intact, there is no loss to accept")]
    DatabaseNotDamaged {
        /// The database.
        database: DatabaseId,
    },
    /// R-FAIL-3 needs every database of the target SYNCHRONIZED (SQL Server error 41142).
    #[error("this replica cannot become primary without data loss: {database} is {state}, not SYNCHRONIZED (error 41142); wait until every database is SYNCHRONIZED, or use FORCE_FAILOVER_ALLOW_DATA_LOSS")]
    TargetNotSynchronized {
        /// The first database that is not SYNCHRONIZED.
        database: DatabaseId,
        /// Its state.
        state: SyncState,
    },
    /// The primary refused the planned failover.
    #[error("the primary refused the planned failover: {reason} (error 41142)")]
    FailoverRefused {
        /// Its reason.
        reason: FailoverRefusal,
    },
    /// The primary did not answer the planned failover in time, or the connection dropped.
    #[error("the primary did not complete the planned failover handshake (no answer or connection lost); check the primary and retry")]
    FailoverHandshakeFailed,
    /// A failover is already running here.
    #[error("a failover is already under way on this replica; wait for it to finish")]
    FailoverInProgress,
    /// The cluster manager refused to promote this replica.
    #[error("the cluster manager refused to promote this replica (no quorum, or another replica holds the primary lease)")]
    PromotionDenied,
    /// The cluster manager granted the promotion, but its lease had already ended when the
    /// grant arrived (R-QUORUM-3): a primary without a lease may not commit.
    #[error("the cluster manager's promotion arrived with a lease that had already ended (lease until {lease_until_ms} ms, now {now_ms} ms); this replica did not become primary: check the manager's latency and the clocks, then retry")]
    PromotionLeaseExpired {
        /// The end of the lease granted.
        lease_until_ms: u64,
        /// When the grant arrived.
        now_ms: u64,
    },
    /// The cluster manager did not answer the promotion request in time. This is not a
    /// definite refusal: a late answer may still promote this replica.
    #[error("the cluster manager did not answer the promotion request within {waited_ms} ms; this replica stays where it is unless a late answer promotes it (watch its role); check the cluster manager, then retry")]
    PromotionUnanswered {
        /// How long the replica waited.
        waited_ms: u64,
    },
    /// SET (ROLE = SECONDARY) exists for CLUSTER_TYPE = NONE only (R-QUORUM-5).
    #[error("SET (ROLE = SECONDARY) is only for CLUSTER_TYPE = NONE; with a cluster manager use FAILOVER")]
    SetRoleNeedsClusterTypeNone,
    /// SET (ROLE = SECONDARY) and the change of k run on the primary.
    #[error("this command runs on the primary; this replica is {role}")]
    NotPrimary {
        /// This replica's role.
        role: Role,
    },
    /// The database is already suspended.
    #[error("{database} is already suspended ({reason})")]
    AlreadySuspended {
        /// The database.
        database: DatabaseId,
        /// Why it is.
        reason: SuspendReason,
    },
    /// RESUME on a database that is not suspended.
    #[error("{database} is not suspended")]
    NotSuspended {
        /// The database.
        database: DatabaseId,
    },
    /// RESUME on a secondary that has no session with a primary (R-SYNC-7: resuming is
    /// rejoining the primary's data movement).
    #[error("{database} cannot resume: this secondary has no session with a primary; resume it once it is connected (see sys.dm_hadr_availability_replica_states)")]
    ResumeWithoutPrimary {
        /// The database.
        database: DatabaseId,
    },
    /// A secondary suspended because its primary database is suspended resumes from the primary.
    #[error("{database} is suspended because the primary database is (SUSPEND_FROM_PRIMARY); resume it on the primary")]
    SuspendedFromPrimary {
        /// The database.
        database: DatabaseId,
    },
    /// SUSPEND/RESUME on a RESOLVING replica.
    #[error(
        "this replica is RESOLVING; suspend or resume databases on the primary or on a secondary"
    )]
    Resolving,
    /// k above the number of data replicas − 1 (R-COMMIT-5, R-LIMIT-1).
    #[error("REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = {required} is above the maximum {max} (replicas that hold data − 1)")]
    RequiredSynchronizedTooHigh {
        /// The value asked for.
        required: u32,
        /// The largest allowed.
        max: u32,
    },
}

impl From<ConfigError> for AdminError {
    fn from(error: ConfigError) -> Self {
        AdminError::InvalidConfiguration {
            message: error.to_string(),
        }
    }
}

/// Why a peer message, connection event or manager event was ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IgnoredReason {
    /// The replica is in no availability group yet.
    #[error("this replica is in no availability group yet")]
    NotInAvailabilityGroup,
    /// The peer id is not a replica of the group, or is this replica.
    #[error("{peer} is not another replica of this availability group")]
    UnknownPeer {
        /// The id.
        peer: ReplicaId,
    },
    /// A message arrived on no open connection.
    #[error(
        "message from {peer}, which has no open connection; the shell must report Opened first"
    )]
    NotConnected {
        /// The peer.
        peer: ReplicaId,
    },
    /// A message other than Hello before the handshake.
    #[error("message before the handshake")]
    BeforeHandshake,
    /// The handshake named another availability group.
    #[error("handshake from availability group '{found}', expected '{expected}'")]
    WrongAvailabilityGroup {
        /// This group.
        expected: String,
        /// The peer's.
        found: String,
    },
    /// The handshake named another replica than the connection's.
    #[error("handshake claims to be {claimed} ('{name}') on the connection of {peer}")]
    WrongReplica {
        /// The connection's peer.
        peer: ReplicaId,
        /// The replica the handshake names.
        claimed: ReplicaId,
        /// The name it gives.
        name: String,
    },
    /// The database id is not one of the group's, or the list does not match the group.
    #[error("the message names databases that are not this group's ({database})")]
    UnknownDatabase {
        /// The offending id.
        database: DatabaseId,
    },
    /// An epoch beyond [`Epoch::MAX_TERM`](crate::Epoch::MAX_TERM).
    #[error("an epoch term beyond {}", crate::Epoch::MAX_TERM)]
    EpochOutOfRange,
    /// Log records or a fork history that are not well formed.
    #[error("malformed log: {0}")]
    MalformedLog(LogShapeError),
    /// Pointers that contradict each other or what was sent.
    #[error("progress report received {received} / hardened {hardened} / redone {redone} is impossible (must be ordered and at most the {sent} sent)")]
    ImpossibleProgress {
        /// Received.
        received: Lsn,
        /// Hardened.
        hardened: Lsn,
        /// Redone.
        redone: Lsn,
        /// What the primary sent.
        sent: Lsn,
    },
    /// The message does not fit the sender's or the receiver's role or epoch.
    #[error("{what} does not fit: receiver is {role} in {epoch}")]
    Unexpected {
        /// The kind of message.
        what: String,
        /// The receiver's role.
        role: Role,
        /// The receiver's epoch.
        epoch: Epoch,
    },
    /// A log block whose records differ from the receiver's at the same LSN.
    #[error("log block for {database} overlaps the local log with different records at {lsn}")]
    DivergentOverlap {
        /// The database.
        database: DatabaseId,
        /// The first LSN that differs.
        lsn: Lsn,
    },
    /// A message or a `Closed` from a connection that is not the peer's current one: a
    /// newer connection replaced it, or the core already ended it.
    #[error("{connection} of {peer} is not its current connection ({current:?}); what came from it belongs to a session that is over")]
    StaleConnection {
        /// The peer.
        peer: ReplicaId,
        /// The connection the input came from.
        connection: ConnectionId,
        /// The peer's current connection, if any.
        current: Option<ConnectionId>,
    },
    /// `Opened` for a connection id the core has already seen: connection ids are never reused.
    #[error("{connection} of {peer} was already opened; the shell must give every connection a fresh id")]
    ConnectionAlreadySeen {
        /// The peer.
        peer: ReplicaId,
        /// The connection.
        connection: ConnectionId,
    },
    /// A handshake that lists another number of databases than the group has.
    #[error("the handshake lists {found} databases, but the group has {expected}")]
    DatabaseCountMismatch {
        /// Databases in the group.
        expected: usize,
        /// Databases in the handshake.
        found: usize,
    },
    /// A handshake whose databases are not in configuration order.
    #[error(
        "the handshake lists {found} at position {position}; databases go in configuration order"
    )]
    DatabaseOutOfOrder {
        /// The position in the handshake (from 0).
        position: usize,
        /// The database found there.
        found: DatabaseId,
    },
    /// A handshake whose pointers for a database contradict each other.
    #[error("the handshake says {database} ends at {end_of_log}, hardened {hardened}, redone {redone}: must be end ≥ hardened ≥ redone")]
    ImpossibleHandshake {
        /// The database.
        database: DatabaseId,
        /// Its end of log.
        end_of_log: Lsn,
        /// Hardened.
        hardened: Lsn,
        /// Redone.
        redone: Lsn,
    },
    /// A revert report whose pointers contradict each other.
    #[error("the revert report of {database} says end {end}, hardened {hardened}, redone {redone}: must be end ≥ hardened ≥ redone")]
    ImpossibleRevertReport {
        /// The database.
        database: DatabaseId,
        /// The end of log after the revert.
        end: Lsn,
        /// Hardened.
        hardened: Lsn,
        /// Redone.
        redone: Lsn,
    },
    /// A gap report that cannot be true: it asks for LSN 0, for log never sent, or for log the
    /// secondary had already acknowledged hardening.
    #[error("gap report for {database} expects {expected}, but {sent} was sent and {hardened} acknowledged hardened")]
    ImpossibleGap {
        /// The database.
        database: DatabaseId,
        /// The first LSN the secondary says it misses.
        expected: Lsn,
        /// The last LSN sent to it.
        sent: Lsn,
        /// The last LSN it acknowledged hardening.
        hardened: Lsn,
    },
    /// A PRIMARY's handshake in an epoch another replica started: only the replica that
    /// started an epoch leads it.
    #[error("{peer} announces itself PRIMARY of {epoch}, which {epoch_replica} started")]
    PrimaryOfAnotherEpoch {
        /// The peer.
        peer: ReplicaId,
        /// The epoch it announced.
        epoch: Epoch,
        /// The replica that started that epoch.
        epoch_replica: ReplicaId,
    },
    /// A handshake from a configuration-only replica, which holds no data and runs no replica
    /// (R-QUORUM-6).
    #[error("{peer} is CONFIGURATION_ONLY: it holds no data and takes part in no session")]
    ConfigurationOnlyPeer {
        /// The peer.
        peer: ReplicaId,
    },
    /// A promotion while this replica is already the primary.
    #[error("promotion received, but this replica is already the primary")]
    PromotionWhilePrimary,
    /// A promotion of a replica with a damaged (SUSPECT) database: it may lack acknowledged
    /// commits, so it does not lead (R-COMMIT-6); the lease goes back to the manager.
    #[error("promotion received, but the log of {database} is damaged (SUSPECT): this replica does not become primary")]
    PromotionOfDamagedCopy {
        /// The first damaged database.
        database: DatabaseId,
    },
    /// A cluster manager's event to a replica of a group without one (CLUSTER_TYPE NONE): the
    /// shell broke its contract; the event changes nothing.
    #[error("a cluster manager's event, but the group has CLUSTER_TYPE NONE: no manager decides its roles")]
    NoClusterManager,
    /// A primary's handshake while the cluster manager is unreachable (R-QUORUM-2): this
    /// replica cannot learn its role; it follows once the manager is back.
    #[error("a primary's handshake while the cluster manager is unreachable: not followed until it is back")]
    ManagerUnreachable,
    /// A promotion whose lease had already run out when it arrived (R-QUORUM-3): this replica
    /// stays where it is; a promotion it asked for is answered with an error.
    #[error("promotion with a lease until {lease_until_ms} ms arrived at {now_ms} ms, after the lease ended")]
    PromotionLeaseExpired {
        /// The end of the lease granted.
        lease_until_ms: u64,
        /// When it arrived.
        now_ms: u64,
    },
    /// A lease renewal or loss for a lease this replica no longer holds (it is not the
    /// primary any more): a stale event.
    #[error("lease event for a lease this replica does not hold: it is {role}")]
    LeaseNotHeld {
        /// This replica's role.
        role: Role,
    },
    /// A confirmation of a publication that is not pending here: a newer one was confirmed
    /// already, it was never published, or it was published in another epoch (before this
    /// replica stopped being primary, or became primary again).
    #[error("the manager confirmed publication {version} of {epoch}, which is not pending on this {role} replica")]
    PublicationNotPending {
        /// The epoch of the publication confirmed.
        epoch: Epoch,
        /// The version confirmed.
        version: u64,
        /// This replica's role.
        role: Role,
    },
    /// A promotion refusal while no promotion request is outstanding.
    #[error("promotion refused, but this replica asked for none (or its request was answered)")]
    PromotionNotRequested,
}

/// The shell broke the storage contract (a bug in the shell, not bad input from outside).
/// The event was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageContractError {
    /// The core is in no availability group.
    #[error("storage event on a replica that is in no availability group")]
    NotInAvailabilityGroup,
    /// The database id is not the group's.
    #[error("storage event for {database}, which is not an availability database of this group")]
    UnknownDatabase {
        /// The id.
        database: DatabaseId,
    },
    /// Durable or written beyond what was appended.
    #[error(
        "{database}: storage reported {what} up to {up_to}, beyond the end of log {end_of_log}"
    )]
    BeyondEndOfLog {
        /// The database.
        database: DatabaseId,
        /// Which completion.
        what: &'static str,
        /// The LSN reported.
        up_to: Lsn,
        /// The log's end.
        end_of_log: Lsn,
    },
    /// A checkpoint reported that was not the one asked for.
    #[error("{database}: a checkpoint up to {up_to} reported, but the one asked covers {asked} (and {checkpointed} is done)")]
    UnexpectedCheckpoint {
        /// The database.
        database: DatabaseId,
        /// The LSN reported.
        up_to: Lsn,
        /// The `up_to` of the checkpoint asked.
        asked: Lsn,
        /// What the last checkpoint reported covered.
        checkpointed: Lsn,
    },
    /// Redo reported beyond the hardened log (redo follows hardening, R-SYNC-2).
    #[error("{database}: redo reported up to {up_to}, beyond the hardened {hardened}")]
    RedoBeyondHardened {
        /// The database.
        database: DatabaseId,
        /// The LSN reported.
        up_to: Lsn,
        /// The hardened LSN.
        hardened: Lsn,
    },
    /// A revert completion that matches no revert in progress.
    #[error("{database}: revert to {to} reported, but the revert in progress is {expected:?}")]
    UnexpectedRevert {
        /// The database.
        database: DatabaseId,
        /// The LSN reported.
        to: Lsn,
        /// The revert in progress, if any.
        expected: Option<Lsn>,
    },
}

/// The data handed to [`Replica::recover`](crate::Replica::recover) is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The stored configuration is invalid.
    #[error("the stored configuration is invalid: {0}")]
    InvalidConfiguration(String),
    /// The stored state names a replica that is not this server.
    #[error("the stored state belongs to replica {stored}, but this server '{name}' is {actual:?} in its configuration")]
    NotThisReplica {
        /// The stored id.
        stored: ReplicaId,
        /// This server's name.
        name: String,
        /// The id of this name in the configuration, if any.
        actual: Option<ReplicaId>,
    },
    /// The number of recovered logs differs from the number of databases.
    #[error("recovered {logs} logs for {databases} databases; pass one log per database, in configuration order")]
    LogCount {
        /// Logs given.
        logs: usize,
        /// Databases configured.
        databases: usize,
    },
    /// A recovered log is not consecutive from LSN 1 with non-decreasing epochs.
    #[error("the recovered log of {database} is malformed: {error}")]
    MalformedLog {
        /// The database.
        database: DatabaseId,
        /// What is wrong.
        error: LogShapeError,
    },
    /// The stored per-database state does not match the configuration.
    #[error("the stored state has {stored} database entries for {databases} databases")]
    DatabaseStateCount {
        /// Entries stored.
        stored: usize,
        /// Databases configured.
        databases: usize,
    },
    /// The stored replica is configuration-only: it holds no data and runs no replica state
    /// machine (R-QUORUM-6).
    #[error("'{name}' is CONFIGURATION_ONLY in the stored configuration: it holds no data and runs no replica")]
    ConfigurationOnlyReplica {
        /// This server's name.
        name: String,
    },
    /// A stored epoch's term is beyond [`Epoch::MAX_TERM`].
    #[error(
        "the stored state holds {epoch}, whose term is beyond {}",
        Epoch::MAX_TERM
    )]
    EpochOutOfRange {
        /// The epoch.
        epoch: Epoch,
    },
    /// The stored role is PRIMARY but the state has no epoch.
    #[error("the stored role is PRIMARY but the stored epoch is empty; the state file is damaged")]
    PrimaryWithoutEpoch,
    /// The stored role is PRIMARY of an epoch another replica started: only the replica that
    /// started an epoch leads it.
    #[error("the stored role is PRIMARY of {epoch}, which another replica started (this is {replica}); the state file is damaged or belongs to another replica")]
    PrimaryOfAnotherEpoch {
        /// The stored epoch.
        epoch: Epoch,
        /// This replica.
        replica: ReplicaId,
    },
    /// A database accepted a newer epoch than the replica's own.
    #[error(
        "{database} accepted {accepted}, newer than the stored {epoch}; the state file is damaged"
    )]
    AcceptedEpochAhead {
        /// The database.
        database: DatabaseId,
        /// The epoch it accepted.
        accepted: Epoch,
        /// The replica's stored epoch.
        epoch: Epoch,
    },
    /// A recovered log holds a record of a newer epoch than the stored one: the state was not
    /// persisted before the log, as the ordering contract requires.
    #[error("the recovered log of {database} holds {lsn} of {record}, newer than the stored {epoch}; PersistState must be durable before the log records that follow it")]
    LogAheadOfEpoch {
        /// The database.
        database: DatabaseId,
        /// The record.
        lsn: Lsn,
        /// Its epoch.
        record: Epoch,
        /// The stored epoch.
        epoch: Epoch,
    },
    /// The stored damage of a database is malformed: a damaged log held more than it kept.
    #[error("{database} is marked damaged with records read back up to {kept} of {lost_through}: a damaged log held more than it kept; the state file is damaged")]
    MalformedDamage {
        /// The database.
        database: DatabaseId,
        /// The stored intact prefix.
        kept: Lsn,
        /// The stored highest LSN held.
        lost_through: Lsn,
    },
    /// The recovered state breaks an invariant of the replica.
    #[error("the recovered state is inconsistent: {0}")]
    Inconsistent(InvariantViolation),
}

/// An internal invariant is broken: a bug in the core (checked after every input in debug
/// builds, see [`Replica::validate`](crate::Replica::validate)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant {rule} broken: {detail}")]
pub struct InvariantViolation {
    /// The rule id (or `CORE` for bookkeeping invariants of the implementation).
    pub rule: &'static str,
    /// What was found.
    pub detail: String,
}
