//! [`Replica`]: one replica process's state machine, holding every availability database of
//! the group. Inputs arrive through `handle_*`, outputs leave through [`Replica::poll_output`].
//!
//! The submodules split the protocol by concern: `session` (connections, handshake, pings,
//! role adoption), `primary` (commits, shipping, participants), `secondary` (receiving,
//! hardening, redo, revert), `storage` (storage completions, on either role), `failover`,
//! `admin`, `status`, `validate`.
//!
//! Where the commit path can go wrong (committing, shipping, storage completions, releasing
//! commits, and their pairs on the receiving side), `invariant!` states what must hold of the
//! core's own bookkeeping, in every build, naming the rule it serves. No such assertion
//! depends on what a peer, a client, the shell or the manager sends: those are answered
//! (`Ignored`, refused, an error) before anything changes.

/// `assert!` of the core's own bookkeeping, in every build: `invariant!(core, condition,
/// "<rule id>: what broke", args…)`, the message starting with the rule the condition serves.
/// A core with a planted bug (feature `mutants`) is not checked: it must misbehave where the
/// conformance harness can see it, not stop (as [`Replica::validate`] skips it).
macro_rules! invariant {
    ($core:expr, $condition:expr, $($message:tt)+) => {
        if !$core.mutated() {
            assert!($condition, $($message)+);
        }
    };
}

mod admin;
mod checkpoint;
mod database;
mod failover;
mod primary;
mod secondary;
mod session;
mod status;
mod storage;
#[cfg(test)]
mod tests;
mod validate;

pub use status::{
    ConnectedState, DatabaseStatus, PeerStatus, ReplicaStatus, SecondaryDatabaseStatus,
};

use crate::error::{IgnoredReason, RecoveryError, StorageContractError};
use crate::ids::{ConnectionId, Epoch, RequestId, TimerId};
use crate::input::{
    AdminCommand, ClientRequest, ConnectionEvent, ManagerEvent, PromotionKind, StorageEvent,
};
use crate::log::{check_fork_history, check_run, LogRecord};
use crate::message::{MessageBody, PeerMessage};
use crate::output::{ClientReply, InputSource, Output};
use crate::persist::{LogDamage, PersistentDatabase, PersistentState};
use crate::store::SharedStore;
use database::{CheckpointBase, Database, Peer};
use hadr_types::{
    AgConfig, AvailabilityMode, DatabaseId, Lsn, ReplicaId, Role, TransactionObservation, TxnId,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Tunables of the core that the rule book leaves open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreOptions {
    /// At most this many records per `Log` message.
    pub max_block_records: usize,
    /// Pings are sent every `SESSION_TIMEOUT / ping_divisor` (of the shortest SESSION_TIMEOUT
    /// of the group), so a peer hears several before it would time out. Default 4.
    pub ping_divisor: u64,
    /// How long a replica waits for the cluster manager to answer a promotion request before
    /// it answers the operator's failover command with
    /// [`AdminError::PromotionUnanswered`](crate::AdminError::PromotionUnanswered) (the first
    /// promotion of a new group is asked for again instead). Default 60 s.
    pub promotion_timeout_ms: u64,
    /// Most bytes one transaction may write, counted by [`Write::counted_bytes`](crate::Write::counted_bytes)
    /// (keys, values, and 8 bytes per write for their lengths). A commit is one log record:
    /// this bounds every record, so that `max_block_records` of them fit one message of the
    /// shell's (the node asserts it at compile time). A write beyond it rolls the transaction
    /// back and is refused with
    /// [`ClientError::TransactionTooLarge`](crate::ClientError::TransactionTooLarge).
    /// Default 200,000.
    pub max_transaction_bytes: usize,
    /// Ask the shell for a checkpoint ([`Output::Checkpoint`]) once the log after the last
    /// one holds this many bytes (as a transaction's size counts them) that can be
    /// checkpointed, then drop the checkpointed records ([`Output::TruncateLog`]). 0 (the
    /// default): never, the whole log stays in memory, and the shell needs no data store.
    /// A shell that sets it gives the replica its data files ([`Replica::set_data_store`]).
    pub checkpoint_bytes: u64,
    /// A planted bug (feature `mutants`, for certifying the conformance harness only).
    #[cfg(feature = "mutants")]
    pub mutant: Option<crate::mutants::Mutant>,
}

impl CoreOptions {
    /// The defaults, as a constant (a shell can check them against its own limits at compile
    /// time).
    pub const DEFAULT: CoreOptions = CoreOptions {
        max_block_records: 64,
        ping_divisor: 4,
        promotion_timeout_ms: 60_000,
        max_transaction_bytes: 200_000,
        checkpoint_bytes: 0,
        #[cfg(feature = "mutants")]
        mutant: None,
    };
}

impl Default for CoreOptions {
    fn default() -> Self {
        // Checked when compiled: a core built with the defaults ships at least one record per
        // block, pings more than once per SESSION_TIMEOUT, and has no bug planted.
        const {
            let d = CoreOptions::DEFAULT;
            assert!(
                d.max_block_records > 0
                    && d.ping_divisor > 1
                    && d.promotion_timeout_ms > 0
                    && d.max_transaction_bytes > 0,
                "R-SYNC-1: the default tunables would stall shipping, pings or promotions"
            );
            #[cfg(feature = "mutants")]
            assert!(
                d.mutant.is_none(),
                "R-COMMIT-2: the default tunables plant a bug"
            );
        }
        CoreOptions::DEFAULT
    }
}

/// One availability replica: a sans-IO state machine driven by inputs, yielding outputs.
///
/// ```text
///  handle_message(now, from, conn, msg) ───┐
///  handle_client(now, ClientRequest) ──────┤
///  handle_admin(now, id, AdminCommand) ────┤      ┌──────────┐      poll_output() → Output:
///  handle_timer(now, TimerId) ─────────────┼────▶ │ Replica  │ ───▶  PersistState, Send, AppendLog,
///  handle_storage(now, StorageEvent) ──────┤      └──────────┘       Fsync, Redo, RevertLog,
///  handle_connection(now, ConnectionEvent) ┤                         ClientReply, AdminReply,
///  handle_manager(now, ManagerEvent) ──────┘                         SetTimer, RoleChanged,
///                                                                     PrimaryChanged, Manager…
/// ```
///
/// Time is a millisecond count supplied by the caller on every input; the core has no clock,
/// no sockets and no files.
///
/// **`now_ms` must come from a monotonic clock** (`Instant`, `CLOCK_MONOTONIC`), never from
/// wall-clock time: lease ends and session deadlines are instants on that clock, and a clock
/// that steps back would let a primary commit past the end of its lease (R-QUORUM-3). As a
/// defence the core never lets time go back: an input whose `now_ms` is below the largest one
/// seen is processed at that largest one. (This only stops time; it cannot shorten a lease in
/// real time, so the requirement stands.)
///
/// # The ordering contract
///
/// The core's safety rests on the shell doing what the outputs say, in order, and reporting
/// only what is true. In the spirit of raft-rs's "persist, then send":
///
/// 1. **Perform outputs in the order they are polled.** `AppendLog` records of a database go to
///    its log file in order, right after the previous ones.
/// 2. **`PersistState` is durable before any later output is performed.** It carries the role
///    and epoch that the `Send`s after it announce; a restart must never forget an epoch it
///    announced.
/// 3. **Report `LogHardened { up_to }` only after an fsync covering `up_to` finished**, and
///    `LogReverted` only once the truncation is durable. Per database, report completions in
///    the order the operations were emitted.
/// 4. Sending log to secondaries does not wait for the local fsync (the primary ships and
///    hardens in parallel, like SQL Server); *acknowledging* does.
/// 5. **Connections have identities.** Give every connection a fresh [`ConnectionId`], tag its
///    [`ConnectionEvent`]s and the messages read from it with that id, and perform each
///    `Send` on the connection it names (drop it if that connection is gone).
/// 6. **A failed write is a `Closed`.** A `Send` that cannot be performed on an open connection
///    (write error, a send buffer the shell will not wait for) closes that connection and is
///    reported as [`ConnectionEvent::Closed`]: never drop a `Log` or a `Progress` silently
///    while the connection stays open, or the core would go on counting a peer that no longer
///    receives (or acknowledges) anything.
///
/// In return the core guarantees, and checks at the point of acknowledgement (R-COMMIT-2/3,
/// R-COMMIT-6):
///
/// - a commit is acknowledged (`ClientReply::Committed`) only after the local `LogHardened`
///   covering its LSN was reported **and** every commit participant (a connected,
///   synchronous-commit, SYNCHRONIZED secondary) reported hardening it, **and** at least
///   REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT of them did;
/// - with a cluster manager, a secondary that leaves the SYNCHRONIZED set is still waited for
///   until the manager confirmed (`ManagerEvent::SyncStatePublished`) a publication without
///   it, and every secondary of a publication still in flight (sent after the last confirmed
///   one) is waited for too, since the manager may store any of them next: the
///   `PublishSyncState` output comes first, the acknowledgements after the confirmation, so
///   an automatic failover can never pick a replica that misses an acknowledged commit
///   (provided the manager stores publications in version order and refuses older ones);
/// - a secondary's `Progress` acknowledges only what its own `LogHardened` inputs covered;
/// - a redo is never awaited by a commit.
///
/// After every input, debug builds check the invariants of [`Replica::validate`].
#[derive(Clone)]
pub struct Replica {
    name: String,
    options: CoreOptions,
    core: Option<Core>,
    outputs: VecDeque<Output>,
    persisted: Option<PersistentState>,
    /// The largest `now_ms` seen: time never goes back inside the core.
    last_now_ms: u64,
    /// The shell's data files ([`Replica::set_data_store`]).
    store: Option<SharedStore>,
}

/// A planned failover this replica (the target) asked its primary for (R-FAIL-3).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingFailover {
    request: RequestId,
    primary: ReplicaId,
    /// FORCE_FAILOVER_ALLOW_DATA_LOSS on a SYNCHRONIZED target: fall back to a forced failover
    /// if the primary refuses.
    forced: bool,
    /// The primary's ends of log, once it granted.
    ends: Option<Vec<Lsn>>,
}

