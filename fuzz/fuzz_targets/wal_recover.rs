//! Bytes → WAL file → recovery, with any header (version 1 or 2, any base, any checksum): no
//! panic; a header is read only when it is valid, and then with exactly the base it holds;
//! recovered LSNs are consecutive from base + 1, the file is cut to a prefix, reopens to the
//! same records, accepts the next one, and drops a prefix of its records durably
//! (`truncate_through`) to a file that reopens with the new base.
//!
//! The input is the file itself when it starts with the magic (`"HADRWAL"`: the header's bytes,
//! the version, the base and its checksum are the fuzzer's), otherwise a valid version 2
//! header with base 0, then the input (the records are the fuzzer's), and then the same with
//! the base the first byte names (what is out of sequence is relative to the base).
#![no_main]

use hadr_node::codec::{Reader, Writer};
use hadr_node::wal::{
    self, Wal, WalError, WalOptions, RECORD_HEADER_LEN, WAL_HEADER_LEN, WAL_MAGIC,
    WAL_V1_HEADER_LEN,
};
use hadr_types::{DatabaseId, Lsn};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

const DATABASE: DatabaseId = DatabaseId(3);

/// The payload of a log record (LSN 1, one write), to append to a log that holds none.
const A_RECORD: &str =
    "0100000000000000010000000000000000000000000100000001000000020000006b310100000076";

/// The records (LSN, payload) re-encoded: the record type is hadr-core's, which this crate
/// does not name.
macro_rules! encoded {
    ($records:expr) => {
        $records
            .iter()
            .map(|record| {
                let mut payload = Vec::new();
                Writer::new(&mut payload).put_log_record(record);
                (record.lsn, payload)
            })
            .collect::<Vec<_>>()
    };
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.starts_with(&WAL_MAGIC) {
        check(data, true);
    } else {
        check(&[&wal::header(DATABASE)[..], data].concat(), false);
        if let Some(&base) = data.first() {
            let header = wal::header_with_base(DATABASE, Lsn(u64::from(base)));
            check(&[&header[..], data].concat(), false);
        }
    }
});

/// Opens `contents` as the log of [`DATABASE`] and checks everything recovery promises.
/// `header_is_input`: the header is the fuzzer's (it may be refused).
fn check(contents: &[u8], header_is_input: bool) {
    let file = TempFile::new();
    std::fs::write(&file.0, contents).expect("the temporary directory is writable");
    let path = &file.0;

    let (wal, recovered) = match Wal::open_with(path, DATABASE, WalOptions::plain()) {
        Ok(opened) => opened,
        Err(
            error @ (WalError::BadHeader { .. }
            | WalError::WrongDatabase { .. }
            | WalError::HeaderChecksum { .. }
            | WalError::UnsupportedVersion { .. }),
        ) if header_is_input => {
            assert!(error.to_string().contains(&path.display().to_string()));
            let on_disk = std::fs::read(path).expect("the refused file is readable");
            assert_eq!(on_disk, contents, "a refused log was changed");
            assert!(
                Wal::inspect(path, DATABASE).is_err(),
                "inspect accepts what open refused"
            );
            return;
        }
        Err(WalError::Damaged { damage, .. }) => {
            let on_disk = std::fs::read(path).expect("the damaged file is readable");
            assert_eq!(on_disk, contents, "a damaged log was changed");
            assert!(damage.kept < damage.lost_through);
            assert!(damage.valid_at.is_none_or(|at| at >= damage.kept_bytes));
            let inspected = Wal::inspect(path, DATABASE).expect("a damaged log inspects");
            assert_eq!(inspected.damage.as_ref(), Some(&*damage));
            let header_damaged = matches!(damage.problem, wal::TailProblem::Header { .. });
            if !header_damaged {
                check_header(contents, inspected.base);
            }
            assert_eq!(
                Lsn(inspected.base.0 + inspected.records.len() as u64),
                damage.kept
            );
            assert_checksummed(contents, inspected.base, &encoded!(inspected.records));
            let (quarantined, prefix, kept) = Wal::quarantine(path, DATABASE, WalOptions::plain())
                .unwrap_or_else(|e| panic!("quarantine failed: {e}"));
            let kept = kept.expect("a damaged log is kept aside");
            assert_eq!(
                std::fs::read(&kept).ok().as_deref(),
                Some(contents),
                "kept byte for byte"
            );
            let _ = std::fs::remove_file(&kept);
            assert_eq!(prefix.records, inspected.records);
            // A damaged header's base cannot be trusted: the new log starts at 0.
            let base = if header_damaged {
                Lsn(0)
            } else {
                inspected.base
            };
            assert_eq!((prefix.base, quarantined.base()), (base, base));
            assert_eq!((prefix.truncated_bytes, prefix.stop_reason), (0, None));
            return;
        }
        Err(error) => panic!("recovery failed: {error}"),
    };
    let base = recovered.base;
    check_header(contents, base);
    assert_checksummed(contents, base, &encoded!(recovered.records));
    for (index, record) in recovered.records.iter().enumerate() {
        assert_eq!(
            Some(record.lsn.0),
            base.0.checked_add(index as u64 + 1),
            "LSNs are not consecutive from the base"
        );
    }
    let end = Lsn(base.0 + recovered.records.len() as u64);
    assert_eq!(
        (wal.base(), wal.last_lsn(), wal.durable_lsn()),
        (base, end, end)
    );
    assert_eq!(
        recovered.stop_reason.is_some(),
        recovered.truncated_bytes > 0,
        "bytes are discarded exactly when recovery stops early: {recovered:?}"
    );
    let kept = std::fs::read(path).expect("the recovered file is readable");
    let cut = kept.len() + recovered.truncated_bytes as usize;
    assert!(
        cut <= contents.len() && contents[cut..].iter().all(|b| *b == 0),
        "the bytes discarded are counted up to the last one that is not zero"
    );
    if recovered.stop_reason.is_none() {
        assert_eq!(kept.len(), contents.len(), "a clean log is not cut");
    }
    assert_eq!(
        kept,
        contents[..kept.len()],
        "recovery changed the bytes it kept"
    );
    drop(wal);

    let (mut wal, again) =
        Wal::open_with(path, DATABASE, WalOptions::plain()).expect("a recovered log reopens");
    assert_eq!((again.base, &again.records), (base, &recovered.records));
    assert_eq!((again.truncated_bytes, again.stop_reason), (0, None));
    if end.0 >= u64::MAX / 2 {
        return; // no record can follow a base this close to the end of the LSNs
    }

    let mut next = match recovered.records.last() {
        Some(last) => last.clone(),
        None => Reader::decode_exact(&unhex(A_RECORD), Reader::get_log_record)
            .expect("the record decodes"),
    };
    next.lsn = Lsn(end.0 + 1);
    wal.append(std::slice::from_ref(&next))
        .unwrap_or_else(|e| panic!("a recovered log refuses its next record: {e}"));
    assert_eq!(
        wal.sync().unwrap_or_else(|e| panic!("sync failed: {e}")),
        next.lsn
    );
    let last_lsn = next.lsn;
    let mut expected = recovered.records;
    expected.push(next);

    // Drop a prefix (how much: from the input), durably, into a new file with the new base.
    let through = Lsn(base.0 + contents.len() as u64 % (expected.len() as u64 + 1));
    assert!(matches!(
        wal.truncate_through(Lsn(last_lsn.0 + 1)),
        Err(WalError::TruncateBeyondEnd { .. })
    ));
    wal.truncate_through(through)
        .unwrap_or_else(|e| panic!("truncate_through({through}) failed: {e}"));
    assert_eq!(
        (wal.base(), wal.last_lsn(), wal.durable_lsn()),
        (through, last_lsn, last_lsn)
    );
    drop(wal);
    let remaining = expected.split_off((through.0 - base.0) as usize);
    let truncated = std::fs::read(path).expect("the truncated log is readable");
    if through > base {
        assert_eq!(
            truncated[..WAL_HEADER_LEN as usize],
            wal::header_with_base(DATABASE, through)
        );
    }
    let (_, last) = Wal::open_with(path, DATABASE, WalOptions::plain())
        .expect("the log reopens after a truncation");
    assert_eq!((last.base, &last.records), (through, &remaining));
    assert_eq!((last.truncated_bytes, last.stop_reason), (0, None));
    assert_checksummed(&truncated, through, &encoded!(remaining));
}

