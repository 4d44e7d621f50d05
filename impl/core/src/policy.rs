//! The cluster manager's promotion policy, sans-IO: who may be promoted, when, and with which
//! term.
//!
//! One policy, called by every manager there is: the etcd manager (`hadr-manager`, before its
//! compare-and-swap transaction), the simulated managers of [`testing`](crate::testing) and of
//! the `reference-sim` adapter, and the soak tests. Each reads its own store into a
//! [`Snapshot`], asks [`decide`], and performs the [`Decision`]: so the simulation certifies the
//! policy that ships.
//!
//! The rules, in the order [`decide`] applies them:
//!
//! 1. A replica holding the primary's lease denies every promotion but a forced one of another
//!    replica (R-FAIL-4: the operator takes the lease; R-QUORUM-3).
//! 2. A planned failover in progress reserves the lease for its target (R-FAIL-3 over R-FAIL-2);
//!    a forced failover overrides it.
//! 3. A forced failover onto a replica that the newest publication of the last granted term
//!    records SYNCHRONIZED in every database is a planned one in effect
//!    ([`PromotionKind::ForcedOntoSynchronized`], R-FAIL-4).
//! 4. An automatic failover (R-FAIL-2, R-QUORUM-4) needs a publication that is not older than
//!    the last granted term, listing the requester as failover-ready. The manager's recorded
//!    primary, which is not, is restored instead (R-QUORUM-2), once failover-ready replicas had
//!    [`RESTORE_AFTER_MS`] to ask first ([`RestoreWait`]).
//! 5. The failure threshold (R-FAIL-7) caps automatic failovers; restores and operator
//!    failovers do not count.
//! 6. The term granted is above every term granted and every term published.
//!
//! Which replicas ask for an automatic failover in the first place is
//! [`asks_for_automatic_failover`].

use hadr_types::{AvailabilityMode, FailoverMode, ReplicaConfig, ReplicaId, Role};

use crate::{PromotionKind, SyncStatePublication};

/// How long (ms) the recorded primary keeps asking to be restored before the manager restores
/// it, giving failover-ready replicas the time to ask first (R-QUORUM-2 yields to R-FAIL-2).
pub const RESTORE_AFTER_MS: u64 = 3_000;

/// Asks further apart than this (ms) start the restore wait over: a replica asks about every
/// second while nobody holds the lease.
pub const RESTORE_ASK_GAP_MS: u64 = 2_000;

/// What the manager's store says when a promotion is asked for.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// The replica holding the primary's lease, if any.
    pub lease_holder: Option<ReplicaId>,
    /// The target of a planned failover in progress, if any (R-FAIL-3).
    pub handover_to: Option<ReplicaId>,
    /// The highest term the manager granted.
    pub granted_term: u64,
    /// The newest synchronization-state publication stored (of any primary).
    pub publication: Option<&'a SyncStatePublication>,
    /// Automatic failovers on record within the failure-condition period (R-FAIL-7).
    pub recent_automatic_failovers: u32,
    /// The group's failure threshold: automatic failovers allowed within the period.
    pub failover_threshold: u32,
}

/// A promotion asked for by `replica`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The replica to promote (the one asking).
    pub replica: ReplicaId,
    /// What it asks for: [`Automatic`](PromotionKind::Automatic) (which the policy may turn
    /// into a [`Restore`](PromotionKind::Restore)), [`Restore`](PromotionKind::Restore) (a
    /// replica that may not take over, [`asks_for_automatic_failover`]),
    /// [`Planned`](PromotionKind::Planned) or [`Forced`](PromotionKind::Forced).
    pub kind: PromotionKind,
}

/// A granted promotion: what the manager must record, atomically, if its store is still as in
/// the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The kind the replica is promoted with (may differ from the kind asked for).
    pub kind: PromotionKind,
    /// The term granted: above every term granted or published.
    pub term: u64,
    /// The lease is taken from this primary (a forced failover while it holds it).
    pub takes_lease_from: Option<ReplicaId>,
    /// The grant rests on the stored publication: it must still be the newest when the lease
    /// changes hands (automatic failover, restore, forced onto SYNCHRONIZED).
    pub needs_publication_unchanged: bool,
    /// The grant is an automatic failover: record it against the failure threshold.
    pub counts_against_threshold: bool,
}

