//! Admin commands: CREATE / JOIN (R-DB-2, simplified: every database joins with an empty log),
//! SUSPEND / RESUME (R-SYNC-7, R-FAIL-4), REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT
//! (R-COMMIT-5); the failover commands are dispatched to `failover`.

use super::database::{CheckpointBase, Peer, Phase};
use super::{send, Core, Out, Replica};
use crate::error::AdminError;
use crate::ids::{Epoch, RequestId, TimerId};
use crate::input::{AdminCommand, PromotionKind};
use crate::message::MessageBody;
use crate::output::{AdminOutcome, Output};
use hadr_types::{
    AgConfig, AvailabilityMode, DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState,
};

type AdminResult = Result<AdminOutcome, AdminError>;

impl Replica {
    /// An admin command before this replica belongs to a group: only CREATE and JOIN.
    pub(super) fn admin_outside_group(
        &mut self,
        now_ms: u64,
        request: RequestId,
        command: AdminCommand,
    ) {
        // `handle_admin` brings a replica of a group its core's `on_admin`.
        invariant!(
            self,
            self.core.is_none(),
            "R-ROLE-2: replica '{}' of a group is answered as outside any group",
            self.name
        );
        let result = match command {
            AdminCommand::CreateAvailabilityGroup(config) => {
                self.create_or_join(now_ms, config, true)
            }
            AdminCommand::JoinAvailabilityGroup(config) => {
                self.create_or_join(now_ms, config, false)
            }
            _ => Err(AdminError::NotInAvailabilityGroup),
        };
        // A replica joins a group exactly when CREATE or JOIN succeeds.
        invariant!(
            self,
            result.is_ok() == self.core.is_some(),
            "R-ROLE-2: replica '{}' answered {result:?}, in a group: {}",
            self.name,
            self.core.is_some()
        );
        self.outputs
            .push_back(Output::AdminReply { request, result });
    }

    /// CREATE (on the initial primary, the first replica listed) or JOIN (on any other).
    fn create_or_join(&mut self, now_ms: u64, config: AgConfig, create: bool) -> AdminResult {
        config.validate()?;
        let me = config
            .replica_id(&self.name)
            .ok_or_else(|| AdminError::NotInConfiguration {
                name: self.name.clone(),
            })?;
        let initial_primary = me == ReplicaId(0);
        if create && !initial_primary {
            return Err(AdminError::WrongReplicaForCommand {
                command: "CREATE AVAILABILITY GROUP".into(),
                expected: "the initial primary (the first replica listed)".into(),
                name: self.name.clone(),
            });
        }
        if !create && initial_primary {
            return Err(AdminError::WrongReplicaForCommand {
                command: "JOIN".into(),
                expected: "a secondary replica (any but the first one listed)".into(),
                name: self.name.clone(),
            });
        }
        if config.replicas[usize::from(me.0)].availability_mode
            == AvailabilityMode::ConfigurationOnly
        {
            return Err(AdminError::ConfigurationOnlyReplica {
                name: self.name.clone(),
            });
        }
        let logs = vec![(CheckpointBase::default(), Vec::new()); config.databases.len()];
        let mut core = Core::new(config, me, self.options, logs, self.store.clone());
        core.now_ms = now_ms;
        let out = &mut self.outputs;
        out.push_back(Output::SetTimer {
            timer: TimerId::Heartbeat,
            at_ms: now_ms.saturating_add(core.ping_interval_ms()),
        });
        if !create {
            core.role = Role::Secondary;
            out.push_back(Output::RoleChanged {
                role: Role::Secondary,
                epoch: Epoch::NONE,
            });
        } else if core.has_manager() {
            out.push_back(Output::RoleChanged {
                role: Role::Resolving,
                epoch: Epoch::NONE,
            });
            core.request_promotion(PromotionKind::Initial, None, out);
        } else {
            core.promote(false, None, 0, out);
        }
        // CREATE makes the initial primary (through the manager's promotion when there is
        // one), JOIN a secondary.
        let expected = match (create, core.has_manager()) {
            (false, _) => Role::Secondary,
            (true, true) => Role::Resolving,
            (true, false) => Role::Primary,
        };
        invariant!(
            core,
            core.role == expected
                && (core.role == Role::Primary) == (core.primary == Some(core.me))
                && core.awaiting_promotion.is_some() == (create && core.has_manager()),
            "R-ROLE-4: {} {} after {}: {:?} expected, primary {:?}, promotion awaited: {}",
            core.role,
            core.me,
            if create { "CREATE" } else { "JOIN" },
            expected,
            core.primary,
            core.awaiting_promotion.is_some()
        );
        // Every database of the configuration joins with an empty log.
        invariant!(
            core,
            core.dbs.len() == core.config.databases.len()
                && core
                    .dbs
                    .iter()
                    .all(|db| db.end() == Lsn(0) && db.hardened == Lsn(0)),
            "R-DB-2: {} databases configured, {} made, not all of them empty",
            core.config.databases.len(),
            core.dbs.len()
        );
        self.core = Some(core);
        Ok(AdminOutcome::Done)
    }
}

