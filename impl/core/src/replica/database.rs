//! Per-database and per-peer bookkeeping: the local log and its pointers, the key-value data
//! as of the redone LSN, and (on the primary) each secondary's progress.
//!
//! Pointers: `end_of_log ≥ hardened ≥ redone` locally; on the primary, for each secondary,
//! `end_of_log ≥ last_sent ≥ received ≥ hardened ≥ redone` (checked by `validate`).

use crate::ids::{ConnectionId, Epoch, RequestId};
use crate::log::{check_fork_history, fork_history, ForkSegment, LogRecord, Write};
use crate::message::DatabaseHello;
use crate::persist::LogDamage;
use crate::store::{DataStore, StoreError};
use hadr_types::{DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState, TxnId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What the core knows about one peer connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    /// The connection the shell reported open (and that was not closed or timed out since).
    pub connection: Option<ConnectionId>,
    /// The last connection the core ended itself (closed, timed out, or replaced by a newer
    /// one): the shell's `Closed` for it is expected and changes nothing.
    pub retired: Option<ConnectionId>,
    /// What the peer's last handshake said; `None` until it arrives.
    pub hello: Option<PeerView>,
    /// When the last message arrived (R-HEALTH-1).
    pub last_heard_ms: u64,
}

impl Peer {
    /// Connected and handshaken: the `CONNECTED` state of the dm_hadr views.
    pub fn is_up(&self) -> bool {
        // A handshake belongs to the connection it arrived on: closing it forgets the handshake.
        debug_assert!(
            self.hello.is_none() || self.connection.is_some(),
            "R-HEALTH-1: a handshake ({:?}) is kept with no connection open",
            self.hello
        );
        self.connection.is_some() && self.hello.is_some()
    }

    /// A connection is open.
    pub fn connected(&self) -> bool {
        debug_assert!(
            self.connection.is_none() || self.connection != self.retired,
            "R-HEALTH-1: connection {:?} is both current and retired",
            self.connection
        );
        self.connection.is_some()
    }
}

/// A peer's role and epoch, from its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeerView {
    pub role: Role,
    pub epoch: Epoch,
}

/// A commit waiting for R-COMMIT-2/3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PendingCommit {
    pub request: RequestId,
    pub txn: TxnId,
    pub lsn: Lsn,
}

/// Where a secondary database stands in the primary's books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not handshaken in this epoch, or disconnected: nothing is sent.
    Inactive,
    /// Suspended; nothing is sent (R-SYNC-7, R-FAIL-4).
    Suspended(SuspendReason),
    /// Told to revert to the fork point `to`; waiting for `Reverted`.
    Reverting { to: Lsn },
    /// Reverted; receiving the log up to `until` (the primary's end of log when the revert
    /// finished) before it counts as SYNCHRONIZING.
    Initializing { until: Lsn },
    /// Receiving log (SYNCHRONIZING or SYNCHRONIZED).
    Streaming,
}

/// The primary's view of one secondary database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    pub phase: Phase,
    /// Last LSN shipped to it.
    pub last_sent: Lsn,
    /// What it reported: received, hardened, redone.
    pub received: Lsn,
    pub hardened: Lsn,
    pub redone: Lsn,
    /// SYNCHRONIZED: latched when it caught up while streaming in synchronous-commit mode,
    /// cleared when it stops streaming (R-SYNC-3, R-SYNC-6).
    pub synchronized: bool,
    /// The state last sent to it in a `SyncState` message.
    pub reported: Option<SyncState>,
    /// Planted bug `count-disconnected-participant` only: it was SYNCHRONIZED when its session
    /// ended, and commits still wait for it until it reconnects.
    pub lingering: bool,
}

impl Progress {
    pub fn new() -> Self {
        let progress = Progress {
            phase: Phase::Inactive,
            last_sent: Lsn(0),
            received: Lsn(0),
            hardened: Lsn(0),
            redone: Lsn(0),
            synchronized: false,
            reported: None,
            lingering: false,
        };
        // Until its handshake says where it stands, nothing moves to it and it counts for
        // nothing.
        debug_assert!(
            !progress.is_moving() && progress.sync_state() == SyncState::NotSynchronizing,
            "R-SYNC-3: a secondary of unknown progress is {:?}",
            progress.sync_state()
        );
        progress
    }

    /// R-SYNC-3 as the primary sees it.
    pub fn sync_state(&self) -> SyncState {
        debug_assert!(
            self.redone <= self.hardened
                && self.hardened <= self.received
                && self.received <= self.last_sent,
            "R-SYNC-2: sent {} received {} hardened {} redone {}: out of order",
            self.last_sent,
            self.received,
            self.hardened,
            self.redone
        );
        match self.phase {
            Phase::Inactive | Phase::Suspended(_) => SyncState::NotSynchronizing,
            Phase::Reverting { .. } => SyncState::Reverting,
            Phase::Initializing { .. } => SyncState::Initializing,
            Phase::Streaming if self.synchronized => SyncState::Synchronized,
            Phase::Streaming => SyncState::Synchronizing,
        }
    }

    pub fn suspended(&self) -> Option<SuspendReason> {
        let reason = match self.phase {
            Phase::Suspended(reason) => Some(reason),
            _ => None,
        };
        // Suspending a copy forgets the state last told to it: nothing is sent to it.
        debug_assert!(
            reason.is_none() || self.reported.is_none(),
            "R-SYNC-7: a copy suspended ({reason:?}) still holds the state {:?} as told",
            self.reported
        );
        reason
    }

