//! One write-ahead log file per availability database: the durable copy of its log records
//! after its **base** (LSNs consecutive from base + 1), appended by `AppendLog`, made durable by
//! `Fsync`, cut back by `RevertLog` (hadr-core's outputs), and cut at the front after a
//! checkpoint ([`Wal::truncate_through`]).
//!
//! ```text
//!  0         7   8    9             17              21
//!  ┌─────────┬───┬────┬─────────────┬───────────────┬───────────────────────────────────┬── …
//!  │"HADRWAL"│"2"│ db │ base u64 LE │ CRC-32C u32 LE│ len u32 LE │ CRC-32C u32 LE │ payload │ …
//!  └─────────┴───┴────┴─────────────┴───────────────┴───────────────────────────────────┴── …
//!       header (21 bytes): the CRC-32C covers bytes 0..17   record: payload = codec encoding
//!                                                           of a LogRecord, CRC-32C of the
//!                                                           payload, len = payload bytes
//! ```
//!
//! The header is written once, when the file is created, and never changed in place: its
//! checksum makes a flipped bit in it (the database id, the base) an error or damage, never a
//! log read with another base. A fresh log has base 0 (records from LSN 1).
//! [`Wal::truncate_through`] writes a new file whose header carries the new base, and puts it in
//! place of the old one atomically (written beside it, synced, renamed over it, the directory
//! synced): it copies only the records after the new base.
//!
//! Version 1 files (`"HADRWAL1"` and the database id, 9 bytes, no base, no checksum), written
//! before the base existed, are still read: as logs with base 0. Appends go on in the same file;
//! the first [`Wal::truncate_through`] rewrites it as version 2.
//!
//! Recovery ([`Wal::open`]) tells a **torn tail** from **damage**. It reads well-formed records
//! up to the first bad spot: a record that is torn (the file ends inside it), fails its
//! checksum, declares an impossible length, does not decode or does not continue the log (the
//! first record must be base + 1: the sequence is relative to the base), or zeros where a
//! record should start with data after them. When no valid record follows the bad
//! spot anywhere in the file, it is the tail of a write interrupted by a crash: nothing after
//! it was ever durable, and the file is cut there, durably. When a valid record (checksum right,
//! decodes, an LSN after the good prefix) follows it, the log is **damaged** (bit rot, a lost or
//! misdirected write): the records after the bad spot were durable and may have been
//! acknowledged, so nothing is cut and [`Wal::open`] refuses with [`WalError::Damaged`], naming
//! the file, the offset and the LSNs at stake. [`Wal::quarantine`] then keeps the damaged file
//! under another name and starts a log from its good prefix, for a replica that marked the
//! database damaged first (so that it never serves or leads with the short copy). A record
//! that fails its checksum is never returned.
//!
//! The rule is conservative: a multi-block write torn by a power failure so that a later block
//! reached the disk and an earlier one did not reads as damage too, a false alarm that costs a
//! reseed, never a loss.
//!
//! Durability: [`Wal::append`] makes nothing durable; [`Wal::sync`] makes everything appended
//! so far durable with one flush. Group commit is the caller's: append the records of many
//! transactions, then sync once, then acknowledge them all. A flush can also run on another
//! thread: [`Wal::prepare_flush`] hands out a [`FlushJob`], run it with a [`FlushHandle`], then
//! report it with [`Wal::mark_durable`].
//!
//! Truncation after a checkpoint ([`Wal::truncate_through`]): with no flush in flight, the
//! records up to the checkpoint are dropped by writing the records after it into a new file
//! (header with the new base, the records, the preallocated zeros), fsyncing it, renaming it
//! over the log and fsyncing the directory; a crash leaves the old file or the new one, both
//! complete logs. It costs a copy of the records kept only, and shrinks the in-memory index to
//! them. A [`FlushHandle`] shares the log's current file, so the handle a flusher thread holds
//! stays valid across it (a [`FlushJob`] prepared before it is refused).
//!
//! How a flush reaches the disk ([`WalOptions`]). By default the file is **preallocated**: zeros
//! are written ahead of the log's end and made durable, a megabyte at a time, so that a flush
//! never changes the file's size or allocates a block (no journal commit of the inode; recovery
//! reads zeros where a record would start as the end of the log). Records are kept in memory
//! until the flush, which writes them with **direct, synchronous I/O** (`O_DIRECT | O_DSYNC`) in
//! whole 4 KiB blocks, the partly filled last block written again by the next flush: one device
//! write instead of a page-cache write and an `fdatasync`. Rewriting that block does not endanger
//! the records already in it as long as the device writes each sector whole (a torn write then
//! mixes old and new sectors whose bytes agree on those records), the same assumption as the
//! writeback of a partly filled page. Direct and buffered I/O meet on one block, the one a
//! truncation cuts (read, cut and zero-filled through the page cache): this relies on Linux
//! dropping cached pages after each direct write (a failure to do so fails the next
//! `fdatasync`, and the log then refuses all work). Direct I/O is used on Linux only.
//! Where the file system refuses direct I/O (tmpfs before Linux 6.6, some network and FUSE file
//! systems), the log falls back to buffered writes and `fdatasync`; [`WalOptions::plain`] asks
//! for exactly that, and for a file that grows with every append.
//!
//! After any I/O error while writing, syncing or truncating, the file's state on disk is
//! unknown (a failed `fsync` may have dropped dirty pages), so the [`Wal`] refuses all further
//! work with [`WalError::Failed`]: reopen it (restart the node) to recover from what is on disk.

use crate::codec::{DecodeError, Reader, Writer};
use hadr_core::log::{check_run, LogShapeError};
use hadr_core::{Epoch, LogRecord};
use hadr_types::{DatabaseId, Lsn};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The first seven bytes of every WAL file; the eighth is the format version, an ASCII digit
/// ([`WAL_VERSION`], or `1` for the files [`WAL_V1_HEADER_LEN`] describes).
pub const WAL_MAGIC: [u8; 7] = *b"HADRWAL";
/// The format version of the files this code writes (the eighth byte of the file).
pub const WAL_VERSION: u8 = b'2';
/// Bytes of the file header (version 2): the magic, the version, the database id (one byte),
/// the base LSN (u64 LE: the records start at base + 1), then the CRC-32C (u32 LE) of the 17
/// bytes before it.
pub const WAL_HEADER_LEN: u64 = 21;
/// Bytes of a version 1 header (`"HADRWAL1"`, then the database id), still read: its log has
/// base 0.
pub const WAL_V1_HEADER_LEN: u64 = 9;
/// Bytes of the header that its checksum covers.
const HEADER_CHECKED_LEN: usize = 17;
/// Bytes before each record's payload: its length, then its checksum.
pub const RECORD_HEADER_LEN: u64 = 8;
/// The largest payload of a record: small enough that any record fits in one peer frame
/// ([`crate::wire::MAX_FRAME_BODY`]) with the fields of a `Log` message around it.
pub const MAX_RECORD_LEN: u32 = crate::wire::MAX_FRAME_BODY - 1024;
/// The unit of direct I/O: offsets, lengths and buffers of direct writes are multiples of it.
pub const BLOCK: u64 = 4096;
/// The flags of the descriptor that flushes write through with direct I/O (Linux only).
#[cfg(target_os = "linux")]
const DIRECT_FLAGS: Option<i32> = Some(libc::O_DIRECT | libc::O_DSYNC);
#[cfg(not(target_os = "linux"))]
const DIRECT_FLAGS: Option<i32> = None;
/// Bytes of zeros written ahead of the log's end by default ([`WalOptions::preallocate`]).
pub const DEFAULT_PREALLOCATE: u64 = 1 << 20;

