//! [`EtcdManager`]: the etcd operations behind each [`ManagerRequest`].

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, WatchOptions,
};
use hadr_core::policy::{self, Denial};
use hadr_core::{Epoch, ManagerEvent, ManagerRequest, PromotionKind, SyncStatePublication};
use hadr_types::{AgConfig, ReplicaId};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// The caller's monotonic clock: milliseconds since `origin`, the same numbers the core is fed
/// (the node's `State::start`).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock counting from `origin`.
    pub fn new(origin: Instant) -> Self {
        Clock { origin }
    }

    /// Milliseconds since the origin.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// How to reach etcd and how long leases last.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// etcd client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Keys live under `<prefix>/<ag>/`.
    pub prefix: String,
    /// The availability group's name.
    pub ag: String,
    /// This replica.
    pub replica: ReplicaId,
    /// The lease's TTL in etcd (whole seconds: etcd counts leases in seconds).
    pub lease_ttl: Duration,
    /// Subtracted from every lease end told to the core (see the crate doc's inequality).
    pub safety_margin: Duration,
    /// How often the primary renews its lease.
    pub renew_interval: Duration,
    /// Longest wait for one etcd request (a renewal waits at most until the lease ends).
    pub request_timeout: Duration,
    /// R-FAIL-7's failure threshold: at most this many automatic failovers per
    /// `failover_period` (counted in etcd, so every replica sees the same count).
    pub failover_threshold: u32,
    /// The period of the failure threshold.
    pub failover_period: Duration,
}

impl ManagerConfig {
    /// Defaults: prefix `/hadr`, TTL 5 s, margin 500 ms, renewal every 1 s, requests time out
    /// after 1 s, at most 2 automatic failovers per 6 hours (R-FAIL-7's n − 1 for 3 replicas).
    pub fn new(endpoints: Vec<String>, ag: impl Into<String>, replica: ReplicaId) -> Self {
        ManagerConfig {
            endpoints,
            prefix: "/hadr".to_owned(),
            ag: ag.into(),
            replica,
            lease_ttl: Duration::from_secs(5),
            safety_margin: Duration::from_millis(500),
            renew_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            failover_threshold: 2,
            failover_period: Duration::from_secs(6 * 3600),
        }
    }

    /// Checks the inequalities the lease needs.
    pub fn validate(&self) -> Result<(), ManagerError> {
        let invalid = |why: String| Err(ManagerError::Config(why));
        if self.endpoints.is_empty() {
            return invalid("no etcd endpoint".to_owned());
        }
        if self.ag.is_empty() || self.ag.contains('/') {
            return invalid(format!(
                "availability group name {:?} must be non-empty and contain no '/'",
                self.ag
            ));
        }
        if self.lease_ttl.subsec_nanos() != 0 || self.lease_ttl.as_secs() == 0 {
            return invalid(format!(
                "lease TTL {:?} must be a whole number of seconds, at least 1 (etcd counts leases in seconds)",
                self.lease_ttl
            ));
        }
        if self.safety_margin >= self.lease_ttl {
            return invalid(format!(
                "safety margin {:?} must be below the lease TTL {:?}: the primary would never hold a lease",
                self.safety_margin, self.lease_ttl
            ));
        }
        if self.renew_interval.is_zero()
            || self.renew_interval >= self.lease_ttl - self.safety_margin
        {
            return invalid(format!(
                "renewal interval {:?} must be positive and leave time to renew before the lease ends (TTL {:?} − margin {:?})",
                self.renew_interval, self.lease_ttl, self.safety_margin
            ));
        }
        if self.request_timeout.is_zero() {
            return invalid("request timeout must be positive".to_owned());
        }
        Ok(())
    }

    fn ttl_ms(&self) -> u64 {
        self.lease_ttl.as_secs() * 1000
    }

    fn margin_ms(&self) -> u64 {
        u64::try_from(self.safety_margin.as_millis()).unwrap_or(u64::MAX)
    }
}

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The configuration breaks a lease inequality or names nothing to connect to.
    #[error("invalid cluster-manager configuration: {0}")]
    Config(String),
    /// etcd answered with an error, or could not be reached.
    #[error("etcd {what}: {source}")]
    Etcd {
        /// The operation.
        what: &'static str,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// etcd did not answer in time (no quorum, a stopped or unreachable member).
    #[error("etcd did not answer {what} within {timeout_ms} ms")]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The time allowed.
        timeout_ms: u64,
    },
    /// etcd holds another configuration for this group.
    #[error("{0}")]
    ConfigConflict(String),
    /// A key holds something this crate did not write.
    #[error("malformed value at etcd key {key}: {detail}")]
    Malformed {
        /// The key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// The value of the `leader` key: who is primary, under which term and lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// The primary.
    pub replica: ReplicaId,
    /// The term the manager granted it (the core's epoch term is at least this).
    pub term: u64,
    /// The etcd lease the key is bound to.
    pub lease: i64,
}

/// The value of the `handover` key: a primary granted a planned failover to `to` (R-FAIL-3)
/// and released its lease; until `to` is promoted, or the key's lease (one TTL) runs out, no
/// automatic failover may take the lease (R-FAIL-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// The primary that granted the failover.
    pub from: ReplicaId,
    /// The target it granted it to.
    pub to: ReplicaId,
}

/// One observation of the `leader` key by [`EtcdManager::watch_leader`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderObservation {
    /// The primary holding the lease, or `None`: no lease, another replica may be promoted.
    pub leader: Option<LeaderInfo>,
    /// The etcd revision the observation is from.
    pub revision: i64,
}

