//! Automatic failover on a local cluster with etcd (CLUSTER_TYPE = EXTERNAL): a client
//! workload that follows the primary, and the kill → first-commit measurement that
//! `hadr demo --cluster etcd`, `hadr bench failover` and the end-to-end tests share.

use crate::cli::{DemoArgs, FailoverBenchArgs};
use crate::local_cluster::{missing_writes, ClusterError, LocalCluster};
use crate::Exit;
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

fn etcd(dir: &std::path::Path, members: usize) -> Result<LocalEtcd, ClusterError> {
    LocalEtcd::start(&dir.join("etcd"), members).map_err(ClusterError::Etcd)
}

/// Starts `n` replicas on `etcd` and creates an EXTERNAL group of `modes` with a lease of
/// `lease_ms` and the given failure threshold.
async fn external_cluster(
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

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

/// `hadr demo --cluster etcd`: automatic failover under etcd; exit 0 when no acknowledged
/// commit was lost.
pub async fn demo(
    exe: &std::path::Path,
    dir: &std::path::Path,
    args: &DemoArgs,
) -> Result<Exit, ClusterError> {
    const LEASE_MS: u32 = 2000;
    let modes = [
        "SYNCHRONOUS_COMMIT",
        "SYNCHRONOUS_COMMIT",
        "ASYNCHRONOUS_COMMIT",
    ];
    step(1, "start etcd (the cluster manager) and three replicas");
    let etcd = etcd(dir, 1)?;
    println!(
        "   etcd {}  (log {})",
        etcd.endpoint(0),
        etcd.log(0).display()
    );
    step(
        2,
        "CREATE AVAILABILITY GROUP on R0 and JOIN on R1, R2: CLUSTER_TYPE = EXTERNAL, lease 2 s",
    );
    println!("   R0, R1: SYNCHRONOUS_COMMIT, FAILOVER_MODE = EXTERNAL (automatic through etcd)");
    println!("   R2: ASYNCHRONOUS_COMMIT, FAILOVER_MODE = MANUAL");
    let mut cluster = external_cluster(exe, dir, &etcd, &modes, LEASE_MS, 2).await?;
    crate::demo_cmd::print_views(&cluster, 0).await;

    step(
        3,
        &format!(
            "client workload ({} clients, following the primary) for {:.1} s; SIGKILL R0 halfway",
            args.clients, args.seconds
        ),
    );
    let addresses: Vec<SocketAddr> = cluster.replicas.iter().map(|r| r.client).collect();
    let workload = Workload::start(addresses, 0, usize::from(args.clients));
    tokio::time::sleep(Duration::from_secs_f64(args.seconds / 2.0)).await;
    println!(
        "   {} commits acknowledged so far; SIGKILL R0",
        workload.acks().len()
    );
    let killed = Instant::now();
    cluster.kill(0);

    step(
        4,
        "etcd lets R0's lease expire; R1 (SYNCHRONIZED, failover-ready) is promoted",
    );
    let new = wait_new_primary(&cluster, 0, 30).await?;
    let promoted_ms = killed.elapsed().as_millis();
    let first = workload
        .first_ack_after(killed, Some(0), 30)
        .await
        .ok_or_else(|| ClusterError::Timeout {
            what: "a commit acknowledged after the failover".to_owned(),
            seconds: 30,
        })?;
    println!("   R{new} is PRIMARY {promoted_ms} ms after the kill (no operator command)");
    println!(
        "   kill → first acknowledged commit on R{}: {} ms",
        first.replica,
        first.at.duration_since(killed).as_millis()
    );
    tokio::time::sleep(Duration::from_secs_f64(args.seconds / 2.0)).await;
    let report = workload.stop().await;
    println!(
        "   client outcomes: {} committed (acknowledged), {} refused (definite), {} unknown (indefinite or connection lost)",
        report.acks.len(),
        report.refused,
        report.indefinite
    );
    crate::demo_cmd::print_views(&cluster, new).await;

    let acknowledged = report.acknowledged();
    step(
        5,
        &format!(
            "read every acknowledged commit ({}) on the new primary R{new}",
            acknowledged.len()
        ),
    );
    let missing = missing_writes(cluster.replicas[new].client, "read_write", &acknowledged).await?;
    for key in &missing {
        println!("   LOST: {key}");
    }
    println!(
        "   {} of {} acknowledged commits found on R{new}",
        acknowledged.len() - missing.len(),
        acknowledged.len()
    );

    step(
        6,
        "restart R0: it rejoins as a SECONDARY of the new primary",
    );
    cluster.start(0)?;
    cluster.wait_ready(0).await?;
    cluster
        .wait_until("R0 is SYNCHRONIZED with the new primary", 30, || async {
            cluster.sync_state(new, 0).await.as_deref() == Some("SYNCHRONIZED")
        })
        .await?;
    crate::demo_cmd::print_views(&cluster, new).await;

    println!("\nlost acknowledged commits: {}", missing.len());
    Ok(if missing.is_empty() {
        Exit::Passed
    } else {
        Exit::Failed
    })
}

/// One lease setting's figures of `hadr bench failover`.
#[derive(Debug, serde::Serialize)]
pub struct FailoverBenchResult {
    /// The etcd lease TTL, ms.
    pub lease_ms: u32,
    /// Rounds measured.
    pub rounds: usize,
    /// Median of kill → first acknowledged commit on the new primary, ms.
    pub median_ms: f64,
    /// 99th percentile of the same (the slowest round below 100 rounds), ms.
    pub p99_ms: f64,
    /// Fastest round, ms.
    pub min_ms: f64,
    /// Acknowledged commits missing on the final primary (must be 0).
    pub lost_commits: usize,
}

/// `hadr bench failover`: per lease setting, `rounds` times: SIGKILL the primary and measure
/// until the first commit acknowledged by the new one.
pub async fn bench(
    exe: &std::path::Path,
    dir: &std::path::Path,
    args: &FailoverBenchArgs,
) -> Result<Exit, ClusterError> {
    let modes = [
        "SYNCHRONOUS_COMMIT",
        "SYNCHRONOUS_COMMIT",
        "SYNCHRONOUS_COMMIT",
    ];
    if !args.json {
        eprintln!(
            "hadr bench failover: 3 SYNCHRONOUS_COMMIT replicas, 1-member etcd, 1 client following the primary, {} rounds per lease",
            args.rounds
        );
        println!(
            "{:>9} {:>7} {:>10} {:>10} {:>10} {:>6}",
            "lease ms", "rounds", "median ms", "p99 ms", "min ms", "lost"
        );
    }
    let mut lost_any = false;
    for &lease_ms in &args.lease_ms {
        let run_dir = dir.join(format!("lease-{lease_ms}"));
        let etcd = etcd(&run_dir, 1)?;
        let mut cluster =
            external_cluster(exe, &run_dir, &etcd, &modes, lease_ms, u32::MAX).await?;
        let addresses: Vec<SocketAddr> = cluster.replicas.iter().map(|r| r.client).collect();
        let workload = Workload::start(addresses, 0, 1);
        let mut p = 0;
        let mut times = Vec::new();
        for round in 0..args.rounds as usize {
            cluster.wait_synchronized(p, &modes).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let killed = Instant::now();
            cluster.kill(p);
            let wait_s = u64::from(lease_ms) / 1000 * 3 + 10;
            let ack = workload
                .first_ack_after(killed, Some(p), wait_s)
                .await
                .ok_or_else(|| ClusterError::Timeout {
                    what: format!("round {round}: a commit on a new primary"),
                    seconds: wait_s,
                })?;
            let ms = ack.at.duration_since(killed).as_secs_f64() * 1000.0;
            if !args.json {
                eprintln!(
                    "   round {round}: R{p} killed, R{} committed after {ms:.0} ms",
                    ack.replica
                );
            }
            times.push(ms);
            cluster.start(p)?;
            cluster.wait_ready(p).await?;
            p = ack.replica;
        }
        cluster.wait_synchronized(p, &modes).await?;
        let report = workload.stop().await;
        let missing = missing_writes(
            cluster.replicas[p].client,
            "read_write",
            &report.acknowledged(),
        )
        .await?;
        lost_any |= !missing.is_empty();
        times.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
            times[i]
        };
        let result = FailoverBenchResult {
            lease_ms,
            rounds: times.len(),
            median_ms: pct(0.5),
            p99_ms: pct(0.99),
            min_ms: times[0],
            lost_commits: missing.len(),
        };
        if args.json {
            println!("{}", serde_json::to_string(&result).unwrap_or_default());
        } else {
            println!(
                "{:>9} {:>7} {:>10.0} {:>10.0} {:>10.0} {:>6}",
                result.lease_ms,
                result.rounds,
                result.median_ms,
                result.p99_ms,
                result.min_ms,
                result.lost_commits
            );
        }
    }
    Ok(if lost_any { Exit::Failed } else { Exit::Passed })
}
