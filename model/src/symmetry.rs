//! Symmetry reduction: replicas configured alike (same availability mode, same automatic
//! failover eligibility) are interchangeable, so a state and the same state with two such
//! replicas swapped behave alike. The checker stores one representative per class of states:
//! within each group of interchangeable replicas, replicas sorted by their own state.
//!
//! Every replica carries its group (`Replica::class`, fixed at creation), because Stateright
//! takes the representative function as a plain `fn` with no configuration at hand.
//!
//! Soundness only needs the representative to be a permutation of the state within groups
//! (every property is quantified over all replicas and reads the configuration only through
//! group-invariant attributes); sorting makes it canonical enough to merge most symmetric
//! states.

use crate::state::{pair_bit, Rid, State};
use smallvec::SmallVec;

/// The representative of a state's symmetry class.
pub fn representative(s: &State) -> State {
    let n = s.replicas.len();
    // perm[new position] = old position
    let mut perm: SmallVec<[Rid; 9]> = (0..n as Rid).collect();
    let mut done = 0u16;
    for first in 0..n {
        if done & (1 << first) != 0 {
            continue;
        }
        let class = s.replicas[first].class;
        let slots: SmallVec<[Rid; 9]> = (first..n)
            .filter(|&i| s.replicas[i].class == class)
            .map(|i| i as Rid)
            .collect();
        for &slot in &slots {
            done |= 1 << slot;
        }
        if slots.len() < 2 {
            continue;
        }
        let mut members = slots.clone();
        members.sort_by(|&a, &b| sort_key(s, &slots, a).cmp(&sort_key(s, &slots, b)));
        for (slot, old) in slots.iter().zip(members) {
            perm[usize::from(*slot)] = old;
        }
    }
    if perm.iter().enumerate().all(|(i, &o)| usize::from(o) == i) {
        return s.clone();
    }
    permuted(s, &perm)
}

/// Everything that tells a replica apart from the others of its group: its own state and
/// databases, and every reference to it (manager, lease, failover records, links to replicas
/// outside the group). Two members tie only if swapping them changes nothing but links among
/// the group's own members.
fn sort_key<'s>(
    s: &'s State,
    group: &[Rid],
    r: Rid,
) -> (
    &'s crate::state::Replica,
    &'s [crate::state::Db],
    [bool; 3],
    u32,
    u16,
) {
    let references = [
        s.net.manager_cut(r),
        s.manager.primary == r,
        s.manager.lease == Some(r),
    ];
    let failovers = s.failovers.iter().enumerate().fold(0u32, |bits, (i, f)| {
        bits | u32::from(f.from == r) << (2 * i) | u32::from(f.to == r) << (2 * i + 1)
    });
    let outside_cuts = (0..s.replicas.len() as Rid)
        .filter(|o| !group.contains(o))
        .fold(0u16, |bits, o| bits | u16::from(!s.net.linked(r, o)) << o);
    (
        &s.replicas[usize::from(r)],
        s.dbs_of(r),
        references,
        failovers,
        outside_cuts,
    )
}

/// The state with its replicas moved: the replica at `perm[new]` comes to position `new`, and
/// every reference to a replica (links, lease, primary, failover records) follows it.
pub fn permuted(s: &State, perm: &[Rid]) -> State {
    let n = s.replicas.len();
    assert_eq!(perm.len(), n, "a permutation of every replica");
    let mut inverse: SmallVec<[Rid; 9]> = SmallVec::from_elem(0, n);
    for (new, &old) in perm.iter().enumerate() {
        inverse[usize::from(old)] = new as Rid;
    }
    let map = |r: Rid| inverse[usize::from(r)];
    let mut out = s.clone();
    for (new, &old) in perm.iter().enumerate() {
        out.replicas[new] = s.replicas[usize::from(old)];
        out.dbs_of_mut(new as Rid).copy_from_slice(s.dbs_of(old));
    }
    out.net.replica_cuts = 0;
    out.net.manager_cuts = 0;
    for a in 0..n as Rid {
        if s.net.manager_cut(a) {
            out.net.manager_cuts |= 1 << map(a);
        }
        for b in 0..a {
            if !s.net.linked(a, b) {
                out.net.replica_cuts |= pair_bit(map(a), map(b));
            }
        }
    }
    out.manager.primary = map(s.manager.primary);
    out.manager.lease = s.manager.lease.map(map);
    for f in out.failovers.iter_mut() {
        f.from = map(f.from);
        f.to = map(f.to);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::spec::AgModel;
    use std::collections::{HashSet, VecDeque};

    /// Every reachable state of a configuration, by plain breadth-first search.
    fn reachable(model: &AgModel) -> Vec<State> {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([model.initial_state()]);
        let mut out = Vec::new();
        while let Some(s) = queue.pop_front() {
            if !seen.insert(s.clone()) {
                continue;
            }
            for a in model.candidates() {
                if model.enabled(&s, a) {
                    queue.push_back(model.apply(&s, a));
                }
            }
            out.push(s);
        }
        out
    }

    fn small_pair() -> AgModel {
        let mut config: ModelConfig =
            ModelConfig::from_toml_str(include_str!("../configs/two-replicas.toml")).unwrap();
        config.bounds.events = 1;
        AgModel::new(config)
    }

    #[test]
    fn representatives_are_canonical_for_swapped_replicas() {
        let model = small_pair();
        let states = reachable(&model);
        assert!(states.len() > 1_000, "{} states", states.len());
        let mut merged = 0;
        for s in &states {
            let r = representative(s);
            assert_eq!(representative(&r), r, "idempotent");
            let swapped = permuted(s, &[1, 0]);
            assert_eq!(representative(&swapped), r, "A and B are interchangeable");
            assert_eq!(permuted(&swapped, &[1, 0]), *s, "a swap undoes itself");
            merged += usize::from(r != *s);
        }
        assert!(merged > 0, "some states are not their own representative");
    }

    #[test]
    fn replicas_configured_differently_are_never_swapped() {
        let model = AgModel::new(ModelConfig::default());
        let s = model.initial_state();
        let classes: Vec<u8> = s.replicas.iter().map(|r| r.class).collect();
        assert_eq!(classes, vec![0, 0, 2], "A and B alike, C apart");
        let r = representative(&permuted(&s, &[1, 0, 2]));
        assert_eq!(r.replicas[2].class, 2, "C stays in its slot");
    }
}
