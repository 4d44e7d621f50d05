//! Judging: a scenario replayed on a system under test, each observation judged by
//! refinement ([`crate::refine`]): it must be the observation of a spec state consistent with
//! every observation before it.

use crate::refine::{Refinement, TooBroad, MAX_STATES};
use crate::scenario::Scenario;
use crate::sut::{Sut, SutError};
use hadr_model::{Action, AgModel, ModelConfig};
use hadr_types::Observation;

/// Where a scenario stopped agreeing with the model.
#[derive(Clone, Debug)]
pub struct Disagreement {
    /// The step (1-based; 0: right after setup).
    pub step: usize,
    /// What the system showed.
    pub observed: Observation,
    /// What the model allows at this step, given everything the system showed before it,
    /// the closest first.
    pub expected: Vec<Observation>,
    /// What the system showed after the step before (`None` at step 0).
    pub previous: Option<Observation>,
    /// What the system showed after setup and after each step before this one.
    pub history: Vec<Observation>,
}

impl Disagreement {
    /// Every observation of the run, the failing one last.
    pub fn observations(&self) -> Vec<Observation> {
        let mut all = self.history.clone();
        all.push(self.observed.clone());
        all
    }
}

/// The verdict on one scenario.
#[derive(Debug)]
pub enum Verdict {
    /// Every observation is one the model allows after the ones before it.
    Pass,
    /// An observation the model does not allow after the ones before it.
    Fail(Disagreement),
    /// The adapter or the system could not go on.
    Error {
        /// The step (1-based; 0: setup).
        step: usize,
        /// What went wrong.
        error: SutError,
    },
    /// The states the model may be in grew past what the judge tracks: neither passed nor
    /// failed (never counted as a pass).
    TooBroad {
        /// The step (1-based; 0: setup).
        step: usize,
        /// The cap.
        cap: usize,
    },
}

/// The model that judges `scenario`: its configuration, with room for every client commit
/// the scenario makes (a hand-written scenario may make more than the bounds it names).
pub fn judging_model(scenario: &Scenario) -> Result<ModelConfig, String> {
    let mut config = ModelConfig::from_toml_str(&scenario.config)
        .map_err(|e| format!("the scenario's configuration: {e}"))?;
    let commits = scenario
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::ClientCommit { .. }))
        .count();
    if commits > usize::from(config.bounds.transactions) {
        if commits > usize::from(hadr_model::config::MAX_TRANSACTIONS) {
            return Err(format!(
                "the scenario makes {commits} client commits; the model numbers at most {}",
                hadr_model::config::MAX_TRANSACTIONS
            ));
        }
        config.bounds.transactions = commits as u8;
        config = ModelConfig::new(config.ag, config.bounds)
            .map_err(|e| format!("the scenario's configuration: {e}"))?;
    }
    Ok(config)
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

/// Replays `scenario` on `sut` and judges each observation. A panic inside the system under
/// test (an in-process adapter) is an error of the scenario, not of the harness.
pub fn judge(scenario: &Scenario, sut: &mut dyn Sut) -> Verdict {
    judge_within(scenario, sut, MAX_STATES)
}

/// [`judge`], giving up (as [`Verdict::TooBroad`]) once the spec may be in more than `cap`
/// states after a step.
pub fn judge_within(scenario: &Scenario, sut: &mut dyn Sut, cap: usize) -> Verdict {
    judge_recording(scenario, sut, cap, &mut Vec::new())
}

/// [`judge`], also returning what the system showed after setup and after each step that ran,
/// in order: on a failure the failing observation last; on an error or a run too broad to
/// judge, the observations before it. The pictures of `hadr certify --html` are drawn from
/// them ([`crate::html`]).
pub fn judge_recorded(scenario: &Scenario, sut: &mut dyn Sut) -> (Verdict, Vec<Observation>) {
    let mut seen = Vec::new();
    let verdict = judge_recording(scenario, sut, MAX_STATES, &mut seen);
    (verdict, seen)
}

/// [`judge_within`], pushing each observation onto `seen` as it comes (kept when the system
/// panics).
fn judge_recording(
    scenario: &Scenario,
    sut: &mut dyn Sut,
    cap: usize,
    seen: &mut Vec<Observation>,
) -> Verdict {
    let step = std::cell::Cell::new(0);
    let run = std::panic::AssertUnwindSafe(|| judge_steps(scenario, sut, cap, &step, seen));
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

fn judge_steps(
    scenario: &Scenario,
    sut: &mut dyn Sut,
    cap: usize,
    at: &std::cell::Cell<usize>,
    seen: &mut Vec<Observation>,
) -> Verdict {
    let config = match judging_model(scenario) {
        Ok(c) => c,
        Err(e) => {
            return Verdict::Error {
                step: 0,
                error: SutError::Failed(e),
            }
        }
    };
    let too_broad = |step, e: TooBroad| Verdict::TooBroad { step, cap: e.cap };
    let model = AgModel::new(config.clone()).for_conformance();
    let mut spec = match Refinement::new(model, cap) {
        Ok(r) => r,
        Err(e) => return too_broad(0, e),
    };
    if let Err(error) = sut.setup(&config.ag) {
        return Verdict::Error { step: 0, error };
    }
    for step in 0..=scenario.steps.len() {
        at.set(step);
        if step > 0 {
            let action = &scenario.steps[step - 1].action;
            if let Err(error) = sut.step(action) {
                return Verdict::Error { step, error };
            }
            if let Err(e) = spec.step(action) {
                return too_broad(step, e);
            }
        }
        let observed = match sut.observe() {
            Ok(o) => o,
            Err(error) => return Verdict::Error { step, error },
        };
        if !spec.observe(&observed) {
            let mut expected = spec.allowed();
            expected.sort_by_key(|e| distance(e, &observed));
            let history = seen.clone();
            seen.push(observed.clone());
            return Verdict::Fail(Disagreement {
                step,
                previous: history.last().cloned(),
                observed,
                expected,
                history,
            });
        }
        seen.push(observed);
    }
    Verdict::Pass
}