/// How a [`Wal`] writes its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Write records at each flush with direct, synchronous I/O (`O_DIRECT | O_DSYNC`) in
    /// whole [`BLOCK`]s, when the file system allows it; otherwise (and when `false`) write them
    /// into the page cache at each append and `fdatasync` at each flush. Direct I/O needs
    /// preallocation: `preallocate` is raised to at least one block.
    pub direct: bool,
    /// Bytes of zeros written (and made durable) ahead of the log's end whenever appends come
    /// within reach of the file's end, so that a flush never grows the file. 0: the file grows
    /// with every append, and ends exactly at the last record.
    pub preallocate: u64,
}

impl WalOptions {
    /// Buffered writes, `fdatasync`, no preallocation: the file is exactly the header and the
    /// records.
    pub const fn plain() -> WalOptions {
        WalOptions {
            direct: false,
            preallocate: 0,
        }
    }
}

impl Default for WalOptions {
    /// Direct I/O where supported, [`DEFAULT_PREALLOCATE`] bytes of zeros ahead.
    fn default() -> WalOptions {
        WalOptions {
            direct: true,
            preallocate: DEFAULT_PREALLOCATE,
        }
    }
}

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
    /// Zeros where a record should start (the end of the log in a preallocated file), but
    /// bytes that are not zeros further on: the rest of a write cut short by a crash when no
    /// valid record is among them, damage (a lost or zeroed block) when one is.
    #[error(
        "record at byte {offset} is missing (zeros) but byte {data_at} further on is not zero"
    )]
    Hole {
        /// Where the missing record starts in the file.
        offset: u64,
        /// The first byte after it that is not zero.
        data_at: u64,
    },
    /// The file's header is not a WAL header (wrong magic, or a version 2 header whose
    /// checksum does not match), though valid records follow it: a damaged header (only ever
    /// part of a [`Damage`]). The base it held cannot be trusted.
    #[error("the file header {found:?} is not a valid write-ahead log header (wrong magic, or its checksum does not match), though valid records follow it")]
    Header {
        /// The header's bytes, lossily as text.
        found: String,
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
    /// The log's base, from the file's header: the records up to it were dropped
    /// ([`Wal::truncate_through`]); 0 for a log never truncated (and a version 1 file).
    pub base: Lsn,
    /// The good records, LSNs consecutive from `base + 1`, all durable.
    pub records: Vec<LogRecord>,
    /// Bytes discarded from the end of the file, up to the last byte that is not zero (0 when
    /// it ended cleanly: after the last record, or in zeros, which are preallocated space and
    /// are kept; zeros after a bad tail are cut with it but not counted).
    pub truncated_bytes: u64,
    /// Why recovery stopped before the end of the file, if it did.
    pub stop_reason: Option<TailProblem>,
    /// Only from [`Wal::inspect`]: the log is damaged, not torn ([`WalError::Damaged`]);
    /// `records` is then its good prefix and nothing counts as discarded. [`Wal::open`] refuses
    /// a damaged log instead.
    pub damage: Option<Damage>,
}

/// Damage found by recovery: a bad spot with valid records after it ([`WalError::Damaged`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The first bad spot: the first record recovery could not read.
    pub problem: TailProblem,
    /// The good prefix ends here: records up to this LSN are intact and in order (the
    /// log's base when none is; 0 when the header is damaged, whose base is then unknown).
    pub kept: Lsn,
    /// File offset just after the good prefix (where the bad spot starts).
    pub kept_bytes: u64,
    /// The first valid record found after the bad spot: its offset in the file. `None` when
    /// the bad spot is the last record, complete, and no torn write explains it (a flipped
    /// bit in the last acknowledged commit).
    pub valid_at: Option<u64>,
    /// The highest LSN of any valid record after the bad spot, at least `kept + 1`: the
    /// records `kept + 1 ..= lost_through` were on disk and cannot all be read back.
    pub lost_through: Lsn,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.valid_at {
            Some(at) => write!(f, "{}; a valid record follows at byte {at}", self.problem)?,
            None => write!(
                f,
                "{}; the record is complete, so no interrupted write explains it",
                self.problem
            )?,
        }
        write!(
            f,
            ", so records {}..={} were durable and cannot all be read back",
            Lsn(self.kept.0.saturating_add(1)),
            self.lost_through
        )
    }
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
    #[error("{} is not a hadr write-ahead log (it starts with {found:?}, expected \"HADRWAL2\" or \"HADRWAL1\" and a database id): move the file away or fix the node's data directory", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Its first bytes (up to the header's length), lossily as text.
        found: String,
    },
    /// The file's header is a version 2 header whose checksum does not match, and no valid
    /// record follows it (with one, it is [`WalError::Damaged`]): a flipped bit in the
    /// database id or the base, which therefore cannot be trusted.
    #[error("the header of write-ahead log {} is damaged: its checksum is {stored:#010x}, its bytes give {computed:#010x}, so the log's base LSN cannot be trusted. Nothing was changed: keep the file for inspection, and reseed the database (or move the file away to start an empty log)", path.display())]
    HeaderChecksum {
        /// The file.
        path: PathBuf,
        /// The checksum stored in the header.
        stored: u32,
        /// The checksum of the header's bytes.
        computed: u32,
    },
    /// The file is a write-ahead log of a format version this code does not read: written by
    /// a newer hadr, or a damaged version byte.
    #[error("{} is a write-ahead log of format version {version:?}, which this hadr does not read (it reads versions 1 and 2): run the hadr that wrote it, or, if no newer hadr ever ran here, the header is damaged: keep the file and reseed the database", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version byte (the eighth of the file), as a character.
        version: char,
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
    /// A flush job prepared by [`Wal::prepare_flush`] has not been reported yet (a bug of the
    /// caller: jobs run one at a time, and nothing else flushes or cuts the log meanwhile).
    #[error("a flush of {} up to {up_to} is still running: report it with mark_durable before the next flush or truncation", path.display())]
    FlushInFlight {
        /// The file.
        path: PathBuf,
        /// The last record of the job.
        up_to: Lsn,
    },
    /// Recovery found the log damaged (not a torn tail): nothing was changed on disk. The
    /// records up to [`Damage::kept`] are intact.
    #[error("write-ahead log {} is damaged at byte {}: {damage}. Nothing was cut; the file is kept for inspection", path.display(), damage.kept_bytes)]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What recovery found.
        damage: Box<Damage>,
    },
    /// [`Wal::truncate_through`] was asked to drop records the log does not hold yet (a bug of
    /// the caller: a checkpoint can only cover records that are in the log); nothing changed.
    #[error("refused to drop the records of {} through {through}: the log ends at {last}", path.display())]
    TruncateBeyondEnd {
        /// The file.
        path: PathBuf,
        /// The LSN asked for.
        through: Lsn,
        /// The log's last record (its base when it holds none).
        last: Lsn,
    },
    /// [`Wal::truncate_after`] was asked to cut the log back before its base: those records
    /// were dropped after a checkpoint ([`Wal::truncate_through`]) and cannot be reverted to;
    /// nothing changed. A fork point before the last checkpoint needs a reseed.
    #[error("cannot cut {} back to {lsn}: the records through {base} were dropped after a checkpoint, so the log cannot end before {base}", path.display())]
    BeforeBase {
        /// The file.
        path: PathBuf,
        /// The LSN the log was to end at.
        lsn: Lsn,
        /// The log's base.
        base: Lsn,
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
    /// The file, buffered: recovery, preallocation, truncation, and appends and flushes
    /// without direct I/O.
    file: Arc<File>,
    /// The file opened with `O_DIRECT | O_DSYNC`, when flushes write through it.
    direct: Option<Arc<File>>,
    /// What the [`FlushHandle`]s of this log run jobs on: the flush file and the generation,
    /// replaced when the file is.
    target: Arc<Mutex<FlushTarget>>,
    database: DatabaseId,
    /// Zeros kept ahead of the log's end (0: none).
    preallocate: u64,
    /// The records up to the base were dropped; the first record in the file is base + 1.
    base: Lsn,
    /// Entry `i` is the record of LSN `base + i + 1`.
    index: Vec<IndexEntry>,
    /// File offset just after the last record.
    end: u64,
    /// The file's length (≥ `end`; the bytes between are zeros).
    allocated: u64,
    /// With direct I/O: the bytes of the file from `pending_start` (a block boundary, the
    /// start of the block the last flush ended in) to `end`, to be written by the next flush.
    pending: Vec<u8>,
    pending_start: u64,
    durable: Lsn,
    /// The last record of the flush job prepared and not reported yet.
    in_flight: Option<Lsn>,
    /// Something was appended since the last flush job was prepared.
    dirty: bool,
    /// An I/O error left the file in an unknown state.
    failed: bool,
}

