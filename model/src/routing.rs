//! Readable secondaries and the listener, in the spec: which connections a replica accepts
//! (R-READ-1) and where the listener sends a connection (R-READ-3), checked exhaustively over
//! every replica state, connection setting and routing list of up to four replicas.
//!
//! ```text
//!  connection (intent) ──▶ listener: route(view, intent, round-robin) ──▶ replica
//!                                          │ accepts(role, ALLOW_CONNECTIONS, intent)?
//!                                          └─ first available entry of the primary's
//!                                             READ_ONLY_ROUTING_LIST, else the primary
//! ```

use hadr_types::{ApplicationIntent, PrimaryConnections, Role, SecondaryConnections};
use serde::Serialize;
use std::fmt;

/// What an accepted connection may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Access {
    /// Reads and writes (the primary).
    ReadWrite,
    /// Reads only (a readable secondary).
    ReadOnly,
}

/// Why a replica refuses a connection (R-READ-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ConnectionRefusal {
    /// The replica is down or RESOLVING.
    NotAvailable,
    /// SECONDARY_ROLE (ALLOW_CONNECTIONS = NO).
    SecondaryNotReadable,
    /// SECONDARY_ROLE (ALLOW_CONNECTIONS = READ_ONLY) and the client did not say
    /// ApplicationIntent=ReadOnly.
    ReadIntentRequired,
    /// PRIMARY_ROLE (ALLOW_CONNECTIONS = READ_WRITE) refuses read-intent connections.
    ReadIntentRefusedByPrimary,
    /// The listener found no replica for the connection.
    NoRoute,
}

impl fmt::Display for ConnectionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionRefusal::NotAvailable => "the replica is down or RESOLVING",
            ConnectionRefusal::SecondaryNotReadable => "the secondary allows no connections",
            ConnectionRefusal::ReadIntentRequired => {
                "the secondary takes only ApplicationIntent=ReadOnly connections"
            }
            ConnectionRefusal::ReadIntentRefusedByPrimary => {
                "the primary refuses read-intent connections (ALLOW_CONNECTIONS = READ_WRITE)"
            }
            ConnectionRefusal::NoRoute => "no replica can take the connection",
        })
    }
}

/// R-READ-1: whether a replica in this role, with these settings, accepts a connection with
/// this intent, and for what.
pub fn accepts(
    role: Option<Role>,
    secondary: SecondaryConnections,
    primary: PrimaryConnections,
    intent: ApplicationIntent,
) -> Result<Access, ConnectionRefusal> {
    use ApplicationIntent::*;
    match role {
        None | Some(Role::Resolving) => Err(ConnectionRefusal::NotAvailable),
        Some(Role::Primary) => match (primary, intent) {
            (PrimaryConnections::ReadWrite, ReadOnly) => {
                Err(ConnectionRefusal::ReadIntentRefusedByPrimary)
            }
            _ => Ok(Access::ReadWrite),
        },
        Some(Role::Secondary) => match (secondary, intent) {
            (SecondaryConnections::No, _) => Err(ConnectionRefusal::SecondaryNotReadable),
            (SecondaryConnections::ReadOnly, ReadWrite) => {
                Err(ConnectionRefusal::ReadIntentRequired)
            }
            _ => Ok(Access::ReadOnly),
        },
    }
}

/// One replica as the listener sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaRouteView {
    /// Its role, or `None` while it is down or unreachable.
    pub role: Option<Role>,
    /// SECONDARY_ROLE (ALLOW_CONNECTIONS).
    pub secondary: SecondaryConnections,
    /// PRIMARY_ROLE (ALLOW_CONNECTIONS).
    pub primary: PrimaryConnections,
    /// Whether its secondary databases may serve reads now (connected, caught up enough, not
    /// suspended or reverting: SYNCHRONIZING or SYNCHRONIZED).
    pub readable: bool,
    /// Whether it has a READ_ONLY_ROUTING_URL.
    pub has_routing_url: bool,
}

/// The listener's view: replicas, and the current primary's routing list as replica indices
/// (one level of load-balanced groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteView {
    /// The replicas, in configuration order.
    pub replicas: Vec<ReplicaRouteView>,
    /// The current primary's READ_ONLY_ROUTING_LIST.
    pub list: Vec<Vec<usize>>,
}

/// The listener's only memory: where each load-balanced group of the list continues.
pub type RoundRobin = Vec<usize>;

/// How the listener decides whether a replica can take a read-intent connection (a mutant
/// plants a wrong one).
pub type AvailableFn = fn(&ReplicaRouteView) -> bool;

