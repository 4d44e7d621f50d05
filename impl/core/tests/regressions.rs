//! One deterministic scenario per bug found (by the seeded walks of `soak.rs`, or in review),
//! named after what broke.

use hadr_core::testing::{ag_config, Cluster};
use hadr_core::{
    AdminCommand, AdminError, AdminOutcome, ClientError, ClientOp, ClientReply, ConnectionEvent,
    ConnectionId, CoreOptions, Epoch, FailoverRefusal, Hello, IgnoredReason, IndefiniteCause,
    InputSource, LogBlock, LogRecord, ManagerEvent, ManagerRequest, MessageBody, Output,
    PeerMessage, PersistentState, PromotionKind, RecoveryError, Replica, RequestId, TimerId,
};
use hadr_types::AvailabilityMode::SynchronousCommit as Sync;
use hadr_types::{
    ApplicationIntent, AvailabilityMode, ClusterType, CommitOutcome, DatabaseId, DefiniteReason,
    FailoverMode, Lsn, PrimaryConnections, ReplicaId, Role, SuspendReason, SyncState, TxnId,
};

const R0: ReplicaId = ReplicaId(0);
const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const DB: DatabaseId = DatabaseId(0);

fn txns(c: &Cluster, r: ReplicaId) -> Vec<u32> {
    c.replica(r)
        .log(DB)
        .unwrap()
        .iter()
        .map(|x| x.txn.0)
        .collect()
}

fn state(c: &Cluster, r: ReplicaId) -> Option<SyncState> {
    c.observation().replicas[usize::from(r.0)].databases[0].synchronization_state
}

fn suspended(c: &Cluster, r: ReplicaId) -> Option<SuspendReason> {
    c.observation().replicas[usize::from(r.0)].databases[0].suspended
}

fn committed(c: &Cluster, r: ReplicaId, request: RequestId) -> bool {
    matches!(c.reply(r, request), Some(ClientReply::Committed { .. }))
}

/// A CLUSTER_TYPE NONE primary restarted in its old epoch and wrote a new record at an LSN
/// where a secondary held a record it had shipped but never hardened: same (LSN, epoch), two
/// contents, and the fork point missed it. Now the restart opens a new generation.
#[test]
fn a_restarted_primary_of_cluster_type_none_does_not_reuse_its_epoch() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.node_mut(R0).hold_storage = true;
    let lost = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert_eq!(
        txns(&c, R1),
        vec![1],
        "shipped before the primary hardened it"
    );
    c.crash(R0);
    assert_eq!(c.reply(R0, lost), None);
    c.partition(R0, R1);
    c.restart(R0);
    let epoch = c.epoch(R0).unwrap();
    assert_eq!(epoch.generation, 1);
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert!(committed(&c, R0, t2));
    c.heal(R0, R1);
    c.run();
    assert_eq!(
        txns(&c, R1),
        vec![2],
        "T1 of the old generation is reverted"
    );
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
}

/// An fsync finished after the secondary re-sent its handshake but before the primary's
/// arrived; the secondary withheld its `Progress`, so the primary never learned it was caught
/// up and it never became SYNCHRONIZED.
#[test]
fn progress_is_reported_before_the_primarys_handshake_arrives() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.node_mut(R1).hold_storage = true;
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    c.disconnect(R0, R1);
    c.run();
    assert!(committed(&c, R0, t1), "R-COMMIT-4: no longer waited for");
    c.node_mut(R1).hold_storage = false;
    c.connect(R0, R1); // both handshakes are queued; R1's fsync completes before delivery
    c.run();
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
    let status = c.replica(R0).status().unwrap();
    assert_eq!(status.databases[0].secondaries[0].last_hardened_lsn, Lsn(1));
}

/// A revert finished after the secondary's handshake (which said it was reverting) but before
/// the primary's handshake arrived; the `Reverted` report was withheld and the primary waited
/// for it forever.
#[test]
fn a_revert_that_finishes_before_the_primarys_handshake_is_still_reported() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.node_mut(R0).hold_storage = true;
    c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    c.crash(R0);
    c.partition(R0, R1);
    c.restart(R0);
    let t2 = c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    assert!(committed(&c, R0, t2));
    c.node_mut(R1).hold_storage = true;
    c.heal(R0, R1);
    c.run();
    assert_eq!(
        state(&c, R1),
        Some(SyncState::Reverting),
        "the truncation is held"
    );
    c.disconnect(R0, R1);
    c.node_mut(R1).hold_storage = false;
    c.connect(R0, R1);
    c.run();
    assert_eq!(txns(&c, R1), vec![2]);
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
}

/// A RESOLVING replica that had already adopted the newer epoch (from a secondary's
/// handshake) only changed its role when it met that epoch's primary, and re-announced
/// itself on epoch changes only: the primary never set it up.
#[test]
fn a_role_change_without_an_epoch_change_is_announced() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    c.partition(R0, R1);
    c.partition(R0, R2);
    c.advance(10_000);
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(matches!(
        c.admin_reply(R1, force),
        Some(Ok(AdminOutcome::BecamePrimary { .. }))
    ));
    c.heal(R0, R2); // R0 meets a secondary of the newer epoch first
    c.run();
    assert_eq!(c.role(R0), Some(Role::Resolving));
    assert_eq!(c.epoch(R0), c.epoch(R1));
    c.heal(R0, R1);
    c.run();
    assert_eq!(c.role(R0), Some(Role::Secondary));
    assert_eq!(
        suspended(&c, R0),
        Some(SuspendReason::Partner),
        "the primary set it up"
    );
}

/// Pings stopped while RESOLVING, so peers timed the replica out and the connections flapped
/// (and the shell's reconnects missed the handshake of a later primary).
#[test]
fn a_resolving_replica_keeps_pinging() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.manager.renew_leases = false;
    c.auto_reconnect = false; // a dropped connection stays dropped: flapping shows
    c.advance(10_000); // the lease granted at creation runs out
    assert_eq!(c.role(R0), Some(Role::Resolving));
    c.advance(60_000);
    let status = c.replica(R1).status().unwrap();
    assert_eq!(
        format!("{:?}", status.peers[0].connected_state),
        "Connected",
        "no session timeout against a RESOLVING peer that pings"
    );
}