/// A promotion asked of the cluster manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AwaitingPromotion {
    kind: PromotionKind,
    request: Option<RequestId>,
}

/// What has been published to the cluster manager (R-COMMIT-4 with a manager).
#[derive(Clone, Debug, Default)]
struct Publication {
    version: u64,
    last: Option<Vec<BTreeSet<ReplicaId>>>,
    pending: BTreeMap<u64, Vec<BTreeSet<ReplicaId>>>,
    /// The SYNCHRONIZED sets the manager confirmed last: commits wait for these too.
    confirmed: Vec<BTreeSet<ReplicaId>>,
}

/// The state of a replica that belongs to an availability group.
#[derive(Clone)]
struct Core {
    /// The time of the input being processed (never less than that of an earlier input).
    now_ms: u64,
    config: AgConfig,
    me: ReplicaId,
    role: Role,
    epoch: Epoch,
    last_forced: Epoch,
    max_term: u64,
    primary: Option<ReplicaId>,
    peers: Vec<Peer>,
    dbs: Vec<Database>,
    lease_until_ms: Option<u64>,
    publication: Publication,
    failover: Option<PendingFailover>,
    handover_to: Option<ReplicaId>,
    awaiting_promotion: Option<AwaitingPromotion>,
    /// Every commit clients asked this replica for, per database (R-COMMIT-7).
    outcomes: BTreeMap<(DatabaseId, TxnId), TxnOutcome>,
    options: CoreOptions,
    /// The role and epoch the last broadcast handshake announced.
    announced: (Role, Epoch),
    /// The primary (and its epoch) the last `PrimaryChanged` announced.
    announced_primary: (Option<ReplicaId>, Option<Epoch>),
    /// Whether the cluster manager's majority is reachable (always, without a manager).
    manager_reachable: bool,
    /// The shell's data files: where keys checkpointed and not written since are read.
    store: Option<SharedStore>,
}

/// What a client was told about a commit: the observation, and the reply itself so that a
/// commit retried after an indefinite reply (or a lost one) learns the same truth.
#[derive(Clone, Debug)]
struct TxnOutcome {
    observation: TransactionObservation,
    /// The final reply; `None` while the commit waits.
    reply: Option<ClientReply>,
}

type Out = VecDeque<Output>;

/// Sends `body` to `to` on the connection the core has open to it; with none open there is
/// nobody to tell (the next session starts with a handshake) and nothing is emitted.
fn send(out: &mut Out, peers: &[Peer], to: ReplicaId, epoch: Epoch, body: MessageBody) {
    // Every caller names a replica of the group (its own books or a peer it checked).
    debug_assert!(
        usize::from(to.0) < peers.len(),
        "R-SYNC-1: a message to {to}, which is no replica of this group of {}",
        peers.len()
    );
    let Some(connection) = peers.get(usize::from(to.0)).and_then(|p| p.connection) else {
        tracing::trace!(peer = to.0, "no connection: message not sent");
        return;
    };
    debug_assert!(
        peers[usize::from(to.0)].retired != Some(connection),
        "R-HEALTH-1: a message to {to} on {connection}, a connection the core ended"
    );
    out.push_back(Output::Send {
        to,
        connection,
        message: PeerMessage { epoch, body },
    });
}

fn ignored(out: &mut Out, source: InputSource, reason: IgnoredReason) {
    // A reason that names a peer names the one whose input it answers; a stale connection is
    // never the current one.
    debug_assert!(
        match (&reason, &source) {
            (
                IgnoredReason::UnknownPeer { peer }
                | IgnoredReason::NotConnected { peer }
                | IgnoredReason::WrongReplica { peer, .. }
                | IgnoredReason::ConfigurationOnlyPeer { peer }
                | IgnoredReason::PrimaryOfAnotherEpoch { peer, .. }
                | IgnoredReason::ConnectionAlreadySeen { peer, .. },
                InputSource::Peer(from) | InputSource::Connection(from),
            ) => peer == from,
            (
                IgnoredReason::StaleConnection {
                    peer,
                    connection,
                    current,
                },
                InputSource::Peer(from) | InputSource::Connection(from),
            ) => peer == from && *current != Some(*connection),
            (
                IgnoredReason::UnknownPeer { .. }
                | IgnoredReason::NotConnected { .. }
                | IgnoredReason::WrongReplica { .. }
                | IgnoredReason::ConfigurationOnlyPeer { .. }
                | IgnoredReason::PrimaryOfAnotherEpoch { .. }
                | IgnoredReason::ConnectionAlreadySeen { .. }
                | IgnoredReason::StaleConnection { .. },
                _,
            ) => false,
            _ => true,
        },
        "R-HEALTH-2: {source:?} ignored for a reason about another peer: {reason}"
    );
    tracing::debug!(?source, %reason, "input ignored");
    out.push_back(Output::Ignored { source, reason });
}

