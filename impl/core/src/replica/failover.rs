//! Failover: planned (R-FAIL-3, a handshake between target and primary), forced (R-FAIL-4, a
//! new forced recovery fork), SET (ROLE = SECONDARY) for CLUSTER_TYPE = NONE (R-QUORUM-5),
//! promotion, and the cluster-manager events (lease, R-QUORUM-3).
//!
//! ```text
//!  target (SECONDARY, SYNCHRONIZED)          primary
//!     │── FailoverRequest ──────────────────────▶│ re-checks R-FAIL-3, becomes RESOLVING
//!     │◀── remaining Log … FailoverGranted(ends) │ (pending commits → indefinite)
//!     │  has every record up to `ends`           │
//!     │  [manager: RequestPromotion → Promote]   │
//!     │  new epoch, PRIMARY ── Hello ───────────▶│ follows the new epoch as SECONDARY
//! ```

use super::{ignored, send, AwaitingPromotion, Core, Out, PendingFailover};
use crate::error::{AdminError, IgnoredReason};
use crate::ids::{Epoch, RequestId, TimerId};
use crate::input::{ManagerEvent, PromotionKind};
use crate::message::{FailoverRefusal, MessageBody};
use crate::mutants::Mutant;
use crate::output::{AdminOutcome, IndefiniteCause, InputSource, ManagerRequest, Output};
use hadr_types::{DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState};
use std::collections::BTreeSet;

type AdminResult = Result<AdminOutcome, AdminError>;

impl Core {
    /// `FAILOVER` on the target. `None`: the answer comes when the handshake completes.
    pub(super) fn admin_failover(
        &mut self,
        now_ms: u64,
        request: RequestId,
        out: &mut Out,
    ) -> Option<AdminResult> {
        if !self.has_manager() {
            return Some(Err(AdminError::PlannedFailoverNeedsClusterManager));
        }
        if let Some((_, error)) = self.damaged_copy() {
            return Some(Err(error));
        }
        let result = match self.planned_failover_precheck(false) {
            Ok(primary) => {
                self.start_planned_failover(now_ms, request, primary, false, out);
                None
            }
            Err(error) => Some(Err(error)),
        };
        invariant!(
            self,
            result.is_some() || self.failover.as_ref().is_some_and(|f| f.request == request),
            "R-FAIL-3: FAILOVER {request} is neither answered nor waiting for the handshake"
        );
        result
    }

    /// R-FAIL-3 as the target sees it: SECONDARY, connected to the primary, both
    /// SYNCHRONOUS_COMMIT, every database SYNCHRONIZED (SQL Server error 41142 otherwise).
    /// `forced`: for a FORCE_FAILOVER_ALLOW_DATA_LOSS, which is planned when this holds.
    fn planned_failover_precheck(&self, forced: bool) -> Result<ReplicaId, AdminError> {
        match self.role {
            Role::Primary => return Err(AdminError::AlreadyPrimary),
            Role::Resolving => return Err(AdminError::NotSecondary { role: self.role }),
            Role::Secondary => {}
        }
        if self.failover.is_some() || self.awaiting_promotion.is_some() {
            return Err(AdminError::FailoverInProgress);
        }
        let primary = self
            .primary
            .filter(|p| {
                let peer = &self.peers[usize::from(p.0)];
                peer.is_up() && peer.hello.is_some_and(|h| h.role == Role::Primary)
            })
            .ok_or(AdminError::PrimaryNotConnected)?;
        for replica in [self.me, primary] {
            if !self.is_sync(replica) {
                return Err(AdminError::NotSynchronousCommit { replica });
            }
        }
        for (index, db) in self.dbs.iter().enumerate() {
            let state = self.local_sync_state(index);
            if state != SyncState::Synchronized
                && (forced || !self.planted(Mutant::PlannedFailoverToUnsynchronized))
            {
                return Err(AdminError::TargetNotSynchronized {
                    database: db.id,
                    state,
                });
            }
        }
        invariant!(
            self,
            primary != self.me && self.primary == Some(primary),
            "R-ROLE-1: the {} {} asks {primary} to fail over while following {:?}",
            self.role,
            self.me,
            self.primary
        );
        Ok(primary)
    }

