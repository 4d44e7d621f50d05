//! Judging by refinement: the set of spec states consistent with *everything* a system under
//! test has shown so far.
//!
//! A system driven through a scenario acts like this: the environment takes one action, then
//! the system runs on its own until it is at rest, then it is observed. The judge mirrors it on
//! the model, keeping the states the model may be in given every earlier observation:
//!
//! 1. **act**: the environment action applies to each state where the model enables it; where
//!    it does not, the state stays as it is (the system must refuse it there);
//! 2. **run to rest**: the states are closed under internal actions, and only the states *at
//!    rest* are kept: those in a bottom strongly connected component of the internal steps,
//!    from which no internal step leads anywhere the system could not come back from. A state
//!    with no internal step left (quiescent) is the usual case; a bottom cycle, if the spec had
//!    one, would be a system that keeps moving but never settles elsewhere;
//! 3. **observe**: only the states whose observation equals the one the system showed stay.
//!
//! An empty set is a failure: no behaviour of the spec explains what was seen, *given what was
//! seen before*. A set that grows past its cap is reported as too broad to judge, never passed.

use hadr_model::{Action, AgModel, State};
use hadr_types::Observation;
use rustc_hash::FxBuildHasher;
use std::collections::{HashMap, HashSet};

/// How many states the closure of one step may reach before the judge gives up on a scenario
/// as too broad to track.
pub const MAX_STATES: usize = 200_000;

/// The set of states to track grew past its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the model may be in more than {cap} states here: too broad to judge (the scenario is neither passed nor failed)")]
pub struct TooBroad {
    /// The cap that was passed.
    pub cap: usize,
}

/// Whether an action is the environment's (a client, an operator, a fault), not the protocol's.
pub fn is_environment(action: &Action) -> bool {
    action.kind().class().is_environment()
}