/// An unsolicited event of the keepalive task, tagged with the lease it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseEvent {
    /// The lease generation: compare with [`EtcdManager::lease_generation`] and drop events of
    /// an older one ([`EtcdManager::spawn`] does).
    pub generation: u64,
    /// `LeaseRenewed` or `LeaseLost`.
    pub event: ManagerEvent,
}

enum Command {
    Core(ManagerRequest),
    /// An automatic failover or a restore the node asks for by itself
    /// ([`hadr_core::policy::asks_for_automatic_failover`]): a denial is not answered.
    TryAutomaticFailover(PromotionKind),
    StoreConfig(Box<AgConfig>),
    StopRenewing,
}

/// The node's side of a [spawned](EtcdManager::spawn) manager.
#[derive(Clone)]
pub struct ManagerHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl ManagerHandle {
    /// Queues a request of the core (`Output::Manager`); `false` if the task ended.
    pub fn send(&self, request: ManagerRequest) -> bool {
        self.commands.send(Command::Core(request)).is_ok()
    }

    /// Queues an automatic-failover attempt of this replica (R-FAIL-2), which the core did not
    /// ask for: a grant reaches the sink as `Promote { kind: Automatic, .. }`, a denial is
    /// dropped (the core has no request to answer). Call it when [`EtcdManager::watch_leader`]
    /// shows no leader and the node's failure policy (R-FAIL-7) agrees; the manager itself
    /// refuses replicas that are not failover-ready in the newest publication.
    pub fn try_automatic_failover(&self) -> bool {
        self.ask_promotion(PromotionKind::Automatic)
    }

    /// Asks for the promotion [`hadr_core::policy::asks_for_automatic_failover`] chose
    /// ([`Automatic`](PromotionKind::Automatic) or [`Restore`](PromotionKind::Restore)) when
    /// nobody holds the lease; a denial is not answered.
    pub fn ask_promotion(&self, kind: PromotionKind) -> bool {
        self.commands
            .send(Command::TryAutomaticFailover(kind))
            .is_ok()
    }

    /// Stops renewing the lease without revoking it (the primary failed its health check,
    /// R-FAIL-7): etcd drops the `leader` key when the TTL runs out, after the primary's own
    /// deadline has passed, and another replica may then be promoted. The sink gets
    /// `LeaseLost` if a lease was held.
    pub fn stop_renewing(&self) -> bool {
        self.commands.send(Command::StopRenewing).is_ok()
    }

    /// Stores the group's configuration as the primary now has it (after an ALTER), in order
    /// with the other requests; a failure is logged and the next change stores it again.
    pub fn store_config(&self, config: AgConfig) -> bool {
        self.commands
            .send(Command::StoreConfig(Box::new(config)))
            .is_ok()
    }
}

/// The fixed-width encoding of a publication's `(epoch, version)` stored at `config_seq`: its
/// byte order is the order of `(epoch.term, epoch.replica, epoch.generation, version)`, so etcd
/// can compare it in a transaction.
pub fn publication_seq(epoch: Epoch, version: u64) -> String {
    format!(
        "{:020}.{:03}.{:010}.{:020}",
        epoch.term, epoch.replica.0, epoch.generation, version
    )
}

struct Keys {
    prefix: String,
    leader: String,
    term: String,
    sync: String,
    config_seq: String,
    failovers: String,
    config: String,
    /// The last replica promoted (no lease: it outlives the primary's lease).
    primary: String,
    /// A planned failover's reservation of the next promotion ([`Handover`], on its own lease).
    handover: String,
}

impl Keys {
    fn new(config: &ManagerConfig) -> Self {
        let prefix = format!("{}/{}/", config.prefix.trim_end_matches('/'), config.ag);
        Keys {
            leader: format!("{prefix}leader"),
            term: format!("{prefix}term"),
            sync: format!("{prefix}sync"),
            config_seq: format!("{prefix}config_seq"),
            failovers: format!("{prefix}failovers"),
            config: format!("{prefix}config"),
            primary: format!("{prefix}primary"),
            handover: format!("{prefix}handover"),
            prefix,
        }
    }
}

struct Held {
    lease: i64,
    keepalive: AbortHandle,
}

#[derive(Default)]
struct LeaseState {
    /// Bumped at every grant and every release: events of an older generation are stale.
    generation: u64,
    held: Option<Held>,
    /// The lease end last told for the held lease (at its grant, then at each renewal).
    until_ms: u64,
}

/// The etcd cluster manager of one replica.
pub struct EtcdManager {
    client: Client,
    config: ManagerConfig,
    clock: Clock,
    keys: Arc<Keys>,
    state: Arc<Mutex<LeaseState>>,
    unsolicited_tx: mpsc::UnboundedSender<LeaseEvent>,
    unsolicited_rx: Mutex<Option<mpsc::UnboundedReceiver<LeaseEvent>>>,
    /// How long this replica, etcd's recorded primary, has asked to be restored while nobody
    /// holds the lease and it is not failover-ready: after [`RESTORE_AFTER_MS`] it is.
    restore_wait: Mutex<policy::RestoreWait>,
}

/// How long the recorded primary waits, once nobody holds the lease, before etcd brings it
/// back online (R-QUORUM-2): time for a failover-ready replica, which polls every second, to be
/// promoted first (R-FAIL-2). The policy's ([`policy::RESTORE_AFTER_MS`]).
pub const RESTORE_AFTER_MS: u64 = policy::RESTORE_AFTER_MS;

/// How long a planned promotion waits for the lease of the primary that granted the failover
/// to be released, before it is refused because a primary holds the lease.
pub const PLANNED_HANDOVER_WAIT_MS: u64 = 1_000;

