//! Performing the core's outputs, one at a time and in order (the ordering contract of
//! `hadr_core::Replica`): messages to peers, the state file, replies, timers, requests to the
//! cluster manager. Storage outputs go to `flush.rs`, which keeps their completions in order.

use super::error::{AdminRefusal, NodeError};
use super::peers::PeerNet;
use super::{storage, Event, State};
use crate::config::endpoint_address;
use crate::wire::{encode_frame, Frame};
use hadr_core::{
    ConnectionEvent, ConnectionId, Epoch, ManagerEvent, ManagerRequest, Output, PeerMessage,
    PersistentState,
};
use hadr_types::{DatabaseId, Lsn, ReplicaId, Role};

impl State {
    /// Performs one output of the core.
    pub(super) fn perform(&mut self, output: Output) -> Result<(), NodeError> {
        if self.faults.disk_stalled()
            && matches!(
                output,
                Output::Fsync { .. } | Output::Redo { .. } | Output::RevertLog { .. }
            )
        {
            // An fsync that never returns (until the process dies): appends still reach the
            // page cache, nothing is hardened, redone or reverted any more.
            tracing::debug!(
                ?output,
                "fault injection: log disk stalled, storage request held forever"
            );
            return Ok(());
        }
        // A revert waits for a background fsync of its database (see `BackgroundFlushes`).
        let Some(output) = self.flushes.admit(output) else {
            return Ok(());
        };
        match output {
            Output::PersistState(state) => self.persist(&state)?,
            Output::Send {
                to,
                connection,
                message,
            } => self.send(to, connection, message),
            Output::CloseConnection {
                peer,
                connection,
                reason,
            } => {
                tracing::info!(%peer, %connection, ?reason, "closing peer connection");
                self.drop_connection(connection);
            }
            Output::AppendLog { database, records } => self.append(database, &records)?,
            Output::Fsync { database, .. } => {
                self.sync_pending.insert(database);
            }
            Output::Redo { database, up_to } => self.queue_redo(database, up_to),
            Output::RevertLog { database, to } => self.revert(database, to)?,
            Output::Checkpoint {
                database,
                records,
                up_to,
            } => self.checkpoint(database, records, up_to)?,
            Output::TruncateLog { database, through } => self.truncate_log(database, through)?,
            Output::ClientReply { request, reply } => {
                if let Some(tx) = self.clients.remove(&request) {
                    let _ = tx.send(Ok(reply));
                }
            }
            Output::AdminReply { request, result } => {
                if result.is_ok() {
                    self.store_config_if_changed();
                }
                if let Some(tx) = self.admins.remove(&request) {
                    let _ = tx.send(result.map_err(AdminRefusal::Core));
                }
            }
            Output::DisconnectClients => {
                self.client_generation.send_modify(|g| *g += 1);
            }
            Output::PrimaryChanged { primary, epoch } => {
                tracing::info!(replica = %self.name, ?primary, %epoch, "primary changed");
            }
            Output::SetTimer { timer, at_ms } => {
                self.timers.insert(timer, at_ms);
            }
            Output::CancelTimer { timer } => {
                self.timers.remove(&timer);
            }
            Output::RoleChanged { role, epoch } => self.role_changed(role, epoch),
            Output::Manager(request) => self.ask_manager(request),
            Output::Ignored { source, reason } => {
                tracing::debug!(?source, %reason, "input ignored by the replica");
            }
        }
        Ok(())
    }

    /// Makes the replica's metadata durable, before anything after it (the ordering
    /// contract). Opening the WALs of a new configuration belongs here too: appends may follow.
    fn persist(&mut self, state: &PersistentState) -> Result<(), NodeError> {
        for i in 0..state.config.databases.len() {
            let db = DatabaseId(i as u8);
            if !self.wals.contains_key(&db) {
                let (wal, _) = storage::open_wal(&self.data_dir, db)?;
                self.wals.insert(db, wal);
            }
            let checkpointed = state.databases.get(i).map_or(Lsn(0), |d| d.checkpointed);
            self.data_files
                .open(&self.data_dir, db, checkpointed, self.data_options)?;
        }
        self.data_dir.store_state(state)?;
        Ok(())
    }

