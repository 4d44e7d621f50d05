//! Lock-step differential runs: the spec and a system under test side by side on one sequence
//! of environment actions, each observation of the system judged against the model's frontier
//! as the corpus' scenarios are (docs/trace-format.md), but computed on the fly. The
//! differential fuzz target (`fuzz/fuzz_targets/differential.rs`) feeds it arbitrary bytes.
//!
//! An action no state of the frontier enables (a bound of the configuration is spent, the
//! replica is already down, …) is left out: the system never sees it. One the frontier enables
//! in some states only is refused in the others, which stay as they are.

use crate::generate::{close_within, is_environment, take_or_refuse};
use crate::judge::Disagreement;
use crate::sut::{Sut, SutError};
use hadr_model::{Action, AgModel, ModelConfig, State};
use hadr_types::Observation;
use std::collections::HashSet;

/// The largest frontier a lock-step run keeps: a run whose frontier grows past it stops there
/// (it is not a divergence; it is too broad to judge quickly).
pub const FRONTIER_CAP: usize = 20_000;

/// Where the system left the model.
#[derive(Debug)]
pub enum Divergence {
    /// An observation the model does not allow after these actions.
    Observation {
        /// The environment actions performed, the last one included.
        actions: Vec<Action>,
        /// What the system showed and what the model allows.
        disagreement: Box<Disagreement>,
    },
    /// The system could not carry out an action.
    Sut {
        /// The environment actions performed, the failing one last.
        actions: Vec<Action>,
        /// What went wrong.
        error: SutError,
    },
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Divergence::Observation {
                actions,
                disagreement,
            } => {
                writeln!(
                    f,
                    "after {actions:?} the system shows an observation the model does not allow"
                )?;
                if let Some(closest) = disagreement.expected.first() {
                    for line in crate::judge::diff(closest, &disagreement.observed) {
                        writeln!(f, "  {line}")?;
                    }
                }
                Ok(())
            }
            Divergence::Sut { actions, error } => {
                write!(f, "after {actions:?} the system failed: {error}")
            }
        }
    }
}

/// The model side of lock-step runs for one configuration.
pub struct Lockstep {
    config: ModelConfig,
    model: AgModel,
    environment: Vec<Action>,
    initial: Vec<State>,
}

/// The frontier once quiescent, as a set of observations.
fn allowed(m: &AgModel, states: &[State], quiescent: &[usize]) -> HashSet<Observation> {
    if quiescent.is_empty() {
        states.iter().map(|s| m.observe(s)).collect()
    } else {
        quiescent.iter().map(|&i| m.observe(&states[i])).collect()
    }
}

fn disagreement(
    step: usize,
    observed: Observation,
    allowed: HashSet<Observation>,
    previous: Option<Observation>,
) -> Disagreement {
    let mut expected: Vec<Observation> = allowed.into_iter().collect();
    expected.sort_by_key(|e| crate::judge::distance(e, &observed));
    Disagreement {
        step,
        observed,
        expected,
        previous,
    }
}

impl Lockstep {
    /// The model of `config`.
    pub fn new(config: ModelConfig) -> Lockstep {
        let model = AgModel::new(config.clone()).for_conformance();
        // The environment actions of the features the configuration has (no reads when
        // `bounds.reads` is 0, …); within a run, bounds limit nothing else.
        let environment: Vec<Action> = model
            .candidates()
            .iter()
            .filter(|a| is_environment(a))
            .filter(|a| hadr_model::not_applicable(a.kind(), &config).is_none())
            .copied()
            .collect();
        let initial = close_within(&model, vec![model.initial_state()], None, FRONTIER_CAP)
            .map(|f| f.states)
            .unwrap_or_default();
        Lockstep {
            config,
            model,
            environment,
            initial,
        }
    }

    /// The environment actions of the configuration, in the model's order: choices index
    /// into it.
    pub fn environment(&self) -> &[Action] {
        &self.environment
    }

    /// Runs the actions `choices` pick (each taken modulo the number of environment actions)
    /// on the model and on `sut` in lock step. Returns the actions performed.
    pub fn run(
        &self,
        choices: impl IntoIterator<Item = usize>,
        sut: &mut dyn Sut,
    ) -> Result<Vec<Action>, Divergence> {
        let m = &self.model;
        let mut actions = Vec::new();
        let failed = |actions: &Vec<Action>, error| Divergence::Sut {
            actions: actions.clone(),
            error,
        };
        sut.setup(&self.config.ag)
            .map_err(|e| failed(&actions, e))?;
        let Some(mut frontier) = close_within(m, self.initial.clone(), None, FRONTIER_CAP) else {
            return Ok(actions);
        };
        let observed = sut.observe().map_err(|e| failed(&actions, e))?;
        let allowed_now = allowed(m, &frontier.states, &frontier.quiescent);
        if !allowed_now.contains(&observed) {
            return Err(Divergence::Observation {
                actions,
                disagreement: Box::new(disagreement(0, observed, allowed_now, None)),
            });
        }
        let mut previous = observed;
        for choice in choices {
            if self.environment.is_empty() {
                break;
            }
            let action = self.environment[choice % self.environment.len()];
            if !frontier.states.iter().any(|s| m.enabled(s, &action)) {
                continue;
            }
            let next = take_or_refuse(m, &frontier.states, &action);
            actions.push(action);
            frontier = match close_within(m, next, None, FRONTIER_CAP) {
                Some(f) => f,
                None => return Ok(actions),
            };
            sut.step(&action).map_err(|e| failed(&actions, e))?;
            let observed = sut.observe().map_err(|e| failed(&actions, e))?;
            let allowed_now = allowed(m, &frontier.states, &frontier.quiescent);
            if !allowed_now.contains(&observed) {
                return Err(Divergence::Observation {
                    disagreement: Box::new(disagreement(
                        actions.len(),
                        observed,
                        allowed_now,
                        Some(previous),
                    )),
                    actions,
                });
            }
            previous = observed;
        }
        Ok(actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ReferenceSim;

    /// The reference core agrees with the spec on seeded random action sequences of the
    /// two-replica configuration.
    #[test]
    fn reference_sim_keeps_in_step_with_the_spec() {
        let config =
            ModelConfig::from_toml_str(include_str!("../../model/configs/two-replicas.toml"))
                .unwrap();
        let lockstep = Lockstep::new(config);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let started = std::time::Instant::now();
        let runs = 300;
        for _ in 0..runs {
            let choices: Vec<usize> = (0..6)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as usize
                })
                .collect();
            if let Err(d) = lockstep.run(choices, &mut ReferenceSim::new()) {
                panic!("{d}");
            }
        }
        eprintln!(
            "{runs} lock-step runs in {:?} ({:.0}/s)",
            started.elapsed(),
            runs as f64 / started.elapsed().as_secs_f64()
        );
    }
}
