//! Unit tests that assert the exact outputs of one input, per rule (openraft's engine-test
//! style). The in-memory [`Cluster`] only brings the group to the starting state; the step under
//! test is fed to one replica by hand and its outputs are compared in full.

use crate::error::{AdminError, ClientError, IgnoredReason, StorageContractError};
use crate::ids::{ConnectionId, Epoch, RequestId, TimerId};
use crate::input::{
    AdminCommand, ClientOp, ClientRequest, ManagerEvent, PromotionKind, StorageEvent,
};
use crate::log::{LogRecord, LogShapeError, Write};
use crate::message::{FailoverRefusal, Hello, LogBlock, MessageBody, PeerMessage};
use crate::output::{
    AdminOutcome, ClientReply, DisconnectReason, IndefiniteCause, InputSource, ManagerRequest,
    Output, SyncStatePublication,
};
use crate::replica::database::Phase;
use crate::replica::{CoreOptions, Replica};
use crate::testing::{ag_config, Cluster};
use hadr_types::{
    ApplicationIntent, AvailabilityMode::AsynchronousCommit as Async,
    AvailabilityMode::SynchronousCommit as Sync, ClusterType, CommitOutcome, DatabaseId,
    DefiniteReason, Lsn, ReplicaId, Role, SuspendReason, SyncState, TxnId,
};

const P: ReplicaId = ReplicaId(0);
const S: ReplicaId = ReplicaId(1);
const DB: DatabaseId = DatabaseId(0);

fn request(id: u64, op: ClientOp) -> ClientRequest {
    ClientRequest {
        request: RequestId(id),
        database: DB,
        intent: ApplicationIntent::ReadWrite,
        op,
    }
}

/// Opens transaction `txn` with one write on the primary and asks to commit it as request
/// `id`; returns the outputs of the commit request alone.
fn commit(p: &mut Replica, now: u64, id: u64, txn: u32, key: &str) -> Vec<Output> {
    let txn = TxnId(txn);
    p.handle_client(now, request(1000 + id, ClientOp::Begin { txn }));
    let write = ClientOp::Write {
        txn,
        key: key.into(),
        value: format!("{key}-value"),
    };
    p.handle_client(now, request(2000 + id, write));
    let opened = p.drain_outputs();
    assert!(
        opened
            .iter()
            .all(|o| matches!(o, Output::ClientReply { .. })),
        "{opened:?}"
    );
    p.handle_client(now, request(id, ClientOp::Commit { txn }));
    p.drain_outputs()
}

fn record(epoch: Epoch, lsn: u64, txn: u32, key: &str) -> LogRecord {
    LogRecord {
        lsn: Lsn(lsn),
        epoch,
        txn: TxnId(txn),
        writes: vec![Write {
            key: key.into(),
            value: format!("{key}-value"),
        }],
    }
}

/// The connection of a fresh two-replica cluster: P and S were connected first.
const LINK: ConnectionId = ConnectionId(1);

/// Feeds a message from `from` as if read from the connection the replica considers current.
trait Deliver {
    fn deliver(&mut self, now_ms: u64, from: ReplicaId, message: PeerMessage);
}

impl Deliver for Replica {
    fn deliver(&mut self, now_ms: u64, from: ReplicaId, message: PeerMessage) {
        let connection = self.connection(from).unwrap_or_default();
        self.handle_message(now_ms, from, connection, message);
    }
}

fn msg(epoch: Epoch, body: MessageBody) -> PeerMessage {
    PeerMessage { epoch, body }
}

fn send(to: ReplicaId, epoch: Epoch, body: MessageBody) -> Output {
    Output::Send {
        to,
        connection: LINK,
        message: msg(epoch, body),
    }
}

fn log_block(first: u64, records: Vec<LogRecord>) -> MessageBody {
    MessageBody::Log(LogBlock {
        database: DB,
        first_lsn: Lsn(first),
        stable: Lsn(0),
        records,
    })
}

fn progress(received: u64, hardened: u64, redone: u64) -> MessageBody {
    MessageBody::Progress {
        database: DB,
        received: Lsn(received),
        hardened: Lsn(hardened),
        redone: Lsn(redone),
    }
}

/// The shell is asked to append `records` to the log of `DB`.
fn append(records: Vec<LogRecord>) -> Output {
    Output::AppendLog {
        database: DB,
        records,
    }
}

/// The shell is asked to make the log of `DB` durable up to `lsn`.
fn fsync(lsn: u64) -> Output {
    Output::Fsync {
        database: DB,
        up_to: Lsn(lsn),
    }
}

fn committed(id: u64, lsn: u64) -> Output {
    Output::ClientReply {
        request: RequestId(id),
        reply: ClientReply::Committed { lsn: Lsn(lsn) },
    }
}

fn hardened(lsn: u64) -> StorageEvent {
    StorageEvent::LogHardened {
        database: DB,
        up_to: Lsn(lsn),
    }
}

#[test]
fn r_commit_2_sync_commit_waits_for_participant_fsync() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    let rec = record(epoch, 1, 1, "k");

    assert_eq!(
        commit(p, now, 1, 1, "k"),
        vec![
            append(vec![rec.clone()]),
            fsync(1),
            send(S, epoch, log_block(1, vec![rec.clone()])),
        ]
    );
    p.handle_storage(now, hardened(1)).unwrap();
    assert_eq!(
        p.drain_outputs(),
        vec![],
        "hardened locally, but the participant has not acknowledged"
    );
    assert_eq!(
        p.status().unwrap().databases[0].last_redone_lsn,
        Lsn(1),
        "the primary's data is current once hardened: redone with no round trip to the shell"
    );
    p.deliver(now, S, msg(epoch, progress(1, 0, 0)));
    assert_eq!(p.drain_outputs(), vec![], "received is not hardened");
    p.deliver(now, S, msg(epoch, progress(1, 1, 0)));
    assert_eq!(
        p.drain_outputs(),
        vec![committed(1, 1)],
        "redo is never awaited"
    );
    assert_eq!(p.transactions()[0].outcome, CommitOutcome::Acknowledged);
}

