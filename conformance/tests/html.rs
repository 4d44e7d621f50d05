//! What the pages of `hadr certify --html` are drawn from: each result's timeline is the run
//! that was judged (for a shrunk failure, the shrunk replay that failed last), and stays out
//! of the certificate.

use hadr_conformance::certify::{certify, load_corpus, shipped_corpus_dir, RunOptions};
use hadr_conformance::judge::{judge_recorded, Verdict};
use hadr_conformance::model_sut::ModelSut;
use hadr_conformance::sut::Sut;
use hadr_model::Mutant;

#[test]
fn each_result_keeps_the_observations_of_the_run_judged() {
    let (scenarios, hash) = load_corpus(&shipped_corpus_dir()).unwrap();
    let mutant = Some(Mutant::AckBeforeSecondaryHardens);
    let make =
        |s: &hadr_conformance::Scenario| Box::new(ModelSut::adversarial(mutant, s)) as Box<dyn Sut>;
    let certificate = certify(
        &scenarios,
        hash,
        &make,
        RunOptions::default(),
        &mut |_, _| {},
    );
    assert!(certificate.failed > 0 && certificate.passed > 0);
    let mut shrunk = 0;
    for (r, (_, scenario)) in certificate.results.iter().zip(&scenarios) {
        let timeline = r
            .timeline
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no timeline", r.file));
        assert_eq!(
            timeline.observations.len(),
            timeline.actions.len() + 1,
            "{}",
            r.file
        );
        if r.verdict == "pass" {
            let actions: Vec<_> = scenario.steps.iter().map(|s| s.action).collect();
            assert_eq!(timeline.actions, actions, "{}", r.file);
            continue;
        }
        assert_eq!(r.verdict, "fail", "{}", r.file);
        // The failure's own run: the certificate's actions, failing at its step.
        let failing = r.failing_scenario.as_ref().unwrap();
        let actions: Vec<_> = failing.steps.iter().map(|s| s.action).collect();
        assert_eq!(timeline.actions, actions, "{}", r.file);
        assert_eq!(Some(timeline.actions.len()), r.step, "{}", r.file);
        let json: Vec<serde_json::Value> = actions
            .iter()
            .map(|a| serde_json::to_value(a).unwrap())
            .collect();
        assert_eq!(json, r.actions, "{}", r.file);
        if r.actions.len() < r.unshrunk_steps.unwrap() {
            shrunk += 1;
        }
        // What a fresh system shows replaying it.
        let (verdict, observations) = judge_recorded(failing, make(failing).as_mut());
        assert!(matches!(verdict, Verdict::Fail(_)), "{}", r.file);
        assert_eq!(observations, timeline.observations, "{}", r.file);
    }
    assert!(
        shrunk > 0,
        "no failure was shrunk: the test shows nothing about shrinking"
    );
    // Not in the certificate.
    let json = serde_json::to_string(&certificate).unwrap();
    assert!(!json.contains("timeline") && !json.contains("observations"));
}
