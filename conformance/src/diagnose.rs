//! Which rule a failure breaks.
//!
//! Two sources, strongest first:
//!
//! 1. **Spec mutants that behave like the system.** Each mutant of the spec
//!    ([`hadr_model::Mutant`]) is a named bug. The failing run's history (every observation up
//!    to the failing one, with the actions between) is replayed on each mutant's model by
//!    refinement: a mutant whose behaviours include that history explains the failure, and
//!    the rule its bug breaks ([`hadr_model::Mutant::breaks`]) is named first: "behaves like
//!    spec mutant `resume-without-revert`, which breaks R-FAIL-4".
//! 2. **The fields that differ** from the closest observations the spec allows, mapped to the
//!    rules that govern them ([`field_rules`]), then the rule of the failing step's action.
//!
//! The second list never replaces the first; it follows it, so that a bug no mutant mirrors is
//! still pointed at.

use crate::judge::distance;
use crate::refine::{Refinement, MAX_STATES};
use hadr_model::{Action, AgModel, ModelConfig, Mutant};
use hadr_types::{CommitOutcome, Observation, Role, SuspendReason, SyncState};

/// What a failure says about the bug.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The rules involved, the one broken first.
    pub rules: Vec<&'static str>,
    /// The spec mutants whose behaviour explains every observation of the failing run, in
    /// the order their rules are named.
    pub like: Vec<Mutant>,
}

/// Whether the model `m` has a behaviour that shows `history[0]` once set up and `history[i]`
/// after `actions[i - 1]`.
pub fn explains(m: AgModel, actions: &[Action], history: &[Observation]) -> bool {
    let Ok(mut r) = Refinement::new(m, MAX_STATES) else {
        return false;
    };
    let Some((first, rest)) = history.split_first() else {
        return true;
    };
    if !r.observe(first) {
        return false;
    }
    for (action, observed) in actions.iter().zip(rest) {
        if r.step(action).is_err() || !r.observe(observed) {
            return false;
        }
    }
    true
}

/// The diagnosis of a failure: `actions` are the environment actions up to the failing step,
/// `history` every observation from the one after setup to the failing one (one more than
/// `actions`), `allowed` what the spec allows at the failing step given the history before
/// it, closest first.
pub fn diagnose(
    config: &ModelConfig,
    actions: &[Action],
    history: &[Observation],
    allowed: &[Observation],
) -> Diagnosis {
    let Some(observed) = history.last() else {
        return Diagnosis::default();
    };
    let previous = history.len().checked_sub(2).map(|i| &history[i]);
    let action = actions.last();
    let fields = involved_rules(config, previous, allowed, observed, action);
    let like: Vec<Mutant> = crate::adequacy::applicable_mutants(config)
        .into_iter()
        .filter(|&m| {
            let model = AgModel::with_mutant(config.clone(), m).for_conformance();
            explains(model, actions, history)
        })
        .collect();
    ranked(like, fields)
}

