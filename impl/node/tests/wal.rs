//! The write-ahead log through its public API, on real files: what survives a reopen, what a
//! crash in the middle of a write leaves, what corruption costs, and what callers may not do.
//!
//! The tests of the file's layout open logs with `WalOptions::plain()` (the file is exactly
//! the header and the records); the tests at the end open them as the node does (direct I/O,
//! preallocated), which needs a temporary directory on a file system that takes `O_DIRECT`.

use hadr_core::log::LogShapeError;
use hadr_core::{Epoch, LogRecord, Write};
use hadr_node::codec::Writer;
use hadr_node::wal::{
    header_with_base, tear_last_record, Damage, Recovered, TailProblem, Wal, WalError, WalOptions,
    BLOCK, DEFAULT_PREALLOCATE, MAX_RECORD_LEN, RECORD_HEADER_LEN, SECTOR, WAL_HEADER_LEN,
    WAL_V1_HEADER_LEN,
};
use hadr_types::{DatabaseId, Lsn, ReplicaId, TxnId};
use std::fs;
use std::path::{Path, PathBuf};

const DB: DatabaseId = DatabaseId(1);

fn epoch(term: u64) -> Epoch {
    Epoch {
        term,
        replica: ReplicaId(0),
        generation: 0,
    }
}

fn record(lsn: u64, term: u64) -> LogRecord {
    LogRecord {
        lsn: Lsn(lsn),
        epoch: epoch(term),
        txn: TxnId(lsn as u32 * 10),
        writes: vec![
            Write {
                key: format!("key-{lsn}"),
                value: format!("value of {lsn}"),
            },
            Write {
                key: "counter".into(),
                value: lsn.to_string(),
            },
        ],
    }
}

fn records(lsns: std::ops::RangeInclusive<u64>) -> Vec<LogRecord> {
    lsns.map(|lsn| record(lsn, 1)).collect()
}

fn wal_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("db1.wal")
}

fn open(path: &Path) -> (Wal, Recovered) {
    Wal::open_with(path, DB, WalOptions::plain()).unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// Writes `records` to a new log at `path`, synced, and returns each record's file offset.
fn write_log(path: &Path, records: &[LogRecord]) -> Vec<u64> {
    let (mut wal, _) = open(path);
    let mut offsets = Vec::new();
    for record in records {
        offsets.push(fs::metadata(path).unwrap().len());
        wal.append(std::slice::from_ref(record)).unwrap();
    }
    assert_eq!(wal.sync().unwrap(), Lsn(records.len() as u64));
    offsets
}

/// The bytes of a discarded tail that recovery counts: up to the last one that is not zero
/// (zeros could be preallocated space).
fn counted(tail: &[u8]) -> u64 {
    tail.iter()
        .rposition(|b| *b != 0)
        .map_or(0, |last| last as u64 + 1)
}

#[test]
fn a_new_log_is_created_empty_with_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (wal, recovered) = open(&path);
    assert_eq!(
        recovered,
        Recovered {
            base: Lsn(0),
            records: vec![],
            truncated_bytes: 0,
            stop_reason: None,
            damage: None
        }
    );
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(0), Lsn(0)));
    assert_eq!(wal.path(), path);
    assert_eq!(wal.database(), DB);
    assert_eq!(wal.base(), Lsn(0));
    assert_eq!(fs::read(&path).unwrap(), header_with_base(DB, Lsn(0)));
    assert_eq!(&fs::read(&path).unwrap()[..9], b"HADRWAL2\x01");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["db1.wal"], "no staging file is left behind");
}

#[test]
fn appended_and_synced_records_come_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open(&path);
    let mut expected = records(1..=3);
    wal.append(&expected).unwrap();
    let later = vec![record(4, 2), record(5, 2)];
    wal.append(&later).unwrap();
    expected.extend(later);
    assert_eq!(wal.sync().unwrap(), Lsn(5));
    drop(wal);

    let (wal, recovered) = open(&path);
    assert_eq!(recovered.records, expected);
    assert_eq!(
        (recovered.truncated_bytes, recovered.stop_reason),
        (0, None)
    );
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(5), Lsn(5)));
}

#[test]
fn group_commit_many_appends_are_made_durable_by_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(&wal_path(&dir));
    for record in records(1..=4) {
        wal.append(&[record]).unwrap();
        assert_eq!(
            wal.durable_lsn(),
            Lsn(0),
            "append alone makes nothing durable"
        );
    }
    assert_eq!(wal.last_lsn(), Lsn(4));
    assert_eq!(wal.sync().unwrap(), Lsn(4));
    assert_eq!(wal.durable_lsn(), Lsn(4));
    // Nothing new: a second sync has nothing to do and reports the same end.
    assert_eq!(wal.sync().unwrap(), Lsn(4));
    wal.append(&[]).unwrap();
    assert_eq!(wal.sync().unwrap(), Lsn(4));
}

/// A crash in the middle of writing the last record, at every byte it could stop at.
#[test]
fn a_torn_last_record_is_cut_off_at_every_byte_and_the_log_stays_appendable() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let all = records(1..=3);
    let offsets = write_log(&path, &all);
    let whole = fs::read(&path).unwrap();
    let last_start = offsets[2] as usize;
    for cut in last_start..whole.len() {
        fs::write(&path, &whole[..cut]).unwrap();
        let (mut wal, recovered) = open(&path);
        assert_eq!(recovered.records, all[..2], "cut at byte {cut}");
        assert_eq!(
            recovered.truncated_bytes,
            counted(&whole[last_start..cut]),
            "cut at byte {cut}"
        );
        if cut == last_start {
            assert_eq!(recovered.stop_reason, None);
        } else {
            let needed = if cut - last_start < RECORD_HEADER_LEN as usize {
                RECORD_HEADER_LEN
            } else {
                (whole.len() - last_start) as u64
            };
            assert_eq!(
                recovered.stop_reason,
                Some(TailProblem::Torn {
                    offset: last_start as u64,
                    needed,
                    available: (cut - last_start) as u64,
                }),
                "cut at byte {cut}"
            );
        }
        assert_eq!(fs::metadata(&path).unwrap().len(), last_start as u64);
        assert_eq!(wal.last_lsn(), Lsn(2));

        wal.append(&all[2..]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, reopened) = open(&path);
        assert_eq!(reopened.records, all);
        assert_eq!(fs::read(&path).unwrap(), whole);
    }
}

