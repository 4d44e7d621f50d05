//! One write-ahead log file per availability database: the durable copy of its log records
//! (LSNs consecutive from 1), appended by `AppendLog`, made durable by `Fsync`, cut back by
//! `RevertLog` (hadr-core's outputs).
//!
//! ```text
//!  0          8    9
//!  ┌──────────┬────┬───────────────────────────────────────┬─────────────── …
//!  │"HADRWAL1"│ db │ len u32 LE │ CRC-32C u32 LE │ payload │ next record …
//!  └──────────┴────┴───────────────────────────────────────┴─────────────── …
//!      header          record: payload = codec encoding of a LogRecord,
//!                      CRC-32C of the payload, len = payload bytes
//! ```
//!
//! Recovery ([`Wal::open`]) keeps the longest prefix of well-formed records and cuts the file
//! durably at the first record that is torn (a write interrupted by a crash), fails its
//! checksum, does not decode, or does not continue the log. A record that fails its checksum is
//! never returned.
//!
//! Durability: [`Wal::append`] only writes (into the page cache); [`Wal::sync`] makes
//! everything appended so far durable with one `fdatasync`. Group commit is the caller's: append
//! the records of many transactions, then sync once, then acknowledge them all.
//!
//! After any I/O error while writing, syncing or truncating, the file's state on disk is
//! unknown (a failed `fsync` may have dropped dirty pages), so the [`Wal`] refuses all further
//! work with [`WalError::Failed`]: reopen it (restart the node) to recover from what is on disk.

use crate::codec::{DecodeError, Reader, Writer};
use hadr_core::log::{check_run, LogShapeError};
use hadr_core::{Epoch, LogRecord};
use hadr_types::{DatabaseId, Lsn};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// The first eight bytes of a WAL file (the `1` is the format version).
pub const WAL_MAGIC: [u8; 8] = *b"HADRWAL1";
/// Bytes of the file header: the magic, then the database id (one byte).
pub const WAL_HEADER_LEN: u64 = 9;
/// Bytes before each record's payload: its length, then its checksum.
pub const RECORD_HEADER_LEN: u64 = 8;
/// The largest payload of a record: small enough that any record fits in one peer frame
/// ([`crate::wire::MAX_FRAME_BODY`]) with the fields of a `Log` message around it.
pub const MAX_RECORD_LEN: u32 = crate::wire::MAX_FRAME_BODY - 1024;

/// Why recovery stopped before the end of the file: the first bad record. Everything from its
/// offset on was discarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TailProblem {
    /// The file ends inside the record: a write interrupted by a crash.
    #[error("record at byte {offset} is torn: it needs {needed} bytes, the file has {available}")]
    Torn {
        /// Where the record starts in the file.
        offset: u64,
        /// Bytes the record needs (its header, and its payload if the header is complete).
        needed: u64,
        /// Bytes the file has from `offset`.
        available: u64,
    },
    /// The record declares a payload larger than [`MAX_RECORD_LEN`].
    #[error("record at byte {offset} declares {length} bytes, over the limit of {limit}")]
    TooLong {
        /// Where the record starts in the file.
        offset: u64,
        /// The length declared.
        length: u32,
        /// The limit.
        limit: u32,
    },
    /// The payload does not match its checksum.
    #[error("record at byte {offset} fails its checksum: header says {expected:#010x}, payload gives {found:#010x}")]
    ChecksumMismatch {
        /// Where the record starts in the file.
        offset: u64,
        /// The checksum in the record header.
        expected: u32,
        /// The checksum of the payload read.
        found: u32,
    },
    /// The payload matches its checksum but is not a log record.
    #[error("record at byte {offset} does not decode: {source}")]
    Undecodable {
        /// Where the record starts in the file.
        offset: u64,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// The record does not continue the log (its LSN is not the next one, or its epoch is older
    /// than the previous record's).
    #[error("record at byte {offset} does not continue the log: {source}")]
    OutOfSequence {
        /// Where the record starts in the file.
        offset: u64,
        /// How it breaks the sequence.
        source: LogShapeError,
    },
}

/// What [`Wal::open`] found in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The good records, LSNs consecutive from 1, all durable.
    pub records: Vec<LogRecord>,
    /// Bytes discarded from the end of the file (0 when it ended cleanly).
    pub truncated_bytes: u64,
    /// Why recovery stopped before the end of the file, if it did.
    pub stop_reason: Option<TailProblem>,
}

