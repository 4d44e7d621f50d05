//! Scenario tests of the spec: each drives the model through the steps a rule talks about and
//! asserts what the rule says, with the exact guards and effects. Replicas of the default
//! configuration: A (0, sync, automatic, initial primary), B (1, sync, automatic), C (2, async,
//! manual); one database.

use hadr_model::{Action, AgModel, ModelConfig, Node, State};
use hadr_types::{CommitOutcome, DefiniteReason, Role, SuspendReason, SyncState};

const A: u8 = 0;
const B: u8 = 1;
const C: u8 = 2;
const DB: u8 = 0;

struct Scenario {
    model: AgModel,
    state: State,
}

impl Scenario {
    fn new(config: ModelConfig) -> Self {
        let model = AgModel::new(config);
        let state = model.initial_state();
        Scenario { model, state }
    }

    fn default() -> Self {
        Scenario::new(ModelConfig::default())
    }

    /// A configuration with larger budgets, so a scenario can combine several faults.
    fn generous() -> Self {
        let mut config = ModelConfig::default();
        config.bounds.transactions = 4;
        config.bounds.crashes = 2;
        config.bounds.network_faults = 3;
        config.bounds.events = 8;
        Scenario::new(config)
    }

    fn can(&self, action: Action) -> bool {
        self.model.enabled(&self.state, &action)
    }

    #[track_caller]
    fn step(&mut self, action: Action) -> &mut Self {
        assert!(
            self.can(action),
            "{action:?} is not enabled in {}",
            hadr_model::render::state_line(&self.model, &self.state)
        );
        self.state = self.model.apply(&self.state, &action);
        self
    }

    #[track_caller]
    fn steps(&mut self, actions: &[Action]) -> &mut Self {
        for &a in actions {
            self.step(a);
        }
        self
    }

    fn outcome(&self, txn: u8) -> CommitOutcome {
        self.state.txns[usize::from(txn) - 1].outcome
    }

    fn sync_state(&self, replica: u8) -> Option<SyncState> {
        self.model.sync_state(&self.state, replica, DB)
    }

    fn log_of(&self, replica: u8) -> Vec<u8> {
        self.state
            .db(replica, DB)
            .log
            .iter()
            .map(|r| r.txn)
            .collect()
    }

    /// B connected and recorded SYNCHRONIZED, with an empty log.
    fn b_synchronized(&mut self) -> &mut Self {
        self.steps(&[
            Action::Connect { replica: B },
            Action::MarkSynchronized { replica: B, db: DB },
        ])
    }
}

fn ship_and_harden(to: u8) -> [Action; 2] {
    [
        Action::ShipLog { to, db: DB },
        Action::HardenLog {
            replica: to,
            db: DB,
        },
    ]
}

/// R-COMMIT-2: a commit is acknowledged only once every SYNCHRONIZED participant hardened it;
/// receiving is not enough, redo is never awaited.
#[test]
fn r_commit_2_sync_commit_waits_for_the_participant_to_harden() {
    let mut s = Scenario::default();
    s.b_synchronized().step(Action::ClientCommit { db: DB });
    assert_eq!(s.outcome(1), CommitOutcome::Pending);
    assert!(
        !s.can(Action::AckCommit { txn: 1 }),
        "B has not received T1"
    );
    s.step(Action::ShipLog { to: B, db: DB });
    assert!(
        !s.can(Action::AckCommit { txn: 1 }),
        "B received T1 but has not hardened it"
    );
    s.step(Action::HardenLog { replica: B, db: DB });
    assert!(s.can(Action::AckCommit { txn: 1 }), "redo is never awaited");
    s.step(Action::AckCommit { txn: 1 });
    assert_eq!(s.outcome(1), CommitOutcome::Acknowledged);
}