/// `Wal::inspect` (the offline observation of a stopped replica) sees what recovery would,
/// and changes nothing: a torn tail stays on disk, a missing log is not created.
#[test]
fn inspect_reports_what_recovery_would_keep_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let empty = Wal::inspect(&path, DB).unwrap();
    assert_eq!(empty, empty_log());
    assert!(!path.exists(), "inspect created the log");
    let all = records(1..=3);
    let offsets = write_log(&path, &all);
    let whole = fs::read(&path).unwrap();
    assert_eq!(Wal::inspect(&path, DB).unwrap().records, all);
    let torn = &whole[..whole.len() - 3];
    fs::write(&path, torn).unwrap();
    let inspected = Wal::inspect(&path, DB).unwrap();
    assert_eq!(inspected.records, all[..2]);
    assert_eq!(
        inspected.truncated_bytes,
        counted(&torn[offsets[2] as usize..]),
        "the torn tail is reported"
    );
    assert!(matches!(
        inspected.stop_reason,
        Some(TailProblem::Torn { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), torn, "inspect changed the file");
    let (_, recovered) = open(&path);
    assert_eq!(recovered, inspected, "recovery keeps what inspect reported");
    assert!(matches!(
        Wal::inspect(&path, DatabaseId(7)),
        Err(WalError::WrongDatabase { .. })
    ));
}

fn empty_log() -> Recovered {
    Recovered {
        base: Lsn(0),
        records: vec![],
        truncated_bytes: 0,
        stop_reason: None,
        damage: None,
    }
}

#[test]
fn a_zero_filled_tail_is_the_end_of_the_log_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=2));
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend([0; 4096]);
    fs::write(&path, &bytes).unwrap();
    let (mut wal, recovered) = open(&path);
    assert_eq!(recovered.records, records(1..=2));
    assert_eq!(
        (recovered.truncated_bytes, recovered.stop_reason),
        (0, None)
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "preallocated space is kept"
    );
    // The next record goes where the zeros begin.
    wal.append(&records(3..=3)).unwrap();
    wal.sync().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    drop(wal);
    assert_eq!(open(&path).1.records, records(1..=3));
}

/// The damage [`Wal::open`] refused `path` with; the file must be exactly `bytes` still.
fn damaged(path: &Path, bytes: &[u8]) -> Damage {
    let error = Wal::open_with(path, DB, WalOptions::plain()).unwrap_err();
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "the error names the file: {error}"
    );
    let WalError::Damaged { damage, .. } = error else {
        panic!("not refused as damaged: {error}");
    };
    assert_eq!(
        fs::read(path).unwrap(),
        bytes,
        "a damaged log is left alone"
    );
    *damage
}

/// Zeros where a record should start, then a valid record: not a torn write (nothing valid
/// would follow it) but a lost or zeroed block in the middle of the log. Nothing is cut.
#[test]
fn a_valid_record_after_zeros_is_damage_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let offsets = write_log(&path, &records(1..=3));
    let mut bytes = fs::read(&path).unwrap();
    let second = offsets[1] as usize;
    let third = offsets[2] as usize;
    bytes[second..third].fill(0);
    fs::write(&path, &bytes).unwrap();
    let damage = damaged(&path, &bytes);
    assert_eq!(
        damage,
        Damage {
            problem: TailProblem::Hole {
                offset: offsets[1],
                data_at: offsets[2]
            },
            kept: Lsn(1),
            kept_bytes: offsets[1],
            valid_at: Some(offsets[2]),
            lost_through: Lsn(3),
        }
    );
}

/// Zeros where a record should start, then bytes that are no valid record (the rest of a
/// record whose first sectors a crash kept from the disk): a torn tail, cut off.
#[test]
fn zeros_then_no_valid_record_is_a_torn_tail_and_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let offsets = write_log(&path, &records(1..=2));
    let mut bytes = fs::read(&path).unwrap();
    let second = offsets[1] as usize;
    bytes[second..second + RECORD_HEADER_LEN as usize].fill(0);
    fs::write(&path, &bytes).unwrap();
    let (_, recovered) = open(&path);
    assert_eq!(recovered.records, records(1..=1));
    assert!(matches!(
        recovered.stop_reason,
        Some(TailProblem::Hole { offset, .. }) if offset == offsets[1]
    ));
    assert_eq!(recovered.damage, None);
    assert_eq!(fs::metadata(&path).unwrap().len(), offsets[1]);
}

/// One flipped bit anywhere in a record that has a valid record after it (length, checksum or
/// payload) is damage: recovery refuses the log, names the first record it could not read and
/// the last LSN the file held, and changes nothing. The acknowledged records after the flip
/// are never silently dropped.
#[test]
fn a_flipped_bit_in_any_record_but_the_last_is_damage_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let all = records(1..=5);
    let offsets = write_log(&path, &all);
    let clean = fs::read(&path).unwrap();
    for (index, &offset) in offsets.iter().enumerate().take(4) {
        let next = offsets[index + 1] as usize;
        for at in [
            offset as usize,
            offset as usize + 5,
            offset as usize + 9,
            next - 1,
        ] {
            for bit in [0x01, 0x80] {
                let mut bytes = clean.clone();
                bytes[at] ^= bit;
                fs::write(&path, &bytes).unwrap();
                let damage = damaged(&path, &bytes);
                assert_eq!(
                    (damage.kept, damage.kept_bytes, damage.lost_through),
                    (Lsn(index as u64), offset, Lsn(5)),
                    "bit {bit:#x} of byte {at} (record {})",
                    index + 1
                );
                assert!(damage
                    .valid_at
                    .is_some_and(|at| at > offset && at <= next as u64));
                let inspected = Wal::inspect(&path, DB).unwrap();
                assert_eq!(inspected.records, all[..index]);
                assert_eq!(inspected.damage, Some(damage));
                assert_eq!(inspected.truncated_bytes, 0);
            }
        }
    }
}

/// A flipped bit in the last record, complete: no interrupted write leaves a whole record with
/// a wrong byte (a torn write leaves whole sectors of zeros), so this is damage too: that
/// record may be the last acknowledged commit, and it is not cut.
#[test]
fn a_flipped_bit_in_the_complete_last_record_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let all = records(1..=5);
    let offsets = write_log(&path, &all);
    let clean = fs::read(&path).unwrap();
    let last = offsets[4] as usize;
    for at in last..clean.len() {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let damage = damaged(&path, &bytes);
        assert_eq!(
            (damage.kept, damage.valid_at, damage.lost_through),
            (Lsn(4), None, Lsn(5)),
            "byte {at}"
        );
    }
}

