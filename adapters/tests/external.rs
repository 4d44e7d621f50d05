//! The `external:` adapter and its protocol, against `hadr-sim-driver` (the reference core
//! behind the protocol): it passes what `reference-sim` passes, and a lying driver fails.

use hadr_adapters::external::{External, Offer};
use hadr_conformance::certify::{certify, load_corpus, RunOptions};
use hadr_conformance::sut::{Sut, SutError};
use hadr_model::Action;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DRIVER: &str = env!("CARGO_BIN_EXE_hadr-sim-driver");

fn corpus() -> Vec<(String, hadr_conformance::Scenario)> {
    load_corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpus"))
        .unwrap()
        .0
}

#[test]
fn the_reference_core_behind_the_protocol_passes_the_corpus() {
    let scenarios = corpus();
    let certificate = certify(
        &scenarios,
        String::new(),
        &|_| Box::new(External::spawn(DRIVER)) as Box<dyn Sut>,
        RunOptions::default(),
        &mut |_, _| {},
    );
    assert_eq!(certificate.verdict, "PASS", "{}", certificate.markdown());
    assert!(
        certificate.sut.contains("reference-sim"),
        "{}",
        certificate.sut
    );
}

#[test]
fn a_driver_that_lies_about_its_clients_fails() {
    let scenarios: Vec<_> = corpus()
        .into_iter()
        .filter(|(f, _)| f == "000-AckCommit.json")
        .collect();
    let command = format!("HADR_SIM_DRIVER_LIE=1 {DRIVER}");
    let certificate = certify(
        &scenarios,
        String::new(),
        &|_| Box::new(External::spawn(&command)) as Box<dyn Sut>,
        RunOptions::default(),
        &mut |_, _| {},
    );
    assert_eq!(certificate.failed, 1, "{}", certificate.markdown());
    assert!(certificate.results[0]
        .rules
        .iter()
        .any(|r| r == "R-COMMIT-7"));
}