impl Core {
    /// An admin command to a replica of a group. Every command but CREATE and JOIN first
    /// judges the lease (R-QUORUM-3); a failover answers when it completes.
    pub(super) fn on_admin(
        &mut self,
        now_ms: u64,
        request: RequestId,
        command: AdminCommand,
        out: &mut Out,
    ) {
        let result = match command {
            AdminCommand::CreateAvailabilityGroup(_) | AdminCommand::JoinAvailabilityGroup(_) => {
                Some(Err(AdminError::AlreadyInAvailabilityGroup {
                    name: self.config.name.clone(),
                }))
            }
            command => {
                self.check_lease(now_ms, out);
                match command {
                    AdminCommand::CreateAvailabilityGroup(_)
                    | AdminCommand::JoinAvailabilityGroup(_) => unreachable!("answered above"),
                    AdminCommand::Failover => self.admin_failover(now_ms, request, out),
                    AdminCommand::ForceFailoverAllowDataLoss => {
                        self.admin_force_failover(now_ms, request, out)
                    }
                    AdminCommand::SetRoleSecondary => Some(self.admin_set_role_secondary(out)),
                    AdminCommand::SuspendDatabase(database) => {
                        Some(self.admin_suspend(database, out))
                    }
                    AdminCommand::ResumeDatabase(database) => {
                        Some(self.admin_resume(database, out))
                    }
                    AdminCommand::SetRequiredSynchronizedSecondariesToCommit(required) => {
                        Some(self.admin_set_required(required, out))
                    }
                    AdminCommand::AcceptDataLoss(database) => {
                        Some(self.admin_accept_data_loss(database))
                    }
                }
            }
        };
        // Every command is answered exactly once: now, or by the failover or the promotion
        // it started.
        invariant!(
            self,
            result.is_some() || self.failover.is_some() || self.awaiting_promotion.is_some(),
            "R-FAIL-3: admin request {request:?} left unanswered, with no failover or promotion in flight"
        );
        if let Some(result) = result {
            out.push_back(Output::AdminReply { request, result });
        }
    }

    /// Accepts what a damaged log lost: the database comes online with its intact prefix (the
    /// operator's decision for a lone surviving copy; R-COMMIT-6 no longer holds for what is
    /// gone). The replica keeps its role: a SECONDARY with no primary to follow then takes the
    /// group with a forced failover, which starts a new fork, so no LSN of the lost records is
    /// ever handed out again in the same epoch.
    fn admin_accept_data_loss(&mut self, database: DatabaseId) -> AdminResult {
        let index = self
            .db_index(database)
            .ok_or(AdminError::UnknownDatabase { database })?;
        let db = &mut self.dbs[index];
        let damage = db
            .damaged
            .take()
            .ok_or(AdminError::DatabaseNotDamaged { database })?;
        tracing::warn!(
            %database,
            kept = %damage.kept,
            lost_through = %damage.lost_through,
            "the operator accepted the loss of the records a damaged log could not give back"
        );
        invariant!(
            self,
            self.dbs[index].damaged.is_none() && damage.kept < damage.lost_through,
            "R-COMMIT-6: {database}: the damage {damage:?} is still recorded or was malformed"
        );
        Ok(AdminOutcome::DataLossAccepted {
            database,
            kept: damage.kept,
            lost_through: damage.lost_through,
        })
    }

