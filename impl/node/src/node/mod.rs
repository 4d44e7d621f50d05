//! The driver: one tokio task owns the [`Replica`] and is the only one to touch it. Everything
//! else (peer connections, client and admin servers, WAL threads, timers) talks to it through
//! one channel of events; after each input the driver performs the core's outputs in order.

mod admin;
pub mod client;
mod cluster;
pub mod event_log;
mod fault;
mod peers;
pub mod storage;

use admin::admin_router;
pub use client::{ClientReplyJson, ClientRequestJson, DatabaseRef};
pub use storage::{offline_observation, OfflineError};

use crate::config::{endpoint_address, EndpointError, NodeConfig};
use crate::wal::{FlushJob, Wal};
use crate::wire::{encode_frame, Frame};
use hadr_core::{
    AdminCommand, AdminError, AdminOutcome, ClientOp, ClientReply, ClientRequest, ConnectionEvent,
    ConnectionId, CoreOptions, ManagerEvent, Output, PeerMessage, Replica, ReplicaStatus,
    RequestId, TimerId,
};
use hadr_types::{ApplicationIntent, ClusterType, DatabaseId, ReplicaId, ReplicaObservation};
use peers::PeerNet;
use std::collections::BTreeSet;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use storage::{DataDir, StorageError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// Why a node stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed (state file or WAL): the replica cannot keep its promises and stops.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored state and logs do not make a consistent replica.
    #[error("cannot recover replica {name} from {data_dir}: {source}")]
    Recovery {
        /// The instance name.
        name: String,
        /// The data directory.
        data_dir: String,
        /// What the core refused.
        source: hadr_core::RecoveryError,
    },
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {address}: {source}")]
    Bind {
        /// Which API.
        what: &'static str,
        /// The address.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// This replica's ENDPOINT_URL is unusable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The core asked for storage of a database whose WAL is not open: a bug of the node.
    #[error("no write-ahead log is open for {0} (a bug in hadr-node)")]
    NoWal(DatabaseId),
    /// The core refused a storage completion: a bug of the node (ordering contract).
    #[error("storage completion refused by the replica core (a bug in hadr-node): {0}")]
    StorageContract(hadr_core::StorageContractError),
    /// `HADR_MUTANT` names a planted bug this build cannot plant.
    #[error("HADR_MUTANT={name}: {reason}")]
    Mutant {
        /// The value of `HADR_MUTANT`.
        name: String,
        /// Why it cannot be planted.
        reason: String,
    },
    /// The event log could not be opened.
    #[error(transparent)]
    EventLog(#[from] event_log::EventLogError),
}

/// The core's options: the defaults, plus the planted bug `HADR_MUTANT` names (a build with
/// the `mutants` feature, for `hadr certify --sut reference --mutant NAME`). A build without
/// the feature refuses to start with `HADR_MUTANT` set rather than run without the bug.
fn core_options() -> Result<CoreOptions, NodeError> {
    #[allow(unused_mut)]
    let mut options = CoreOptions::default();
    let Ok(name) = std::env::var("HADR_MUTANT") else {
        return Ok(options);
    };
    if name.is_empty() {
        return Ok(options);
    }
    #[cfg(feature = "mutants")]
    {
        let mutant = name
            .parse()
            .map_err(|e: hadr_core::mutants::UnknownMutant| NodeError::Mutant {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        tracing::warn!(%name, "a planted bug is active (HADR_MUTANT): never use this replica for data");
        options.mutant = Some(mutant);
        Ok(options)
    }
    #[cfg(not(feature = "mutants"))]
    Err(NodeError::Mutant {
        name,
        reason: "this hadr is built without planted bugs: build it with `--features mutants`"
            .to_owned(),
    })
}

// The node runs the core with its default limits, and every `Log` message the core can ask
// for must fit one frame: at most `max_block_records` records, each a record header plus at most
// `max_transaction_bytes` of writes as the core counts them, a count that covers how the codec
// encodes a write (key, value and their lengths).
const _: () = {
    let options = CoreOptions::DEFAULT;
    assert!(crate::codec::MIN_WRITE_LEN <= hadr_core::Write::OVERHEAD_BYTES);
    let largest_record = crate::codec::MIN_LOG_RECORD_LEN + options.max_transaction_bytes;
    assert!(
        crate::codec::LOG_MESSAGE_HEADER_LEN + options.max_block_records * largest_record
            <= crate::wire::MAX_FRAME_BODY as usize
    );
};

/// A node-level reason a client request was not handed to the replica.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The replica has joined no availability group yet.
    #[error("this replica is not in an availability group yet: CREATE or JOIN one through the admin API")]
    NotInAvailabilityGroup,
    /// No database of the group has that name.
    #[error("no availability database named '{0}' in this group")]
    UnknownDatabaseName(String),
    /// The node is shutting down (for a commit: its outcome is unknown).
    #[error("the replica is shutting down")]
    ShuttingDown,
}

/// What a client request gets back from the driver.
pub type ClientAnswer = Result<ClientReply, RequestError>;

/// A node-level reason an admin command was not handed to the replica.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminRefusal {
    /// The core refused the command.
    #[error("{0}")]
    Core(AdminError),
    /// The configuration needs a cluster manager this node cannot provide.
    #[error("this CLUSTER_TYPE needs a cluster manager: {0}")]
    NeedsClusterManager(String),
    /// The cluster manager (etcd) could not be reached.
    #[error("cannot attach to the cluster manager: {0}")]
    ClusterManager(String),
    /// etcd holds another configuration for this group (CREATE), or not this one (JOIN).
    #[error("{0}")]
    ConfigurationConflict(String),
    /// The group's lease settings cannot be used with etcd.
    #[error("{0}")]
    ClusterManagerConfig(String),
    /// This replica's endpoint cannot be used.
    #[error("{0}")]
    Endpoint(EndpointError),
    /// The node is shutting down.
    #[error("the replica is shutting down")]
    ShuttingDown,
    /// This replica's endpoint address cannot be bound.
    #[error("cannot listen on the replica endpoint {address}: {message}; free the port or change ENDPOINT_URL")]
    EndpointBind {
        /// The address.
        address: String,
        /// The system's error.
        message: String,
    },
    /// This replica's log disk is stalled (fault injection, `/debug/disk-stall`): it cannot
    /// take the primary role.
    #[error("this replica's log disk is stalled (fault injection): it cannot become primary; fail over to another replica, or restart this one")]
    DiskStalled,
    /// The data directory holds the log of an earlier group this replica no longer knows.
    #[error("{} holds log records of an earlier availability group; move the data directory away (or restore its state.json) before CREATE or JOIN", path.display())]
    LeftoverLog {
        /// The WAL file.
        path: std::path::PathBuf,
    },
}

/// What an admin command gets back.
pub type AdminAnswer = Result<AdminOutcome, AdminRefusal>;

/// Everything the driver reacts to.
pub(crate) enum Event {
    PeerOpened {
        peer: ReplicaId,
        connection: ConnectionId,
        writer: mpsc::Sender<Vec<u8>>,
        /// The connection's reader and writer tasks.
        tasks: [AbortHandle; 2],
    },
    PeerMessage {
        peer: ReplicaId,
        connection: ConnectionId,
        message: PeerMessage,
    },
    PeerClosed {
        peer: ReplicaId,
        connection: ConnectionId,
    },
    Client {
        database: DatabaseRef,
        intent: ApplicationIntent,
        op: ClientOp,
        reply: oneshot::Sender<ClientAnswer>,
    },
    Admin {
        command: AdminCommand,
        reply: oneshot::Sender<AdminAnswer>,
    },
    /// A flusher thread finished an fsync.
    Flushed {
        database: DatabaseId,
        up_to: hadr_types::Lsn,
        result: std::io::Result<()>,
    },
    Status {
        reply: oneshot::Sender<Option<(ReplicaStatus, ReplicaObservation)>>,
    },
    /// Where a read-write connection to this replica should go instead (R-READ-3's
    /// READ_WRITE_ROUTING_URL), if anywhere.
    ReadWriteRedirect {
        reply: oneshot::Sender<Option<String>>,
    },
    /// The availability group's configuration as this replica knows it.
    Config {
        reply: oneshot::Sender<Option<hadr_types::AgConfig>>,
    },
    /// The cluster manager's answer or unsolicited news (CLUSTER_TYPE = EXTERNAL).
    // Only the etcd build constructs it; the core's seam is there in every build.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Manager(ManagerEvent),
    /// Who holds the primary's lease in etcd, at every change (and every second while nobody).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Leader(Option<cluster::Leader>),
    /// Fault injection (`POST /debug/stall`, only with `HADR_FAULT_INJECTION=1`): the driver
    /// blocks its thread this long, as a hung replica would.
    Stall { ms: u64 },
    /// Fault injection (the other `POST /debug/*` routes, only with `HADR_FAULT_INJECTION=1`).
    Fault {
        fault: fault::Fault,
        reply: oneshot::Sender<fault::FaultAnswer>,
    },
    /// The cluster manager's health check asks whether the driver is responsive.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Ping,
    /// The cluster manager is attached (at start-up of a recovered EXTERNAL replica).
    ManagerAttached(cluster::ClusterManager),
    /// The cluster manager a CREATE or JOIN needed is attached: the command goes on.
    AdminAttached {
        manager: cluster::ClusterManager,
        command: AdminCommand,
        reply: oneshot::Sender<AdminAnswer>,
    },
}

/// A handle on the driver, for the servers.
#[derive(Clone)]
pub(crate) struct Driver {
    events: mpsc::UnboundedSender<Event>,
    /// The server instance name (told to clients with their ApplicationIntent).
    pub(crate) name: Arc<str>,
    /// Bumped at every `DisconnectClients`: client connections close.
    pub(crate) client_generation: watch::Receiver<u64>,
}

impl Driver {
    pub(crate) fn send(&self, event: Event) -> bool {
        self.events.send(event).is_ok()
    }
}

/// A background fsync in flight.
struct Flushing {
    /// Storage outputs of the database that must wait for it (a revert, and what follows it).
    deferred: Vec<Output>,
}

struct PeerConnection {
    peer: ReplicaId,
    writer: mpsc::Sender<Vec<u8>>,
    tasks: [AbortHandle; 2],
}

struct State {
    name: String,
    data_dir: DataDir,
    endpoint_override: Option<std::net::SocketAddr>,
    replica: Replica,
    start: Instant,
    events: mpsc::UnboundedSender<Event>,
    timers: BTreeMap<TimerId, u64>,
    wals: HashMap<DatabaseId, Wal>,
    /// Databases with an fsync requested and not yet performed.
    sync_pending: BTreeSet<DatabaseId>,
    /// Background fsyncs in flight, per database (see `after_input`).
    flushing: HashMap<DatabaseId, Flushing>,
    /// The flusher thread of each database, started on first use.
    flushers: HashMap<DatabaseId, std::sync::mpsc::Sender<FlushJob>>,
    /// Appends performed since the last fsync decision: more than one means load.
    turn_appends: usize,
    /// Redo asked for and not yet reported, per database (the highest LSN).
    redo_pending: BTreeMap<DatabaseId, hadr_types::Lsn>,
    /// When the pending redo is reported.
    redo_due: Option<tokio::time::Instant>,
    /// A `Send` was performed since the last fsync.
    sent: bool,
    connections: HashMap<ConnectionId, PeerConnection>,
    clients: HashMap<RequestId, oneshot::Sender<ClientAnswer>>,
    admins: HashMap<RequestId, oneshot::Sender<AdminAnswer>>,
    next_request: u64,
    net: Option<Arc<PeerNet>>,
    client_generation: watch::Sender<u64>,
    /// The cluster manager (CLUSTER_TYPE = EXTERNAL), once attached.
    manager: Option<cluster::ClusterManager>,
    manager_settings: cluster::ManagerSettings,
    /// The configuration this replica last stored in etcd as the primary.
    stored_config: Option<hadr_types::AgConfig>,
    /// Injected faults in force (`HADR_FAULT_INJECTION=1`).
    faults: fault::Faults,
    /// Where every change of this replica's views is logged, if anywhere.
    event_log: Option<event_log::EventLog>,
}

/// Bound of a peer connection's send queue (frames); a peer that falls this far behind is
/// disconnected (the core then stops counting on it, R-COMMIT-4).
const SEND_QUEUE_FRAMES: usize = 16_384;

/// Redo runs this long after the hardening it follows, in batches: it is asynchronous
/// (R-SYNC-2), and each report makes a secondary send a `Progress`, so batching saves the
/// primary a wake-up per commit.
const REDO_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

/// Runs one replica until `shutdown` resolves or storage fails.
pub async fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let data_dir = DataDir::open(&config.data_dir)?;
    let event_log = match event_log::path_of(&config) {
        Some(path) => Some(event_log::EventLog::open(&path, &config.name)?),
        None => None,
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let (generation_tx, generation_rx) = watch::channel(0u64);
    let start = Instant::now();
    let mut wals = HashMap::new();
    let replica = match data_dir.load_state()? {
        None => Replica::with_options(config.name.clone(), core_options()?),
        Some(stored) => {
            let mut logs = Vec::new();
            for i in 0..stored.config.databases.len() {
                let db = DatabaseId(i as u8);
                let (wal, records) = storage::open_wal(&data_dir, db)?;
                logs.push(records);
                wals.insert(db, wal);
            }
            let records: usize = logs.iter().map(Vec::len).sum();
            let replica = Replica::recover(0, config.name.clone(), stored, logs, core_options()?)
                .map_err(|source| NodeError::Recovery {
                name: config.name.clone(),
                data_dir: config.data_dir.display().to_string(),
                source,
            })?;
            tracing::info!(replica = %config.name, records, role = ?replica.role(), "recovered from disk");
            replica
        }
    };
    let driver = Driver {
        events: events_tx.clone(),
        name: config.name.as_str().into(),
        client_generation: generation_rx,
    };
    let client_listener = tokio::net::TcpListener::bind(config.client_listen)
        .await
        .map_err(|source| NodeError::Bind {
            what: "the client API",
            address: config.client_listen.to_string(),
            source,
        })?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|source| NodeError::Bind {
            what: "the admin API",
            address: config.admin_listen.to_string(),
            source,
        })?;
    tokio::spawn(client::serve(client_listener, driver.clone()));
    let router = admin_router(driver.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(admin_listener, router).await {
            tracing::error!(%error, "admin API stopped");
        }
    });
    tracing::info!(
        replica = %config.name,
        client = %config.client_listen,
        admin = %config.admin_listen,
        "replica started"
    );
    // With fault injection, the cluster manager reaches etcd through a relay that can be cut.
    let (faults, relayed) = fault::Faults::new(&config.etcd_endpoints);
    let manager_settings = cluster::ManagerSettings {
        etcd_endpoints: config.etcd_endpoints.clone(),
        connect_to: relayed.unwrap_or_else(|| config.etcd_endpoints.clone()),
    };
    let mut state = State {
        name: config.name.clone(),
        data_dir,
        endpoint_override: config.endpoint_listen,
        replica,
        start,
        events: events_tx,
        timers: BTreeMap::new(),
        wals,
        sync_pending: BTreeSet::new(),
        flushing: HashMap::new(),
        flushers: HashMap::new(),
        turn_appends: 0,
        redo_pending: BTreeMap::new(),
        redo_due: None,
        sent: false,
        connections: HashMap::new(),
        clients: HashMap::new(),
        admins: HashMap::new(),
        next_request: 0,
        net: None,
        client_generation: generation_tx,
        manager: None,
        stored_config: None,
        manager_settings,
        faults,
        event_log,
    };
    state.attach_manager_on_recovery();
    state.after_input(&mut events_rx).await?;
    tokio::pin!(shutdown);
    loop {
        let next_timer = state.timers.values().min().copied();
        let sleep = async {
            match next_timer {
                Some(at) => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(
                        state.start + std::time::Duration::from_millis(at),
                    ))
                    .await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!(replica = %state.name, "shutting down");
                return Ok(());
            }
            event = events_rx.recv() => {
                let Some(event) = event else { return Ok(()) };
                // Take whatever else is already queued before performing the outputs' I/O.
                state.handle_queued(Some(event), &mut events_rx)?;
                state.after_input(&mut events_rx).await?;
            }
            () = sleep => {
                // Inputs that queued up while this task was busy come first: a lease renewal
                // that arrived before the lease deadline must count before the deadline fires.
                state.handle_queued(None, &mut events_rx)?;
                state.fire_timers();
                state.after_input(&mut events_rx).await?;
            }
            () = async {
                match state.redo_due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            } => {
                state.redo()?;
                state.after_input(&mut events_rx).await?;
            }
        }
    }
}