/// A replica promoted while a revert was still on disk wrote records, stepped down, and was
/// still marked as reverting (for a primary that no longer waited), with a log that had grown.
#[test]
fn a_replica_promoted_during_a_revert_keeps_storage_consistent() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.node_mut(R0).hold_storage = true;
    c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    c.crash(R0);
    c.partition(R0, R1);
    c.restart(R0);
    c.commit(R0, DB, 2, &[("k", "2")]);
    c.run();
    c.node_mut(R1).hold_storage = true;
    c.heal(R0, R1);
    c.run();
    assert_eq!(state(&c, R1), Some(SyncState::Reverting));
    c.partition(R0, R1);
    c.advance(10_000);
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(matches!(
        c.admin_reply(R1, force),
        Some(Ok(AdminOutcome::BecamePrimary { .. }))
    ));
    c.node_mut(R1).hold_storage = false;
    let t3 = c.commit(R1, DB, 3, &[("k", "3")]);
    c.run();
    assert!(committed(&c, R1, t3));
    assert_eq!(txns(&c, R1), vec![3]);
    let disk: Vec<u32> = c.node(R1).disk.logs[0].iter().map(|r| r.txn.0).collect();
    assert_eq!(disk, vec![3], "the shell truncated first, then appended");
}

/// A database suspended by one forced failover, then followed to the primary of a later forced
/// failover, needed two RESUMEs: the first accepted only the older fork.
#[test]
fn one_resume_accepts_the_current_primarys_history_after_several_forced_failovers() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    c.crash(R0);
    c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert_eq!(suspended(&c, R2), Some(SuspendReason::Partner));
    c.crash(R1);
    c.restart(R0); // meets R2, a secondary of the newer epoch: steps down
    assert_eq!(c.role(R0), Some(Role::Resolving));
    let force = c.admin(R0, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(matches!(
        c.admin_reply(R0, force),
        Some(Ok(AdminOutcome::BecamePrimary { .. }))
    ));
    assert_eq!(c.replica(R2).primary(), Some(R0));
    assert_eq!(suspended(&c, R2), Some(SuspendReason::Partner));
    c.admin(R2, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(suspended(&c, R2), None);
    assert_eq!(state(&c, R2), Some(SyncState::Synchronized));
}

/// R-COMMIT-4 with a manager, at promotion: the manager may still hold the previous primary's
/// publication, so a new primary waits for every synchronous replica until its own first
/// publication is confirmed.
#[test]
fn a_new_primary_waits_for_its_first_publication_before_acknowledging_without_a_replica() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Sync], 1));
    c.manager.confirm_publications = false;
    let failover = c.admin(R1, AdminCommand::Failover);
    c.run();
    assert!(matches!(
        c.admin_reply(R1, failover),
        Some(Ok(AdminOutcome::BecamePrimary { .. }))
    ));
    c.crash(R0);
    c.crash(R2);
    let t1 = c.commit(R1, DB, 1, &[("k", "1")]);
    c.run();
    assert_eq!(
        c.reply(R1, t1),
        None,
        "the manager may still believe R0 and R2 failover-ready"
    );
    assert!(matches!(
        c.node(R1).manager_requests.last(),
        Some(ManagerRequest::PublishSyncState(p)) if p.failover_ready.is_empty()
    ));
    c.confirm_publication(R1);
    c.run();
    assert!(committed(&c, R1, t1));
}

// ---------------------------------------------------------------------------------------------
// Found in review.
// ---------------------------------------------------------------------------------------------

fn last_pending_publication(c: &Cluster, r: ReplicaId) -> (Epoch, u64) {
    *c.pending_publications(r)
        .last()
        .expect("a publication in flight")
}

/// R-COMMIT-4/6, R-FAIL-5: a commit waited only for the replicas of the last *confirmed*
/// publication. R1 became SYNCHRONIZED ({R1} published, unconfirmed), a commit waited for it,
/// R1 dropped ({} published): the commit was acknowledged, yet the manager could still store
/// {R1} and promote R1, which lacks the commit. Now it waits for every publication in flight.
#[test]
fn a_commit_waits_for_the_replicas_of_publications_still_in_flight() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.manager.confirm_publications = false;
    c.disconnect(R0, R1);
    c.run();
    c.confirm_publication(R0); // the manager holds {}
    c.run();
    c.connect(R0, R1);
    c.run();
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
    let with_r1 = last_pending_publication(&c, R0);
    c.node_mut(R1).hold_storage = true;
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert_eq!(c.reply(R0, t1), None, "R1 is a commit participant");
    c.disconnect(R0, R1);
    c.run();
    let without_r1 = last_pending_publication(&c, R0);
    assert!(without_r1 > with_r1);
    assert_eq!(
        c.reply(R0, t1),
        None,
        "the manager may still store the publication that lists R1"
    );
    assert!(c.store_publication(R0, with_r1.0, with_r1.1));
    c.run();
    assert_eq!(c.failover_ready(), vec![R1], "R1 is a failover candidate");
    assert_eq!(c.reply(R0, t1), None, "so T1 must not be acknowledged yet");
    assert!(c.store_publication(R0, without_r1.0, without_r1.1));
    c.run();
    assert!(committed(&c, R0, t1));
}

/// R-FAIL-3: a promotion whose lease had already run out was ignored before the waiting
/// failover was taken: the FAILOVER never got an answer and every later failover was refused
/// with FailoverInProgress.
#[test]
fn a_promotion_with_an_expired_lease_answers_the_failover_and_frees_the_replica() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.manager.grant_promotions = false;
    let failover = c.admin(R1, AdminCommand::Failover);
    c.run();
    assert_eq!(c.admin_reply(R1, failover), None, "waiting for the manager");
    let now = c.now_ms();
    c.manager_event(
        R1,
        ManagerEvent::Promote {
            kind: PromotionKind::Planned,
            lease_until_ms: now,
            term_at_least: 0,
            required_synchronized: None,
        },
    );
    c.run();
    assert_eq!(
        c.admin_reply(R1, failover),
        Some(&Err(AdminError::PromotionLeaseExpired {
            lease_until_ms: now,
            now_ms: now
        }))
    );
    assert_ne!(c.role(R1), Some(Role::Primary));
    assert!(c.node(R1).ignored.contains(&(
        InputSource::Manager,
        IgnoredReason::PromotionLeaseExpired {
            lease_until_ms: now,
            now_ms: now
        }
    )));
    c.manager.grant_promotions = true;
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(
        matches!(
            c.admin_reply(R1, force),
            Some(Ok(AdminOutcome::BecamePrimary { .. }))
        ),
        "not refused with FailoverInProgress: {:?}",
        c.admin_reply(R1, force)
    );
}

