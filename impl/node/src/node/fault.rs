//! Fault injection: the environment faults of the model, injected into a real replica so that
//! tests and the conformance adapter can drive them (`POST /debug/*`, refused unless the
//! process runs with `HADR_FAULT_INJECTION=1`; see `docs/node.md`).
//!
//! ```text
//!  /debug/partition ───▶ Faults::partitioned (watch) ─▶ peers.rs: no dial, prefaces refused,
//!                                                       frames held both ways (a silent cut)
//!  /debug/drop-log ────▶ Faults::drop_log ────────────▶ driver: the first record of the next
//!                                                       Log block to (peer, database) is not
//!                                                       sent (R-SYNC-1 gap)
//!  /debug/manager ─────▶ ManagerRelay (own thread) ───▶ etcd connections closed, new ones
//!                                                       refused, until healed
//!  /debug/health-fault ▶ driver: the lease is no longer renewed (as HEALTH_CHECK_TIMEOUT)
//!  /debug/disk-stall ──▶ Faults::disk_stalled ────────▶ driver: fsyncs, redo and reverts
//!                                                       never done; no promotion of it
//! ```

use super::{DatabaseRef, State};
use hadr_types::{DatabaseId, ReplicaId, Role};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tokio::sync::watch;

/// The environment variable that enables fault injection: `1` every route, `process` only
/// the faults of the process itself (stall, drop-log, health-fault, disk-stall), for a harness
/// that makes the network's faults (partitions, cuts from the manager) from outside.
pub(crate) const ENV: &str = "HADR_FAULT_INJECTION";

/// Whether this process runs with `HADR_FAULT_INJECTION=1` or `=process`.
pub(crate) fn enabled() -> bool {
    matches!(std::env::var(ENV).as_deref(), Ok("1" | "process"))
}

/// Whether this process injects network faults itself (`HADR_FAULT_INJECTION=1`): the
/// `/debug/partition` and `/debug/manager` routes.
pub(crate) fn network_enabled() -> bool {
    std::env::var(ENV).as_deref() == Ok("1")
}

/// The peers this replica is partitioned from, as the connection tasks watch them.
pub(crate) type Partitioned = watch::Receiver<BTreeSet<ReplicaId>>;

/// A fault a `/debug/*` route asks the driver to inject.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Cut (or heal) the network between this replica and another.
    Partition { peer: String, cut: bool },
    /// Cut (or heal) the network between this replica and the cluster manager.
    Manager { cut: bool },
    /// Lose the next log record this primary sends to `peer` for `database`.
    DropLog { peer: String, database: DatabaseRef },
    /// sp_server_diagnostics reports a failure condition of this level (R-FAIL-7).
    Health { level: u8 },
    /// This secondary's log disk stops completing writes, until the process dies.
    DiskStall,
}

/// Why the driver did not inject a fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FaultRefusal {
    /// The replica has no group yet, so no peers and no databases.
    #[error("this replica is not in an availability group yet: POST /ag/create or /ag/join")]
    NotInAvailabilityGroup,
    /// No replica of the group has that name.
    #[error("no replica named '{0}' in this availability group")]
    UnknownReplicaName(String),
    /// The peer named is this replica.
    #[error("'{0}' is this replica: name another replica of the group")]
    ThisReplica(String),
    /// No database of the group has that name or index.
    #[error("no availability database '{0}' in this group: give its name or its index (0 for the first)")]
    UnknownDatabase(String),
    /// Only a primary sends log blocks.
    #[error("this replica is {role}: only the primary sends log blocks; ask the primary")]
    NotPrimary {
        /// The replica's role.
        role: String,
    },
    /// There is no cluster manager whose connection could be cut.
    #[error("{0}")]
    NoClusterManager(String),
    /// The driver stopped.
    #[error("the replica is shutting down")]
    ShuttingDown,
}

/// What the driver answers a fault request: a small JSON reply, or why not.
pub(crate) type FaultAnswer = Result<Value, FaultRefusal>;