    /// Whether log flows to it.
    pub fn is_moving(&self) -> bool {
        let moving = matches!(self.phase, Phase::Streaming | Phase::Initializing { .. });
        // A state is told only to a copy that log flows to; stopping the flow forgets it.
        debug_assert!(
            moving || self.reported.is_none(),
            "R-SYNC-3: a copy in {:?} holds the state {:?} as told",
            self.phase,
            self.reported
        );
        moving
    }
}

/// An open transaction on the primary: its writes so far, and their size as
/// [`CoreOptions::max_transaction_bytes`](crate::CoreOptions::max_transaction_bytes) counts it.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpenTxn {
    pub writes: Vec<Write>,
    pub bytes: usize,
}

/// One availability database on this replica: what every role holds (the log, its pointers,
/// the data, the suspension and the accepted epoch), and what only the role holds
/// ([`DbRole`]).
#[derive(Clone, Debug)]
pub(crate) struct Database {
    pub id: DatabaseId,
    /// The log after the last checkpoint; `log[i]` has LSN `base + i + 1`. Changed only
    /// through [`Database::append`], [`Database::truncate`] and [`Database::checkpoint_done`],
    /// which keep `txns_in_log`, `log_bytes` and `written_keys` in step.
    log: Vec<LogRecord>,
    /// What the last checkpoint covered: the records up to it are in the shell's data file
    /// and gone from `log` (0: none).
    base: Lsn,
    /// The fork history of the log up to `base`.
    base_forks: Vec<ForkSegment>,
    /// The size of the records in `log` ([`record_bytes`]): what asks for a checkpoint.
    log_bytes: u64,
    /// How many records of `log` each transaction id has (normally one): whether an id is in
    /// the log without a scan of the log on every `Begin`.
    txns_in_log: BTreeMap<TxnId, u32>,
    /// The transaction ids of the checkpointed records (never reused either).
    txns_checkpointed: TxnRanges,
    /// Every key written by a record after `base` and up to `redone`, with the LSNs of the
    /// records that wrote it, in increasing order: the data as of `redone`, over the
    /// checkpointed data of the shell's [`DataStore`].
    written_keys: BTreeMap<String, Vec<Lsn>>,
    /// Every data replica of the group hardened the log up to here, in the history this
    /// replica holds (as its primary computed, or it computed as primary): no copy reverts
    /// below it, so it may be checkpointed. Never lowered.
    pub stable: Lsn,
    /// The `up_to` of the last [`Output::Checkpoint`](crate::Output::Checkpoint) asked
    /// (`base` when none is in flight).
    pub checkpoint_asked: Lsn,
    /// Written to the log file (reported, informational).
    pub written: Lsn,
    /// Durable: the shell reported an fsync covering it.
    pub hardened: Lsn,
    /// Applied to the data.
    pub redone: Lsn,
    /// The highest fsync / redo asked of the shell.
    pub fsync_requested: Lsn,
    pub redo_requested: Lsn,
    /// R-SYNC-7 / R-FAIL-4.
    pub suspended: Option<SuspendReason>,
    pub suspended_by_epoch: Epoch,
    /// The latest epoch whose history this database accepted.
    pub accepted_epoch: Epoch,
    /// The log was found damaged at a restart: SUSPECT, never led, until the copy holds a
    /// primary's log past what it lost (or an operator accepts the loss).
    pub damaged: Option<LogDamage>,
    /// Truncations (`RevertLog`) emitted and not yet reported done, oldest first. Completions of
    /// operations emitted before them may still cover records they discard. (A promotion does
    /// not wait for them: they complete in order before the new primary's appends.)
    pub truncations: VecDeque<Lsn>,
    /// The primary's books, or the secondary's: switched with the replica's role, by
    /// [`Database::become_primary`] and [`Database::become_secondary`] only.
    role: DbRole,
}

/// What only one role holds of a database. A PRIMARY's databases hold the primary's books;
/// every other role's (SECONDARY, and RESOLVING, which either follows a primary next or is
/// promoted afresh) the secondary's. So a secondary cannot hold a waiting commit or an open
/// transaction, and a primary is never told a synchronization state or reverting.
#[derive(Clone, Debug)]
enum DbRole {
    Primary(PrimaryDb),
    Secondary(SecondaryDb),
}

/// The primary's books of one database, fresh at each promotion (R-ROLE-4).
#[derive(Clone, Debug, Default)]
pub(crate) struct PrimaryDb {
    /// Open transactions and their writes.
    pub open_txns: BTreeMap<TxnId, OpenTxn>,
    /// Commits waiting for R-COMMIT-2/3, in LSN order, all above `acknowledged`.
    pub pending: VecDeque<PendingCommit>,
    /// Every other data replica's copy of this database.
    pub secondaries: BTreeMap<ReplicaId, Progress>,
    /// The highest LSN acknowledged to a client in this primary's epoch.
    pub acknowledged: Lsn,
    /// The highest LSN each secondary reported hardened in this primary's epoch.
    /// Never lowered: a secondary that comes back with less lost log it had acknowledged, and
    /// what the primary acknowledged because of it stays acknowledged.
    pub hardened_acked: BTreeMap<ReplicaId, Lsn>,
    /// Secondaries whose copy ends before this log's checkpoint: the records they need are
    /// only in the data file, so nothing is shipped to them (they need a reseed).
    pub below_checkpoint: BTreeSet<ReplicaId>,
}