impl Replica {
    /// A replica process that belongs to no availability group yet; `name` is its server
    /// instance name, as the configuration lists it. Start with
    /// [`AdminCommand::CreateAvailabilityGroup`] or [`AdminCommand::JoinAvailabilityGroup`].
    pub fn new(name: impl Into<String>) -> Self {
        let replica = Replica::with_options(name, CoreOptions::default());
        invariant!(
            replica,
            !replica.mutated() && replica.role().is_none(),
            "R-ROLE-2: a new replica has a planted bug or a role ({:?}) before it joins a group",
            replica.role()
        );
        replica
    }

    /// Like [`Replica::new`], with tunables.
    pub fn with_options(name: impl Into<String>, options: CoreOptions) -> Self {
        let replica = Replica {
            name: name.into(),
            options,
            core: None,
            outputs: VecDeque::new(),
            persisted: None,
            last_now_ms: 0,
            store: None,
        };
        invariant!(
            replica,
            replica.status().is_none()
                && replica.transactions().is_empty()
                && replica.persistent_state().is_none(),
            "R-HEALTH-2: a replica outside any group shows a state"
        );
        replica
    }

    /// Rebuilds a replica after a restart, at `now_ms`, from its last [`PersistentState`] and
    /// the hardened log of each database (in configuration order). The recovered log counts as
    /// hardened and redone.
    ///
    /// The replica comes back SECONDARY (not following anyone until a primary's handshake), or
    /// RESOLVING if it was RESOLVING, or if it was PRIMARY under a cluster manager (the manager
    /// decides again). A PRIMARY of `CLUSTER_TYPE = NONE` comes back PRIMARY, as SQL Server
    /// does, in a new generation of its epoch; it steps down as soon as a peer shows it a newer
    /// epoch (see "CLUSTER_TYPE NONE and split brain" in the crate docs).
    ///
    /// Everything handed in comes from disk and is checked, never trusted: a state that
    /// contradicts itself, its configuration or the logs is refused with a [`RecoveryError`].
    pub fn recover(
        now_ms: u64,
        name: impl Into<String>,
        state: PersistentState,
        logs: Vec<Vec<LogRecord>>,
        options: CoreOptions,
    ) -> Result<Replica, RecoveryError> {
        let name = name.into();
        let config = state.config.clone();
        config
            .validate()
            .map_err(|e| RecoveryError::InvalidConfiguration(e.to_string()))?;
        let actual = config.replica_id(&name);
        if actual != Some(state.replica) {
            return Err(RecoveryError::NotThisReplica {
                stored: state.replica,
                name,
                actual,
            });
        }
        let me = state.replica;
        if config.replicas[usize::from(me.0)].availability_mode
            == AvailabilityMode::ConfigurationOnly
        {
            return Err(RecoveryError::ConfigurationOnlyReplica { name });
        }
        if logs.len() != config.databases.len() {
            return Err(RecoveryError::LogCount {
                logs: logs.len(),
                databases: config.databases.len(),
            });
        }
        if state.databases.len() != config.databases.len() {
            return Err(RecoveryError::DatabaseStateCount {
                stored: state.databases.len(),
                databases: config.databases.len(),
            });
        }
        let epochs = [state.epoch, state.last_forced_epoch].into_iter().chain(
            state
                .databases
                .iter()
                .flat_map(|d| [d.accepted_epoch, d.suspended_by_epoch]),
        );
        for epoch in epochs {
            if epoch.term > Epoch::MAX_TERM {
                return Err(RecoveryError::EpochOutOfRange { epoch });
            }
        }
        if state.role == Role::Primary {
            if state.epoch.term == 0 {
                return Err(RecoveryError::PrimaryWithoutEpoch);
            }
            if state.epoch.replica != me {
                return Err(RecoveryError::PrimaryOfAnotherEpoch {
                    epoch: state.epoch,
                    replica: me,
                });
            }
        }
        let mut max_term = state.epoch.term.max(state.last_forced_epoch.term);
        for (index, (log, stored)) in logs.iter().zip(&state.databases).enumerate() {
            let database = DatabaseId(index as u8);
            // The log continues the checkpoint, whose fork history ends at it.
            check_fork_history(&stored.checkpointed_forks, stored.checkpointed)
                .map_err(|error| RecoveryError::MalformedLog { database, error })?;
            let checkpointed_epoch = stored
                .checkpointed_forks
                .last()
                .map_or(Epoch::NONE, |s| s.epoch);
            check_run(log, stored.checkpointed, checkpointed_epoch)
                .map_err(|error| RecoveryError::MalformedLog { database, error })?;
            if stored.accepted_epoch > state.epoch {
                return Err(RecoveryError::AcceptedEpochAhead {
                    database,
                    accepted: stored.accepted_epoch,
                    epoch: state.epoch,
                });
            }
            if let Some(damage) = stored.damaged {
                if damage.lost_through <= damage.kept {
                    return Err(RecoveryError::MalformedDamage {
                        database,
                        kept: damage.kept,
                        lost_through: damage.lost_through,
                    });
                }
            }
            // Records are written or taken only in the replica's current epoch, which is
            // persisted before them (the ordering contract): the last record, and the last
            // fork segment of the checkpointed log.
            let last = log.last().map(|r| (r.lsn, r.epoch));
            let checkpointed = stored
                .checkpointed_forks
                .last()
                .map(|s| (s.first_lsn, s.epoch));
            for (lsn, record) in [last, checkpointed].into_iter().flatten() {
                if record > state.epoch {
                    return Err(RecoveryError::LogAheadOfEpoch {
                        database,
                        lsn,
                        record,
                        epoch: state.epoch,
                    });
                }
                max_term = max_term.max(record.term);
            }
        }
        // Under a cluster manager the role comes from the manager (R-ROLE-2): every replica
        // restarts RESOLVING and learns it is a secondary when the shell reports the manager
        // reachable ([`ManagerEvent::Reachable`]).
        let has_manager = config.cluster_type.has_manager();
        // A copy that may lack acknowledged commits never leads (R-COMMIT-6): a PRIMARY of
        // CLUSTER_TYPE NONE with a damaged database comes back SECONDARY, and an operator fails
        // over to an intact copy.
        let damaged = state.databases.iter().find_map(|d| d.damaged);
        if let (Some(damage), Role::Primary, false) = (damaged, state.role, has_manager) {
            tracing::error!(
                kept = %damage.kept,
                lost_through = %damage.lost_through,
                "this PRIMARY restarts with a damaged log: it comes back SECONDARY; fail over to a replica with an intact copy"
            );
        }
        let role = match state.role {
            Role::Primary if !has_manager && damaged.is_none() => Role::Primary,
            Role::Primary if !has_manager => Role::Secondary,
            _ if has_manager => Role::Resolving,
            Role::Primary | Role::Resolving => Role::Resolving,
            Role::Secondary => Role::Secondary,
        };
        let logs = logs
            .into_iter()
            .zip(&state.databases)
            .map(|(log, stored)| {
                let base = CheckpointBase {
                    lsn: stored.checkpointed,
                    forks: stored.checkpointed_forks.clone(),
                    txns: stored.checkpointed_txns.clone(),
                };
                (base, log)
            })
            .collect();
        let mut core = Core::new(config, me, options, logs, None);
        core.manager_reachable = !has_manager;
        core.now_ms = now_ms;
        core.role = role;
        core.epoch = state.epoch;
        if role == Role::Primary {
            // A new generation: what it writes now differs from what it had shipped but not
            // hardened before the crash (see `Epoch`).
            core.epoch.generation = core.epoch.generation.saturating_add(1);
        }
        core.last_forced = state.last_forced_epoch;
        core.max_term = max_term;
        core.primary = (role == Role::Primary).then_some(me);
        let others = core.data_peers();
        for (db, stored) in core.dbs.iter_mut().zip(&state.databases) {
            db.suspended = stored.suspended;
            db.suspended_by_epoch = stored.suspended_by_epoch;
            db.accepted_epoch = stored.accepted_epoch;
            db.damaged = stored.damaged;
            if role == Role::Primary {
                db.become_primary(&others);
            }
        }
        // No peer is connected yet: the first handshakes carry the role and epoch.
        core.announced = (core.role, core.epoch);
        core.validate().map_err(RecoveryError::Inconsistent)?;
        invariant!(
            core,
            !(has_manager && core.role == Role::Primary),
            "R-ROLE-2: under a cluster manager a restarted replica comes back RESOLVING, not {}",
            core.role
        );
        invariant!(
            core,
            core.dbs
                .iter()
                .all(|db| db.hardened == db.end() && db.redone == db.end()),
            "R-SYNC-2: the recovered log does not count as hardened and redone"
        );
        let mut replica = Replica {
            name,
            options,
            core: None,
            outputs: VecDeque::new(),
            persisted: Some(state),
            last_now_ms: now_ms,
            store: None,
        };
        replica.outputs.push_back(Output::RoleChanged {
            role,
            epoch: core.epoch,
        });
        replica.outputs.push_back(Output::SetTimer {
            timer: TimerId::Heartbeat,
            at_ms: now_ms.saturating_add(core.ping_interval_ms()),
        });
        if role == Role::Primary {
            replica.outputs.push_back(Output::PrimaryChanged {
                primary: Some(me),
                epoch: core.epoch,
            });
        }
        core.announced_primary = (core.primary, core.primary.map(|_| core.epoch));
        replica.core = Some(core);
        replica.after_input(0);
        Ok(replica)
    }