/// A flush prepared by [`Wal::prepare_flush`], to run (on any thread) with the log's
/// [`FlushHandle`], then to report with [`Wal::mark_durable`]. Jobs of one log must run one at a
/// time, in the order they were prepared: with direct I/O a job writes again the last block of
/// the one before it.
#[derive(Debug)]
pub struct FlushJob {
    up_to: Lsn,
    write: Option<BlockWrite>,
    /// The generation of the log's file it was prepared for ([`FlushTarget`]).
    generation: u64,
}

/// The file a log's flushes go through, shared by the log and its [`FlushHandle`]s, and its
/// generation: it changes whenever the file's layout does ([`Wal::truncate_through`] replaces
/// the file, [`Wal::truncate_after`] cuts it), so that a job prepared before is refused.
#[derive(Debug)]
struct FlushTarget {
    generation: u64,
    file: Arc<File>,
}

/// Whole blocks to write with direct I/O: `storage[start..start + len]` (block-aligned in
/// memory) at file offset `offset`.
#[derive(Debug)]
struct BlockWrite {
    offset: u64,
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl FlushJob {
    /// The last record the job makes durable.
    pub fn up_to(&self) -> Lsn {
        self.up_to
    }

    /// Performs the flush: one direct write of whole blocks, or one `fdatasync`, on the log's
    /// current file (a handle follows the log when [`Wal::truncate_through`] replaces its
    /// file). When it returns `Ok`, every record up to [`FlushJob::up_to`] is durable.
    ///
    /// A job prepared before the log's file was replaced or cut is refused without writing
    /// anything (its blocks belong to the old layout): an error of kind `InvalidInput`. That
    /// only happens when the caller broke the rule that no job runs across a truncation.
    pub fn run(&self, handle: &FlushHandle) -> io::Result<()> {
        let file = {
            let target = handle.0.lock().unwrap_or_else(PoisonError::into_inner);
            if target.generation != self.generation {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "flush job up to {} was prepared before the write-ahead log's file was truncated: prepare it again",
                        self.up_to
                    ),
                ));
            }
            Arc::clone(&target.file)
        };
        self.run_on(&file)
    }

    fn run_on(&self, file: &File) -> io::Result<()> {
        match &self.write {
            Some(write) => write.run_on(file),
            None => file.sync_data(),
        }
    }
}

impl BlockWrite {
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }

    fn run_on(&self, file: &File) -> io::Result<()> {
        file.write_all_at(
            &self.storage[self.start..self.start + self.len],
            self.offset,
        )
    }
}

/// `len` zero bytes (a multiple of [`BLOCK`]) at a block-aligned address, to write at offset 0.
fn aligned(len: usize) -> BlockWrite {
    let storage = vec![0; len + BLOCK as usize];
    let start = storage.as_ptr().align_offset(BLOCK as usize);
    BlockWrite {
        offset: 0,
        storage,
        start,
        len,
    }
}

fn align_down(offset: u64) -> u64 {
    offset / BLOCK * BLOCK
}

fn align_up(offset: u64) -> u64 {
    offset.div_ceil(BLOCK) * BLOCK
}

/// What a log's [`FlushJob`]s run through ([`Wal::flush_handle`]): the log's current flush
/// file, shared with the [`Wal`], so that a handle stays valid across
/// [`Wal::truncate_through`] (which puts a new file in place of the old one).
#[derive(Debug, Clone)]
pub struct FlushHandle(Arc<Mutex<FlushTarget>>);

impl Wal {
    /// Opens the log of `database` at `path` with the default [`WalOptions`] (direct I/O where
    /// supported, preallocated), creating it if it does not exist, and recovers its records.
    pub fn open(path: &Path, database: DatabaseId) -> Result<(Wal, Recovered), WalError> {
        Wal::open_with(path, database, WalOptions::default())
    }

    /// Opens the log of `database` at `path`, creating it if it does not exist, and recovers
    /// its records.
    ///
    /// A new file is created atomically (written as `<path>.new`, synced, renamed, directory
    /// synced), with base 0, so a file at `path` always has a complete header. A version 2
    /// header whose checksum fails is damage when valid records follow it
    /// ([`WalError::Damaged`], [`TailProblem::Header`]), else [`WalError::HeaderChecksum`];
    /// either way nothing is changed. For an existing file, the
    /// records are read up to the first bad one ([`TailProblem`]) or to zeros where a record
    /// would start with nothing but zeros after them (preallocated space, kept); the file is
    /// cut at a bad record and synced, so every record returned is durable, including records
    /// that the previous process wrote but did not sync before it died. Any log opens with any
    /// options: the options decide only how it is written from now on.
    pub fn open_with(
        path: &Path,
        database: DatabaseId,
        options: WalOptions,
    ) -> Result<(Wal, Recovered), WalError> {
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
        let scan = scan_file(path, &contents, database)?;
        if let Some(damage) = scan.damage {
            return Err(WalError::Damaged {
                path: path.to_path_buf(),
                damage: Box::new(damage),
            });
        }
        let mut allocated = contents.len() as u64;
        let truncated_bytes = discarded(&contents, &scan);
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
            allocated = scan.end;
        }
        file.sync_all().map_err(io("fsync"))?;