/// A promotion request the manager never answers held the failover command unanswered, and
/// blocked every later one, forever.
#[test]
fn a_promotion_the_manager_never_answers_times_out() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.manager.grant_promotions = false;
    let failover = c.admin(R1, AdminCommand::Failover);
    c.run();
    c.advance(CoreOptions::default().promotion_timeout_ms - 1);
    assert_eq!(c.admin_reply(R1, failover), None);
    c.advance(1);
    assert_eq!(
        c.admin_reply(R1, failover),
        Some(&Err(AdminError::PromotionUnanswered {
            waited_ms: CoreOptions::default().promotion_timeout_ms
        }))
    );
    c.manager.grant_promotions = true;
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(matches!(
        c.admin_reply(R1, force),
        Some(Ok(AdminOutcome::BecamePrimary { .. }))
    ));
}

/// R-FAIL-2: the published automatic-failover candidates included MANUAL replicas.
#[test]
fn failover_ready_lists_only_automatic_failover_partners() {
    let mut config = ag_config(ClusterType::External, &[Sync, Sync, Sync], 1);
    config.replicas[2].failover_mode = FailoverMode::Manual;
    let c = Cluster::new(config);
    let published = &c.manager.published[&R0];
    assert_eq!(published.synchronized, vec![vec![R1, R2]]);
    assert_eq!(published.failover_ready, vec![R1]);
}

/// R-FAIL-2: a MANUAL primary published failover candidates although the rule needs both the
/// primary and the target SYNC + AUTOMATIC.
#[test]
fn a_manual_primary_publishes_no_automatic_failover_candidates() {
    let mut config = ag_config(ClusterType::External, &[Sync, Sync, Sync], 1);
    config.replicas[0].failover_mode = FailoverMode::Manual;
    let c = Cluster::new(config);
    let published = &c.manager.published[&R0];
    assert_eq!(published.synchronized, vec![vec![R1, R2]]);
    assert!(published.failover_ready.is_empty());
}

/// R-COMMIT-7: Begin accepted a transaction id whose commit was already on record.
#[test]
fn a_transaction_id_is_never_reused_on_a_database() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert!(committed(&c, R0, t1));
    let again = c.client(R0, DB, ClientOp::Begin { txn: TxnId(1) });
    c.run();
    assert_eq!(
        c.reply(R0, again),
        Some(&ClientReply::Refused(ClientError::TransactionIdReused {
            database: DB,
            txn: TxnId(1)
        }))
    );
    let retry = c.client(R0, DB, ClientOp::Commit { txn: TxnId(1) });
    c.run();
    assert_eq!(
        c.reply(R0, retry),
        c.reply(R0, t1),
        "a retried commit gets the answer on record"
    );
}

/// R-COMMIT-7 on a new primary: an id whose record came in the log (no outcome on record
/// here) is refused. The check looks the id up in an index of the log kept by every append and
/// truncation, not in a scan of the log on each Begin (which cost a primary ~6 % of its CPU at
/// one client, and grew with the log).
#[test]
fn a_transaction_id_in_the_log_of_a_new_primary_is_not_reused() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Sync], 1));
    for txn in 1..=3 {
        let t = c.commit(R0, DB, txn, &[("k", "v")]);
        c.run();
        assert!(committed(&c, R0, t));
    }
    let failover = c.admin(R1, AdminCommand::Failover);
    c.run();
    assert!(
        matches!(
            c.admin_reply(R1, failover),
            Some(Ok(AdminOutcome::BecamePrimary { .. }))
        ),
        "planned failover to R1: {:?}",
        c.admin_reply(R1, failover)
    );
    for txn in 1..=3 {
        let again = c.client(R1, DB, ClientOp::Begin { txn: TxnId(txn) });
        c.run();
        assert_eq!(
            c.reply(R1, again),
            Some(&ClientReply::Refused(ClientError::TransactionIdReused {
                database: DB,
                txn: TxnId(txn)
            })),
            "txn {txn}"
        );
    }
    let fresh = c.client(R1, DB, ClientOp::Begin { txn: TxnId(4) });
    c.run();
    assert_eq!(c.reply(R1, fresh), Some(&ClientReply::Begun));
}

/// Outcomes were keyed by transaction id alone: the same id on two databases overwrote one.
#[test]
fn outcomes_of_the_same_transaction_id_on_two_databases_are_both_kept() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 2));
    let first = c.commit(R0, DB, 1, &[("k", "1")]);
    let second = c.commit(R0, DatabaseId(1), 1, &[("k", "1")]);
    c.run();
    assert!(committed(&c, R0, first) && committed(&c, R0, second));
    let kept: Vec<(DatabaseId, TxnId, CommitOutcome)> = c
        .replica(R0)
        .transactions()
        .into_iter()
        .map(|t| (t.database, t.txn, t.outcome))
        .collect();
    assert_eq!(
        kept,
        vec![
            (DB, TxnId(1), CommitOutcome::Acknowledged),
            (DatabaseId(1), TxnId(1), CommitOutcome::Acknowledged)
        ]
    );
}