    fn start_planned_failover(
        &mut self,
        now_ms: u64,
        request: RequestId,
        primary: ReplicaId,
        forced: bool,
        out: &mut Out,
    ) {
        invariant!(
            self,
            self.role == Role::Secondary
                && self.primary == Some(primary)
                && self.failover.is_none()
                && self.awaiting_promotion.is_none(),
            "R-FAIL-3: a planned failover to {} starts as a {} following {:?} (pending: {:?}, promotion awaited: {:?})",
            self.me,
            self.role,
            self.primary,
            self.failover,
            self.awaiting_promotion
        );
        tracing::info!(
            primary = primary.0,
            forced,
            "planned failover: asking the primary"
        );
        send(
            out,
            &self.peers,
            primary,
            self.epoch,
            MessageBody::FailoverRequest,
        );
        self.failover = Some(PendingFailover {
            request,
            primary,
            forced,
            ends: None,
        });
        out.push_back(Output::SetTimer {
            timer: TimerId::FailoverHandshake,
            at_ms: now_ms.saturating_add(self.session_timeout_ms()),
        });
    }

    /// `FORCE_FAILOVER_ALLOW_DATA_LOSS` (R-FAIL-4). On a SYNCHRONIZED target it runs the
    /// planned handshake (no loss); otherwise, or if that handshake fails, it starts a forced
    /// recovery fork.
    pub(super) fn admin_force_failover(
        &mut self,
        now_ms: u64,
        request: RequestId,
        out: &mut Out,
    ) -> Option<AdminResult> {
        if self.role == Role::Primary {
            return Some(Err(AdminError::AlreadyPrimary));
        }
        if let Some((_, error)) = self.damaged_copy() {
            return Some(Err(error));
        }
        if self.failover.is_some() || self.awaiting_promotion.is_some() {
            return Some(Err(AdminError::FailoverInProgress));
        }
        let result = match self.planned_failover_precheck(true) {
            Ok(primary) if !self.planted(Mutant::ForcedFailoverToSynchronizedLossy) => {
                self.start_planned_failover(now_ms, request, primary, true, out);
                None
            }
            _ => self.force_lossy(request, out),
        };
        invariant!(
            self,
            result.is_some()
                || self.failover.as_ref().is_some_and(|f| f.request == request)
                || self
                    .awaiting_promotion
                    .is_some_and(|a| a.request == Some(request)),
            "R-FAIL-4: FORCE_FAILOVER_ALLOW_DATA_LOSS {request} is neither answered nor waiting"
        );
        result
    }

    /// Why this replica may not become primary because of a damaged (SUSPECT) database: its copy
    /// may lack acknowledged commits (R-COMMIT-6). `None` when every database is intact.
    fn damaged_copy(&self) -> Option<(DatabaseId, AdminError)> {
        let error = self.dbs.iter().find_map(|db| {
            let damage = db.damaged?;
            let error = AdminError::DatabaseDamaged {
                database: db.id,
                kept: damage.kept,
                lost_through: damage.lost_through,
            };
            Some((db.id, error))
        });
        invariant!(
            self,
            error.is_none() || self.role != Role::Primary,
            "R-COMMIT-6: the PRIMARY {} holds a damaged copy",
            self.me
        );
        error
    }

