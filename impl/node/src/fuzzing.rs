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

/// Recovers a WAL file made of arbitrary bytes.
///
/// The file is `data` itself when it starts with the WAL magic, otherwise a valid header for
/// database 3 followed by `data`. Opening it (buffered, not preallocated:
/// [`WalOptions::plain`]) must either refuse the header (only possible when `data` supplied it),
/// or refuse a damaged log without changing a byte (then quarantine gives back exactly the
/// intact prefix that inspection reports), or recover records with consecutive LSNs from 1,
/// cut the file to a prefix of what it held, and leave it in a state that reopens to the same
/// records without any further cut and accepts the next record. Every record handed back
/// passed its checksum: re-encoded, it is the bytes the file held.
pub fn wal_recover(data: &[u8]) {
    let database = DatabaseId(3);
    let contents = if data.starts_with(&WAL_MAGIC) {
        data.to_vec()
    } else {
        [&wal::header(database)[..], data].concat()
    };
    let file = TempFile::new();
    std::fs::write(&file.0, &contents).expect("the temporary directory is writable");

    let (wal, recovered) = match Wal::open_with(&file.0, database, WalOptions::plain()) {
        Ok(opened) => opened,
        Err(WalError::BadHeader { .. } | WalError::WrongDatabase { .. })
            if data.starts_with(&WAL_MAGIC) =>
        {
            return
        }
        Err(WalError::Damaged { damage, .. }) => {
            let on_disk = std::fs::read(&file.0).expect("the damaged file is readable");
            assert_eq!(on_disk, contents, "a damaged log was changed");
            assert!(damage.kept < damage.lost_through);
            assert!(damage.valid_at.is_none_or(|at| at >= damage.kept_bytes));
            let inspected = Wal::inspect(&file.0, database).expect("a damaged log inspects");
            assert_eq!(inspected.damage.as_ref(), Some(&*damage));
            assert_eq!(Lsn(inspected.records.len() as u64), damage.kept);
            assert_checksummed(&contents, &inspected.records);
            let (_, prefix, kept) = Wal::quarantine(&file.0, database, WalOptions::plain())
                .unwrap_or_else(|e| panic!("quarantine failed: {e}"));
            let kept = kept.expect("a damaged log is kept aside");
            assert_eq!(
                std::fs::read(&kept).ok(),
                Some(contents),
                "kept byte for byte"
            );
            let _ = std::fs::remove_file(&kept);
            assert_eq!(prefix.records, inspected.records);
            assert_eq!((prefix.truncated_bytes, prefix.stop_reason), (0, None));
            return;
        }
        Err(error) => panic!("recovery failed: {error}"),
    };
    assert_checksummed(&contents, &recovered.records);
    for (index, record) in recovered.records.iter().enumerate() {
        assert_eq!(
            record.lsn,
            Lsn(index as u64 + 1),
            "LSNs are not consecutive"
        );
    }
    let end = Lsn(recovered.records.len() as u64);
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (end, end));
    assert_eq!(
        recovered.stop_reason.is_some(),
        recovered.truncated_bytes > 0,
        "bytes are discarded exactly when recovery stops early: {recovered:?}"
    );
    let kept = std::fs::read(&file.0).expect("the recovered file is readable");
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
        Wal::open_with(&file.0, database, WalOptions::plain()).expect("a recovered log reopens");
    assert_eq!(again.records, recovered.records);
    assert_eq!((again.truncated_bytes, again.stop_reason), (0, None));

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
    drop(wal);

    let (_, last) = Wal::open_with(&file.0, database, WalOptions::plain())
        .expect("the log reopens after an append");
    let mut expected = recovered.records;
    expected.push(next);
    assert_eq!(last.records, expected);
}

/// Every record in `records` is, re-encoded, the bytes of a record of `contents` with its
/// checksum: recovery never hands back a record that fails its checksum.
fn assert_checksummed(contents: &[u8], records: &[LogRecord]) {
    let mut at = wal::WAL_HEADER_LEN as usize;
    for record in records {
        let mut payload = Vec::new();
        crate::codec::Writer::new(&mut payload).put_log_record(record);
        let stored = &contents[at..at + 8 + payload.len()];
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
