//! End-to-end tests of the reference replicas: real `hadr replica` processes on loopback,
//! real TCP, real fsync, SIGKILL and SIGSTOP. Each test names the rules it checks.
//!
//! `HADR_E2E_ROUNDS` sets the number of randomized kill-and-failover rounds (default 4).

use hadr_node::api::Client;
use hadr_node::node::DatabaseRef;
use hadr_testbed::local_cluster::LocalCluster;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYNC: &str = "SYNCHRONOUS_COMMIT";
const ASYNC: &str = "ASYNCHRONOUS_COMMIT";

fn cluster(n: usize) -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cluster = LocalCluster::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_hadr")),
        dir.path(),
        n,
    )
    .expect("preparing replicas");
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

fn db() -> DatabaseRef {
    DatabaseRef::Name("db1".to_owned())
}

/// Transaction ids are never reused on a database (R-COMMIT-7): one counter per test.
static TXN: AtomicU32 = AtomicU32::new(1);

#[derive(Default, Debug)]
struct Outcomes {
    /// key → value of every acknowledged commit.
    acknowledged: BTreeMap<String, String>,
    refused: usize,
    unknown: usize,
}

/// `clients` connections commit one-key transactions until `stop` is set or their connection
/// fails; keys are `{tag}-{client}-{n}` with n increasing per client.
async fn workload(
    address: SocketAddr,
    tag: String,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Outcomes {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let stop = stop.clone();
        let tag = tag.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcomes::default();
            let Ok(mut client) = Client::connect(address).await else {
                return out;
            };
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("{tag}-{c}-{n:06}");
                let value = format!("v{n}");
                let txn = TXN.fetch_add(1, Ordering::Relaxed);
                match client
                    .transact(&db(), txn, &[(key.clone(), value.clone())])
                    .await
                {
                    Ok(r) if r.outcome == "committed" => {
                        out.acknowledged.insert(key, value);
                    }
                    Ok(r) if r.outcome == "refused" => out.refused += 1,
                    _ => {
                        out.unknown += 1;
                        return out;
                    }
                }
            }
            out
        }));
    }
    let mut all = Outcomes::default();
    for t in tasks {
        let o = t.await.unwrap();
        all.acknowledged.extend(o.acknowledged);
        all.refused += o.refused;
        all.unknown += o.unknown;
    }
    all
}

/// The acknowledged writes the replica at `address` does not show (reads with the given
/// intent). A secondary that refuses reads for now (INITIALIZING after a revert, R-READ-1: its
/// primary may already see it SYNCHRONIZING) is asked again, for up to 30 s.
async fn missing(
    address: SocketAddr,
    intent: &str,
    expected: &BTreeMap<String, String>,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match hadr_testbed::local_cluster::missing_writes(address, intent, expected).await {
            Ok(lost) => return lost,
            Err(e) if Instant::now() < deadline && e.to_string().contains("NotReadable") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{address}: {e}"),
        }
    }
}

