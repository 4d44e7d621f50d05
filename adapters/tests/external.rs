//! The `external:` adapter and its protocol, against `hadr-sim-driver` (the reference core
//! behind the protocol): it passes what `reference-sim` passes, and a lying driver fails.

use hadr_adapters::external::External;
use hadr_conformance::certify::{certify, load_corpus, RunOptions};
use hadr_conformance::sut::{Sut, SutError};
use std::path::Path;

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
