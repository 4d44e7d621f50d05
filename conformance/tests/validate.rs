//! `hadr validate`'s checker on malformed event logs: bad input, each kind with its own error
//! naming file and line. Logs of runs of the reference core, validating and tampered with:
//! hadr-adapters' `tests/validate.rs`.

use hadr_conformance::certify::{find_scenario, load_corpus, shipped_corpus_dir};
use hadr_conformance::scenario::Scenario;
use hadr_conformance::validate::{merge, parse_file, LogError};
use hadr_types::event_log::header_line;

fn corpus() -> Vec<(String, Scenario)> {
    load_corpus(&shipped_corpus_dir()).unwrap().0
}

/// The corpus scenario named `name` (its file name without the number: `Heal.json`).
fn scenario(name: &str) -> Scenario {
    find_scenario(&corpus(), name).unwrap_or_else(|| panic!("no {name} in the corpus"))
}

fn error(text: &str) -> LogError {
    match parse_file("bad.ndjson", text).and_then(|f| merge(vec![f])) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// (c) Each kind of malformed input is its own error, naming file and line.
#[test]
fn malformed_logs_are_bad_input_with_their_line() {
    let config = serde_json::to_string(&scenario("Heal.json").config).unwrap();
    let head = format!(r#"{{"format":"hadr-events/1","config":{config}}}"#);
    let with = |line: &str| format!("{head}\n{line}\n");
    let view = r#"{"replica":0,"up":true,"role":"PRIMARY","databases":[]}"#;
    assert!(matches!(error(""), LogError::Empty { .. }));
    assert!(matches!(error("{"), LogError::Json { .. }));
    assert!(matches!(error("[1]"), LogError::NotAnObject { .. }));
    assert!(matches!(
        error(r#"{"t":1,"view":{}}"#),
        LogError::MissingHeader { .. }
    ));
    assert!(matches!(
        error(r#"{"format":"hadr-events/2"}"#),
        LogError::Format { .. }
    ));
    assert!(matches!(
        error(r#"{"format":"hadr-events/1","confg":""}"#),
        LogError::UnknownField { .. }
    ));
    assert!(matches!(
        error(r#"{"format":"hadr-events/1","config":"[ag]"}"#),
        LogError::Config { .. }
    ));
    assert!(matches!(
        error(r#"{"format":"hadr-events/1","config":7}"#),
        LogError::Config { .. }
    ));
    assert!(matches!(
        error(r#"{"format":"hadr-events/1"}"#),
        LogError::NoConfig
    ));
    assert!(matches!(error(&with(&head)), LogError::HeaderAgain { .. }));
    assert!(matches!(
        error(&with(&format!(r#"{{"view":{view}}}"#))),
        LogError::BadTime { .. }
    ));
    assert!(matches!(
        error(&with(&format!(r#"{{"t":-1,"view":{view}}}"#))),
        LogError::BadTime { .. }
    ));
    assert!(matches!(
        error(&with(r#"{"t":1}"#)),
        LogError::NoEvent { .. }
    ));
    assert!(matches!(
        error(&with(&format!(
            r#"{{"t":1,"view":{view},"action":{{"Crash":{{"replica":0}}}}}}"#
        ))),
        LogError::SeveralEvents { .. }
    ));
    assert!(matches!(
        error(&with(r#"{"t":1,"action":{"Explode":{}}}"#)),
        LogError::BadAction { .. }
    ));
    assert!(matches!(
        error(&with(r#"{"t":1,"action":{"ShipLog":{"to":1,"db":0}}}"#)),
        LogError::InternalAction { .. }
    ));
    assert!(matches!(
        error(&with(r#"{"t":1,"view":{"replica":0}}"#)),
        LogError::BadView { .. }
    ));
    assert!(matches!(
        error(&with(r#"{"t":1,"txn":{"txn":1}}"#)),
        LogError::BadTxn { .. }
    ));
    let stranger = view.replace(r#""replica":0"#, r#""replica":9"#);
    assert!(matches!(
        error(&with(&format!(r#"{{"t":1,"view":{stranger}}}"#))),
        LogError::NoSuchReplica {
            replica: 9,
            replicas: 3,
            ..
        }
    ));
    let commits: String = (0..17)
        .map(|i| format!("{{\"t\":{i},\"action\":{{\"ClientCommit\":{{\"db\":0}}}}}}\n"))
        .collect();
    assert!(matches!(
        error(&format!("{head}\n{commits}")),
        LogError::TooManyCommits { commits: 17, .. }
    ));
    // The message names the file and the line.
    let e = error(&with(r#"{"t":1}"#));
    assert!(e.to_string().starts_with("bad.ndjson:2: "), "{e}");
    // Two headers that disagree (another group), and a file without a header's config.
    let a = parse_file("a.ndjson", &head).unwrap();
    let pair = include_str!("../../model/configs/two-replicas.toml");
    let b = parse_file("b.ndjson", &header_line("b", Some(pair))).unwrap();
    assert!(matches!(
        merge(vec![a.clone(), b]),
        Err(LogError::ConfigMismatch { ref at, .. }) if at.file == "b.ndjson"
    ));
    let c = parse_file("c.ndjson", &header_line("R0", None)).unwrap();
    assert!(merge(vec![c, a]).is_ok());
    assert!(matches!(merge(Vec::new()), Err(LogError::NoFiles)));
}
