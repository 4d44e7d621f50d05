//! The cluster manager of `CLUSTER_TYPE = EXTERNAL`: etcd, through `hadr-manager`, behind the
//! `etcd` cargo feature (building `etcd-client` needs `protoc`). Without the feature, an
//! EXTERNAL group is refused with [`AdminRefusal::NeedsClusterManager`].
//!
//! What the driver gets from here:
//! - [`ClusterManager::send`]: the core's `ManagerRequest`s, answered later by
//!   `Event::Manager` (promotion grants, lease renewals and losses, publication receipts);
//! - `Event::Leader`: every change of the `leader` key in etcd, and every second while there
//!   is none, so that the driver can decide on an automatic failover (R-FAIL-2/7).

use super::{AdminRefusal, Event};
use hadr_types::{AgConfig, ReplicaId};
use std::time::Instant;
use tokio::sync::mpsc;

/// Who holds the primary's lease, as etcd says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Leader {
    /// The primary.
    pub replica: ReplicaId,
    /// The term etcd granted it.
    pub term: u64,
}

/// The cluster manager a node is attached to: one per (availability group, replica).
pub(crate) struct ClusterManager {
    /// The group and replica it was attached for.
    pub ag: String,
    pub replica: ReplicaId,
    #[cfg(feature = "etcd")]
    handle: hadr_manager::ManagerHandle,
    #[cfg(feature = "etcd")]
    watch: tokio::task::AbortHandle,
    /// When the driver last answered a ping (ms on its clock): the health check's input.
    #[cfg(feature = "etcd")]
    health: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Dropping it stops the manager's thread.
    #[cfg(feature = "etcd")]
    thread: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ClusterManager {
    fn drop(&mut self) {
        #[cfg(feature = "etcd")]
        self.watch.abort();
    }
}

/// What the node's configuration says about the cluster manager.
#[derive(Clone, Debug, Default)]
pub(crate) struct ManagerSettings {
    /// etcd client URLs (`etcd_endpoints` in node.toml).
    pub etcd_endpoints: Vec<String>,
    /// The URLs the manager connects to: `etcd_endpoints`, or with fault injection the
    /// relay's that `/debug/manager` cuts.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub connect_to: Vec<String>,
}

impl ManagerSettings {
    /// Whether an EXTERNAL group can be served by this build and configuration.
    pub fn check(&self) -> Result<(), AdminRefusal> {
        if !cfg!(feature = "etcd") {
            return Err(AdminRefusal::NeedsClusterManager(
                "this build has no etcd support: build hadr with `--features etcd` (needs protoc: apt-get install -y protobuf-compiler)".to_owned(),
            ));
        }
        if self.etcd_endpoints.is_empty() {
            return Err(AdminRefusal::NeedsClusterManager(
                "no etcd endpoint is configured: set `etcd_endpoints = [\"http://127.0.0.1:2379\"]` in this replica's node.toml".to_owned(),
            ));
        }
        Ok(())
    }

