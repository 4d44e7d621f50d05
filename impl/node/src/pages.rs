//! The paged data file of one availability database: its key-value data (String keys and
//! values, only ever set, never deleted) in a B+tree of fixed-size checksummed pages, read
//! through a buffer pool with a hard memory budget, made durable by checkpoints. Built and
//! tested as a component; the replica does not use it yet (issue 18). The byte layout is in
//! `docs/storage.md` ("The data file").
//!
//! ```text
//!  page 0    page 1    page 2 …                            (PAGE_SIZE = 8 KiB each)
//!  ┌────────┬────────┬──────────┬──────────┬──────────┬──────────┬──────────┬─ …
//!  │ meta A │ meta B │ branch   │ leaf     │ leaf     │ overflow │ freelist │
//!  └────────┴────────┴──────────┴──────────┴──────────┴──────────┴──────────┴─ …
//!   the valid meta with the higher sequence names the root, the free list and the
//!   checkpoint LSN; every page has a header (type, own id, database, generation,
//!   page LSN) and a CRC-32C over all its bytes
//! ```
//!
//! **Crash safety: copy-on-write (shadow paging, as LMDB does).** A checkpoint never writes a
//! page that the last durable meta page can reach. A change to such a page writes a copy at a
//! new page id (taken from pages that a durable checkpoint freed, or from the end of the file)
//! and changes its parent the same way, up to the root. [`DataFile::checkpoint`] writes the
//! changed pages and the new free list, fsyncs, then writes the *other* meta page (sequence
//! plus one) and fsyncs again. A crash at any point, or a torn write of any page, leaves the
//! last checkpoint intact: either the new meta page is complete and everything it reaches was
//! durable before it, or it fails its checksum and [`DataFile::open`] takes the older one,
//! whose pages nothing has overwritten (a checkpoint only reuses pages that the checkpoint
//! before it had already freed). The caller then redoes its log from the LSN `open` returns.
//!
//! Every pointer carries the **generation** (the checkpoint sequence) its page was written for,
//! and every page says its own id and generation: a misdirected write, a page of another file,
//! or a stale page left by a lost write reads as [`PageProblem::WrongPageId`],
//! [`PageProblem::WrongDatabase`] or [`PageProblem::WrongGeneration`], never as data. (A write
//! lost over an earlier version written in the *same* checkpoint interval, a page evicted and
//! written again before the checkpoint, is the one lost write this cannot see.)
//!
//! **The buffer pool** holds tree pages (branches and leaves) in at most
//! `pool_budget_bytes / PAGE_SIZE` frames of [`PAGE_SIZE`] bytes: that is a hard bound, counted
//! by [`DataFileStats::pool_bytes`]. Frames are evicted by a clock sweep; a dirty frame is
//! written at its own page id before it is reused, which is safe because every dirty page was
//! allocated since the last checkpoint (copy-on-write gave it a fresh id) and no durable meta
//! page reaches it. Overflow pages (values and keys that do not fit in a leaf) bypass the pool:
//! they are written once, when the value is put, and read page by page into the value returned.
//! Not counted by the budget: the page-id lists of free pages (8 bytes per free page), the map
//! of resident pages, and the working copies of one operation (a copy of each page on the path
//! of one `put`, at most [`MAX_HEIGHT`] of them, kept for the next `put`; the value put or
//! returned; and the decoded cells of a page that splits).
//!
//! **Reads are verified**: every page read from the file is checked (checksum, format, page id,
//! database, type, generation, tree level, every slot, cell, length and pointer) before
//! anything uses it, and a page that fails is [`PageError::Damaged`], naming the file, the page
//! and its byte offset: the seam where automatic page repair will plug in. Nothing in a file
//! can make this module panic or allocate without bound: lengths are bounded by
//! [`MAX_ENTRY_LEN`], loops by the page count, the descent by [`MAX_HEIGHT`].
//!
//! **Verified once, then used in place.** A page of the pool was verified in full when it was
//! read, or written by this process, so it is not decoded again on every access (only its
//! header is checked against the pointer that led to it): `get` and `put` binary-search its slot
//! array and compare the search key with each cell's key as the cell stores it (a long key by
//! its inline prefix, its overflow pages read only when the prefix does not decide). A `put`
//! copies the pages of its path (one per level), splices the new or changed cell into the
//! leaf's bytes (the cells after it move, their slots with them), and changes a parent only
//! where a child's pointer changed (rewritten in place) or a child split (one cell spliced
//! in). Only a page that must split is decoded into cells and encoded again. Debug builds
//! check every page so changed against the full decoder.
//!
//! I/O is buffered (`pread`/`pwrite` through the page cache) with `fdatasync` at checkpoints,
//! not direct I/O: a data file is written in bulk at checkpoints and read at random, where the
//! page cache helps, and its crash safety rests on the two fsyncs of a checkpoint, not on the
//! order in which the page cache writes pages back.
//!
//! After an I/O error or a damaged page met in the middle of a change (a `put` or a
//! `checkpoint`), the pages in memory and on disk may disagree, so the [`DataFile`] refuses all
//! further work with [`PageError::Failed`]: reopen it to return to the last checkpoint. A
//! damaged page met by a read (`get`, or a `put` before it changes anything) is only reported.

use hadr_types::{DatabaseId, Lsn};
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// Bytes of every page, like SQL Server's.
pub const PAGE_SIZE: usize = 8192;
/// The format byte of every page (byte 4 of its header).
pub const FORMAT: u8 = 1;
/// The first bytes of the body of a meta page.
pub const DATA_MAGIC: [u8; 8] = *b"HADRDAT1";
/// Keys up to this many bytes are stored in their cell; longer ones in overflow pages, with
/// their first [`KEY_PREFIX_LEN`] bytes in the cell.
pub const KEY_INLINE_MAX: usize = 1024;
/// Bytes of a long key kept in its cell, so that most comparisons need no overflow page.
pub const KEY_PREFIX_LEN: usize = 128;
/// The largest cell of a branch or leaf, with its 2-byte slot. A value is stored in its leaf
/// cell when the cell stays within this size, in overflow pages otherwise. Three such cells fit
/// in a page, so a split always gives two halves that fit.
pub const CELL_MAX: usize = 2048;
/// The most bytes of one entry (key and value together): what one log record can carry
/// ([`crate::wal::MAX_RECORD_LEN`]), so anything the log holds fits.
pub const MAX_ENTRY_LEN: usize = crate::wal::MAX_RECORD_LEN as usize;
/// The most levels of the tree. With at least three cells per page, 32 levels are far more than
/// any file can hold; the bound keeps a descent through a forged file short.
pub const MAX_HEIGHT: u8 = 32;
/// The highest checkpoint sequence a file is opened with (2^63): one checkpoint adds one, and
/// a file past it could overflow the generations of its pages.
pub const MAX_SEQUENCE: u64 = 1 << 63;
/// The pool's budget when none is given: 16 MiB, 2,048 pages.
pub const DEFAULT_POOL_BUDGET_BYTES: u64 = 16 << 20;
/// Bytes of value (or long key) in one overflow page.
pub const OVERFLOW_CAPACITY: usize = PAGE_SIZE - CHAIN_DATA_AT;
/// Page ids in one free-list page.
pub const FREE_IDS_PER_PAGE: usize = (PAGE_SIZE - CHAIN_DATA_AT) / 8;

// The page header, common to all pages.
const CHECKSUM_AT: usize = 0;
const FORMAT_AT: usize = 4;
const TYPE_AT: usize = 5;
const DATABASE_AT: usize = 6;
const LEVEL_AT: usize = 7;
const ID_AT: usize = 8;
const GENERATION_AT: usize = 16;
const LSN_AT: usize = 24;
const HEADER_LEN: usize = 32;
// Branch and leaf pages.
const COUNT_AT: usize = HEADER_LEN;
const TREE_RESERVED: std::ops::Range<usize> = 34..40;
const LEAF_SLOTS_AT: usize = 40;
const BRANCH_FIRST_AT: usize = 40;
const BRANCH_SLOTS_AT: usize = 56;
// Overflow and free-list pages.
const NEXT_AT: usize = HEADER_LEN;
const CHAIN_COUNT_AT: usize = 40;
const CHAIN_RESERVED: std::ops::Range<usize> = 42..48;
const CHAIN_DATA_AT: usize = 48;
// Meta pages.
const MAGIC_AT: usize = HEADER_LEN;
const PAGE_SIZE_AT: usize = 40;
const HEIGHT_AT: usize = 44;
const META_RESERVED: std::ops::Range<usize> = 45..48;
const PAGE_COUNT_AT: usize = 48;
const ROOT_ID_AT: usize = 56;
const ROOT_GENERATION_AT: usize = 64;
const FREE_HEAD_AT: usize = 72;
const FREE_COUNT_AT: usize = 80;
const ENTRIES_AT: usize = 88;
const META_END: usize = 96;
// Cell flags.
const KEY_LONG: u8 = 1;
const VALUE_OVERFLOW: u8 = 2;
// Encoded sizes.
const POINTER_LEN: usize = 16;
const LONG_KEY_LEN: usize = 4 + KEY_PREFIX_LEN + POINTER_LEN;
const OVERFLOW_VALUE_LEN: usize = 4 + POINTER_LEN;
const SLOT_LEN: usize = 2;
const LEAF_CAPACITY: usize = PAGE_SIZE - LEAF_SLOTS_AT;
const BRANCH_CAPACITY: usize = PAGE_SIZE - BRANCH_SLOTS_AT;
/// The first page id that is not a meta page.
const FIRST_DATA_PAGE: u64 = 2;

type PageBuf = [u8; PAGE_SIZE];

/// What a page holds (byte 5 of its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    /// Page 0 or 1: a checkpoint (root, free list, LSN, sequence).
    Meta = 1,
    /// An inner page of the tree: separator keys and child pointers.
    Branch = 2,
    /// A page of entries: keys and values (or pointers to their overflow pages).
    Leaf = 3,
    /// A piece of a value or key too large for a leaf.
    Overflow = 4,
    /// A piece of the list of free pages.
    FreeList = 5,
}

impl PageType {
    fn from_byte(byte: u8) -> Option<PageType> {
        Some(match byte {
            1 => PageType::Meta,
            2 => PageType::Branch,
            3 => PageType::Leaf,
            4 => PageType::Overflow,
            5 => PageType::FreeList,
            _ => return None,
        })
    }
}

impl std::fmt::Display for PageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PageType::Meta => "meta",
            PageType::Branch => "branch",
            PageType::Leaf => "leaf",
            PageType::Overflow => "overflow",
            PageType::FreeList => "free-list",
        })
    }
}

/// What is wrong with a page read from the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageProblem {
    /// The file ends before the page.
    #[error("the file ends before it ({file_len} bytes)")]
    Missing {
        /// The file's length.
        file_len: u64,
    },
    /// The page's bytes do not match its checksum: a torn write, bit rot, a lost sector.
    #[error("its checksum is {stored:#010x} but its bytes give {computed:#010x} (a torn write or bit rot)")]
    Checksum {
        /// The checksum stored in the page.
        stored: u32,
        /// The checksum of the page's bytes.
        computed: u32,
    },
    /// The format byte is not [`FORMAT`].
    #[error("its format byte is {found}, not {FORMAT}")]
    Format {
        /// The byte found.
        found: u8,
    },
    /// The page says it is another page: a misdirected write.
    #[error("it says it is page {found} (a misdirected write)")]
    WrongPageId {
        /// The page id in its header.
        found: u64,
    },
    /// The page belongs to the data file of another database.
    #[error("it belongs to {found} (a page of another database's file)")]
    WrongDatabase {
        /// The database in its header.
        found: DatabaseId,
    },
    /// The page is not of the type its pointer expects.
    #[error("it is of type {found}, not a {expected} page")]
    WrongType {
        /// The type the pointer expects.
        expected: PageType,
        /// The type byte in its header.
        found: u8,
    },
    /// The page was written for another checkpoint than its pointer says: a stale page left by
    /// a lost write, or a page from another time.
    #[error("it was written for checkpoint {found}, but its pointer expects {expected} (a lost or misplaced write)")]
    WrongGeneration {
        /// The generation in the pointer.
        expected: u64,
        /// The generation in the page's header.
        found: u64,
    },
    /// The page is not at the tree level its parent expects.
    #[error("it is at level {found} of the tree, not {expected}")]
    WrongLevel {
        /// The level expected (the parent's minus one).
        expected: u8,
        /// The level in its header.
        found: u8,
    },
    /// The page's checksum is right but its contents break the format (a bug of the writer, or
    /// a forged page).
    #[error("byte {at} of the page: {what}")]
    Malformed {
        /// Offset within the page.
        at: usize,
        /// What is wrong there.
        what: &'static str,
    },
}

fn malformed(at: usize, what: &'static str) -> PageProblem {
    PageProblem::Malformed { at, what }
}

