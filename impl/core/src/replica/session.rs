//! Sessions with peers: connection events, the handshake, pings and SESSION_TIMEOUT
//! (R-HEALTH-1, R-COMMIT-4), and how a handshake makes a replica follow a newer primary or step
//! down (R-ROLE-1).

use super::database::{Peer, PeerView, Phase};
use super::{ignored, send, Core, Out};
use crate::error::{AdminError, IgnoredReason};
use crate::ids::{ConnectionId, TimerId};
use crate::input::ConnectionEvent;
use crate::log::check_fork_history;
use crate::message::{Hello, MessageBody, PeerMessage};
use crate::output::{DisconnectReason, IndefiniteCause, InputSource, Output};
use hadr_types::{AvailabilityMode, ReplicaId, Role};

impl Core {
    pub(super) fn on_connection(&mut self, now_ms: u64, event: ConnectionEvent, out: &mut Out) {
        let peer = event.peer();
        let source = InputSource::Connection(peer);
        if !self.is_peer(peer) {
            ignored(out, source, IgnoredReason::UnknownPeer { peer });
            return;
        }
        let index = usize::from(peer.0);
        let current = self.peers[index].connection;
        match event {
            ConnectionEvent::Opened { connection, .. } => {
                if current == Some(connection) || self.peers[index].retired == Some(connection) {
                    ignored(
                        out,
                        source,
                        IgnoredReason::ConnectionAlreadySeen { peer, connection },
                    );
                    return;
                }
                if current.is_some() {
                    // A new connection replaces the old one: start the session afresh.
                    self.disconnect(peer, false, out);
                }
                let state = &mut self.peers[index];
                state.connection = Some(connection);
                state.hello = None;
                state.last_heard_ms = now_ms;
                let hello = self.hello();
                send(
                    out,
                    &self.peers,
                    peer,
                    self.epoch,
                    MessageBody::Hello(hello),
                );
                out.push_back(Output::SetTimer {
                    timer: TimerId::SessionTimeout(peer),
                    at_ms: now_ms.saturating_add(self.session_timeout_ms()),
                });
                let state = &self.peers[index];
                invariant!(
                    self,
                    state.connection == Some(connection)
                        && state.retired != Some(connection)
                        && state.hello.is_none(),
                    "R-HEALTH-1: {peer}'s new connection {connection} is not its current one, is retired, or starts handshaken ({:?}, retired {:?})",
                    state.connection,
                    state.retired
                );
            }
            ConnectionEvent::Closed { connection, .. } => {
                if current == Some(connection) {
                    self.disconnect(peer, true, out);
                    let state = &self.peers[index];
                    invariant!(
                        self,
                        state.connection.is_none() && state.retired == Some(connection),
                        "R-HEALTH-1: {peer}'s closed connection {connection} is still open or not retired ({:?}, retired {:?})",
                        state.connection,
                        state.retired
                    );
                } else if self.peers[index].retired != Some(connection) {
                    // A superseded socket's late close: the session that replaced it goes on.
                    ignored(
                        out,
                        source,
                        IgnoredReason::StaleConnection {
                            peer,
                            connection,
                            current,
                        },
                    );
                }
            }
        }
    }

    /// Ends the session with `peer` from this side: the shell closes the connection.
    pub(super) fn close_connection(
        &mut self,
        peer: ReplicaId,
        reason: DisconnectReason,
        cancel_timer: bool,
        out: &mut Out,
    ) {
        invariant!(
            self,
            self.is_peer(peer),
            "R-HEALTH-1: {} closes a session with {peer}, which is not one of its peers",
            self.me
        );
        if let Some(connection) = self.peers[usize::from(peer.0)].connection {
            out.push_back(Output::CloseConnection {
                peer,
                connection,
                reason,
            });
        }
        self.disconnect(peer, cancel_timer, out);
        invariant!(
            self,
            !self.peers[usize::from(peer.0)].connected(),
            "R-HEALTH-1: the session with {peer} was closed but its connection stays current"
        );
    }