impl Drop for EtcdManager {
    /// Stops renewing without revoking (like a crash): the lease runs out by itself.
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(held) = state.held.take() {
                held.keepalive.abort();
            }
        }
    }
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn timed<T>(
    timeout: Duration,
    what: &'static str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ManagerError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(source)) => Err(ManagerError::Etcd { what, source }),
        Err(_) => Err(ManagerError::Timeout {
            what,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(key: &str, kv: &KeyValue) -> Result<T, ManagerError> {
    serde_json::from_slice(kv.value()).map_err(|e| ManagerError::Malformed {
        key: key.to_owned(),
        detail: e.to_string(),
    })
}

fn parse_term(key: &str, kv: &KeyValue) -> Result<u64, ManagerError> {
    std::str::from_utf8(kv.value())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ManagerError::Malformed {
            key: key.to_owned(),
            detail: format!("not a term: {:?}", String::from_utf8_lossy(kv.value())),
        })
}

/// What the promotion read found.
struct Snapshot {
    leader: Option<LeaderInfo>,
    leader_rev: i64,
    /// The last replica promoted.
    primary: Option<ReplicaId>,
    /// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT of the stored configuration.
    required_synchronized: Option<u32>,
    term: u64,
    term_rev: i64,
    publication: Option<SyncStatePublication>,
    sync_rev: i64,
    /// Wall-clock times (ms since the Unix epoch) of the automatic failovers on record.
    failovers: Vec<u64>,
    failovers_rev: i64,
    /// A planned failover in progress, and the key's revision (0: none).
    handover: Option<Handover>,
    handover_rev: i64,
}

impl Snapshot {
    /// R-FAIL-7's failure record, on the wall clock (the period is hours, and every replica
    /// must count the same failovers): the automatic failovers within the period before
    /// `wall_ms`.
    fn recent_failovers(&self, wall_ms: u64, period: Duration) -> Vec<u64> {
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        self.failovers
            .iter()
            .copied()
            .filter(|&at| at.saturating_add(period_ms) > wall_ms)
            .collect()
    }
}

/// Logs why the policy denied a promotion.
fn log_denial(kind: PromotionKind, denial: Denial, snapshot: &Snapshot, config: &ManagerConfig) {
    let me = config.replica.0;
    match denial {
        Denial::LeaseHeld { holder } => tracing::info!(
            ?kind,
            holder = holder.0,
            term = snapshot.leader.map_or(0, |l| l.term),
            "promotion denied: a primary holds the lease"
        ),
        Denial::HandoverReserved { to } => tracing::info!(
            ?kind,
            to = to.0,
            "promotion denied: a planned failover hands the lease to its target"
        ),
        Denial::NoPublication => {
            tracing::info!("automatic promotion denied: no synchronization state published")
        }
        Denial::StalePublication { published, granted } => tracing::info!(
            published,
            granted_term = granted,
            "automatic promotion denied: the publication predates the last granted term"
        ),
        Denial::NotFailoverReady => tracing::info!(
            replica = me,
            failover_ready = ?snapshot.publication.as_ref().map(|p| &p.failover_ready),
            "automatic promotion denied: not failover-ready"
        ),
        Denial::RestoreWaiting { waited_ms } => tracing::info!(
            replica = me,
            waited_ms,
            "restore of the recorded primary: waiting for a failover-ready replica first"
        ),
        Denial::ThresholdReached { threshold } => tracing::warn!(
            threshold,
            period_s = config.failover_period.as_secs(),
            "automatic promotion denied: the failure threshold is reached (R-FAIL-7); fail over manually"
        ),
        Denial::NotRequestable => {
            tracing::warn!(?kind, "promotion denied: not a kind a replica asks for")
        }
    }
}

impl EtcdManager {
    /// Connects to etcd (checking the configuration first).
    pub async fn connect(config: ManagerConfig, clock: Clock) -> Result<Self, ManagerError> {
        config.validate()?;
        let options = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout)
            .with_keep_alive(config.request_timeout, config.request_timeout);
        let client = timed(
            config.request_timeout * 2,
            "connect",
            Client::connect(&config.endpoints, Some(options)),
        )
        .await?;
        let (unsolicited_tx, unsolicited_rx) = mpsc::unbounded_channel();
        Ok(EtcdManager {
            client,
            keys: Arc::new(Keys::new(&config)),
            config,
            clock,
            state: Arc::new(Mutex::new(LeaseState::default())),
            unsolicited_tx,
            unsolicited_rx: Mutex::new(Some(unsolicited_rx)),
            restore_wait: Mutex::new(policy::RestoreWait::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The clock lease ends are computed on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The unsolicited events (`LeaseRenewed`, `LeaseLost`) of the keepalive task, once; `None`
    /// after the first call (and after [`spawn`](Self::spawn), which takes them).
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<LeaseEvent>> {
        self.unsolicited_rx.lock().ok()?.take()
    }

    /// The current lease generation (see [`LeaseEvent`]).
    pub fn lease_generation(&self) -> u64 {
        self.state.lock().map(|s| s.generation).unwrap_or(0)
    }

    /// The lease this replica holds, if any.
    pub fn held_lease(&self) -> Option<i64> {
        self.state.lock().ok()?.held.as_ref().map(|h| h.lease)
    }

    /// Performs one request of the core; `now_ms` is the caller's clock when it was emitted.
    ///
    /// Errors talking to etcd never escape: a promotion that could not be granted is
    /// `PromotionDenied`, a publication that could not be stored is not confirmed (the core
    /// keeps waiting as the contract says), a release that failed leaves the lease to expire.
    pub async fn handle(&self, now_ms: u64, request: ManagerRequest) -> Vec<ManagerEvent> {
        match request {
            ManagerRequest::RequestPromotion { kind } => {
                match self.request_promotion(now_ms, kind).await {
                    Ok(Some(event)) => vec![event],
                    Ok(None) => vec![ManagerEvent::PromotionDenied],
                    Err(error) => {
                        tracing::warn!(%error, ?kind, "promotion request failed");
                        vec![ManagerEvent::PromotionDenied]
                    }
                }
            }
            ManagerRequest::ReleaseLease => {
                if let Err(error) = self.release_lease().await {
                    tracing::warn!(%error, "could not revoke the lease; it expires by itself");
                }
                Vec::new()
            }
            ManagerRequest::HandOver { to } => {
                if let Err(error) = self.reserve_handover(to).await {
                    // The release still goes ahead: the target then races any automatic
                    // failover, as without a reservation.
                    tracing::warn!(%error, to = to.0, "could not reserve the promotion for the planned failover's target");
                }
                if let Err(error) = self.release_lease().await {
                    tracing::warn!(%error, "could not revoke the lease; it expires by itself");
                }
                Vec::new()
            }
            ManagerRequest::PublishSyncState(publication) => {
                let (epoch, version) = (publication.epoch, publication.version);
                match self.publish(&publication).await {
                    Ok(true) => vec![ManagerEvent::SyncStatePublished { epoch, version }],
                    Ok(false) => Vec::new(),
                    Err(error) => {
                        tracing::warn!(%error, %epoch, version, "publication not stored");
                        Vec::new()
                    }
                }
            }
        }
    }

    /// Runs the manager in a task and returns its handle: requests are handled one at a time,
    /// in the order sent, and every event (answers, and the current lease's keepalive events,
    /// in the order they happened) goes to `sink`. Dropping every handle releases the lease and
    /// ends the task; so does `sink` returning `false`.
    pub fn spawn(
        self: Arc<Self>,
        sink: impl Fn(ManagerEvent) -> bool + Send + 'static,
    ) -> ManagerHandle {
        let (tx, mut commands) = mpsc::unbounded_channel::<Command>();
        let mut unsolicited = self.take_events();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    Some(event) = async {
                        match unsolicited.as_mut() {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => {
                        if event.generation == self.lease_generation() && !sink(event.event) {
                            break;
                        }
                    }
                    command = commands.recv() => {
                        let (request, answer_denial) = match command {
                            None => break,
                            Some(Command::Core(request)) => (request, true),
                            Some(Command::TryAutomaticFailover(kind)) => (
                                ManagerRequest::RequestPromotion { kind },
                                false,
                            ),
                            Some(Command::StopRenewing) => {
                                if self.stop_renewing() && !sink(ManagerEvent::LeaseLost) {
                                    return;
                                }
                                continue;
                            }
                            Some(Command::StoreConfig(config)) => {
                                if let Err(error) = self.store_config(&config).await {
                                    tracing::warn!(%error, "configuration not stored in etcd");
                                }
                                continue;
                            }
                        };
                        let now = self.clock.now_ms();
                        for event in self.handle(now, request).await {
                            if event == ManagerEvent::PromotionDenied && !answer_denial {
                                continue;
                            }
                            if !sink(event) {
                                return;
                            }
                        }
                    }
                }
            }
            if let Err(error) = self.release_lease().await {
                tracing::warn!(%error, "could not revoke the lease at shutdown");
            }
        });
        ManagerHandle { commands: tx }
    }

    async fn snapshot(&self) -> Result<Snapshot, ManagerError> {
        let mut kv = self.client.kv_client();
        let answer = timed(
            self.config.request_timeout,
            "read",
            kv.get(
                self.keys.prefix.as_bytes(),
                Some(GetOptions::new().with_prefix()),
            ),
        )
        .await?;
        let mut snapshot = Snapshot {
            leader: None,
            leader_rev: 0,
            primary: None,
            required_synchronized: None,
            term: 0,
            term_rev: 0,
            publication: None,
            sync_rev: 0,
            failovers: Vec::new(),
            failovers_rev: 0,
            handover: None,
            handover_rev: 0,
        };
        for kv in answer.kvs() {
            let key = kv.key();
            if key == self.keys.leader.as_bytes() {
                snapshot.leader = Some(parse_json(&self.keys.leader, kv)?);
                snapshot.leader_rev = kv.mod_revision();
            } else if key == self.keys.config.as_bytes() {
                let config: AgConfig = parse_json(&self.keys.config, kv)?;
                snapshot.required_synchronized =
                    Some(config.required_synchronized_secondaries_to_commit);
            } else if key == self.keys.primary.as_bytes() {
                snapshot.primary = Some(ReplicaId(parse_json(&self.keys.primary, kv)?));
            } else if key == self.keys.term.as_bytes() {
                snapshot.term = parse_term(&self.keys.term, kv)?;
                snapshot.term_rev = kv.mod_revision();
            } else if key == self.keys.sync.as_bytes() {
                snapshot.publication = Some(parse_json(&self.keys.sync, kv)?);
                snapshot.sync_rev = kv.mod_revision();
            } else if key == self.keys.failovers.as_bytes() {
                snapshot.failovers = parse_json(&self.keys.failovers, kv)?;
                snapshot.failovers_rev = kv.mod_revision();
            } else if key == self.keys.handover.as_bytes() {
                snapshot.handover = Some(parse_json(&self.keys.handover, kv)?);
                snapshot.handover_rev = kv.mod_revision();
            }
        }
        Ok(snapshot)
    }

    /// `Ok(None)`: denied by the policy ([`hadr_core::policy`]) or lost to a concurrent
    /// change; `Ok(Some(Promote))`: granted.
    async fn request_promotion(
        &self,
        now_ms: u64,
        kind: PromotionKind,
    ) -> Result<Option<ManagerEvent>, ManagerError> {
        let snapshot = self.promotion_snapshot(kind).await?;
        let wall_ms = wall_clock_ms();
        let failovers = snapshot.recent_failovers(wall_ms, self.config.failover_period);
        let decision = {
            let mut restore = self.restore_wait.lock().expect("restore state lock");
            policy::decide(
                &policy::Snapshot {
                    lease_holder: snapshot.leader.map(|l| l.replica),
                    handover_to: snapshot.handover.map(|h| h.to),
                    granted_term: snapshot.term,
                    publication: snapshot.publication.as_ref(),
                    recent_automatic_failovers: u32::try_from(failovers.len()).unwrap_or(u32::MAX),
                    failover_threshold: self.config.failover_threshold,
                },
                policy::Request {
                    replica: self.config.replica,
                    kind,
                },
                &mut restore,
                self.clock.now_ms(),
            )
        };
        let grant = match decision {
            policy::Decision::Grant(grant) => grant,
            policy::Decision::Deny(denial) => {
                log_denial(kind, denial, &snapshot, &self.config);
                return Ok(None);
            }
        };
        if let Some(holder) = grant.takes_lease_from {
            tracing::warn!(
                holder = holder.0,
                "forced failover: taking the lease from the primary that holds it"
            );
        }
        if grant.kind == PromotionKind::ForcedOntoSynchronized {
            tracing::info!(
                replica = self.config.replica.0,
                "forced failover onto a replica recorded SYNCHRONIZED: no data loss"
            );
        }
        let mut failovers = failovers;
        if grant.counts_against_threshold {
            failovers.push(wall_ms);
        }
        self.commit_promotion(now_ms, &snapshot, grant, &failovers)
            .await
    }

    /// The store as a promotion finds it. R-FAIL-3: the primary that granted a planned failover
    /// stepped down and its shell releases its lease on another thread, which may reach etcd
    /// after this request: a planned promotion waits a little for that release rather than be
    /// refused a handover both sides agreed on.
    async fn promotion_snapshot(&self, kind: PromotionKind) -> Result<Snapshot, ManagerError> {
        let me = self.config.replica;
        let mut snapshot = self.snapshot().await?;
        if kind == PromotionKind::Planned {
            let until = self.clock.now_ms() + PLANNED_HANDOVER_WAIT_MS;
            while snapshot.leader.is_some_and(|leader| leader.replica != me)
                && self.clock.now_ms() < until
            {
                tokio::time::sleep(Duration::from_millis(25)).await;
                snapshot = self.snapshot().await?;
            }
        }
        Ok(snapshot)
    }

    /// Records a granted promotion in one transaction, if the store is still as the snapshot
    /// found it, with a fresh lease; then renews it (and, for a forced takeover, waits out the
    /// old primary's lease). `failovers`: the failure-threshold record to store.
    async fn commit_promotion(
        &self,
        now_ms: u64,
        snapshot: &Snapshot,
        grant: policy::Grant,
        failovers: &[u64],
    ) -> Result<Option<ManagerEvent>, ManagerError> {
        let mut lease_client = self.client.lease_client();
        let t0 = now_ms.min(self.clock.now_ms());
        let lease_grant = timed(
            self.config.request_timeout,
            "lease grant",
            lease_client.grant(self.config.lease_ttl.as_secs() as i64, None),
        )
        .await?;
        let lease = lease_grant.id();
        let ttl_ms = self
            .config
            .ttl_ms()
            .min(u64::try_from(lease_grant.ttl()).unwrap_or(0) * 1000);
        let lease_until_ms = (t0 + ttl_ms).saturating_sub(self.config.margin_ms());
        let txn = self.promotion_txn(snapshot, grant, lease, failovers);
        let mut kv = self.client.kv_client();
        let granted = match timed(self.config.request_timeout, "promotion txn", kv.txn(txn)).await {
            Ok(answer) => answer.succeeded(),
            Err(error) => {
                self.revoke_quietly(lease).await;
                return Err(error);
            }
        };
        if !granted {
            tracing::info!(
                kind = ?grant.kind,
                "promotion denied: the leader, term or publication changed meanwhile"
            );
            self.revoke_quietly(lease).await;
            return Ok(None);
        }
        if self.clock.now_ms() >= lease_until_ms {
            // The core would refuse a grant that already ended and stay where it is; the
            // lease must then not block every other promotion until it expires.
            tracing::warn!(
                lease_until_ms,
                "promotion granted too late to use; releasing it"
            );
            self.revoke_quietly(lease).await;
            return Ok(None);
        }
        self.start_keepalive(lease, lease_until_ms);
        let lease_until_ms = match snapshot.leader {
            None => lease_until_ms,
            Some(old) => match self.take_over(old.lease, lease).await {
                Some(until) => until,
                None => return Ok(None),
            },
        };
        tracing::info!(
            kind = ?grant.kind,
            replica = self.config.replica.0,
            term = grant.term,
            lease,
            lease_until_ms,
            "promoted"
        );
        Ok(Some(ManagerEvent::Promote {
            kind: grant.kind,
            lease_until_ms,
            term_at_least: grant.term,
            required_synchronized: snapshot.required_synchronized,
        }))
    }

    /// The compare-and-swap of a promotion: the leader, term and handover keys (and the
    /// publication and failure record the grant rests on) unchanged since the snapshot; then
    /// the new leader under `lease`, its term, the recorded primary, the handover ended.
    fn promotion_txn(
        &self,
        snapshot: &Snapshot,
        grant: policy::Grant,
        lease: i64,
        failovers: &[u64],
    ) -> Txn {
        let me = self.config.replica;
        let info = LeaderInfo {
            replica: me,
            term: grant.term,
            lease,
        };
        let leader_unchanged = match snapshot.leader {
            None => Compare::version(self.keys.leader.as_str(), CompareOp::Equal, 0),
            Some(_) => Compare::mod_revision(
                self.keys.leader.as_str(),
                CompareOp::Equal,
                snapshot.leader_rev,
            ),
        };
        let mut compares = vec![
            leader_unchanged,
            Compare::mod_revision(self.keys.term.as_str(), CompareOp::Equal, snapshot.term_rev),
            // No planned failover began since the snapshot (0: the key is absent).
            Compare::mod_revision(
                self.keys.handover.as_str(),
                CompareOp::Equal,
                snapshot.handover_rev,
            ),
        ];
        let mut puts = vec![
            TxnOp::put(
                self.keys.leader.as_str(),
                serde_json::to_vec(&info).expect("LeaderInfo serializes"),
                Some(PutOptions::new().with_lease(lease)),
            ),
            TxnOp::put(self.keys.term.as_str(), grant.term.to_string(), None),
            TxnOp::put(self.keys.primary.as_str(), me.0.to_string(), None),
        ];
        if snapshot.handover.is_some() {
            // The handover is done (or overridden by a forced failover).
            puts.push(TxnOp::delete(self.keys.handover.as_str(), None));
        }
        if grant.needs_publication_unchanged {
            compares.push(Compare::mod_revision(
                self.keys.sync.as_str(),
                CompareOp::Equal,
                snapshot.sync_rev,
            ));
        }
        if grant.counts_against_threshold {
            compares.push(Compare::mod_revision(
                self.keys.failovers.as_str(),
                CompareOp::Equal,
                snapshot.failovers_rev,
            ));
            puts.push(TxnOp::put(
                self.keys.failovers.as_str(),
                serde_json::to_vec(failovers).expect("timestamps serialize"),
                None,
            ));
        }
        Txn::new().when(compares).and_then(puts)
    }

    /// The end of a forced takeover: the new lease is recorded and renewed; revoke the old
    /// primary's (its renewals fail, so it steps down), then wait one TTL before the promotion
    /// is told, so that every lease end the old primary was told has passed (they are below
    /// the TTL by the safety margin): the two never commit at the same time (R-QUORUM-3).
    /// Returns the new lease's end, or `None` if it was lost meanwhile.
    async fn take_over(&self, old_lease: i64, lease: i64) -> Option<u64> {
        self.revoke_quietly(old_lease).await;
        tokio::time::sleep(self.config.lease_ttl).await;
        let state = self.state.lock().expect("lease state lock");
        match &state.held {
            Some(held) if held.lease == lease && state.until_ms > self.clock.now_ms() => {
                Some(state.until_ms)
            }
            _ => {
                tracing::warn!(
                    lease,
                    "forced promotion: the new lease was lost while the old one ran out"
                );
                None
            }
        }
    }

    async fn revoke_quietly(&self, lease: i64) {
        let mut lease_client = self.client.lease_client();
        if let Err(error) = timed(
            self.config.request_timeout,
            "lease revoke",
            lease_client.revoke(lease),
        )
        .await
        {
            tracing::debug!(%error, lease, "revoke failed; the lease expires by itself");
        }
    }

    fn start_keepalive(&self, lease: i64, lease_until_ms: u64) {
        let mut state = self.state.lock().expect("lease state lock");
        if let Some(old) = state.held.take() {
            old.keepalive.abort();
        }
        state.generation += 1;
        let generation = state.generation;
        let task = tokio::spawn(keepalive(
            self.client.clone(),
            self.config.clone(),
            self.clock,
            self.state.clone(),
            self.unsolicited_tx.clone(),
            generation,
            lease,
            lease_until_ms,
        ));
        state.held = Some(Held {
            lease,
            keepalive: task.abort_handle(),
        });
        state.until_ms = lease_until_ms;
    }

    /// Stops the keepalive of the held lease, if any, without revoking it; true if one was
    /// held. Later keepalive events of that lease are dropped (a new generation).
    pub fn stop_renewing(&self) -> bool {
        let mut state = self.state.lock().expect("lease state lock");
        state.generation += 1;
        match state.held.take() {
            Some(held) => {
                held.keepalive.abort();
                tracing::warn!(
                    lease = held.lease,
                    "lease renewal stopped; etcd lets the lease expire"
                );
                true
            }
            None => false,
        }
    }

    /// The group's configuration stored in etcd, if any.
    pub async fn stored_config(&self) -> Result<Option<AgConfig>, ManagerError> {
        let mut kv = self.client.kv_client();
        let answer = timed(
            self.config.request_timeout,
            "read configuration",
            kv.get(self.keys.config.as_str(), None),
        )
        .await?;
        answer
            .kvs()
            .first()
            .map(|kv| parse_json(&self.keys.config, kv))
            .transpose()
    }

    /// Stores the group's configuration (overwriting).
    pub async fn store_config(&self, config: &AgConfig) -> Result<(), ManagerError> {
        let mut kv = self.client.kv_client();
        let json = serde_json::to_vec(config).expect("AgConfig serializes");
        timed(
            self.config.request_timeout,
            "store configuration",
            kv.put(self.keys.config.as_str(), json, None),
        )
        .await?;
        Ok(())
    }

    /// Checks `config` against the group's configuration in etcd before a CREATE
    /// (`creating`: stores it when etcd has none; the same one again is a retry) or a JOIN
    /// (etcd must hold exactly this configuration, stored by the CREATE on the primary).
    pub async fn register_config(
        &self,
        config: &AgConfig,
        creating: bool,
    ) -> Result<(), ManagerError> {
        let where_ = format!("{}config", self.keys.prefix);
        let remove = format!("etcdctl del --prefix {}", self.keys.prefix);
        match self.stored_config().await? {
            Some(stored) if &stored == config => Ok(()),
            Some(_) if creating => Err(ManagerError::ConfigConflict(format!(
                "an availability group named {:?} already exists in etcd ({where_}) with another configuration: JOIN it with that configuration (GET /ag/config on its primary), or remove it first ({remove})",
                config.name
            ))),
            Some(_) => Err(ManagerError::ConfigConflict(format!(
                "this JOIN's configuration differs from the group's configuration in etcd ({where_}): join with the configuration the primary has (GET /ag/config on the primary)"
            ))),
            None if creating => {
                let json = serde_json::to_vec(config).expect("AgConfig serializes");
                let txn = Txn::new()
                    .when(vec![Compare::version(
                        self.keys.config.as_str(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then(vec![TxnOp::put(self.keys.config.as_str(), json, None)]);
                let mut kv = self.client.kv_client();
                let stored = timed(self.config.request_timeout, "store configuration", kv.txn(txn))
                    .await?
                    .succeeded();
                if stored {
                    Ok(())
                } else {
                    // Another CREATE won the race: the same configuration is fine.
                    Box::pin(self.register_config(config, creating)).await
                }
            }
            None => Err(ManagerError::ConfigConflict(format!(
                "no availability group named {:?} in etcd ({where_}): CREATE it on the primary first",
                config.name
            ))),
        }
    }

    /// R-FAIL-3: reserves the next promotion for `to`, the target of the planned failover this
    /// primary granted, before its lease is released ([`ManagerRequest::HandOver`]): a
    /// `handover` key on a lease of its own (one TTL, not renewed), written only while this
    /// replica still holds the `leader` key. `Ok(false)`: it does not (nothing written).
    pub async fn reserve_handover(&self, to: ReplicaId) -> Result<bool, ManagerError> {
        let Some(held) = self.held_lease() else {
            return Ok(false);
        };
        let mut lease_client = self.client.lease_client();
        let grant = timed(
            self.config.request_timeout,
            "lease grant",
            lease_client.grant(self.config.lease_ttl.as_secs() as i64, None),
        )
        .await?;
        let reservation = grant.id();
        let handover = Handover {
            from: self.config.replica,
            to,
        };
        let txn = Txn::new()
            .when(vec![Compare::lease(
                self.keys.leader.as_str(),
                CompareOp::Equal,
                held,
            )])
            .and_then(vec![TxnOp::put(
                self.keys.handover.as_str(),
                serde_json::to_vec(&handover).expect("Handover serializes"),
                Some(PutOptions::new().with_lease(reservation)),
            )]);
        let mut kv = self.client.kv_client();
        let written = match timed(self.config.request_timeout, "handover txn", kv.txn(txn)).await {
            Ok(answer) => answer.succeeded(),
            Err(error) => {
                self.revoke_quietly(reservation).await;
                return Err(error);
            }
        };
        if written {
            tracing::info!(
                to = to.0,
                "next promotion reserved for the planned failover's target"
            );
        } else {
            self.revoke_quietly(reservation).await;
        }
        Ok(written)
    }

    /// Stops renewing and revokes the lease (the `leader` key goes with it).
    pub async fn release_lease(&self) -> Result<(), ManagerError> {
        let held = {
            let mut state = self.state.lock().expect("lease state lock");
            state.generation += 1;
            state.held.take()
        };
        let Some(held) = held else { return Ok(()) };
        held.keepalive.abort();
        let mut lease_client = self.client.lease_client();
        timed(
            self.config.request_timeout,
            "lease revoke",
            lease_client.revoke(held.lease),
        )
        .await?;
        tracing::info!(lease = held.lease, "lease released");
        Ok(())
    }

    /// Stores `publication` unless one with an equal or higher `(epoch, version)` is stored;
    /// `Ok(true)` when stored.
    pub async fn publish(&self, publication: &SyncStatePublication) -> Result<bool, ManagerError> {
        let seq = publication_seq(publication.epoch, publication.version);
        let json = serde_json::to_vec(publication).expect("publication serializes");
        let puts = || {
            vec![
                TxnOp::put(self.keys.sync.as_str(), json.clone(), None),
                TxnOp::put(self.keys.config_seq.as_str(), seq.clone(), None),
            ]
        };
        let mut kv = self.client.kv_client();
        // etcd compares bytes; a value compare on a missing key is false, hence the second
        // transaction for the very first publication.
        let newer = Txn::new()
            .when(vec![Compare::value(
                self.keys.config_seq.as_str(),
                CompareOp::Less,
                seq.clone(),
            )])
            .and_then(puts());
        if timed(self.config.request_timeout, "publish txn", kv.txn(newer))
            .await?
            .succeeded()
        {
            return Ok(true);
        }
        let first = Txn::new()
            .when(vec![Compare::version(
                self.keys.config_seq.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then(puts());
        let stored = timed(self.config.request_timeout, "publish txn", kv.txn(first))
            .await?
            .succeeded();
        if !stored {
            tracing::debug!(epoch = %publication.epoch, version = publication.version, "publication refused: not newer than the stored one");
        }
        Ok(stored)
    }

    /// The stored publication, if any.
    pub async fn stored_publication(&self) -> Result<Option<SyncStatePublication>, ManagerError> {
        Ok(self.snapshot().await?.publication)
    }

    /// The highest term granted so far (0: none).
    pub async fn granted_term(&self) -> Result<u64, ManagerError> {
        Ok(self.snapshot().await?.term)
    }

    /// The primary etcd records (R-QUORUM-2): the lease holder, or when nobody holds the
    /// lease the last replica promoted. A linearizable read: an answer means this replica
    /// reaches etcd's majority.
    pub async fn recorded_primary(&self) -> Result<Option<ReplicaId>, ManagerError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot.leader.map(|l| l.replica).or(snapshot.primary))
    }

    /// Who holds the lease now.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, ManagerError> {
        Ok(self.snapshot().await?.leader)
    }

    /// Follows the `leader` key: first its current value, then every change. The watch
    /// reconnects by itself after errors (sending the then-current value again); it ends when
    /// the receiver is dropped. A SYNC+AUTOMATIC secondary requests an automatic promotion
    /// when it sees `leader: None` (and its own policy, R-FAIL-7, agrees).
    pub fn watch_leader(&self) -> mpsc::UnboundedReceiver<LeaderObservation> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.client.clone();
        let keys = self.keys.clone();
        let timeout = self.config.request_timeout;
        tokio::spawn(async move {
            while !tx.is_closed() {
                if let Err(error) = watch_once(&client, &keys, timeout, &tx).await {
                    tracing::debug!(%error, "leader watch interrupted; restarting");
                }
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(timeout / 4) => {}
                }
            }
        });
        rx
    }
}

async fn watch_once(
    client: &Client,
    keys: &Keys,
    timeout: Duration,
    tx: &mpsc::UnboundedSender<LeaderObservation>,
) -> Result<(), ManagerError> {
    let mut kv = client.kv_client();
    let answer = timed(timeout, "read leader", kv.get(keys.leader.as_str(), None)).await?;
    let revision = answer.header().map_or(0, |h| h.revision());
    let leader = match answer.kvs().first() {
        Some(kv) => Some(parse_json(&keys.leader, kv)?),
        None => None,
    };
    if tx.send(LeaderObservation { leader, revision }).is_err() {
        return Ok(());
    }
    let mut watch_client = client.watch_client();
    let mut stream = timed(
        timeout,
        "watch leader",
        watch_client.watch(
            keys.leader.as_str(),
            Some(WatchOptions::new().with_start_revision(revision + 1)),
        ),
    )
    .await?;
    loop {
        let message = tokio::select! {
            _ = tx.closed() => return Ok(()),
            message = stream.message() => message,
        };
        let Some(response) = message.map_err(|source| ManagerError::Etcd {
            what: "watch leader",
            source,
        })?
        else {
            return Ok(());
        };
        if response.canceled() {
            return Ok(());
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let leader = match event.event_type() {
                EventType::Put => Some(parse_json(&keys.leader, kv)?),
                EventType::Delete => None,
            };
            let observation = LeaderObservation {
                leader,
                revision: kv.mod_revision(),
            };
            if tx.send(observation).is_err() {
                return Ok(());
            }
        }
    }
}

/// Renews `lease` every `renew_interval` until a renewal fails or the lease ends on the
/// caller's clock; reports each renewal and the loss, while `generation` is current.
#[allow(clippy::too_many_arguments)]
async fn keepalive(
    client: Client,
    config: ManagerConfig,
    clock: Clock,
    state: Arc<Mutex<LeaseState>>,
    events: mpsc::UnboundedSender<LeaseEvent>,
    generation: u64,
    lease: i64,
    mut lease_until_ms: u64,
) {
    let emit = |event: ManagerEvent, lost: bool| {
        let mut state = state.lock().expect("lease state lock");
        if state.generation != generation {
            return false;
        }
        if lost {
            state.held = None;
        } else if let ManagerEvent::LeaseRenewed { lease_until_ms } = event {
            state.until_ms = lease_until_ms;
        }
        // Sent under the lock: a release that bumps the generation happens before or after.
        let _ = events.send(LeaseEvent { generation, event });
        true
    };
    let ttl_ms = config.ttl_ms();
    let margin_ms = config.margin_ms();
    let mut lease_client = client.lease_client();
    let mut keeper = None;
    loop {
        tokio::time::sleep(config.renew_interval).await;
        let t0 = clock.now_ms();
        let Some(left) = lease_until_ms.checked_sub(t0).filter(|&l| l > 0) else {
            break;
        };
        let wait = config.request_timeout.min(Duration::from_millis(left));
        let renewal = async {
            // The stream is opened once; its first exchange is a renewal itself.
            if keeper.is_none() {
                let (k, s) = lease_client.keep_alive(lease).await?;
                keeper = Some((k, s));
                return Ok::<_, etcd_client::Error>(Some(config.lease_ttl.as_secs() as i64));
            }
            let (k, s) = keeper.as_mut().expect("opened above");
            k.keep_alive().await?;
            Ok(s.message().await?.map(|r| r.ttl()))
        };
        match timed(wait, "lease keepalive", renewal).await {
            Ok(Some(ttl)) if ttl > 0 => {
                let ttl_ms = ttl_ms.min(u64::try_from(ttl).unwrap_or(0) * 1000);
                lease_until_ms = (t0 + ttl_ms).saturating_sub(margin_ms);
                if !emit(ManagerEvent::LeaseRenewed { lease_until_ms }, false) {
                    return;
                }
            }
            Ok(_) => {
                tracing::warn!(lease, "lease expired in etcd");
                break;
            }
            Err(error) => {
                tracing::warn!(%error, lease, "lease renewal failed");
                break;
            }
        }
    }
    if !emit(ManagerEvent::LeaseLost, true) {
        return;
    }
    tracing::warn!(lease, "lease lost; revoking what may remain of it");
    drop(keeper);
    let _ = timed(
        config.request_timeout,
        "lease revoke",
        lease_client.revoke(lease),
    )
    .await;
}