/// A last record whose later sector never reached the disk (zeros from a sector boundary on)
/// is a torn write: cut off, and the log takes the record again.
#[test]
fn a_last_record_with_a_zeroed_sector_is_a_torn_write_and_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let mut all = records(1..=2);
    all.push(LogRecord {
        writes: vec![Write {
            key: "big".into(),
            value: "v".repeat(3 * SECTOR as usize),
        }],
        ..record(3, 1)
    });
    let offsets = write_log(&path, &all);
    let whole = fs::read(&path).unwrap();
    let first_boundary = (offsets[2] / SECTOR + 1) * SECTOR;
    for from in [
        first_boundary,
        first_boundary + SECTOR,
        first_boundary + 2 * SECTOR,
    ] {
        let mut bytes = whole.clone();
        bytes[from as usize..].fill(0);
        fs::write(&path, &bytes).unwrap();
        let (mut wal, recovered) = open(&path);
        assert_eq!(recovered.records, all[..2], "zeros from {from}");
        assert!(matches!(
            recovered.stop_reason,
            Some(TailProblem::ChecksumMismatch { .. })
        ));
        wal.append(&all[2..]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        assert_eq!(fs::read(&path).unwrap(), whole);
    }
    // Zeros that do not fill a sector of the record are no torn write: damage.
    let mut bytes = whole.clone();
    let inside = first_boundary as usize + 10;
    bytes[inside..inside + 100].fill(0);
    fs::write(&path, &bytes).unwrap();
    assert_eq!(damaged(&path, &bytes).valid_at, None);
}

#[test]
fn a_corrupt_length_is_never_read_past_and_the_records_after_it_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let offsets = write_log(&path, &records(1..=3));
    let mut bytes = fs::read(&path).unwrap();
    let second = offsets[1] as usize;
    bytes[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let damage = damaged(&path, &bytes);
    assert_eq!(
        damage.problem,
        TailProblem::TooLong {
            offset: second as u64,
            length: u32::MAX,
            limit: MAX_RECORD_LEN
        }
    );
    assert_eq!(
        (damage.kept, damage.valid_at.unwrap(), damage.lost_through),
        (Lsn(1), offsets[2], Lsn(3))
    );
}

/// A record with a valid checksum whose LSN does not follow: bytes no correct write leaves
/// (a misdirected write), so damage, not a tail.
#[test]
fn a_checksummed_record_that_does_not_continue_the_log_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=2));
    let good_len = fs::metadata(&path).unwrap().len();
    let mut payload = Vec::new();
    Writer::new(&mut payload).put_log_record(&record(5, 1));
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend((payload.len() as u32).to_le_bytes());
    bytes.extend(crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend(&payload);
    fs::write(&path, &bytes).unwrap();

    let damage = damaged(&path, &bytes);
    assert_eq!(
        damage,
        Damage {
            problem: TailProblem::OutOfSequence {
                offset: good_len,
                source: LogShapeError::NotContiguous {
                    index: 0,
                    found: Lsn(5),
                    expected: Lsn(3)
                }
            },
            kept: Lsn(2),
            kept_bytes: good_len,
            valid_at: Some(good_len),
            lost_through: Lsn(5),
        }
    );
}

/// Quarantine keeps the damaged file byte for byte under another name and starts the log
/// again from its intact prefix, which reopens clean and takes the next record; a log that is
/// not damaged is left alone.
#[test]
fn quarantine_keeps_the_damaged_file_and_restarts_the_log_from_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let all = records(1..=5);
    let offsets = write_log(&path, &all);
    let (_, _, kept) = Wal::quarantine(&path, DB, WalOptions::plain()).unwrap();
    assert_eq!(kept, None, "an intact log is not quarantined");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

    let mut bytes = fs::read(&path).unwrap();
    bytes[offsets[2] as usize + 10] ^= 0x04;
    fs::write(&path, &bytes).unwrap();
    let (mut wal, recovered, kept) = Wal::quarantine(&path, DB, WalOptions::plain()).unwrap();
    let kept = kept.expect("the damaged log is kept");
    assert_eq!(fs::read(&kept).unwrap(), bytes, "kept byte for byte");
    assert!(kept
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("db1.wal.damaged-"));
    assert_eq!(recovered.records, all[..2]);
    assert_eq!(fs::read(&path).unwrap(), bytes[..offsets[2] as usize]);
    wal.append(&records(3..=3)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(open(&path).1.records, records(1..=3));
    // A second quarantine of the same name keeps both copies.
    let mut again = fs::read(&path).unwrap();
    again[offsets[1] as usize + 10] ^= 0x04;
    fs::write(&path, &again).unwrap();
    let (_, _, second) = Wal::quarantine(&path, DB, WalOptions::plain()).unwrap();
    let second = second.unwrap();
    assert_ne!(second, kept);
    assert_eq!(fs::read(&second).unwrap(), again);
    assert_eq!(fs::read(&kept).unwrap(), bytes);
}

#[test]
fn truncate_after_discards_the_records_after_the_fork_point_durably() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let offsets = write_log(&path, &records(1..=5));
    let (mut wal, _) = open(&path);
    wal.append(&[record(6, 1)]).unwrap(); // not synced: truncation makes the rest durable
    wal.truncate_after(Lsn(2)).unwrap();
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(2), Lsn(2)));
    assert_eq!(fs::metadata(&path).unwrap().len(), offsets[2]);
    // After the fork point the log goes on in the new epoch.
    wal.append(&[record(3, 2)]).unwrap();
    assert_eq!(wal.sync().unwrap(), Lsn(3));
    // Truncating at or beyond the end changes nothing.
    wal.truncate_after(Lsn(3)).unwrap();
    wal.truncate_after(Lsn(u64::MAX)).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(3));
    drop(wal);

    let (mut wal, recovered) = open(&path);
    assert_eq!(
        recovered.records,
        [record(1, 1), record(2, 1), record(3, 2)]
    );
    wal.truncate_after(Lsn(0)).unwrap();
    drop(wal);
    let (_, recovered) = open(&path);
    assert!(recovered.records.is_empty());
    assert_eq!(fs::metadata(&path).unwrap().len(), WAL_HEADER_LEN);
}

#[test]
fn a_file_that_is_not_a_wal_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    for contents in [&b"NOTAWAL!\x01 and more"[..], b"HADRWAL", b""] {
        fs::write(&path, contents).unwrap();
        let error = Wal::open(&path, DB).unwrap_err();
        assert!(matches!(error, WalError::BadHeader { .. }), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()));
        assert_eq!(
            fs::read(&path).unwrap(),
            contents,
            "a refused file is left alone"
        );
    }
}

