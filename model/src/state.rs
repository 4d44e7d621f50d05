//! The state of the spec: replicas with their logs, the network, the cluster manager, client
//! transactions, the environment's spent budgets, and ghost variables that record history for
//! the properties (never read by the protocol's own actions).
//!
//! ```text
//!  State ─┬─ replicas[r] ── up, role, missed_forced_failover, session, timed_out (ghost)
//!         │      └─ dbs[d] ── log (received), hardened, redone, sent, failover_ready,
//!         │                   suspended, reverting, suspect, partner_hold (ghost),
//!         │                   corrupt_through and lost_to_corruption (ghosts)
//!         ├─ net ──────────── cut replica↔replica links, cut replica↔manager links
//!         ├─ manager ──────── quorum, lease holder, primary (owner of the history), epoch …
//!         ├─ txns[t] ──────── database, client outcome, k at acknowledgement, lost_in (ghost)
//!         ├─ spent ────────── budgets used
//!         └─ failovers[f] ─── ghost record of every failover (kind, from, to, readiness …)
//! ```

use crate::backup::BackupRefusal;
use hadr_types::{CommitOutcome, Role, SuspendReason};
use smallvec::SmallVec;

/// A replica, by index into the configuration's replica list.
pub type Rid = u8;
/// A database, by index into the configuration's database list.
pub type Did = u8;

/// One log record: the client transaction it commits, written under a recovery fork (`epoch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rec {
    /// The recovery fork (epoch) of the primary that wrote it.
    pub epoch: u8,
    /// The transaction number (1-based).
    pub txn: u8,
}

/// The most records a log holds (every transaction of a check, `config::MAX_TRANSACTIONS`).
pub const MAX_LOG: usize = 16;

/// A log: up to [`MAX_LOG`] records, stored inline so that copying and hashing a state is
/// cheap. Unused slots are always zero, so equality, order and hashing see only the records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Log {
    len: u8,
    recs: [Rec; MAX_LOG],
}

impl Default for Log {
    fn default() -> Self {
        Log {
            len: 0,
            recs: [Rec { epoch: 0, txn: 0 }; MAX_LOG],
        }
    }
}

impl Log {
    /// Appends a record.
    pub fn push(&mut self, rec: Rec) {
        assert!(
            usize::from(self.len) < MAX_LOG,
            "a log holds at most {MAX_LOG} records"
        );
        self.recs[usize::from(self.len)] = rec;
        self.len += 1;
    }

    /// Keeps the first `len` records.
    pub fn truncate(&mut self, len: usize) {
        if len < usize::from(self.len) {
            self.recs[len..].fill(Rec { epoch: 0, txn: 0 });
            self.len = len as u8;
        }
    }
}

impl std::ops::Deref for Log {
    type Target = [Rec];

    fn deref(&self) -> &[Rec] {
        &self.recs[..usize::from(self.len)]
    }
}

