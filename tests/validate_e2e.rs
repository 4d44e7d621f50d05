//! (d) End to end: a real `hadr replica` logs its views (`HADR_EVENT_LOG`), the test logs the
//! environment actions and client outcomes it performs, and the merged logs validate.

use hadr_conformance::validate::{read_logs, validate, Verdict, MAX_FRONTIER};
use hadr_node::api::Client;
use hadr_node::node::DatabaseRef;
use hadr_testbed::local_cluster::LocalCluster;
use hadr_types::event_log::{now_micros, txn_line};
use hadr_types::{CommitOutcome, DatabaseId, TransactionObservation, TxnId};

/// R-SYNC-2 and R-COMMIT-2 between steps: every view a replica shows while commits go on is
/// one the model can be in (the primary's redo keeps up with its hardening, as the model's
/// primary does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_logging_its_views_validates_with_the_drivers_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_hadr")),
        dir.path(),
        2,
    )
    .unwrap();
    // `{name}` gives each replica its own file.
    c.env.push((
        "HADR_EVENT_LOG".to_owned(),
        dir.path().join("{name}.ndjson").display().to_string(),
    ));
    for i in 0..2 {
        c.start(i).unwrap();
        c.wait_ready(i).await.unwrap();
    }
    c.create_group(&["SYNCHRONOUS_COMMIT"; 2], 0).await.unwrap();
    let config = c.admin(0).get("/ag/config").await.unwrap().body;
    let mut driver = vec![serde_json::json!({
        "format": "hadr-events/1", "source": "driver", "config": config
    })
    .to_string()];
    for (i, key) in ["a", "b"].into_iter().enumerate() {
        driver.push(
            serde_json::json!({"t": now_micros(), "action": {"ClientCommit": {"db": 0}}})
                .to_string(),
        );
        let mut client = Client::connect(c.replicas[0].client).await.unwrap();
        let reply = client
            .transact(
                &DatabaseRef::Name("db1".to_owned()),
                i as u32 + 1,
                &[(key.to_owned(), "x".to_owned())],
            )
            .await
            .unwrap();
        assert_eq!(reply.outcome, "committed");
        let txn = TransactionObservation {
            txn: TxnId(i as u32 + 1),
            database: DatabaseId(0),
            outcome: CommitOutcome::Acknowledged,
        };
        driver.push(txn_line(now_micros(), &txn));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The kills are environment actions too: logged before they happen, as a driver must (the
    // secondary may see its primary go and show NOT_SYNCHRONIZING before its own kill).
    for i in 0..2 {
        driver.push(
            serde_json::json!({"t": now_micros(), "action": {"Crash": {"replica": i}}}).to_string(),
        );
        c.kill(i);
    }
    let driver_file = dir.path().join("driver.ndjson");
    std::fs::write(&driver_file, driver.join("\n")).unwrap();
    let files: Vec<std::path::PathBuf> = std::iter::once(driver_file.clone())
        .chain((0..2).map(|i| dir.path().join(format!("{}.ndjson", c.replicas[i].name))))
        .collect();
    let replica_log =
        std::fs::read_to_string(&files[1]).unwrap() + &std::fs::read_to_string(&files[2]).unwrap();
    assert!(replica_log.lines().count() >= 5, "{replica_log}");
    let log = read_logs(&files).unwrap();
    match validate(&log, MAX_FRONTIER) {
        Verdict::Valid { events, .. } => assert_eq!(events, log.events.len()),
        other => panic!("{}\n{replica_log}\n{}", other.report(), driver.join("\n")),
    }
    // The same views with the commits acknowledged before they were asked for: refused.
    let mut early = driver.clone();
    early.swap(1, 2);
    std::fs::write(&driver_file, early.join("\n")).unwrap();
    let log = read_logs(&files).unwrap();
    assert!(matches!(validate(&log, MAX_FRONTIER), Verdict::Invalid(_)));
}