        let last = Lsn(scan.base.0.saturating_add(scan.records.len() as u64));
        let preallocate = match options.direct {
            true => options.preallocate.max(BLOCK),
            false => options.preallocate,
        };
        let file = Arc::new(file);
        let mut wal = Wal {
            path: path.to_path_buf(),
            target: Arc::new(Mutex::new(FlushTarget {
                generation: 0,
                file: Arc::clone(&file),
            })),
            file,
            direct: None,
            database,
            preallocate,
            base: scan.base,
            index: scan.index,
            end: scan.end,
            allocated,
            pending: Vec::new(),
            pending_start: 0,
            durable: last,
            in_flight: None,
            dirty: false,
            failed: false,
        };
        wal.reserve(wal.end)?;
        if options.direct {
            wal.direct = wal.open_direct()?.map(Arc::new);
            let start = align_down(wal.end);
            wal.pending_start = start;
            wal.pending = contents[start as usize..wal.end as usize].to_vec();
            wal.target_changed();
        }
        let recovered = Recovered {
            base: scan.base,
            records: scan.records,
            truncated_bytes,
            stop_reason: scan.problem,
            damage: None,
        };
        Ok((wal, recovered))
    }

    /// Opens the file for direct, synchronous writes and checks that the file system takes
    /// them by writing the first block again (same bytes). `None` where direct I/O is not
    /// supported: flushes then use `fdatasync`.
    fn open_direct(&self) -> Result<Option<File>, WalError> {
        let not_supported = |error: &io::Error| {
            matches!(
                error.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
            )
        };
        let Some(flags) = DIRECT_FLAGS else {
            tracing::info!(path = %self.path.display(), "no direct I/O on this platform: the write-ahead log uses buffered writes and fdatasync");
            return Ok(None);
        };
        let direct = match OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(&self.path)
        {
            Ok(file) => file,
            Err(error) if not_supported(&error) => {
                tracing::info!(path = %self.path.display(), %error, "no direct I/O on this file system: the write-ahead log uses buffered writes and fdatasync");
                return Ok(None);
            }
            Err(error) => return Err(io_error(&self.path, "open")(error)),
        };
        let mut first = aligned(BLOCK as usize);
        self.file
            .read_exact_at(first.bytes_mut(), 0)
            .map_err(io_error(&self.path, "read"))?;
        match first.run_on(&direct) {
            Ok(()) => Ok(Some(direct)),
            Err(error) if not_supported(&error) => {
                tracing::info!(path = %self.path.display(), %error, "direct writes refused by this file system: the write-ahead log uses buffered writes and fdatasync");
                Ok(None)
            }
            Err(error) => Err(io_error(&self.path, "write to")(error)),
        }
    }

    /// What [`Wal::open`] would recover from the log of `database` at `path`, read without
    /// changing anything: the file is opened read-only, a bad tail is reported in
    /// [`Recovered::truncated_bytes`] and [`Recovered::stop_reason`] but not cut off, damage is
    /// reported in [`Recovered::damage`] (with the good prefix as the records), and a missing
    /// file reads as the empty log that `open` would create.
    pub fn inspect(path: &Path, database: DatabaseId) -> Result<Recovered, WalError> {
        let contents = match fs::read(path) {
            Ok(contents) => contents,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Recovered {
                    base: Lsn(0),
                    records: Vec::new(),
                    truncated_bytes: 0,
                    stop_reason: None,
                    damage: None,
                })
            }
            Err(error) => return Err(io_error(path, "read")(error)),
        };
        let scan = scan_file(path, &contents, database)?;
        let truncated_bytes = match scan.damage {
            Some(_) => 0,
            None => discarded(&contents, &scan),
        };
        Ok(Recovered {
            base: scan.base,
            records: scan.records,
            truncated_bytes,
            stop_reason: scan.problem,
            damage: scan.damage,
        })
    }

    /// Starts the log of `database` at `path` again from its good prefix when it is damaged,
    /// keeping the damaged file, then opens it ([`Wal::open_with`]). Returns the log, what it
    /// recovered, and where the damaged file is now kept (`None`, and nothing changed, when the
    /// log was not damaged).
    ///
    /// Only for a replica that has durably marked the database damaged first: the log that
    /// comes back is short, and only that mark stops the replica from serving it, leading with
    /// it, or forgetting on its next restart that records are missing.
    ///
    /// Crash-safe: the prefix is written to `<path>.new` and synced, the damaged file gets a
    /// second name (`<path>.damaged-<seconds since 1970>`, a hard link) and the directory is
    /// synced, then `<path>.new` replaces `path` atomically. At any point a crash leaves at
    /// `path` either the damaged log or the prefix.
    ///
    /// The prefix keeps the file's header, and so its base. When the header itself is damaged
    /// ([`TailProblem::Header`]), its base cannot be trusted: the new log is empty with base 0.
    pub fn quarantine(
        path: &Path,
        database: DatabaseId,
        options: WalOptions,
    ) -> Result<(Wal, Recovered, Option<PathBuf>), WalError> {
        let contents = fs::read(path).map_err(io_error(path, "read"))?;
        let Some(damage) = scan_file(path, &contents, database)?.damage else {
            let (wal, recovered) = Wal::open_with(path, database, options)?;
            return Ok((wal, recovered, None));
        };
        let staging = with_suffix(path, ".new");
        let write = |file: &mut File| -> io::Result<()> {
            match damage.problem {
                // A damaged header: a new one, and none of the records (kept is 0).
                TailProblem::Header { .. } => file.write_all(&header(database))?,
                _ => file.write_all(&contents[..damage.kept_bytes as usize])?,
            }
            file.sync_all()
        };
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&staging)
            .and_then(|mut file| write(&mut file))
            .map_err(io_error(&staging, "write"))?;
        let aside = kept_name(path)?;
        fs::hard_link(path, &aside).map_err(io_error(&aside, "create"))?;
        sync_directory(path)?;
        fs::rename(&staging, path).map_err(io_error(path, "replace"))?;
        sync_directory(path)?;
        tracing::warn!(
            path = %path.display(),
            kept = %aside.display(),
            records = damage.kept.0,
            "the damaged write-ahead log was kept aside; the log starts again from its good prefix"
        );
        let (wal, recovered) = Wal::open_with(path, database, options)?;
        Ok((wal, recovered, Some(aside)))
    }

    /// Appends `records` at the end of the log (with direct I/O, in memory until the next
    /// flush; otherwise in one write call). They are not durable until [`Wal::sync`] (or a
    /// [`FlushJob`] prepared after this call).
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
        let new_end = self.end + buf.len() as u64;
        self.reserve(new_end)?;
        if self.direct.is_some() {
            self.pending.extend_from_slice(&buf);
        } else if let Err(source) = self.file.write_all_at(&buf, self.end) {
            return Err(self.fail("append to", source));
        }
        self.index.extend(entries);
        self.end = new_end;
        self.allocated = self.allocated.max(new_end);
        self.dirty |= !records.is_empty();
        Ok(())
    }

    /// Makes every record appended so far durable (one direct write, or one `fdatasync`) and
    /// returns the last durable LSN. Returns at once, without a system call, when nothing was
    /// appended since the last flush.
    pub fn sync(&mut self) -> Result<Lsn, WalError> {
        if let Some(job) = self.prepare_flush()? {
            if let Err(source) = job.run_on(self.flush_file()) {
                return Err(self.flush_failed(source));
            }
            self.mark_durable(job.up_to);
        }
        Ok(self.durable)
    }

    /// The flush of everything appended so far, to run elsewhere (a flusher thread) while this
    /// log goes on appending; `None` when nothing was appended since the last job. One job at a
    /// time: report it with [`Wal::mark_durable`] (or [`Wal::flush_failed`]) before the next
    /// flush, job or truncation, which are refused with [`WalError::FlushInFlight`] until then.
    pub fn prepare_flush(&mut self) -> Result<Option<FlushJob>, WalError> {
        self.check_idle()?;
        if !self.dirty {
            return Ok(None);
        }
        self.dirty = false;
        self.in_flight = Some(self.last_lsn());
        let write = if self.direct.is_some() {
            let len = align_up(self.pending.len() as u64) as usize;
            let mut write = aligned(len);
            write.offset = self.pending_start;
            write.bytes_mut()[..self.pending.len()].copy_from_slice(&self.pending);
            // The next job starts at the block this one ends in.
            let next_start = align_down(self.end);
            self.pending
                .drain(..(next_start - self.pending_start) as usize);
            self.pending_start = next_start;
            Some(write)
        } else {
            None
        };
        Ok(Some(FlushJob {
            up_to: self.last_lsn(),
            write,
            generation: self.generation(),
        }))
    }

    /// A handle to run this log's [`FlushJob`]s through, on any thread. It shares the log's
    /// flush file rather than duplicating it: it stays valid for the log's whole life, and
    /// follows the log to the new file [`Wal::truncate_through`] puts in place (so a flusher
    /// thread can keep the handle it was given). Never fails today; the `Result` is kept for
    /// callers written when it duplicated a descriptor.
    pub fn flush_handle(&self) -> Result<FlushHandle, WalError> {
        self.check_usable()?;
        Ok(FlushHandle(Arc::clone(&self.target)))
    }

    /// The descriptor flushes go through: the direct one, or the buffered file.
    fn flush_file(&self) -> &File {
        self.direct.as_deref().unwrap_or(&self.file)
    }

    /// The generation of the file's layout that jobs are prepared for.
    fn generation(&self) -> u64 {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// The file or its layout changed (a new file, a new flush descriptor, a cut): the
    /// handles now run jobs on the current flush file, and refuse jobs prepared before.
    fn target_changed(&mut self) {
        let file = Arc::clone(self.direct.as_ref().unwrap_or(&self.file));
        let mut target = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        target.generation += 1;
        target.file = file;
    }

    /// Records that the [`FlushJob`] up to `lsn` finished: everything up to `lsn` is durable.
    pub fn mark_durable(&mut self, lsn: Lsn) {
        if self.in_flight.is_some_and(|up_to| lsn >= up_to) {
            self.in_flight = None;
        }
        if lsn > self.durable && lsn <= self.last_lsn() {
            self.durable = lsn;
        }
    }

    /// Records that the [`FlushJob`] in flight failed with `source`: what it held is lost from
    /// memory and its state on disk unknown, so the log refuses all further work (reopen it).
    /// Returns the error to report.
    pub fn flush_failed(&mut self, source: io::Error) -> WalError {
        self.in_flight = None;
        self.fail("flush", source)
    }

    /// Durably discards every record after `lsn` (reverting to a fork point, R-FAIL-4/6).
    ///
    /// Does nothing when the log ends at or before `lsn`. Afterwards the log ends at `lsn`,
    /// and all of it is durable (what was appended before is flushed first; the file is cut
    /// and synced, then preallocated again). No [`FlushJob`] of this log may be running.
    /// Refused with [`WalError::BeforeBase`] when `lsn` is before the log's base (those
    /// records were dropped by [`Wal::truncate_through`]).
    pub fn truncate_after(&mut self, lsn: Lsn) -> Result<(), WalError> {
        self.check_idle()?;
        if lsn < self.base {
            return Err(WalError::BeforeBase {
                path: self.path.clone(),
                lsn,
                base: self.base,
            });
        }
        let keep = match usize::try_from(lsn.0 - self.base.0) {
            Ok(keep) if keep < self.index.len() => keep,
            _ => return Ok(()),
        };
        self.sync()?;
        let new_end = self.index[keep].offset;
        if let Err(source) = self.file.set_len(new_end) {
            return Err(self.fail("truncate", source));
        }
        if let Err(source) = self.file.sync_all() {
            return Err(self.fail("fsync", source));
        }
        self.index.truncate(keep);
        self.end = new_end;
        self.allocated = new_end;
        self.durable = lsn;
        self.dirty = false;
        if self.direct.is_some() {
            let start = align_down(new_end);
            let mut tail = vec![0; (new_end - start) as usize];
            if let Err(source) = self.file.read_exact_at(&mut tail, start) {
                return Err(self.fail("read", source));
            }
            self.pending = tail;
            self.pending_start = start;
        }
        self.target_changed();
        self.reserve(new_end)
    }

    /// Durably drops every record up to `through` (a checkpoint holds them now): afterwards
    /// the log's base is `through` and it holds the records `through + 1 ..= last_lsn`, all
    /// durable. Does nothing when `through` is at or before the base; refused with
    /// [`WalError::TruncateBeyondEnd`] (nothing changed) when it is after [`Wal::last_lsn`].
    /// No [`FlushJob`] of this log may be running ([`WalError::FlushInFlight`]).
    ///
    /// Cost: what was appended is flushed first, then the records after `through` are copied,
    /// and only they: call it right after a checkpoint, when few records follow it. The
    /// in-memory index shrinks to those records.
    ///
    /// Crash-safe: a new file (a header with base `through`, the records after it, then the
    /// preallocated zeros the log's [`WalOptions`] ask for) is written as `<path>.new` and
    /// synced, renamed over `path`, and the directory is synced. A crash at any point leaves at
    /// `path` either the old file or the new one, both complete logs that recover the same
    /// records after `through` (the old one also those before). An error before the rename
    /// leaves the log as it was, usable; an error after it fails the log ([`WalError::Failed`]:
    /// reopen it).
    ///
    /// For the caller: the file is replaced, so descriptors of it obtained elsewhere are
    /// stale; this log's [`FlushHandle`]s are not (they follow the log to the new file), so a
    /// flusher thread keeps its handle. A [`FlushJob`] prepared before is refused by
    /// [`FlushJob::run`] (there is none when this succeeds: the rule above). The file offsets
    /// of records change ([`Recovered`] and [`Wal::base`] after a reopen say where the log
    /// starts).
    pub fn truncate_through(&mut self, through: Lsn) -> Result<(), WalError> {
        self.check_idle()?;
        if through > self.last_lsn() {
            return Err(WalError::TruncateBeyondEnd {
                path: self.path.clone(),
                through,
                last: self.last_lsn(),
            });
        }
        if through <= self.base {
            return Ok(());
        }
        self.rewrite_after(through)
    }

    /// Drops every record up to `through` like [`Wal::truncate_through`], and when the log
    /// ends before `through`, every record it holds: the log then starts empty after
    /// `through`, the next record it takes is `through + 1`. For a recovery whose data file
    /// holds the records up to `through` while the intact part of its log ends before them (a
    /// damaged log quarantined before its checkpointed prefix was dropped). Same crash safety
    /// and rules as [`Wal::truncate_through`].
    pub fn restart_after(&mut self, through: Lsn) -> Result<(), WalError> {
        self.check_idle()?;
        if through <= self.base {
            return Ok(());
        }
        self.rewrite_after(through)
    }

    /// Writes the log anew with base `through` and the records after it (none when it ends
    /// before), and puts it in place of the old one (see [`Wal::truncate_through`]).
    fn rewrite_after(&mut self, through: Lsn) -> Result<(), WalError> {
        self.sync()?;
        let was_direct = self.direct.is_some();
        let drop = ((through.0 - self.base.0) as usize).min(self.index.len());
        let from = self.index.get(drop).map_or(self.end, |entry| entry.offset);
        let mut contents = header_with_base(self.database, through).to_vec();
        let body = (self.end - from) as usize;
        contents.resize(WAL_HEADER_LEN as usize + body, 0);
        if let Err(source) = self
            .file
            .read_exact_at(&mut contents[WAL_HEADER_LEN as usize..], from)
        {
            return Err(self.fail("read", source));
        }
        let end = contents.len() as u64;
        let allocated = match self.preallocate {
            0 => end,
            ahead => align_up(end + ahead),
        };
        let staging = with_suffix(&self.path, ".new");
        let written = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&staging)
            .and_then(|file| {
                file.write_all_at(&contents, 0)?;
                write_zeros(&file, end, allocated)?;
                file.sync_all()?;
                Ok(file)
            });
        let file = match written {
            Ok(file) => file,
            Err(source) => {
                let _ = fs::remove_file(&staging);
                return Err(io_error(&staging, "write")(source));
            }
        };
        if let Err(source) = fs::rename(&staging, &self.path) {
            let _ = fs::remove_file(&staging);
            return Err(io_error(&self.path, "replace")(source));
        }
        // The new file is in place: the log follows it before anything else can fail.
        self.index = self.index[drop..]
            .iter()
            .map(|entry| IndexEntry {
                offset: entry.offset - from + WAL_HEADER_LEN,
                epoch: entry.epoch,
            })
            .collect();
        self.file = Arc::new(file);
        self.direct = None;
        self.base = through;
        self.end = end;
        self.allocated = allocated;
        self.durable = self.last_lsn();
        self.dirty = false;
        let start = align_down(end);
        self.pending_start = start;
        self.pending = Vec::new();
        self.target_changed();
        if let Err(error) = sync_directory(&self.path) {
            self.failed = true;
            return Err(error);
        }
        if was_direct {
            // The direct descriptor was the old file's: open the new one the same way.
            match self.open_direct() {
                Ok(direct) => self.direct = direct.map(Arc::new),
                Err(error) => {
                    self.failed = true;
                    return Err(error);
                }
            }
            if self.direct.is_some() {
                self.pending = contents[start as usize..end as usize].to_vec();
            }
            self.target_changed();
        }
        Ok(())
    }

    /// Makes sure the file holds durable zeros up to at least `needed` and ends on a block
    /// boundary, writing [`WalOptions::preallocate`] bytes of zeros beyond `needed` when it
    /// does not. Nothing without preallocation.
    fn reserve(&mut self, needed: u64) -> Result<(), WalError> {
        if self.preallocate == 0 || (needed <= self.allocated && self.allocated % BLOCK == 0) {
            return Ok(());
        }
        let target = align_up(needed.max(self.allocated) + self.preallocate);
        if let Err(source) = write_zeros(&self.file, self.allocated, target) {
            return Err(self.fail("preallocate", source));
        }
        if let Err(source) = self.file.sync_data() {
            return Err(self.fail("fsync", source));
        }
        tracing::debug!(path = %self.path.display(), from = self.allocated, to = target, "write-ahead log preallocated");
        self.allocated = target;
        Ok(())
    }

    /// Whether flushes write with direct I/O (`false`: buffered writes and `fdatasync`).
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The LSN of the last record appended (durable or not); the base when the log holds no
    /// record (`Lsn(0)` for a log never truncated).
    pub fn last_lsn(&self) -> Lsn {
        Lsn(self.base.0.saturating_add(self.index.len() as u64))
    }

    /// The log's base: the records up to it were dropped ([`Wal::truncate_through`]); the
    /// first record the log holds, if any, is `base + 1`. 0 for a log never truncated.
    pub fn base(&self) -> Lsn {
        self.base
    }

    /// Bytes of memory the log holds: its per-record index (a few words per record after the
    /// base, so [`Wal::truncate_through`] bounds it) and, with direct I/O, the records not
    /// flushed yet.
    pub fn memory_bytes(&self) -> usize {
        self.index.capacity() * std::mem::size_of::<IndexEntry>() + self.pending.capacity()
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

    /// Usable, and no flush job in flight.
    fn check_idle(&self) -> Result<(), WalError> {
        self.check_usable()?;
        match self.in_flight {
            Some(up_to) => Err(WalError::FlushInFlight {
                path: self.path.clone(),
                up_to,
            }),
            None => Ok(()),
        }
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

/// Writes zeros over `from..to` of `file` (real zeros, not a hole: the blocks are allocated).
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io {
        path,
        operation,
        source,
    }
}

/// Simulates a crash in the middle of writing the last record of the log at `path`, for tests
/// and fault injection on a stopped replica: the record's last `bytes` bytes (at most all of it),
/// widened to whole [`SECTOR`]s (a device writes a sector whole or not at all), read back as
/// zeros, as the part of a preallocated file that a write did not reach. When the widening
/// reaches the record's first sector, the whole record reads as zeros. The file keeps its
/// length. Returns the LSN of the record torn; `None` (and nothing changed) when the log has no
/// record.
pub fn tear_last_record(path: &Path, bytes: u64) -> io::Result<Option<Lsn>> {
    if bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tearing 0 bytes off a record tears nothing",
        ));
    }
    let contents = fs::read(path)?;
    let Ok(header) = parse_header(&contents) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a hadr write-ahead log", path.display()),
        ));
    };
    let scan = scan(&contents, header.len, header.base);
    let Some(last) = scan.index.last() else {
        return Ok(None);
    };
    let from = (scan.end.saturating_sub(bytes) / SECTOR * SECTOR).max(last.offset);
    let file = OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&vec![0; (scan.end - from) as usize], from)?;
    file.sync_all()?;
    Ok(Some(Lsn(header
        .base
        .0
        .saturating_add(scan.index.len() as u64))))
}

