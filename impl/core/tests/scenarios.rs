//! Multi-replica scenarios on the deterministic in-memory cluster, one per rule; each reads
//! like the rule it checks.

use hadr_core::testing::{ag_config, Cluster};
use hadr_core::{
    AdminCommand, AdminError, AdminOutcome, ClientError, ClientOp, ClientReply, PromotionKind,
    RequestId,
};
use hadr_types::AvailabilityMode::{AsynchronousCommit as Async, SynchronousCommit as Sync};
use hadr_types::{
    ApplicationIntent, ClusterType, CommitOutcome, DatabaseId, DatabaseObservation, Lsn, ReplicaId,
    Role, SecondaryConnections, SuspendReason, SyncState, TxnId,
};

const R0: ReplicaId = ReplicaId(0);
const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const DB: DatabaseId = DatabaseId(0);

fn db(c: &Cluster, r: ReplicaId) -> DatabaseObservation {
    c.observation().replicas[usize::from(r.0)].databases[0].clone()
}

fn txns(c: &Cluster, r: ReplicaId) -> Vec<u32> {
    c.replica(r)
        .log(DB)
        .unwrap()
        .iter()
        .map(|x| x.txn.0)
        .collect()
}

fn state(c: &Cluster, r: ReplicaId) -> Option<SyncState> {
    db(c, r).synchronization_state
}

fn acknowledged(c: &Cluster, r: ReplicaId, request: RequestId) -> Lsn {
    match c.reply(r, request) {
        Some(ClientReply::Committed { lsn }) => *lsn,
        other => panic!("expected an acknowledged commit, got {other:?}"),
    }
}

fn became_primary(c: &Cluster, r: ReplicaId, request: RequestId) -> (hadr_core::Epoch, bool) {
    match c.admin_reply(r, request) {
        Some(Ok(AdminOutcome::BecamePrimary {
            epoch,
            data_loss_possible,
        })) => (*epoch, *data_loss_possible),
        other => panic!("expected a promotion, got {other:?}"),
    }
}