/// Waits (up to 30 s) until the replica at `address` shows every write of `expected`: a
/// secondary serves only redone data, and redo runs after hardening (R-SYNC-2, R-READ-2).
async fn eventually_shows(address: SocketAddr, intent: &str, expected: &BTreeMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lost = missing(address, intent, expected).await;
        if lost.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{address} misses {} of {} acknowledged commits, e.g. {:?}",
            lost.len(),
            expected.len(),
            &lost[..lost.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn commit_one(address: SocketAddr, key: &str) -> hadr_node::node::ClientReplyJson {
    let mut client = Client::connect(address).await.unwrap();
    let txn = TXN.fetch_add(1, Ordering::Relaxed);
    client
        .transact(&db(), txn, &[(key.to_owned(), "x".to_owned())])
        .await
        .unwrap()
}

async fn sql(c: &LocalCluster, i: usize, text: &str) {
    c.must(i, text, c.admin(i).post_text("/sql", text).await)
        .await
        .unwrap();
}

/// R-COMMIT-2, R-COMMIT-6, R-FAIL-4, R-FAIL-6: over randomized rounds, commits acknowledged in
/// synchronous-commit mode survive SIGKILL of the primary and a forced failover to a
/// SYNCHRONIZED secondary; the killed primary restarts, is suspended, resumes and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_commit_6_sync_commits_survive_sigkill_and_failover_to_a_synchronized_secondary() {
    let rounds: usize = std::env::var("HADR_E2E_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let (_dir, mut c) = cluster(3);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC, SYNC], 0).await.unwrap();
    let mut acknowledged = BTreeMap::new();
    let mut primary = 0usize;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_ms = 300 + seed % 700;
        let target = (primary + 1 + (seed as usize >> 8) % 2) % 3;
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(workload(
            c.replicas[primary].client,
            format!("r{round}"),
            4,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        c.kill(primary);
        stop.store(true, Ordering::Relaxed);
        let outcomes = load.await.unwrap();
        assert!(
            !outcomes.acknowledged.is_empty(),
            "round {round}: no commit was acknowledged: {outcomes:?}"
        );
        acknowledged.extend(outcomes.acknowledged);
        sql(
            &c,
            target,
            "ALTER AVAILABILITY GROUP [demo] FORCE_FAILOVER_ALLOW_DATA_LOSS;",
        )
        .await;
        c.wait_until("the target is PRIMARY", 30, || async {
            c.role(target).await.as_deref() == Some("PRIMARY")
        })
        .await
        .unwrap();
        let lost = missing(c.replicas[target].client, "read_write", &acknowledged).await;
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged commits lost after failover to R{target}: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        // The third replica and the restarted old primary are suspended; resume both.
        let other = 3 - primary - target;
        c.start(primary).unwrap();
        c.wait_ready(primary).await.unwrap();
        for r in [other, primary] {
            c.wait_until(&format!("R{r} is suspended"), 30, || async {
                c.suspended(r).await.is_some()
            })
            .await
            .unwrap();
            sql(&c, r, "ALTER DATABASE [db1] SET HADR RESUME;").await;
        }
        for r in [other, primary] {
            c.wait_until(&format!("R{r} is SYNCHRONIZED"), 30, || async {
                c.sync_state(target, r).await.as_deref() == Some("SYNCHRONIZED")
            })
            .await
            .unwrap();
        }
        primary = target;
    }
    for r in 0..3 {
        let intent = if r == primary {
            "read_write"
        } else {
            "read_only"
        };
        eventually_shows(c.replicas[r].client, intent, &acknowledged).await;
    }
}

/// R-COMMIT-3, R-SYNC-1: in asynchronous-commit mode a forced failover loses at most a suffix
/// of what the primary acknowledged (what was not yet sent): the new primary holds, for each
/// client, a prefix of its acknowledged commits with no hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_commit_3_async_failover_loses_at_most_a_suffix() {
    let (_dir, mut c) = cluster(2);
    start_all(&mut c).await;
    c.create_group(&[SYNC, ASYNC], 0).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(workload(
        c.replicas[0].client,
        "a".to_owned(),
        2,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.kill(0);
    stop.store(true, Ordering::Relaxed);
    let outcomes = load.await.unwrap();
    assert!(!outcomes.acknowledged.is_empty(), "{outcomes:?}");
    sql(
        &c,
        1,
        "ALTER AVAILABILITY GROUP [demo] FORCE_FAILOVER_ALLOW_DATA_LOSS;",
    )
    .await;
    let lost = missing(c.replicas[1].client, "read_write", &outcomes.acknowledged).await;
    for client in 0..2 {
        let prefix = format!("a-{client}-");
        let keys: Vec<&String> = outcomes
            .acknowledged
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        let lost_here: Vec<&String> = keys.iter().copied().filter(|k| lost.contains(k)).collect();
        // Lost keys, if any, are the last ones of this client: a suffix.
        if let Some(first_lost) = lost_here.first() {
            let position = keys.iter().position(|k| k == first_lost).unwrap();
            assert_eq!(
                &keys[position..],
                &lost_here[..],
                "client {client}: lost commits are not a suffix"
            );
        }
    }
    // What was shipped long before the kill survived: the first commit of each client.
    for client in 0..2 {
        let prefix = format!("a-{client}-");
        if let Some(first) = outcomes
            .acknowledged
            .keys()
            .find(|k| k.starts_with(&prefix))
        {
            assert!(
                !lost.contains(first),
                "the first commit of client {client} was lost"
            );
        }
    }
    eprintln!(
        "async failover: {} acknowledged, {} lost (not yet sent)",
        outcomes.acknowledged.len(),
        lost.len()
    );
}

/// R-COMMIT-4, R-HEALTH-1: a synchronous secondary that stops answering (SIGSTOP) blocks
/// commits only until SESSION_TIMEOUT; then it is no longer a commit participant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_commit_4_a_timed_out_sync_secondary_stops_blocking_commits() {
    let (_dir, mut c) = cluster(2);
    c.session_timeout_s = 5;
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    assert_eq!(
        commit_one(c.replicas[0].client, "before").await.outcome,
        "committed"
    );
    c.signal(1, "STOP").unwrap();
    let started = Instant::now();
    let reply = commit_one(c.replicas[0].client, "during").await;
    let waited = started.elapsed();
    // After the timeout the secondary is no longer SYNCHRONIZED (so no longer a commit
    // participant); once it runs again it reconnects and catches up.
    let state = c.sync_state(0, 1).await;
    c.signal(1, "CONT").unwrap();
    assert_ne!(state.as_deref(), Some("SYNCHRONIZED"));
    assert_eq!(reply.outcome, "committed", "{reply:?}");
    assert!(
        waited >= Duration::from_secs(4),
        "the commit did not wait for the secondary: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(12),
        "the commit waited past SESSION_TIMEOUT: {waited:?}"
    );
    c.wait_until("R1 is SYNCHRONIZED again", 30, || async {
        c.sync_state(0, 1).await.as_deref() == Some("SYNCHRONIZED")
    })
    .await
    .unwrap();
}

/// R-COMMIT-5, R-COMMIT-7: with REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1 and the only
/// synchronous secondary down, commits are refused with a definite error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_commit_5_k1_without_a_synchronized_secondary_refuses_commits() {
    let (_dir, mut c) = cluster(3);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC, ASYNC], 1).await.unwrap();
    assert_eq!(
        commit_one(c.replicas[0].client, "k1-before").await.outcome,
        "committed"
    );
    c.kill(1);
    c.wait_until("R1 is not SYNCHRONIZED", 30, || async {
        c.sync_state(0, 1).await.as_deref() != Some("SYNCHRONIZED")
    })
    .await
    .unwrap();
    let reply = commit_one(c.replicas[0].client, "k1-during").await;
    assert_eq!(reply.outcome, "refused", "{reply:?}");
    assert_eq!(
        reply.code.as_deref(),
        Some("TooFewSynchronized"),
        "{reply:?}"
    );
    // Definite: the key was never committed.
    let lost = missing(
        c.replicas[0].client,
        "read_write",
        &BTreeMap::from([("k1-during".to_owned(), "x".to_owned())]),
    )
    .await;
    assert_eq!(lost.len(), 1);
    c.start(1).unwrap();
    c.wait_until("R1 is SYNCHRONIZED again", 30, || async {
        c.sync_state(0, 1).await.as_deref() == Some("SYNCHRONIZED")
    })
    .await
    .unwrap();
    assert_eq!(
        commit_one(c.replicas[0].client, "k1-after").await.outcome,
        "committed"
    );
}

