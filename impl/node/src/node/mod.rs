//! The driver: one tokio task owns the [`Replica`] and is the only one to touch it. Everything
//! else (peer connections, client and admin servers, WAL threads, timers) talks to it through
//! one channel of events; after each batch of inputs the driver performs the core's outputs in
//! order. The core decides; the driver only performs (and numbers requests, resolves database
//! names, and refuses what cannot reach the core at all).
//!
//! ```text
//!  peers.rs, client.rs, admin.rs,   ┌ run.rs ───────────────┐
//!  cluster.rs, flusher threads ────▶│ Inbox: arrival order, │
//!  (Event)                          │ newest renewal first  │
//!  timers, redo batches ───────────▶│ input.rs: Event → the │
//!                                   │ core's handle_*       │
//!                                   └──────────┬────────────┘
//!                                              ▼ poll_output
//!  ┌ perform.rs ────────────┐       ┌ flush.rs ─────────────┐
//!  │ send, persist, replies,│◀──────│ after_input: outputs  │
//!  │ timers, manager …      │       │ in order, then group  │
//!  │ storage outputs ───────┼──────▶│ commit; reverts held  │
//!  └────────────────────────┘       │ behind a background   │
//!                                   │ fsync; redo batches   │
//!                                   └───────────────────────┘
//! ```
//!
//! Files by concern: `run.rs` starts the replica and runs the loop; `input.rs` turns events
//! into the core's inputs; `perform.rs` performs outputs; `flush.rs` is storage, group commit
//! and flushing; `error.rs` the errors; `cluster.rs` the cluster manager (etcd); `peers.rs`,
//! `client.rs`, `admin.rs` the three network faces; `fault.rs` fault injection.
//!
//! Every task the driver spawns runs in the replica's span (see [`run()`]).

mod admin;
pub mod client;
mod cluster;
mod data;
mod error;
pub mod event_log;
mod fault;
mod flush;
mod input;
mod peers;
mod perform;
mod run;
pub mod storage;

pub use client::{ClientReplyJson, ClientRequestJson, DatabaseRef};
pub use error::{AdminAnswer, AdminRefusal, ClientAnswer, NodeError, RequestError};
pub use run::run;
pub use storage::{offline_observation, OfflineError};

use crate::wal::{FlushJob, Wal};
use flush::BackgroundFlushes;
use hadr_core::{
    AdminCommand, ClientOp, ConnectionId, ManagerEvent, PeerMessage, Replica, ReplicaStatus,
    RequestId, TimerId,
};
use hadr_types::{ApplicationIntent, DatabaseId, ReplicaId, ReplicaObservation};
use peers::PeerNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;
use storage::DataDir;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

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
    /// A checkpoint thread finished a checkpoint.
    Checkpointed {
        database: DatabaseId,
        up_to: hadr_types::Lsn,
        result: Result<(), crate::pages::PageError>,
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
    // Only the etcd build constructs it outside tests; the core's seam is there in every build.
    #[cfg_attr(not(any(feature = "etcd", test)), allow(dead_code))]
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
    #[cfg_attr(not(any(feature = "etcd", test)), allow(dead_code))]
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
    /// The replica's span: every task the servers spawn runs in it.
    pub(crate) span: tracing::Span,
}

impl Driver {
    pub(crate) fn send(&self, event: Event) -> bool {
        self.events.send(event).is_ok()
    }
}

struct PeerConnection {
    peer: ReplicaId,
    writer: mpsc::Sender<Vec<u8>>,
    tasks: [AbortHandle; 2],
}

/// Everything the driver task owns.
struct State {
    name: String,
    /// The replica's span: every task the driver spawns runs in it.
    span: tracing::Span,
    data_dir: DataDir,
    endpoint_override: Option<std::net::SocketAddr>,
    replica: Replica,
    /// The driver's clock origin: the core's `now_ms` counts from here.
    start: Instant,
    events: mpsc::UnboundedSender<Event>,
    timers: BTreeMap<TimerId, u64>,
    wals: HashMap<DatabaseId, Wal>,
    /// Databases with an fsync requested and not yet performed.
    sync_pending: BTreeSet<DatabaseId>,
    /// Background fsyncs in flight, and the storage outputs waiting for them.
    flushes: BackgroundFlushes,
    /// The flusher thread of each database, started on first use.
    flushers: HashMap<DatabaseId, std::sync::mpsc::Sender<FlushJob>>,
    /// The data files (shared with the core, which reads them).
    data_files: Arc<data::DataFiles>,
    /// How big a buffer pool each data file gets.
    data_options: crate::pages::DataFileOptions,
    /// The checkpoint thread of each database, started on first use.
    checkpointers: HashMap<DatabaseId, std::sync::mpsc::Sender<data::CheckpointJob>>,
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

impl State {
    /// The core's clock: milliseconds since the driver started (monotonic).
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// Bound of a peer connection's send queue (frames); a peer that falls this far behind is
/// disconnected (the core then stops counting on it, R-COMMIT-4).
const SEND_QUEUE_FRAMES: usize = 16_384;
