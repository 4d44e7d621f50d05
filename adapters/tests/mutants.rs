//! Every planted bug of the reference core (feature `mutants`) fails certification on the
//! committed corpus, and every failure names the rule the bug breaks first (issue 15, item 5).
//! On the real replicas: `tests/certify_reference.rs` and `scripts/certify-mutants`.
#![cfg(feature = "mutants")]

use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::certify::{certify, load_corpus, Certificate, RunOptions};
use hadr_conformance::sut::Sut;
use hadr_core::mutants::Mutant;
use std::path::Path;

fn run(mutant: Mutant) -> Certificate {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpus");
    let (scenarios, hash) = load_corpus(&dir).unwrap();
    certify(
        &scenarios,
        hash,
        &|_| Box::new(ReferenceSim::with_mutant(mutant)) as Box<dyn Sut>,
        RunOptions::default(),
        &mut |_, _| {},
    )
}

/// Fails, with no error, every failure shrunk, and every failure naming `mutant`'s rule first,
/// most of them because a spec mutant with the same bug explains what the system showed.
fn caught(mutant: Mutant) {
    let certificate = run(mutant);
    assert_eq!(certificate.verdict, "FAIL", "{mutant} passed certification");
    assert_eq!(
        certificate.errors + certificate.too_broad,
        0,
        "{}",
        certificate.markdown()
    );
    let failures: Vec<_> = certificate.failures().collect();
    for r in &failures {
        assert_eq!(
            r.rules.first().map(String::as_str),
            Some(mutant.rule()),
            "{mutant}: {} names {:?} first:\n{}",
            r.file,
            r.rules,
            certificate.markdown()
        );
        assert!(r.actions.len() <= r.unshrunk_steps.unwrap(), "{r:?}");
        assert_eq!(Some(r.actions.len()), r.step, "{r:?}");
        assert!(r.failing_scenario.is_some(), "{r:?}");
    }
    assert!(
        failures.iter().any(|r| !r.like.is_empty()),
        "{mutant}: no spec mutant explains any failure:\n{}",
        certificate.markdown()
    );
}

macro_rules! caught {
    ($($test:ident => $mutant:ident,)*) => {
        $(#[test]
        fn $test() {
            caught(Mutant::$mutant);
        })*

        /// The tests above cover every mutant: a new one gets a test.
        #[test]
        fn every_mutant_is_tested() {
            let tested = [$(Mutant::$mutant),*];
            for m in Mutant::ALL {
                assert!(tested.contains(m), "{m} has no test");
            }
            assert!(Mutant::ALL.len() >= 14);
        }
    };
}

caught! {
    ack_before_secondary_hardens_fails_naming_r_commit_2 => AckBeforeSecondaryHardens,
    async_secondary_participant_fails_naming_r_commit_1 => AsyncSecondaryParticipant,
    count_disconnected_participant_fails_naming_r_commit_4 => CountDisconnectedParticipant,
    ignore_required_synchronized_fails_naming_r_commit_5 => IgnoreRequiredSynchronized,
    definite_at_step_down_fails_naming_r_commit_7 => DefiniteAtStepDown,
    promote_synchronizing_fails_naming_r_fail_2 => PromoteSynchronizing,
    planned_failover_to_unsynchronized_fails_naming_r_fail_3 => PlannedFailoverToUnsynchronized,
    forced_failover_without_partner_suspend_fails_naming_r_fail_4 => ForcedFailoverWithoutPartnerSuspend,
    forced_failover_to_synchronized_lossy_fails_naming_r_fail_4 => ForcedFailoverToSynchronizedLossy,
    resume_without_revert_fails_naming_r_fail_4 => ResumeWithoutRevert,
    rejoin_without_revert_fails_naming_r_fail_6 => RejoinWithoutRevert,
    accept_log_gap_fails_naming_r_sync_1 => AcceptLogGap,
    async_secondary_synchronized_fails_naming_r_sync_4 => AsyncSecondarySynchronized,
    commit_after_lease_expiry_fails_naming_r_quorum_3 => CommitAfterLeaseExpiry,
}

/// The failure report of a mutant, as users read it (snapshot): which scenario, the rules, the
/// spec mutant it behaves like, the shrunk scenario and the diff. The header's hashes change
/// with the spec and the corpus, so the snapshot holds the failures only.
#[test]
fn the_failure_report_of_a_mutant() {
    let certificate = run(Mutant::PromoteSynchronizing);
    let markdown = certificate.markdown();
    let failures = &markdown[markdown.find("## Failures").expect("a failure section")..];
    insta::assert_snapshot!(failures);
    let results: Vec<_> = certificate
        .results
        .iter()
        .filter(|r| r.verdict != "pass")
        .collect();
    insta::assert_json_snapshot!(results);
}