/// R-FAIL-4, R-FAIL-6: a forced failover suspends the other secondaries; the old primary's
/// commits that never reached the new primary are reverted when it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_fail_6_resume_reverts_the_old_primarys_extra_log() {
    let (_dir, mut c) = cluster(3);
    start_all(&mut c).await;
    c.create_group(&[SYNC, ASYNC, ASYNC], 0).await.unwrap();
    assert_eq!(
        commit_one(c.replicas[0].client, "shared").await.outcome,
        "committed"
    );
    c.wait_until("R1 has the shared commit", 30, || async {
        missing(
            c.replicas[1].client,
            "read_only",
            &BTreeMap::from([("shared".to_owned(), "x".to_owned())]),
        )
        .await
        .is_empty()
    })
    .await
    .unwrap();
    // R1 goes down; R0 acknowledges commits R1 never receives (asynchronous commit).
    // (SIGSTOP would not do: the kernel still buffers what R0 sends to R1's socket.)
    c.kill(1);
    let mut extra = BTreeMap::new();
    for n in 0..5 {
        let key = format!("extra-{n}");
        assert_eq!(
            commit_one(c.replicas[0].client, &key).await.outcome,
            "committed"
        );
        extra.insert(key, "x".to_owned());
    }
    c.kill(0);
    c.start(1).unwrap();
    c.wait_ready(1).await.unwrap();
    sql(
        &c,
        1,
        "ALTER AVAILABILITY GROUP [demo] FORCE_FAILOVER_ALLOW_DATA_LOSS;",
    )
    .await;
    assert_eq!(
        missing(c.replicas[1].client, "read_write", &extra)
            .await
            .len(),
        extra.len(),
        "the new primary must not have the old primary's last commits"
    );
    c.wait_until("R2 is suspended", 30, || async {
        c.suspended(2).await.is_some()
    })
    .await
    .unwrap();
    assert_eq!(
        c.suspended(2).await.as_deref(),
        Some("SUSPEND_FROM_PARTNER")
    );
    // The old primary comes back, follows R1 and is suspended with its extra log.
    c.start(0).unwrap();
    c.wait_ready(0).await.unwrap();
    c.wait_until("R0 follows R1, suspended", 30, || async {
        c.role(0).await.as_deref() == Some("SECONDARY") && c.suspended(0).await.is_some()
    })
    .await
    .unwrap();
    sql(&c, 0, "ALTER DATABASE [db1] SET HADR RESUME;").await;
    c.wait_until("R0 is SYNCHRONIZING", 30, || async {
        c.sync_state(1, 0).await.as_deref() == Some("SYNCHRONIZING")
    })
    .await
    .unwrap();
    let still = missing(c.replicas[0].client, "read_only", &extra).await;
    assert_eq!(
        still.len(),
        extra.len(),
        "R0 kept commits of the abandoned fork: {:?}",
        extra
            .keys()
            .filter(|k| !still.contains(k))
            .collect::<Vec<_>>()
    );
    eventually_shows(
        c.replicas[0].client,
        "read_only",
        &BTreeMap::from([("shared".to_owned(), "x".to_owned())]),
    )
    .await;
}

