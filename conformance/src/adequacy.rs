//! How good a corpus is at telling a broken implementation from a correct one, measured
//! against the spec, not against any system under test:
//!
//! - **transition coverage**: of every transition the spec can take *at rest* within the
//!   configuration's bounds (an observation a system may show once it has settled, and an
//!   environment action enabled there), how many the corpus' scenarios try;
//! - **mutation score**: of the spec's mutants that apply to the corpus' configurations, how
//!   many fail on some scenario when run as systems under test ([`crate::model_sut`]), and on
//!   how many scenarios each does.

use crate::model_sut::{kills, scenario_model};
use crate::refine::{is_environment, run_to_rest, take_or_refuse, MAX_STATES};
use crate::scenario::{Coverage, Scenario};
use hadr_model::{Action, AgModel, ModelConfig, Mutant, State};
use hadr_types::Observation;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};

/// Transitions at rest: tried by the corpus, of those the spec can take within its bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionCoverage {
    /// Distinct (observation at rest, enabled environment action) pairs the scenarios try.
    pub tried: usize,
    /// Distinct such pairs reachable within the bounds of the corpus' configurations.
    pub reachable: usize,
    /// Reachable states at rest explored to count them.
    pub states_at_rest: usize,
}

impl TransitionCoverage {
    /// `tried of reachable (percent)`.
    pub fn summary(&self) -> String {
        let percent = if self.reachable == 0 {
            0.0
        } else {
            100.0 * self.tried as f64 / self.reachable as f64
        };
        format!(
            "{} of {} ({percent:.1} %; distinct observations at rest × enabled environment actions within the bounds)",
            self.tried, self.reachable
        )
    }
}

/// One spec mutant against the corpus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutantKills {
    /// The mutant (`hadr check --list-mutants`).
    pub mutant: String,
    /// The rule its bug breaks.
    pub breaks: String,
    /// The scenarios on which some behaviour of it fails.
    pub caught_by: Vec<String>,
    /// Of those, the scenarios on which every behaviour of it fails: any implementation with
    /// this bug fails them, whatever it does where the spec leaves a choice.
    pub always_caught_by: Vec<String>,
}

/// The spec's mutants against the corpus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationScore {
    /// Mutants of the features the corpus' configurations have.
    pub applicable: usize,
    /// Of those, caught by at least one scenario.
    pub caught: usize,
    /// Of those, caught by at least two.
    pub caught_twice: usize,
    /// Each mutant.
    pub mutants: Vec<MutantKills>,
}

impl MutationScore {
    /// `caught of applicable spec mutants …`.
    pub fn summary(&self) -> String {
        let missed: Vec<&str> = self
            .mutants
            .iter()
            .filter(|m| m.caught_by.is_empty())
            .map(|m| m.mutant.as_str())
            .collect();
        let mut out = format!(
            "{} of {} spec mutants caught, {} by at least two scenarios",
            self.caught, self.applicable, self.caught_twice
        );
        if !missed.is_empty() {
            out += &format!("; not caught: {}", missed.join(", "));
        }
        out
    }
}

/// Everything a certificate says of its corpus.
#[derive(Clone, Debug, Default)]
pub struct Measure {
    /// Action kinds and hazards the scenarios exercise.
    pub coverage: Coverage,
    /// Action kinds and hazards their configurations can exercise.
    pub wanted: Coverage,
    /// Transition coverage.
    pub transitions: TransitionCoverage,
    /// Mutation score.
    pub mutation: MutationScore,
}

/// The spec mutants that apply to a configuration: those that can behave differently from the
/// spec there ([`hadr_model::mutant::not_applicable`]).
pub fn applicable_mutants(config: &ModelConfig) -> Vec<Mutant> {
    Mutant::ALL
        .iter()
        .copied()
        .filter(|&m| hadr_model::mutant::not_applicable(m, config).is_none())
        .collect()
}

/// A transition at rest: what the system shows, and what the environment does next.
type Transition = (Observation, Action);