    /// A message from peer `from`, read from `connection` (the connection to that replica the
    /// shell reported [`ConnectionEvent::Opened`]). A message read from a connection that is no
    /// longer the peer's current one is ignored.
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        connection: ConnectionId,
        message: PeerMessage,
    ) {
        self.input(
            now_ms,
            |replica, now_ms| tracing::debug_span!("handle_message", replica = %replica, now_ms),
            (connection, message),
            |core, now_ms, (connection, message), out| {
                core.check_lease(now_ms, out);
                core.on_message(now_ms, from, connection, message, out);
                // Whatever the peer said: a replica follows only the data replica that leads
                // its epoch (the handshake of a primary of another epoch, or of a
                // configuration-only replica, was ignored).
                invariant!(
                    core,
                    core.primary.is_none_or(|p| {
                        p == core.epoch.replica
                            && core.config.replica(p).is_some_and(|r| {
                                r.availability_mode != AvailabilityMode::ConfigurationOnly
                            })
                    }),
                    "R-ROLE-1: {} follows {:?} in {}",
                    core.me,
                    core.primary,
                    core.epoch
                );
            },
            |replica, _, _| replica.outside_group(InputSource::Peer(from)),
        );
    }

    /// A client request. Every request gets exactly one [`Output::ClientReply`], now or later
    /// (commits wait for R-COMMIT-2/3).
    pub fn handle_client(&mut self, now_ms: u64, request: ClientRequest) {
        let (id, database) = (request.request, request.database);
        let mark = self.outputs.len();
        self.input(
            now_ms,
            |replica, now_ms| tracing::debug_span!("handle_client", replica = %replica, now_ms),
            request,
            |core, now_ms, request, out| {
                core.check_lease(now_ms, out);
                invariant!(
                    core,
                    !(core.has_manager() && core.role == Role::Primary)
                        || core.lease_until_ms.is_some_and(|until| until > now_ms),
                    "R-QUORUM-3: a primary serves a client at {now_ms} without an unexpired lease ({:?})",
                    core.lease_until_ms
                );
                core.on_client(now_ms, request, out);
            },
            |replica, _, request| {
                replica.outputs.push_back(Output::ClientReply {
                    request: request.request,
                    reply: ClientReply::Refused(crate::error::ClientError::NotInAvailabilityGroup),
                })
            },
        );
        // Exactly one reply, now or later: a commit that waits is the last one waiting.
        let answered = self
            .outputs
            .range(mark..)
            .any(|o| matches!(o, Output::ClientReply { request, .. } if *request == id));
        let waiting = self
            .core
            .as_ref()
            .and_then(|core| core.dbs.get(usize::from(database.0)))
            .and_then(|db| db.primary())
            .and_then(|books| books.pending.back())
            .is_some_and(|pending| pending.request == id);
        invariant!(
            self,
            answered || waiting,
            "R-COMMIT-7: {id} was neither answered nor left waiting for its commit"
        );
    }

    /// An admin command. Every command gets exactly one [`Output::AdminReply`], now or later
    /// (a failover answers when it completes).
    pub fn handle_admin(&mut self, now_ms: u64, request: RequestId, command: AdminCommand) {
        let mark = self.outputs.len();
        self.input(
            now_ms,
            |replica, now_ms| tracing::debug_span!("handle_admin", replica = %replica, now_ms),
            command,
            |core, now_ms, command, out| core.on_admin(now_ms, request, command, out),
            |replica, now_ms, command| replica.admin_outside_group(now_ms, request, command),
        );
        // Exactly one reply, now or when the failover it started completes.
        let answered = self
            .outputs
            .range(mark..)
            .any(|o| matches!(o, Output::AdminReply { request: r, .. } if *r == request));
        let waiting = self.core.as_ref().is_some_and(|core| {
            core.failover.as_ref().is_some_and(|f| f.request == request)
                || core
                    .awaiting_promotion
                    .is_some_and(|a| a.request == Some(request))
        });
        invariant!(
            self,
            answered || waiting,
            "R-FAIL-3: {request} was neither answered nor left waiting for a failover"
        );
    }

    /// A timer the core set ([`Output::SetTimer`]) fired. Stale timers are harmless.
    pub fn handle_timer(&mut self, now_ms: u64, timer: TimerId) {
        self.input(
            now_ms,
            |replica, now_ms| tracing::debug_span!("handle_timer", replica = %replica, now_ms),
            timer,
            |core, now_ms, timer, out| {
                core.check_lease(now_ms, out);
                core.on_timer(now_ms, timer, out);
                invariant!(
                    core,
                    !(core.has_manager() && core.role == Role::Primary)
                        || core.lease_until_ms.is_some_and(|until| until > now_ms),
                    "R-QUORUM-3: still primary after {timer:?} at {now_ms} without an unexpired lease ({:?})",
                    core.lease_until_ms
                );
            },
            |replica, _, timer| replica.outside_group(InputSource::Timer(timer)),
        );
    }

    /// A storage operation finished. An event that breaks the ordering contract (see
    /// [`Replica`]) is refused with an error and changes nothing.
    pub fn handle_storage(
        &mut self,
        now_ms: u64,
        event: StorageEvent,
    ) -> Result<(), StorageContractError> {
        self.input(
            now_ms,
            |replica, now_ms| tracing::debug_span!("handle_storage", replica = %replica, now_ms),
            event,
            |core, now_ms, event, out| {
                core.check_lease(now_ms, out);
                let emitted = out.len();
                let result = core.on_storage(event, out);
                // A completion that breaks the ordering contract changes nothing.
                invariant!(
                    core,
                    result.is_ok() || out.len() == emitted,
                    "R-SYNC-2: a refused storage completion ({:?}) emitted {} outputs",
                    result,
                    out.len() - emitted
                );
                result
            },
            |_, _, _| Err(StorageContractError::NotInAvailabilityGroup),
        )
    }

    /// A peer connection opened or closed.
    pub fn handle_connection(&mut self, now_ms: u64, event: ConnectionEvent) {
        self.input(
            now_ms,
            |replica, now_ms| tracing::debug_span!("handle_connection", replica = %replica, now_ms),
            event,
            |core, now_ms, event, out| {
                core.check_lease(now_ms, out);
                core.on_connection(now_ms, event, out);
                // No session with itself, and never on a connection the core ended.
                invariant!(
                    core,
                    core.peers[usize::from(core.me.0)].connection.is_none()
                        && core
                            .peers
                            .iter()
                            .all(|p| p.connection.is_none() || p.connection != p.retired),
                    "R-HEALTH-1: {} holds a session with itself or on a retired connection",
                    core.me
                );
            },
            |replica, _, event| replica.outside_group(InputSource::Connection(event.peer())),
        );
    }

    /// An event from the cluster manager (never with `CLUSTER_TYPE = NONE`).
    pub fn handle_manager(&mut self, now_ms: u64, event: ManagerEvent) {
        self.input(
            now_ms,
            |replica, now_ms| tracing::debug_span!("handle_manager", replica = %replica, now_ms),
            event,
            |core, now_ms, event, out| {
                // A renewal whose deadline is still ahead is taken before the lease is judged:
                // the shell may deliver it late (its thread was busy while the manager renewed),
                // and its deadline counts from when it was sent, so etcd held the lease without
                // a gap (a renewal of an expired lease fails; R-QUORUM-3 stays intact).
                let renewal_ahead = matches!(
                    event,
                    ManagerEvent::LeaseRenewed { lease_until_ms } if lease_until_ms > now_ms
                );
                if !renewal_ahead {
                    core.check_lease(now_ms, out);
                }
                core.on_manager(now_ms, event, out);
                invariant!(
                    core,
                    !(core.has_manager() && core.role == Role::Primary)
                        || core.lease_until_ms.is_some_and(|until| until > now_ms),
                    "R-QUORUM-3: primary after a manager event at {now_ms} without an unexpired lease ({:?})",
                    core.lease_until_ms
                );
            },
            |replica, _, _| replica.outside_group(InputSource::Manager),
        );
    }

    /// What every `handle_*` does around its own part: time that never goes back, the input's
    /// span (named after the `handle_*`, with the replica's name and the time), the input
    /// itself, `in_group` by the group's core or `no_group` before the replica belongs to one;
    /// then the core settles what the input changed (`settle`), and `after_input`.
    fn input<I, R>(
        &mut self,
        now_ms: u64,
        span: fn(&str, u64) -> tracing::Span,
        input: I,
        in_group: impl FnOnce(&mut Core, u64, I, &mut Out) -> R,
        no_group: impl FnOnce(&mut Replica, u64, I) -> R,
    ) -> R {
        let now_ms = self.tick(now_ms);
        let _entered = span(&self.name, now_ms).entered();
        let mark = self.outputs.len();
        let result = match self.core.as_mut() {
            Some(core) => in_group(core, now_ms, input, &mut self.outputs),
            // CREATE and JOIN make the core here: it settles like any other.
            None => no_group(self, now_ms, input),
        };
        if let Some(core) = self.core.as_mut() {
            core.settle(now_ms, &mut self.outputs);
            core.checkpoint(&mut self.outputs);
        }
        self.after_input(mark);
        // Persist, then send: the role and epoch that later outputs announce are handed to the
        // shell to persist first (a restart never forgets an epoch it announced).
        if let Some(core) = &self.core {
            invariant!(
                self,
                self.persisted
                    .as_ref()
                    .is_some_and(|p| p.role == core.role && p.epoch == core.epoch),
                "R-ROLE-1: {} in {} not handed to the shell to persist",
                core.role,
                core.epoch
            );
        }
        result
    }

    /// An input that only a replica of a group can take.
    fn outside_group(&mut self, source: InputSource) {
        invariant!(
            self,
            self.core.is_none(),
            "R-ROLE-2: {source:?} ignored as outside any group, but this replica belongs to one"
        );
        ignored(
            &mut self.outputs,
            source,
            IgnoredReason::NotInAvailabilityGroup,
        );
    }

    /// The next thing to do, in order; `None` when there is nothing left.
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front();
        // Outside a group a replica only answers: it persists, sends and writes nothing.
        invariant!(
            self,
            self.core.is_some()
                || output.as_ref().is_none_or(|o| {
                    matches!(
                        o,
                        Output::ClientReply { .. }
                            | Output::AdminReply { .. }
                            | Output::Ignored { .. }
                    )
                }),
            "R-ROLE-2: a replica outside any group emits {output:?}"
        );
        output
    }

    /// Every output waiting, in order (a convenience over [`Replica::poll_output`]).
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.poll_output()).collect()
    }

    /// This server's instance name.
    pub fn name(&self) -> &str {
        invariant!(
            self,
            self.core
                .as_ref()
                .is_none_or(|c| c.config.replica_id(&self.name) == Some(c.me)),
            "R-HEALTH-2: '{}' is not the configuration's name of {:?}",
            self.name,
            self.id()
        );
        &self.name
    }

    /// The tunables.
    pub fn options(&self) -> CoreOptions {
        // The core runs with the replica's tunables: the same bug planted (or none) disarms
        // `invariant!` and `validate` alike.
        invariant!(
            self,
            self.core.as_ref().is_none_or(|c| c.options == self.options),
            "R-SYNC-1: the core's tunables differ from the replica's"
        );
        self.options
    }

    /// Whether a bug is planted in this replica (feature `mutants`).
    fn mutated(&self) -> bool {
        #[cfg(feature = "mutants")]
        let mutated = self.options.mutant.is_some();
        #[cfg(not(feature = "mutants"))]
        let mutated = false;
        // `validate` asks the replica, `invariant!` its core: both must skip a planted bug.
        debug_assert!(
            self.core.as_ref().is_none_or(|c| c.mutated() == mutated),
            "R-COMMIT-2: the replica and its core disagree on whether a bug is planted"
        );
        mutated
    }

    /// The group's configuration as this replica knows it (with k changes applied).
    pub fn config(&self) -> Option<&AgConfig> {
        let core = self.core.as_ref()?;
        invariant!(
            self,
            core.config.replicas.len() == core.peers.len()
                && core.config.replicas.len() <= 1 + hadr_types::config::MAX_SECONDARY_REPLICAS
                && core.config.databases.len() == core.dbs.len(),
            "R-LIMIT-1: {} replicas and {} databases configured, {} peers and {} databases held",
            core.config.replicas.len(),
            core.config.databases.len(),
            core.peers.len(),
            core.dbs.len()
        );
        Some(&core.config)
    }

    /// This replica's id, once it belongs to a group.
    pub fn id(&self) -> Option<ReplicaId> {
        let me = self.core.as_ref().map(|c| c.me);
        invariant!(
            self,
            self.core.as_ref().is_none_or(|c| c
                .config
                .replica(c.me)
                .is_some_and(|r| r.availability_mode != AvailabilityMode::ConfigurationOnly)),
            "R-QUORUM-6: {me:?} is no data replica of the group, yet holds data"
        );
        me
    }

    /// Its role, once it belongs to a group.
    pub fn role(&self) -> Option<Role> {
        let core = self.core.as_ref()?;
        invariant!(
            self,
            (core.role == Role::Primary) == (core.primary == Some(core.me)),
            "R-ROLE-1: {} {} knows {:?} as primary",
            core.role,
            core.me,
            core.primary
        );
        Some(core.role)
    }

    /// The epoch of the primary it leads or follows.
    pub fn epoch(&self) -> Option<Epoch> {
        let core = self.core.as_ref()?;
        invariant!(
            self,
            (core.role != Role::Primary || core.epoch.replica == core.me)
                && core.epoch.term <= core.max_term,
            "R-ROLE-1: {} {} in {} (highest term seen {})",
            core.role,
            core.me,
            core.epoch,
            core.max_term
        );
        Some(core.epoch)
    }

    /// The primary it knows of (itself when primary).
    pub fn primary(&self) -> Option<ReplicaId> {
        let primary = self.core.as_ref().and_then(|c| c.primary);
        invariant!(
            self,
            self.core.as_ref().is_none_or(|c| primary.is_none_or(|p| c
                .config
                .replica(p)
                .is_some_and(|r| r.availability_mode != AvailabilityMode::ConfigurationOnly))),
            "R-QUORUM-6: {primary:?}, the primary known, is no data replica of the group"
        );
        primary
    }

    /// Where a read-write connection that reached this replica goes instead (R-READ-3): the
    /// current primary's READ_WRITE_ROUTING_URL, when this replica is a SECONDARY that accepts
    /// connections and its primary has one.
    pub fn read_write_redirect(&self) -> Option<&str> {
        let core = self.core.as_ref()?;
        let url = core.read_write_redirect();
        invariant!(
            self,
            url.is_none() || (core.role == Role::Secondary && core.primary.is_some()),
            "R-READ-3: a {} following {:?} redirects read-write connections",
            core.role,
            core.primary
        );
        url
    }

    /// The connection to `peer` this replica considers current (the last one reported
    /// [`ConnectionEvent::Opened`] and not closed since).
    pub fn connection(&self, peer: ReplicaId) -> Option<ConnectionId> {
        let core = self.core.as_ref()?;
        let state = core.peers.get(usize::from(peer.0))?;
        invariant!(
            self,
            state.connection.is_none() || (peer != core.me && state.connection != state.retired),
            "R-HEALTH-1: {:?} to {peer} is current, but it is the core itself or the connection it ended",
            state.connection
        );
        state.connection
    }

    /// The databases whose log was found damaged at a restart (SUSPECT) and is not repaired
    /// yet, with what each lost. A replica holding one does not become primary (R-COMMIT-6):
    /// its shell does not ask the cluster manager for a promotion.
    pub fn damaged_databases(&self) -> Vec<(DatabaseId, LogDamage)> {
        let damaged: Vec<(DatabaseId, LogDamage)> = self
            .core
            .iter()
            .flat_map(|c| c.dbs.iter())
            .filter_map(|db| Some((db.id, db.damaged?)))
            .collect();
        invariant!(
            self,
            damaged.is_empty() || self.role() != Some(Role::Primary),
            "R-COMMIT-6: a PRIMARY holds damaged copies {damaged:?}"
        );
        damaged
    }

    /// `end_of_log_lsn` of a database: the operator picks the forced-failover target with the
    /// highest one (R-FAIL-6).
    pub fn end_of_log_lsn(&self, database: DatabaseId) -> Option<Lsn> {
        let db = self
            .core
            .as_ref()
            .and_then(|c| c.dbs.get(usize::from(database.0)))?;
        invariant!(
            self,
            db.redone <= db.hardened && db.hardened <= db.end(),
            "R-SYNC-2: {database}: end {} hardened {} redone {}",
            db.end(),
            db.hardened,
            db.redone
        );
        Some(db.end())
    }

    /// The log of a database as this replica holds it (hardened or not) after its last
    /// checkpoint ([`Replica::checkpointed`]; the whole log when it never checkpointed).
    pub fn log(&self, database: DatabaseId) -> Option<&[LogRecord]> {
        let db = self
            .core
            .as_ref()
            .and_then(|c| c.dbs.get(usize::from(database.0)))?;
        let (log, base) = (db.log(), db.checkpointed());
        // Consecutive from the checkpoint (checked at its ends; `validate` walks it in debug
        // builds).
        invariant!(
            self,
            log.first().is_none_or(|r| r.lsn == Lsn(base.0 + 1))
                && log.last().is_none_or(|r| r.lsn == Lsn(base.0 + log.len() as u64)),
            "R-SYNC-1: the log of {database} is not consecutive from its checkpoint {base}: {:?} … {:?} in {} records",
            log.first().map(|r| r.lsn),
            log.last().map(|r| r.lsn),
            log.len()
        );
        Some(log)
    }

    /// What the last checkpoint of a database covered (its log up to there is in the shell's
    /// data file, not in [`Replica::log`]).
    pub fn checkpointed(&self, database: DatabaseId) -> Option<Lsn> {
        self.core
            .as_ref()
            .and_then(|c| c.dbs.get(usize::from(database.0)))
            .map(|db| db.checkpointed())
    }

    /// Gives the replica the shell's data files: where it reads keys that were checkpointed
    /// ([`Output::Checkpoint`]) and not written since. Needed with
    /// [`CoreOptions::checkpoint_bytes`], or when recovering a database that checkpointed;
    /// without it such reads are answered with [`ClientError::DataUnreadable`](crate::ClientError::DataUnreadable).
    pub fn set_data_store(&mut self, store: SharedStore) {
        if let Some(core) = self.core.as_mut() {
            core.store = Some(store.clone());
        }
        self.store = Some(store);
    }

    /// The durable metadata as of now (what the last `PersistState` carried).
    pub fn persistent_state(&self) -> Option<PersistentState> {
        let state = self.core.as_ref().map(|c| c.persistent_state());
        // Between inputs it is what the last `PersistState` carried.
        invariant!(
            self,
            state == self.persisted,
            "R-ROLE-1: the durable metadata differs from what the last PersistState carried"
        );
        state
    }

    /// Time never goes back inside the core (see "monotonic clock" above).
    fn tick(&mut self, now_ms: u64) -> u64 {
        // The core's clock is the replica's: only `tick` moves either.
        invariant!(
            self,
            self.core
                .as_ref()
                .is_none_or(|c| c.now_ms == self.last_now_ms),
            "R-QUORUM-3: the core's clock ({:?}) is not the replica's ({})",
            self.core.as_ref().map(|c| c.now_ms),
            self.last_now_ms
        );
        if now_ms < self.last_now_ms {
            tracing::warn!(
                now_ms,
                last_now_ms = self.last_now_ms,
                "time went back: the shell must pass a monotonic clock"
            );
        }
        self.last_now_ms = self.last_now_ms.max(now_ms);
        if let Some(core) = self.core.as_mut() {
            core.now_ms = self.last_now_ms;
        }
        self.last_now_ms
    }

    /// After every input: persist what changed *before* the input's other outputs, and check
    /// the invariants in debug builds.
    fn after_input(&mut self, mark: usize) {
        if let Some(core) = &self.core {
            // Compared in place: most inputs change nothing durable, and building the state
            // clones the configuration.
            if !self
                .persisted
                .as_ref()
                .is_some_and(|p| core.persisted_as(p))
            {
                let state = core.persistent_state();
                self.outputs.insert(
                    mark.min(self.outputs.len()),
                    Output::PersistState(state.clone()),
                );
                self.persisted = Some(state);
            }
        }
        #[cfg(debug_assertions)]
        if let (Some(core), Some(p)) = (&self.core, &self.persisted) {
            debug_assert!(
                core.persisted_as(p) == (*p == core.persistent_state()),
                "persisted_as disagrees with persistent_state: a field was added to one only"
            );
        }
        #[cfg(debug_assertions)]
        if let Err(violation) = self.validate() {
            panic!("hadr-core: {violation} (replica '{}')", self.name);
        }
    }
}