/// R-COMMIT-3 and R-COMMIT-1: an asynchronous secondary is never waited for.
#[test]
fn r_commit_3_async_secondary_is_not_waited_for() {
    let mut s = Scenario::default();
    s.step(Action::Connect { replica: C })
        .step(Action::ClientCommit { db: DB });
    assert!(s.can(Action::AckCommit { txn: 1 }));
    s.steps(&ship_and_harden(C));
    assert!(
        !s.can(Action::MarkSynchronized { replica: C, db: DB }),
        "R-SYNC-4: an async secondary never becomes SYNCHRONIZED"
    );
    assert_eq!(s.sync_state(C), Some(SyncState::Synchronizing));
}

/// R-COMMIT-4: after SESSION_TIMEOUT the primary stops waiting, but only once it has recorded
/// in the manager that the secondary is no longer SYNCHRONIZED.
#[test]
fn r_commit_4_timed_out_secondary_stops_blocking_after_the_manager_knows() {
    let mut s = Scenario::generous();
    s.b_synchronized()
        .step(Action::ClientCommit { db: DB })
        .step(Action::Partition {
            a: Node::Replica(A),
            b: Node::Replica(B),
        });
    assert!(
        !s.can(Action::DropFromSynchronized { replica: B, db: DB }),
        "session still up"
    );
    s.step(Action::SessionTimeout { replica: B });
    assert!(
        !s.can(Action::AckCommit { txn: 1 }),
        "B is still recorded SYNCHRONIZED"
    );
    assert_eq!(s.sync_state(B), Some(SyncState::NotSynchronizing));

    // Cut off from the manager, the primary cannot record the change: the commit waits.
    s.step(Action::Partition {
        a: Node::Replica(A),
        b: Node::Manager,
    });
    assert!(!s.can(Action::DropFromSynchronized { replica: B, db: DB }));
    s.step(Action::Heal {
        a: Node::Replica(A),
        b: Node::Manager,
    })
    .step(Action::DropFromSynchronized { replica: B, db: DB })
    .step(Action::AckCommit { txn: 1 });
    assert_eq!(s.outcome(1), CommitOutcome::Acknowledged);
}

/// R-COMMIT-5: with fewer SYNCHRONIZED secondaries than k, a commit is refused with a definite
/// error and leaves no log record.
#[test]
fn r_commit_5_too_few_synchronized_secondaries_refuse_commits() {
    let mut s = Scenario::default();
    s.step(Action::SetRequiredSynchronized { k: 1 })
        .step(Action::ClientCommit { db: DB });
    assert_eq!(
        s.outcome(1),
        CommitOutcome::DefiniteError(DefiniteReason::TooFewSynchronized)
    );
    assert!(
        s.log_of(A).is_empty(),
        "R-COMMIT-7: a refused commit is in no log"
    );
    s.b_synchronized().step(Action::ClientCommit { db: DB });
    assert_eq!(s.outcome(2), CommitOutcome::Pending);
}

/// R-SYNC-1: a lost log block leaves a gap; the secondary refuses the next block and the
/// primary sends again from the secondary's end of log.
#[test]
fn r_sync_1_a_gap_is_refused_and_resent() {
    let mut s = Scenario::generous();
    s.step(Action::Connect { replica: C })
        .step(Action::LoseLogBlock { to: C, db: DB })
        .step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: C, db: DB });
    assert!(s.log_of(C).is_empty(), "T1's block was lost");
    s.step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: C, db: DB });
    assert!(
        s.log_of(C).is_empty(),
        "T2 does not start at C's end of log"
    );
    s.step(Action::ShipLog { to: C, db: DB })
        .step(Action::ShipLog { to: C, db: DB });
    assert_eq!(s.log_of(C), vec![1, 2]);
}

/// R-SYNC-1: a lost last block is noticed only when the next record leaves a gap (no
/// retransmission timer, as in the reference core): until then nothing is sent, and the
/// fault is spent (the next record arrives).
#[test]
fn r_sync_1_a_lost_last_block_waits_for_the_next_record() {
    let mut s = Scenario::generous();
    s.step(Action::Connect { replica: C })
        .step(Action::LoseLogBlock { to: C, db: DB })
        .step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: C, db: DB });
    assert!(!s.can(Action::ShipLog { to: C, db: DB }));
    assert!(s.log_of(C).is_empty());
    s.step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: C, db: DB })
        .step(Action::ShipLog { to: C, db: DB })
        .step(Action::ShipLog { to: C, db: DB });
    assert_eq!(s.log_of(C), vec![1, 2]);
}

