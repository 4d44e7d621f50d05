//! `reference-sim` in lock step with the spec (`hadr_conformance::lockstep`), as the
//! differential fuzz target runs it: the disagreements the fuzzer found, each kept as a
//! regression, and seeded random action sequences.

use hadr_adapters::reference_sim::ReferenceSim;
use hadr_conformance::lockstep::{Divergence, Lockstep};
use hadr_model::{Action, ModelConfig};

/// Runs `actions` (each must be an environment action of the configuration) in lock step.
fn run_actions(lockstep: &Lockstep, actions: &[Action]) -> Result<Vec<Action>, Divergence> {
    let choices: Vec<usize> = actions
        .iter()
        .map(|a| {
            lockstep
                .environment()
                .iter()
                .position(|e| e == a)
                .unwrap_or_else(|| panic!("{a:?} is no environment action here"))
        })
        .collect();
    lockstep.run(choices, &mut ReferenceSim::new())
}

/// The two-replica configuration (`model/configs/two-replicas.toml`).
const TWO_REPLICAS: &str = include_str!("../../model/configs/two-replicas.toml");

/// Asserts that the reference core performs every one of `actions` (in the configuration
/// `config_toml`) in step with the spec.
fn keeps_in_step(config_toml: &str, actions: &[Action]) {
    let lockstep = Lockstep::new(ModelConfig::from_toml_str(config_toml).unwrap());
    let performed = run_actions(&lockstep, actions).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(performed, actions);
}

/// Found by the differential fuzz target (R-COMMIT-5): B, cut off from the primary when
/// REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT became 1, is forced primary and must commit
/// by the group's value (refusing: no secondary is SYNCHRONIZED), not by the 0 it last
/// heard. The manager gives the stored value with the promotion.
#[test]
fn a_replica_promoted_after_missing_an_alter_commits_by_the_groups_required_synchronized() {
    use hadr_model::Node;
    use hadr_types::FailureCondition;
    keeps_in_step(
        hadr_model::DEFAULT_CONFIG_TOML,
        &[
            Action::Partition {
                a: Node::Replica(2),
                b: Node::Manager,
            },
            Action::Partition {
                a: Node::Replica(0),
                b: Node::Replica(1),
            },
            Action::SetRequiredSynchronized { k: 1 },
            Action::HealthFault {
                replica: 0,
                condition: FailureCondition::Unresponsive,
            },
            Action::ForcedFailover { target: 1 },
            Action::ClientCommit { db: 0 },
        ],
    );
}

/// Found by the differential fuzz target (R-FAIL-7): after one automatic failover the
/// two-replica group is at its failure threshold (replicas − 1), so a health fault of the
/// new primary fails nobody over: the manager restores it.
#[test]
fn at_the_failure_threshold_a_health_fault_fails_nobody_over() {
    use hadr_types::FailureCondition;
    keeps_in_step(
        TWO_REPLICAS,
        &[
            Action::Crash { replica: 0 },
            Action::ClientCommit { db: 0 },
            Action::Restart { replica: 0 },
            Action::HealthFault {
                replica: 1,
                condition: FailureCondition::CriticalError,
            },
        ],
    );
}

/// Found by the differential fuzz target (R-FAIL-6): A, the old primary holding a commit
/// B never got, is resumed after B's forced failover while B's own database is suspended:
/// A reverts to the fork point all the same, then is SUSPEND_FROM_PRIMARY.
#[test]
fn a_resumed_copy_beyond_the_fork_point_reverts_even_when_the_primary_database_is_suspended() {
    keeps_in_step(
        hadr_model::DEFAULT_CONFIG_TOML,
        &[
            Action::Suspend { replica: 1, db: 0 },
            Action::Crash { replica: 2 },
            Action::ClientCommit { db: 0 },
            Action::ForcedFailover { target: 1 },
            Action::Resume { replica: 0, db: 0 },
        ],
    );
}

/// Found by the differential fuzz target (R-QUORUM-2): B missed A's commit (a lost block)
/// yet is SYNCHRONIZED; A is cut from the manager, its lease runs out, B is promoted. A,
/// RESOLVING and cut off, must not follow B (nor revert its log): the simulated manager
/// now tells a replica it is unreachable as soon as it is cut, as the node's etcd watch
/// does within a second, not after the lease has already run out.
#[test]
fn a_replica_cut_from_the_manager_follows_no_new_primary() {
    keeps_in_step(
        TWO_REPLICAS,
        &[
            Action::LoseLogBlock { to: 1, db: 0 },
            Action::ClientCommit { db: 0 },
            Action::Partition {
                a: hadr_model::Node::Replica(0),
                b: hadr_model::Node::Manager,
            },
        ],
    );
}

