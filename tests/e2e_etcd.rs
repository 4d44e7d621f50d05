//! End-to-end tests of automatic failover under a real etcd (CLUSTER_TYPE = EXTERNAL): real
//! `hadr replica` processes and real etcd processes on loopback, SIGKILL and SIGSTOP. They
//! need the `etcd` feature (the README's test command enables it) and an etcd binary
//! (`apt-get install -y etcd-server`; a test fails with that advice when there is none).
//!
//! `HADR_E2E_ROUNDS` sets the number of kill-and-failover rounds (default 4).
#![cfg(feature = "etcd")]

use hadr_manager::local::LocalEtcd;
use hadr_manager::{Clock, EtcdManager, ManagerConfig};
use hadr_testbed::failover::{primary, wait_new_primary, Workload};
use hadr_testbed::local_cluster::{missing_writes, LocalCluster};
use hadr_types::ReplicaId;
use std::time::{Duration, Instant};

const SYNC: &str = "SYNCHRONOUS_COMMIT";
const ASYNC: &str = "ASYNCHRONOUS_COMMIT";
/// The etcd lease of every test: 2 s (the primary commits for 1.5 s after each renewal).
const LEASE_MS: u32 = 2000;

struct Setup {
    cluster: LocalCluster,
    etcd: LocalEtcd,
    _dir: tempfile::TempDir,
}

/// `n` replicas and an etcd of `members` members. With `own_member`, replica `i` talks only
/// to member `i` (so freezing a member cuts exactly one replica off); otherwise every replica
/// knows every member.
async fn setup(n: usize, members: usize, own_member: bool) -> Setup {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let etcd =
        LocalEtcd::start(&dir.path().join("etcd"), members).unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = LocalCluster::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_hadr")),
        dir.path(),
        n,
    )
    .expect("preparing replicas");
    cluster.fault_injection = true;
    for i in 0..n {
        let endpoints = if own_member {
            vec![etcd.endpoint(i)]
        } else {
            etcd.endpoints()
        };
        cluster.set_etcd_endpoints(i, &endpoints).unwrap();
        cluster.start(i).unwrap();
    }
    for i in 0..n {
        cluster.wait_ready(i).await.unwrap();
    }
    Setup {
        cluster,
        etcd,
        _dir: dir,
    }
}

fn addresses(cluster: &LocalCluster) -> Vec<std::net::SocketAddr> {
    cluster.replicas.iter().map(|r| r.client).collect()
}

/// R-FAIL-2, R-COMMIT-6, R-FAIL-6: the primary is killed with SIGKILL, round after round; etcd
/// promotes a SYNCHRONIZED secondary once the dead primary's lease is gone, clients follow it,
/// the old primary rejoins as a secondary when restarted, and no acknowledged commit is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_failover_after_sigkill_loses_no_acknowledged_commit() {
    let rounds: usize = std::env::var("HADR_E2E_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut s = setup(3, 1, false).await;
    let modes = [SYNC, SYNC, SYNC];
    let mut config = s.cluster.external_config(&modes, LEASE_MS);
    config["policy"] = serde_json::json!({ "failover_threshold": 100 });
    s.cluster.create_group_from(&config, &modes).await.unwrap();
    let workload = Workload::start(addresses(&s.cluster), 0, 4);
    let mut p = 0;
    for round in 0..rounds {
        s.cluster.wait_synchronized(p, &modes).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = Instant::now();
        s.cluster.kill(p);
        let new = wait_new_primary(&s.cluster, p, 20).await.unwrap();
        let ack = workload
            .first_ack_after(killed, Some(p), 20)
            .await
            .expect("a commit acknowledged after the failover");
        assert_eq!(
            ack.replica, new,
            "round {round}: the first commit after the kill"
        );
        eprintln!(
            "round {round}: R{p} killed, R{new} primary, first commit after {} ms",
            ack.at.duration_since(killed).as_millis()
        );
        s.cluster.start(p).unwrap();
        s.cluster.wait_ready(p).await.unwrap();
        p = new;
    }
    s.cluster.wait_synchronized(p, &modes).await.unwrap();
    let report = workload.stop().await;
    assert!(
        report.acks.len() > 100,
        "too few commits: {}",
        report.acks.len()
    );
    let acknowledged = report.acknowledged();
    let missing = missing_writes(s.cluster.replicas[p].client, "read_write", &acknowledged)
        .await
        .unwrap();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged commits lost: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(10)]
    );
}

