//! [`EtcdManager`]: the etcd operations behind each [`ManagerRequest`].

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue,
    LeaseGrantResponse, PutOptions, Txn, TxnOp, WatchOptions,
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
use tracing::Instrument;

mod lease;
mod promotion;
mod store;
mod watch;

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

    /// Queues a promotion of this replica that the core did not ask for: the automatic
    /// failover (R-FAIL-2) or the restore (R-QUORUM-2) that
    /// [`hadr_core::policy::asks_for_automatic_failover`] chose, when
    /// [`EtcdManager::watch_leader`] shows no leader. A grant reaches the sink as `Promote`; a
    /// denial of the policy is dropped (the core has no request to answer).
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
        tokio::spawn(
            async move {
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
            }
            .in_current_span(),
        );
        ManagerHandle { commands: tx }
    }
}
