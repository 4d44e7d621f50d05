//! The judge and the `reference-sim` adapter on the committed corpus.

use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::certify::{certify, load_corpus, RunOptions};
use hadr_conformance::judge::{judge, Verdict};
use hadr_conformance::sut::{Sut, SutError};
use hadr_model::Action;
use hadr_types::{AgConfig, CommitOutcome, Observation};
use std::path::Path;

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpus")
}

fn certify_reference_sim() -> hadr_conformance::certify::Certificate {
    let (scenarios, hash) = load_corpus(&corpus_dir()).unwrap();
    certify(
        &scenarios,
        hash,
        &|_| Box::new(ReferenceSim::new()) as Box<dyn Sut>,
        RunOptions::default(),
        &mut |_, _| {},
    )
}

/// The acceptance of issues 5 and 15 for `reference-sim`: every scenario of the committed
/// corpus passes, the corpus covers every action kind of the model and every hazard, and the
/// certificate measures it: transitions tried, and every spec mutant caught twice.
#[test]
fn reference_sim_passes_the_whole_corpus_with_full_coverage() {
    let certificate = certify_reference_sim();
    assert_eq!(certificate.verdict, "PASS", "{}", certificate.markdown());
    assert_eq!(certificate.passed, certificate.scenarios);
    assert_eq!(certificate.coverage.hazards, ["H1", "H2", "H3", "H4", "H5"]);
    assert_eq!(certificate.missing, Default::default());
    assert_eq!(certificate.applicable_action_kinds, 30);
    let t = &certificate.transitions;
    assert!(t.tried > 100 && t.tried < t.reachable, "{t:?}");
    let m = &certificate.mutation;
    assert!(m.applicable >= 16, "{m:?}");
    assert_eq!(
        (m.caught, m.caught_twice),
        (m.applicable, m.applicable),
        "{m:?}"
    );
}

/// The seeded sibling of the corpus (walks with repeated disruptions and refusals) passes too.
#[test]
fn reference_sim_passes_seeded_walks_with_repeated_disruptions() {
    let walks =
        hadr_conformance::generate::random_walks(hadr_model::DEFAULT_CONFIG_TOML, 1, 200, 8)
            .unwrap();
    assert!(walks.len() >= 190, "{}", walks.len());
    let scenarios: Vec<_> = walks.into_iter().map(|w| (w.purpose.clone(), w)).collect();
    let certificate = certify(
        &scenarios,
        String::new(),
        &|_| Box::new(ReferenceSim::new()) as Box<dyn Sut>,
        RunOptions::default(),
        &mut |_, _| {},
    );
    assert_eq!(certificate.verdict, "PASS", "{}", certificate.markdown());
}

/// A system that lies about its clients: every acknowledged commit is reported indefinite.
struct Forgetful(ReferenceSim);

impl Sut for Forgetful {
    fn name(&self) -> String {
        "forgetful".to_owned()
    }
    fn setup(&mut self, config: &AgConfig) -> Result<(), SutError> {
        self.0.setup(config)
    }
    fn step(&mut self, action: &Action) -> Result<(), SutError> {
        self.0.step(action)
    }
    fn observe(&mut self) -> Result<Observation, SutError> {
        let mut o = self.0.observe()?;
        for t in &mut o.transactions {
            if t.outcome == CommitOutcome::Acknowledged {
                t.outcome = CommitOutcome::Indefinite;
            }
        }
        Ok(o)
    }
}

/// The judge has teeth: a scenario the simulator passes fails as soon as one field of the
/// observation is wrong, at the right step, with a diff that names the field.
#[test]
fn a_wrong_observation_fails_at_its_step_with_a_diff_naming_the_field() {
    let (scenarios, _) = load_corpus(&corpus_dir()).unwrap();
    let (_, scenario) = scenarios
        .iter()
        .find(|(f, _)| f == "000-AckCommit.json")
        .expect("the AckCommit scenario");
    assert!(matches!(
        judge(scenario, &mut ReferenceSim::new()),
        Verdict::Pass
    ));
    match judge(scenario, &mut Forgetful(ReferenceSim::new())) {
        Verdict::Fail(d) => {
            assert_eq!(d.history.len(), d.step, "one observation per step before");
            let first_commit = scenario
                .steps
                .iter()
                .position(|s| matches!(s.action, Action::ClientCommit { .. }))
                .unwrap()
                + 1;
            assert_eq!(d.step, first_commit);
            let diff = hadr_conformance::judge::diff(&d.expected[0], &d.observed);
            assert!(
                diff.iter()
                    .any(|l| l.starts_with("transactions[0].outcome")),
                "{diff:?}"
            );
        }
        other => panic!("a forgetful system passed: {other:?}"),
    }
}

/// The certificate's table as users read it (snapshot), hashes redacted: they change with the
/// spec and the corpus.
#[test]
fn the_certificate_of_reference_sim() {
    let certificate = certify_reference_sim();
    let markdown = certificate
        .markdown()
        .replace(&certificate.model_hash, "[model hash]")
        .replace(&certificate.corpus_hash, "[corpus hash]");
    insta::assert_snapshot!(markdown);
}