/// R-QUORUM-3, R-ROLE-1: the primary is cut off from etcd (its only etcd member frozen with
/// SIGSTOP; the other two keep quorum). It must stop acknowledging commits before another
/// replica is promoted: in the clients' own timeline, every acknowledgement of the old
/// primary precedes every acknowledgement of the new one. Nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_cut_off_from_etcd_stops_before_another_is_promoted() {
    let s = setup(3, 3, true).await;
    let modes = [SYNC, SYNC, SYNC];
    s.cluster
        .create_external_group(&modes, LEASE_MS)
        .await
        .unwrap();
    let workload = Workload::start(addresses(&s.cluster), 0, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.etcd.pause(0).unwrap();
    let frozen = Instant::now();
    let new = wait_new_primary(&s.cluster, 0, 30).await.unwrap();
    let promoted = Instant::now();
    workload
        .first_ack_after(promoted, Some(0), 20)
        .await
        .expect("commits on the new primary");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_role = s.cluster.role(0).await;
    s.etcd.resume(0).unwrap();
    let report = workload.stop().await;
    let last_old = report
        .acks
        .iter()
        .filter(|a| a.replica == 0)
        .map(|a| a.at)
        .max();
    let first_new = report
        .acks
        .iter()
        .filter(|a| a.replica == new)
        .map(|a| a.at)
        .min();
    let (Some(last_old), Some(first_new)) = (last_old, first_new) else {
        panic!(
            "commits on both primaries expected: {:?}",
            report.acks.len()
        );
    };
    eprintln!(
        "etcd member of R0 frozen; R0's last commit {} ms later, R{new}'s first {} ms later",
        last_old.duration_since(frozen).as_millis(),
        first_new.duration_since(frozen).as_millis()
    );
    assert!(
        last_old < first_new,
        "two primaries acknowledged commits in overlapping time: R0 until {:?}, R{new} from {:?} after the freeze",
        last_old.duration_since(frozen),
        first_new.duration_since(frozen)
    );
    assert_ne!(
        old_role.as_deref(),
        Some("PRIMARY"),
        "R0 still claims PRIMARY"
    );
    let acknowledged = report.acknowledged();
    let missing = missing_writes(s.cluster.replicas[new].client, "read_write", &acknowledged)
        .await
        .unwrap();
    assert!(missing.is_empty(), "acknowledged commits lost: {missing:?}");
}