    /// A forced failover that may lose data: with a manager it needs the manager's promotion
    /// (quorum, R-QUORUM-2); without one it happens now.
    fn force_lossy(&mut self, request: RequestId, out: &mut Out) -> Option<AdminResult> {
        invariant!(
            self,
            self.role != Role::Primary
                && self.failover.is_none()
                && self.awaiting_promotion.is_none(),
            "R-FAIL-4: a forced failover starts on a {} (planned failover pending: {:?}, promotion awaited: {:?})",
            self.role,
            self.failover,
            self.awaiting_promotion
        );
        if self.has_manager() {
            self.request_promotion(PromotionKind::Forced, Some(request), out);
            None
        } else {
            self.promote(true, None, 0, out);
            Some(Ok(AdminOutcome::BecamePrimary {
                epoch: self.epoch,
                data_loss_possible: true,
            }))
        }
    }

    /// The planned failover could not complete. A FORCE falls back to a forced failover when
    /// `allow_force` (not when a newer primary showed up: then we follow it).
    /// The connection to the primary dropped or the handshake timed out: after a grant, take
    /// over with what arrived; before, give up (or force, for a FORCE).
    pub(super) fn planned_failover_interrupted(&mut self, out: &mut Out) {
        invariant!(
            self,
            self.role == Role::Secondary && self.failover.is_some(),
            "R-FAIL-3: a {} interrupts a planned failover it is not waiting for ({:?})",
            self.role,
            self.failover
        );
        if self.failover.as_ref().is_some_and(|f| f.ends.is_some()) {
            self.complete_failover(out);
        } else {
            self.fail_planned_failover(AdminError::FailoverHandshakeFailed, true, out);
        }
        invariant!(
            self,
            self.failover.is_none(),
            "R-FAIL-3: the interrupted planned failover to {} is still pending",
            self.me
        );
    }

    pub(super) fn fail_planned_failover(
        &mut self,
        error: AdminError,
        allow_force: bool,
        out: &mut Out,
    ) {
        let Some(failover) = self.failover.take() else {
            return;
        };
        invariant!(
            self,
            self.role == Role::Secondary && self.awaiting_promotion.is_none(),
            "R-FAIL-3: a {} had a planned failover pending (promotion awaited: {:?})",
            self.role,
            self.awaiting_promotion
        );
        out.push_back(Output::CancelTimer {
            timer: TimerId::FailoverHandshake,
        });
        let result = if failover.forced && allow_force {
            self.force_lossy(failover.request, out)
        } else {
            Some(Err(error))
        };
        if let Some(result) = result {
            out.push_back(Output::AdminReply {
                request: failover.request,
                result,
            });
        }
    }

    /// `SET (ROLE = SECONDARY)` on the primary (CLUSTER_TYPE = NONE only, R-QUORUM-5).
    pub(super) fn admin_set_role_secondary(&mut self, out: &mut Out) -> AdminResult {
        if self.has_manager() {
            return Err(AdminError::SetRoleNeedsClusterTypeNone);
        }
        if self.role != Role::Primary {
            return Err(AdminError::NotPrimary { role: self.role });
        }
        invariant!(
            self,
            self.primary == Some(self.me) && self.handover_to.is_none() && self.failover.is_none(),
            "R-ROLE-1: the primary {} follows {:?}, hands over to {:?}, or awaits a failover",
            self.me,
            self.primary,
            self.handover_to
        );
        self.step_down(Role::Secondary, IndefiniteCause::RoleChanged, out);
        Ok(AdminOutcome::Done)
    }