/// The faults in force; the driver's.
pub(crate) struct Faults {
    /// The peers this replica is partitioned from (`/debug/partition`).
    partitioned: watch::Sender<BTreeSet<ReplicaId>>,
    /// (peer, database) whose next log block is dropped (`/debug/drop-log`).
    drop_log: BTreeSet<(ReplicaId, DatabaseId)>,
    /// The relay to etcd that `/debug/manager` cuts, or why there is none.
    #[cfg(feature = "etcd")]
    relay: Result<relay::ManagerRelay, String>,
    /// The level of the health fault that failed this replica as a primary, for the life of
    /// the process (`/debug/health-fault`).
    health_failed: Option<u8>,
    /// The log disk completes no write any more, for the life of the process
    /// (`/debug/disk-stall`).
    disk_stalled: bool,
}

impl Faults {
    /// No fault in force. With network fault injection enabled and etcd endpoints configured (etcd
    /// build), starts the relay the manager will connect through and returns its endpoints
    /// (the manager must connect to them instead of `etcd_endpoints`).
    pub(crate) fn new(etcd_endpoints: &[String]) -> (Faults, Option<Vec<String>>) {
        #[cfg(feature = "etcd")]
        let (relay, relayed) = if !network_enabled() {
            (
                Err(format!(
                    "network fault injection is off: start the replica with {ENV}=1"
                )),
                None,
            )
        } else if etcd_endpoints.is_empty() {
            (
                Err("no etcd endpoint is configured in this replica's node.toml: it has no cluster manager".to_owned()),
                None,
            )
        } else {
            match relay::ManagerRelay::start(etcd_endpoints) {
                Ok(relay) => {
                    let endpoints = relay.endpoints().to_vec();
                    tracing::info!(etcd = ?etcd_endpoints, relay = ?endpoints, "fault injection: etcd is reached through a relay that /debug/manager can cut");
                    (Ok(relay), Some(endpoints))
                }
                Err(why) => {
                    tracing::warn!(%why, "fault injection: no relay to etcd; /debug/manager is unavailable");
                    (Err(why), None)
                }
            }
        };
        #[cfg(not(feature = "etcd"))]
        let relayed = {
            let _ = etcd_endpoints;
            None
        };
        let faults = Faults {
            partitioned: watch::channel(BTreeSet::new()).0,
            drop_log: BTreeSet::new(),
            #[cfg(feature = "etcd")]
            relay,
            health_failed: None,
            disk_stalled: false,
        };
        (faults, relayed)
    }

    /// A view of the partitions, for the peer network.
    pub(crate) fn partitioned(&self) -> Partitioned {
        self.partitioned.subscribe()
    }

    /// Whether a health fault is failing this primary (it renews no lease and asks for no
    /// automatic promotion until it has stepped down).
    pub(crate) fn health_failed(&self) -> Option<u8> {
        self.health_failed
    }

    /// The health fault has been acted on: the primary stepped down, and is healthy again.
    pub(crate) fn clear_health_fault(&mut self) {
        self.health_failed = None;
    }

    /// Whether this replica's log disk is stalled: its storage requests are held forever, it
    /// is not promoted (planned, forced or automatic).
    pub(crate) fn disk_stalled(&self) -> bool {
        self.disk_stalled
    }

    /// The primary stepped down: the lost-block faults armed on its sending end with its term
    /// (as the spec's LoseLogBlock).
    pub(crate) fn clear_drop_log(&mut self) {
        self.drop_log.clear();
    }

    /// Whether the first record of the log block about to be sent to `peer` for `database` is
    /// to be lost; the fault is used up.
    pub(crate) fn take_drop_log(&mut self, peer: ReplicaId, database: DatabaseId) -> bool {
        self.drop_log.remove(&(peer, database))
    }
}

impl State {
    /// Injects a fault (the `/debug/*` routes).
    pub(super) fn inject(&mut self, fault: Fault) -> FaultAnswer {
        match fault {
            Fault::Partition { peer, cut } => self.partition(&peer, cut),
            Fault::Manager { cut } => self.cut_manager(cut),
            Fault::DropLog { peer, database } => self.drop_next_log(&peer, &database),
            Fault::Health { level } => self.health_fault(level),
            Fault::DiskStall => self.disk_stall(),
        }
    }