#[test]
fn r_commit_2_participant_ack_before_local_fsync_still_waits_for_the_local_fsync() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    commit(p, now, 1, 1, "k");
    p.deliver(now, S, msg(epoch, progress(1, 1, 1)));
    assert_eq!(p.drain_outputs(), vec![]);
    p.handle_storage(now, hardened(1)).unwrap();
    assert_eq!(p.drain_outputs(), vec![committed(1, 1)]);
}

#[test]
fn r_sync_2_secondary_hardens_then_redoes_and_acknowledges_only_what_was_hardened() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    let epoch = s.epoch().unwrap();
    let rec = record(epoch, 1, 1, "k");
    s.deliver(now, P, msg(epoch, log_block(1, vec![rec.clone()])));
    assert_eq!(
        s.drain_outputs(),
        vec![append(vec![rec]), fsync(1),],
        "nothing is acknowledged before the fsync is reported"
    );
    s.handle_storage(now, hardened(1)).unwrap();
    assert_eq!(
        s.drain_outputs(),
        vec![
            send(P, epoch, progress(1, 1, 0)),
            Output::Redo {
                database: DB,
                up_to: Lsn(1)
            },
        ]
    );
    s.handle_storage(
        now,
        StorageEvent::RedoApplied {
            database: DB,
            up_to: Lsn(1),
        },
    )
    .unwrap();
    assert_eq!(s.drain_outputs(), vec![send(P, epoch, progress(1, 1, 1))]);
}

#[test]
fn r_commit_3_async_commit_waits_only_for_local_fsync() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Async], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    let rec = record(epoch, 1, 1, "k");
    assert_eq!(
        commit(p, now, 1, 1, "k"),
        vec![
            append(vec![rec.clone()]),
            fsync(1),
            send(S, epoch, log_block(1, vec![rec])),
        ]
    );
    p.handle_storage(now, hardened(1)).unwrap();
    assert_eq!(p.drain_outputs(), vec![committed(1, 1)]);
}

#[test]
fn r_commit_1_an_asynchronous_primary_treats_a_synchronous_secondary_as_asynchronous() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Async, Sync], 1));
    let now = c.now_ms();
    let status = c.replica(P).status().unwrap();
    let secondary = &status.databases[0].secondaries[0];
    assert_eq!(
        secondary.synchronization_state,
        SyncState::Synchronizing,
        "R-SYNC-4"
    );
    assert!(!secondary.is_commit_participant);
    let p = c.replica_mut(P);
    commit(p, now, 1, 1, "k");
    p.handle_storage(now, hardened(1)).unwrap();
    assert_eq!(p.drain_outputs(), vec![committed(1, 1)]);
}

#[test]
fn r_commit_4_session_timeout_releases_waiting_commits() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    commit(p, now, 1, 1, "k");
    p.handle_storage(now, hardened(1)).unwrap();
    p.drain_outputs();

    p.handle_timer(now + 9_999, TimerId::SessionTimeout(S));
    assert_eq!(
        p.drain_outputs(),
        vec![Output::SetTimer {
            timer: TimerId::SessionTimeout(S),
            at_ms: now + 10_000
        }],
        "not yet: the timer is re-armed for the real deadline"
    );
    p.handle_timer(now + 10_000, TimerId::SessionTimeout(S));
    assert_eq!(
        p.drain_outputs(),
        vec![
            Output::CloseConnection {
                peer: S,
                connection: LINK,
                reason: DisconnectReason::SessionTimeout
            },
            committed(1, 1),
        ],
        "the secondary is DISCONNECTED and the commit waiting only on it completes"
    );
}

#[test]
fn r_commit_4_with_a_manager_the_publication_is_confirmed_before_commits_complete_without_the_secondary(
) {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let now = c.now_ms();
    let version = c.manager.published[&P].version;
    assert_eq!(c.manager.published[&P].failover_ready, vec![S]);
    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    p.handle_manager(
        now,
        ManagerEvent::LeaseRenewed {
            lease_until_ms: 1_000_000,
        },
    );
    p.drain_outputs();
    commit(p, now, 1, 1, "k");
    p.handle_storage(now, hardened(1)).unwrap();
    p.drain_outputs();

    p.handle_timer(now + 10_000, TimerId::SessionTimeout(S));
    assert_eq!(
        p.drain_outputs(),
        vec![
            Output::CloseConnection {
                peer: S,
                connection: LINK,
                reason: DisconnectReason::SessionTimeout
            },
            Output::Manager(ManagerRequest::PublishSyncState(SyncStatePublication {
                version: version + 1,
                epoch,
                synchronized: vec![vec![]],
                failover_ready: vec![],
            })),
        ],
        "publish first; the commit still waits"
    );
    p.handle_manager(
        now + 10_001,
        ManagerEvent::SyncStatePublished { epoch, version },
    );
    assert_eq!(
        p.drain_outputs(),
        vec![Output::Ignored {
            source: InputSource::Manager,
            reason: IgnoredReason::PublicationNotPending {
                epoch,
                version,
                role: Role::Primary
            }
        }],
        "an older confirmation changes nothing"
    );
    p.handle_manager(
        now + 10_002,
        ManagerEvent::SyncStatePublished {
            epoch,
            version: version + 1,
        },
    );
    assert_eq!(p.drain_outputs(), vec![committed(1, 1)]);
}

