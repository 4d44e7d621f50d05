//! The properties of the spec, each named after the rule it checks.
//!
//! - **always**: invariants over every reachable state (safety), plus one liveness property
//!   checked where it is sound: at *quiescent* states (R-SYNC-6, `converges_when_healthy`).
//! - **sometimes**: the hazards H1–H5 of the rule book, and one per action kind (no dead
//!   action): each must hold in some reachable state.
//!
//! How they are checked. Stateright looks every property up by name for every state it
//! evaluates, so a long list of properties is itself a cost. The search therefore hands it two
//! combined properties, [`INVARIANTS`] and [`REACHABILITY`], which evaluate every property of
//! [`all_specs`] and record each one's verdict in shared [`Probes`]: the first violation of any
//! invariant is reported to Stateright (so its path is kept), every later one is only recorded,
//! and a discovered sometimes property costs nothing afterwards. The paths of individual
//! properties come from a *focused* run, in which each targeted property
//! is a Stateright property of its own (the shortest counterexamples, the hazard examples).
//!
//! Stateright's own `eventually` is not used: its check treats a state reached twice as
//! satisfied by the first path that reached it (`FIXME` in its `dfs.rs`), so on a state graph
//! with joins, such as this one, it can miss a violation. See `docs/spec.md`, "Liveness".

use crate::action::ActionKind;
use crate::config::ModelConfig;
use crate::spec::AgModel;
use crate::state::{common_prefix, seen, Did, FailoverKind, Rid, State};
use hadr_types::{CommitOutcome, DefiniteReason, Role};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How a property is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyKind {
    /// Holds in every reachable state.
    Always,
    /// Holds in at least one reachable state.
    Sometimes,
    /// Holds eventually on every path (not used: see the module docs).
    Eventually,
}

/// What a property is about, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyGroup {
    /// A rule of the rule book.
    Rule,
    /// A hazard H1–H6 that must be reachable.
    Hazard,
    /// A behaviour of the rules that must be reachable (a refusal, a routing decision …).
    Goal,
    /// An action kind that must be taken somewhere (no dead action).
    Coverage,
}

/// A state predicate.
pub type Condition = fn(&AgModel, &State) -> bool;

/// One property: its name, the rule it serves, and its condition.
pub struct PropertySpec {
    /// The full name: `"<rule> <title>"` (`"<rule> action <Kind>"` for coverage).
    pub name: &'static str,
    /// The rule id (`R-COMMIT-6`, `H1`, or the action kind's rule).
    pub rule: &'static str,
    /// What it asserts, in words.
    pub title: &'static str,
    /// Always or sometimes.
    pub kind: PropertyKind,
    /// Rule, hazard or coverage.
    pub group: PropertyGroup,
    /// For coverage properties, the action kind.
    pub action: Option<ActionKind>,
    /// The condition on a state: for `always`, "holds here"; for `sometimes`, "shown here".
    pub condition: Condition,
}

/// The name of the combined invariant property of a search.
pub const INVARIANTS: &str = "every always property";
/// The name of the combined reachability property of a search.
pub const REACHABILITY: &str = "every sometimes property";

/// Shared verdicts of one checker run.
#[derive(Debug)]
pub struct Probes {
    /// States whose properties have been evaluated (the progress line's queue is the distinct
    /// states generated minus these).
    pub evaluated: AtomicU64,
    /// Per property of [`all_specs`]: an always property was violated, or a sometimes property
    /// was shown.
    latched: Vec<AtomicBool>,
    /// Per property: whether its violation is reported to Stateright (the others are only
    /// recorded). The first reported violation is the one whose path the search keeps.
    reported: Vec<bool>,
    /// A reported invariant was violated.
    any_reported: AtomicBool,
    /// Sometimes properties of this run not yet shown.
    undiscovered: AtomicUsize,
}

impl Probes {
    /// Fresh probes for a model's checked properties, reporting the violation of any
    /// invariant whose rule is in `report_rules` (every invariant when `None`).
    pub fn new(model: &AgModel, report_rules: Option<&[&str]>) -> Self {
        let undiscovered = checked_specs(model)
            .filter(|(_, p)| p.kind == PropertyKind::Sometimes)
            .count();
        Probes {
            evaluated: AtomicU64::new(0),
            latched: all_specs().iter().map(|_| AtomicBool::new(false)).collect(),
            reported: all_specs()
                .iter()
                .map(|p| report_rules.is_none_or(|rules| rules.contains(&p.rule)))
                .collect(),
            any_reported: AtomicBool::new(false),
            undiscovered: AtomicUsize::new(undiscovered),
        }
    }

    /// Whether property `i` of [`all_specs`] was violated (always) or shown (sometimes).
    pub fn latched(&self, i: usize) -> bool {
        self.latched[i].load(Ordering::Relaxed)
    }

    /// Records property `i`; true the first time.
    fn latch(&self, i: usize) -> bool {
        !self.latched[i].swap(true, Ordering::Relaxed)
    }
}

macro_rules! rule_properties {
    ($($rule:literal, $title:literal, $kind:ident, $group:ident => $f:expr;)*) => {
        fn rule_specs() -> Vec<PropertySpec> {
            vec![$(PropertySpec {
                name: concat!($rule, " ", $title),
                rule: $rule,
                title: $title,
                kind: PropertyKind::$kind,
                group: PropertyGroup::$group,
                action: None,
                condition: $f,
            }),*]
        }
    };
}