/// R-FAIL-2: no automatic failover to an ASYNCHRONOUS_COMMIT replica, nor to a synchronous one
/// that was not SYNCHRONIZED when the primary died. With the primary gone, nobody is promoted;
/// an operator's forced failover still works (R-FAIL-4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_automatic_failover_to_an_async_or_unsynchronized_replica() {
    let mut s = setup(3, 1, false).await;
    let modes = [SYNC, ASYNC, SYNC];
    s.cluster
        .create_external_group(&modes, LEASE_MS)
        .await
        .unwrap();
    // R2 goes away: the primary publishes that it is no longer SYNCHRONIZED.
    s.cluster.kill(2);
    s.cluster
        .wait_until("R2 is no longer SYNCHRONIZED", 30, || async {
            s.cluster.sync_state(0, 2).await.as_deref() != Some("SYNCHRONIZED")
        })
        .await
        .unwrap();
    // Let a commit go through, so the publication without R2 is confirmed (R-COMMIT-4).
    let workload = Workload::start(addresses(&s.cluster), 0, 1);
    workload
        .first_ack_after(Instant::now(), None, 20)
        .await
        .expect("a commit on R0");
    workload.stop().await;
    s.cluster.kill(0);
    s.cluster.start(2).unwrap();
    s.cluster.wait_ready(2).await.unwrap();
    // Three lease periods: the lease is long gone, R1 (async) and R2 (not synchronized when
    // it was last published) both watch it go.
    let deadline = Instant::now() + Duration::from_millis(3 * u64::from(LEASE_MS));
    while Instant::now() < deadline {
        for i in [1, 2] {
            assert_ne!(
                s.cluster.role(i).await.as_deref(),
                Some("PRIMARY"),
                "R{i} was promoted automatically"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = s
        .cluster
        .admin(1)
        .post_text(
            "/sql",
            "ALTER AVAILABILITY GROUP [demo] FORCE_FAILOVER_ALLOW_DATA_LOSS;",
        )
        .await
        .unwrap();
    assert!(r.ok(), "forced failover on R1: {} {}", r.status, r.body);
    assert_eq!(primary(&s.cluster).await, Some(1));
}

/// R-QUORUM-2/3, R-ROLE-2: etcd loses its majority (two of three members frozen). The primary
/// cannot renew its lease and the secondaries cannot reach the manager: every replica goes
/// RESOLVING, commits are refused, nobody is promoted. When quorum returns, the secondaries
/// learn their role from etcd, a SYNCHRONIZED one becomes primary and commits go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_leaves_every_replica_resolving_and_refuses_commits() {
    let s = setup(3, 3, false).await;
    let modes = [SYNC, SYNC, SYNC];
    s.cluster
        .create_external_group(&modes, LEASE_MS)
        .await
        .unwrap();
    s.etcd.pause(1).unwrap();
    s.etcd.pause(2).unwrap();
    s.cluster
        .wait_until("every replica is RESOLVING", 15, || async {
            let mut all = true;
            for i in 0..3 {
                all &= s.cluster.role(i).await.as_deref() == Some("RESOLVING");
            }
            all
        })
        .await
        .unwrap();
    let workload = Workload::start(addresses(&s.cluster), 0, 1);
    tokio::time::sleep(Duration::from_millis(u64::from(LEASE_MS) * 2)).await;
    for i in 0..3 {
        assert_eq!(
            s.cluster.role(i).await.as_deref(),
            Some("RESOLVING"),
            "R{i} without quorum"
        );
    }
    let during = workload.acks();
    assert!(
        during.is_empty(),
        "commits acknowledged without quorum: {during:?}"
    );
    s.etcd.resume(1).unwrap();
    s.etcd.resume(2).unwrap();
    let back = workload.first_ack_after(Instant::now(), None, 30).await;
    let report = workload.stop().await;
    assert!(back.is_some(), "no commit after quorum returned");
    assert!(
        report.refused + report.indefinite > 0,
        "commits were attempted without quorum"
    );
}

/// Bad EXTERNAL configurations get clear errors and change nothing: no etcd endpoint in
/// node.toml, an etcd that does not answer, a lease etcd cannot grant (not whole seconds), a
/// lease that could outlive failure detection (R-QUORUM-3). Then a good one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_external_configurations_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let etcd = LocalEtcd::start(&dir.path().join("etcd"), 1).unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = LocalCluster::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_hadr")),
        dir.path(),
        2,
    )
    .unwrap();
    // A group of two; only R0 runs.
    let good = cluster.external_config(&[SYNC, SYNC], LEASE_MS);
    let admin = cluster.admin(0);
    let refused = |status: u16, code: &'static str, needle: &'static str| {
        move |body: serde_json::Value| async move {
            let r = admin.post_json("/ag/create", &body).await.unwrap();
            assert_eq!(
                (r.status, r.body["code"].as_str()),
                (status, Some(code)),
                "{}",
                r.body
            );
            let error = r.body["error"].as_str().unwrap_or_default().to_owned();
            assert!(
                error.contains(needle),
                "{error:?} should mention {needle:?}"
            );
            let status = admin.get("/status").await.unwrap();
            assert!(
                status.body["role"].is_null(),
                "the refusal changed the replica: {}",
                status.body
            );
        }
    };

    // No etcd endpoint configured.
    cluster.start(0).unwrap();
    cluster.wait_ready(0).await.unwrap();
    refused(409, "NeedsClusterManager", "etcd_endpoints")(good.clone()).await;
    cluster.kill(0);

    // An etcd that does not answer (nothing listens on port 1).
    cluster
        .set_etcd_endpoints(0, &["http://127.0.0.1:1".to_owned()])
        .unwrap();
    cluster.start(0).unwrap();
    cluster.wait_ready(0).await.unwrap();
    refused(503, "ClusterManagerUnavailable", "etcd")(good.clone()).await;
    cluster.kill(0);

    cluster.set_etcd_endpoints(0, &etcd.endpoints()).unwrap();
    cluster.start(0).unwrap();
    cluster.wait_ready(0).await.unwrap();
    let mut fractional = good.clone();
    fractional["lease"]["ttl_ms"] = 2500.into();
    refused(
        400,
        "InvalidClusterManagerConfig",
        "whole number of seconds",
    )(fractional)
    .await;
    let mut unsafe_lease = good.clone();
    unsafe_lease["lease"]["validity_ms"] = 1950.into();
    let r = admin.post_json("/ag/create", &unsafe_lease).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.to_string().contains("split brain"), "{}", r.body);

    cluster
        .must(0, "CREATE", admin.post_json("/ag/create", &good).await)
        .await
        .unwrap();
    cluster
        .wait_until("R0 is PRIMARY", 10, || async {
            cluster.role(0).await.as_deref() == Some("PRIMARY")
        })
        .await
        .unwrap();

    // The configuration lives in etcd: a JOIN with another one, or a second CREATE of the
    // same group name with another one, is refused and changes nothing.
    let etcd_view = EtcdManager::connect(
        ManagerConfig::new(etcd.endpoints(), "demo", ReplicaId(9)),
        Clock::new(Instant::now()),
    )
    .await
    .unwrap();
    let stored = etcd_view
        .stored_config()
        .await
        .unwrap()
        .expect("config in etcd");
    let created: hadr_types::AgConfig = serde_json::from_value(good.clone()).unwrap();
    assert_eq!(
        stored, created,
        "etcd holds the configuration CREATE was given"
    );
    cluster.set_etcd_endpoints(1, &etcd.endpoints()).unwrap();
    cluster.start(1).unwrap();
    cluster.wait_ready(1).await.unwrap();
    let mut other = good.clone();
    other["required_synchronized_secondaries_to_commit"] = 1.into();
    let r = cluster
        .admin(1)
        .post_json("/ag/join", &other)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("ConfigurationConflict")),
        "{}",
        r.body
    );
    let mut r1_first = good.clone();
    r1_first["replicas"] = serde_json::json!([good["replicas"][1], good["replicas"][0]]);
    let r = cluster
        .admin(1)
        .post_json("/ag/create", &r1_first)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("ConfigurationConflict")),
        "{}",
        r.body
    );
    assert!(cluster.admin(1).get("/status").await.unwrap().body["role"].is_null());
    cluster
        .must(
            1,
            "JOIN",
            cluster.admin(1).post_json("/ag/join", &good).await,
        )
        .await
        .unwrap();
    // An ALTER on the primary updates the configuration in etcd.
    cluster
        .must(
            0,
            "ALTER k",
            admin
                .post_text(
                    "/sql",
                    "ALTER AVAILABILITY GROUP [demo] SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1);",
                )
                .await,
        )
        .await
        .unwrap();
    cluster
        .wait_until("etcd holds k = 1", 10, || async {
            etcd_view
                .stored_config()
                .await
                .ok()
                .flatten()
                .map(|c| c.required_synchronized_secondaries_to_commit)
                == Some(1)
        })
        .await
        .unwrap();
}