/// A flipped byte in the magic of a log whose records are intact: the header cannot be trusted
/// to say whose log it is, so it is damage (nothing kept, every record at stake), and
/// quarantine starts an empty log with a good header.
#[test]
fn a_damaged_header_before_valid_records_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=3));
    let mut bytes = fs::read(&path).unwrap();
    bytes[2] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let damage = damaged(&path, &bytes);
    assert!(matches!(damage.problem, TailProblem::Header { .. }));
    assert_eq!((damage.kept, damage.lost_through), (Lsn(0), Lsn(3)));
    let (_, recovered, kept) = Wal::quarantine(&path, DB, WalOptions::plain()).unwrap();
    assert_eq!(fs::read(kept.unwrap()).unwrap(), bytes);
    assert!(recovered.records.is_empty());
    assert_eq!(fs::read(&path).unwrap(), header_with_base(DB, Lsn(0)));
}

#[test]
fn the_log_of_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=1));
    let error = Wal::open(&path, DatabaseId(2)).unwrap_err();
    assert!(matches!(
        error,
        WalError::WrongDatabase {
            expected: DatabaseId(2),
            found: DatabaseId(1),
            ..
        }
    ));
    assert!(error.to_string().contains("database#1"), "{error}");
}

#[test]
fn records_that_do_not_continue_the_log_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open(&path);
    wal.append(&[record(1, 2)]).unwrap();
    let before = fs::metadata(&path).unwrap().len();

    let gap = wal.append(&[record(3, 2)]).unwrap_err();
    assert!(matches!(
        gap,
        WalError::OutOfSequence {
            source: LogShapeError::NotContiguous {
                found: Lsn(3),
                expected: Lsn(2),
                ..
            },
            ..
        }
    ));
    let back = wal.append(&[record(2, 1)]).unwrap_err();
    assert!(matches!(
        back,
        WalError::OutOfSequence {
            source: LogShapeError::EpochGoesBack { .. },
            ..
        }
    ));
    // A run whose second record repeats an LSN is refused whole.
    let repeat = wal.append(&[record(2, 2), record(2, 2)]).unwrap_err();
    assert!(matches!(repeat, WalError::OutOfSequence { .. }));
    assert_eq!(fs::metadata(&path).unwrap().len(), before);
    assert_eq!(wal.last_lsn(), Lsn(1));

    wal.append(&[record(2, 2)]).unwrap();
    assert_eq!(wal.sync().unwrap(), Lsn(2));
}

#[test]
fn a_record_too_large_to_ship_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open(&path);
    let mut huge = record(2, 1);
    huge.writes[0].value = "x".repeat(MAX_RECORD_LEN as usize);
    let error = wal.append(&[record(1, 1), huge]).unwrap_err();
    assert!(
        matches!(error, WalError::RecordTooLarge { lsn: Lsn(2), limit, .. } if limit == MAX_RECORD_LEN)
    );
    assert_eq!(wal.last_lsn(), Lsn(0));
    assert_eq!(fs::metadata(&path).unwrap().len(), WAL_HEADER_LEN);
    wal.append(&[record(1, 1)]).unwrap();
}

// The log as the node opens it: direct I/O, preallocated.

fn open_default(path: &Path) -> (Wal, Recovered) {
    open_with(path, WalOptions::default())
}

fn open_with(path: &Path, options: WalOptions) -> (Wal, Recovered) {
    let opened = Wal::open_with(path, DB, options).unwrap_or_else(|e| panic!("open failed: {e}"));
    if options.direct {
        assert!(
            opened.0.is_direct(),
            "the file system of {} refuses direct I/O (O_DIRECT), so the direct path cannot be \
             tested there (tmpfs did before Linux 6.6): point TMPDIR at a directory on a disk (ext4, xfs)",
            path.display()
        );
    }
    opened
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn the_default_log_keeps_records_in_memory_until_a_flush_writes_them_into_preallocated_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open_default(&path);
    let allocated = file_len(&path);
    assert!(allocated >= WAL_HEADER_LEN + DEFAULT_PREALLOCATE);
    assert_eq!(allocated % BLOCK, 0, "the file ends on a block boundary");
    wal.append(&records(1..=3)).unwrap();
    assert!(
        fs::read(&path).unwrap()[WAL_HEADER_LEN as usize..]
            .iter()
            .all(|b| *b == 0),
        "an append alone writes nothing"
    );
    assert_eq!(wal.sync().unwrap(), Lsn(3));
    assert_eq!(file_len(&path), allocated, "a flush does not grow the file");
    drop(wal);

    for options in [WalOptions::default(), WalOptions::plain()] {
        let (wal, recovered) = open_with(&path, options);
        assert_eq!(recovered.records, records(1..=3), "{options:?}");
        assert_eq!(
            (recovered.truncated_bytes, recovered.stop_reason),
            (0, None)
        );
        assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(3), Lsn(3)));
    }
    assert_eq!(file_len(&path), allocated, "reopening keeps the zeros");
}

/// Each flush writes whole blocks again from the block the previous one ended in: records
/// already durable there must survive every rewrite, across block boundaries.
#[test]
fn flush_after_flush_rewrites_the_last_block_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open_default(&path);
    let all = records(1..=120);
    for (n, record) in all.iter().enumerate() {
        wal.append(std::slice::from_ref(record)).unwrap();
        if n % 3 != 1 {
            assert_eq!(wal.sync().unwrap(), record.lsn);
        }
    }
    wal.sync().unwrap();
    assert!(
        file_len(&path) > 2 * BLOCK,
        "the records span several blocks"
    );
    drop(wal);
    assert_eq!(open_default(&path).1.records, all);
}

/// A flush job run on another handle (the node's flusher thread) while the log goes on
/// appending: it makes exactly its records durable, and nothing else flushes or cuts the log
/// until it is reported.
#[test]
fn a_flush_job_makes_exactly_its_records_durable_and_is_the_only_flush_until_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open_default(&path);
    let handle = wal.flush_handle().unwrap();
    wal.append(&records(1..=40)).unwrap();
    let first = wal.prepare_flush().unwrap().expect("something to flush");
    assert_eq!(first.up_to(), Lsn(40));
    wal.append(&records(41..=90)).unwrap();
    for refused in [
        wal.prepare_flush().map(|_| ()),
        wal.sync().map(|_| ()),
        wal.truncate_after(Lsn(10)),
    ] {
        assert!(
            matches!(refused, Err(WalError::FlushInFlight { up_to, .. }) if up_to == Lsn(40)),
            "{refused:?}"
        );
    }
    first.run(&handle).unwrap();
    assert_eq!(Wal::inspect(&path, DB).unwrap().records, records(1..=40));
    wal.mark_durable(first.up_to());
    assert_eq!(wal.durable_lsn(), Lsn(40));
    let second = wal.prepare_flush().unwrap().expect("41..=90 to flush");
    assert_eq!(second.up_to(), Lsn(90));
    second.run(&handle).unwrap();
    wal.mark_durable(second.up_to());
    assert_eq!(wal.durable_lsn(), Lsn(90));
    assert!(
        wal.prepare_flush().unwrap().is_none(),
        "nothing appended since"
    );
    drop(wal);
    assert_eq!(open_default(&path).1.records, records(1..=90));
}