/// What a database holds on a replica that is not PRIMARY.
#[derive(Clone, Debug)]
pub(crate) struct SecondaryDb {
    /// The state the primary last assigned.
    pub told_state: SyncState,
    /// The primary asked for a revert to this LSN and waits for our report.
    pub reverting: Option<Lsn>,
    /// A gap was reported; do not report it again until it is filled.
    pub gap_reported: Option<Lsn>,
    /// A former primary handing over to its planned-failover target (R-FAIL-3) still ships it
    /// the rest of the log: the target's progress, kept from the primary's books.
    pub handover: Option<(ReplicaId, Progress)>,
}

impl SecondaryDb {
    /// A secondary's state with nothing assigned, keeping `handover` (a former primary's
    /// progress of its planned-failover target).
    fn new(handover: Option<(ReplicaId, Progress)>) -> Self {
        // The former primary goes on shipping from where its books say the target stands.
        debug_assert!(
            handover.as_ref().is_none_or(|(_, p)| p.redone <= p.hardened
                && p.hardened <= p.received
                && p.received <= p.last_sent),
            "R-FAIL-3: the handover target's progress {handover:?} is out of order"
        );
        SecondaryDb {
            told_state: SyncState::NotSynchronizing,
            reverting: None,
            gap_reported: None,
            handover,
        }
    }

    /// The primary is gone (or another one leads): nothing it assigned or was told holds.
    pub fn lose_primary(&mut self) {
        // A gap is reported only while no revert runs, and a revert forgets the gap.
        debug_assert!(
            self.gap_reported.is_none() || self.reverting.is_none(),
            "R-SYNC-1: a gap at {:?} reported while reverting to {:?}",
            self.gap_reported,
            self.reverting
        );
        self.told_state = SyncState::NotSynchronizing;
        self.gap_reported = None;
    }
}

impl Database {
    /// A database as a replica of a group starts or recovers it: not PRIMARY (a promotion or
    /// a recovered primary calls [`Database::become_primary`]), checkpointed up to
    /// `checkpoint.lsn`, its log after that (`log`, consecutive from the checkpoint) hardened
    /// and redone.
    pub fn new(id: DatabaseId, checkpoint: CheckpointBase, log: Vec<LogRecord>) -> Self {
        let base = checkpoint.lsn;
        let end = Lsn(base.0 + log.len() as u64);
        let mut db = Database {
            id,
            log: Vec::new(),
            base,
            base_forks: checkpoint.forks,
            log_bytes: 0,
            txns_in_log: BTreeMap::new(),
            txns_checkpointed: TxnRanges::from_ranges(&checkpoint.txns),
            written_keys: BTreeMap::new(),
            stable: base,
            checkpoint_asked: base,
            written: end,
            hardened: end,
            redone: base,
            fsync_requested: end,
            redo_requested: end,
            suspended: None,
            suspended_by_epoch: Epoch::NONE,
            accepted_epoch: Epoch::NONE,
            damaged: None,
            truncations: VecDeque::new(),
            role: DbRole::Secondary(SecondaryDb::new(None)),
        };
        db.append(log);
        db.apply_redo(end);
        assert!(
            db.redone == end
                && db.txns_in_log.values().map(|n| *n as usize).sum::<usize>() == db.log.len(),
            "R-SYNC-2: {id}: a recovered log of {end} records, redone up to {}, {} of them indexed",
            db.redone,
            db.txns_in_log.values().map(|n| *n as usize).sum::<usize>()
        );
        db
    }

    /// Takes the primary's books, fresh (R-ROLE-4): no open transaction, no waiting commit,
    /// nothing acknowledged, every other data replica (`others`) a secondary of unknown
    /// progress. What the secondary held goes: no primary waits for a revert report of ours
    /// any more (a revert still on disk completes in order before our appends).
    pub fn become_primary(&mut self, others: &[ReplicaId]) {
        assert!(
            self.primary().is_none(),
            "R-ROLE-4: {} is promoted while it holds a primary's books",
            self.id
        );
        self.role = DbRole::Primary(PrimaryDb {
            secondaries: others.iter().map(|r| (*r, Progress::new())).collect(),
            ..PrimaryDb::default()
        });
    }

    /// Gives the primary's books up (a step-down; no-op on a database that holds none):
    /// returns the commits still waiting, in LSN order, for the caller to answer. A former
    /// primary that hands over to `handover_to` keeps that target's progress.
    pub fn become_secondary(&mut self, handover_to: Option<ReplicaId>) -> VecDeque<PendingCommit> {
        let DbRole::Primary(primary) = &mut self.role else {
            return VecDeque::new();
        };
        let mut primary = std::mem::take(primary);
        let handover = handover_to.and_then(|to| primary.secondaries.remove(&to).map(|p| (to, p)));
        self.role = DbRole::Secondary(SecondaryDb::new(handover));
        // What is answered indefinite is in the log and was never acknowledged.
        let (first, last) = (primary.pending.front(), primary.pending.back());
        assert!(
            first.is_none_or(|c| c.lsn > primary.acknowledged)
                && last.is_none_or(|c| c.lsn <= self.end()),
            "R-COMMIT-7: {}: commits waiting from {:?} to {:?}, {} acknowledged, log ends at {}",
            self.id,
            first.map(|c| c.lsn),
            last.map(|c| c.lsn),
            primary.acknowledged,
            self.end()
        );
        primary.pending
    }

    /// The primary's books, on a PRIMARY.
    pub fn primary(&self) -> Option<&PrimaryDb> {
        match &self.role {
            DbRole::Primary(primary) => {
                // Only what the local fsync covered is acknowledged; a primary never reverts.
                debug_assert!(
                    primary.acknowledged <= self.hardened,
                    "R-COMMIT-2: {}: {} acknowledged, beyond the local hardened {}",
                    self.id,
                    primary.acknowledged,
                    self.hardened
                );
                Some(primary)
            }
            DbRole::Secondary(_) => None,
        }
    }