/// Why a data-file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The operating system refused a file operation.
    #[error("could not {operation} {}: {source}", path.display())]
    Io {
        /// The file (or directory).
        path: PathBuf,
        /// What was being done: `"open"`, `"read"`, `"write"`, `"fsync"` …
        operation: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// [`DataFile::create`] found a file where it should create one.
    #[error("{} already exists: open it instead, or move it away to start an empty data file", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a hadr data file at all.
    #[error("{} is not a hadr data file ({reason}): move the file away or fix the node's data directory", path.display())]
    NotADataFile {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// The file is the data file of another database.
    #[error("{} is the data file of {found}, not of {expected}: the node's data directory holds the wrong file", path.display())]
    WrongDatabase {
        /// The file.
        path: PathBuf,
        /// The database the caller opened it for.
        expected: DatabaseId,
        /// The database its meta page names.
        found: DatabaseId,
    },
    /// Both meta pages are damaged: no checkpoint can be trusted.
    #[error("{} has no valid checkpoint: meta page 0: {first}; meta page 1: {second}. Restore the data file from another replica, or build it again from the log", path.display())]
    NoCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with page 0.
        first: PageProblem,
        /// What is wrong with page 1.
        second: PageProblem,
    },
    /// The file is shorter than its last checkpoint says.
    #[error("{} holds {file_len} bytes, but its checkpoint {sequence} needs {pages} pages of {PAGE_SIZE} bytes: the file was cut short; restore it from another replica", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The checkpoint's sequence number.
        sequence: u64,
        /// Pages the checkpoint uses.
        pages: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A page read from the file failed its checks. Nothing it holds was used.
    #[error("page {page} (byte {offset}) of {} is damaged: {problem}. Its contents cannot be trusted: restore the page or the whole data file from another replica", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The page id.
        page: u64,
        /// Its offset in the file (`page * PAGE_SIZE`).
        offset: u64,
        /// What is wrong with it.
        problem: PageProblem,
    },
    /// [`DataFile::check`] found pages that are each valid but do not fit together.
    #[error("{} is inconsistent at page {page}: {what}", path.display())]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// The page where it shows.
        page: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// The entry to put is larger than [`MAX_ENTRY_LEN`]; nothing was changed.
    #[error("a key of {key_len} bytes and a value of {value_len} bytes exceed the limit of {limit} bytes for one entry (one log record could not carry it either)")]
    EntryTooLarge {
        /// The key's length.
        key_len: usize,
        /// The value's length.
        value_len: usize,
        /// The limit.
        limit: usize,
    },
    /// A checkpoint labelled with an LSN before the last checkpoint or before a write already
    /// put (a bug of the caller); nothing was written.
    #[error("refused a checkpoint of {} at LSN {lsn}: it must not be before {floor} (the last checkpoint, or the last write put)", path.display())]
    LsnBehind {
        /// The file.
        path: PathBuf,
        /// The LSN asked for.
        lsn: Lsn,
        /// The lowest LSN allowed.
        floor: Lsn,
    },
    /// The pool's budget is smaller than one page.
    #[error("a pool budget of {budget_bytes} bytes cannot hold one page of {PAGE_SIZE} bytes: give the data file at least {PAGE_SIZE} bytes")]
    BudgetTooSmall {
        /// The budget given.
        budget_bytes: u64,
    },
    /// The tree would grow past [`MAX_HEIGHT`] levels (not reachable with real data).
    #[error("{} cannot grow: its tree is {MAX_HEIGHT} levels high", path.display())]
    TreeTooTall {
        /// The file.
        path: PathBuf,
    },
    /// An earlier change failed half way (an I/O error or a damaged page met by a `put` or a
    /// `checkpoint`).
    #[error("an earlier change of {} failed half way, so its pages in memory and on disk may disagree: reopen the data file to return to its last checkpoint, then redo the log from there", path.display())]
    Failed {
        /// The file.
        path: PathBuf,
    },
}

/// How a [`DataFile`] uses memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFileOptions {
    /// The most bytes of pages the buffer pool holds: it keeps at most
    /// `pool_budget_bytes / PAGE_SIZE` frames of [`PAGE_SIZE`] bytes. At least one page.
    pub pool_budget_bytes: u64,
}

impl Default for DataFileOptions {
    /// A pool of [`DEFAULT_POOL_BUDGET_BYTES`].
    fn default() -> DataFileOptions {
        DataFileOptions {
            pool_budget_bytes: DEFAULT_POOL_BUDGET_BYTES,
        }
    }
}

/// Counters and sizes of an open [`DataFile`] ([`DataFile::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataFileStats {
    /// The budget the pool was given, rounded down to whole pages.
    pub pool_budget_bytes: u64,
    /// Bytes of page frames the pool holds (frames × [`PAGE_SIZE`]; frames are allocated as
    /// needed, reused, never freed, and never more than the budget allows). This is the peak too.
    pub pool_bytes: u64,
    /// Frames that hold a page now.
    pub pool_pages_resident: u64,
    /// Resident pages changed since they were last written.
    pub pool_pages_dirty: u64,
    /// Tree pages found in the pool.
    pub pool_hits: u64,
    /// Tree pages read from the file into the pool.
    pub pool_misses: u64,
    /// Pages read from the file (tree, overflow, free-list and meta pages).
    pub pages_read: u64,
    /// Pages written to the file.
    pub pages_written: u64,
    /// Dirty pages written early, to free their frame before a checkpoint.
    pub pages_written_by_eviction: u64,
    /// Pages the file uses (the meta pages included).
    pub page_count: u64,
    /// Pages free for reuse, now or after the next checkpoint.
    pub free_pages: u64,
    /// Keys in the tree.
    pub entries: u64,
    /// Levels of the tree (0 when empty).
    pub height: u8,
    /// Sequence number of the last durable checkpoint.
    pub checkpoint_sequence: u64,
}

/// What [`DataFile::check`] walked through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Keys in the tree, each visited once, in order.
    pub entries: u64,
    /// Branch and leaf pages.
    pub tree_pages: u64,
    /// Overflow pages of values and keys.
    pub overflow_pages: u64,
    /// Pages of the durable free list.
    pub free_list_pages: u64,
    /// Free pages (reusable now or after the next checkpoint).
    pub free_pages: u64,
}

/// A pointer to a page: its id and the generation (checkpoint sequence) it was written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PagePtr {
    pub(crate) id: u64,
    pub(crate) generation: u64,
}

/// The header of a page (its checksum aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: PageType,
    pub(crate) database: u8,
    pub(crate) level: u8,
    pub(crate) id: u64,
    pub(crate) generation: u64,
    pub(crate) lsn: u64,
}

/// A key in a cell: its bytes, or for a long key its length, first bytes and overflow chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Inline(Vec<u8>),
    Long {
        len: u32,
        prefix: Vec<u8>,
        chain: PagePtr,
    },
}

/// A value in a leaf cell: its bytes, or its length and overflow chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Inline(Vec<u8>),
    Overflow { len: u32, chain: PagePtr },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeafCell {
    pub(crate) key: Key,
    pub(crate) value: Value,
}

/// A separator and the child holding the keys from it (up to the next separator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BranchCell {
    pub(crate) key: Key,
    pub(crate) child: PagePtr,
}

/// The fields of a meta page besides its header (whose generation is the checkpoint sequence
/// and whose page LSN is the checkpoint LSN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MetaBody {
    pub(crate) height: u8,
    pub(crate) page_count: u64,
    pub(crate) root: Option<PagePtr>,
    pub(crate) free_head: u64,
    pub(crate) free_count: u64,
    pub(crate) entries: u64,
}

/// What a page holds, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Meta(MetaBody),
    Branch {
        first: PagePtr,
        cells: Vec<BranchCell>,
    },
    Leaf(Vec<LeafCell>),
    Overflow {
        next: u64,
        data: Vec<u8>,
    },
    FreeList {
        next: u64,
        ids: Vec<u64>,
    },
}

/// A page, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) header: Header,
    pub(crate) body: Body,
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding of pages.

fn get_u16(page: &PageBuf, at: usize) -> u16 {
    u16::from_le_bytes(std::array::from_fn(|i| page[at + i]))
}

fn get_u64(page: &PageBuf, at: usize) -> u64 {
    u64::from_le_bytes(std::array::from_fn(|i| page[at + i]))
}

fn put_u16(page: &mut PageBuf, at: usize, value: u16) {
    page[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(page: &mut PageBuf, at: usize, value: u64) {
    page[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// The CRC-32C of a page with its checksum field taken as zeros.
fn checksum(page: &PageBuf) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[0; 4]), &page[FORMAT_AT..])
}

/// Stores the page's checksum in it.
fn seal(page: &mut PageBuf) {
    let sum = checksum(page);
    page[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&sum.to_le_bytes());
}

/// Zeros the page and writes its header (checksum left zero: [`seal`] sets it).
fn encode_header(page: &mut PageBuf, header: &Header) {
    page.fill(0);
    page[FORMAT_AT] = FORMAT;
    page[TYPE_AT] = header.kind as u8;
    page[DATABASE_AT] = header.database;
    page[LEVEL_AT] = header.level;
    put_u64(page, ID_AT, header.id);
    put_u64(page, GENERATION_AT, header.generation);
    put_u64(page, LSN_AT, header.lsn);
}

fn read_header(page: &PageBuf) -> (u8, Header) {
    let kind_byte = page[TYPE_AT];
    let header = Header {
        kind: PageType::from_byte(kind_byte).unwrap_or(PageType::Meta),
        database: page[DATABASE_AT],
        level: page[LEVEL_AT],
        id: get_u64(page, ID_AT),
        generation: get_u64(page, GENERATION_AT),
        lsn: get_u64(page, LSN_AT),
    };
    (kind_byte, header)
}

impl Key {
    fn encoded_len(&self) -> usize {
        match self {
            Key::Inline(bytes) => 2 + bytes.len(),
            Key::Long { .. } => LONG_KEY_LEN,
        }
    }

    fn is_long(&self) -> bool {
        matches!(self, Key::Long { .. })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        self.view().encode(out);
    }

    fn view(&self) -> KeyRef<'_> {
        match self {
            Key::Inline(bytes) => KeyRef::Inline(bytes),
            Key::Long { len, prefix, chain } => KeyRef::Long {
                len: *len,
                prefix,
                chain: *chain,
            },
        }
    }
}

impl Value {
    fn encoded_len(&self) -> usize {
        match self {
            Value::Inline(bytes) => 2 + bytes.len(),
            Value::Overflow { .. } => OVERFLOW_VALUE_LEN,
        }
    }
}

fn encode_pointer(pointer: PagePtr, out: &mut Vec<u8>) {
    out.extend_from_slice(&pointer.id.to_le_bytes());
    out.extend_from_slice(&pointer.generation.to_le_bytes());
}

impl LeafCell {
    /// Bytes of the cell in its page, with its slot.
    fn size(&self) -> usize {
        SLOT_LEN + 1 + self.key.encoded_len() + self.value.encoded_len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let value_flag = match self.value {
            Value::Overflow { .. } => VALUE_OVERFLOW,
            Value::Inline(_) => 0,
        };
        out.push((u8::from(self.key.is_long()) * KEY_LONG) | value_flag);
        self.key.encode(out);
        match &self.value {
            Value::Inline(bytes) => {
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Value::Overflow { len, chain } => {
                out.extend_from_slice(&len.to_le_bytes());
                encode_pointer(*chain, out);
            }
        }
    }
}

impl BranchCell {
    /// Bytes of the cell in its page, with its slot.
    fn size(&self) -> usize {
        SLOT_LEN + 1 + self.key.encoded_len() + POINTER_LEN
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.key.is_long()) * KEY_LONG);
        self.key.encode(out);
        encode_pointer(self.child, out);
    }
}

/// The cells did not fit in one page (a bug: callers split first).
#[derive(Debug)]
struct Overfull;

/// Writes cells packed from the end of the page in slot order (cell 0 last in the page), the
/// slot array after the header: the one layout [`decode_body`] accepts.
fn encode_cells(
    page: &mut PageBuf,
    slots_at: usize,
    cells: impl ExactSizeIterator<Item = Vec<u8>>,
) -> Result<(), Overfull> {
    let count = cells.len();
    let slots_end = slots_at + SLOT_LEN * count;
    let count = u16::try_from(count).map_err(|_| Overfull)?;
    put_u16(page, COUNT_AT, count);
    let mut end = PAGE_SIZE;
    for (index, cell) in cells.enumerate() {
        let start = end
            .checked_sub(cell.len())
            .filter(|start| *start >= slots_end)
            .ok_or(Overfull)?;
        page[start..end].copy_from_slice(&cell);
        put_u16(page, slots_at + SLOT_LEN * index, start as u16);
        end = start;
    }
    Ok(())
}

/// Puts `cell` (its bytes, without its slot) in place of cell `index` of a branch or leaf
/// (`replace`), or before it, keeping the one layout [`decode_tree`] accepts: the cells after
/// it move by the difference in size, their slots with them, and the bytes they leave are
/// zeroed. Changes nothing when the result would not fit.
fn splice_cell(
    page: &mut PageBuf,
    kind: PageType,
    index: usize,
    replace: bool,
    cell: &[u8],
) -> Result<(), Overfull> {
    let slots = slots_at(kind);
    let slot = |page: &PageBuf, i: usize| get_u16(page, slots + SLOT_LEN * i) as usize;
    let count = cell_count(page);
    // The cells are `low..PAGE_SIZE`; cell `index` is `start..end` (empty when inserted).
    let low = match count {
        0 => PAGE_SIZE,
        _ => slot(page, count - 1),
    };
    let end = match index {
        0 => PAGE_SIZE,
        _ => slot(page, index - 1),
    };
    let start = if replace { slot(page, index) } else { end };
    let new_count = count + usize::from(!replace);
    let new_low = (low + (end - start))
        .checked_sub(cell.len())
        .filter(|new_low| *new_low >= slots + SLOT_LEN * new_count)
        .ok_or(Overfull)?;
    let new_count = u16::try_from(new_count).map_err(|_| Overfull)?;
    page.copy_within(low..start, new_low);
    if new_low > low {
        page[low..new_low].fill(0);
    }
    page[end - cell.len()..end].copy_from_slice(cell);
    if !replace {
        page.copy_within(
            slots + SLOT_LEN * index..slots + SLOT_LEN * count,
            slots + SLOT_LEN * (index + 1),
        );
    }
    put_u16(page, slots + SLOT_LEN * index, (end - cell.len()) as u16);
    for i in index + 1..new_count as usize {
        let moved = slot(page, i) + new_low - low;
        put_u16(page, slots + SLOT_LEN * i, moved as u16);
    }
    put_u16(page, COUNT_AT, new_count);
    Ok(())
}

/// Points child `child` of a branch (0: its first; `i`: the child of cell `i - 1`) at `to`.
fn set_child(page: &mut PageBuf, child: usize, to: PagePtr) -> Result<(), PageProblem> {
    let at = match child {
        0 => BRANCH_FIRST_AT,
        _ => branch_cell(page, child - 1, Bounds::VERIFIED)?.2 - POINTER_LEN,
    };
    put_u64(page, at, to.id);
    put_u64(page, at + 8, to.generation);
    Ok(())
}

