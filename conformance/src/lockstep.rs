//! Lock-step differential runs: the spec and a system under test side by side on one sequence
//! of environment actions, each observation of the system judged by refinement as a scenario's
//! are ([`crate::refine`]), computed on the fly. The differential fuzz target
//! (`fuzz/fuzz_targets/differential.rs`) feeds it arbitrary bytes.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ReferenceSim;

    /// Runs `actions` (each must be an environment action of the configuration) in lock step.
    fn run_actions(lockstep: &Lockstep, actions: &[Action]) -> Result<Vec<Action>, Divergence> {
        let choices: Vec<usize> = actions
            .iter()
            .map(|a| {
                lockstep
                    .environment()
                    .iter()
                    .position(|e| e == a)
                    .unwrap_or_else(|| panic!("{a:?} is no environment action here"))
            })
            .collect();
        lockstep.run(choices, &mut ReferenceSim::new())
    }

    /// The two-replica configuration (`model/configs/two-replicas.toml`).
    const TWO_REPLICAS: &str = include_str!("../../model/configs/two-replicas.toml");

    /// Asserts that the reference core performs every one of `actions` (in the configuration
    /// `config_toml`) in step with the spec.
    fn keeps_in_step(config_toml: &str, actions: &[Action]) {
        let lockstep = Lockstep::new(ModelConfig::from_toml_str(config_toml).unwrap());
        let performed = run_actions(&lockstep, actions).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(performed, actions);
    }

    /// Found by the differential fuzz target (R-COMMIT-5): B, cut off from the primary when
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT became 1, is forced primary and must commit
    /// by the group's value (refusing: no secondary is SYNCHRONIZED), not by the 0 it last
    /// heard. The manager gives the stored value with the promotion.
    #[test]
    fn a_replica_promoted_after_missing_an_alter_commits_by_the_groups_required_synchronized() {
        use hadr_model::Node;
        use hadr_types::FailureCondition;
        keeps_in_step(
            hadr_model::DEFAULT_CONFIG_TOML,
            &[
                Action::Partition {
                    a: Node::Replica(2),
                    b: Node::Manager,
                },
                Action::Partition {
                    a: Node::Replica(0),
                    b: Node::Replica(1),
                },
                Action::SetRequiredSynchronized { k: 1 },
                Action::HealthFault {
                    replica: 0,
                    condition: FailureCondition::Unresponsive,
                },
                Action::ForcedFailover { target: 1 },
                Action::ClientCommit { db: 0 },
            ],
        );
    }

    /// Found by the differential fuzz target (R-FAIL-7): after one automatic failover the
    /// two-replica group is at its failure threshold (replicas − 1), so a health fault of the
    /// new primary fails nobody over: the manager restores it.
    #[test]
    fn at_the_failure_threshold_a_health_fault_fails_nobody_over() {
        use hadr_types::FailureCondition;
        keeps_in_step(
            TWO_REPLICAS,
            &[
                Action::Crash { replica: 0 },
                Action::ClientCommit { db: 0 },
                Action::Restart { replica: 0 },
                Action::HealthFault {
                    replica: 1,
                    condition: FailureCondition::CriticalError,
                },
            ],
        );
    }

    /// Found by the differential fuzz target (R-FAIL-6): A, the old primary holding a commit
    /// B never got, is resumed after B's forced failover while B's own database is suspended:
    /// A reverts to the fork point all the same, then is SUSPEND_FROM_PRIMARY.
    #[test]
    fn a_resumed_copy_beyond_the_fork_point_reverts_even_when_the_primary_database_is_suspended() {
        keeps_in_step(
            hadr_model::DEFAULT_CONFIG_TOML,
            &[
                Action::Suspend { replica: 1, db: 0 },
                Action::Crash { replica: 2 },
                Action::ClientCommit { db: 0 },
                Action::ForcedFailover { target: 1 },
                Action::Resume { replica: 0, db: 0 },
            ],
        );
    }

    /// Found by the differential fuzz target (R-QUORUM-2): B missed A's commit (a lost block)
    /// yet is SYNCHRONIZED; A is cut from the manager, its lease runs out, B is promoted. A,
    /// RESOLVING and cut off, must not follow B (nor revert its log): the simulated manager
    /// now tells a replica it is unreachable as soon as it is cut, as the node's etcd watch
    /// does within a second, not after the lease has already run out.
    #[test]
    fn a_replica_cut_from_the_manager_follows_no_new_primary() {
        keeps_in_step(
            TWO_REPLICAS,
            &[
                Action::LoseLogBlock { to: 1, db: 0 },
                Action::ClientCommit { db: 0 },
                Action::Partition {
                    a: hadr_model::Node::Replica(0),
                    b: hadr_model::Node::Manager,
                },
            ],
        );
    }

    /// Found by the differential fuzz target (R-SYNC-7): resuming the primary's database
    /// starts data movement again from each secondary's end of log, so a record lost before
    /// is sent again (the spec had the secondary wait for the next record).
    #[test]
    fn resuming_the_primary_database_sends_a_lost_record_again() {
        keeps_in_step(
            TWO_REPLICAS,
            &[
                Action::LoseLogBlock { to: 1, db: 0 },
                Action::ClientCommit { db: 0 },
                Action::Suspend { replica: 0, db: 0 },
                Action::Resume { replica: 0, db: 0 },
            ],
        );
    }

    /// Found by the differential fuzz target: C (asynchronous) holds T1, which B (SYNCHRONIZED,
    /// its block lost) lacks; C's log disk stalls; B is promoted and C must revert T1. The
    /// core cuts its log back at once and stays REVERTING, its truncation never done; the
    /// spec had the stalled copy not revert at all.
    #[test]
    fn a_stalled_copy_cut_back_to_the_fork_point_stays_reverting() {
        keeps_in_step(
            hadr_model::DEFAULT_CONFIG_TOML,
            &[
                Action::LoseLogBlock { to: 1, db: 0 },
                Action::ClientCommit { db: 0 },
                Action::SetRequiredSynchronized { k: 1 },
                Action::DiskStall { replica: 2 },
                Action::Partition {
                    a: hadr_model::Node::Replica(0),
                    b: hadr_model::Node::Manager,
                },
            ],
        );
    }

    /// The reference core agrees with the spec on seeded random action sequences of the
    /// two-replica configuration.
    #[test]
    fn reference_sim_keeps_in_step_with_the_spec() {
        let config = ModelConfig::from_toml_str(TWO_REPLICAS).unwrap();
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