    /// `SET HADR SUSPEND` (R-SYNC-7). On the primary it stops data movement to every secondary
    /// (they become SUSPEND_FROM_PRIMARY); on a secondary it stops data movement to it.
    pub(super) fn admin_suspend(&mut self, database: DatabaseId, out: &mut Out) -> AdminResult {
        let index = self
            .db_index(database)
            .ok_or(AdminError::UnknownDatabase { database })?;
        let epoch = self.epoch;
        let primary = self.primary_link();
        let up: Vec<bool> = self.peers.iter().map(|p| p.is_up()).collect();
        let role = self.role;
        let db = &mut self.dbs[index];
        match db.suspended {
            // The operator's own suspension of a secondary outlasts the primary's (R-SYNC-7:
            // resuming the primary resumes only the secondaries suspended because of it).
            Some(SuspendReason::Primary) if role == Role::Secondary => {}
            Some(reason) => return Err(AdminError::AlreadySuspended { database, reason }),
            None => {}
        }
        match role {
            Role::Resolving => return Err(AdminError::Resolving),
            Role::Primary => {
                db.suspended = Some(SuspendReason::User);
                for (peer, progress) in db.as_primary().secondaries.iter_mut() {
                    if progress.is_moving() || matches!(progress.phase, Phase::Reverting { .. }) {
                        progress.phase = Phase::Suspended(SuspendReason::Primary);
                        progress.reported = None;
                        if up[usize::from(peer.0)] {
                            let reason = SuspendReason::Primary;
                            send(
                                out,
                                &self.peers,
                                *peer,
                                epoch,
                                MessageBody::Suspend { database, reason },
                            );
                        }
                    }
                }
            }
            Role::Secondary => {
                db.suspended = Some(SuspendReason::User);
                db.as_secondary().told_state = SyncState::NotSynchronizing;
                if let Some(primary) = primary {
                    send(
                        out,
                        &self.peers,
                        primary,
                        epoch,
                        MessageBody::Suspended { database },
                    );
                }
            }
        }
        // No data moves to or from a suspended database, nor does any secondary of a
        // suspended primary database move data or revert.
        let db = &self.dbs[index];
        invariant!(
            self,
            db.suspended == Some(SuspendReason::User)
                && self.local_sync_state(index) == SyncState::NotSynchronizing
                && db.primary().is_none_or(|books| books
                    .secondaries
                    .values()
                    .all(|p| !p.is_moving() && !matches!(p.phase, Phase::Reverting { .. }))),
            "R-SYNC-7: {database} suspended by its operator, yet {:?} locally, secondaries {:?}",
            self.local_sync_state(index),
            db.primary().map(|books| &books.secondaries)
        );
        Ok(AdminOutcome::Done)
    }

    /// `SET HADR RESUME` (R-SYNC-7, R-FAIL-4). On the primary it resumes the secondaries
    /// suspended because of it, and only those. On a secondary suspended by a forced failover
    /// (SUSPEND_FROM_PARTNER) it accepts the new history: the primary then has it revert to the
    /// fork point (REVERTING, then INITIALIZING).
    pub(super) fn admin_resume(&mut self, database: DatabaseId, out: &mut Out) -> AdminResult {
        let index = self
            .db_index(database)
            .ok_or(AdminError::UnknownDatabase { database })?;
        let epoch = self.epoch;
        let up: Vec<bool> = self.peers.iter().map(|p| p.is_up()).collect();
        let connected = self.primary_link().is_some();
        let role = self.role;
        let db = &mut self.dbs[index];
        let Some(reason) = db.suspended else {
            return Err(AdminError::NotSuspended { database });
        };
        match role {
            Role::Resolving => return Err(AdminError::Resolving),
            Role::Primary => {
                db.suspended = None;
                for (peer, progress) in db.as_primary().secondaries.iter_mut() {
                    if progress.phase == Phase::Suspended(SuspendReason::Primary) {
                        progress.phase = Phase::Inactive;
                        if up[usize::from(peer.0)] {
                            send(
                                out,
                                &self.peers,
                                *peer,
                                epoch,
                                MessageBody::ResumeFromPrimary { database },
                            );
                        }
                    }
                }
            }
            Role::Secondary => {
                match reason {
                    SuspendReason::Primary => {
                        return Err(AdminError::SuspendedFromPrimary { database })
                    }
                    _ if !connected => return Err(AdminError::ResumeWithoutPrimary { database }),
                    SuspendReason::User | SuspendReason::Redo => {}
                    SuspendReason::Partner => {
                        // RESUME accepts the history of the primary it follows now.
                        db.accepted_epoch = db.accepted_epoch.max(db.suspended_by_epoch).max(epoch);
                    }
                }
                db.suspended = None;
                self.rejoin(index, out);
            }
        }
        // Resumed, and on the primary so is every secondary suspended because of it.
        let db = &self.dbs[index];
        invariant!(
            self,
            db.suspended.is_none()
                && db.primary().is_none_or(|books| books
                    .secondaries
                    .values()
                    .all(|p| p.phase != Phase::Suspended(SuspendReason::Primary))),
            "R-SYNC-7: {database} resumed, yet suspended {:?}, secondaries {:?}",
            db.suspended,
            db.primary().map(|books| &books.secondaries)
        );
        Ok(AdminOutcome::Done)
    }

    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = k, on the primary (R-COMMIT-5).
    pub(super) fn admin_set_required(&mut self, required: u32, out: &mut Out) -> AdminResult {
        if self.role != Role::Primary {
            return Err(AdminError::NotPrimary { role: self.role });
        }
        let max = self.max_required();
        if required > max {
            return Err(AdminError::RequiredSynchronizedTooHigh { required, max });
        }
        self.config.required_synchronized_secondaries_to_commit = required;
        // k stays within what the group can have SYNCHRONIZED: the configuration holds.
        invariant!(
            self,
            self.config.validate().is_ok(),
            "R-COMMIT-5: k = {required} (at most {max}) leaves the configuration invalid: {:?}",
            self.config.validate()
        );
        let body = MessageBody::SetRequiredSynchronized { required };
        self.send_to_peers(Peer::is_up, &body, out);
        Ok(AdminOutcome::Done)
    }
}