/// Why a WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The operating system refused a file operation.
    #[error("could not {operation} {}: {source}", path.display())]
    Io {
        /// The file (or directory).
        path: PathBuf,
        /// What was being done: `"open"`, `"read"`, `"append to"`, `"fsync"` …
        operation: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// The file does not start with a WAL header.
    #[error("{} is not a hadr write-ahead log (its header is {found:?}, expected \"HADRWAL1\" and a database id): move the file away or fix the node's data directory", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Its first bytes (up to the header's length), lossily as text.
        found: String,
    },
    /// The file is the log of another database.
    #[error("{} is the log of {found}, not of {expected}: the node's data directory holds the wrong file", path.display())]
    WrongDatabase {
        /// The file.
        path: PathBuf,
        /// The database the caller opened it for.
        expected: DatabaseId,
        /// The database its header names.
        found: DatabaseId,
    },
    /// Records to append do not continue the log (a bug of the caller).
    #[error("refused to append to {}: {source}", path.display())]
    OutOfSequence {
        /// The file.
        path: PathBuf,
        /// How the records break the sequence.
        source: LogShapeError,
    },
    /// A record to append encodes to more than [`MAX_RECORD_LEN`] bytes; nothing was written.
    #[error("record {lsn} encodes to {length} bytes, over the limit of {limit}: it cannot be stored or shipped (the transaction is too large)")]
    RecordTooLarge {
        /// The record.
        lsn: Lsn,
        /// Its encoded size.
        length: u64,
        /// The limit.
        limit: u32,
    },
    /// An earlier write, fsync or truncation of this file failed.
    #[error("an earlier write or fsync of {} failed and its contents on disk are unknown: reopen the log (restart the node) to recover", path.display())]
    Failed {
        /// The file.
        path: PathBuf,
    },
}

/// Where a record is in the file, and its epoch (to check what is appended after it).
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    offset: u64,
    epoch: Epoch,
}

/// An open write-ahead log of one database.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
    database: DatabaseId,
    /// Entry `i` is the record of LSN `i + 1`.
    index: Vec<IndexEntry>,
    /// File offset just after the last record.
    end: u64,
    durable: Lsn,
    /// Something was appended since the last sync.
    dirty: bool,
    /// An I/O error left the file in an unknown state.
    failed: bool,
}