    /// The id and configured name of the peer called `name`.
    fn peer_named(&self, name: &str) -> Result<(ReplicaId, String), FaultRefusal> {
        let config = self
            .replica
            .config()
            .ok_or(FaultRefusal::NotInAvailabilityGroup)?;
        let index = config
            .replicas
            .iter()
            .position(|r| r.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| FaultRefusal::UnknownReplicaName(name.to_owned()))?;
        let peer = ReplicaId(index as u8);
        if Some(peer) == self.replica.id() {
            return Err(FaultRefusal::ThisReplica(name.to_owned()));
        }
        Ok((peer, config.replicas[index].name.clone()))
    }

    /// While cut, this replica exchanges nothing with `peer`, as in a silent network partition
    /// (nobody is told; the session timeout notices, R-HEALTH-1): it does not dial it, refuses
    /// its connections, and the tasks of an open connection hold what they read and what they
    /// are to write. Healed while the connection is open, the held frames flow in order; once
    /// either side closed it (its session timed out), they are lost with it and the replicas
    /// connect again.
    fn partition(&mut self, name: &str, cut: bool) -> FaultAnswer {
        let (peer, name) = self.peer_named(name)?;
        let changed = self.faults.partitioned.send_if_modified(|partitioned| {
            if cut {
                partitioned.insert(peer)
            } else {
                partitioned.remove(&peer)
            }
        });
        tracing::warn!(peer = %name, cut, changed, "fault injection: network partition from a peer replica");
        if !cut {
            if let Some(net) = &self.net {
                net.redial_now();
            }
        }
        Ok(json!({
            "result": if cut { "cut" } else { "healed" },
            "peer": name,
            "changed": changed,
        }))
    }

    /// Arms the loss of the next log block this primary sends to `peer` for `database`, as a
    /// lost packet: the secondary sees the gap at the block after it and asks for the rest
    /// again (R-SYNC-1). Only blocks sent on an open connection count.
    fn drop_next_log(&mut self, name: &str, database: &DatabaseRef) -> FaultAnswer {
        let (peer, name) = self.peer_named(name)?;
        let databases = self
            .replica
            .config()
            .map(|c| c.databases.clone())
            .unwrap_or_default();
        let index = match database {
            DatabaseRef::Id(id) => Some(usize::from(*id)).filter(|i| *i < databases.len()),
            DatabaseRef::Name(wanted) => databases
                .iter()
                .position(|d| d.eq_ignore_ascii_case(wanted)),
        };
        let Some(index) = index else {
            let given = match database {
                DatabaseRef::Id(id) => id.to_string(),
                DatabaseRef::Name(name) => name.clone(),
            };
            return Err(FaultRefusal::UnknownDatabase(given));
        };
        let role = self.replica.role();
        if role != Some(Role::Primary) {
            return Err(FaultRefusal::NotPrimary {
                role: role.map_or("not in a role", |r| r.as_str()).to_owned(),
            });
        }
        let database = DatabaseId(index as u8);
        let armed = self.faults.drop_log.insert((peer, database));
        tracing::warn!(peer = %name, %database, "fault injection: the next log block to the peer will be dropped");
        Ok(json!({
            "result": "armed",
            "peer": name,
            "database": databases[index],
            "already_armed": !armed,
        }))
    }

    /// While cut, every connection of this replica to etcd is closed and new ones are refused
    /// (by the relay the manager connects through): lease renewals, promotion requests,
    /// publications and the reachability read fail, so the core hears `LeaseLost` (a primary)
    /// and `Unreachable`. Healed, the manager's next requests connect again.
    fn cut_manager(&mut self, cut: bool) -> FaultAnswer {
        if let Some(config) = self.replica.config() {
            if !config.cluster_type.has_manager() {
                return Err(FaultRefusal::NoClusterManager(format!(
                    "this group is CLUSTER_TYPE = {}: it has no cluster manager to cut off",
                    config.cluster_type
                )));
            }
        }
        #[cfg(feature = "etcd")]
        match &self.faults.relay {
            Ok(relay) => {
                let changed = relay.set_cut(cut);
                tracing::warn!(
                    cut,
                    changed,
                    "fault injection: network partition from the cluster manager (etcd)"
                );
                Ok(json!({ "result": if cut { "cut" } else { "healed" }, "changed": changed }))
            }
            Err(why) => Err(FaultRefusal::NoClusterManager(format!(
                "cannot cut this replica off from etcd: {why}"
            ))),
        }
        #[cfg(not(feature = "etcd"))]
        {
            let _ = cut;
            Err(FaultRefusal::NoClusterManager(
                "this build has no cluster manager (etcd): build hadr with `--features etcd`"
                    .to_owned(),
            ))
        }
    }