rule_properties! {
    "R-ROLE-1", "at most one replica is primary and can commit", Always, Rule => single_writer;
    "R-ROLE-4", "only the last promoted replica holds the PRIMARY role", Always, Rule => primary_is_promoted;
    "R-ROLE-2", "only a SECONDARY of a serving primary has a session", Always, Rule => sessions_need_roles;
    "R-QUORUM-3", "the primary holds the lease while it can commit", Always, Rule => primary_holds_lease;
    "R-SYNC-2", "received >= hardened >= redone on every replica", Always, Rule => log_pointers_ordered;
    "R-SYNC-4", "an asynchronous-commit secondary is never SYNCHRONIZED", Always, Rule => async_never_synchronized;
    "R-SYNC-5", "every log is the history plus unreverted records of abandoned forks", Always, Rule => log_prefix;
    "R-SYNC-5", "a secondary moving data holds no record of an abandoned fork unless it reverts", Always, Rule => moving_copies_hold_history;
    "R-COMMIT-6", "acknowledged commits are on the history and every SYNCHRONIZED secondary", Always, Rule => durable;
    "R-COMMIT-6", "a replica whose log a storage fault damaged is never PRIMARY until it is brought back", Always, Rule => damaged_log_never_primary;
    "R-COMMIT-5", "acknowledged commits are hardened on k SYNCHRONIZED secondaries", Always, Rule => hardened_on_k;
    "R-COMMIT-7", "a commit refused with a definite error is in no log", Always, Rule => definite_means_absent;
    "R-COMMIT-4", "at rest, a commit waits only for k and for connected SYNCHRONIZED participants", Always, Rule => commits_wait_only_for_participants;
    "R-FAIL-2", "automatic failover only to a SYNCHRONIZED automatic replica", Always, Rule => automatic_failover_safe;
    "R-FAIL-3", "planned failover only to a SYNCHRONIZED synchronous-commit replica", Always, Rule => planned_failover_safe;
    "R-FAIL-4", "after a forced failover partners stay suspended until resumed", Always, Rule => partners_held;
    "R-FAIL-4", "a forced failover onto a SYNCHRONIZED target suspends no partner", Always, Rule => forced_onto_synchronized_is_planned;
    "R-FAIL-5", "only a forced failover loses acknowledged commits", Always, Rule => only_forced_loses;
    "R-SYNC-6", "a healthy, quiescent group has a primary and is caught up", Always, Rule => converges_when_healthy;
    "R-BACKUP-1", "a secondary takes only COPY_ONLY full and regular log backups", Always, Rule => secondary_backup_kinds;
    "R-BACKUP-2", "a secondary backs up only while SYNCHRONIZED or SYNCHRONIZING", Always, Rule => secondary_backs_up_when_moving;
    "R-BACKUP-3", "log backups form one chain of the history; COPY_ONLY backups move nothing", Always, Rule => one_log_chain;
    "R-DB-2", "a database that is not joined moves no data", Always, Rule => restoring_moves_nothing;
    "R-DB-3", "RESTORE is never applied to an availability database", Always, Rule => no_restore_on_availability_database;
    "R-DB-4", "the primary stays in the group; a removed database is RESTORING on its secondaries", Always, Rule => removal_leaves_restoring;
    "R-PAGE-1", "a page repaired from the primary equals the primary's page as of the secondary's redo LSN", Always, Rule => repaired_from_primary_correctly;
    "R-PAGE-2", "a page repaired from a secondary equals the primary's page as of the requested LSN", Always, Rule => repaired_from_secondary_correctly;
    "R-READ-1", "a connection is served only by a replica that accepts it", Always, Rule => reads_accepted;
    "R-READ-2", "a read sees only history, and on a secondary only redone history", Always, Rule => reads_see_redone_history;
    "H1", "k = 0: a forced failover to a timed-out sync secondary loses an acknowledged commit", Sometimes, Hazard => hazard_h1;
    "H2", "a forced failover to an asynchronous secondary loses an acknowledged commit", Sometimes, Hazard => hazard_h2;
    "H3", "after a forced failover the former primary reverts acknowledged commits", Sometimes, Hazard => hazard_h3;
    "H4", "with k >= 1 and too few SYNCHRONIZED secondaries the primary refuses a commit", Sometimes, Hazard => hazard_h4;
    "H5", "an automatic failover after acknowledged commits loses nothing", Sometimes, Hazard => hazard_h5;
    "H6", "two log backups taken on two different replicas form one chain", Sometimes, Hazard => hazard_h6;
    "R-BACKUP-1", "a full backup is refused on a secondary", Sometimes, Goal => full_refused_on_secondary;
    "R-BACKUP-1", "a differential backup is refused on a secondary", Sometimes, Goal => differential_refused_on_secondary;
    "R-BACKUP-1", "a COPY_ONLY log backup is refused on a secondary", Sometimes, Goal => copy_only_log_refused_on_secondary;
    "R-BACKUP-2", "a backup on a secondary that is not moving data is refused", Sometimes, Goal => backup_refused_not_moving;
    "R-DB-3", "RESTORE on an availability database is refused", Sometimes, Goal => restore_refused;
    "R-DB-4", "removing the primary replica is refused", Sometimes, Goal => remove_primary_refused;
    "R-READ-3", "a read-intent connection is routed to a secondary", Sometimes, Goal => read_routed_to_secondary;
    "R-READ-3", "a read-intent connection falls back to the primary", Sometimes, Goal => read_falls_back_to_primary;
    "R-COMMIT-6", "a SUSPECT database is brought back by the primary and its mark clears", Sometimes, Goal => suspect_database_brought_back;
}