#[test]
fn r_commit_5_too_few_synchronized_secondaries_refuse_the_commit_definitely() {
    let mut config = ag_config(ClusterType::None, &[Sync, Sync], 1);
    config.required_synchronized_secondaries_to_commit = 1;
    let mut c = Cluster::new(config);
    c.disconnect(P, S);
    c.run();
    let now = c.now_ms();
    let p = c.replica_mut(P);
    assert_eq!(
        commit(p, now, 1, 1, "k"),
        vec![Output::ClientReply {
            request: RequestId(1),
            reply: ClientReply::Refused(ClientError::TooFewSynchronized {
                database: DB,
                synchronized: 0,
                required: 1
            })
        }],
        "refused before anything is logged"
    );
    assert_eq!(p.end_of_log_lsn(DB), Some(Lsn(0)));
    assert_eq!(
        p.transactions()[0].outcome,
        CommitOutcome::DefiniteError(DefiniteReason::TooFewSynchronized)
    );

    c.connect(P, S);
    c.run();
    let id = c.commit(P, DB, 2, &[("k", "v")]);
    c.run();
    assert_eq!(
        c.reply(P, id),
        Some(&ClientReply::Committed { lsn: Lsn(1) })
    );
}

#[test]
fn r_commit_5_k_changes_on_the_primary_only_and_within_its_limit() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    s.handle_admin(
        now,
        RequestId(1),
        AdminCommand::SetRequiredSynchronizedSecondariesToCommit(1),
    );
    assert_eq!(
        s.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(1),
            result: Err(AdminError::NotPrimary {
                role: Role::Secondary
            })
        }]
    );
    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    p.handle_admin(
        now,
        RequestId(2),
        AdminCommand::SetRequiredSynchronizedSecondariesToCommit(2),
    );
    assert_eq!(
        p.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(2),
            result: Err(AdminError::RequiredSynchronizedTooHigh {
                required: 2,
                max: 1
            })
        }]
    );
    p.handle_admin(
        now,
        RequestId(3),
        AdminCommand::SetRequiredSynchronizedSecondariesToCommit(1),
    );
    let state = p.persistent_state().unwrap();
    assert_eq!(state.config.required_synchronized_secondaries_to_commit, 1);
    assert_eq!(
        p.drain_outputs(),
        vec![
            Output::PersistState(state),
            send(
                S,
                epoch,
                MessageBody::SetRequiredSynchronized { required: 1 }
            ),
            Output::AdminReply {
                request: RequestId(3),
                result: Ok(AdminOutcome::Done)
            },
        ],
        "persisted before anything else"
    );
}

#[test]
fn r_sync_1_a_gap_is_refused_once_and_filled_from_the_receivers_end() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    let epoch = s.epoch().unwrap();
    s.deliver(
        now,
        P,
        msg(epoch, log_block(3, vec![record(epoch, 3, 3, "c")])),
    );
    assert_eq!(
        s.drain_outputs(),
        vec![send(
            P,
            epoch,
            MessageBody::GapRefused {
                database: DB,
                expected: Lsn(1)
            }
        )]
    );
    s.deliver(
        now,
        P,
        msg(epoch, log_block(4, vec![record(epoch, 4, 4, "d")])),
    );
    assert_eq!(s.drain_outputs(), vec![], "the same gap is reported once");
    assert_eq!(s.end_of_log_lsn(DB), Some(Lsn(0)));

    let p = c.replica_mut(P);
    commit(p, now, 1, 1, "a");
    commit(p, now, 2, 2, "b");
    p.deliver(
        now,
        S,
        msg(
            epoch,
            MessageBody::GapRefused {
                database: DB,
                expected: Lsn(1),
            },
        ),
    );
    assert_eq!(
        p.drain_outputs(),
        vec![send(
            S,
            epoch,
            log_block(1, vec![record(epoch, 1, 1, "a"), record(epoch, 2, 2, "b")])
        )],
        "resent from the receiver's end of log, in one block"
    );
    p.deliver(
        now,
        S,
        msg(
            epoch,
            MessageBody::GapRefused {
                database: DB,
                expected: Lsn(9),
            },
        ),
    );
    assert_eq!(
        p.drain_outputs(),
        vec![Output::Ignored {
            source: InputSource::Peer(S),
            reason: IgnoredReason::ImpossibleGap {
                database: DB,
                expected: Lsn(9),
                sent: Lsn(2),
                hardened: Lsn(0)
            }
        }],
        "a receiver cannot miss what was never sent"
    );
}

#[test]
fn r_sync_1_an_overlapping_block_is_trimmed_to_what_is_new() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    let epoch = s.epoch().unwrap();
    let (r1, r2) = (record(epoch, 1, 1, "a"), record(epoch, 2, 2, "b"));
    s.deliver(now, P, msg(epoch, log_block(1, vec![r1.clone()])));
    s.drain_outputs();
    s.deliver(now, P, msg(epoch, log_block(1, vec![r1, r2.clone()])));
    assert_eq!(s.drain_outputs(), vec![append(vec![r2]), fsync(2),]);
}

#[test]
fn r_fail_3_planned_failover_is_refused_when_the_target_is_not_synchronized() {
    // A suspended database is NOT SYNCHRONIZING.
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.admin(S, AdminCommand::SuspendDatabase(DB));
    c.run();
    let now = c.now_ms();
    let s = c.replica_mut(S);
    s.handle_admin(now, RequestId(7), AdminCommand::Failover);
    assert_eq!(
        s.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(7),
            result: Err(AdminError::TargetNotSynchronized {
                database: DB,
                state: SyncState::NotSynchronizing
            })
        }]
    );
    assert!(AdminError::TargetNotSynchronized {
        database: DB,
        state: SyncState::NotSynchronizing
    }
    .to_string()
    .contains("41142"));

    // An asynchronous target.
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Async], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    s.handle_admin(now, RequestId(8), AdminCommand::Failover);
    assert_eq!(
        s.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(8),
            result: Err(AdminError::NotSynchronousCommit { replica: S })
        }]
    );
    // The primary checks with its own books too.
    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    p.deliver(now, S, msg(epoch, MessageBody::FailoverRequest));
    assert_eq!(
        p.drain_outputs(),
        vec![send(
            S,
            epoch,
            MessageBody::FailoverRefused {
                reason: FailoverRefusal::NotSynchronousCommit { replica: S }
            }
        )]
    );
}

