//! Fault injection on real `hadr replica` processes (`HADR_FAULT_INJECTION=1`, the
//! `/debug/*` routes of docs/node.md): the environment faults of the model, as the conformance
//! adapter drives them, and the offline observation of a killed replica. The `etcd` module
//! (cluster manager cut, health fault) needs the `etcd` feature and an etcd binary.

use hadr_node::api::{AdminResponse, Client};
use hadr_node::config::NodeConfig;
use hadr_node::node::{offline_observation, DatabaseRef, OfflineError};
use hadr_testbed::local_cluster::LocalCluster;
use hadr_types::{DatabaseObservation, Lsn, ReplicaObservation};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SYNC: &str = "SYNCHRONOUS_COMMIT";

/// `n` replicas (not started) with fault injection on and SESSION_TIMEOUT 5 s.
fn cluster(n: usize) -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cluster = LocalCluster::new(Path::new(env!("CARGO_BIN_EXE_hadr")), dir.path(), n)
        .expect("preparing replicas");
    cluster.fault_injection = true;
    cluster.session_timeout_s = 5;
    (dir, cluster)
}

async fn start_all(c: &mut LocalCluster) {
    for i in 0..c.replicas.len() {
        c.start(i).unwrap();
    }
    for i in 0..c.replicas.len() {
        c.wait_ready(i).await.unwrap();
    }
}

/// Transaction ids are never reused on a database (R-COMMIT-7): one counter per test binary.
static TXN: AtomicU32 = AtomicU32::new(1);

async fn commit_one(address: SocketAddr, key: &str) -> hadr_node::node::ClientReplyJson {
    let mut client = Client::connect(address).await.unwrap();
    let txn = TXN.fetch_add(1, Ordering::Relaxed);
    client
        .transact(
            &DatabaseRef::Name("db1".to_owned()),
            txn,
            &[(key.to_owned(), "x".to_owned())],
        )
        .await
        .unwrap()
}

/// `POST path` with a JSON body on replica `i`.
async fn post(c: &LocalCluster, i: usize, path: &str, body: serde_json::Value) -> AdminResponse {
    c.admin(i).post_json(path, &body).await.unwrap()
}

/// `POST path` on replica `i`, which must succeed.
async fn inject(
    c: &LocalCluster,
    i: usize,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let what = format!("{path} {body}");
    c.must(i, &what, c.admin(i).post_json(path, &body).await)
        .await
        .unwrap()
        .body
}

/// Cuts (or heals) the network between replicas `a` and `b`, on both sides.
async fn partition(c: &LocalCluster, a: usize, b: usize, cut: bool) {
    for (from, to) in [(a, b), (b, a)] {
        let peer = c.replicas[to].name.clone();
        let r = inject(
            c,
            from,
            "/debug/partition",
            json!({ "peer": peer, "cut": cut }),
        )
        .await;
        assert_eq!(r["result"], if cut { "cut" } else { "healed" }, "{r}");
        assert_eq!(r["changed"], true, "{r}");
    }
}

/// Replica `i` as `GET /observation` shows it.
async fn observe(c: &LocalCluster, i: usize) -> ReplicaObservation {
    let r = c.admin(i).get("/observation").await.unwrap();
    assert!(r.ok(), "GET /observation on R{i}: {} {}", r.status, r.body);
    serde_json::from_value(r.body).unwrap()
}

/// The end of log of database 0 of replica `i`.
async fn end_of_log(c: &LocalCluster, i: usize) -> Lsn {
    observe(c, i).await.databases[0].end_of_log_lsn
}

fn assert_refused(r: &AdminResponse, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (status, Some(code)),
        "{}",
        r.body
    );
    assert!(
        !r.body["error"].as_str().unwrap_or_default().is_empty(),
        "no error message: {}",
        r.body
    );
}

