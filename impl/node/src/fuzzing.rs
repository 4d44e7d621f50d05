//! Entry points for the fuzz targets in `fuzz/` (one-line targets call these; cargo feature
//! `fuzzing`). Each must never panic except on a real bug of this crate.

use crate::wal::{self, Wal, WalError, WalOptions, WAL_MAGIC};
use crate::wire::{decode_frame, encode_frame, HEADER_LEN, MAGIC, VERSION};
use hadr_core::{Epoch, LogRecord, Write};
use hadr_types::{DatabaseId, Lsn, TxnId};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Decodes arbitrary bytes as peer frames.
///
/// The bytes are decoded twice: as a stream of frames, and as a frame kind (first byte) and a
/// body (the rest) sealed with a correct header and checksum, so that the body decoders are
/// reached although random bytes almost never carry a valid checksum. Every frame that decodes
/// must re-encode to exactly the bytes it came from (the encoding is canonical), decode again
/// to the same frame, and be incomplete (`Ok(None)`) without its last byte. Every error must
/// say something.
pub fn frame_decode(data: &[u8]) {
    check_stream(data);
    if let Some((&kind, body)) = data.split_first() {
        check_stream(&seal(kind, body));
    }
}

/// A frame header for `kind` and `body`, computed from the specification (`docs/wire.md`), not
/// with the encoder under test; then the body.
fn seal(kind: u8, body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&[VERSION, kind]);
    frame.extend_from_slice(&length.to_le_bytes());
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&frame[4..10]), body);
    frame.extend_from_slice(&checksum.to_le_bytes());
    frame.extend_from_slice(body);
    frame
}

fn check_stream(mut rest: &[u8]) {
    loop {
        match decode_frame(rest) {
            Ok(Some((frame, used))) => {
                assert!(
                    (HEADER_LEN..=rest.len()).contains(&used),
                    "consumed {used} of {} bytes",
                    rest.len()
                );
                let mut again = Vec::new();
                encode_frame(&frame, &mut again)
                    .unwrap_or_else(|e| panic!("a decoded frame does not encode again: {e}"));
                assert_eq!(
                    again,
                    rest[..used],
                    "re-encoding {frame:?} changed its bytes"
                );
                assert_eq!(
                    decode_frame(&again),
                    Ok(Some((frame, used))),
                    "a re-encoded frame decodes differently"
                );
                assert_eq!(
                    decode_frame(&rest[..used - 1]),
                    Ok(None),
                    "a frame without its last byte is not reported incomplete"
                );
                rest = &rest[used..];
            }
            Ok(None) => return,
            Err(error) => {
                assert!(!error.to_string().is_empty(), "an error must say something");
                return;
            }
        }
    }
}

/// The database whose log [`wal_recover`] opens.
const WAL_DATABASE: DatabaseId = DatabaseId(3);

/// Recovers a WAL file made of arbitrary bytes, with any header (version 1 or 2, any base, any
/// checksum).
///
/// The file is `data` itself when it starts with the WAL magic (the header's bytes, the
/// version, the base and its checksum are the fuzzer's); otherwise a valid version 2 header
/// for database 3 with base 0, then `data` (the records are the fuzzer's), and then the same
/// with the base the first byte of `data` names (what is out of sequence is relative to the
/// base). Opening it (buffered, not preallocated: [`WalOptions::plain`]) must either:
///
/// - refuse the header (only possible when `data` supplied it), naming the file, changing
///   nothing, and inspection refuses it too;
/// - or refuse a damaged log without changing a byte: inspection reports the same damage and
///   an intact prefix, and quarantine keeps the file byte for byte and gives back exactly that
///   prefix, with the header's base (0 when the header is what is damaged);
/// - or recover records with LSNs consecutive from the base + 1, cut the file to a prefix of
///   what it held (what is cut and not counted is zeros), and leave it in a state that reopens
///   to the same records without any further cut, accepts the next record, and drops a prefix
///   of its records ([`Wal::truncate_through`], how many: from the input) durably, into a file
///   that reopens with the new base and the records after it.
///
/// A header is read only when it is valid by the format (`docs/wire.md` §5, checked here with
/// the `crc32c` crate, not with the header code under test), and then with exactly the base it
/// holds. Every record handed back passed its checksum: re-encoded, it is the bytes the file
/// held.
pub fn wal_recover(data: &[u8]) {
    if data.starts_with(&WAL_MAGIC) {
        check_wal_file(data, true);
    } else {
        check_wal_file(&[&wal::header(WAL_DATABASE)[..], data].concat(), false);
        if let Some(&base) = data.first() {
            let header = wal::header_with_base(WAL_DATABASE, Lsn(u64::from(base)));
            check_wal_file(&[&header[..], data].concat(), false);
        }
    }
}

