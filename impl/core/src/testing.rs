//! A deterministic in-memory cluster for tests (and, later, the conformance harness): several
//! [`Replica`]s, a simulated network of FIFO links, simulated disks with a durable prefix,
//! simulated timers and a scriptable cluster manager. No threads, no sleeps, no randomness.
//!
//! ```text
//!   Cluster::run(): until nothing moves
//!     ├─ every node: perform its outputs in order (PersistState → disk, Send → link,
//!     │   AppendLog/Fsync/Redo/RevertLog → storage queue, SetTimer → timer table …)
//!     ├─ every node: complete its storage queue in order (unless held)
//!     ├─ manager: answer requests (promotion, publication) if automatic
//!     └─ otherwise deliver one message, lowest link first
//!   Cluster::advance(ms): fire due timers in time order, running to quiescence after each;
//!     reconnect reachable pairs whose connection closed (the shell's reconnect loop)
//! ```

use crate::error::{AdminError, IgnoredReason};
use crate::ids::{ConnectionId, Epoch, RequestId, TimerId};
use crate::input::{
    AdminCommand, ClientOp, ClientRequest, ConnectionEvent, ManagerEvent, PromotionKind,
    StorageEvent,
};
use crate::log::LogRecord;
use crate::message::{MessageBody, PeerMessage};
use crate::output::{
    AdminOutcome, ClientReply, InputSource, ManagerRequest, Output, SyncStatePublication,
};
use crate::persist::{LogDamage, PersistentState};
use crate::policy;
use crate::replica::{CoreOptions, Replica};
use crate::store::{DataStore, StoreError};
use hadr_types::{
    AgConfig, ApplicationIntent, AvailabilityMode, ClusterType, DatabaseId, DatabaseObservation,
    FailoverMode, Lsn, Observation, ReplicaConfig, ReplicaId, ReplicaObservation, Role,
    TransactionObservation, TxnId,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The simulated durable storage of one node.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// The last persisted metadata.
    pub state: Option<PersistentState>,
    /// The log file of each database (written, maybe not durable).
    pub logs: Vec<Vec<LogRecord>>,
    /// How many records of each log are durable (survive a crash).
    pub durable: Vec<usize>,
    /// The data files: each database's checkpointed data (durable once a checkpoint is
    /// reported). Shared with the replica, which reads it; a clone of the cluster shares it.
    pub data: Arc<SimData>,
}

/// The simulated data files of a node ([`DataStore`]): each database's checkpointed keys.
#[derive(Debug, Default)]
pub struct SimData {
    files: std::sync::Mutex<BTreeMap<(DatabaseId, String), String>>,
}

impl SimData {
    fn apply(&self, database: DatabaseId, records: &[LogRecord]) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        for record in records {
            for write in &record.writes {
                files.insert((database, write.key.clone()), write.value.clone());
            }
        }
    }
}

impl DataStore for SimData {
    fn get(&self, database: DatabaseId, key: &str) -> Result<Option<String>, StoreError> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        Ok(files.get(&(database, key.to_owned())).cloned())
    }
}

#[derive(Clone, Debug)]
enum StorageOp {
    Append(DatabaseId, Vec<LogRecord>),
    Fsync(DatabaseId, Lsn),
    Redo(DatabaseId, Lsn),
    Revert(DatabaseId, Lsn),
    Checkpoint(DatabaseId, Vec<LogRecord>, Lsn),
}

/// One simulated server: a replica (absent while crashed) and everything around it.
#[derive(Clone)]
pub struct Node {
    /// Its server instance name.
    pub name: String,
    replica: Option<Replica>,
    /// Its disk.
    pub disk: Disk,
    storage: VecDeque<StorageOp>,
    parked_redo: VecDeque<StorageOp>,
    /// Complete no storage operation while set (fsyncs, appends, reverts and redos wait).
    pub hold_storage: bool,
    /// Complete no redo while set (everything else proceeds).
    pub hold_redo: bool,
    /// A stalled log disk (the spec's DiskStall) while set: appends complete (the write
    /// reaches the page cache), every fsync, redo and revert asked for never does. A crash
    /// clears it.
    pub stall_disk: bool,
    timers: BTreeMap<TimerId, u64>,
    connected: BTreeMap<ReplicaId, ConnectionId>,
    /// Every client reply, by request.
    pub replies: BTreeMap<RequestId, ClientReply>,
    /// Every admin reply, by request.
    pub admin_replies: BTreeMap<RequestId, Result<AdminOutcome, AdminError>>,
    /// Every role change, in order.
    pub roles: Vec<(Role, Epoch)>,
    /// Every ignored input, in order.
    pub ignored: Vec<(InputSource, IgnoredReason)>,
    /// Every request to the cluster manager, in order.
    pub manager_requests: Vec<ManagerRequest>,
    /// Every `PrimaryChanged`, in order.
    pub primaries: Vec<(Option<ReplicaId>, Epoch)>,
    /// How many times the replica asked to disconnect its clients.
    pub client_disconnects: usize,
}