fn encode_leaf(page: &mut PageBuf, header: &Header, cells: &[LeafCell]) -> Result<(), Overfull> {
    encode_header(page, header);
    encode_cells(
        page,
        LEAF_SLOTS_AT,
        cells.iter().map(|cell| {
            let mut bytes = Vec::with_capacity(cell.size());
            cell.encode(&mut bytes);
            bytes
        }),
    )
}

fn encode_branch(
    page: &mut PageBuf,
    header: &Header,
    first: PagePtr,
    cells: &[BranchCell],
) -> Result<(), Overfull> {
    encode_header(page, header);
    put_u64(page, BRANCH_FIRST_AT, first.id);
    put_u64(page, BRANCH_FIRST_AT + 8, first.generation);
    encode_cells(
        page,
        BRANCH_SLOTS_AT,
        cells.iter().map(|cell| {
            let mut bytes = Vec::with_capacity(cell.size());
            cell.encode(&mut bytes);
            bytes
        }),
    )
}

fn encode_overflow(page: &mut PageBuf, header: &Header, next: u64, data: &[u8]) {
    encode_header(page, header);
    put_u64(page, NEXT_AT, next);
    put_u16(page, CHAIN_COUNT_AT, data.len() as u16);
    page[CHAIN_DATA_AT..CHAIN_DATA_AT + data.len()].copy_from_slice(data);
}

fn encode_free_list(page: &mut PageBuf, header: &Header, next: u64, ids: &[u64]) {
    encode_header(page, header);
    put_u64(page, NEXT_AT, next);
    put_u16(page, CHAIN_COUNT_AT, ids.len() as u16);
    for (index, id) in ids.iter().enumerate() {
        put_u64(page, CHAIN_DATA_AT + 8 * index, *id);
    }
}

fn encode_meta(page: &mut PageBuf, header: &Header, meta: &MetaBody) {
    encode_header(page, header);
    page[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&DATA_MAGIC);
    page[PAGE_SIZE_AT..PAGE_SIZE_AT + 4].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    page[HEIGHT_AT] = meta.height;
    put_u64(page, PAGE_COUNT_AT, meta.page_count);
    let root = meta.root.unwrap_or(PagePtr {
        id: 0,
        generation: 0,
    });
    put_u64(page, ROOT_ID_AT, root.id);
    put_u64(page, ROOT_GENERATION_AT, root.generation);
    put_u64(page, FREE_HEAD_AT, meta.free_head);
    put_u64(page, FREE_COUNT_AT, meta.free_count);
    put_u64(page, ENTRIES_AT, meta.entries);
}

/// Encodes a decoded page again, sealed (for the fuzz targets: decoding accepts only the bytes
/// this gives back).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode_page(page: &Page) -> Box<PageBuf> {
    let mut buf = Box::new([0; PAGE_SIZE]);
    let header = &page.header;
    // A decoded page always fits: it came from a page.
    let fits = match &page.body {
        Body::Meta(meta) => {
            encode_meta(&mut buf, header, meta);
            Ok(())
        }
        Body::Branch { first, cells } => encode_branch(&mut buf, header, *first, cells),
        Body::Leaf(cells) => encode_leaf(&mut buf, header, cells),
        Body::Overflow { next, data } => {
            encode_overflow(&mut buf, header, *next, data);
            Ok(())
        }
        Body::FreeList { next, ids } => {
            encode_free_list(&mut buf, header, *next, ids);
            Ok(())
        }
    };
    debug_assert!(fits.is_ok(), "a decoded page does not fit in a page");
    seal(&mut buf);
    buf
}

/// A key as it is in a page.
#[derive(Clone, Copy, Debug)]
enum KeyRef<'a> {
    Inline(&'a [u8]),
    Long {
        len: u32,
        prefix: &'a [u8],
        chain: PagePtr,
    },
}

impl KeyRef<'_> {
    fn to_owned(self) -> Key {
        match self {
            KeyRef::Inline(bytes) => Key::Inline(bytes.to_vec()),
            KeyRef::Long { len, prefix, chain } => Key::Long {
                len,
                prefix: prefix.to_vec(),
                chain,
            },
        }
    }

    /// The bytes the page shows, and whether they are the whole key.
    fn visible(&self) -> (&[u8], bool) {
        match self {
            KeyRef::Inline(bytes) => (bytes, true),
            KeyRef::Long { prefix, .. } => (prefix, false),
        }
    }

    fn len(&self) -> usize {
        match self {
            KeyRef::Inline(bytes) => bytes.len(),
            KeyRef::Long { len, .. } => *len as usize,
        }
    }

    fn is_long(&self) -> bool {
        matches!(self, KeyRef::Long { .. })
    }

    fn encoded_len(&self) -> usize {
        match self {
            KeyRef::Inline(bytes) => 2 + bytes.len(),
            KeyRef::Long { .. } => LONG_KEY_LEN,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            KeyRef::Inline(bytes) => {
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            KeyRef::Long { len, prefix, chain } => {
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(prefix);
                encode_pointer(*chain, out);
            }
        }
    }
}

/// A value as it is in a page.
#[derive(Clone, Copy, Debug)]
enum ValueRef<'a> {
    Inline(&'a [u8]),
    Overflow { len: u32, chain: PagePtr },
}

impl ValueRef<'_> {
    fn to_owned(self) -> Value {
        match self {
            ValueRef::Inline(bytes) => Value::Inline(bytes.to_vec()),
            ValueRef::Overflow { len, chain } => Value::Overflow { len, chain },
        }
    }

    /// Its bit of a leaf cell's flags.
    fn flag(&self) -> u8 {
        match self {
            ValueRef::Inline(_) => 0,
            ValueRef::Overflow { .. } => VALUE_OVERFLOW,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ValueRef::Inline(bytes) => {
                out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            ValueRef::Overflow { len, chain } => {
                out.extend_from_slice(&len.to_le_bytes());
                encode_pointer(*chain, out);
            }
        }
    }
}

/// The order of two keys as far as the bytes in their cells tell it (`None`: it takes a long
/// key's overflow pages). `(bytes, whole)`: the bytes shown and whether they are the whole key.
fn known_order(a: (&[u8], bool), b: (&[u8], bool)) -> Option<Ordering> {
    let common = a.0.len().min(b.0.len());
    match a.0[..common].cmp(&b.0[..common]) {
        Ordering::Equal => {}
        other => return Some(other),
    }
    // One is a prefix of the other as far as shown. A long key is longer than any inline key
    // and than its own prefix.
    if a.1 && a.0.len() == common {
        return Some(if b.1 {
            a.0.len().cmp(&b.0.len())
        } else {
            Ordering::Less
        });
    }
    if b.1 && b.0.len() == common {
        return Some(Ordering::Greater);
    }
    None
}

/// What pointers in a page may point to: ids below `page_count` (and past the meta pages),
/// generations from 1 to the page's own.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    page_count: u64,
    generation: u64,
}

impl Bounds {
    /// For a page already verified (a frame of the pool).
    const VERIFIED: Bounds = Bounds {
        page_count: u64::MAX,
        generation: u64::MAX,
    };

    fn page_id(&self, id: u64) -> bool {
        (FIRST_DATA_PAGE..self.page_count).contains(&id)
    }
}

/// Reads fields of a cell, never past the end of the page.
struct Cursor<'a> {
    page: &'a PageBuf,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], PageProblem> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= PAGE_SIZE)
            .ok_or(malformed(self.at, "a cell runs past the end of the page"))?;
        let bytes = &self.page[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PageProblem> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PageProblem> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, PageProblem> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(std::array::from_fn(|i| bytes[i])))
    }

    fn u64(&mut self) -> Result<u64, PageProblem> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(std::array::from_fn(|i| bytes[i])))
    }

    fn pointer(&mut self, bounds: Bounds) -> Result<PagePtr, PageProblem> {
        let at = self.at;
        let id = self.u64()?;
        let generation = self.u64()?;
        if !bounds.page_id(id) || !(1..=bounds.generation).contains(&generation) {
            return Err(malformed(
                at,
                "a pointer outside the file or to a later checkpoint",
            ));
        }
        Ok(PagePtr { id, generation })
    }

    fn key(&mut self, long: bool, bounds: Bounds) -> Result<KeyRef<'a>, PageProblem> {
        let at = self.at;
        if long {
            let len = self.u32()?;
            if len as usize <= KEY_INLINE_MAX || len as usize > MAX_ENTRY_LEN {
                return Err(malformed(at, "a long key's length is out of range"));
            }
            let prefix = self.take(KEY_PREFIX_LEN)?;
            let chain = self.pointer(bounds)?;
            Ok(KeyRef::Long { len, prefix, chain })
        } else {
            let len = self.u16()? as usize;
            if len > KEY_INLINE_MAX {
                return Err(malformed(at, "an inline key is longer than KEY_INLINE_MAX"));
            }
            Ok(KeyRef::Inline(self.take(len)?))
        }
    }

    fn flags(&mut self, allowed: u8) -> Result<u8, PageProblem> {
        let at = self.at;
        let flags = self.u8()?;
        if flags & !allowed != 0 {
            return Err(malformed(at, "a cell has unknown flags"));
        }
        Ok(flags)
    }
}

fn slots_at(kind: PageType) -> usize {
    match kind {
        PageType::Branch => BRANCH_SLOTS_AT,
        _ => LEAF_SLOTS_AT,
    }
}

/// Where cell `index` of a branch or leaf starts (its slot).
fn cell_offset(page: &PageBuf, kind: PageType, index: usize) -> Result<usize, PageProblem> {
    let at = slots_at(kind) + SLOT_LEN * index;
    if at + SLOT_LEN > PAGE_SIZE {
        return Err(malformed(
            at,
            "the slot array runs past the end of the page",
        ));
    }
    Ok(get_u16(page, at) as usize)
}

/// Cell `index` of a leaf: its key, its value, and where the cell ends.
fn leaf_cell(
    page: &PageBuf,
    index: usize,
    bounds: Bounds,
) -> Result<(KeyRef<'_>, ValueRef<'_>, usize), PageProblem> {
    let mut cursor = Cursor {
        page,
        at: cell_offset(page, PageType::Leaf, index)?,
    };
    let flags = cursor.flags(KEY_LONG | VALUE_OVERFLOW)?;
    let key = cursor.key(flags & KEY_LONG != 0, bounds)?;
    let at = cursor.at;
    let value = if flags & VALUE_OVERFLOW != 0 {
        let len = cursor.u32()?;
        if len == 0 || len as usize > MAX_ENTRY_LEN {
            return Err(malformed(at, "an overflow value's length is out of range"));
        }
        ValueRef::Overflow {
            len,
            chain: cursor.pointer(bounds)?,
        }
    } else {
        let len = cursor.u16()? as usize;
        ValueRef::Inline(cursor.take(len)?)
    };
    let value_len = match value {
        ValueRef::Inline(bytes) => bytes.len(),
        ValueRef::Overflow { len, .. } => len as usize,
    };
    if key.len() + value_len > MAX_ENTRY_LEN {
        return Err(malformed(at, "an entry is larger than MAX_ENTRY_LEN"));
    }
    Ok((key, value, cursor.at))
}

/// Cell `index` of a branch: its separator, its child, and where the cell ends.
fn branch_cell(
    page: &PageBuf,
    index: usize,
    bounds: Bounds,
) -> Result<(KeyRef<'_>, PagePtr, usize), PageProblem> {
    let mut cursor = Cursor {
        page,
        at: cell_offset(page, PageType::Branch, index)?,
    };
    let flags = cursor.flags(KEY_LONG)?;
    let key = cursor.key(flags & KEY_LONG != 0, bounds)?;
    let child = cursor.pointer(bounds)?;
    Ok((key, child, cursor.at))
}

fn branch_first(page: &PageBuf, bounds: Bounds) -> Result<PagePtr, PageProblem> {
    Cursor {
        page,
        at: BRANCH_FIRST_AT,
    }
    .pointer(bounds)
}

fn cell_count(page: &PageBuf) -> usize {
    get_u16(page, COUNT_AT) as usize
}

fn all_zero(
    page: &PageBuf,
    range: std::ops::Range<usize>,
    what: &'static str,
) -> Result<(), PageProblem> {
    match page[range.clone()].iter().position(|b| *b != 0) {
        Some(at) => Err(malformed(range.start + at, what)),
        None => Ok(()),
    }
}

/// A cell of a branch or leaf, as it is in the page.
enum CellRef<'a> {
    Leaf(KeyRef<'a>, ValueRef<'a>),
    Branch(KeyRef<'a>, PagePtr),
}

/// Checks the cells of a branch or leaf, and gives each to `each` in slot order: every slot
/// points to a cell that parses inside the page, cells are packed from the end of the page in
/// slot order with nothing else between them and the slots but zeros, no cell is larger than
/// [`CELL_MAX`], keys go up as far as the cells show them, and a branch's first child pointer
/// is valid. Allocates nothing.
fn check_tree<'p>(
    page: &'p PageBuf,
    kind: PageType,
    bounds: Bounds,
    mut each: impl FnMut(CellRef<'p>),
) -> Result<(), PageProblem> {
    all_zero(page, TREE_RESERVED, "reserved bytes are not zero")?;
    let count = cell_count(page);
    let slots_end = slots_at(kind) + SLOT_LEN * count;
    if slots_end > PAGE_SIZE {
        return Err(malformed(COUNT_AT, "more cells than a page can hold"));
    }
    let mut end = PAGE_SIZE;
    let mut previous: Option<KeyRef<'_>> = None;
    for index in 0..count {
        let start = cell_offset(page, kind, index)?;
        let slot_at = slots_at(kind) + SLOT_LEN * index;
        if start < slots_end {
            return Err(malformed(slot_at, "a cell overlaps the slot array"));
        }
        let (key, cell, cell_end) = match kind {
            PageType::Branch => {
                let (key, child, cell_end) = branch_cell(page, index, bounds)?;
                (key, CellRef::Branch(key, child), cell_end)
            }
            _ => {
                let (key, value, cell_end) = leaf_cell(page, index, bounds)?;
                (key, CellRef::Leaf(key, value), cell_end)
            }
        };
        if cell_end != end {
            return Err(malformed(slot_at, "cells are not packed in slot order"));
        }
        if cell_end - start + SLOT_LEN > CELL_MAX {
            return Err(malformed(start, "a cell is larger than CELL_MAX"));
        }
        if let Some(before) = previous {
            if matches!(
                known_order(before.visible(), key.visible()),
                Some(Ordering::Greater | Ordering::Equal)
            ) {
                return Err(malformed(start, "keys are out of order"));
            }
        }
        each(cell);
        previous = Some(key);
        end = start;
    }
    all_zero(
        page,
        slots_end..end,
        "bytes between the slots and the cells are not zero",
    )?;
    if kind == PageType::Branch {
        branch_first(page, bounds)?;
    }
    Ok(())
}