    pub fn primary_mut(&mut self) -> Option<&mut PrimaryDb> {
        let end = self.end();
        match &mut self.role {
            DbRole::Primary(primary) => {
                debug_assert!(
                    primary.pending.back().is_none_or(|c| c.lsn <= end),
                    "R-COMMIT-2: {}: a commit waits at {:?}, beyond the end of the log {}",
                    self.id,
                    primary.pending.back().map(|c| c.lsn),
                    end
                );
                Some(primary)
            }
            DbRole::Secondary(_) => None,
        }
    }

    /// The secondary's state, on any role but PRIMARY.
    pub fn secondary(&self) -> Option<&SecondaryDb> {
        match &self.role {
            DbRole::Secondary(secondary) => {
                // Nothing is appended while a primary waits for our revert report.
                debug_assert!(
                    secondary.reverting.is_none_or(|to| to == self.end()),
                    "R-FAIL-4: {}: reverting to {:?}, but the log ends at {}",
                    self.id,
                    secondary.reverting,
                    self.end()
                );
                Some(secondary)
            }
            DbRole::Primary(_) => None,
        }
    }

    /// The primary's books, where the caller checked that this replica is PRIMARY.
    ///
    /// # Panics
    ///
    /// If the database does not hold them: the replica's role and its databases' went apart,
    /// a bug of the core (R-ROLE-3).
    pub fn as_primary(&mut self) -> &mut PrimaryDb {
        let id = self.id;
        match &mut self.role {
            DbRole::Primary(primary) => {
                // Commits wait in LSN order above the last one acknowledged.
                debug_assert!(
                    primary
                        .pending
                        .front()
                        .is_none_or(|c| c.lsn > primary.acknowledged),
                    "R-COMMIT-2: {id}: a commit waits at {:?}, not above the acknowledged {}",
                    primary.pending.front().map(|c| c.lsn),
                    primary.acknowledged
                );
                primary
            }
            DbRole::Secondary(_) => panic!("R-ROLE-3: the primary's {id} holds no primary's books"),
        }
    }

    /// The secondary's state, where the caller checked that this replica is not PRIMARY.
    ///
    /// # Panics
    ///
    /// If the database holds the primary's books: the replica's role and its databases' went
    /// apart, a bug of the core (R-ROLE-3).
    pub fn as_secondary(&mut self) -> &mut SecondaryDb {
        let id = self.id;
        match &mut self.role {
            DbRole::Secondary(secondary) => {
                debug_assert!(
                    secondary.gap_reported.is_none() || secondary.reverting.is_none(),
                    "R-SYNC-1: {id}: a gap at {:?} reported while reverting to {:?}",
                    secondary.gap_reported,
                    secondary.reverting
                );
                secondary
            }
            DbRole::Primary(_) => panic!("R-ROLE-3: a secondary's {id} holds a primary's books"),
        }
    }

    /// Where `peer`'s copy stands in the books of the replica that ships it log: the
    /// primary's, or a former primary's that hands over to `peer`.
    pub fn progress(&self, peer: ReplicaId) -> Option<&Progress> {
        let progress = match &self.role {
            DbRole::Primary(primary) => primary.secondaries.get(&peer),
            DbRole::Secondary(secondary) => match &secondary.handover {
                Some((to, progress)) if *to == peer => Some(progress),
                _ => None,
            },
        };
        debug_assert!(
            progress.is_none_or(|p| p.redone <= p.hardened
                && p.hardened <= p.received
                && p.received <= p.last_sent),
            "R-SYNC-2: {} of {peer}: {progress:?} out of order",
            self.id
        );
        progress
    }

    pub fn progress_mut(&mut self, peer: ReplicaId) -> Option<&mut Progress> {
        let id = self.id;
        let progress = match &mut self.role {
            DbRole::Primary(primary) => primary.secondaries.get_mut(&peer),
            DbRole::Secondary(secondary) => match &mut secondary.handover {
                Some((to, progress)) if *to == peer => Some(progress),
                _ => None,
            },
        };
        // Whoever changes it starts from pointers in order.
        debug_assert!(
            progress.as_ref().is_none_or(|p| p.redone <= p.hardened
                && p.hardened <= p.received
                && p.received <= p.last_sent),
            "R-SYNC-2: {id} of {peer}: {progress:?} out of order"
        );
        progress
    }

    /// The primary asked for a revert to this LSN and waits for our report (never on a
    /// primary).
    pub fn reverting(&self) -> Option<Lsn> {
        let reverting = self.secondary().and_then(|s| s.reverting);
        // The data was rolled back to the fork point, and redo stops there until the report.
        debug_assert!(
            reverting.is_none_or(|to| self.redone <= to),
            "R-FAIL-4: {}: reverting to {reverting:?} with data redone up to {}",
            self.id,
            self.redone
        );
        reverting
    }

    /// The log after the last checkpoint: `log()[i]` has LSN `checkpointed() + i + 1`.
    pub fn log(&self) -> &[LogRecord] {
        debug_assert!(
            self.log
                .first()
                .is_none_or(|r| r.lsn == Lsn(self.base.0 + 1)),
            "R-SYNC-1: {}: the log after the checkpoint at {} starts at {:?}",
            self.id,
            self.base,
            self.log.first().map(|r| r.lsn)
        );
        &self.log
    }

    /// What the last checkpoint covered (0: none): the log up to it is in the data file.
    pub fn checkpointed(&self) -> Lsn {
        self.base
    }