/// R-FAIL-4 (and hazards H1/H3): with k = 0 the primary keeps committing after a sync secondary
/// timed out; a forced failover to that secondary loses the acknowledged commit, suspends every
/// other database (and the former primary's when it returns) with SUSPEND_FROM_PARTNER, and
/// resuming them one by one reverts each to the fork point.
#[test]
fn r_fail_4_forced_failover_suspends_partners_and_resume_reverts() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert_eq!(acknowledged(&c, R0, t1), Lsn(1));

    c.partition(R0, R1);
    c.advance(10_000);
    assert_eq!(
        state(&c, R1),
        Some(SyncState::NotSynchronizing),
        "R-COMMIT-4: DISCONNECTED"
    );
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(
        acknowledged(&c, R0, t2),
        Lsn(2),
        "R2 alone was a participant"
    );
    assert_eq!(txns(&c, R2), vec![1, 2]);
    assert_eq!(
        txns(&c, R1),
        vec![1],
        "H1: the timed-out secondary misses T2"
    );

    c.crash(R0);
    c.heal(R0, R1);
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    let (epoch, lossy) = became_primary(&c, R1, force);
    assert!(lossy);
    assert_eq!(epoch.replica, R1);
    assert_eq!(db(&c, R2).suspended, Some(SuspendReason::Partner));
    assert_eq!(state(&c, R2), Some(SyncState::NotSynchronizing));
    assert_eq!(txns(&c, R2), vec![1, 2], "suspended: nothing reverted yet");

    let t3 = c.commit(R1, DB, 3, &[("k", "3")]);
    c.run();
    assert_eq!(
        acknowledged(&c, R1, t3),
        Lsn(2),
        "T2 is lost: T3 takes its LSN in the new fork"
    );

    c.restart(R0);
    assert_eq!(
        c.role(R0),
        Some(Role::Secondary),
        "R-FAIL-6: the former primary returns as a secondary"
    );
    assert_eq!(db(&c, R0).suspended, Some(SuspendReason::Partner));
    assert_eq!(txns(&c, R0), vec![1, 2]);

    // Resume R2: REVERTING (held at the storage step), then INITIALIZING, then synchronized.
    c.node_mut(R2).hold_storage = true;
    c.admin(R2, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(state(&c, R2), Some(SyncState::Reverting));
    c.node_mut(R2).hold_storage = false;
    c.run();
    assert_eq!(
        txns(&c, R2),
        vec![1, 3],
        "T2 discarded beyond the fork point"
    );
    assert_eq!(state(&c, R2), Some(SyncState::Synchronized));
    assert_eq!(
        db(&c, R0).suspended,
        Some(SuspendReason::Partner),
        "resumed one by one"
    );

    c.admin(R0, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(txns(&c, R0), vec![1, 3]);
    assert_eq!(state(&c, R0), Some(SyncState::Synchronized));
    assert!(
        c.node(R0).disk.logs[0].iter().all(|r| r.txn != TxnId(2)),
        "reverted on disk too"
    );
}

/// R-FAIL-6: after a failover that lost nothing acknowledged (automatic, by the manager), the
/// former primary returns with a record the new primary never had and reverts it on its own.
#[test]
fn r_fail_6_the_former_primary_reverts_automatically_after_an_automatic_failover() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    c.partition(R0, R1);
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(
        c.reply(R0, t2),
        None,
        "waits for the SYNCHRONIZED participant"
    );
    assert_eq!(
        c.node(R0).disk.durable[0],
        2,
        "hardened on the primary only"
    );
    c.crash(R0);

    assert_eq!(c.manager.published[&R0].failover_ready, vec![R1]);
    let promotion = c.promotion(PromotionKind::Automatic);
    c.manager_event(R1, promotion);
    c.run();
    assert_eq!(c.role(R1), Some(Role::Primary));

    c.heal(R0, R1);
    c.restart(R0);
    assert_eq!(c.role(R0), Some(Role::Secondary));
    assert_eq!(
        db(&c, R0).suspended,
        None,
        "not a forced failover: no suspension"
    );
    assert_eq!(txns(&c, R0), vec![1]);
    assert_eq!(state(&c, R0), Some(SyncState::Synchronized));
    let t3 = c.commit(R1, DB, 3, &[("k", "3")]);
    c.run();
    assert_eq!(acknowledged(&c, R1, t3), Lsn(2));
    assert_eq!(txns(&c, R0), vec![1, 3]);
}

/// A crashed secondary restarts from its disk (losing what it had not hardened), rejoins and
/// catches up (R-SYNC-6).
#[test]
fn crash_restart_a_secondary_rejoins_and_catches_up() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    c.node_mut(R1).hold_storage = true;
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(
        c.reply(R0, t2),
        None,
        "R1 received T2 but has not hardened it"
    );
    assert_eq!(txns(&c, R1), vec![1, 2]);

    c.crash(R1);
    c.run();
    assert_eq!(
        acknowledged(&c, R0, t2),
        Lsn(2),
        "R-COMMIT-4: the primary stops waiting"
    );
    let t3 = c.commit(R0, DB, 3, &[("k", "3")]);
    c.run();
    acknowledged(&c, R0, t3);
    assert_eq!(
        c.node(R1).disk.logs[0].len(),
        1,
        "T2 was never durable on R1"
    );

    c.restart(R1);
    assert_eq!(txns(&c, R1), vec![1, 2, 3]);
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
    assert_eq!(db(&c, R1).last_hardened_lsn, Lsn(3));
}

/// A restarted primary of CLUSTER_TYPE NONE comes back PRIMARY in its epoch and the secondaries
/// resume from their ends of log.
#[test]
fn crash_restart_of_the_whole_group_keeps_every_acknowledged_commit() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Async], 2));
    for txn in 1..=4 {
        let database = DatabaseId((txn % 2) as u8);
        let request = c.commit(R0, database, txn, &[("k", "v")]);
        c.run();
        assert!(matches!(
            c.reply(R0, request),
            Some(ClientReply::Committed { .. })
        ));
    }
    for r in [R0, R1, R2] {
        c.crash(r);
    }
    for r in [R2, R1, R0] {
        c.restart(r);
    }
    assert_eq!(c.role(R0), Some(Role::Primary));
    let t5 = c.commit(R0, DB, 5, &[("k", "5")]);
    c.run();
    assert_eq!(acknowledged(&c, R0, t5), Lsn(3));
    assert_eq!(txns(&c, R1), vec![2, 4, 5]);
    assert_eq!(txns(&c, R2), vec![2, 4, 5]);
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
    assert_eq!(
        state(&c, R2),
        Some(SyncState::Synchronizing),
        "R-SYNC-4: async is never SYNCHRONIZED"
    );
}