/// Why a promotion is denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// A primary holds the lease (R-QUORUM-3).
    LeaseHeld {
        /// The lease holder.
        holder: ReplicaId,
    },
    /// A planned failover hands the lease to another target (R-FAIL-3).
    HandoverReserved {
        /// The planned failover's target.
        to: ReplicaId,
    },
    /// No synchronization state was ever published: nobody is known failover-ready.
    NoPublication,
    /// The newest publication predates the last granted term: its primary's successor may
    /// have committed past it (R-QUORUM-4).
    StalePublication {
        /// The publication's term.
        published: u64,
        /// The last granted term.
        granted: u64,
    },
    /// Not failover-ready in the newest publication, and not the recorded primary (R-FAIL-2).
    NotFailoverReady,
    /// The recorded primary waits for failover-ready replicas to ask first (R-QUORUM-2).
    RestoreWaiting {
        /// How long it has asked so far.
        waited_ms: u64,
    },
    /// The failure threshold is reached: fail over manually (R-FAIL-7).
    ThresholdReached {
        /// The threshold.
        threshold: u32,
    },
    /// A kind nobody asks a manager for ([`PromotionKind::ForcedOntoSynchronized`]: the
    /// manager's answer to a forced request).
    NotRequestable,
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Promote, recording what the grant says.
    Grant(Grant),
    /// Leave things as they are.
    Deny(Denial),
}

/// The recorded primary's restore wait (R-QUORUM-2): since when it has been asking without a
/// gap. A manager keeps one; [`decide`] starts, continues or ends it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreWait {
    /// `(first ask, last ask)`, ms on the manager's clock.
    asking: Option<(u64, u64)>,
}

impl RestoreWait {
    /// Records an ask at `now_ms`; returns how long the replica has asked without a gap.
    fn ask(&mut self, now_ms: u64) -> u64 {
        let since = match self.asking {
            Some((since, last)) if now_ms.saturating_sub(last) <= RESTORE_ASK_GAP_MS => since,
            _ => now_ms,
        };
        self.asking = Some((since, now_ms));
        now_ms.saturating_sub(since)
    }

    fn end(&mut self) {
        self.asking = None;
    }
}

/// Decides `request` on `snapshot` at `now_ms` (the manager's clock, used only by the restore
/// wait). Pure but for `restore`.
pub fn decide(
    snapshot: &Snapshot<'_>,
    request: Request,
    restore: &mut RestoreWait,
    now_ms: u64,
) -> Decision {
    let me = request.replica;
    let mut kind = request.kind;
    if kind == PromotionKind::ForcedOntoSynchronized {
        return Decision::Deny(Denial::NotRequestable);
    }
    if let Some(holder) = snapshot.lease_holder {
        restore.end();
        if kind != PromotionKind::Forced || holder == me {
            return Decision::Deny(Denial::LeaseHeld { holder });
        }
    }
    if let Some(to) = snapshot.handover_to {
        let reserved = match kind {
            PromotionKind::Planned => to != me,
            PromotionKind::Forced => false,
            _ => true,
        };
        if reserved {
            return Decision::Deny(Denial::HandoverReserved { to });
        }
    }
    if kind == PromotionKind::Forced && recorded_synchronized(snapshot, me) {
        kind = PromotionKind::ForcedOntoSynchronized;
    }
    if matches!(kind, PromotionKind::Automatic | PromotionKind::Restore) {
        let may_take_over = kind == PromotionKind::Automatic;
        kind = match automatic_kind(snapshot, me, may_take_over, restore, now_ms) {
            Ok(kind) => kind,
            Err(denial) => return Decision::Deny(denial),
        };
    }
    restore.end();
    let counts_against_threshold = kind == PromotionKind::Automatic;
    if counts_against_threshold
        && snapshot.recent_automatic_failovers >= snapshot.failover_threshold
    {
        return Decision::Deny(Denial::ThresholdReached {
            threshold: snapshot.failover_threshold,
        });
    }
    Decision::Grant(Grant {
        kind,
        term: next_term(snapshot.granted_term, snapshot.publication),
        takes_lease_from: snapshot.lease_holder,
        needs_publication_unchanged: matches!(
            kind,
            PromotionKind::Automatic
                | PromotionKind::Restore
                | PromotionKind::ForcedOntoSynchronized
        ),
        counts_against_threshold,
    })
}