#[test]
fn r_quorum_5_cluster_type_none_has_no_planned_failover_and_demotes_with_set_role_secondary() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    s.handle_admin(now, RequestId(1), AdminCommand::Failover);
    assert_eq!(
        s.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(1),
            result: Err(AdminError::PlannedFailoverNeedsClusterManager)
        }]
    );
    s.handle_admin(now, RequestId(2), AdminCommand::SetRoleSecondary);
    assert_eq!(
        s.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(2),
            result: Err(AdminError::NotPrimary {
                role: Role::Secondary
            })
        }]
    );
    let p = c.replica_mut(P);
    commit(p, now, 1, 1, "k");
    p.handle_admin(now, RequestId(3), AdminCommand::SetRoleSecondary);
    let outputs = p.drain_outputs();
    assert!(matches!(outputs[0], Output::PersistState(ref s) if s.role == Role::Secondary));
    assert_eq!(
        outputs[1],
        Output::ClientReply {
            request: RequestId(1),
            reply: ClientReply::Indefinite(IndefiniteCause::RoleChanged)
        },
        "the waiting commit's log exists: its outcome is unknown"
    );
    assert!(outputs.contains(&Output::DisconnectClients));
    assert_eq!(p.role(), Some(Role::Secondary));

    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let p = c.replica_mut(P);
    p.handle_admin(now, RequestId(4), AdminCommand::SetRoleSecondary);
    assert_eq!(
        p.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(4),
            result: Err(AdminError::SetRoleNeedsClusterTypeNone)
        }]
    );
}

#[test]
fn r_quorum_3_a_primary_whose_lease_ran_out_stops_committing_first() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    commit(p, now, 1, 1, "k");
    // The lease granted at promotion runs 10 s; the fsync completes too late to count.
    p.handle_storage(now + 10_000, hardened(1)).unwrap();
    let outputs = p.drain_outputs();
    assert!(matches!(outputs[0], Output::PersistState(ref s) if s.role == Role::Resolving));
    assert_eq!(
        outputs[1],
        Output::ClientReply {
            request: RequestId(1),
            reply: ClientReply::Indefinite(IndefiniteCause::LeaseLost)
        }
    );
    assert!(!outputs.iter().any(|o| matches!(
        o,
        Output::ClientReply {
            reply: ClientReply::Committed { .. },
            ..
        }
    )));
    assert_eq!(p.role(), Some(Role::Resolving));
    p.handle_client(now + 10_000, request(9, ClientOp::Begin { txn: TxnId(9) }));
    assert_eq!(
        p.drain_outputs(),
        vec![Output::ClientReply {
            request: RequestId(9),
            reply: ClientReply::Refused(ClientError::NotPrimary {
                role: Role::Resolving,
                primary: None
            })
        }]
    );
}

/// The manager requests among `outputs`.
fn manager_requests(outputs: &[Output]) -> Vec<&ManagerRequest> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Manager(request) => Some(request),
            _ => None,
        })
        .collect()
}

/// The primary of a new two-replica group of `cluster_type` steps down on `input`: its role
/// after, and the manager requests it made.
fn step_down(
    cluster_type: ClusterType,
    input: impl FnOnce(&mut Replica, u64),
) -> (Option<Role>, Vec<ManagerRequest>) {
    let mut c = Cluster::new(ag_config(cluster_type, &[Sync, Sync], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    input(p, now);
    let outputs = p.drain_outputs();
    let requests = manager_requests(&outputs).into_iter().cloned().collect();
    (p.role(), requests)
}

#[test]
fn r_quorum_3_every_step_down_from_primary_releases_the_lease() {
    // Its own deadline passed while the manager may still be renewing the lease: it must go,
    // or no other replica could be promoted until it expires in the manager.
    assert_eq!(
        step_down(ClusterType::External, |p, now| {
            p.handle_timer(now + 10_000, TimerId::LeaseExpiry)
        }),
        (Some(Role::Resolving), vec![ManagerRequest::ReleaseLease])
    );
    // The manager lost it: releasing it again does nothing there, and is asked for all the same.
    assert_eq!(
        step_down(ClusterType::External, |p, now| {
            p.handle_manager(now, ManagerEvent::LeaseLost)
        }),
        (Some(Role::Resolving), vec![ManagerRequest::ReleaseLease])
    );
    // CLUSTER_TYPE = NONE: no manager, no lease.
    assert_eq!(
        step_down(ClusterType::None, |p, now| {
            p.handle_admin(now, RequestId(1), AdminCommand::SetRoleSecondary)
        }),
        (Some(Role::Secondary), vec![])
    );
}

#[test]
fn r_quorum_3_a_promotion_the_replica_does_not_take_gives_its_lease_back() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let now = c.now_ms();
    let promote = |lease_until_ms| ManagerEvent::Promote {
        kind: PromotionKind::Automatic,
        lease_until_ms,
        term_at_least: 0,
        required_synchronized: None,
    };
    let p = c.replica_mut(P);
    p.handle_manager(now, promote(now + 10_000));
    assert_eq!(
        p.drain_outputs(),
        vec![
            Output::Ignored {
                source: InputSource::Manager,
                reason: IgnoredReason::PromotionWhilePrimary
            },
            Output::Manager(ManagerRequest::ReleaseLease),
        ],
        "an unused lease would be renewed and block every other promotion"
    );
    assert_eq!(p.role(), Some(Role::Primary));
    let s = c.replica_mut(S);
    s.handle_manager(now, promote(now));
    assert_eq!(
        s.drain_outputs(),
        vec![
            Output::Ignored {
                source: InputSource::Manager,
                reason: IgnoredReason::PromotionLeaseExpired {
                    lease_until_ms: now,
                    now_ms: now
                }
            },
            Output::Manager(ManagerRequest::ReleaseLease),
        ]
    );
    assert_eq!(s.role(), Some(Role::Secondary));
}

#[test]
fn r_commit_7_transact_is_begin_writes_and_commit_as_one_request() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Async], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    let rec = record(epoch, 1, 1, "k");
    let transact = |txn: u32, key: &str| ClientOp::Transact {
        txn: TxnId(txn),
        writes: vec![Write {
            key: key.into(),
            value: format!("{key}-value"),
        }],
    };
    p.handle_client(now, request(1, transact(1, "k")));
    assert_eq!(
        p.drain_outputs(),
        vec![
            append(vec![rec.clone()]),
            fsync(1),
            send(S, epoch, log_block(1, vec![rec])),
        ]
    );
    p.handle_storage(now, hardened(1)).unwrap();
    assert_eq!(p.drain_outputs(), vec![committed(1, 1)]);
    // The retry of a committed transaction is told it committed; nothing is written again.
    p.handle_client(now, request(2, transact(1, "other")));
    assert_eq!(p.drain_outputs(), vec![committed(2, 1)]);
    // A refusal is the first step's: nothing was begun.
    let read_only = ClientRequest {
        intent: ApplicationIntent::ReadOnly,
        ..request(3, transact(2, "k"))
    };
    p.handle_client(now, read_only);
    assert_eq!(
        p.drain_outputs(),
        vec![Output::ClientReply {
            request: RequestId(3),
            reply: ClientReply::Refused(ClientError::ReadOnlyIntent)
        }]
    );
    p.handle_client(now, request(4, ClientOp::Commit { txn: TxnId(2) }));
    assert_eq!(
        p.drain_outputs(),
        vec![Output::ClientReply {
            request: RequestId(4),
            reply: ClientReply::Indefinite(IndefiniteCause::UnknownTransaction)
        }]
    );
}