/// Checks the cells of a branch or leaf ([`check_tree`]) and decodes them.
fn decode_tree(page: &PageBuf, kind: PageType, bounds: Bounds) -> Result<Body, PageProblem> {
    let mut leaf_cells = Vec::new();
    let mut branch_cells = Vec::new();
    check_tree(page, kind, bounds, |cell| match cell {
        CellRef::Leaf(key, value) => leaf_cells.push(LeafCell {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
        CellRef::Branch(key, child) => branch_cells.push(BranchCell {
            key: key.to_owned(),
            child,
        }),
    })?;
    Ok(match kind {
        PageType::Branch => Body::Branch {
            first: branch_first(page, bounds)?,
            cells: branch_cells,
        },
        _ => Body::Leaf(leaf_cells),
    })
}

fn chain_next(page: &PageBuf, bounds: Bounds) -> Result<u64, PageProblem> {
    let next = get_u64(page, NEXT_AT);
    if next != 0 && !bounds.page_id(next) {
        return Err(malformed(NEXT_AT, "the next page is outside the file"));
    }
    Ok(next)
}

fn decode_overflow(page: &PageBuf, bounds: Bounds) -> Result<Body, PageProblem> {
    let next = chain_next(page, bounds)?;
    let count = get_u16(page, CHAIN_COUNT_AT) as usize;
    all_zero(page, CHAIN_RESERVED, "reserved bytes are not zero")?;
    if count > OVERFLOW_CAPACITY {
        return Err(malformed(
            CHAIN_COUNT_AT,
            "more bytes than an overflow page holds",
        ));
    }
    let end = CHAIN_DATA_AT + count;
    all_zero(page, end..PAGE_SIZE, "bytes after the data are not zero")?;
    Ok(Body::Overflow {
        next,
        data: page[CHAIN_DATA_AT..end].to_vec(),
    })
}

fn decode_free_list(page: &PageBuf, bounds: Bounds) -> Result<Body, PageProblem> {
    let next = chain_next(page, bounds)?;
    let count = get_u16(page, CHAIN_COUNT_AT) as usize;
    all_zero(page, CHAIN_RESERVED, "reserved bytes are not zero")?;
    if count > FREE_IDS_PER_PAGE {
        return Err(malformed(
            CHAIN_COUNT_AT,
            "more ids than a free-list page holds",
        ));
    }
    let mut ids = Vec::with_capacity(count);
    for index in 0..count {
        let at = CHAIN_DATA_AT + 8 * index;
        let id = get_u64(page, at);
        if !bounds.page_id(id) {
            return Err(malformed(at, "a free page outside the file"));
        }
        ids.push(id);
    }
    all_zero(
        page,
        CHAIN_DATA_AT + 8 * count..PAGE_SIZE,
        "bytes after the ids are not zero",
    )?;
    Ok(Body::FreeList { next, ids })
}

/// Decodes the body of a meta page whose header was checked; `sequence` is its generation.
fn decode_meta(page: &PageBuf, sequence: u64) -> Result<MetaBody, PageProblem> {
    if page[MAGIC_AT..MAGIC_AT + 8] != DATA_MAGIC {
        return Err(malformed(MAGIC_AT, "no hadr data-file magic"));
    }
    let page_size = u32::from_le_bytes(std::array::from_fn(|i| page[PAGE_SIZE_AT + i]));
    if page_size as usize != PAGE_SIZE {
        return Err(malformed(PAGE_SIZE_AT, "another page size"));
    }
    all_zero(page, META_RESERVED, "reserved bytes are not zero")?;
    all_zero(
        page,
        META_END..PAGE_SIZE,
        "bytes after the fields are not zero",
    )?;
    let height = page[HEIGHT_AT];
    let page_count = get_u64(page, PAGE_COUNT_AT);
    let root = PagePtr {
        id: get_u64(page, ROOT_ID_AT),
        generation: get_u64(page, ROOT_GENERATION_AT),
    };
    let free_head = get_u64(page, FREE_HEAD_AT);
    let free_count = get_u64(page, FREE_COUNT_AT);
    let bounds = Bounds {
        page_count,
        generation: sequence,
    };
    if page_count < FIRST_DATA_PAGE || page_count > u64::MAX / PAGE_SIZE as u64 {
        return Err(malformed(PAGE_COUNT_AT, "an impossible page count"));
    }
    if height > MAX_HEIGHT {
        return Err(malformed(HEIGHT_AT, "the tree is higher than MAX_HEIGHT"));
    }
    let root = match height {
        0 if root.id == 0 && root.generation == 0 => None,
        0 => return Err(malformed(ROOT_ID_AT, "an empty tree with a root")),
        _ if bounds.page_id(root.id) && (1..=sequence).contains(&root.generation) => Some(root),
        _ => {
            return Err(malformed(
                ROOT_ID_AT,
                "the root is outside the file or of a later checkpoint",
            ))
        }
    };
    if free_head != 0 && !bounds.page_id(free_head) {
        return Err(malformed(
            FREE_HEAD_AT,
            "the free list starts outside the file",
        ));
    }
    if free_count > page_count || (free_head == 0 && free_count != 0) {
        return Err(malformed(
            FREE_COUNT_AT,
            "an impossible number of free pages",
        ));
    }
    Ok(MetaBody {
        height,
        page_count,
        root,
        free_head,
        free_count,
        entries: get_u64(page, ENTRIES_AT),
    })
}

/// What a page must be, from the pointer that led to it.
#[derive(Clone, Copy, Debug)]
struct Expect {
    id: u64,
    kind: PageType,
    level: u8,
    /// `None` for meta pages (the generation is the sequence, any is possible).
    generation: Option<u64>,
    database: u8,
    page_count: u64,
}

/// Checks a page's header against what its pointer expects, and its checksum (first: a torn
/// page reports its checksum).
fn check_header(page: &PageBuf, expect: &Expect) -> Result<Header, PageProblem> {
    let stored = u32::from_le_bytes(std::array::from_fn(|i| page[CHECKSUM_AT + i]));
    let computed = checksum(page);
    if stored != computed {
        return Err(PageProblem::Checksum { stored, computed });
    }
    check_fields(page, expect)
}

/// The header checks besides the checksum (for frames of the pool too).
fn check_fields(page: &PageBuf, expect: &Expect) -> Result<Header, PageProblem> {
    if page[FORMAT_AT] != FORMAT {
        return Err(PageProblem::Format {
            found: page[FORMAT_AT],
        });
    }
    let (kind_byte, header) = read_header(page);
    if header.id != expect.id {
        return Err(PageProblem::WrongPageId { found: header.id });
    }
    if header.database != expect.database {
        return Err(PageProblem::WrongDatabase {
            found: DatabaseId(header.database),
        });
    }
    if kind_byte != expect.kind as u8 {
        return Err(PageProblem::WrongType {
            expected: expect.kind,
            found: kind_byte,
        });
    }
    if let Some(expected) = expect.generation {
        if header.generation != expected {
            return Err(PageProblem::WrongGeneration {
                expected,
                found: header.generation,
            });
        }
    }
    if header.level != expect.level {
        return Err(PageProblem::WrongLevel {
            expected: expect.level,
            found: header.level,
        });
    }
    Ok(header)
}

/// Checks a tree page (branch or leaf) read from the file in full, as [`verify`] does, without
/// decoding it: its header and checksum, its level, and every cell ([`check_tree`]).
fn verify_tree(page: &PageBuf, expect: &Expect) -> Result<(), PageProblem> {
    let header = check_header(page, expect)?;
    if !matches!(header.kind, PageType::Branch | PageType::Leaf) {
        return Err(malformed(TYPE_AT, "not a tree page"));
    }
    check_level(&header)?;
    check_tree(page, header.kind, bounds_of(&header, expect), |_| ())
}

fn bounds_of(header: &Header, expect: &Expect) -> Bounds {
    Bounds {
        page_count: expect.page_count,
        generation: header.generation,
    }
}

fn check_level(header: &Header) -> Result<(), PageProblem> {
    match header.kind == PageType::Branch && !(1..=MAX_HEIGHT - 1).contains(&header.level) {
        true => Err(malformed(
            LEVEL_AT,
            "a branch at level 0 or above MAX_HEIGHT",
        )),
        false => Ok(()),
    }
}

/// Checks a page read from the file and decodes it.
fn verify(page: &PageBuf, expect: &Expect) -> Result<Page, PageProblem> {
    let header = check_header(page, expect)?;
    let bounds = bounds_of(&header, expect);
    let body = match header.kind {
        PageType::Meta => {
            if header.generation % 2 != header.id {
                return Err(malformed(
                    GENERATION_AT,
                    "its sequence number does not belong in this slot",
                ));
            }
            Body::Meta(decode_meta(page, header.generation)?)
        }
        PageType::Branch | PageType::Leaf => {
            check_level(&header)?;
            decode_tree(page, header.kind, bounds)?
        }
        PageType::Overflow => decode_overflow(page, bounds)?,
        PageType::FreeList => decode_free_list(page, bounds)?,
    };
    Ok(Page { header, body })
}

/// Decodes any page on its own, as its header describes it (for the fuzz targets): everything
/// [`DataFile`] checks when it reads a page, except what only the pointer to it can tell (its
/// expected id, database, type, generation and level are taken from the page itself).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_page(bytes: &[u8]) -> Result<Page, PageProblem> {
    let page: &PageBuf = bytes
        .try_into()
        .map_err(|_| malformed(bytes.len().min(PAGE_SIZE), "a page is PAGE_SIZE bytes"))?;
    let (kind_byte, header) = read_header(page);
    let Some(kind) = PageType::from_byte(kind_byte) else {
        let stored = u32::from_le_bytes(std::array::from_fn(|i| page[CHECKSUM_AT + i]));
        let computed = checksum(page);
        if stored != computed {
            return Err(PageProblem::Checksum { stored, computed });
        }
        return Err(malformed(TYPE_AT, "an unknown page type"));
    };
    verify(
        page,
        &Expect {
            id: header.id,
            kind,
            level: header.level,
            generation: Some(header.generation),
            database: header.database,
            page_count: u64::MAX,
        },
    )
}

/// Whether the bytes are a sealed page: the checksum stored matches its bytes.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn checksum_matches(bytes: &[u8]) -> bool {
    let Ok(page) = <&PageBuf>::try_from(bytes) else {
        return false;
    };
    u32::from_le_bytes(std::array::from_fn(|i| page[CHECKSUM_AT + i])) == checksum(page)
}

/// Stores a correct checksum in a page of arbitrary bytes (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn reseal(bytes: &mut [u8]) {
    if let Ok(page) = <&mut PageBuf>::try_from(bytes) {
        seal(page);
    }
}

// ---------------------------------------------------------------------------------------------
// The file.

/// The file, and the reads and writes of single pages.
#[derive(Debug)]
struct Disk {
    file: File,
    path: PathBuf,
    database: DatabaseId,
    /// The file's length, as far as this process changed or read it.
    file_len: u64,
    pages_read: Cell<u64>,
    pages_written: u64,
}

impl Disk {
    fn io(&self, operation: &'static str) -> impl FnOnce(io::Error) -> PageError {
        io_error(&self.path, operation)
    }

    fn damaged(&self, page: u64, problem: PageProblem) -> PageError {
        PageError::Damaged {
            path: self.path.clone(),
            page,
            offset: page.saturating_mul(PAGE_SIZE as u64),
            problem,
        }
    }