/// A listed replica can take a read-intent connection: it has a routing URL, accepts the
/// intent in its current role, and (as a secondary) is readable.
pub fn available_for_reads(r: &ReplicaRouteView) -> bool {
    r.has_routing_url
        && accepts(r.role, r.secondary, r.primary, ApplicationIntent::ReadOnly).is_ok()
        && (r.role != Some(Role::Secondary) || r.readable)
}

/// The mutant: the listener ignores ALLOW_CONNECTIONS and readiness.
pub fn mutant_available_for_reads(r: &ReplicaRouteView) -> bool {
    r.has_routing_url && r.role.is_some() && r.role != Some(Role::Resolving)
}

/// R-READ-3: where the listener sends a connection. Read-write connections go to the primary;
/// read-intent ones to the first entry of the routing list with an available replica (a group
/// round-robin among its available members), else to the primary if it takes read intent.
pub fn route_with(
    view: &RouteView,
    intent: ApplicationIntent,
    rr: &mut RoundRobin,
    available: AvailableFn,
) -> Result<usize, ConnectionRefusal> {
    let primary = view
        .replicas
        .iter()
        .position(|r| r.role == Some(Role::Primary));
    if intent == ApplicationIntent::ReadOnly {
        rr.resize(view.list.len(), 0);
        for (g, group) in view.list.iter().enumerate() {
            let n = group.len();
            if let Some(k) = (0..n)
                .map(|k| (rr[g] + k) % n)
                .find(|&k| available(&view.replicas[group[k]]))
            {
                rr[g] = (k + 1) % n;
                return Ok(group[k]);
            }
        }
    }
    let p = primary.ok_or(ConnectionRefusal::NoRoute)?;
    let r = &view.replicas[p];
    accepts(r.role, r.secondary, r.primary, intent).map(|_| p)
}

/// R-READ-3 with the documented availability rule.
pub fn route(
    view: &RouteView,
    intent: ApplicationIntent,
    rr: &mut RoundRobin,
) -> Result<usize, ConnectionRefusal> {
    route_with(view, intent, rr, available_for_reads)
}

/// The result of the exhaustive routing check.
#[derive(Clone, Debug, Serialize)]
pub struct RoutingCheck {
    /// Views (replica states × settings × lists) evaluated.
    pub combinations: u64,
    /// The first view that breaks a property, described.
    pub counterexample: Option<String>,
    /// Which property it breaks.
    pub broken: Option<&'static str>,
}

/// Checks R-READ-1/3 on every view of up to `max_replicas` replicas: each replica down,
/// RESOLVING, or up as secondary with each ALLOW_CONNECTIONS and readable or not; each replica
/// as the primary (or none), with each PRIMARY_ROLE setting; every routing list whose entries
/// name distinct replicas, with groups of up to three.
///
/// Properties: a connection is only routed to a replica that accepts it; a read-write
/// connection only to the primary; a read-intent connection goes to the first list entry with
/// an available replica, else the primary, and is refused only when neither takes it; and
/// repeated connections to a group visit every available member within one turn (round-robin).
pub fn check_routing(max_replicas: usize, available: AvailableFn) -> RoutingCheck {
    let mut combinations = 0u64;
    for n in 1..=max_replicas {
        let lists = routing_lists(n);
        // per replica: 0 down, 1 RESOLVING, 2..=7 secondary (allow × readable)
        for primary in 0..=n {
            for states in 0..8u32.pow(n as u32) {
                let replicas: Option<Vec<ReplicaRouteView>> = (0..n)
                    .map(|i| {
                        let s = states / 8u32.pow(i as u32) % 8;
                        let role = if i == primary {
                            (s >= 2).then_some(Role::Primary)
                        } else {
                            match s {
                                0 => None,
                                1 => Some(Role::Resolving),
                                _ => Some(Role::Secondary),
                            }
                        };
                        // for the primary, s only says down (0), up with ALL (2) or up with
                        // READ_WRITE (5): skip the duplicates
                        if i == primary && !matches!(s, 0 | 2 | 5) {
                            return None;
                        }
                        Some(ReplicaRouteView {
                            role,
                            secondary: [
                                SecondaryConnections::No,
                                SecondaryConnections::ReadOnly,
                                SecondaryConnections::All,
                            ][(s.max(2) as usize - 2) % 3],
                            primary: if s == 5 {
                                PrimaryConnections::ReadWrite
                            } else {
                                PrimaryConnections::All
                            },
                            readable: s >= 5,
                            has_routing_url: true,
                        })
                    })
                    .collect();
                let Some(replicas) = replicas else { continue };
                for list in &lists {
                    combinations += 1;
                    let view = RouteView {
                        replicas: replicas.clone(),
                        list: list.clone(),
                    };
                    if let Some(broken) = routing_violation(&view, available) {
                        return RoutingCheck {
                            combinations,
                            counterexample: Some(describe(&view, available)),
                            broken: Some(broken),
                        };
                    }
                }
            }
        }
    }
    RoutingCheck {
        combinations,
        counterexample: None,
        broken: None,
    }
}

