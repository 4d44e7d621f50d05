//! The availability group listener (`hadr listener`, R-READ-1/3) in front of real replica
//! processes: read-write connections reach the primary, read-intent ones follow the primary's
//! READ_ONLY_ROUTING_LIST (a group round-robin, then the next entry, then the primary), the
//! listener follows a failover, and bad first requests get clear errors.

use hadr_testbed::local_cluster::{free_port, LocalCluster};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `line` as the first request through the listener and returns the first reply.
async fn first_reply(listener: SocketAddr, line: &str) -> Value {
    let stream = TcpStream::connect(listener)
        .await
        .expect("connect to the listener");
    let (read, mut write) = stream.into_split();
    write.write_all(line.as_bytes()).await.unwrap();
    write.write_all(b"\n").await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(read).read_line(&mut reply),
    )
    .await
    .expect("a reply within 10 s")
    .unwrap();
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?}: {e}"))
}

/// The replica a read-intent (or read-write) connection lands on.
async fn lands_on(listener: SocketAddr, intent: &str) -> String {
    let reply = first_reply(
        listener,
        &json!({ "id": 1, "op": "intent", "intent": intent }).to_string(),
    )
    .await;
    assert_eq!(reply["outcome"], "ok", "{reply}");
    reply["replica"]
        .as_str()
        .expect("the replica's name")
        .to_owned()
}

