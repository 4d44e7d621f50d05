//! Seeded random walks over environment steps (commits, partitions, crashes, restarts, held
//! storage, delayed manager confirmations, automatic failovers; and in the walks with storage
//! faults, crashes that keep unsynced records written back by the system and tear the next
//! one, and records that read back damaged at a restart), checking after every step:
//!
//! - R-COMMIT-6: every acknowledged commit is in the log of the primary and of every secondary
//!   the primary counts as a commit participant (no forced failover happens here), so that an
//!   automatic failover to a replica the manager stored as failover-ready (from any
//!   publication it stored, intermediate ones included) loses nothing;
//! - the invariants of `Replica::validate` (the cluster checks them after every step);
//!
//! and at the end, once every fault is repaired, that the group converges (R-SYNC-6). On a
//! failure the seed is in the panic message: rerun with `HADR_SOAK_SEED=<seed>`;
//! `HADR_SOAK_SEEDS=<n>` walks seeds 1..=n (default 40), `HADR_SOAK_STEPS=<n>` sets the length.

use hadr_core::testing::{ag_config, Cluster};
use hadr_core::{AdminCommand, ClientReply, CoreOptions, DataStore, PromotionKind, RequestId};
use hadr_types::AvailabilityMode::{AsynchronousCommit as Async, SynchronousCommit as Sync};
use hadr_types::{AgConfig, ClusterType, DatabaseId, Lsn, ReplicaId, Role, SyncState, TxnId};
use std::collections::BTreeMap;