/// R-COMMIT-7: a commit retried after an indefinite reply was refused with UnknownTransaction,
/// a definite "nothing was committed", although the commit had survived on the new primary.
#[test]
fn a_commit_retried_after_an_indefinite_reply_is_never_told_it_did_not_commit() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.node_mut(R1).hold_storage = true;
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert_eq!(c.reply(R0, t1), None, "waiting for R1 to harden");
    c.admin(R0, AdminCommand::SetRoleSecondary);
    c.run();
    assert_eq!(
        c.reply(R0, t1),
        Some(&ClientReply::Indefinite(IndefiniteCause::RoleChanged))
    );
    c.node_mut(R1).hold_storage = false;
    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(matches!(
        c.admin_reply(R1, force),
        Some(Ok(AdminOutcome::BecamePrimary { .. }))
    ));
    assert_eq!(txns(&c, R1), vec![1], "T1 survived on the new primary");
    let retry = c.client(R1, DB, ClientOp::Commit { txn: TxnId(1) });
    c.run();
    let reply = c.reply(R1, retry).cloned();
    assert_eq!(
        reply,
        Some(ClientReply::Indefinite(IndefiniteCause::UnknownTransaction))
    );
    assert_ne!(
        reply.and_then(|r| r.commit_outcome()),
        Some(CommitOutcome::DefiniteError(DefiniteReason::NoPrimary))
    );
    let on_old = c.client(R0, DB, ClientOp::Commit { txn: TxnId(1) });
    c.run();
    assert_eq!(
        c.reply(R0, on_old),
        Some(&ClientReply::Indefinite(IndefiniteCause::RoleChanged)),
        "the former primary repeats what it told"
    );
}

fn recover(state: PersistentState, logs: Vec<Vec<LogRecord>>) -> Result<(), RecoveryError> {
    Replica::recover(0, "R1", state, logs, CoreOptions::default()).map(|_| ())
}

fn stored_state(c: &Cluster, r: ReplicaId) -> (PersistentState, Vec<Vec<LogRecord>>) {
    let node = c.node(r);
    (node.disk.state.clone().unwrap(), node.disk.logs.clone())
}

/// Recovery trusted a PRIMARY state whose epoch another replica started: it panicked in debug
/// builds (invariant check) and came back primary of a foreign epoch in release builds.
#[test]
fn recovery_refuses_a_primary_state_of_another_replicas_epoch() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    let (mut state, logs) = stored_state(&c, R1);
    assert_eq!(state.epoch.replica, R0);
    state.role = Role::Primary;
    assert_eq!(
        recover(state, logs),
        Err(RecoveryError::PrimaryOfAnotherEpoch {
            epoch: c.epoch(R0).unwrap(),
            replica: R1
        })
    );
}

/// Recovery trusted a database that accepted a newer epoch than the replica's own.
#[test]
fn recovery_refuses_an_accepted_epoch_newer_than_the_replicas() {
    let c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let (mut state, logs) = stored_state(&c, R1);
    let newer = Epoch {
        term: state.epoch.term + 1,
        ..state.epoch
    };
    state.databases[0].accepted_epoch = newer;
    assert_eq!(
        recover(state.clone(), logs.clone()),
        Err(RecoveryError::AcceptedEpochAhead {
            database: DB,
            accepted: newer,
            epoch: state.epoch
        })
    );
    let mut primary = state;
    primary.role = Role::Primary;
    primary.epoch = Epoch::NONE;
    primary.databases[0].accepted_epoch = Epoch::NONE;
    assert_eq!(
        recover(primary, logs),
        Err(RecoveryError::PrimaryWithoutEpoch)
    );
}

/// R-QUORUM-3: time is a monotonic count; an input whose clock stepped back was processed in
/// the past, so a promotion whose lease had already ended was taken.
#[test]
fn a_clock_that_steps_back_does_not_revive_an_expired_lease() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.crash(R0);
    let replica = c.replica_mut(R1);
    replica.handle_timer(20_000, TimerId::Heartbeat);
    replica.handle_manager(
        12_000, // the clock stepped back 8 s
        ManagerEvent::Promote {
            kind: PromotionKind::Automatic,
            lease_until_ms: 15_000,
            term_at_least: 0,
            required_synchronized: None,
        },
    );
    assert_ne!(replica.role(), Some(Role::Primary));
    assert!(replica.drain_outputs().contains(&Output::Ignored {
        source: InputSource::Manager,
        reason: IgnoredReason::PromotionLeaseExpired {
            lease_until_ms: 15_000,
            now_ms: 20_000
        }
    }));
}

/// R-READ-1: a read-intent connection could begin, write and commit on a primary (and on a
/// READ_WRITE primary, which refuses read-intent connections altogether).
#[test]
fn a_read_intent_connection_never_writes() {
    let mut config = ag_config(ClusterType::None, &[Sync, Sync], 1);
    config.replicas[1].primary_role.allow_connections = PrimaryConnections::ReadWrite;
    let mut c = Cluster::new(config);
    let txn = TxnId(1);
    let read_only = ApplicationIntent::ReadOnly;
    let begin = c.client_with_intent(R0, DB, read_only, ClientOp::Begin { txn });
    c.run();
    assert_eq!(
        c.reply(R0, begin),
        Some(&ClientReply::Refused(ClientError::ReadOnlyIntent))
    );
    c.client(R0, DB, ClientOp::Begin { txn });
    let commit = c.client_with_intent(R0, DB, read_only, ClientOp::Commit { txn });
    c.run();
    assert_eq!(
        c.reply(R0, commit),
        Some(&ClientReply::Refused(ClientError::ReadOnlyIntent))
    );
    assert!(c.replica(R0).log(DB).unwrap().is_empty(), "nothing written");
    // R1's PRIMARY_ROLE allows READ_WRITE connections only.
    c.admin(R0, AdminCommand::SetRoleSecondary);
    c.run();
    c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert_eq!(c.role(R1), Some(Role::Primary));
    let begin = c.client_with_intent(R1, DB, read_only, ClientOp::Begin { txn: TxnId(2) });
    c.run();
    assert_eq!(
        c.reply(R1, begin),
        Some(&ClientReply::Refused(ClientError::ConnectionNotAllowed {
            role: Role::Primary,
            intent: read_only
        }))
    );
}

/// R-FAIL-6: a secondary that followed the primary of a new epoch kept its clients connected
/// and told the shell nothing about the new primary.
#[test]
fn a_secondary_that_follows_a_new_primary_disconnects_its_clients_and_names_it() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    assert_eq!(
        c.node(R2).primaries.last().map(|p| p.0),
        Some(Some(R0)),
        "the listener learns the first primary too"
    );
    let disconnects = c.node(R2).client_disconnects;
    c.admin(R0, AdminCommand::SetRoleSecondary);
    c.run();
    c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    let epoch = c.epoch(R1).unwrap();
    assert_eq!(c.replica(R2).primary(), Some(R1));
    assert!(c.node(R2).client_disconnects > disconnects);
    assert_eq!(c.node(R2).primaries.last(), Some(&(Some(R1), epoch)));
    assert_eq!(c.node(R1).primaries.last(), Some(&(Some(R1), epoch)));
}