/// Every property of the spec: rules, hazards, and one coverage property per action kind.
pub fn all_specs() -> &'static [PropertySpec] {
    static SPECS: OnceLock<Vec<PropertySpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let mut specs = rule_specs();
        for &kind in ActionKind::ALL {
            let name: &'static str =
                Box::leak(format!("{} action {}", kind.rule(), kind.name()).into_boxed_str());
            specs.push(PropertySpec {
                name,
                rule: kind.rule(),
                title: kind.words(),
                kind: PropertyKind::Sometimes,
                group: PropertyGroup::Coverage,
                action: Some(kind),
                condition: COVERAGE[kind.index()],
            });
        }
        assert!(
            specs.len() <= FOCUSED.len(),
            "one focused slot per property"
        );
        specs
    })
}

/// The properties a model checks, with their index in [`all_specs`]: every rule and hazard,
/// the coverage of every action kind that applies to its configuration, and, in a focused run,
/// only the focused ones.
pub fn checked_specs(model: &AgModel) -> impl Iterator<Item = (usize, &'static PropertySpec)> + '_ {
    model.checked.iter().map(|&i| (i, &all_specs()[i]))
}

/// The indices of the properties a configuration checks (computed once per model).
pub(crate) fn applicable_specs(config: &ModelConfig, focus: Option<&[usize]>) -> Vec<usize> {
    all_specs()
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            p.action.is_none_or(|k| not_applicable(k, config).is_none())
                && feature_of(p).is_none_or(|k| not_applicable(k, config).is_none())
                && focus.is_none_or(|f| f.contains(i))
        })
        .map(|(i, _)| i)
        .collect()
}

/// The action kind a goal or hazard of an optional feature needs: the goal is checked only
/// when that kind can happen (reads, backups, lifecycle commands).
fn feature_of(p: &PropertySpec) -> Option<ActionKind> {
    if p.kind != PropertyKind::Sometimes || p.action.is_some() {
        return None;
    }
    match p.rule {
        "H6" | "R-BACKUP-1" | "R-BACKUP-2" => Some(ActionKind::Backup),
        "R-DB-3" => Some(ActionKind::RestoreDatabase),
        "R-DB-4" => Some(ActionKind::RemoveReplica),
        "R-READ-3" => Some(ActionKind::ClientRead),
        "R-COMMIT-6" => Some(ActionKind::CorruptLog),
        _ => None,
    }
}

/// The properties Stateright evaluates: the two combined ones of a search, or each focused
/// property on its own.
pub(crate) fn stateright_properties(model: &AgModel) -> Vec<stateright::Property<AgModel>> {
    if model.focus.is_none() {
        return vec![
            stateright::Property::always(INVARIANTS, every_invariant),
            stateright::Property::sometimes(REACHABILITY, every_reachability_goal),
        ];
    }
    checked_specs(model)
        .map(|(i, p)| match p.kind {
            PropertyKind::Always => stateright::Property::always(p.name, FOCUSED[i]),
            PropertyKind::Sometimes => stateright::Property::sometimes(p.name, FOCUSED[i]),
            PropertyKind::Eventually => stateright::Property::eventually(p.name, FOCUSED[i]),
        })
        .collect()
}

/// Evaluates every invariant; false only on the first state that violates a reported one
/// (every violation is recorded in the probes; the paths of all but that first one come from
/// a focused run).
fn every_invariant(m: &AgModel, s: &State) -> bool {
    let Some(p) = &m.probes else {
        return all_specs()
            .iter()
            .filter(|spec| spec.kind == PropertyKind::Always)
            .all(|spec| (spec.condition)(m, s));
    };
    p.evaluated.fetch_add(1, Ordering::Relaxed);
    let mut first = false;
    for (i, spec) in all_specs().iter().enumerate() {
        if spec.kind == PropertyKind::Always && !p.latched(i) && !(spec.condition)(m, s) {
            first |= p.latch(i) && p.reported[i] && !p.any_reported.swap(true, Ordering::Relaxed);
        }
    }
    !first
}

/// Evaluates every sometimes property not yet shown; never reports a discovery to Stateright
/// (the verdicts are in the probes), so the search goes on until every state is seen.
fn every_reachability_goal(m: &AgModel, s: &State) -> bool {
    let Some(p) = &m.probes else {
        return false;
    };
    if p.undiscovered.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let enabled = m.enabled_kinds(s);
    for (i, spec) in checked_specs(m) {
        if spec.kind != PropertyKind::Sometimes || p.latched(i) {
            continue;
        }
        let shown = match spec.action {
            Some(kind) => enabled & (1 << kind.index()) != 0,
            None => (spec.condition)(m, s),
        };
        if shown && p.latch(i) {
            p.undiscovered.fetch_sub(1, Ordering::Relaxed);
        }
    }
    false
}

// ---------------------------------------------------------------------- rules