/// The WAL: a torn tail (the sectors of the last record a crash kept from the disk) is
/// recovered to the last good record, not taken for damage, and the replica catches up from
/// the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_wal_tail_is_recovered_and_the_replica_catches_up() {
    let (_dir, mut c) = cluster(2);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    let mut expected = BTreeMap::new();
    for n in 0..20 {
        let key = format!("t-{n}");
        assert_eq!(
            commit_one(c.replicas[0].client, &key).await.outcome,
            "committed"
        );
        expected.insert(key, "x".to_owned());
    }
    c.kill(1);
    // The last record's last 5 bytes never reached the disk (zeros, as in preallocated space).
    let wal = c.replicas[1].data_dir.join("db-0.wal");
    assert!(hadr_node::wal::tear_last_record(&wal, 5).unwrap().is_some());
    c.start(1).unwrap();
    c.wait_ready(1).await.unwrap();
    c.wait_until("R1 is SYNCHRONIZED again", 30, || async {
        c.sync_state(0, 1).await.as_deref() == Some("SYNCHRONIZED")
    })
    .await
    .unwrap();
    let log = std::fs::read_to_string(&c.replicas[1].log).unwrap();
    assert!(!log.contains("damaged"), "a torn tail was taken for damage");
    eventually_shows(c.replicas[1].client, "read_only", &expected).await;
}