/// R-READ-1/2: a read on the primary returned the redone data, so with redo behind it missed
/// the primary's own acknowledged commit. (A primary now redoes what it hardens at once; redo
/// still lags on a replica promoted with a redo outstanding, as here.)
#[test]
fn the_primary_reads_its_own_acknowledged_writes_whatever_redo_did() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.node_mut(R1).hold_redo = true;
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert!(committed(&c, R0, t1));
    // R1 takes over with the commit hardened and not redone (the documented failover of
    // CLUSTER_TYPE NONE: demote the primary, then force the SYNCHRONIZED secondary).
    c.admin(R0, AdminCommand::SetRoleSecondary);
    c.run();
    c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert_eq!(c.replica(R1).role(), Some(Role::Primary));
    assert_eq!(
        c.replica(R1).status().unwrap().databases[0].redo_queue_size,
        1
    );
    assert_eq!(
        c.read(R1, DB, ApplicationIntent::ReadWrite, "k"),
        ClientReply::Value(Some("1".into()))
    );
    // A commit still waiting is not visible yet: its outcome is not known.
    c.node_mut(R1).hold_storage = true;
    let t2 = c.commit(R1, DB, 2, &[("k", "2")]);
    c.run();
    assert_eq!(c.reply(R1, t2), None);
    assert_eq!(
        c.read(R1, DB, ApplicationIntent::ReadWrite, "k"),
        ClientReply::Value(Some("1".into()))
    );
}

/// A late `Closed` of a superseded socket closed the session that replaced it.
#[test]
fn a_late_close_of_a_superseded_connection_leaves_the_new_session_alone() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let old = c.connection(R0, R1).unwrap();
    let new = ConnectionId(1_000);
    let now = c.now_ms();
    let replica = c.replica_mut(R0);
    replica.handle_connection(
        now,
        ConnectionEvent::Opened {
            peer: R1,
            connection: new,
        },
    );
    replica.handle_connection(
        now,
        ConnectionEvent::Closed {
            peer: R1,
            connection: old,
        },
    );
    assert_eq!(replica.connection(R1), Some(new));
    let outputs = replica.drain_outputs();
    assert!(
        !outputs.iter().any(|o| matches!(o, Output::Ignored { .. })),
        "the replaced connection's close is expected: {outputs:?}"
    );
    replica.handle_connection(
        now,
        ConnectionEvent::Closed {
            peer: R1,
            connection: ConnectionId(7),
        },
    );
    assert_eq!(replica.connection(R1), Some(new));
    assert_eq!(
        replica.drain_outputs(),
        vec![Output::Ignored {
            source: InputSource::Connection(R1),
            reason: IgnoredReason::StaleConnection {
                peer: R1,
                connection: ConnectionId(7),
                current: Some(new)
            }
        }]
    );
}

/// A message read from a superseded socket was applied to the session that replaced it.
#[test]
fn a_message_from_a_superseded_connection_is_ignored() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let old = c.connection(R1, R0).unwrap();
    let epoch = c.epoch(R0).unwrap();
    let now = c.now_ms();
    let replica = c.replica_mut(R1);
    let new = ConnectionId(1_000);
    replica.handle_connection(
        now,
        ConnectionEvent::Opened {
            peer: R0,
            connection: new,
        },
    );
    replica.drain_outputs();
    let record = LogRecord {
        lsn: Lsn(1),
        epoch,
        txn: TxnId(1),
        writes: vec![],
    };
    let late = PeerMessage {
        epoch,
        body: MessageBody::Log(LogBlock {
            database: DB,
            first_lsn: Lsn(1),
            stable: Lsn(0),
            records: vec![record],
        }),
    };
    replica.handle_message(now, R0, old, late);
    assert!(replica.log(DB).unwrap().is_empty());
    assert_eq!(
        replica.drain_outputs(),
        vec![Output::Ignored {
            source: InputSource::Peer(R0),
            reason: IgnoredReason::StaleConnection {
                peer: R0,
                connection: old,
                current: Some(new)
            }
        }]
    );
}

/// R-FAIL-3: FailoverInProgress could never be returned (checked after "not primary", and a
/// primary that hands over is no longer primary): a second target was told "not primary".
#[test]
fn a_second_planned_failover_during_a_handover_is_told_a_failover_is_in_progress() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Sync], 1));
    c.manager.grant_promotions = false;
    let first = c.admin(R1, AdminCommand::Failover);
    let second = c.admin(R2, AdminCommand::Failover);
    c.run();
    assert_eq!(
        c.admin_reply(R1, first),
        None,
        "granted; waiting for the manager"
    );
    assert_eq!(
        c.admin_reply(R2, second),
        Some(&Err(AdminError::FailoverRefused {
            reason: FailoverRefusal::FailoverInProgress
        }))
    );
}

/// Ignore reasons named the wrong thing: a database-count mismatch as UnknownDatabase with an
/// invented id, a lease event on a non-primary as an unexpected manager event.
#[test]
fn ignore_reasons_name_what_was_wrong() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 2));
    let epoch = c.epoch(R0).unwrap();
    let now = c.now_ms();
    let connection = c.connection(R1, R0).unwrap();
    let replica = c.replica_mut(R1);
    let hello = Hello {
        ag_name: "ag1".into(),
        replica: R0,
        replica_name: "R0".into(),
        role: Role::Primary,
        last_forced_epoch: Epoch::NONE,
        required_synchronized: 0,
        databases: vec![],
    };
    replica.handle_message(
        now,
        R0,
        connection,
        PeerMessage {
            epoch,
            body: MessageBody::Hello(hello),
        },
    );
    replica.handle_manager(now, ManagerEvent::LeaseRenewed { lease_until_ms: 99 });
    let reasons: Vec<IgnoredReason> = replica
        .drain_outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::Ignored { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            IgnoredReason::DatabaseCountMismatch {
                expected: 2,
                found: 0
            },
            IgnoredReason::LeaseNotHeld {
                role: Role::Secondary
            }
        ]
    );
}