/// The header of a new log of `database` (base 0).
pub fn header(database: DatabaseId) -> [u8; WAL_HEADER_LEN as usize] {
    header_with_base(database, Lsn(0))
}

/// The header of the log of `database` whose records start after `base`: the magic, the
/// version, the database id, the base, and the checksum of all that.
pub fn header_with_base(database: DatabaseId, base: Lsn) -> [u8; WAL_HEADER_LEN as usize] {
    let mut header = [0; WAL_HEADER_LEN as usize];
    header[..7].copy_from_slice(&WAL_MAGIC);
    header[7] = WAL_VERSION;
    header[8] = database.0;
    header[9..17].copy_from_slice(&base.0.to_le_bytes());
    let checksum = crc32c::crc32c(&header[..HEADER_CHECKED_LEN]);
    header[HEADER_CHECKED_LEN..].copy_from_slice(&checksum.to_le_bytes());
    header
}

/// A file's header, read.
struct Header {
    database: DatabaseId,
    base: Lsn,
    /// Its length: where the records start.
    len: u64,
}

/// Why a file's first bytes are not a header.
enum HeaderProblem {
    /// Too short, or not the magic.
    NotAWal,
    /// The magic, and a version this code does not read.
    Version(u8),
    /// A version 2 header whose checksum does not match its bytes.
    Checksum { stored: u32, computed: u32 },
}