/// Every routing list over `n` replicas: ordered entries of distinct replicas, each a replica
/// or a group of two or three, up to three entries.
fn routing_lists(n: usize) -> Vec<Vec<Vec<usize>>> {
    fn extend(n: usize, used: u32, list: &mut Vec<Vec<usize>>, out: &mut Vec<Vec<Vec<usize>>>) {
        out.push(list.clone());
        if list.len() == 3 {
            return;
        }
        let free: Vec<usize> = (0..n).filter(|i| used & (1 << i) == 0).collect();
        let mut entries: Vec<Vec<usize>> = free.iter().map(|&i| vec![i]).collect();
        for (a, &x) in free.iter().enumerate() {
            for (b, &y) in free.iter().enumerate().skip(a + 1) {
                entries.push(vec![x, y]);
                for &z in free.iter().skip(b + 1) {
                    entries.push(vec![x, y, z]);
                }
            }
        }
        for entry in entries {
            let mask = entry.iter().fold(used, |m, &i| m | 1 << i);
            list.push(entry);
            extend(n, mask, list, out);
            list.pop();
        }
    }
    let mut out = Vec::new();
    extend(n, 0, &mut Vec::new(), &mut out);
    out
}

fn routing_violation(view: &RouteView, available: AvailableFn) -> Option<&'static str> {
    let primary = view
        .replicas
        .iter()
        .position(|r| r.role == Some(Role::Primary));
    for intent in [ApplicationIntent::ReadWrite, ApplicationIntent::ReadOnly] {
        let mut rr = RoundRobin::new();
        let Ok(to) = route_with(view, intent, &mut rr, available) else {
            if intent == ApplicationIntent::ReadOnly
                && (view
                    .list
                    .iter()
                    .flatten()
                    .any(|&i| available_for_reads(&view.replicas[i]))
                    || primary.is_some_and(|p| {
                        let r = &view.replicas[p];
                        accepts(r.role, r.secondary, r.primary, intent).is_ok()
                    }))
            {
                return Some("a read-intent connection is refused only when no replica takes it");
            }
            continue;
        };
        let r = &view.replicas[to];
        if accepts(r.role, r.secondary, r.primary, intent).is_err()
            || (r.role == Some(Role::Secondary) && !r.readable)
        {
            return Some("a connection is only routed to a replica that accepts it");
        }
        if intent == ApplicationIntent::ReadWrite && Some(to) != primary {
            return Some("a read-write connection is only routed to the primary");
        }
        if intent == ApplicationIntent::ReadOnly {
            let first = view
                .list
                .iter()
                .position(|g| g.iter().any(|&i| available_for_reads(&view.replicas[i])));
            match first {
                Some(g) => {
                    if !view.list[g].contains(&to) {
                        return Some("a read-intent connection goes to the first available entry of the routing list");
                    }
                    // Round-robin: one turn of the group visits each available member.
                    let members: Vec<usize> = view.list[g]
                        .iter()
                        .copied()
                        .filter(|&i| available_for_reads(&view.replicas[i]))
                        .collect();
                    let mut rr = RoundRobin::new();
                    let mut seen: Vec<usize> = (0..members.len())
                        .filter_map(|_| route_with(view, intent, &mut rr, available).ok())
                        .collect();
                    seen.sort_unstable();
                    if seen != members {
                        return Some(
                            "a load-balanced group serves its available members round-robin",
                        );
                    }
                }
                None if Some(to) != primary => {
                    return Some(
                        "with no available entry, a read-intent connection goes to the primary",
                    );
                }
                None => {}
            }
        }
    }
    None
}

