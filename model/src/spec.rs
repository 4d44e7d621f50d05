//! [`AgModel`]: the Stateright model. Every action has a guard ([`AgModel::enabled`]) and an
//! effect ([`AgModel::apply`]); `actions` offers exactly the enabled ones, in a fixed order.
//!
//! ```text
//!  client ──ClientCommit──▶ primary log ──ShipLog──▶ secondary log ──HardenLog──▶ ──RedoLog──▶
//!                              │                          │
//!                              └──AckCommit◀── every SYNCHRONIZED participant hardened it
//!  manager: lease ──LeaseExpiry/ManagerLeaseExpiry──▶ free ──AutomaticFailover/RestorePrimary
//! ```
//!
//! Atomicity: a step reads the state of every node it names at one instant. Message delays are
//! the interleaving of steps; message loss is `LoseLogBlock`; a cut link disables the steps that
//! would cross it.

use crate::action::{Action, ActionKind, Node};
use crate::backup::{allowed_in_role, BackupKind, BackupRefusal};
use crate::config::ModelConfig;
use crate::mutant::Mutant;
use crate::routing::{accepts, route, ReplicaRouteView, RouteView};
use crate::state::{
    common_prefix, pair_bit, seen, txn_bit, BackupOutcome, Db, Did, FailoverKind, FailoverRecord,
    LogBackup, Manager, Net, Page, Rec, Replica, Rid, Spent, State, Txn,
};
use hadr_types::{ApplicationIntent, SyncState};
use hadr_types::{ClusterType, CommitOutcome, DefiniteReason, FailureCondition, Role};
use smallvec::SmallVec;
use std::sync::Arc;

/// The spec of one availability group under one set of bounds, possibly with a planted bug.
#[derive(Clone)]
pub struct AgModel {
    config: Arc<ModelConfig>,
    mutant: Option<Mutant>,
    /// The environment acts only in quiescent states (see
    /// [`AgModel::with_quiescent_environment`]).
    quiescent_environment: bool,
    /// The budgets `enabled` checks: the configuration's bounds, or for a conformance judge
    /// none but the number of transactions (see [`AgModel::for_conformance`]).
    budgets: crate::config::Bounds,
    candidates: Arc<[Action]>,
    /// `candidates` grouped by kind: (kind, start, end).
    groups: Arc<[(ActionKind, usize, usize)]>,
    replicas: u8,
    databases: u8,
    /// Each replica's READ_ONLY_ROUTING_LIST as replica indices (groups of one or more).
    routing_lists: Arc<[Vec<Vec<usize>>]>,
    pub(crate) probes: Option<Arc<crate::properties::Probes>>,
    pub(crate) focus: Option<Arc<[usize]>>,
    /// The properties checked (indices into `all_specs`), derived from the configuration and
    /// the focus.
    pub(crate) checked: Arc<[usize]>,
}

impl AgModel {
    /// The spec of this configuration.
    ///
    /// # Panics
    ///
    /// If the configuration breaks the model's encoding limits, which
    /// [`ModelConfig::validate`] refuses (every parsed configuration is validated).
    pub fn new(config: ModelConfig) -> Self {
        AgModel::build(config, None)
    }

    /// A deliberately wrong variant of the spec (see [`Mutant`]).
    pub fn with_mutant(config: ModelConfig, mutant: Mutant) -> Self {
        AgModel::build(config, Some(mutant))
    }