    /// [`ManagerSettings::check`], and the lease settings of `config` as etcd needs them.
    pub fn check_group(&self, config: &AgConfig) -> Result<(), AdminRefusal> {
        self.check()?;
        #[cfg(feature = "etcd")]
        manager_config(self, config, ReplicaId(0))
            .validate()
            .map_err(|e| AdminRefusal::ClusterManagerConfig(e.to_string()))?;
        #[cfg(not(feature = "etcd"))]
        let _ = config;
        Ok(())
    }
}

#[cfg(feature = "etcd")]
fn manager_config(
    settings: &ManagerSettings,
    config: &AgConfig,
    replica: ReplicaId,
) -> hadr_manager::ManagerConfig {
    use std::time::Duration;
    let lease = config.lease;
    let mut m =
        hadr_manager::ManagerConfig::new(settings.connect_to.clone(), &config.name, replica);
    m.lease_ttl = Duration::from_millis(u64::from(lease.ttl_ms));
    // The primary commits until `validity_ms` after the renewal was sent; etcd keeps the key
    // `ttl_ms` after it arrived (AgConfig checks validity + drift margin < ttl, R-QUORUM-3).
    m.safety_margin = Duration::from_millis(u64::from(lease.ttl_ms - lease.validity_ms));
    m.renew_interval = Duration::from_millis(u64::from(lease.renew_interval_ms));
    // A renewal may take until the next one is due without the lease being at risk (the
    // primary's own deadline is `validity_ms` after the renewal was sent); a short timeout
    // would turn a busy machine into a lost lease and a needless failover.
    m.request_timeout = Duration::from_millis(
        u64::from(lease.validity_ms.saturating_sub(lease.renew_interval_ms)).clamp(100, 1000),
    );
    m.failover_threshold = config
        .policy
        .failover_threshold
        .unwrap_or(config.replicas.len().saturating_sub(1) as u32);
    m.failover_period = Duration::from_secs(u64::from(config.policy.failover_period_h) * 3600);
    m
}

/// Connects and starts the manager's tasks, on the manager's own runtime.
#[cfg(feature = "etcd")]
async fn attach(
    settings: &ManagerSettings,
    config: &AgConfig,
    replica: ReplicaId,
    start: Instant,
    events: mpsc::UnboundedSender<Event>,
    creating: Option<bool>,
) -> Result<ClusterManager, AdminRefusal> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let unavailable = |e: hadr_manager::ManagerError| {
        AdminRefusal::ClusterManager(format!(
            "{e} (etcd endpoints {}: is etcd running and reachable?)",
            settings.etcd_endpoints.join(", ")
        ))
    };
    let clock = hadr_manager::Clock::new(start);
    let manager_config = manager_config(settings, config, replica);
    let manager = std::sync::Arc::new(
        hadr_manager::EtcdManager::connect(manager_config, clock)
            .await
            .map_err(unavailable)?,
    );
    // The client connects lazily: one read proves etcd answers (with quorum) before the
    // group is created or joined.
    manager.leader().await.map_err(unavailable)?;
    if let Some(creating) = creating {
        manager
            .register_config(config, creating)
            .await
            .map_err(|e| match e {
                hadr_manager::ManagerError::ConfigConflict(message) => {
                    AdminRefusal::ConfigurationConflict(message)
                }
                other => unavailable(other),
            })?;
    }
    let mut leader = manager.watch_leader();
    let sink = events.clone();
    let handle = manager
        .clone()
        .spawn(move |event| sink.send(Event::Manager(event)).is_ok());
    let health = std::sync::Arc::new(AtomicU64::new(clock.now_ms()));
    let level = config.failure_condition_level;
    let health_timeout_ms = u64::from(config.health_check_timeout_ms);
    let (watch_health, watch_handle) = (health.clone(), handle.clone());
    let watch = tokio::spawn(async move {
        // While nobody holds the lease, remind the driver every second: an automatic failover
        // that etcd could not grant (a timeout) is tried again. Every second, ping the driver
        // too: it answers by stamping `health`.
        let mut last: Option<Option<Leader>> = None;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut tripped = false;
        // The primary the manager records: the lease holder, or the last one promoted (kept
        // in etcd, so that a restarted replica knows it too), or the last one seen.
        let mut recorded: Option<ReplicaId> = None;
        loop {
            tokio::select! {
                seen = leader.recv() => {
                    let Some(seen) = seen else { return };
                    let now = seen.leader.map(|l| Leader { replica: l.replica, term: l.term });
                    recorded = now.map(|l| l.replica).or(recorded);
                    last = Some(now);
                    if events.send(Event::Leader(now)).is_err() {
                        return;
                    }
                }
                _ = tick.tick() => {
                    if last == Some(None) && events.send(Event::Leader(None)).is_err() {
                        return;
                    }
                    if events.send(Event::Ping).is_err() {
                        return;
                    }
                    // R-QUORUM-2: can this replica reach etcd's majority (a linearizable read)?
                    let reach = match manager.recorded_primary().await {
                        Ok(primary) => {
                            recorded = primary.or(recorded);
                            hadr_core::ManagerEvent::Reachable { primary: recorded }
                        }
                        Err(_) => hadr_core::ManagerEvent::Unreachable,
                    };
                    if events.send(Event::Manager(reach)).is_err() {
                        return;
                    }
                    // R-FAIL-7 level 2 and up: a primary unresponsive for HEALTH_CHECK_TIMEOUT
                    // has failed. Its lease is left to run out (never revoked: the replica
                    // may wake up before its own deadline), then another may be promoted.
                    let silent_ms = clock.now_ms().saturating_sub(watch_health.load(Ordering::Relaxed));
                    if level >= 2 && !tripped && silent_ms > health_timeout_ms && manager.held_lease().is_some() {
                        tracing::error!(silent_ms, health_timeout_ms, level, "the primary is unresponsive (FAILURE_CONDITION_LEVEL >= 2): its lease is no longer renewed");
                        watch_handle.stop_renewing();
                        tripped = true;
                    }
                    tripped &= silent_ms > 2_000;
                }
            }
        }
    })
    .abort_handle();
    Ok(ClusterManager {
        ag: config.name.clone(),
        replica,
        handle,
        watch,
        health,
        thread: None,
    })
}

