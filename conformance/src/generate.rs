//! Scenarios from the spec.
//!
//! 1. The shortest path to every hazard and every action kind ([`hadr_model::example_paths`],
//!    a breadth-first search) is projected onto its environment actions: the internal steps
//!    in between are the protocol's business, not the scenario's.
//! 2. For every mutant of the spec (a planted bug, `hadr check --list-mutants`), scenarios on
//!    which that mutant, run as a system under test ([`crate::model_sut`]), fails: the
//!    environment steps of its shortest refuting path, then seeded walks of the mutant itself.
//!    The corpus grows until every applicable mutant fails on at least
//!    [`GenerateOptions::kills_per_mutant`] scenarios (mutation adequacy).
//! 3. Seeded random walks add breadth. The environment acts only where the system is at rest
//!    (a driver that waits for quiescence can follow every walk), and now and then tries an
//!    operator command or a fault the spec refuses in every state the group may be in: a
//!    refusal is behaviour too, and the system must then change nothing.
//! 4. Each scenario is replayed on the model for its documentation: after each step, every
//!    observation the spec allows at rest for *some* history (`expected`). The judge does not
//!    use these lists: it judges by refinement ([`crate::refine`]), each observation against
//!    the states consistent with every observation before it.

use crate::adequacy::{applicable_mutants, Measure};
use crate::model_sut::kills;
use crate::refine::{is_environment, run_to_rest, take_or_refuse, Closure};
use crate::scenario::{Coverage, Scenario, ScenarioStep, FORMAT};
use hadr_model::properties::{all_specs, PropertyGroup};
use hadr_model::{Action, ActionKind, AgModel, Bounds, CheckOptions, ModelConfig, Mutant, State};
use std::collections::{BTreeSet, HashSet};

/// How many states a frontier may hold before a scenario is given up as too broad to judge.
pub const MAX_FRONTIER: usize = crate::refine::MAX_STATES;

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
    /// Add scenarios until every spec mutant the configuration applies to fails on
    /// `kills_per_mutant` of them (0: no mutant scenarios).
    pub kills_per_mutant: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            walks: 20,
            walk_length: 8,
            threads: 1,
            kills_per_mutant: 2,
        }
    }
}

/// A generated corpus.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The scenarios: shortest examples first (by purpose), then the mutants' and the walks.
    pub scenarios: Vec<Scenario>,
    /// What they exercise together.
    pub coverage: Coverage,
    /// Action kinds the configuration can take, and hazards the spec defines, that no
    /// scenario reaches.
    pub missing: Coverage,
    /// Targets given up because their frontier grew past [`MAX_FRONTIER`].
    pub too_broad: Vec<String>,
    /// Its transition coverage and mutation score ([`crate::adequacy`]).
    pub measure: Measure,
}

/// Why a corpus could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The configuration is not valid TOML for the model, or breaks a limit.
    #[error("invalid model configuration: {0}")]
    Config(#[from] hadr_model::ModelConfigError),
}