fn single_writer(_: &AgModel, s: &State) -> bool {
    s.replicas
        .iter()
        .filter(|r| r.up && r.role == Role::Primary)
        .count()
        <= 1
}

fn primary_is_promoted(_: &AgModel, s: &State) -> bool {
    s.replicas
        .iter()
        .enumerate()
        .all(|(i, r)| !(r.up && r.role == Role::Primary) || i == usize::from(s.manager.primary))
}

fn sessions_need_roles(_: &AgModel, s: &State) -> bool {
    let serving = s.serving_primary().is_some();
    s.replicas
        .iter()
        .all(|r| !r.session || (serving && r.up && r.role == Role::Secondary))
}

fn primary_holds_lease(m: &AgModel, s: &State) -> bool {
    !m.config().ag.cluster_type.has_manager()
        || s.replicas
            .iter()
            .enumerate()
            .all(|(i, r)| !(r.up && r.role == Role::Primary) || s.manager.lease == Some(i as u8))
}

fn log_pointers_ordered(_: &AgModel, s: &State) -> bool {
    s.dbs
        .iter()
        .all(|d| d.redone <= d.hardened && usize::from(d.hardened) <= d.log.len())
}

fn async_never_synchronized(m: &AgModel, s: &State) -> bool {
    (0..s.replicas.len() as u8).all(|r| {
        s.dbs_of(r).iter().all(|d| !d.failover_ready) || m.synchronous_pair(s.manager.primary, r)
    })
}

/// R-SYNC-5: beyond its common prefix with the history, a log holds only records of older
/// forks that are not in the history; a failover-ready database holds none. While the history
/// owner's copy is damaged (CorruptLog) and does not serve, the records it lost are still the
/// history's, wherever they are kept.
fn log_prefix(_: &AgModel, s: &State) -> bool {
    let epoch = s.manager.epoch;
    let owner = s.manager.primary;
    let owner_serves = s.serving_primary() == Some(owner);
    (0..s.replicas.len() as u8).all(|r| {
        s.dbs_of(r).iter().enumerate().all(|(db, d)| {
            let history = s.history(db as u8);
            let lost_by_owner =
                |txn| !owner_serves && s.db(owner, db as u8).lost_to_storage_fault(txn);
            let common = common_prefix(&d.log, history);
            let extra = || d.log[common..].iter().filter(|rec| !lost_by_owner(rec.txn));
            extra().all(|rec| rec.epoch < epoch && !history.iter().any(|h| h.txn == rec.txn))
                && (!d.failover_ready || extra().next().is_none())
        })
    })
}

/// Acknowledged commits of availability databases that no failover lost (a database removed
/// from the group is an ordinary database from then on: the group's guarantees end).
fn acked_and_kept(s: &State) -> impl Iterator<Item = (u8, &crate::state::Txn)> {
    s.txns
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.outcome == CommitOutcome::Acknowledged
                && t.lost_in.is_none()
                && s.group(t.db).in_group
        })
        .map(|(i, t)| (i as u8 + 1, t))
}

/// Whether replica `r`'s copy of a database counts as holding transaction `txn` for R-COMMIT-5/6:
/// hardened there, or cut from it by a storage fault (CorruptLog) it has not been brought back
/// from, unless it serves as the primary. The fault, not the protocol, destroyed that record;
/// what the protocol owes is that the copy never serves ([`damaged_log_never_primary`]) and
/// that a failover away from it counts what its target lacks (R-FAIL-5). A primary serving
/// without the record has lost it.
fn copy_holds(s: &State, r: Rid, db: Did, txn: u8) -> bool {
    let d = s.db(r, db);
    d.has_hardened(txn) || (d.lost_to_storage_fault(txn) && s.serving_primary() != Some(r))
}

fn durable(_: &AgModel, s: &State) -> bool {
    acked_and_kept(s).all(|(n, t)| {
        copy_holds(s, s.manager.primary, t.db, n)
            && (0..s.replicas.len() as u8)
                .all(|r| !s.db(r, t.db).failover_ready || copy_holds(s, r, t.db, n))
    })
}

fn hardened_on_k(_: &AgModel, s: &State) -> bool {
    acked_and_kept(s).all(|(n, t)| {
        let copies = (0..s.replicas.len() as u8)
            .filter(|&r| copy_holds(s, r, t.db, n))
            .count();
        copies > usize::from(t.required_at_ack)
    })
}

/// R-COMMIT-6: a replica whose log a storage fault damaged (the ghost of SUSPECT, set whatever
/// recovery made of the damage) does not hold the PRIMARY role until its copy is brought back:
/// its hardened log reaches what it had, or a primary records it SYNCHRONIZED. As primary it
/// would serve without records the group acknowledged, and make the other replicas revert to
/// its short log.
fn damaged_log_never_primary(_: &AgModel, s: &State) -> bool {
    s.replicas.iter().enumerate().all(|(r, rep)| {
        !(rep.up && rep.role == Role::Primary)
            || (0..s.databases)
                .all(|db| !s.group(db).in_group || s.db(r as u8, db).corrupt_through.is_none())
    })
}

fn definite_means_absent(_: &AgModel, s: &State) -> bool {
    s.txns.iter().enumerate().all(|(i, t)| {
        !matches!(t.outcome, CommitOutcome::DefiniteError(_))
            || (0..s.replicas.len() as u8).all(|r| s.db(r, t.db).position_of(i as u8 + 1).is_none())
    })
}