/// R-HEALTH-1, R-COMMIT-4: a partition is silent, like a cut network. The primary's commits
/// wait for the partitioned synchronous secondary until SESSION_TIMEOUT (nobody was told of
/// the cut), then it is no longer SYNCHRONIZED and commits go on without it; nothing crosses
/// the cut. Healed, the replicas reconnect and the secondary catches up and is SYNCHRONIZED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_times_out_the_session_and_healing_resynchronizes() {
    let (_dir, mut c) = cluster(2);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    assert_eq!(
        commit_one(c.replicas[0].client, "before").await.outcome,
        "committed"
    );
    partition(&c, 0, 1, true).await;
    let cut = Instant::now();
    let reply = commit_one(c.replicas[0].client, "during").await;
    let waited = cut.elapsed();
    let state = c.sync_state(0, 1).await;
    assert_eq!(reply.outcome, "committed", "{reply:?}");
    assert_ne!(state.as_deref(), Some("SYNCHRONIZED"));
    // Pings every SESSION_TIMEOUT / 4: the last one may have come 1.25 s before the cut.
    assert!(
        waited >= Duration::from_millis(3_500),
        "the commit did not wait for the session timeout: the cut was not silent ({waited:?})"
    );
    assert!(
        waited < Duration::from_secs(12),
        "the commit waited past SESSION_TIMEOUT: {waited:?}"
    );
    // Nothing crosses the cut: R1 does not get the commits, and sees R0 disconnected.
    for n in 0..3 {
        let r = commit_one(c.replicas[0].client, &format!("cut-{n}")).await;
        assert_eq!(r.outcome, "committed", "{r:?}");
    }
    c.wait_until("R1 sees R0 DISCONNECTED", 15, || async {
        let s = c.admin(1).get("/status").await.unwrap().body;
        s["peers"][0]["connected_state"] == "DISCONNECTED"
    })
    .await
    .unwrap();
    let (primary_end, secondary_end) = (end_of_log(&c, 0).await, end_of_log(&c, 1).await);
    assert!(
        secondary_end < primary_end,
        "R1 received log across the partition: {secondary_end} of {primary_end}"
    );
    partition(&c, 0, 1, false).await;
    c.wait_until("R1 is SYNCHRONIZED again", 30, || async {
        c.sync_state(0, 1).await.as_deref() == Some("SYNCHRONIZED")
    })
    .await
    .unwrap();
    c.wait_until("R1 caught up", 10, || async {
        end_of_log(&c, 1).await == primary_end
    })
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(
        commit_one(c.replicas[0].client, "after").await.outcome,
        "committed"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// R-SYNC-1: a log block lost on the way (`/debug/drop-log`) shows as a gap at the next block;
/// the secondary refuses it and the primary sends again from the secondary's end of log, so
/// both commits are acknowledged and the secondary ends with the primary's end of log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_log_block_is_detected_as_a_gap_and_sent_again() {
    let (_dir, mut c) = cluster(2);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    assert_eq!(
        commit_one(c.replicas[0].client, "a").await.outcome,
        "committed"
    );
    let before = end_of_log(&c, 0).await;
    let r = inject(
        &c,
        0,
        "/debug/drop-log",
        json!({ "peer": "R1", "database": "db1" }),
    )
    .await;
    assert_eq!(
        (r["result"].as_str(), r["already_armed"].as_bool()),
        (Some("armed"), Some(false)),
        "{r}"
    );
    // By index too: the same drop, already armed.
    let r = inject(
        &c,
        0,
        "/debug/drop-log",
        json!({ "peer": "R1", "database": 0 }),
    )
    .await;
    assert_eq!(r["already_armed"], true, "{r}");
    let lost = tokio::spawn(commit_one(c.replicas[0].client, "b"));
    c.wait_until("R0 logged b", 10, || async {
        end_of_log(&c, 0).await > before
    })
    .await
    .unwrap();
    assert_eq!(end_of_log(&c, 1).await, before, "the block of b reached R1");
    let next = commit_one(c.replicas[0].client, "c").await;
    let lost = tokio::time::timeout(Duration::from_secs(10), lost)
        .await
        .expect("b is answered once the gap is repaired")
        .unwrap();
    assert_eq!(lost.outcome, "committed", "{lost:?}");
    assert_eq!(next.outcome, "committed", "{next:?}");
    let primary_end = end_of_log(&c, 0).await;
    c.wait_until("R1 has R0's end of log", 10, || async {
        end_of_log(&c, 1).await == primary_end
    })
    .await
    .unwrap();
    assert_eq!(primary_end, Lsn(before.0 + 2));
    assert_eq!(c.sync_state(0, 1).await.as_deref(), Some("SYNCHRONIZED"));
}