    /// The primary's half of R-FAIL-3: check again with its own books (it is the authority on
    /// SYNCHRONIZED), stop committing, send the target everything, grant.
    pub(super) fn on_failover_request(&mut self, from: ReplicaId, epoch: Epoch, out: &mut Out) {
        let refusal = if self.handover_to.is_some() && epoch == self.epoch {
            // This replica already stepped down to hand over to a target (maybe this one).
            Some(FailoverRefusal::FailoverInProgress)
        } else if self.role != Role::Primary || epoch != self.epoch {
            Some(FailoverRefusal::NotPrimary)
        } else if let Some(replica) = [self.me, from].into_iter().find(|r| !self.is_sync(*r)) {
            Some(FailoverRefusal::NotSynchronousCommit { replica })
        } else if self.planted(Mutant::PlannedFailoverToUnsynchronized) {
            None
        } else {
            self.dbs.iter().find_map(|db| {
                let state = db
                    .progress(from)
                    .map_or(SyncState::NotSynchronizing, |p| p.sync_state());
                (state != SyncState::Synchronized).then_some(FailoverRefusal::NotSynchronized {
                    database: db.id,
                    state,
                })
            })
        };
        if let Some(reason) = refusal {
            send(
                out,
                &self.peers,
                from,
                self.epoch,
                MessageBody::FailoverRefused { reason },
            );
            return;
        }
        tracing::info!(target = from.0, "planned failover granted: RESOLVING");
        // Set first: stepping down hands the lease over to the target (`HandOver`).
        self.handover_to = Some(from);
        self.step_down(Role::Resolving, IndefiniteCause::RoleChanged, out);
        for index in 0..self.dbs.len() {
            self.ship(index, from, out);
        }
        let ends = self.dbs.iter().map(|db| db.end()).collect();
        send(
            out,
            &self.peers,
            from,
            self.epoch,
            MessageBody::FailoverGranted { ends },
        );
        invariant!(
            self,
            self.role == Role::Resolving
                && self.handover_to == Some(from)
                && self
                    .dbs
                    .iter()
                    .all(|db| db.progress(from).is_some_and(|p| p.last_sent == db.end())),
            "R-FAIL-3: granted a planned failover to {from} as a {} (handing over to {:?}) before sending it all the log",
            self.role,
            self.handover_to
        );
    }

    pub(super) fn on_failover_refused(
        &mut self,
        from: ReplicaId,
        reason: FailoverRefusal,
        out: &mut Out,
    ) {
        if !self
            .failover
            .as_ref()
            .is_some_and(|f| f.primary == from && f.ends.is_none())
        {
            self.unexpected(from, "failover refusal", out);
            return;
        }
        invariant!(
            self,
            self.role == Role::Secondary && self.primary == Some(from),
            "R-FAIL-3: a {} following {:?} waits for a planned failover from {from}",
            self.role,
            self.primary
        );
        self.fail_planned_failover(AdminError::FailoverRefused { reason }, true, out);
    }

    pub(super) fn on_failover_granted(
        &mut self,
        from: ReplicaId,
        epoch: Epoch,
        ends: Vec<Lsn>,
        out: &mut Out,
    ) {
        let expected = epoch == self.epoch && ends.len() == self.dbs.len();
        match self.failover.as_mut() {
            Some(failover) if expected && failover.primary == from && failover.ends.is_none() => {
                failover.ends = Some(ends);
            }
            _ => {
                self.unexpected(from, "failover grant", out);
                return;
            }
        }
        invariant!(
            self,
            self.role == Role::Secondary && self.primary == Some(from),
            "R-FAIL-3: a {} following {:?} took a planned failover grant from {from}",
            self.role,
            self.primary
        );
        self.try_complete_failover(out);
    }

    /// Once the target holds every record the old primary had, it takes over (through the
    /// manager when there is one).
    pub(super) fn try_complete_failover(&mut self, out: &mut Out) {
        let Some(ends) = self.failover.as_ref().and_then(|f| f.ends.as_ref()) else {
            return;
        };
        invariant!(
            self,
            self.role == Role::Secondary && ends.len() == self.dbs.len(),
            "R-FAIL-3: a {} holds a grant of {} ends of log for {} databases",
            self.role,
            ends.len(),
            self.dbs.len()
        );
        if self.dbs.iter().zip(ends).any(|(db, end)| db.end() < *end) {
            return;
        }
        self.complete_failover(out);
    }

