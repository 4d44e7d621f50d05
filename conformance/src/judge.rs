//! Judging: a scenario replayed on a system under test, each observation compared with what
//! the model allows after that step.

use crate::scenario::Scenario;
use crate::sut::{Sut, SutError};
use hadr_model::Action;
use hadr_model::ModelConfig;
use hadr_types::{CommitOutcome, Observation, Role, SuspendReason};

/// Where a scenario stopped agreeing with the model.
#[derive(Clone, Debug)]
pub struct Disagreement {
    /// The step (1-based; 0: right after setup).
    pub step: usize,
    /// What the system showed.
    pub observed: Observation,
    /// What the model allows, the closest first.
    pub expected: Vec<Observation>,
    /// What the system showed after the step before (`None` at step 0).
    pub previous: Option<Observation>,
}

/// The rules a disagreement involves: what the fields that differ from the closest allowed
/// observation are governed by, then the rule of the step's environment action.
///
/// - a replica PRIMARY where the model allows no such thing: R-QUORUM-3 if it was already
///   primary (it should have stepped down), else R-FAIL-2 and R-ROLE-4 (it should not have
///   been promoted); any other role: R-ROLE-2;
/// - a client outcome: acknowledged where the model does not allow it: R-COMMIT-2, R-COMMIT-5
///   (and R-COMMIT-6 after a crash or failover); still pending where the model acknowledges:
///   R-COMMIT-4; definite against indefinite: R-COMMIT-7;
/// - a suspension reason: R-FAIL-4 when SUSPEND_FROM_PARTNER is involved, else R-SYNC-7;
/// - a synchronization state or failover readiness: R-SYNC-3;
/// - the end of log: R-SYNC-1; hardened or redone LSNs: R-SYNC-2.
pub fn rules(
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
        if e.role != o.role {
            if o.role == Some(Role::Primary) {
                let was_primary = previous
                    .and_then(|p| p.replicas.get(i))
                    .is_some_and(|p| p.role == Some(Role::Primary));
                if was_primary {
                    add("R-QUORUM-3");
                } else {
                    add("R-FAIL-2");
                    add("R-ROLE-4");
                }
            } else {
                add("R-ROLE-2");
            }
        }
        for (e, o) in e.databases.iter().zip(&o.databases) {
            if e.suspended != o.suspended {
                let partner = Some(SuspendReason::Partner);
                add(if e.suspended == partner || o.suspended == partner {
                    "R-FAIL-4"
                } else {
                    "R-SYNC-7"
                });
            }
            if e.synchronization_state != o.synchronization_state
                || e.is_failover_ready != o.is_failover_ready
            {
                add("R-SYNC-3");
            }
            if e.end_of_log_lsn != o.end_of_log_lsn {
                add("R-SYNC-1");
            }
            if e.last_hardened_lsn != o.last_hardened_lsn || e.last_redone_lsn != o.last_redone_lsn
            {
                add("R-SYNC-2");
            }
        }
    }
    let lossy = matches!(
        action,
        Some(Action::Crash { .. } | Action::ForcedFailover { .. } | Action::HealthFault { .. })
    );
    // The primary moved in this step: an acknowledgement the model does not give then also
    // implicates the choice of the new primary (one that was not SYNCHRONIZED lacks it).
    let primary_of = |o: &Observation| {
        o.replicas
            .iter()
            .position(|r| r.role == Some(Role::Primary))
    };
    let moved = previous.is_some_and(|p| primary_of(p) != primary_of(observed))
        && primary_of(observed).is_some();
    let target_rule = match action {
        Some(Action::PlannedFailover { .. }) => Some("R-FAIL-3"),
        Some(Action::ForcedFailover { .. }) => None, // may lose commits (R-FAIL-5)
        _ => Some("R-FAIL-2"),
    };
    for (e, o) in expected.transactions.iter().zip(&observed.transactions) {
        match (e.outcome, o.outcome) {
            (e, o) if e == o => {}
            (_, CommitOutcome::Acknowledged) => {
                add("R-COMMIT-2");
                add("R-COMMIT-5");
                if lossy {
                    add("R-COMMIT-6");
                }
                if let Some(rule) = target_rule.filter(|_| moved) {
                    add(rule);
                }
            }
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

/// The rules a failure involves: those of the differences from each allowed observation
/// nearly as close as the closest (a wrong observation is often one field from several
/// allowed ones, each telling another broken rule). `expected` is sorted closest first (as a
/// [`Disagreement`]'s); `action` is the environment action of the failing step.
pub fn involved_rules(
    previous: Option<&Observation>,
    expected: &[Observation],
    observed: &Observation,
    action: Option<&Action>,
) -> Vec<&'static str> {
    let Some(closest) = expected.first() else {
        return Vec::new();
    };
    let nearest = distance(closest, observed);
    let mut all: Vec<&'static str> = Vec::new();
    for e in expected
        .iter()
        .take_while(|e| distance(e, observed) <= nearest + RULE_MARGIN)
    {
        for r in rules(previous, e, observed, action) {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    all
}

/// The verdict on one scenario.
#[derive(Debug)]
pub enum Verdict {
    /// Every observation is one the model allows.
    Pass,
    /// An observation the model does not allow.
    Fail(Disagreement),
    /// The adapter or the system could not go on.
    Error {
        /// The step (1-based; 0: setup).
        step: usize,
        /// What went wrong.
        error: SutError,
    },
}

/// The fields where `observed` differs from `expected`, as `path: expected → observed` lines
/// (`replicas[1].role: "PRIMARY" → "RESOLVING"`).
pub fn diff(expected: &Observation, observed: &Observation) -> Vec<String> {
    use serde_json::Value;
    fn walk(path: String, e: &Value, o: &Value, out: &mut Vec<String>) {
        match (e, o) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, v) in x {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(sub, v, y.get(k).unwrap_or(&Value::Null), out);
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (v, w)) in x.iter().zip(y).enumerate() {
                    walk(format!("{path}[{i}]"), v, w, out);
                }
            }
            _ if e != o => out.push(format!("{path}: {e} → {o}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        String::new(),
        &serde_json::to_value(expected).unwrap_or_default(),
        &serde_json::to_value(observed).unwrap_or_default(),
        &mut out,
    );
    out
}

/// How many fields of `a` and `b` differ.
pub fn distance(a: &Observation, b: &Observation) -> usize {
    let a = serde_json::to_value(a).unwrap_or_default();
    let b = serde_json::to_value(b).unwrap_or_default();
    fn walk(a: &serde_json::Value, b: &serde_json::Value) -> usize {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => x
                .iter()
                .map(|(k, v)| y.get(k).map_or(1, |w| walk(v, w)))
                .sum(),
            (Value::Array(x), Value::Array(y)) => {
                x.iter().zip(y).map(|(v, w)| walk(v, w)).sum::<usize>() + x.len().abs_diff(y.len())
            }
            _ => usize::from(a != b),
        }
    }
    walk(&a, &b)
}

fn judge_one(
    step: usize,
    observed: &Observation,
    expected: &[Observation],
    previous: Option<&Observation>,
) -> Option<Disagreement> {
    if expected.contains(observed) {
        return None;
    }
    let mut expected = expected.to_vec();
    expected.sort_by_key(|e| distance(e, observed));
    Some(Disagreement {
        step,
        observed: observed.clone(),
        expected,
        previous: previous.cloned(),
    })
}

/// Replays `scenario` on `sut` and judges each observation. A panic inside the system under
/// test (an in-process adapter) is an error of the scenario, not of the harness.
pub fn judge(scenario: &Scenario, sut: &mut dyn Sut) -> Verdict {
    let step = std::cell::Cell::new(0);
    let run = std::panic::AssertUnwindSafe(|| judge_steps(scenario, sut, &step));
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        Verdict::Error {
            step: step.get(),
            error: SutError::Failed(format!("the system under test panicked: {message}")),
        }
    })
}