impl Node {
    /// The running replica, if any.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    fn execute(&mut self, now: u64, op: StorageOp, trace: Option<&mut Vec<String>>) {
        let event = match op {
            StorageOp::Append(database, records) => {
                let log = &mut self.disk.logs[usize::from(database.0)];
                let first = records.first().map_or(0, |x| x.lsn.0);
                assert_eq!(
                    first,
                    log.len() as u64 + 1,
                    "AppendLog right after the end of the log file"
                );
                log.extend(records);
                StorageEvent::LogWritten {
                    database,
                    up_to: Lsn(log.len() as u64),
                }
            }
            StorageOp::Fsync(database, up_to) => {
                let i = usize::from(database.0);
                let written = self.disk.logs[i].len();
                self.disk.durable[i] = self.disk.durable[i].max((up_to.0 as usize).min(written));
                StorageEvent::LogHardened { database, up_to }
            }
            StorageOp::Redo(database, up_to) => StorageEvent::RedoApplied { database, up_to },
            StorageOp::Revert(database, to) => {
                let i = usize::from(database.0);
                self.disk.logs[i].truncate(to.0 as usize);
                self.disk.durable[i] = self.disk.durable[i].min(to.0 as usize);
                StorageEvent::LogReverted { database, to }
            }
            StorageOp::Checkpoint(database, records, up_to) => {
                self.disk.data.apply(database, &records);
                StorageEvent::Checkpointed { database, up_to }
            }
        };
        if let Some(trace) = trace {
            trace.push(format!("{now} {} <- storage {event:?}", self.name));
        }
        if let Some(replica) = self.replica.as_mut() {
            if let Err(error) = replica.handle_storage(now, event) {
                panic!("storage contract broken on {}: {error}", self.name);
            }
        }
    }
}

/// How the simulated cluster manager behaves.
#[derive(Clone, Debug)]
pub struct SimManager {
    /// Grant every requested promotion at once.
    pub grant_promotions: bool,
    /// Confirm every publication at once.
    pub confirm_publications: bool,
    /// Renew the lease of every running primary whenever time advances.
    pub renew_leases: bool,
    /// Lease length granted, in milliseconds.
    pub lease_ms: u64,
    /// The highest term the manager granted a promotion in.
    pub highest_term: u64,
    /// The primary the manager records: the last replica it promoted.
    pub primary: Option<ReplicaId>,
    /// Nodes cut off from the manager (no renewals, no promotions).
    pub isolated: BTreeSet<ReplicaId>,
    /// The last publication of each primary that the manager stored (confirmed).
    pub published: BTreeMap<ReplicaId, SyncStatePublication>,
    /// Publications received but not stored yet (when `confirm_publications` is off), oldest
    /// first. The manager may store any of them next ([`Cluster::store_publication`]); storing
    /// one discards the older ones, as a real manager must (it stores in version order and
    /// refuses older epochs).
    pub unconfirmed: BTreeMap<ReplicaId, VecDeque<SyncStatePublication>>,
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT of the group as the primary last stored
    /// it (from the primary's persisted configuration), given with every promotion.
    pub required_synchronized: Option<u32>,
    /// Automatic failovers granted so far (R-FAIL-7; the simulation has no period).
    pub automatic_failovers: u32,
    /// The failure threshold the manager applies (no limit by default).
    pub failover_threshold: u32,
}

impl Default for SimManager {
    fn default() -> Self {
        SimManager {
            grant_promotions: true,
            confirm_publications: true,
            renew_leases: true,
            lease_ms: 10_000,
            highest_term: 0,
            primary: None,
            isolated: BTreeSet::new(),
            published: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            required_synchronized: None,
            automatic_failovers: 0,
            failover_threshold: u32::MAX,
        }
    }
}

/// The simulated availability group.
#[derive(Clone)]
pub struct Cluster {
    now_ms: u64,
    options: CoreOptions,
    /// The servers, by replica id.
    pub nodes: Vec<Node>,
    links: BTreeMap<(ReplicaId, ReplicaId), VecDeque<(ConnectionId, PeerMessage)>>,
    next_connection: u64,
    cut: BTreeSet<(ReplicaId, ReplicaId)>,
    drop_next_log: BTreeSet<(ReplicaId, ReplicaId)>,
    lose_next_record: BTreeSet<(ReplicaId, ReplicaId, DatabaseId)>,
    manager_inbox: VecDeque<(ReplicaId, ManagerEvent)>,
    next_request: u64,
    /// The simulated cluster manager (unused with `CLUSTER_TYPE = NONE`).
    pub manager: SimManager,
    /// Reconnect every reachable pair of running nodes whenever time advances, as a shell's
    /// reconnect loop does (default on).
    pub auto_reconnect: bool,
    /// When set, every input given to a replica is recorded in `trace` (for debugging).
    pub tracing: bool,
    /// The recorded inputs, as `time node ← input` lines.
    pub trace: Vec<String>,
}

const STEP_LIMIT: usize = 1_000_000;

/// A valid configuration for tests: replicas `R0`, `R1`, … with the given availability modes
/// (the first is the initial primary), databases `db0`, `db1`, …, SESSION_TIMEOUT 10 s, and
/// failover modes that fit the cluster type (EXTERNAL for synchronous replicas of an EXTERNAL
/// group, AUTOMATIC under WSFC, MANUAL otherwise).
pub fn ag_config(
    cluster_type: ClusterType,
    modes: &[AvailabilityMode],
    databases: usize,
) -> AgConfig {
    let replicas = modes
        .iter()
        .enumerate()
        .map(|(i, mode)| {
            let synchronous = *mode == AvailabilityMode::SynchronousCommit;
            let failover_mode = match cluster_type {
                ClusterType::External if synchronous => FailoverMode::External,
                ClusterType::Wsfc if synchronous => FailoverMode::Automatic,
                _ => FailoverMode::Manual,
            };
            ReplicaConfig {
                name: format!("R{i}"),
                endpoint_url: None,
                availability_mode: *mode,
                failover_mode,
                session_timeout_s: 10,
                backup_priority: 50,
                seeding_mode: Default::default(),
                secondary_role: Default::default(),
                primary_role: Default::default(),
            }
        })
        .collect();
    let config = AgConfig {
        name: "ag1".into(),
        cluster_type,
        required_synchronized_secondaries_to_commit: 0,
        failure_condition_level: 3,
        health_check_timeout_ms: 30_000,
        db_failover: false,
        automated_backup_preference: Default::default(),
        databases: (0..databases).map(|d| format!("db{d}")).collect(),
        replicas,
        lease: Default::default(),
        policy: Default::default(),
    };
    if let Err(error) = config.validate() {
        panic!("test configuration is invalid: {error}");
    }
    config
}