/// With `HADR_FAULT_INJECTION=process` (a harness that cuts the network from outside) the
/// network's routes are refused with 404 `NetworkFaultInjectionDisabled` and the process' own
/// faults are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_process_faults_only_the_network_routes_are_refused() {
    let (_dir, mut c) = cluster(2);
    c.env
        .push(("HADR_FAULT_INJECTION".to_owned(), "process".to_owned()));
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    for (path, body) in [
        ("/debug/partition", json!({ "peer": "R1", "cut": true })),
        ("/debug/manager", json!({ "cut": true })),
    ] {
        let r = post(&c, 0, path, body).await;
        assert_refused(&r, 404, "NetworkFaultInjectionDisabled");
    }
    let r = post(&c, 0, "/debug/health-fault", json!({ "level": 1 })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        commit_one(c.replicas[0].client, "k").await.outcome,
        "committed",
        "no partition was made"
    );
}

/// Without `HADR_FAULT_INJECTION=1` every fault route is refused with 404
/// `FaultInjectionDisabled`, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_routes_are_refused_without_hadr_fault_injection() {
    let (_dir, mut c) = cluster(2);
    c.fault_injection = false;
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    let routes = [
        ("/debug/stall", json!({ "ms": 10 })),
        ("/debug/partition", json!({ "peer": "R1", "cut": true })),
        ("/debug/manager", json!({ "cut": true })),
        (
            "/debug/drop-log",
            json!({ "peer": "R1", "database": "db1" }),
        ),
        ("/debug/health-fault", json!({ "level": 1 })),
    ];
    for (path, body) in routes {
        let r = post(&c, 0, path, body).await;
        assert_refused(&r, 404, "FaultInjectionDisabled");
        assert!(
            r.body["error"]
                .as_str()
                .is_some_and(|e| e.contains("HADR_FAULT_INJECTION=1")),
            "{path}: {}",
            r.body
        );
    }
    let started = Instant::now();
    assert_eq!(
        commit_one(c.replicas[0].client, "k").await.outcome,
        "committed"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(c.sync_state(0, 1).await.as_deref(), Some("SYNCHRONIZED"));
    assert_eq!(end_of_log(&c, 1).await, end_of_log(&c, 0).await);
}

/// Fault requests that cannot be carried out get clear errors (the documented codes) and
/// change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fault_requests_get_clear_errors() {
    let (_dir, mut c) = cluster(2);
    start_all(&mut c).await;
    let r = post(
        &c,
        0,
        "/debug/partition",
        json!({ "peer": "R1", "cut": true }),
    )
    .await;
    assert_refused(&r, 409, "NotInAvailabilityGroup");
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    let cases = [
        (
            0,
            "/debug/partition",
            json!({ "peer": "R9", "cut": true }),
            404,
            "UnknownReplicaName",
        ),
        (
            0,
            "/debug/partition",
            json!({ "peer": "R0", "cut": true }),
            400,
            "ThisReplica",
        ),
        (
            0,
            "/debug/partition",
            json!({ "peer": "R1" }),
            400,
            "MalformedRequest",
        ),
        (
            0,
            "/debug/partition",
            json!({ "peer": "R1", "cut": true, "x": 1 }),
            400,
            "MalformedRequest",
        ),
        (
            0,
            "/debug/drop-log",
            json!({ "peer": "R1", "database": "nope" }),
            404,
            "UnknownDatabaseName",
        ),
        (
            0,
            "/debug/drop-log",
            json!({ "peer": "R1", "database": 3 }),
            404,
            "UnknownDatabaseName",
        ),
        (
            1,
            "/debug/drop-log",
            json!({ "peer": "R0", "database": "db1" }),
            409,
            "NotPrimary",
        ),
        (
            0,
            "/debug/manager",
            json!({ "cut": true }),
            409,
            "NoClusterManager",
        ),
        (
            0,
            "/debug/manager",
            json!({ "cut": "yes" }),
            400,
            "MalformedRequest",
        ),
        (
            0,
            "/debug/health-fault",
            json!({ "level": 0 }),
            400,
            "MalformedRequest",
        ),
        (
            0,
            "/debug/health-fault",
            json!({ "level": 6 }),
            400,
            "MalformedRequest",
        ),
    ];
    for (i, path, body, status, code) in cases {
        let r = post(&c, i, path, body.clone()).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (status, Some(code)),
            "R{i} {path} {body}: {}",
            r.body
        );
    }
    // A health fault on a group without a cluster manager does nothing, and says why.
    let r = inject(&c, 0, "/debug/health-fault", json!({ "level": 1 })).await;
    assert_eq!(r["result"], "no_effect", "{r}");
    assert!(
        r["reason"].as_str().is_some_and(|w| w.contains("NONE")),
        "{r}"
    );
    assert_eq!(c.role(0).await.as_deref(), Some("PRIMARY"));
    assert_eq!(
        commit_one(c.replicas[0].client, "k").await.outcome,
        "committed"
    );
    assert_eq!(c.sync_state(0, 1).await.as_deref(), Some("SYNCHRONIZED"));
}