/// Creates a 3-replica SYNC group with this FAILURE_CONDITION_LEVEL (HEALTH_CHECK_TIMEOUT 15 s,
/// the minimum) and stalls the primary's driver for `stall_ms` (its process stays up: the lease
/// is renewed on a thread of its own). Returns the setup, the workload and when the stall began.
async fn hung_primary(level: u8, stall_ms: u64) -> (Setup, Workload, Instant) {
    let s = setup(3, 1, false).await;
    let modes = [SYNC, SYNC, SYNC];
    let mut config = s.cluster.external_config(&modes, LEASE_MS);
    config["failure_condition_level"] = level.into();
    config["health_check_timeout_ms"] = 15_000.into();
    s.cluster.create_group_from(&config, &modes).await.unwrap();
    let workload = Workload::start(addresses(&s.cluster), 0, 1);
    workload
        .first_ack_after(Instant::now(), None, 10)
        .await
        .expect("commits on R0");
    let stalled = Instant::now();
    s.cluster
        .must(
            0,
            "stall",
            s.cluster
                .admin(0)
                .post_json("/debug/stall", &serde_json::json!({ "ms": stall_ms }))
                .await,
        )
        .await
        .unwrap();
    (s, workload, stalled)
}

/// The role of R1 or R2 that is PRIMARY, if any (R0's admin API hangs with its driver).
async fn secondary_promoted(cluster: &LocalCluster) -> Option<usize> {
    for i in [1, 2] {
        if cluster.role(i).await.as_deref() == Some("PRIMARY") {
            return Some(i);
        }
    }
    None
}

