//! Every planted bug of the reference core (feature `mutants`) must fail certification on the
//! committed corpus, with a report naming the rule the bug breaks (issue 5, item 5).
#![cfg(feature = "mutants")]

use hadr_conformance::certify::{certify, load_corpus, Certificate};
use hadr_conformance::sim::ReferenceSim;
use hadr_conformance::sut::Sut;
use hadr_core::mutants::Mutant;
use std::path::Path;

fn run(mutant: Mutant) -> Certificate {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (scenarios, hash) = load_corpus(&dir).unwrap();
    certify(
        &scenarios,
        hash,
        &mut || Box::new(ReferenceSim::with_mutant(mutant)) as Box<dyn Sut>,
        true,
        &mut |_, _| {},
    )
}

fn caught(mutant: Mutant) {
    let certificate = run(mutant);
    assert_eq!(certificate.verdict, "FAIL", "{mutant} passed certification");
    assert_eq!(certificate.errors, 0, "{}", certificate.markdown());
    let naming: Vec<&str> = certificate
        .results
        .iter()
        .filter(|r| r.rules.contains(&mutant.rule()))
        .map(|r| r.file.as_str())
        .collect();
    assert!(
        !naming.is_empty(),
        "no failure report of {mutant} names {}:\n{}",
        mutant.rule(),
        certificate.markdown()
    );
    // Every failure was shrunk to a scenario that still fails, no longer than the original.
    for r in certificate.results.iter().filter(|r| r.verdict == "fail") {
        assert!(r.actions.len() <= r.unshrunk_steps.unwrap(), "{r:?}");
        assert_eq!(Some(r.actions.len()), r.step, "{r:?}");
    }
}

/// DiskStall stalls the secondary's fsyncs at rest: the next commit reaches it and is never
/// hardened there, so the spec keeps it waiting; the mutant acknowledges it on receipt.
#[test]
fn ack_before_secondary_hardens_fails_naming_r_commit_2() {
    caught(Mutant::AckBeforeSecondaryHardens);
}

/// LoseLogBlock is armed at quiescence and takes the next record; the next commit's block
/// then arrives with a gap, which the mutant applies at the wrong LSN (023-mutant-accept-log-gap).
#[test]
fn accept_log_gap_fails_naming_r_sync_1() {
    caught(Mutant::AcceptLogGap);
}

#[test]
fn count_disconnected_participant_fails_naming_r_commit_4() {
    caught(Mutant::CountDisconnectedParticipant);
}

#[test]
fn promote_synchronizing_fails_naming_r_fail_2() {
    caught(Mutant::PromoteSynchronizing);
}

#[test]
fn commit_after_lease_expiry_fails_naming_r_quorum_3() {
    caught(Mutant::CommitAfterLeaseExpiry);
}

#[test]
fn forced_failover_without_partner_suspend_fails_naming_r_fail_4() {
    caught(Mutant::ForcedFailoverWithoutPartnerSuspend);
}

/// The lists above cover every mutant: a new one gets a test.
#[test]
fn every_mutant_is_tested() {
    let tested = [
        Mutant::CountDisconnectedParticipant,
        Mutant::PromoteSynchronizing,
        Mutant::CommitAfterLeaseExpiry,
        Mutant::ForcedFailoverWithoutPartnerSuspend,
        Mutant::AcceptLogGap,
        Mutant::AckBeforeSecondaryHardens,
    ];
    for m in Mutant::ALL {
        assert!(tested.contains(m), "{m} has no test");
    }
    assert_eq!(Mutant::ALL.len(), 6);
}

/// The failure report of a mutant, as users read it (snapshot): which scenario, the rules,
/// the shrunk scenario and the diff. The header's hashes change with the spec and the corpus,
/// so the snapshot holds the failures only.
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
