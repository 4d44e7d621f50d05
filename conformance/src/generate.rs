//! Scenarios from the spec.
//!
//! 1. The shortest path to every hazard and every action kind ([`hadr_model::example_paths`],
//!    a breadth-first search) is projected onto its environment actions: the internal steps
//!    in between are the protocol's business, not the scenario's.
//! 2. For every mutant of the spec (a planted bug, `hadr check --list-mutants`), the shortest
//!    path on which it breaks an invariant ([`hadr_model::refuting_path`]), projected the same
//!    way: the scenario that catches an implementation with the same bug.
//! 3. Seeded random walks of environment actions add breadth.
//! 4. Each scenario is replayed on the model as a set of possible states (a *frontier*): the
//!    next environment action applies to every state of the frontier where it is enabled, then
//!    the frontier is closed under internal actions. After each step the scenario records the
//!    observations of the frontier's quiescent states: what a correct implementation may show
//!    once it has done everything it can do on its own.

use crate::scenario::{Coverage, Scenario, ScenarioStep, FORMAT};
use hadr_model::properties::{all_specs, PropertyGroup};
use hadr_model::{Action, AgModel, CheckOptions, ModelConfig, State};
use hadr_types::Observation;
use std::collections::{BTreeSet, HashSet, VecDeque};

/// How many states a frontier may hold before a scenario is given up as too broad to judge.
pub const MAX_FRONTIER: usize = 200_000;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Seed of the random walks (the corpus is a function of the configuration and the seed).
    pub seed: u64,
    /// How many random walks.
    pub walks: usize,
    /// Environment steps per random walk.
    pub walk_length: usize,
    /// Checker threads for the search of the shortest paths (1 = deterministic order).
    pub threads: usize,
    /// Add a scenario per mutant of the spec that the configuration can refute.
    pub mutant_scenarios: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            walks: 20,
            walk_length: 8,
            threads: 1,
            mutant_scenarios: true,
        }
    }
}

/// A generated corpus.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The scenarios: shortest examples first (by purpose), then the walks.
    pub scenarios: Vec<Scenario>,
    /// What they exercise together.
    pub coverage: Coverage,
    /// Action kinds the configuration can take, and hazards the spec defines, that no
    /// scenario reaches.
    pub missing: Coverage,
    /// Targets given up because their frontier grew past [`MAX_FRONTIER`].
    pub too_broad: Vec<String>,
}

/// Why a corpus could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The configuration is not valid TOML for the model, or breaks a limit.
    #[error("invalid model configuration: {0}")]
    Config(#[from] hadr_model::ModelConfigError),
}

/// A frontier: the states the model may be in, and what it took to get there.
pub(crate) struct Frontier {
    pub(crate) states: Vec<State>,
    coverage: Coverage,
    pub(crate) quiescent: Vec<usize>,
}

fn kind_name(action: &Action) -> String {
    action.kind().name().to_owned()
}

pub(crate) fn is_environment(action: &Action) -> bool {
    action.kind().class().is_environment()
}

/// Closes `start` under internal actions (breadth-first); `None` if it grows past the cap.
pub(crate) fn close(m: &AgModel, start: Vec<State>, coverage: &mut Coverage) -> Option<Frontier> {
    close_within(m, start, Some(coverage), MAX_FRONTIER)
}

/// [`close`] with another cap on the frontier's size, tracking the coverage only if asked
/// (the hazard conditions are the expensive part).
pub(crate) fn close_within(
    m: &AgModel,
    start: Vec<State>,
    coverage: Option<&mut Coverage>,
    cap: usize,
) -> Option<Frontier> {
    let internal: Vec<Action> = m
        .candidates()
        .iter()
        .filter(|a| !is_environment(a))
        .copied()
        .collect();
    let mut seen: HashSet<State, crate::fxhash::FxBuild> = HashSet::default();
    let mut order = Vec::new();
    let mut queue: VecDeque<State> = VecDeque::new();
    for s in start {
        if seen.insert(s.clone()) {
            queue.push_back(s);
        }
    }
    let mut kinds = BTreeSet::new();
    let mut quiescent = Vec::new();
    while let Some(s) = queue.pop_front() {
        let mut stuck = true;
        for a in internal.iter().filter(|a| m.enabled(&s, a)) {
            stuck = false;
            if coverage.is_some() {
                kinds.insert(a.kind());
            }
            let next = m.apply(&s, a);
            if seen.insert(next.clone()) {
                if seen.len() > cap {
                    return None;
                }
                queue.push_back(next);
            }
        }
        if stuck {
            quiescent.push(order.len());
        }
        order.push(s);
    }
    let coverage = match coverage {
        Some(coverage) => {
            coverage.merge(&Coverage {
                action_kinds: kinds.into_iter().map(|k| k.name().to_owned()).collect(),
                hazards: hazards(m, &order),
            });
            coverage.clone()
        }
        None => Coverage::default(),
    };
    Some(Frontier {
        states: order,
        coverage,
        quiescent,
    })
}