/// `recover` armed the heartbeat at an absolute `interval` ms, whatever the time of the restart.
#[test]
fn a_recovered_replica_arms_its_heartbeat_from_now() {
    let c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let (state, logs) = stored_state(&c, R1);
    let mut replica = Replica::recover(50_000, "R1", state, logs, CoreOptions::default()).unwrap();
    let heartbeat = replica.drain_outputs().into_iter().find_map(|o| match o {
        Output::SetTimer {
            timer: TimerId::Heartbeat,
            at_ms,
        } => Some(at_ms),
        _ => None,
    });
    assert_eq!(heartbeat, Some(50_000 + 10_000 / 4));
}

fn empty_database_hello() -> hadr_core::DatabaseHello {
    hadr_core::DatabaseHello {
        database: DB,
        end_of_log: Lsn(0),
        hardened: Lsn(0),
        redone: Lsn(0),
        forks: vec![],
        accepted_epoch: Epoch::NONE,
        suspended: None,
        reverting: false,
    }
}

/// A handshake announcing PRIMARY of an epoch another replica started was followed.
#[test]
fn a_primary_handshake_in_another_replicas_epoch_is_not_followed() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    let epoch = c.epoch(R0).unwrap();
    let newer = Epoch {
        term: epoch.term + 1,
        ..epoch // started by R0
    };
    let now = c.now_ms();
    let connection = c.connection(R1, R2).unwrap();
    let mut hello = Hello {
        ag_name: "ag1".into(),
        replica: R2,
        replica_name: "R2".into(),
        role: Role::Primary,
        last_forced_epoch: Epoch::NONE,
        required_synchronized: 0,
        databases: vec![empty_database_hello()],
    };
    let replica = c.replica_mut(R1);
    let message = PeerMessage {
        epoch: newer,
        body: MessageBody::Hello(hello.clone()),
    };
    replica.handle_message(now, R2, connection, message);
    assert_eq!(replica.primary(), Some(R0), "still follows R0");
    assert!(replica.drain_outputs().contains(&Output::Ignored {
        source: InputSource::Peer(R2),
        reason: IgnoredReason::PrimaryOfAnotherEpoch {
            peer: R2,
            epoch: newer,
            epoch_replica: R0
        }
    }));
    hello.role = Role::Secondary;
    let message = PeerMessage {
        epoch,
        body: MessageBody::Hello(hello),
    };
    replica.handle_message(now, R2, connection, message);
    assert_eq!(replica.primary(), Some(R0));
}

/// R-QUORUM-6: a handshake from a configuration-only replica's id was accepted (and could be
/// followed as primary), although it holds no data.
#[test]
fn a_handshake_from_a_configuration_only_replica_is_refused() {
    let mut config = ag_config(ClusterType::External, &[Sync, Sync], 1);
    let mut witness = config.replicas[1].clone();
    witness.name = "W".into();
    witness.availability_mode = AvailabilityMode::ConfigurationOnly;
    witness.failover_mode = FailoverMode::Manual;
    config.replicas.push(witness);
    let mut c = Cluster::new(config);
    let witness = ReplicaId(2);
    let now = c.now_ms();
    let epoch = Epoch {
        term: 99,
        replica: witness,
        generation: 0,
    };
    let replica = c.replica_mut(R1);
    let connection = ConnectionId(1_000);
    replica.handle_connection(
        now,
        ConnectionEvent::Opened {
            peer: witness,
            connection,
        },
    );
    let hello = Hello {
        ag_name: "ag1".into(),
        replica: witness,
        replica_name: "W".into(),
        role: Role::Primary,
        last_forced_epoch: Epoch::NONE,
        required_synchronized: 0,
        databases: vec![empty_database_hello()],
    };
    replica.handle_message(
        now,
        witness,
        connection,
        PeerMessage {
            epoch,
            body: MessageBody::Hello(hello),
        },
    );
    assert_eq!(replica.primary(), Some(R0));
    let outputs = replica.drain_outputs();
    assert!(outputs.contains(&Output::Ignored {
        source: InputSource::Peer(witness),
        reason: IgnoredReason::ConfigurationOnlyPeer { peer: witness }
    }));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::CloseConnection { peer, .. } if *peer == witness
    )));
}

/// Found by the soak once its manager could store intermediate publications: confirmations
/// carried only a version, and versions start again in every epoch, so a late confirmation of
/// an earlier epoch's publication confirmed the current epoch's publication of the same number.
/// The primary then stopped waiting for a replica the manager still held as failover-ready
/// (from the earlier epoch), and an automatic failover to it lost acknowledged commits.
#[test]
fn a_late_confirmation_of_an_earlier_epochs_publication_confirms_nothing() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Sync], 1));
    let old_epoch = c.epoch(R0).unwrap();
    c.manager.confirm_publications = false;
    c.manager_event(R0, ManagerEvent::LeaseLost);
    c.partition(R0, R1);
    c.disconnect(R0, R1);
    c.run();
    let promotion = c.promotion(PromotionKind::Automatic);
    c.manager_event(R0, promotion);
    c.run();
    assert_eq!(c.role(R0), Some(Role::Primary));
    let epoch = c.epoch(R0).unwrap();
    let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
    c.run();
    assert_eq!(
        c.reply(R0, t1),
        None,
        "R1 may still be failover-ready in the manager's books"
    );
    let (pending_epoch, version) = last_pending_publication(&c, R0);
    assert_eq!(pending_epoch, epoch);
    let stale = ManagerEvent::SyncStatePublished {
        epoch: old_epoch,
        version,
    };
    c.manager_event(R0, stale);
    c.run();
    assert_eq!(c.reply(R0, t1), None, "a confirmation of the old epoch");
    assert!(c.node(R0).ignored.contains(&(
        InputSource::Manager,
        IgnoredReason::PublicationNotPending {
            epoch: old_epoch,
            version,
            role: Role::Primary
        }
    )));
    c.confirm_publication(R0);
    c.run();
    assert!(committed(&c, R0, t1));
}