    /// The peer is DISCONNECTED: no data moves to or from it, and (on the primary) it stops
    /// being a commit participant (R-COMMIT-4; `settle` publishes and releases).
    pub(super) fn disconnect(&mut self, peer: ReplicaId, cancel_timer: bool, out: &mut Out) {
        let state = &mut self.peers[usize::from(peer.0)];
        state.retired = state.connection.take().or(state.retired);
        state.hello = None;
        if cancel_timer {
            out.push_back(Output::CancelTimer {
                timer: TimerId::SessionTimeout(peer),
            });
        }
        // Planted bug only: commits still wait for it.
        let linger = self.planted(crate::mutants::Mutant::CountDisconnectedParticipant);
        for db in &mut self.dbs {
            if let Some(progress) = db.progress_mut(peer) {
                progress.phase = Phase::Inactive;
                progress.lingering |= linger && progress.synchronized;
                progress.synchronized = false;
                progress.reported = None;
            }
        }
        if self.primary == Some(peer) && self.role == Role::Secondary {
            self.lose_primary();
        }
        if self.failover.as_ref().is_some_and(|f| f.primary == peer) {
            self.planned_failover_interrupted(out);
        }
        invariant!(
            self,
            self.is_peer(peer)
                && !self.peers[usize::from(peer.0)].is_up()
                && self.dbs.iter().all(|db| {
                    db.progress(peer).is_none_or(|p| {
                        p.phase == Phase::Inactive && !p.synchronized && p.reported.is_none()
                    })
                }),
            "R-COMMIT-4: {peer} is DISCONNECTED but still connected or counted as a participant"
        );
    }

    pub(super) fn hello(&self) -> Hello {
        invariant!(
            self,
            self.role != Role::Primary || self.epoch.replica == self.me,
            "R-ROLE-1: the primary {} announces {}, another replica's epoch",
            self.me,
            self.epoch
        );
        let hello = Hello {
            ag_name: self.config.name.clone(),
            replica: self.me,
            replica_name: self.config.replicas[usize::from(self.me.0)].name.clone(),
            role: self.role,
            last_forced_epoch: self.last_forced,
            required_synchronized: self.config.required_synchronized_secondaries_to_commit,
            databases: self.dbs.iter().map(|db| db.hello()).collect(),
        };
        // What peers check of a handshake holds of this replica's own books.
        invariant!(
            self,
            self.check_database_hellos(&hello).is_none(),
            "R-SYNC-2: {} announces a handshake its peers refuse: {:?}",
            self.me,
            self.check_database_hellos(&hello)
        );
        hello
    }

    /// Sends a fresh handshake to every connected peer: the role or epoch changed.
    pub(super) fn broadcast_hello(&mut self, out: &mut Out) {
        invariant!(
            self,
            self.epoch >= self.announced.1,
            "R-ROLE-1: {} announces {}, older than the {} it announced before",
            self.me,
            self.epoch,
            self.announced.1
        );
        self.announced = (self.role, self.epoch);
        let hello = MessageBody::Hello(self.hello());
        self.send_to_peers(Peer::connected, &hello, out);
    }

    pub(super) fn on_message(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        connection: ConnectionId,
        message: PeerMessage,
        out: &mut Out,
    ) {
        let source = InputSource::Peer(from);
        if !self.is_peer(from) {
            ignored(out, source, IgnoredReason::UnknownPeer { peer: from });
            return;
        }
        let peer = &mut self.peers[usize::from(from.0)];
        match peer.connection {
            None => {
                ignored(out, source, IgnoredReason::NotConnected { peer: from });
                return;
            }
            Some(current) if current != connection => {
                // Read from a socket that a newer connection replaced: that session is over.
                let current = Some(current);
                let reason = IgnoredReason::StaleConnection {
                    peer: from,
                    connection,
                    current,
                };
                ignored(out, source, reason);
                return;
            }
            Some(_) => {}
        }
        peer.last_heard_ms = now_ms;
        let handshaken = peer.hello.is_some();
        if !message.epochs_in_range() {
            ignored(out, source, IgnoredReason::EpochOutOfRange);
            return;
        }
        self.note_term(message.epoch.term);
        invariant!(
            self,
            self.epoch.term <= self.max_term && self.last_forced.term <= self.max_term,
            "R-ROLE-1: {} or last forced {} beyond the highest term seen {}",
            self.epoch,
            self.last_forced,
            self.max_term
        );
        let epoch = message.epoch;
        match message.body {
            MessageBody::Hello(hello) => self.on_hello(from, epoch, hello, out),
            _ if !handshaken => ignored(out, source, IgnoredReason::BeforeHandshake),
            MessageBody::Ping => {}
            MessageBody::Rejoin(hello) => self.on_rejoin(from, epoch, hello, out),
            MessageBody::Log(block) => self.on_log(from, epoch, block, out),
            MessageBody::GapRefused { database, expected } => {
                self.on_gap_refused(from, epoch, database, expected, out)
            }
            MessageBody::Progress {
                database,
                received,
                hardened,
                redone,
            } => self.on_progress(from, epoch, database, received, hardened, redone, out),
            MessageBody::SyncState { database, state } => {
                self.on_sync_state(from, epoch, database, state, out)
            }
            MessageBody::Suspend { database, reason } => {
                self.on_suspend_from_primary(from, epoch, database, reason, out)
            }
            MessageBody::Suspended { database } => {
                self.on_secondary_suspended(from, epoch, database, out)
            }
            MessageBody::ResumeFromPrimary { database } => {
                self.on_resume_from_primary(from, epoch, database, out)
            }
            MessageBody::Revert { database, to } => self.on_revert(from, epoch, database, to, out),
            MessageBody::Reverted {
                database,
                end,
                hardened,
                redone,
            } => self.on_reverted(from, epoch, database, end, hardened, redone, out),
            MessageBody::FailoverRequest => self.on_failover_request(from, epoch, out),
            MessageBody::FailoverRefused { reason } => self.on_failover_refused(from, reason, out),
            MessageBody::FailoverGranted { ends } => {
                self.on_failover_granted(from, epoch, ends, out)
            }
            MessageBody::SetRequiredSynchronized { required } => {
                self.on_set_required(from, epoch, required, out)
            }
        }
    }