    /// Reads page `id` as it is in the file (unverified).
    fn read(&self, id: u64, page: &mut PageBuf) -> Result<(), PageError> {
        let offset = id.saturating_mul(PAGE_SIZE as u64);
        let missing = PageProblem::Missing {
            file_len: self.file_len,
        };
        if offset.saturating_add(PAGE_SIZE as u64) > self.file_len {
            return Err(self.damaged(id, missing));
        }
        self.pages_read.set(self.pages_read.get() + 1);
        match self.file.read_exact_at(page, offset) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.damaged(id, missing))
            }
            Err(error) => Err(self.io("read")(error)),
        }
    }

    /// Reads page `id` and checks it against `expect`.
    fn read_verified(&self, page: &mut PageBuf, expect: &Expect) -> Result<Page, PageError> {
        self.read(expect.id, page)?;
        verify(page, expect).map_err(|problem| self.damaged(expect.id, problem))
    }

    /// Reads tree page `id` and checks it in full against `expect` ([`verify_tree`]).
    fn read_verified_tree(&self, page: &mut PageBuf, expect: &Expect) -> Result<(), PageError> {
        self.read(expect.id, page)?;
        verify_tree(page, expect).map_err(|problem| self.damaged(expect.id, problem))
    }

    /// Seals `page` and writes it at its place.
    fn write(&mut self, id: u64, page: &mut PageBuf) -> Result<(), PageError> {
        seal(page);
        let offset = id.saturating_mul(PAGE_SIZE as u64);
        self.file
            .write_all_at(page, offset)
            .map_err(io_error(&self.path, "write"))?;
        self.pages_written += 1;
        self.file_len = self.file_len.max(offset + PAGE_SIZE as u64);
        Ok(())
    }

    fn sync(&self) -> Result<(), PageError> {
        self.file.sync_data().map_err(self.io("fsync"))
    }

    /// Walks the overflow chain of a value or key of `len` bytes from `first`: every page is
    /// verified, of the chain's generation, full but the last, and the chain ends exactly where
    /// the length says. At most `len / OVERFLOW_CAPACITY + 1` pages are read.
    fn walk_chain(
        &self,
        first: PagePtr,
        len: u32,
        page_count: u64,
        mut each: impl FnMut(u64, &[u8]),
    ) -> Result<(), PageError> {
        let mut page = Box::new([0; PAGE_SIZE]);
        let pages = (len as usize).div_ceil(OVERFLOW_CAPACITY).max(1);
        let mut left = len as usize;
        let mut id = first.id;
        for index in 0..pages {
            let expect = Expect {
                id,
                kind: PageType::Overflow,
                level: 0,
                generation: Some(first.generation),
                database: self.database.0,
                page_count,
            };
            let Body::Overflow { next, data } = self.read_verified(&mut page, &expect)?.body else {
                return Err(self.damaged(id, malformed(TYPE_AT, "not an overflow page")));
            };
            if data.len() != left.min(OVERFLOW_CAPACITY) {
                return Err(self.damaged(
                    id,
                    malformed(
                        CHAIN_COUNT_AT,
                        "an overflow page holds the wrong number of bytes for its chain",
                    ),
                ));
            }
            if (index + 1 == pages) != (next == 0) {
                return Err(self.damaged(
                    id,
                    malformed(NEXT_AT, "the chain is longer or shorter than its value"),
                ));
            }
            left -= data.len();
            each(id, &data);
            id = next;
        }
        Ok(())
    }

    fn read_chain(&self, first: PagePtr, len: u32, page_count: u64) -> Result<Vec<u8>, PageError> {
        let mut bytes = Vec::with_capacity(len as usize);
        self.walk_chain(first, len, page_count, |_, data| {
            bytes.extend_from_slice(data)
        })?;
        Ok(bytes)
    }

    /// The whole key. A long key's overflow pages must start with the prefix its cell shows
    /// (comparisons trust the prefix when it decides).
    fn full_key(&self, key: KeyRef<'_>, page_count: u64) -> Result<Vec<u8>, PageError> {
        match key {
            KeyRef::Inline(bytes) => Ok(bytes.to_vec()),
            KeyRef::Long { len, prefix, chain } => {
                let bytes = self.read_chain(chain, len, page_count)?;
                self.check_prefix(prefix, chain, &bytes)?;
                Ok(bytes)
            }
        }
    }

    fn check_prefix(&self, prefix: &[u8], chain: PagePtr, key: &[u8]) -> Result<(), PageError> {
        match key.starts_with(prefix) {
            true => Ok(()),
            false => Err(self.damaged(
                chain.id,
                malformed(
                    CHAIN_DATA_AT,
                    "a long key's overflow pages do not start with the prefix in its cell",
                ),
            )),
        }
    }

    /// How `search` compares with a stored key, reading a long key's overflow pages only when
    /// its prefix does not tell.
    fn compare(
        &self,
        search: &[u8],
        key: KeyRef<'_>,
        page_count: u64,
    ) -> Result<Ordering, PageError> {
        if let Some(order) = known_order((search, true), key.visible()) {
            return Ok(order);
        }
        Ok(search.cmp(&self.full_key(key, page_count)?[..]))
    }
}

fn io_error(path: &Path, operation: &'static str) -> impl FnOnce(io::Error) -> PageError {
    let path = path.to_path_buf();
    move |source| PageError::Io {
        path,
        operation,
        source,
    }
}

/// Where `key` is in a leaf: `Ok(index)` of its cell, or `Err(index)` where it would go.
fn leaf_search(
    disk: &Disk,
    page: &PageBuf,
    id: u64,
    key: &[u8],
    page_count: u64,
) -> Result<Result<usize, usize>, PageError> {
    let (mut low, mut high) = (0, cell_count(page));
    while low < high {
        let middle = low + (high - low) / 2;
        let (stored, _, _) =
            leaf_cell(page, middle, Bounds::VERIFIED).map_err(|p| disk.damaged(id, p))?;
        match disk.compare(key, stored, page_count)? {
            Ordering::Equal => return Ok(Ok(middle)),
            Ordering::Greater => low = middle + 1,
            Ordering::Less => high = middle,
        }
    }
    Ok(Err(low))
}