fn ordered(a: ReplicaId, b: ReplicaId) -> (ReplicaId, ReplicaId) {
    (a.min(b), a.max(b))
}

impl Cluster {
    /// Creates the group (CREATE on the first replica, JOIN on the others), connects every pair
    /// and runs until nothing moves.
    pub fn new(config: AgConfig) -> Cluster {
        Cluster::with_options(config, CoreOptions::default())
    }

    /// Like [`Cluster::new`], with tunables for every replica.
    pub fn with_options(config: AgConfig, options: CoreOptions) -> Cluster {
        let databases = config.databases.len();
        let nodes = config
            .replicas
            .iter()
            .map(|r| {
                let data = Arc::new(SimData::default());
                let mut replica = Replica::with_options(r.name.clone(), options);
                replica.set_data_store(data.clone());
                (r, replica, data)
            })
            .map(|(r, replica, data)| Node {
                name: r.name.clone(),
                replica: Some(replica),
                disk: Disk {
                    state: None,
                    logs: vec![Vec::new(); databases],
                    durable: vec![0; databases],
                    data,
                },
                storage: VecDeque::new(),
                parked_redo: VecDeque::new(),
                hold_storage: false,
                stall_disk: false,
                hold_redo: false,
                timers: BTreeMap::new(),
                connected: BTreeMap::new(),
                replies: BTreeMap::new(),
                admin_replies: BTreeMap::new(),
                roles: Vec::new(),
                ignored: Vec::new(),
                manager_requests: Vec::new(),
                primaries: Vec::new(),
                client_disconnects: 0,
            })
            .collect();
        let mut cluster = Cluster {
            now_ms: 0,
            options,
            nodes,
            links: BTreeMap::new(),
            next_connection: 1,
            cut: BTreeSet::new(),
            drop_next_log: BTreeSet::new(),
            lose_next_record: BTreeSet::new(),
            manager_inbox: VecDeque::new(),
            next_request: 1,
            manager: SimManager::default(),
            auto_reconnect: true,
            tracing: false,
            trace: Vec::new(),
        };
        let create = cluster.admin(
            ReplicaId(0),
            AdminCommand::CreateAvailabilityGroup(config.clone()),
        );
        for r in 1..cluster.nodes.len() {
            cluster.admin(
                ReplicaId(r as u8),
                AdminCommand::JoinAvailabilityGroup(config.clone()),
            );
        }
        cluster.run();
        assert_eq!(
            cluster.admin_reply(ReplicaId(0), create),
            Some(&Ok(AdminOutcome::Done))
        );
        cluster.connect_all();
        cluster.run();
        cluster
    }

    /// The simulated time.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The replica of a running node.
    pub fn replica(&self, r: ReplicaId) -> &Replica {
        self.nodes[usize::from(r.0)]
            .replica
            .as_ref()
            .expect("the node is running")
    }

    /// The replica of a running node, to feed it inputs by hand. Outputs drained from it by the
    /// caller are not performed by the cluster.
    pub fn replica_mut(&mut self, r: ReplicaId) -> &mut Replica {
        self.nodes[usize::from(r.0)]
            .replica
            .as_mut()
            .expect("the node is running")
    }

    /// The epoch of a running node.
    pub fn epoch(&self, r: ReplicaId) -> Option<Epoch> {
        self.nodes[usize::from(r.0)]
            .replica
            .as_ref()
            .and_then(|x| x.epoch())
    }

    /// Whether the node is running.
    pub fn is_up(&self, r: ReplicaId) -> bool {
        self.nodes[usize::from(r.0)].replica.is_some()
    }

    /// The node.
    pub fn node(&self, r: ReplicaId) -> &Node {
        &self.nodes[usize::from(r.0)]
    }

    /// The node, to set its holds.
    pub fn node_mut(&mut self, r: ReplicaId) -> &mut Node {
        &mut self.nodes[usize::from(r.0)]
    }

    /// The role of a running node.
    pub fn role(&self, r: ReplicaId) -> Option<Role> {
        self.nodes[usize::from(r.0)]
            .replica
            .as_ref()
            .and_then(|x| x.role())
    }