    /// The fork history up to the checkpoint, and the checkpointed transaction ids: what
    /// recovery needs besides the log after it.
    pub fn checkpoint_base(&self) -> CheckpointBase {
        CheckpointBase {
            lsn: self.base,
            forks: self.base_forks.clone(),
            txns: self.txns_checkpointed.ranges(),
        }
    }

    /// Whether `checkpoint_base()` would equal `stored`, without building it.
    pub fn checkpoint_base_is(
        &self,
        lsn: Lsn,
        forks: &[ForkSegment],
        txns: &[(TxnId, TxnId)],
    ) -> bool {
        self.base == lsn && self.base_forks == forks && self.txns_checkpointed.equals(txns)
    }

    /// The size of the log after the checkpoint, as a checkpoint interval counts it.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// The record at `lsn`, if the log after the checkpoint holds it.
    pub fn record(&self, lsn: Lsn) -> Option<&LogRecord> {
        let index = lsn.0.checked_sub(self.base.0 + 1)?;
        self.log.get(usize::try_from(index).ok()?)
    }

    /// The records from `first` to `last` (both held after the checkpoint: the caller checked).
    pub fn records(&self, first: Lsn, last: Lsn) -> &[LogRecord] {
        assert!(
            first > self.base && first <= last && last <= self.end(),
            "R-SYNC-1: {}: records {first}..={last} asked of a log holding {}..={}",
            self.id,
            self.base.0 + 1,
            self.end()
        );
        let from = (first.0 - self.base.0 - 1) as usize;
        let to = (last.0 - self.base.0) as usize;
        &self.log[from..to]
    }

    /// Adds records at the end of the log (the caller checked that they continue it).
    pub fn append(&mut self, records: impl IntoIterator<Item = LogRecord>) {
        for record in records {
            let next = Lsn(self.end().0 + 1);
            assert!(
                record.lsn == next,
                "R-SYNC-1: {}: record {} appended where {next} comes next",
                self.id,
                record.lsn
            );
            debug_assert!(
                record.epoch >= self.last_epoch(),
                "R-SYNC-5: {}: record {} of {} appended after one of {}",
                self.id,
                record.lsn,
                record.epoch,
                self.last_epoch()
            );
            *self.txns_in_log.entry(record.txn).or_default() += 1;
            self.log_bytes += record_bytes(&record);
            self.log.push(record);
        }
    }

    /// Whether a record of transaction `txn` is in the log (checkpointed or not).
    pub fn has_txn(&self, txn: TxnId) -> bool {
        // Every transaction id in the index has at least one record in the log.
        debug_assert!(
            self.txns_in_log.len() <= self.log.len(),
            "{}: {} transaction ids indexed for {} records",
            self.id,
            self.txns_in_log.len(),
            self.log.len()
        );
        self.txns_in_log.contains_key(&txn) || self.txns_checkpointed.contains(txn)
    }

    /// Whether a record of transaction `txn` is in the checkpointed part of the log.
    pub fn has_checkpointed_txn(&self, txn: TxnId) -> bool {
        self.txns_checkpointed.contains(txn)
    }

    pub fn end(&self) -> Lsn {
        let end = Lsn(self.base.0 + self.log.len() as u64);
        debug_assert!(
            self.log.last().is_none_or(|r| r.lsn == end),
            "R-SYNC-1: {}: the last of {end} records has LSN {:?}",
            self.id,
            self.log.last().map(|r| r.lsn)
        );
        end
    }

    pub fn last_epoch(&self) -> Epoch {
        let checkpointed = self.base_forks.last().map_or(Epoch::NONE, |s| s.epoch);
        let last = self.log.last().map_or(checkpointed, |r| r.epoch);
        debug_assert!(
            self.log.first().is_none_or(|r| checkpointed <= r.epoch && r.epoch <= last),
            "R-SYNC-5: {}: the log after the checkpoint (of {checkpointed}) starts in {:?} and ends in {last}",
            self.id,
            self.log.first().map(|r| r.epoch)
        );
        last
    }

    pub fn forks(&self) -> Vec<ForkSegment> {
        let mut forks = self.base_forks.clone();
        extend_forks(&mut forks, &self.log);
        // What a handshake announces must pass the peer's own check.
        debug_assert!(
            check_fork_history(&forks, self.end()).is_ok(),
            "R-SYNC-5: {}: fork history {forks:?} of a log ending at {}",
            self.id,
            self.end()
        );
        forks
    }

    /// `database_state_desc`: SUSPECT while the log is damaged, ONLINE otherwise.
    pub fn state(&self) -> hadr_types::DatabaseState {
        debug_assert!(
            self.damaged.is_none_or(|d| d.kept < d.lost_through),
            "R-COMMIT-6: {}: a malformed damage record {:?}",
            self.id,
            self.damaged
        );
        match self.damaged {
            Some(_) => hadr_types::DatabaseState::Suspect,
            None => hadr_types::DatabaseState::Online,
        }
    }

    pub fn hello(&self) -> DatabaseHello {
        debug_assert!(
            self.redone <= self.hardened && self.hardened <= self.end(),
            "R-SYNC-2: {}: announcing end {}, hardened {}, redone {}",
            self.id,
            self.end(),
            self.hardened,
            self.redone
        );
        DatabaseHello {
            database: self.id,
            end_of_log: self.end(),
            hardened: self.hardened,
            redone: self.redone,
            forks: self.forks(),
            accepted_epoch: self.accepted_epoch,
            suspended: self.suspended,
            reverting: self.reverting().is_some(),
        }
    }