    /// Takes over after the primary granted. Even if the last records it had not yet sent
    /// never arrive (the connection dropped), nothing acknowledged is missing: this replica was
    /// a SYNCHRONIZED participant, so every acknowledged commit is hardened here (R-COMMIT-6);
    /// the rest was never acknowledged and is reverted on the old primary when it rejoins.
    fn complete_failover(&mut self, out: &mut Out) {
        let Some(failover) = self.failover.take() else {
            return;
        };
        invariant!(
            self,
            failover.ends.is_some()
                && self.role == Role::Secondary
                && self.awaiting_promotion.is_none(),
            "R-FAIL-3: a {} takes over from {} without its grant ({:?}) or while awaiting a promotion ({:?})",
            self.role,
            failover.primary,
            failover.ends,
            self.awaiting_promotion
        );
        out.push_back(Output::CancelTimer {
            timer: TimerId::FailoverHandshake,
        });
        if self.has_manager() {
            self.request_promotion(PromotionKind::Planned, Some(failover.request), out);
        } else {
            self.promote(false, None, 0, out);
            out.push_back(Output::AdminReply {
                request: failover.request,
                result: Ok(AdminOutcome::BecamePrimary {
                    epoch: self.epoch,
                    data_loss_possible: false,
                }),
            });
        }
    }

    /// Asks the cluster manager for a promotion and waits for its answer, at most
    /// [`CoreOptions::promotion_timeout_ms`](super::CoreOptions::promotion_timeout_ms).
    pub(super) fn request_promotion(
        &mut self,
        kind: PromotionKind,
        request: Option<RequestId>,
        out: &mut Out,
    ) {
        invariant!(
            self,
            self.role != Role::Primary
                && self.awaiting_promotion.is_none()
                && self.failover.is_none(),
            "R-ROLE-4: a {} asks for a {kind:?} promotion (already awaiting {:?}, planned failover {:?})",
            self.role,
            self.awaiting_promotion,
            self.failover
        );
        self.awaiting_promotion = Some(AwaitingPromotion { kind, request });
        out.push_back(Output::Manager(ManagerRequest::RequestPromotion { kind }));
        out.push_back(Output::SetTimer {
            timer: TimerId::PromotionTimeout,
            at_ms: self
                .now_ms
                .saturating_add(self.options.promotion_timeout_ms),
        });
    }

    /// The promotion request is over (answered, or given up): forget it and its timer.
    fn end_promotion_request(&mut self, out: &mut Out) -> Option<AwaitingPromotion> {
        let awaiting = self.awaiting_promotion.take()?;
        invariant!(
            self,
            self.role != Role::Primary && self.failover.is_none(),
            "R-ROLE-4: a {} awaited a {:?} promotion (planned failover {:?})",
            self.role,
            awaiting.kind,
            self.failover
        );
        out.push_back(Output::CancelTimer {
            timer: TimerId::PromotionTimeout,
        });
        Some(awaiting)
    }

    /// A promotion request ended without a promotion: the operator who asked gets `error`; the
    /// first promotion of a new group is asked for again (nothing else would make a primary).
    fn promotion_failed(&mut self, awaiting: AwaitingPromotion, error: AdminError, out: &mut Out) {
        invariant!(
            self,
            self.role != Role::Primary && self.awaiting_promotion.is_none(),
            "R-ROLE-4: a {} fails a {:?} promotion while awaiting {:?}",
            self.role,
            awaiting.kind,
            self.awaiting_promotion
        );
        match awaiting.request {
            Some(request) => out.push_back(Output::AdminReply {
                request,
                result: Err(error),
            }),
            None if awaiting.kind == PromotionKind::Initial => {
                tracing::warn!(%error, "initial promotion failed: asking the manager again");
                self.request_promotion(PromotionKind::Initial, None, out);
            }
            None => {}
        }
    }

    /// The manager has not answered a promotion request within the timeout.
    pub(super) fn promotion_timed_out(&mut self, out: &mut Out) {
        let Some(awaiting) = self.end_promotion_request(out) else {
            return; // stale: answered meanwhile
        };
        let waited_ms = self.options.promotion_timeout_ms;
        tracing::warn!(waited_ms, kind = ?awaiting.kind, "promotion request unanswered");
        self.promotion_failed(awaiting, AdminError::PromotionUnanswered { waited_ms }, out);
        invariant!(
            self,
            self.awaiting_promotion
                .is_none_or(|a| a.kind == PromotionKind::Initial && a.request.is_none()),
            "R-ROLE-4: after an unanswered promotion, {:?} is still awaited",
            self.awaiting_promotion
        );
    }