/// Reads the header at the start of `contents`: version 2, or version 1 (base 0).
fn parse_header(contents: &[u8]) -> Result<Header, HeaderProblem> {
    if contents.len() < WAL_V1_HEADER_LEN as usize || contents[..7] != WAL_MAGIC {
        return Err(HeaderProblem::NotAWal);
    }
    match contents[7] {
        b'1' => Ok(Header {
            database: DatabaseId(contents[8]),
            base: Lsn(0),
            len: WAL_V1_HEADER_LEN,
        }),
        WAL_VERSION => {
            let Some(head) = contents.get(..WAL_HEADER_LEN as usize) else {
                return Err(HeaderProblem::NotAWal);
            };
            let word = |range: std::ops::Range<usize>| {
                head[range]
                    .iter()
                    .rev()
                    .fold(0, |n, b| n << 8 | u64::from(*b))
            };
            let stored = word(HEADER_CHECKED_LEN..WAL_HEADER_LEN as usize) as u32;
            let computed = crc32c::crc32c(&head[..HEADER_CHECKED_LEN]);
            if stored != computed {
                return Err(HeaderProblem::Checksum { stored, computed });
            }
            Ok(Header {
                database: DatabaseId(head[8]),
                base: Lsn(word(9..HEADER_CHECKED_LEN)),
                len: WAL_HEADER_LEN,
            })
        }
        version => Err(HeaderProblem::Version(version)),
    }
}

