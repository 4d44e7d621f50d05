//! Events into the core's inputs: each [`Event`] becomes one `Replica::handle_*` call (with the
//! driver's clock), or is answered by the driver itself when it asks nothing of the core (a
//! status read, a fault injection) or cannot reach it (an unknown database name, a command
//! that needs a cluster manager first).

use super::error::{AdminAnswer, AdminRefusal, ClientAnswer, NodeError, RequestError};
use super::{DatabaseRef, Event, PeerConnection, State};
use crate::config::endpoint_address;
use hadr_core::{AdminCommand, ClientOp, ClientRequest, ConnectionEvent, ConnectionId, RequestId};
use hadr_types::{ApplicationIntent, ClusterType, DatabaseId, ReplicaId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

impl State {
    /// Hands one event to the core, or answers it.
    pub(super) fn handle(&mut self, event: Event) -> Result<(), NodeError> {
        let now = self.now();
        match event {
            Event::PeerOpened {
                peer,
                connection,
                writer,
                tasks,
            } => self.peer_opened(peer, connection, writer, tasks),
            Event::PeerMessage {
                peer,
                connection,
                message,
            } => self.replica.handle_message(now, peer, connection, message),
            Event::PeerClosed { peer, connection } => {
                if self.connections.contains_key(&connection) {
                    self.close_connection(peer, connection);
                }
            }
            Event::Client {
                database,
                intent,
                op,
                reply,
            } => self.client_request(&database, intent, op, reply),
            Event::Admin { command, reply } => self.admin_command(command, reply),
            Event::AdminAttached {
                manager,
                command,
                reply,
            } => {
                tracing::info!(replica = %self.name, ag = %manager.ag, "cluster manager attached (etcd)");
                self.manager = Some(manager);
                self.admin_command(command, reply);
            }
            Event::ManagerAttached(manager) => {
                tracing::info!(replica = %self.name, ag = %manager.ag, "cluster manager attached (etcd)");
                self.manager = Some(manager);
            }
            Event::Leader(leader) => self.consider_automatic_failover(leader),
            Event::Manager(event) => self.replica.handle_manager(now, event),
            Event::Ping => {
                if let Some(manager) = &self.manager {
                    manager.pong(now);
                }
            }
            Event::Flushed {
                database,
                up_to,
                result,
            } => return self.flushed(database, up_to, result),
            Event::Checkpointed {
                database,
                up_to,
                result,
            } => return self.checkpointed(database, up_to, result),
            Event::Stall { ms } => {
                tracing::warn!(ms, "fault injection: the driver stalls");
                std::thread::sleep(std::time::Duration::from_millis(ms));
                tracing::warn!(ms, "fault injection: the driver resumes");
            }
            Event::Fault { fault, reply } => {
                let _ = reply.send(self.inject(fault));
            }
            Event::ReadWriteRedirect { reply } => {
                let _ = reply.send(self.replica.read_write_redirect().map(str::to_owned));
            }
            Event::Config { reply } => {
                let _ = reply.send(self.replica.config().cloned());
            }
            Event::Status { reply } => {
                let status = self.replica.status().zip(self.replica.observe());
                let _ = reply.send(status);
            }
        }
        Ok(())
    }

    /// A new connection to `peer` replaces any other to it.
    fn peer_opened(
        &mut self,
        peer: ReplicaId,
        connection: ConnectionId,
        writer: mpsc::Sender<Vec<u8>>,
        tasks: [AbortHandle; 2],
    ) {
        let stale: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.drop_connection(id);
        }
        self.connections.insert(
            connection,
            PeerConnection {
                peer,
                writer,
                tasks,
            },
        );
        let now = self.now();
        self.replica
            .handle_connection(now, ConnectionEvent::Opened { peer, connection });
    }

    /// A client request, numbered, for the database it names; the core answers it.
    fn client_request(
        &mut self,
        database: &DatabaseRef,
        intent: ApplicationIntent,
        op: ClientOp,
        reply: oneshot::Sender<ClientAnswer>,
    ) {
        let database = match self.resolve(database) {
            Ok(database) => database,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let request = self.request_id();
        self.clients.insert(request, reply);
        let now = self.now();
        self.replica.handle_client(
            now,
            ClientRequest {
                request,
                database,
                intent,
                op,
            },
        );
    }

    /// An admin command, numbered, after the node's own checks; one that needs a cluster
    /// manager not attached yet waits for it (`Event::AdminAttached`).
    fn admin_command(&mut self, command: AdminCommand, reply: oneshot::Sender<AdminAnswer>) {
        if let Err(refusal) = self.precheck_admin(&command) {
            let _ = reply.send(Err(refusal));
            return;
        }
        if let Some((config, me)) = self.manager_needed(&command) {
            self.attach_then(config, me, command, reply);
            return;
        }
        let request = self.request_id();
        self.admins.insert(request, reply);
        let now = self.now();
        self.replica.handle_admin(now, request, command);
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn resolve(&self, database: &DatabaseRef) -> Result<DatabaseId, RequestError> {
        let config = self
            .replica
            .config()
            .ok_or(RequestError::NotInAvailabilityGroup)?;
        match database {
            DatabaseRef::Id(id) => Ok(DatabaseId(*id)),
            DatabaseRef::Name(name) => config
                .databases
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name))
                .map(|i| DatabaseId(i as u8))
                .ok_or_else(|| RequestError::UnknownDatabaseName(name.clone())),
        }
    }

    /// Node-level checks before a command reaches the core.
    fn precheck_admin(&self, command: &AdminCommand) -> Result<(), AdminRefusal> {
        if self.faults.disk_stalled()
            && matches!(
                command,
                AdminCommand::Failover | AdminCommand::ForceFailoverAllowDataLoss
            )
        {
            return Err(AdminRefusal::DiskStalled);
        }
        if let AdminCommand::CreateAvailabilityGroup(config)
        | AdminCommand::JoinAvailabilityGroup(config) = command
        {
            match config.cluster_type {
                ClusterType::None => {}
                ClusterType::External => self.manager_settings.check_group(config)?,
                ClusterType::Wsfc => {
                    return Err(AdminRefusal::NeedsClusterManager(
                        "CLUSTER_TYPE = WSFC needs Windows Server Failover Clustering; use CLUSTER_TYPE = EXTERNAL (etcd) or NONE".to_owned(),
                    ))
                }
            }
            if self.replica.config().is_some() {
                // The core refuses it too; checking here keeps the probes below off a live
                // endpoint.
                return Ok(());
            }
            self.precheck_new_group(config)?;
        }
        Ok(())
    }

    /// Before CREATE or JOIN: this replica's endpoint can be bound, and the data directory
    /// holds no log of an earlier group.
    fn precheck_new_group(&self, config: &hadr_types::AgConfig) -> Result<(), AdminRefusal> {
        if let Some(me) = config.replicas.iter().find(|r| r.name == self.name) {
            let address = match self.endpoint_override {
                Some(address) => address.to_string(),
                None => endpoint_address(&me.name, me.endpoint_url.as_deref())
                    .map_err(AdminRefusal::Endpoint)?,
            };
            // Bind now, so that a taken port is refused instead of stopping the node
            // after the command was answered.
            std::net::TcpListener::bind(&address).map_err(|e| AdminRefusal::EndpointBind {
                address: address.clone(),
                message: e.to_string(),
            })?;
        }
        for i in 0..config.databases.len() {
            let path = self.data_dir.wal_path(DatabaseId(i as u8));
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > crate::wal::WAL_HEADER_LEN) {
                return Err(AdminRefusal::LeftoverLog { path });
            }
        }
        Ok(())
    }
}