impl Core {
    /// Whether a bug is planted in this replica (always `false` without the `mutants` feature).
    #[inline]
    fn mutated(&self) -> bool {
        // The planted bug is the one certification names on the command line.
        #[cfg(feature = "mutants")]
        debug_assert!(
            self.options
                .mutant
                .is_none_or(|m| m.name().parse::<crate::mutants::Mutant>() == Ok(m)),
            "R-COMMIT-2: the planted bug {:?} is not found under its own name",
            self.options.mutant
        );
        #[cfg(feature = "mutants")]
        return self.options.mutant.is_some();
        #[cfg(not(feature = "mutants"))]
        false
    }

    /// Whether `mutant` is planted (always `false` without the `mutants` feature).
    #[inline]
    fn planted(&self, mutant: crate::mutants::Mutant) -> bool {
        #[cfg(feature = "mutants")]
        {
            // The behaviour asked about breaks a rule of the book, which certification must
            // name.
            debug_assert!(
                mutant.rule().starts_with("R-"),
                "R-COMMIT-2: the planted bug {mutant} names no rule ({:?})",
                mutant.rule()
            );
            self.options.mutant == Some(mutant)
        }
        #[cfg(not(feature = "mutants"))]
        {
            let _ = mutant;
            false
        }
    }

    fn new(
        config: AgConfig,
        me: ReplicaId,
        options: CoreOptions,
        logs: Vec<(CheckpointBase, Vec<LogRecord>)>,
        store: Option<SharedStore>,
    ) -> Core {
        let dbs = logs
            .into_iter()
            .enumerate()
            .map(|(i, (base, log))| Database::new(DatabaseId(i as u8), base, log))
            .collect();
        let core = Core {
            now_ms: 0,
            peers: vec![Peer::default(); config.replicas.len()],
            config,
            me,
            role: Role::Resolving,
            epoch: Epoch::NONE,
            last_forced: Epoch::NONE,
            max_term: 0,
            primary: None,
            dbs,
            lease_until_ms: None,
            publication: Publication::default(),
            failover: None,
            handover_to: None,
            awaiting_promotion: None,
            outcomes: BTreeMap::new(),
            options,
            announced: (Role::Resolving, Epoch::NONE),
            announced_primary: (None, None),
            manager_reachable: true,
            store,
        };
        // The callers checked the configuration, and brought one log per database.
        invariant!(
            core,
            core.dbs.len() == core.config.databases.len()
                && core.config.replica(core.me).is_some_and(|r| {
                    r.availability_mode != AvailabilityMode::ConfigurationOnly
                }),
            "R-QUORUM-6: a core for {} with {} logs for {} databases",
            core.me,
            core.dbs.len(),
            core.config.databases.len()
        );
        core
    }