    /// Become the primary of a new epoch (R-ROLE-4). A forced promotion marks the epoch as a
    /// forced recovery fork: every secondary that has not accepted it gets suspended (R-FAIL-4).
    pub(super) fn promote(
        &mut self,
        forced: bool,
        lease_until_ms: Option<u64>,
        term_at_least: u64,
        out: &mut Out,
    ) {
        invariant!(
            self,
            self.dbs.iter().all(|db| db.damaged.is_none()),
            "R-COMMIT-6: {} is promoted with a damaged copy",
            self.me
        );
        invariant!(
            self,
            self.role != Role::Primary && self.epoch.term <= self.max_term,
            "R-ROLE-4: the {} {} in {} (highest term {}) is promoted",
            self.role,
            self.me,
            self.epoch,
            self.max_term
        );
        let previous = self.epoch;
        let term = self.max_term.saturating_add(1).max(term_at_least);
        self.max_term = term;
        let epoch = Epoch {
            term,
            replica: self.me,
            generation: 0,
        };
        tracing::info!(%epoch, forced, "promoted to PRIMARY");
        if let Some(failover) = self.failover.take() {
            out.push_back(Output::CancelTimer {
                timer: TimerId::FailoverHandshake,
            });
            out.push_back(Output::AdminReply {
                request: failover.request,
                result: Ok(AdminOutcome::BecamePrimary {
                    epoch,
                    data_loss_possible: forced,
                }),
            });
        }
        self.epoch = epoch;
        if forced {
            self.last_forced = epoch;
        }
        self.role = Role::Primary;
        self.primary = Some(self.me);
        self.handover_to = None;
        if self.awaiting_promotion.take().is_some() {
            out.push_back(Output::CancelTimer {
                timer: TimerId::PromotionTimeout,
            });
        }
        let others = self.data_peers();
        for db in &mut self.dbs {
            db.accepted_epoch = epoch;
            // A suspension because of the former primary's database ends with its primacy
            // (R-SYNC-7): a primary's own database is suspended only by its operator.
            if db.suspended == Some(SuspendReason::Primary) {
                db.suspended = None;
            }
            db.become_primary(&others);
        }
        self.lease_until_ms = lease_until_ms;
        if let Some(at_ms) = lease_until_ms {
            out.push_back(Output::SetTimer {
                timer: TimerId::LeaseExpiry,
                at_ms,
            });
        }
        self.publication = Default::default();
        if self.has_manager() {
            // The manager may still hold the previous primary's publication: until it confirms
            // ours, every synchronous replica counts as possibly failover-ready.
            let believed: BTreeSet<ReplicaId> = (0..self.config.replicas.len())
                .map(|r| ReplicaId(r as u8))
                .filter(|r| *r != self.me && self.is_sync(*r))
                .collect();
            self.publication.confirmed = vec![believed; self.dbs.len()];
        }
        out.push_back(Output::RoleChanged {
            role: Role::Primary,
            epoch,
        });
        out.push_back(Output::DisconnectClients);
        invariant!(
            self,
            epoch > previous
                && self.failover.is_none()
                && self.awaiting_promotion.is_none()
                && self
                    .dbs
                    .iter()
                    .all(|db| db.primary().is_some() && db.accepted_epoch == epoch),
            "R-ROLE-4: promoted from {previous} to {epoch}, not a newer epoch, or without a primary's books in every database"
        );
        // `settle` announces the new epoch to every peer.
    }