/// Whether the newest publication, of the last granted term (not older: that term's primary
/// may have committed past it), records `replica` SYNCHRONIZED in every database: a forced
/// failover onto it loses nothing acknowledged (R-FAIL-4).
pub fn recorded_synchronized(snapshot: &Snapshot<'_>, replica: ReplicaId) -> bool {
    snapshot
        .publication
        .filter(|p| p.epoch.term >= snapshot.granted_term)
        .is_some_and(|p| p.synchronized_everywhere(replica))
}

/// The term of the next promotion: above every term granted (`granted_term`) and the term of
/// the newest publication (a primary may have started a term above the one it was granted).
pub fn next_term(granted_term: u64, publication: Option<&SyncStatePublication>) -> u64 {
    granted_term.max(publication.map_or(0, |p| p.epoch.term)) + 1
}

/// R-FAIL-2 / R-QUORUM-4 / R-QUORUM-2: an automatic failover onto a failover-ready replica of
/// the newest primary's newest publication (if the requester `may_take_over`), or else the
/// restore of that primary.
fn automatic_kind(
    snapshot: &Snapshot<'_>,
    me: ReplicaId,
    may_take_over: bool,
    restore: &mut RestoreWait,
    now_ms: u64,
) -> Result<PromotionKind, Denial> {
    let publication = snapshot.publication.ok_or(Denial::NoPublication)?;
    if publication.epoch.term < snapshot.granted_term {
        return Err(Denial::StalePublication {
            published: publication.epoch.term,
            granted: snapshot.granted_term,
        });
    }
    if may_take_over && publication.failover_ready.contains(&me) {
        return Ok(PromotionKind::Automatic);
    }
    // The recorded primary (the newest publication is its own) comes back online when no
    // failover-ready replica has taken over meanwhile: its log is the newest of the group.
    if publication.epoch.replica != me {
        return Err(Denial::NotFailoverReady);
    }
    let waited_ms = restore.ask(now_ms);
    if waited_ms < RESTORE_AFTER_MS {
        return Err(Denial::RestoreWaiting { waited_ms });
    }
    Ok(PromotionKind::Restore)
}

