//! `hadr demo`: a 3-replica availability group as local processes; a client workload; SIGKILL
//! of the primary; a forced failover to the synchronized secondary; a check that no
//! acknowledged commit was lost; the old primary restarted and rejoined as a secondary.

use crate::cli::{ClusterKind, DemoArgs};
use crate::Exit;
use hadr_node::api::Client;
use hadr_node::node::DatabaseRef;
use hadr_testbed::local_cluster::{ClusterError, LocalCluster};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs the demo; exit 0 when no acknowledged commit was lost.
pub fn run(args: &DemoArgs) -> Result<Exit, ClusterError> {
    let (runtime, exe) = hadr_testbed::local_cluster::runtime_and_exe()?;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = std::env::temp_dir().join(format!("hadr-demo-{}", std::process::id()));
            temp_dir(&dir)?;
            dir
        }
    };
    let result = match args.cluster {
        ClusterKind::None => runtime.block_on(demo(&exe, &dir, args)),
        #[cfg(feature = "etcd")]
        ClusterKind::Etcd => runtime.block_on(with_etcd::demo(&exe, &dir, args)),
        #[cfg(not(feature = "etcd"))]
        ClusterKind::Etcd => Err(ClusterError::Etcd(crate::NO_ETCD_SUPPORT.to_owned())),
    };
    if args.dir.is_none() && result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("replica logs and data are in {}", dir.display());
    }
    hadr_testbed::cleanup::forget_temp_dir(&dir);
    result
}

/// Creates `dir` as a temporary directory of this process: a stopping signal removes it
/// (`hadr_testbed::cleanup`).
pub(crate) fn temp_dir(dir: &std::path::Path) -> Result<(), ClusterError> {
    hadr_testbed::cleanup::create_temp_dir(dir).map_err(|source| ClusterError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })
}

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

