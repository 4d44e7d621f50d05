//! End-to-end tests of the `hadr` binary: the process, its exit code, its output.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn hadr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hadr"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("hadr runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SMALL: &str = "model/configs/two-replicas.toml";

/// `--json` prints one object with the fields the issue names, and every property's rule,
/// kind and verdict.
#[test]
fn check_json_reports_every_property() {
    let out = hadr(&["check", "--config", SMALL, "--json", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    for key in ["unique_states", "states", "elapsed_ms", "states_per_sec"] {
        assert!(report[key].as_u64().is_some(), "{key} missing in {report}");
    }
    assert_eq!(report["passed"], true);
    let properties = report["properties"].as_array().expect("properties");
    assert!(properties.len() > 40);
    for p in properties {
        let kind = p["kind"].as_str().unwrap();
        let verdict = p["verdict"].as_str().unwrap();
        assert!(p["name"].is_string() && p["rule"].is_string());
        assert!(
            p.get("counterexample").is_some(),
            "counterexample key present (null)"
        );
        match kind {
            "always" => assert_eq!(verdict, "holds", "{p}"),
            "sometimes" => assert!(["discovered", "undiscovered"].contains(&verdict)),
            other => panic!("unexpected kind {other}"),
        }
    }
    let rule_1 = properties
        .iter()
        .find(|p| p["rule"] == "R-ROLE-1")
        .expect("R-ROLE-1 is checked");
    assert_eq!(rule_1["verdict"], "holds");
}

/// Every mutant listed is refuted: non-zero exit and a counterexample in the vocabulary.
#[test]
fn every_listed_mutant_exits_nonzero_with_a_counterexample() {
    let list = hadr(&["check", "--list-mutants", "--json"]);
    assert_eq!(list.status.code(), Some(0));
    let mutants: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    let mutants = mutants.as_array().unwrap();
    assert!(mutants.len() >= 6);
    for m in mutants {
        let name = m["name"].as_str().unwrap();
        let rule = m["rule"].as_str().unwrap();
        let out = hadr(&["check", "--mutant", name, "--quiet"]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(
            text.contains(&format!("VIOLATED {rule}")) && text.contains("counterexample"),
            "{name}: {text}"
        );
        // A path of numbered steps; the checks of R-BACKUP-5 and R-READ-3, which are functions
        // of one state, show the combination that breaks them instead.
        let function_check = ["R-BACKUP-5", "R-READ-3"].contains(&rule);
        assert!(
            text.contains("   1. [") || (function_check && text.contains("— counterexample:")),
            "numbered steps or the breaking combination: {text}"
        );
    }
}

/// Bad input is refused with exit code 2 and a message that names the problem.
#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("hadr-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default = include_str!("../model/configs/default.toml");
    let cases: Vec<(&str, String)> = vec![
        ("syntax", "[bounds\ntransactions = 2".to_string()),
        (
            "unknown_field",
            default.replace("crashes = 1", "crashs = 1"),
        ),
        (
            "limits",
            default
                .replace("name = \"ag1\"", &format!("name = \"{}\"", "x".repeat(129)))
                .replace(
                    "failover_mode = \"MANUAL\"",
                    "failover_mode = \"MANUAL\"\nsession_timeout_s = 2\nbackup_priority = 101",
                )
                .replace(
                    "required_synchronized_secondaries_to_commit = 0",
                    "required_synchronized_secondaries_to_commit = 3",
                ),
        ),
        (
            "bounds",
            default.replace("forced_failovers = 1", "forced_failovers = 5"),
        ),
    ];
    let mut transcript = String::new();
    for (name, text) in &cases {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = hadr(&["check", "--config", path.to_str().unwrap(), "--quiet"]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(stdout(&out).is_empty(), "{name}: nothing on stdout");
        transcript += &format!(
            "== {name}\n{}\n",
            stderr(&out)
                .replace(dir.to_str().unwrap(), "DIR")
                .trim_end()
        );
    }
    for args in [
        vec!["check", "--config", "/nonexistent/check.toml"],
        vec!["check", "--mutant", "no-such-bug"],
    ] {
        let out = hadr(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        transcript += &format!("== {}\n{}\n", args.join(" "), stderr(&out).trim_end());
    }
    let out = hadr(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses unknown commands");
    std::fs::remove_dir_all(&dir).ok();
    insta::assert_snapshot!("bad_input", transcript);
}

/// `hadr explore` serves the Explorer over HTTP on loopback; a taken port is a clear error.
#[test]
fn explore_serves_the_model_and_refuses_a_taken_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = hadr(&["explore", "--config", SMALL, "--port", &port]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot listen on 127.0.0.1:"),
        "{}",
        stderr(&out)
    );
    drop(taken);

    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hadr"))
        .args(["explore", "--config", SMALL, "--port", &port.to_string()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = http_get(port, "/.status", Duration::from_secs(20));
    // The successors of the initial state, each with its action and outcome in words.
    let states = http_get(port, "/.states/0", Duration::from_secs(5));
    child.kill().ok();
    child.wait().ok();
    let status = status.expect("the Explorer answers /.status");
    assert!(status.contains("200 OK"), "{status}");
    assert!(
        status.contains("R-ROLE-1 at most one replica is primary"),
        "{status}"
    );
    let states = states.expect("the Explorer answers /.states");
    assert!(
        states.contains("client commits a transaction on db1"),
        "{states}"
    );
    assert!(states.contains("A PRIMARY [T1@1]"), "{states}");
}

/// A GET on loopback, retried until the server answers or the deadline passes.
fn http_get(port: u16, path: &str, deadline: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
            stream.write_all(request.as_bytes()).ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            return Some(response);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn the_embedded_default_is_the_documented_file() {
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("model/configs/default.toml"),
    )
    .unwrap();
    assert_eq!(file, hadr_model::DEFAULT_CONFIG_TOML);
}

/// `hadr check --tsql`: the example group passes; the new behaviours (H6, both page-repair
/// directions, each backup refused on a secondary) are reached; the advice, each line backed
/// by property verdicts, is pinned.
#[test]
fn tsql_example_passes_with_advice() {
    let out = hadr(&[
        "check",
        "--tsql",
        "examples/ag-three-replicas.sql",
        "--json",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let properties = report["properties"].as_array().unwrap();
    let verdict = |name: &str| {
        properties
            .iter()
            .find(|p| p["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .map(|p| p["verdict"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} not checked"))
    };
    for p in properties.iter().filter(|p| p["kind"] == "always") {
        assert_eq!(p["verdict"], "holds", "{p}");
    }
    for goal in [
        "H6 ",
        "R-PAGE-1 action RepairFromPrimary",
        "R-PAGE-2 action RepairFromSecondary",
        "R-BACKUP-1 a full backup is refused on a secondary",
        "R-BACKUP-1 a differential backup is refused on a secondary",
        "R-BACKUP-1 a COPY_ONLY log backup is refused on a secondary",
    ] {
        assert_eq!(verdict(goal), "discovered", "{goal}");
    }
    let advice: Vec<String> = report["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let backing: Vec<&str> = a["backed_by"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap())
                .collect();
            format!("{}  [{}]", a["text"].as_str().unwrap(), backing.join(", "))
        })
        .collect();
    assert!(advice.len() >= 5, "{advice:?}");
    insta::assert_snapshot!("tsql_advice", advice.join("\n"));
}

/// A script with a mistake is refused with exit code 2 and `file:line:col: what is wrong`.
#[test]
fn tsql_errors_name_file_line_and_column() {
    let out = hadr(&["check", "--tsql", "examples/ag-with-error.sql"]);
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(
        message.starts_with("hadr: examples/ag-with-error.sql:9:1: ")
            && message.contains("R-FAIL-1"),
        "{message}"
    );
    let bounds = std::env::temp_dir().join(format!("hadr-bounds-{}.toml", std::process::id()));
    std::fs::write(&bounds, "[bounds]\ntransactions = 1\n").unwrap();
    let out = hadr(&[
        "check",
        "--tsql",
        "examples/ag-three-replicas.sql",
        "--bounds",
        bounds.to_str().unwrap(),
    ]);
    std::fs::remove_file(&bounds).ok();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing field"), "{}", stderr(&out));
}
