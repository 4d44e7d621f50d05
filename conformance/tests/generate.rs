//! Corpus generation from the spec: coverage, determinism, the committed corpus, the format.

use hadr_conformance::{generate, Corpus, GenerateOptions, Scenario, FORMAT};

fn config(name: &str) -> String {
    let path = format!("{}/../model/configs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn corpus(text: &str, options: &GenerateOptions) -> Corpus {
    generate(text, options, &mut |_| {}).expect("the configuration is valid")
}

/// Issue 5's coverage requirement, on the default configuration: together the scenarios take
/// every action kind the configuration can take and reach every hazard H1–H5.
#[test]
fn the_default_corpus_covers_every_action_kind_and_every_hazard() {
    let c = corpus(hadr_model::DEFAULT_CONFIG_TOML, &GenerateOptions::default());
    assert!(c.too_broad.is_empty(), "given up: {:?}", c.too_broad);
    assert_eq!(c.missing, Default::default(), "not covered");
    for hazard in ["H1", "H2", "H3", "H4", "H5"] {
        assert!(c.coverage.hazards.iter().any(|h| h == hazard), "{hazard}");
        assert!(
            c.scenarios
                .iter()
                .any(|s| s.purpose == hazard && s.covers.hazards.iter().any(|h| h == hazard)),
            "no scenario for {hazard} reaches it"
        );
    }
    for s in &c.scenarios {
        assert!(
            !s.initial.is_empty(),
            "{}: nothing expected initially",
            s.purpose
        );
        for (i, step) in s.steps.iter().enumerate() {
            assert!(
                step.action.kind().class().is_environment(),
                "{} step {i}: an internal action in a scenario",
                s.purpose
            );
            assert!(
                !step.expected.is_empty(),
                "{} step {i}: nothing expected",
                s.purpose
            );
        }
    }
}

/// The corpus is a function of the configuration and the seed; another seed gives other walks.
#[test]
fn generation_is_deterministic_for_a_seed() {
    let text = config("two-replicas.toml");
    let options = GenerateOptions::default();
    let a = corpus(&text, &options);
    let b = corpus(&text, &options);
    assert_eq!(a.scenarios, b.scenarios);
    let c = corpus(&text, &GenerateOptions { seed: 2, ..options });
    let walks = |c: &Corpus| -> Vec<Scenario> {
        c.scenarios
            .iter()
            .filter(|s| s.purpose.starts_with("walk"))
            .cloned()
            .collect()
    };
    assert_ne!(walks(&a), walks(&c), "seed 2 walks like seed 1");
}

/// `conformance/corpus` is exactly what `hadr trace generate` produces from the embedded
/// default configuration and seed 1: a change to the spec that changes what it expects must
/// regenerate the committed corpus.
#[test]
fn the_committed_corpus_is_up_to_date() {
    let dir = format!("{}/corpus", env!("CARGO_MANIFEST_DIR"));
    let c = corpus(hadr_model::DEFAULT_CONFIG_TOML, &GenerateOptions::default());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "index.json" && n.ends_with(".json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        c.scenarios.len(),
        "conformance/corpus is stale: run `cargo run --release -- trace generate`"
    );
    for (file, scenario) in files.iter().zip(&c.scenarios) {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        assert!(
            text == scenario.to_json(),
            "conformance/corpus/{file} is stale: run `cargo run --release -- trace generate`"
        );
    }
}

#[test]
fn a_scenario_round_trips_and_another_format_is_refused() {
    let c = corpus(
        &config("two-replicas.toml"),
        &GenerateOptions {
            walks: 1,
            ..Default::default()
        },
    );
    let scenario = &c.scenarios[0];
    assert_eq!(scenario.format, FORMAT);
    assert_eq!(&Scenario::from_json(&scenario.to_json()).unwrap(), scenario);
    let other = scenario.to_json().replace(FORMAT, "hadr-scenario/0");
    let error = Scenario::from_json(&other).unwrap_err().to_string();
    assert!(error.contains("hadr trace generate"), "{error}");
    assert!(Scenario::from_json("{}").is_err());
}

/// Mutation adequacy (issue 15): generation adds scenarios until every spec mutant of the
/// configuration fails on `kills_per_mutant` of them whatever it does; the index records it.
#[test]
fn generation_adds_scenarios_until_every_mutant_is_caught_twice() {
    let text = config("two-replicas.toml");
    let c = corpus(&text, &GenerateOptions::default());
    let score = &c.measure.mutation;
    assert!(score.applicable >= 10, "{score:?}");
    for m in &score.mutants {
        assert!(m.always_caught_by.len() >= 2, "{m:?}");
    }
    let without = corpus(
        &text,
        &GenerateOptions {
            kills_per_mutant: 0,
            ..Default::default()
        },
    );
    assert!(without.scenarios.len() < c.scenarios.len());
    assert!(without
        .scenarios
        .iter()
        .all(|s| !s.purpose.starts_with("mutant")));
}

/// Every step of every committed scenario is one a driver that waits for quiescence meets: its
/// action is enabled in some state at rest the spec may be in, or it is an operator's command
/// or an aimable fault the spec refuses (a refusal step), never a crash of a down server or a
/// restart of a running one. And some steps are refusals.
#[test]
fn every_step_is_taken_at_rest_or_is_a_refused_command() {
    use hadr_conformance::refine::{run_to_rest, take_or_refuse, MAX_STATES};
    use hadr_model::{ActionClass, ActionKind, AgModel, ModelConfig};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (scenarios, _) = hadr_conformance::certify::load_corpus(&dir).unwrap();
    let mut refusals = 0;
    for (file, s) in &scenarios {
        let m = AgModel::new(ModelConfig::from_toml_str(&s.config).unwrap()).for_conformance();
        let mut states = run_to_rest(&m, vec![m.initial_state()], MAX_STATES).unwrap();
        for (i, step) in s.steps.iter().enumerate() {
            let a = step.action;
            if !states.iter().any(|x| m.enabled(x, &a)) {
                refusals += 1;
                let kind = a.kind();
                assert!(
                    kind.class() == ActionClass::Operator
                        || [
                            ActionKind::HealthFault,
                            ActionKind::DiskStall,
                            ActionKind::LoseLogBlock
                        ]
                        .contains(&kind),
                    "{file} step {}: {a:?} is enabled nowhere and is no command",
                    i + 1
                );
            }
            states = run_to_rest(&m, take_or_refuse(&m, &states, &a), MAX_STATES).unwrap();
        }
    }
    assert!(refusals >= 5, "{refusals} refusal steps");
}