async fn demo(
    exe: &std::path::Path,
    dir: &std::path::Path,
    args: &DemoArgs,
) -> Result<Exit, ClusterError> {
    let mut cluster = LocalCluster::new(exe, dir, 3)?;
    step(1, "start three replicas as local processes");
    for i in 0..3 {
        cluster.start(i)?;
    }
    for i in 0..3 {
        cluster.wait_ready(i).await?;
        let r = &cluster.replicas[i];
        println!(
            "   {}  endpoint {}  client {}  admin http://{}",
            r.name, r.endpoint, r.client, r.admin
        );
    }
    let modes = [
        "SYNCHRONOUS_COMMIT",
        "SYNCHRONOUS_COMMIT",
        "ASYNCHRONOUS_COMMIT",
    ];
    step(2, "CREATE AVAILABILITY GROUP on R0, JOIN on R1 and R2");
    for line in cluster.create_script(&modes, 0).lines() {
        println!("   {line}");
    }
    cluster.create_group(&modes, 0).await?;
    print_views(&cluster, 0).await;

    step(
        3,
        &format!(
            "client workload on R0: {} clients for {:.1} s; SIGKILL R0 halfway",
            args.clients, args.seconds
        ),
    );
    let acknowledged = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let txn = Arc::new(AtomicU32::new(1));
    let mut workers = Vec::new();
    for c in 0..args.clients {
        let address = cluster.replicas[0].client;
        let (acknowledged, counts, stop, txn) = (
            acknowledged.clone(),
            counts.clone(),
            stop.clone(),
            txn.clone(),
        );
        workers.push(tokio::spawn(async move {
            let Ok(mut client) = Client::connect(address).await else {
                return;
            };
            let db = DatabaseRef::Name("db1".to_owned());
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("c{c}-{n}");
                let value = format!("value of {key}");
                let id = txn.fetch_add(1, Ordering::Relaxed);
                match client
                    .transact(&db, id, &[(key.clone(), value.clone())])
                    .await
                {
                    Ok(reply) if reply.outcome == "committed" => {
                        counts.committed.fetch_add(1, Ordering::Relaxed);
                        acknowledged
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key, value);
                    }
                    Ok(reply) if reply.outcome == "refused" => {
                        counts.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        // Indefinite, or the connection died with the primary: unknown outcome.
                        counts.indefinite.fetch_add(1, Ordering::Relaxed);
                        if !stop.load(Ordering::Relaxed) && n == 1 {
                            tracing::warn!(
                                client = c,
                                ?other,
                                "first transaction has no definite outcome"
                            );
                        }
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.seconds / 2.0)).await;
    println!(
        "   {} commits acknowledged so far; SIGKILL R0",
        counts.committed.load(Ordering::Relaxed)
    );
    cluster.kill(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let acknowledged = acknowledged
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    println!(
        "   client outcomes: {} committed (acknowledged), {} refused (definite), {} unknown (indefinite or connection lost)",
        counts.committed.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.indefinite.load(Ordering::Relaxed)
    );

    step(
        4,
        "R0 is gone; FORCE_FAILOVER_ALLOW_DATA_LOSS on R1 (it was SYNCHRONIZED)",
    );
    let r = cluster
        .must(
            1,
            "FORCE_FAILOVER_ALLOW_DATA_LOSS",
            cluster
                .admin(1)
                .post_text(
                    "/sql",
                    "ALTER AVAILABILITY GROUP [demo] FORCE_FAILOVER_ALLOW_DATA_LOSS;",
                )
                .await,
        )
        .await?;
    println!("   R1: {}", r.body);
    cluster
        .wait_until("R1 is PRIMARY", 30, || async {
            cluster.role(1).await.as_deref() == Some("PRIMARY")
        })
        .await?;
    println!("   R2 was suspended by the forced failover (R-FAIL-4); RESUME it on R2");
    cluster
        .wait_until("R2 is suspended", 30, || async {
            cluster.suspended(2).await.is_some()
        })
        .await?;
    println!(
        "   R2: db1 suspended ({})",
        cluster.suspended(2).await.unwrap_or_default()
    );
    cluster
        .must(
            2,
            "RESUME",
            cluster
                .admin(2)
                .post_text("/sql", "ALTER DATABASE [db1] SET HADR RESUME;")
                .await,
        )
        .await?;
    cluster
        .wait_until("R2 is SYNCHRONIZING", 30, || async {
            cluster.sync_state(1, 2).await.as_deref() == Some("SYNCHRONIZING")
        })
        .await?;
    print_views(&cluster, 1).await;

    step(
        5,
        &format!(
            "read every acknowledged commit ({}) on the new primary R1",
            acknowledged.len()
        ),
    );
    let missing = hadr_testbed::local_cluster::missing_writes(
        cluster.replicas[1].client,
        "read_write",
        &acknowledged,
    )
    .await?;
    for key in &missing {
        println!("   LOST: {key}");
    }
    let lost = missing.len();
    println!(
        "   {} of {} acknowledged commits found on R1",
        acknowledged.len() - lost,
        acknowledged.len()
    );

    step(
        6,
        "restart R0: it rejoins as a secondary; RESUME reverts it to the fork point",
    );
    cluster.start(0)?;
    cluster.wait_ready(0).await?;
    cluster
        .wait_until("R0 follows R1, suspended", 30, || async {
            cluster.role(0).await.as_deref() == Some("SECONDARY")
                && cluster.suspended(0).await.is_some()
        })
        .await?;
    println!(
        "   R0: SECONDARY, db1 suspended ({})",
        cluster.suspended(0).await.unwrap_or_default()
    );
    let r = cluster
        .admin(0)
        .post_text("/sql", "ALTER DATABASE [db1] SET HADR RESUME;")
        .await?;
    println!("   RESUME on R0: {} {}", r.status, r.body);
    cluster
        .wait_until("R0 is SYNCHRONIZED", 30, || async {
            cluster.sync_state(1, 0).await.as_deref() == Some("SYNCHRONIZED")
        })
        .await?;
    print_views(&cluster, 1).await;

    println!("\nlost acknowledged commits: {lost}");
    Ok(if lost == 0 {
        Exit::Passed
    } else {
        Exit::Failed
    })
}

#[derive(Default)]
struct Counts {
    committed: AtomicU32,
    refused: AtomicU32,
    indefinite: AtomicU32,
}

pub(crate) async fn print_views(cluster: &LocalCluster, primary: usize) {
    let admin = cluster.admin(primary);
    if let Ok(r) = admin.get("/dm_hadr/availability_replica_states").await {
        println!(
            "   sys.dm_hadr_availability_replica_states (on {}):",
            cluster.replicas[primary].name
        );
        println!("     name role       connected     health");
        for row in r.body.as_array().into_iter().flatten() {
            println!(
                "     {:<4} {:<10} {:<13} {}",
                text(&row["replica_server_name"]),
                text(&row["role_desc"]),
                text(&row["connected_state_desc"]),
                text(&row["synchronization_health_desc"]),
            );
        }
    }
    if let Ok(r) = admin.get("/dm_hadr/database_replica_states").await {
        println!(
            "   sys.dm_hadr_database_replica_states (on {}):",
            cluster.replicas[primary].name
        );
        println!(
            "     {:<7} {:<4} {:<18} {:<22} {:>9} {:>9}",
            "replica", "db", "state", "suspended", "hardened", "redone"
        );
        for row in r.body.as_array().into_iter().flatten() {
            println!(
                "     R{:<6} {:<4} {:<18} {:<22} {:>9} {:>9}",
                text(&row["replica_id"]),
                text(&row["database_name"]),
                text(&row["synchronization_state_desc"]),
                text(&row["suspend_reason_desc"]),
                text(&row["last_hardened_lsn"]),
                text(&row["last_redone_lsn"]),
            );
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `hadr demo --cluster etcd`: the same story with automatic failover through etcd.
#[cfg(feature = "etcd")]
mod with_etcd {
    use super::step;
    use crate::cli::DemoArgs;
    use crate::Exit;
    use hadr_testbed::failover::{etcd, external_cluster, wait_new_primary, Workload};
    use hadr_testbed::local_cluster::{missing_writes, ClusterError};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

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
        println!(
            "   R0, R1: SYNCHRONOUS_COMMIT, FAILOVER_MODE = EXTERNAL (automatic through etcd)"
        );
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
        let missing =
            missing_writes(cluster.replicas[new].client, "read_write", &acknowledged).await?;
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
}