/// Opens `contents` as the log of [`WAL_DATABASE`] and checks everything recovery promises
/// ([`wal_recover`]). `header_is_input`: the header is the fuzzer's (it may be refused).
fn check_wal_file(contents: &[u8], header_is_input: bool) {
    let file = TempFile::new();
    std::fs::write(&file.0, contents).expect("the temporary directory is writable");
    let path = &file.0;

    let (wal, recovered) = match Wal::open_with(path, WAL_DATABASE, WalOptions::plain()) {
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
                Wal::inspect(path, WAL_DATABASE).is_err(),
                "inspect accepts what open refused"
            );
            return;
        }
        Err(WalError::Damaged { damage, .. }) => {
            let on_disk = std::fs::read(path).expect("the damaged file is readable");
            assert_eq!(on_disk, contents, "a damaged log was changed");
            assert!(damage.kept < damage.lost_through);
            assert!(damage.valid_at.is_none_or(|at| at >= damage.kept_bytes));
            let inspected = Wal::inspect(path, WAL_DATABASE).expect("a damaged log inspects");
            assert_eq!(inspected.damage.as_ref(), Some(&*damage));
            let header_damaged = matches!(damage.problem, wal::TailProblem::Header { .. });
            if !header_damaged {
                check_header(contents, inspected.base);
            }
            assert_eq!(
                Lsn(inspected.base.0 + inspected.records.len() as u64),
                damage.kept
            );
            assert_checksummed(contents, inspected.base, &inspected.records);
            let (quarantined, prefix, kept) =
                Wal::quarantine(path, WAL_DATABASE, WalOptions::plain())
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
    assert_checksummed(contents, base, &recovered.records);
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
        Wal::open_with(path, WAL_DATABASE, WalOptions::plain()).expect("a recovered log reopens");
    assert_eq!((again.base, &again.records), (base, &recovered.records));
    assert_eq!((again.truncated_bytes, again.stop_reason), (0, None));
    if end.0 >= u64::MAX / 2 {
        return; // no record can follow a base this close to the end of the LSNs
    }

    let next = LogRecord {
        lsn: Lsn(end.0 + 1),
        epoch: recovered.records.last().map_or(Epoch::NONE, |r| r.epoch),
        txn: TxnId(1),
        writes: vec![Write {
            key: "k".into(),
            value: "v".into(),
        }],
    };
    wal.append(std::slice::from_ref(&next))
        .unwrap_or_else(|e| panic!("a recovered log refuses its next record: {e}"));
    let durable = wal.sync().unwrap_or_else(|e| panic!("sync failed: {e}"));
    assert_eq!(durable, next.lsn);
    let mut expected = recovered.records;
    expected.push(next);
    let appended = Wal::inspect(path, WAL_DATABASE).expect("the log inspects after an append");
    assert_eq!((appended.base, &appended.records), (base, &expected));
    assert_eq!((appended.stop_reason, appended.damage), (None, None));

    // Drop a prefix (how much: from the input), durably, into a new file with the new base.
    let last_lsn = Lsn(end.0 + 1);
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
            truncated[..wal::WAL_HEADER_LEN as usize],
            wal::header_with_base(WAL_DATABASE, through)
        );
    }
    let (_, last) = Wal::open_with(path, WAL_DATABASE, WalOptions::plain())
        .expect("the log reopens after a truncation");
    assert_eq!((last.base, &last.records), (through, &remaining));
    assert_eq!((last.truncated_bytes, last.stop_reason), (0, None));
    check_header(&truncated, through);
    assert_checksummed(&truncated, through, &remaining);
}

