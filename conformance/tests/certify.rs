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
    // R-QUORUM-2: the spec has a replica that cannot reach the manager's majority go RESOLVING
    // (LoseManager) and come back through the manager (ResolveToSecondary). The core has no
    // manager input for a secondary: it stays SECONDARY (and SYNCHRONIZED).
    (
        "012-LeaseExpiry.json",
        "secondary cut off from the manager stays SECONDARY",
    ),
    (
        "014-LoseManager.json",
        "secondary cut off from the manager stays SECONDARY",
    ),
    (
        "015-LoseQuorum.json",
        "secondaries stay SECONDARY without quorum",
    ),
    (
        "018-RegainQuorum.json",
        "secondaries stay SECONDARY without quorum",
    ),
    (
        "026-walk-4.json",
        "secondary cut off from the manager stays SECONDARY",
    ),
    (
        "029-walk-7.json",
        "secondary cut off from the manager stays SECONDARY",
    ),
    (
        "031-walk-9.json",
        "secondaries stay SECONDARY without quorum",
    ),
    (
        "034-walk-12.json",
        "secondaries stay SECONDARY without quorum",
    ),
    (
        "037-walk-15.json",
        "secondary cut off from the manager stays SECONDARY",
    ),
    (
        "040-walk-18.json",
        "secondary cut off from the manager stays SECONDARY",
    ),
    // R-FAIL-6: a RESOLVING former primary that reaches the manager but not the new primary
    // learns its role from the manager in the spec; the core waits for the new primary.
    (
        "006-H1.json",
        "old primary stays RESOLVING until it meets the new primary",
    ),
    // R-FAIL-4 / R-SYNC-7: forced failover and suspension reasons: the spec marks every other
    // database SUSPEND_FROM_PARTNER (over a user suspension); the core keeps the user's reason
    // and shows SUSPEND_FROM_PRIMARY where the spec has none, and does not suspend a secondary
    // that already had the whole log.
    (
        "008-H3.json",
        "forced failover: partner suspension of a caught-up secondary",
    ),
    ("023-walk-1.json", "forced failover: suspension reasons"),
    (
        "030-walk-8.json",
        "forced failover: partner suspension after resume",
    ),
    (
        "032-walk-10.json",
        "the suspension reason shown for a crashed replica",
    ),
    ("036-walk-14.json", "forced failover: suspension reasons"),
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