/// Every file of a data directory, by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn node_config(c: &LocalCluster, i: usize) -> NodeConfig {
    let spec = &c.replicas[i];
    NodeConfig::load(&spec.data_dir.with_file_name(format!("{}.toml", spec.name))).unwrap()
}

/// What the model (and the reference simulation) reports for a crashed replica whose durable
/// log ends at `durable`: down, no role, every LSN the durable end, suspension as persisted.
fn crashed(live: &ReplicaObservation, durable: Lsn) -> ReplicaObservation {
    ReplicaObservation {
        replica: live.replica,
        up: false,
        role: None,
        databases: live
            .databases
            .iter()
            .map(|d| DatabaseObservation {
                database: d.database,
                database_state: d.database_state,
                synchronization_state: None,
                suspended: d.suspended,
                end_of_log_lsn: durable,
                last_hardened_lsn: durable,
                last_redone_lsn: durable,
                is_failover_ready: false,
            })
            .collect(),
    }
}

/// The offline observation of a SIGKILLed replica, read from its files without changing them,
/// is what the model reports for a crashed replica: down, no role, its durable end of log as
/// every LSN, its persisted suspension. A torn tail is not counted (nor cut off), and a restart
/// recovers exactly what it reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_observation_of_a_killed_replica_is_its_durable_state() {
    let (_dir, mut c) = cluster(2);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    for n in 0..5 {
        assert_eq!(
            commit_one(c.replicas[0].client, &format!("k{n}"))
                .await
                .outcome,
            "committed"
        );
    }
    // R1 suspends its database (persisted) and falls behind R0.
    c.must(
        1,
        "SUSPEND",
        c.admin(1).post_text("/databases/db1/suspend", "").await,
    )
    .await
    .unwrap();
    for n in 5..8 {
        assert_eq!(
            commit_one(c.replicas[0].client, &format!("k{n}"))
                .await
                .outcome,
            "committed"
        );
    }
    let live = [observe(&c, 0).await, observe(&c, 1).await];
    for (i, o) in live.iter().enumerate() {
        let d = &o.databases[0];
        assert_eq!(d.end_of_log_lsn, d.last_hardened_lsn, "R{i}: {o:?}");
    }
    assert!(live[1].databases[0].suspended.is_some(), "{:?}", live[1]);
    assert!(live[1].databases[0].end_of_log_lsn < live[0].databases[0].end_of_log_lsn);

    for i in [1, 0] {
        c.kill(i);
        let dir = &c.replicas[i].data_dir;
        let before = files(dir);
        let offline = offline_observation(&node_config(&c, i)).unwrap();
        assert_eq!(
            files(dir),
            before,
            "R{i}: the offline observation changed a file"
        );
        let durable = live[i].databases[0].end_of_log_lsn;
        assert_eq!(offline, crashed(&live[i], durable), "R{i}");
    }

    // A torn tail (a record cut by the crash) is not part of the durable log, and stays.
    let wal = c.replicas[1].data_dir.join("db-0.wal");
    let torn = hadr_node::wal::tear_last_record(&wal, 3).unwrap();
    assert_eq!(torn, Some(live[1].databases[0].end_of_log_lsn));
    let contents = std::fs::read(&wal).unwrap();
    let durable = Lsn(live[1].databases[0].end_of_log_lsn.0 - 1);
    let offline = offline_observation(&node_config(&c, 1)).unwrap();
    assert_eq!(offline, crashed(&live[1], durable));
    assert_eq!(
        std::fs::read(&wal).unwrap(),
        contents,
        "the torn tail stays"
    );

    // A restart recovers what the offline observation reported (R1 stays suspended: its
    // primary is down anyway).
    c.start(1).unwrap();
    c.wait_ready(1).await.unwrap();
    let restarted = observe(&c, 1).await;
    assert_eq!(restarted.databases[0].end_of_log_lsn, durable);
    assert_eq!(restarted.databases[0].last_hardened_lsn, durable);
    assert_eq!(
        restarted.databases[0].suspended,
        offline.databases[0].suspended
    );

    // Nothing to observe: no data directory, or a replica that never joined a group.
    let mut config = node_config(&c, 1);
    config.data_dir = c.replicas[1].data_dir.join("nowhere");
    assert!(matches!(
        offline_observation(&config),
        Err(OfflineError::NoDataDir { .. })
    ));
    let empty = tempfile::tempdir().unwrap();
    config.data_dir = empty.path().to_owned();
    let error = offline_observation(&config).unwrap_err();
    assert!(
        matches!(error, OfflineError::NotInAvailabilityGroup { .. }),
        "{error}"
    );
    assert!(std::fs::read_dir(empty.path()).unwrap().next().is_none());
}