/// Found by the differential fuzz target (R-SYNC-7): resuming the primary's database
/// starts data movement again from each secondary's end of log, so a record lost before
/// is sent again (the spec had the secondary wait for the next record).
#[test]
fn resuming_the_primary_database_sends_a_lost_record_again() {
    keeps_in_step(
        TWO_REPLICAS,
        &[
            Action::LoseLogBlock { to: 1, db: 0 },
            Action::ClientCommit { db: 0 },
            Action::Suspend { replica: 0, db: 0 },
            Action::Resume { replica: 0, db: 0 },
        ],
    );
}

/// Found by the differential fuzz target: C (asynchronous) holds T1, which B (SYNCHRONIZED,
/// its block lost) lacks; C's log disk stalls; B is promoted and C must revert T1. The
/// core cuts its log back at once and stays REVERTING, its truncation never done; the
/// spec had the stalled copy not revert at all.
#[test]
fn a_stalled_copy_cut_back_to_the_fork_point_stays_reverting() {
    keeps_in_step(
        hadr_model::DEFAULT_CONFIG_TOML,
        &[
            Action::LoseLogBlock { to: 1, db: 0 },
            Action::ClientCommit { db: 0 },
            Action::SetRequiredSynchronized { k: 1 },
            Action::DiskStall { replica: 2 },
            Action::Partition {
                a: hadr_model::Node::Replica(0),
                b: hadr_model::Node::Manager,
            },
        ],
    );
}

/// The reference core agrees with the spec on seeded random action sequences of the
/// two-replica configuration.
#[test]
fn reference_sim_keeps_in_step_with_the_spec() {
    let config = ModelConfig::from_toml_str(TWO_REPLICAS).unwrap();
    let lockstep = Lockstep::new(config);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let started = std::time::Instant::now();
    let runs = 300;
    for _ in 0..runs {
        let choices: Vec<usize> = (0..6)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as usize
            })
            .collect();
        if let Err(d) = lockstep.run(choices, &mut ReferenceSim::new()) {
            panic!("{d}");
        }
    }
    eprintln!(
        "{runs} lock-step runs in {:?} ({:.0}/s)",
        started.elapsed(),
        runs as f64 / started.elapsed().as_secs_f64()
    );
}

/// The storage-faults configuration (`model/configs/storage-faults.toml`): a log record
/// damaged on a stopped server's disk (`CorruptLog`, issue 18).
const STORAGE_FAULTS: &str = include_str!("../../model/configs/storage-faults.toml");

/// A secondary's disk loses a record while it is down: it restarts SUSPECT (never promoted,
/// serving nothing), follows the primary, and is reseeded; the reference core and the spec
/// agree at every step, the damaged copy's database state included.
#[test]
fn a_damaged_secondary_restarts_suspect_and_is_reseeded_in_step_with_the_spec() {
    keeps_in_step(
        STORAGE_FAULTS,
        &[
            Action::ClientCommit { db: 0 },
            Action::ClientCommit { db: 0 },
            Action::Crash { replica: 1 },
            Action::CorruptLog {
                replica: 1,
                db: 0,
                lsn: 1,
            },
            Action::Restart { replica: 1 },
        ],
    );
}

/// The reference core agrees with the spec on seeded random action sequences with storage
/// faults: random steps around a crash whose disk loses a record (a random one of the
/// configuration's damages), its restart, then more random steps (forced failovers and crashes included).
#[test]
fn reference_sim_keeps_in_step_with_the_spec_under_storage_faults() {
    let config = ModelConfig::from_toml_str(STORAGE_FAULTS).unwrap();
    let lockstep = Lockstep::new(config);
    let position = |action: &Action| {
        lockstep
            .environment()
            .iter()
            .position(|e| e == action)
            .unwrap_or_else(|| panic!("{action:?} is no environment action here"))
    };
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    let mut corrupted = 0;
    for _ in 0..300 {
        let damages: Vec<&Action> = lockstep
            .environment()
            .iter()
            .filter(|a| matches!(a, Action::CorruptLog { .. }))
            .collect();
        let damage = *damages[next() % damages.len()];
        let Action::CorruptLog { replica, .. } = damage else {
            unreachable!("filtered above")
        };
        let mut choices: Vec<usize> = (0..next() % 3).map(|_| next()).collect();
        for action in [
            Action::ClientCommit { db: 0 },
            Action::ClientCommit { db: 0 },
            Action::Crash { replica },
            damage,
            Action::Restart { replica },
        ] {
            choices.push(position(&action));
        }
        choices.extend((0..next() % 5).map(|_| next()));
        match lockstep.run(choices, &mut ReferenceSim::new()) {
            Ok(performed) => {
                corrupted += performed
                    .iter()
                    .filter(|a| matches!(a, Action::CorruptLog { .. }))
                    .count()
            }
            Err(d) => panic!("{d}"),
        }
    }
    assert!(
        corrupted > 100,
        "only {corrupted} damaged records in 300 runs"
    );
}