    /// Queues `message` on `connection` (dropped if that connection is gone). A message that
    /// cannot be queued closes its connection, now: nothing after it may go out on it
    /// (ordering contract, rule 6).
    fn send(&mut self, to: ReplicaId, connection: ConnectionId, mut message: PeerMessage) {
        if !self.connections.contains_key(&connection) {
            return;
        }
        if let hadr_core::MessageBody::Log(block) = &mut message.body {
            if self.faults.take_drop_log(to, block.database) {
                tracing::warn!(peer = %to, %connection, database = %block.database, lsn = %block.first_lsn, "fault injection: a log record lost instead of sent");
                if block.records.len() <= 1 {
                    return;
                }
                // The rest of the block goes out, with a gap (R-SYNC-1).
                block.records.remove(0);
                block.first_lsn = hadr_types::Lsn(block.first_lsn.0 + 1);
            }
        }
        let mut frame = Vec::new();
        let encoded = encode_frame(&Frame::Message(message), &mut frame);
        if let Err(error) = &encoded {
            tracing::error!(peer = %to, %connection, %error, "cannot encode a message: closing the connection");
        }
        self.sent = true;
        let queued = encoded.is_ok()
            && self
                .connections
                .get(&connection)
                .is_some_and(|c| c.writer.try_send(frame).is_ok());
        if !queued {
            tracing::warn!(peer = %to, %connection, "send queue full or closed: closing the connection");
            self.close_connection(to, connection);
        }
    }

    /// Drops a connection and tells the core it closed.
    pub(super) fn close_connection(&mut self, peer: ReplicaId, connection: ConnectionId) {
        self.drop_connection(connection);
        let now = self.now();
        self.replica
            .handle_connection(now, ConnectionEvent::Closed { peer, connection });
    }

    /// Stops a connection's tasks; the peer network dials again.
    pub(super) fn drop_connection(&mut self, connection: ConnectionId) {
        if let Some(c) = self.connections.remove(&connection) {
            for task in &c.tasks {
                task.abort();
            }
            if let Some(net) = &self.net {
                net.disconnected(c.peer, connection);
            }
        }
    }

    fn role_changed(&mut self, role: Role, epoch: Epoch) {
        tracing::info!(replica = %self.name, %role, %epoch, "role changed");
        if role != Role::Primary {
            // An injected health fault is one event: it failed the primary over, and the
            // replica is healthy again (as the spec's HealthFault).
            self.faults.clear_health_fault();
            self.faults.clear_drop_log();
        }
    }

    /// Hands a request to the cluster manager. Without one attached there is no quorum to
    /// promote with (R-QUORUM-2): a promotion request is denied at once.
    fn ask_manager(&mut self, request: ManagerRequest) {
        let sent = self
            .manager
            .as_ref()
            .is_some_and(|m| m.send(request.clone()));
        if !sent {
            tracing::warn!(?request, "no cluster manager attached (yet)");
            if matches!(request, ManagerRequest::RequestPromotion { .. }) {
                let _ = self
                    .events
                    .send(Event::Manager(ManagerEvent::PromotionDenied));
            }
        }
    }

    /// Starts this replica's endpoint and the peer network, once it belongs to a group.
    pub(super) async fn start_network(
        &mut self,
        config: &hadr_types::AgConfig,
    ) -> Result<(), NodeError> {
        let Some(me) = self.replica.id() else {
            return Ok(());
        };
        let mine = &config.replicas[usize::from(me.0)];
        let address = match self.endpoint_override {
            Some(address) => address.to_string(),
            None => endpoint_address(&mine.name, mine.endpoint_url.as_deref())?,
        };
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|source| NodeError::Bind {
                what: "the replica endpoint",
                address: address.clone(),
                source,
            })?;
        let net = PeerNet::start(
            config,
            me,
            self.events.clone(),
            listener,
            self.faults.partitioned(),
            self.span.clone(),
        );
        tracing::info!(replica = %self.name, endpoint = %address, "endpoint listening");
        self.net = Some(net);
        Ok(())
    }
}