/// The child of a branch whose keys may include `key`: its index (0 for the first child, `i`
/// for the child of cell `i - 1`) and its pointer.
fn branch_search(
    disk: &Disk,
    page: &PageBuf,
    id: u64,
    key: &[u8],
    page_count: u64,
) -> Result<(usize, PagePtr), PageError> {
    let damaged = |problem| disk.damaged(id, problem);
    let (mut low, mut high) = (0, cell_count(page));
    while low < high {
        let middle = low + (high - low) / 2;
        let (separator, _, _) = branch_cell(page, middle, Bounds::VERIFIED).map_err(damaged)?;
        if disk.compare(key, separator, page_count)? == Ordering::Less {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let child = match low {
        0 => branch_first(page, Bounds::VERIFIED).map_err(damaged)?,
        _ => {
            branch_cell(page, low - 1, Bounds::VERIFIED)
                .map_err(damaged)?
                .1
        }
    };
    Ok((low, child))
}

// ---------------------------------------------------------------------------------------------
// The buffer pool.

#[derive(Debug)]
struct Frame {
    /// The page it holds; `None`: vacant.
    id: Option<u64>,
    dirty: bool,
    /// Used since the clock hand last passed.
    referenced: bool,
    page: Box<PageBuf>,
}

/// Frames of tree pages, at most `capacity`, allocated as needed and reused (clock eviction).
#[derive(Debug)]
struct Pool {
    capacity: usize,
    frames: Vec<Frame>,
    resident: HashMap<u64, usize>,
    vacant: Vec<usize>,
    hand: usize,
    hits: u64,
    misses: u64,
    evicted_dirty: u64,
}

impl Pool {
    fn lookup(&mut self, id: u64) -> Option<usize> {
        let index = *self.resident.get(&id)?;
        self.frames[index].referenced = true;
        Some(index)
    }

    /// Forgets page `id` (freed: whatever the frame held is never written).
    fn discard(&mut self, id: u64) {
        if let Some(index) = self.resident.remove(&id) {
            let frame = &mut self.frames[index];
            frame.id = None;
            frame.dirty = false;
            self.vacant.push(index);
        }
    }

    fn occupy(&mut self, index: usize, id: u64) {
        let frame = &mut self.frames[index];
        frame.id = Some(id);
        frame.referenced = true;
        frame.dirty = false;
        self.resident.insert(id, index);
    }

    /// The next frame to reuse by the clock: one not referenced since the hand last passed.
    fn victim(&mut self) -> usize {
        let count = self.frames.len();
        for _ in 0..2 * count {
            let index = self.hand;
            self.hand = (self.hand + 1) % count;
            let frame = &mut self.frames[index];
            if frame.id.is_none() || !frame.referenced {
                return index;
            }
            frame.referenced = false;
        }
        self.hand
    }
}

// ---------------------------------------------------------------------------------------------
// The data file.

/// An open data file of one database.
#[derive(Debug)]
pub struct DataFile {
    disk: Disk,
    pool: Pool,
    database: DatabaseId,
    /// The last durable checkpoint: its sequence number and LSN.
    sequence: u64,
    checkpoint_lsn: Lsn,
    /// The generation of pages written now: `sequence + 1`. A page of an older generation is
    /// reachable from a durable meta page and is never written again until freed.
    generation: u64,
    root: Option<PagePtr>,
    height: u8,
    entries: u64,
    /// Pages the file uses (ids below it).
    page_count: u64,
    /// Free pages that no durable meta page reaches: allocated first.
    reusable: Vec<u64>,
    /// Pages freed since the last checkpoint that its meta page still reaches: reusable once
    /// the next checkpoint is durable.
    pending: Vec<u64>,
    /// The pages of the last durable checkpoint's free list (freed by the next checkpoint).
    free_chain: Vec<u64>,
    /// The highest LSN put since the last checkpoint (or its LSN).
    last_put_lsn: Lsn,
    failed: bool,
    /// The copies of the pages on the path of a `put`, one per level, kept for the next.
    path_pages: Vec<Box<PageBuf>>,
}

/// A branch on the path of a `put` (its copy is the path's page at its depth).
struct PathStep {
    ptr: PagePtr,
    level: u8,
    /// The child the path went down to (0: the first; `i`: the child of cell `i - 1`).
    child: usize,
}

/// The leaf of a `put` (its copy is the path's last page), and where the key is in it.
struct LeafAt {
    ptr: PagePtr,
    position: Result<usize, usize>,
}

/// A page written by a change, and the new page beside it when it split.
struct Carry {
    ptr: PagePtr,
    split: Option<(Key, PagePtr)>,
}

impl DataFile {
    /// Creates the data file of `database` at `path`, empty, and opens it. Refuses an existing
    /// file ([`PageError::AlreadyExists`]).
    ///
    /// Atomic: both meta pages (sequences 0 and 1, an empty tree, LSN 0) are written to
    /// `<path>.new`, synced, renamed to `path`, and the directory is synced.
    pub fn create(
        path: &Path,
        database: DatabaseId,
        options: DataFileOptions,
    ) -> Result<DataFile, PageError> {
        check_budget(options)?;
        if path.exists() {
            return Err(PageError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        let staging = with_suffix(path, ".new");
        let mut contents = Vec::with_capacity(2 * PAGE_SIZE);
        for sequence in 0..2 {
            let mut page = Box::new([0; PAGE_SIZE]);
            let header = Header {
                kind: PageType::Meta,
                database: database.0,
                level: 0,
                id: sequence,
                generation: sequence,
                lsn: 0,
            };
            let meta = MetaBody {
                height: 0,
                page_count: FIRST_DATA_PAGE,
                root: None,
                free_head: 0,
                free_count: 0,
                entries: 0,
            };
            encode_meta(&mut page, &header, &meta);
            seal(&mut page);
            contents.extend_from_slice(&page[..]);
        }
        let write = || -> io::Result<()> {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&staging)?;
            file.write_all_at(&contents, 0)?;
            file.sync_all()
        };
        write().map_err(io_error(&staging, "write"))?;
        fs::rename(&staging, path).map_err(io_error(path, "create"))?;
        sync_directory(path)?;
        Ok(DataFile::open(path, database, options)?.0)
    }

    /// Opens the data file of `database` at `path` at its last checkpoint, and returns it with
    /// that checkpoint's LSN: the caller redoes its log from the next record.
    ///
    /// Reads both meta pages and takes the valid one with the higher sequence (a meta page
    /// torn by a crash during a checkpoint fails its checksum and the checkpoint before it is
    /// taken), then reads and checks the free list. The tree's pages are read when used.
    /// Nothing is written. Refuses a file that is not a data file, the file of another
    /// database, a file with no valid meta page, or one shorter than its checkpoint.
    pub fn open(
        path: &Path,
        database: DatabaseId,
        options: DataFileOptions,
    ) -> Result<(DataFile, Lsn), PageError> {
        check_budget(options)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error(path, "open"))?;
        let file_len = file
            .metadata()
            .map_err(io_error(path, "read the length of"))?
            .len();
        let mut disk = Disk {
            file,
            path: path.to_path_buf(),
            database,
            file_len,
            pages_read: Cell::new(0),
            pages_written: 0,
        };
        if file_len < 2 * PAGE_SIZE as u64 {
            return Err(PageError::NotADataFile {
                path: path.to_path_buf(),
                reason: format!("it holds {file_len} bytes, less than its two meta pages"),
            });
        }
        let (header, meta) = read_metas(&disk)?;
        let sequence = header.generation;
        // One checkpoint adds one to the sequence: no file ever gets near 2^63 of them, and
        // the generations after a sequence near 2^64 would overflow.
        if sequence >= MAX_SEQUENCE {
            return Err(PageError::NotADataFile {
                path: path.to_path_buf(),
                reason: format!(
                    "its checkpoint sequence {sequence} is beyond what any data file reaches ({MAX_SEQUENCE})"
                ),
            });
        }
        let pages_needed = meta.page_count.saturating_mul(PAGE_SIZE as u64);
        if pages_needed > file_len {
            return Err(PageError::Truncated {
                path: path.to_path_buf(),
                sequence,
                pages: meta.page_count,
                file_len,
            });
        }
        let (free_chain, free) = read_free_list(&disk, &meta, sequence)?;
        disk.pages_written = 0;
        let capacity =
            (options.pool_budget_bytes / PAGE_SIZE as u64).min(usize::MAX as u64) as usize;
        let checkpoint_lsn = Lsn(header.lsn);
        let data = DataFile {
            disk,
            pool: Pool {
                capacity,
                frames: Vec::new(),
                resident: HashMap::new(),
                vacant: Vec::new(),
                hand: 0,
                hits: 0,
                misses: 0,
                evicted_dirty: 0,
            },
            database,
            sequence,
            checkpoint_lsn,
            generation: sequence + 1,
            root: meta.root,
            height: meta.height,
            entries: meta.entries,
            page_count: meta.page_count,
            reusable: free,
            pending: Vec::new(),
            free_chain,
            last_put_lsn: checkpoint_lsn,
            failed: false,
            path_pages: Vec::new(),
        };
        Ok((data, checkpoint_lsn))
    }

    /// The LSN of the last durable checkpoint.
    pub fn checkpoint_lsn(&self) -> Lsn {
        self.checkpoint_lsn
    }

    /// The database the file belongs to.
    pub fn database(&self) -> DatabaseId {
        self.database
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.disk.path
    }

    /// Sizes and counters.
    pub fn stats(&self) -> DataFileStats {
        DataFileStats {
            pool_budget_bytes: (self.pool.capacity * PAGE_SIZE) as u64,
            pool_bytes: (self.pool.frames.len() * PAGE_SIZE) as u64,
            pool_pages_resident: self.pool.resident.len() as u64,
            pool_pages_dirty: self.pool.frames.iter().filter(|f| f.dirty).count() as u64,
            pool_hits: self.pool.hits,
            pool_misses: self.pool.misses,
            pages_read: self.disk.pages_read.get(),
            pages_written: self.disk.pages_written,
            pages_written_by_eviction: self.pool.evicted_dirty,
            page_count: self.page_count,
            free_pages: (self.reusable.len() + self.pending.len()) as u64,
            entries: self.entries,
            height: self.height,
            checkpoint_sequence: self.sequence,
        }
    }

    fn check_usable(&self) -> Result<(), PageError> {
        match self.failed {
            true => Err(PageError::Failed {
                path: self.disk.path.clone(),
            }),
            false => Ok(()),
        }
    }

    /// The value of `key`, if it was ever put. A damaged page on the way is
    /// [`PageError::Damaged`] (the file stays usable for other keys).
    pub fn get(&mut self, key: &str) -> Result<Option<String>, PageError> {
        self.check_usable()?;
        let key = key.as_bytes();
        let Some(mut ptr) = self.root else {
            return Ok(None);
        };
        let mut level = self.height.saturating_sub(1);
        loop {
            let index = self.fetch(ptr, level)?;
            let page = &self.pool.frames[index].page;
            let page_count = self.page_count;
            if level > 0 {
                ptr = branch_search(&self.disk, page, ptr.id, key, page_count)?.1;
                level -= 1;
                continue;
            }
            let Ok(found) = leaf_search(&self.disk, page, ptr.id, key, page_count)? else {
                return Ok(None);
            };
            let damaged = |problem| self.disk.damaged(ptr.id, problem);
            let (_, value, _) = leaf_cell(page, found, Bounds::VERIFIED).map_err(damaged)?;
            let bytes = match value {
                ValueRef::Inline(bytes) => bytes.to_vec(),
                ValueRef::Overflow { len, chain } => {
                    self.disk.read_chain(chain, len, page_count)?
                }
            };
            return String::from_utf8(bytes).map(Some).map_err(|_| {
                self.disk
                    .damaged(ptr.id, malformed(0, "a value is not UTF-8"))
            });
        }
    }

    /// Sets `key` to `value`, as the write of log record `lsn`. Not durable until the next
    /// [`DataFile::checkpoint`].
    ///
    /// Reads the path from the root to the key's leaf first; a damaged page there is
    /// [`PageError::Damaged`] and nothing changes. Then it changes the leaf, and its parents as
    /// far as their pointers change: a page of the last checkpoint is copied to a new id, a page
    /// already written since is changed in place. An error in that second part leaves the file
    /// [`PageError::Failed`].
    pub fn put(&mut self, key: &str, value: &str, lsn: Lsn) -> Result<(), PageError> {
        self.check_usable()?;
        let (key, value) = (key.as_bytes(), value.as_bytes());
        if key.len().saturating_add(value.len()) > MAX_ENTRY_LEN {
            return Err(PageError::EntryTooLarge {
                key_len: key.len(),
                value_len: value.len(),
                limit: MAX_ENTRY_LEN,
            });
        }
        let mut pages = std::mem::take(&mut self.path_pages);
        let result = match self.find(key, &mut pages) {
            Err(error) => Err(error),
            Ok((path, leaf, old_chain)) => {
                let result = self.change(key, value, lsn.0, &mut pages, path, leaf, old_chain);
                if result.is_err() {
                    self.failed = true;
                } else {
                    self.last_put_lsn = self.last_put_lsn.max(lsn);
                }
                result
            }
        };
        self.path_pages = pages;
        result
    }

    /// The read-only part of `put`: the path to the key's leaf, with a copy of each of its pages
    /// in `pages` (the root first, the leaf last), and the overflow pages of the value it
    /// replaces. The pages are searched in place, not decoded.
    #[allow(clippy::type_complexity)]
    fn find(
        &mut self,
        key: &[u8],
        pages: &mut Vec<Box<PageBuf>>,
    ) -> Result<(Vec<PathStep>, Option<LeafAt>, Vec<PagePtr>), PageError> {
        let mut path = Vec::new();
        let Some(mut ptr) = self.root else {
            return Ok((path, None, Vec::new()));
        };
        let mut level = self.height.saturating_sub(1);
        let page_count = self.page_count;
        loop {
            let index = self.fetch(ptr, level)?;
            let depth = path.len();
            if pages.len() <= depth {
                pages.push(Box::new([0; PAGE_SIZE]));
            }
            let page = &mut pages[depth];
            page.copy_from_slice(&self.pool.frames[index].page[..]);
            if level > 0 {
                let (child, next) = branch_search(&self.disk, page, ptr.id, key, page_count)?;
                path.push(PathStep { ptr, level, child });
                ptr = next;
                level -= 1;
                continue;
            }
            let position = leaf_search(&self.disk, page, ptr.id, key, page_count)?;
            let mut old_chain = Vec::new();
            if let Ok(found) = position {
                let (_, value, _) = leaf_cell(page, found, Bounds::VERIFIED)
                    .map_err(|problem| self.disk.damaged(ptr.id, problem))?;
                if let ValueRef::Overflow { len, chain } = value {
                    self.disk.walk_chain(chain, len, page_count, |id, _| {
                        old_chain.push(PagePtr {
                            id,
                            generation: chain.generation,
                        })
                    })?;
                }
            }
            return Ok((path, Some(LeafAt { ptr, position }), old_chain));
        }
    }

    /// The changing part of `put`, on the copies of the path's pages that `find` left in
    /// `pages`: the new cell goes into the leaf's bytes, and a parent changes only where its
    /// child's pointer changes (one pointer rewritten) or its child split (one cell added). A
    /// page is decoded only when it is full and splits.
    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        key: &[u8],
        value: &[u8],
        lsn: u64,
        pages: &mut Vec<Box<PageBuf>>,
        path: Vec<PathStep>,
        leaf: Option<LeafAt>,
        old_chain: Vec<PagePtr>,
    ) -> Result<(), PageError> {
        let depth = path.len();
        if pages.len() <= depth {
            pages.push(Box::new([0; PAGE_SIZE]));
        }
        let page = &mut pages[depth];
        let (old, position) = match leaf {
            Some(LeafAt { ptr, position }) => (Some(ptr), position),
            None => {
                // An empty tree: its first leaf, with no cells yet.
                encode_header(page, &self.header(PageType::Leaf, 0, 0, lsn));
                (None, Err(0))
            }
        };
        let leaf_id = old.map_or(0, |ptr| ptr.id);
        // The new cell: its flags, the key as the cell stores it, the value.
        let mut cell = Vec::with_capacity(CELL_MAX);
        cell.push(0);
        let (key_long, key_len, new_key) = match position {
            Ok(index) => {
                let (stored, _, _) = leaf_cell(page, index, Bounds::VERIFIED)
                    .map_err(|problem| self.disk.damaged(leaf_id, problem))?;
                stored.encode(&mut cell);
                (stored.is_long(), stored.encoded_len(), None)
            }
            Err(_) => {
                let key = self.store_key(key, lsn)?;
                key.view().encode(&mut cell);
                (key.is_long(), key.encoded_len(), Some(key))
            }
        };
        let stored_value = self.store_value(value, key_len, lsn)?;
        cell[0] = (u8::from(key_long) * KEY_LONG) | stored_value.flag();
        stored_value.encode(&mut cell);
        for ptr in old_chain {
            self.free(ptr);
        }
        let (index, replace) = match position {
            Ok(index) => (index, true),
            Err(index) => {
                self.entries += 1;
                (index, false)
            }
        };
        let page_lsn = get_u64(page, LSN_AT).max(lsn);
        let mut carry = match splice_cell(page, PageType::Leaf, index, replace, &cell) {
            Ok(()) => Carry {
                ptr: self.store_page(old, page, page_lsn)?,
                split: None,
            },
            Err(Overfull) => {
                // Full: decode the leaf, and split it.
                let Body::Leaf(mut cells) = decode_tree(page, PageType::Leaf, Bounds::VERIFIED)
                    .map_err(|problem| self.disk.damaged(leaf_id, problem))?
                else {
                    return Err(self.bug(old, "a leaf decodes as a branch"));
                };
                let value = stored_value.to_owned();
                match (position, new_key) {
                    (Ok(index), _) => cells[index].value = value,
                    (Err(index), Some(key)) => cells.insert(index, LeafCell { key, value }),
                    (Err(_), None) => return Err(self.bug(old, "a new key without its cell")),
                }
                self.store_leaf(old, cells, page_lsn)?
            }
        };
        let mut child_before = old;
        for (depth, step) in path.iter().enumerate().rev() {
            if Some(carry.ptr) == child_before && carry.split.is_none() {
                // The child changed in place: nothing above it changes.
                return Ok(());
            }
            child_before = Some(step.ptr);
            let page = &mut pages[depth];
            set_child(page, step.child, carry.ptr)
                .map_err(|problem| self.disk.damaged(step.ptr.id, problem))?;
            let page_lsn = get_u64(page, LSN_AT).max(lsn);
            let Some((separator, right)) = carry.split else {
                carry = Carry {
                    ptr: self.store_page(Some(step.ptr), page, page_lsn)?,
                    split: None,
                };
                continue;
            };
            let added = BranchCell {
                key: separator,
                child: right,
            };
            let mut cell = Vec::with_capacity(added.size());
            added.encode(&mut cell);
            carry = match splice_cell(page, PageType::Branch, step.child, false, &cell) {
                Ok(()) => Carry {
                    ptr: self.store_page(Some(step.ptr), page, page_lsn)?,
                    split: None,
                },
                Err(Overfull) => {
                    // Full: decode the branch, and split it.
                    let Body::Branch { first, mut cells } =
                        decode_tree(page, PageType::Branch, Bounds::VERIFIED)
                            .map_err(|problem| self.disk.damaged(step.ptr.id, problem))?
                    else {
                        return Err(self.bug(Some(step.ptr), "a branch decodes as a leaf"));
                    };
                    cells.insert(step.child, added);
                    self.store_branch(Some(step.ptr), step.level, first, cells, page_lsn)?
                }
            };
        }
        match carry.split {
            None => self.root = Some(carry.ptr),
            Some((separator, right)) => {
                if self.height >= MAX_HEIGHT {
                    return Err(PageError::TreeTooTall {
                        path: self.disk.path.clone(),
                    });
                }
                let level = self.height.max(1);
                let cells = vec![BranchCell {
                    key: separator,
                    child: right,
                }];
                let root = self.store_branch(None, level, carry.ptr, cells, lsn)?;
                self.root = Some(root.ptr);
                self.height = level + 1;
            }
        }
        if old.is_none() {
            self.height = self.height.max(1);
        }
        Ok(())
    }

    /// Writes a changed tree page, from the bytes of its copy, where [`DataFile::place`] puts
    /// it; its header takes its id, the current generation and `lsn`.
    fn store_page(
        &mut self,
        old: Option<PagePtr>,
        page: &mut PageBuf,
        lsn: u64,
    ) -> Result<PagePtr, PageError> {
        let ptr = self.place(old);
        put_u64(page, ID_AT, ptr.id);
        put_u64(page, GENERATION_AT, ptr.generation);
        put_u64(page, LSN_AT, lsn);
        let index = self.frame_for(ptr.id)?;
        let frame = &mut self.pool.frames[index];
        frame.page.copy_from_slice(&page[..]);
        frame.dirty = true;
        debug_assert!(
            decode_tree(
                &frame.page,
                read_header(&frame.page).1.kind,
                Bounds::VERIFIED
            )
            .is_ok(),
            "a changed page breaks the format"
        );
        Ok(ptr)
    }

    /// The key as a cell holds it: inline, or its prefix and a new overflow chain.
    fn store_key(&mut self, key: &[u8], lsn: u64) -> Result<Key, PageError> {
        if key.len() <= KEY_INLINE_MAX {
            return Ok(Key::Inline(key.to_vec()));
        }
        Ok(Key::Long {
            len: key.len() as u32,
            prefix: key[..KEY_PREFIX_LEN].to_vec(),
            chain: self.write_chain(key, lsn)?,
        })
    }

    /// The value as a leaf cell holds it next to a key of `key_len` encoded bytes: inline when
    /// the cell stays within [`CELL_MAX`], otherwise in a new overflow chain.
    fn store_value<'v>(
        &mut self,
        value: &'v [u8],
        key_len: usize,
        lsn: u64,
    ) -> Result<ValueRef<'v>, PageError> {
        if SLOT_LEN + 1 + key_len + 2 + value.len() <= CELL_MAX {
            return Ok(ValueRef::Inline(value));
        }
        Ok(ValueRef::Overflow {
            len: value.len() as u32,
            chain: self.write_chain(value, lsn)?,
        })
    }

    /// Writes `bytes` (at least one) to new overflow pages, straight to the file (they are new:
    /// no durable meta page reaches them), and returns the pointer to the first.
    fn write_chain(&mut self, bytes: &[u8], lsn: u64) -> Result<PagePtr, PageError> {
        let ids: Vec<u64> = (0..bytes.len().div_ceil(OVERFLOW_CAPACITY).max(1))
            .map(|_| self.allocate())
            .collect();
        let mut page = Box::new([0; PAGE_SIZE]);
        for (index, data) in bytes.chunks(OVERFLOW_CAPACITY).enumerate() {
            let header = self.header(PageType::Overflow, 0, ids[index], lsn);
            encode_overflow(
                &mut page,
                &header,
                ids.get(index + 1).copied().unwrap_or(0),
                data,
            );
            self.disk.write(ids[index], &mut page)?;
        }
        Ok(PagePtr {
            id: ids[0],
            generation: self.generation,
        })
    }

    fn header(&self, kind: PageType, level: u8, id: u64, lsn: u64) -> Header {
        Header {
            kind,
            database: self.database.0,
            level,
            id,
            generation: self.generation,
            lsn,
        }
    }

    /// A page id to write: one freed by a durable checkpoint, or a new one at the end.
    fn allocate(&mut self) -> u64 {
        self.reusable.pop().unwrap_or_else(|| {
            self.page_count += 1;
            self.page_count - 1
        })
    }

    /// Page `ptr` is no longer reachable from the tree being built: reusable at once if it was
    /// written since the last checkpoint, after the next checkpoint otherwise.
    fn free(&mut self, ptr: PagePtr) {
        self.pool.discard(ptr.id);
        match ptr.generation == self.generation {
            true => self.reusable.push(ptr.id),
            false => self.pending.push(ptr.id),
        }
    }

    /// Where a changed page goes: in place if it was written since the last checkpoint, a new
    /// page otherwise (the old one is freed).
    fn place(&mut self, old: Option<PagePtr>) -> PagePtr {
        match old {
            Some(ptr) if ptr.generation == self.generation => ptr,
            _ => {
                let id = self.allocate();
                if let Some(ptr) = old {
                    self.free(ptr);
                }
                PagePtr {
                    id,
                    generation: self.generation,
                }
            }
        }
    }

    fn store_leaf(
        &mut self,
        old: Option<PagePtr>,
        mut cells: Vec<LeafCell>,
        lsn: u64,
    ) -> Result<Carry, PageError> {
        let sizes: Vec<usize> = cells.iter().map(LeafCell::size).collect();
        if sizes.iter().sum::<usize>() <= LEAF_CAPACITY {
            let ptr = self.place(old);
            self.install_leaf(ptr, &cells, lsn)?;
            return Ok(Carry { ptr, split: None });
        }
        let at = self.split_point(&sizes, LEAF_CAPACITY, false)?;
        let right = cells.split_off(at);
        let separator = self.separator(&cells[at - 1].key, &right[0].key, lsn)?;
        let left_ptr = self.place(old);
        self.install_leaf(left_ptr, &cells, lsn)?;
        let right_ptr = self.place(None);
        self.install_leaf(right_ptr, &right, lsn)?;
        Ok(Carry {
            ptr: left_ptr,
            split: Some((separator, right_ptr)),
        })
    }

    fn store_branch(
        &mut self,
        old: Option<PagePtr>,
        level: u8,
        first: PagePtr,
        mut cells: Vec<BranchCell>,
        lsn: u64,
    ) -> Result<Carry, PageError> {
        let sizes: Vec<usize> = cells.iter().map(BranchCell::size).collect();
        if sizes.iter().sum::<usize>() <= BRANCH_CAPACITY {
            let ptr = self.place(old);
            self.install_branch(ptr, level, first, &cells, lsn)?;
            return Ok(Carry { ptr, split: None });
        }
        // Cell `middle` moves up: its key separates the halves, its child starts the right one.
        let middle = self.split_point(&sizes, BRANCH_CAPACITY, true)?;
        let right = cells.split_off(middle + 1);
        let Some(up) = cells.pop() else {
            return Err(self.bug(old, "a branch split with nothing to move up"));
        };
        let left_ptr = self.place(old);
        self.install_branch(left_ptr, level, first, &cells, lsn)?;
        let right_ptr = self.place(None);
        self.install_branch(right_ptr, level, up.child, &right, lsn)?;
        Ok(Carry {
            ptr: left_ptr,
            split: Some((up.key, right_ptr)),
        })
    }

    /// Where to split cells of `sizes` so that the larger half is smallest: the first cell of
    /// the right half (`up`: the cell that moves up, with at least one on each side of it).
    fn split_point(&self, sizes: &[usize], capacity: usize, up: bool) -> Result<usize, PageError> {
        let total: usize = sizes.iter().sum();
        let mut best: Option<(usize, usize)> = None;
        let mut left = 0;
        for (at, size) in sizes.iter().enumerate() {
            let right = total - left - if up { *size } else { 0 };
            let fits = left <= capacity && right <= capacity;
            let valid = if up {
                at >= 1 && at + 1 < sizes.len()
            } else {
                at >= 1
            };
            if fits && valid && best.is_none_or(|(larger, _)| left.max(right) < larger) {
                best = Some((left.max(right), at));
            }
            left += size;
        }
        best.map(|(_, at)| at)
            .ok_or_else(|| self.bug(None, "no split of a full page fits"))
    }

    /// The shortest separator between the last key of a left half and the first of the right:
    /// the shortest prefix of `right` that is greater than `left`.
    fn separator(&mut self, left: &Key, right: &Key, lsn: u64) -> Result<Key, PageError> {
        let left = self.disk.full_key(left.view(), self.page_count)?;
        let right = self.disk.full_key(right.view(), self.page_count)?;
        let common = left.iter().zip(&right).take_while(|(a, b)| a == b).count();
        let len = (common + 1).min(right.len());
        self.store_key(&right[..len], lsn)
    }

    fn bug(&self, page: Option<PagePtr>, what: &'static str) -> PageError {
        PageError::Inconsistent {
            path: self.disk.path.clone(),
            page: page.map_or(0, |p| p.id),
            what,
        }
    }

    fn install_leaf(
        &mut self,
        ptr: PagePtr,
        cells: &[LeafCell],
        lsn: u64,
    ) -> Result<(), PageError> {
        let header = self.header(PageType::Leaf, 0, ptr.id, lsn);
        let index = self.frame_for(ptr.id)?;
        let frame = &mut self.pool.frames[index];
        frame.dirty = true;
        encode_leaf(&mut frame.page, &header, cells)
            .map_err(|Overfull| self.bug(Some(ptr), "a leaf does not fit in its page"))
    }

    fn install_branch(
        &mut self,
        ptr: PagePtr,
        level: u8,
        first: PagePtr,
        cells: &[BranchCell],
        lsn: u64,
    ) -> Result<(), PageError> {
        let header = self.header(PageType::Branch, level, ptr.id, lsn);
        let index = self.frame_for(ptr.id)?;
        let frame = &mut self.pool.frames[index];
        frame.dirty = true;
        encode_branch(&mut frame.page, &header, first, cells)
            .map_err(|Overfull| self.bug(Some(ptr), "a branch does not fit in its page"))
    }

    /// The frame holding page `id`, or a frame for it.
    fn frame_for(&mut self, id: u64) -> Result<usize, PageError> {
        if let Some(index) = self.pool.lookup(id) {
            return Ok(index);
        }
        let index = self.vacant_frame()?;
        self.pool.occupy(index, id);
        Ok(index)
    }

    /// A frame to fill: a vacant one, a new one while the budget allows, or the clock's victim
    /// (written first if dirty: it has a page id of its own that no durable meta reaches).
    fn vacant_frame(&mut self) -> Result<usize, PageError> {
        if let Some(index) = self.pool.vacant.pop() {
            return Ok(index);
        }
        if self.pool.frames.len() < self.pool.capacity {
            self.pool.frames.push(Frame {
                id: None,
                dirty: false,
                referenced: false,
                page: Box::new([0; PAGE_SIZE]),
            });
            return Ok(self.pool.frames.len() - 1);
        }
        let index = self.pool.victim();
        let frame = &mut self.pool.frames[index];
        if let Some(id) = frame.id {
            if frame.dirty {
                if let Err(error) = self.disk.write(id, &mut frame.page) {
                    self.failed = true;
                    return Err(error);
                }
                self.pool.evicted_dirty += 1;
            }
            self.pool.resident.remove(&id);
            let frame = &mut self.pool.frames[index];
            frame.id = None;
            frame.dirty = false;
        }
        Ok(index)
    }

    /// The frame of tree page `ptr` at `level`, read from the file and verified if it is not
    /// in the pool.
    fn fetch(&mut self, ptr: PagePtr, level: u8) -> Result<usize, PageError> {
        let expect = Expect {
            id: ptr.id,
            kind: if level == 0 {
                PageType::Leaf
            } else {
                PageType::Branch
            },
            level,
            generation: Some(ptr.generation),
            database: self.database.0,
            page_count: self.page_count,
        };
        if let Some(index) = self.pool.lookup(ptr.id) {
            self.pool.hits += 1;
            check_fields(&self.pool.frames[index].page, &expect)
                .map_err(|problem| self.disk.damaged(ptr.id, problem))?;
            return Ok(index);
        }
        self.pool.misses += 1;
        let index = self.vacant_frame()?;
        match self
            .disk
            .read_verified_tree(&mut self.pool.frames[index].page, &expect)
        {
            Ok(_) => {
                self.pool.occupy(index, ptr.id);
                Ok(index)
            }
            Err(error) => {
                self.pool.vacant.push(index);
                Err(error)
            }
        }
    }

    /// Makes everything put so far durable, labelled `lsn` (which must not be before the last
    /// checkpoint nor before any write put).
    ///
    /// Writes the dirty pages still in the pool and the new free list (at ids no durable meta
    /// page reaches), fsyncs, writes the meta page that does not hold the last checkpoint
    /// (sequence + 1), fsyncs. Only then are the pages freed since the last checkpoint
    /// reusable. An error leaves the file [`PageError::Failed`] and the last checkpoint intact.
    pub fn checkpoint(&mut self, lsn: Lsn) -> Result<(), PageError> {
        self.check_usable()?;
        let floor = self.checkpoint_lsn.max(self.last_put_lsn);
        if lsn < floor {
            return Err(PageError::LsnBehind {
                path: self.disk.path.clone(),
                lsn,
                floor,
            });
        }
        let result = self.write_checkpoint(lsn);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn write_checkpoint(&mut self, lsn: Lsn) -> Result<(), PageError> {
        let mut dirty: Vec<(u64, usize)> = (self.pool.frames.iter().enumerate())
            .filter_map(|(index, frame)| Some((frame.id?, index)).filter(|_| frame.dirty))
            .collect();
        dirty.sort_unstable();
        for (id, index) in dirty {
            let frame = &mut self.pool.frames[index];
            self.disk.write(id, &mut frame.page)?;
            frame.dirty = false;
        }

        // The free list of the new checkpoint: the pages free now, and those the last
        // checkpoint reaches and the new one does not (its own free list among them). Its pages
        // come from the reusable ones first.
        self.pending.append(&mut self.free_chain);
        let mut chain = Vec::new();
        while chain.len() < (self.reusable.len() + self.pending.len()).div_ceil(FREE_IDS_PER_PAGE) {
            chain.push(self.allocate());
        }
        let mut free: Vec<u64> = self.reusable.iter().chain(&self.pending).copied().collect();
        free.sort_unstable_by(|a, b| b.cmp(a));
        let mut page = Box::new([0; PAGE_SIZE]);
        let mut pieces = free.chunks(FREE_IDS_PER_PAGE);
        for (index, id) in chain.iter().enumerate() {
            let header = self.header(PageType::FreeList, 0, *id, lsn.0);
            let next = chain.get(index + 1).copied().unwrap_or(0);
            encode_free_list(&mut page, &header, next, pieces.next().unwrap_or(&[]));
            self.disk.write(*id, &mut page)?;
        }
        // Pages allocated and never written (freed at once) must exist for the next open.
        let needed = self.page_count * PAGE_SIZE as u64;
        if self.disk.file_len < needed {
            self.disk
                .file
                .set_len(needed)
                .map_err(self.disk.io("extend"))?;
            self.disk.file_len = needed;
        }
        self.disk.sync()?;

        let slot = self.generation % 2;
        let header = Header {
            kind: PageType::Meta,
            database: self.database.0,
            level: 0,
            id: slot,
            generation: self.generation,
            lsn: lsn.0,
        };
        let meta = MetaBody {
            height: self.height,
            page_count: self.page_count,
            root: self.root,
            free_head: chain.first().copied().unwrap_or(0),
            free_count: free.len() as u64,
            entries: self.entries,
        };
        encode_meta(&mut page, &header, &meta);
        self.disk.write(slot, &mut page)?;
        self.disk.sync()?;

        self.sequence = self.generation;
        self.generation += 1;
        self.checkpoint_lsn = lsn;
        self.last_put_lsn = lsn;
        self.reusable = free;
        self.pending.clear();
        self.free_chain = chain;
        Ok(())
    }

    /// Reads the whole file as the tree reaches it, checking what single reads cannot: every key
    /// in order and between the separators above it, every page reached once, no page both
    /// reached and free, none neither (leaked), and the entry count. Calls `visit` with every
    /// key and value, in key order. Stops at the first problem.
    ///
    /// Memory: the decoded branches of one path (at most [`MAX_HEIGHT`]), one key and one value,
    /// and one byte per page.
    pub fn check(&mut self, mut visit: impl FnMut(&str, &str)) -> Result<CheckReport, PageError> {
        self.check_usable()?;
        let page_count = self.page_count;
        let path = self.disk.path.clone();
        let inconsistent = |page: u64, what: &'static str| PageError::Inconsistent {
            path: path.clone(),
            page,
            what,
        };
        let mut seen = Seen(vec![false; page_count as usize]);
        let mut report = CheckReport::default();
        for id in [0, 1].iter().chain(&self.reusable).chain(&self.pending) {
            if !seen.mark(*id) {
                return Err(inconsistent(*id, "a free page is listed twice"));
            }
        }
        report.free_pages = (self.reusable.len() + self.pending.len()) as u64;
        let mut page = Box::new([0; PAGE_SIZE]);
        for (index, id) in self.free_chain.iter().enumerate() {
            if !seen.mark(*id) {
                return Err(inconsistent(
                    *id,
                    "a page of the free list is also free or listed twice",
                ));
            }
            let expect = Expect {
                id: *id,
                kind: PageType::FreeList,
                level: 0,
                generation: Some(self.sequence),
                database: self.database.0,
                page_count,
            };
            let read = self.disk.read_verified(&mut page, &expect)?;
            let next = self.free_chain.get(index + 1).copied().unwrap_or(0);
            if !matches!(read.body, Body::FreeList { next: after, .. } if after == next) {
                return Err(inconsistent(*id, "the free list changed on disk"));
            }
            report.free_list_pages += 1;
        }
        // Marks the pages of an overflow chain, and returns its bytes.
        let chain = |disk: &Disk, seen: &mut Seen, report: &mut CheckReport, first, len| {
            let mut ids = Vec::new();
            let mut bytes = Vec::with_capacity(len as usize);
            disk.walk_chain(first, len, page_count, |id, data| {
                ids.push(id);
                bytes.extend_from_slice(data);
            })?;
            for id in ids {
                if !seen.mark(id) {
                    return Err(inconsistent(
                        id,
                        "an overflow page is reached twice or is also free",
                    ));
                }
                report.overflow_pages += 1;
            }
            Ok(bytes)
        };

        // Depth first, in key order: the branches of the current path, each with the next child
        // to visit and the bounds of its keys (the separators around it in the branch above).
        struct Visit {
            level: u8,
            first: PagePtr,
            cells: Vec<BranchCell>,
            next: usize,
            low: Option<Key>,
            high: Option<Key>,
        }
        let mut stack: Vec<Visit> = Vec::new();
        let mut previous: Option<Vec<u8>> = None;
        let mut todo: Option<(PagePtr, u8, Option<Key>, Option<Key>)> = self
            .root
            .map(|root| (root, self.height.saturating_sub(1), None, None));
        while let Some((ptr, level, low, high)) = todo.take() {
            if !seen.mark(ptr.id) {
                return Err(inconsistent(
                    ptr.id,
                    "a tree page is reached twice or is also free",
                ));
            }
            report.tree_pages += 1;
            let index = self.fetch(ptr, level)?;
            let frame = &self.pool.frames[index].page;
            let body = decode_tree(frame, read_header(frame).1.kind, Bounds::VERIFIED)
                .map_err(|problem| self.disk.damaged(ptr.id, problem))?;
            match body {
                Body::Leaf(cells) => {
                    for cell in cells {
                        let key = match cell.key {
                            Key::Inline(bytes) => bytes,
                            Key::Long {
                                len,
                                chain: first,
                                prefix,
                            } => {
                                let key = chain(&self.disk, &mut seen, &mut report, first, len)?;
                                self.disk.check_prefix(&prefix, first, &key)?;
                                key
                            }
                        };
                        let in_order = previous.as_ref().is_none_or(|before| *before < key);
                        let above_low = match &low {
                            Some(low) => {
                                self.disk.compare(&key, low.view(), page_count)? != Ordering::Less
                            }
                            None => true,
                        };
                        let below_high = match &high {
                            Some(high) => {
                                self.disk.compare(&key, high.view(), page_count)? == Ordering::Less
                            }
                            None => true,
                        };
                        if !(in_order && above_low && below_high) {
                            return Err(inconsistent(
                                ptr.id,
                                "a key is out of order or outside its separators",
                            ));
                        }
                        let value = match cell.value {
                            Value::Inline(bytes) => bytes,
                            Value::Overflow { len, chain: first } => {
                                chain(&self.disk, &mut seen, &mut report, first, len)?
                            }
                        };
                        let (Ok(key_text), Ok(value_text)) =
                            (std::str::from_utf8(&key), std::str::from_utf8(&value))
                        else {
                            return Err(self
                                .disk
                                .damaged(ptr.id, malformed(0, "a key or value is not UTF-8")));
                        };
                        visit(key_text, value_text);
                        report.entries += 1;
                        previous = Some(key);
                    }
                }
                Body::Branch { first, cells } => {
                    // Separators strictly increase (the page alone cannot tell for long keys
                    // with the same prefix), or the descent would go astray.
                    let mut before: Option<Vec<u8>> = None;
                    for cell in &cells {
                        let separator = self.disk.full_key(cell.key.view(), page_count)?;
                        if before.as_ref().is_some_and(|before| *before >= separator) {
                            return Err(inconsistent(ptr.id, "separators are out of order"));
                        }
                        before = Some(separator);
                    }
                    for cell in &cells {
                        if let Key::Long {
                            len,
                            chain: first,
                            prefix,
                        } = &cell.key
                        {
                            let key = chain(&self.disk, &mut seen, &mut report, *first, *len)?;
                            self.disk.check_prefix(prefix, *first, &key)?;
                        }
                    }
                    stack.push(Visit {
                        level,
                        first,
                        cells,
                        next: 0,
                        low,
                        high,
                    });
                }
                _ => {
                    return Err(self
                        .disk
                        .damaged(ptr.id, malformed(TYPE_AT, "not a tree page")))
                }
            }
            // The next child to visit: of the deepest branch with children left.
            while let Some(top) = stack.last_mut() {
                let index = top.next;
                if index > top.cells.len() {
                    stack.pop();
                    continue;
                }
                top.next += 1;
                let child = match index {
                    0 => top.first,
                    _ => top.cells[index - 1].child,
                };
                let low = match index {
                    0 => top.low.clone(),
                    _ => Some(top.cells[index - 1].key.clone()),
                };
                let high = match top.cells.get(index) {
                    Some(cell) => Some(cell.key.clone()),
                    None => top.high.clone(),
                };
                todo = Some((child, top.level.saturating_sub(1), low, high));
                break;
            }
        }
        if report.entries != self.entries {
            return Err(inconsistent(
                0,
                "the number of entries differs from the meta page's",
            ));
        }
        if let Some(leaked) = seen.0.iter().position(|bit| !bit) {
            return Err(inconsistent(
                leaked as u64,
                "a page is neither reachable nor free (leaked)",
            ));
        }
        Ok(report)
    }
}