/// R-SYNC-2: a crash loses what was received but not hardened; redo never passes hardening.
#[test]
fn r_sync_2_crash_loses_unhardened_log_and_redo_follows_hardening() {
    let mut s = Scenario::default();
    s.step(Action::Connect { replica: C })
        .step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: C, db: DB });
    assert!(
        !s.can(Action::RedoLog { replica: C, db: DB }),
        "nothing hardened yet"
    );
    s.step(Action::Crash { replica: C });
    assert!(s.log_of(C).is_empty());
    assert_eq!(s.state.replicas[usize::from(C)].role, Role::Resolving);
}

/// R-FAIL-2: automatic failover needs a SYNCHRONIZED SYNC+AUTOMATIC target, a failed primary
/// (its lease gone), and quorum; it loses nothing.
#[test]
fn r_fail_2_automatic_failover_only_to_a_synchronized_target() {
    let mut s = Scenario::default();
    s.step(Action::Connect { replica: B })
        .step(Action::ClientCommit { db: DB })
        .step(Action::AckCommit { txn: 1 })
        .step(Action::Crash { replica: A })
        .step(Action::ManagerLeaseExpiry);
    assert!(
        !s.can(Action::AutomaticFailover { target: B }),
        "B is not SYNCHRONIZED: it misses T1"
    );
    assert!(
        !s.can(Action::AutomaticFailover { target: C }),
        "C is async and manual"
    );

    let mut s = Scenario::default();
    s.b_synchronized()
        .step(Action::ClientCommit { db: DB })
        .steps(&ship_and_harden(B))
        .step(Action::AckCommit { txn: 1 })
        .step(Action::Crash { replica: A });
    assert!(
        !s.can(Action::AutomaticFailover { target: B }),
        "the manager still holds A's lease"
    );
    s.step(Action::ManagerLeaseExpiry)
        .step(Action::AutomaticFailover { target: B });
    assert_eq!(s.state.manager.primary, B);
    assert_eq!(s.log_of(B), vec![1], "nothing acknowledged is lost");
    assert!(s.state.txns[0].lost_in.is_none());
}

/// R-FAIL-3: a planned failover needs a SYNCHRONIZED target; the old primary becomes its
/// secondary and reverts what the target never received.
#[test]
fn r_fail_3_planned_failover_needs_a_synchronized_target() {
    let mut s = Scenario::default();
    s.step(Action::Connect { replica: B });
    assert!(!s.can(Action::PlannedFailover { target: B }));
    s.step(Action::MarkSynchronized { replica: B, db: DB })
        .step(Action::ClientCommit { db: DB })
        .step(Action::PlannedFailover { target: B });
    assert_eq!(
        s.outcome(1),
        CommitOutcome::Indefinite,
        "clients are disconnected"
    );
    assert_eq!(s.state.replicas[usize::from(A)].role, Role::Secondary);
    s.step(Action::Connect { replica: A });
    assert_eq!(s.sync_state(A), Some(SyncState::Reverting));
    s.step(Action::Revert { replica: A, db: DB });
    assert!(s.log_of(A).is_empty(), "T1 was never on B: A undoes it");
}