/// The cluster-manager faults, under a real etcd: a replica cut off from etcd, and a health
/// fault of the primary (R-FAIL-7).
#[cfg(feature = "etcd")]
mod etcd {
    use super::*;
    use hadr_manager::local::LocalEtcd;
    use hadr_testbed::failover::{wait_new_primary, Workload};
    use hadr_testbed::local_cluster::missing_writes;

    /// The etcd lease: 2 s (the primary commits for 1.5 s after each renewal).
    const LEASE_MS: u32 = 2000;

    struct Setup {
        cluster: LocalCluster,
        _etcd: LocalEtcd,
        _dir: tempfile::TempDir,
    }

    /// Three SYNCHRONOUS_COMMIT replicas with fault injection in an EXTERNAL group on a
    /// one-member etcd, with `config` edited by `edit`; R0 is primary, R1 and R2 SYNCHRONIZED.
    async fn setup(edit: impl FnOnce(&mut serde_json::Value)) -> Setup {
        let (dir, mut cluster) = cluster(3);
        let etcd = LocalEtcd::start(&dir.path().join("etcd"), 1).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..3 {
            cluster.set_etcd_endpoints(i, &etcd.endpoints()).unwrap();
        }
        start_all(&mut cluster).await;
        let modes = [SYNC, SYNC, SYNC];
        let mut config = cluster.external_config(&modes, LEASE_MS);
        config["policy"] = json!({ "failover_threshold": 100 });
        edit(&mut config);
        cluster.create_group_from(&config, &modes).await.unwrap();
        Setup {
            cluster,
            _etcd: etcd,
            _dir: dir,
        }
    }

    async fn role_is(c: &LocalCluster, i: usize, role: &'static str) {
        c.wait_until(&format!("R{i} is {role}"), 30, || async move {
            c.role(i).await.as_deref() == Some(role)
        })
        .await
        .unwrap();
    }

    /// R-QUORUM-2/3, R-ROLE-1: a secondary cut off from etcd cannot reach the manager and is
    /// RESOLVING until healed. A primary cut off from etcd cannot renew its lease: it stops
    /// acknowledging commits before a SYNCHRONIZED secondary is promoted, and once healed it
    /// follows the new primary. Nothing acknowledged is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replica_cut_off_from_the_manager_resolves_and_a_primary_loses_its_lease() {
        let s = setup(|_| {}).await;
        let c = &s.cluster;
        let modes = [SYNC, SYNC, SYNC];