    /// R-FAIL-7: sp_server_diagnostics reports a failure condition of `level`. At or below
    /// the group's FAILURE_CONDITION_LEVEL, on the primary of a group with a cluster manager,
    /// the lease is no longer renewed (as after HEALTH_CHECK_TIMEOUT): the core hears
    /// `LeaseLost`, etcd lets the lease run out, and a failover-ready secondary is promoted.
    /// The condition is one event, as the spec's `HealthFault`: once the primary has stepped
    /// down it is healthy again (a lease it is granted later is renewed). Otherwise nothing
    /// happens.
    /// Stalls this secondary's log disk: from now on no fsync, redo or revert it asks for
    /// completes (an fsync that never returns; appends still reach the page cache), so what it receives is never hardened and
    /// never acknowledged (R-COMMIT-2); it refuses to become primary. Only the process's death
    /// ends it (SIGKILL, then a restart, finds the disk working and the log as last hardened).
    /// On a replica that is not a secondary it has no effect (the spec's DiskStall is a
    /// secondary's fault).
    fn disk_stall(&mut self) -> FaultAnswer {
        self.replica
            .config()
            .ok_or(FaultRefusal::NotInAvailabilityGroup)?;
        let role = self.replica.role();
        if role != Some(Role::Secondary) {
            let reason = format!(
                "this replica is {}, not a secondary",
                role.map_or("not in a role", |r| r.as_str())
            );
            tracing::warn!(%reason, "fault injection: a disk stall with no effect");
            return Ok(json!({ "result": "no_effect", "reason": reason }));
        }
        let already = std::mem::replace(&mut self.faults.disk_stalled, true);
        tracing::warn!("fault injection: the log disk is stalled until the process dies");
        Ok(json!({ "result": "stalled", "already_stalled": already }))
    }

    fn health_fault(&mut self, level: u8) -> FaultAnswer {
        let config = self
            .replica
            .config()
            .ok_or(FaultRefusal::NotInAvailabilityGroup)?;
        let configured = config.failure_condition_level;
        let reason = if level > configured {
            Some(format!("level {level} is above the group's FAILURE_CONDITION_LEVEL {configured}: not a failure condition"))
        } else if !config.cluster_type.has_manager() {
            Some(format!(
                "CLUSTER_TYPE = {}: no cluster manager fails the primary over",
                config.cluster_type
            ))
        } else if self.replica.role() != Some(Role::Primary) {
            Some(format!(
                "this replica is {}, not the primary",
                self.replica.role().map_or("not in a role", |r| r.as_str())
            ))
        } else if self.manager.is_none() {
            Some("the cluster manager is not attached".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            tracing::warn!(level, failure_condition_level = configured, %reason, "fault injection: a health fault with no effect");
            return Ok(json!({
                "result": "no_effect",
                "level": level,
                "failure_condition_level": configured,
                "reason": reason,
            }));
        }
        self.faults.health_failed = Some(self.faults.health_failed.map_or(level, |l| l.min(level)));
        if let Some(manager) = &self.manager {
            manager.stop_renewing();
        }
        tracing::error!(
            level,
            failure_condition_level = configured,
            "fault injection: a failure condition (R-FAIL-7): the primary's lease is no longer renewed"
        );
        Ok(json!({
            "result": "lease_not_renewed",
            "level": level,
            "failure_condition_level": configured,
        }))
    }
}

/// The relay between a replica and etcd that `/debug/manager` cuts.
#[cfg(feature = "etcd")]
mod relay {
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{oneshot, watch};
    use tracing::Instrument;

    /// One loopback listener per etcd endpoint, relaying each connection to it byte for byte,
    /// on a thread of its own (a stalled driver must not stall the lease renewals). While cut,
    /// every relayed connection is closed and new ones are closed as soon as accepted.
    pub(crate) struct ManagerRelay {
        cut: watch::Sender<bool>,
        endpoints: Vec<String>,
        /// Dropping it stops the relay's thread.
        _stop: oneshot::Sender<()>,
    }