/// R-FAIL-4 and H3: after a lossy forced failover the former primary comes back suspended
/// (SUSPEND_FROM_PARTNER) and keeps its extra log until an operator resumes it; resuming
/// reverts to the fork point.
#[test]
fn r_fail_4_forced_failover_suspends_partners_until_resumed() {
    let mut s = Scenario::default();
    s.step(Action::ClientCommit { db: DB })
        .step(Action::AckCommit { txn: 1 })
        .step(Action::ForcedFailover { target: B });
    assert_eq!(s.state.txns[0].lost_in, Some(0), "T1 was only on A");
    assert_eq!(s.state.replicas[usize::from(A)].role, Role::Resolving);
    s.step(Action::ResolveToSecondary { replica: A })
        .step(Action::Connect { replica: A });
    assert_eq!(
        s.model.suspend_reason(&s.state, A, DB),
        Some(SuspendReason::Partner)
    );
    assert!(
        !s.can(Action::ShipLog { to: A, db: DB }),
        "no data movement"
    );
    assert_eq!(s.log_of(A), vec![1], "A keeps T1 for the operator");
    s.step(Action::Resume { replica: A, db: DB });
    assert_eq!(s.sync_state(A), Some(SyncState::Reverting));
    s.step(Action::Revert { replica: A, db: DB });
    assert!(s.log_of(A).is_empty());
}

/// R-FAIL-4: a forced failover needs quorum, and cannot take over while an unreachable primary
/// may still hold its lease.
#[test]
fn r_fail_4_forced_failover_needs_quorum_and_a_fenced_primary() {
    let mut s = Scenario::generous();
    s.step(Action::LoseQuorum);
    assert!(!s.can(Action::ForcedFailover { target: B }), "R-QUORUM-2");
    s.step(Action::RegainQuorum).step(Action::Partition {
        a: Node::Replica(A),
        b: Node::Manager,
    });
    assert!(
        !s.can(Action::ForcedFailover { target: B }),
        "A may still commit under its lease"
    );
    s.step(Action::LeaseExpiry { replica: A })
        .step(Action::ManagerLeaseExpiry)
        .step(Action::ForcedFailover { target: B });
    assert_eq!(s.state.manager.primary, B);
}

/// R-QUORUM-3: the manager sees the lease expire only after the primary stopped committing.
#[test]
fn r_quorum_3_the_primary_stops_before_the_manager_moves_on() {
    let mut s = Scenario::default();
    s.step(Action::Partition {
        a: Node::Replica(A),
        b: Node::Manager,
    });
    assert!(!s.can(Action::ManagerLeaseExpiry), "A still commits");
    s.step(Action::LeaseExpiry { replica: A });
    assert_eq!(s.state.replicas[usize::from(A)].role, Role::Resolving);
    assert!(s.can(Action::ManagerLeaseExpiry));
}

/// R-QUORUM-2: without quorum, secondaries go RESOLVING and nothing fails over.
#[test]
fn r_quorum_2_no_quorum_no_failover() {
    let mut s = Scenario::default();
    s.b_synchronized().step(Action::LoseQuorum);
    s.step(Action::LoseManager { replica: B });
    assert_eq!(s.sync_state(B), Some(SyncState::NotSynchronizing));
    s.step(Action::LeaseExpiry { replica: A });
    assert!(!s.can(Action::ManagerLeaseExpiry));
    assert!(!s.can(Action::AutomaticFailover { target: B }));
    s.step(Action::RegainQuorum)
        .step(Action::ManagerLeaseExpiry)
        .step(Action::AutomaticFailover { target: B });
    assert_eq!(s.state.manager.primary, B);
}

/// R-SYNC-7: suspending the primary database stops data movement to every secondary, which
/// show SUSPEND_FROM_PRIMARY; resuming it restarts them.
#[test]
fn r_sync_7_suspending_the_primary_stops_every_secondary() {
    let mut s = Scenario::default();
    s.step(Action::Connect { replica: C })
        .step(Action::ClientCommit { db: DB })
        .step(Action::Suspend { replica: A, db: DB });
    assert_eq!(
        s.model.suspend_reason(&s.state, C, DB),
        Some(SuspendReason::Primary)
    );
    assert!(!s.can(Action::ShipLog { to: C, db: DB }));
    s.step(Action::Resume { replica: A, db: DB })
        .step(Action::ShipLog { to: C, db: DB });
    assert_eq!(s.log_of(C), vec![1]);
}