/// R-QUORUM-3 with a shell that delivers late: a renewal whose deadline is still ahead keeps the
/// primary even if its previous deadline passed while the renewal waited in a queue (the
/// manager renewed on time; the replica's thread was busy). A renewal whose deadline has passed
/// too does not revive the lease.
#[test]
fn a_late_delivered_renewal_still_ahead_keeps_the_lease_and_a_stale_one_does_not() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    // Past the lease of the promotion, from the last renewal on.
    let now = c.now_ms() + c.manager.lease_ms;
    let p = c.replica_mut(R0);
    assert_eq!(p.role(), Some(Role::Primary));
    p.handle_manager(
        now - 1,
        ManagerEvent::LeaseRenewed {
            lease_until_ms: now + 1_000,
        },
    );
    p.drain_outputs();
    // Delivered 1.5 s later, after the 1 s deadline: the renewal itself reaches 2.5 s.
    p.handle_manager(
        now + 1_500,
        ManagerEvent::LeaseRenewed {
            lease_until_ms: now + 2_500,
        },
    );
    p.drain_outputs();
    assert_eq!(
        p.role(),
        Some(Role::Primary),
        "a renewal still ahead is taken"
    );
    // A renewal that is itself over when it arrives: the lease ran out.
    p.handle_manager(
        now + 3_000,
        ManagerEvent::LeaseRenewed {
            lease_until_ms: now + 2_600,
        },
    );
    assert_eq!(
        p.role(),
        Some(Role::Resolving),
        "a stale renewal revives nothing"
    );
}

/// R-QUORUM-2 / R-ROLE-2: a secondary that loses the cluster manager's majority cannot know its
/// role: it goes RESOLVING, its session with the primary ends, and it follows no primary until
/// the manager is reachable again and names another replica as primary.
#[test]
fn a_secondary_without_the_manager_is_resolving_until_the_manager_names_the_primary() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    assert_eq!(c.role(R1), Some(Role::Secondary));
    c.manager_event(R1, ManagerEvent::Unreachable);
    c.run();
    assert_eq!(c.role(R1), Some(Role::Resolving));
    // The shell keeps reconnecting; the handshakes do not make it follow.
    c.advance(5_000);
    assert_eq!(c.role(R1), Some(Role::Resolving));
    assert_ne!(state(&c, R1), Some(SyncState::Synchronized));
    c.manager_event(R1, ManagerEvent::Reachable { primary: Some(R0) });
    c.run();
    assert_eq!(c.role(R1), Some(Role::Secondary));
    c.advance(5_000);
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
}

/// R-ROLE-2 under a manager: a restarted replica is RESOLVING until the manager is reachable;
/// the manager's own primary does not resolve to SECONDARY.
#[test]
fn a_restarted_replica_under_a_manager_waits_for_it_and_its_primary_is_not_demoted() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.manager.isolated.insert(R1);
    c.crash(R1);
    c.restart(R1);
    c.advance(5_000);
    assert_eq!(c.role(R1), Some(Role::Resolving), "no manager: no role");
    c.manager.isolated.remove(&R1);
    c.manager_event(R1, ManagerEvent::Reachable { primary: Some(R0) });
    c.advance(5_000);
    assert_eq!(c.role(R1), Some(Role::Secondary));
    // A RESOLVING replica the manager names as primary stays RESOLVING (the manager restores
    // or replaces it; it does not resolve to SECONDARY on its own).
    c.manager_event(R0, ManagerEvent::LeaseLost);
    c.run();
    assert_eq!(c.role(R0), Some(Role::Resolving));
    c.manager_event(R0, ManagerEvent::Reachable { primary: Some(R0) });
    c.run();
    assert_eq!(c.role(R0), Some(Role::Resolving));
}

/// Found by the conformance harness (R-SYNC-7): a secondary suspended because the old
/// primary's database was, forced to primary, kept SUSPEND_FROM_PRIMARY on its own database.
/// And (R-FAIL-4) the other replicas, which the forced failover suspends, kept their older
/// reasons instead of SUSPEND_FROM_PARTNER.
#[test]
fn a_forced_failover_ends_suspensions_from_the_old_primary_and_suspends_partners() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    c.admin(R0, AdminCommand::SuspendDatabase(DB));
    c.run();
    assert_eq!(suspended(&c, R0), Some(SuspendReason::User));
    assert_eq!(suspended(&c, R2), Some(SuspendReason::Primary));
    c.admin(R0, AdminCommand::SetRoleSecondary);
    c.run();
    c.admin(R2, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert_eq!(c.role(R2), Some(Role::Primary));
    assert_eq!(suspended(&c, R2), None, "the new primary's own database");
    let stored = c.replica(R2).persistent_state().unwrap();
    assert_eq!(stored.databases[0].suspended, None, "and what it stores");
    assert_eq!(suspended(&c, R1), Some(SuspendReason::Partner));
    assert_eq!(
        suspended(&c, R0),
        Some(SuspendReason::Partner),
        "the forced failover overrides the operator's suspension"
    );
}

/// Found by the conformance harness (R-SYNC-7, as the spec has it): RESUME on a secondary
/// with no session with a primary is refused and changes nothing.
#[test]
fn resume_on_a_secondary_without_a_primary_session_is_refused() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.admin(R1, AdminCommand::SuspendDatabase(DB));
    c.run();
    c.partition(R0, R1);
    c.advance(60_000);
    let resume = c.admin(R1, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert!(matches!(
        c.admin_reply(R1, resume),
        Some(Err(AdminError::ResumeWithoutPrimary { .. }))
    ));
    assert_eq!(suspended(&c, R1), Some(SuspendReason::User));
    c.heal(R0, R1);
    c.advance(60_000);
    c.admin(R1, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(suspended(&c, R1), None);
}

/// Found by the conformance harness: a secondary cut off from its primary does not know the
/// primary's database is still suspended, so its views show no SUSPEND_FROM_PRIMARY.
#[test]
fn a_secondary_without_a_session_shows_no_suspension_from_the_primary() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.admin(R0, AdminCommand::SuspendDatabase(DB));
    c.run();
    assert_eq!(suspended(&c, R1), Some(SuspendReason::Primary));
    c.partition(R0, R1);
    c.advance(60_000);
    assert_eq!(suspended(&c, R1), None);
    c.heal(R0, R1);
    c.advance(60_000);
    assert_eq!(suspended(&c, R1), Some(SuspendReason::Primary));
}