/// The diagnosis of mutants `like` that explain a failure equally well, and the rules of its
/// differing `fields`: the mutants whose rule the fields point at come first, then the others
/// (in the order of `Mutant::ALL`); their rules, then the fields' others.
pub fn ranked(mut like: Vec<Mutant>, fields: Vec<&'static str>) -> Diagnosis {
    like.sort_by_key(|m| !fields.contains(&m.breaks()));
    let mut rules: Vec<&'static str> = Vec::new();
    for r in like.iter().map(|m| m.breaks()).chain(fields) {
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    Diagnosis { rules, like }
}

/// The rules the fields where `observed` differs from `expected` are governed by, then the
/// rule of the step's environment action. `previous` is what the system showed after the
/// step before (`None` right after setup).
///
/// - a replica PRIMARY where the spec allows no such thing: R-QUORUM-3 if it was primary
///   already (it should have stepped down); else the failover rule of the step's action
///   (R-FAIL-3 planned, R-FAIL-4 forced, R-FAIL-2 otherwise) and R-ROLE-4; any other role:
///   R-ROLE-2;
/// - a suspension reason: R-FAIL-4 where SUSPEND_FROM_PARTNER is involved, else R-SYNC-7;
/// - a synchronization state, where the role and suspension agree: R-SYNC-4 for an
///   asynchronous-commit replica shown SYNCHRONIZED; R-FAIL-6 where REVERTING or INITIALIZING
///   is involved (the revert of a rejoining copy); R-SYNC-6 for a copy not SYNCHRONIZED where
///   it should be; R-SYNC-3 otherwise;
/// - the end of log: on the primary, a log that lost a record: R-COMMIT-6, R-FAIL-5; on a
///   secondary, records kept beyond what the spec allows: R-SYNC-5, R-FAIL-6; fewer: R-SYNC-1;
/// - hardened or redone LSNs: R-SYNC-2;
/// - a client outcome: acknowledged where the spec waits: R-COMMIT-2; acknowledged where the
///   spec refuses: R-COMMIT-5; acknowledged where a step-down leaves it unknown, or a definite
///   answer where it is indefinite (or the reverse): R-COMMIT-7; still waiting where the spec
///   acknowledges: R-COMMIT-4.
pub fn field_rules(
    config: &ModelConfig,
    previous: Option<&Observation>,
    expected: &Observation,
    observed: &Observation,
    action: Option<&Action>,
) -> Vec<&'static str> {
    let mut rules = Vec::new();
    let mut add = |r: &'static str| {
        if !rules.contains(&r) {
            rules.push(r);
        }
    };
    for (i, (e, o)) in expected.replicas.iter().zip(&observed.replicas).enumerate() {
        let role_differs = e.role != o.role;
        if role_differs {
            if o.role == Some(Role::Primary) {
                let was_primary = previous
                    .and_then(|p| p.replicas.get(i))
                    .is_some_and(|p| p.role == Some(Role::Primary));
                if was_primary {
                    add("R-QUORUM-3");
                } else {
                    add(match action {
                        Some(Action::PlannedFailover { .. }) => "R-FAIL-3",
                        Some(Action::ForcedFailover { .. }) => "R-FAIL-4",
                        _ => "R-FAIL-2",
                    });
                    add("R-ROLE-4");
                }
            } else {
                add("R-ROLE-2");
            }
        }
        for (ed, od) in e.databases.iter().zip(&o.databases) {
            let suspension_differs = ed.suspended != od.suspended;
            if suspension_differs {
                let partner = Some(SuspendReason::Partner);
                add(if ed.suspended == partner || od.suspended == partner {
                    "R-FAIL-4"
                } else {
                    "R-SYNC-7"
                });
            }
            if ed.end_of_log_lsn != od.end_of_log_lsn {
                if o.role == Some(Role::Primary) && od.end_of_log_lsn < ed.end_of_log_lsn {
                    add("R-COMMIT-6");
                    add("R-FAIL-5");
                } else if od.end_of_log_lsn > ed.end_of_log_lsn {
                    add("R-SYNC-5");
                    add("R-FAIL-6");
                } else {
                    add("R-SYNC-1");
                }
            }
            if ed.last_hardened_lsn != od.last_hardened_lsn
                || ed.last_redone_lsn != od.last_redone_lsn
            {
                add("R-SYNC-2");
            }
            let state_differs = ed.synchronization_state != od.synchronization_state
                || ed.is_failover_ready != od.is_failover_ready;
            if state_differs && !role_differs && !suspension_differs {
                let undo = [Some(SyncState::Reverting), Some(SyncState::Initializing)];
                add(
                    if od.synchronization_state == Some(SyncState::Synchronized)
                        && !config.is_synchronous(i as u8)
                    {
                        "R-SYNC-4"
                    } else if undo.contains(&ed.synchronization_state)
                        || undo.contains(&od.synchronization_state)
                    {
                        "R-FAIL-6"
                    } else if ed.synchronization_state == Some(SyncState::Synchronized) {
                        "R-SYNC-6"
                    } else {
                        "R-SYNC-3"
                    },
                );
            }
        }
    }
    for (e, o) in expected.transactions.iter().zip(&observed.transactions) {
        match (e.outcome, o.outcome) {
            (e, o) if e == o => {}
            (CommitOutcome::Pending, CommitOutcome::Acknowledged) => add("R-COMMIT-2"),
            (CommitOutcome::DefiniteError(_), CommitOutcome::Acknowledged) => add("R-COMMIT-5"),
            (CommitOutcome::Acknowledged, CommitOutcome::Pending) => add("R-COMMIT-4"),
            _ => add("R-COMMIT-7"),
        }
    }
    if let Some(action) = action {
        add(action.kind().rule());
    }
    rules
}

/// How much farther than the closest allowed observation another may be for its differences
/// to count among the rules involved.
const RULE_MARGIN: usize = 2;

/// The allowed observations nearly as close to `observed` as the closest (a wrong observation
/// is often one field from several allowed ones, each telling of another broken rule).
/// `allowed` is sorted closest first.
pub fn nearly_closest<'a>(allowed: &'a [Observation], observed: &Observation) -> &'a [Observation] {
    let Some(closest) = allowed.first() else {
        return allowed;
    };
    let nearest = distance(closest, observed);
    let n = allowed
        .iter()
        .take_while(|e| distance(e, observed) <= nearest + RULE_MARGIN)
        .count();
    &allowed[..n]
}

/// [`field_rules`] over every allowed observation nearly as close as the closest.
pub fn involved_rules(
    config: &ModelConfig,
    previous: Option<&Observation>,
    allowed: &[Observation],
    observed: &Observation,
    action: Option<&Action>,
) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = Vec::new();
    for e in nearly_closest(allowed, observed) {
        for r in field_rules(config, previous, e, observed, action) {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    all
}