/// Every transition the spec can take at rest within `config`'s bounds, and how many states at
/// rest that explores: breadth-first over states at rest, each environment action followed by
/// a run to rest.
pub fn reachable_transitions(config: &ModelConfig) -> (HashSet<Transition>, usize) {
    let m = AgModel::new(config.clone());
    let environment: Vec<Action> = m
        .candidates()
        .iter()
        .filter(|a| is_environment(a))
        .copied()
        .collect();
    let mut seen: HashSet<State> = HashSet::new();
    let mut queue: VecDeque<State> = VecDeque::new();
    for s in run_to_rest(&m, vec![m.initial_state()], MAX_STATES).unwrap_or_default() {
        if seen.insert(s.clone()) {
            queue.push_back(s);
        }
    }
    let mut transitions = HashSet::new();
    while let Some(s) = queue.pop_front() {
        let o = m.observe(&s);
        for a in environment.iter().filter(|a| m.enabled(&s, a)) {
            transitions.insert((o.clone(), *a));
            for n in run_to_rest(&m, vec![m.apply(&s, a)], MAX_STATES).unwrap_or_default() {
                if seen.insert(n.clone()) {
                    queue.push_back(n);
                }
            }
        }
    }
    (transitions, seen.len())
}

/// The transitions at rest a scenario tries: at each step, the observations of the states at
/// rest the spec may be in (whatever the system showed before) where the step's action is
/// enabled, with that action.
pub fn tried_transitions(scenario: &Scenario) -> HashSet<Transition> {
    let mut tried = HashSet::new();
    let Ok(config) = crate::judge::judging_model(scenario) else {
        return tried;
    };
    let m = AgModel::new(config).for_conformance();
    let Ok(mut states) = run_to_rest(&m, vec![m.initial_state()], MAX_STATES) else {
        return tried;
    };
    for step in &scenario.steps {
        for s in states.iter().filter(|s| m.enabled(s, &step.action)) {
            tried.insert((m.observe(s), step.action));
        }
        let next = take_or_refuse(&m, &states, &step.action);
        match run_to_rest(&m, next, MAX_STATES) {
            Ok(n) => states = n,
            Err(_) => break,
        }
    }
    tried
}

/// How `mutant` fares on each scenario: (caught by, always caught by), as file names.
pub fn mutant_kills(mutant: Mutant, scenarios: &[(String, Scenario)]) -> MutantKills {
    let mut result = MutantKills {
        mutant: mutant.name().to_owned(),
        breaks: mutant.breaks().to_owned(),
        caught_by: Vec::new(),
        always_caught_by: Vec::new(),
    };
    for (file, scenario) in scenarios {
        let Ok(model) = scenario_model(Some(mutant), scenario) else {
            continue;
        };
        if let Ok(k) = kills(model, scenario) {
            if k.may.is_some() {
                result.caught_by.push(file.clone());
            }
            if k.must {
                result.always_caught_by.push(file.clone());
            }
        }
    }
    result
}

/// Measures a corpus (its scenarios may be of several configurations).
pub fn measure(scenarios: &[(String, Scenario)]) -> Measure {
    let mut measure = Measure::default();
    let mut configs: Vec<(String, ModelConfig)> = Vec::new();
    for (_, s) in scenarios {
        measure.coverage.merge(&s.covers);
        if configs.iter().all(|(text, _)| *text != s.config) {
            if let Ok(c) = ModelConfig::from_toml_str(&s.config) {
                measure.wanted.merge(&crate::generate::wanted(&c));
                configs.push((s.config.clone(), c));
            }
        }
    }
    let mut reachable: HashSet<(usize, Transition)> = HashSet::new();
    for (i, (_, c)) in configs.iter().enumerate() {
        let (transitions, at_rest) = reachable_transitions(c);
        measure.transitions.states_at_rest += at_rest;
        reachable.extend(transitions.into_iter().map(|t| (i, t)));
    }
    let mut tried: HashSet<(usize, Transition)> = HashSet::new();
    for (_, s) in scenarios {
        let i = configs.iter().position(|(text, _)| *text == s.config);
        if let Some(i) = i {
            tried.extend(tried_transitions(s).into_iter().map(|t| (i, t)));
        }
    }
    measure.transitions.reachable = reachable.len();
    measure.transitions.tried = tried.intersection(&reachable).count();
    let mut mutants: Vec<Mutant> = Vec::new();
    for (_, c) in &configs {
        for m in applicable_mutants(c) {
            if !mutants.contains(&m) {
                mutants.push(m);
            }
        }
    }
    let score = &mut measure.mutation;
    score.applicable = mutants.len();
    for m in mutants {
        let k = mutant_kills(m, scenarios);
        score.caught += usize::from(!k.caught_by.is_empty());
        score.caught_twice += usize::from(k.caught_by.len() >= 2);
        score.mutants.push(k);
    }
    measure
}
