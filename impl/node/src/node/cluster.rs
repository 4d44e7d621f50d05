//! The cluster manager of `CLUSTER_TYPE = EXTERNAL`: etcd, through `hadr-manager`, behind the
//! `etcd` cargo feature (building `etcd-client` needs `protoc`). Without the feature, an
//! EXTERNAL group is refused with [`AdminRefusal::NeedsClusterManager`].
//!
//! What the driver gets from here:
//! - [`ClusterManager::send`]: the core's `ManagerRequest`s, answered later by
//!   `Event::Manager` (promotion grants, lease renewals and losses, publication receipts);
//! - `Event::Leader`: every change of the `leader` key in etcd, and every second while there
//!   is none, so that the driver can decide on an automatic failover (R-FAIL-2/7).
//!
//! The driver's side (`impl State` below): attaching the manager for a CREATE or JOIN, or at
//! start-up of a recovered replica; storing the group's configuration after a change; asking
//! for an automatic failover.

use super::error::{AdminAnswer, AdminRefusal};
use super::{Event, State};
use hadr_core::AdminCommand;
use hadr_types::{AgConfig, ClusterType, ReplicaId};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

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
    use std::sync::atomic::AtomicU64;
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
    let leader = manager.watch_leader();
    let sink = events.clone();
    let handle = manager
        .clone()
        .spawn(move |event| sink.send(Event::Manager(event)).is_ok());
    let health = std::sync::Arc::new(AtomicU64::new(clock.now_ms()));
    let watch = Watch {
        manager,
        clock,
        health: health.clone(),
        handle: handle.clone(),
        level: config.failure_condition_level,
        health_timeout_ms: u64::from(config.health_check_timeout_ms),
    };
    // On the manager's runtime, in the replica's span (the caller's, see `connect`).
    let watch = tokio::spawn(
        watch
            .run(leader, events)
            .instrument(tracing::Span::current()),
    )
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

/// What the manager's watch task needs: it tells the driver who holds the lease, whether etcd
/// is reachable, and checks the driver's health.
#[cfg(feature = "etcd")]
struct Watch {
    manager: std::sync::Arc<hadr_manager::EtcdManager>,
    clock: hadr_manager::Clock,
    /// When the driver last answered a ping (see [`ClusterManager::pong`]).
    health: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handle: hadr_manager::ManagerHandle,
    /// The group's FAILURE_CONDITION_LEVEL.
    level: u8,
    /// The group's HEALTH_CHECK_TIMEOUT.
    health_timeout_ms: u64,
}

#[cfg(feature = "etcd")]
impl Watch {
    /// Until the driver is gone: every change of the lease holder, and every second the
    /// holder again while there is none (an automatic failover that etcd could not grant, a
    /// timeout, is tried again), a ping of the driver (it answers by stamping `health`) and
    /// whether etcd's majority is reachable.
    async fn run(
        self,
        mut leader: mpsc::UnboundedReceiver<hadr_manager::LeaderObservation>,
        events: mpsc::UnboundedSender<Event>,
    ) {
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
                    let reach = match self.manager.recorded_primary().await {
                        Ok(primary) => {
                            recorded = primary.or(recorded);
                            hadr_core::ManagerEvent::Reachable { primary: recorded }
                        }
                        Err(_) => hadr_core::ManagerEvent::Unreachable,
                    };
                    if events.send(Event::Manager(reach)).is_err() {
                        return;
                    }
                    tripped = self.check_health(tripped);
                }
            }
        }
    }

    /// R-FAIL-7 level 2 and up: a primary unresponsive for HEALTH_CHECK_TIMEOUT has failed.
    /// Its lease is left to run out (never revoked: the replica may wake up before its own
    /// deadline), then another may be promoted. Returns whether the check has tripped (and
    /// not been reset by two seconds of health since).
    fn check_health(&self, mut tripped: bool) -> bool {
        use std::sync::atomic::Ordering;
        let silent_ms = self
            .clock
            .now_ms()
            .saturating_sub(self.health.load(Ordering::Relaxed));
        let timeout_ms = self.health_timeout_ms;
        if self.level >= 2
            && !tripped
            && silent_ms > timeout_ms
            && self.manager.held_lease().is_some()
        {
            tracing::error!(silent_ms, health_timeout_ms = timeout_ms, level = self.level, "the primary is unresponsive (FAILURE_CONDITION_LEVEL >= 2): its lease is no longer renewed");
            self.handle.stop_renewing();
            tripped = true;
        }
        tripped && silent_ms > 2_000
    }
}

