//! Automatic failover on a local cluster with etcd (CLUSTER_TYPE = EXTERNAL): a client
//! workload that follows the primary, and the kill → first-commit measurement that
//! `hadr demo --cluster etcd`, `hadr bench failover` and the end-to-end tests share.

use crate::local_cluster::{ClusterError, LocalCluster};
use hadr_manager::local::LocalEtcd;
use hadr_node::api::Client;
use hadr_node::node::DatabaseRef;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One acknowledged commit, as the client saw it.
#[derive(Clone, Debug)]
pub struct Ack {
    /// When the client received the acknowledgement.
    pub at: Instant,
    /// The replica that acknowledged it.
    pub replica: usize,
    /// The key written (its value is `value of <key>`).
    pub key: String,
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    refused: AtomicU64,
    indefinite: AtomicU64,
}

/// Clients that commit one-row transactions back to back on whichever replica is the primary:
/// a client that is refused (not the primary) or loses its connection tries the next replica.
pub struct Workload {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a workload saw.
#[derive(Debug, Default)]
pub struct WorkloadReport {
    /// Every acknowledged commit, in the order the acknowledgements arrived.
    pub acks: Vec<Ack>,
    /// Commits refused (definite: not committed).
    pub refused: u64,
    /// Commits whose outcome is unknown (indefinite, connection lost, timed out).
    pub indefinite: u64,
}

impl WorkloadReport {
    /// The acknowledged writes, key → value.
    pub fn acknowledged(&self) -> BTreeMap<String, String> {
        self.acks
            .iter()
            .map(|a| (a.key.clone(), format!("value of {}", a.key)))
            .collect()
    }
}

impl Workload {
    /// Starts `clients` clients against the replicas whose client APIs are `replicas`, first
    /// trying `first`.
    pub fn start(replicas: Vec<SocketAddr>, first: usize, clients: usize) -> Workload {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let txn = Arc::new(AtomicU32::new(1));
        let tasks = (0..clients)
            .map(|c| {
                let (replicas, shared, stop, txn) =
                    (replicas.clone(), shared.clone(), stop.clone(), txn.clone());
                tokio::spawn(client_loop(c, replicas, first, shared, stop, txn))
            })
            .collect();
        Workload {
            shared,
            stop,
            tasks,
        }
    }

    /// Acknowledgements received so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.shared
            .acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until a commit is acknowledged after `since` by a replica other than
    /// `other_than`, for at most `seconds`; returns it. (An acknowledgement of a replica
    /// killed at `since` may still arrive after it: it was sent before.)
    pub async fn first_ack_after(
        &self,
        since: Instant,
        other_than: Option<usize>,
        seconds: u64,
    ) -> Option<Ack> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            let found = self
                .shared
                .acks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|a| a.at > since && Some(a.replica) != other_than)
                .cloned();
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Stops the clients and reports.
    pub async fn stop(self) -> WorkloadReport {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        WorkloadReport {
            acks: self
                .shared
                .acks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            refused: self.shared.refused.load(Ordering::Relaxed),
            indefinite: self.shared.indefinite.load(Ordering::Relaxed),
        }
    }
}

async fn client_loop(
    c: usize,
    replicas: Vec<SocketAddr>,
    first: usize,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    txn: Arc<AtomicU32>,
) {
    let db = DatabaseRef::Name("db1".to_owned());
    let mut target = first;
    let mut client: Option<Client> = None;
    let mut n = 0u64;
    let next = |t: usize| (t + 1) % replicas.len();
    while !stop.load(Ordering::Relaxed) {
        let Some(connected) = client.as_mut() else {
            match tokio::time::timeout(
                Duration::from_millis(500),
                Client::connect(replicas[target]),
            )
            .await
            {
                Ok(Ok(connected)) => client = Some(connected),
                _ => {
                    target = next(target);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            continue;
        };
        n += 1;
        let key = format!("c{c}-{n}");
        let value = format!("value of {key}");
        let id = txn.fetch_add(1, Ordering::Relaxed);
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            connected.transact(&db, id, &[(key.clone(), value)]),
        )
        .await;
        match reply {
            Ok(Ok(reply)) if reply.outcome == "committed" => {
                shared
                    .acks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Ack {
                        at: Instant::now(),
                        replica: target,
                        key,
                    });
                continue;
            }
            Ok(Ok(reply)) if reply.outcome == "refused" => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                shared.indefinite.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Not the primary (any more), or gone: try the next replica.
        client = None;
        target = next(target);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The replica that reports itself PRIMARY, if exactly one among the running ones does.
pub async fn primary(cluster: &LocalCluster) -> Option<usize> {
    let mut found = None;
    for i in 0..cluster.replicas.len() {
        if cluster.role(i).await.as_deref() == Some("PRIMARY") {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    found
}

/// Waits (at most `seconds`) until a replica other than `old` is PRIMARY.
pub async fn wait_new_primary(
    cluster: &LocalCluster,
    old: usize,
    seconds: u64,
) -> Result<usize, ClusterError> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        for i in (0..cluster.replicas.len()).filter(|&i| i != old) {
            if cluster.role(i).await.as_deref() == Some("PRIMARY") {
                return Ok(i);
            }
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout {
                what: format!("a replica other than R{old} to become PRIMARY"),
                seconds,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts one etcd member under `dir/etcd` on host `h` of `network`: in that host's network
/// namespace, listening on its address, dying with this process.
pub fn etcd_on_host(
    dir: &std::path::Path,
    network: &crate::netns::Network,
    h: usize,
) -> Result<LocalEtcd, String> {
    let enter = network.entry(h);
    let host = std::net::IpAddr::V4(network.address(h));
    LocalEtcd::start_with(&dir.join("etcd"), 1, Some(host), &|command| {
        crate::cleanup::die_with_parent(command);
        enter(command);
    })
}

/// Starts a local etcd of `members` members under `dir/etcd`.
pub fn etcd(dir: &std::path::Path, members: usize) -> Result<LocalEtcd, ClusterError> {
    LocalEtcd::start_with(&dir.join("etcd"), members, None, &|command| {
        crate::cleanup::die_with_parent(command);
    })
    .map_err(ClusterError::Etcd)
}

/// Starts `n` replicas on `etcd` and creates an EXTERNAL group of `modes` with a lease of
/// `lease_ms` and the given failure threshold.
pub async fn external_cluster(
    exe: &std::path::Path,
    dir: &std::path::Path,
    etcd: &LocalEtcd,
    modes: &[&str],
    lease_ms: u32,
    failover_threshold: u32,
) -> Result<LocalCluster, ClusterError> {
    let mut cluster = LocalCluster::new(exe, dir, modes.len())?;
    for i in 0..modes.len() {
        cluster.set_etcd_endpoints(i, &etcd.endpoints())?;
        cluster.start(i)?;
    }
    for i in 0..modes.len() {
        cluster.wait_ready(i).await?;
    }
    let mut config = cluster.external_config(modes, lease_ms);
    config["policy"] = serde_json::json!({ "failover_threshold": failover_threshold });
    cluster.create_group_from(&config, modes).await?;
    Ok(cluster)
}
