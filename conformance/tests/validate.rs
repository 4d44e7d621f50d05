//! `hadr validate`'s checker: event logs of runs of the reference core validate; tampered
//! ones are refused with the rule they break; malformed ones are bad input.

use hadr_conformance::certify::load_corpus;
use hadr_conformance::scenario::Scenario;
use hadr_conformance::sim::ReferenceSim;
use hadr_conformance::sut::Sut;
use hadr_conformance::validate::{
    merge, parse_file, validate, EventLog, LogError, Verdict, MAX_FRONTIER,
};
use hadr_model::{Action, ModelConfig};
use hadr_types::event_log::{header_line, txn_line, view_line};
use hadr_types::{CommitOutcome, Observation, SyncState};
use std::path::Path;

fn corpus() -> Vec<(String, Scenario)> {
    load_corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"))
        .unwrap()
        .0
}

fn scenario(file: &str) -> Scenario {
    corpus()
        .into_iter()
        .find(|(f, _)| f == file)
        .unwrap_or_else(|| panic!("no {file} in the corpus"))
        .1
}

fn action_line(t: u64, action: &Action) -> String {
    serde_json::json!({ "t": t, "action": action }).to_string()
}

/// The lines a run logs as it goes: every view and client outcome that changed since
/// `before`.
fn changes(t: &mut u64, before: Option<&Observation>, now: &Observation) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, view) in now.replicas.iter().enumerate() {
        if before.and_then(|b| b.replicas.get(i)) != Some(view) {
            *t += 1;
            lines.push(view_line(*t, view));
        }
    }
    for (i, txn) in now.transactions.iter().enumerate() {
        if before.and_then(|b| b.transactions.get(i)) != Some(txn) {
            *t += 1;
            lines.push(txn_line(*t, txn));
        }
    }
    lines
}

/// The event log of `scenario` run on `reference-sim`: its actions as a driver logs them,
/// and after each the views and outcomes that changed, as the replicas and clients log them.
fn sim_log(scenario: &Scenario) -> Vec<String> {
    let config = ModelConfig::from_toml_str(&scenario.config).unwrap();
    let mut sim = ReferenceSim::new();
    sim.setup(&config.ag).unwrap();
    let mut t = 1_000;
    let mut lines = vec![header_line("reference-sim", Some(&scenario.config))];
    let mut before = sim.observe().unwrap();
    lines.extend(changes(&mut t, None, &before));
    for step in &scenario.steps {
        t += 1;
        lines.push(action_line(t, &step.action));
        sim.step(&step.action).unwrap();
        let now = sim.observe().unwrap();
        lines.extend(changes(&mut t, Some(&before), &now));
        before = now;
    }
    lines
}

fn log_of(lines: &[String]) -> EventLog {
    merge(vec![parse_file("run.ndjson", &lines.join("\n")).unwrap()]).unwrap()
}

fn verdict(lines: &[String]) -> Verdict {
    validate(&log_of(lines), MAX_FRONTIER)
}

/// (a) Every scenario of the corpus, run on the reference core and logged as it goes, is
/// explained by the model.
#[test]
fn logs_of_the_reference_core_on_the_corpus_validate() {
    for (file, scenario) in corpus() {
        let lines = sim_log(&scenario);
        match verdict(&lines) {
            Verdict::Valid { events, .. } => assert_eq!(events, lines.len() - 1, "{file}"),
            other => panic!("{file}: {}\n{}", other.report(), lines.join("\n")),
        }
    }
}
