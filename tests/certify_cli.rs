//! `hadr certify` as users run it, on the spec itself and on a spec mutant (in process, no
//! replicas): the certificate's measures, saving a failure and replaying it.

use std::path::Path;
use std::process::{Command, Output};

fn hadr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hadr"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run hadr")
}

fn certificate(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no certificate ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The spec passes its own corpus, and the certificate carries the corpus' transition coverage
/// and mutation score.
#[test]
fn the_spec_passes_and_the_certificate_measures_the_corpus() {
    let out = hadr(&["certify", "--sut", "spec", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let c = certificate(&out);
    assert_eq!(c["verdict"], "PASS");
    assert!(c["transitions"]["tried"].as_u64().unwrap() > 0);
    let m = &c["mutation"];
    assert_eq!(m["caught_twice"], m["applicable"], "{m:#}");
}

/// A spec mutant fails; its shrunk failure is saved as a scenario file, which `--scenario`
/// replays to the same failure, naming the same rule first (stderr says how).
#[test]
fn a_saved_failure_replays_to_the_same_failure() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("failures");
    let saved_arg = saved.to_str().unwrap();
    let out = hadr(&[
        "certify",
        "--sut",
        "spec",
        "--mutant",
        "resume-without-revert",
        "--save-failures",
        saved_arg,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let c = certificate(&out);
    let failure = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["verdict"] == "fail")
        .expect("a failure");
    assert_eq!(failure["rules"][0], "R-FAIL-4", "{failure:#}");
    assert!(failure["actions"][0].is_object() || failure["actions"][0].is_string());
    let file = saved.join(failure["file"].as_str().unwrap());
    assert!(file.exists(), "{} not written", file.display());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--scenario"), "{stderr}");
    let again = hadr(&[
        "certify",
        "--sut",
        "spec",
        "--mutant",
        "resume-without-revert",
        "--scenario",
        file.to_str().unwrap(),
        "--json",
    ]);
    let c = certificate(&again);
    assert_eq!(c["failed"], 1, "{c:#}");
    let r = &c["results"][0];
    assert_eq!(r["rules"][0], "R-FAIL-4");
    assert_eq!(r["actions"], failure["actions"]);
    assert_eq!(r["step"], failure["step"]);
    // The spec itself passes the saved scenario.
    let spec = hadr(&[
        "certify",
        "--sut",
        "spec",
        "--scenario",
        file.to_str().unwrap(),
    ]);
    assert_eq!(spec.status.code(), Some(0));
}

/// Bad input: an unknown spec mutant, a scenario file that is not one, `--mutant` with an
/// external system. Exit 2, a message that says what to do.
#[test]
fn bad_certify_input_is_refused_with_a_reason() {
    let out = hadr(&["certify", "--sut", "spec", "--mutant", "no-such-bug"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list-mutants"));
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("x.json");
    std::fs::write(&bogus, "{}").unwrap();
    let out = hadr(&["certify", "--scenario", bogus.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.json"));
    let out = hadr(&["certify", "--sut", "external:true", "--mutant", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conformance/corpus")
        .exists());
}

/// Three shards of a failing run, each `--json` in its own process, merged by `hadr certify
/// merge` in any order: the certificate one run prints, byte for byte, with the same exit
/// status; the JUnit report of the merge has every scenario. A set of files that is not every
/// shard of one run is bad input (exit 2) saying which shard is missing.
#[test]
fn three_shards_merged_are_the_certificate_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "certify",
        "--sut",
        "spec",
        "--mutant",
        "resume-without-revert",
    ];
    let whole = hadr(&[&base[..], &["--json", "--jobs", "1"]].concat());
    assert_eq!(whole.status.code(), Some(1));
    let mut files = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = hadr(&[&base[..], &["--json", "--shard", &shard]].concat());
        assert_eq!(certificate(&out)["shard"]["index"], k);
        let file = dir.path().join(format!("shard-{k}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        files.push(file.to_str().unwrap().to_owned());
    }
    let junit = dir.path().join("merged.xml");
    let merged = hadr(&[
        "certify",
        "merge",
        "--json",
        "--junit",
        junit.to_str().unwrap(),
        &files[2],
        &files[0],
        &files[1],
    ]);
    assert_eq!(merged.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&merged.stdout),
        String::from_utf8_lossy(&whole.stdout)
    );
    let scenarios = certificate(&whole)["scenarios"].as_u64().unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(&format!("tests=\"{scenarios}\"")), "{xml}");

    let incomplete = hadr(&["certify", "merge", &files[0], &files[2]]);
    assert_eq!(incomplete.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&incomplete.stderr);
    assert!(stderr.contains("shard 2/3 is missing"), "{stderr}");
}