#[test]
fn a_transaction_too_large_for_one_log_record_is_rolled_back() {
    let options = CoreOptions {
        max_transaction_bytes: 20,
        ..CoreOptions::DEFAULT
    };
    let mut c = Cluster::with_options(ag_config(ClusterType::None, &[Sync, Async], 1), options);
    let now = c.now_ms();
    let p = c.replica_mut(P);
    let too_large = ClientReply::Refused(ClientError::TransactionTooLarge { limit: 20 });
    let write = |txn: u32, key: &str, value: &str| ClientOp::Write {
        txn: TxnId(txn),
        key: key.into(),
        value: value.into(),
    };
    // 8 + 4 bytes, then 8 more: exactly the limit; one byte more is too much.
    p.handle_client(now, request(1, ClientOp::Begin { txn: TxnId(1) }));
    p.handle_client(now, request(2, write(1, "k", "abc")));
    p.handle_client(now, request(3, write(1, "", "")));
    p.handle_client(now, request(4, write(1, "", "x")));
    p.handle_client(now, request(5, write(1, "k", "v")));
    p.handle_client(now, request(6, ClientOp::Commit { txn: TxnId(1) }));
    let replies: Vec<ClientReply> = p
        .drain_outputs()
        .into_iter()
        .map(|o| match o {
            Output::ClientReply { reply, .. } => reply,
            other => panic!("nothing but replies: {other:?}"),
        })
        .collect();
    assert_eq!(
        replies,
        vec![
            ClientReply::Begun,
            ClientReply::Written,
            ClientReply::Written,
            too_large.clone(),
            ClientReply::Refused(ClientError::UnknownTransaction { txn: TxnId(1) }),
            ClientReply::Indefinite(IndefiniteCause::UnknownTransaction),
        ],
        "the write beyond the limit rolled the transaction back"
    );
    p.handle_client(
        now,
        request(
            7,
            ClientOp::Transact {
                txn: TxnId(2),
                writes: vec![Write {
                    key: "key".into(),
                    value: "a value of 21 bytes..".into(),
                }],
            },
        ),
    );
    assert_eq!(
        p.drain_outputs(),
        vec![Output::ClientReply {
            request: RequestId(7),
            reply: too_large
        }],
        "nothing is logged"
    );
    assert_eq!(p.transactions(), vec![], "no commit was asked for");
}

#[test]
fn r_read_3_a_readable_secondary_sends_read_write_connections_to_the_primarys_routing_url() {
    let mut config = ag_config(ClusterType::None, &[Sync, Sync], 1);
    config.replicas[0].primary_role.read_write_routing_url = Some("TCP://r0:7100".into());
    config.replicas[1].primary_role.read_write_routing_url = Some("TCP://r1:7100".into());
    config.replicas[1].secondary_role.allow_connections = hadr_types::SecondaryConnections::All;
    let c = Cluster::new(config.clone());
    assert_eq!(c.replica(S).read_write_redirect(), Some("TCP://r0:7100"));
    assert_eq!(
        c.replica(P).read_write_redirect(),
        None,
        "the primary serves it"
    );
    config.replicas[1].secondary_role.allow_connections = hadr_types::SecondaryConnections::No;
    let c = Cluster::new(config);
    assert_eq!(
        c.replica(S).read_write_redirect(),
        None,
        "a secondary that accepts no connections redirects none"
    );
    assert_eq!(Replica::new("R9").read_write_redirect(), None);
}

