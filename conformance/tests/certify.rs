//! The judge and the `reference-sim` adapter on the committed corpus.

use hadr_conformance::certify::{certify, load_corpus};
use hadr_conformance::judge::{judge, Verdict};
use hadr_conformance::sim::ReferenceSim;
use hadr_conformance::sut::{Sut, SutError};
use hadr_model::Action;
use hadr_types::{AgConfig, CommitOutcome, Observation};
use std::path::Path;

/// Scenarios of the committed corpus on which the reference core (in `reference-sim`) and the
/// spec disagree today, by cause. Each is a finding of the harness under investigation, not an
/// excuse: the test fails when another scenario fails, and when one of these starts passing
/// (then take it off the list).
const KNOWN_DISAGREEMENTS: &[(&str, &str)] = &[
    // R-FAIL-4 / R-SYNC-7, forced failover while the old primary's database is suspended by the
    // user: the spec marks the other databases SUSPEND_FROM_PARTNER and the new primary's
    // database as not suspended; the core keeps SUSPEND_FROM_PRIMARY on the new primary's own
    // database (a reason derived from the old primary that it never clears: likely a core bug)
    // and the user's reason on the old primary.
    (
        "023-walk-1.json",
        "forced failover over a user suspension: suspension reasons",
    ),
    (
        "036-walk-14.json",
        "forced failover over a user suspension: suspension reasons",
    ),
    // The views of a crashed replica: the spec shows SUSPEND_FROM_PRIMARY when the primary's
    // database is suspended; the simulator shows the crashed replica's own state only.
    (
        "032-walk-10.json",
        "the suspension reason shown for a crashed replica",
    ),
];

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[test]
fn reference_sim_on_the_corpus_fails_only_the_known_disagreements() {
    let (scenarios, hash) = load_corpus(&corpus_dir()).unwrap();
    let certificate = certify(
        &scenarios,
        hash,
        &mut || Box::new(ReferenceSim::new()) as Box<dyn Sut>,
        &mut |_, _| {},
    );
    assert_eq!(certificate.errors, 0, "{}", certificate.markdown());
    let failing: Vec<&str> = certificate
        .results
        .iter()
        .filter(|r| r.verdict != "pass")
        .map(|r| r.file.as_str())
        .collect();
    let mut known: Vec<&str> = KNOWN_DISAGREEMENTS.iter().map(|(f, _)| *f).collect();
    known.sort();
    assert_eq!(
        failing,
        known,
        "the disagreements changed; update KNOWN_DISAGREEMENTS:\n{}",
        certificate.markdown()
    );
    assert_eq!(certificate.coverage.hazards, ["H1", "H2", "H3", "H4", "H5"]);
    assert_eq!(certificate.verdict, "FAIL");
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