/// The file's header, checked against the format (`docs/wire.md` §5), not the code under test:
/// the base recovery reports is the one the header holds, and a version 2 header is accepted
/// only with its checksum right.
fn check_header(contents: &[u8], base: Lsn) {
    match contents[7] {
        b'1' => assert_eq!(base, Lsn(0), "a version 1 log has base 0"),
        b'2' => {
            let header = &contents[..WAL_HEADER_LEN as usize];
            assert_eq!(header[8], DATABASE.0);
            let stored = u32::from_le_bytes(header[17..21].try_into().unwrap());
            assert_eq!(
                stored,
                crc32c(&header[..17]),
                "a header that fails its checksum was read"
            );
            let held = u64::from_le_bytes(header[9..17].try_into().unwrap());
            assert_eq!(base, Lsn(held), "the base is not the header's");
        }
        version => panic!("a header of version {version} was read"),
    }
}

/// Every record, re-encoded (`encoded!`), is the bytes of a record of `contents` (after its
/// header) with its checksum: recovery never hands back a record that fails its checksum.
fn assert_checksummed(contents: &[u8], base: Lsn, records: &[(Lsn, Vec<u8>)]) {
    let mut at = match contents[7] {
        b'1' => WAL_V1_HEADER_LEN,
        _ => WAL_HEADER_LEN,
    } as usize;
    for (index, (lsn, payload)) in records.iter().enumerate() {
        assert_eq!(lsn.0, base.0 + index as u64 + 1);
        let stored = &contents[at..at + RECORD_HEADER_LEN as usize + payload.len()];
        assert_eq!(&stored[..4], &(payload.len() as u32).to_le_bytes());
        assert_eq!(&stored[4..8], &crc32c(payload).to_le_bytes());
        assert_eq!(&stored[8..], &payload[..], "{lsn} is not the bytes on disk");
        at += stored.len();
    }
}

/// CRC-32C (Castagnoli, reflected, polynomial 0x82F63B78), bit by bit: the specification's
/// checksum, computed without the code under test.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A file in the system's temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "hadr-fuzz-wal-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        TempFile(std::env::temp_dir().join(name))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