    /// A promotion this replica does not take came with a lease: an unused lease would be
    /// renewed by the manager and block every other promotion, so it goes back at once.
    fn release_unused_lease(&self, out: &mut Out) {
        invariant!(
            self,
            self.role == Role::Primary || self.lease_until_ms.is_none(),
            "R-QUORUM-3: a {} holds a lease until {:?}",
            self.role,
            self.lease_until_ms
        );
        if self.has_manager() {
            out.push_back(Output::Manager(ManagerRequest::ReleaseLease));
        }
    }

    /// The cluster-manager seam (absent with CLUSTER_TYPE = NONE).
    pub(super) fn on_manager(&mut self, now_ms: u64, event: ManagerEvent, out: &mut Out) {
        let source = InputSource::Manager;
        if !self.has_manager() {
            ignored(out, source, IgnoredReason::NoClusterManager);
            return;
        }
        match event {
            ManagerEvent::Promote {
                kind,
                lease_until_ms,
                term_at_least,
                required_synchronized,
            } => {
                if self.role == Role::Primary {
                    ignored(out, source, IgnoredReason::PromotionWhilePrimary);
                    self.release_unused_lease(out);
                    return;
                }
                if term_at_least > Epoch::MAX_TERM {
                    ignored(out, source, IgnoredReason::EpochOutOfRange);
                    return;
                }
                if let Some((database, error)) = self.damaged_copy() {
                    // R-COMMIT-6: a copy that may lack acknowledged commits does not lead;
                    // the lease goes back so that the manager can pick an intact copy.
                    let reason = IgnoredReason::PromotionOfDamagedCopy { database };
                    tracing::error!(%error, "promotion refused");
                    ignored(out, source, reason);
                    self.release_unused_lease(out);
                    if let Some(awaiting) = self.end_promotion_request(out) {
                        self.promotion_failed(awaiting, error, out);
                    }
                    return;
                }
                if lease_until_ms <= now_ms {
                    // R-QUORUM-3: no lease, no primary. A request waiting for this grant is
                    // answered now, or it would block every later failover.
                    tracing::warn!(lease_until_ms, now_ms, "promotion with an expired lease");
                    let reason = IgnoredReason::PromotionLeaseExpired {
                        lease_until_ms,
                        now_ms,
                    };
                    ignored(out, source, reason);
                    self.release_unused_lease(out);
                    if let Some(awaiting) = self.end_promotion_request(out) {
                        let error = AdminError::PromotionLeaseExpired {
                            lease_until_ms,
                            now_ms,
                        };
                        self.promotion_failed(awaiting, error, out);
                    }
                    return;
                }
                let awaiting = self.end_promotion_request(out);
                if let Some(k) = required_synchronized.filter(|&k| k <= self.max_required()) {
                    self.config.required_synchronized_secondaries_to_commit = k;
                }
                // R-FAIL-4: only a forced failover onto a replica not recorded SYNCHRONIZED
                // starts a forced recovery fork (suspending the partners).
                let forced = match kind {
                    PromotionKind::Forced => true,
                    PromotionKind::ForcedOntoSynchronized => {
                        self.planted(Mutant::ForcedFailoverToSynchronizedLossy)
                    }
                    _ => false,
                };
                self.promote(forced, Some(lease_until_ms), term_at_least, out);
                invariant!(
                    self,
                    self.role == Role::Primary && self.lease_until_ms == Some(lease_until_ms),
                    "R-QUORUM-3: a {} promoted by the manager holds the lease until {:?}, not {lease_until_ms}",
                    self.role,
                    self.lease_until_ms
                );
                if let Some(request) = awaiting.and_then(|a| a.request) {
                    out.push_back(Output::AdminReply {
                        request,
                        result: Ok(AdminOutcome::BecamePrimary {
                            epoch: self.epoch,
                            data_loss_possible: forced,
                        }),
                    });
                }
            }
            ManagerEvent::LeaseRenewed { lease_until_ms } => {
                if self.role != Role::Primary {
                    let reason = IgnoredReason::LeaseNotHeld { role: self.role };
                    ignored(out, source, reason);
                    return;
                }
                let until = self
                    .lease_until_ms
                    .map_or(lease_until_ms, |t| t.max(lease_until_ms));
                self.lease_until_ms = Some(until);
                out.push_back(Output::SetTimer {
                    timer: TimerId::LeaseExpiry,
                    at_ms: until,
                });
            }
            ManagerEvent::LeaseLost => {
                if self.role != Role::Primary {
                    let reason = IgnoredReason::LeaseNotHeld { role: self.role };
                    ignored(out, source, reason);
                    return;
                }
                if self.planted(Mutant::CommitAfterLeaseExpiry) {
                    return;
                }
                self.step_down(Role::Resolving, IndefiniteCause::LeaseLost, out);
            }
            ManagerEvent::SyncStatePublished { epoch, version } => {
                let current = self.role == Role::Primary && epoch == self.epoch;
                if !current || !self.on_sync_state_published(version) {
                    let reason = IgnoredReason::PublicationNotPending {
                        epoch,
                        version,
                        role: self.role,
                    };
                    ignored(out, source, reason);
                }
            }
            ManagerEvent::Unreachable => {
                self.manager_reachable = false;
                if self.role == Role::Secondary {
                    // R-QUORUM-2: no quorum, no role: RESOLVING, and the session with the
                    // primary ends (it stops counting on this replica, R-COMMIT-4).
                    tracing::warn!("cluster manager unreachable: RESOLVING");
                    if let Some(primary) = self.primary {
                        self.close_connection(
                            primary,
                            crate::output::DisconnectReason::ManagerUnreachable,
                            true,
                            out,
                        );
                    }
                    self.lose_primary();
                    self.role = Role::Resolving;
                    self.primary = None;
                    invariant!(
                        self,
                        self.failover.is_none(),
                        "R-QUORUM-2: RESOLVING without quorum, yet a planned failover is pending: {:?}",
                        self.failover
                    );
                    out.push_back(Output::RoleChanged {
                        role: Role::Resolving,
                        epoch: self.epoch,
                    });
                    out.push_back(Output::DisconnectClients);
                }
            }
            ManagerEvent::Reachable { primary } => {
                let was_cut_off = !self.manager_reachable;
                self.manager_reachable = true;
                // A primary handing over (R-FAIL-3) stays RESOLVING, serving the target the rest
                // of its log, until it follows the new primary.
                let pending = self.awaiting_promotion.is_some()
                    || self.failover.is_some()
                    || self.handover_to.is_some();
                if self.role == Role::Resolving && primary != Some(self.me) && !pending {
                    // R-FAIL-6: the manager's majority says another replica is (or was last)
                    // primary: this one is a SECONDARY and follows it when it meets it.
                    self.role = Role::Secondary;
                    out.push_back(Output::RoleChanged {
                        role: Role::Secondary,
                        epoch: self.epoch,
                    });
                    out.push_back(Output::DisconnectClients);
                }
                if was_cut_off {
                    // Handshakes ignored meanwhile run again on fresh connections.
                    let claims: Vec<ReplicaId> = self
                        .peers
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.hello.as_ref().is_some_and(|h| h.role == Role::Primary))
                        .map(|(i, _)| ReplicaId(i as u8))
                        .collect();
                    for peer in claims {
                        self.close_connection(
                            peer,
                            crate::output::DisconnectReason::ManagerUnreachable,
                            true,
                            out,
                        );
                    }
                }
            }
            ManagerEvent::PromotionDenied => match self.end_promotion_request(out) {
                Some(awaiting) => match awaiting.request {
                    Some(request) => out.push_back(Output::AdminReply {
                        request,
                        result: Err(AdminError::PromotionDenied),
                    }),
                    None => tracing::warn!(kind = ?awaiting.kind, "promotion denied"),
                },
                None => ignored(out, source, IgnoredReason::PromotionNotRequested),
            },
        }
    }
}
