//! `hadr bench`: synchronous-commit throughput and latency of the reference replicas.
//!
//! Two replica processes on loopback (R0 primary, R1 a SYNCHRONOUS_COMMIT secondary, fsync on
//! both); for each client count, that many connections run one-row transactions (one write of
//! a ≈100-byte value, `transact`) back to back for the given time. Every commit counted was
//! acknowledged, i.e. hardened on both replicas (R-COMMIT-2).

use crate::cli::BenchArgs;
use crate::Exit;
use hadr_node::api::Client;
use hadr_node::node::DatabaseRef;
use hadr_testbed::local_cluster::{ClusterError, LocalCluster};
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
    let (runtime, exe) = hadr_testbed::local_cluster::runtime_and_exe()?;
    let dir = std::env::temp_dir().join(format!("hadr-bench-{}", std::process::id()));
    crate::demo_cmd::temp_dir(&dir)?;
    let result = match &args.what {
        None => runtime.block_on(bench(&exe, &dir, args)),
        #[cfg(feature = "etcd")]
        Some(crate::cli::BenchCommand::Failover(failover)) => {
            runtime.block_on(failover::bench(&exe, &dir, failover))
        }
        #[cfg(not(feature = "etcd"))]
        Some(crate::cli::BenchCommand::Failover(_)) => {
            Err(ClusterError::Etcd(crate::NO_ETCD_SUPPORT.to_owned()))
        }
        Some(crate::cli::BenchCommand::Storage(storage)) => {
            runtime.block_on(storage::bench(&exe, &dir, storage))
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    hadr_testbed::cleanup::forget_temp_dir(&dir);
    result
}

/// Two replica processes in `dir`: R0 primary, R1 SYNCHRONOUS_COMMIT secondary, SYNCHRONIZED.
async fn synchronous_pair(
    exe: &std::path::Path,
    dir: &std::path::Path,
) -> Result<LocalCluster, ClusterError> {
    let mut cluster = LocalCluster::new(exe, dir, 2)?;
    for i in 0..2 {
        cluster.start(i)?;
    }
    for i in 0..2 {
        cluster.wait_ready(i).await?;
    }
    let modes = ["SYNCHRONOUS_COMMIT", "SYNCHRONOUS_COMMIT"];
    cluster.create_group(&modes, 0).await?;
    Ok(cluster)
}

async fn bench(
    exe: &std::path::Path,
    dir: &std::path::Path,
    args: &BenchArgs,
) -> Result<Exit, ClusterError> {
    let cluster = synchronous_pair(exe, dir).await?;
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

/// `hadr bench failover`: kill → first commit on the new primary, under etcd.
#[cfg(feature = "etcd")]
pub mod failover {
    use crate::cli::FailoverBenchArgs;
    use crate::Exit;
    use hadr_testbed::failover::{etcd, external_cluster, Workload};
    use hadr_testbed::local_cluster::{missing_writes, ClusterError};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

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
}

/// `hadr bench storage`: memory, log size and restart time under a long workload (issue 18).
pub mod storage {
    use crate::cli::StorageBenchArgs;
    use crate::Exit;
    use hadr_node::api::Client;
    use hadr_node::node::DatabaseRef;
    use hadr_testbed::local_cluster::{ClusterError, LocalCluster};
    use serde::Serialize;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// One sample, every ten seconds of the workload.
    #[derive(Debug, Serialize)]
    pub struct Sample {
        /// Seconds since the workload started.
        pub seconds: f64,
        /// Acknowledged commits so far.
        pub commits: u64,
        /// Bytes of values acknowledged so far.
        pub committed_bytes: u64,
        /// Resident memory of each replica (`VmRSS`), in MiB; `None` when it could not be read.
        pub rss_mib: Vec<Option<f64>>,
        /// Size of each replica's write-ahead log file, in MiB.
        pub wal_mib: Vec<f64>,
    }

    /// The run's figures against the bars.
    #[derive(Debug, Serialize)]
    pub struct Summary {
        /// Seconds of workload.
        pub seconds: f64,
        /// Acknowledged commits.
        pub commits: u64,
        /// Bytes of values acknowledged.
        pub committed_bytes: u64,
        /// Commits not acknowledged (should be 0).
        pub failed: u64,
        /// The highest resident memory any replica had at a sample, in MiB.
        pub max_rss_mib: f64,
        /// The largest write-ahead log at the end, in MiB.
        pub final_wal_mib: f64,
        /// The largest write-ahead log any replica had at a sample, in MiB.
        pub max_wal_mib: f64,
        /// The bar for it: twice the replicas' checkpoint interval (the log since the last
        /// checkpoint, and the one being written), in MiB.
        pub wal_bar_mib: f64,
        /// From SIGKILL of the secondary to its restart serving again (its API answers and the
        /// primary reports it SYNCHRONIZED), in seconds.
        pub restart_s: f64,
        /// Whether every bar held: memory, restart time, and a log bounded by the checkpoint
        /// interval at every sample.
        pub passed: bool,
    }

    fn rss_mib(pid: u32) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    fn wal_mib(cluster: &LocalCluster, i: usize) -> f64 {
        let path = cluster.replicas[i].data_dir.join("db-0.wal");
        std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64)
    }

    fn round(x: f64) -> f64 {
        (x * 10.0).round() / 10.0
    }

    /// Runs the benchmark: R0 primary, R1 SYNCHRONOUS_COMMIT secondary.
    pub async fn bench(
        exe: &std::path::Path,
        dir: &std::path::Path,
        args: &StorageBenchArgs,
    ) -> Result<Exit, ClusterError> {
        let mut cluster = super::synchronous_pair(exe, dir).await?;
        if !args.json {
            eprintln!(
                "hadr bench storage: R0 primary, R1 SYNCHRONOUS_COMMIT secondary; {} clients commit {}-byte values ({}) for at least {} s and {} MiB",
                args.clients,
                args.value_bytes,
                match args.keys {
                    0 => "every commit a new key".to_owned(),
                    n => format!("over {n} keys"),
                },
                args.seconds,
                args.bytes >> 20
            );
            println!(
                "{:>8} {:>10} {:>12} {:>10} {:>10} {:>10} {:>10}",
                "seconds", "commits", "MiB", "R0 RSS", "R1 RSS", "R0 WAL", "R1 WAL"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let txn = Arc::new(AtomicU32::new(1));
        let address = cluster.replicas[0].client;
        let mut tasks = Vec::new();
        for c in 0..args.clients {
            let mut client = Client::connect(address).await?;
            let (stop, commits, failed, txn) =
                (stop.clone(), commits.clone(), failed.clone(), txn.clone());
            let value = "v".repeat(args.value_bytes as usize);
            let keys = args.keys;
            tasks.push(tokio::spawn(async move {
                let db = DatabaseRef::Id(0);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = match keys {
                        0 => format!("c{c}-{n}"),
                        keys => format!("k{}", (n * 7919 + c) % keys),
                    };
                    let id = txn.fetch_add(1, Ordering::Relaxed);
                    match client.transact(&db, id, &[(key, value.clone())]).await {
                        Ok(reply) if reply.outcome == "committed" => {
                            commits.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        let start = Instant::now();
        let mut max_rss: f64 = 0.0;
        let mut max_wal: f64 = 0.0;
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let done = commits.load(Ordering::Relaxed);
            let sample = Sample {
                seconds: round(start.elapsed().as_secs_f64()),
                commits: done,
                committed_bytes: done * args.value_bytes,
                rss_mib: (0..2)
                    .map(|i| cluster.pid(i).and_then(rss_mib).map(round))
                    .collect(),
                wal_mib: (0..2).map(|i| round(wal_mib(&cluster, i))).collect(),
            };
            max_rss = sample
                .rss_mib
                .iter()
                .flatten()
                .fold(max_rss, |m, r| m.max(*r));
            max_wal = sample.wal_mib.iter().fold(max_wal, |m, w| m.max(*w));
            if args.json {
                println!("{}", serde_json::to_string(&sample).unwrap_or_default());
            } else {
                let rss = |i: usize| sample.rss_mib[i].map_or("?".to_owned(), |r| format!("{r}"));
                println!(
                    "{:>8} {:>10} {:>12} {:>10} {:>10} {:>10} {:>10}",
                    sample.seconds,
                    sample.commits,
                    round(sample.committed_bytes as f64 / (1 << 20) as f64),
                    rss(0),
                    rss(1),
                    sample.wal_mib[0],
                    sample.wal_mib[1]
                );
            }
            if sample.seconds >= args.seconds && sample.committed_bytes >= args.bytes {
                break;
            }
            if max_rss > args.stop_at_rss_mib as f64 {
                eprintln!(
                    "hadr bench storage: a replica holds {} MiB, over --stop-at-rss-mib {}: stopping the workload early",
                    round(max_rss),
                    args.stop_at_rss_mib
                );
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        let seconds = start.elapsed().as_secs_f64();
        let final_wal = (0..2).map(|i| wal_mib(&cluster, i)).fold(0.0, f64::max);
        let committed = commits.load(Ordering::Relaxed);
        let killed = Instant::now();
        cluster.kill(1);
        cluster.start(1)?;
        cluster.wait_ready(1).await?;
        cluster
            .wait_until("R1 is SYNCHRONIZED again", 600, || async {
                cluster.sync_state(0, 1).await.as_deref() == Some("SYNCHRONIZED")
            })
            .await?;
        let restart_s = killed.elapsed().as_secs_f64();
        let committed_bytes = committed * args.value_bytes;
        let interval = hadr_node::config::StorageSettings::default().checkpoint_bytes;
        let wal_bar_mib = 2.0 * interval as f64 / (1 << 20) as f64;
        let summary = Summary {
            seconds: round(seconds),
            commits: committed,
            committed_bytes,
            failed: failed.load(Ordering::Relaxed),
            max_rss_mib: round(max_rss),
            final_wal_mib: round(final_wal),
            max_wal_mib: round(max_wal),
            wal_bar_mib,
            restart_s: (restart_s * 1000.0).round() / 1000.0,
            passed: max_rss < args.max_rss_mib as f64
                && restart_s <= args.max_restart_s
                && max_wal <= wal_bar_mib,
        };
        if args.json {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        } else {
            println!(
                "committed {} MiB in {} commits over {} s ({} not acknowledged); highest RSS {} MiB (bar {}); largest WAL {} MiB (bar {}); restart to SYNCHRONIZED {:.3} s (bar {}); {}",
                committed_bytes >> 20,
                summary.commits,
                summary.seconds,
                summary.failed,
                summary.max_rss_mib,
                args.max_rss_mib,
                summary.max_wal_mib,
                summary.wal_bar_mib,
                summary.restart_s,
                args.max_restart_s,
                if summary.passed { "PASS" } else { "FAIL" }
            );
        }
        Ok(if summary.passed && summary.failed == 0 {
            Exit::Passed
        } else {
            Exit::Failed
        })
    }
}