    /// The handshake: check identity and shape, then settle who leads whom (R-ROLE-1: the
    /// higher epoch wins; a primary that sees a newer one steps down).
    fn on_hello(&mut self, from: ReplicaId, epoch: crate::ids::Epoch, hello: Hello, out: &mut Out) {
        let source = InputSource::Peer(from);
        if hello.ag_name != self.config.name {
            ignored(
                out,
                source,
                IgnoredReason::WrongAvailabilityGroup {
                    expected: self.config.name.clone(),
                    found: hello.ag_name,
                },
            );
            self.reject_connection(from, out);
            return;
        }
        let expected = &self.config.replicas[usize::from(from.0)];
        if hello.replica != from || !expected.name.eq_ignore_ascii_case(&hello.replica_name) {
            ignored(
                out,
                source,
                IgnoredReason::WrongReplica {
                    peer: from,
                    claimed: hello.replica,
                    name: hello.replica_name,
                },
            );
            self.reject_connection(from, out);
            return;
        }
        if expected.availability_mode == AvailabilityMode::ConfigurationOnly {
            // R-QUORUM-6: it holds no data; never follow it nor ship to it.
            ignored(
                out,
                source,
                IgnoredReason::ConfigurationOnlyPeer { peer: from },
            );
            self.reject_connection(from, out);
            return;
        }
        if hello.role == Role::Primary && epoch.replica != from {
            let epoch_replica = epoch.replica;
            let reason = IgnoredReason::PrimaryOfAnotherEpoch {
                peer: from,
                epoch,
                epoch_replica,
            };
            ignored(out, source, reason);
            return;
        }
        if let Some(reason) = self.check_database_hellos(&hello) {
            ignored(out, source, reason);
            return;
        }
        self.note_term(hello.last_forced_epoch.term);
        self.peers[usize::from(from.0)].hello = Some(PeerView {
            role: hello.role,
            epoch,
        });
        invariant!(
            self,
            self.peers[usize::from(from.0)].connected(),
            "R-HEALTH-1: a handshake from {from} recorded without a connection to it"
        );
        let before = self.epoch;
        match hello.role {
            Role::Primary
                if (epoch > self.epoch || (epoch == self.epoch && self.role != Role::Primary))
                    && !self.manager_reachable =>
            {
                // R-QUORUM-2: without the manager's majority this replica cannot learn its
                // role; it follows the primary once the manager is back (`Reachable`).
                ignored(out, source, IgnoredReason::ManagerUnreachable);
            }
            Role::Primary
                if epoch > self.epoch || (epoch == self.epoch && self.role != Role::Primary) =>
            {
                self.follow(from, epoch, &hello, out);
            }
            Role::Primary | Role::Secondary if epoch > self.epoch && self.role == Role::Primary => {
                // A newer history exists (a secondary follows it); its primary will show up.
                // Stop committing now. (A RESOLVING peer's epoch deposes nobody: its promotion
                // may have failed before it wrote anything.)
                self.step_down(Role::Resolving, IndefiniteCause::RoleChanged, out);
                self.epoch = epoch;
            }
            Role::Secondary if self.role == Role::Primary && epoch == self.epoch => {
                for database in hello.databases {
                    self.setup_secondary(from, database, false, out);
                }
            }
            _ if self.primary == Some(from) && self.role == Role::Secondary => {
                // Our primary is no longer primary (it handed over or lost its lease).
                if self.failover.as_ref().is_some_and(|f| f.primary == from) {
                    return;
                }
                self.primary = None;
                self.lose_primary();
            }
            _ => {}
        }
        invariant!(
            self,
            self.epoch >= before,
            "R-ROLE-1: a handshake from {from} took {} back from {before} to {}",
            self.me,
            self.epoch
        );
    }