impl State {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn handle(&mut self, event: Event) -> Result<(), NodeError> {
        let now = self.now();
        match event {
            Event::PeerOpened {
                peer,
                connection,
                writer,
                tasks,
            } => {
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
                self.replica
                    .handle_connection(now, ConnectionEvent::Opened { peer, connection });
            }
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
            } => {
                let database = match self.resolve(&database) {
                    Ok(database) => database,
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        return Ok(());
                    }
                };
                let request = self.request_id();
                self.clients.insert(request, reply);
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
            Event::Admin { command, reply } => {
                if let Err(refusal) = self.precheck_admin(&command) {
                    let _ = reply.send(Err(refusal));
                    return Ok(());
                }
                if let Some((config, me)) = self.manager_needed(&command) {
                    // Connect first (off this task); the command goes on in `AdminAttached`.
                    let (settings, start, events) = (
                        self.manager_settings.clone(),
                        self.start,
                        self.events.clone(),
                    );
                    let creating = matches!(command, AdminCommand::CreateAvailabilityGroup(_));
                    tokio::spawn(async move {
                        let attached = cluster::ClusterManager::connect(
                            &settings,
                            &config,
                            me,
                            start,
                            events.clone(),
                            Some(creating),
                        )
                        .await;
                        match attached {
                            Ok(manager) => {
                                let _ = events.send(Event::AdminAttached {
                                    manager,
                                    command,
                                    reply,
                                });
                            }
                            Err(refusal) => {
                                let _ = reply.send(Err(refusal));
                            }
                        }
                    });
                    return Ok(());
                }
                let request = self.request_id();
                self.admins.insert(request, reply);
                self.replica.handle_admin(now, request, command);
            }
            Event::AdminAttached {
                manager,
                command,
                reply,
            } => {
                tracing::info!(replica = %self.name, ag = %manager.ag, "cluster manager attached (etcd)");
                self.manager = Some(manager);
                return self.handle(Event::Admin { command, reply });
            }
            Event::ManagerAttached(manager) => {
                tracing::info!(replica = %self.name, ag = %manager.ag, "cluster manager attached (etcd)");
                self.manager = Some(manager);
            }
            Event::Leader(leader) => self.consider_automatic_failover(leader),
            Event::Stall { ms } => {
                tracing::warn!(ms, "fault injection: the driver stalls");
                std::thread::sleep(std::time::Duration::from_millis(ms));
                tracing::warn!(ms, "fault injection: the driver resumes");
            }
            Event::Fault { fault, reply } => {
                let _ = reply.send(self.inject(fault));
            }
            Event::Ping => {
                if let Some(manager) = &self.manager {
                    manager.pong(now);
                }
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
            Event::Manager(event) => self.replica.handle_manager(now, event),
            Event::Flushed {
                database,
                up_to,
                result,
            } => {
                if let Err(error) = result {
                    let source = self.wal(database)?.flush_failed(error);
                    return Err(StorageError::Wal { database, source }.into());
                }
                let deferred = self
                    .flushing
                    .remove(&database)
                    .map(|f| f.deferred)
                    .unwrap_or_default();
                self.wal(database)?.mark_durable(up_to);
                self.report(hadr_core::StorageEvent::LogHardened { database, up_to })?;
                for output in deferred {
                    self.perform(output)?;
                }
            }
        }
        Ok(())
    }