impl std::hash::Hash for Log {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut bytes = [0u8; 2 * MAX_LOG];
        for (i, rec) in self.iter().enumerate() {
            bytes[2 * i] = rec.epoch;
            bytes[2 * i + 1] = rec.txn;
        }
        state.write(&bytes[..2 * usize::from(self.len)]);
        state.write_u8(self.len);
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One database on one replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Db {
    /// Log records received (on the primary: its log, always hardened).
    pub log: Log,
    /// How many records of `log` are hardened (`received ≥ hardened`, R-SYNC-2).
    pub hardened: u8,
    /// How many records are redone into the data (`hardened ≥ redone`, R-SYNC-2).
    pub redone: u8,
    /// The primary's send position for this secondary (0 while no session).
    pub sent: u8,
    /// A fault is armed: the next log record the primary ships to this copy is lost in
    /// transit (LoseLogBlock; cleared when the primary's term ends).
    pub lose_next: bool,
    /// The manager's record that this secondary database is SYNCHRONIZED with the current
    /// primary: failover-ready, and a commit participant (R-COMMIT-2, R-FAIL-2).
    pub failover_ready: bool,
    /// Whether, and why, the database is suspended.
    pub suspended: Option<SuspendReason>,
    /// Undoing records beyond the fork point (REVERTING).
    pub reverting: bool,
    /// Ghost (R-FAIL-4): a forced failover left this database on hold until an operator
    /// resumes it.
    pub partner_hold: bool,
    /// RESTORING: restored WITH NORECOVERY and not joined, or removed from the group (R-DB).
    pub restoring: bool,
    /// The page redo or a reader needs (R-PAGE).
    pub page: Page,
    /// Under the `count-disconnected-participant` mutant only: dropped from SYNCHRONIZED when
    /// its session ended, yet still waited for by commits until it reconnects.
    pub lingering: bool,
    /// What a stalled log disk still holds (its log, hardened and redone positions) while a
    /// revert's truncation waits on it (DiskStall): the crash that ends the stall brings it
    /// back. `None` otherwise.
    pub stalled_disk_holds: Option<(Log, u8, u8)>,
    /// SUSPECT, with `lost_through`, the highest LSN the copy had: recovery found a hardened
    /// record failing its checksum with valid records after it (CorruptLog), which is
    /// corruption, not a torn tail, and kept only the log before that record. A replica with a
    /// SUSPECT availability database never takes the PRIMARY role and its copy is never
    /// SYNCHRONIZED; the copy follows a primary as any secondary does, and the mark clears when
    /// that primary records it SYNCHRONIZED or its hardened log reaches `lost_through` again
    /// (R-COMMIT-6). `None` otherwise.
    pub suspect: Option<u8>,
    /// Ghost: what `suspect` holds when recovery does its job, whatever recovery did: a
    /// storage fault cut this copy's log, which reached this LSN, and the copy has not been
    /// brought back since (the same ways `suspect` clears). The property that a damaged copy
    /// never becomes primary reads this, so a recovery that forgets the damage is caught.
    pub corrupt_through: Option<u8>,
    /// Ghost: the transactions whose hardened records a storage fault cut from this copy (bit
    /// `t - 1` for T`t`; never cleared). R-COMMIT-5/6 and R-SYNC-5 count those records on the
    /// copy while it is damaged and does not serve: the protocol made them, the fault destroyed
    /// them, and SUSPECT is what says so.
    pub lost_to_corruption: u16,
}

/// A data page that matters to the spec (R-PAGE): readable, or found corrupt and waiting for
/// a copy of itself as of LSN `needed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Page {
    /// Readable.
    #[default]
    Healthy,
    /// Unreadable since it was found corrupt; the copy must be the page as of `needed`.
    Corrupt {
        /// The LSN the repaired page must reflect.
        needed: u8,
    },
}

/// One replica (its databases are in [`State::dbs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Replica {
    /// Its symmetry group: replicas with the same class are configured alike and
    /// interchangeable (constant; see `symmetry`).
    pub class: u8,
    /// Whether its server process runs.
    pub up: bool,
    /// Its role (kept while down: a replica restarts in the role it persisted, or RESOLVING
    /// where a cluster manager decides).
    pub role: Role,
    /// A lossy forced failover happened since it last joined the primary: when it next
    /// connects, its databases are suspended (SUSPEND_FROM_PARTNER, R-FAIL-4).
    pub missed_forced_failover: bool,
    /// Whether the primary has a session with it.
    pub session: bool,
    /// Ghost: its session with the primary timed out since it last connected.
    pub timed_out: bool,
    /// Removed from the group (REMOVE REPLICA, R-DB-4): it takes no further part.
    pub removed: bool,
    /// Its log disk has stopped completing writes (DiskStall): it hardens and reverts nothing
    /// (redo, which writes no log, goes on over what it hardened before), and cannot take the
    /// primary role, until its server crashes.
    pub disk_stalled: bool,
}