    /// Applies the records after `redone` up to `up_to` to the data (R-SYNC-2: redo follows
    /// hardening; the caller checked `up_to ≤ hardened`).
    pub fn apply_redo(&mut self, up_to: Lsn) {
        assert!(
            up_to <= self.hardened,
            "R-SYNC-2: {}: redo up to {up_to}, beyond hardened {}",
            self.id,
            self.hardened
        );
        let to = up_to.min(self.end());
        if to <= self.redone {
            return;
        }
        let from = (self.redone.0 - self.base.0) as usize;
        let upto = (to.0 - self.base.0) as usize;
        for record in &self.log[from..upto] {
            for write in &record.writes {
                let lsns = self.written_keys.entry(write.key.clone()).or_default();
                if lsns.last() != Some(&record.lsn) {
                    lsns.push(record.lsn);
                }
            }
        }
        self.redone = to;
    }

    /// Takes `records` (dropped from the log) out of `written_keys`: of the LSNs indexed for
    /// the keys they wrote, only those `keep` accepts stay.
    fn forget_writes(
        written_keys: &mut BTreeMap<String, Vec<Lsn>>,
        records: &[LogRecord],
        keep: impl Fn(Lsn) -> bool,
    ) {
        for record in records {
            for write in &record.writes {
                if let Some(lsns) = written_keys.get_mut(&write.key) {
                    lsns.retain(|lsn| keep(*lsn));
                    if lsns.is_empty() {
                        written_keys.remove(&write.key);
                    }
                }
            }
        }
    }

    /// Discards the log after `to` and rolls the data back to it (R-FAIL-4); the caller emits
    /// the `RevertLog` that makes the shell do the same. Never below the checkpoint: the
    /// caller checked `to ≥ checkpointed()`.
    pub fn truncate(&mut self, to: Lsn) {
        // Only a secondary reverts, and only what it holds after its checkpoint.
        assert!(
            to <= self.end() && to >= self.base && self.primary().is_none(),
            "R-FAIL-4: {}: a revert to {to} of a log checkpointed at {} and ending at {} (primary's books held: {})",
            self.id,
            self.base,
            self.end(),
            self.primary().is_some()
        );
        self.truncations.push_back(to);
        let keep = (to.0 - self.base.0) as usize;
        let dropped: Vec<LogRecord> = self.log.drain(keep..).collect();
        for record in &dropped {
            self.unindex(record);
        }
        // The data as of `to`: the writes of the records after it are gone.
        Self::forget_writes(&mut self.written_keys, &dropped, |lsn| lsn <= to);
        self.written = self.written.min(to);
        self.hardened = self.hardened.min(to);
        self.fsync_requested = self.fsync_requested.min(to);
        self.redo_requested = self.redo_requested.min(to);
        self.redone = self.redone.min(to);
        assert!(
            self.end() == to && self.redone <= to && self.txns_in_log.len() <= self.log.len(),
            "R-FAIL-4: {}: reverted to {to}, log ends at {}, redone {}, {} transaction ids indexed",
            self.id,
            self.end(),
            self.redone,
            self.txns_in_log.len()
        );
    }

    /// The shell's data file holds the log up to `up_to` durably (the checkpoint asked):
    /// those records leave the log, their keys are read from the data file from now on.
    /// Returns the transactions of the records checkpointed.
    pub fn checkpoint_done(&mut self, up_to: Lsn) -> Vec<TxnId> {
        if up_to <= self.base {
            return Vec::new();
        }
        // A checkpoint asked only redone records every copy holds, and they stay.
        assert!(
            up_to <= self.redone && up_to <= self.checkpoint_asked,
            "R-SYNC-7: {}: a checkpoint up to {up_to} with redo at {} and {} asked",
            self.id,
            self.redone,
            self.checkpoint_asked
        );
        let count = (up_to.0 - self.base.0) as usize;
        let dropped: Vec<LogRecord> = self.log.drain(..count).collect();
        extend_forks(&mut self.base_forks, &dropped);
        for record in &dropped {
            self.unindex(record);
            self.txns_checkpointed.insert(record.txn);
        }
        Self::forget_writes(&mut self.written_keys, &dropped, |lsn| lsn > up_to);
        self.base = up_to;
        dropped.into_iter().map(|record| record.txn).collect()
    }

    /// A record left the log (reverted or checkpointed): its size and transaction id leave
    /// the log's counts.
    fn unindex(&mut self, record: &LogRecord) {
        self.log_bytes -= record_bytes(record);
        if let Some(count) = self.txns_in_log.get_mut(&record.txn) {
            *count -= 1;
            if *count == 0 {
                self.txns_in_log.remove(&record.txn);
            }
        }
    }

    /// The value `key` had in the record at `lsn` (which wrote it and is in the log).
    fn written_value(&self, lsn: Lsn, key: &str) -> Option<String> {
        let value = self
            .record(lsn)
            .and_then(|r| r.writes.iter().rev().find(|w| w.key == key))
            .map(|w| w.value.clone());
        debug_assert!(
            value.is_some(),
            "R-READ-2: {}: {key} is indexed as written at {lsn}, which does not hold it",
            self.id
        );
        value
    }

    /// The checkpointed value of `key`: the store's, or none before any checkpoint.
    fn checkpointed_value(
        &self,
        key: &str,
        store: Option<&dyn DataStore>,
    ) -> Result<Option<String>, StoreError> {
        if self.base == Lsn(0) {
            return Ok(None);
        }
        match store {
            Some(store) => store.get(self.id, key),
            None => Err(StoreError::NoStore { database: self.id }),
        }
    }

