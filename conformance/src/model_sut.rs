//! The spec itself, or a spec mutant, as a system under test: how the harness measures its own
//! corpus. A corpus is adequate when every mutant of the spec, run as a system, fails on it.
//!
//! A model is nondeterministic where a real system is not (which secondary a manager promotes,
//! whether a timeout or a reconnection came first): after each step it may be at rest in
//! several states with different observations. [`ModelSut`] resolves those choices against
//! the judge: it plans the whole scenario ahead and shows, wherever it can, an observation
//! the spec does not allow after the ones it showed before ([`Kills`] tells whether every
//! choice would have failed, or only some). A spec without a mutant never can: it passes.

use crate::judge::judging_model;
use crate::refine::{Refinement, TooBroad, MAX_STATES};
use crate::scenario::Scenario;
use crate::sut::{Sut, SutError};
use hadr_model::{Action, AgModel, Mutant};
use hadr_types::{AgConfig, Observation};

/// How many branches of its choices a plan explores before it settles for the first one.
const MAX_BRANCHES: usize = 4_096;

/// How a model fares on a scenario against the spec's judge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kills {
    /// The earliest step (0: after setup) at which some behaviour of the model shows what the
    /// spec does not allow after what it showed before; `None` if none does.
    pub may: Option<usize>,
    /// Every behaviour of the model fails on the scenario: any system with this bug, however it
    /// resolves its choices, is caught.
    pub must: bool,
    /// The observations a system that fails wherever it can shows, after setup and after each
    /// step up to where it fails (or to the end).
    pub plan: Vec<Observation>,
}

struct Planner<'a> {
    actions: &'a [Action],
    branches: usize,
}

impl Planner<'_> {
    /// The choices of `bug` from step `step` on, with `spec` judging: `bug` and `spec` are at
    /// rest after that step's action, before its observation.
    fn plan(&mut self, bug: &Refinement, spec: &Refinement, step: usize) -> Kills {
        self.branches += 1;
        let options = bug.allowed();
        let mut first: Option<Kills> = None;
        let mut all_fail = !options.is_empty();
        // Fail at once where possible.
        for o in &options {
            if spec.with_observation(o).states().is_empty() {
                let must = options
                    .iter()
                    .all(|o| spec.with_observation(o).states().is_empty());
                let mut kills = Kills {
                    may: Some(step),
                    must,
                    plan: vec![o.clone()],
                };
                if !must {
                    // Whether the other choices fail later decides `must`.
                    kills.must = options
                        .iter()
                        .filter(|o| !spec.with_observation(o).states().is_empty())
                        .all(|o| self.follow(bug, spec, o, step).must);
                }
                return kills;
            }
        }
        let mut failing: Option<Kills> = None;
        for o in &options {
            let rest = self.follow(bug, spec, o, step);
            all_fail &= rest.must;
            if rest.may.is_some() && failing.as_ref().is_none_or(|f| rest.may < f.may) {
                failing = Some(rest.clone());
            }
            if first.is_none() {
                first = Some(rest);
            }
            if self.branches > MAX_BRANCHES {
                // Out of patience: the other choices are not explored, so not known to fail.
                all_fail = false;
                break;
            }
        }
        let mut kills = failing.or(first).unwrap_or_default();
        kills.must = all_fail;
        kills
    }

    /// Shows `o` at `step`, then goes on with the next step.
    fn follow(
        &mut self,
        bug: &Refinement,
        spec: &Refinement,
        o: &Observation,
        step: usize,
    ) -> Kills {
        let (mut bug, mut spec) = (bug.with_observation(o), spec.with_observation(o));
        let mut rest = match self.actions.get(step) {
            None => Kills::default(),
            Some(action) => match (bug.step(action), spec.step(action)) {
                (Ok(()), Ok(())) => self.plan(&bug, &spec, step + 1),
                _ => Kills::default(),
            },
        };
        rest.plan.insert(0, o.clone());
        rest
    }
}

/// How `bug` (a model of the scenario's configuration, with or without a mutant) fares on
/// `scenario` against the spec.
pub fn kills(bug: AgModel, scenario: &Scenario) -> Result<Kills, TooBroad> {
    let config = bug.config().clone();
    let spec = Refinement::new(AgModel::new(config).for_conformance(), MAX_STATES)?;
    let bug = Refinement::new(bug.for_conformance(), MAX_STATES)?;
    let actions: Vec<Action> = scenario.steps.iter().map(|s| s.action).collect();
    let mut planner = Planner {
        actions: &actions,
        branches: 0,
    };
    Ok(planner.plan(&bug, &spec, 0))
}

/// A spec mutant's model for a scenario, or the spec's (`None`).
pub fn scenario_model(mutant: Option<Mutant>, scenario: &Scenario) -> Result<AgModel, String> {
    let config = judging_model(scenario)?;
    Ok(match mutant {
        Some(m) => AgModel::with_mutant(config, m),
        None => AgModel::new(config),
    })
}

/// The spec, or a spec mutant, as a system under test for one scenario (see the module).
pub struct ModelSut {
    name: String,
    actions: Vec<Action>,
    plan: Result<Vec<Observation>, String>,
    step: usize,
}

impl ModelSut {
    /// The spec with `mutant` planted (`None`: the spec itself), failing `scenario` wherever
    /// one of its behaviours can.
    pub fn adversarial(mutant: Option<Mutant>, scenario: &Scenario) -> ModelSut {
        let name = match mutant {
            Some(m) => format!("spec --mutant {m}"),
            None => "spec".to_owned(),
        };
        let plan = scenario_model(mutant, scenario).and_then(|m| {
            kills(m, scenario)
                .map(|k| k.plan)
                .map_err(|e| e.to_string())
        });
        ModelSut {
            name,
            actions: scenario.steps.iter().map(|s| s.action).collect(),
            plan,
            step: 0,
        }
    }
}

impl Sut for ModelSut {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn setup(&mut self, _: &AgConfig) -> Result<(), SutError> {
        self.step = 0;
        self.plan
            .as_ref()
            .map(|_| ())
            .map_err(|e| SutError::Failed(e.clone()))
    }

    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        if self.actions.get(self.step) != Some(action) {
            return Err(SutError::Failed(format!(
                "the model was planned for another scenario: step {} is {action:?}",
                self.step + 1
            )));
        }
        self.step += 1;
        Ok(())
    }

    fn observe(&mut self) -> Result<Observation, SutError> {
        let plan = self
            .plan
            .as_ref()
            .map_err(|e| SutError::Failed(e.clone()))?;
        plan.get(self.step).cloned().ok_or_else(|| {
            SutError::Failed(format!(
                "the model's behaviour stops before step {} (an earlier observation failed)",
                self.step
            ))
        })
    }
}