/// The hazards whose condition holds in one of `states`.
fn hazards(m: &AgModel, states: &[State]) -> Vec<String> {
    all_specs()
        .iter()
        .filter(|spec| spec.group == PropertyGroup::Hazard)
        .filter(|spec| states.iter().any(|s| (spec.condition)(m, s)))
        .map(|spec| spec.rule.to_owned())
        .collect()
}

/// What may be seen of a frontier once quiescent, sorted and deduplicated.
fn expected(m: &AgModel, frontier: &Frontier) -> (Vec<Observation>, bool) {
    let quiescent = !frontier.quiescent.is_empty();
    let states: Box<dyn Iterator<Item = &State>> = if quiescent {
        Box::new(frontier.quiescent.iter().map(|&i| &frontier.states[i]))
    } else {
        Box::new(frontier.states.iter())
    };
    let mut unique: Vec<(String, Observation)> = states
        .map(|s| m.observe(s))
        .collect::<HashSet<Observation>>()
        .into_iter()
        .map(|o| {
            (
                serde_json::to_string(&o).expect("an observation serializes"),
                o,
            )
        })
        .collect();
    unique.sort_by(|a, b| a.0.cmp(&b.0));
    (unique.into_iter().map(|(_, o)| o).collect(), quiescent)
}

/// An environment action taken by a frontier: applied in every state where the model enables
/// it; the others stay as they are (there the system refuses it).
pub(crate) fn take_or_refuse(m: &AgModel, states: &[State], action: &Action) -> Vec<State> {
    states
        .iter()
        .map(|s| {
            if m.enabled(s, action) {
                m.apply(s, action)
            } else {
                s.clone()
            }
        })
        .collect()
}

/// Replays environment actions on the model as frontiers; `None` if a frontier grows too broad
/// or an action is enabled in none of its states.
pub(crate) fn replay(
    m: &AgModel,
    config_toml: &str,
    purpose: &str,
    actions: &[Action],
) -> Option<Scenario> {
    let mut coverage = Coverage::default();
    let mut frontier = close(m, vec![m.initial_state()], &mut coverage)?;
    let (initial, initial_quiescent) = expected(m, &frontier);
    let mut steps = Vec::new();
    for action in actions {
        if !frontier.states.iter().any(|s| m.enabled(s, action)) {
            return None;
        }
        let next = take_or_refuse(m, &frontier.states, action);
        coverage.merge(&Coverage {
            action_kinds: vec![kind_name(action)],
            hazards: Vec::new(),
        });
        frontier = close(m, next, &mut coverage)?;
        let (expected, quiescent) = expected(m, &frontier);
        steps.push(ScenarioStep {
            action: *action,
            expected,
            quiescent,
        });
    }
    Some(Scenario {
        format: FORMAT.to_owned(),
        purpose: purpose.to_owned(),
        config: config_toml.to_owned(),
        initial,
        initial_quiescent,
        steps,
        covers: frontier.coverage,
    })
}

/// A small deterministic generator (xorshift64*), so that a corpus depends on the seed only.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random walk: environment actions each enabled in some state of the current frontier, or
/// with `at_rest`, in some quiescent state of it (how a system run to quiescence meets them).
fn walk(m: &AgModel, rng: &mut Rng, length: usize, at_rest: bool) -> Vec<Action> {
    let environment: Vec<Action> = m
        .candidates()
        .iter()
        .filter(|a| is_environment(a))
        .copied()
        .collect();
    let frontier = |states: Vec<State>| {
        if at_rest {
            settled(m, states)
        } else {
            close_within(m, states, None, MAX_FRONTIER).map(|f| f.states)
        }
    };
    let Some(mut states) = frontier(vec![m.initial_state()]) else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    for _ in 0..length {
        let enabled: Vec<Action> = environment
            .iter()
            .filter(|a| states.iter().any(|s| m.enabled(s, a)))
            .copied()
            .collect();
        if enabled.is_empty() {
            break;
        }
        let action = enabled[rng.below(enabled.len())];
        let next = states
            .iter()
            .filter(|s| m.enabled(s, &action))
            .map(|s| m.apply(s, &action))
            .collect();
        match frontier(next) {
            Some(next) => states = next,
            None => break,
        }
        actions.push(action);
    }
    actions
}