/// Waits until connections of `intent` land on `want` (the listener refreshes its view every
/// 200 ms; meanwhile it may route to a replica that just died, and say so).
async fn eventually_lands_on(listener: SocketAddr, intent: &str, want: &str) {
    for _ in 0..100 {
        let reply = first_reply(
            listener,
            &json!({ "id": 1, "op": "intent", "intent": intent }).to_string(),
        )
        .await;
        if reply["replica"] == want {
            return;
        }
        if reply["outcome"] != "ok" {
            assert_eq!(reply["code"], "ReplicaUnreachable", "{reply}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{intent} connections never reached {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_routes_by_intent_along_the_routing_list_and_follows_failover() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_hadr"));
    let mut cluster = LocalCluster::new(exe, dir.path(), 4).unwrap();
    for i in 0..4 {
        cluster.start(i).unwrap();
    }
    for i in 0..4 {
        cluster.wait_ready(i).await.unwrap();
    }
    let modes = [
        "SYNCHRONOUS_COMMIT",
        "ASYNCHRONOUS_COMMIT",
        "ASYNCHRONOUS_COMMIT",
        "ASYNCHRONOUS_COMMIT",
    ];
    let replicas: Vec<Value> = cluster
        .replicas
        .iter()
        .zip(modes)
        .map(|(r, mode)| {
            json!({
                "name": r.name,
                "endpoint_url": format!("tcp://{}", r.endpoint),
                "availability_mode": mode,
                "failover_mode": "MANUAL",
                "seeding_mode": "AUTOMATIC",
                "secondary_role": {
                    "allow_connections": "ALL",
                    "read_only_routing_url": format!("tcp://{}", r.client),
                },
                "primary_role": { "read_only_routing_list": [["R1", "R2"], "R3"] },
            })
        })
        .collect();
    let config = json!({
        "name": "demo", "cluster_type": "NONE", "databases": ["db1"], "replicas": replicas,
    });
    cluster.create_group_from(&config, &modes).await.unwrap();

    let listen = free_port().unwrap();
    let mut toml = format!("listen = \"{listen}\"\n");
    for r in &cluster.replicas {
        toml += &format!(
            "[[replicas]]\nname = \"{}\"\nclient = \"{}\"\nadmin = \"{}\"\n",
            r.name, r.client, r.admin
        );
    }
    let path = dir.path().join("listener.toml");
    std::fs::write(&path, toml).unwrap();
    let _listener = Listener(
        Command::new(exe)
            .args(["listener", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    cluster
        .wait_until("the listener accepts connections", 10, || async {
            TcpStream::connect(listen).await.is_ok()
        })
        .await
        .unwrap();

    // Read-write: the primary. A commit through the listener is acknowledged.
    eventually_lands_on(listen, "read_write", "R0").await;
    let commit = first_reply(
        listen,
        r#"{"id":1,"op":"transact","db":"db1","txn":1,"writes":[["k","v"]]}"#,
    )
    .await;
    assert_eq!(commit["outcome"], "committed", "{commit}");

    // Read-intent: the first entry is the group (R1, R2), served round-robin; never R3.
    eventually_lands_on(listen, "read_only", "R1").await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(lands_on(listen, "read_only").await);
    }
    seen.sort();
    assert_eq!(seen, ["R1", "R1", "R2", "R2"], "round-robin over the group");

    // The group's members go away one by one: the next available one, then the next entry,
    // then the primary (ALLOW_CONNECTIONS = ALL by default).
    cluster.kill(1);
    eventually_lands_on(listen, "read_only", "R2").await;
    for _ in 0..3 {
        assert_eq!(lands_on(listen, "read_only").await, "R2");
    }
    cluster.kill(2);
    eventually_lands_on(listen, "read_only", "R3").await;
    cluster.kill(3);
    eventually_lands_on(listen, "read_only", "R0").await;

    // Bad first requests get a clear error, and the listener keeps serving.
    let bad = first_reply(listen, "this is not json").await;
    assert_eq!(
        (bad["outcome"].as_str(), bad["code"].as_str()),
        (Some("error"), Some("BadRequest")),
        "{bad}"
    );
    assert!(bad["error"].as_str().unwrap().contains("not JSON"), "{bad}");
    let bad = first_reply(listen, "[1,2]").await;
    assert_eq!(bad["code"], "BadRequest", "{bad}");

    // Failover: R3 comes back, R0 dies, R3 is forced to primary; read-write follows.
    cluster.start(3).unwrap();
    cluster.wait_ready(3).await.unwrap();
    cluster.kill(0);
    let r = cluster
        .admin(3)
        .post_text(
            "/sql",
            "ALTER AVAILABILITY GROUP [demo] FORCE_FAILOVER_ALLOW_DATA_LOSS;",
        )
        .await
        .unwrap();
    assert!(r.ok(), "{} {}", r.status, r.body);
    eventually_lands_on(listen, "read_write", "R3").await;
    let commit = first_reply(
        listen,
        r#"{"id":1,"op":"transact","db":"db1","txn":2,"writes":[["k2","v"]]}"#,
    )
    .await;
    assert_eq!(commit["outcome"], "committed", "{commit}");
}

/// R-READ-3's READ_WRITE_ROUTING_URL: a read-write connection that reaches a secondary is told
/// to go to the primary's URL; read-intent connections stay, and the primary never redirects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_redirects_read_write_connections_to_the_primarys_routing_url() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_hadr"));
    let mut cluster = LocalCluster::new(exe, dir.path(), 2).unwrap();
    for i in 0..2 {
        cluster.start(i).unwrap();
    }
    for i in 0..2 {
        cluster.wait_ready(i).await.unwrap();
    }
    let url = |i: usize| format!("tcp://{}", cluster.replicas[i].client);
    let replicas: Vec<Value> = (0..2)
        .map(|i| {
            json!({
                "name": cluster.replicas[i].name,
                "endpoint_url": format!("tcp://{}", cluster.replicas[i].endpoint),
                "availability_mode": "SYNCHRONOUS_COMMIT",
                "failover_mode": "MANUAL",
                "seeding_mode": "AUTOMATIC",
                "secondary_role": { "allow_connections": "ALL" },
                "primary_role": { "read_write_routing_url": url(i) },
            })
        })
        .collect();
    let config = json!({
        "name": "demo", "cluster_type": "NONE", "databases": ["db1"], "replicas": replicas,
    });
    cluster
        .create_group_from(&config, &["SYNCHRONOUS_COMMIT", "SYNCHRONOUS_COMMIT"])
        .await
        .unwrap();
    let read_write = first_reply(cluster.replicas[1].client, &intent_line("read_write")).await;
    assert_eq!(
        (
            read_write["outcome"].as_str(),
            read_write["redirect"].as_str()
        ),
        (Some("redirect"), Some(url(0).as_str())),
        "{read_write}"
    );
    let read_only = first_reply(cluster.replicas[1].client, &intent_line("read_only")).await;
    assert_eq!(read_only["outcome"], "ok", "{read_only}");
    let on_primary = first_reply(cluster.replicas[0].client, &intent_line("read_write")).await;
    assert_eq!(on_primary["outcome"], "ok", "{on_primary}");
}

fn intent_line(intent: &str) -> String {
    json!({ "id": 1, "op": "intent", "intent": intent }).to_string()
}
