//! Judging: a scenario replayed on a system under test, each observation compared with what
//! the model allows after that step.

use crate::scenario::Scenario;
use crate::sut::{Sut, SutError};
use hadr_model::ModelConfig;
use hadr_types::Observation;

/// Where a scenario stopped agreeing with the model.
#[derive(Clone, Debug)]
pub struct Disagreement {
    /// The step (1-based; 0: right after setup).
    pub step: usize,
    /// What the system showed.
    pub observed: Observation,
    /// What the model allows, the closest first.
    pub expected: Vec<Observation>,
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

fn distance(a: &Observation, b: &Observation) -> usize {
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

fn judge_one(step: usize, observed: Observation, expected: &[Observation]) -> Option<Disagreement> {
    if expected.contains(&observed) {
        return None;
    }
    let mut expected = expected.to_vec();
    expected.sort_by_key(|e| distance(e, &observed));
    Some(Disagreement {
        step,
        observed,
        expected,
    })
}

/// Replays `scenario` on `sut` and judges each observation.
pub fn judge(scenario: &Scenario, sut: &mut dyn Sut) -> Verdict {
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
    match sut.observe() {
        Ok(o) => {
            if let Some(d) = judge_one(0, o, &scenario.initial) {
                return Verdict::Fail(d);
            }
        }
        Err(error) => return Verdict::Error { step: 0, error },
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        if let Err(error) = sut.step(&step.action) {
            return Verdict::Error { step: i + 1, error };
        }
        match sut.observe() {
            Ok(o) => {
                if let Some(d) = judge_one(i + 1, o, &step.expected) {
                    return Verdict::Fail(d);
                }
            }
            Err(error) => return Verdict::Error { step: i + 1, error },
        }
    }
    Verdict::Pass
}