    /// Handles `first` and everything queued, in arrival order except for one thing: the
    /// newest lease renewal waiting in the queue goes first. After this task was held up (a
    /// long fsync, a hung thread), the renewals the manager's thread made meanwhile are news
    /// from the past; the core must learn of them before any other input makes it check its
    /// lease deadline against the present (R-QUORUM-3 stays safe: each renewal's deadline
    /// counts from when it was sent).
    ///
    /// Every path that takes queued events goes through here (the main loop, the timers, the
    /// group-commit gathering): a stall can end inside any of them. Returns how many events
    /// were handled.
    fn handle_queued(
        &mut self,
        first: Option<Event>,
        events: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<usize, NodeError> {
        let mut queue: std::collections::VecDeque<Event> = first.into_iter().collect();
        let mut handled = 0;
        loop {
            let mut arrived = false;
            while let Ok(event) = events.try_recv() {
                queue.push_back(event);
                arrived = true;
            }
            if arrived {
                let newest = queue
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| match e {
                        Event::Manager(ManagerEvent::LeaseRenewed { lease_until_ms }) => {
                            Some((*lease_until_ms, i))
                        }
                        _ => None,
                    })
                    .max();
                if let Some((_, i)) = newest {
                    if let Some(renewal) = queue.remove(i) {
                        queue.push_front(renewal);
                    }
                }
            }
            let Some(event) = queue.pop_front() else {
                return Ok(handled);
            };
            self.handle(event)?;
            handled += 1;
        }
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
        }
        Ok(())
    }

    /// The group and this replica's id, when `command` needs a cluster manager that is not
    /// attached yet (or is attached for another group or replica).
    fn manager_needed(&self, command: &AdminCommand) -> Option<(hadr_types::AgConfig, ReplicaId)> {
        let (AdminCommand::CreateAvailabilityGroup(config)
        | AdminCommand::JoinAvailabilityGroup(config)) = command
        else {
            return None;
        };
        if config.cluster_type != ClusterType::External || self.replica.config().is_some() {
            return None;
        }
        let me = config
            .replicas
            .iter()
            .position(|r| r.name.eq_ignore_ascii_case(&self.name))
            .map(|i| ReplicaId(i as u8))?;
        match &self.manager {
            Some(m) if m.ag == config.name && m.replica == me => None,
            _ => Some((config.clone(), me)),
        }
    }

    /// The primary keeps the group's configuration in etcd current: admin commands (an ALTER
    /// of k, a failover) are the only way it changes.
    fn store_config_if_changed(&mut self) {
        let (Some(manager), Some(config)) = (&self.manager, self.replica.config()) else {
            return;
        };
        if self.replica.role() == Some(hadr_types::Role::Primary)
            && self.stored_config.as_ref() != Some(config)
        {
            manager.store_config(config);
            self.stored_config = Some(config.clone());
        }
    }

    /// A replica recovered into an EXTERNAL group attaches to etcd in the background, trying
    /// again every second: until then it cannot be promoted, and the core's RequestPromotion
    /// is denied.
    fn attach_manager_on_recovery(&self) {
        let (Some(config), Some(me)) = (self.replica.config().cloned(), self.replica.id()) else {
            return;
        };
        if config.cluster_type != ClusterType::External {
            return;
        }
        if let Err(refusal) = self.manager_settings.check() {
            tracing::error!(replica = %self.name, %refusal, "the recovered group is CLUSTER_TYPE = EXTERNAL");
            return;
        }
        let (settings, start, events) = (
            self.manager_settings.clone(),
            self.start,
            self.events.clone(),
        );
        tokio::spawn(async move {
            loop {
                match cluster::ClusterManager::connect(
                    &settings,
                    &config,
                    me,
                    start,
                    events.clone(),
                    None,
                )
                .await
                {
                    Ok(manager) => {
                        let _ = events.send(Event::ManagerAttached(manager));
                        return;
                    }
                    Err(message) => {
                        tracing::warn!(%message, "cannot attach to etcd yet; trying again in 1 s");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// R-FAIL-2/7: nobody holds the primary's lease. The failure condition of every level
    /// (1: server down or lease expired) has fired for the old primary, so a SYNCHRONOUS_COMMIT
    /// replica with an automatic failover mode asks etcd to promote it; etcd grants it only if
    /// the newest publication lists it as failover-ready (SYNCHRONIZED in every database,
    /// R-QUORUM-4), the failure threshold allows it, and no other replica won first.
    fn consider_automatic_failover(&mut self, leader: Option<cluster::Leader>) {
        let Some(manager) = &self.manager else { return };
        if let Some(leader) = leader {
            tracing::debug!(replica = %self.name, primary = leader.replica.0, term = leader.term, "lease holder");
            return;
        }
        let (Some(config), Some(me)) = (self.replica.config(), self.replica.id()) else {
            return;
        };
        let Some(mine) = config.replicas.get(usize::from(me.0)) else {
            return;
        };
        if let Some(level) = self.faults.health_failed() {
            tracing::debug!(replica = %self.name, level, "no automatic failover to a replica failed by an injected health fault");
            return;
        }
        if self.faults.disk_stalled() {
            tracing::debug!(replica = %self.name, "no automatic failover to a replica whose log disk is stalled");
            return;
        }
        // A RESOLVING replica asks too, whatever its modes: if it is the primary etcd last
        // recorded and no failover-ready replica takes over, etcd restores it (R-QUORUM-2).
        let eligible = (mine.availability_mode == hadr_types::AvailabilityMode::SynchronousCommit
            && matches!(
                mine.failover_mode,
                hadr_types::FailoverMode::Automatic | hadr_types::FailoverMode::External
            )
            && self.replica.role() != Some(hadr_types::Role::Primary))
            || self.replica.role() == Some(hadr_types::Role::Resolving);
        if eligible {
            tracing::info!(replica = %self.name, "no primary holds the lease: asking etcd for an automatic failover");
            manager.try_automatic_failover();
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        let due: Vec<TimerId> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for timer in due {
            self.timers.remove(&timer);
            self.replica.handle_timer(now, timer);
        }
    }

    /// Drops a connection and tells the core it closed.
    fn close_connection(&mut self, peer: ReplicaId, connection: ConnectionId) {
        self.drop_connection(connection);
        let now = self.now();
        self.replica
            .handle_connection(now, ConnectionEvent::Closed { peer, connection });
    }

    fn drop_connection(&mut self, connection: ConnectionId) {
        if let Some(c) = self.connections.remove(&connection) {
            for task in &c.tasks {
                task.abort();
            }
            if let Some(net) = &self.net {
                net.disconnected(c.peer, connection);
            }
        }
    }

    /// Performs every output of the core, in order, then the fsyncs they asked for.
    ///
    /// Storage is performed on this task: appends as they come, and every fsync requested by
    /// a batch of outputs once, after the batch (group commit: commits that arrive while it
    /// runs share the next one). Before blocking in fsync the task yields once, so that the
    /// connection writers put the log just shipped on the wire: secondaries harden it while
    /// the primary does (R-COMMIT-2 waits for both).
    async fn after_input(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Event>,
    ) -> Result<(), NodeError> {
        let mut gathered = false;
        loop {
            while let Some(output) = self.replica.poll_output() {
                self.perform(output)?;
            }
            if self
                .sync_pending
                .iter()
                .all(|db| self.flushing.contains_key(db))
            {
                // Nothing to sync, or only databases whose fsync in flight will be followed
                // by another when it completes.
                break;
            }
            if std::mem::take(&mut self.sent) {
                tokio::task::yield_now().await;
            }
            // Group commit: what arrived meanwhile (commits, acknowledgements) joins this
            // fsync, once, so that a steady load cannot put the fsync off.
            if !gathered {
                gathered = true;
                if self.handle_queued(None, events)? > 0 {
                    continue;
                }
            }
            // Under load (several appends since the last fsync) the fsync runs on a flusher
            // thread while this task goes on receiving, appending and shipping, so that the
            // disk is never idle between two flushes; otherwise it runs here, which spares a
            // lone commit two thread hand-offs.
            let background = std::mem::take(&mut self.turn_appends) > 1;
            let pending: Vec<DatabaseId> = self
                .sync_pending
                .iter()
                .copied()
                .filter(|db| !self.flushing.contains_key(db))
                .collect();
            for database in pending {
                if background {
                    self.start_flush(database)?;
                } else {
                    self.sync(database)?;
                }
            }
        }
        if self.net.is_none() {
            if let Some(config) = self.replica.config().cloned() {
                self.start_network(&config).await?;
            }
        }
        if let Some(log) = &mut self.event_log {
            if !log.record(self.replica.observe()) {
                self.event_log = None;
            }
        }
        Ok(())
    }

    fn perform(&mut self, output: Output) -> Result<(), NodeError> {
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
        // While a background fsync of a database runs, a revert of it (and every storage
        // output after the revert) waits for it: completions are reported in emission order.
        if let Output::AppendLog { database, .. }
        | Output::Fsync { database, .. }
        | Output::RevertLog { database, .. } = &output
        {
            if let Some(flushing) = self.flushing.get_mut(database) {
                if !flushing.deferred.is_empty() || matches!(output, Output::RevertLog { .. }) {
                    flushing.deferred.push(output);
                    return Ok(());
                }
            }
        }
        match output {
            Output::PersistState(state) => {
                // Durable before anything after it (the ordering contract). Opening the WALs
                // of a new configuration belongs here too: appends may follow.
                for i in 0..state.config.databases.len() {
                    let db = DatabaseId(i as u8);
                    if !self.wals.contains_key(&db) {
                        let (wal, _) = storage::open_wal(&self.data_dir, db)?;
                        self.wals.insert(db, wal);
                    }
                }
                self.data_dir.store_state(&state)?;
            }
            Output::Send {
                to,
                connection,
                message,
            } => {
                let mut message = message;
                if let Some(c) = self.connections.get(&connection) {
                    if let hadr_core::MessageBody::Log(block) = &mut message.body {
                        if self.faults.take_drop_log(to, block.database) {
                            tracing::warn!(peer = %to, %connection, database = %block.database, lsn = %block.first_lsn, "fault injection: a log record lost instead of sent");
                            if block.records.len() <= 1 {
                                return Ok(());
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
                    if encoded.is_err() || c.writer.try_send(frame).is_err() {
                        // A Send that cannot be performed closes its connection, now: nothing
                        // after it may go out on it (ordering contract, rule 6).
                        tracing::warn!(peer = %to, %connection, "send queue full or closed: closing the connection");
                        self.close_connection(to, connection);
                    }
                }
            }
            Output::CloseConnection {
                peer,
                connection,
                reason,
            } => {
                tracing::info!(%peer, %connection, ?reason, "closing peer connection");
                self.drop_connection(connection);
            }
            Output::AppendLog { database, records } => {
                self.turn_appends += 1;
                self.wal(database)?
                    .append(&records)
                    .map_err(|source| StorageError::Wal { database, source })?;
            }
            Output::Fsync { database, .. } => {
                self.sync_pending.insert(database);
            }
            Output::Redo { database, up_to } => {
                // The data is the core's; redo is reported in batches (REDO_DELAY), never on a
                // commit's path (R-SYNC-2), always after the fsync that covered it. A batch may
                // be reported after the completions of later fsyncs: the one relaxation of the
                // emission order, which the core accepts (redo only moves forward and is
                // clamped to what is hardened; a revert flushes the pending redo first).
                let pending = self.redo_pending.entry(database).or_insert(up_to);
                *pending = (*pending).max(up_to);
                self.redo_due
                    .get_or_insert_with(|| tokio::time::Instant::now() + REDO_DELAY);
            }
            Output::RevertLog { database, to } => {
                // Completions in emission order: an fsync and a redo asked for before the
                // revert first.
                self.sync(database)?;
                if let Some(up_to) = self.redo_pending.remove(&database) {
                    self.report(hadr_core::StorageEvent::RedoApplied { database, up_to })?;
                }
                self.wal(database)?
                    .truncate_after(to)
                    .map_err(|source| StorageError::Wal { database, source })?;
                self.report(hadr_core::StorageEvent::LogReverted { database, to })?;
            }
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
            Output::RoleChanged { role, epoch } => {
                tracing::info!(replica = %self.name, %role, %epoch, "role changed");
                if role != hadr_types::Role::Primary {
                    // An injected health fault is one event: it failed the primary over, and
                    // the replica is healthy again (as the spec's HealthFault).
                    self.faults.clear_health_fault();
                    self.faults.clear_drop_log();
                }
            }
            Output::Manager(request) => {
                let sent = self
                    .manager
                    .as_ref()
                    .is_some_and(|m| m.send(request.clone()));
                if !sent {
                    tracing::warn!(?request, "no cluster manager attached (yet)");
                    if matches!(request, hadr_core::ManagerRequest::RequestPromotion { .. }) {
                        // Without a manager there is no quorum to promote with (R-QUORUM-2).
                        let _ = self
                            .events
                            .send(Event::Manager(ManagerEvent::PromotionDenied));
                    }
                }
            }
            Output::Ignored { source, reason } => {
                tracing::debug!(?source, %reason, "input ignored by the replica");
            }
        }
        Ok(())
    }

    fn wal(&mut self, database: DatabaseId) -> Result<&mut Wal, NodeError> {
        self.wals
            .get_mut(&database)
            .ok_or(NodeError::NoWal(database))
    }

    /// Hands a pending fsync of `database` to its flusher thread.
    fn start_flush(&mut self, database: DatabaseId) -> Result<(), NodeError> {
        self.sync_pending.remove(&database);
        let wal = self.wal(database)?;
        let Some(job) = wal
            .prepare_flush()
            .map_err(|source| StorageError::Wal { database, source })?
        else {
            let durable = wal.durable_lsn();
            return self.report(hadr_core::StorageEvent::LogHardened {
                database,
                up_to: durable,
            });
        };
        if !self.flushers.contains_key(&database) {
            let handle = self
                .wal(database)?
                .flush_handle()
                .map_err(|source| StorageError::Wal { database, source })?;
            let events = self.events.clone();
            let (tx, rx) = std::sync::mpsc::channel::<FlushJob>();
            std::thread::Builder::new()
                .name(format!("flush-{}", database.0))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let result = job.run(&handle);
                        let failed = result.is_err();
                        let _ = events.send(Event::Flushed {
                            database,
                            up_to: job.up_to(),
                            result,
                        });
                        if failed {
                            return;
                        }
                    }
                })
                .map_err(|source| StorageError::Thread { source })?;
            self.flushers.insert(database, tx);
        }
        let sent = self
            .flushers
            .get(&database)
            .is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            return Err(StorageError::FlusherGone { database }.into());
        }
        self.flushing.insert(
            database,
            Flushing {
                deferred: Vec::new(),
            },
        );
        Ok(())
    }

    /// Performs a pending fsync of `database`, if any, and reports it.
    fn sync(&mut self, database: DatabaseId) -> Result<(), NodeError> {
        if self.sync_pending.remove(&database) {
            let up_to = self
                .wal(database)?
                .sync()
                .map_err(|source| StorageError::Wal { database, source })?;
            self.report(hadr_core::StorageEvent::LogHardened { database, up_to })?;
        }
        Ok(())
    }

    /// Reports every pending redo.
    fn redo(&mut self) -> Result<(), NodeError> {
        self.redo_due = None;
        for (database, up_to) in std::mem::take(&mut self.redo_pending) {
            self.report(hadr_core::StorageEvent::RedoApplied { database, up_to })?;
        }
        Ok(())
    }

    fn report(&mut self, event: hadr_core::StorageEvent) -> Result<(), NodeError> {
        let now = self.now();
        self.replica
            .handle_storage(now, event)
            .map_err(NodeError::StorageContract)
    }

    async fn start_network(&mut self, config: &hadr_types::AgConfig) -> Result<(), NodeError> {
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
        );
        tracing::info!(replica = %self.name, endpoint = %address, "endpoint listening");
        self.net = Some(net);
        Ok(())
    }
}
