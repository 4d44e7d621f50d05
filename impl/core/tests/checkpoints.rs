//! Checkpoints and log truncation on the deterministic cluster (R-SYNC-7): the log after the
//! last checkpoint is all a replica keeps in memory; a secondary that is down holds the
//! checkpoints of every copy back (`AVAILABILITY_REPLICA`), so that when it returns the log it
//! needs is still there; reads and restarts see the checkpointed data through the data files.

use hadr_core::testing::{ag_config, Cluster};
use hadr_core::{ClientError, ClientOp, ClientReply, CoreOptions, DataStore, IndefiniteCause};
use hadr_types::AvailabilityMode::SynchronousCommit as Sync;
use hadr_types::{ApplicationIntent, ClusterType, DatabaseId, LogReuseWait, Lsn, ReplicaId, TxnId};

const R0: ReplicaId = ReplicaId(0);
const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const DB: DatabaseId = DatabaseId(0);

/// A group of three SYNCHRONOUS_COMMIT replicas (CLUSTER_TYPE NONE) that checkpoint every
/// `bytes` of log.
fn cluster(bytes: u64) -> Cluster {
    let config = ag_config(ClusterType::None, &[Sync, Sync, Sync], 1);
    let options = CoreOptions {
        checkpoint_bytes: bytes,
        ..CoreOptions::default()
    };
    Cluster::with_options(config, options)
}

/// Commits transactions `from..=to` on `p`, each writing `t<txn>` and `k`, all acknowledged.
fn commit_all(c: &mut Cluster, p: ReplicaId, txns: std::ops::RangeInclusive<u32>) {
    for txn in txns {
        let value = txn.to_string();
        let key = format!("t{txn}");
        let request = c.commit(p, DB, txn, &[(&key, &value), ("k", &value)]);
        c.run();
        assert!(
            matches!(c.reply(p, request), Some(ClientReply::Committed { .. })),
            "T{txn} acknowledged: {:?}",
            c.reply(p, request)
        );
    }
}

fn checkpointed(c: &Cluster, r: ReplicaId) -> Lsn {
    c.replica(r).checkpointed(DB).unwrap()
}

fn reuse_wait(c: &Cluster, r: ReplicaId) -> LogReuseWait {
    c.replica(r).status().unwrap().databases[0].log_reuse_wait
}

/// Whether `r`'s copy holds transaction `txn`: in its log after the checkpoint, or in its data
/// file (the secondaries of this group allow no connections to read from).
fn holds(c: &Cluster, r: ReplicaId, txn: u32) -> bool {
    let log = c.replica(r).log(DB).unwrap();
    let in_log = log.iter().any(|x| x.txn.0 == txn);
    let stored = c.node(r).disk.data.get(DB, &format!("t{txn}")).unwrap();
    in_log || stored == Some(txn.to_string())
}

fn read(c: &mut Cluster, r: ReplicaId, intent: ApplicationIntent, key: &str) -> Option<String> {
    match c.read(r, DB, intent, key) {
        ClientReply::Value(value) => value,
        other => panic!("a read of {key} on {r}: {other:?}"),
    }
}

/// Every copy checkpoints and drops the log it covers; what is read, from the log after the
/// checkpoint or from the data file, is every acknowledged commit.
#[test]
fn r_sync_7_every_copy_checkpoints_and_reads_see_every_commit() {
    let mut c = cluster(300);
    commit_all(&mut c, R0, 1..=40);
    for r in [R0, R1, R2] {
        let at = checkpointed(&c, r);
        assert!(at > Lsn(20), "{r} checkpointed at {at}");
        let log = c.replica(r).log(DB).unwrap();
        assert_eq!(
            log.first().map(|x| x.lsn),
            (at < Lsn(40)).then_some(Lsn(at.0 + 1)),
            "{r} keeps only the log after its checkpoint"
        );
        assert!(log.len() < 20, "{r} holds {} records", log.len());
    }
    for txn in [1, 17, 40] {
        assert_eq!(
            read(&mut c, R0, ApplicationIntent::ReadWrite, &format!("t{txn}")),
            Some(txn.to_string()),
            "T{txn} on the primary"
        );
        for r in [R1, R2] {
            assert!(holds(&c, r, txn), "T{txn} on {r}");
        }
    }
    assert_eq!(
        read(&mut c, R0, ApplicationIntent::ReadWrite, "k").as_deref(),
        Some("40")
    );
    let status = c.replica(R0).status().unwrap();
    assert_eq!(status.databases[0].checkpoint_lsn, checkpointed(&c, R0));
    assert!(status.databases[0].stable_lsn >= checkpointed(&c, R0));
}