    fn build(config: ModelConfig, mutant: Option<Mutant>) -> Self {
        let replicas = u8::try_from(config.replica_count()).expect("at most 9 replicas");
        let databases = u8::try_from(config.database_count()).expect("at most 255 databases");
        let mut candidates = candidate_actions(&config, replicas, databases);
        candidates.sort_by_key(|a| a.kind().index());
        let mut groups = Vec::new();
        for (i, a) in candidates.iter().enumerate() {
            match groups.last_mut() {
                Some((kind, _, end)) if *kind == a.kind() => *end = i + 1,
                _ => groups.push((a.kind(), i, i + 1)),
            }
        }
        let routing_lists: Vec<Vec<Vec<usize>>> = config
            .ag
            .replicas
            .iter()
            .map(|r| {
                r.primary_role
                    .read_only_routing_list
                    .iter()
                    .map(|entry| {
                        entry
                            .names()
                            .iter()
                            .filter_map(|name| config.ag.replica_id(name))
                            .map(|id| usize::from(id.0))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        AgModel {
            budgets: config.bounds,
            config: Arc::new(config),
            mutant,
            quiescent_environment: false,
            candidates: candidates.into(),
            groups: groups.into(),
            routing_lists: routing_lists.into(),
            replicas,
            databases,
            probes: None,
            focus: None,
            checked: Arc::from([]),
        }
        .refocus(None)
    }

    /// The same model checking only the given properties (indices into `all_specs`), or
    /// every applicable one.
    /// The behaviours in which the environment (clients, operators, faults) acts only when the
    /// protocol has nothing left to do on its own: those a conformance harness reproduces by
    /// running the system under test to quiescence after each step.
    pub fn with_quiescent_environment(mut self) -> Self {
        self.quiescent_environment = true;
        self
    }

    /// The spec as a conformance judge needs it: no budget but the number of transactions.
    /// The bounds exist to make model checking finite; a system under test knows none, so a
    /// judge that kept them would refuse what the system rightly does (an automatic failover
    /// after `bounds.failovers` failovers), or refuse an environment action in some states of
    /// a frontier while the system performed it. A judge replays a given sequence of
    /// environment actions, so its state space stays finite without them.
    pub fn for_conformance(mut self) -> Self {
        let transactions = self.budgets.transactions;
        self.budgets = crate::config::Bounds {
            transactions,
            crashes: u8::MAX,
            network_faults: u8::MAX,
            failovers: u8::MAX,
            forced_failovers: u8::MAX,
            suspends: u8::MAX,
            config_changes: u8::MAX,
            events: u8::MAX,
            backups: u8::MAX,
            reads: u8::MAX,
            database_changes: u8::MAX,
            page_corruptions: u8::MAX,
            log_corruptions: u8::MAX,
        };
        self
    }

    pub(crate) fn refocus(mut self, focus: Option<Arc<[usize]>>) -> Self {
        self.checked = crate::properties::applicable_specs(&self.config, focus.as_deref()).into();
        self.focus = focus;
        self
    }

    /// The same model, evaluating each of its properties as a Stateright property of its own
    /// (for the Explorer, which lists them by name).
    pub fn with_each_property(self) -> Self {
        let all: Arc<[usize]> = self.checked.clone();
        self.refocus(Some(all))
    }

    /// The configuration checked.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The planted bug, if any.
    pub fn mutant(&self) -> Option<Mutant> {
        self.mutant
    }

    /// Every action this configuration can ever offer, in the order `actions` offers them.
    pub fn candidates(&self) -> &[Action] {
        &self.candidates
    }

    pub(crate) fn has(&self, mutant: Mutant) -> bool {
        self.mutant == Some(mutant)
    }

    fn has_manager(&self) -> bool {
        self.config.ag.cluster_type.has_manager()
    }

    /// What the clients of commits still waiting are told when their primary steps down while
    /// it runs: the outcome is unknown (R-COMMIT-7).
    fn step_down_answer(&self) -> CommitOutcome {
        if self.has(Mutant::DefiniteAtStepDown) {
            CommitOutcome::DefiniteError(DefiniteReason::NoPrimary)
        } else {
            CommitOutcome::Indefinite
        }
    }

    /// The initial state: the first replica is primary (holding the lease where a manager
    /// governs), the others are secondaries not yet connected, every log is empty.
    pub fn initial_state(&self) -> State {
        let replicas = (0..self.replicas)
            .map(|r| Replica {
                class: (0..=r)
                    .find(|&q| self.config.symmetry_class(q) == self.config.symmetry_class(r))
                    .unwrap_or(r),
                up: true,
                role: if r == 0 {
                    Role::Primary
                } else {
                    Role::Secondary
                },
                missed_forced_failover: false,
                session: false,
                timed_out: false,
                removed: false,
                disk_stalled: false,
            })
            .collect();
        State {
            replicas,
            dbs: (0..usize::from(self.replicas) * usize::from(self.databases))
                .map(|_| Db::default())
                .collect(),
            databases: self.databases,
            net: Net::default(),
            manager: Manager {
                quorum: true,
                lease: self.has_manager().then_some(0),
                primary: 0,
                epoch: 1,
                automatic_failovers: 0,
            },
            required_synchronized: u8::try_from(
                self.config.ag.required_synchronized_secondaries_to_commit,
            )
            .unwrap_or(u8::MAX),
            txns: SmallVec::new(),
            spent: Spent::default(),
            failovers: SmallVec::new(),
            active: None,
        }
    }

    // ------------------------------------------------------------------ derived predicates

    /// R-COMMIT-1: a pair commits synchronously only if both are SYNCHRONOUS_COMMIT.
    pub fn synchronous_pair(&self, a: Rid, b: Rid) -> bool {
        self.config.is_synchronous(a) && self.config.is_synchronous(b)
    }

    /// Whether a replica can reach the manager's majority.
    pub fn reaches_manager(&self, s: &State, r: Rid) -> bool {
        self.has_manager() && s.manager.quorum && !s.net.manager_cut(r)
    }

    /// Whether a database is suspended on a replica.
    fn suspended(s: &State, r: Rid, db: Did) -> bool {
        s.db(r, db).suspended.is_some()
    }

    /// Whether a replica holds a joined copy of an availability database (R-DB-2): the
    /// database is in the group, the replica was not removed, and its copy is not RESTORING.
    pub fn joined(s: &State, r: Rid, db: Did) -> bool {
        s.group(db).in_group && !s.replicas[usize::from(r)].removed && !s.db(r, db).restoring
    }

    /// Whether a database on a replica can move data: joined, its page readable, not
    /// suspended or reverting.
    fn healthy_copy(s: &State, r: Rid, db: Did) -> bool {
        let d = s.db(r, db);
        Self::joined(s, r, db) && d.page == Page::Healthy
    }

    /// Whether a replica could become primary: up, in the group, and every availability
    /// database joined with readable pages (the spec does not fail over to an unrepaired page)
    /// and none SUSPECT.
    fn promotable(s: &State, r: Rid) -> bool {
        let rep = &s.replicas[usize::from(r)];
        rep.up
            && !rep.removed
            && !rep.disk_stalled
            && !Self::has_suspect_database(s, r)
            && (0..s.databases).all(|db| !s.group(db).in_group || Self::healthy_copy(s, r, db))
    }

    /// Whether one of a replica's availability databases is SUSPECT (its log was found
    /// damaged): such a replica never takes the PRIMARY role, by any failover, by the manager
    /// bringing the group back online on it, or by restarting in a persisted PRIMARY role
    /// (R-COMMIT-6).
    pub fn has_suspect_database(s: &State, r: Rid) -> bool {
        (0..s.databases).any(|db| s.group(db).in_group && s.db(r, db).suspect.is_some())
    }

    /// The commit participants' count that R-COMMIT-5 compares with k: secondaries recorded
    /// SYNCHRONIZED for this database.
    pub fn synchronized_count(&self, s: &State, primary: Rid, db: Did) -> u8 {
        let timed_out_excluded = self.has(Mutant::TimedOutSecondaryStaysSynchronized);
        s.replicas
            .iter()
            .enumerate()
            .filter(|&(r, rep)| {
                r != usize::from(primary)
                    && s.db(r as Rid, db).failover_ready
                    && (!timed_out_excluded || rep.session)
            })
            .count() as u8
    }

    /// Whether the primary may ship the next block of a database to a secondary.
    fn ship_ready(&self, s: &State, p: Rid, to: Rid, db: Did) -> bool {
        let rep = &s.replicas[usize::from(to)];
        let d = s.db(to, db);
        to != p
            && Self::healthy_copy(s, to, db)
            && rep.up
            && rep.role == Role::Secondary
            && rep.session
            && s.net.linked(p, to)
            && d.suspended.is_none()
            && !Self::suspended(s, p, db)
            && !d.reverting
            && usize::from(d.sent) < s.history(db).len()
    }

    /// Whether a replica's log of a database has records that are not in the current history.
    fn diverges(s: &State, r: Rid, db: Did) -> bool {
        let log = &s.db(r, db).log;
        common_prefix(log, s.history(db)) < log.len()
    }

    /// Whether every availability database of a replica is failover-ready.
    fn ready_everywhere(s: &State, r: Rid) -> bool {
        (0..s.databases).all(|db| !s.group(db).in_group || s.db(r, db).failover_ready)
    }

    fn budget_left(used: u8, bound: u8) -> bool {
        used < bound
    }

    fn link_cut(s: &State, a: Node, b: Node) -> bool {
        match (a, b) {
            (Node::Replica(x), Node::Replica(y)) => !s.net.linked(x, y),
            (Node::Replica(x), Node::Manager) | (Node::Manager, Node::Replica(x)) => {
                s.net.manager_cut(x)
            }
            (Node::Manager, Node::Manager) => false,
        }
    }

    // ------------------------------------------------------------------ guards

    /// Whether an action can be taken in a state (its guard): a disruption needs an event
    /// left in the behaviour's budget, then its family's guard decides.
    pub fn enabled(&self, s: &State, action: &Action) -> bool {
        let kind = action.kind();
        if kind.is_disruption() && !Self::budget_left(s.spent.events, self.budgets.events) {
            return false;
        }
        match Family::of(kind) {
            Family::Commit => self.commit_guard(s, action),
            Family::Failover => self.failover_guard(s, action),
            Family::SyncCommand => self.sync_command_guard(s, action),
            Family::ServerFault => self.server_fault_guard(s, action),
            Family::NetworkFault => self.network_fault_guard(s, action),
            Family::Replication => self.replication_guard(s, action),
            Family::Session => self.session_guard(s, action),
            Family::Lease => self.lease_guard(s, action),
            Family::Membership => self.membership_guard(s, action),
            Family::Joining => self.joining_guard(s, action),
            Family::ReadOrBackup => self.read_or_backup_guard(s, action),
            Family::Page => self.page_guard(s, action),
        }
    }

    /// Guards of the commit path: a client commits within the budget of transactions; the
    /// primary acknowledges (R-COMMIT-2/3/5, [`AgModel::ack_enabled`]).
    fn commit_guard(&self, s: &State, action: &Action) -> bool {
        match *action {
            Action::ClientCommit { .. } => s.txns.len() < usize::from(self.budgets.transactions),
            Action::AckCommit { txn } => self.ack_enabled(s, txn),
            _ => unreachable!("Family::of sends only commit-path actions here"),
        }
    }

    /// Guards of the failovers (R-FAIL-2/3/4) and of the demotion by hand (R-QUORUM-5).
    fn failover_guard(&self, s: &State, action: &Action) -> bool {
        let b = &self.budgets;
        match *action {
            Action::PlannedFailover { target } => {
                let Some(p) = s.serving_primary() else {
                    return false;
                };
                let t = s.replica(target);
                self.has_manager()
                    && Self::budget_left(s.spent.failovers, b.failovers)
                    && target != p
                    && Self::promotable(s, target)
                    && t.role == Role::Secondary
                    && t.session
                    && self.synchronous_pair(p, target)
                    && (Self::ready_everywhere(s, target)
                        || self.has(Mutant::PlannedFailoverToUnsynchronized))
                    && self.reaches_manager(s, target)
            }
            Action::ForcedFailover { target } => {
                Self::budget_left(s.spent.forced_failovers, b.forced_failovers)
                    && Self::budget_left(s.spent.failovers, b.failovers)
                    && target != s.manager.primary
                    && Self::promotable(s, target)
                    && self.forced_failover_fenced(s, target)
            }
            Action::AutomaticFailover { target } => {
                let t = s.replica(target);
                self.has_manager()
                    && s.manager.quorum
                    && s.manager.lease.is_none()
                    && Self::budget_left(s.spent.failovers, b.failovers)
                    && u32::from(s.manager.automatic_failovers)
                        < self.config.ag.failover_threshold()
                    && target != s.manager.primary
                    && self.config.is_automatic(s.manager.primary)
                    && self.config.is_automatic(target)
                    && Self::promotable(s, target)
                    && !s.net.manager_cut(target)
                    && t.role != Role::Primary
                    && (Self::ready_everywhere(s, target)
                        || self.has(Mutant::AutomaticFailoverToSynchronizing))
            }
            Action::DemoteToSecondary { replica } => {
                let r = s.replica(replica);
                !self.has_manager() && r.up && r.role == Role::Primary
            }
            _ => unreachable!("Family::of sends only failovers here"),
        }
    }

    /// Whether a forced failover to `target` cannot leave two primaries: where a manager
    /// governs, the target reaches it and the lease is free or its holder reachable (and so
    /// demoted); without one, no other replica is in the PRIMARY role.
    fn forced_failover_fenced(&self, s: &State, target: Rid) -> bool {
        let t = s.replica(target);
        if self.has_manager() {
            self.reaches_manager(s, target)
                && t.role != Role::Primary
                && match s.manager.lease {
                    None => true,
                    Some(h) => s.replica(h).up && !s.net.manager_cut(h),
                }
        } else {
            t.role == Role::Secondary
                && s.replicas
                    .iter()
                    .enumerate()
                    .all(|(r, x)| r == usize::from(target) || x.role != Role::Primary)
        }
    }

    /// Guards of the operator's commands on data movement: SUSPEND and RESUME (R-SYNC-7), and
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT (R-COMMIT-5).
    fn sync_command_guard(&self, s: &State, action: &Action) -> bool {
        let b = &self.budgets;
        match *action {
            Action::Suspend { replica, db } => {
                let r = s.replica(replica);
                Self::budget_left(s.spent.suspends, b.suspends)
                    && r.up
                    && r.role != Role::Resolving
                    && Self::joined(s, replica, db)
                    && !Self::suspended(s, replica, db)
            }
            Action::Resume { replica, db } => {
                let r = s.replica(replica);
                r.up && Self::suspended(s, replica, db)
                    && (s.serving_primary() == Some(replica)
                        || (r.role == Role::Secondary && r.session))
            }
            Action::SetRequiredSynchronized { k } => {
                Self::budget_left(s.spent.config_changes, b.config_changes)
                    && s.serving_primary().is_some()
                    && k != s.required_synchronized
            }
            _ => unreachable!("Family::of sends only data-movement commands here"),
        }
    }

    /// Guards of the faults of a server: crash, restart, stalled log disk, and a health
    /// failure the flexible failover policy weighs (R-FAIL-7).
    fn server_fault_guard(&self, s: &State, action: &Action) -> bool {
        let b = &self.budgets;
        match *action {
            Action::Crash { replica } => {
                Self::budget_left(s.spent.crashes, b.crashes) && s.replica(replica).up
            }
            Action::Restart { replica } => !s.replica(replica).up,
            Action::DiskStall { replica } => {
                let r = s.replica(replica);
                Self::budget_left(s.spent.crashes, b.crashes)
                    && r.up
                    && r.role == Role::Secondary
                    && !r.disk_stalled
            }
            Action::HealthFault { replica, condition } => {
                self.has_manager()
                    && Self::budget_left(s.spent.crashes, b.crashes)
                    && s.serving_primary() == Some(replica)
                    && self.reaches_manager(s, replica)
                    && condition.level() <= self.config.ag.failure_condition_level
            }
            // Bit rot on the disk of a server that is down, in a record with a valid one after
            // it: a torn write can only be the last record, so recovery can tell the two apart.
            Action::CorruptLog { replica, db, lsn } => {
                let r = s.replica(replica);
                Self::budget_left(s.spent.log_corruptions, b.log_corruptions)
                    && !r.up
                    && Self::joined(s, replica, db)
                    && lsn >= 1
                    && lsn < s.db(replica, db).hardened
            }
            _ => unreachable!("Family::of sends only server faults here"),
        }
    }

    /// Guards of the faults of the network: links, the manager's quorum, a lost log block.
    fn network_fault_guard(&self, s: &State, action: &Action) -> bool {
        let b = &self.budgets;
        match *action {
            Action::Partition { a, b: other } => {
                Self::budget_left(s.spent.network_faults, b.network_faults)
                    && !Self::link_cut(s, a, other)
            }
            Action::Heal { a, b: other } => Self::link_cut(s, a, other),
            Action::LoseQuorum => {
                self.has_manager()
                    && s.manager.quorum
                    && Self::budget_left(s.spent.network_faults, b.network_faults)
            }
            Action::RegainQuorum => self.has_manager() && !s.manager.quorum,
            // Armed on the primary, whatever the state of the secondary (as a real fault
            // injector does); it takes effect at the next record shipped to it.
            Action::LoseLogBlock { to, db } => {
                Self::budget_left(s.spent.network_faults, b.network_faults)
                    && s.serving_primary().is_some_and(|p| p != to)
                    && !s.db(to, db).lose_next
            }
            _ => unreachable!("Family::of sends only network faults here"),
        }
    }

    /// Guards of the log's way to a secondary: ship, harden, redo (R-SYNC-1/2), and the
    /// revert to the fork point (R-FAIL-4/6).
    fn replication_guard(&self, s: &State, action: &Action) -> bool {
        let primary = s.serving_primary();
        match *action {
            Action::ShipLog { to, db } => primary.is_some_and(|p| self.ship_ready(s, p, to, db)),
            Action::HardenLog { replica, db } => {
                let r = s.replica(replica);
                let d = s.db(replica, db);
                r.up && !r.disk_stalled && usize::from(d.hardened) < d.log.len()
            }
            Action::RedoLog { replica, db } => {
                let r = s.replica(replica);
                let d = s.db(replica, db);
                let limit = if self.has(Mutant::RedoBeforeHarden) {
                    d.log.len()
                } else {
                    usize::from(d.hardened)
                };
                // A stalled log disk stops hardening, not redo: redo reads the log it has
                // and writes data pages (it only ever has hardened log to redo then).
                r.up && r.role != Role::Primary
                    && usize::from(d.redone) < limit
                    && !d.reverting
                    && d.suspended.is_none()
                    && !d.restoring
                    && d.page == Page::Healthy
            }
            Action::Revert { replica, db } => {
                let r = s.replica(replica);
                primary.is_some_and(|p| {
                    r.up && r.session
                        && (!r.disk_stalled || Self::diverges(s, replica, db))
                        && s.db(replica, db).reverting
                        && Self::joined(s, replica, db)
                        && s.net.linked(p, replica)
                })
            }
            _ => unreachable!("Family::of sends only replication steps here"),
        }
    }

    /// Guards of the primary's sessions with its secondaries (R-SYNC-6, R-HEALTH-1) and of
    /// what it records of them in the manager: SYNCHRONIZED or not (R-SYNC-6, R-COMMIT-4).
    fn session_guard(&self, s: &State, action: &Action) -> bool {
        let Some(p) = s.serving_primary() else {
            return false;
        };
        match *action {
            Action::Connect { replica } => {
                let r = s.replica(replica);
                p != replica
                    && r.up
                    && !r.removed
                    && r.role == Role::Secondary
                    && !r.session
                    && s.net.linked(p, replica)
            }
            Action::SessionTimeout { replica } => {
                s.replica(replica).session && !s.net.linked(p, replica)
            }
            Action::MarkSynchronized { replica, db } => {
                let d = s.db(replica, db);
                s.replica(replica).session
                    && Self::healthy_copy(s, replica, db)
                    && s.net.linked(p, replica)
                    && !d.failover_ready
                    && (self.synchronous_pair(p, replica)
                        || self.has(Mutant::AsyncSecondarySynchronized))
                    && d.suspended.is_none()
                    && !Self::suspended(s, p, db)
                    && !d.reverting
                    // By position, as a primary knows it: the copy reports hardening up to the
                    // history's end. (A moving copy's log is a prefix of the history, R-SYNC-5,
                    // so this is its content too, unless a planted bug broke that.)
                    && usize::from(d.hardened) >= s.history(db).len()
                    && (!self.has_manager() || self.reaches_manager(s, p))
            }
            Action::DropFromSynchronized { replica, db } => {
                let d = s.db(replica, db);
                let disconnected = !s.replica(replica).session
                    && !self.has(Mutant::TimedOutSecondaryStaysSynchronized);
                d.failover_ready
                    && (disconnected
                        || d.suspended.is_some()
                        || Self::suspended(s, p, db)
                        || !Self::healthy_copy(s, replica, db))
                    && (!self.has_manager() || self.reaches_manager(s, p))
            }
            _ => unreachable!("Family::of sends only session steps here"),
        }
    }

    /// Guards of the lease and of the manager's view of the roles (R-QUORUM-2/3, R-FAIL-6).
    fn lease_guard(&self, s: &State, action: &Action) -> bool {
        match *action {
            Action::LeaseExpiry { replica } => {
                let r = s.replica(replica);
                self.has_manager()
                    && !self.has(Mutant::CommitAfterLeaseExpiry)
                    && r.up
                    && r.role == Role::Primary
                    && !self.reaches_manager(s, replica)
            }
            Action::ManagerLeaseExpiry => {
                let Some(h) = s.manager.lease else {
                    return false;
                };
                let holder = s.replica(h);
                let committing = holder.up && holder.role == Role::Primary;
                let renewing = committing && !s.net.manager_cut(h);
                let still_valid = if self.has(Mutant::CommitAfterLeaseExpiry) {
                    renewing
                } else {
                    committing
                };
                self.has_manager() && s.manager.quorum && !still_valid
            }
            Action::RestorePrimary { replica } => {
                let r = s.replica(replica);
                self.has_manager()
                    && s.manager.quorum
                    && s.manager.lease.is_none()
                    && replica == s.manager.primary
                    && r.up
                    && r.role == Role::Resolving
                    && !s.net.manager_cut(replica)
                    && !Self::has_suspect_database(s, replica)
            }
            Action::LoseManager { replica } => {
                let r = s.replica(replica);
                self.has_manager()
                    && r.up
                    && r.role == Role::Secondary
                    && !self.reaches_manager(s, replica)
            }
            Action::ResolveToSecondary { replica } => {
                let r = s.replica(replica);
                self.has_manager()
                    && r.up
                    && r.role == Role::Resolving
                    && replica != s.manager.primary
                    && self.reaches_manager(s, replica)
            }
            _ => unreachable!("Family::of sends only lease and manager steps here"),
        }
    }

    /// Guards of the group's membership: ADD DATABASE (R-DB-1), REMOVE DATABASE and REMOVE
    /// REPLICA (R-DB-4), each spending a database change.
    fn membership_guard(&self, s: &State, action: &Action) -> bool {
        if !Self::budget_left(s.spent.database_changes, self.budgets.database_changes) {
            return false;
        }
        let primary = s.serving_primary();
        match *action {
            Action::AddDatabase { db } => {
                !s.group(db).in_group
                    && primary.is_some_and(|p| {
                        let d = s.db(p, db);
                        !d.restoring && d.page == Page::Healthy
                    })
            }
            Action::RemoveDatabase { db } => primary.is_some() && s.group(db).in_group,
            Action::RemoveReplica { replica } => primary.is_some() && !s.replica(replica).removed,
            _ => unreachable!("Family::of sends only membership changes here"),
        }
    }

    /// Guards of how a secondary's copy of a database comes to be joined: RESTORE WITH
    /// NORECOVERY, JOIN, automatic seeding (R-DB-2/3).
    fn joining_guard(&self, s: &State, action: &Action) -> bool {
        match *action {
            Action::RestoreDatabase { replica, db } => {
                let r = s.replica(replica);
                Self::budget_left(s.spent.database_changes, self.budgets.database_changes)
                    && r.up
                    && !r.removed
                    && (Self::joined(s, replica, db)
                        || s.serving_primary().is_some_and(|p| p != replica))
            }
            Action::JoinDatabase { replica, db } => {
                let r = s.replica(replica);
                r.up && !r.removed
                    && r.role == Role::Secondary
                    && s.group(db).in_group
                    && s.db(replica, db).restoring
            }
            Action::SeedDatabase { replica, db } => {
                let r = s.replica(replica);
                s.serving_primary().is_some_and(|p| {
                    r.session
                        && s.net.linked(p, replica)
                        && !r.removed
                        && self.config.seeds_automatically(replica)
                        && s.group(db).in_group
                        && s.db(replica, db).restoring
                })
            }
            _ => unreachable!("Family::of sends only joining steps here"),
        }
    }

    /// Guards of reads through the listener (R-READ) and backups (R-BACKUP): within their
    /// budgets, whatever the outcome (the decision says who serves or refuses).
    fn read_or_backup_guard(&self, s: &State, action: &Action) -> bool {
        let b = &self.budgets;
        match *action {
            Action::ClientRead { .. } => Self::budget_left(s.spent.reads, b.reads),
            Action::Backup { replica, db, .. } => {
                Self::budget_left(s.spent.backups, b.backups)
                    && s.replica(replica).up
                    && Self::joined(s, replica, db)
            }
            _ => unreachable!("Family::of sends only reads and backups here"),
        }
    }

    /// Guards of a corrupt page and its automatic repair (R-PAGE-1/2).
    fn page_guard(&self, s: &State, action: &Action) -> bool {
        match *action {
            Action::CorruptPage { replica, db } => {
                let r = s.replica(replica);
                Self::budget_left(s.spent.page_corruptions, self.budgets.page_corruptions)
                    && r.up
                    && r.role != Role::Resolving
                    && Self::healthy_copy(s, replica, db)
            }
            Action::RepairFromPrimary { replica, db } => {
                let r = s.replica(replica);
                let d = s.db(replica, db);
                s.serving_primary().is_some_and(|p| {
                    matches!(d.page, Page::Corrupt { .. })
                        && p != replica
                        && r.up
                        && r.session
                        && s.net.linked(p, replica)
                        && Self::joined(s, replica, db)
                        && d.suspended.is_none()
                        && !d.reverting
                })
            }
            Action::RepairFromSecondary { db, from } => {
                let Some(p) = s.serving_primary() else {
                    return false;
                };
                let Page::Corrupt { needed } = s.db(p, db).page else {
                    return false;
                };
                let f = s.replica(from);
                let d = s.db(from, db);
                from != p
                    && f.up
                    && f.session
                    && s.net.linked(p, from)
                    && Self::healthy_copy(s, from, db)
                    && (self.has(Mutant::RepairFromSynchronizingSecondary)
                        || (d.failover_ready && d.redone >= needed))
            }
            _ => unreachable!("Family::of sends only page steps here"),
        }
    }

    /// A necessary condition for any action of a kind to be enabled, cheap to test once per
    /// state: budgets left, a serving primary, something to undo. `actions` skips a kind when
    /// this is false (a test checks, over every reachable state of small configurations, that
    /// no action of it was enabled then).
    fn kind_possible(&self, s: &State, kind: ActionKind, primary: Option<Rid>) -> bool {
        use ActionKind::*;
        let b = &self.budgets;
        let spent = &s.spent;
        if kind.is_disruption() && spent.events >= b.events {
            return false;
        }
        match kind {
            ClientCommit => s.txns.len() < usize::from(b.transactions),
            PlannedFailover => primary.is_some() && spent.failovers < b.failovers,
            ForcedFailover => {
                spent.forced_failovers < b.forced_failovers && spent.failovers < b.failovers
            }
            Suspend => spent.suspends < b.suspends,
            SetRequiredSynchronized => primary.is_some() && spent.config_changes < b.config_changes,
            Crash | DiskStall => spent.crashes < b.crashes,
            CorruptLog => {
                spent.log_corruptions < b.log_corruptions && s.replicas.iter().any(|r| !r.up)
            }
            HealthFault => primary.is_some() && spent.crashes < b.crashes,
            Restart => s.replicas.iter().any(|r| !r.up),
            Partition | LoseQuorum => spent.network_faults < b.network_faults,
            LoseLogBlock => primary.is_some() && spent.network_faults < b.network_faults,
            Heal => s.net.replica_cuts != 0 || s.net.manager_cuts != 0,
            RegainQuorum => !s.manager.quorum,
            AckCommit => {
                primary.is_some() && s.txns.iter().any(|t| t.outcome == CommitOutcome::Pending)
            }
            ShipLog | Connect | SessionTimeout | MarkSynchronized | DropFromSynchronized
            | Revert => primary.is_some(),
            ManagerLeaseExpiry => s.manager.lease.is_some(),
            AutomaticFailover | RestorePrimary => s.manager.lease.is_none(),
            ClientRead => spent.reads < b.reads,
            Backup => spent.backups < b.backups,
            AddDatabase | RemoveDatabase | RemoveReplica => {
                primary.is_some() && spent.database_changes < b.database_changes
            }
            RestoreDatabase => spent.database_changes < b.database_changes,
            JoinDatabase | SeedDatabase => s.dbs.iter().any(|d| d.restoring),
            CorruptPage => spent.page_corruptions < b.page_corruptions,
            RepairFromPrimary | RepairFromSecondary => {
                primary.is_some() && s.dbs.iter().any(|d| d.page != Page::Healthy)
            }
            DemoteToSecondary | Resume | HardenLog | RedoLog | LeaseExpiry | LoseManager
            | ResolveToSecondary => true,
        }
    }

    /// R-COMMIT-2/3/5: the earliest pending commit of its database, hardened by every commit
    /// participant, with at least k SYNCHRONIZED secondaries.
    fn ack_enabled(&self, s: &State, txn: u8) -> bool {
        let Some(t) = s.txns.get(usize::from(txn).wrapping_sub(1)) else {
            return false;
        };
        let Some(p) = s.serving_primary() else {
            return false;
        };
        if t.outcome != CommitOutcome::Pending {
            return false;
        }
        let earliest = s
            .txns
            .iter()
            .position(|x| x.db == t.db && x.outcome == CommitOutcome::Pending);
        if earliest != Some(usize::from(txn) - 1) {
            return false;
        }
        let Some(at) = s.db(p, t.db).position_of(txn) else {
            return false;
        };
        let early_ack = self.has(Mutant::AckBeforeSecondaryHardens);
        let timed_out_excluded = self.has(Mutant::TimedOutSecondaryStaysSynchronized);
        let async_waited = self.has(Mutant::AsyncSecondaryParticipant);
        let primary_suspended = s.db(p, t.db).suspended.is_some();
        let participants_hardened = s.replicas.iter().enumerate().all(|(r, rep)| {
            let d = s.db(r as Rid, t.db);
            let moving_async = rep.session
                && !self.synchronous_pair(p, r as Rid)
                && d.suspended.is_none()
                && !d.reverting
                && !primary_suspended
                && Self::joined(s, r as Rid, t.db);
            let participant = r != usize::from(p)
                && ((d.failover_ready && (!timed_out_excluded || rep.session))
                    || d.lingering
                    || (async_waited && moving_async));
            let have = if early_ack {
                d.log.len()
            } else {
                usize::from(d.hardened)
            };
            !participant || have > at
        });
        participants_hardened
            && (self.has(Mutant::IgnoreRequiredSynchronized)
                || self.synchronized_count(s, p, t.db) >= s.required_synchronized)
    }

    // ------------------------------------------------------------------ effects

    /// The state after an action: a disruption spends one of the behaviour's events, then
    /// its family's effect changes the rest.
    ///
    /// # Panics
    ///
    /// If the action is not [`enabled`](Self::enabled) in the state; `next_state` checks first.
    pub fn apply(&self, s: &State, action: &Action) -> State {
        let kind = action.kind();
        let mut n = s.clone();
        if kind.is_disruption() {
            n.spent.events += 1;
        }
        match Family::of(kind) {
            Family::Commit => self.commit_effect(&mut n, action),
            Family::Failover => self.failover_effect(&mut n, action),
            Family::SyncCommand => self.sync_command_effect(s, &mut n, action),
            Family::ServerFault => self.server_fault_effect(&mut n, action),
            Family::NetworkFault => self.network_fault_effect(&mut n, action),
            Family::Replication => self.replication_effect(s, &mut n, action),
            Family::Session => self.session_effect(s, &mut n, action),
            Family::Lease => self.lease_effect(&mut n, action),
            Family::Membership => self.membership_effect(s, &mut n, action),
            Family::Joining => self.joining_effect(s, &mut n, action),
            Family::ReadOrBackup => self.read_or_backup_effect(s, &mut n, action),
            Family::Page => self.page_effect(s, &mut n, action),
        }
        n
    }

    /// Effects of the commit path: a client's commit is logged or refused; the primary
    /// acknowledges one, recording the k it was acknowledged under.
    fn commit_effect(&self, n: &mut State, action: &Action) {
        match *action {
            Action::ClientCommit { db } => self.client_commit(n, db),
            Action::AckCommit { txn } => {
                let k = n.required_synchronized;
                let t = &mut n.txns[usize::from(txn) - 1];
                t.outcome = CommitOutcome::Acknowledged;
                t.required_at_ack = k;
            }
            _ => unreachable!("Family::of sends only commit-path actions here"),
        }
    }

    /// Effects of the failovers (see [`AgModel::promote`]) and of the demotion by hand.
    fn failover_effect(&self, n: &mut State, action: &Action) {
        match *action {
            Action::PlannedFailover { target } => self.promote(n, target, FailoverKind::Planned),
            Action::ForcedFailover { target } => self.promote(n, target, FailoverKind::Forced),
            Action::AutomaticFailover { target } => {
                n.manager.automatic_failovers += 1;
                self.promote(n, target, FailoverKind::Automatic);
            }
            Action::DemoteToSecondary { replica } => {
                demote(n, replica, Role::Secondary, self.step_down_answer())
            }
            _ => unreachable!("Family::of sends only failovers here"),
        }
    }

    /// Effects of the operator's commands on data movement: SUSPEND, RESUME (which starts
    /// a diverged secondary's revert and restarts sending from each secondary's end of log),
    /// and a new k.
    fn sync_command_effect(&self, s: &State, n: &mut State, action: &Action) {
        match *action {
            Action::Suspend { replica, db } => {
                n.spent.suspends += 1;
                n.db_mut(replica, db).suspended = Some(hadr_types::SuspendReason::User);
            }
            Action::Resume { replica, db } => {
                let is_secondary = n.replicas[usize::from(replica)].role == Role::Secondary;
                let partner_resumed_in_place = self.has(Mutant::ResumeWithoutRevert)
                    && s.db(replica, db).suspended == Some(hadr_types::SuspendReason::Partner);
                let revert = is_secondary
                    && Self::joined(s, replica, db)
                    && Self::diverges(s, replica, db)
                    && !partner_resumed_in_place;
                let d = n.db_mut(replica, db);
                d.suspended = None;
                d.partner_hold = false;
                d.reverting = revert;
                // Data movement starts again from each secondary's end of log (its copy
                // reports it, as at a handshake): a record lost before is sent again.
                if is_secondary {
                    d.sent = d.log.len() as u8;
                } else if s.serving_primary() == Some(replica) {
                    for r in (0..self.replicas).filter(|&r| r != replica) {
                        let d = n.db_mut(r, db);
                        d.sent = d.log.len() as u8;
                    }
                }
            }
            Action::SetRequiredSynchronized { k } => {
                n.spent.config_changes += 1;
                n.required_synchronized = k;
            }
            _ => unreachable!("Family::of sends only data-movement commands here"),
        }
    }

    /// Effects of the faults of a server (see [`AgModel::crash`]); a health failure takes
    /// the group offline on the primary and frees the lease; a damaged log record is found by
    /// recovery (see [`AgModel::recover_damaged_log`]).
    fn server_fault_effect(&self, n: &mut State, action: &Action) {
        match *action {
            Action::Crash { replica } => self.crash(n, replica),
            // A replica that persisted the PRIMARY role (CLUSTER_TYPE NONE) and comes back with
            // a SUSPECT database restarts as a SECONDARY: it must not serve, nor make the other
            // replicas revert to its short log (R-COMMIT-6).
            Action::Restart { replica } => {
                let suspect = Self::has_suspect_database(n, replica);
                let r = &mut n.replicas[usize::from(replica)];
                r.up = true;
                if suspect && r.role == Role::Primary {
                    r.role = Role::Secondary;
                }
            }
            Action::CorruptLog { replica, db, lsn } => {
                n.spent.log_corruptions += 1;
                self.recover_damaged_log(n.db_mut(replica, db), lsn);
            }
            Action::DiskStall { replica } => {
                n.spent.crashes += 1;
                n.replicas[usize::from(replica)].disk_stalled = true;
            }
            Action::HealthFault { replica, .. } => {
                n.spent.crashes += 1;
                demote(n, replica, Role::Resolving, self.step_down_answer());
                n.manager.lease = None;
            }
            _ => unreachable!("Family::of sends only server faults here"),
        }
    }

    /// Effects of the faults of the network: a link cut or restored, the manager's quorum lost
    /// or regained, a log block armed to be lost.
    fn network_fault_effect(&self, n: &mut State, action: &Action) {
        match *action {
            Action::Partition { a, b } => {
                n.spent.network_faults += 1;
                set_cut(&mut n.net, a, b, true);
            }
            Action::Heal { a, b } => set_cut(&mut n.net, a, b, false),
            Action::LoseQuorum => {
                n.spent.network_faults += 1;
                n.manager.quorum = false;
            }
            Action::RegainQuorum => n.manager.quorum = true,
            Action::LoseLogBlock { to, db } => {
                n.spent.network_faults += 1;
                n.db_mut(to, db).lose_next = true;
            }
            _ => unreachable!("Family::of sends only network faults here"),
        }
    }

    /// Effects of the log's way to a secondary: ship (a lost block, a refused gap), harden,
    /// redo, and the revert to the fork point.
    fn replication_effect(&self, s: &State, n: &mut State, action: &Action) {
        match *action {
            Action::ShipLog { to, db } => {
                let history = s.history(db);
                let accept_gap = self.has(Mutant::AcceptLogGap);
                let d = n.db_mut(to, db);
                if d.lose_next {
                    // Lost in transit: the secondary sees nothing; the next record it gets
                    // leaves a gap (R-SYNC-1), noticed only then.
                    d.lose_next = false;
                    d.sent += 1;
                } else if d.log.len() == usize::from(d.sent) || accept_gap {
                    d.log.push(history[usize::from(d.sent)]);
                    d.sent += 1;
                } else {
                    // A gap: the block does not start at the end of the secondary's log. The
                    // secondary refuses it and asks for the log from its end (R-SYNC-1).
                    d.sent = d.log.len() as u8;
                }
            }
            Action::HardenLog { replica, db } => {
                let d = n.db_mut(replica, db);
                d.hardened = d.log.len() as u8;
                bring_back_when_caught_up(d);
            }
            Action::RedoLog { replica, db } => {
                let d = n.db_mut(replica, db);
                d.redone = if self.has(Mutant::RedoBeforeHarden) {
                    d.log.len() as u8
                } else {
                    d.hardened
                };
            }
            Action::Revert { replica, db } => revert(s, n, replica, db),
            _ => unreachable!("Family::of sends only replication steps here"),
        }
    }

    /// Effects of the primary's sessions (see [`AgModel::connect`]) and of what it records
    /// of its secondaries in the manager.
    fn session_effect(&self, s: &State, n: &mut State, action: &Action) {
        match *action {
            Action::Connect { replica } => self.connect(s, n, replica),
            Action::SessionTimeout { replica } => {
                close_session(n, replica);
                n.replicas[usize::from(replica)].timed_out = true;
            }
            Action::MarkSynchronized { replica, db } => {
                let d = n.db_mut(replica, db);
                d.failover_ready = true;
                bring_back(d);
            }
            Action::DropFromSynchronized { replica, db } => {
                let lingers = self.has(Mutant::CountDisconnectedParticipant)
                    && !s.replicas[usize::from(replica)].session;
                let d = n.db_mut(replica, db);
                d.failover_ready = false;
                d.lingering = lingers;
            }
            _ => unreachable!("Family::of sends only session steps here"),
        }
    }

    /// Effects of the lease's end on either side, and of the manager's view of the roles.
    fn lease_effect(&self, n: &mut State, action: &Action) {
        match *action {
            Action::LeaseExpiry { replica } => {
                demote(n, replica, Role::Resolving, self.step_down_answer())
            }
            Action::ManagerLeaseExpiry => n.manager.lease = None,
            Action::RestorePrimary { replica } => {
                n.replicas[usize::from(replica)].role = Role::Primary;
                n.manager.lease = Some(replica);
            }
            Action::LoseManager { replica } => {
                n.replicas[usize::from(replica)].role = Role::Resolving;
                close_session(n, replica);
            }
            Action::ResolveToSecondary { replica } => {
                n.replicas[usize::from(replica)].role = Role::Secondary;
            }
            _ => unreachable!("Family::of sends only lease and manager steps here"),
        }
    }

    /// Effects of the group's membership: a database joins the group, or leaves it (RESTORING
    /// on the secondaries, its pending commits indefinite); a replica leaves it, unless it is
    /// the primary (refused, R-DB-4).
    fn membership_effect(&self, s: &State, n: &mut State, action: &Action) {
        n.spent.database_changes += 1;
        match *action {
            Action::AddDatabase { db } => n.group_mut(db).in_group = true,
            Action::RemoveDatabase { db } => {
                let primary = s.serving_primary();
                let g = n.group_mut(db);
                g.in_group = false;
                g.kept_online_by = primary;
                for r in (0..self.replicas).filter(|&r| Some(r) != primary) {
                    leave_group(n.db_mut(r, db));
                }
                for t in n.txns.iter_mut().filter(|t| t.db == db) {
                    if t.outcome == CommitOutcome::Pending {
                        t.outcome = CommitOutcome::Indefinite;
                    }
                }
            }
            Action::RemoveReplica { replica } => {
                if s.serving_primary() == Some(replica) {
                    n.active_mut().seen |= seen::REMOVE_PRIMARY_REFUSED;
                } else {
                    close_session(n, replica);
                    n.replicas[usize::from(replica)].removed = true;
                    for d in n.dbs_of_mut(replica) {
                        leave_group(d);
                    }
                }
            }
            _ => unreachable!("Family::of sends only membership changes here"),
        }
    }

    /// Effects of how a copy comes to be joined: RESTORE copies the primary's log (or is
    /// refused, R-DB-3); JOIN starts data movement (and a revert if the copy diverges);
    /// automatic seeding copies the history and joins at once.
    fn joining_effect(&self, s: &State, n: &mut State, action: &Action) {
        match *action {
            Action::RestoreDatabase { replica, db } => {
                n.spent.database_changes += 1;
                let to_joined = Self::joined(s, replica, db);
                match self.restore_source(s, replica, db) {
                    Some(p) => {
                        let log = s.db(p, db).log;
                        let d = n.db_mut(replica, db);
                        leave_group(d);
                        d.log = log;
                        d.hardened = log.len() as u8;
                        d.redone = d.hardened;
                        bring_back(d);
                        if to_joined {
                            n.active_mut().seen |= seen::RESTORED_JOINED_DATABASE;
                        }
                    }
                    None => n.active_mut().seen |= seen::RESTORE_REFUSED,
                }
            }
            Action::JoinDatabase { replica, db } => {
                let revert =
                    Self::diverges(s, replica, db) && !self.has(Mutant::RejoinWithoutRevert);
                let session = s.replicas[usize::from(replica)].session;
                let d = n.db_mut(replica, db);
                d.restoring = false;
                if session {
                    d.sent = d.log.len() as u8;
                    d.reverting = revert && d.suspended.is_none();
                }
            }
            Action::SeedDatabase { replica, db } => {
                let log = s.history(db);
                let d = n.db_mut(replica, db);
                d.log = crate::state::Log::default();
                for &rec in log {
                    d.log.push(rec);
                }
                d.hardened = d.log.len() as u8;
                d.redone = d.hardened;
                d.sent = d.hardened;
                d.restoring = false;
                d.reverting = false;
                bring_back(d);
            }
            _ => unreachable!("Family::of sends only joining steps here"),
        }
    }

    /// Effects of a read and of a backup: what [`AgModel::read_decision`] and
    /// [`AgModel::backup_decision`] decide, written into the state.
    fn read_or_backup_effect(&self, s: &State, n: &mut State, action: &Action) {
        match *action {
            Action::ClientRead { db, intent } => {
                let decision = self.read_decision(s, db, intent);
                n.spent.reads += 1;
                let a = n.active_mut();
                a.round_robin = decision.round_robin;
                a.seen |= decision.flags;
            }
            Action::Backup { replica, db, kind } => {
                let decision = self.backup_decision(s, replica, db, kind);
                n.spent.backups += 1;
                let databases = usize::from(n.databases);
                let a = n.active_mut();
                a.seen |= decision.flags;
                let g = &mut a.group_dbs[usize::from(db)];
                g.differential_base |= decision.sets_differential_base;
                if let Some(backup) = decision.log_backup {
                    g.log_chain_end = backup.last;
                    a.last_log_backup[usize::from(db)] = Some(backup);
                }
                if let Some(end) = decision.own_chain_end {
                    a.own_chain_end[usize::from(replica) * databases + usize::from(db)] = end;
                }
            }
            _ => unreachable!("Family::of sends only reads and backups here"),
        }
    }

    /// Effects of a corrupt page (the LSN its repair needs) and of its repair, which the
    /// ghost flags judge (R-PAGE-1/2).
    fn page_effect(&self, s: &State, n: &mut State, action: &Action) {
        match *action {
            Action::CorruptPage { replica, db } => {
                n.spent.page_corruptions += 1;
                let on_primary = s.serving_primary() == Some(replica);
                let d = n.db_mut(replica, db);
                let needed = if on_primary {
                    d.log.len() as u8
                } else {
                    d.redone
                };
                d.page = Page::Corrupt { needed };
            }
            Action::RepairFromPrimary { replica, db } => {
                if !self.repair_from_primary_correct(s, replica, db) {
                    n.active_mut().seen |= seen::BAD_REPAIR_FROM_PRIMARY;
                }
                n.db_mut(replica, db).page = Page::Healthy;
            }
            Action::RepairFromSecondary { db, from } => {
                if !self.repair_from_secondary_correct(s, db, from) {
                    n.active_mut().seen |= seen::BAD_REPAIR_FROM_SECONDARY;
                }
                if let Some(p) = s.serving_primary() {
                    n.db_mut(p, db).page = Page::Healthy;
                }
            }
            _ => unreachable!("Family::of sends only page steps here"),
        }
    }

    fn client_commit(&self, n: &mut State, db: Did) {
        let txn = n.txns.len() as u8 + 1;
        let outcome = match n.serving_primary() {
            _ if !n.group(db).in_group => CommitOutcome::DefiniteError(DefiniteReason::NotInGroup),
            None => CommitOutcome::DefiniteError(DefiniteReason::NoPrimary),
            Some(p)
                if !self.has(Mutant::IgnoreRequiredSynchronized)
                    && self.synchronized_count(n, p, db) < n.required_synchronized =>
            {
                CommitOutcome::DefiniteError(DefiniteReason::TooFewSynchronized)
            }
            Some(p) => {
                let epoch = n.manager.epoch;
                let d = n.db_mut(p, db);
                d.log.push(Rec { epoch, txn });
                d.hardened = d.log.len() as u8;
                d.redone = d.hardened;
                CommitOutcome::Pending
            }
        };
        n.txns.push(Txn {
            db,
            outcome,
            required_at_ack: 0,
            lost_in: None,
        });
    }

    /// A crash loses what was not hardened; the primary's clients lose their connections.
    fn crash(&self, n: &mut State, replica: Rid) {
        n.spent.crashes += 1;
        let was_primary = n.replicas[usize::from(replica)].role == Role::Primary;
        if was_primary {
            let persisted = if self.has_manager() {
                Role::Resolving
            } else {
                Role::Primary
            };
            // Its clients lose their connections: they cannot know (R-COMMIT-7).
            demote(n, replica, persisted, CommitOutcome::Indefinite);
        }
        close_session(n, replica);
        let r = &mut n.replicas[usize::from(replica)];
        r.up = false;
        r.disk_stalled = false;
        if self.has_manager() {
            r.role = Role::Resolving;
        }
        for d in n.dbs_of_mut(replica) {
            // A truncation pending on the stalled disk dies with the process: the disk
            // still holds what it held before it.
            if let Some((log, hardened, redone)) = d.stalled_disk_holds.take() {
                (d.log, d.hardened, d.redone) = (log, hardened, redone);
            }
            d.log.truncate(usize::from(d.hardened));
            d.reverting = false;
        }
    }

    /// Recovery of a log whose record at `lsn` fails its checksum while valid records follow
    /// it. The log before that record is all that can be used: the rest is cut (hardened,
    /// redone and the page's needed LSN with it). That is corruption, not a torn tail, so the
    /// database is SUSPECT and remembers the highest LSN it had; under the
    /// `corrupt-log-as-torn-tail` mutant it comes back ONLINE as if the log had simply ended
    /// there. The ghosts record the damage either way.
    fn recover_damaged_log(&self, d: &mut Db, lsn: u8) {
        let had = d.hardened;
        let usable = lsn - 1;
        for rec in &d.log[usize::from(usable)..] {
            d.lost_to_corruption |= txn_bit(rec.txn);
        }
        d.log.truncate(usize::from(usable));
        d.hardened = usable;
        d.redone = d.redone.min(usable);
        if let Page::Corrupt { needed } = d.page {
            d.page = Page::Corrupt {
                needed: needed.min(d.redone),
            };
        }
        if !self.has(Mutant::CorruptLogAsTornTail) {
            d.suspect = Some(d.suspect.map_or(had, |t| t.max(had)));
        }
        d.corrupt_through = Some(d.corrupt_through.map_or(had, |t| t.max(had)));
    }

    /// The handshake: the secondary reports its end of log; the primary resumes sending from
    /// there. A replica that missed a lossy forced failover is suspended (R-FAIL-4); one whose
    /// log diverges from the history reverts first (R-FAIL-6).
    fn connect(&self, s: &State, n: &mut State, replica: Rid) {
        let missed_forced_failover = s.replicas[usize::from(replica)].missed_forced_failover
            && !self.has(Mutant::ForcedFailoverWithoutPartnerSuspend);
        let revert_allowed = !self.has(Mutant::RejoinWithoutRevert);
        let diverging: SmallVec<[bool; 2]> = (0..self.databases)
            .map(|db| Self::joined(s, replica, db) && Self::diverges(s, replica, db))
            .collect();
        let r = &mut n.replicas[usize::from(replica)];
        let stalled = r.disk_stalled;
        r.session = true;
        r.timed_out = false;
        r.missed_forced_failover = false;
        for (d, diverges) in n.dbs_of_mut(replica).iter_mut().zip(diverging) {
            d.sent = d.log.len() as u8;
            d.lingering = false;
            if missed_forced_failover {
                d.suspended = Some(hadr_types::SuspendReason::Partner);
            }
            // A truncation still pending on a stalled disk keeps the copy REVERTING.
            d.reverting =
                (d.reverting && stalled) || (d.suspended.is_none() && diverges && revert_allowed);
        }
    }

    /// Whether a secondary database may serve reads (R-READ-2): it is moving data
    /// (SYNCHRONIZING or SYNCHRONIZED: connected, joined, caught up to no abandoned record, not
    /// suspended or reverting), its page is readable, and its log is not damaged (a SUSPECT
    /// copy serves nothing: it may lack what the primary acknowledged).
    pub fn readable(&self, s: &State, r: Rid, db: Did) -> bool {
        let rep = &s.replicas[usize::from(r)];
        if self.has(Mutant::ReadFromUnsynchronizedSecondary) {
            return rep.up && rep.role == Role::Secondary && Self::joined(s, r, db);
        }
        matches!(
            self.sync_state(s, r, db),
            Some(SyncState::Synchronizing | SyncState::Synchronized)
        ) && s.db(r, db).page == Page::Healthy
            && s.db(r, db).suspect.is_none()
    }

    /// What the listener sees for a database: every replica's role and connection settings,
    /// whether it is readable, and the current primary's READ_ONLY_ROUTING_LIST.
    pub fn route_view(&self, s: &State, db: Did) -> RouteView {
        let replicas = (0..self.replicas)
            .map(|r| {
                let rep = &s.replicas[usize::from(r)];
                let cfg = &self.config.ag.replicas[usize::from(r)];
                ReplicaRouteView {
                    role: (rep.up && !rep.removed).then_some(rep.role),
                    secondary: cfg.secondary_role.allow_connections,
                    primary: cfg.primary_role.allow_connections,
                    readable: self.readable(s, r, db),
                    has_routing_url: cfg.secondary_role.read_only_routing_url.is_some(),
                }
            })
            .collect();
        RouteView {
            replicas,
            list: self.routing_lists[usize::from(s.manager.primary)].clone(),
        }
    }

    /// R-READ: where the listener sends a read, what the reader sees, and the flags that
    /// raises (the step and its rendering both use this).
    pub fn read_decision(&self, s: &State, db: Did, intent: ApplicationIntent) -> ReadDecision {
        let view = self.route_view(s, db);
        let mut rr: Vec<usize> = s.round_robin().iter().map(|&x| usize::from(x)).collect();
        let served = if s.group(db).in_group {
            route(&view, intent, &mut rr)
        } else {
            Err(crate::routing::ConnectionRefusal::NoRoute)
        };
        let mut flags = 0;
        let mut by_primary = false;
        if let Ok(r) = served {
            let v = &view.replicas[r];
            by_primary = v.role == Some(Role::Primary);
            let d = s.db(r as Rid, db);
            let seen_log = if by_primary {
                &d.log[..]
            } else {
                &d.log[..usize::from(d.redone)]
            };
            if accepts(v.role, v.secondary, v.primary, intent).is_err() {
                flags |= seen::READ_NOT_ACCEPTED;
            }
            if !s.history(db).starts_with(seen_log) {
                flags |= seen::READ_NOT_REDONE_HISTORY;
            }
            if intent == ApplicationIntent::ReadOnly {
                flags |= if by_primary {
                    seen::READ_FELL_BACK_TO_PRIMARY
                } else {
                    seen::READ_ON_SECONDARY
                };
            }
        }
        ReadDecision {
            served: served.map(|r| r as Rid),
            by_primary,
            round_robin: rr.iter().map(|&x| x as u8).collect(),
            flags,
        }
    }

    /// R-BACKUP-1/2/3: what a backup attempt on one replica does. Log backups continue the
    /// group's log chain, which the primary keeps (a secondary learns it through its session);
    /// COPY_ONLY backups move neither the chain nor the differential base.
    pub fn backup_decision(
        &self,
        s: &State,
        replica: Rid,
        db: Did,
        kind: BackupKind,
    ) -> BackupDecision {
        let role = s.replicas[usize::from(replica)].role;
        let on_primary = s.serving_primary() == Some(replica);
        let data_moving = on_primary
            || matches!(
                self.sync_state(s, replica, db),
                Some(SyncState::Synchronizing | SyncState::Synchronized)
            );
        let group = s.group(db);
        let mut decision = BackupDecision {
            outcome: BackupOutcome::Taken { first: 0, last: 0 },
            flags: 0,
            log_backup: None,
            sets_differential_base: false,
            own_chain_end: None,
        };
        let refusal = self.backup_refusal(role, kind, data_moving, group.differential_base);
        if let Some(reason) = refusal {
            decision.outcome = BackupOutcome::Refused(reason);
            decision.flags = refusal_flags(reason, kind);
            return decision;
        }
        // Taken: the ghost checks of R-BACKUP-1..3.
        if role == Role::Secondary && allowed_in_role(role, kind).is_err() {
            decision.flags |= seen::BACKUP_KIND_ON_SECONDARY;
        }
        if role == Role::Secondary && !data_moving {
            decision.flags |= seen::BACKUP_WHILE_NOT_MOVING;
        }
        let d = s.db(replica, db);
        let hardened = usize::from(d.hardened);
        let history = s.history(db);
        if !history.starts_with(&d.log[..hardened]) {
            decision.flags |= seen::BACKUP_OUTSIDE_HISTORY;
        }
        match kind {
            BackupKind::Full => decision.sets_differential_base = true,
            BackupKind::CopyOnlyFull if self.has(Mutant::CopyOnlyBackupMovesChain) => {
                decision.sets_differential_base = true;
                if !group.differential_base {
                    decision.flags |= seen::COPY_ONLY_MOVED_CHAIN;
                }
            }
            BackupKind::CopyOnlyFull | BackupKind::Differential => {}
            BackupKind::Log | BackupKind::CopyOnlyLog => {
                self.log_backup_decision(s, replica, db, kind, &mut decision)
            }
        }
        decision
    }

    /// R-BACKUP-1/2: why a backup is refused, if it is: a kind the role does not take, a
    /// secondary not moving data, a differential backup without a base.
    fn backup_refusal(
        &self,
        role: Role,
        kind: BackupKind,
        data_moving: bool,
        differential_base: bool,
    ) -> Option<BackupRefusal> {
        allowed_in_role(role, kind)
            .err()
            .or_else(|| {
                (role == Role::Secondary
                    && !data_moving
                    && !self.has(Mutant::BackupOnUnsynchronizedSecondary))
                .then_some(BackupRefusal::SecondaryNotSynchronizing)
            })
            .or_else(|| {
                (kind == BackupKind::Differential && !differential_base)
                    .then_some(BackupRefusal::NoDifferentialBase)
            })
    }

    /// R-BACKUP-3: the LSN range a log backup of one replica takes, from the end of the log
    /// chain to what it hardened, and whether it continues the group's chain (a COPY_ONLY log
    /// backup does not).
    fn log_backup_decision(
        &self,
        s: &State,
        replica: Rid,
        db: Did,
        kind: BackupKind,
        decision: &mut BackupDecision,
    ) {
        let d = s.db(replica, db);
        let hardened = usize::from(d.hardened);
        let history = s.history(db);
        let group = s.group(db);
        let own_chain = self.has(Mutant::SecondaryLogBackupOwnChain);
        let chain_end = if own_chain {
            s.active.as_ref().map_or(0, |a| {
                a.own_chain_end[usize::from(replica) * usize::from(s.databases) + usize::from(db)]
            })
        } else {
            group.log_chain_end
        };
        let first = chain_end + 1;
        let last = (hardened as u8).max(chain_end);
        let range = usize::from(chain_end)..usize::from(last);
        if !range.is_empty() && history.get(range.clone()) != d.log.get(range) {
            decision.flags |= seen::BACKUP_OUTSIDE_HISTORY;
        }
        decision.outcome = BackupOutcome::Taken { first, last };
        let moves = kind == BackupKind::Log || self.has(Mutant::CopyOnlyBackupMovesChain);
        if moves {
            if kind == BackupKind::CopyOnlyLog && last != group.log_chain_end {
                decision.flags |= seen::COPY_ONLY_MOVED_CHAIN;
            }
            let fork = s.manager.epoch;
            if let Some(prev) = s.last_log_backup(db) {
                let contiguous = first == prev.last + 1;
                if (prev.fork == fork && !contiguous)
                    || (prev.fork != fork && first > prev.last + 1)
                {
                    decision.flags |= seen::BACKUP_CHAIN_BROKEN;
                }
                let something = prev.last >= prev.first || last >= first;
                if prev.replica != replica && prev.fork == fork && contiguous && something {
                    decision.flags |= seen::CHAIN_ACROSS_REPLICAS;
                }
            }
            decision.log_backup = Some(LogBackup {
                replica,
                fork,
                first,
                last,
            });
            if own_chain {
                decision.own_chain_end = Some(last);
            }
        }
    }

    /// R-DB-3: the replica a RESTORE … WITH NORECOVERY copies from (the serving primary), or
    /// `None` when it is refused because the database is a joined availability database.
    pub fn restore_source(&self, s: &State, replica: Rid, db: Did) -> Option<Rid> {
        let joined = Self::joined(s, replica, db);
        s.serving_primary()
            .filter(|&p| p != replica)
            .filter(|_| !joined || self.has(Mutant::RestoreOnAvailabilityDatabase))
    }

    /// R-PAGE-1: whether the copy a secondary gets from the primary equals the page as of the
    /// LSN it needs (its redo LSN).
    pub fn repair_from_primary_correct(&self, s: &State, replica: Rid, db: Did) -> bool {
        let Page::Corrupt { needed } = s.db(replica, db).page else {
            return true;
        };
        let history = s.history(db);
        let version = if self.has(Mutant::RepairFromPrimaryCurrentPage) {
            history.len()
        } else {
            usize::from(needed)
        };
        history[..version.min(history.len())] == s.db(replica, db).log[..usize::from(needed)]
    }

    /// R-PAGE-2: whether the copy the primary gets from a secondary equals its page as of the
    /// LSN it requested.
    pub fn repair_from_secondary_correct(&self, s: &State, db: Did, from: Rid) -> bool {
        let Some(p) = s.serving_primary() else {
            return true;
        };
        let Page::Corrupt { needed } = s.db(p, db).page else {
            return true;
        };
        let source = s.db(from, db);
        let have = usize::from(needed.min(source.redone));
        source.log[..have] == s.history(db)[..usize::from(needed)]
    }

    /// A failover to `target`: a new recovery fork starts on the target's log.
    fn promote(&self, n: &mut State, target: Rid, kind: FailoverKind) {
        let from = n.manager.primary;
        let target_ready = Self::ready_everywhere(n, target);
        let record = FailoverRecord {
            kind,
            from,
            to: target,
            target_ready,
            synchronous_pair: self.synchronous_pair(from, target),
            target_timed_out: n.replicas[usize::from(target)].timed_out,
            acked_before: n.acked_count(),
            suspends_partners: false,
        };
        let index = n.failovers.len() as u8;
        n.failovers.push(record);
        n.spent.failovers += 1;
        if kind == FailoverKind::Forced {
            n.spent.forced_failovers += 1;
        }
        lose_commits_the_target_lacks(n, target, index);
        self.step_down_old_primary(n, target, kind);
        for d in n.dbs.iter_mut() {
            d.failover_ready = false;
        }
        // The log backup chain continues on the new history from where the old one forks
        // from it (R-BACKUP-3): LSNs beyond the fork point belong to the abandoned history.
        for db in 0..self.databases {
            let fork_point = common_prefix(&n.db(from, db).log, &n.db(target, db).log) as u8;
            if n.group(db).log_chain_end > fork_point {
                n.group_mut(db).log_chain_end = fork_point;
            }
        }
        n.manager.epoch += 1;
        n.manager.primary = target;
        if self.has_manager() {
            n.manager.lease = Some(target);
        }
        let lossy_forced = kind == FailoverKind::Forced
            && (!target_ready || self.has(Mutant::ForcedFailoverToSynchronizedLossy));
        n.failovers[usize::from(index)].suspends_partners = lossy_forced;
        self.take_over(n, target, lossy_forced);
    }

    /// The old primary steps down if the failover can reach it: a planned failover
    /// coordinates with it; the manager demotes it when it is up and on the manager's side
    /// of any partition. One it cannot reach is not told; the lease (R-QUORUM-3) is what
    /// must already have stopped it. Every client connection and session is dropped.
    fn step_down_old_primary(&self, n: &mut State, target: Rid, kind: FailoverKind) {
        let old_primary_role = match kind {
            FailoverKind::Planned => Role::Secondary,
            _ if self.has_manager() => Role::Resolving,
            _ => Role::Secondary,
        };
        for r in 0..self.replicas {
            let rep = &n.replicas[usize::from(r)];
            let reachable = kind == FailoverKind::Planned
                || !self.has_manager()
                || (rep.up && !n.net.manager_cut(r));
            if r != target && rep.role == Role::Primary && reachable {
                n.replicas[usize::from(r)].role = old_primary_role;
            }
        }
        end_term(n, self.step_down_answer());
    }

    /// The target takes the PRIMARY role with its whole log hardened and redone; after a
    /// lossy forced failover every other replica is put on hold, to be suspended when it
    /// next connects (R-FAIL-4).
    fn take_over(&self, n: &mut State, target: Rid, lossy_forced: bool) {
        for r in 0..self.replicas {
            if r == target {
                let rep = &mut n.replicas[usize::from(r)];
                rep.role = Role::Primary;
                rep.missed_forced_failover = false;
                rep.timed_out = false;
                for d in n.dbs_of_mut(r) {
                    d.hardened = d.log.len() as u8;
                    d.redone = d.hardened;
                    d.reverting = false;
                    d.partner_hold = false;
                }
            } else if lossy_forced {
                n.replicas[usize::from(r)].missed_forced_failover = true;
                for d in n.dbs_of_mut(r) {
                    d.partner_hold = true;
                }
            }
        }
    }

    /// The kinds of the actions enabled in a state, as a bit mask over [`ActionKind::index`].
    ///
    /// [`ActionKind::index`]: crate::action::ActionKind::index
    pub fn enabled_kinds(&self, s: &State) -> u64 {
        self.candidates
            .iter()
            .filter(|a| self.enabled(s, a))
            .fold(0, |mask, a| mask | 1 << a.kind().index())
    }

    /// Whether the protocol could still take a step on its own.
    pub fn internal_step_possible(&self, s: &State) -> bool {
        self.candidates
            .iter()
            .any(|a| !a.kind().class().is_environment() && self.enabled(s, a))
    }
}

/// What a read does: who serves it (or why nobody does), the listener's next round-robin
/// positions, and the `seen` flags it raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadDecision {
    /// The replica that serves it, or why none does.
    pub served: Result<Rid, crate::routing::ConnectionRefusal>,
    /// It is served by the primary.
    pub by_primary: bool,
    /// The listener's round-robin positions afterwards.
    pub round_robin: SmallVec<[u8; 2]>,
    /// Flags of `state::seen` it raises.
    pub flags: u32,
}

/// What a backup attempt does: its outcome, the `seen` flags it raises, and how it moves the
/// log chain and the differential base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupDecision {
    /// Taken (with the LSN range of a log backup) or refused.
    pub outcome: BackupOutcome,
    /// Flags of `state::seen` it raises.
    pub flags: u32,
    /// The new last link of the log chain, when it moves the chain.
    pub log_backup: Option<LogBackup>,
    /// It makes a differential base.
    pub sets_differential_base: bool,
    /// Under the own-chain mutant: the replica's own chain end afterwards.
    pub own_chain_end: Option<u8>,
}

/// The `seen` flag a refused backup raises (R-BACKUP-1/2); none for a differential backup
/// without a base.
fn refusal_flags(reason: BackupRefusal, kind: BackupKind) -> u32 {
    match (reason, kind) {
        (BackupRefusal::NotOnSecondary, BackupKind::Full) => seen::FULL_REFUSED_ON_SECONDARY,
        (BackupRefusal::NotOnSecondary, BackupKind::Differential) => {
            seen::DIFFERENTIAL_REFUSED_ON_SECONDARY
        }
        (BackupRefusal::NotOnSecondary, BackupKind::CopyOnlyLog) => {
            seen::COPY_ONLY_LOG_REFUSED_ON_SECONDARY
        }
        (BackupRefusal::SecondaryNotSynchronizing, _) => seen::BACKUP_REFUSED_NOT_MOVING,
        _ => 0,
    }
}

/// A primary stops being one: clients and sessions are dropped.
fn demote(n: &mut State, replica: Rid, role: Role, answer: CommitOutcome) {
    n.replicas[usize::from(replica)].role = role;
    end_term(n, answer);
}

/// Every pending commit gets `answer` (indefinite, R-COMMIT-7) and every session closes
/// (R-FAIL-6, R-ROLE-2).
fn end_term(n: &mut State, answer: CommitOutcome) {
    for t in n.txns.iter_mut() {
        if t.outcome == CommitOutcome::Pending {
            t.outcome = answer;
        }
    }
    for r in 0..n.replicas.len() as Rid {
        close_session(n, r);
        // A lost-block fault is armed on the primary's sending: it ends with its term.
        for d in n.dbs_of_mut(r) {
            d.lose_next = false;
            d.lingering = false;
        }
    }
}

/// A REVERTING secondary truncates its log to the fork point with the history (R-FAIL-4/6).
fn revert(s: &State, n: &mut State, replica: Rid, db: Did) {
    let fork_point = common_prefix(&s.db(replica, db).log, s.history(db)) as u8;
    let stalled = s.replicas[usize::from(replica)].disk_stalled;
    let d = n.db_mut(replica, db);
    if stalled && d.stalled_disk_holds.is_none() {
        let mut durable = d.log;
        durable.truncate(usize::from(d.hardened));
        d.stalled_disk_holds = Some((durable, d.hardened, d.redone));
    }
    d.log.truncate(usize::from(fork_point));
    d.hardened = d.hardened.min(fork_point);
    d.redone = d.redone.min(fork_point);
    d.sent = fork_point;
    // On a stalled disk the truncation is asked for and never done: the log is
    // cut back in memory, and the copy stays REVERTING.
    d.reverting = s.replicas[usize::from(replica)].disk_stalled;
    if let Page::Corrupt { needed } = d.page {
        d.page = Page::Corrupt {
            needed: needed.min(d.redone),
        };
    }
}

/// Acknowledged commits the target of a failover never received are lost (R-FAIL-5 says only a
/// forced failover may do this): each is marked lost in failover `index`.
fn lose_commits_the_target_lacks(n: &mut State, target: Rid, index: u8) {
    let targets_logs: SmallVec<[crate::state::Log; 2]> =
        n.dbs_of(target).iter().map(|d| d.log).collect();
    let in_group: SmallVec<[bool; 2]> = n.groups().map(|g| g.in_group).collect();
    for (i, t) in n.txns.iter_mut().enumerate() {
        let number = i as u8 + 1;
        if t.outcome == CommitOutcome::Acknowledged
            && in_group[usize::from(t.db)]
            && t.lost_in.is_none()
            && !targets_logs[usize::from(t.db)]
                .iter()
                .any(|rec| rec.txn == number)
        {
            t.lost_in = Some(index);
        }
    }
}

/// A copy whose log was found damaged has hardened as far as it had (`lost_through`), from a
/// primary: its SUSPECT mark clears, and the ghost of the damage with it (R-COMMIT-6).
fn bring_back_when_caught_up(d: &mut Db) {
    if d.suspect
        .is_some_and(|lost_through| d.hardened >= lost_through)
    {
        d.suspect = None;
    }
    if d.corrupt_through
        .is_some_and(|lost_through| d.hardened >= lost_through)
    {
        d.corrupt_through = None;
    }
}

/// A copy holds the whole history (recorded SYNCHRONIZED) or a new copy of it (RESTORE,
/// automatic seeding), whatever it had before: a SUSPECT mark clears, and the ghost of the
/// damage with it (R-COMMIT-6).
fn bring_back(d: &mut Db) {
    d.suspect = None;
    d.corrupt_through = None;
}

/// A database copy leaves the group or stops being joined: RESTORING, no data movement.
fn leave_group(d: &mut Db) {
    d.restoring = true;
    d.failover_ready = false;
    d.reverting = false;
    d.sent = 0;
}

fn close_session(n: &mut State, replica: Rid) {
    let stalled = n.replicas[usize::from(replica)].disk_stalled;
    n.replicas[usize::from(replica)].session = false;
    for d in n.dbs_of_mut(replica) {
        d.sent = 0;
        // A truncation asked of a stalled disk is still pending after the session: the copy
        // stays REVERTING (shown once in session again) until a crash ends the stall.
        d.reverting &= stalled;
    }
}

fn set_cut(net: &mut Net, a: Node, b: Node, cut: bool) {
    match (a, b) {
        (Node::Replica(x), Node::Replica(y)) => {
            if cut {
                net.replica_cuts |= pair_bit(x, y);
            } else {
                net.replica_cuts &= !pair_bit(x, y);
            }
        }
        (Node::Replica(x), Node::Manager) | (Node::Manager, Node::Replica(x)) => {
            if cut {
                net.manager_cuts |= 1 << x;
            } else {
                net.manager_cuts &= !(1 << x);
            }
        }
        (Node::Manager, Node::Manager) => {}
    }
}

/// The families of actions, after the rule book's areas: [`AgModel::enabled`] and
/// [`AgModel::apply`] hand each action to its family's guard and effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// A client commits; the primary acknowledges (R-COMMIT).
    Commit,
    /// Planned, forced and automatic failovers; the demotion by hand (R-FAIL, R-QUORUM-5).
    Failover,
    /// The operator's commands on data movement: SUSPEND, RESUME, k (R-SYNC-7, R-COMMIT-5).
    SyncCommand,
    /// A server crashes, restarts, stalls its log disk or reports a health failure.
    ServerFault,
    /// A link is cut or restored, the manager's quorum lost or regained, a log block lost.
    NetworkFault,
    /// The log's way to a secondary: ship, harden, redo, revert (R-SYNC-1/2, R-FAIL-4/6).
    Replication,
    /// Sessions, and what the primary records of its secondaries in the manager (R-SYNC-6).
    Session,
    /// The lease and the manager's view of the roles (R-QUORUM-2/3, R-FAIL-6).
    Lease,
    /// ADD DATABASE, REMOVE DATABASE, REMOVE REPLICA (R-DB-1/4).
    Membership,
    /// RESTORE WITH NORECOVERY, JOIN, automatic seeding (R-DB-2/3).
    Joining,
    /// Reads through the listener and backups (R-READ, R-BACKUP).
    ReadOrBackup,
    /// A corrupt page and its automatic repair (R-PAGE).
    Page,
}

impl Family {
    /// The family of a kind of action.
    fn of(kind: ActionKind) -> Family {
        use ActionKind::*;
        match kind {
            ClientCommit | AckCommit => Family::Commit,
            PlannedFailover | ForcedFailover | AutomaticFailover | DemoteToSecondary => {
                Family::Failover
            }
            Suspend | Resume | SetRequiredSynchronized => Family::SyncCommand,
            Crash | Restart | DiskStall | HealthFault | CorruptLog => Family::ServerFault,
            Partition | Heal | LoseQuorum | RegainQuorum | LoseLogBlock => Family::NetworkFault,
            ShipLog | HardenLog | RedoLog | Revert => Family::Replication,
            Connect | SessionTimeout | MarkSynchronized | DropFromSynchronized => Family::Session,
            LeaseExpiry | ManagerLeaseExpiry | RestorePrimary | LoseManager
            | ResolveToSecondary => Family::Lease,
            AddDatabase | RemoveDatabase | RemoveReplica => Family::Membership,
            RestoreDatabase | JoinDatabase | SeedDatabase => Family::Joining,
            ClientRead | Backup => Family::ReadOrBackup,
            CorruptPage | RepairFromPrimary | RepairFromSecondary => Family::Page,
        }
    }
}

/// Every action the configuration can offer, in a fixed order: environment first (client,
/// operator, faults), then internal steps, then the optional features' steps.
fn candidate_actions(config: &ModelConfig, replicas: u8, databases: u8) -> Vec<Action> {
    let mut out = Vec::new();
    push_client_and_operator_candidates(&mut out, replicas, databases);
    push_fault_candidates(&mut out, config, replicas, databases);
    push_internal_candidates(&mut out, config, replicas, databases);
    push_optional_feature_candidates(&mut out, replicas, databases);
    out
}

/// Client commits, failovers and demotions, SUSPEND and RESUME, changes of k.
fn push_client_and_operator_candidates(out: &mut Vec<Action>, replicas: u8, databases: u8) {
    let rs = 0..replicas;
    let dbs = || 0..databases;
    for db in dbs() {
        out.push(Action::ClientCommit { db });
    }
    for target in rs.clone() {
        out.push(Action::PlannedFailover { target });
        out.push(Action::ForcedFailover { target });
        out.push(Action::DemoteToSecondary { replica: target });
    }
    for replica in rs.clone() {
        for db in dbs() {
            out.push(Action::Suspend { replica, db });
            out.push(Action::Resume { replica, db });
        }
    }
    for k in 0..replicas {
        out.push(Action::SetRequiredSynchronized { k });
    }
}

/// Crashes and restarts, cut and restored links (to the manager only where there is one),
/// quorum, lost log blocks, stalled disks, health failures.
fn push_fault_candidates(out: &mut Vec<Action>, config: &ModelConfig, replicas: u8, databases: u8) {
    let rs = 0..replicas;
    let dbs = || 0..databases;
    let manager = config.ag.cluster_type != ClusterType::None;
    for replica in rs.clone() {
        out.push(Action::Crash { replica });
        out.push(Action::Restart { replica });
    }
    let mut links = Vec::new();
    for b in rs.clone() {
        for a in 0..b {
            links.push((Node::Replica(a), Node::Replica(b)));
        }
    }
    if manager {
        for a in rs.clone() {
            links.push((Node::Replica(a), Node::Manager));
        }
    }
    for (a, b) in links {
        out.push(Action::Partition { a, b });
        out.push(Action::Heal { a, b });
    }
    out.push(Action::LoseQuorum);
    out.push(Action::RegainQuorum);
    for to in rs.clone() {
        for db in dbs() {
            out.push(Action::LoseLogBlock { to, db });
        }
    }
    for replica in rs.clone() {
        out.push(Action::DiskStall { replica });
    }
    // A damaged record needs a valid one after it: the last transaction's never qualifies.
    for replica in rs.clone() {
        for db in dbs() {
            for lsn in 1..config.bounds.transactions {
                out.push(Action::CorruptLog { replica, db, lsn });
            }
        }
    }
    for replica in rs.clone() {
        for condition in FailureCondition::ALL {
            if condition != FailureCondition::ServerDown {
                out.push(Action::HealthFault { replica, condition });
            }
        }
    }
}

/// The protocol's own steps.
fn push_internal_candidates(
    out: &mut Vec<Action>,
    config: &ModelConfig,
    replicas: u8,
    databases: u8,
) {
    let dbs = || 0..databases;
    for txn in 1..=config.bounds.transactions {
        out.push(Action::AckCommit { txn });
    }
    for r in 0..replicas {
        for db in dbs() {
            out.push(Action::ShipLog { to: r, db });
            out.push(Action::HardenLog { replica: r, db });
            out.push(Action::RedoLog { replica: r, db });
            out.push(Action::MarkSynchronized { replica: r, db });
            out.push(Action::DropFromSynchronized { replica: r, db });
            out.push(Action::Revert { replica: r, db });
        }
        out.push(Action::Connect { replica: r });
        out.push(Action::SessionTimeout { replica: r });
        out.push(Action::LeaseExpiry { replica: r });
        out.push(Action::AutomaticFailover { target: r });
        out.push(Action::RestorePrimary { replica: r });
        out.push(Action::LoseManager { replica: r });
        out.push(Action::ResolveToSecondary { replica: r });
    }
    out.push(Action::ManagerLeaseExpiry);
}

/// Reads, the database lifecycle, backups and page repair (each only taken when its budget
/// is above 0).
fn push_optional_feature_candidates(out: &mut Vec<Action>, replicas: u8, databases: u8) {
    let rs = 0..replicas;
    for db in 0..databases {
        for intent in [ApplicationIntent::ReadWrite, ApplicationIntent::ReadOnly] {
            out.push(Action::ClientRead { db, intent });
        }
        out.push(Action::AddDatabase { db });
        out.push(Action::RemoveDatabase { db });
        for replica in rs.clone() {
            for kind in BackupKind::ALL {
                out.push(Action::Backup { replica, db, kind });
            }
            out.push(Action::RestoreDatabase { replica, db });
            out.push(Action::JoinDatabase { replica, db });
            out.push(Action::CorruptPage { replica, db });
            out.push(Action::SeedDatabase { replica, db });
            out.push(Action::RepairFromPrimary { replica, db });
            out.push(Action::RepairFromSecondary { db, from: replica });
        }
    }
    for replica in rs {
        out.push(Action::RemoveReplica { replica });
    }
}

impl stateright::Model for AgModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        let primary = state.serving_primary();
        let start = actions.len();
        for &(kind, start, end) in self.groups.iter() {
            let group = &self.candidates[start..end];
            if self.kind_possible(state, kind, primary) {
                actions.extend(group.iter().filter(|a| self.enabled(state, a)));
            }
        }
        let environment = |a: &Action| a.kind().class().is_environment();
        if self.quiescent_environment && actions[start..].iter().any(|a| !environment(a)) {
            let mut i = start;
            while i < actions.len() {
                if environment(&actions[i]) {
                    actions.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        self.enabled(state, &action)
            .then(|| self.apply(state, &action))
    }

    fn format_action(&self, action: &Action) -> String {
        crate::render::action_words(self.config(), action)
    }

    fn format_step(&self, last_state: &State, action: Action) -> Option<String> {
        self.next_state(last_state, action)
            .map(|next| crate::render::state_line(self, &next))
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        crate::properties::stateright_properties(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashSet, VecDeque};

    /// `actions` skips a kind when `kind_possible` is false: over every reachable state of three
    /// small configurations (one with a manager, one without, one with a damaged log), no
    /// action of a skipped kind is enabled.
    #[test]
    fn kind_possible_is_a_necessary_condition_of_every_guard() {
        let pair = include_str!("../configs/two-replicas.toml").replace("events = 2", "events = 1");
        let none = include_str!("../configs/read-scale.toml")
            .replace("events = 3", "events = 1")
            .replace("transactions = 2", "transactions = 1");
        let storage = include_str!("../configs/storage-faults.toml")
            .replace("events = 4", "events = 2")
            .replace("crashes = 2", "crashes = 1");
        assert!(storage.contains("events = 2") && storage.contains("crashes = 1"));
        for text in [pair, none, storage] {
            let model = AgModel::new(ModelConfig::from_toml_str(&text).unwrap());
            let mut seen = HashSet::new();
            let mut queue = VecDeque::from([model.initial_state()]);
            let mut checked = 0;
            while let Some(s) = queue.pop_front() {
                if !seen.insert(s.clone()) {
                    continue;
                }
                for a in model.candidates() {
                    if model.enabled(&s, a) {
                        assert!(
                            model.kind_possible(&s, a.kind(), s.serving_primary()),
                            "{a:?} is enabled but its kind was judged impossible in {s:?}"
                        );
                        checked += 1;
                        queue.push_back(model.apply(&s, a));
                    }
                }
            }
            assert!(checked > 2_000, "only {checked} enabled actions checked");
        }
    }

    /// The order of `actions` is fixed (Stateright replays paths by action index).
    #[test]
    fn actions_come_in_a_fixed_order() {
        use stateright::Model;
        let model = AgModel::new(ModelConfig::default());
        let s = model.initial_state();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        model.actions(&s, &mut first);
        model.actions(&s, &mut second);
        assert_eq!(first, second);
        assert!(first.contains(&Action::ClientCommit { db: 0 }));
        assert!(first.iter().all(|a| model.next_state(&s, *a).is_some()));
    }
}