    fn check_database_hellos(&self, hello: &Hello) -> Option<IgnoredReason> {
        // A handshake's databases are matched by position: ours sit at their ids' positions.
        invariant!(
            self,
            self.dbs
                .iter()
                .enumerate()
                .all(|(position, db)| usize::from(db.id.0) == position),
            "R-SYNC-1: {}'s databases are not in id order",
            self.me
        );
        if hello.databases.len() != self.dbs.len() {
            return Some(IgnoredReason::DatabaseCountMismatch {
                expected: self.dbs.len(),
                found: hello.databases.len(),
            });
        }
        for (position, db) in hello.databases.iter().enumerate() {
            if usize::from(db.database.0) != position {
                return Some(IgnoredReason::DatabaseOutOfOrder {
                    position,
                    found: db.database,
                });
            }
            if let Err(error) = check_fork_history(&db.forks, db.end_of_log) {
                return Some(IgnoredReason::MalformedLog(error));
            }
            if !(db.end_of_log >= db.hardened && db.hardened >= db.redone) {
                return Some(IgnoredReason::ImpossibleHandshake {
                    database: db.database,
                    end_of_log: db.end_of_log,
                    hardened: db.hardened,
                    redone: db.redone,
                });
            }
        }
        None
    }

    fn reject_connection(&mut self, peer: ReplicaId, out: &mut Out) {
        self.close_connection(peer, DisconnectReason::HandshakeMismatch, true, out);
        let state = &self.peers[usize::from(peer.0)];
        invariant!(
            self,
            state.connection.is_none() && state.hello.is_none(),
            "R-HEALTH-1: the rejected handshake of {peer} left its session open ({:?})",
            state.connection
        );
    }

    /// Follow `primary`, the primary of `epoch` (≥ ours): become its SECONDARY.
    fn follow(
        &mut self,
        primary: ReplicaId,
        epoch: crate::ids::Epoch,
        hello: &Hello,
        out: &mut Out,
    ) {
        invariant!(
            self,
            primary != self.me && epoch.replica == primary && epoch >= self.epoch,
            "R-ROLE-1: the {} {} in {} follows {primary}, the primary of {epoch}",
            self.role,
            self.me,
            self.epoch
        );
        if self.role == Role::Primary {
            self.step_down(Role::Secondary, IndefiniteCause::RoleChanged, out);
        }
        let epoch_changed = epoch != self.epoch;
        self.epoch = epoch;
        self.primary = Some(primary);
        self.handover_to = None;
        for db in &mut self.dbs {
            db.as_secondary().handover = None;
        }
        self.last_forced = self.last_forced.max(hello.last_forced_epoch);
        if hello.required_synchronized <= self.max_required() {
            self.config.required_synchronized_secondaries_to_commit = hello.required_synchronized;
        }
        if self
            .failover
            .as_ref()
            .is_some_and(|f| f.primary != primary || epoch_changed)
        {
            self.fail_planned_failover(AdminError::FailoverHandshakeFailed, false, out);
        }
        if self.role != Role::Secondary {
            self.role = Role::Secondary;
            out.push_back(Output::RoleChanged {
                role: Role::Secondary,
                epoch,
            });
            out.push_back(Output::DisconnectClients);
        } else if epoch_changed {
            // R-FAIL-6: a failover happened elsewhere; this replica's clients are disconnected
            // too (they reconnect through the listener, which `PrimaryChanged` updates).
            out.push_back(Output::DisconnectClients);
        }
        if epoch_changed {
            self.lose_primary();
        }
        invariant!(
            self,
            self.role == Role::Secondary
                && self.failover.as_ref().is_none_or(|f| f.primary == primary)
                && self.dbs.iter().all(|db| db.primary().is_none()),
            "R-ROLE-3: the {} following {primary} holds a primary's books or a planned failover from {:?}",
            self.role,
            self.failover.as_ref().map(|f| f.primary)
        );
        // `settle` announces the new epoch to every peer and emits `PrimaryChanged`.
    }

    /// The primary this secondary followed is gone, or another leads now: nothing it
    /// assigned holds, and a gap may be reported again.
    pub(super) fn lose_primary(&mut self) {
        invariant!(
            self,
            self.role == Role::Secondary,
            "R-ROLE-3: a {} drops a secondary's state about its primary {:?}",
            self.role,
            self.primary
        );
        for db in &mut self.dbs {
            db.as_secondary().lose_primary();
        }
    }