    impl ManagerRelay {
        /// Starts relaying to each of `etcd_endpoints` (`http://host:port`).
        pub(crate) fn start(etcd_endpoints: &[String]) -> Result<ManagerRelay, String> {
            let mut routes = Vec::new();
            let mut endpoints = Vec::new();
            for url in etcd_endpoints {
                let upstream = host_port(url).ok_or_else(|| {
                    format!("the etcd endpoint '{url}' is not of the form http://host:port, so it cannot be relayed")
                })?;
                let listener = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| format!("cannot listen for a relay to {url}: {e}"))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| format!("cannot listen for a relay to {url}: {e}"))?;
                endpoints.push(format!("http://{local}"));
                routes.push((listener, upstream));
            }
            let (cut, watching) = watch::channel(false);
            let (stop, stopped) = oneshot::channel::<()>();
            // The relay's tasks run in the replica's span (the caller's).
            let span = tracing::Span::current();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the relay's runtime: {e}"))?;
            std::thread::Builder::new()
                .name("hadr-etcd-relay".to_owned())
                .spawn(move || {
                    runtime.block_on(async move {
                        for (listener, upstream) in routes {
                            match TcpListener::from_std(listener) {
                                Ok(listener) => {
                                    let relay =
                                        relay(listener, upstream, watching.clone(), span.clone());
                                    tokio::spawn(relay.instrument(span.clone()));
                                }
                                Err(error) => {
                                    tracing::error!(%upstream, %error, "the relay to etcd cannot accept");
                                }
                            }
                        }
                        // Until the ManagerRelay is dropped; dropping the runtime ends the tasks.
                        let _ = stopped.await;
                    });
                })
                .map_err(|e| format!("cannot start the relay's thread: {e}"))?;
            Ok(ManagerRelay {
                cut,
                endpoints,
                _stop: stop,
            })
        }

        /// The relay's URLs, one per etcd endpoint, in order.
        pub(crate) fn endpoints(&self) -> &[String] {
            &self.endpoints
        }

        /// Cuts or heals; true if that changed anything.
        pub(crate) fn set_cut(&self, cut: bool) -> bool {
            self.cut.send_replace(cut) != cut
        }
    }

    /// The `host:port` of an `http://host:port` URL (a trailing `/` allowed).
    fn host_port(url: &str) -> Option<String> {
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .and_then(|_| url.get(7..))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':')?;
        (!host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok())
            .then(|| rest.to_owned())
    }

    async fn relay(
        listener: TcpListener,
        upstream: String,
        cut: watch::Receiver<bool>,
        span: tracing::Span,
    ) {
        loop {
            let mut client = match listener.accept().await {
                Ok((client, _)) => client,
                Err(error) => {
                    tracing::warn!(%upstream, %error, "the relay to etcd failed to accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            if *cut.borrow() {
                tracing::debug!(%upstream, "fault injection: a connection to etcd refused (cut)");
                continue;
            }
            let mut cut = cut.clone();
            let upstream = upstream.clone();
            let connection = async move {
                let relayed = async {
                    let mut server = TcpStream::connect(&upstream).await?;
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::io::copy_bidirectional(&mut client, &mut server).await
                };
                tokio::select! {
                    result = relayed => {
                        if let Err(error) = result {
                            tracing::debug!(%upstream, %error, "a relayed connection to etcd ended");
                        }
                    }
                    _ = cut.wait_for(|cut| *cut) => {
                        tracing::debug!(%upstream, "fault injection: a connection to etcd closed (cut)");
                    }
                }
            };
            tokio::spawn(connection.instrument(span.clone()));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::host_port;

        #[test]
        fn only_http_host_port_endpoints_are_relayed() {
            assert_eq!(
                host_port("http://127.0.0.1:2379").as_deref(),
                Some("127.0.0.1:2379")
            );
            assert_eq!(
                host_port("HTTP://etcd.local:2379/").as_deref(),
                Some("etcd.local:2379")
            );
            for bad in [
                "https://127.0.0.1:2379",
                "127.0.0.1:2379",
                "http://:2379",
                "http://host",
                "http://host:x",
                "http://h",
            ] {
                assert_eq!(host_port(bad), None, "{bad}");
            }
        }
    }
}