fn automatic_failover_safe(m: &AgModel, s: &State) -> bool {
    s.failovers.iter().all(|f| {
        f.kind != FailoverKind::Automatic
            || (f.target_ready
                && f.synchronous_pair
                && m.config().is_automatic(f.from)
                && m.config().is_automatic(f.to))
    })
}

fn planned_failover_safe(_: &AgModel, s: &State) -> bool {
    s.failovers
        .iter()
        .all(|f| f.kind != FailoverKind::Planned || (f.target_ready && f.synchronous_pair))
}

fn partners_held(_: &AgModel, s: &State) -> bool {
    s.replicas.iter().enumerate().all(|(r, rep)| {
        !rep.session
            || s.dbs_of(r as u8)
                .iter()
                .all(|d| !d.partner_hold || d.suspended.is_some())
    })
}

/// R-FAIL-4: "on a SYNCHRONIZED target it is a planned failover": no partner is suspended.
fn forced_onto_synchronized_is_planned(_: &AgModel, s: &State) -> bool {
    s.failovers
        .iter()
        .all(|f| !(f.kind == FailoverKind::Forced && f.target_ready && f.suspends_partners))
}

/// R-SYNC-5: a secondary database in session with the primary that is not suspended reverts
/// whatever it holds beyond its fork point before it moves data; it never extends a log of an
/// abandoned fork.
fn moving_copies_hold_history(_: &AgModel, s: &State) -> bool {
    let Some(p) = s.serving_primary() else {
        return true;
    };
    s.replicas.iter().enumerate().all(|(r, rep)| {
        let r = r as u8;
        r == p
            || !rep.session
            || (0..s.databases).all(|db| {
                let d = s.db(r, db);
                d.suspended.is_some()
                    || d.reverting
                    || !AgModel::joined(s, r, db)
                    || common_prefix(&d.log, s.history(db)) == d.log.len()
            })
    })
}

/// R-COMMIT-4 (with R-COMMIT-1/2/5), as liveness under fairness: at a quiescent state a commit
/// still waits only because fewer than k secondaries are SYNCHRONIZED, or because a connected
/// SYNCHRONIZED participant cannot harden it yet (its log disk stalled, or its last block lost
/// in transit and not noticed until the next one). Never for a disconnected secondary, an
/// asynchronous one, or nothing.
fn commits_wait_only_for_participants(m: &AgModel, s: &State) -> bool {
    if s.txns.iter().all(|t| t.outcome != CommitOutcome::Pending) || m.internal_step_possible(s) {
        return true;
    }
    let Some(p) = s.serving_primary() else {
        return true;
    };
    (0..s.databases).all(|db| {
        let Some(i) = s
            .txns
            .iter()
            .position(|t| t.db == db && t.outcome == CommitOutcome::Pending)
        else {
            return true;
        };
        let number = i as u8 + 1;
        m.synchronized_count(s, p, db) < s.required_synchronized
            || s.replicas.iter().enumerate().any(|(r, rep)| {
                let d = s.db(r as u8, db);
                r != usize::from(p)
                    && d.failover_ready
                    && rep.session
                    && !d.has_hardened(number)
                    && (rep.disk_stalled || usize::from(d.sent) > d.log.len())
            })
    })
}

fn only_forced_loses(_: &AgModel, s: &State) -> bool {
    s.txns.iter().all(|t| {
        t.lost_in
            .is_none_or(|i| s.failovers[usize::from(i)].kind == FailoverKind::Forced)
    })
}

/// R-SYNC-6 (with R-COMMIT-4 and R-FAIL-6), as liveness under fairness: once every server is
/// up, every link works and the manager has quorum, the protocol's own steps lead to a state
/// where none is left (the internal steps cannot cycle: each one moves a counter forward or
/// settles a flag). Every such quiescent state must have a serving primary (where a manager
/// decides), every resumed secondary caught up with it (SYNCHRONIZED when synchronous), and no
/// commit left pending unless R-COMMIT-5 holds it back.
fn converges_when_healthy(m: &AgModel, s: &State) -> bool {
    let healthy = s.replicas.iter().all(|r| r.up && !r.disk_stalled)
        && s.net.replica_cuts == 0
        && s.net.manager_cuts == 0
        && s.manager.quorum
        // A history owner whose log was found damaged (SUSPECT) never serves again: the
        // group has no primary until a failover moves the history (R-COMMIT-6).
        && !AgModel::has_suspect_database(s, s.manager.primary)
        // A lost last record is noticed only when the next one leaves a gap (LoseLogBlock,
        // R-SYNC-1): until a client commits again that secondary may stay behind.
        && s.dbs.iter().all(|d| usize::from(d.sent) <= d.log.len());
    if !healthy || m.internal_step_possible(s) {
        return true;
    }
    let Some(p) = s.serving_primary() else {
        return !m.config().ag.cluster_type.has_manager();
    };
    let caught_up = s.replicas.iter().enumerate().all(|(i, r)| {
        i == usize::from(p)
            || r.removed
            || s.dbs_of(i as u8).iter().enumerate().all(|(db, d)| {
                d.suspended.is_some()
                    || !AgModel::joined(s, i as u8, db as u8)
                    || s.db(p, db as u8).suspended.is_some()
                    || (r.session
                        && d.log[..] == *s.history(db as u8)
                        && usize::from(d.hardened) == d.log.len()
                        && d.redone == d.hardened
                        && (d.failover_ready || !m.synchronous_pair(p, i as u8)))
            })
    });
    let nothing_stuck = s.txns.iter().all(|t| {
        t.outcome != CommitOutcome::Pending
            || m.synchronized_count(s, p, t.db) < s.required_synchronized
    });
    caught_up && nothing_stuck
}