impl Wal {
    /// Opens the log of `database` at `path`, creating it if it does not exist, and recovers
    /// its records.
    ///
    /// A new file is created atomically (written as `<path>.new`, synced, renamed, directory
    /// synced), so a file at `path` always has a complete header. For an existing file, the
    /// records are read up to the first bad one ([`TailProblem`]); the file is truncated there
    /// and synced, so every record returned is durable, including records that the previous
    /// process wrote but did not sync before it died.
    pub fn open(path: &Path, database: DatabaseId) -> Result<(Wal, Recovered), WalError> {
        let io = |operation| io_error(path, operation);
        let mut file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                create(path, database)?;
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(io("open"))?
            }
            Err(error) => return Err(io("open")(error)),
        };
        let mut contents = Vec::new();
        file.read_to_end(&mut contents).map_err(io("read"))?;
        check_header(path, &contents, database)?;

        let scan = scan(&contents);
        let truncated_bytes = contents.len() as u64 - scan.end;
        if let Some(problem) = &scan.problem {
            tracing::warn!(
                path = %path.display(),
                database = database.0,
                kept_records = scan.records.len(),
                truncated_bytes,
                %problem,
                "discarding the tail of the write-ahead log"
            );
            file.set_len(scan.end).map_err(io("truncate"))?;
        }
        file.sync_all().map_err(io("fsync"))?;
        file.seek(SeekFrom::Start(scan.end))
            .map_err(io("seek in"))?;

        let last = Lsn(scan.records.len() as u64);
        let wal = Wal {
            path: path.to_path_buf(),
            file,
            database,
            index: scan.index,
            end: scan.end,
            durable: last,
            dirty: false,
            failed: false,
        };
        let recovered = Recovered {
            records: scan.records,
            truncated_bytes,
            stop_reason: scan.problem,
        };
        Ok((wal, recovered))
    }

    /// What [`Wal::open`] would recover from the log of `database` at `path`, read without
    /// changing anything: the file is opened read-only, a bad tail is reported in
    /// [`Recovered::truncated_bytes`] and [`Recovered::stop_reason`] but not cut off, and a
    /// missing file reads as the empty log that `open` would create.
    pub fn inspect(path: &Path, database: DatabaseId) -> Result<Recovered, WalError> {
        let contents = match fs::read(path) {
            Ok(contents) => contents,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Recovered {
                    records: Vec::new(),
                    truncated_bytes: 0,
                    stop_reason: None,
                })
            }
            Err(error) => return Err(io_error(path, "read")(error)),
        };
        check_header(path, &contents, database)?;
        let scan = scan(&contents);
        Ok(Recovered {
            records: scan.records,
            truncated_bytes: contents.len() as u64 - scan.end,
            stop_reason: scan.problem,
        })
    }

    /// Writes `records` at the end of the log, in one write call. They are not durable until
    /// [`Wal::sync`].
    ///
    /// The records must continue the log: the first has LSN [`Wal::last_lsn`] + 1, the others
    /// follow without a gap, and epochs never go back. Anything else is refused with
    /// [`WalError::OutOfSequence`] and nothing is written.
    pub fn append(&mut self, records: &[LogRecord]) -> Result<(), WalError> {
        self.check_usable()?;
        check_run(records, self.last_lsn(), self.last_epoch()).map_err(|source| {
            WalError::OutOfSequence {
                path: self.path.clone(),
                source,
            }
        })?;
        let mut buf = Vec::new();
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let start = buf.len();
            buf.extend_from_slice(&[0; RECORD_HEADER_LEN as usize]);
            Writer::new(&mut buf).put_log_record(record);
            let payload_start = start + RECORD_HEADER_LEN as usize;
            let payload_len = buf.len() - payload_start;
            let length = u32::try_from(payload_len)
                .ok()
                .filter(|length| *length <= MAX_RECORD_LEN)
                .ok_or(WalError::RecordTooLarge {
                    lsn: record.lsn,
                    length: payload_len as u64,
                    limit: MAX_RECORD_LEN,
                })?;
            let checksum = crc32c::crc32c(&buf[payload_start..]);
            buf[start..start + 4].copy_from_slice(&length.to_le_bytes());
            buf[start + 4..payload_start].copy_from_slice(&checksum.to_le_bytes());
            entries.push(IndexEntry {
                offset: self.end + start as u64,
                epoch: record.epoch,
            });
        }
        if let Err(source) = self.file.write_all(&buf) {
            return Err(self.fail("append to", source));
        }
        self.index.extend(entries);
        self.end += buf.len() as u64;
        self.dirty |= !records.is_empty();
        Ok(())
    }

    /// Makes every record appended so far durable (`fdatasync`) and returns the last durable
    /// LSN. Returns at once, without a system call, when nothing was appended since the last
    /// sync.
    pub fn sync(&mut self) -> Result<Lsn, WalError> {
        self.check_usable()?;
        if self.dirty {
            if let Err(source) = self.file.sync_data() {
                return Err(self.fail("fsync", source));
            }
            self.dirty = false;
            self.durable = self.last_lsn();
        }
        Ok(self.durable)
    }

    /// Durably discards every record after `lsn` (reverting to a fork point, R-FAIL-4/6).
    ///
    /// Does nothing when the log ends at or before `lsn`. Afterwards the log ends at `lsn`,
    /// and all of it is durable (the truncation syncs the whole file).
    pub fn truncate_after(&mut self, lsn: Lsn) -> Result<(), WalError> {
        self.check_usable()?;
        let keep = match usize::try_from(lsn.0) {
            Ok(keep) if keep < self.index.len() => keep,
            _ => return Ok(()),
        };
        let new_end = self.index[keep].offset;
        if let Err(source) = self.file.set_len(new_end) {
            return Err(self.fail("truncate", source));
        }
        if let Err(source) = self.file.sync_all() {
            return Err(self.fail("fsync", source));
        }
        if let Err(source) = self.file.seek(SeekFrom::Start(new_end)) {
            return Err(self.fail("seek in", source));
        }
        self.index.truncate(keep);
        self.end = new_end;
        self.durable = lsn;
        self.dirty = false;
        Ok(())
    }

    /// A second handle on the file, for an fsync performed elsewhere (a flusher thread) while
    /// this one goes on appending; report what it made durable with [`Wal::mark_durable`].
    pub fn sync_handle(&self) -> Result<File, WalError> {
        self.file
            .try_clone()
            .map_err(io_error(&self.path, "duplicate"))
    }

    /// Records that an fsync through [`Wal::sync_handle`], started when the log ended at
    /// `lsn`, finished: everything up to `lsn` is durable.
    pub fn mark_durable(&mut self, lsn: Lsn) {
        if lsn > self.durable && lsn <= self.last_lsn() {
            self.durable = lsn;
            if lsn == self.last_lsn() {
                self.dirty = false;
            }
        }
    }

    /// The LSN of the last record appended (durable or not); `Lsn(0)` for an empty log.
    pub fn last_lsn(&self) -> Lsn {
        Lsn(self.index.len() as u64)
    }

    /// The LSN of the last durable record: everything up to it survives a crash.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database whose log this is.
    pub fn database(&self) -> DatabaseId {
        self.database
    }

    fn last_epoch(&self) -> Epoch {
        self.index.last().map_or(Epoch::NONE, |entry| entry.epoch)
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Marks the log unusable after an I/O error and returns that error.
    fn fail(&mut self, operation: &'static str, source: io::Error) -> WalError {
        self.failed = true;
        tracing::error!(
            path = %self.path.display(),
            database = self.database.0,
            operation,
            error = %source,
            "write-ahead log failed; it must be reopened"
        );
        io_error(&self.path, operation)(source)
    }
}

fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io {
        path,
        operation,
        source,
    }
}

/// The header of the log of `database`.
pub fn header(database: DatabaseId) -> [u8; WAL_HEADER_LEN as usize] {
    let mut header = [0; WAL_HEADER_LEN as usize];
    header[..8].copy_from_slice(&WAL_MAGIC);
    header[8] = database.0;
    header
}

fn check_header(path: &Path, contents: &[u8], database: DatabaseId) -> Result<(), WalError> {
    let head = &contents[..contents.len().min(WAL_HEADER_LEN as usize)];
    if head.len() < WAL_HEADER_LEN as usize || head[..8] != WAL_MAGIC {
        return Err(WalError::BadHeader {
            path: path.to_path_buf(),
            found: String::from_utf8_lossy(head).into_owned(),
        });
    }
    let found = DatabaseId(head[8]);
    if found != database {
        return Err(WalError::WrongDatabase {
            path: path.to_path_buf(),
            expected: database,
            found,
        });
    }
    Ok(())
}

/// Creates the file atomically: header into `<path>.new`, sync, rename, sync the directory.
fn create(path: &Path, database: DatabaseId) -> Result<(), WalError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let staging = path.with_file_name(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&staging)
        .map_err(io_error(&staging, "create"))?;
    file.write_all(&header(database))
        .map_err(io_error(&staging, "write"))?;
    file.sync_all().map_err(io_error(&staging, "fsync"))?;
    drop(file);
    fs::rename(&staging, path).map_err(io_error(path, "create"))?;
    sync_directory(path)
}

/// Makes a new directory entry for `path` durable.
fn sync_directory(path: &Path) -> Result<(), WalError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(directory, "sync the directory"))?;
    #[cfg(not(unix))]
    let _ = directory;
    Ok(())
}

/// The records of a file and where its good part ends.
struct Scan {
    records: Vec<LogRecord>,
    index: Vec<IndexEntry>,
    end: u64,
    problem: Option<TailProblem>,
}

/// Reads records after the header up to the end of `contents` or the first bad record.
fn scan(contents: &[u8]) -> Scan {
    let mut scan = Scan {
        records: Vec::new(),
        index: Vec::new(),
        end: WAL_HEADER_LEN,
        problem: None,
    };
    let mut offset = WAL_HEADER_LEN as usize;
    let mut previous = (Lsn(0), Epoch::NONE);
    while offset < contents.len() {
        match read_record(&contents[offset..], offset as u64, previous) {
            Ok((record, len)) => {
                previous = (record.lsn, record.epoch);
                scan.index.push(IndexEntry {
                    offset: offset as u64,
                    epoch: record.epoch,
                });
                scan.records.push(record);
                offset += len;
                scan.end = offset as u64;
            }
            Err(problem) => {
                scan.problem = Some(problem);
                break;
            }
        }
    }
    scan
}

/// Reads the record at the start of `bytes` (at file offset `offset`), which must follow the
/// record `previous` (LSN, epoch). Returns it and its size in the file.
fn read_record(
    bytes: &[u8],
    offset: u64,
    previous: (Lsn, Epoch),
) -> Result<(LogRecord, usize), TailProblem> {
    let available = bytes.len() as u64;
    let torn = |needed| TailProblem::Torn {
        offset,
        needed,
        available,
    };
    let Some(head) = bytes.get(..RECORD_HEADER_LEN as usize) else {
        return Err(torn(RECORD_HEADER_LEN));
    };
    let mut reader = Reader::new(head);
    let (length, expected) = match (reader.get_u32(), reader.get_u32()) {
        (Ok(length), Ok(checksum)) => (length, checksum),
        _ => return Err(torn(RECORD_HEADER_LEN)),
    };
    if length > MAX_RECORD_LEN {
        return Err(TailProblem::TooLong {
            offset,
            length,
            limit: MAX_RECORD_LEN,
        });
    }
    let total = RECORD_HEADER_LEN as usize + length as usize;
    let Some(payload) = bytes.get(RECORD_HEADER_LEN as usize..total) else {
        return Err(torn(total as u64));
    };
    let found = crc32c::crc32c(payload);
    if found != expected {
        return Err(TailProblem::ChecksumMismatch {
            offset,
            expected,
            found,
        });
    }
    let record = Reader::decode_exact(payload, Reader::get_log_record)
        .map_err(|source| TailProblem::Undecodable { offset, source })?;
    check_run(std::slice::from_ref(&record), previous.0, previous.1)
        .map_err(|source| TailProblem::OutOfSequence { offset, source })?;
    Ok((record, total))
}