/// R-FAIL-7, level 1 ("server down or lease expired" only): a primary whose process is up but
/// hung for three lease periods keeps its lease (renewed by the manager's own thread), so no
/// replica is promoted, and it goes on committing when it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_failure_condition_level_1_a_hung_primary_is_not_failed_over() {
    let stall_ms = 3 * u64::from(LEASE_MS);
    let (s, workload, stalled) = hung_primary(1, stall_ms).await;
    while stalled.elapsed() < Duration::from_millis(stall_ms) {
        assert_eq!(
            secondary_promoted(&s.cluster).await,
            None,
            "failed over at level 1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = workload
        .first_ack_after(stalled + Duration::from_millis(stall_ms), None, 10)
        .await
        .expect("commits after the stall");
    assert_eq!(after.replica, 0, "R0 is still the primary");
    assert_eq!(secondary_promoted(&s.cluster).await, None);
    workload.stop().await;
}

/// R-FAIL-7, level 2 ("unresponsive for HEALTH_CHECK_TIMEOUT"): the same hang, longer than the
/// health-check timeout, fails the primary over: its lease is no longer renewed, it expires,
/// and a SYNCHRONIZED secondary is promoted; R0 acknowledges nothing after the promotion, and
/// nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_failure_condition_level_2_a_primary_hung_past_the_health_check_timeout_fails_over() {
    let stall_ms = 22_000;
    let (s, workload, stalled) = hung_primary(2, stall_ms).await;
    let new = wait_new_primary(&s.cluster, 0, 30).await.unwrap();
    let promoted = stalled.elapsed();
    eprintln!("R{new} promoted {} ms into the stall", promoted.as_millis());
    assert!(
        promoted >= Duration::from_millis(15_000),
        "promoted after {promoted:?}, before HEALTH_CHECK_TIMEOUT"
    );
    let first_new = workload
        .first_ack_after(stalled, Some(0), 20)
        .await
        .expect("commits on the new primary");
    // Past the stall: R0 wakes up, steps down and follows the new primary.
    s.cluster
        .wait_until("R0 is SECONDARY", 30, || async {
            s.cluster.role(0).await.as_deref() == Some("SECONDARY")
        })
        .await
        .unwrap();
    let report = workload.stop().await;
    let last_old = report
        .acks
        .iter()
        .filter(|a| a.replica == 0)
        .map(|a| a.at)
        .max();
    assert!(
        last_old.is_none_or(|t| t < first_new.at),
        "R0 acknowledged a commit after R{new} did"
    );
    let missing = missing_writes(
        s.cluster.replicas[new].client,
        "read_write",
        &report.acknowledged(),
    )
    .await
    .unwrap();
    assert!(missing.is_empty(), "acknowledged commits lost: {missing:?}");
}