        let r = inject(c, 2, "/debug/manager", json!({ "cut": true })).await;
        assert_eq!(
            (r["result"].as_str(), r["changed"].as_bool()),
            (Some("cut"), Some(true))
        );
        role_is(c, 2, "RESOLVING").await;
        assert_eq!(c.role(0).await.as_deref(), Some("PRIMARY"));
        let r = inject(c, 2, "/debug/manager", json!({ "cut": false })).await;
        assert_eq!(r["result"], "healed", "{r}");
        role_is(c, 2, "SECONDARY").await;
        c.wait_synchronized(0, &modes).await.unwrap();

        let addresses: Vec<SocketAddr> = c.replicas.iter().map(|r| r.client).collect();
        let workload = Workload::start(addresses, 0, 1);
        workload
            .first_ack_after(Instant::now(), None, 10)
            .await
            .expect("commits on R0");
        inject(c, 0, "/debug/manager", json!({ "cut": true })).await;
        let new = wait_new_primary(c, 0, 30).await.unwrap();
        let promoted = Instant::now();
        workload
            .first_ack_after(promoted, Some(0), 20)
            .await
            .expect("commits on the new primary");
        assert_ne!(c.role(0).await.as_deref(), Some("PRIMARY"), "R0 cut off");
        inject(c, 0, "/debug/manager", json!({ "cut": false })).await;
        role_is(c, 0, "SECONDARY").await;
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
            panic!("commits on both primaries expected: {}", report.acks.len());
        };
        assert!(
            last_old < first_new,
            "R0 acknowledged a commit after R{new} did"
        );
        let missing = missing_writes(c.replicas[new].client, "read_write", &report.acknowledged())
            .await
            .unwrap();
        assert!(missing.is_empty(), "acknowledged commits lost: {missing:?}");
    }

    /// R-FAIL-7: a health fault above FAILURE_CONDITION_LEVEL, or on a secondary, does
    /// nothing. At the level, on the primary, its lease is no longer renewed, so a SYNCHRONIZED
    /// secondary is promoted. The fault is one event, as the spec's HealthFault: once failed
    /// over, the replica is healthy again, and a lease it is granted later is renewed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_health_fault_at_the_failure_condition_level_fails_the_primary_over() {
        let s = setup(|config| config["failure_condition_level"] = 3.into()).await;
        let modes = [SYNC, SYNC, SYNC];
        let c = &s.cluster;
        let r = inject(c, 0, "/debug/health-fault", json!({ "level": 4 })).await;
        assert_eq!(
            (r["result"].as_str(), r["failure_condition_level"].as_u64()),
            (Some("no_effect"), Some(3)),
            "{r}"
        );
        let r = inject(c, 1, "/debug/health-fault", json!({ "level": 1 })).await;
        assert_eq!(r["result"], "no_effect", "{r}");
        assert!(
            r["reason"]
                .as_str()
                .is_some_and(|w| w.contains("not the primary")),
            "{r}"
        );
        assert_eq!(
            commit_one(c.replicas[0].client, "still").await.outcome,
            "committed"
        );
        let r = inject(c, 0, "/debug/health-fault", json!({ "level": 3 })).await;
        assert_eq!(r["result"], "lease_not_renewed", "{r}");
        let new = wait_new_primary(c, 0, 30).await.unwrap();
        role_is(c, 0, "SECONDARY").await;
        c.wait_synchronized(new, &modes).await.unwrap();
        assert_eq!(
            commit_one(c.replicas[new].client, "after").await.outcome,
            "committed"
        );
        // The fault was one event: a planned failover back to R0 holds, past several lease
        // TTLs (its new lease is renewed), and R0 commits.
        c.wait_synchronized(new, &modes).await.unwrap();
        let answer = c
            .admin(0)
            .post_json("/ag/failover", &json!({}))
            .await
            .unwrap();
        assert!(
            answer.ok(),
            "planned failover back to R0: {answer:?}\n{}",
            c.log_lines(&["promot", "lease", "failover"])
        );
        role_is(c, 0, "PRIMARY").await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        role_is(c, 0, "PRIMARY").await;
        assert_eq!(
            commit_one(c.replicas[0].client, "healthy").await.outcome,
            "committed"
        );
        drop(s);
    }
}
