//! The node's recovery of a damaged write-ahead log when the database has a checkpoint
//! (`hadr_node::node::storage::open_wals`): records the data file's checkpoint holds are not
//! lost when the log's copy of them is damaged, and the log goes on after the checkpoint.

use hadr_core::testing::ag_config;
use hadr_core::{Epoch, LogDamage, LogRecord, PersistentDatabase, PersistentState, Write};
use hadr_node::node::storage::{open_wals, DataDir};
use hadr_node::wal::{Wal, RECORD_HEADER_LEN, WAL_HEADER_LEN};
use hadr_types::AvailabilityMode::SynchronousCommit as Sync;
use hadr_types::{ClusterType, DatabaseId, Lsn, ReplicaId, Role, TxnId};

const DB: DatabaseId = DatabaseId(0);

fn record(lsn: u64) -> LogRecord {
    LogRecord {
        lsn: Lsn(lsn),
        epoch: Epoch::NONE,
        txn: TxnId(lsn as u32),
        writes: vec![Write {
            key: format!("k{lsn}"),
            value: "v".repeat(40),
        }],
    }
}

/// A data directory whose log of `DB` holds records 1..=10, record 3 flipped (valid records
/// after it: damage, not a torn tail), and whose state records a checkpoint at `checkpointed`.
fn damaged_dir(checkpointed: Lsn) -> (tempfile::TempDir, DataDir, PersistentState) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path()).unwrap();
    let path = dir.wal_path(DB);
    let (mut wal, _) = Wal::open(&path, DB).unwrap();
    wal.append(&(1..=10).map(record).collect::<Vec<_>>())
        .unwrap();
    wal.sync().unwrap();
    drop(wal);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut at = WAL_HEADER_LEN as usize;
    for _ in 0..2 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += RECORD_HEADER_LEN as usize + len;
    }
    bytes[at + RECORD_HEADER_LEN as usize + 3] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let state = PersistentState {
        config: ag_config(ClusterType::None, &[Sync, Sync], 1),
        replica: ReplicaId(1),
        role: Role::Secondary,
        epoch: Epoch::NONE,
        last_forced_epoch: Epoch::NONE,
        databases: vec![PersistentDatabase {
            checkpointed,
            ..PersistentDatabase::default()
        }],
    };
    (tmp, dir, state)
}

/// Opens the logs of `state` and appends the record after `next - 1`: the log takes it.
fn open_and_append(dir: &DataDir, state: &mut PersistentState, next: u64) -> Vec<LogRecord> {
    let mut opened = open_wals(dir, state).unwrap();
    let (wal, records) = opened.remove(0);
    let mut wal = wal;
    assert_eq!(wal.last_lsn(), Lsn(next - 1), "the log ends before {next}");
    wal.append(&[record(next)]).unwrap();
    wal.sync().unwrap();
    records
}

#[test]
fn damage_only_where_the_checkpoint_holds_every_record_loses_nothing() {
    let (_tmp, dir, mut state) = damaged_dir(Lsn(10));
    open_and_append(&dir, &mut state, 11);
    assert_eq!(state.databases[0].damaged, None, "nothing was lost");
    let stored = dir.load_state().unwrap();
    assert!(
        stored.is_none_or(|s| s.databases[0].damaged.is_none()),
        "no damage recorded"
    );
    let kept_aside = std::fs::read_dir(dir.wal_path(DB).parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains(".damaged-"));
    assert!(
        kept_aside,
        "the damaged file is still kept for the operator"
    );
}

#[test]
fn damage_past_the_checkpoint_counts_the_checkpointed_records_as_kept() {
    let (_tmp, dir, mut state) = damaged_dir(Lsn(5));
    open_and_append(&dir, &mut state, 6);
    assert_eq!(
        state.databases[0].damaged,
        Some(LogDamage {
            kept: Lsn(5),
            lost_through: Lsn(10)
        })
    );
    assert_eq!(
        dir.load_state().unwrap().unwrap().databases[0].damaged,
        state.databases[0].damaged,
        "recorded durably"
    );
}

#[test]
fn damage_without_a_checkpoint_keeps_the_intact_prefix() {
    let (_tmp, dir, mut state) = damaged_dir(Lsn(0));
    let records = open_and_append(&dir, &mut state, 3);
    assert_eq!(records.len(), 2);
    assert_eq!(
        state.databases[0].damaged,
        Some(LogDamage {
            kept: Lsn(2),
            lost_through: Lsn(10)
        })
    );
}