/// Restarts from a damaged disk in this test process (a walk with storage faults that never
/// damaged anything would check nothing new).
static DAMAGED_RESTARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Copies found checkpointed (their log truncated) when a walk converged.
static CHECKPOINTED_COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn damaged_restarts() -> usize {
    DAMAGED_RESTARTS.load(std::sync::atomic::Ordering::Relaxed)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Walk {
    c: Cluster,
    rng: Rng,
    replicas: usize,
    databases: usize,
    next_txn: u32,
    /// Commit request → (node, database, transaction).
    commits: BTreeMap<(ReplicaId, RequestId), (DatabaseId, TxnId)>,
    /// Acknowledged commits: (database, lsn) → transaction.
    acknowledged: BTreeMap<(DatabaseId, Lsn), TxnId>,
    manager: bool,
    /// Also take operator steps: failovers, suspend/resume, changes of k.
    admin: bool,
    /// Also inject storage faults: written-back and torn unsynced records at a crash, a
    /// damaged record read back at a restart (one damaged copy at a time, so that an intact
    /// copy of every acknowledged commit is left to reseed it from).
    storage: bool,
}

impl Walk {
    fn new(seed: u64, config: AgConfig, checkpoint_bytes: u64) -> Walk {
        let cluster_type = config.cluster_type;
        let replicas = config.replicas.len();
        let databases = config.databases.len();
        let options = CoreOptions {
            checkpoint_bytes,
            ..CoreOptions::default()
        };
        Walk {
            c: Cluster::with_options(config, options),
            rng: Rng(seed.max(1)),
            replicas,
            databases,
            next_txn: 1,
            commits: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            manager: cluster_type.has_manager(),
            admin: false,
            storage: false,
        }
    }

    /// The transaction of record `lsn` of `database` on replica `r`: from its log, or, for a
    /// record its last checkpoint covers, from the data file (every commit of the walk writes
    /// `t<txn>`, so a checkpointed commit shows there).
    fn txn_at(&self, r: ReplicaId, database: DatabaseId, lsn: Lsn) -> Option<TxnId> {
        let replica = self.c.replica(r);
        let checkpointed = replica.checkpointed(database).unwrap();
        if lsn > checkpointed {
            let log = replica.log(database).unwrap();
            return log
                .get((lsn.0 - checkpointed.0 - 1) as usize)
                .map(|x| x.txn);
        }
        let txn = self.acknowledged.get(&(database, lsn))?;
        let data = &self.c.node(r).disk.data;
        let value = data.get(database, &format!("t{}", txn.0)).unwrap();
        (value == Some(txn.0.to_string())).then_some(*txn)
    }

    /// `r` and `p` hold the same log of `database`: the same end, the same fork history, the
    /// same records after the later of their checkpoints.
    fn assert_same_log(&self, r: ReplicaId, p: ReplicaId, database: DatabaseId) {
        let (a, b) = (self.c.replica(r), self.c.replica(p));
        assert_eq!(
            a.end_of_log_lsn(database),
            b.end_of_log_lsn(database),
            "{r} {database}"
        );
        let from = a
            .checkpointed(database)
            .max(b.checkpointed(database))
            .unwrap();
        let after = |replica: &hadr_core::Replica| {
            replica
                .log(database)
                .unwrap()
                .iter()
                .filter(|x| x.lsn > from)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(after(a), after(b), "{r} {database} after {from}");
    }

    /// Whether any replica holds a damaged copy (running: in its views; crashed: on disk).
    fn any_damaged(&self) -> bool {
        (0..self.replicas)
            .map(|r| ReplicaId(r as u8))
            .any(|r| match self.c.is_up(r) {
                true => !self.c.replica(r).damaged_databases().is_empty(),
                false => self
                    .c
                    .node(r)
                    .disk
                    .state
                    .as_ref()
                    .is_some_and(|s| s.databases.iter().any(|d| d.damaged.is_some())),
            })
    }

    /// A storage fault on the disk of the crashed `r` before its restart: one of its durable
    /// records reads back damaged. Not on the last primary's disk in a walk without operator:
    /// its restart (or restore by the manager) may be the only way back to a primary, and a
    /// damaged copy never leads; only an operator's forced failover gets past that.
    fn damage_disk(&mut self, r: ReplicaId) {
        let stored = self.c.node(r).disk.state.as_ref();
        let was_primary = stored.is_some_and(|s| s.role == Role::Primary)
            || (self.manager && self.c.manager.primary == Some(r));
        if self.any_damaged() || (was_primary && !self.admin) {
            return;
        }
        let database = self.any_database();
        let durable = self.c.node(r).disk.logs[usize::from(database.0)].len() as u64;
        if durable == 0 {
            return;
        }
        let lsn = Lsn(1 + self.rng.below(durable));
        // Bit rot on the only copy of an acknowledged commit loses it whatever the protocol
        // does, and a damaged copy leads no database until it is reseeded (failover moves
        // whole replicas): damage only a disk whose acknowledged commits, of every database,
        // one other disk holds durably.
        let holds = |o: ReplicaId, (d, l): &(DatabaseId, Lsn), txn: &TxnId| {
            let disk = &self.c.node(o).disk;
            let index = usize::from(d.0);
            l.0 as usize <= disk.durable[index]
                && disk.logs[index].get(l.0 as usize - 1).map(|x| x.txn) == Some(*txn)
        };
        let covered = (0..self.replicas)
            .map(|o| ReplicaId(o as u8))
            .filter(|o| *o != r)
            .any(|o| {
                self.acknowledged
                    .iter()
                    .all(|(key, txn)| !holds(r, key, txn) || holds(o, key, txn))
            });
        if covered && self.c.corrupt_record(r, database, lsn).is_some() {
            DAMAGED_RESTARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn any_replica(&mut self) -> ReplicaId {
        ReplicaId(self.rng.below(self.replicas as u64) as u8)
    }

    fn primary(&self) -> Option<ReplicaId> {
        (0..self.replicas)
            .map(|r| ReplicaId(r as u8))
            .find(|r| self.c.is_up(*r) && self.c.role(*r) == Some(Role::Primary))
    }

    fn any_database(&mut self) -> DatabaseId {
        DatabaseId(self.rng.below(self.databases as u64) as u8)
    }

    /// Operator steps (R-SYNC-7, R-FAIL-3/4, R-COMMIT-5, R-QUORUM-5).
    fn admin_step(&mut self, choice: u64) {
        let r = self.any_replica();
        if !self.c.is_up(r) {
            return;
        }
        let command = match choice {
            0 => AdminCommand::SuspendDatabase(self.any_database()),
            1 => AdminCommand::ResumeDatabase(self.any_database()),
            2 if self.manager => AdminCommand::Failover,
            2 => AdminCommand::ForceFailoverAllowDataLoss,
            _ if !self.manager && self.rng.below(2) == 0 => AdminCommand::SetRoleSecondary,
            _ => AdminCommand::SetRequiredSynchronizedSecondariesToCommit(
                self.rng.below(self.replicas as u64) as u32,
            ),
        };
        self.c.admin(r, command);
    }

    fn step(&mut self) {
        let kinds = if self.admin { 16 } else { 12 };
        match self.rng.below(kinds) {
            n @ 12..=15 => self.admin_step(n - 12),
            0..=3 => {
                if let Some(p) = self.primary() {
                    let database = DatabaseId(self.rng.below(self.databases as u64) as u8);
                    let txn = self.next_txn;
                    self.next_txn += 1;
                    let value = txn.to_string();
                    let request = self.c.commit(
                        p,
                        database,
                        txn,
                        &[("k", &value), (&format!("t{txn}"), &value)],
                    );
                    self.commits.insert((p, request), (database, TxnId(txn)));
                }
            }
            4 => {
                let (a, b) = (self.any_replica(), self.any_replica());
                if a != b {
                    self.c.partition(a, b);
                }
            }
            5 => {
                let (a, b) = (self.any_replica(), self.any_replica());
                self.c.heal(a, b);
            }
            6 | 7 => {
                let ms = 1 + self.rng.below(6_000);
                self.c.advance(ms);
            }
            8 => {
                let r = self.any_replica();
                let ups = (0..self.replicas)
                    .filter(|i| self.c.is_up(ReplicaId(*i as u8)))
                    .count();
                if self.c.is_up(r) && ups > 1 {
                    match self.storage {
                        true => {
                            let written_back = self.rng.below(3) as usize;
                            self.c.crash_keeping_unsynced(r, written_back);
                        }
                        false => self.c.crash(r),
                    }
                }
            }
            9 => {
                let r = self.any_replica();
                if !self.c.is_up(r) {
                    if self.storage && self.rng.below(2) == 0 {
                        self.damage_disk(r);
                    }
                    self.c.restart(r);
                }
            }
            10 => {
                let r = self.any_replica();
                if self.c.is_up(r) {
                    let node = self.c.node_mut(r);
                    node.hold_storage = !node.hold_storage;
                }
            }
            11 if self.manager && self.rng.below(3) == 0 => {
                self.c.manager.confirm_publications = !self.c.manager.confirm_publications;
                if self.c.manager.confirm_publications {
                    for r in 0..self.replicas {
                        self.c.confirm_publication(ReplicaId(r as u8));
                    }
                }
            }
            11 if self.manager => {
                // The manager stores one of the publications in flight, not necessarily the
                // newest: an intermediate one may land while newer ones are still on their way.
                let r = self.any_replica();
                let pending = self.c.pending_publications(r);
                if !pending.is_empty() {
                    let (epoch, version) = pending[self.rng.below(pending.len() as u64) as usize];
                    self.c.store_publication(r, epoch, version);
                }
            }
            11 => {}
            _ => unreachable!(),
        }
        self.c.run();
        if self.manager && self.primary().is_none() && self.rng.below(2) == 0 {
            self.automatic_failover();
        }
        self.collect_acknowledgements();
        self.check_durability();
    }

    /// R-FAIL-2 / R-QUORUM-2: once no primary runs (the old one crashed, so its lease is gone),
    /// the running replicas ask the manager, whose policy promotes one its stored publication
    /// lists as failover-ready, or restores its recorded primary.
    fn automatic_failover(&mut self) {
        let askers: Vec<ReplicaId> = (0..self.replicas).map(|r| ReplicaId(r as u8)).collect();
        if self.c.automatic_failover(&askers, |_| false).is_some() {
            self.c.run();
        }
    }

    fn collect_acknowledgements(&mut self) {
        for ((node, request), (database, txn)) in &self.commits {
            if let Some(ClientReply::Committed { lsn }) = self.c.node(*node).replies.get(request) {
                let previous = self.acknowledged.insert((*database, *lsn), *txn);
                let lossy = self.admin && !self.manager; // forced failovers (R-FAIL-5)
                assert!(
                    lossy || previous.is_none_or(|p| p == *txn),
                    "two acknowledged commits at {database} {lsn}: {previous:?} and {txn}"
                );
            }
        }
    }

    /// R-COMMIT-6 without forced failover.
    fn check_durability(&self) {
        if self.admin && !self.manager {
            return; // FORCE_FAILOVER_ALLOW_DATA_LOSS may lose acknowledged commits (R-FAIL-5)
        }
        let primaries = (0..self.replicas)
            .filter(|r| self.c.role(ReplicaId(*r as u8)) == Some(Role::Primary))
            .count();
        let Some(p) = self.primary().filter(|_| primaries == 1) else {
            return;
        };
        let primary = self.c.replica(p);
        let status = primary.status().unwrap();
        for ((database, lsn), txn) in &self.acknowledged {
            assert_eq!(
                self.txn_at(p, *database, *lsn),
                Some(*txn),
                "acknowledged {txn} at {database} {lsn} missing on the primary {p}"
            );
            for secondary in &status.databases[usize::from(database.0)].secondaries {
                if secondary.is_commit_participant {
                    assert_eq!(
                        self.txn_at(secondary.replica, *database, *lsn),
                        Some(*txn),
                        "acknowledged {txn} missing on participant {}",
                        secondary.replica
                    );
                }
            }
        }
    }

    /// What an operator does after the faults: make sure there is a primary (FORCE on the
    /// replica with the highest end of log, R-FAIL-6, when none is left), set k back to 0,
    /// resume every suspended database (the primary's first, R-SYNC-7).
    fn operator_repairs(&mut self) {
        if self.primary().is_none() {
            if self.manager {
                self.automatic_failover();
            }
            if self.primary().is_none() {
                // R-COMMIT-6: never a damaged copy (it refuses), the best intact one. With
                // several databases and the most complete copy damaged, no end_of_log_lsn
                // tells which copy holds every acknowledged commit: this operator counts them.
                let best = (0..self.replicas)
                    .map(|r| ReplicaId(r as u8))
                    .filter(|r| self.c.replica(*r).damaged_databases().is_empty())
                    .max_by_key(|r| {
                        let replica = self.c.replica(*r);
                        let held = self
                            .acknowledged
                            .iter()
                            .filter(|((d, l), txn)| self.txn_at(*r, *d, *l) == Some(**txn))
                            .count();
                        let ends = (0..self.databases)
                            .map(|d| replica.end_of_log_lsn(DatabaseId(d as u8)).unwrap().0)
                            .sum::<u64>();
                        (held, ends)
                    })
                    .unwrap();
                let promotion = self.c.promotion(PromotionKind::Forced);
                if self.manager {
                    self.c.manager_event(best, promotion);
                } else {
                    self.c.admin(best, AdminCommand::ForceFailoverAllowDataLoss);
                }
                self.c.run();
            }
        }
        let p = self
            .primary()
            .expect("a primary after the operator's failover");
        self.c.admin(
            p,
            AdminCommand::SetRequiredSynchronizedSecondariesToCommit(0),
        );
        for d in 0..self.databases {
            self.c
                .admin(p, AdminCommand::ResumeDatabase(DatabaseId(d as u8)));
        }
        self.c.run();
        // Resuming a SUSPEND_FROM_PRIMARY database may reveal that it has not accepted a
        // forced fork (SUSPEND_FROM_PARTNER): the operator resumes again what is still suspended.
        for _ in 0..3 {
            for r in 0..self.replicas {
                let r = ReplicaId(r as u8);
                for d in 0..self.databases {
                    let suspended =
                        self.c.observation().replicas[usize::from(r.0)].databases[d].suspended;
                    if suspended.is_some() {
                        self.c
                            .admin(r, AdminCommand::ResumeDatabase(DatabaseId(d as u8)));
                        self.c.run();
                    }
                }
            }
        }
        self.c.advance(30_000);
    }

    /// Repairs everything and checks that every replica ends on the primary's log.
    fn converge(&mut self) {
        for r in 0..self.replicas {
            let r = ReplicaId(r as u8);
            if !self.c.is_up(r) {
                self.c.restart(r);
            }
            self.c.node_mut(r).hold_storage = false;
            self.c.node_mut(r).hold_redo = false;
        }
        for a in 0..self.replicas {
            for b in 0..self.replicas {
                self.c.heal(ReplicaId(a as u8), ReplicaId(b as u8));
            }
        }
        self.c.manager.confirm_publications = true;
        for r in 0..self.replicas {
            self.c.confirm_publication(ReplicaId(r as u8));
        }
        self.c.run();
        if self.manager && self.primary().is_none() {
            self.automatic_failover();
        }
        self.c.advance(30_000);
        if self.admin {
            self.operator_repairs();
        }
        self.collect_acknowledgements();
        self.check_durability();
        let p = self.primary().expect("a primary after repairs");
        let config = self.c.replica(p).config().unwrap().clone();
        for r in 0..self.replicas {
            let r = ReplicaId(r as u8);
            if r == p {
                continue;
            }
            assert_eq!(self.c.role(r), Some(Role::Secondary), "{r} follows {p}");
            for d in 0..self.databases {
                let database = DatabaseId(d as u8);
                self.assert_same_log(r, p, database);
                if self.c.replica(r).checkpointed(database) > Some(Lsn(0)) {
                    CHECKPOINTED_COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let observed = &self.c.observation().replicas[usize::from(r.0)].databases[d];
                let synchronous = config.replicas[usize::from(r.0)].availability_mode == Sync
                    && config.replicas[usize::from(p.0)].availability_mode == Sync;
                let expected = if synchronous {
                    SyncState::Synchronized
                } else {
                    SyncState::Synchronizing
                };
                assert_eq!(
                    observed.synchronization_state,
                    Some(expected),
                    "{r} {database}"
                );
                assert_eq!(
                    observed.last_redone_lsn, observed.end_of_log_lsn,
                    "{r} {database} redone"
                );
            }
        }
        // Liveness once repaired: a new commit on every database is acknowledged.
        for d in 0..self.databases {
            let database = DatabaseId(d as u8);
            let txn = self.next_txn;
            self.next_txn += 1;
            let request = self.c.commit(p, database, txn, &[("k", "last")]);
            self.commits.insert((p, request), (database, TxnId(txn)));
            self.c.run();
            assert!(
                matches!(
                    self.c.reply(p, request),
                    Some(ClientReply::Committed { .. })
                ),
                "a commit after repairs is acknowledged, got {:?}",
                self.c.reply(p, request)
            );
        }
        self.collect_acknowledgements();
        self.check_durability();
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("HADR_SOAK_SEED") {
        Ok(seed) => vec![seed.parse().expect("HADR_SOAK_SEED is a number")],
        Err(_) => {
            let count = std::env::var("HADR_SOAK_SEEDS")
                .map_or(40, |n| n.parse().expect("HADR_SOAK_SEEDS is a number"));
            (1..=count).collect()
        }
    }
}

fn walk(config: AgConfig, steps: usize) -> usize {
    walk_with(config, steps, false)
}

fn walk_with(config: AgConfig, steps: usize, admin: bool) -> usize {
    walk_faults(config, steps, admin, false)
}

fn walk_faults(config: AgConfig, steps: usize, admin: bool, storage: bool) -> usize {
    walk_checkpointing(config, steps, admin, storage, 0)
}

/// A walk whose replicas checkpoint every `checkpoint_bytes` of log (0: never).
fn walk_checkpointing(
    config: AgConfig,
    steps: usize,
    admin: bool,
    storage: bool,
    checkpoint_bytes: u64,
) -> usize {
    let steps = std::env::var("HADR_SOAK_STEPS")
        .map_or(steps, |n| n.parse().expect("HADR_SOAK_STEPS is a number"));
    let mut acknowledged = 0;
    for seed in seeds() {
        let result = std::panic::catch_unwind(|| {
            let mut walk = Walk::new(seed, config.clone(), checkpoint_bytes);
            walk.admin = admin;
            walk.storage = storage;
            for _ in 0..steps {
                walk.step();
            }
            walk.converge();
            walk.acknowledged.len()
        });
        match result {
            Ok(count) => acknowledged += count,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed: {message}\nrerun with HADR_SOAK_SEED={seed}");
            }
        }
    }
    acknowledged
}

#[test]
fn r_commit_6_soak_cluster_type_none_without_failover() {
    let acknowledged = walk(ag_config(ClusterType::None, &[Sync, Sync, Async], 2), 150);
    assert!(acknowledged > 100, "{acknowledged}");
}

#[test]
fn r_commit_6_soak_external_manager_with_automatic_failovers() {
    let acknowledged = walk(
        ag_config(ClusterType::External, &[Sync, Sync, Sync], 1),
        150,
    );
    assert!(acknowledged > 100, "{acknowledged}");
}

#[test]
fn r_commit_6_soak_four_replicas_two_databases_mixed_modes() {
    let acknowledged = walk(
        ag_config(ClusterType::External, &[Sync, Async, Sync, Sync], 2),
        150,
    );
    assert!(acknowledged > 100, "{acknowledged}");
}

/// Operator steps too. With a manager only planned failovers happen, so R-COMMIT-6 is checked
/// throughout; under CLUSTER_TYPE NONE forced failovers may lose commits (R-FAIL-5), so only the
/// invariants and the convergence after the operator's repairs are checked.
#[test]
fn soak_with_operator_steps_external() {
    walk_with(
        ag_config(ClusterType::External, &[Sync, Sync, Async], 2),
        150,
        true,
    );
}

#[test]
fn soak_with_operator_steps_cluster_type_none() {
    walk_with(
        ag_config(ClusterType::None, &[Sync, Sync, Sync], 1),
        150,
        true,
    );
}

/// Storage faults (item 4 of the storage work): a crash keeps some unsynced records and tears
/// the next, and a durable record may read back damaged at a restart. A damaged copy never
/// leads and is reseeded, so R-COMMIT-6 holds throughout and the group converges.
#[test]
fn r_commit_6_soak_with_storage_faults_external() {
    storage_walk(ag_config(ClusterType::External, &[Sync, Sync, Sync], 1));
}

#[test]
fn r_commit_6_soak_with_storage_faults_cluster_type_none() {
    storage_walk(ag_config(ClusterType::None, &[Sync, Sync, Async], 2));
}

/// Walks `config` with storage faults and no operator: R-COMMIT-6 after every step, many
/// acknowledged commits, and restarts from a damaged disk.
fn storage_walk(config: AgConfig) {
    let acknowledged = walk_faults(config, 150, false, true);
    assert!(acknowledged > 100, "{acknowledged}");
    assert_damaged_restarts();
}

/// A walk with storage faults that never damaged a disk would check nothing new.
fn assert_damaged_restarts() {
    assert!(
        damaged_restarts() > 10,
        "{} damaged restarts",
        damaged_restarts()
    );
}

#[test]
fn soak_with_storage_faults_and_operator_steps() {
    walk_faults(
        ag_config(ClusterType::None, &[Sync, Sync, Sync], 1),
        150,
        true,
        true,
    );
    walk_faults(
        ag_config(ClusterType::External, &[Sync, Sync, Async], 2),
        150,
        true,
        true,
    );
    assert_damaged_restarts();
}

#[test]
fn r_commit_6_soak_with_required_synchronized_secondaries() {
    let mut config = ag_config(ClusterType::External, &[Sync, Sync, Async], 1);
    config.required_synchronized_secondaries_to_commit = 1;
    let acknowledged = walk(config, 120);
    assert!(acknowledged > 40, "{acknowledged}");
}

/// Replays one walk with a trace, for debugging a failing seed:
///
/// ```sh
/// HADR_SOAK_SEED=372 HADR_SOAK_KIND=none HADR_TRACE=1 \
///     cargo test -p hadr-core --test soak debug_seed -- --ignored --nocapture
/// ```
///
/// `HADR_SOAK_KIND` is one of `none` (default), `external`, `four`, `k`, `external-admin`,
/// `none-admin` (the walks above, in order); `HADR_SOAK_STORAGE=1` adds the storage faults;
/// `HADR_SOAK_STEPS` as above. It prints every
/// replica's status at the end and, with `HADR_TRACE`, every input given to a replica.
#[test]
#[ignore = "a debugging tool: set HADR_SOAK_SEED"]
fn debug_seed() {
    let Ok(seed) = std::env::var("HADR_SOAK_SEED") else {
        eprintln!("set HADR_SOAK_SEED to the seed to replay");
        return;
    };
    let seed: u64 = seed.parse().expect("HADR_SOAK_SEED is a number");
    let kind = std::env::var("HADR_SOAK_KIND").unwrap_or_default();
    let (config, steps, admin) = match kind.as_str() {
        "external" => (
            ag_config(ClusterType::External, &[Sync, Sync, Sync], 1),
            150,
            false,
        ),
        "four" => (
            ag_config(ClusterType::External, &[Sync, Async, Sync, Sync], 2),
            150,
            false,
        ),
        "k" => {
            let mut config = ag_config(ClusterType::External, &[Sync, Sync, Async], 1);
            config.required_synchronized_secondaries_to_commit = 1;
            (config, 120, false)
        }
        "external-admin" => (
            ag_config(ClusterType::External, &[Sync, Sync, Async], 2),
            150,
            true,
        ),
        "none-admin" => (
            ag_config(ClusterType::None, &[Sync, Sync, Sync], 1),
            150,
            true,
        ),
        _ => (
            ag_config(ClusterType::None, &[Sync, Sync, Async], 2),
            150,
            false,
        ),
    };
    let steps = std::env::var("HADR_SOAK_STEPS")
        .map_or(steps, |n| n.parse().expect("HADR_SOAK_STEPS is a number"));
    let mut walk = Walk::new(seed, config, 0);
    walk.admin = admin;
    walk.storage = std::env::var("HADR_SOAK_STORAGE").is_ok_and(|v| v == "1");
    walk.c.tracing = true;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..steps {
            walk.step();
        }
        walk.converge();
    }));
    if std::env::var("HADR_TRACE").is_ok() {
        for line in &walk.c.trace {
            println!("T {line}");
        }
    }
    for r in 0..walk.replicas {
        let r = ReplicaId(r as u8);
        if walk.c.is_up(r) {
            println!(
                "{}",
                serde_json::to_string(&walk.c.replica(r).status()).unwrap()
            );
        }
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// R-SYNC-7 with checkpoints: replicas checkpoint every few records and drop the log the
/// checkpoint covers, through crashes, failovers and operator steps; every acknowledged
/// commit stays on the primary and every participant (in its log or its data file), copies
/// converge, and no revert ever goes below a checkpoint (the core asserts it). Without damaged
/// records: a damaged copy whose intact log ends before the primary's checkpoint needs a
/// reseed from a snapshot, which streaming log cannot give (not built yet).
#[test]
fn r_sync_7_soak_with_checkpoints_and_log_truncation() {
    let acknowledged = walk_checkpointing(
        ag_config(ClusterType::External, &[Sync, Sync, Async], 2),
        150,
        false,
        false,
        120,
    );
    assert!(acknowledged > 100, "{acknowledged}");
    let checkpointed = CHECKPOINTED_COPIES.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        checkpointed > 20,
        "{checkpointed} secondary copies checkpointed"
    );
    walk_checkpointing(
        ag_config(ClusterType::None, &[Sync, Sync, Sync], 1),
        150,
        true,
        false,
        120,
    );
    walk_checkpointing(
        ag_config(ClusterType::External, &[Sync, Sync, Async], 2),
        150,
        true,
        false,
        60,
    );
}
