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
        members.sort_by(|&a, &b| {
            let key = |r: Rid| {
                (
                    &s.replicas[usize::from(r)],
                    s.dbs_of(r),
                    s.net.manager_cut(r),
                )
            };
            key(a).cmp(&key(b))
        });
        for (slot, old) in slots.iter().zip(members) {
            perm[usize::from(*slot)] = old;
        }
    }
    if perm.iter().enumerate().all(|(i, &o)| usize::from(o) == i) {
        return s.clone();
    }
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