fn judge_steps(scenario: &Scenario, sut: &mut dyn Sut, at: &std::cell::Cell<usize>) -> Verdict {
    let config = match ModelConfig::from_toml_str(&scenario.config) {
        Ok(c) => c,
        Err(e) => {
            return Verdict::Error {
                step: 0,
                error: SutError::Failed(format!("the scenario's configuration: {e}")),
            }
        }
    };
    if let Err(error) = sut.setup(&config.ag) {
        return Verdict::Error { step: 0, error };
    }
    let mut previous = match sut.observe() {
        Ok(o) => {
            if let Some(d) = judge_one(0, &o, &scenario.initial, None) {
                return Verdict::Fail(d);
            }
            o
        }
        Err(error) => return Verdict::Error { step: 0, error },
    };
    for (i, step) in scenario.steps.iter().enumerate() {
        at.set(i + 1);
        if let Err(error) = sut.step(&step.action) {
            return Verdict::Error { step: i + 1, error };
        }
        match sut.observe() {
            Ok(o) => {
                if let Some(d) = judge_one(i + 1, &o, &step.expected, Some(&previous)) {
                    return Verdict::Fail(d);
                }
                previous = o;
            }
            Err(error) => return Verdict::Error { step: i + 1, error },
        }
    }
    Verdict::Pass
}
