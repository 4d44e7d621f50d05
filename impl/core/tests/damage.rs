//! A replica whose log was found damaged at a restart (a record that fails its checksum with
//! valid records after it, as the node's recovery tells it from a torn tail) on the
//! deterministic cluster: its database is SUSPECT, it never becomes or stays primary with the
//! short copy (so it never makes another replica revert to it), it is reseeded from a primary,
//! and a lone surviving copy comes online only when an operator accepts the loss (R-COMMIT-6).

use hadr_core::testing::{ag_config, Cluster};
use hadr_core::{
    AdminCommand, AdminError, AdminOutcome, ClientReply, IgnoredReason, LogDamage, ManagerRequest,
    PromotionKind, RequestId,
};
use hadr_types::AvailabilityMode::{AsynchronousCommit as Async, SynchronousCommit as Sync};
use hadr_types::{
    ClusterType, DatabaseId, DatabaseObservation, DatabaseState, Lsn, ReplicaId, Role,
    SuspendReason, SyncState,
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

/// Commits transactions `from..=to` on `p`, one record each, all acknowledged.
fn commit_all(c: &mut Cluster, p: ReplicaId, txns: std::ops::RangeInclusive<u32>) {
    for txn in txns {
        let request = c.commit(p, DB, txn, &[("k", &txn.to_string())]);
        c.run();
        assert!(
            matches!(c.reply(p, request), Some(ClientReply::Committed { .. })),
            "T{txn} acknowledged: {:?}",
            c.reply(p, request)
        );
    }
}

fn refused_as_damaged(c: &Cluster, r: ReplicaId, request: RequestId) -> (Lsn, Lsn) {
    match c.admin_reply(r, request) {
        Some(Err(AdminError::DatabaseDamaged {
            database,
            kept,
            lost_through,
        })) if *database == DB => (*kept, *lost_through),
        other => panic!("expected a refusal for a damaged copy, got {other:?}"),
    }
}

/// A PRIMARY of CLUSTER_TYPE NONE restarts with record 3 of its 5 unreadable: it comes back
/// SECONDARY (not PRIMARY, as it would with an intact log), SUSPECT, and refuses to take the
/// group; the operator forces over to an intact secondary, which holds every acknowledged
/// commit, and the damaged copy is reverted and reseeded from it without making anyone revert
/// to its short log.
#[test]
fn a_primary_restarting_with_a_damaged_log_never_leads_and_is_reseeded() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    commit_all(&mut c, R0, 1..=5);
    c.crash(R0);
    let damage = c.corrupt_record(R0, DB, Lsn(3)).unwrap();
    assert_eq!(
        damage,
        LogDamage {
            kept: Lsn(2),
            lost_through: Lsn(5)
        }
    );
    c.restart(R0);
    assert_eq!(
        c.role(R0),
        Some(Role::Secondary),
        "a damaged PRIMARY comes back SECONDARY"
    );
    let seen = db(&c, R0);
    assert_eq!(seen.database_state, DatabaseState::Suspect);
    assert!(!seen.is_failover_ready);
    assert_eq!(txns(&c, R0), vec![1, 2]);
    for r in [R1, R2] {
        assert_eq!(txns(&c, r), vec![1, 2, 3, 4, 5], "{r} reverted nothing");
    }

    let refused = c.admin(R0, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert_eq!(refused_as_damaged(&c, R0, refused), (Lsn(2), Lsn(5)));
    assert_eq!(c.role(R0), Some(Role::Secondary));

    let force = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(matches!(
        c.admin_reply(R1, force),
        Some(Ok(AdminOutcome::BecamePrimary { .. }))
    ));
    for r in [R0, R2] {
        if db(&c, r).suspended == Some(SuspendReason::Partner) {
            c.admin(r, AdminCommand::ResumeDatabase(DB));
            c.run();
        }
    }
    commit_all(&mut c, R1, 6..=6);
    assert_eq!(txns(&c, R1), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        txns(&c, R0),
        vec![1, 2, 3, 4, 5, 6],
        "reseeded from the primary"
    );
    let seen = db(&c, R0);
    assert_eq!(seen.database_state, DatabaseState::Online);
    assert_eq!(seen.synchronization_state, Some(SyncState::Synchronized));
    let stored = c.node(R0).disk.state.as_ref().unwrap();
    assert_eq!(stored.databases[0].damaged, None, "the repair is durable");
}

/// A damaged SECONDARY follows its primary as ever: the primary ships it what it lacks, and
/// once it holds the primary's log past what the damaged log held, it is online (and
/// failover-ready) again. Until then it is neither failover-ready nor promotable.
#[test]
fn a_damaged_secondary_is_reseeded_from_the_primary() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    commit_all(&mut c, R0, 1..=4);
    c.crash(R1);
    c.corrupt_record(R1, DB, Lsn(1)).unwrap();
    c.restart(R1);
    assert_eq!(txns(&c, R1), vec![1, 2, 3, 4]);
    let seen = db(&c, R1);
    assert_eq!(seen.database_state, DatabaseState::Online);
    assert!(seen.is_failover_ready);
    assert_eq!(
        c.node(R1).disk.state.as_ref().unwrap().databases[0].damaged,
        None
    );

    // Cut off from its primary, the damaged copy is seen as it is: SUSPECT, short, refused
    // as a target.
    c.partition(R0, R1);
    c.crash(R1);
    c.corrupt_record(R1, DB, Lsn(2)).unwrap();
    c.restart(R1);
    assert_eq!(txns(&c, R1), vec![1], "cut to the intact prefix");
    let seen = db(&c, R1);
    assert_eq!(seen.database_state, DatabaseState::Suspect);
    assert!(!seen.is_failover_ready);
    let refused = c.admin(R1, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert_eq!(refused_as_damaged(&c, R1, refused), (Lsn(1), Lsn(4)));
    // A restart before the reseed keeps the mark: the short copy never passes for whole.
    c.crash(R1);
    c.restart(R1);
    assert_eq!(db(&c, R1).database_state, DatabaseState::Suspect);

    c.heal(R0, R1);
    c.run();
    assert_eq!(txns(&c, R1), vec![1, 2, 3, 4]);
    let seen = db(&c, R1);
    assert_eq!(seen.database_state, DatabaseState::Online);
    assert!(seen.is_failover_ready);
}

/// An asynchronous secondary is never SYNCHRONIZED: its damage clears once it has hardened the
/// primary's log up to the highest LSN the damaged log held.
#[test]
fn a_damaged_asynchronous_secondary_is_online_once_it_holds_what_it_lost() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Async], 1));
    commit_all(&mut c, R0, 1..=3);
    c.crash(R1);
    c.corrupt_record(R1, DB, Lsn(2)).unwrap();
    c.partition(R0, R1);
    c.restart(R1);
    assert_eq!(db(&c, R1).database_state, DatabaseState::Suspect);
    c.heal(R0, R1);
    c.run();
    assert_eq!(txns(&c, R1), vec![1, 2, 3]);
    assert_eq!(
        db(&c, R1).synchronization_state,
        Some(SyncState::Synchronizing)
    );
    assert_eq!(db(&c, R1).database_state, DatabaseState::Online);
}