fn kind_name(action: &Action) -> String {
    action.kind().name().to_owned()
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

/// What the model can do from `states` on its own: its states at rest, and the action kinds and
/// hazards on the way. `None` past [`MAX_FRONTIER`] states.
fn settle(m: &AgModel, states: Vec<State>, coverage: &mut Coverage) -> Option<Vec<State>> {
    let closure = Closure::explore(m, states, MAX_FRONTIER).ok()?;
    let kinds: Vec<String> = ActionKind::ALL
        .iter()
        .filter(|k| closure.kinds & (1 << k.index()) != 0)
        .map(|k| k.name().to_owned())
        .collect();
    coverage.merge(&Coverage {
        action_kinds: kinds,
        hazards: hazards(m, &closure.states),
    });
    Some(closure.resting_states())
}

/// Replays environment actions on the model, for a scenario's documentation: the observations
/// at rest after each step, for any history. An action no state enables is a refusal step.
/// `None` if the model's states grow too broad.
pub(crate) fn replay(
    m: &AgModel,
    config_toml: &str,
    purpose: &str,
    actions: &[Action],
) -> Option<Scenario> {
    let mut coverage = Coverage::default();
    let mut states = settle(m, vec![m.initial_state()], &mut coverage)?;
    let initial = crate::refine::observations(m, &states);
    let mut steps = Vec::new();
    for action in actions {
        if states.iter().any(|s| m.enabled(s, action)) {
            coverage.merge(&Coverage {
                action_kinds: vec![kind_name(action)],
                hazards: Vec::new(),
            });
        }
        states = settle(m, take_or_refuse(m, &states, action), &mut coverage)?;
        steps.push(ScenarioStep {
            action: *action,
            expected: crate::refine::observations(m, &states),
            quiescent: true,
        });
    }
    Some(Scenario {
        format: FORMAT.to_owned(),
        purpose: purpose.to_owned(),
        config: config_toml.to_owned(),
        initial,
        initial_quiescent: true,
        steps,
        covers: coverage,
    })
}

/// A scenario of `actions` in the configuration `config_toml` (as a shrunk failure or a
/// hand-made scenario needs one), each step documented with the model's expectations when
/// the model allows the actions (as in a generated scenario), bare otherwise.
pub fn scenario_of(config_toml: &str, purpose: &str, actions: &[Action]) -> Scenario {
    let documented = ModelConfig::from_toml_str(config_toml).ok().and_then(|c| {
        let m = AgModel::new(c).for_conformance();
        replay(&m, config_toml, purpose, actions)
    });
    documented.unwrap_or_else(|| Scenario {
        format: FORMAT.to_owned(),
        purpose: purpose.to_owned(),
        config: config_toml.to_owned(),
        initial: Vec::new(),
        initial_quiescent: true,
        steps: actions
            .iter()
            .map(|&action| ScenarioStep {
                action,
                expected: Vec::new(),
                quiescent: true,
            })
            .collect(),
        covers: Coverage::default(),
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

/// The kinds of environment action a walk may try where the spec refuses them: an operator's
/// commands, and the faults a fault injector can aim wrongly (a health fault of a secondary,
/// a stalled disk on the primary, a lost block with no one to send it). A crash of a down
/// server, a restart of a running one or a cut of a cut link are no commands: never tried.
pub(crate) fn refusable(kind: ActionKind) -> bool {
    use ActionKind::*;
    matches!(kind.class(), hadr_model::ActionClass::Operator)
        || matches!(kind, HealthFault | DiskStall | LoseLogBlock)
}

/// One walk in `REFUSAL_ONE_IN` steps tries a refused action, when there is one.
const REFUSAL_ONE_IN: usize = 6;

/// A random walk of at most `length` environment actions on `m` (within its bounds), the
/// environment acting only at rest: each action enabled in some state at rest the model may be
/// in, or, one step in [`REFUSAL_ONE_IN`], one it refuses in every such state.
fn walk(m: &AgModel, rng: &mut Rng, length: usize) -> Vec<Action> {
    let environment: Vec<Action> = m
        .candidates()
        .iter()
        .filter(|a| is_environment(a))
        .filter(|a| hadr_model::not_applicable(a.kind(), m.config()).is_none())
        .copied()
        .collect();
    let Ok(mut states) = run_to_rest(m, vec![m.initial_state()], MAX_FRONTIER) else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    for _ in 0..length {
        let (enabled, refused): (Vec<Action>, Vec<Action>) = environment
            .iter()
            .partition(|a| states.iter().any(|s| m.enabled(s, a)));
        let refused: Vec<Action> = refused
            .into_iter()
            .filter(|a| refusable(a.kind()))
            .collect();
        let action = if !refused.is_empty() && rng.below(REFUSAL_ONE_IN) == 0 {
            refused[rng.below(refused.len())]
        } else if !enabled.is_empty() {
            enabled[rng.below(enabled.len())]
        } else {
            break;
        };
        match run_to_rest(m, take_or_refuse(m, &states, &action), MAX_FRONTIER) {
            Ok(next) => states = next,
            Err(_) => break,
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
        action_kinds: ActionKind::ALL
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

/// The bounds of the larger, seeded corpus (`hadr certify --seed`): every disruption may come
/// twice (two crashes, two suspends, two partitions, a fault while a commit waits …), one more
/// client commit, and twice the disruptions in all.
pub fn repeated_disruptions(b: Bounds) -> Bounds {
    let twice = |n: u8| n.saturating_mul(2).max(n.saturating_add(1)).min(8);
    Bounds {
        transactions: b
            .transactions
            .saturating_add(1)
            .min(hadr_model::config::MAX_TRANSACTIONS),
        crashes: twice(b.crashes),
        network_faults: twice(b.network_faults),
        failovers: twice(b.failovers).min(hadr_model::config::MAX_FAILOVERS),
        forced_failovers: twice(b.forced_failovers),
        suspends: twice(b.suspends),
        config_changes: twice(b.config_changes),
        events: twice(b.events),
        ..b
    }
}

/// How deep [`mutant_scenarios`] searches, in environment steps.
const MUTANT_DEPTH: usize = 6;

/// How many pairs of state sets [`mutant_scenarios`] visits at most.
const MUTANT_NODES: usize = 20_000;

/// The shortest scenarios on which `mutant`, run as a system under test, fails, until `wanted`
/// of them (counting `caught`, the corpus' scenarios that already catch it every way), found
/// breadth-first over the environment's actions at rest (within the configuration's bounds,
/// refusals included), the mutant and the spec side by side: a node is what the mutant may be
/// in and what the spec may be in, given what the mutant showed. Scenarios every behaviour of
/// the mutant fails come first. Action sequences in `taken` are not repeated.
fn mutant_scenarios(
    config: &ModelConfig,
    config_toml: &str,
    mutant: Mutant,
    (caught, wanted): (usize, usize),
    taken: &mut HashSet<Vec<Action>>,
) -> Vec<Scenario> {
    use crate::refine::{Refinement, MAX_STATES};
    use std::collections::VecDeque;
    let needed = wanted.saturating_sub(caught);
    if needed == 0 {
        return Vec::new();
    }
    let bounded_bug = AgModel::with_mutant(config.clone(), mutant);
    let spec = AgModel::new(config.clone()).for_conformance();
    let environment: Vec<Action> = bounded_bug
        .candidates()
        .iter()
        .filter(|a| is_environment(a))
        .filter(|a| hadr_model::not_applicable(a.kind(), config).is_none())
        .copied()
        .collect();
    let (Ok(bug), Ok(judge)) = (
        Refinement::new(bounded_bug.clone(), MAX_STATES),
        Refinement::new(spec.clone(), MAX_STATES),
    ) else {
        return Vec::new();
    };
    type Node = (Vec<Action>, Refinement, Refinement);
    let mut queue: VecDeque<Node> = VecDeque::new();
    let mut visited: HashSet<(Vec<State>, Vec<State>)> = HashSet::new();
    let mut visit =
        |queue: &mut VecDeque<Node>, actions: Vec<Action>, b: Refinement, j: Refinement| {
            if visited.insert((b.states().to_vec(), j.states().to_vec())) {
                queue.push_back((actions, b, j));
            }
        };
    for o in bug.allowed() {
        visit(
            &mut queue,
            Vec::new(),
            bug.with_observation(&o),
            judge.with_observation(&o),
        );
    }
    let mut found: Vec<(bool, Scenario)> = Vec::new();
    let mut nodes = 0;
    while let Some((actions, b, j)) = queue.pop_front() {
        nodes += 1;
        let enough = found.iter().filter(|(must, _)| *must).count() >= needed;
        if nodes > MUTANT_NODES || enough || actions.len() >= MUTANT_DEPTH {
            break;
        }
        for a in &environment {
            let enabled = b.states().iter().any(|s| bounded_bug.enabled(s, a));
            if !enabled && !refusable(a.kind()) {
                continue;
            }
            let (mut b, mut j) = (b.clone(), j.clone());
            if b.step(a).is_err() || j.step(a).is_err() {
                continue;
            }
            let mut next = actions.clone();
            next.push(*a);
            let options = b.allowed();
            let fails = options
                .iter()
                .any(|o| j.with_observation(o).states().is_empty());
            if fails {
                if taken.contains(&next) {
                    continue;
                }
                let purpose = format!("mutant {mutant}");
                let Some(scenario) = replay(&spec, config_toml, &purpose, &next) else {
                    continue;
                };
                let must = kills(bounded_bug.clone(), &scenario).is_ok_and(|k| k.must);
                taken.insert(next);
                found.push((must, scenario));
                continue;
            }
            for o in options {
                visit(
                    &mut queue,
                    next.clone(),
                    b.with_observation(&o),
                    j.with_observation(&o),
                );
            }
        }
    }
    // Those every behaviour of the mutant fails first, then the others, as many as needed; the
    // rest are given back.
    found.sort_by_key(|(must, _)| !must);
    for (_, s) in found.iter().skip(needed) {
        taken.remove(&s.steps.iter().map(|s| s.action).collect::<Vec<_>>());
    }
    found.into_iter().take(needed).map(|(_, s)| s).collect()
}

/// `count` seeded random walks of `length` environment steps on `bounded` (within its bounds,
/// at rest, with refusals), each replayed on `m` (no budgets) for its documentation; a walk
/// that repeats an earlier one (or one in `taken`), or is too broad, is left out. `purpose`
/// names walk `i`.
fn seeded_walks(
    (bounded, m): (&AgModel, &AgModel),
    config_toml: &str,
    (seed, count, length): (u64, usize, usize),
    taken: &mut HashSet<Vec<Action>>,
    purpose: &mut dyn FnMut(usize) -> String,
) -> Vec<Scenario> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut scenarios = Vec::new();
    for i in 0..count {
        let purpose = purpose(i);
        let actions = walk(bounded, &mut rng, length);
        if actions.is_empty() || !taken.insert(actions.clone()) {
            continue;
        }
        if let Some(scenario) = replay(m, config_toml, &purpose, &actions) {
            scenarios.push(scenario);
        }
    }
    scenarios
}

/// `count` random walks of `length` environment steps from `seed`, with their documentation:
/// the larger, seeded sibling of a committed corpus (`hadr certify --seed`), for systems fast
/// enough to run hundreds of scenarios. Unlike the corpus' own walks they may repeat every
/// kind of disruption ([`repeated_disruptions`]).
pub fn random_walks(
    config_toml: &str,
    seed: u64,
    count: usize,
    length: usize,
) -> Result<Vec<Scenario>, GenerateError> {
    let config = ModelConfig::from_toml_str(config_toml)?;
    let wide = ModelConfig::new(config.ag.clone(), repeated_disruptions(config.bounds))?;
    let bounded = AgModel::new(wide.clone());
    let m = AgModel::new(wide).for_conformance();
    Ok(seeded_walks(
        (&bounded, &m),
        config_toml,
        (seed, count, length),
        &mut HashSet::new(),
        &mut |i| format!("seed {seed} walk {i}"),
    ))
}

/// Generates the corpus of a model configuration (`config_toml`, as `hadr check --config`
/// reads it). `on_target` is told each target as it is worked on (for progress output).
pub fn generate(
    config_toml: &str,
    options: &GenerateOptions,
    on_target: &mut dyn FnMut(&str),
) -> Result<Corpus, GenerateError> {
    let config = ModelConfig::from_toml_str(config_toml)?;
    // Paths and walks keep to the configuration's bounds; the documentation knows none.
    let bounded = AgModel::new(config.clone());
    let m = bounded.clone().for_conformance();
    let check = CheckOptions {
        threads: options.threads.max(1),
        ..CheckOptions::default()
    };
    let mut paths = hadr_model::example_paths(&config, true, &check, &mut |_| {});
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    let mut scenarios = Vec::new();
    let mut too_broad = Vec::new();
    let mut taken: HashSet<Vec<Action>> = HashSet::new();
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
        if !taken.insert(actions.clone()) {
            continue; // the same environment steps as an earlier target's scenario
        }
        match replay(&m, config_toml, target, &actions) {
            Some(scenario) => scenarios.push(scenario),
            None => too_broad.push(target.clone()),
        }
    }
    let walks = seeded_walks(
        (&bounded, &m),
        config_toml,
        (options.seed, options.walks, options.walk_length),
        &mut taken,
        &mut |i| {
            let purpose = format!("walk {i}");
            on_target(&purpose);
            purpose
        },
    );
    // Mutation adequacy: every applicable mutant fails on `kills_per_mutant` scenarios.
    if options.kills_per_mutant > 0 {
        let mut all: Vec<(String, Scenario)> = scenarios
            .iter()
            .chain(&walks)
            .map(|s| (s.purpose.clone(), s.clone()))
            .collect();
        for mutant in applicable_mutants(&config) {
            on_target(&format!("mutant {mutant}"));
            let caught = crate::adequacy::mutant_kills(mutant, &all)
                .always_caught_by
                .len();
            let found = mutant_scenarios(
                &config,
                config_toml,
                mutant,
                (caught, options.kills_per_mutant),
                &mut taken,
            );
            all.extend(found.iter().map(|s| (s.purpose.clone(), s.clone())));
            scenarios.extend(found);
        }
    }
    scenarios.extend(walks);
    let mut coverage = Coverage::default();
    for s in &scenarios {
        coverage.merge(&s.covers);
    }
    let missing = wanted(&config).without(&coverage);
    on_target("measuring");
    let named: Vec<(String, Scenario)> = scenarios
        .iter()
        .map(|s| (s.purpose.clone(), s.clone()))
        .collect();
    let measure = crate::adequacy::measure(&named);
    Ok(Corpus {
        scenarios,
        coverage,
        missing,
        too_broad,
        measure,
    })
}