/// Reads the records of a file whose header must be the one of `database`. A file whose
/// header is wrong (the magic, or a version 2 header's checksum) but which holds a valid
/// record after it is a log with a damaged header: damage, with nothing kept (the header says
/// whose log it is and where it starts, and it cannot be trusted). Any other bad header is
/// refused ([`WalError::BadHeader`], [`WalError::HeaderChecksum`],
/// [`WalError::UnsupportedVersion`], [`WalError::WrongDatabase`]).
fn scan_file(path: &Path, contents: &[u8], database: DatabaseId) -> Result<Scan, WalError> {
    let head = &contents[..contents.len().min(WAL_HEADER_LEN as usize)];
    let refused = match parse_header(contents) {
        Ok(header) if header.database != database => {
            return Err(WalError::WrongDatabase {
                path: path.to_path_buf(),
                expected: database,
                found: header.database,
            })
        }
        Ok(header) => return Ok(scan(contents, header.len, header.base)),
        Err(HeaderProblem::Version(version)) => {
            return Err(WalError::UnsupportedVersion {
                path: path.to_path_buf(),
                version: char::from(version),
            })
        }
        Err(HeaderProblem::NotAWal) => WalError::BadHeader {
            path: path.to_path_buf(),
            found: String::from_utf8_lossy(head).into_owned(),
        },
        Err(HeaderProblem::Checksum { stored, computed }) => WalError::HeaderChecksum {
            path: path.to_path_buf(),
            stored,
            computed,
        },
    };
    // Evidence of a log: a valid record after the shortest header (any LSN: the base is
    // unknown), at its end or after a bad spot.
    let body = scan(contents, WAL_V1_HEADER_LEN, Lsn(0));
    let evidence = match (body.index.first(), &body.damage) {
        (Some(first), _) => Some(first.offset),
        (None, Some(damage)) => damage.valid_at,
        (None, None) => None,
    };
    let Some(valid_at) = evidence else {
        return Err(refused);
    };
    let lost_through = body
        .records
        .last()
        .map(|r| r.lsn)
        .into_iter()
        .chain(body.damage.as_ref().map(|d| d.lost_through))
        .max()
        .unwrap_or(Lsn(1));
    Ok(Scan {
        base: Lsn(0),
        records: Vec::new(),
        index: Vec::new(),
        end: 0,
        problem: None,
        damage: Some(Damage {
            problem: TailProblem::Header {
                found: String::from_utf8_lossy(head).into_owned(),
            },
            kept: Lsn(0),
            kept_bytes: 0,
            valid_at: Some(valid_at),
            lost_through,
        }),
    })
}

/// Creates the file atomically: header into `<path>.new`, sync, rename, sync the directory.
fn create(path: &Path, database: DatabaseId) -> Result<(), WalError> {
    let staging = with_suffix(path, ".new");
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

/// `path` with `suffix` after its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// A name not taken yet for a damaged log kept beside `path`.
fn kept_name(path: &Path) -> Result<PathBuf, WalError> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for attempt in 0..1000u32 {
        let suffix = match attempt {
            0 => format!(".damaged-{seconds}"),
            n => format!(".damaged-{seconds}-{n}"),
        };
        let candidate = with_suffix(path, &suffix);
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(io_error(path, "find a free name beside")(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "a thousand damaged copies are already kept; move them away",
    )))
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
    /// The base from the header: `records` start at base + 1.
    base: Lsn,
    records: Vec<LogRecord>,
    index: Vec<IndexEntry>,
    end: u64,
    problem: Option<TailProblem>,
    /// The bad spot is damage, not a torn tail.
    damage: Option<Damage>,
}

/// Bytes of a bad tail that recovery discards, up to its last byte that is not zero.
fn discarded(contents: &[u8], scan: &Scan) -> u64 {
    if scan.problem.is_none() {
        return 0;
    }
    let tail = &contents[scan.end as usize..];
    tail.iter()
        .rposition(|b| *b != 0)
        .map_or(0, |last| last as u64 + 1)
}

