//! `hadr certify --sut reference`: the reference replicas as real processes (real TCP, fsync,
//! SIGKILL, one etcd; each in a network namespace of its own, or on loopback with
//! `--faults cooperative`), judged against the spec on scenarios of the committed
//! corpus, with and without a planted bug. They need the `etcd` feature (the README's test
//! command enables it) and an etcd binary (`apt-get install -y etcd-server`: a scenario then
//! ends in an error saying so, and the test fails). The whole corpus takes about 3.5 minutes
//! with `--short-timeouts` at 8 scenarios at a time (`hadr certify --sut reference
//! --short-timeouts`); these take a sample.
#![cfg(feature = "etcd")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A corpus directory holding copies of the named scenarios of the committed corpus, named
/// without their number (`H1`, `walk-7`, `mutant-…`: regenerating the corpus renumbers them).
fn sample(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/corpus");
    let files: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in names {
        let file = files
            .iter()
            .find(|f| {
                f.split_once('-')
                    .is_some_and(|(_, rest)| rest == format!("{name}.json"))
            })
            .unwrap_or_else(|| panic!("no scenario {name} in {}", corpus.display()));
        std::fs::copy(corpus.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// Runs `hadr certify --sut reference --short-timeouts --no-shrink --json` on `corpus` with
/// `extra` options: (exit code, certificate).
fn certify(corpus: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    certify_sut("reference", corpus, extra)
}

/// Runs `hadr certify --sut SUT --short-timeouts --no-shrink --json` on `corpus`.
fn certify_sut(sut: &str, corpus: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let scenarios = PathBuf::from(corpus);
    let output = Command::new(env!("CARGO_BIN_EXE_hadr"))
        .args(["certify", "--sut", sut, "--short-timeouts", "--no-shrink"])
        .env("HADR_BIN", env!("CARGO_BIN_EXE_hadr"))
        .arg("--corpus")
        .arg(&scenarios)
        .arg("--json")
        .args(extra)
        .env("RUST_LOG", "hadr=info")
        .output()
        .expect("run hadr certify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let certificate: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no certificate ({e}); stderr:\n{stderr}"));
    eprintln!("{stderr}");
    (output.status.code().unwrap_or(-1), certificate)
}

/// R-FAIL-4 (a forced failover past a partition, the old primary SUSPEND_FROM_PARTNER),
/// R-QUORUM-2 (a replica cut off from etcd, crashed and restarted while still cut; the recorded
/// primary restored when quorum returns) and R-FAIL-7 (a health fault): the reference
/// replicas show, after every step, an observation the spec allows.
#[test]
fn the_reference_replicas_pass_a_sample_of_the_corpus() {
    let corpus = sample(&["H1", "walk-7", "walk-12"]);
    // The replicas cut themselves (their /debug routes); `network_faults_from_outside…`
    // below has them cut from outside.
    let (code, certificate) = certify(corpus.path(), &["--faults", "cooperative"]);
    assert_eq!(
        (code, certificate["verdict"].as_str()),
        (0, Some("PASS")),
        "{certificate:#}"
    );
    assert_eq!(certificate["passed"], 3, "{certificate:#}");
    assert_eq!(certificate["sut"], "reference (short timeouts)");
}

/// R-HEALTH-1, R-QUORUM-2, R-FAIL-4: the network's faults come from outside the replicas:
/// each replica and etcd in a network namespace of its own, a partition or a cut from the
/// manager packets dropped between them (root: CI runs as root; otherwise `--faults outside`
/// refuses with how to get the rights, and this test fails). The replicas run with
/// `HADR_FAULT_INJECTION=process`, so their `/debug/partition` and `/debug/manager` routes are
/// off (tests/fault_injection.rs), and the scenarios of partitions, heals, cuts from the
/// manager, a restart while cut, and a forced failover past a partition still pass.
#[test]
fn network_faults_from_outside_with_the_replicas_network_routes_off() {
    let corpus = sample(&["Partition", "Heal", "LoseManager", "H1", "walk-12"]);
    let (code, certificate) = certify(corpus.path(), &["--faults", "outside", "--jobs", "5"]);
    assert_eq!(
        (code, certificate["verdict"].as_str()),
        (0, Some("PASS")),
        "{certificate:#}"
    );
    assert_eq!(certificate["passed"], 5, "{certificate:#}");
}

/// A planted bug in every replica process (`HADR_MUTANT`) fails certification, and the report
/// names the rule the bug breaks first. (Every planted bug: `scripts/certify-mutants`.)
#[cfg(feature = "mutants")]
#[test]
fn a_planted_bug_in_the_reference_replicas_fails_certification_naming_its_rule() {
    planted_bug_fails_naming("H2", "forced-failover-without-partner-suspend", "R-FAIL-4");
}

/// The node's `/debug/disk-stall` (the spec's DiskStall) on real replicas: a secondary that
/// never hardens keeps a synchronous commit waiting, and a primary that acknowledges once the
/// log is sent is caught (R-COMMIT-2).
#[cfg(feature = "mutants")]
#[test]
fn an_ack_before_the_secondary_hardens_is_caught_on_real_replicas() {
    planted_bug_fails_naming(
        "mutant-ack-before-secondary-hardens",
        "ack-before-secondary-hardens",
        "R-COMMIT-2",
    );
}

#[cfg(feature = "mutants")]
fn planted_bug_fails_naming(scenario: &str, mutant: &str, rule: &str) {
    let corpus = sample(&[scenario]);
    let (code, certificate) = certify(corpus.path(), &["--mutant", mutant]);
    assert_eq!(
        (code, certificate["verdict"].as_str()),
        (1, Some("FAIL")),
        "{certificate:#}"
    );
    assert_eq!(certificate["errors"], 0, "{certificate:#}");
    let result = &certificate["results"][0];
    assert_eq!(result["verdict"], "fail", "{certificate:#}");
    let rules: Vec<&str> = result["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(rules.first(), Some(&rule), "{certificate:#}");
}

/// The example driver of docs/adapter-protocol.md (Python, standard library only) around the
/// reference replicas: the whole `external:CMD` loop passes, a commit and a crash of the
/// primary. Needs `python3` (Debian: `apt-get install -y python3`).
#[test]
fn the_python_example_driver_certifies_the_reference_replicas() {
    let python = Command::new("python3").arg("--version").output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "python3 is missing: apt-get install -y python3"
    );
    let corpus = sample(&["AckCommit", "Crash"]);
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/examples/driver.py");
    let sut = format!("external:python3 {}", driver.display());
    let (code, certificate) = certify_sut(&sut, corpus.path(), &[]);
    assert_eq!(
        (code, certificate["verdict"].as_str()),
        (0, Some("PASS")),
        "{certificate:#}"
    );
    assert_eq!(certificate["passed"], 2, "{certificate:#}");
    assert!(
        certificate["sut"]
            .as_str()
            .is_some_and(|s| s.contains("hadr reference replicas (conformance/examples/driver.py)")),
        "{certificate:#}"
    );
}

/// The capability `processes` of the protocol (root: network namespaces), with the example
/// driver's `--processes`: the harness starts the replicas' command lines the driver gives,
/// each in a namespace of its own, runs etcd, and makes the partitions (between replicas and
/// from the manager), heals, crashes, restarts (one while cut from the manager) and the lost
/// and regained quorum itself; the driver only creates the group, acts through the admin and
/// client APIs, waits and observes, with the replicas' network routes off
/// (`HADR_FAULT_INJECTION=process`). The scenarios pass as they do with the driver's own
/// processes.
#[test]
fn the_python_example_driver_hands_its_processes_to_the_harness() {
    let python = Command::new("python3").arg("--version").output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "python3 is missing: apt-get install -y python3"
    );
    let corpus = sample(&[
        "Partition",
        "Heal",
        "LoseManager",
        "Restart",
        "RegainQuorum",
        "walk-5",
    ]);
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/examples/driver.py");
    let sut = format!("external:python3 {} --processes", driver.display());
    let (code, certificate) =
        certify_sut(&sut, corpus.path(), &["--faults", "outside", "--jobs", "6"]);
    assert_eq!(
        (code, certificate["verdict"].as_str()),
        (0, Some("PASS")),
        "{certificate:#}"
    );
    assert_eq!(certificate["passed"], 6, "{certificate:#}");
    assert!(
        certificate["sut"]
            .as_str()
            .is_some_and(|s| s.contains("with processes run by the harness")),
        "{certificate:#}"
    );
}