/// Under a cluster manager a damaged copy asks for nothing: with the primary gone, the
/// automatic failover picks an intact copy. A promotion delivered to it anyway is refused: the
/// lease goes back to the manager, the replica stays not primary.
#[test]
fn a_damaged_copy_is_never_promoted_by_the_manager() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync, Sync], 1));
    commit_all(&mut c, R0, 1..=3);
    c.crash(R1);
    c.corrupt_record(R1, DB, Lsn(3)).unwrap();
    c.partition(R0, R1);
    c.restart(R1);
    assert_eq!(db(&c, R1).database_state, DatabaseState::Suspect);

    c.partition(R1, R2);
    c.crash(R0);
    c.advance(20_000);
    let promoted = c.automatic_failover(&[R1, R2], |_| false);
    c.run();
    assert_eq!(promoted, Some(R2));
    assert_eq!(c.role(R2), Some(Role::Primary));
    assert_eq!(txns(&c, R2), vec![1, 2, 3]);

    assert_eq!(db(&c, R1).database_state, DatabaseState::Suspect);
    let releases = |c: &Cluster| {
        c.node(R1)
            .manager_requests
            .iter()
            .filter(|r| matches!(r, ManagerRequest::ReleaseLease))
            .count()
    };
    let before = releases(&c);
    let promotion = c.promotion(PromotionKind::Automatic);
    c.manager_event(R1, promotion);
    c.run();
    assert_ne!(c.role(R1), Some(Role::Primary));
    assert!(c
        .node(R1)
        .ignored
        .iter()
        .any(|(_, reason)| *reason == IgnoredReason::PromotionOfDamagedCopy { database: DB }));
    assert_eq!(releases(&c), before + 1, "the unused lease goes back");
}

/// The lone surviving copy: nothing can reseed it, so it stays SUSPECT until the operator
/// accepts the loss, which reports exactly what is gone. A forced failover then starts a new
/// fork, so the LSNs of the lost records are handed out again only in a new epoch.
#[test]
fn a_lone_damaged_copy_comes_online_only_when_the_operator_accepts_the_loss() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    commit_all(&mut c, R0, 1..=5);
    let old_epoch = c.replica(R0).log(DB).unwrap()[4].epoch;
    c.crash(R1);
    c.crash(R0);
    c.corrupt_record(R0, DB, Lsn(4)).unwrap();
    c.restart(R0);
    assert_eq!(c.role(R0), Some(Role::Secondary));
    let not_damaged = c.admin(R0, AdminCommand::AcceptDataLoss(DatabaseId(7)));
    c.run();
    assert!(matches!(
        c.admin_reply(R0, not_damaged),
        Some(Err(AdminError::UnknownDatabase { .. }))
    ));
    let accept = c.admin(R0, AdminCommand::AcceptDataLoss(DB));
    c.run();
    assert_eq!(
        c.admin_reply(R0, accept),
        Some(&Ok(AdminOutcome::DataLossAccepted {
            database: DB,
            kept: Lsn(3),
            lost_through: Lsn(5)
        }))
    );
    assert_eq!(db(&c, R0).database_state, DatabaseState::Online);
    let again = c.admin(R0, AdminCommand::AcceptDataLoss(DB));
    c.run();
    assert!(matches!(
        c.admin_reply(R0, again),
        Some(Err(AdminError::DatabaseNotDamaged { database: DB }))
    ));

    let force = c.admin(R0, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    assert!(matches!(
        c.admin_reply(R0, force),
        Some(Ok(AdminOutcome::BecamePrimary {
            data_loss_possible: true,
            ..
        }))
    ));
    commit_all(&mut c, R0, 6..=6);
    let log = c.replica(R0).log(DB).unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[3].txn.0, 6);
    assert!(log[3].epoch > old_epoch, "LSN 4 again, but in a new fork");
}