/// R-FAIL-3: a planned failover to a SYNCHRONIZED target loses nothing; a commit waiting on the
/// old primary gets an indefinite error (and in fact survives on the new primary).
#[test]
fn r_fail_3_planned_failover_completes_without_data_loss() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Async], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    c.node_mut(R0).hold_storage = true;
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(c.reply(R0, t2), None);

    let failover = c.admin(R1, AdminCommand::Failover);
    c.run();
    let (epoch, lossy) = became_primary(&c, R1, failover);
    assert!(!lossy);
    assert_eq!(epoch.replica, R1);
    assert_eq!(
        c.reply(R0, t2),
        Some(&ClientReply::Indefinite(
            hadr_core::IndefiniteCause::RoleChanged
        ))
    );
    assert!(
        c.node(R0)
            .manager_requests
            .contains(&hadr_core::ManagerRequest::HandOver { to: R1 }),
        "the old primary hands its lease over to the target: {:?}",
        c.node(R0).manager_requests
    );
    c.node_mut(R0).hold_storage = false;
    c.run();

    assert_eq!(c.role(R0), Some(Role::Secondary));
    assert_eq!(c.role(R2), Some(Role::Secondary));
    assert_eq!(c.replica(R2).primary(), Some(R1));
    assert_eq!(
        txns(&c, R1),
        vec![1, 2],
        "T2 survived: indefinite was the honest answer"
    );
    let t3 = c.commit(R1, DB, 3, &[("k", "3")]);
    c.run();
    assert_eq!(acknowledged(&c, R1, t3), Lsn(3));
    for r in [R0, R2] {
        assert_eq!(txns(&c, r), vec![1, 2, 3]);
        assert_eq!(db(&c, r).suspended, None);
    }
    assert_eq!(state(&c, R0), Some(SyncState::Synchronized));
    assert_eq!(state(&c, R2), Some(SyncState::Synchronizing));
    let begin = c.client(R0, DB, ClientOp::Begin { txn: TxnId(4) });
    c.run();
    assert!(matches!(
        c.reply(R0, begin),
        Some(ClientReply::Refused(ClientError::NotPrimary {
            primary: Some(R1),
            ..
        }))
    ));
    // A commit on a secondary names no open transaction: it may be the retry of a commit made
    // through the former primary, so the answer is not a definite "not committed".
    let commit = c.client(R0, DB, ClientOp::Commit { txn: TxnId(4) });
    c.run();
    assert_eq!(
        c.reply(R0, commit),
        Some(&ClientReply::Indefinite(
            hadr_core::IndefiniteCause::UnknownTransaction
        ))
    );
}