/// Reads records from `start` (the header's end) up to the end of `contents` or the first bad
/// record. The first must be `base + 1`: the sequence, and so what is out of it, is relative to
/// the base.
fn scan(contents: &[u8], start: u64, base: Lsn) -> Scan {
    let mut scan = Scan {
        base,
        records: Vec::new(),
        index: Vec::new(),
        end: start,
        problem: None,
        damage: None,
    };
    let mut offset = start as usize;
    let mut previous = (base, Epoch::NONE);
    while offset < contents.len() {
        let rest = &contents[offset..];
        if rest[..rest.len().min(RECORD_HEADER_LEN as usize)]
            .iter()
            .all(|b| *b == 0)
        {
            // No record starts with a zero length: this is where the log ends, in
            // preallocated space, unless something was written beyond.
            if let Some(at) = rest.iter().position(|b| *b != 0) {
                scan.problem = Some(TailProblem::Hole {
                    offset: offset as u64,
                    data_at: (offset + at) as u64,
                });
            }
            break;
        }
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
    if let Some(problem) = &scan.problem {
        let kept = Lsn(base.0.saturating_add(scan.records.len() as u64));
        scan.damage = find_damage(contents, problem, kept, scan.end);
    }
    scan
}

/// Whether the bad spot `problem` (at `kept_bytes`, after the good prefix ending at LSN `kept`)
/// is damage rather than a torn tail. It is damage when a valid record, with an LSN after the
/// prefix, starts somewhere after it (a record that does not continue the log counts itself):
/// every byte offset after the bad spot is tried, jumping over the valid records found, to learn
/// the highest LSN the file held. With nothing valid after it, it is damage too when no torn
/// write explains it ([`torn_write_explains`]): a complete record with a flipped bit is the last
/// acknowledged commit, not a write a crash interrupted.
fn find_damage(
    contents: &[u8],
    problem: &TailProblem,
    kept: Lsn,
    kept_bytes: u64,
) -> Option<Damage> {
    let bad = kept_bytes as usize;
    let mut at = match problem {
        TailProblem::OutOfSequence { .. } => bad,
        _ => bad + 1,
    };
    let mut valid_at = None;
    let mut lost_through = kept;
    while at < contents.len() {
        if contents[at..].starts_with(&[0; 4]) {
            // No record has length 0: go to the first place whose length field holds the
            // next byte that is not zero.
            let Some(next) = contents[at..].iter().position(|b| *b != 0) else {
                break;
            };
            at = (at + next).saturating_sub(3).max(at + 1);
            continue;
        }
        match valid_record_at(contents, at) {
            Some((record, size)) if record.lsn > kept => {
                valid_at.get_or_insert(at as u64);
                lost_through = lost_through.max(record.lsn);
                at += size;
            }
            _ => at += 1,
        }
    }
    if valid_at.is_none() && torn_write_explains(contents, problem) {
        return None;
    }
    Some(Damage {
        problem: problem.clone(),
        kept,
        kept_bytes,
        valid_at,
        lost_through: lost_through.max(Lsn(kept.0.saturating_add(1))),
    })
}

/// Whether the record at `start` is whole and only its length field is wrong: a shorter
/// payload matches the checksum in its header and decodes. A torn write only ever zeroes bytes,
/// which can shorten a length, never lengthen it past the bytes written; this is a flipped bit.
/// One pass of an incremental checksum over at most [`MAX_RECORD_LEN`] bytes.
fn whole_record_with_a_wrong_length(contents: &[u8], start: usize) -> bool {
    let Some(head) = contents.get(start..start + RECORD_HEADER_LEN as usize) else {
        return false;
    };
    let expected = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let payload_start = start + RECORD_HEADER_LEN as usize;
    let payload_end = (payload_start + MAX_RECORD_LEN as usize).min(contents.len());
    let payload = &contents[payload_start..payload_end];
    let mut crc = 0;
    for (index, byte) in payload.iter().enumerate() {
        crc = crc32c::crc32c_append(crc, std::slice::from_ref(byte));
        if crc == expected
            && Reader::decode_exact(&payload[..=index], Reader::get_log_record).is_ok()
        {
            return true;
        }
    }
    false
}

/// The unit a device writes whole (or not at all) when a crash interrupts a write: a torn write
/// leaves whole sectors of a record as they were before it, zeros past the end of the log
/// (preallocated, or cut and zero-filled).
pub const SECTOR: u64 = 512;

/// Whether a crash in the middle of writing the last record explains `problem`, the last bad
/// spot of a file: the file ends inside the record, zeros stand where its header should be, or
/// it fails its checksum and a whole sector of it after its first one reads as zeros (a sector
/// that never reached the disk). A complete record that fails its checksum with no such sector
/// (a flipped bit), one too long, or one that passes its checksum but does not decode or does
/// not continue the log, is no torn write.
fn torn_write_explains(contents: &[u8], problem: &TailProblem) -> bool {
    match *problem {
        TailProblem::Torn { offset, .. } | TailProblem::ChecksumMismatch { offset, .. }
            if whole_record_with_a_wrong_length(contents, offset as usize) =>
        {
            false
        }
        TailProblem::Torn { .. } | TailProblem::Hole { .. } => true,
        TailProblem::ChecksumMismatch { offset, .. } => {
            let start = offset as usize;
            let length = contents
                .get(start..start + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let end = (start + RECORD_HEADER_LEN as usize + length).min(contents.len());
            let sector = SECTOR as usize;
            let mut boundary = (start / sector + 1) * sector;
            while boundary < end {
                let span = &contents[boundary..(boundary + sector).min(end)];
                if span.iter().all(|b| *b == 0) {
                    return true;
                }
                boundary += sector;
            }
            false
        }
        TailProblem::TooLong { .. }
        | TailProblem::Undecodable { .. }
        | TailProblem::OutOfSequence { .. }
        | TailProblem::Header { .. } => false,
    }
}

/// The record at `at` if one starts there that passes its checksum and decodes (whatever its
/// place in the log), and its size in the file.
fn valid_record_at(contents: &[u8], at: usize) -> Option<(LogRecord, usize)> {
    parse_record(contents.get(at..)?, at as u64).ok()
}

/// Reads the record at the start of `bytes` (at file offset `offset`), which must follow the
/// record `previous` (LSN, epoch). Returns it and its size in the file.
fn read_record(
    bytes: &[u8],
    offset: u64,
    previous: (Lsn, Epoch),
) -> Result<(LogRecord, usize), TailProblem> {
    let (record, total) = parse_record(bytes, offset)?;
    check_run(std::slice::from_ref(&record), previous.0, previous.1)
        .map_err(|source| TailProblem::OutOfSequence { offset, source })?;
    Ok((record, total))
}

/// Reads the record at the start of `bytes` (at file offset `offset`) whatever its place in
/// the log: complete, within the length limit, passing its checksum, decoding. Returns it and
/// its size in the file.
fn parse_record(bytes: &[u8], offset: u64) -> Result<(LogRecord, usize), TailProblem> {
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
    Ok((record, total))
}
