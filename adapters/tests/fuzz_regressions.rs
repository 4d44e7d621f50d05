//! Disagreements between `reference-sim` and the spec that the differential fuzzer found
//! (`fuzz/fuzz_targets/differential.rs`; their inputs are seeds in
//! `fuzz/corpus/differential/regression-*`), replayed as scenarios under the refinement judge.

use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::generate::scenario_of;
use hadr_conformance::judge::{judge, Verdict};
use hadr_model::{Action, Node};
use hadr_types::FailureCondition;

fn verdict(actions: &[Action], sim: &mut ReferenceSim) -> Verdict {
    let scenario = scenario_of(hadr_model::DEFAULT_CONFIG_TOML, "fuzz regression", actions);
    judge(&scenario, sim)
}

fn assert_pass(actions: &[Action]) {
    match verdict(actions, &mut ReferenceSim::new()) {
        Verdict::Pass => {}
        other => panic!("{actions:?}: {other:?}"),
    }
}

/// R-FAIL-4: the primary B, cut off from the manager, loses its lease; A, which B's last
/// publication records SYNCHRONIZED, is forced to primary. Its own view says
/// NOT_SYNCHRONIZING (no primary), but nothing acknowledged can be missing: the spec suspends
/// no partner. The core started a forced fork and suspended C.
#[test]
fn a_forced_failover_onto_a_replica_recorded_synchronized_suspends_no_partner() {
    let unresponsive = Action::HealthFault {
        replica: 0,
        condition: FailureCondition::Unresponsive,
    };
    let actions = [
        unresponsive,
        Action::PlannedFailover { target: 0 },
        unresponsive,
        Action::Partition {
            a: Node::Replica(1),
            b: Node::Manager,
        },
        Action::ForcedFailover { target: 0 },
    ];
    assert_pass(&actions);
    // The planted bug that treats such a failover as lossy fails here, on R-FAIL-4.
    #[cfg(feature = "mutants")]
    {
        use hadr_core::mutants::Mutant;
        let mut buggy = ReferenceSim::with_mutant(Mutant::ForcedFailoverToSynchronizedLossy);
        match verdict(&actions, &mut buggy) {
            Verdict::Fail(d) => assert_eq!(d.step, 5, "{d:?}"),
            other => panic!("the lossy mutant passed: {other:?}"),
        }
    }
}

/// C's log disk is stalled when a failover makes it revert: the truncation never completes,
/// so C stays REVERTING, also once a second failover gives it a new primary whose history its
/// (in memory) log already is a prefix of (the spec ended the revert with the session). When
/// C crashes, its disk still holds the record the revert was to discard (the spec had lost
/// it); restarted, it reverts again, on a working disk.
#[test]
fn a_revert_pending_on_a_stalled_disk_outlives_the_session_and_not_the_crash() {
    let actions = [
        Action::PlannedFailover { target: 0 },
        Action::DiskStall { replica: 0 },
        Action::LoseLogBlock { to: 1, db: 0 },
        Action::ClientCommit { db: 0 },
        Action::DiskStall { replica: 2 },
        Action::ForcedFailover { target: 1 },
        Action::ForcedFailover { target: 0 },
        Action::Crash { replica: 2 },
        Action::Restart { replica: 2 },
    ];
    assert_pass(&actions);
}