#[test]
fn r_role_3_a_secondary_refuses_writes_and_serves_reads_only_when_allowed() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    s.handle_client(now, request(1, ClientOp::Begin { txn: TxnId(1) }));
    let refused = ClientReply::Refused(ClientError::NotPrimary {
        role: Role::Secondary,
        primary: Some(P),
    });
    assert_eq!(
        refused.commit_outcome(),
        Some(CommitOutcome::DefiniteError(DefiniteReason::NoPrimary))
    );
    assert_eq!(
        s.drain_outputs(),
        vec![Output::ClientReply {
            request: RequestId(1),
            reply: refused
        }]
    );
    s.handle_client(
        now,
        request(
            2,
            ClientOp::Read {
                txn: None,
                key: "k".into(),
            },
        ),
    );
    assert_eq!(
        s.drain_outputs(),
        vec![Output::ClientReply {
            request: RequestId(2),
            reply: ClientReply::Refused(ClientError::ConnectionNotAllowed {
                role: Role::Secondary,
                intent: ApplicationIntent::ReadWrite
            })
        }],
        "R-READ-1: ALLOW_CONNECTIONS = NO by default"
    );
}

#[test]
fn storage_completions_beyond_the_log_break_the_contract_and_change_nothing() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    assert_eq!(
        p.handle_storage(now, hardened(5)),
        Err(StorageContractError::BeyondEndOfLog {
            database: DB,
            what: "an fsync",
            up_to: Lsn(5),
            end_of_log: Lsn(0)
        })
    );
    assert_eq!(
        p.handle_storage(
            now,
            StorageEvent::RedoApplied {
                database: DB,
                up_to: Lsn(1)
            }
        ),
        Err(StorageContractError::RedoBeyondHardened {
            database: DB,
            up_to: Lsn(1),
            hardened: Lsn(0)
        })
    );
    assert_eq!(
        p.handle_storage(
            now,
            StorageEvent::LogReverted {
                database: DB,
                to: Lsn(0)
            }
        ),
        Err(StorageContractError::UnexpectedRevert {
            database: DB,
            to: Lsn(0),
            expected: None
        })
    );
    assert_eq!(p.drain_outputs(), vec![]);
    assert_eq!(p.status().unwrap().databases[0].last_hardened_lsn, Lsn(0));
}

#[test]
fn malformed_or_unexpected_peer_input_is_ignored_with_a_reason_never_a_panic() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let s = c.replica_mut(S);
    let epoch = s.epoch().unwrap();
    let ignored = |reason| Output::Ignored {
        source: InputSource::Peer(P),
        reason,
    };

    s.deliver(now, ReplicaId(9), msg(epoch, MessageBody::Ping));
    assert_eq!(
        s.drain_outputs(),
        vec![Output::Ignored {
            source: InputSource::Peer(ReplicaId(9)),
            reason: IgnoredReason::UnknownPeer { peer: ReplicaId(9) }
        }]
    );
    let mut bad = record(epoch, 2, 2, "x");
    s.deliver(
        now,
        P,
        msg(
            epoch,
            log_block(1, vec![record(epoch, 1, 1, "a"), bad.clone()]),
        ),
    );
    assert_eq!(
        s.drain_outputs().len(),
        2,
        "well formed: appended and fsynced"
    );
    bad.lsn = Lsn(7);
    s.deliver(now, P, msg(epoch, log_block(3, vec![bad])));
    assert_eq!(
        s.drain_outputs(),
        vec![ignored(IgnoredReason::MalformedLog(
            LogShapeError::NotContiguous {
                index: 0,
                found: Lsn(7),
                expected: Lsn(3)
            }
        ))]
    );
    s.deliver(
        now,
        P,
        msg(
            epoch,
            MessageBody::Log(LogBlock {
                database: DatabaseId(7),
                first_lsn: Lsn(1),
                stable: Lsn(0),
                records: vec![],
            }),
        ),
    );
    assert_eq!(
        s.drain_outputs(),
        vec![ignored(IgnoredReason::UnknownDatabase {
            database: DatabaseId(7)
        })]
    );
    let stale = Epoch {
        term: 0,
        replica: P,
        generation: 0,
    };
    s.deliver(now, P, msg(stale, progress(1, 1, 1)));
    assert!(matches!(
        s.drain_outputs()[..],
        [Output::Ignored {
            reason: IgnoredReason::Unexpected { .. },
            ..
        }]
    ));

    let p = c.replica_mut(P);
    let epoch = p.epoch().unwrap();
    p.deliver(now, S, msg(epoch, progress(3, 2, 1)));
    assert_eq!(
        p.drain_outputs(),
        vec![Output::Ignored {
            source: InputSource::Peer(S),
            reason: IgnoredReason::ImpossibleProgress {
                received: Lsn(3),
                hardened: Lsn(2),
                redone: Lsn(1),
                sent: Lsn(0)
            }
        }],
        "acknowledging log that was never sent"
    );
    let mut hello = Hello {
        ag_name: "other".into(),
        replica: S,
        replica_name: "R1".into(),
        role: Role::Secondary,
        last_forced_epoch: Epoch::NONE,
        required_synchronized: 0,
        databases: vec![],
    };
    p.deliver(now, S, msg(epoch, MessageBody::Hello(hello.clone())));
    assert_eq!(
        p.drain_outputs(),
        vec![
            Output::Ignored {
                source: InputSource::Peer(S),
                reason: IgnoredReason::WrongAvailabilityGroup {
                    expected: "ag1".into(),
                    found: "other".into()
                }
            },
            Output::CloseConnection {
                peer: S,
                connection: LINK,
                reason: DisconnectReason::HandshakeMismatch
            },
            Output::CancelTimer {
                timer: TimerId::SessionTimeout(S)
            },
        ]
    );
    hello.ag_name = "ag1".into();
    p.deliver(now, S, msg(epoch, MessageBody::Hello(hello)));
    assert_eq!(
        p.drain_outputs(),
        vec![Output::Ignored {
            source: InputSource::Peer(S),
            reason: IgnoredReason::NotConnected { peer: S }
        }]
    );
    p.handle_client(
        now,
        ClientRequest {
            request: RequestId(5),
            database: DatabaseId(9),
            intent: ApplicationIntent::ReadWrite,
            op: ClientOp::Begin { txn: TxnId(5) },
        },
    );
    assert_eq!(
        p.drain_outputs(),
        vec![Output::ClientReply {
            request: RequestId(5),
            reply: ClientReply::Refused(ClientError::UnknownDatabase {
                database: DatabaseId(9)
            })
        }]
    );
}