    /// The value of `key` as of the redone LSN: what a readable secondary serves (R-READ-2).
    pub fn read_redone(
        &self,
        key: &str,
        store: Option<&dyn DataStore>,
    ) -> Result<Option<String>, StoreError> {
        debug_assert!(
            self.redone <= self.hardened,
            "R-READ-2: {}: serving data redone up to {}, beyond hardened {}",
            self.id,
            self.redone,
            self.hardened
        );
        match self.written_keys.get(key).and_then(|lsns| lsns.last()) {
            Some(lsn) => Ok(self.written_value(*lsn, key)),
            None => self.checkpointed_value(key, store),
        }
    }

    /// The value of `key` as of `lsn`, whatever redo has applied, seen through `txn`'s own
    /// writes: what the primary serves. `lsn` is never below a checkpoint asked (a checkpoint
    /// covers only what every read sees).
    pub fn read_as_of(
        &self,
        key: &str,
        txn: Option<&[Write]>,
        lsn: Lsn,
        store: Option<&dyn DataStore>,
    ) -> Result<Option<String>, StoreError> {
        // The primary reads as of what it hardened, never a record it may lose, and never
        // before what the data file may already hold.
        debug_assert!(
            lsn <= self.hardened && lsn >= self.checkpoint_asked,
            "R-READ-2: {}: a read as of {lsn}, beyond hardened {} or before the checkpoint asked {}",
            self.id,
            self.hardened,
            self.checkpoint_asked
        );
        if let Some(write) = txn.and_then(|writes| writes.iter().rev().find(|w| w.key == key)) {
            return Ok(Some(write.value.clone()));
        }
        if lsn > self.redone {
            // The records after redo first, newest first.
            let logged = self
                .records(Lsn(self.redone.0 + 1), lsn.min(self.end()))
                .iter()
                .rev()
                .find_map(|r| r.writes.iter().rev().find(|w| w.key == key));
            if let Some(write) = logged {
                return Ok(Some(write.value.clone()));
            }
        }
        let written = self
            .written_keys
            .get(key)
            .and_then(|lsns| lsns.iter().rev().find(|l| **l <= lsn));
        match written {
            Some(at) => Ok(self.written_value(*at, key)),
            None => self.checkpointed_value(key, store),
        }
    }
}

/// Adds the fork history of `records` (which follow the log `forks` describes) to `forks`: a
/// run that continues the last segment's epoch adds nothing.
fn extend_forks(forks: &mut Vec<ForkSegment>, records: &[LogRecord]) {
    for segment in fork_history(records) {
        if forks.last().map(|s| s.epoch) != Some(segment.epoch) {
            forks.push(segment);
        }
    }
}

/// What a record counts toward the size of the log after a checkpoint: its writes as a
/// transaction's size counts them, and room for its LSN, epoch and transaction id.
pub(crate) fn record_bytes(record: &LogRecord) -> u64 {
    32 + record
        .writes
        .iter()
        .map(|w| w.counted_bytes() as u64)
        .sum::<u64>()
}

/// Where a database's log after a checkpoint starts: the checkpoint's LSN, the fork history
/// up to it and the transaction ids it covers ([`PersistentDatabase`](crate::PersistentDatabase)
/// stores them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CheckpointBase {
    pub lsn: Lsn,
    pub forks: Vec<ForkSegment>,
    pub txns: Vec<(TxnId, TxnId)>,
}

/// A set of transaction ids as inclusive ranges: ids are handed out mostly in order, so the
/// ids of a long checkpointed history take a few ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TxnRanges {
    /// Start → end (inclusive); ranges neither overlap nor touch.
    ranges: BTreeMap<u32, u32>,
}

impl TxnRanges {
    pub fn from_ranges(ranges: &[(TxnId, TxnId)]) -> Self {
        let mut set = TxnRanges::default();
        for (start, end) in ranges {
            set.insert_range(start.0.min(end.0), start.0.max(end.0));
        }
        set
    }

    pub fn ranges(&self) -> Vec<(TxnId, TxnId)> {
        self.ranges
            .iter()
            .map(|(s, e)| (TxnId(*s), TxnId(*e)))
            .collect()
    }

    pub fn equals(&self, ranges: &[(TxnId, TxnId)]) -> bool {
        self.ranges.len() == ranges.len()
            && self
                .ranges
                .iter()
                .zip(ranges)
                .all(|((s, e), (a, b))| *s == a.0 && *e == b.0)
    }

    pub fn contains(&self, txn: TxnId) -> bool {
        self.ranges
            .range(..=txn.0)
            .next_back()
            .is_some_and(|(_, end)| *end >= txn.0)
    }

    pub fn insert(&mut self, txn: TxnId) {
        self.insert_range(txn.0, txn.0);
    }