    fn fresh_request(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    /// Sends an admin command (it runs at the next [`Cluster::run`]).
    pub fn admin(&mut self, r: ReplicaId, command: AdminCommand) -> RequestId {
        let request = self.fresh_request();
        let now = self.now_ms;
        if let Some(replica) = self.nodes[usize::from(r.0)].replica.as_mut() {
            replica.handle_admin(now, request, command);
        }
        request
    }

    /// The reply to an admin command, once there is one.
    pub fn admin_reply(
        &self,
        r: ReplicaId,
        request: RequestId,
    ) -> Option<&Result<AdminOutcome, AdminError>> {
        self.nodes[usize::from(r.0)].admin_replies.get(&request)
    }

    /// Sends a client request with `ApplicationIntent = ReadWrite`.
    pub fn client(&mut self, r: ReplicaId, database: DatabaseId, op: ClientOp) -> RequestId {
        self.client_with_intent(r, database, ApplicationIntent::ReadWrite, op)
    }

    /// Sends a client request.
    pub fn client_with_intent(
        &mut self,
        r: ReplicaId,
        database: DatabaseId,
        intent: ApplicationIntent,
        op: ClientOp,
    ) -> RequestId {
        let request = self.fresh_request();
        let now = self.now_ms;
        if let Some(replica) = self.nodes[usize::from(r.0)].replica.as_mut() {
            replica.handle_client(
                now,
                ClientRequest {
                    request,
                    database,
                    intent,
                    op,
                },
            );
        }
        request
    }

    /// Begins transaction `txn`, writes `writes` and asks to commit; returns the commit's
    /// request id (run the cluster to get its reply).
    pub fn commit(
        &mut self,
        r: ReplicaId,
        database: DatabaseId,
        txn: u32,
        writes: &[(&str, &str)],
    ) -> RequestId {
        let txn = TxnId(txn);
        self.client(r, database, ClientOp::Begin { txn });
        for (key, value) in writes {
            self.client(
                r,
                database,
                ClientOp::Write {
                    txn,
                    key: key.to_string(),
                    value: value.to_string(),
                },
            );
        }
        self.client(r, database, ClientOp::Commit { txn })
    }

    /// Reads a key outside any transaction, runs, and returns the reply.
    pub fn read(
        &mut self,
        r: ReplicaId,
        database: DatabaseId,
        intent: ApplicationIntent,
        key: &str,
    ) -> ClientReply {
        let request = self.client_with_intent(
            r,
            database,
            intent,
            ClientOp::Read {
                txn: None,
                key: key.into(),
            },
        );
        self.run();
        self.reply(r, request)
            .cloned()
            .expect("a read is answered at once")
    }

    /// The reply to a client request, once there is one.
    pub fn reply(&self, r: ReplicaId, request: RequestId) -> Option<&ClientReply> {
        self.nodes[usize::from(r.0)].replies.get(&request)
    }

    /// Opens a connection between two running, reachable nodes (both see `Opened`).
    pub fn connect(&mut self, a: ReplicaId, b: ReplicaId) {
        if a == b || !self.is_up(a) || !self.is_up(b) || self.cut.contains(&ordered(a, b)) {
            return;
        }
        if self.nodes[usize::from(a.0)].connected.contains_key(&b) {
            return;
        }
        let connection = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.nodes[usize::from(a.0)].connected.insert(b, connection);
        self.nodes[usize::from(b.0)].connected.insert(a, connection);
        let now = self.now_ms;
        for (x, y) in [(a, b), (b, a)] {
            if self.tracing {
                self.trace
                    .push(format!("{now} {x} <- opened {y} {connection}"));
            }
            if let Some(replica) = self.nodes[usize::from(x.0)].replica.as_mut() {
                let event = ConnectionEvent::Opened {
                    peer: y,
                    connection,
                };
                replica.handle_connection(now, event);
            }
        }
    }

    /// The connection open between two nodes, if any.
    pub fn connection(&self, a: ReplicaId, b: ReplicaId) -> Option<ConnectionId> {
        self.nodes[usize::from(a.0)].connected.get(&b).copied()
    }

    /// Connects every pair of running, reachable nodes.
    pub fn connect_all(&mut self) {
        for a in 0..self.nodes.len() {
            for b in a + 1..self.nodes.len() {
                self.connect(ReplicaId(a as u8), ReplicaId(b as u8));
            }
        }
    }

    /// Closes the connection; both running ends see `Closed`; messages in flight are lost.
    pub fn disconnect(&mut self, a: ReplicaId, b: ReplicaId) {
        let ab = self.nodes[usize::from(a.0)].connected.remove(&b);
        let ba = self.nodes[usize::from(b.0)].connected.remove(&a);
        self.links.remove(&(a, b));
        self.links.remove(&(b, a));
        let now = self.now_ms;
        for (x, y, connection) in [(a, b, ab), (b, a, ba)] {
            let Some(connection) = connection else {
                continue;
            };
            if self.tracing {
                self.trace
                    .push(format!("{now} {x} <- closed {y} {connection}"));
            }
            if let Some(replica) = self.nodes[usize::from(x.0)].replica.as_mut() {
                let event = ConnectionEvent::Closed {
                    peer: y,
                    connection,
                };
                replica.handle_connection(now, event);
            }
        }
    }

    /// Silently cuts the network between two nodes: nothing gets through and nobody is told
    /// (the session timeout has to notice, R-HEALTH-1). As with TCP, messages already sent are
    /// delivered if the network heals before the connection closes, and lost if it closes.
    pub fn partition(&mut self, a: ReplicaId, b: ReplicaId) {
        self.cut.insert(ordered(a, b));
    }

    /// Repairs the network between two nodes: held messages flow again, and the nodes
    /// reconnect if their connection was closed meanwhile.
    pub fn heal(&mut self, a: ReplicaId, b: ReplicaId) {
        self.cut.remove(&ordered(a, b));
        self.connect(a, b);
    }

    /// Loses the next `Log` message from `from` to `to` (to provoke a gap, R-SYNC-1).
    pub fn drop_next_log(&mut self, from: ReplicaId, to: ReplicaId) {
        self.drop_next_log.insert((from, to));
    }

    /// Arms the spec's LoseLogBlock on the primary `from`: the next log record it sends to
    /// `to` for `database` is lost in transit (the first record of the next such block; the
    /// rest of the block arrives, with a gap). The fault ends when `from` crashes or stops
    /// being primary, as the node's `/debug/drop-log` does.
    pub fn lose_next_record(&mut self, from: ReplicaId, to: ReplicaId, database: DatabaseId) {
        self.lose_next_record.insert((from, to, database));
    }

    /// Messages in flight from `from` to `to`.
    pub fn in_flight(&self, from: ReplicaId, to: ReplicaId) -> usize {
        self.links.get(&(from, to)).map_or(0, |q| q.len())
    }

    /// Crashes a node: what was not durable is lost, its connections close (its peers see
    /// `Closed`, as after a TCP reset).
    pub fn crash(&mut self, r: ReplicaId) {
        self.crash_keeping_unsynced(r, 0);
    }

    /// Crashes a node whose operating system had written back up to `written_back` records of
    /// each log that were appended but not synced yet: they survive (a write the replica
    /// never reported hardened), the one after them is torn and lost with the rest.
    pub fn crash_keeping_unsynced(&mut self, r: ReplicaId, written_back: usize) {
        if self.tracing {
            self.trace.push(format!("{} {r} CRASH", self.now_ms));
        }
        let peers: Vec<ReplicaId> = self.nodes[usize::from(r.0)]
            .connected
            .keys()
            .copied()
            .collect();
        for peer in peers {
            self.disconnect(r, peer);
        }
        self.lose_next_record.retain(|(from, _, _)| *from != r);
        let node = &mut self.nodes[usize::from(r.0)];
        node.replica = None;
        node.hold_storage = false;
        node.hold_redo = false;
        node.stall_disk = false;
        node.storage.clear();
        node.parked_redo.clear();
        node.timers.clear();
        for (log, durable) in node.disk.logs.iter_mut().zip(node.disk.durable.iter_mut()) {
            log.truncate(durable.saturating_add(written_back));
            *durable = log.len();
        }
    }

    /// A storage fault on the disk of a crashed node: record `lsn` of `database` reads back
    /// failing its checksum, with the records after it intact (bit rot). Applied as the node's
    /// recovery finds it at its next restart: the damage is recorded in the stored state and
    /// the log is cut to the intact prefix (the damaged copy is kept aside, outside the
    /// replica's view). Returns the damage, or `None` when the log has no record `lsn`.
    pub fn corrupt_record(
        &mut self,
        r: ReplicaId,
        database: DatabaseId,
        lsn: Lsn,
    ) -> Option<LogDamage> {
        let node = &mut self.nodes[usize::from(r.0)];
        assert!(node.replica.is_none(), "corrupt the disk of a crashed node");
        let checkpointed = node
            .disk
            .state
            .as_ref()
            .and_then(|s| s.databases.get(usize::from(database.0)))
            .map_or(Lsn(0), |d| d.checkpointed);
        let log = node.disk.logs.get_mut(usize::from(database.0))?;
        // Records a checkpoint covers are read from the data file, not the log.
        if lsn <= checkpointed || lsn.0 > log.len() as u64 {
            return None;
        }
        let found = LogDamage {
            kept: Lsn(lsn.0 - 1),
            lost_through: Lsn(log.len() as u64),
        };
        log.truncate(found.kept.0 as usize);
        node.disk.durable[usize::from(database.0)] = log.len();
        let stored = node.disk.state.as_mut()?;
        let stored = stored.databases.get_mut(usize::from(database.0))?;
        stored.record_damage(found);
        let recorded = stored.damaged;
        if self.tracing {
            self.trace
                .push(format!("{} {r} CORRUPT {database} {lsn}", self.now_ms));
        }
        recorded
    }

    /// Restarts a crashed node from its disk ([`Replica::recover`]) and reconnects it.
    pub fn restart(&mut self, r: ReplicaId) {
        if self.tracing {
            self.trace.push(format!("{} {r} RESTART", self.now_ms));
        }
        let node = &mut self.nodes[usize::from(r.0)];
        assert!(node.replica.is_none(), "restart a crashed node");
        let state = node
            .disk
            .state
            .clone()
            .expect("the node persisted its state before crashing");
        // The log after the stored checkpoint (the log file keeps older records).
        let logs = node
            .disk
            .logs
            .iter()
            .zip(&state.databases)
            .map(|(log, stored)| {
                log.iter()
                    .skip(stored.checkpointed.0 as usize)
                    .cloned()
                    .collect()
            })
            .collect();
        let mut replica =
            Replica::recover(self.now_ms, node.name.clone(), state, logs, self.options)
                .expect("the disk holds what the replica persisted");
        replica.set_data_store(node.disk.data.clone());
        node.replica = Some(replica);
        // A shell under a cluster manager tells the recovered replica whether it reaches the
        // manager, and who the manager says is primary (R-ROLE-2).
        let has_manager = node
            .replica
            .as_ref()
            .and_then(|x| x.config())
            .is_some_and(|c| c.cluster_type.has_manager());
        if has_manager && !self.manager.isolated.contains(&r) {
            let now = self.now_ms;
            let primary = self.manager.primary;
            if let Some(replica) = self.nodes[usize::from(r.0)].replica.as_mut() {
                replica.handle_manager(now, ManagerEvent::Reachable { primary });
            }
        }
        for peer in 0..self.nodes.len() {
            self.connect(r, ReplicaId(peer as u8));
        }
        self.run();
    }

    /// A promotion of `kind` as the manager grants it, without asking its policy (for tests of
    /// the core's answer to a grant): a lease from now, and the policy's next term.
    pub fn promotion(&mut self, kind: PromotionKind) -> ManagerEvent {
        let term = policy::next_term(self.manager.highest_term, self.newest_publication());
        self.granted(kind, term)
    }

    fn granted(&mut self, kind: PromotionKind, term: u64) -> ManagerEvent {
        self.manager.highest_term = term;
        ManagerEvent::Promote {
            kind,
            lease_until_ms: self.now_ms + self.manager.lease_ms,
            term_at_least: term,
            required_synchronized: self.manager.required_synchronized,
        }
    }

    /// An automatic failover round (R-FAIL-2, R-QUORUM-2) while nobody holds the lease: every
    /// running replica of `askers` asks what [`policy::asks_for_automatic_failover`] makes it
    /// ask (`stalled`: its log disk is stalled), in order, once a second of the manager's clock
    /// for [`policy::RESTORE_AFTER_MS`], until the policy grants one. The replicas' clock does
    /// not move meanwhile: the round stands for the seconds of asking of the real manager.
    /// Returns the replica promoted.
    pub fn automatic_failover(
        &mut self,
        askers: &[ReplicaId],
        stalled: impl Fn(ReplicaId) -> bool,
    ) -> Option<ReplicaId> {
        let asks: Vec<(ReplicaId, PromotionKind)> = askers
            .iter()
            .filter(|&&r| self.is_up(r))
            .filter_map(|&r| {
                let replica = self.replica(r);
                let mine = replica.config()?.replicas.get(usize::from(r.0))?;
                // A replica holding a damaged copy is not a candidate (as a failed one).
                let failed = !replica.damaged_databases().is_empty();
                let kind =
                    policy::asks_for_automatic_failover(mine, replica.role(), failed, stalled(r))?;
                Some((r, kind))
            })
            .collect();
        // Each replica's manager keeps its own restore wait (as each node's etcd manager does).
        let mut waits = vec![policy::RestoreWait::default(); asks.len()];
        for second in 0..=policy::RESTORE_AFTER_MS / 1_000 {
            for (&(r, kind), restore) in asks.iter().zip(&mut waits) {
                let decision = policy::decide(
                    &self.manager_snapshot(),
                    policy::Request { replica: r, kind },
                    restore,
                    self.now_ms + second * 1_000,
                );
                if let policy::Decision::Grant(grant) = decision {
                    self.deliver_grant(r, grant);
                    return Some(r);
                }
            }
        }
        None
    }

    fn deliver_grant(&mut self, r: ReplicaId, grant: policy::Grant) {
        if grant.counts_against_threshold {
            self.manager.automatic_failovers += 1;
        }
        let event = self.granted(grant.kind, grant.term);
        self.manager_event(r, event);
    }

    /// `r` asks the manager for a promotion of `kind`: the manager's policy
    /// ([`policy::decide`]) decides on what it stored, and a grant is delivered to `r` (runs
    /// at the next [`Cluster::run`]). A single ask: a restore, which waits for failover-ready
    /// replicas to ask first, needs [`Cluster::automatic_failover`]. Returns the decision.
    pub fn ask_manager(&mut self, r: ReplicaId, kind: PromotionKind) -> policy::Decision {
        let decision = policy::decide(
            &self.manager_snapshot(),
            policy::Request { replica: r, kind },
            &mut policy::RestoreWait::default(),
            self.now_ms,
        );
        if let policy::Decision::Grant(grant) = decision {
            self.deliver_grant(r, grant);
        }
        decision
    }

    /// The manager stores the last publication of `r` it received and confirms it.
    pub fn confirm_publication(&mut self, r: ReplicaId) {
        if let Some((epoch, version)) = self.pending_publications(r).last().copied() {
            self.store_publication(r, epoch, version);
        }
    }

    /// The `(epoch, version)` of `r`'s publications the manager received and has not stored,
    /// oldest first.
    pub fn pending_publications(&self, r: ReplicaId) -> Vec<(Epoch, u64)> {
        self.manager
            .unconfirmed
            .get(&r)
            .map(|queue| queue.iter().map(|p| (p.epoch, p.version)).collect())
            .unwrap_or_default()
    }

    /// The manager stores `r`'s pending publication `version` of `epoch` (not necessarily the
    /// newest: an intermediate one may be stored while newer ones are still on their way) and
    /// confirms it. Older pending publications are discarded: a manager stores publications in
    /// version order, and refuses any older than one it stored, or of an older epoch than the
    /// newest stored. Returns whether it stored it.
    pub fn store_publication(&mut self, r: ReplicaId, epoch: Epoch, version: u64) -> bool {
        let Some(queue) = self.manager.unconfirmed.get_mut(&r) else {
            return false;
        };
        let Some(position) = queue
            .iter()
            .position(|p| (p.epoch, p.version) == (epoch, version))
        else {
            return false;
        };
        let older: Vec<SyncStatePublication> = queue.drain(..=position).collect();
        let Some(publication) = older.into_iter().next_back() else {
            return false;
        };
        let newest_stored = self.manager.published.values().map(|p| p.epoch).max();
        let stale_epoch = newest_stored.is_some_and(|newest| epoch < newest);
        let stale_version = self
            .manager
            .published
            .get(&r)
            .is_some_and(|p| (p.epoch, p.version) >= (epoch, version));
        if stale_epoch || stale_version {
            return false;
        }
        self.manager.published.insert(r, publication);
        self.manager_inbox
            .push_back((r, ManagerEvent::SyncStatePublished { epoch, version }));
        true
    }

    /// The failover-ready replicas according to the newest publication the manager stored
    /// (the one of the highest epoch): the candidates of an automatic failover (R-FAIL-2).
    pub fn failover_ready(&self) -> Vec<ReplicaId> {
        self.newest_publication()
            .map(|p| p.failover_ready.clone())
            .unwrap_or_default()
    }

    /// The newest publication the manager stored, of any primary.
    fn newest_publication(&self) -> Option<&SyncStatePublication> {
        self.manager
            .published
            .values()
            .max_by_key(|p| (p.epoch, p.version))
    }

    /// Whether the newest stored publication, of the last primary the manager promoted (not
    /// of an older term: that primary may have committed past it), records `r` SYNCHRONIZED
    /// in every database: a forced failover onto it loses nothing acknowledged (R-FAIL-4).
    pub fn recorded_synchronized(&self, r: ReplicaId) -> bool {
        policy::recorded_synchronized(&self.manager_snapshot(), r)
    }

    /// What the simulated manager's store says, for its policy.
    fn manager_snapshot(&self) -> policy::Snapshot<'_> {
        policy::Snapshot {
            // The simulated manager keeps no lease: it is asked when nobody holds one (a core
            // asks only then; `reference-sim` and the soak check it before a round).
            lease_holder: None,
            handover_to: None,
            granted_term: self.manager.highest_term,
            publication: self.newest_publication(),
            recent_automatic_failovers: self.manager.automatic_failovers,
            failover_threshold: self.manager.failover_threshold,
        }
    }
    /// Delivers a manager event to a node (runs at the next [`Cluster::run`]).
    pub fn manager_event(&mut self, r: ReplicaId, event: ManagerEvent) {
        if matches!(event, ManagerEvent::Promote { .. }) {
            self.manager.primary = Some(r);
        }
        self.manager_inbox.push_back((r, event));
    }