#[test]
fn r_sync_7_resume_of_a_database_that_is_not_suspended_is_refused() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let now = c.now_ms();
    let p = c.replica_mut(P);
    p.handle_admin(now, RequestId(1), AdminCommand::ResumeDatabase(DB));
    p.handle_admin(
        now,
        RequestId(2),
        AdminCommand::SuspendDatabase(DatabaseId(3)),
    );
    assert_eq!(
        p.drain_outputs(),
        vec![
            Output::AdminReply {
                request: RequestId(1),
                result: Err(AdminError::NotSuspended { database: DB })
            },
            Output::AdminReply {
                request: RequestId(2),
                result: Err(AdminError::UnknownDatabase {
                    database: DatabaseId(3)
                })
            },
        ]
    );
    let epoch = p.epoch().unwrap();
    p.handle_admin(now, RequestId(3), AdminCommand::SuspendDatabase(DB));
    let state = p.persistent_state().unwrap();
    assert_eq!(state.databases[0].suspended, Some(SuspendReason::User));
    assert_eq!(
        p.drain_outputs(),
        vec![
            Output::PersistState(state),
            send(
                S,
                epoch,
                MessageBody::Suspend {
                    database: DB,
                    reason: SuspendReason::Primary
                }
            ),
            Output::AdminReply {
                request: RequestId(3),
                result: Ok(AdminOutcome::Done)
            },
        ],
        "suspending the primary database stops data movement to every secondary"
    );
}

#[test]
fn before_create_or_join_every_input_is_answered_and_nothing_else_happens() {
    let mut r = Replica::new("R0");
    r.handle_client(0, request(1, ClientOp::Begin { txn: TxnId(1) }));
    r.handle_admin(0, RequestId(2), AdminCommand::Failover);
    r.deliver(0, S, msg(Epoch::NONE, MessageBody::Ping));
    assert_eq!(
        r.handle_storage(0, hardened(1)),
        Err(StorageContractError::NotInAvailabilityGroup)
    );
    assert_eq!(
        r.drain_outputs(),
        vec![
            Output::ClientReply {
                request: RequestId(1),
                reply: ClientReply::Refused(ClientError::NotInAvailabilityGroup)
            },
            Output::AdminReply {
                request: RequestId(2),
                result: Err(AdminError::NotInAvailabilityGroup)
            },
            Output::Ignored {
                source: InputSource::Peer(S),
                reason: IgnoredReason::NotInAvailabilityGroup
            },
        ]
    );
    let config = ag_config(ClusterType::None, &[Sync, Sync], 1);
    let mut r1 = Replica::new("R1");
    r1.handle_admin(
        0,
        RequestId(3),
        AdminCommand::CreateAvailabilityGroup(config.clone()),
    );
    assert!(matches!(
        r1.drain_outputs()[..],
        [Output::AdminReply {
            result: Err(AdminError::WrongReplicaForCommand { .. }),
            ..
        }]
    ));
    let mut stranger = Replica::new("X");
    stranger.handle_admin(0, RequestId(4), AdminCommand::JoinAvailabilityGroup(config));
    assert_eq!(
        stranger.drain_outputs(),
        vec![Output::AdminReply {
            request: RequestId(4),
            result: Err(AdminError::NotInConfiguration { name: "X".into() })
        }]
    );
}

#[test]
fn r_fail_4_a_secondary_reverts_to_the_fork_point_then_reports() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    for txn in 1..=2 {
        c.commit(P, DB, txn, &[("k", "v")]);
        c.run();
    }
    let now = c.now_ms();
    let s = c.replica_mut(S);
    let epoch = s.epoch().unwrap();
    assert_eq!(s.end_of_log_lsn(DB), Some(Lsn(2)));
    s.deliver(
        now,
        P,
        msg(
            epoch,
            MessageBody::Revert {
                database: DB,
                to: Lsn(1),
            },
        ),
    );
    assert_eq!(
        s.drain_outputs(),
        vec![Output::RevertLog {
            database: DB,
            to: Lsn(1)
        }]
    );
    assert_eq!(s.end_of_log_lsn(DB), Some(Lsn(1)));
    assert_eq!(
        s.observe().unwrap().databases[0].synchronization_state,
        Some(SyncState::Reverting)
    );
    assert_eq!(
        s.status().unwrap().databases[0].last_redone_lsn,
        Lsn(1),
        "data rolled back"
    );
    s.handle_storage(
        now,
        StorageEvent::LogReverted {
            database: DB,
            to: Lsn(1),
        },
    )
    .unwrap();
    assert_eq!(
        s.drain_outputs(),
        vec![send(
            P,
            epoch,
            MessageBody::Reverted {
                database: DB,
                end: Lsn(1),
                hardened: Lsn(1),
                redone: Lsn(1)
            }
        )]
    );
    assert_eq!(
        s.observe().unwrap().databases[0].synchronization_state,
        Some(SyncState::Initializing)
    );
}