/// The file's header, checked against the format (`docs/wire.md` §5), not the code under test:
/// the base recovery reports is the one the header holds, and a version 2 header is accepted
/// only with its checksum right.
fn check_header(contents: &[u8], base: Lsn) {
    match contents[7] {
        b'1' => assert_eq!(base, Lsn(0), "a version 1 log has base 0"),
        b'2' => {
            let header = &contents[..wal::WAL_HEADER_LEN as usize];
            assert_eq!(header[8], WAL_DATABASE.0);
            let stored = u32::from_le_bytes(header[17..21].try_into().unwrap());
            assert_eq!(
                stored,
                crc32c::crc32c(&header[..17]),
                "a header that fails its checksum was read"
            );
            let held = u64::from_le_bytes(header[9..17].try_into().unwrap());
            assert_eq!(base, Lsn(held), "the base is not the header's");
        }
        version => panic!("a header of version {version} was read"),
    }
}

/// `records` have LSNs consecutive from `base + 1`, and each is, re-encoded, the bytes of a
/// record of `contents` (after its header, of either version) with its checksum: recovery
/// never hands back a record that fails its checksum.
fn assert_checksummed(contents: &[u8], base: Lsn, records: &[LogRecord]) {
    let mut at = match contents[7] {
        b'1' => wal::WAL_V1_HEADER_LEN,
        _ => wal::WAL_HEADER_LEN,
    } as usize;
    for (index, record) in records.iter().enumerate() {
        assert_eq!(
            Some(record.lsn.0),
            base.0.checked_add(index as u64 + 1),
            "LSNs are not consecutive from the base"
        );
        let mut payload = Vec::new();
        crate::codec::Writer::new(&mut payload).put_log_record(record);
        let stored = &contents[at..at + wal::RECORD_HEADER_LEN as usize + payload.len()];
        assert_eq!(&stored[..4], &(payload.len() as u32).to_le_bytes());
        assert_eq!(&stored[4..8], &crc32c::crc32c(&payload).to_le_bytes());
        assert_eq!(
            &stored[8..],
            &payload[..],
            "{} is not the bytes on disk",
            record.lsn
        );
        at += stored.len();
    }
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

/// Decodes arbitrary bytes as a page of a data file ([`crate::pages`]).
///
/// The bytes, cut or padded with zeros to [`PAGE_SIZE`](crate::pages::PAGE_SIZE), are decoded
/// twice: as they are, and with a correct checksum stored in them, so that the decoders behind
/// the checksum are reached although random bytes almost never carry a valid one. A page is
/// accepted only when its checksum matches, and an accepted page encodes back to exactly its
/// bytes (each page has one encoding: nothing in it goes unchecked). Bytes of another length
/// are never a page.
pub fn page_decode(data: &[u8]) {
    use crate::pages::{decode_page, reseal, PAGE_SIZE};
    if data.len() != PAGE_SIZE {
        assert!(
            decode_page(data).is_err(),
            "{} bytes were accepted as a page",
            data.len()
        );
    }
    let mut page = vec![0; PAGE_SIZE];
    let len = data.len().min(PAGE_SIZE);
    page[..len].copy_from_slice(&data[..len]);
    check_page(&page);
    reseal(&mut page);
    check_page(&page);
}

fn check_page(bytes: &[u8]) {
    use crate::pages::{checksum_matches, decode_page, encode_page};
    match decode_page(bytes) {
        Ok(page) => {
            assert!(
                checksum_matches(bytes),
                "a page whose checksum fails was accepted"
            );
            assert!(
                encode_page(&page)[..] == *bytes,
                "an accepted page does not encode back to its bytes: {page:?}"
            );
        }
        Err(problem) => assert!(
            !problem.to_string().is_empty(),
            "a problem must say something"
        ),
    }
}

/// Opens arbitrary bytes as the whole data file of database 3 ([`crate::pages::DataFile`]).
///
/// The bytes are opened twice: as they are, and with a correct checksum stored in every whole
/// page, so that what lies behind the checksums is reached. Opening either refuses with an
/// error that says something, or gives a file that [`DataFile::check`](crate::pages::DataFile::check)
/// walks. Every key the walk visits reads back without a panic; when the walk finds the file
/// consistent, every key reads back exactly its value, and the file takes new writes and a
/// checkpoint and reopens to exactly what it held plus them.
pub fn data_file_open(data: &[u8]) {
    use crate::pages::{reseal, PAGE_SIZE};
    open_data_file(data);
    let mut sealed = data.to_vec();
    for page in sealed.chunks_exact_mut(PAGE_SIZE) {
        reseal(page);
    }
    if sealed != data {
        open_data_file(&sealed);
    }
}

fn open_data_file(contents: &[u8]) {
    use crate::pages::{DataFile, DataFileOptions, PageError, KEY_INLINE_MAX, PAGE_SIZE};
    use std::collections::BTreeMap;
    let database = DatabaseId(3);
    let options = DataFileOptions {
        pool_budget_bytes: 4 * PAGE_SIZE as u64,
    };
    let file = TempFile::new();
    std::fs::write(&file.0, contents).expect("the temporary directory is writable");
    let (mut data, lsn) = match DataFile::open(&file.0, database, options) {
        Ok(opened) => opened,
        Err(error) => {
            assert!(!error.to_string().is_empty(), "an error must say something");
            return;
        }
    };
    let mut entries = BTreeMap::new();
    let checked = data.check(|key, value| {
        entries.insert(key.to_owned(), value.to_owned());
    });
    if let Err(error) = checked {
        assert!(!error.to_string().is_empty(), "an error must say something");
        for key in entries.keys() {
            let _ = data.get(key);
        }
        return;
    }
    for (key, value) in &entries {
        let found = data
            .get(key)
            .unwrap_or_else(|e| panic!("a consistent file fails a get: {e}"));
        assert!(
            found.as_ref() == Some(value),
            "{key:?} reads back otherwise than the walk saw it"
        );
    }

    let next = Lsn(lsn.0.saturating_add(1));
    let mut writes = vec![
        ("k".to_owned(), "v".to_owned()),
        (String::new(), "the empty key".to_owned()),
        ("x".repeat(KEY_INLINE_MAX + 1), "y".repeat(20_000)),
    ];
    if let Some(first) = entries.keys().next() {
        writes.push((first.clone(), "overwritten".to_owned()));
    }
    for (key, value) in writes {
        match data.put(&key, &value, next) {
            Ok(()) => entries.insert(key, value),
            Err(PageError::TreeTooTall { .. }) => return,
            Err(error) => panic!("a consistent file refuses a put: {error}"),
        };
    }
    data.checkpoint(next)
        .unwrap_or_else(|e| panic!("a consistent file refuses a checkpoint: {e}"));
    drop(data);
    let (mut data, at) = DataFile::open(&file.0, database, options)
        .unwrap_or_else(|e| panic!("a checkpointed file does not reopen: {e}"));
    assert_eq!(at, next);
    let mut again = BTreeMap::new();
    data.check(|key, value| {
        again.insert(key.to_owned(), value.to_owned());
    })
    .unwrap_or_else(|e| panic!("a checkpointed file is not consistent: {e}"));
    assert!(again == entries, "the file reopened to other contents");
}