/// A job that fails leaves the log unusable: what it held is not on disk.
#[test]
fn a_failed_flush_job_makes_the_log_refuse_all_work() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open_default(&wal_path(&dir));
    wal.append(&records(1..=2)).unwrap();
    let job = wal.prepare_flush().unwrap().unwrap();
    drop(job);
    let error = wal.flush_failed(std::io::Error::other("disk gone"));
    assert!(error.to_string().contains("disk gone"), "{error}");
    assert!(matches!(
        wal.append(&records(3..=3)),
        Err(WalError::Failed { .. })
    ));
    assert!(matches!(wal.sync(), Err(WalError::Failed { .. })));
    assert_eq!(wal.durable_lsn(), Lsn(0));
}

/// Appends that reach the end of the preallocated space get more zeros ahead, a chunk at a
/// time; the file always ends on a block boundary.
#[test]
fn appends_past_the_preallocated_space_extend_it_by_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let options = WalOptions {
        direct: true,
        preallocate: BLOCK,
    };
    let (mut wal, _) = open_with(&path, options);
    let mut lengths = vec![file_len(&path)];
    let all = records(1..=200);
    for chunk in all.chunks(10) {
        wal.append(chunk).unwrap();
        wal.sync().unwrap();
        lengths.push(file_len(&path));
    }
    assert!(lengths.iter().all(|len| len % BLOCK == 0), "{lengths:?}");
    assert!(lengths.windows(2).all(|w| w[0] <= w[1]), "{lengths:?}");
    assert!(lengths.last() > lengths.first(), "{lengths:?}");
    drop(wal);
    assert_eq!(open_with(&path, options).1.records, all);
}

#[test]
fn truncate_after_in_a_preallocated_log_cuts_durably_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open_default(&path);
    wal.append(&records(1..=5)).unwrap();
    wal.sync().unwrap();
    wal.append(&[record(6, 1)]).unwrap(); // not flushed: truncation flushes it first
    wal.truncate_after(Lsn(2)).unwrap();
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(2), Lsn(2)));
    assert_eq!(file_len(&path) % BLOCK, 0, "preallocated again");
    assert_eq!(Wal::inspect(&path, DB).unwrap().records, records(1..=2));
    wal.append(&[record(3, 2)]).unwrap();
    assert_eq!(wal.sync().unwrap(), Lsn(3));
    drop(wal);

    let (mut wal, recovered) = open_default(&path);
    assert_eq!(
        recovered.records,
        [record(1, 1), record(2, 1), record(3, 2)]
    );
    wal.truncate_after(Lsn(0)).unwrap();
    wal.append(&[record(1, 3)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(open_default(&path).1.records, [record(1, 3)]);
}

/// A crash in the middle of the write of the last record in a preallocated file: the bytes it
/// did not reach read as zeros, whatever their number. Recovery keeps the records before it
/// and the log goes on.
#[test]
fn a_torn_last_record_in_preallocated_space_is_cut_off_and_the_log_stays_appendable() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let all = records(1..=3);
    let (mut wal, _) = open_default(&path);
    wal.append(&all).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let whole = fs::read(&path).unwrap();
    let last_len = {
        let plain = dir.path().join("plain.wal");
        let offsets = write_log(&plain, &all);
        file_len(&plain) - offsets[2]
    };
    assert!(
        tear_last_record(&path, 0).is_err(),
        "tearing nothing is refused"
    );
    for torn in 1..=last_len {
        fs::write(&path, &whole).unwrap();
        assert_eq!(tear_last_record(&path, torn).unwrap(), Some(Lsn(3)));
        let inspected = Wal::inspect(&path, DB).unwrap();
        let (mut wal, recovered) = open_default(&path);
        assert_eq!(recovered, inspected, "torn {torn}");
        assert_eq!(recovered.records, all[..2], "torn {torn}");
        assert!(
            recovered.truncated_bytes < last_len,
            "only what is left of the record counts, not the zeros after it: {recovered:?}"
        );
        // Torn in whole sectors: these small records sit in the sector they start in, so
        // the tear takes the whole record (zeros where it starts: the end of the log), or,
        // across a sector boundary, leaves its first sector and a checksum that fails.
        assert!(
            matches!(
                recovered.stop_reason,
                None | Some(TailProblem::ChecksumMismatch { .. })
            ),
            "a record torn by {torn} of its {last_len} bytes: {recovered:?}"
        );
        wal.append(&all[2..]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        assert_eq!(open_default(&path).1.records, all, "torn {torn}");
    }
}

/// Without direct I/O (the fallback where the file system refuses it) the log is still
/// preallocated, written through the page cache and flushed with fdatasync.
#[test]
fn buffered_writes_into_preallocated_space_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let options = WalOptions {
        direct: false,
        preallocate: DEFAULT_PREALLOCATE,
    };
    let (mut wal, _) = open_with(&path, options);
    assert!(!wal.is_direct());
    let allocated = file_len(&path);
    wal.append(&records(1..=50)).unwrap();
    assert_eq!(wal.sync().unwrap(), Lsn(50));
    wal.truncate_after(Lsn(30)).unwrap();
    wal.append(&[record(31, 2)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(file_len(&path) % BLOCK, 0);
    assert!(file_len(&path) >= allocated.min(WAL_HEADER_LEN + DEFAULT_PREALLOCATE));
    let mut expected = records(1..=30);
    expected.push(record(31, 2));
    assert_eq!(open_default(&path).1.records, expected);
}

// ---------------------------------------------------------------------------------------------
// The base: dropping the log's prefix after a checkpoint (`truncate_through`).

/// A log of `1..=last` (plain), truncated through `through`, reopened.
fn truncated_log(path: &Path, last: u64, through: u64) -> Vec<u8> {
    write_log(path, &records(1..=last));
    let (mut wal, _) = open(path);
    wal.truncate_through(Lsn(through)).unwrap();
    drop(wal);
    fs::read(path).unwrap()
}

fn names_in(dir: &tempfile::TempDir) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn truncate_through_drops_the_prefix_and_the_log_goes_on_after_a_reopen() {
    for options in [WalOptions::plain(), WalOptions::default()] {
        let dir = tempfile::tempdir().unwrap();
        let path = wal_path(&dir);
        let (mut wal, _) = open_with(&path, options);
        wal.append(&records(1..=10)).unwrap();
        wal.sync().unwrap();
        wal.append(&records(11..=12)).unwrap(); // not flushed yet: truncation makes it durable
        wal.truncate_through(Lsn(8)).unwrap();
        assert_eq!(wal.base(), Lsn(8), "{options:?}");
        assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(12), Lsn(12)));
        assert_eq!(
            names_in(&dir),
            ["db1.wal"],
            "no staging file is left behind"
        );
        let bytes = fs::read(&path).unwrap();
        assert_eq!(
            &bytes[..WAL_HEADER_LEN as usize],
            header_with_base(DB, Lsn(8))
        );
        if options.preallocate > 0 {
            assert_eq!(bytes.len() as u64 % BLOCK, 0, "preallocated as the log was");
            assert!(bytes.len() as u64 >= WAL_HEADER_LEN + options.preallocate);
        }
        // The log goes on: appends, flushes, a revert after the base.
        wal.append(&records(13..=15)).unwrap();
        assert_eq!(wal.sync().unwrap(), Lsn(15));
        wal.truncate_after(Lsn(14)).unwrap();
        wal.append(&[record(15, 2)]).unwrap();
        wal.sync().unwrap();
        drop(wal);

        let (mut wal, recovered) = open_with(&path, options);
        let mut expected = records(9..=14);
        expected.push(record(15, 2));
        assert_eq!(recovered.base, Lsn(8), "{options:?}");
        assert_eq!(recovered.records, expected, "{options:?}");
        assert_eq!(
            (recovered.truncated_bytes, recovered.stop_reason),
            (0, None)
        );
        assert_eq!((wal.base(), wal.last_lsn()), (Lsn(8), Lsn(15)));
        // Again, from a base > 0.
        wal.truncate_through(Lsn(14)).unwrap();
        wal.append(&[record(16, 2)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let recovered = open_with(&path, options).1;
        assert_eq!(recovered.base, Lsn(14));
        assert_eq!(recovered.records, [record(15, 2), record(16, 2)]);
    }
}

/// Everything dropped: the log holds no record, its last LSN is the base, and the next record
/// appended is base + 1.
#[test]
fn truncating_every_record_leaves_an_empty_log_that_ends_at_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let bytes = truncated_log(&path, 5, 5);
    assert_eq!(bytes, header_with_base(DB, Lsn(5)), "the header alone");
    let (mut wal, recovered) = open(&path);
    assert_eq!((recovered.base, recovered.records), (Lsn(5), vec![]));
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(5), Lsn(5)));
    let refused = wal.append(&records(1..=1)).unwrap_err();
    assert!(
        matches!(refused, WalError::OutOfSequence { .. }),
        "{refused}"
    );
    wal.append(&records(6..=6)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(open(&path).1.records, records(6..=6));
}