impl ClusterManager {
    /// Connects to etcd for `config`'s group as `replica`, once. Events (including
    /// `Event::Leader`) go to `events`; `start` is the driver's clock origin. For a CREATE
    /// (`Some(true)`) or a JOIN (`Some(false)`), the configuration is registered with, or
    /// checked against, the one in etcd.
    ///
    /// The manager runs on a thread of its own (like SQL Server's lease worker): a replica
    /// whose driver is busy or hung keeps renewing its lease, and the health check below
    /// decides, by the group's FAILURE_CONDITION_LEVEL, whether that counts as a failure. Its
    /// tasks run in the caller's span (the replica's).
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
        let attach =
            async move { attach(&settings, &config, replica, start, events, creating).await };
        let attached = spawner
            .spawn(attach.instrument(tracing::Span::current()))
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

    /// Asks etcd for the promotion of this replica that the policy chose (`Automatic` or
    /// `Restore`); etcd's policy decides whether it is granted.
    pub fn ask_promotion(&self, kind: hadr_core::PromotionKind) {
        #[cfg(feature = "etcd")]
        self.handle.ask_promotion(kind);
        #[cfg(not(feature = "etcd"))]
        let _ = kind;
    }
}

/// The driver's side of the cluster manager: attaching it, keeping the group's configuration
/// current in etcd, and asking for an automatic failover when nobody holds the lease.
impl State {
    /// The group and this replica's id, when `command` needs a cluster manager that is not
    /// attached yet (or is attached for another group or replica).
    pub(super) fn manager_needed(&self, command: &AdminCommand) -> Option<(AgConfig, ReplicaId)> {
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
    pub(super) fn store_config_if_changed(&mut self) {
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
    pub(super) fn attach_manager_on_recovery(&self) {
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
        let task = async move {
            loop {
                match ClusterManager::connect(&settings, &config, me, start, events.clone(), None)
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
        };
        tokio::spawn(task.instrument(self.span.clone()));
    }

    /// R-FAIL-2/7: nobody holds the primary's lease. The failure condition of every level
    /// (1: server down or lease expired) has fired for the old primary; the manager's policy
    /// says what this replica asks for ([`hadr_core::policy::asks_for_automatic_failover`]:
    /// an automatic failover, which etcd grants only to a failover-ready replica of the newest
    /// publication within the failure threshold, or its restore as the recorded primary).
    pub(super) fn consider_automatic_failover(&mut self, leader: Option<Leader>) {
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
        let (health_failed, disk_stalled) =
            (self.faults.health_failed(), self.faults.disk_stalled());
        // A replica holding a damaged (SUSPECT) copy may lack acknowledged commits: it is
        // not a candidate, as a failed one (R-COMMIT-6).
        let damaged = self.replica.damaged_databases();
        let ask = hadr_core::policy::asks_for_automatic_failover(
            mine,
            self.replica.role(),
            health_failed.is_some() || !damaged.is_empty(),
            disk_stalled,
        );
        match ask {
            Some(kind) => {
                tracing::info!(replica = %self.name, ?kind, "no primary holds the lease: asking etcd for a promotion");
                manager.ask_promotion(kind);
            }
            None => tracing::debug!(
                replica = %self.name,
                health_failed = ?health_failed,
                disk_stalled,
                ?damaged,
                "no primary holds the lease: not a candidate"
            ),
        }
    }

    /// Attaches the cluster manager `command` needs (off this task), then lets the command go
    /// on (`Event::AdminAttached`); a manager that cannot be attached answers it.
    pub(super) fn attach_then(
        &self,
        config: AgConfig,
        me: ReplicaId,
        command: AdminCommand,
        reply: oneshot::Sender<AdminAnswer>,
    ) {
        let (settings, start, events) = (
            self.manager_settings.clone(),
            self.start,
            self.events.clone(),
        );
        let creating = matches!(command, AdminCommand::CreateAvailabilityGroup(_));
        let task = async move {
            let attached = ClusterManager::connect(
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
        };
        tokio::spawn(task.instrument(self.span.clone()));
    }
}