    /// Whether `p` is [`Core::persistent_state`], without building it.
    fn persisted_as(&self, p: &PersistentState) -> bool {
        // `p` is a state this replica persisted (or recovered from, checked then).
        invariant!(
            self,
            p.replica == self.me && p.databases.len() == self.dbs.len(),
            "R-ROLE-1: {} compares itself with the state of {} with {} databases",
            self.me,
            p.replica,
            p.databases.len()
        );
        p.replica == self.me
            && p.role == self.role
            && p.epoch == self.epoch
            && p.last_forced_epoch == self.last_forced
            && p.databases.len() == self.dbs.len()
            && p.databases.iter().zip(&self.dbs).all(|(d, db)| {
                d.suspended == db.suspended
                    && d.suspended_by_epoch == db.suspended_by_epoch
                    && d.accepted_epoch == db.accepted_epoch
                    && d.damaged == db.damaged
                    && db.checkpoint_base_is(
                        d.checkpointed,
                        &d.checkpointed_forks,
                        &d.checkpointed_txns,
                    )
            })
            && p.config == self.config
    }

    fn persistent_state(&self) -> PersistentState {
        let state = PersistentState {
            config: self.config.clone(),
            replica: self.me,
            role: self.role,
            epoch: self.epoch,
            last_forced_epoch: self.last_forced,
            databases: self
                .dbs
                .iter()
                .map(|db| {
                    let base = db.checkpoint_base();
                    PersistentDatabase {
                        suspended: db.suspended,
                        suspended_by_epoch: db.suspended_by_epoch,
                        accepted_epoch: db.accepted_epoch,
                        damaged: db.damaged,
                        checkpointed: base.lsn,
                        checkpointed_forks: base.forks,
                        checkpointed_txns: base.txns,
                    }
                })
                .collect(),
        };
        // What `Replica::recover` accepts: a PRIMARY leads its own epoch, no database accepted
        // an epoch beyond the replica's.
        invariant!(
            self,
            (state.role != Role::Primary
                || (state.epoch.term > 0 && state.epoch.replica == state.replica))
                && state
                    .databases
                    .iter()
                    .all(|d| d.accepted_epoch <= state.epoch),
            "R-ROLE-1: {} {} in {} persists a state it could not recover from",
            state.role,
            state.replica,
            state.epoch
        );
        state
    }