#[test]
fn a_driver_that_cannot_start_or_speaks_nonsense_is_an_error_with_the_reason() {
    let config = hadr_model::ModelConfig::default().ag;
    let mut missing = External::spawn("/nonexistent/driver");
    match missing.setup(&config) {
        Err(SutError::Failed(m)) => assert!(m.contains("not running"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut echo = External::spawn("echo not-json");
    match echo.setup(&config) {
        Err(SutError::Failed(m)) => assert!(m.contains("not JSON"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut wrong =
        External::spawn(r#"echo '{"ok":true,"protocol":"hadr-adapter/0"}'; cat >/dev/null"#);
    match wrong.setup(&config) {
        Err(SutError::Failed(m)) => assert!(m.contains("hadr-adapter/0"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A driver of a few lines of `sh` that takes the capabilities `$CAPABILITIES` (JSON), writes
/// each request it gets to `$REQUESTS`, answers `processes` with `$PROCESSES_REPLY`, refuses
/// `observe`, and says yes to everything else.
const FAKE_DRIVER: &str = r#"
while IFS= read -r line; do
  printf '%s\n' "$line" >> "$REQUESTS"
  case "$line" in
    *'"op":"hello"'*) echo "{\"ok\":true,\"protocol\":\"hadr-adapter/1\",\"name\":\"fake\",\"capabilities\":$CAPABILITIES}" ;;
    *'"op":"processes"'*) echo "$PROCESSES_REPLY" ;;
    *'"op":"observe"'*) echo '{"ok":false,"error":{"kind":"failed","message":"no observation"}}' ;;
    *'"op":"teardown"'*) echo '{"ok":true}'; exit 0 ;;
    *) echo '{"ok":true}' ;;
  esac
done
"#;

/// The fake driver's command: `capabilities` (JSON) taken, `processes` answered with `reply`.
fn fake_driver(dir: &Path, capabilities: &str, reply: &serde_json::Value) -> String {
    let script = dir.join("driver.sh");
    std::fs::write(&script, FAKE_DRIVER).unwrap();
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    format!(
        "CAPABILITIES={} REQUESTS={} PROCESSES_REPLY={} sh {}",
        quote(capabilities),
        quote(&dir.join("requests").display().to_string()),
        quote(&reply.to_string()),
        quote(&script.display().to_string()),
    )
}

/// The requests the fake driver got, parsed.
fn requests(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("requests"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn group_without_manager() -> hadr_types::AgConfig {
    let mut config = hadr_model::ModelConfig::default().ag;
    config.cluster_type = hadr_types::ClusterType::None;
    config
}

/// A driver may take only the capabilities the harness offered, named by strings it knows:
/// anything else is an error saying which, not a panic.
#[test]
fn a_driver_that_takes_a_capability_it_was_not_offered_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = group_without_manager();
    let reply = serde_json::json!({"ok": true});
    let cases = [
        (
            r#"["processes"]"#,
            Offer::nothing("--faults cooperative"),
            "did not offer: --faults cooperative",
        ),
        (
            r#"["teleport"]"#,
            Offer::processes(),
            "unknown capability \"teleport\"",
        ),
        (
            r#""processes""#,
            Offer::processes(),
            "`capabilities` is not an array",
        ),
        (
            r#"[7]"#,
            Offer::processes(),
            "`capabilities[0]` is not a string",
        ),
    ];
    for (capabilities, offer, expected) in cases {
        let command = fake_driver(dir.path(), capabilities, &reply);
        let mut driver = External::spawn_offering(&command, &offer);
        match driver.setup(&config) {
            Err(SutError::Failed(m)) => assert!(m.contains(expected), "{capabilities}: {m}"),
            other => panic!("{capabilities}: {other:?}"),
        }
    }
    // Offered but not taken: the protocol as before, no `processes` request.
    let _ = std::fs::remove_file(dir.path().join("requests"));
    let command = fake_driver(dir.path(), "[]", &reply);
    let mut driver = External::spawn_offering(&command, &Offer::processes());
    driver.setup(&config).unwrap();
    driver.step(&Action::Crash { replica: 0 }).unwrap();
    drop(driver);
    let ops: Vec<String> = requests(dir.path())
        .iter()
        .map(|r| r["op"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ops, ["hello", "setup", "step", "teardown"]);
    let sent = requests(dir.path());
    assert_eq!(sent[0]["capabilities"], serde_json::json!(["processes"]));
    assert!(sent[2].get("performed").is_none(), "{}", sent[2]);
}

/// The process ids one replica's command line wrote to its file (`pid cwd MARK`, one line
/// per start).
fn starts(dir: &Path, i: usize) -> Vec<(u32, String)> {
    std::fs::read_to_string(dir.join(format!("pids-{i}")))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (pid, rest) = l.split_once(' ').unwrap();
            (pid.parse().unwrap(), rest.to_owned())
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what}: not within 5 s");
}

/// The capability `processes` (root: network namespaces): the harness starts each replica's
/// command line with its environment and working directory, a crash kills the replica's whole
/// process tree and a restart starts the line again, the driver hears of those with
/// `"performed": true` and does everything else itself, and nothing outlives the scenario.
#[test]
fn the_harness_runs_the_processes_of_a_driver_that_hands_them_over() {
    hadr_testbed::netns::available().expect("network namespaces: run as root");
    let dir = tempfile::tempdir().unwrap();
    let pids = |i: usize| dir.path().join(format!("pids-{i}")).display().to_string();
    // Replica 1 runs its server below a shell, as a child: a crash must kill both.
    let line = |i: usize, script: &str| {
        serde_json::json!({
            "argv": ["sh", "-c", script],
            "env": {"PIDS": pids(i), "MARK": format!("replica-{i}")},
            "cwd": dir.path().display().to_string(),
        })
    };
    let reply = serde_json::json!({"ok": true, "replicas": [
        line(0, r#"echo "$$ $(pwd) $MARK" >> "$PIDS"; exec sleep 600"#),
        line(1, r#"sleep 600 & echo "$! $(pwd) $MARK" >> "$PIDS"; wait"#),
        line(2, r#"echo "$$ $(pwd) $MARK" >> "$PIDS"; exec sleep 600"#),
    ]});
    let command = fake_driver(dir.path(), r#"["processes"]"#, &reply);
    let mut driver = External::spawn_offering(&command, &Offer::processes());
    let config = group_without_manager();
    driver.setup(&config).unwrap();
    for i in 0..3 {
        eventually("every replica started", || starts(dir.path(), i).len() == 1);
        let (pid, rest) = &starts(dir.path(), i)[0];
        assert!(alive(*pid), "replica {i}");
        assert_eq!(rest, &format!("{} replica-{i}", dir.path().display()));
    }
    let (server_1, _) = starts(dir.path(), 1)[0];
    driver.step(&Action::Crash { replica: 1 }).unwrap();
    assert!(
        !alive(server_1),
        "the crashed replica's server (below its shell)"
    );
    driver.step(&Action::Crash { replica: 1 }).unwrap(); // down already: nothing
    driver.step(&Action::Restart { replica: 1 }).unwrap();
    eventually("replica 1 restarted", || starts(dir.path(), 1).len() == 2);
    assert!(alive(starts(dir.path(), 1)[1].0));
    driver
        .step(&Action::Partition {
            a: hadr_model::Node::Replica(0),
            b: hadr_model::Node::Replica(2),
        })
        .unwrap();
    driver.step(&Action::LoseQuorum).unwrap(); // CLUSTER_TYPE NONE: nothing to stop
    driver.step(&Action::ClientCommit { db: 0 }).unwrap();
    let sent = requests(dir.path());
    let ops: Vec<&str> = sent.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "hello",
            "processes",
            "setup",
            "step",
            "step",
            "step",
            "step",
            "step",
            "step"
        ]
    );
    let processes = &sent[1];
    assert_eq!(processes["config"], serde_json::to_value(&config).unwrap());
    assert_eq!(processes["etcd"], serde_json::Value::Null);
    let hosts = processes["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    for (i, host) in hosts.iter().enumerate() {
        assert_eq!(host["replica"], i);
        assert!(
            host["address"].as_str().unwrap().starts_with("198.1"),
            "{host}"
        );
    }
    let scenario_dir = PathBuf::from(processes["dir"].as_str().unwrap());
    assert!(scenario_dir.is_dir());
    let performed: Vec<bool> = sent[3..]
        .iter()
        .map(|r| r.get("performed") == Some(&serde_json::json!(true)))
        .collect();
    assert_eq!(performed, [true, true, true, true, true, false]);
    let all: Vec<u32> = (0..3)
        .flat_map(|i| starts(dir.path(), i))
        .map(|(pid, _)| pid)
        .collect();
    drop(driver);
    for pid in all {
        assert!(!alive(pid), "{pid} outlived the scenario");
    }
    assert!(!scenario_dir.exists(), "{}", scenario_dir.display());
}

/// A replica whose process ends on its own is an error naming it, with its output; and a
/// malformed `processes` reply is an error naming the field.
#[test]
fn a_replica_that_exits_on_its_own_or_a_bad_command_line_is_an_error_saying_which() {
    hadr_testbed::netns::available().expect("network namespaces: run as root");
    let dir = tempfile::tempdir().unwrap();
    let config = group_without_manager();
    let sleeper = serde_json::json!({"argv": ["sleep", "600"]});
    let dying = serde_json::json!({"argv": ["sh", "-c", "echo cannot open my data; exit 3"]});
    let reply = serde_json::json!({"ok": true, "replicas": [sleeper, sleeper, dying]});
    let command = fake_driver(dir.path(), r#"["processes"]"#, &reply);
    let mut driver = External::spawn_offering(&command, &Offer::processes());
    let error = (|| {
        driver.setup(&config)?;
        std::thread::sleep(Duration::from_millis(500));
        driver.step(&Action::ClientCommit { db: 0 })
    })();
    match error {
        Err(SutError::Failed(m)) => {
            assert!(m.contains("replica 2 exited on its own"), "{m}");
            assert!(m.contains("cannot open my data"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let cases = [
        (
            serde_json::json!({"ok": true, "replicas": [sleeper, sleeper]}),
            "2 command lines for the configuration's 3 replicas",
        ),
        (
            serde_json::json!({"ok": true, "replicas": [sleeper, sleeper, {"argv": []}]}),
            "`replicas[2]`.argv is empty",
        ),
        (
            serde_json::json!({"ok": true, "replicas": [sleeper, sleeper, {"argv": ["/nonexistent/x"]}]}),
            "cannot start replica 2",
        ),
    ];
    for (reply, expected) in cases {
        let command = fake_driver(dir.path(), r#"["processes"]"#, &reply);
        let mut driver = External::spawn_offering(&command, &Offer::processes());
        match driver.setup(&config) {
            Err(SutError::Failed(m)) => assert!(m.contains(expected), "{reply}: {m}"),
            other => panic!("{reply}: {other:?}"),
        }
    }
}