// ---------------------------------------------------------------------- active secondaries

fn never(s: &State, flag: u32) -> bool {
    !s.has_seen(flag)
}

fn secondary_backup_kinds(_: &AgModel, s: &State) -> bool {
    never(s, seen::BACKUP_KIND_ON_SECONDARY)
}

fn secondary_backs_up_when_moving(_: &AgModel, s: &State) -> bool {
    never(s, seen::BACKUP_WHILE_NOT_MOVING)
}

/// R-BACKUP-3: every log backup continued the chain on its fork (a later fork restarts at or
/// before the end, from its fork point), covered only history, and no COPY_ONLY backup moved
/// the chain or the differential base.
fn one_log_chain(_: &AgModel, s: &State) -> bool {
    never(
        s,
        seen::BACKUP_CHAIN_BROKEN | seen::BACKUP_OUTSIDE_HISTORY | seen::COPY_ONLY_MOVED_CHAIN,
    )
}

fn restoring_moves_nothing(_: &AgModel, s: &State) -> bool {
    (0..s.replicas.len() as u8).all(|r| {
        (0..s.databases).all(|db| {
            let d = s.db(r, db);
            AgModel::joined(s, r, db) || (!d.failover_ready && !d.reverting)
        }) && (!s.replicas[usize::from(r)].removed || !s.replicas[usize::from(r)].session)
    })
}

fn no_restore_on_availability_database(_: &AgModel, s: &State) -> bool {
    never(s, seen::RESTORED_JOINED_DATABASE)
}

fn removal_leaves_restoring(_: &AgModel, s: &State) -> bool {
    let p = s.manager.primary;
    !s.replicas[usize::from(p)].removed
        && s.groups().enumerate().all(|(db, g)| {
            g.in_group
                || (0..s.replicas.len() as u8)
                    .filter(|&r| Some(r) != g.kept_online_by)
                    .all(|r| s.db(r, db as u8).restoring)
        })
}

fn repaired_from_primary_correctly(_: &AgModel, s: &State) -> bool {
    never(s, seen::BAD_REPAIR_FROM_PRIMARY)
}

fn repaired_from_secondary_correctly(_: &AgModel, s: &State) -> bool {
    never(s, seen::BAD_REPAIR_FROM_SECONDARY)
}

fn reads_accepted(_: &AgModel, s: &State) -> bool {
    never(s, seen::READ_NOT_ACCEPTED)
}

fn reads_see_redone_history(_: &AgModel, s: &State) -> bool {
    never(s, seen::READ_NOT_REDONE_HISTORY)
}

fn full_refused_on_secondary(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::FULL_REFUSED_ON_SECONDARY)
}

fn differential_refused_on_secondary(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::DIFFERENTIAL_REFUSED_ON_SECONDARY)
}

fn copy_only_log_refused_on_secondary(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::COPY_ONLY_LOG_REFUSED_ON_SECONDARY)
}

fn backup_refused_not_moving(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::BACKUP_REFUSED_NOT_MOVING)
}

fn restore_refused(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::RESTORE_REFUSED)
}

fn remove_primary_refused(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::REMOVE_PRIMARY_REFUSED)
}

fn read_routed_to_secondary(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::READ_ON_SECONDARY)
}

fn read_falls_back_to_primary(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::READ_FELL_BACK_TO_PRIMARY)
}

/// A copy that a storage fault damaged (its lost transactions are recorded) is SUSPECT no more:
/// it caught up with a primary or was recorded SYNCHRONIZED (R-COMMIT-6).
fn suspect_database_brought_back(_: &AgModel, s: &State) -> bool {
    s.dbs
        .iter()
        .any(|d| d.lost_to_corruption != 0 && d.suspect.is_none() && d.corrupt_through.is_none())
}

fn hazard_h6(_: &AgModel, s: &State) -> bool {
    s.has_seen(seen::CHAIN_ACROSS_REPLICAS)
}

// ---------------------------------------------------------------------- hazards

fn lost_by_forced(
    s: &State,
    pred: impl Fn(&crate::state::FailoverRecord, &crate::state::Txn) -> bool,
) -> bool {
    s.txns.iter().any(|t| {
        t.lost_in.is_some_and(|i| {
            let f = &s.failovers[usize::from(i)];
            f.kind == FailoverKind::Forced && pred(f, t)
        })
    })
}

fn hazard_h1(m: &AgModel, s: &State) -> bool {
    lost_by_forced(s, |f, t| {
        m.config().is_synchronous(f.to) && f.target_timed_out && t.required_at_ack == 0
    })
}

fn hazard_h2(m: &AgModel, s: &State) -> bool {
    lost_by_forced(s, |f, _| !m.config().is_synchronous(f.to))
}