    /// Every other replica that holds data: a primary's secondaries (R-QUORUM-6: a
    /// configuration-only replica holds none).
    fn data_peers(&self) -> Vec<ReplicaId> {
        let peers: Vec<ReplicaId> = (0..self.config.replicas.len())
            .map(|i| ReplicaId(i as u8))
            .filter(|r| {
                *r != self.me
                    && self.config.replicas[usize::from(r.0)].availability_mode
                        != AvailabilityMode::ConfigurationOnly
            })
            .collect();
        // This replica holds data itself: every other data replica is a peer.
        invariant!(
            self,
            peers.len() + 1 == self.config.data_replica_count(),
            "R-QUORUM-6: {} data peers of {} data replicas",
            peers.len(),
            self.config.data_replica_count()
        );
        peers
    }

    fn has_manager(&self) -> bool {
        let has = self.config.cluster_type.has_manager();
        invariant!(
            self,
            has || self.awaiting_promotion.is_none(),
            "R-QUORUM-5: CLUSTER_TYPE {:?} has no manager, yet a promotion is asked of it",
            self.config.cluster_type
        );
        has
    }

    /// R-COMMIT-1: this replica's own mode is SYNCHRONOUS_COMMIT.
    fn is_sync(&self, replica: ReplicaId) -> bool {
        invariant!(
            self,
            usize::from(replica.0) < self.config.replicas.len(),
            "R-COMMIT-1: the availability mode of {replica}, which is no replica of the group"
        );
        self.config
            .replica(replica)
            .is_some_and(|r| r.availability_mode == AvailabilityMode::SynchronousCommit)
    }