/// One mark per page of the file.
struct Seen(Vec<bool>);

impl Seen {
    /// Marks page `id`; false if it was marked already or is outside the file.
    fn mark(&mut self, id: u64) -> bool {
        match self.0.get_mut(id as usize) {
            Some(bit) if !*bit => {
                *bit = true;
                true
            }
            _ => false,
        }
    }
}

fn check_budget(options: DataFileOptions) -> Result<(), PageError> {
    if options.pool_budget_bytes < PAGE_SIZE as u64 {
        return Err(PageError::BudgetTooSmall {
            budget_bytes: options.pool_budget_bytes,
        });
    }
    Ok(())
}

/// Reads both meta pages and returns the valid one with the higher sequence.
fn read_metas(disk: &Disk) -> Result<(Header, MetaBody), PageError> {
    let mut page = Box::new([0; PAGE_SIZE]);
    let mut magic = false;
    let mut read = |slot: u64| -> Result<Result<(Header, MetaBody), PageProblem>, PageError> {
        disk.read(slot, &mut page)?;
        magic |= page[MAGIC_AT..MAGIC_AT + 8] == DATA_MAGIC;
        let expect = Expect {
            id: slot,
            kind: PageType::Meta,
            level: 0,
            generation: None,
            database: disk.database.0,
            page_count: u64::MAX,
        };
        let result = verify(&page, &expect).and_then(|read| match read.body {
            Body::Meta(meta) => Ok((read.header, meta)),
            _ => Err(malformed(TYPE_AT, "not a meta page")),
        });
        if let Err(PageProblem::WrongDatabase { found }) = result {
            return Err(PageError::WrongDatabase {
                path: disk.path.clone(),
                expected: disk.database,
                found,
            });
        }
        Ok(result)
    };
    let first = read(0)?;
    let second = read(1)?;
    match (first, second) {
        (Ok(a), Ok(b)) => Ok(if a.0.generation >= b.0.generation {
            a
        } else {
            b
        }),
        (Ok(valid), Err(problem)) | (Err(problem), Ok(valid)) => {
            tracing::warn!(
                path = %disk.path.display(),
                sequence = valid.0.generation,
                checkpoint_lsn = valid.0.lsn,
                %problem,
                "one meta page of the data file is not valid (a checkpoint interrupted by a crash, or damage): opening at the other"
            );
            Ok(valid)
        }
        (Err(first), Err(second)) if !magic => Err(PageError::NotADataFile {
            path: disk.path.clone(),
            reason: format!(
                "neither meta page holds a valid checkpoint nor the magic: {first}; {second}"
            ),
        }),
        (Err(first), Err(second)) => Err(PageError::NoCheckpoint {
            path: disk.path.clone(),
            first,
            second,
        }),
    }
}

