//! Lock-step differential runs: the spec and a system under test side by side on one sequence
//! of environment actions, each observation of the system judged by refinement as a scenario's
//! are ([`crate::refine`]), computed on the fly. The differential fuzz target
//! (`fuzz/fuzz_targets/differential.rs`) feeds it arbitrary bytes; its regressions, run on
//! `reference-sim`, are hadr-adapters' `tests/lockstep.rs`.
//!
//! An action no state the spec may be in enables is left out (the system never sees it),
//! unless it is a command or fault the system must refuse (an operator's command, a health
//! fault, a stalled disk, a lost block): then the system gets it and must change nothing. An
//! action some states enable is refused in the others, which stay as they are.

use crate::judge::Disagreement;
use crate::refine::{is_environment, Refinement, TooBroad};
use crate::sut::{Sut, SutError};
use hadr_model::{Action, AgModel, ModelConfig};
use hadr_types::Observation;
use rustc_hash::{FxBuildHasher, FxHasher};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// The largest number of states a lock-step run tracks: a run whose model grows past it stops
/// there (it is not a divergence; it is too broad to judge quickly).
pub const FRONTIER_CAP: usize = 20_000;

/// Where the system left the model.
#[derive(Debug)]
pub enum Divergence {
    /// An observation the model does not allow after these actions and the observations
    /// before it.
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
    initial: Result<Refinement, TooBroad>,
    /// The largest set of states a run tracks ([`Lockstep::with_frontier_cap`]).
    cap: usize,
    /// The model after each run prefix met so far (a fuzzer replays the same prefixes over and
    /// over): about three times the scenarios per second. Emptied when it holds more than
    /// [`CACHE_STATES`] states.
    cache: Mutex<Cache>,
}

/// At most this many model states are kept in a [`Lockstep`]'s cache.
const CACHE_STATES: usize = 1_000_000;

/// A run prefix: its actions, and a hash of every observation the system showed along it.
type Prefix = (Vec<Action>, u64);

/// Hashed with FxHash (rustc-hash): the keys come from the model and the system's observations,
/// never from an adversary, so SipHash's resistance to flooding buys nothing here.
#[derive(Default)]
struct Cache {
    after: HashMap<Prefix, Next, FxBuildHasher>,
    states: usize,
}

/// The model after a run prefix and one more action.
#[derive(Clone)]
enum Next {
    /// No state enables the action and the system need not be asked: it is left out.
    Skip,
    /// The states grew past the cap ([`FRONTIER_CAP`] by default): the run stops.
    TooBroad,
    /// The states at rest after the action, before the system is observed.
    States(Arc<Refinement>),
}

fn disagreement(
    step: usize,
    observed: Observation,
    spec: &Refinement,
    history: &[Observation],
) -> Disagreement {
    let mut expected = spec.allowed();
    expected.sort_by_key(|e| crate::judge::distance(e, &observed));
    Disagreement {
        step,
        observed,
        expected,
        previous: history.last().cloned(),
        history: history.to_vec(),
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
        let initial = Refinement::new(model.clone(), FRONTIER_CAP);
        Lockstep {
            config,
            model,
            environment,
            initial,
            cap: FRONTIER_CAP,
            cache: Mutex::default(),
        }
    }

    /// Stops a run once the model may be in more than `cap` states (instead of
    /// [`FRONTIER_CAP`]): a fuzzer trades the broadest scenarios for many more narrow ones.
    pub fn with_frontier_cap(mut self, cap: usize) -> Lockstep {
        self.cap = cap;
        self.initial = Refinement::new(self.model.clone(), cap);
        self
    }

    /// The model after `prefix` and then `action` (from `spec`, the model after `prefix`),
    /// from the cache when it was met before.
    fn next(&self, prefix: &Prefix, spec: &Refinement, action: Action) -> Next {
        let mut key = prefix.clone();
        key.0.push(action);
        if let Some(next) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.after.get(&key).cloned())
        {
            return next;
        }
        let m = &self.model;
        let enabled = spec.states().iter().any(|s| m.enabled(s, &action));
        let next = if !enabled && !crate::generate::refusable(action.kind()) {
            Next::Skip
        } else {
            let mut after = spec.clone();
            match after.step(&action) {
                Ok(()) => Next::States(Arc::new(after)),
                Err(_) => Next::TooBroad,
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            let size = match &next {
                Next::States(r) => r.states().len(),
                _ => 0,
            };
            if cache.states + size > CACHE_STATES {
                *cache = Cache::default();
            }
            cache.states += size;
            cache.after.insert(key, next.clone());
        }
        next
    }

    /// The environment actions of the configuration, in the model's order: choices index
    /// into it.
    pub fn environment(&self) -> &[Action] {
        &self.environment
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs the actions `choices` pick (each taken modulo the number of environment actions)
    /// on the model and on `sut` in lock step. Returns the actions performed.
    pub fn run(
        &self,
        choices: impl IntoIterator<Item = usize>,
        sut: &mut dyn Sut,
    ) -> Result<Vec<Action>, Divergence> {
        sut.setup(&self.config.ag)
            .map_err(|error| Divergence::Sut {
                actions: Vec::new(),
                error,
            })?;
        self.run_set_up(choices, sut)
    }

    /// [`Lockstep::run`] on a system already set up with this configuration (and nothing
    /// done since): a copy of one set up once, say.
    pub fn run_set_up(
        &self,
        choices: impl IntoIterator<Item = usize>,
        sut: &mut dyn Sut,
    ) -> Result<Vec<Action>, Divergence> {
        let mut actions = Vec::new();
        let failed = |actions: &Vec<Action>, error| Divergence::Sut {
            actions: actions.clone(),
            error,
        };
        let Ok(initial) = &self.initial else {
            return Ok(actions);
        };
        let mut history: Vec<Observation> = Vec::new();
        let mut seen = FxHasher::default();
        let mut spec = initial.clone();
        let observed = sut.observe().map_err(|e| failed(&actions, e))?;
        if !spec.observe(&observed) {
            return Err(Divergence::Observation {
                actions,
                disagreement: Box::new(disagreement(0, observed, &spec, &history)),
            });
        }
        observed.hash(&mut seen);
        history.push(observed);
        for choice in choices {
            if self.environment.is_empty() {
                break;
            }
            let action = self.environment[choice % self.environment.len()];
            let prefix = (actions.clone(), seen.finish());
            spec = match self.next(&prefix, &spec, action) {
                Next::Skip => continue,
                Next::TooBroad => {
                    actions.push(action);
                    return Ok(actions);
                }
                Next::States(r) => Refinement::clone(&r),
            };
            actions.push(action);
            sut.step(&action).map_err(|e| failed(&actions, e))?;
            let observed = sut.observe().map_err(|e| failed(&actions, e))?;
            if !spec.observe(&observed) {
                return Err(Divergence::Observation {
                    disagreement: Box::new(disagreement(actions.len(), observed, &spec, &history)),
                    actions,
                });
            }
            observed.hash(&mut seen);
            history.push(observed);
        }
        Ok(actions)
    }
}