/// A database as the group knows it (one per availability database).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupDb {
    /// Part of the group (ADD / REMOVE DATABASE, R-DB-1/4).
    pub in_group: bool,
    /// The primary when the database was removed: its copy stays ONLINE as an ordinary
    /// database; every other copy is RESTORING (R-DB-4).
    pub kept_online_by: Option<Rid>,
    /// The last LSN of the log backup chain, AG-wide (R-BACKUP-3).
    pub log_chain_end: u8,
    /// A full (not COPY_ONLY) backup exists: the base of differentials.
    pub differential_base: bool,
}

/// The outcome of a backup attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackupOutcome {
    /// Taken; a log backup covers LSNs `first..=last` (empty when `last < first`).
    Taken {
        /// First LSN covered.
        first: u8,
        /// Last LSN covered.
        last: u8,
    },
    /// Refused, and why.
    Refused(BackupRefusal),
}

/// The last log backup of a database's chain (R-BACKUP-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogBackup {
    /// Where it was taken.
    pub replica: Rid,
    /// The fork (manager epoch) it was taken on.
    pub fork: u8,
    /// First LSN covered.
    pub first: u8,
    /// Last LSN covered (below `first` when it covers nothing new).
    pub last: u8,
}

/// What the optional features' properties need to know of the past, as flags raised once
/// (history variables): a violation of a rule, or a behaviour the rules must allow.
pub mod seen {
    /// R-BACKUP-1 broken: a secondary took a kind of backup it may not.
    pub const BACKUP_KIND_ON_SECONDARY: u32 = 1 << 0;
    /// R-BACKUP-2 broken: a secondary backed up while not moving data.
    pub const BACKUP_WHILE_NOT_MOVING: u32 = 1 << 1;
    /// R-BACKUP-3 broken: a log backup did not start where the chain ended (same fork).
    pub const BACKUP_CHAIN_BROKEN: u32 = 1 << 2;
    /// R-BACKUP-3 broken: a backup covered log that is not the history's.
    pub const BACKUP_OUTSIDE_HISTORY: u32 = 1 << 3;
    /// R-BACKUP-3 broken: a COPY_ONLY backup moved the chain or the differential base.
    pub const COPY_ONLY_MOVED_CHAIN: u32 = 1 << 4;
    /// A full backup was refused on a secondary (R-BACKUP-1).
    pub const FULL_REFUSED_ON_SECONDARY: u32 = 1 << 5;
    /// A differential backup was refused on a secondary (R-BACKUP-1).
    pub const DIFFERENTIAL_REFUSED_ON_SECONDARY: u32 = 1 << 6;
    /// A COPY_ONLY log backup was refused on a secondary (R-BACKUP-1).
    pub const COPY_ONLY_LOG_REFUSED_ON_SECONDARY: u32 = 1 << 7;
    /// A backup was refused on a secondary that was not moving data (R-BACKUP-2).
    pub const BACKUP_REFUSED_NOT_MOVING: u32 = 1 << 8;
    /// H6: two log backups on two replicas formed one chain.
    pub const CHAIN_ACROSS_REPLICAS: u32 = 1 << 9;
    /// R-READ-1 broken: a replica served a connection it does not accept.
    pub const READ_NOT_ACCEPTED: u32 = 1 << 10;
    /// R-READ-2 broken: a read saw data outside the history, or not yet redone.
    pub const READ_NOT_REDONE_HISTORY: u32 = 1 << 11;
    /// A read-intent connection was served by a secondary (R-READ-3).
    pub const READ_ON_SECONDARY: u32 = 1 << 12;
    /// A read-intent connection fell back to the primary (R-READ-3).
    pub const READ_FELL_BACK_TO_PRIMARY: u32 = 1 << 13;
    /// R-PAGE-1 broken: a page repaired from the primary differs from its source.
    pub const BAD_REPAIR_FROM_PRIMARY: u32 = 1 << 14;
    /// R-PAGE-2 broken: a page repaired from a secondary differs from its source.
    pub const BAD_REPAIR_FROM_SECONDARY: u32 = 1 << 15;
    /// RESTORE on an availability database was refused (R-DB-3).
    pub const RESTORE_REFUSED: u32 = 1 << 16;
    /// REMOVE REPLICA of the primary was refused (R-DB-4).
    pub const REMOVE_PRIMARY_REFUSED: u32 = 1 << 17;
    /// R-DB-3 broken: RESTORE was applied to a joined availability database.
    pub const RESTORED_JOINED_DATABASE: u32 = 1 << 18;
}