    /// Runs until nothing moves: outputs performed, storage completed (unless held), manager
    /// answered, every deliverable message delivered.
    pub fn run(&mut self) {
        for _ in 0..STEP_LIMIT {
            let mut moved = false;
            for r in 0..self.nodes.len() {
                moved |= self.perform_outputs(ReplicaId(r as u8));
                moved |= self.complete_storage(ReplicaId(r as u8));
            }
            moved |= self.answer_manager();
            if !moved {
                moved = self.deliver_one();
            }
            self.validate_all();
            if !moved {
                return;
            }
        }
        panic!("the simulated cluster did not quiesce within {STEP_LIMIT} steps");
    }

    /// Advances time by `ms`, firing every timer that falls due, in time order.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now_ms + ms;
        loop {
            self.run();
            let next = self
                .nodes
                .iter()
                .filter(|n| n.replica.is_some())
                .flat_map(|n| n.timers.values().copied())
                .min();
            match next {
                Some(at) if at <= target => {
                    self.now_ms = self.now_ms.max(at);
                    self.renew_leases();
                    if self.auto_reconnect {
                        self.connect_all();
                    }
                    for r in 0..self.nodes.len() {
                        let due: Vec<TimerId> = self.nodes[r]
                            .timers
                            .iter()
                            .filter(|(_, at)| **at <= self.now_ms)
                            .map(|(t, _)| *t)
                            .collect();
                        for timer in due {
                            self.nodes[r].timers.remove(&timer);
                            let now = self.now_ms;
                            if self.tracing {
                                self.trace.push(format!(
                                    "{now} {} <- timer {timer:?}",
                                    self.nodes[r].name
                                ));
                            }
                            if let Some(replica) = self.nodes[r].replica.as_mut() {
                                replica.handle_timer(now, timer);
                            }
                        }
                    }
                }
                _ => break,
            }
        }
        self.now_ms = target;
        self.renew_leases();
        if self.auto_reconnect {
            self.connect_all();
        }
        self.run();
    }

    fn renew_leases(&mut self) {
        if !self.manager.renew_leases {
            return;
        }
        for r in 0..self.nodes.len() {
            let id = ReplicaId(r as u8);
            let has_manager = self.nodes[r]
                .replica
                .as_ref()
                .and_then(|x| x.config())
                .is_some_and(|c| c.cluster_type.has_manager());
            // The manager renews the lease of the primary it granted it to, no other (a
            // deposed primary that still believes it is one runs out of lease, R-QUORUM-3).
            if has_manager
                && self.role(id) == Some(Role::Primary)
                && self.manager.primary == Some(id)
                && !self.manager.isolated.contains(&id)
            {
                let lease_until_ms = self.now_ms + self.manager.lease_ms;
                if let Some(replica) = self.nodes[r].replica.as_mut() {
                    replica
                        .handle_manager(self.now_ms, ManagerEvent::LeaseRenewed { lease_until_ms });
                }
            }
        }
    }

    fn perform_outputs(&mut self, r: ReplicaId) -> bool {
        let mut moved = false;
        loop {
            let node = &mut self.nodes[usize::from(r.0)];
            let Some(output) = node.replica.as_mut().and_then(|x| x.poll_output()) else {
                return moved;
            };
            moved = true;
            match output {
                Output::PersistState(state) => {
                    // The primary stores the group's configuration with the manager, as the
                    // node does in etcd (unless it is cut off from the manager).
                    if state.role == Role::Primary && !self.manager.isolated.contains(&r) {
                        self.manager.required_synchronized =
                            Some(state.config.required_synchronized_secondaries_to_commit);
                    }
                    node.disk.state = Some(state);
                }
                Output::Send {
                    to,
                    connection,
                    message,
                } => {
                    // Only on the connection it belongs to; a closed one drops it.
                    let open = node.connected.get(&to) == Some(&connection);
                    let is_log = matches!(message.body, MessageBody::Log(_));
                    if !open {
                        continue;
                    }
                    if is_log && self.drop_next_log.remove(&(r, to)) {
                        continue;
                    }
                    let mut message = message;
                    if let MessageBody::Log(block) = &mut message.body {
                        if self.lose_next_record.remove(&(r, to, block.database)) {
                            if block.records.len() <= 1 {
                                continue;
                            }
                            block.records.remove(0);
                            block.first_lsn = Lsn(block.first_lsn.0 + 1);
                        }
                    }
                    self.links
                        .entry((r, to))
                        .or_default()
                        .push_back((connection, message));
                }
                Output::CloseConnection {
                    peer, connection, ..
                } => {
                    if node.connected.get(&peer) == Some(&connection) {
                        self.disconnect(r, peer);
                    }
                }
                Output::AppendLog { database, records } => {
                    node.storage.push_back(StorageOp::Append(database, records))
                }
                Output::Fsync { database, up_to } => {
                    node.storage.push_back(StorageOp::Fsync(database, up_to))
                }
                Output::Redo { database, up_to } => {
                    node.storage.push_back(StorageOp::Redo(database, up_to))
                }
                Output::RevertLog { database, to } => {
                    node.storage.push_back(StorageOp::Revert(database, to))
                }
                Output::Checkpoint {
                    database,
                    records,
                    up_to,
                } => node
                    .storage
                    .push_back(StorageOp::Checkpoint(database, records, up_to)),
                // The simulated log file keeps every record: recovery skips what the stored
                // checkpoint covers.
                Output::TruncateLog { .. } => {}
                Output::ClientReply { request, reply } => {
                    node.replies.insert(request, reply);
                }
                Output::AdminReply { request, result } => {
                    node.admin_replies.insert(request, result);
                }
                Output::DisconnectClients => node.client_disconnects += 1,
                Output::PrimaryChanged { primary, epoch } => node.primaries.push((primary, epoch)),
                Output::SetTimer { timer, at_ms } => {
                    node.timers.insert(timer, at_ms);
                }
                Output::CancelTimer { timer } => {
                    node.timers.remove(&timer);
                }
                Output::RoleChanged { role, epoch } => {
                    if role != Role::Primary {
                        self.lose_next_record.retain(|(from, _, _)| *from != r);
                    }
                    node.roles.push((role, epoch))
                }
                Output::Manager(request) => {
                    node.manager_requests.push(request.clone());
                    self.manager_request(r, request);
                }
                Output::Ignored { source, reason } => node.ignored.push((source, reason)),
            }
        }
    }

    fn manager_request(&mut self, r: ReplicaId, request: ManagerRequest) {
        if self.manager.isolated.contains(&r) {
            return;
        }
        match request {
            ManagerRequest::RequestPromotion { kind } => {
                if self.manager.grant_promotions {
                    self.ask_manager(r, kind);
                }
            }
            ManagerRequest::ReleaseLease | ManagerRequest::HandOver { .. } => {}
            ManagerRequest::PublishSyncState(publication) => {
                self.manager
                    .unconfirmed
                    .entry(r)
                    .or_default()
                    .push_back(publication);
                if self.manager.confirm_publications {
                    self.confirm_publication(r);
                }
            }
        }
    }

    fn answer_manager(&mut self) -> bool {
        let mut moved = false;
        while let Some((r, event)) = self.manager_inbox.pop_front() {
            moved = true;
            let now = self.now_ms;
            if let Some(replica) = self.nodes[usize::from(r.0)].replica.as_mut() {
                replica.handle_manager(now, event);
            }
        }
        moved
    }

    fn complete_storage(&mut self, r: ReplicaId) -> bool {
        let now = self.now_ms;
        let node = &mut self.nodes[usize::from(r.0)];
        let mut trace = self.tracing.then_some(&mut self.trace);
        let mut moved = false;
        if !node.hold_redo {
            while let Some(op) = node.parked_redo.pop_back() {
                node.storage.push_front(op);
            }
        }
        while !node.hold_storage {
            let Some(op) = node.storage.pop_front() else {
                break;
            };
            if node.stall_disk && !matches!(op, StorageOp::Append(..)) {
                continue; // never completes
            }
            if node.hold_redo && matches!(op, StorageOp::Redo(..)) {
                node.parked_redo.push_back(op);
                continue;
            }
            moved = true;
            if matches!(op, StorageOp::Revert(..)) {
                // Completions follow emission order: the redos issued before the revert first.
                while let Some(redo) = node.parked_redo.pop_front() {
                    node.execute(now, redo, trace.as_deref_mut());
                }
            }
            node.execute(now, op, trace.as_deref_mut());
        }
        moved
    }

    fn deliver_one(&mut self) -> bool {
        let cut = &self.cut;
        let key = self
            .links
            .iter()
            .find(|((from, to), queue)| !queue.is_empty() && !cut.contains(&ordered(*from, *to)))
            .map(|(key, _)| *key);
        let Some((from, to)) = key else {
            return false;
        };
        let Some((connection, message)) =
            self.links.get_mut(&(from, to)).and_then(|q| q.pop_front())
        else {
            return false;
        };
        let now = self.now_ms;
        if self.tracing {
            self.trace.push(format!(
                "{now} {to} <- {from}: {:?} {:?}",
                message.epoch, message.body
            ));
        }
        if let Some(replica) = self.nodes[usize::from(to.0)].replica.as_mut() {
            replica.handle_message(now, from, connection, message);
        }
        true
    }

    fn validate_all(&self) {
        for node in &self.nodes {
            if let Some(replica) = &node.replica {
                if let Err(violation) = replica.validate() {
                    panic!("{}: {violation}", node.name);
                }
            }
        }
    }

    /// The whole group as the observation format shows it; transactions merged from every
    /// replica (a final outcome wins over `Pending`).
    pub fn observation(&self) -> Observation {
        let mut transactions: BTreeMap<(DatabaseId, TxnId), TransactionObservation> =
            BTreeMap::new();
        let replicas = self
            .nodes
            .iter()
            .enumerate()
            .map(|(r, node)| match &node.replica {
                Some(replica) => {
                    for t in replica.transactions() {
                        let key = (t.database, t.txn);
                        let keep = transactions.get(&key).is_some_and(|old| {
                            t.outcome == hadr_types::CommitOutcome::Pending
                                && old.outcome != t.outcome
                        });
                        if !keep {
                            transactions.insert(key, t);
                        }
                    }
                    replica
                        .observe()
                        .expect("a running replica belongs to the group")
                }
                None => ReplicaObservation {
                    replica: ReplicaId(r as u8),
                    up: false,
                    role: None,
                    databases: node
                        .disk
                        .durable
                        .iter()
                        .enumerate()
                        .map(|(d, durable)| DatabaseObservation {
                            database_state: match node
                                .disk
                                .state
                                .as_ref()
                                .and_then(|s| s.databases.get(d))
                                .and_then(|x| x.damaged)
                            {
                                Some(_) => hadr_types::DatabaseState::Suspect,
                                None => hadr_types::DatabaseState::Online,
                            },
                            database: DatabaseId(d as u8),
                            synchronization_state: None,
                            suspended: node
                                .disk
                                .state
                                .as_ref()
                                .and_then(|s| s.databases.get(d))
                                .and_then(|x| x.suspended)
                                // The primary's suspension is the primary's to tell: a replica
                                // that is down does not know it still holds.
                                .filter(|r| *r != hadr_types::SuspendReason::Primary),
                            end_of_log_lsn: Lsn(*durable as u64),
                            last_hardened_lsn: Lsn(*durable as u64),
                            last_redone_lsn: Lsn(*durable as u64),
                            is_failover_ready: false,
                        })
                        .collect(),
                },
            })
            .collect();
        Observation {
            replicas,
            transactions: transactions.into_values().collect(),
        }
    }
}
