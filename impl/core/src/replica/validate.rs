//! Invariants over several fields at once (in the style of openraft's `Validate`), re-checked
//! after every input in debug builds and callable by test harnesses in any build.

use super::database::Phase;
use super::{Core, Replica};
use crate::error::InvariantViolation;
use crate::ids::Epoch;
use hadr_types::{Lsn, Role, SyncState};

fn violation(rule: &'static str, detail: String) -> Result<(), InvariantViolation> {
    debug_assert!(
        (rule.starts_with("R-") || rule == "CORE") && !detail.is_empty(),
        "R-HEALTH-2: a violation that names no rule ({rule:?}) or says nothing"
    );
    Err(InvariantViolation { rule, detail })
}

impl Replica {
    /// Checks every invariant of the replica's state:
    ///
    /// - R-ROLE: PRIMARY ⇔ `primary == me`, and a primary leads its own epoch; only a primary
    ///   has waiting commits, open transactions or a lease; a planned failover in progress
    ///   (target side) ⇒ SECONDARY; a handover in progress (old primary's side) ⇒ RESOLVING; a
    ///   promotion awaited from the manager ⇒ not PRIMARY;
    /// - R-SYNC-2: per database `end_of_log ≥ fsync_requested ≥ hardened ≥ redo_requested ≥
    ///   redone` and `end_of_log ≥ written`, the log consecutive from LSN 1 with non-decreasing
    ///   epochs none newer than the replica's epoch, a reverting database ends at its fork
    ///   point;
    /// - on the primary, per secondary: `end_of_log ≥ last_sent ≥ received ≥ hardened ≥
    ///   redone` (acknowledged-hardened ≤ sent ≤ primary end of log); a REVERTING target or an
    ///   INITIALIZING bound within the primary's log; a suspended primary database has no
    ///   secondary moving data or reverting (R-SYNC-7);
    /// - R-SYNC-3/4: SYNCHRONIZED only while connected, streaming and synchronous-commit on
    ///   both sides;
    /// - R-COMMIT-2: waiting commits are in LSN order within the log, and none that could be
    ///   acknowledged is left waiting;
    /// - R-COMMIT-2/4/6: per database, the highest acknowledged LSN is hardened on every
    ///   commit participant, and was reported hardened by every replica the cluster manager
    ///   holds or may store as SYNCHRONIZED (the confirmed publication and every pending one).
    ///   For the latter the check uses the highest hardened LSN each replica *reported* in
    ///   this epoch: a secondary that comes back with less lost log it had acknowledged, which
    ///   no core can prevent.
    ///
    /// A replica with a planted bug (feature `mutants`) is not checked: the conformance
    /// harness, not this self-check, must catch the bug.
    pub fn validate(&self) -> Result<(), InvariantViolation> {
        // After every input (and a recovery) a replica of a group handed its state to the
        // shell to persist; one outside any group has nothing to persist.
        invariant!(
            self,
            self.core.is_some() == self.persisted.is_some(),
            "R-ROLE-1: a replica {} a group has {} state",
            if self.core.is_some() { "in" } else { "outside" },
            if self.persisted.is_some() {
                "a persisted"
            } else {
                "no persisted"
            }
        );
        if self.mutated() {
            return Ok(());
        }
        match &self.core {
            Some(core) => core.validate(),
            None => Ok(()),
        }
    }
}