/// The network: which links are cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Net {
    /// Bit `pair_bit(a, b)` set: replicas `a` and `b` cannot talk.
    pub replica_cuts: u64,
    /// Bit `r` set: replica `r` cannot reach the manager's majority.
    pub manager_cuts: u16,
}

/// The cluster manager's state (WSFC or EXTERNAL). Under CLUSTER_TYPE = NONE only `primary`
/// and `epoch` are used, as the group's own record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Manager {
    /// Its majority is up (R-QUORUM-1).
    pub quorum: bool,
    /// The replica holding the primary lease, if any (R-QUORUM-3).
    pub lease: Option<Rid>,
    /// The replica whose log is the current history: the last one promoted.
    pub primary: Rid,
    /// The current recovery fork; every failover starts a new one.
    pub epoch: u8,
    /// Automatic failovers so far (R-FAIL-7 failure threshold).
    pub automatic_failovers: u8,
}

/// A client transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Txn {
    /// The database it writes.
    pub db: Did,
    /// What its client was told.
    pub outcome: CommitOutcome,
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT when it was acknowledged.
    pub required_at_ack: u8,
    /// Ghost: the failover (index into `failovers`) that lost it after it was acknowledged.
    pub lost_in: Option<u8>,
}

/// Budgets spent by the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spent {
    /// Crashes and health faults.
    pub crashes: u8,
    /// Partitions, quorum losses, lost log blocks.
    pub network_faults: u8,
    /// Failovers of any kind.
    pub failovers: u8,
    /// Forced failovers.
    pub forced_failovers: u8,
    /// Operator suspends.
    pub suspends: u8,
    /// Operator changes of k.
    pub config_changes: u8,
    /// Disruptions of any kind (see `Bounds::events`).
    pub events: u8,
    /// Backup attempts.
    pub backups: u8,
    /// Reads.
    pub reads: u8,
    /// Lifecycle commands.
    pub database_changes: u8,
    /// Page corruptions.
    pub page_corruptions: u8,
    /// Damaged log records.
    pub log_corruptions: u8,
}

/// The kind of a failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailoverKind {
    /// By the cluster manager (R-FAIL-2).
    Automatic,
    /// `ALTER AVAILABILITY GROUP … FAILOVER` (R-FAIL-3).
    Planned,
    /// `FORCE_FAILOVER_ALLOW_DATA_LOSS` (R-FAIL-4).
    Forced,
}

/// Ghost record of one failover, for the properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FailoverRecord {
    /// How it happened.
    pub kind: FailoverKind,
    /// The previous owner of the history.
    pub from: Rid,
    /// The new primary.
    pub to: Rid,
    /// The target was failover-ready (SYNCHRONIZED) in every database.
    pub target_ready: bool,
    /// Old primary and target were both SYNCHRONOUS_COMMIT.
    pub synchronous_pair: bool,
    /// The target's session with the old primary had timed out.
    pub target_timed_out: bool,
    /// Transactions acknowledged before it.
    pub acked_before: u8,
    /// It suspends the other secondaries (SUSPEND_FROM_PARTNER) as a lossy forced failover
    /// does (R-FAIL-4).
    pub suspends_partners: bool,
}