/// Reads the free list of a checkpoint: the pages of the list, and the free page ids. Each page
/// is verified; ids are checked to be inside the file and listed once.
fn read_free_list(
    disk: &Disk,
    meta: &MetaBody,
    sequence: u64,
) -> Result<(Vec<u64>, Vec<u64>), PageError> {
    let mut seen = Seen(vec![false; meta.page_count as usize]);
    let mut chain = Vec::new();
    let mut free = Vec::new();
    let mut next = meta.free_head;
    let mut page = Box::new([0; PAGE_SIZE]);
    while next != 0 {
        let id = next;
        if !seen.mark(id) {
            return Err(disk.damaged(
                id,
                malformed(ID_AT, "the free list reaches this page twice"),
            ));
        }
        let expect = Expect {
            id,
            kind: PageType::FreeList,
            level: 0,
            generation: Some(sequence),
            database: disk.database.0,
            page_count: meta.page_count,
        };
        let Body::FreeList { next: after, ids } = disk.read_verified(&mut page, &expect)?.body
        else {
            return Err(disk.damaged(id, malformed(TYPE_AT, "not a free-list page")));
        };
        for (index, free_id) in ids.into_iter().enumerate() {
            if !seen.mark(free_id) {
                let at = CHAIN_DATA_AT + 8 * index;
                return Err(disk.damaged(
                    id,
                    malformed(at, "a page is listed free twice, or is a page of the list"),
                ));
            }
            free.push(free_id);
        }
        chain.push(id);
        next = after;
    }
    if free.len() as u64 != meta.free_count {
        let last = chain.last().copied().unwrap_or(0);
        return Err(disk.damaged(
            last,
            malformed(
                CHAIN_COUNT_AT,
                "the free list holds another number of pages than its meta page says",
            ),
        ));
    }
    Ok((chain, free))
}

/// `path` with `suffix` after its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Makes a new directory entry for `path` durable.
fn sync_directory(path: &Path) -> Result<(), PageError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(directory, "sync the directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: PageType, level: u8, id: u64) -> Header {
        Header {
            kind,
            database: 4,
            level,
            id,
            generation: 9,
            lsn: 1234,
        }
    }

    fn ptr(id: u64) -> PagePtr {
        PagePtr { id, generation: 3 }
    }

    fn long_key(byte: u8) -> Key {
        Key::Long {
            len: 5000,
            prefix: vec![byte; KEY_PREFIX_LEN],
            chain: ptr(77),
        }
    }

    #[test]
    fn every_page_type_decodes_to_what_was_encoded() {
        let pages = [
            Page {
                header: header(PageType::Meta, 0, 1),
                body: Body::Meta(MetaBody {
                    height: 2,
                    page_count: 100,
                    root: Some(ptr(5)),
                    free_head: 6,
                    free_count: 3,
                    entries: 55,
                }),
            },
            Page {
                header: header(PageType::Leaf, 0, 10),
                body: Body::Leaf(vec![
                    LeafCell {
                        key: Key::Inline(Vec::new()),
                        value: Value::Inline(b"empty key".to_vec()),
                    },
                    LeafCell {
                        key: Key::Inline(b"a".to_vec()),
                        value: Value::Overflow {
                            len: 100_000,
                            chain: ptr(11),
                        },
                    },
                    LeafCell {
                        key: long_key(b'b'),
                        value: Value::Inline(Vec::new()),
                    },
                ]),
            },
            Page {
                header: header(PageType::Branch, 3, 12),
                body: Body::Branch {
                    first: ptr(13),
                    cells: vec![
                        BranchCell {
                            key: Key::Inline(b"m".to_vec()),
                            child: ptr(14),
                        },
                        BranchCell {
                            key: long_key(b'n'),
                            child: ptr(15),
                        },
                    ],
                },
            },
            Page {
                header: header(PageType::Overflow, 0, 16),
                body: Body::Overflow {
                    next: 17,
                    data: vec![0xAB; OVERFLOW_CAPACITY],
                },
            },
            Page {
                header: header(PageType::FreeList, 0, 18),
                body: Body::FreeList {
                    next: 0,
                    ids: (2..2 + FREE_IDS_PER_PAGE as u64).collect(),
                },
            },
        ];
        for page in pages {
            let bytes = encode_page(&page);
            assert!(checksum_matches(&bytes[..]));
            assert_eq!(decode_page(&bytes[..]), Ok(page));
        }
    }

    #[test]
    fn what_cells_show_of_two_keys_never_contradicts_their_order() {
        let keys: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            vec![b'a'; KEY_PREFIX_LEN],
            vec![b'a'; KEY_PREFIX_LEN + 1],
            vec![b'a'; KEY_INLINE_MAX],
            vec![b'a'; KEY_INLINE_MAX + 1],
            [vec![b'a'; KEY_INLINE_MAX + 1], b"b".to_vec()].concat(),
            vec![b'b'; KEY_INLINE_MAX + 5],
            b"b".to_vec(),
        ];
        // As a cell shows them: whole, or a long key's prefix.
        let shown = |key: &Vec<u8>| match key.len() > KEY_INLINE_MAX {
            true => (key[..KEY_PREFIX_LEN].to_vec(), false),
            false => (key.clone(), true),
        };
        for a in &keys {
            for b in &keys {
                let (sa, sb) = (shown(a), shown(b));
                if let Some(order) = known_order((&sa.0, sa.1), (&sb.0, sb.1)) {
                    assert_eq!(order, a.cmp(b), "{} vs {}", a.len(), b.len());
                }
                // A search key is whole.
                if let Some(order) = known_order((a, true), (&sb.0, sb.1)) {
                    assert_eq!(order, a.cmp(b), "search {} vs {}", a.len(), b.len());
                }
            }
        }
    }

    #[test]
    fn a_sealed_page_with_a_cell_past_its_end_is_malformed() {
        let page = Page {
            header: header(PageType::Leaf, 0, 10),
            body: Body::Leaf(vec![LeafCell {
                key: Key::Inline(b"k".to_vec()),
                value: Value::Inline(b"v".to_vec()),
            }]),
        };
        let mut bytes = encode_page(&page);
        // The slot now points at the last byte: the cell cannot fit.
        put_u16(&mut bytes, LEAF_SLOTS_AT, (PAGE_SIZE - 1) as u16);
        seal(&mut bytes);
        assert!(matches!(
            decode_page(&bytes[..]),
            Err(PageProblem::Malformed { .. })
        ));
        // Unsealed, the checksum speaks first.
        bytes[0] ^= 1;
        assert!(matches!(
            decode_page(&bytes[..]),
            Err(PageProblem::Checksum { .. })
        ));
    }
}