/// R-QUORUM-2 (the spec's RestorePrimary): the manager brings its recorded primary back after
/// it restarted with nobody promoted in between; it commits again in a new term.
#[test]
fn a_restored_primary_serves_again() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.crash(R0);
    c.restart(R0);
    assert_eq!(c.role(R0), Some(Role::Resolving));
    let before = c.epoch(R0).unwrap();
    let event = c.promotion(PromotionKind::Restore);
    c.manager_event(R0, event);
    c.run();
    assert_eq!(c.role(R0), Some(Role::Primary));
    assert!(c.epoch(R0).unwrap().term > before.term);
    let t = c.commit(R0, DB, 1, &[("k", "1")]);
    c.advance(1_000);
    assert!(committed(&c, R0, t));
}

/// Found by the differential fuzz target (R-SYNC-7): an operator may suspend a secondary the
/// primary's suspension already stopped; that suspension is the operator's and outlives the
/// primary's resume.
#[test]
fn a_secondary_suspended_from_the_primary_can_be_suspended_by_its_operator() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.admin(R0, AdminCommand::SuspendDatabase(DB));
    c.run();
    assert_eq!(suspended(&c, R1), Some(SuspendReason::Primary));
    let suspend = c.admin(R1, AdminCommand::SuspendDatabase(DB));
    c.run();
    assert!(matches!(c.admin_reply(R1, suspend), Some(Ok(_))));
    assert_eq!(suspended(&c, R1), Some(SuspendReason::User));
    c.admin(R0, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(suspended(&c, R1), Some(SuspendReason::User));
    c.admin(R1, AdminCommand::ResumeDatabase(DB));
    c.run();
    assert_eq!(suspended(&c, R1), None);
    assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
}

/// Found by the differential fuzzer (R-FAIL-4): a forced failover onto a replica the manager
/// records as SYNCHRONIZED, after the primary lost its lease (so the target's own view says
/// NOT_SYNCHRONIZING), started a forced recovery fork and suspended the partners. The target
/// holds every acknowledged commit: as the spec has it, the failover is a planned one in
/// effect. One not recorded SYNCHRONIZED still gets a forced fork.
#[test]
fn a_forced_failover_onto_a_replica_recorded_synchronized_suspends_no_partner() {
    use hadr_types::AvailabilityMode::AsynchronousCommit as Async;
    for recorded in [true, false] {
        let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Async], 1));
        c.advance(5_000);
        assert_eq!(state(&c, R1), Some(SyncState::Synchronized));
        let t1 = c.commit(R0, DB, 1, &[("k", "1")]);
        c.run();
        assert!(committed(&c, R0, t1));
        if !recorded {
            // The primary drops R1 from SYNCHRONIZED at the manager first (R-COMMIT-4).
            c.partition(R0, R1);
            c.advance(15_000);
            assert!(!c.recorded_synchronized(R1));
            c.heal(R0, R1);
        }
        // The primary is cut off from the manager: its lease is gone, it goes RESOLVING, and
        // its sessions end.
        c.manager.isolated.insert(R0);
        c.manager_event(R0, ManagerEvent::LeaseLost);
        c.advance(15_000);
        assert_eq!(c.role(R0), Some(Role::Resolving));
        assert_eq!(state(&c, R1), Some(SyncState::NotSynchronizing));
        assert_eq!(c.recorded_synchronized(R1), recorded);
        let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
        c.advance(5_000);
        let lossy = match c.admin_reply(R1, force) {
            Some(Ok(AdminOutcome::BecamePrimary {
                data_loss_possible, ..
            })) => *data_loss_possible,
            other => panic!("expected a promotion, got {other:?}"),
        };
        assert_eq!(lossy, !recorded, "recorded SYNCHRONIZED: {recorded}");
        assert_eq!(txns(&c, R1), vec![1], "the acknowledged commit is kept");
        let partner = if recorded {
            None
        } else {
            Some(SuspendReason::Partner)
        };
        assert_eq!(
            suspended(&c, R2),
            partner,
            "recorded SYNCHRONIZED: {recorded}"
        );
    }
}

/// A manager event to a replica of a CLUSTER_TYPE NONE group (a shell breaking its contract)
/// panicked the core: an `Unreachable` during a forced failover's planned handshake closed the
/// session, the interrupted handshake promoted the replica mid-input, and the event then took
/// a primary for a secondary. Found by the hostile walks once they sent every manager event.
#[test]
fn a_manager_event_without_a_manager_is_ignored() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    let now = c.now_ms();
    let replica = c.replica_mut(R1);
    replica.handle_manager(now, ManagerEvent::Unreachable);
    assert!(replica.drain_outputs().contains(&Output::Ignored {
        source: InputSource::Manager,
        reason: IgnoredReason::NoClusterManager,
    }));
    replica.validate().unwrap();
    assert_eq!(
        c.role(R1),
        Some(Role::Secondary),
        "still asking R0 to hand over"
    );
}

/// R-FAIL-3: a primary handing over (RESOLVING, serving the target the rest of its log) that
/// lost and regained the manager became a SECONDARY still handing over, a state the rule does
/// not allow. It stays RESOLVING until it follows the new primary.
#[test]
fn a_primary_handing_over_stays_resolving_when_the_manager_comes_back() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Sync], 1));
    c.manager.grant_promotions = false;
    let failover = c.admin(R1, AdminCommand::Failover);
    c.run();
    assert_eq!(
        c.admin_reply(R1, failover),
        None,
        "granted; waiting for the manager"
    );
    assert_eq!(c.role(R0), Some(Role::Resolving));
    let now = c.now_ms();
    let replica = c.replica_mut(R0);
    replica.handle_manager(now, ManagerEvent::Unreachable);
    replica.handle_manager(now, ManagerEvent::Reachable { primary: Some(R1) });
    replica.validate().unwrap();
    assert_eq!(c.role(R0), Some(Role::Resolving));
}
