//! Per-database and per-peer bookkeeping: the local log and its pointers, the key-value data
//! as of the redone LSN, and (on the primary) each secondary's progress.
//!
//! Pointers: `end_of_log ≥ hardened ≥ redone` locally; on the primary, for each secondary,
//! `end_of_log ≥ last_sent ≥ received ≥ hardened ≥ redone` (checked by `validate`).

use crate::ids::{ConnectionId, Epoch, RequestId};
use crate::log::{check_fork_history, fork_history, ForkSegment, LogRecord, Write};
use crate::message::DatabaseHello;
use crate::persist::LogDamage;
use hadr_types::{DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState, TxnId};
use std::collections::{BTreeMap, VecDeque};

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
    /// The log; `log[i]` has LSN `i + 1`. Changed only through [`Database::append`] and
    /// [`Database::truncate`], which keep `txns_in_log` in step.
    log: Vec<LogRecord>,
    /// How many records of `log` each transaction id has (normally one): whether an id is in
    /// the log without a scan of the log on every `Begin`.
    txns_in_log: BTreeMap<TxnId, u32>,
    /// Written to the log file (reported, informational).
    pub written: Lsn,
    /// Durable: the shell reported an fsync covering it.
    pub hardened: Lsn,
    /// Applied to the data.
    pub redone: Lsn,
    /// The highest fsync / redo asked of the shell.
    pub fsync_requested: Lsn,
    pub redo_requested: Lsn,
    /// The key-value data as of `redone`.
    pub data: BTreeMap<String, String>,
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
    /// a recovered primary calls [`Database::become_primary`]), its log hardened and redone.
    pub fn new(id: DatabaseId, log: Vec<LogRecord>) -> Self {
        let end = Lsn(log.len() as u64);
        let mut db = Database {
            id,
            log: Vec::new(),
            txns_in_log: BTreeMap::new(),
            written: end,
            hardened: end,
            redone: Lsn(0),
            fsync_requested: end,
            redo_requested: end,
            data: BTreeMap::new(),
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
        match &mut self.role {
            DbRole::Primary(primary) => {
                debug_assert!(
                    primary
                        .pending
                        .back()
                        .is_none_or(|c| c.lsn.0 <= self.log.len() as u64),
                    "R-COMMIT-2: {}: a commit waits at {:?}, beyond the end of the log {}",
                    self.id,
                    primary.pending.back().map(|c| c.lsn),
                    self.log.len()
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
                    secondary
                        .reverting
                        .is_none_or(|to| to.0 == self.log.len() as u64),
                    "R-FAIL-4: {}: reverting to {:?}, but the log ends at {}",
                    self.id,
                    secondary.reverting,
                    self.log.len()
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

    /// The log; `log()[i]` has LSN `i + 1`.
    pub fn log(&self) -> &[LogRecord] {
        debug_assert!(
            self.log.first().is_none_or(|r| r.lsn == Lsn(1)),
            "R-SYNC-1: {}: the log starts at {:?}, not at LSN 1",
            self.id,
            self.log.first().map(|r| r.lsn)
        );
        &self.log
    }

    /// Adds records at the end of the log (the caller checked that they continue it).
    pub fn append(&mut self, records: impl IntoIterator<Item = LogRecord>) {
        for record in records {
            let next = Lsn(self.log.len() as u64 + 1);
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
            self.log.push(record);
        }
    }

    /// Whether a record of transaction `txn` is in the log.
    pub fn has_txn(&self, txn: TxnId) -> bool {
        // Every transaction id in the index has at least one record in the log.
        debug_assert!(
            self.txns_in_log.len() <= self.log.len(),
            "{}: {} transaction ids indexed for {} records",
            self.id,
            self.txns_in_log.len(),
            self.log.len()
        );
        self.txns_in_log.contains_key(&txn)
    }

    pub fn end(&self) -> Lsn {
        let end = Lsn(self.log.len() as u64);
        debug_assert!(
            self.log.last().is_none_or(|r| r.lsn == end),
            "R-SYNC-1: {}: the last of {end} records has LSN {:?}",
            self.id,
            self.log.last().map(|r| r.lsn)
        );
        end
    }

    pub fn last_epoch(&self) -> Epoch {
        let last = self.log.last().map_or(Epoch::NONE, |r| r.epoch);
        debug_assert!(
            self.log.first().is_none_or(|r| r.epoch <= last),
            "R-SYNC-5: {}: the log starts in {:?} and ends in {last}",
            self.id,
            self.log.first().map(|r| r.epoch)
        );
        last
    }

    pub fn forks(&self) -> Vec<ForkSegment> {
        let forks = fork_history(&self.log);
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
        let from = self.redone.0 as usize;
        let to = (up_to.0 as usize).min(self.log.len());
        for record in &self.log[from.min(to)..to] {
            for write in &record.writes {
                self.data.insert(write.key.clone(), write.value.clone());
            }
        }
        self.redone = self.redone.max(Lsn(to as u64));
    }

    /// Discards the log after `to` and rolls the data back to it (R-FAIL-4); the caller emits
    /// the `RevertLog` that makes the shell do the same.
    pub fn truncate(&mut self, to: Lsn) {
        // Only a secondary reverts, and only what it holds.
        assert!(
            to <= self.end() && self.primary().is_none(),
            "R-FAIL-4: {}: a revert to {to} of a log ending at {} (primary's books held: {})",
            self.id,
            self.end(),
            self.primary().is_some()
        );
        self.truncations.push_back(to);
        let keep = (to.0 as usize).min(self.log.len());
        for record in self.log.drain(keep..) {
            if let Some(count) = self.txns_in_log.get_mut(&record.txn) {
                *count -= 1;
                if *count == 0 {
                    self.txns_in_log.remove(&record.txn);
                }
            }
        }
        self.written = self.written.min(to);
        self.hardened = self.hardened.min(to);
        self.fsync_requested = self.fsync_requested.min(to);
        self.redo_requested = self.redo_requested.min(to);
        if self.redone > to {
            self.data.clear();
            self.redone = Lsn(0);
            self.apply_redo(to);
        }
        assert!(
            self.end() == to && self.redone <= to && self.txns_in_log.len() <= self.log.len(),
            "R-FAIL-4: {}: reverted to {to}, log ends at {}, redone {}, {} transaction ids indexed",
            self.id,
            self.end(),
            self.redone,
            self.txns_in_log.len()
        );
    }

    /// The value of `key` as of the redone LSN: what a readable secondary serves (R-READ-2).
    pub fn read_redone(&self, key: &str) -> Option<String> {
        debug_assert!(
            self.redone <= self.hardened,
            "R-READ-2: {}: serving data redone up to {}, beyond hardened {}",
            self.id,
            self.redone,
            self.hardened
        );
        self.data.get(key).cloned()
    }

    /// The value of `key` as of `lsn`, whatever redo has applied, seen through `txn`'s own
    /// writes: what the primary serves.
    pub fn read_as_of(&self, key: &str, txn: Option<&[Write]>, lsn: Lsn) -> Option<String> {
        // The primary reads as of what it hardened, never a record it may lose.
        debug_assert!(
            lsn <= self.hardened,
            "R-READ-2: {}: a read as of {lsn}, beyond hardened {}",
            self.id,
            self.hardened
        );
        if let Some(write) = txn.and_then(|writes| writes.iter().rev().find(|w| w.key == key)) {
            return Some(write.value.clone());
        }
        let upto = (lsn.0 as usize).min(self.log.len());
        // The data holds the values as of `redone`: read it below the records after it, or,
        // if redo went past `lsn`, read the log alone.
        let data_usable = self.redone.0 as usize <= upto;
        let from = if data_usable {
            self.redone.0 as usize
        } else {
            0
        };
        let logged = self.log[from..upto]
            .iter()
            .rev()
            .find_map(|r| r.writes.iter().rev().find(|w| w.key == key));
        match logged {
            Some(write) => Some(write.value.clone()),
            None if data_usable => self.read_redone(key),
            None => None,
        }
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
        let mut db = Database::new(DatabaseId(0), vec![record(1, 10), record(2, 20)]);
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
}