/// Bad input from outside changes nothing: a garbage frame on the endpoint, malformed client
/// lines, bad admin requests and a bad node configuration all get clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_requests_and_configurations_get_clear_errors_and_change_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (dir, mut c) = cluster(2);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    let before = c.admin(0).get("/status").await.unwrap().body;

    // A garbage frame on the replica endpoint: the connection is closed, nothing else happens.
    let mut s = tokio::net::TcpStream::connect(c.replicas[0].endpoint)
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\nnot a frame at all")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the endpoint answered garbage with data");

    // Malformed client lines get an error line; the connection stays usable.
    let mut client = Client::connect(c.replicas[0].client).await.unwrap();
    let r = client.request(json!({ "op": "launch" })).await.unwrap();
    assert_eq!(
        (r.outcome.as_str(), r.code.as_deref()),
        ("error", Some("MalformedRequest"))
    );
    let r = client
        .request(json!({ "op": "read", "db": "nope", "key": "k" }))
        .await
        .unwrap();
    assert_eq!(r.code.as_deref(), Some("UnknownDatabaseName"), "{r:?}");
    let txn = TXN.fetch_add(1, Ordering::Relaxed);
    let r = client
        .transact(&db(), txn, &[("ok".into(), "1".into())])
        .await
        .unwrap();
    assert_eq!(r.outcome, "committed");
    // R-COMMIT-7: the retry of a committed transaction is told it committed, never refused.
    let again = client
        .transact(&db(), txn, &[("ok".into(), "2".into())])
        .await
        .unwrap();
    assert_eq!(
        (again.outcome.as_str(), again.lsn),
        ("committed", r.lsn),
        "{again:?}"
    );
    // A transaction too large for one log record is refused before anything is written.
    let big = "x".repeat(250_000);
    let r = client
        .transact(
            &db(),
            TXN.fetch_add(1, Ordering::Relaxed),
            &[("big".into(), big)],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.outcome.as_str(), r.code.as_deref()),
        ("error", Some("TransactionTooLarge")),
        "{r:?}"
    );

    // Bad admin requests.
    let admin = c.admin(0);
    let r = admin.post_text("/ag/create", "CREATE AVAILABILITY GROUP [x] WITH (CLUSTER_TYPE = NONE) FOR DATABASE [d] REPLICA ON N'R0' WITH (AVAILABILITY_MODE = SOMETIMES);").await.unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["code"], "TsqlError");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .starts_with("line 1, column "),
        "{:?}",
        r.body
    );
    let r = admin
        .post_text("/ag/required-synchronized", "{\"value\": -1}")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = admin.get("/no/such/route").await.unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (404, Some("UnknownRoute"))
    );
    let r = admin
        .post_text(
            "/sql",
            "ALTER AVAILABILITY GROUP [demo] REMOVE DATABASE [db1];",
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (422, Some("UnsupportedStatement")),
        "{:?}",
        r.body
    );
    let r = admin.post_text("/ag/failover", "").await.unwrap();
    assert_eq!(
        r.status, 409,
        "FAILOVER on the primary is refused: {:?}",
        r.body
    );

    let after = c.admin(0).get("/status").await.unwrap().body;
    assert_eq!(before["role"], after["role"]);
    assert_eq!(before["epoch"], after["epoch"]);
    assert_eq!(
        before["required_synchronized_secondaries_to_commit"],
        after["required_synchronized_secondaries_to_commit"]
    );

    // A bad node configuration: exit status 2 and the file named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"R9\"\ndata_dir = \"/tmp/x\"\nclient_listen = \"nowhere\"\nadmin_listen = \"127.0.0.1:1\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hadr"))
        .args(["replica", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("invalid"),
        "{stderr}"
    );
}

/// `hadr demo` runs to the end and its last line counts the lost acknowledged commits: 0.
#[test]
fn the_demo_loses_no_acknowledged_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hadr"))
        .args(["demo", "--seconds", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().last(),
        Some("lost acknowledged commits: 0"),
        "{stdout}"
    );
    let acknowledged: usize = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("client outcomes: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the demo reports its client outcomes");
    assert!(acknowledged > 0, "the workload committed nothing: {stdout}");
}