/// A state of the spec.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The replicas, in configuration order.
    pub replicas: SmallVec<[Replica; 3]>,
    /// Every replica's databases: replica `r`'s database `d` is at `r * databases + d`.
    pub dbs: SmallVec<[Db; 3]>,
    /// Databases per replica (constant).
    pub databases: u8,
    /// The network.
    pub net: Net,
    /// The cluster manager.
    pub manager: Manager,
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT now (R-COMMIT-5).
    pub required_synchronized: u8,
    /// Client transactions, numbered from 1 in submission order.
    pub txns: SmallVec<[Txn; 3]>,
    /// Budgets spent.
    pub spent: Spent,
    /// Ghost: every failover so far.
    pub failovers: SmallVec<[FailoverRecord; 2]>,
    /// What the optional features remember (backups, reads, lifecycle, page repair): `None`
    /// until one of their steps first runs, so the core protocol's states carry one pointer.
    pub active: Option<Box<Active>>,
}

/// The part of a state that only the optional features use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Active {
    /// The group's databases (membership, log backup chain, differential base).
    pub group_dbs: SmallVec<[GroupDb; 1]>,
    /// The last log backup of each database's chain.
    pub last_log_backup: SmallVec<[Option<LogBackup>; 1]>,
    /// Under the `secondary-log-backup-own-chain` mutant only: where each replica's own last
    /// log backup of each database ended (replica-major, like `State::dbs`).
    pub own_chain_end: SmallVec<[u8; 3]>,
    /// The listener's round-robin positions (R-READ-3).
    pub round_robin: SmallVec<[u8; 2]>,
    /// Flags of `seen` raised so far.
    pub seen: u32,
}

impl GroupDb {
    /// A database of the group as it starts: in the group, no backup yet.
    pub const INITIAL: GroupDb = GroupDb {
        in_group: true,
        kept_online_by: None,
        log_chain_end: 0,
        differential_base: false,
    };
}

/// The bit of the link between two distinct replicas in [`Net::replica_cuts`].
pub fn pair_bit(a: Rid, b: Rid) -> u64 {
    debug_assert_ne!(a, b);
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    1 << (u32::from(hi) * (u32::from(hi) - 1) / 2 + u32::from(lo))
}

impl Net {
    /// Whether replicas `a` and `b` can talk.
    pub fn linked(&self, a: Rid, b: Rid) -> bool {
        a == b || self.replica_cuts & pair_bit(a, b) == 0
    }

    /// Whether replica `r`'s link to the manager's majority is cut.
    pub fn manager_cut(&self, r: Rid) -> bool {
        self.manager_cuts & (1 << r) != 0
    }
}

impl Db {
    /// The position of a transaction's record in this log (0-based).
    pub fn position_of(&self, txn: u8) -> Option<usize> {
        self.log.iter().position(|rec| rec.txn == txn)
    }

    /// Whether a transaction's record is hardened here.
    pub fn has_hardened(&self, txn: u8) -> bool {
        self.position_of(txn)
            .is_some_and(|i| i < usize::from(self.hardened))
    }

    /// Whether a storage fault cut a transaction's hardened record from this copy, which has
    /// not been brought back since (ghost, for R-COMMIT-5/6 and R-SYNC-5).
    pub fn lost_to_storage_fault(&self, txn: u8) -> bool {
        self.corrupt_through.is_some() && self.lost_to_corruption & txn_bit(txn) != 0
    }
}

/// The bit of transaction `txn` (1-based) in a mask of transactions such as
/// [`Db::lost_to_corruption`].
pub fn txn_bit(txn: u8) -> u16 {
    debug_assert!((1..=16).contains(&txn), "transactions are numbered 1..=16");
    1 << (txn - 1)
}