fn hazard_h3(_: &AgModel, s: &State) -> bool {
    {
        s.failovers.iter().any(|f| {
            let former = &s.replicas[usize::from(f.from)];
            f.kind == FailoverKind::Forced
                && !f.target_ready
                && former.up
                && former.role == Role::Secondary
                && s.dbs_of(f.from).iter().enumerate().any(|(db, d)| {
                    let history = s.history(db as u8);
                    d.reverting
                        && d.log[common_prefix(&d.log, history)..]
                            .iter()
                            .any(|rec| s.txn(rec.txn).outcome == CommitOutcome::Acknowledged)
                })
        })
    }
}

fn hazard_h4(_: &AgModel, s: &State) -> bool {
    s.txns
        .iter()
        .any(|t| t.outcome == CommitOutcome::DefiniteError(DefiniteReason::TooFewSynchronized))
}

fn hazard_h5(_: &AgModel, s: &State) -> bool {
    s.failovers.iter().enumerate().any(|(i, f)| {
        f.kind == FailoverKind::Automatic
            && f.acked_before >= 1
            && s.txns.iter().all(|t| t.lost_in != Some(i as u8))
    })
}

// ---------------------------------------------------------------------- coverage

/// Why an action kind cannot happen in a configuration at all (a budget of 0, no cluster
/// manager, no synchronous pair …), or `None` when it can and so must be taken somewhere.
pub fn not_applicable(kind: ActionKind, c: &ModelConfig) -> Option<&'static str> {
    use ActionKind::*;
    let b = c.bounds;
    let manager = c.ag.cluster_type.has_manager();
    let replicas = c.replica_count() as u8;
    let synchronous = (0..replicas).filter(|&r| c.is_synchronous(r)).count();
    let automatic = (0..replicas).filter(|&r| c.is_automatic(r)).count();
    let faults = b.crashes > 0 || b.network_faults > 0;
    let seeding = (0..replicas).any(|r| c.seeds_automatically(r));
    let checks: &[(bool, &'static str)] = match kind {
        ClientCommit | AckCommit | ShipLog | HardenLog | RedoLog => {
            &[(b.transactions > 0, "bounds.transactions is 0")]
        }
        PlannedFailover => &[
            (
                manager,
                "CLUSTER_TYPE = NONE has no planned failover (R-QUORUM-5)",
            ),
            (b.failovers > 0, "bounds.failovers is 0"),
            (
                synchronous >= 2,
                "fewer than two SYNCHRONOUS_COMMIT replicas",
            ),
        ],
        ForcedFailover => &[(b.forced_failovers > 0, "bounds.forced_failovers is 0")],
        DemoteToSecondary => &[(!manager, "only CLUSTER_TYPE = NONE demotes by hand")],
        Suspend => &[(b.suspends > 0, "bounds.suspends is 0")],
        Resume => &[(
            b.suspends > 0 || b.forced_failovers > 0,
            "nothing can be suspended (bounds.suspends and bounds.forced_failovers are 0)",
        )],
        SetRequiredSynchronized => &[(b.config_changes > 0, "bounds.config_changes is 0")],
        Crash | Restart | DiskStall => &[(b.crashes > 0, "bounds.crashes is 0")],
        HealthFault => &[
            (manager, "CLUSTER_TYPE = NONE has no failover policy"),
            (b.crashes > 0, "bounds.crashes is 0"),
            (
                c.ag.failure_condition_level >= 2,
                "FAILURE_CONDITION_LEVEL 1 weighs only server down",
            ),
        ],
        Partition | Heal | SessionTimeout => {
            &[(b.network_faults > 0, "bounds.network_faults is 0")]
        }
        LoseQuorum | RegainQuorum | LeaseExpiry | LoseManager => &[
            (manager, "CLUSTER_TYPE = NONE has no cluster manager"),
            (b.network_faults > 0, "bounds.network_faults is 0"),
        ],
        LoseLogBlock => &[(b.network_faults > 0, "bounds.network_faults is 0")],
        Connect => &[],
        ClientRead => &[(b.reads > 0, "bounds.reads is 0")],
        Backup => &[(b.backups > 0, "bounds.backups is 0")],
        AddDatabase | RemoveDatabase | RemoveReplica | RestoreDatabase | JoinDatabase => {
            &[(b.database_changes > 0, "bounds.database_changes is 0")]
        }
        SeedDatabase => &[
            (b.database_changes > 0, "bounds.database_changes is 0"),
            (seeding, "no replica has SEEDING_MODE = AUTOMATIC"),
        ],
        CorruptPage | RepairFromPrimary => {
            &[(b.page_corruptions > 0, "bounds.page_corruptions is 0")]
        }
        CorruptLog => &[
            (b.log_corruptions > 0, "bounds.log_corruptions is 0"),
            (
                b.crashes > 0,
                "bounds.crashes is 0 (a log is damaged while its server is down)",
            ),
            (
                b.transactions >= 2,
                "fewer than 2 transactions (a damaged record needs a valid one after it)",
            ),
        ],
        RepairFromSecondary => &[
            (b.page_corruptions > 0, "bounds.page_corruptions is 0"),
            (
                synchronous >= 2,
                "fewer than two SYNCHRONOUS_COMMIT replicas",
            ),
        ],
        MarkSynchronized => &[(
            synchronous >= 2,
            "fewer than two SYNCHRONOUS_COMMIT replicas",
        )],
        DropFromSynchronized => &[
            (
                synchronous >= 2,
                "fewer than two SYNCHRONOUS_COMMIT replicas",
            ),
            (
                faults || b.suspends > 0,
                "no crash, network fault or suspend can happen",
            ),
        ],
        Revert => &[
            (b.failovers > 0, "bounds.failovers is 0"),
            (b.transactions > 0, "bounds.transactions is 0"),
        ],
        ManagerLeaseExpiry | RestorePrimary | ResolveToSecondary => &[
            (manager, "CLUSTER_TYPE = NONE has no cluster manager"),
            (faults, "no crash or network fault can happen"),
        ],
        AutomaticFailover => &[
            (manager, "CLUSTER_TYPE = NONE has no automatic failover"),
            (b.failovers > 0, "bounds.failovers is 0"),
            (
                automatic >= 2,
                "fewer than two SYNCHRONOUS_COMMIT replicas with automatic failover",
            ),
            (faults, "no crash or network fault can happen"),
        ],
    };
    checks.iter().find(|(holds, _)| !holds).map(|(_, why)| *why)
}

