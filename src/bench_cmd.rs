//! `hadr bench`: synchronous-commit throughput and latency of the reference replicas.
//!
//! Two replica processes on loopback (R0 primary, R1 a SYNCHRONOUS_COMMIT secondary, fsync on
//! both); for each client count, that many connections run one-row transactions (one write of
//! a ≈100-byte value, `transact`) back to back for the given time. Every commit counted was
//! acknowledged, i.e. hardened on both replicas (R-COMMIT-2).

use crate::cli::BenchArgs;
use crate::local_cluster::{ClusterError, LocalCluster};
use crate::Exit;
use hadr_node::api::Client;
use hadr_node::node::DatabaseRef;
use serde::Serialize;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One client count's figures (`--json` prints one line of these per count).
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Acknowledged commits per second.
    pub tps: f64,
    /// Median commit latency.
    pub p50_ms: f64,
    /// 99th-percentile commit latency.
    pub p99_ms: f64,
    /// Acknowledged commits.
    pub commits: usize,
    /// Commits that were not acknowledged (should be 0).
    pub failed: usize,
    /// Measured time.
    pub seconds: f64,
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<Exit, ClusterError> {
    let (runtime, exe) = crate::local_cluster::runtime_and_exe()?;
    let dir = std::env::temp_dir().join(format!("hadr-bench-{}", std::process::id()));
    let result = match &args.what {
        None => runtime.block_on(bench(&exe, &dir, args)),
        #[cfg(feature = "etcd")]
        Some(crate::cli::BenchCommand::Failover(failover)) => {
            runtime.block_on(crate::failover::bench(&exe, &dir, failover))
        }
        #[cfg(not(feature = "etcd"))]
        Some(crate::cli::BenchCommand::Failover(_)) => {
            Err(ClusterError::Etcd(crate::NO_ETCD_SUPPORT.to_owned()))
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(
    exe: &std::path::Path,
    dir: &std::path::Path,
    args: &BenchArgs,
) -> Result<Exit, ClusterError> {
    let mut cluster = LocalCluster::new(exe, dir, 2)?;
    for i in 0..2 {
        cluster.start(i)?;
    }
    for i in 0..2 {
        cluster.wait_ready(i).await?;
    }
    let modes = ["SYNCHRONOUS_COMMIT", "SYNCHRONOUS_COMMIT"];
    cluster.create_group(&modes, 0).await?;
    if !args.json {
        eprintln!("hadr bench: R0 primary, R1 SYNCHRONOUS_COMMIT secondary (SYNCHRONIZED), fsync on, {} s per client count", args.seconds);
        println!(
            "{:>8} {:>12} {:>10} {:>10} {:>10}",
            "clients", "commits/s", "p50 ms", "p99 ms", "commits"
        );
    }
    let txn = Arc::new(AtomicU32::new(1));
    let mut failed_any = false;
    for &clients in &args.clients {
        let result = measure(&cluster, clients, args.seconds, &txn).await?;
        failed_any |= result.failed > 0;
        if args.json {
            println!("{}", serde_json::to_string(&result).unwrap_or_default());
        } else {
            println!(
                "{:>8} {:>12.1} {:>10.3} {:>10.3} {:>10}",
                result.clients, result.tps, result.p50_ms, result.p99_ms, result.commits
            );
        }
    }
    Ok(if failed_any {
        Exit::Failed
    } else {
        Exit::Passed
    })
}

async fn measure(
    cluster: &LocalCluster,
    clients: usize,
    seconds: f64,
    txn: &Arc<AtomicU32>,
) -> Result<BenchResult, ClusterError> {
    let address = cluster.replicas[0].client;
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(Client::connect(address).await?);
    }
    let value = "v".repeat(100);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for (c, mut client) in connections.into_iter().enumerate() {
        let txn = txn.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let db = DatabaseRef::Id(0);
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let id = txn.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let writes = [(format!("c{c}-{n}"), value.clone())];
                match client.transact(&db, id, &writes).await {
                    Ok(reply) if reply.outcome == "committed" => latencies.push(t.elapsed()),
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in tasks {
        if let Ok((l, f)) = task.await {
            latencies.extend(l);
            failed += f;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    Ok(BenchResult {
        clients,
        tps: (latencies.len() as f64 / elapsed * 10.0).round() / 10.0,
        p50_ms: (pct(0.50) * 1000.0).round() / 1000.0,
        p99_ms: (pct(0.99) * 1000.0).round() / 1000.0,
        commits: latencies.len(),
        failed,
        seconds: (elapsed * 1000.0).round() / 1000.0,
    })
}