/// Length of the common prefix of two logs.
pub fn common_prefix(a: &[Rec], b: &[Rec]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl State {
    /// Replica `r`.
    pub fn replica(&self, r: Rid) -> &Replica {
        &self.replicas[usize::from(r)]
    }

    /// Database `db` of replica `r`.
    pub fn db(&self, r: Rid, db: Did) -> &Db {
        &self.dbs[usize::from(r) * usize::from(self.databases) + usize::from(db)]
    }

    /// Database `db` of replica `r`, to change.
    pub fn db_mut(&mut self, r: Rid, db: Did) -> &mut Db {
        &mut self.dbs[usize::from(r) * usize::from(self.databases) + usize::from(db)]
    }

    /// Every database of replica `r`, in configuration order.
    pub fn dbs_of(&self, r: Rid) -> &[Db] {
        let n = usize::from(self.databases);
        &self.dbs[usize::from(r) * n..(usize::from(r) + 1) * n]
    }

    /// Every database of replica `r`, to change.
    pub fn dbs_of_mut(&mut self, r: Rid) -> &mut [Db] {
        let n = usize::from(self.databases);
        &mut self.dbs[usize::from(r) * n..(usize::from(r) + 1) * n]
    }

    /// What the group knows of a database.
    pub fn group(&self, db: Did) -> GroupDb {
        self.active
            .as_ref()
            .map_or(GroupDb::INITIAL, |a| a.group_dbs[usize::from(db)])
    }

    /// What the group knows of each database, in order.
    pub fn groups(&self) -> impl Iterator<Item = GroupDb> + '_ {
        (0..self.databases).map(|db| self.group(db))
    }

    /// The optional features' memory, created on first use.
    pub fn active_mut(&mut self) -> &mut Active {
        let databases = self.databases;
        let replicas = self.replicas.len();
        self.active.get_or_insert_with(|| {
            Box::new(Active {
                group_dbs: (0..databases).map(|_| GroupDb::INITIAL).collect(),
                last_log_backup: (0..databases).map(|_| None).collect(),
                own_chain_end: SmallVec::from_elem(0, replicas * usize::from(databases)),
                round_robin: SmallVec::new(),
                seen: 0,
            })
        })
    }

    /// What the group knows of a database, to change.
    pub fn group_mut(&mut self, db: Did) -> &mut GroupDb {
        &mut self.active_mut().group_dbs[usize::from(db)]
    }

    /// Whether a flag of `seen` was raised.
    pub fn has_seen(&self, flag: u32) -> bool {
        self.active.as_ref().is_some_and(|a| a.seen & flag != 0)
    }

    /// The last log backup of a database's chain.
    pub fn last_log_backup(&self, db: Did) -> Option<LogBackup> {
        self.active
            .as_ref()
            .and_then(|a| a.last_log_backup[usize::from(db)])
    }

    /// The listener's round-robin positions.
    pub fn round_robin(&self) -> &[u8] {
        self.active.as_ref().map_or(&[], |a| &a.round_robin)
    }

    /// The current history of a database: the log of the last promoted replica.
    pub fn history(&self, db: Did) -> &[Rec] {
        &self.db(self.manager.primary, db).log
    }

    /// The current primary, if it is up in the PRIMARY role.
    pub fn serving_primary(&self) -> Option<Rid> {
        let p = self.manager.primary;
        let r = &self.replicas[usize::from(p)];
        (r.up && r.role == Role::Primary).then_some(p)
    }

    /// Transaction `t` (1-based).
    pub fn txn(&self, t: u8) -> &Txn {
        &self.txns[usize::from(t) - 1]
    }

    /// Acknowledged transactions so far.
    pub fn acked_count(&self) -> u8 {
        self.txns
            .iter()
            .filter(|t| t.outcome == CommitOutcome::Acknowledged)
            .count() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_bits_are_distinct_and_symmetric() {
        let mut seen = 0u64;
        for hi in 1..9u8 {
            for lo in 0..hi {
                let bit = pair_bit(lo, hi);
                assert_eq!(bit, pair_bit(hi, lo));
                assert_eq!(seen & bit, 0, "bit of {lo}-{hi} reused");
                seen |= bit;
            }
        }
        assert_eq!(seen.count_ones(), 36);
    }

    #[test]
    fn common_prefix_stops_at_the_first_difference() {
        let r = |epoch, txn| Rec { epoch, txn };
        assert_eq!(common_prefix(&[r(1, 1), r(1, 2)], &[r(1, 1), r(2, 3)]), 1);
        assert_eq!(common_prefix(&[r(1, 1)], &[r(1, 1), r(1, 2)]), 1);
        assert_eq!(common_prefix(&[], &[r(1, 1)]), 0);
    }
}