/// What a corpus of `config` must exercise: every action kind the configuration can take and
/// every hazard the spec checks under it.
pub fn wanted(config: &ModelConfig) -> Coverage {
    let m = AgModel::new(config.clone());
    Coverage {
        action_kinds: hadr_model::ActionKind::ALL
            .iter()
            .filter(|k| hadr_model::properties::not_applicable(**k, config).is_none())
            .map(|k| k.name().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        hazards: hadr_model::properties::checked_specs(&m)
            .filter(|(_, s)| s.group == PropertyGroup::Hazard)
            .map(|(_, s)| s.rule.to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    }
}

/// How many random walks [`mutant_scenario`] tries when the refuting path does not tell.
const MUTANT_WALKS: usize = 400;

/// A scenario on which the spec with `mutant` planted can be told from the spec: a
/// system with the same bug, run to quiescence after each step, may show an observation the
/// scenario does not allow. Tried in order: the environment steps of the shortest path on
/// which the mutant breaks an invariant with the environment acting in quiescent states, of
/// the shortest path at all, then seeded random walks of the mutant. `None` if none tells.
#[allow(clippy::too_many_arguments)]
fn mutant_scenario(
    m: &AgModel,
    config: &ModelConfig,
    mutant: hadr_model::Mutant,
    config_toml: &str,
    purpose: &str,
    check: &CheckOptions,
    seed: u64,
    taken: &HashSet<Vec<Action>>,
) -> Option<Scenario> {
    // Walks keep to the configuration's bounds; judging knows none (`for_conformance`).
    let bounded_bug = AgModel::with_mutant(config.clone(), mutant);
    let bug = bounded_bug.clone().for_conformance();
    let mut candidates: Vec<Vec<Action>> = [true, false]
        .into_iter()
        .filter_map(|quiescent| hadr_model::refuting_path(config, mutant, quiescent, check))
        .map(|path| path.into_iter().filter(is_environment).collect())
        .collect();
    if candidates.is_empty() {
        return None; // the configuration cannot exercise it
    }
    let mut rng = Rng(seed | 1);
    let length = 4;
    let mut walks = 0;
    loop {
        let actions = match candidates.pop() {
            Some(actions) => actions,
            None if walks < MUTANT_WALKS => {
                walks += 1;
                walk(&bounded_bug, &mut rng, length, true)
            }
            None => return None,
        };
        if actions.is_empty() {
            continue;
        }
        let Some(scenario) = replay(m, config_toml, purpose, &actions) else {
            continue;
        };
        if let Some(step) = tells_apart(&bug, &scenario) {
            let mut scenario = scenario;
            scenario.steps.truncate(step);
            // The coverage of the shortened scenario.
            let actions: Vec<Action> = scenario.steps.iter().map(|s| s.action).collect();
            if taken.contains(&actions) {
                // Another target's scenario already: look on for one of the mutant's own, so
                // that an implementation with the same bug has a scenario aimed at it.
                continue;
            }
            return replay(m, config_toml, purpose, &actions);
        }
    }
}

/// The frontier of `states` once quiescent: its quiescent states, or all of them when the
/// protocol can always move on (a cycle).
fn settled(m: &AgModel, states: Vec<State>) -> Option<Vec<State>> {
    let frontier = close(m, states, &mut Coverage::default())?;
    Some(if frontier.quiescent.is_empty() {
        frontier.states
    } else {
        frontier
            .quiescent
            .iter()
            .map(|&i| frontier.states[i].clone())
            .collect()
    })
}

/// The first step (1-based; 0: the initial state) after which `bug`, with the environment
/// acting in quiescent states only, can show an observation `scenario` does not allow.
fn tells_apart(bug: &AgModel, scenario: &Scenario) -> Option<usize> {
    let escapes = |states: &[State], allowed: &[Observation]| {
        states.iter().any(|s| !allowed.contains(&bug.observe(s)))
    };
    let mut states = settled(bug, vec![bug.initial_state()])?;
    if escapes(&states, &scenario.initial) {
        return Some(0);
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let next = take_or_refuse(bug, &states, &step.action);
        states = settled(bug, next)?;
        if escapes(&states, &step.expected) {
            return Some(i + 1);
        }
    }
    None
}

/// `count` seeded random walks of `length` environment steps on `bounded` (within the
/// configuration's bounds), each replayed on `m` (no budgets) for its expectations; a walk that
/// repeats an earlier one, or whose frontier is too broad, is left out. `purpose` names walk
/// `i`.
fn seeded_walks(
    (bounded, m): (&AgModel, &AgModel),
    config_toml: &str,
    seed: u64,
    count: usize,
    length: usize,
    purpose: &mut dyn FnMut(usize) -> String,
) -> Vec<Scenario> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut seen: HashSet<Vec<Action>> = HashSet::new();
    let mut scenarios = Vec::new();
    for i in 0..count {
        let purpose = purpose(i);
        let actions = walk(bounded, &mut rng, length, false);
        if actions.is_empty() || !seen.insert(actions.clone()) {
            continue;
        }
        if let Some(scenario) = replay(m, config_toml, &purpose, &actions) {
            scenarios.push(scenario);
        }
    }
    scenarios
}

/// `count` random walks of `length` environment steps from `seed`, with their expectations,
/// as [`generate`] makes its walks: breadth beyond a committed corpus (`hadr certify --seed`).
pub fn random_walks(
    config_toml: &str,
    seed: u64,
    count: usize,
    length: usize,
) -> Result<Vec<Scenario>, GenerateError> {
    let config = ModelConfig::from_toml_str(config_toml)?;
    let bounded = AgModel::new(config);
    let m = bounded.clone().for_conformance();
    Ok(seeded_walks(
        (&bounded, &m),
        config_toml,
        seed,
        count,
        length,
        &mut |i| format!("seed {seed} walk {i}"),
    ))
}

/// Generates the corpus of a model configuration (`config_toml`, as `hadr check --config`
/// reads it). `on_target` is told each target as it is replayed (for progress output).
pub fn generate(
    config_toml: &str,
    options: &GenerateOptions,
    on_target: &mut dyn FnMut(&str),
) -> Result<Corpus, GenerateError> {
    let config = ModelConfig::from_toml_str(config_toml)?;
    // Paths and walks keep to the configuration's bounds; the expectations know none.
    let bounded = AgModel::new(config.clone());
    let m = bounded.clone().for_conformance();
    let check = CheckOptions {
        threads: options.threads.max(1),
        ..CheckOptions::default()
    };
    let mut paths = hadr_model::example_paths(&config, &check, &mut |_| {});
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    let mut scenarios = Vec::new();
    let mut too_broad = Vec::new();
    let mut seen_actions: HashSet<Vec<Action>> = HashSet::new();
    for (target, path) in &paths {
        on_target(target);
        // An action kind's example ends where the action is enabled: take it too.
        let mut path = path.clone();
        let end = path
            .iter()
            .fold(bounded.initial_state(), |s, a| bounded.apply(&s, a));
        if let Some(action) = m
            .candidates()
            .iter()
            .find(|a| kind_name(a) == *target && bounded.enabled(&end, a))
        {
            path.push(*action);
        }
        let actions: Vec<Action> = path.iter().filter(|a| is_environment(a)).copied().collect();
        if !seen_actions.insert(actions.clone()) {
            continue; // the same environment steps as an earlier target's scenario
        }
        match replay(&m, config_toml, target, &actions) {
            Some(scenario) => scenarios.push(scenario),
            None => too_broad.push(target.clone()),
        }
    }
    if options.mutant_scenarios {
        for (i, &mutant) in hadr_model::Mutant::ALL.iter().enumerate() {
            let purpose = format!("mutant {mutant}");
            on_target(&purpose);
            let seed = options.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let Some(scenario) = mutant_scenario(
                &m,
                &config,
                mutant,
                config_toml,
                &purpose,
                &check,
                seed,
                &seen_actions,
            ) else {
                continue;
            };
            let actions: Vec<Action> = scenario.steps.iter().map(|s| s.action).collect();
            if seen_actions.insert(actions) {
                scenarios.push(scenario);
            }
        }
    }
    let walks = seeded_walks(
        (&bounded, &m),
        config_toml,
        options.seed,
        options.walks,
        options.walk_length,
        &mut |i| {
            let purpose = format!("walk {i}");
            on_target(&purpose);
            purpose
        },
    );
    for scenario in walks {
        let actions: Vec<Action> = scenario.steps.iter().map(|s| s.action).collect();
        if seen_actions.insert(actions) {
            scenarios.push(scenario);
        }
    }
    let mut coverage = Coverage::default();
    for s in &scenarios {
        coverage.merge(&s.covers);
    }
    let missing = wanted(&config).without(&coverage);
    Ok(Corpus {
        scenarios,
        coverage,
        missing,
        too_broad,
    })
}