/// An environment action taken by a set of states: applied in every state where the model
/// enables it; the others stay as they are (there the system refuses it).
pub fn take_or_refuse(m: &AgModel, states: &[State], action: &Action) -> Vec<State> {
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

/// The closure of a set of states under the protocol's internal actions, as a graph.
pub struct Closure {
    /// Every state reached, the start states first (in breadth-first order).
    pub states: Vec<State>,
    /// The internal steps between them (`edges[i]`: the successors of `states[i]`).
    pub edges: Vec<Vec<u32>>,
    /// The action kinds taken (a bit per [`hadr_model::ActionKind::index`]).
    pub kinds: u64,
}

impl Closure {
    /// Explores `start` under internal actions, breadth-first; `Err` past `cap` states.
    pub fn explore(m: &AgModel, start: Vec<State>, cap: usize) -> Result<Closure, TooBroad> {
        let internal: Vec<Action> = m
            .candidates()
            .iter()
            .filter(|a| !is_environment(a))
            .copied()
            .collect();
        // FxHash (rustc-hash): the keys are the model's own states, so SipHash's resistance to
        // flooding buys nothing, and hashing states is most of the time a closure takes.
        let mut index: HashMap<State, u32, FxBuildHasher> = HashMap::default();
        let mut states: Vec<State> = Vec::new();
        for s in start {
            if !index.contains_key(&s) {
                index.insert(s.clone(), states.len() as u32);
                states.push(s);
            }
        }
        let mut edges: Vec<Vec<u32>> = Vec::new();
        let mut kinds = 0u64;
        let mut next = 0;
        while next < states.len() {
            let mut out = Vec::new();
            for a in &internal {
                if !m.enabled(&states[next], a) {
                    continue;
                }
                kinds |= 1 << a.kind().index();
                let successor = m.apply(&states[next], a);
                let id = match index.get(&successor) {
                    Some(&id) => id,
                    None => {
                        if states.len() >= cap {
                            return Err(TooBroad { cap });
                        }
                        let id = states.len() as u32;
                        index.insert(successor.clone(), id);
                        states.push(successor);
                        id
                    }
                };
                if !out.contains(&id) {
                    out.push(id);
                }
            }
            edges.push(out);
            next += 1;
        }
        Ok(Closure {
            states,
            edges,
            kinds,
        })
    }

    /// Which states are at rest: in a bottom strongly connected component of the graph (no
    /// edge leaves it). Tarjan's algorithm, iterative.
    pub fn at_rest(&self) -> Vec<bool> {
        let n = self.states.len();
        const NONE: u32 = u32::MAX;
        let mut order = vec![NONE; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut component = vec![NONE; n];
        let mut components = 0u32;
        let mut counter = 0u32;
        // (node, next edge to look at)
        let mut work: Vec<(u32, usize)> = Vec::new();
        for root in 0..n as u32 {
            if order[root as usize] != NONE {
                continue;
            }
            work.push((root, 0));
            while let Some(&mut (v, ref mut next)) = work.last_mut() {
                let vi = v as usize;
                if *next == 0 && order[vi] == NONE {
                    order[vi] = counter;
                    low[vi] = counter;
                    counter += 1;
                    stack.push(v);
                    on_stack[vi] = true;
                }
                if let Some(&w) = self.edges[vi].get(*next) {
                    *next += 1;
                    let wi = w as usize;
                    if order[wi] == NONE {
                        work.push((w, 0));
                    } else if on_stack[wi] {
                        low[vi] = low[vi].min(order[wi]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    let p = parent as usize;
                    low[p] = low[p].min(low[vi]);
                }
                if low[vi] == order[vi] {
                    while let Some(w) = stack.pop() {
                        on_stack[w as usize] = false;
                        component[w as usize] = components;
                        if w == v {
                            break;
                        }
                    }
                    components += 1;
                }
            }
        }
        // A component with an edge out of it is not at the bottom.
        let mut exits = vec![false; components as usize];
        for (v, c) in component.iter().enumerate() {
            if self.edges[v].iter().any(|&w| component[w as usize] != *c) {
                exits[*c as usize] = true;
            }
        }
        component.iter().map(|&c| !exits[c as usize]).collect()
    }

    /// The states at rest, in breadth-first order.
    pub fn resting_states(self) -> Vec<State> {
        let rest = self.at_rest();
        self.states
            .into_iter()
            .zip(rest)
            .filter_map(|(s, r)| r.then_some(s))
            .collect()
    }
}

/// `states` run to rest: closed under internal actions, only the states at rest kept.
pub fn run_to_rest(m: &AgModel, states: Vec<State>, cap: usize) -> Result<Vec<State>, TooBroad> {
    Ok(Closure::explore(m, states, cap)?.resting_states())
}

/// The distinct observations of `states`, sorted by their JSON text (a stable order).
pub fn observations(m: &AgModel, states: &[State]) -> Vec<Observation> {
    let set: HashSet<Observation> = states.iter().map(|s| m.observe(s)).collect();
    let mut keyed: Vec<(String, Observation)> = set
        .into_iter()
        .map(|o| (serde_json::to_string(&o).unwrap_or_default(), o))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, o)| o).collect()
}

/// The states of the spec consistent with every observation of a run so far.
#[derive(Clone)]
pub struct Refinement {
    model: AgModel,
    states: Vec<State>,
    cap: usize,
}

impl Refinement {
    /// The model's initial state run to rest (the group just created, before any
    /// observation).
    pub fn new(model: AgModel, cap: usize) -> Result<Refinement, TooBroad> {
        let states = run_to_rest(&model, vec![model.initial_state()], cap)?;
        Ok(Refinement { model, states, cap })
    }

    /// The model judged against.
    pub fn model(&self) -> &AgModel {
        &self.model
    }

    /// The states consistent with the run so far.
    pub fn states(&self) -> &[State] {
        &self.states
    }

    /// What the system may show now: the distinct observations of [`Refinement::states`].
    pub fn allowed(&self) -> Vec<Observation> {
        observations(&self.model, &self.states)
    }

    /// The environment takes `action`, then the system runs to rest.
    pub fn step(&mut self, action: &Action) -> Result<(), TooBroad> {
        let next = take_or_refuse(&self.model, &self.states, action);
        self.states = run_to_rest(&self.model, next, self.cap)?;
        Ok(())
    }

    /// Keeps the states that show `observed`. `false` (and the states unchanged) when none
    /// does: the system did something the spec does not allow after this history.
    pub fn observe(&mut self, observed: &Observation) -> bool {
        let kept: Vec<State> = self
            .states
            .iter()
            .filter(|s| self.model.observe(s) == *observed)
            .cloned()
            .collect();
        if kept.is_empty() {
            return false;
        }
        self.states = kept;
        true
    }

    /// The states whose observation is `observed` (none: nothing is kept).
    pub fn with_observation(&self, observed: &Observation) -> Refinement {
        Refinement {
            model: self.model.clone(),
            states: self
                .states
                .iter()
                .filter(|s| self.model.observe(s) == *observed)
                .cloned()
                .collect(),
            cap: self.cap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadr_model::ModelConfig;

    fn graph(edges: Vec<Vec<u32>>) -> Closure {
        let m = AgModel::new(ModelConfig::default());
        Closure {
            states: vec![m.initial_state(); edges.len()],
            edges,
            kinds: 0,
        }
    }

    /// Quiescent states, bottom cycles and a cycle with an exit, told apart.
    #[test]
    fn at_rest_is_the_bottom_components() {
        // 0 → 1 → 2 (quiescent); 3 ↔ 4 (a bottom cycle); 5 ↔ 6 → 2 (a cycle with an exit).
        let g = graph(vec![
            vec![1],
            vec![2],
            vec![],
            vec![4],
            vec![3],
            vec![6],
            vec![5, 2],
        ]);
        assert_eq!(g.at_rest(), [false, false, true, true, true, false, false]);
        // A self-loop is a bottom component of its own.
        assert_eq!(graph(vec![vec![0]]).at_rest(), [true]);
    }

    /// The default group at rest after creation: one state, every synchronous secondary
    /// connected and SYNCHRONIZED; a commit then leaves one state at rest, acknowledged.
    #[test]
    fn the_default_group_settles_to_one_state() {
        let m = AgModel::new(ModelConfig::default()).for_conformance();
        let mut r = Refinement::new(m, MAX_STATES).unwrap();
        assert_eq!(r.states().len(), 1);
        r.step(&Action::ClientCommit { db: 0 }).unwrap();
        let allowed = r.allowed();
        assert_eq!(allowed.len(), 1, "{allowed:?}");
        assert!(r.observe(&allowed[0]));
        let mut wrong = allowed[0].clone();
        wrong.replicas[1].databases[0].end_of_log_lsn = hadr_types::Lsn(0);
        assert!(!r.observe(&wrong));
        assert_eq!(
            r.states().len(),
            1,
            "a refused observation keeps the states"
        );
    }
}