/// R-QUORUM-5, R-FAIL-3, R-SYNC-7: CLUSTER_TYPE NONE has no planned FAILOVER (refused, with
/// the procedure in the message); the documented procedure (k = 1, SET (ROLE = SECONDARY) on
/// the primary, FORCE_FAILOVER_ALLOW_DATA_LOSS on the SYNCHRONIZED target) loses nothing and
/// swaps the roles. SUSPEND on the new primary stops data movement to the secondary; RESUME
/// brings it back to SYNCHRONIZED with every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_quorum_5_the_documented_failover_of_cluster_type_none_and_suspend_resume() {
    let (_dir, mut c) = cluster(2);
    start_all(&mut c).await;
    c.create_group(&[SYNC, SYNC], 0).await.unwrap();
    let mut acknowledged = BTreeMap::new();
    for n in 0..10 {
        let key = format!("p-{n}");
        assert_eq!(
            commit_one(c.replicas[0].client, &key).await.outcome,
            "committed"
        );
        acknowledged.insert(key, "x".to_owned());
    }
    let r = c.admin(1).post_text("/ag/failover", "").await.unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("PlannedFailoverNeedsClusterManager")),
        "{:?}",
        r.body
    );
    sql(
        &c,
        0,
        "ALTER AVAILABILITY GROUP [demo] SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 1);",
    )
    .await;
    sql(
        &c,
        0,
        "ALTER AVAILABILITY GROUP [demo] SET (ROLE = SECONDARY);",
    )
    .await;
    let r = c
        .admin(1)
        .post_text("/ag/force-failover", "")
        .await
        .unwrap();
    assert!(r.ok(), "{:?}", r.body);
    c.wait_until("R1 PRIMARY and R0 SECONDARY", 30, || async {
        c.role(1).await.as_deref() == Some("PRIMARY")
            && c.role(0).await.as_deref() == Some("SECONDARY")
    })
    .await
    .unwrap();
    eventually_shows(c.replicas[1].client, "read_write", &acknowledged).await;
    // The old primary refuses writes (definite). It is SUSPEND_FROM_PARTNER (a forced
    // failover), so with k = 1 the new primary refuses commits until it is resumed.
    let r = commit_one(c.replicas[0].client, "on-old-primary").await;
    assert_eq!(
        (r.outcome.as_str(), r.code.as_deref()),
        ("refused", Some("NotPrimary")),
        "{r:?}"
    );
    c.wait_until("R0 is suspended", 30, || async {
        c.suspended(0).await.is_some()
    })
    .await
    .unwrap();
    let r = commit_one(c.replicas[1].client, "too-early").await;
    assert_eq!(
        (r.outcome.as_str(), r.code.as_deref()),
        ("refused", Some("TooFewSynchronized")),
        "{r:?}"
    );
    sql(&c, 0, "ALTER DATABASE [db1] SET HADR RESUME;").await;
    c.wait_until("R0 is SYNCHRONIZED", 30, || async {
        c.sync_state(1, 0).await.as_deref() == Some("SYNCHRONIZED")
    })
    .await
    .unwrap();
    assert_eq!(
        commit_one(c.replicas[1].client, "after-resume")
            .await
            .outcome,
        "committed"
    );
    acknowledged.insert("after-resume".to_owned(), "x".to_owned());
    sql(
        &c,
        1,
        "ALTER AVAILABILITY GROUP [demo] SET (REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT = 0);",
    )
    .await;

    // SUSPEND on the primary: the secondary stops receiving; commits no longer wait for it.
    let r = c
        .admin(1)
        .post_text("/sql", "ALTER DATABASE [db1] SET HADR SUSPEND;")
        .await
        .unwrap();
    assert!(r.ok(), "{:?}", r.body);
    c.wait_until("R0 is suspended", 30, || async {
        c.suspended(0).await.is_some()
    })
    .await
    .unwrap();
    assert_eq!(
        commit_one(c.replicas[1].client, "while-suspended")
            .await
            .outcome,
        "committed"
    );
    let r = c
        .admin(1)
        .post_text("/sql", "ALTER DATABASE [db1] SET HADR RESUME;")
        .await
        .unwrap();
    assert!(r.ok(), "{:?}", r.body);
    c.wait_until("R0 is SYNCHRONIZED again", 30, || async {
        c.sync_state(1, 0).await.as_deref() == Some("SYNCHRONIZED")
    })
    .await
    .unwrap();
    acknowledged.insert("while-suspended".to_owned(), "x".to_owned());
    eventually_shows(c.replicas[0].client, "read_only", &acknowledged).await;
}

/// CREATE on a replica whose endpoint port is taken, or whose data directory holds the log of
/// a group it forgot, is refused with a reason, and the replica keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_refused_on_a_taken_endpoint_or_a_leftover_log() {
    let (_dir, mut c) = cluster(2);
    c.start(0).unwrap();
    c.wait_ready(0).await.unwrap();
    let script = c.create_script(&[SYNC, SYNC], 0);
    let squatter = std::net::TcpListener::bind(c.replicas[0].endpoint).unwrap();
    let r = c.admin(0).post_text("/ag/create", &script).await.unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("EndpointInUse")),
        "{:?}",
        r.body
    );
    drop(squatter);
    c.must(
        0,
        "CREATE",
        c.admin(0).post_text("/ag/create", &script).await,
    )
    .await
    .unwrap();
    assert_eq!(
        commit_one(c.replicas[0].client, "k").await.outcome,
        "committed"
    );
    // Forget the group (state.json) but keep its log.
    c.kill(0);
    std::fs::remove_file(c.replicas[0].data_dir.join("state.json")).unwrap();
    c.start(0).unwrap();
    c.wait_ready(0).await.unwrap();
    let r = c.admin(0).post_text("/ag/create", &script).await.unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("LeftoverLog")),
        "{:?}",
        r.body
    );
    assert!(
        r.body["error"].as_str().unwrap().contains("db-0.wal"),
        "{:?}",
        r.body
    );
    assert!(
        c.admin(0).get("/status").await.is_ok(),
        "the replica stopped"
    );
}