/// What a replica asks the manager for when nobody holds the lease (R-FAIL-2/7: the failure
/// condition fired for the old primary), if anything. A SYNCHRONOUS_COMMIT replica with an
/// automatic failover mode that is not the primary asks for an automatic failover, unless its
/// log disk is stalled. A RESOLVING replica that may not take over asks to be restored,
/// whatever its modes and its disk: if it is the manager's recorded primary and no
/// failover-ready replica takes over, the manager brings it back (R-QUORUM-2). A replica failed
/// by its health checks asks nothing.
pub fn asks_for_automatic_failover(
    mine: &ReplicaConfig,
    role: Option<Role>,
    health_failed: bool,
    disk_stalled: bool,
) -> Option<PromotionKind> {
    if health_failed {
        return None;
    }
    let candidate = mine.availability_mode == AvailabilityMode::SynchronousCommit
        && matches!(
            mine.failover_mode,
            FailoverMode::Automatic | FailoverMode::External
        )
        && role != Some(Role::Primary)
        && !disk_stalled;
    if candidate {
        Some(PromotionKind::Automatic)
    } else if role == Some(Role::Resolving) {
        Some(PromotionKind::Restore)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Epoch;

    const A: ReplicaId = ReplicaId(0);
    const B: ReplicaId = ReplicaId(1);
    const C: ReplicaId = ReplicaId(2);

    /// A's publication in term `term`: B SYNCHRONIZED and failover-ready, C SYNCHRONIZED only.
    fn publication(term: u64) -> SyncStatePublication {
        SyncStatePublication {
            version: 4,
            epoch: Epoch {
                term,
                replica: A,
                generation: 0,
            },
            synchronized: vec![vec![B, C], vec![B, C]],
            failover_ready: vec![B],
        }
    }

    fn snapshot(publication: Option<&SyncStatePublication>) -> Snapshot<'_> {
        Snapshot {
            lease_holder: None,
            handover_to: None,
            granted_term: 3,
            publication,
            recent_automatic_failovers: 0,
            failover_threshold: 2,
        }
    }

    fn ask(snapshot: &Snapshot<'_>, replica: ReplicaId, kind: PromotionKind) -> Decision {
        decide(
            snapshot,
            Request { replica, kind },
            &mut RestoreWait::default(),
            0,
        )
    }

    fn grant(kind: PromotionKind, term: u64) -> Grant {
        Grant {
            kind,
            term,
            takes_lease_from: None,
            needs_publication_unchanged: matches!(
                kind,
                PromotionKind::Automatic
                    | PromotionKind::Restore
                    | PromotionKind::ForcedOntoSynchronized
            ),
            counts_against_threshold: kind == PromotionKind::Automatic,
        }
    }

    #[test]
    fn r_fail_2_automatic_failover_onto_a_failover_ready_replica_in_a_new_term() {
        let p = publication(3);
        let s = snapshot(Some(&p));
        assert_eq!(
            ask(&s, B, PromotionKind::Automatic),
            Decision::Grant(grant(PromotionKind::Automatic, 4))
        );
        assert_eq!(
            ask(&s, C, PromotionKind::Automatic),
            Decision::Deny(Denial::NotFailoverReady)
        );
    }

    #[test]
    fn r_quorum_4_no_automatic_failover_without_a_current_publication() {
        assert_eq!(
            ask(&snapshot(None), B, PromotionKind::Automatic),
            Decision::Deny(Denial::NoPublication)
        );
        let old = publication(2);
        assert_eq!(
            ask(&snapshot(Some(&old)), B, PromotionKind::Automatic),
            Decision::Deny(Denial::StalePublication {
                published: 2,
                granted: 3
            })
        );
    }

    #[test]
    fn r_quorum_3_a_held_lease_denies_all_but_a_forced_failover_of_another_replica() {
        let p = publication(3);
        let s = Snapshot {
            lease_holder: Some(A),
            ..snapshot(Some(&p))
        };
        for kind in [
            PromotionKind::Automatic,
            PromotionKind::Planned,
            PromotionKind::Restore,
        ] {
            assert_eq!(
                ask(&s, B, kind),
                Decision::Deny(Denial::LeaseHeld { holder: A })
            );
        }
        assert_eq!(
            ask(&s, A, PromotionKind::Forced),
            Decision::Deny(Denial::LeaseHeld { holder: A })
        );
        // R-FAIL-4: C is SYNCHRONIZED everywhere in the current publication: no loss.
        assert_eq!(
            ask(&s, C, PromotionKind::Forced),
            Decision::Grant(Grant {
                takes_lease_from: Some(A),
                ..grant(PromotionKind::ForcedOntoSynchronized, 4)
            })
        );
    }

    #[test]
    fn r_fail_4_forced_failover_is_lossless_only_on_the_current_publication() {
        let stale = publication(2);
        assert_eq!(
            ask(&snapshot(Some(&stale)), C, PromotionKind::Forced),
            Decision::Grant(grant(PromotionKind::Forced, 4))
        );
        let mut p = publication(3);
        p.synchronized[1].retain(|&r| r != C);
        assert_eq!(
            ask(&snapshot(Some(&p)), C, PromotionKind::Forced),
            Decision::Grant(grant(PromotionKind::Forced, 4))
        );
    }

    #[test]
    fn r_fail_3_a_handover_reserves_the_lease_for_its_target() {
        let p = publication(3);
        let s = Snapshot {
            handover_to: Some(C),
            ..snapshot(Some(&p))
        };
        assert_eq!(
            ask(&s, B, PromotionKind::Automatic),
            Decision::Deny(Denial::HandoverReserved { to: C })
        );
        assert_eq!(
            ask(&s, B, PromotionKind::Planned),
            Decision::Deny(Denial::HandoverReserved { to: C })
        );
        assert_eq!(
            ask(&s, C, PromotionKind::Planned),
            Decision::Grant(grant(PromotionKind::Planned, 4))
        );
        assert_eq!(
            ask(&s, B, PromotionKind::Forced),
            Decision::Grant(grant(PromotionKind::ForcedOntoSynchronized, 4))
        );
    }

    #[test]
    fn r_fail_7_the_failure_threshold_caps_automatic_failovers_only() {
        let p = publication(3);
        let s = Snapshot {
            recent_automatic_failovers: 2,
            ..snapshot(Some(&p))
        };
        assert_eq!(
            ask(&s, B, PromotionKind::Automatic),
            Decision::Deny(Denial::ThresholdReached { threshold: 2 })
        );
        assert_eq!(
            ask(&s, B, PromotionKind::Planned),
            Decision::Grant(grant(PromotionKind::Planned, 4))
        );
    }

    #[test]
    fn the_term_is_above_every_term_granted_or_published() {
        let p = publication(7);
        assert_eq!(
            ask(&snapshot(Some(&p)), B, PromotionKind::Automatic),
            Decision::Grant(grant(PromotionKind::Automatic, 8))
        );
    }

    #[test]
    fn r_quorum_2_the_recorded_primary_is_restored_after_asking_without_a_gap() {
        let p = publication(3);
        let s = snapshot(Some(&p));
        let mut wait = RestoreWait::default();
        let mut at = |now| {
            decide(
                &s,
                Request {
                    replica: A,
                    kind: PromotionKind::Automatic,
                },
                &mut wait,
                now,
            )
        };
        assert_eq!(
            at(10_000),
            Decision::Deny(Denial::RestoreWaiting { waited_ms: 0 })
        );
        assert_eq!(
            at(12_000),
            Decision::Deny(Denial::RestoreWaiting { waited_ms: 2_000 })
        );
        // A gap of more than two seconds starts the wait over.
        assert_eq!(
            at(14_001),
            Decision::Deny(Denial::RestoreWaiting { waited_ms: 0 })
        );
        assert_eq!(
            at(16_000),
            Decision::Deny(Denial::RestoreWaiting { waited_ms: 1_999 })
        );
        assert_eq!(
            at(17_001),
            Decision::Grant(grant(PromotionKind::Restore, 4))
        );
        // The grant ends the wait: the next ask starts a new one.
        assert_eq!(
            at(17_500),
            Decision::Deny(Denial::RestoreWaiting { waited_ms: 0 })
        );
    }

    #[test]
    fn a_replica_that_may_not_take_over_is_only_ever_restored() {
        let p = publication(3);
        let s = snapshot(Some(&p));
        let mut wait = RestoreWait::default();
        let request = Request {
            replica: B,
            kind: PromotionKind::Restore,
        };
        assert_eq!(
            decide(&s, request, &mut wait, 0),
            Decision::Deny(Denial::NotFailoverReady)
        );
        assert_eq!(
            decide(&s, request, &mut wait, RESTORE_AFTER_MS),
            Decision::Deny(Denial::NotFailoverReady)
        );
    }

    #[test]
    fn nobody_asks_for_a_lossless_forced_promotion() {
        let p = publication(3);
        assert_eq!(
            ask(
                &snapshot(Some(&p)),
                B,
                PromotionKind::ForcedOntoSynchronized
            ),
            Decision::Deny(Denial::NotRequestable)
        );
    }

    #[test]
    fn the_first_primary_of_a_new_group_is_granted_term_one() {
        assert_eq!(
            ask(
                &Snapshot {
                    granted_term: 0,
                    ..snapshot(None)
                },
                A,
                PromotionKind::Initial
            ),
            Decision::Grant(grant(PromotionKind::Initial, 1))
        );
    }

    #[test]
    fn who_asks_for_an_automatic_failover() {
        let mut mine = ReplicaConfig {
            name: "B".into(),
            endpoint_url: None,
            availability_mode: AvailabilityMode::SynchronousCommit,
            failover_mode: FailoverMode::External,
            session_timeout_s: 10,
            backup_priority: 50,
            seeding_mode: Default::default(),
            secondary_role: Default::default(),
            primary_role: Default::default(),
        };
        let asks = |mine: &ReplicaConfig, role, failed, stalled| {
            asks_for_automatic_failover(mine, Some(role), failed, stalled)
        };
        assert_eq!(
            asks(&mine, Role::Secondary, false, false),
            Some(PromotionKind::Automatic)
        );
        assert_eq!(asks(&mine, Role::Primary, false, false), None);
        assert_eq!(asks(&mine, Role::Secondary, true, false), None);
        assert_eq!(asks(&mine, Role::Secondary, false, true), None);
        assert_eq!(
            asks(&mine, Role::Resolving, false, true),
            Some(PromotionKind::Restore)
        );
        mine.failover_mode = FailoverMode::Manual;
        assert_eq!(asks(&mine, Role::Secondary, false, false), None);
        assert_eq!(
            asks(&mine, Role::Resolving, false, false),
            Some(PromotionKind::Restore)
        );
        mine.failover_mode = FailoverMode::External;
        mine.availability_mode = AvailabilityMode::AsynchronousCommit;
        assert_eq!(asks(&mine, Role::Secondary, false, false), None);
    }
}