#[test]
fn r_fail_4_a_database_that_has_not_accepted_the_forced_fork_is_suspended_from_partner() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync, Sync], 1));
    c.commit(P, DB, 1, &[("k", "v")]);
    c.run();
    let old = c.epoch(P).unwrap();
    c.crash(P);
    c.admin(S, AdminCommand::ForceFailoverAllowDataLoss);
    c.run();
    let now = c.now_ms();
    let link = c.connection(S, ReplicaId(2)).unwrap();
    let s = c.replica_mut(S);
    let epoch = s.epoch().unwrap();
    assert!(epoch > old);
    let send = |to, epoch, body| match send(to, epoch, body) {
        Output::Send { to, message, .. } => Output::Send {
            to,
            connection: link,
            message,
        },
        other => other,
    };
    let stale = crate::message::DatabaseHello {
        database: DB,
        end_of_log: Lsn(1),
        hardened: Lsn(1),
        redone: Lsn(1),
        forks: vec![crate::log::ForkSegment {
            epoch: old,
            first_lsn: Lsn(1),
        }],
        accepted_epoch: old,
        suspended: None,
        reverting: false,
    };
    s.deliver(
        now,
        ReplicaId(2),
        msg(epoch, MessageBody::Rejoin(stale.clone())),
    );
    assert_eq!(
        s.drain_outputs(),
        vec![send(
            ReplicaId(2),
            epoch,
            MessageBody::Suspend {
                database: DB,
                reason: SuspendReason::Partner
            }
        )]
    );
    let accepted = crate::message::DatabaseHello {
        accepted_epoch: epoch,
        ..stale
    };
    s.deliver(now, ReplicaId(2), msg(epoch, MessageBody::Rejoin(accepted)));
    assert_eq!(
        s.drain_outputs(),
        vec![send(
            ReplicaId(2),
            epoch,
            MessageBody::SyncState {
                database: DB,
                state: SyncState::Synchronized
            }
        )],
        "resumed: its log is a prefix (nothing to revert) and it is caught up"
    );
}

/// The rule an invariant violation names, after `mutate` broke the state of replica `r`.
fn broken_rule(
    c: &mut Cluster,
    r: ReplicaId,
    mutate: impl FnOnce(&mut super::Core),
) -> &'static str {
    let replica = c.replica_mut(r);
    replica.validate().expect("valid before");
    mutate(replica.core.as_mut().expect("in a group"));
    replica
        .validate()
        .expect_err("the broken state is caught")
        .rule
}

/// `validate` did not relate acknowledged commits to the replicas that must hold them: the
/// participants (R-COMMIT-2) and every replica the manager may hold as SYNCHRONIZED
/// (R-COMMIT-4/6).
#[test]
fn validate_checks_acknowledged_commits_against_participants_and_publications() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    c.commit(P, DB, 1, &[("k", "v")]);
    c.run();
    let rule = broken_rule(&mut c, P, |core| {
        // S is in the confirmed publication but "reported" nothing hardened.
        core.dbs[0].as_primary().hardened_acked.insert(S, Lsn(0));
    });
    assert_eq!(rule, "R-COMMIT-6");

    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.commit(P, DB, 1, &[("k", "v")]);
    c.run();
    let rule = broken_rule(&mut c, P, |core| {
        let progress = core.dbs[0].progress_mut(S).unwrap();
        assert!(progress.synchronized);
        progress.hardened = Lsn(0);
        progress.redone = Lsn(0);
    });
    assert_eq!(rule, "R-COMMIT-2");
}

/// `validate` did not tie the failover bookkeeping to the roles it belongs to.
#[test]
fn validate_ties_failover_state_to_roles() {
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let rule = broken_rule(&mut c, P, |core| {
        core.failover = Some(super::PendingFailover {
            request: RequestId(1),
            primary: S,
            forced: false,
            ends: None,
        });
    });
    assert_eq!(
        rule, "R-FAIL-3",
        "a planned failover waits on a SECONDARY only"
    );
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    assert_eq!(
        broken_rule(&mut c, S, |core| core.handover_to = Some(P)),
        "R-FAIL-3",
        "only a RESOLVING former primary hands over"
    );
    let mut c = Cluster::new(ag_config(ClusterType::External, &[Sync, Sync], 1));
    let rule = broken_rule(&mut c, P, |core| {
        core.awaiting_promotion = Some(super::AwaitingPromotion {
            kind: crate::input::PromotionKind::Forced,
            request: None,
        });
    });
    assert_eq!(rule, "R-ROLE-4", "a primary awaits no promotion");
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    assert_eq!(
        broken_rule(&mut c, S, |core| core.primary = Some(S)),
        "R-ROLE-1",
        "primary == me only on the primary"
    );
}

/// `validate` did not bound the requested fsync and redo, the primary's revert and
/// initialization targets, nor the secondaries of a suspended primary database.
#[test]
fn validate_bounds_storage_requests_phases_and_suspensions() {
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.commit(P, DB, 1, &[("k", "v")]);
    c.run();
    assert_eq!(
        broken_rule(&mut c, S, |core| core.dbs[0].fsync_requested = Lsn(0)),
        "R-SYNC-2",
        "hardened beyond the fsync asked for"
    );
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.commit(P, DB, 1, &[("k", "v")]);
    c.run();
    assert_eq!(
        broken_rule(&mut c, S, |core| core.dbs[0].redo_requested = Lsn(0)),
        "R-SYNC-2",
        "redone beyond the redo asked for"
    );
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let rule = broken_rule(&mut c, P, |core| {
        let progress = core.dbs[0].progress_mut(S).unwrap();
        progress.synchronized = false;
        progress.phase = Phase::Reverting { to: Lsn(5) };
    });
    assert_eq!(rule, "R-FAIL-4", "a fork point beyond the primary's log");
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    let rule = broken_rule(&mut c, P, |core| {
        core.dbs[0].suspended = Some(SuspendReason::User);
    });
    assert_eq!(
        rule, "R-SYNC-7",
        "a suspended primary database moves no data"
    );
    let mut c = Cluster::new(ag_config(ClusterType::None, &[Sync, Sync], 1));
    c.commit(P, DB, 1, &[("k", "v")]);
    c.run();
    let rule = broken_rule(&mut c, S, |core| core.epoch = Epoch::NONE);
    assert_eq!(rule, "CORE", "records newer than the replica's epoch");
}