    fn insert_range(&mut self, mut start: u32, mut end: u32) {
        // Merge with every range that overlaps or touches [start, end].
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e.saturating_add(1) >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.ranges.range(start..).next() {
            if s > end.saturating_add(1) {
                break;
            }
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lsn: u64, txn: u32) -> LogRecord {
        assert!(lsn > 0, "LSNs start at 1");
        LogRecord {
            lsn: Lsn(lsn),
            epoch: Epoch::NONE,
            txn: TxnId(txn),
            writes: vec![],
        }
    }

    /// The index of transaction ids follows the log through appends and truncations, an id
    /// that appears twice included.
    #[test]
    fn the_transaction_index_follows_appends_and_truncations() {
        let mut db = Database::new(
            DatabaseId(0),
            CheckpointBase::default(),
            vec![record(1, 10), record(2, 20)],
        );
        assert!(db.has_txn(TxnId(10)) && db.has_txn(TxnId(20)));
        db.append([record(3, 30), record(4, 10)]);
        assert!(db.has_txn(TxnId(30)));
        db.truncate(Lsn(3));
        assert!(db.has_txn(TxnId(10)), "still at LSN 1");
        assert!(db.has_txn(TxnId(30)));
        db.truncate(Lsn(1));
        assert!(db.has_txn(TxnId(10)));
        assert!(!db.has_txn(TxnId(20)) && !db.has_txn(TxnId(30)));
        db.truncate(Lsn(0));
        assert!(!db.has_txn(TxnId(10)));
        assert_eq!(db.log(), []);
        assert!(db.txns_in_log.is_empty());
    }

    fn writing(lsn: u64, txn: u32, key: &str, value: &str) -> LogRecord {
        LogRecord {
            writes: vec![Write {
                key: key.into(),
                value: value.into(),
            }],
            ..record(lsn, txn)
        }
    }

    /// The checkpointed data, as a shell's data file would hold it.
    #[derive(Debug, Default)]
    struct Checkpointed(std::sync::Mutex<BTreeMap<String, String>>);

    impl DataStore for Checkpointed {
        fn get(&self, _: DatabaseId, key: &str) -> Result<Option<String>, StoreError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
    }

    /// A checkpoint drops the records it covers: reads find their keys in the store, the
    /// transaction ids stay taken, the fork history and the end of log are unchanged, and a
    /// revert after it rolls back only what followed it.
    #[test]
    fn a_checkpoint_moves_the_data_to_the_store_and_keeps_what_a_revert_needs() {
        let e = |term| Epoch {
            term,
            replica: ReplicaId(0),
            generation: 0,
        };
        let mut log = vec![
            writing(1, 1, "a", "a1"),
            writing(2, 2, "b", "b2"),
            writing(3, 3, "a", "a3"),
        ];
        log[2].epoch = e(2);
        log[0].epoch = e(1);
        log[1].epoch = e(1);
        let mut db = Database::new(DatabaseId(0), CheckpointBase::default(), log);
        db.append([LogRecord {
            epoch: e(2),
            ..writing(4, 4, "c", "c4")
        }]);
        db.hardened = Lsn(4);
        db.apply_redo(Lsn(4));
        let forks = db.forks();
        let store = Checkpointed::default();
        // The shell writes records 1-2 into its data file, then reports the checkpoint.
        db.checkpoint_asked = Lsn(2);
        for record in db.records(Lsn(1), Lsn(2)) {
            for w in &record.writes {
                store
                    .0
                    .lock()
                    .unwrap()
                    .insert(w.key.clone(), w.value.clone());
            }
        }
        assert_eq!(db.checkpoint_done(Lsn(2)), vec![TxnId(1), TxnId(2)]);
        assert_eq!(db.checkpointed(), Lsn(2));
        assert_eq!(db.log().len(), 2);
        assert_eq!(db.end(), Lsn(4));
        assert_eq!(
            db.forks(),
            forks,
            "the fork history survives the checkpoint"
        );
        assert!(db.has_txn(TxnId(1)) && db.has_txn(TxnId(2)) && db.has_txn(TxnId(4)));
        assert!(!db.has_txn(TxnId(5)));
        let read = |db: &Database, key| db.read_redone(key, Some(&store)).unwrap();
        assert_eq!(
            read(&db, "a").as_deref(),
            Some("a3"),
            "written after the checkpoint"
        );
        assert_eq!(read(&db, "b").as_deref(), Some("b2"), "from the store");
        assert_eq!(
            db.read_as_of("a", None, Lsn(2), Some(&store))
                .unwrap()
                .as_deref(),
            Some("a1"),
            "as of the checkpoint: the store's value"
        );
        assert_eq!(
            db.read_redone("b", None),
            Err(StoreError::NoStore {
                database: DatabaseId(0)
            }),
            "checkpointed data without a store is an error, never a missing value"
        );
        // A revert to the checkpoint forgets what followed it.
        db.truncate(Lsn(2));
        assert_eq!(read(&db, "a").as_deref(), Some("a1"));
        assert_eq!(read(&db, "c"), None);
        assert!(!db.has_txn(TxnId(4)) && db.has_txn(TxnId(2)));
        assert_eq!(db.last_epoch(), e(1));
        // Recovery from the stored base gives the same database.
        let base = db.checkpoint_base();
        let again = Database::new(DatabaseId(0), base, Vec::new());
        assert_eq!(again.forks(), db.forks());
        assert!(again.has_txn(TxnId(1)) && !again.has_txn(TxnId(3)));
    }

    /// Transaction ids kept as ranges: in-order ids merge into one range, gaps stay gaps.
    #[test]
    fn transaction_ranges_merge_and_keep_gaps() {
        let mut set = TxnRanges::default();
        for id in [1, 2, 3, 7, 5, 6, 9] {
            set.insert(TxnId(id));
        }
        assert_eq!(
            set.ranges(),
            vec![
                (TxnId(1), TxnId(3)),
                (TxnId(5), TxnId(7)),
                (TxnId(9), TxnId(9))
            ]
        );
        for (id, held) in [
            (0, false),
            (1, true),
            (4, false),
            (6, true),
            (8, false),
            (9, true),
        ] {
            assert_eq!(set.contains(TxnId(id)), held, "{id}");
        }
        set.insert(TxnId(4));
        set.insert(TxnId(8));
        assert_eq!(set.ranges(), vec![(TxnId(1), TxnId(9))]);
        assert_eq!(TxnRanges::from_ranges(&set.ranges()), set);
        assert!(set.equals(&[(TxnId(1), TxnId(9))]));
    }
}