impl ClusterManager {
    /// Connects to etcd for `config`'s group as `replica`, once. Events (including
    /// `Event::Leader`) go to `events`; `start` is the driver's clock origin. For a CREATE
    /// (`Some(true)`) or a JOIN (`Some(false)`), the configuration is registered with, or
    /// checked against, the one in etcd.
    ///
    /// The manager runs on a thread of its own (like SQL Server's lease worker): a replica
    /// whose driver is busy or hung keeps renewing its lease, and the health check below
    /// decides, by the group's FAILURE_CONDITION_LEVEL, whether that counts as a failure.
    #[cfg(feature = "etcd")]
    pub async fn connect(
        settings: &ManagerSettings,
        config: &AgConfig,
        replica: ReplicaId,
        start: Instant,
        events: mpsc::UnboundedSender<Event>,
        creating: Option<bool>,
    ) -> Result<ClusterManager, AdminRefusal> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AdminRefusal::ClusterManager(format!("cannot start its thread: {e}")))?;
        let spawner = runtime.handle().clone();
        std::thread::Builder::new()
            .name("hadr-etcd".to_owned())
            .spawn(move || {
                // Until the ClusterManager is dropped; dropping the runtime ends its tasks.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| AdminRefusal::ClusterManager(format!("cannot start its thread: {e}")))?;
        let (settings, config) = (settings.clone(), config.clone());
        let attached = spawner
            .spawn(
                async move { attach(&settings, &config, replica, start, events, creating).await },
            )
            .await
            .map_err(|e| AdminRefusal::ClusterManager(format!("its thread failed: {e}")))?;
        attached.map(|mut manager| {
            manager.thread = Some(stop);
            manager
        })
    }

    /// Without etcd support there is no manager to connect to.
    #[cfg(not(feature = "etcd"))]
    pub async fn connect(
        settings: &ManagerSettings,
        _config: &AgConfig,
        _replica: ReplicaId,
        _start: Instant,
        _events: mpsc::UnboundedSender<Event>,
        _creating: Option<bool>,
    ) -> Result<ClusterManager, AdminRefusal> {
        settings.check()?;
        Err(AdminRefusal::NeedsClusterManager(
            "no cluster manager in this build".to_owned(),
        ))
    }

    /// The driver answers a ping: it is responsive now (`now_ms` on its clock).
    pub fn pong(&self, now_ms: u64) {
        #[cfg(feature = "etcd")]
        self.health
            .store(now_ms, std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(feature = "etcd"))]
        let _ = now_ms;
    }

    /// Stores the group's configuration in etcd (the primary, after a change).
    pub fn store_config(&self, config: &AgConfig) {
        #[cfg(feature = "etcd")]
        self.handle.store_config(config.clone());
        #[cfg(not(feature = "etcd"))]
        let _ = config;
    }

    /// Hands a request of the core to the manager; false if the manager stopped.
    pub fn send(&self, request: hadr_core::ManagerRequest) -> bool {
        #[cfg(feature = "etcd")]
        return self.handle.send(request);
        #[cfg(not(feature = "etcd"))]
        {
            let _ = request;
            false
        }
    }

    /// Stops renewing the lease this replica holds, without revoking it (a failed primary,
    /// R-FAIL-7): the core hears `LeaseLost`, and etcd lets the lease run out.
    pub fn stop_renewing(&self) {
        #[cfg(feature = "etcd")]
        self.handle.stop_renewing();
    }

    /// Asks etcd for an automatic promotion of this replica; etcd grants it only if the newest
    /// publication lists this replica as failover-ready and the failure threshold allows it.
    pub fn try_automatic_failover(&self) {
        #[cfg(feature = "etcd")]
        self.handle.try_automatic_failover();
    }
}