    /// R-COMMIT-1: a pair is synchronous only if both replicas are SYNCHRONOUS_COMMIT.
    fn pair_is_sync(&self, a: ReplicaId, b: ReplicaId) -> bool {
        // This replica judges only the pairs it belongs to.
        invariant!(
            self,
            a == self.me || b == self.me,
            "R-COMMIT-1: {} judges the pair {a}, {b}",
            self.me
        );
        self.is_sync(a) && self.is_sync(b)
    }

    fn is_peer(&self, peer: ReplicaId) -> bool {
        // One peer entry per replica of the configuration, and no session with itself.
        invariant!(
            self,
            self.peers.len() == self.config.replicas.len()
                && self.peers[usize::from(self.me.0)].connection.is_none(),
            "R-HEALTH-1: {} peer entries for {} replicas, or a session of {} with itself",
            self.peers.len(),
            self.config.replicas.len(),
            self.me
        );
        peer != self.me && usize::from(peer.0) < self.peers.len()
    }

    fn db_index(&self, database: DatabaseId) -> Option<usize> {
        let index = usize::from(database.0);
        let index = (index < self.dbs.len()).then_some(index);
        // Databases are held in configuration order: the id is the position.
        invariant!(
            self,
            self.dbs.len() == self.config.databases.len()
                && index.is_none_or(|i| self.dbs[i].id == database),
            "R-DB-2: {database} is not held at its position among {} databases",
            self.dbs.len()
        );
        index
    }

    /// The index of `database`, named in a message from peer `from`; a database this group
    /// does not have is ignored (`None`).
    fn peer_db(&self, from: ReplicaId, database: DatabaseId, out: &mut Out) -> Option<usize> {
        // A message from a replica that is not a peer was ignored before it got here.
        invariant!(
            self,
            self.is_peer(from),
            "R-SYNC-1: a message about {database} taken from {from}, which is not a peer of {}",
            self.me
        );
        let index = self.db_index(database);
        if index.is_none() {
            ignored(
                out,
                InputSource::Peer(from),
                IgnoredReason::UnknownDatabase { database },
            );
        }
        index
    }

    /// A message from peer `from` that this replica, in its role and epoch, does not expect
    /// (`what` it was) is ignored.
    fn unexpected(&self, from: ReplicaId, what: &'static str, out: &mut Out) {
        // A message from a replica that is not a peer was ignored before it got here.
        invariant!(
            self,
            self.is_peer(from),
            "R-ROLE-1: {what} taken from {from}, which is not a peer of {}",
            self.me
        );
        ignored(
            out,
            InputSource::Peer(from),
            IgnoredReason::Unexpected {
                what: what.into(),
                role: self.role,
                epoch: self.epoch,
            },
        );
    }

    /// Sends `body` to every peer `to` picks ([`Peer::is_up`], [`Peer::connected`]).
    fn send_to_peers(&self, to: fn(&Peer) -> bool, body: &MessageBody, out: &mut Out) {
        // Never to itself: it has no connection to itself.
        invariant!(
            self,
            !to(&self.peers[usize::from(self.me.0)]),
            "R-HEALTH-1: {} would send itself {body:?}",
            self.me
        );
        for (index, peer) in self.peers.iter().enumerate() {
            if to(peer) {
                send(
                    out,
                    &self.peers,
                    ReplicaId(index as u8),
                    self.epoch,
                    body.clone(),
                );
            }
        }
    }

    fn session_timeout_ms(&self) -> u64 {
        let timeout_ms = self
            .config
            .replica(self.me)
            .map_or(10_000, |r| u64::from(r.session_timeout_s) * 1000);
        invariant!(
            self,
            timeout_ms >= u64::from(hadr_types::config::MIN_SESSION_TIMEOUT_S) * 1000,
            "R-COMMIT-4: SESSION_TIMEOUT of {} is {timeout_ms} ms, below the minimum",
            self.me
        );
        timeout_ms
    }

    /// Pings go out often enough for the shortest SESSION_TIMEOUT of the group.
    fn ping_interval_ms(&self) -> u64 {
        let shortest_s = self
            .config
            .replicas
            .iter()
            .map(|r| u64::from(r.session_timeout_s))
            .min()
            .unwrap_or(10);
        let interval_ms = (shortest_s * 1000 / self.options.ping_divisor.max(1)).max(1);
        // Every peer hears at least one ping within its SESSION_TIMEOUT.
        invariant!(
            self,
            interval_ms <= shortest_s * 1000 && interval_ms <= self.session_timeout_ms(),
            "R-HEALTH-1: pings every {interval_ms} ms, beyond the shortest SESSION_TIMEOUT ({shortest_s} s)"
        );
        interval_ms
    }

    fn note_term(&mut self, term: u64) {
        // A message with a term out of range was ignored before its terms were noted.
        invariant!(
            self,
            term <= Epoch::MAX_TERM,
            "R-ROLE-1: term {term} noted, beyond {}",
            Epoch::MAX_TERM
        );
        self.max_term = self.max_term.max(term);
    }

    /// Records what the client was told about the commit of `txn` (`None`: it waits).
    fn record_outcome(&mut self, database: DatabaseId, txn: TxnId, reply: Option<&ClientReply>) {
        // What a client was told is final: a transaction id with an outcome on record is never
        // opened (so never committed) again.
        invariant!(
            self,
            self.db_index(database).is_some()
                && self
                    .outcomes
                    .get(&(database, txn))
                    .is_none_or(|o| o.reply.is_none()),
            "R-COMMIT-7: {database} {txn:?}: the reply {:?} would replace {:?}",
            reply,
            self.outcomes
                .get(&(database, txn))
                .and_then(|o| o.reply.as_ref())
        );
        let outcome = reply
            .and_then(ClientReply::commit_outcome)
            .unwrap_or(hadr_types::CommitOutcome::Pending);
        let observation = TransactionObservation {
            txn,
            database,
            outcome,
        };
        let reply = reply.cloned();
        self.outcomes
            .insert((database, txn), TxnOutcome { observation, reply });
    }
}