fn covered<const K: usize>(m: &AgModel, s: &State) -> bool {
    m.enabled_kinds(s) & (1 << K) != 0
}

const COVERAGE: [Condition; 43] = [
    covered::<0>,
    covered::<1>,
    covered::<2>,
    covered::<3>,
    covered::<4>,
    covered::<5>,
    covered::<6>,
    covered::<7>,
    covered::<8>,
    covered::<9>,
    covered::<10>,
    covered::<11>,
    covered::<12>,
    covered::<13>,
    covered::<14>,
    covered::<15>,
    covered::<16>,
    covered::<17>,
    covered::<18>,
    covered::<19>,
    covered::<20>,
    covered::<21>,
    covered::<22>,
    covered::<23>,
    covered::<24>,
    covered::<25>,
    covered::<26>,
    covered::<27>,
    covered::<28>,
    covered::<29>,
    covered::<30>,
    covered::<31>,
    covered::<32>,
    covered::<33>,
    covered::<34>,
    covered::<35>,
    covered::<36>,
    covered::<37>,
    covered::<38>,
    covered::<39>,
    covered::<40>,
    covered::<41>,
    covered::<42>,
];

const _: () = assert!(COVERAGE.len() == ActionKind::ALL.len());

// ---------------------------------------------------------------------- focused runs

/// Property `I` of [`all_specs`] as its own Stateright property (focused runs). The first
/// violating (always) or showing (sometimes) state is reported once; later ones are not, so
/// the path kept is the first found, which breadth-first is a shortest one.
fn focused<const I: usize>(m: &AgModel, s: &State) -> bool {
    let spec = &all_specs()[I];
    let Some(p) = &m.probes else {
        return (spec.condition)(m, s);
    };
    match spec.kind {
        PropertyKind::Sometimes => !p.latched(I) && (spec.condition)(m, s) && p.latch(I),
        PropertyKind::Always | PropertyKind::Eventually => {
            p.latched(I) || (spec.condition)(m, s) || !p.latch(I)
        }
    }
}

const FOCUSED: [Condition; 96] = [
    focused::<0>,
    focused::<1>,
    focused::<2>,
    focused::<3>,
    focused::<4>,
    focused::<5>,
    focused::<6>,
    focused::<7>,
    focused::<8>,
    focused::<9>,
    focused::<10>,
    focused::<11>,
    focused::<12>,
    focused::<13>,
    focused::<14>,
    focused::<15>,
    focused::<16>,
    focused::<17>,
    focused::<18>,
    focused::<19>,
    focused::<20>,
    focused::<21>,
    focused::<22>,
    focused::<23>,
    focused::<24>,
    focused::<25>,
    focused::<26>,
    focused::<27>,
    focused::<28>,
    focused::<29>,
    focused::<30>,
    focused::<31>,
    focused::<32>,
    focused::<33>,
    focused::<34>,
    focused::<35>,
    focused::<36>,
    focused::<37>,
    focused::<38>,
    focused::<39>,
    focused::<40>,
    focused::<41>,
    focused::<42>,
    focused::<43>,
    focused::<44>,
    focused::<45>,
    focused::<46>,
    focused::<47>,
    focused::<48>,
    focused::<49>,
    focused::<50>,
    focused::<51>,
    focused::<52>,
    focused::<53>,
    focused::<54>,
    focused::<55>,
    focused::<56>,
    focused::<57>,
    focused::<58>,
    focused::<59>,
    focused::<60>,
    focused::<61>,
    focused::<62>,
    focused::<63>,
    focused::<64>,
    focused::<65>,
    focused::<66>,
    focused::<67>,
    focused::<68>,
    focused::<69>,
    focused::<70>,
    focused::<71>,
    focused::<72>,
    focused::<73>,
    focused::<74>,
    focused::<75>,
    focused::<76>,
    focused::<77>,
    focused::<78>,
    focused::<79>,
    focused::<80>,
    focused::<81>,
    focused::<82>,
    focused::<83>,
    focused::<84>,
    focused::<85>,
    focused::<86>,
    focused::<87>,
    focused::<88>,
    focused::<89>,
    focused::<90>,
    focused::<91>,
    focused::<92>,
    focused::<93>,
    focused::<94>,
    focused::<95>,
];