/// R-QUORUM-5: the documented planned failover of CLUSTER_TYPE NONE: k = 1, SET (ROLE =
/// SECONDARY) on the primary, FORCE on the synchronized target, RESUME on the former primary.
#[test]
fn r_quorum_5_the_documented_failover_of_cluster_type_none_loses_nothing() {
    let mut config = ag_config(ClusterType::None, &[Sync, Sync], 1);
    config.required_synchronized_secondaries_to_commit = 1;
    let mut c = Cluster::new(config);
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);

    let demote = c.admin(R0, AdminCommand::SetRoleSecondary);
    c.run();
    assert_eq!(c.admin_reply(R0, demote), Some(&Ok(AdminOutcome::Done)));
    assert_eq!(c.role(R0), Some(Role::Secondary));
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    became_primary(&c, R1, force);
    assert_eq!(db(&c, R0).suspended, Some(SuspendReason::Partner));

    let early = c.commit(R1, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(
        c.reply(R1, early).and_then(|r| r.commit_outcome()),
        Some(CommitOutcome::DefiniteError(
            hadr_types::DefiniteReason::TooFewSynchronized
        )),
        "k = 1 and the former primary is still suspended"
    );
    c.admin(R0, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(state(&c, R0), Some(SyncState::Synchronized));
    assert!(c
        .node(R0)
        .roles
        .iter()
        .all(|(role, _)| *role != Role::Resolving));
    let t3 = c.commit(R1, DB, 3, &[("k", "3")]);
    c.run();
    assert_eq!(acknowledged(&c, R1, t3), Lsn(2));
    assert_eq!(
        txns(&c, R0),
        vec![1, 3],
        "nothing to revert: T1 was on both"
    );
}

/// R-FAIL-4: FORCE_FAILOVER_ALLOW_DATA_LOSS on a SYNCHRONIZED target is a planned failover: no
/// new forced fork, no suspension.
#[test]
fn r_fail_4_force_on_a_synchronized_target_is_a_planned_failover() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    let (_, lossy) = became_primary(&c, R1, force);
    assert!(!lossy);
    for r in [R0, R2] {
        assert_eq!(db(&c, r).suspended, None);
        assert_eq!(state(&c, r), Some(SyncState::Synchronized));
    }
}

/// R-SYNC-7: suspending the primary database suspends its secondaries (SUSPEND_FROM_PRIMARY);
/// resuming it resumes only those, not a secondary its own operator suspended.
#[test]
fn r_sync_7_resuming_the_primary_resumes_only_the_secondaries_it_suspended() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    c.admin(R2, AdminCommand::SuspendDatabase(DB));
    c.run();
    c.admin(R0, AdminCommand::SuspendDatabase(DB));
    c.run();
    assert_eq!(db(&c, R1).suspended, Some(SuspendReason::Primary));
    assert_eq!(db(&c, R2).suspended, Some(SuspendReason::User));
    assert_eq!(db(&c, R0).suspended, Some(SuspendReason::User));

    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    assert_eq!(
        txns(&c, R1),
        Vec::<u32>::new(),
        "a suspended secondary receives nothing"
    );

    let refused = c.admin(R1, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(
        c.admin_reply(R1, refused),
        Some(&Err(AdminError::SuspendedFromPrimary { database: DB }))
    );
    c.admin(R0, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(db(&c, R1).suspended, None);
    assert_eq!(txns(&c, R1), vec![1]);
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
    assert_eq!(db(&c, R2).suspended, Some(SuspendReason::User));
    assert_eq!(txns(&c, R2), Vec::<u32>::new());

    c.admin(R2, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(txns(&c, R2), vec![1]);
    assert_eq!(state(&c, R2), Some(SyncState::Synchronized));
}

/// R-READ-2: a readable secondary serves only redone data.
#[test]
fn r_read_2_a_readable_secondary_serves_only_redone_data() {
    let mut config = ag_config(ClusterType::None, &[Sync, Sync], 1);
    config.replicas[1].secondary_role.allow_connections = SecondaryConnections::All;
    let mut c = Cluster::new(config);
    c.node_mut(R1).hold_redo = true;
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    assert_eq!(db(&c, R1).last_hardened_lsn, Lsn(1));
    assert_eq!(db(&c, R1).last_redone_lsn, Lsn(0));
    assert_eq!(
        c.read(R1, DB, ApplicationIntent::ReadOnly, "k"),
        ClientReply::Value(None)
    );
    c.node_mut(R1).hold_redo = false;
    c.run();
    assert_eq!(
        c.read(R1, DB, ApplicationIntent::ReadOnly, "k"),
        ClientReply::Value(Some("1".into()))
    );
    assert_eq!(
        c.read(R0, DB, ApplicationIntent::ReadWrite, "k"),
        ClientReply::Value(Some("1".into()))
    );
}

/// R-SYNC-1: a lost block shows as a gap at the next one; the secondary refuses it and the
/// primary resends from the secondary's end of log.
#[test]
fn r_sync_1_a_lost_block_is_detected_as_a_gap_and_resent() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.drop_next_log(R0, R1);
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert_eq!(c.reply(R0, t1), None);
    assert_eq!(txns(&c, R1), Vec::<u32>::new());
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(acknowledged(&c, R0, t1), Lsn(1));
    assert_eq!(acknowledged(&c, R0, t2), Lsn(2));
    assert_eq!(txns(&c, R1), vec![1, 2]);
}

/// R-ROLE-1: an old primary that was cut off meets the newer epoch and steps down; its waiting
/// commit gets an indefinite error.
#[test]
fn r_role_1_a_stale_primary_steps_down_when_it_meets_the_newer_epoch() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    c.partition(R0, R1);
    c.partition(R0, R2);
    c.advance(10_000);
    c.node_mut(R0).hold_storage = true;
    let pending = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    became_primary(&c, R1, force);
    c.heal(R0, R1);
    c.heal(R0, R2);
    c.run();
    assert_eq!(c.role(R0), Some(Role::Secondary));
    assert_eq!(
        c.reply(R0, pending),
        Some(&ClientReply::Indefinite(
            hadr_core::IndefiniteCause::RoleChanged
        ))
    );
    assert_eq!(db(&c, R0).suspended, Some(SuspendReason::Partner));
    c.node_mut(R0).hold_storage = false;
    c.admin(R0, AdminCommand::ResumeDatabase(DB));
    c.admin(R2, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(
        txns(&c, R0),
        Vec::<u32>::new(),
        "the unacknowledged T1 of the old fork is reverted"
    );
    assert_eq!(state(&c, R0), Some(SyncState::Synchronized));
}

/// R-HEALTH-2: the status serializes like the dm_hadr views.
#[test]
fn r_health_2_status_is_json_with_the_dm_hadr_columns() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    let json = serde_json::to_value(c.replica(R0).status().unwrap()).unwrap();
    let secondary = &json["databases"][0]["secondaries"][0];
    assert_eq!(json["role"], "PRIMARY");
    assert_eq!(json["synchronization_health"], "HEALTHY");
    assert_eq!(secondary["synchronization_state"], "SYNCHRONIZED");
    assert_eq!(secondary["is_commit_participant"], true);
    assert_eq!(secondary["last_hardened_lsn"], 1);
    assert_eq!(secondary["log_send_queue_size"], 0);
    let json = serde_json::to_value(c.replica(R1).status().unwrap()).unwrap();
    assert_eq!(
        json["databases"][0]["synchronization_state"],
        "SYNCHRONIZED"
    );
    assert_eq!(json["databases"][0]["end_of_log_lsn"], 1);
    assert_eq!(json["peers"][0]["connected_state"], "CONNECTED");
}