/// R-HEALTH-2: the observation mirrors the dm_hadr views.
#[test]
fn observation_mirrors_the_views() {
    let mut s = Scenario::default();
    s.b_synchronized()
        .step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: B, db: DB });
    let obs = s.model.observe(&s.state);
    let a = &obs.replicas[0];
    assert_eq!(a.role, Some(Role::Primary));
    assert_eq!(a.databases[0].synchronization_state, None);
    let b = &obs.replicas[1].databases[0];
    assert_eq!(b.synchronization_state, Some(SyncState::Synchronized));
    assert_eq!(
        (
            b.end_of_log_lsn.0,
            b.last_hardened_lsn.0,
            b.last_redone_lsn.0
        ),
        (1, 0, 0)
    );
    assert!(b.is_failover_ready);
    assert_eq!(obs.transactions[0].outcome, CommitOutcome::Pending);
}

/// The storage-faults configuration (the default group with one damaged log record allowed),
/// with room for four transactions.
fn storage_faults(mutant: Option<hadr_model::Mutant>) -> Scenario {
    let mut config = ModelConfig::from_toml_str(hadr_model::config::STORAGE_FAULTS_CONFIG_TOML)
        .expect("the embedded configuration is valid");
    config.bounds.transactions = 4;
    let model = match mutant {
        Some(m) => AgModel::with_mutant(config, m),
        None => AgModel::new(config),
    };
    let state = model.initial_state();
    Scenario { model, state }
}

/// T1 and T2 acknowledged with B SYNCHRONIZED; then B's server stops and the first record of
/// its log is damaged on its disk, with T2's record still valid after it.
fn damage_synchronized_b(s: &mut Scenario) {
    s.b_synchronized()
        .step(Action::ClientCommit { db: DB })
        .step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: B, db: DB })
        .steps(&ship_and_harden(B))
        .step(Action::AckCommit { txn: 1 })
        .step(Action::AckCommit { txn: 2 })
        .step(Action::Crash { replica: B });
    assert!(
        !s.can(Action::CorruptLog {
            replica: A,
            db: DB,
            lsn: 1
        }),
        "only the log of a server that is down is damaged"
    );
    s.step(Action::CorruptLog {
        replica: B,
        db: DB,
        lsn: 1,
    });
}

/// R-COMMIT-6: a copy whose log recovery finds damaged (a record failing its checksum with a
/// valid one after it) is SUSPECT: it keeps the log before the damage, is never SYNCHRONIZED and
/// never promoted, even while the manager still records it SYNCHRONIZED; it follows the primary
/// and its mark clears once it has hardened as far as it had.
#[test]
fn r_commit_6_a_damaged_log_is_suspect_and_never_promoted_until_brought_back() {
    let fail_a = [
        Action::Restart { replica: B },
        Action::ResolveToSecondary { replica: B },
        Action::Crash { replica: A },
        Action::ManagerLeaseExpiry,
    ];
    let mut torn_tail = storage_faults(Some(hadr_model::Mutant::CorruptLogAsTornTail));
    damage_synchronized_b(&mut torn_tail);
    torn_tail.steps(&fail_a);
    assert!(
        torn_tail.can(Action::AutomaticFailover { target: B }),
        "the planted bug: B comes back ONLINE, still recorded SYNCHRONIZED"
    );

    let mut s = storage_faults(None);
    damage_synchronized_b(&mut s);
    let b = s.state.db(B, DB);
    assert_eq!((b.suspect, b.log.len(), b.hardened), (Some(2), 0, 0));
    assert!(b.failover_ready, "the manager does not know yet");
    s.steps(&fail_a);
    assert!(
        !s.can(Action::AutomaticFailover { target: B }),
        "a SUSPECT replica lacking T1 and T2 must not be promoted"
    );
    assert!(!s.can(Action::ForcedFailover { target: B }));
    // A comes back on its intact log; B follows it and is brought back.
    s.step(Action::Restart { replica: A })
        .step(Action::RestorePrimary { replica: A })
        .step(Action::Connect { replica: B });
    assert_eq!(s.sync_state(B), Some(SyncState::Synchronizing));
    s.step(Action::ShipLog { to: B, db: DB })
        .steps(&ship_and_harden(B));
    let b = s.state.db(B, DB);
    assert_eq!((b.suspect, b.hardened), (None, 2));
    assert_eq!(s.log_of(B), vec![1, 2]);
    assert_eq!(s.sync_state(B), Some(SyncState::Synchronized));
}