impl Core {
    pub(super) fn validate(&self) -> Result<(), InvariantViolation> {
        // The shape every check below indexes by: one peer entry per replica of the
        // configuration, one database per configured database, this replica among them.
        invariant!(
            self,
            self.peers.len() == self.config.replicas.len()
                && self.dbs.len() == self.config.databases.len()
                && usize::from(self.me.0) < self.peers.len(),
            "R-LIMIT-1: {} of {} peer entries for {} replicas, {} databases for {}",
            self.me,
            self.peers.len(),
            self.config.replicas.len(),
            self.dbs.len(),
            self.config.databases.len()
        );
        let primary = self.role == Role::Primary;
        if primary != (self.primary == Some(self.me)) {
            return violation(
                "R-ROLE-1",
                format!(
                    "{} {} knows {:?} as primary",
                    self.role, self.me, self.primary
                ),
            );
        }
        if self.failover.is_some() && self.role != Role::Secondary {
            return violation(
                "R-FAIL-3",
                format!("a {} waits for a planned failover", self.role),
            );
        }
        if self.handover_to.is_some() && self.role != Role::Resolving {
            return violation(
                "R-FAIL-3",
                format!("a {} hands over to {:?}", self.role, self.handover_to),
            );
        }
        if self.awaiting_promotion.is_some() && primary {
            return violation("R-ROLE-4", "a primary awaits a promotion".to_string());
        }
        if primary && (self.primary != Some(self.me) || self.epoch.replica != self.me) {
            return violation(
                "R-ROLE-1",
                format!(
                    "primary {} leads {} and follows {:?}",
                    self.me, self.epoch, self.primary
                ),
            );
        }
        if !primary && self.lease_until_ms.is_some() {
            return violation("R-QUORUM-3", format!("a {} holds a lease", self.role));
        }
        if self.epoch.term > self.max_term || self.last_forced.term > self.max_term {
            return violation(
                "CORE",
                format!("{} beyond the highest term {}", self.epoch, self.max_term),
            );
        }
        for (index, db) in self.dbs.iter().enumerate() {
            let end = db.end();
            match db.primary() {
                Some(books) if !primary => {
                    return violation(
                        "R-ROLE-3",
                        format!(
                            "{} {} holds a primary's books: {} waiting commits and {} open transactions",
                            self.role,
                            db.id,
                            books.pending.len(),
                            books.open_txns.len()
                        ),
                    );
                }
                None if primary => {
                    return violation(
                        "R-ROLE-3",
                        format!("{} {} holds no primary's books", self.role, db.id),
                    );
                }
                _ => {}
            }
            if !(end >= db.written
                && end >= db.fsync_requested
                && db.fsync_requested >= db.hardened
                && db.hardened >= db.redo_requested
                && db.redo_requested >= db.redone)
            {
                return violation(
                    "R-SYNC-2",
                    format!(
                        "{}: end {end} written {} fsync asked {} hardened {} redo asked {} redone {}",
                        db.id,
                        db.written,
                        db.fsync_requested,
                        db.hardened,
                        db.redo_requested,
                        db.redone
                    ),
                );
            }
            if db.last_epoch() > self.epoch {
                return violation(
                    "CORE",
                    format!(
                        "{}: log of {} beyond {}",
                        db.id,
                        db.last_epoch(),
                        self.epoch
                    ),
                );
            }
            let base = db.checkpointed();
            if !(base <= db.checkpoint_asked
                && db.checkpoint_asked <= db.redone
                && db.checkpoint_asked <= db.stable)
            {
                return violation(
                    "R-SYNC-7",
                    format!(
                        "{}: checkpointed {base}, checkpoint asked {}, redone {}, stable {}",
                        db.id, db.checkpoint_asked, db.redone, db.stable
                    ),
                );
            }
            let mut previous = Epoch::NONE;
            for (i, record) in db.log().iter().enumerate() {
                if record.lsn != Lsn(base.0 + i as u64 + 1)
                    || record.epoch < previous
                    || record.epoch.term > self.max_term
                {
                    return violation(
                        "CORE",
                        format!("{}: record {i} is {:?}", db.id, (record.lsn, record.epoch)),
                    );
                }
                previous = record.epoch;
            }
            if db.accepted_epoch > self.epoch {
                return violation(
                    "CORE",
                    format!(
                        "{} accepted {} beyond {}",
                        db.id, db.accepted_epoch, self.epoch
                    ),
                );
            }
            if let Some(to) = db.reverting() {
                // Nothing is appended while a primary waits for our revert report.
                if end != to || db.truncations.is_empty() {
                    return violation(
                        "R-FAIL-4",
                        format!("{} reverting to {to} but ends at {end}", db.id),
                    );
                }
            }
            let Some(books) = db.primary() else {
                let state = self.local_sync_state(index);
                if state == SyncState::Synchronized
                    && !self.primary.is_some_and(|p| self.pair_is_sync(self.me, p))
                {
                    return violation(
                        "R-SYNC-4",
                        format!("{} is SYNCHRONIZED with an asynchronous partner", db.id),
                    );
                }
                continue;
            };
            let mut last = Lsn(0);
            for pending in &books.pending {
                if pending.lsn <= last || pending.lsn > end {
                    return violation(
                        "CORE",
                        format!(
                            "{}: waiting commit at {} out of order (end {end})",
                            db.id, pending.lsn
                        ),
                    );
                }
                last = pending.lsn;
            }
            if let Some(front) = books.pending.front() {
                if !self.commit_blocked(index, front.lsn) {
                    return violation(
                        "R-COMMIT-2",
                        format!(
                            "{}: commit at {} could be acknowledged but waits",
                            db.id, front.lsn
                        ),
                    );
                }
            }
            for set in self.manager_may_hold(index) {
                for replica in set {
                    let reported = books
                        .hardened_acked
                        .get(replica)
                        .copied()
                        .unwrap_or_default();
                    if reported < books.acknowledged {
                        return violation(
                            "R-COMMIT-6",
                            format!(
                                "{}: {} acknowledged, but {replica}, which the manager may hold as SYNCHRONIZED, reported only {reported} hardened",
                                db.id, books.acknowledged
                            ),
                        );
                    }
                }
            }
            for (replica, p) in &books.secondaries {
                if p.synchronized && p.hardened < books.acknowledged {
                    return violation(
                        "R-COMMIT-2",
                        format!(
                            "{}: {} acknowledged, but participant {replica} hardened {}",
                            db.id, books.acknowledged, p.hardened
                        ),
                    );
                }
                let bounded = match p.phase {
                    Phase::Reverting { to } => to <= end,
                    Phase::Initializing { until } => until <= end,
                    _ => true,
                };
                if !bounded {
                    return violation(
                        "R-FAIL-4",
                        format!(
                            "{} of {replica} is {:?} beyond the end {end}",
                            db.id, p.phase
                        ),
                    );
                }
                if db.suspended.is_some()
                    && (p.is_moving() || matches!(p.phase, Phase::Reverting { .. }))
                {
                    return violation(
                        "R-SYNC-7",
                        format!("{} is suspended but {replica} is {:?}", db.id, p.phase),
                    );
                }
                if !(end >= p.last_sent
                    && p.last_sent >= p.received
                    && p.received >= p.hardened
                    && p.hardened >= p.redone)
                {
                    return violation(
                        "R-SYNC-2",
                        format!(
                            "{} of {replica}: end {end} sent {} received {} hardened {} redone {}",
                            db.id, p.last_sent, p.received, p.hardened, p.redone
                        ),
                    );
                }
                let up = self.peers[usize::from(replica.0)].is_up();
                if p.synchronized
                    && !(up && p.phase == Phase::Streaming && self.pair_is_sync(self.me, *replica))
                {
                    return violation(
                        "R-SYNC-4",
                        format!(
                            "{} of {replica} SYNCHRONIZED while {:?}, connected {up}",
                            db.id, p.phase
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}