/// A secondary that is down holds back every checkpoint past what it hardened: the primary
/// shows `AVAILABILITY_REPLICA`, keeps the log it will ship, and when the secondary returns it
/// catches up from that log and the checkpoints move on.
#[test]
fn r_sync_7_a_secondary_that_is_down_holds_truncation_back_until_it_catches_up() {
    let mut c = cluster(300);
    commit_all(&mut c, R0, 1..=10);
    c.crash(R2);
    let hardened = c.node(R2).disk.durable[0] as u64;
    commit_all(&mut c, R0, 11..=60);
    assert!(
        checkpointed(&c, R0) <= Lsn(hardened),
        "the primary checkpointed to {} past the {hardened} its down secondary hardened",
        checkpointed(&c, R0)
    );
    assert_eq!(reuse_wait(&c, R0), LogReuseWait::AvailabilityReplica);
    assert_eq!(reuse_wait(&c, R1), LogReuseWait::AvailabilityReplica);
    assert!(c.replica(R0).log(DB).unwrap().len() >= 50);
    c.restart(R2);
    commit_all(&mut c, R0, 61..=70);
    assert_eq!(c.replica(R2).end_of_log_lsn(DB), Some(Lsn(70)));
    assert!(
        checkpointed(&c, R0) > Lsn(hardened),
        "checkpoints move on once it caught up"
    );
    assert!(!c.replica(R0).status().unwrap().databases[0].secondaries[1].needs_reseed);
    assert!(holds(&c, R2, 33));
}

/// The log that a checkpoint covers is gone from memory, so a restart recovers it from the data
/// file: a restarted primary (CLUSTER_TYPE NONE) serves every commit, the ids of checkpointed
/// transactions stay taken, and a retried commit of one is told its outcome is checkpointed.
#[test]
fn r_sync_7_a_restart_recovers_from_the_checkpoint_and_the_log_after_it() {
    let mut c = cluster(300);
    commit_all(&mut c, R0, 1..=40);
    let at = checkpointed(&c, R0);
    assert!(at > Lsn(0));
    c.crash(R0);
    c.restart(R0);
    assert_eq!(checkpointed(&c, R0), at, "the checkpoint is durable");
    assert_eq!(c.replica(R0).end_of_log_lsn(DB), Some(Lsn(40)));
    for txn in [1, 20, 40] {
        assert_eq!(
            read(&mut c, R0, ApplicationIntent::ReadWrite, &format!("t{txn}")),
            Some(txn.to_string())
        );
    }
    // Transaction 1 is checkpointed: its id is taken, a retry learns nothing more.
    let begin = c.client(R0, DB, ClientOp::Begin { txn: TxnId(1) });
    c.run();
    assert!(
        matches!(
            c.reply(R0, begin),
            Some(ClientReply::Refused(
                ClientError::TransactionIdReused { .. }
            ))
        ),
        "a checkpointed transaction id is not reused: {:?}",
        c.reply(R0, begin)
    );
    let retry = c.client(R0, DB, ClientOp::Commit { txn: TxnId(2) });
    c.run();
    assert_eq!(
        c.reply(R0, retry),
        Some(&ClientReply::Indefinite(
            IndefiniteCause::OutcomeCheckpointed
        ))
    );
    commit_all(&mut c, R0, 41..=45);
}