/// R-COMMIT-6: the history owner's damaged copy stays RESOLVING (the manager does not bring
/// the group back online on it); a forced failover to another replica is the way out, and the
/// damaged copy then follows the new primary.
#[test]
fn r_commit_6_a_damaged_history_owner_waits_for_a_forced_failover() {
    let mut s = storage_faults(None);
    s.step(Action::ClientCommit { db: DB })
        .step(Action::ClientCommit { db: DB })
        .step(Action::Crash { replica: A })
        .step(Action::CorruptLog {
            replica: A,
            db: DB,
            lsn: 1,
        })
        .step(Action::Restart { replica: A })
        .step(Action::ManagerLeaseExpiry);
    assert!(!s.can(Action::RestorePrimary { replica: A }));
    assert!(
        !s.can(Action::AutomaticFailover { target: B }),
        "B is not SYNCHRONIZED"
    );
    assert!(!s.can(Action::ForcedFailover { target: A }));
    s.step(Action::ForcedFailover { target: B })
        .step(Action::ResolveToSecondary { replica: A })
        .step(Action::Connect { replica: A });
    assert_eq!(
        s.model.suspend_reason(&s.state, A, DB),
        Some(SuspendReason::Partner),
        "R-FAIL-4: the former primary missed a lossy forced failover"
    );
    s.step(Action::Resume { replica: A, db: DB });
    assert_eq!(s.state.db(A, DB).suspect, Some(2), "B's history is empty");
    s.step(Action::ClientCommit { db: DB })
        .step(Action::ClientCommit { db: DB })
        .step(Action::ShipLog { to: A, db: DB })
        .steps(&ship_and_harden(A));
    assert_eq!(s.log_of(A), vec![3, 4]);
    assert_eq!(s.state.db(A, DB).suspect, None, "hardened as far as it had");
}

/// R-COMMIT-6 under CLUSTER_TYPE NONE: a primary that restarts with a SUSPECT database comes
/// back as a SECONDARY, never in its persisted PRIMARY role; under the
/// `corrupt-log-as-torn-tail` mutant it comes back PRIMARY without the commit it acknowledged.
#[test]
fn r_commit_6_a_primary_with_a_damaged_log_restarts_as_secondary() {
    let text = include_str!("../configs/read-scale.toml")
        .replace("events = 3", "events = 3\nlog_corruptions = 1");
    let config = ModelConfig::from_toml_str(&text).unwrap();
    for mutant in [None, Some(hadr_model::Mutant::CorruptLogAsTornTail)] {
        let model = match mutant {
            Some(m) => AgModel::with_mutant(config.clone(), m),
            None => AgModel::new(config.clone()),
        };
        let mut s = Scenario {
            state: model.initial_state(),
            model,
        };
        s.step(Action::ClientCommit { db: DB })
            .step(Action::AckCommit { txn: 1 })
            .step(Action::ClientCommit { db: DB })
            .step(Action::Crash { replica: A })
            .step(Action::CorruptLog {
                replica: A,
                db: DB,
                lsn: 1,
            })
            .step(Action::Restart { replica: A });
        assert!(s.log_of(A).is_empty(), "T1's record failed its checksum");
        if mutant.is_none() {
            assert_eq!(s.state.replicas[usize::from(A)].role, Role::Secondary);
            assert_eq!(s.state.serving_primary(), None);
            assert!(s.can(Action::ForcedFailover { target: B }));
        } else {
            assert_eq!(s.state.serving_primary(), Some(A), "the planted bug");
            assert_eq!(s.outcome(1), CommitOutcome::Acknowledged);
        }
    }
}