#[test]
fn truncate_through_at_or_before_the_base_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let before = truncated_log(&path, 6, 3);
    let (mut wal, _) = open(&path);
    for through in [0, 2, 3] {
        wal.truncate_through(Lsn(through)).unwrap();
        assert_eq!((wal.base(), wal.last_lsn()), (Lsn(3), Lsn(6)));
        assert_eq!(fs::read(&path).unwrap(), before, "through {through}");
    }
}

#[test]
fn truncate_through_beyond_the_end_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=4));
    let before = fs::read(&path).unwrap();
    let (mut wal, _) = open(&path);
    let error = wal.truncate_through(Lsn(5)).unwrap_err();
    assert!(
        matches!(
            error,
            WalError::TruncateBeyondEnd {
                through: Lsn(5),
                last: Lsn(4),
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!((wal.base(), wal.last_lsn()), (Lsn(0), Lsn(4)));
    // Still usable.
    wal.append(&records(5..=5)).unwrap();
    wal.truncate_through(Lsn(5)).unwrap();
    assert_eq!((wal.base(), wal.last_lsn()), (Lsn(5), Lsn(5)));
}

/// The crash-safety claim, at both ends: a crash before the rename leaves the old file (and
/// maybe a staging file, ignored and overwritten), a crash after it the new one. Both recover
/// the same records after the new base; the old one also those before it.
#[test]
fn a_crash_during_truncation_leaves_the_old_log_or_the_new_one_both_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=9));
    let old = fs::read(&path).unwrap();
    let (mut wal, _) = open(&path);
    wal.truncate_through(Lsn(6)).unwrap();
    drop(wal);
    let new = fs::read(&path).unwrap();
    assert_ne!(old, new);

    // Crash after the rename: the new file.
    let recovered = open(&path).1;
    assert_eq!(
        (recovered.base, &recovered.records[..]),
        (Lsn(6), &records(7..=9)[..])
    );

    // Crash before the rename: the old file, and a staging file half written.
    let staging = dir.path().join("db1.wal.new");
    for half_written in [&new[..new.len() / 2], &new[..], &[][..]] {
        fs::write(&path, &old).unwrap();
        fs::write(&staging, half_written).unwrap();
        let (mut wal, recovered) = open(&path);
        assert_eq!(recovered.base, Lsn(0));
        assert_eq!(recovered.records, records(1..=9));
        assert_eq!(
            recovered.records[6..],
            records(7..=9)[..],
            "the same records after 6"
        );
        // The truncation is simply done again, over the leftover.
        wal.truncate_through(Lsn(6)).unwrap();
        drop(wal);
        assert_eq!(fs::read(&path).unwrap(), new);
        assert!(!staging.exists());
    }
}

