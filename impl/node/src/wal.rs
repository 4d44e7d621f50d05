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
//! Recovery ([`Wal::open`]) tells a **torn tail** from **damage**. It reads well-formed records
//! up to the first bad spot: a record that is torn (the file ends inside it), fails its
//! checksum, declares an impossible length, does not decode or does not continue the log, or
//! zeros where a record should start with data after them. When no valid record follows the bad
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

/// The first eight bytes of a WAL file (the `1` is the format version).
pub const WAL_MAGIC: [u8; 8] = *b"HADRWAL1";
/// Bytes of the file header: the magic, then the database id (one byte).
pub const WAL_HEADER_LEN: u64 = 9;
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
    /// The file's header is not a WAL header, though valid records follow it: a damaged
    /// header (only ever part of a [`Damage`]).
    #[error("the file header is {found:?}, not \"HADRWAL1\" and a database id, though valid records follow it")]
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
    /// The good records, LSNs consecutive from 1, all durable.
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
    /// The good prefix ends here: records up to this LSN are intact and in order.
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
            Lsn(self.kept.0 + 1),
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
    file: File,
    /// The file opened with `O_DIRECT | O_DSYNC`, when flushes write through it.
    direct: Option<File>,
    database: DatabaseId,
    /// Zeros kept ahead of the log's end (0: none).
    preallocate: u64,
    /// Entry `i` is the record of LSN `i + 1`.
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

    /// Performs the flush: one direct write of whole blocks, or one `fdatasync`. When it
    /// returns `Ok`, every record up to [`FlushJob::up_to`] is durable.
    pub fn run(&self, handle: &FlushHandle) -> io::Result<()> {
        self.run_on(&handle.0)
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

/// The descriptor through which a log's [`FlushJob`]s run ([`Wal::flush_handle`]).
#[derive(Debug)]
pub struct FlushHandle(File);

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
    /// synced), so a file at `path` always has a complete header. For an existing file, the
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

        let last = Lsn(scan.records.len() as u64);
        let preallocate = match options.direct {
            true => options.preallocate.max(BLOCK),
            false => options.preallocate,
        };
        let mut wal = Wal {
            path: path.to_path_buf(),
            file,
            direct: None,
            database,
            preallocate,
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
            wal.direct = wal.open_direct()?;
            let start = align_down(wal.end);
            wal.pending_start = start;
            wal.pending = contents[start as usize..wal.end as usize].to_vec();
        }
        let recovered = Recovered {
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
        }))
    }

    /// A handle to run this log's [`FlushJob`]s through (a duplicate descriptor).
    pub fn flush_handle(&self) -> Result<FlushHandle, WalError> {
        self.flush_file()
            .try_clone()
            .map(FlushHandle)
            .map_err(io_error(&self.path, "duplicate"))
    }

    /// The descriptor flushes go through: the direct one, or the buffered file.
    fn flush_file(&self) -> &File {
        self.direct.as_ref().unwrap_or(&self.file)
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
    pub fn truncate_after(&mut self, lsn: Lsn) -> Result<(), WalError> {
        self.check_idle()?;
        let keep = match usize::try_from(lsn.0) {
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
        self.reserve(new_end)
    }

    /// Makes sure the file holds durable zeros up to at least `needed` and ends on a block
    /// boundary, writing [`WalOptions::preallocate`] bytes of zeros beyond `needed` when it
    /// does not. Nothing without preallocation.
    fn reserve(&mut self, needed: u64) -> Result<(), WalError> {
        if self.preallocate == 0 || (needed <= self.allocated && self.allocated % BLOCK == 0) {
            return Ok(());
        }
        let target = align_up(needed.max(self.allocated) + self.preallocate);
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            if let Err(source) = self.file.write_all_at(&ZEROS[..n], at) {
                return Err(self.fail("preallocate", source));
            }
            at += n as u64;
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
    if contents.len() < WAL_HEADER_LEN as usize || contents[..8] != WAL_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a hadr write-ahead log", path.display()),
        ));
    }
    let scan = scan(&contents);
    let Some(last) = scan.index.last() else {
        return Ok(None);
    };
    let from = (scan.end.saturating_sub(bytes) / SECTOR * SECTOR).max(last.offset);
    let file = OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&vec![0; (scan.end - from) as usize], from)?;
    file.sync_all()?;
    Ok(Some(Lsn(scan.index.len() as u64)))
}

/// The header of the log of `database`.
pub fn header(database: DatabaseId) -> [u8; WAL_HEADER_LEN as usize] {
    let mut header = [0; WAL_HEADER_LEN as usize];
    header[..8].copy_from_slice(&WAL_MAGIC);
    header[8] = database.0;
    header
}

/// Reads the records of a file whose header must be the one of `database`. A file whose magic
/// is wrong but which holds a valid record after the header's place is a log with a damaged
/// header: damage, with nothing kept (the header says whose log it is, and it cannot be
/// trusted). Any other bad header is refused ([`WalError::BadHeader`],
/// [`WalError::WrongDatabase`]).
fn scan_file(path: &Path, contents: &[u8], database: DatabaseId) -> Result<Scan, WalError> {
    let refused = match check_header(path, contents, database) {
        Ok(()) => return Ok(scan(contents)),
        Err(error @ WalError::BadHeader { .. }) => error,
        Err(error) => return Err(error),
    };
    let body = scan(contents);
    // Evidence of a log: a valid record, at the header's end or after a bad spot.
    let evidence = match (body.records.last(), &body.damage) {
        (Some(_), _) => Some(WAL_HEADER_LEN),
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
    let head = &contents[..contents.len().min(WAL_HEADER_LEN as usize)];
    Ok(Scan {
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

/// Reads records after the header up to the end of `contents` or the first bad record.
fn scan(contents: &[u8]) -> Scan {
    let mut scan = Scan {
        records: Vec::new(),
        index: Vec::new(),
        end: WAL_HEADER_LEN,
        problem: None,
        damage: None,
    };
    let mut offset = WAL_HEADER_LEN as usize;
    let mut previous = (Lsn(0), Epoch::NONE);
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
        scan.damage = find_damage(contents, problem, Lsn(scan.records.len() as u64), scan.end);
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
        lost_through: lost_through.max(Lsn(kept.0 + 1)),
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