    /// Stop being primary: every waiting commit gets an indefinite error (its log may survive on
    /// the next primary, R-COMMIT-7), open transactions are dropped, clients are disconnected
    /// (R-FAIL-6), and the lease is given back.
    pub(super) fn step_down(&mut self, role: Role, cause: IndefiniteCause, out: &mut Out) {
        invariant!(
            self,
            self.role == Role::Primary && role != Role::Primary,
            "R-ROLE-3: a {} steps down to {role}",
            self.role
        );
        let was_primary = self.role == Role::Primary;
        let mut released = Vec::new();
        for db in &mut self.dbs {
            // Open transactions go with the primary's books.
            for pending in db.become_secondary(self.handover_to) {
                released.push((pending, db.id));
            }
        }
        let definite = self.planted(crate::mutants::Mutant::DefiniteAtStepDown);
        for (pending, database) in released {
            let reply = if definite {
                crate::output::ClientReply::Refused(crate::error::ClientError::NotPrimary {
                    role,
                    primary: None,
                })
            } else {
                crate::output::ClientReply::Indefinite(cause)
            };
            self.record_outcome(database, pending.txn, Some(&reply));
            out.push_back(Output::ClientReply {
                request: pending.request,
                reply,
            });
        }
        if was_primary && self.has_manager() {
            // Whatever made the primary step down, the lease goes now so that another replica
            // can be promoted: even a lease this replica judged expired by its own deadline,
            // which the manager may still be renewing (a lease the manager already lost makes
            // the release a no-op). A planned failover reserves the next promotion first.
            let request = match self.handover_to {
                Some(to) => crate::output::ManagerRequest::HandOver { to },
                None => crate::output::ManagerRequest::ReleaseLease,
            };
            out.push_back(Output::Manager(request));
            out.push_back(Output::CancelTimer {
                timer: TimerId::LeaseExpiry,
            });
        }
        self.lease_until_ms = None;
        self.publication = Default::default();
        self.role = role;
        self.primary = None;
        out.push_back(Output::RoleChanged {
            role,
            epoch: self.epoch,
        });
        out.push_back(Output::DisconnectClients);
        invariant!(
            self,
            self.dbs.iter().all(|db| db.primary().is_none()),
            "R-ROLE-3: {} stepped down to {role} but still holds a primary's books",
            self.me
        );
    }

    pub(super) fn on_timer(&mut self, now_ms: u64, timer: TimerId, out: &mut Out) {
        match timer {
            TimerId::Heartbeat => {
                invariant!(
                    self,
                    self.ping_interval_ms() <= self.session_timeout_ms(),
                    "R-HEALTH-1: pings every {} ms cannot keep a session of {} ms alive",
                    self.ping_interval_ms(),
                    self.session_timeout_ms()
                );
                // Pings go out in every role: a RESOLVING replica does not act on session
                // timeouts (R-ROLE-2), but its peers must not drop it for silence.
                self.send_to_peers(Peer::is_up, &MessageBody::Ping, out);
                out.push_back(Output::SetTimer {
                    timer: TimerId::Heartbeat,
                    at_ms: now_ms.saturating_add(self.ping_interval_ms()),
                });
            }
            TimerId::SessionTimeout(peer) => {
                if !self.is_peer(peer) || !self.peers[usize::from(peer.0)].connected() {
                    return; // stale
                }
                let deadline = self.peers[usize::from(peer.0)]
                    .last_heard_ms
                    .saturating_add(self.session_timeout_ms());
                if now_ms < deadline {
                    out.push_back(Output::SetTimer {
                        timer,
                        at_ms: deadline,
                    });
                } else if self.role == Role::Resolving {
                    // R-ROLE-2: no session timeouts apply while RESOLVING.
                    out.push_back(Output::SetTimer {
                        timer,
                        at_ms: now_ms.saturating_add(self.session_timeout_ms()),
                    });
                } else {
                    tracing::info!(peer = peer.0, "session timeout: peer DISCONNECTED");
                    self.close_connection(peer, DisconnectReason::SessionTimeout, false, out);
                }
            }
            TimerId::LeaseExpiry => {
                // `check_lease` ran before this and stepped down if the lease is over.
            }
            TimerId::FailoverHandshake => {
                if self.failover.is_some() {
                    self.planned_failover_interrupted(out);
                }
            }
            TimerId::PromotionTimeout => self.promotion_timed_out(out),
        }
    }
}