/// Every byte of a version 2 header flipped in turn: never a log read with another base or for
/// another database. With records after it, damage (nothing kept, the file left alone); with
/// none, an error naming the file.
#[test]
fn a_flipped_byte_in_the_header_is_refused_never_read_as_another_base() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let with_records = truncated_log(&path, 9, 6);
    let empty = truncated_log(&dir.path().join("empty.wal"), 3, 3);
    for position in 0..WAL_HEADER_LEN as usize {
        for flip in [0x01u8, 0x80] {
            let mut bytes = with_records.clone();
            bytes[position] ^= flip;
            fs::write(&path, &bytes).unwrap();
            match Wal::open_with(&path, DB, WalOptions::plain()) {
                Err(WalError::Damaged { damage, .. }) => {
                    assert!(matches!(damage.problem, TailProblem::Header { .. }));
                    assert_eq!(damage.kept, Lsn(0), "byte {position}");
                    assert_eq!(damage.lost_through, Lsn(9), "byte {position}");
                }
                // The version byte: a newer format, or damage; the message says both.
                Err(error @ WalError::UnsupportedVersion { .. }) if position == 7 => {
                    assert!(error.to_string().contains("damaged"), "{error}");
                }
                Err(error) => panic!("byte {position} ^ {flip:#x}: {error}"),
                Ok((_, recovered)) => {
                    panic!("byte {position} ^ {flip:#x} read as {recovered:?}")
                }
            }
            assert_eq!(fs::read(&path).unwrap(), bytes, "left alone");

            let mut bytes = empty.clone();
            bytes[position] ^= flip;
            fs::write(&path, &bytes).unwrap();
            let error = Wal::open_with(&path, DB, WalOptions::plain()).unwrap_err();
            assert!(
                matches!(
                    (position, &error),
                    (0..=6, WalError::BadHeader { .. })
                        | (7, WalError::UnsupportedVersion { .. })
                        | (8.., WalError::HeaderChecksum { .. })
                ),
                "byte {position} ^ {flip:#x}: {error}"
            );
            assert!(
                error.to_string().contains(&path.display().to_string()),
                "{error}"
            );
            assert!(matches!(
                Wal::inspect(&path, DB),
                Err(WalError::BadHeader { .. }
                    | WalError::UnsupportedVersion { .. }
                    | WalError::HeaderChecksum { .. })
            ));
            assert_eq!(fs::read(&path).unwrap(), bytes, "left alone");
        }
    }
}

/// Quarantine of a log whose header is damaged: its base is unknown, so the new log is empty
/// with base 0; a log damaged after its header keeps its base.
#[test]
fn quarantine_keeps_the_base_unless_the_header_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let bytes = truncated_log(&path, 9, 6);
    let mut damaged_header = bytes.clone();
    damaged_header[10] ^= 0x04; // in the base
    fs::write(&path, &damaged_header).unwrap();
    let (wal, recovered, kept) = Wal::quarantine(&path, DB, WalOptions::plain()).unwrap();
    assert!(kept.is_some());
    assert_eq!(
        (recovered.base, wal.base(), recovered.records),
        (Lsn(0), Lsn(0), vec![])
    );
    drop(wal);

    let mut damaged_record = bytes.clone();
    let second = WAL_HEADER_LEN as usize + (bytes.len() - WAL_HEADER_LEN as usize) / 3 + 12;
    damaged_record[second] ^= 0x01; // in the second record's payload
    fs::write(&path, &damaged_record).unwrap();
    let (wal, recovered, kept) = Wal::quarantine(&path, DB, WalOptions::plain()).unwrap();
    assert!(kept.is_some());
    assert_eq!((recovered.base, wal.base()), (Lsn(6), Lsn(6)));
    assert_eq!(recovered.records, records(7..=7));
}

/// The torn-tail and damage rules hold after the base: a torn last record is cut, a bad record
/// with a valid one after it is damage, and the LSNs at stake count from the base.
#[test]
fn a_torn_tail_and_damage_are_told_apart_in_a_log_with_a_base() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let bytes = truncated_log(&path, 12, 8);
    let offsets: Vec<u64> = {
        let (wal, _) = open(&path);
        drop(wal);
        // The records 9..=12 follow the header, each as long as its encoding.
        let mut at = WAL_HEADER_LEN;
        records(9..=12)
            .iter()
            .map(|r| {
                let offset = at;
                let mut payload = Vec::new();
                Writer::new(&mut payload).put_log_record(r);
                at += RECORD_HEADER_LEN + payload.len() as u64;
                offset
            })
            .collect()
    };
    assert_eq!(
        offsets.last().copied().map(|o| o < bytes.len() as u64),
        Some(true)
    );

    // Torn: the file ends inside record 12.
    fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let inspected = Wal::inspect(&path, DB).unwrap();
    assert_eq!(
        (inspected.base, &inspected.records[..]),
        (Lsn(8), &records(9..=11)[..])
    );
    assert!(
        matches!(inspected.stop_reason, Some(TailProblem::Torn { offset, .. }) if offset == offsets[3])
    );
    assert_eq!(inspected.damage, None);
    let (mut wal, recovered) = open(&path);
    assert_eq!(recovered, inspected);
    assert_eq!(wal.last_lsn(), Lsn(11));
    wal.append(&records(12..=12)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(fs::read(&path).unwrap(), bytes, "the same bytes again");

    // Damage: record 10 fails its checksum, 11 and 12 are intact after it.
    let mut damaged_bytes = bytes.clone();
    damaged_bytes[offsets[1] as usize + RECORD_HEADER_LEN as usize + 2] ^= 0x10;
    fs::write(&path, &damaged_bytes).unwrap();
    let damage = damaged(&path, &damaged_bytes);
    assert!(matches!(
        damage.problem,
        TailProblem::ChecksumMismatch { .. }
    ));
    assert_eq!(
        (
            damage.kept,
            damage.kept_bytes,
            damage.valid_at,
            damage.lost_through
        ),
        (Lsn(9), offsets[1], Some(offsets[2]), Lsn(12))
    );
    let inspected = Wal::inspect(&path, DB).unwrap();
    assert_eq!(
        (inspected.base, &inspected.records[..]),
        (Lsn(8), &records(9..=9)[..])
    );
    assert_eq!(inspected.damage, Some(damage));

    // Damage right after the header: nothing kept but the base.
    let mut damaged_bytes = bytes.clone();
    damaged_bytes[offsets[0] as usize + RECORD_HEADER_LEN as usize + 2] ^= 0x10;
    fs::write(&path, &damaged_bytes).unwrap();
    let damage = damaged(&path, &damaged_bytes);
    assert_eq!((damage.kept, damage.lost_through), (Lsn(8), Lsn(12)));
    assert!(damage.to_string().contains("records 9..=12"), "{damage}");
}

/// What is out of sequence is relative to the base: the records of a log with base 0 under a
/// header that says 4 do not continue it (LSN 1 is not 5), and that is damage, not a log.
#[test]
fn records_that_do_not_follow_the_base_are_out_of_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=3));
    let mut bytes = fs::read(&path).unwrap();
    bytes[..WAL_HEADER_LEN as usize].copy_from_slice(&header_with_base(DB, Lsn(4)));
    fs::write(&path, &bytes).unwrap();
    let damage = damaged(&path, &bytes);
    assert!(
        matches!(
            damage.problem,
            TailProblem::OutOfSequence {
                source: LogShapeError::NotContiguous {
                    found: Lsn(1),
                    expected: Lsn(5),
                    ..
                },
                ..
            }
        ),
        "{damage}"
    );
    assert_eq!(damage.kept, Lsn(4));
    // The same records under the base they follow are a log.
    bytes[..WAL_HEADER_LEN as usize].copy_from_slice(&header_with_base(DB, Lsn(0)));
    fs::write(&path, &bytes).unwrap();
    assert_eq!(open(&path).1.records, records(1..=3));
}