/// R-FAIL-3 / R-COMMIT-6: the primary granted a planned failover but its last, unacknowledged
/// block never reached the target; the target still takes over when the handshake times out
/// (every acknowledged commit is hardened on it), and the old primary reverts the rest on its
/// own when it rejoins (R-FAIL-6).
#[test]
fn r_fail_3_a_granted_failover_completes_even_if_unacknowledged_log_is_lost() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    acknowledged(&c, R0, t1);
    c.drop_next_log(R0, R1);
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(c.reply(R0, t2), None);
    let failover = c.admin(R1, AdminCommand::Failover);
    c.run();
    assert_eq!(
        c.admin_reply(R1, failover),
        None,
        "granted, waiting for T2's record"
    );
    assert_eq!(
        c.reply(R0, t2),
        Some(&ClientReply::Indefinite(
            hadr_core::IndefiniteCause::RoleChanged
        ))
    );
    c.advance(10_000);
    let (_, lossy) = became_primary(&c, R1, failover);
    assert!(!lossy, "nothing acknowledged was lost");
    assert_eq!(txns(&c, R1), vec![1]);
    assert_eq!(c.role(R0), Some(Role::Secondary));
    assert_eq!(txns(&c, R0), vec![1], "T2 reverted automatically");
    assert_eq!(db(&c, R0).suspended, None);
    assert_eq!(state(&c, R0), Some(SyncState::Synchronized));
}