fn describe(view: &RouteView, available: AvailableFn) -> String {
    let names = ["A", "B", "C", "D", "E"];
    let replicas: Vec<String> = view
        .replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let state = match r.role {
                None => "down".to_string(),
                Some(Role::Primary) => format!("PRIMARY (ALLOW_CONNECTIONS = {:?})", r.primary),
                Some(role) => format!(
                    "{role} (ALLOW_CONNECTIONS = {:?}{})",
                    r.secondary,
                    if r.readable {
                        ", readable"
                    } else {
                        ", not caught up"
                    }
                ),
            };
            format!("{} {state}", names[i])
        })
        .collect();
    let list: Vec<String> = view
        .list
        .iter()
        .map(|g| {
            let members: Vec<&str> = g.iter().map(|&i| names[i]).collect();
            if g.len() == 1 {
                members[0].to_string()
            } else {
                format!("({})", members.join(", "))
            }
        })
        .collect();
    let mut rr = RoundRobin::new();
    let ro = route_with(view, ApplicationIntent::ReadOnly, &mut rr, available)
        .map_or_else(|e| e.to_string(), |i| format!("routed to {}", names[i]));
    format!(
        "{}; READ_ONLY_ROUTING_LIST = ({}); a read-intent connection is {ro}",
        replicas.join("; "),
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApplicationIntent::*;

    /// R-READ-1: the acceptance matrix.
    #[test]
    fn r_read_1_connection_matrix() {
        let secondary = |allow, intent| {
            accepts(
                Some(Role::Secondary),
                allow,
                PrimaryConnections::All,
                intent,
            )
        };
        assert_eq!(
            secondary(SecondaryConnections::No, ReadOnly),
            Err(ConnectionRefusal::SecondaryNotReadable)
        );
        assert_eq!(
            secondary(SecondaryConnections::ReadOnly, ReadWrite),
            Err(ConnectionRefusal::ReadIntentRequired)
        );
        assert_eq!(
            secondary(SecondaryConnections::ReadOnly, ReadOnly),
            Ok(Access::ReadOnly)
        );
        assert_eq!(
            secondary(SecondaryConnections::All, ReadWrite),
            Ok(Access::ReadOnly)
        );
        let primary =
            |allow, intent| accepts(Some(Role::Primary), SecondaryConnections::No, allow, intent);
        assert_eq!(
            primary(PrimaryConnections::All, ReadOnly),
            Ok(Access::ReadWrite)
        );
        assert_eq!(
            primary(PrimaryConnections::ReadWrite, ReadOnly),
            Err(ConnectionRefusal::ReadIntentRefusedByPrimary)
        );
        assert_eq!(
            accepts(
                Some(Role::Resolving),
                SecondaryConnections::All,
                PrimaryConnections::All,
                ReadOnly
            ),
            Err(ConnectionRefusal::NotAvailable)
        );
    }

    /// R-READ-3: first available entry, round-robin within a group, fallback to the primary.
    #[test]
    fn r_read_3_routing_order_round_robin_and_fallback() {
        let secondary = |readable| ReplicaRouteView {
            role: Some(Role::Secondary),
            secondary: SecondaryConnections::ReadOnly,
            primary: PrimaryConnections::All,
            readable,
            has_routing_url: true,
        };
        let mut primary = secondary(true);
        primary.role = Some(Role::Primary);
        let view = RouteView {
            replicas: vec![primary, secondary(true), secondary(true), secondary(false)],
            list: vec![vec![3], vec![1, 2]],
        };
        let mut rr = RoundRobin::new();
        let picks: Vec<usize> = (0..4)
            .map(|_| route(&view, ReadOnly, &mut rr).unwrap())
            .collect();
        assert_eq!(
            picks,
            vec![1, 2, 1, 2],
            "D is not caught up; B and C take turns"
        );
        assert_eq!(route(&view, ReadWrite, &mut rr), Ok(0));
        let mut alone = view.clone();
        alone.replicas[1].role = None;
        alone.replicas[2].role = None;
        assert_eq!(
            route(&alone, ReadOnly, &mut rr),
            Ok(0),
            "fallback to the primary"
        );
        alone.replicas[0].primary = PrimaryConnections::ReadWrite;
        assert_eq!(
            route(&alone, ReadOnly, &mut rr),
            Err(ConnectionRefusal::ReadIntentRefusedByPrimary)
        );
    }

    #[test]
    fn routing_properties_hold_and_the_mutant_is_refuted() {
        let good = check_routing(3, available_for_reads);
        assert!(good.counterexample.is_none(), "{good:?}");
        assert!(good.combinations > 1_000);
        let bad = check_routing(3, mutant_available_for_reads);
        assert_eq!(
            bad.broken,
            Some("a connection is only routed to a replica that accepts it")
        );
    }
}