#[test]
fn inspect_reports_the_base_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let bytes = truncated_log(&path, 7, 4);
    let inspected = Wal::inspect(&path, DB).unwrap();
    assert_eq!(
        inspected,
        Recovered {
            base: Lsn(4),
            records: records(5..=7),
            truncated_bytes: 0,
            stop_reason: None,
            damage: None,
        }
    );
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(inspected, open(&path).1);
    let missing = Wal::inspect(&dir.path().join("none.wal"), DB).unwrap();
    assert_eq!(missing.base, Lsn(0));
}

/// The point of truncation: the per-record index shrinks to the records after the base.
#[test]
fn truncation_shrinks_the_in_memory_index() {
    for options in [WalOptions::plain(), WalOptions::default()] {
        let dir = tempfile::tempdir().unwrap();
        let path = wal_path(&dir);
        let (mut wal, _) = open_with(&path, options);
        let empty = wal.memory_bytes();
        wal.append(&records(1..=5000)).unwrap();
        wal.sync().unwrap();
        let full = wal.memory_bytes();
        assert!(full >= empty + 5000 * 8, "{options:?}: {empty} then {full}");
        wal.truncate_through(Lsn(4990)).unwrap();
        let after = wal.memory_bytes();
        assert!(
            after <= empty + 10 * 64 + BLOCK as usize,
            "{options:?}: {full} bytes before, {after} after keeping 10 records"
        );
        wal.append(&records(5001..=5001)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        assert_eq!(open_with(&path, options).1.records, records(4991..=5001));
    }
}

/// The node's flusher thread keeps the handle it was given when its log was opened: after
/// the file is replaced, jobs run through it reach the new file.
#[test]
fn a_flush_handle_from_before_a_truncation_flushes_into_the_new_file() {
    for options in [WalOptions::plain(), WalOptions::default()] {
        let dir = tempfile::tempdir().unwrap();
        let path = wal_path(&dir);
        let (mut wal, _) = open_with(&path, options);
        let handle = wal.flush_handle().unwrap();
        wal.append(&records(1..=20)).unwrap();
        let job = wal.prepare_flush().unwrap().unwrap();
        // No truncation while a job is in flight.
        assert!(matches!(
            wal.truncate_through(Lsn(10)),
            Err(WalError::FlushInFlight { .. })
        ));
        job.run(&handle).unwrap();
        wal.mark_durable(job.up_to());
        wal.truncate_through(Lsn(15)).unwrap();

        wal.append(&records(21..=30)).unwrap();
        let job = wal.prepare_flush().unwrap().unwrap();
        job.run(&handle).unwrap();
        wal.mark_durable(job.up_to());
        assert_eq!(wal.durable_lsn(), Lsn(30));
        // On disk now, in the file at `path`: without a sync from the log itself.
        let inspected = Wal::inspect(&path, DB).unwrap();
        assert_eq!(
            (inspected.base, inspected.records),
            (Lsn(15), records(16..=30)),
            "{options:?}"
        );
        drop(wal);
        drop(handle);
        assert_eq!(open_with(&path, options).1.records, records(16..=30));
    }
}

/// A job prepared before a truncation (possible only by reporting it without running it) is
/// refused by the handle rather than written at the old file's offsets.
#[test]
fn a_flush_job_prepared_before_a_truncation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    let (mut wal, _) = open_default(&path);
    let handle = wal.flush_handle().unwrap();
    wal.append(&records(1..=8)).unwrap();
    let stale = wal.prepare_flush().unwrap().unwrap();
    wal.mark_durable(stale.up_to()); // a caller's bug: reported, never run
    wal.truncate_through(Lsn(4)).unwrap();
    let before = fs::read(&path).unwrap();
    let error = stale.run(&handle).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
    assert_eq!(fs::read(&path).unwrap(), before, "nothing written");
}

#[test]
fn truncate_after_cannot_go_back_before_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    truncated_log(&path, 8, 5);
    let (mut wal, _) = open(&path);
    let error = wal.truncate_after(Lsn(4)).unwrap_err();
    assert!(
        matches!(
            error,
            WalError::BeforeBase {
                lsn: Lsn(4),
                base: Lsn(5),
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(wal.last_lsn(), Lsn(8));
    wal.truncate_after(Lsn(5)).unwrap();
    assert_eq!((wal.base(), wal.last_lsn()), (Lsn(5), Lsn(5)));
    assert_eq!(fs::read(&path).unwrap(), header_with_base(DB, Lsn(5)));
}

/// Version 1 files (no base, no header checksum) are read as logs with base 0, appended to as
/// they are, and rewritten as version 2 by the first truncation.
#[test]
fn a_version_1_log_reads_with_base_0_and_truncation_rewrites_it_as_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = wal_path(&dir);
    write_log(&path, &records(1..=4));
    let bytes = fs::read(&path).unwrap();
    let v1 = [&b"HADRWAL1\x01"[..], &bytes[WAL_HEADER_LEN as usize..]].concat();
    fs::write(&path, &v1).unwrap();
    let (mut wal, recovered) = open(&path);
    assert_eq!(
        (recovered.base, &recovered.records[..]),
        (Lsn(0), &records(1..=4)[..])
    );
    wal.append(&records(5..=5)).unwrap();
    wal.sync().unwrap();
    assert_eq!(
        &fs::read(&path).unwrap()[..WAL_V1_HEADER_LEN as usize],
        b"HADRWAL1\x01"
    );
    wal.truncate_through(Lsn(3)).unwrap();
    drop(wal);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(
        &bytes[..WAL_HEADER_LEN as usize],
        header_with_base(DB, Lsn(3))
    );
    let recovered = open(&path).1;
    assert_eq!(
        (recovered.base, &recovered.records[..]),
        (Lsn(3), &records(4..=5)[..])
    );
    // Another database's version 1 log is still refused.
    fs::write(&path, &v1).unwrap();
    assert!(matches!(
        Wal::open(&path, DatabaseId(2)),
        Err(WalError::WrongDatabase { .. })
    ));
}

/// docs/wire.md §5's worked example of a version 2 header.
#[test]
fn the_version_2_header_matches_the_worked_example_of_the_spec() {
    let expected = "4841445257414c32010600000000000000\
                    2415be87";
    let header: String = header_with_base(DatabaseId(1), Lsn(6))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(header, expected);
}
