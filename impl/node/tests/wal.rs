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
    tear_last_record, Damage, Recovered, TailProblem, Wal, WalError, WalOptions, BLOCK,
    DEFAULT_PREALLOCATE, MAX_RECORD_LEN, RECORD_HEADER_LEN, SECTOR, WAL_HEADER_LEN,
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
            records: vec![],
            truncated_bytes: 0,
            stop_reason: None,
            damage: None
        }
    );
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (Lsn(0), Lsn(0)));
    assert_eq!(wal.path(), path);
    assert_eq!(wal.database(), DB);
    assert_eq!(fs::read(&path).unwrap(), b"HADRWAL1\x01");
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
    assert_eq!(fs::read(&path).unwrap(), b"HADRWAL1\x01");
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
