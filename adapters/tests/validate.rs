//! `hadr validate`'s checker: event logs of runs of the reference core (`reference-sim`)
//! validate; tampered ones are refused with the rule they break. Malformed logs:
//! hadr-conformance's `tests/validate.rs`.

use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::certify::{find_scenario, load_corpus, shipped_corpus_dir};
use hadr_conformance::scenario::Scenario;
use hadr_conformance::sut::Sut;
use hadr_conformance::validate::{merge, parse_file, validate, EventLog, Verdict, MAX_FRONTIER};
use hadr_model::{Action, ModelConfig};
use hadr_types::event_log::{header_line, txn_line, view_line};
use hadr_types::{CommitOutcome, Observation, SyncState};

fn corpus() -> Vec<(String, Scenario)> {
    load_corpus(&shipped_corpus_dir()).unwrap().0
}

/// The corpus scenario named `name` (its file name without the number: `Heal.json`).
fn scenario(name: &str) -> Scenario {
    find_scenario(&corpus(), name).unwrap_or_else(|| panic!("no {name} in the corpus"))
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

/// The line of `lines` holding `needle` (0-based), the only one.
fn line_with(lines: &[String], needle: &str) -> usize {
    let found: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "{needle} in\n{}", lines.join("\n"));
    found[0]
}

fn invalid(lines: &[String]) -> hadr_conformance::validate::Failure {
    match verdict(lines) {
        Verdict::Invalid(f) => *f,
        other => panic!("not refused: {}\n{}", other.report(), lines.join("\n")),
    }
}

/// (b) A secondary cut off from the primary, which its own view says it knows, shows itself
/// SYNCHRONIZED again before the partition heals: R-SYNC-3.
#[test]
fn a_partitioned_secondary_shown_synchronized_is_refused() {
    let mut lines = sim_log(&scenario("Heal.json"));
    let i = line_with(&lines, "NOT_SYNCHRONIZING");
    let mut view: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
    assert_eq!(view["view"]["replica"], 1);
    view["view"]["databases"][0]["synchronization_state"] =
        serde_json::to_value(SyncState::Synchronized).unwrap();
    view["view"]["databases"][0]["is_failover_ready"] = true.into();
    lines.insert(i + 1, view.to_string());
    // Untampered, the same log validates.
    let mut honest = lines.clone();
    honest.remove(i + 1);
    assert!(matches!(verdict(&honest), Verdict::Valid { .. }));
    let failure = invalid(&lines);
    assert_eq!(failure.at.line, i + 2);
    assert_eq!(failure.explained, i);
    assert!(failure.rules.contains(&"R-SYNC-3"), "{:?}", failure.rules);
    assert_eq!(
        failure.closest[0],
        [
            "replicas[1].databases[0].is_failover_ready: false → true",
            "replicas[1].databases[0].synchronization_state: \"NOT_SYNCHRONIZING\" → \"SYNCHRONIZED\""
        ]
    );
    insta::assert_snapshot!(Verdict::Invalid(Box::new(failure)).report());
}

/// (b) A commit the model refuses (a definite error) logged as acknowledged: R-COMMIT-5 first
/// (the spec mutant that ignores k explains it), and R-COMMIT-2.
#[test]
fn an_acknowledgement_the_model_cannot_give_is_refused() {
    // The first commit of the corpus that the reference core refuses definitely (the corpus
    // is generated: which one it is may change).
    let (mut lines, i) = corpus()
        .into_iter()
        .find_map(|(_, scenario)| {
            let lines = sim_log(&scenario);
            let i = lines.iter().position(|l| l.contains("definite_error"))?;
            Some((lines, i))
        })
        .expect("a scenario of the corpus has a commit refused with a definite error");
    let mut txn: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
    let reason = txn["txn"]["outcome"]["reason"].clone();
    txn["txn"]["outcome"] = serde_json::to_value(CommitOutcome::Acknowledged).unwrap();
    lines[i] = txn.to_string();
    let failure = invalid(&lines);
    assert_eq!(failure.at.line, i + 1);
    // The spec refused it for too few SYNCHRONIZED secondaries: a system that acknowledged it
    // behaves like the mutant that ignores k, and breaks R-COMMIT-5.
    assert_eq!(failure.rules[0], "R-COMMIT-5", "{:?}", failure.rules);
    assert!(failure.rules.contains(&"R-COMMIT-2"), "{:?}", failure.rules);
    assert!(
        failure
            .like
            .iter()
            .any(|l| l.starts_with("ignore-required-synchronized")),
        "{:?}",
        failure.like
    );
    let txn = txn["txn"]["txn"].as_u64().unwrap() - 1;
    // The closest allowed outcome is the refusal, or the commit still waiting.
    let diff = &failure.closest[0];
    assert!(
        diff[0].starts_with(&format!("transactions[{txn}].outcome.outcome: "))
            && diff[0].ends_with("→ \"acknowledged\""),
        "{diff:?} (was {reason})"
    );
}

/// (b) An outcome for a transaction no client submitted.
#[test]
fn an_outcome_without_a_commit_is_refused() {
    let mut lines = sim_log(&scenario("Heal.json"));
    lines.push(
        r#"{"t":5000,"txn":{"txn":1,"database":0,"outcome":{"outcome":"acknowledged"}}}"#
            .to_owned(),
    );
    let failure = invalid(&lines);
    assert!(
        failure.reason.contains("no transaction 1"),
        "{}",
        failure.reason
    );
}

/// One file per writer: the driver's actions and each replica's views, merged by time. Out
/// of order in time, the same lines tell another story, which the model refuses.
#[test]
fn files_of_several_writers_merge_by_time() {
    let lines = sim_log(&scenario("Heal.json"));
    let config = ModelConfig::from_toml_str(&scenario("Heal.json").config).unwrap();
    let header = |name: &str| header_line(name, None);
    let mut driver = vec![header_line("driver", Some(&scenario("Heal.json").config))];
    let mut replicas: Vec<Vec<String>> = (0..config.replica_count())
        .map(|r| vec![header(&format!("R{r}"))])
        .collect();
    for line in &lines[1..] {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["view"]["replica"].as_u64() {
            Some(r) => replicas[r as usize].push(line.clone()),
            None => driver.push(line.clone()),
        }
    }
    let files = |driver: &[String]| {
        let mut files = vec![parse_file("driver.ndjson", &driver.join("\n")).unwrap()];
        for (r, lines) in replicas.iter().enumerate() {
            files.push(parse_file(&format!("r{r}.ndjson"), &lines.join("\n")).unwrap());
        }
        merge(files).unwrap()
    };
    let merged = files(&driver);
    assert_eq!(merged.events.len(), lines.len() - 1);
    assert!(merged.events.windows(2).all(|w| w[0].t <= w[1].t));
    assert!(matches!(
        validate(&merged, MAX_FRONTIER),
        Verdict::Valid { .. }
    ));
    // The heal logged after the view it explains: SYNCHRONIZED while still partitioned.
    let heal = line_with(&driver, "Heal");
    let mut late = driver.clone();
    late[heal] = late[heal].replace("\"t\":1006", "\"t\":1010");
    assert!(late[heal].contains("1010"));
    match validate(&files(&late), MAX_FRONTIER) {
        Verdict::Invalid(f) => assert_eq!(f.at.file, "r1.ndjson"),
        other => panic!("{}", other.report()),
    }
}
