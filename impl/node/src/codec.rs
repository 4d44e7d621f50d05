//! The binary encoding shared by peer frames ([`crate::wire`]) and WAL records ([`crate::wal`]):
//! hand-written, little-endian, fixed-size integers, `u32`-length-prefixed strings and lists,
//! one-byte tags for enums. `docs/wire.md` specifies it field by field.
//!
//! The encoding is canonical: every value has exactly one encoding, and [`Reader`] refuses
//! anything else (a `bool` byte other than 0 or 1, an unknown tag, trailing bytes), so
//! "decodes, then re-encodes to the same bytes" holds for every accepted input. Decoding never
//! panics and never allocates more than the input can justify: a list's declared length is
//! checked against the bytes that remain before any memory is reserved for it.

use hadr_core::{
    DatabaseHello, Epoch, FailoverRefusal, ForkSegment, Hello, LogBlock, LogRecord, MessageBody,
    PeerMessage, Write,
};
use hadr_types::{DatabaseId, Lsn, ReplicaId, Role, SuspendReason, SyncState, TxnId};

/// The largest length a string or a list may declare (bytes for a string, elements for a
/// list). Frames and WAL records are smaller than this anyway; the bound makes an absurd length
/// an error of its own instead of a "truncated input".
pub const MAX_LENGTH: u32 = 16 * 1024 * 1024;

/// Encoded size of an [`Epoch`]: term u64, replica u8, generation u32.
pub const EPOCH_LEN: usize = 8 + 1 + 4;

/// Smallest encoded size of a [`Write`]: two empty strings (a write takes this plus its key
/// and value).
pub const MIN_WRITE_LEN: usize = 4 + 4;
/// Smallest encoded size of a [`LogRecord`]: no writes (a record takes this plus its writes).
pub const MIN_LOG_RECORD_LEN: usize = 8 + EPOCH_LEN + 4 + 4;
/// Encoded size of a [`PeerMessage`] carrying a [`LogBlock`], records aside: the epoch, the
/// body's tag, the database, the first LSN, the stable LSN and the record count.
pub const LOG_MESSAGE_HEADER_LEN: usize = EPOCH_LEN + 1 + 1 + 8 + 8 + 4;
/// Encoded size of a [`ForkSegment`].
const FORK_SEGMENT_LEN: usize = EPOCH_LEN + 8;
/// Smallest encoded size of a [`DatabaseHello`]: no forks, not suspended.
const MIN_DATABASE_HELLO_LEN: usize = 1 + 8 + 8 + 8 + 4 + EPOCH_LEN + 1 + 1;

/// Why a byte string is not the encoding of the value expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends in the middle of a value.
    #[error(
        "input ends early: {what} at byte {offset} needs {needed} bytes but only {remaining} remain"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts in the input.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
        /// How many bytes the input has left from `offset`.
        remaining: usize,
    },
    /// A string is not valid UTF-8.
    #[error("the string at byte {offset} is not valid UTF-8 (invalid after {valid_up_to} bytes)")]
    InvalidUtf8 {
        /// Where the string's bytes start in the input.
        offset: usize,
        /// How many of its bytes are valid UTF-8.
        valid_up_to: usize,
    },
    /// An enum tag (or a `bool`, or an `Option` presence byte) that no value of the type has.
    #[error("unknown {type_name} tag {tag} at byte {offset}")]
    UnknownTag {
        /// The type being decoded.
        type_name: &'static str,
        /// The tag found.
        tag: u8,
        /// Where it is in the input.
        offset: usize,
    },
    /// A string or list declares a length above [`MAX_LENGTH`].
    #[error("{what} at byte {offset} declares length {length}, over the limit of {limit}")]
    LengthOverLimit {
        /// What was being read.
        what: &'static str,
        /// Where its length is in the input.
        offset: usize,
        /// The length declared.
        length: u32,
        /// The limit.
        limit: u32,
    },
    /// The value ends before the input does.
    #[error("{count} unexpected bytes after the end of the value, at byte {offset}")]
    TrailingBytes {
        /// Where the value ended.
        offset: usize,
        /// How many bytes follow it.
        count: usize,
    },
}

/// Appends encodings to a byte vector.
///
/// Writing never fails. A string or list longer than [`MAX_LENGTH`] is written with its true
/// length clamped to `u32`, which no reader accepts: callers bound the total size of what they
/// encode ([`crate::wire::MAX_FRAME_BODY`], [`crate::wal::MAX_RECORD_LEN`]) and refuse to send
/// or store anything larger.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    /// One byte.
    pub fn put_u8(&mut self, value: u8) {
        self.out.push(value);
    }

    /// Two bytes, little-endian.
    pub fn put_u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// Four bytes, little-endian.
    pub fn put_u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// Eight bytes, little-endian.
    pub fn put_u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// One byte: 0 for false, 1 for true.
    pub fn put_bool(&mut self, value: bool) {
        self.put_u8(u8::from(value));
    }

    /// A `u32` length (clamped, see [`Writer`]).
    fn put_len(&mut self, len: usize) {
        self.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    }

    /// A string: its length in bytes as `u32`, then its UTF-8 bytes.
    pub fn put_str(&mut self, value: &str) {
        self.put_len(value.len());
        self.out.extend_from_slice(value.as_bytes());
    }

    /// A list: its number of elements as `u32`, then each element.
    pub fn put_list<T>(&mut self, items: &[T], mut put: impl FnMut(&mut Self, &T)) {
        self.put_len(items.len());
        for item in items {
            put(self, item);
        }
    }

    /// An optional value: byte 0 when absent; byte 1, then the value, when present.
    pub fn put_option<T>(&mut self, value: Option<&T>, put: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.put_u8(0),
            Some(value) => {
                self.put_u8(1);
                put(self, value);
            }
        }
    }

    /// A replica id: one byte.
    pub fn put_replica_id(&mut self, id: ReplicaId) {
        self.put_u8(id.0);
    }

    /// A database id: one byte.
    pub fn put_database_id(&mut self, id: DatabaseId) {
        self.put_u8(id.0);
    }

    /// A transaction id: `u32`.
    pub fn put_txn_id(&mut self, id: TxnId) {
        self.put_u32(id.0);
    }

    /// An LSN: `u64`.
    pub fn put_lsn(&mut self, lsn: Lsn) {
        self.put_u64(lsn.0);
    }

    /// An epoch: term `u64`, replica `u8`, generation `u32` ([`EPOCH_LEN`] bytes).
    pub fn put_epoch(&mut self, epoch: &Epoch) {
        self.put_u64(epoch.term);
        self.put_replica_id(epoch.replica);
        self.put_u32(epoch.generation);
    }

    /// A role: tag 0 PRIMARY, 1 SECONDARY, 2 RESOLVING.
    pub fn put_role(&mut self, role: Role) {
        self.put_u8(match role {
            Role::Primary => 0,
            Role::Secondary => 1,
            Role::Resolving => 2,
        });
    }

    /// A synchronization state: tag 0 NOT_SYNCHRONIZING, 1 SYNCHRONIZING, 2 SYNCHRONIZED,
    /// 3 REVERTING, 4 INITIALIZING.
    pub fn put_sync_state(&mut self, state: SyncState) {
        self.put_u8(match state {
            SyncState::NotSynchronizing => 0,
            SyncState::Synchronizing => 1,
            SyncState::Synchronized => 2,
            SyncState::Reverting => 3,
            SyncState::Initializing => 4,
        });
    }

    /// A suspend reason: tag 0 SUSPEND_FROM_USER, 1 SUSPEND_FROM_PRIMARY,
    /// 2 SUSPEND_FROM_PARTNER, 3 SUSPEND_FROM_REDO.
    pub fn put_suspend_reason(&mut self, reason: SuspendReason) {
        self.put_u8(match reason {
            SuspendReason::User => 0,
            SuspendReason::Primary => 1,
            SuspendReason::Partner => 2,
            SuspendReason::Redo => 3,
        });
    }

    /// One write of a transaction: key, then value.
    pub fn put_write(&mut self, write: &Write) {
        self.put_str(&write.key);
        self.put_str(&write.value);
    }

    /// A log record: LSN, epoch, transaction id, list of writes.
    pub fn put_log_record(&mut self, record: &LogRecord) {
        self.put_lsn(record.lsn);
        self.put_epoch(&record.epoch);
        self.put_txn_id(record.txn);
        self.put_list(&record.writes, Self::put_write);
    }

    /// A fork segment: epoch, first LSN.
    pub fn put_fork_segment(&mut self, segment: &ForkSegment) {
        self.put_epoch(&segment.epoch);
        self.put_lsn(segment.first_lsn);
    }

    /// What a replica says about one database in a handshake.
    pub fn put_database_hello(&mut self, hello: &DatabaseHello) {
        self.put_database_id(hello.database);
        self.put_lsn(hello.end_of_log);
        self.put_lsn(hello.hardened);
        self.put_lsn(hello.redone);
        self.put_list(&hello.forks, Self::put_fork_segment);
        self.put_epoch(&hello.accepted_epoch);
        self.put_option(hello.suspended.as_ref(), |w, r| w.put_suspend_reason(*r));
        self.put_bool(hello.reverting);
    }

    /// The handshake.
    pub fn put_hello(&mut self, hello: &Hello) {
        self.put_str(&hello.ag_name);
        self.put_replica_id(hello.replica);
        self.put_str(&hello.replica_name);
        self.put_role(hello.role);
        self.put_epoch(&hello.last_forced_epoch);
        self.put_u32(hello.required_synchronized);
        self.put_list(&hello.databases, Self::put_database_hello);
    }

    /// A block of log: database, first LSN, stable LSN, list of records.
    pub fn put_log_block(&mut self, block: &LogBlock) {
        self.put_database_id(block.database);
        self.put_lsn(block.first_lsn);
        self.put_lsn(block.stable);
        self.put_list(&block.records, Self::put_log_record);
    }

    /// Why a planned failover was refused: a tag, then the variant's fields.
    pub fn put_failover_refusal(&mut self, refusal: &FailoverRefusal) {
        match refusal {
            FailoverRefusal::NotPrimary => self.put_u8(0),
            FailoverRefusal::NotSynchronousCommit { replica } => {
                self.put_u8(1);
                self.put_replica_id(*replica);
            }
            FailoverRefusal::NotSynchronized { database, state } => {
                self.put_u8(2);
                self.put_database_id(*database);
                self.put_sync_state(*state);
            }
            FailoverRefusal::FailoverInProgress => self.put_u8(3),
        }
    }

    /// A message body: a tag (its position in [`MessageBody`], from 0), then the variant's
    /// fields in declaration order.
    pub fn put_message_body(&mut self, body: &MessageBody) {
        match body {
            MessageBody::Hello(hello) => {
                self.put_u8(0);
                self.put_hello(hello);
            }
            MessageBody::Rejoin(hello) => {
                self.put_u8(1);
                self.put_database_hello(hello);
            }
            MessageBody::Ping => self.put_u8(2),
            MessageBody::Log(block) => {
                self.put_u8(3);
                self.put_log_block(block);
            }
            MessageBody::GapRefused { database, expected } => {
                self.put_u8(4);
                self.put_database_id(*database);
                self.put_lsn(*expected);
            }
            MessageBody::Progress {
                database,
                received,
                hardened,
                redone,
            } => {
                self.put_u8(5);
                self.put_database_id(*database);
                self.put_lsn(*received);
                self.put_lsn(*hardened);
                self.put_lsn(*redone);
            }
            MessageBody::SyncState { database, state } => {
                self.put_u8(6);
                self.put_database_id(*database);
                self.put_sync_state(*state);
            }
            MessageBody::Suspend { database, reason } => {
                self.put_u8(7);
                self.put_database_id(*database);
                self.put_suspend_reason(*reason);
            }
            MessageBody::Suspended { database } => {
                self.put_u8(8);
                self.put_database_id(*database);
            }
            MessageBody::ResumeFromPrimary { database } => {
                self.put_u8(9);
                self.put_database_id(*database);
            }
            MessageBody::Revert { database, to } => {
                self.put_u8(10);
                self.put_database_id(*database);
                self.put_lsn(*to);
            }
            MessageBody::Reverted {
                database,
                end,
                hardened,
                redone,
            } => {
                self.put_u8(11);
                self.put_database_id(*database);
                self.put_lsn(*end);
                self.put_lsn(*hardened);
                self.put_lsn(*redone);
            }
            MessageBody::FailoverRequest => self.put_u8(12),
            MessageBody::FailoverRefused { reason } => {
                self.put_u8(13);
                self.put_failover_refusal(reason);
            }
            MessageBody::FailoverGranted { ends } => {
                self.put_u8(14);
                self.put_list(ends, |w, lsn| w.put_lsn(*lsn));
            }
            MessageBody::SetRequiredSynchronized { required } => {
                self.put_u8(15);
                self.put_u32(*required);
            }
        }
    }

    /// A peer message: the sender's epoch, then the body.
    pub fn put_peer_message(&mut self, message: &PeerMessage) {
        self.put_epoch(&message.epoch);
        self.put_message_body(&message.body);
    }
}

/// Reads encodings from a byte slice, front to back.
///
/// Every getter either consumes exactly the bytes of one value and returns it, or returns a
/// [`DecodeError`] (the reader's position is then unspecified; stop reading).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Succeeds if every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }

    /// Decodes `buf` as exactly one value with `get` (e.g. [`Reader::get_log_record`]):
    /// trailing bytes are an error.
    pub fn decode_exact<T>(
        buf: &'a [u8],
        get: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let mut reader = Reader::new(buf);
        let value = get(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }

    fn take(&mut self, needed: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if needed > remaining {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed,
                remaining,
            });
        }
        let bytes = &self.buf[self.pos..self.pos + needed];
        self.pos += needed;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8_of(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32_of(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64_of(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a one-byte tag and maps it with `known`; an unmapped tag is
    /// [`DecodeError::UnknownTag`] naming `type_name`.
    fn tag<T>(
        &mut self,
        type_name: &'static str,
        known: impl FnOnce(u8) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let offset = self.pos;
        let tag = self.u8_of(type_name)?;
        known(tag).ok_or(DecodeError::UnknownTag {
            type_name,
            tag,
            offset,
        })
    }

    /// Reads a `u32` length and checks it against [`MAX_LENGTH`].
    fn len_of(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let length = self.u32_of(what)?;
        if length > MAX_LENGTH {
            return Err(DecodeError::LengthOverLimit {
                what,
                offset,
                length,
                limit: MAX_LENGTH,
            });
        }
        // MAX_LENGTH fits in any usize of 32 bits or more.
        Ok(length as usize)
    }

    /// One byte.
    pub fn get_u8(&mut self) -> Result<u8, DecodeError> {
        self.u8_of("u8")
    }

    /// Two bytes, little-endian.
    pub fn get_u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array("u16")?))
    }

    /// Four bytes, little-endian.
    pub fn get_u32(&mut self) -> Result<u32, DecodeError> {
        self.u32_of("u32")
    }

    /// Eight bytes, little-endian.
    pub fn get_u64(&mut self) -> Result<u64, DecodeError> {
        self.u64_of("u64")
    }

    /// One byte, 0 or 1.
    pub fn get_bool(&mut self) -> Result<bool, DecodeError> {
        self.tag("bool", |tag| match tag {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        })
    }

    /// A `u32` byte length, then that many bytes of UTF-8.
    pub fn get_str(&mut self) -> Result<String, DecodeError> {
        let len = self.len_of("string")?;
        let offset = self.pos;
        let bytes = self.take(len, "string")?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(error) => Err(DecodeError::InvalidUtf8 {
                offset,
                valid_up_to: error.valid_up_to(),
            }),
        }
    }

    /// A `u32` element count, then the elements, each read with `get`.
    ///
    /// `min_len` is the smallest encoded size of one element: the count is refused as
    /// [`DecodeError::Truncated`] when `count * min_len` exceeds the bytes that remain, before
    /// anything is allocated.
    pub fn get_list<T>(
        &mut self,
        what: &'static str,
        min_len: usize,
        mut get: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.len_of(what)?;
        let needed = count.saturating_mul(min_len.max(1));
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed,
                remaining: self.remaining(),
            });
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(get(self)?);
        }
        Ok(items)
    }

    /// A presence byte (0 absent, 1 present), then the value if present.
    pub fn get_option<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.tag("Option", |tag| match tag {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        })? {
            get(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A replica id.
    pub fn get_replica_id(&mut self) -> Result<ReplicaId, DecodeError> {
        self.u8_of("ReplicaId").map(ReplicaId)
    }

    /// A database id.
    pub fn get_database_id(&mut self) -> Result<DatabaseId, DecodeError> {
        self.u8_of("DatabaseId").map(DatabaseId)
    }

    /// A transaction id.
    pub fn get_txn_id(&mut self) -> Result<TxnId, DecodeError> {
        self.u32_of("TxnId").map(TxnId)
    }

    /// An LSN.
    pub fn get_lsn(&mut self) -> Result<Lsn, DecodeError> {
        self.u64_of("Lsn").map(Lsn)
    }

    /// An epoch. Its term is not range-checked here (see [`PeerMessage::epochs_in_range`]).
    pub fn get_epoch(&mut self) -> Result<Epoch, DecodeError> {
        Ok(Epoch {
            term: self.u64_of("Epoch.term")?,
            replica: self.get_replica_id()?,
            generation: self.u32_of("Epoch.generation")?,
        })
    }

    /// A role.
    pub fn get_role(&mut self) -> Result<Role, DecodeError> {
        self.tag("Role", |tag| match tag {
            0 => Some(Role::Primary),
            1 => Some(Role::Secondary),
            2 => Some(Role::Resolving),
            _ => None,
        })
    }

    /// A synchronization state.
    pub fn get_sync_state(&mut self) -> Result<SyncState, DecodeError> {
        self.tag("SyncState", |tag| match tag {
            0 => Some(SyncState::NotSynchronizing),
            1 => Some(SyncState::Synchronizing),
            2 => Some(SyncState::Synchronized),
            3 => Some(SyncState::Reverting),
            4 => Some(SyncState::Initializing),
            _ => None,
        })
    }

    /// A suspend reason.
    pub fn get_suspend_reason(&mut self) -> Result<SuspendReason, DecodeError> {
        self.tag("SuspendReason", |tag| match tag {
            0 => Some(SuspendReason::User),
            1 => Some(SuspendReason::Primary),
            2 => Some(SuspendReason::Partner),
            3 => Some(SuspendReason::Redo),
            _ => None,
        })
    }

    /// One write of a transaction.
    pub fn get_write(&mut self) -> Result<Write, DecodeError> {
        Ok(Write {
            key: self.get_str()?,
            value: self.get_str()?,
        })
    }

    /// A log record.
    pub fn get_log_record(&mut self) -> Result<LogRecord, DecodeError> {
        Ok(LogRecord {
            lsn: self.get_lsn()?,
            epoch: self.get_epoch()?,
            txn: self.get_txn_id()?,
            writes: self.get_list("list of Write", MIN_WRITE_LEN, Self::get_write)?,
        })
    }

    /// A fork segment.
    pub fn get_fork_segment(&mut self) -> Result<ForkSegment, DecodeError> {
        Ok(ForkSegment {
            epoch: self.get_epoch()?,
            first_lsn: self.get_lsn()?,
        })
    }

    /// What a replica says about one database in a handshake.
    pub fn get_database_hello(&mut self) -> Result<DatabaseHello, DecodeError> {
        Ok(DatabaseHello {
            database: self.get_database_id()?,
            end_of_log: self.get_lsn()?,
            hardened: self.get_lsn()?,
            redone: self.get_lsn()?,
            forks: self.get_list(
                "list of ForkSegment",
                FORK_SEGMENT_LEN,
                Self::get_fork_segment,
            )?,
            accepted_epoch: self.get_epoch()?,
            suspended: self.get_option(Self::get_suspend_reason)?,
            reverting: self.get_bool()?,
        })
    }

    /// The handshake.
    pub fn get_hello(&mut self) -> Result<Hello, DecodeError> {
        Ok(Hello {
            ag_name: self.get_str()?,
            replica: self.get_replica_id()?,
            replica_name: self.get_str()?,
            role: self.get_role()?,
            last_forced_epoch: self.get_epoch()?,
            required_synchronized: self.u32_of("Hello.required_synchronized")?,
            databases: self.get_list(
                "list of DatabaseHello",
                MIN_DATABASE_HELLO_LEN,
                Self::get_database_hello,
            )?,
        })
    }

    /// A block of log.
    pub fn get_log_block(&mut self) -> Result<LogBlock, DecodeError> {
        Ok(LogBlock {
            database: self.get_database_id()?,
            first_lsn: self.get_lsn()?,
            stable: self.get_lsn()?,
            records: self.get_list(
                "list of LogRecord",
                MIN_LOG_RECORD_LEN,
                Self::get_log_record,
            )?,
        })
    }

    /// Why a planned failover was refused.
    pub fn get_failover_refusal(&mut self) -> Result<FailoverRefusal, DecodeError> {
        let tag = self.tag("FailoverRefusal", |tag| (tag <= 3).then_some(tag))?;
        Ok(match tag {
            0 => FailoverRefusal::NotPrimary,
            1 => FailoverRefusal::NotSynchronousCommit {
                replica: self.get_replica_id()?,
            },
            2 => FailoverRefusal::NotSynchronized {
                database: self.get_database_id()?,
                state: self.get_sync_state()?,
            },
            _ => FailoverRefusal::FailoverInProgress,
        })
    }

    /// A message body.
    pub fn get_message_body(&mut self) -> Result<MessageBody, DecodeError> {
        let tag = self.tag("MessageBody", |tag| (tag <= 15).then_some(tag))?;
        Ok(match tag {
            0 => MessageBody::Hello(self.get_hello()?),
            1 => MessageBody::Rejoin(self.get_database_hello()?),
            2 => MessageBody::Ping,
            3 => MessageBody::Log(self.get_log_block()?),
            4 => MessageBody::GapRefused {
                database: self.get_database_id()?,
                expected: self.get_lsn()?,
            },
            5 => MessageBody::Progress {
                database: self.get_database_id()?,
                received: self.get_lsn()?,
                hardened: self.get_lsn()?,
                redone: self.get_lsn()?,
            },
            6 => MessageBody::SyncState {
                database: self.get_database_id()?,
                state: self.get_sync_state()?,
            },
            7 => MessageBody::Suspend {
                database: self.get_database_id()?,
                reason: self.get_suspend_reason()?,
            },
            8 => MessageBody::Suspended {
                database: self.get_database_id()?,
            },
            9 => MessageBody::ResumeFromPrimary {
                database: self.get_database_id()?,
            },
            10 => MessageBody::Revert {
                database: self.get_database_id()?,
                to: self.get_lsn()?,
            },
            11 => MessageBody::Reverted {
                database: self.get_database_id()?,
                end: self.get_lsn()?,
                hardened: self.get_lsn()?,
                redone: self.get_lsn()?,
            },
            12 => MessageBody::FailoverRequest,
            13 => MessageBody::FailoverRefused {
                reason: self.get_failover_refusal()?,
            },
            14 => MessageBody::FailoverGranted {
                ends: self.get_list("list of Lsn", 8, Self::get_lsn)?,
            },
            _ => MessageBody::SetRequiredSynchronized {
                required: self.u32_of("SetRequiredSynchronized.required")?,
            },
        })
    }

    /// A peer message.
    pub fn get_peer_message(&mut self) -> Result<PeerMessage, DecodeError> {
        Ok(PeerMessage {
            epoch: self.get_epoch()?,
            body: self.get_message_body()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(term: u64, replica: u8, generation: u32) -> Epoch {
        Epoch {
            term,
            replica: ReplicaId(replica),
            generation,
        }
    }

    fn record(lsn: u64) -> LogRecord {
        LogRecord {
            lsn: Lsn(lsn),
            epoch: epoch(3, 1, 2),
            txn: TxnId(7),
            writes: vec![Write {
                key: "k".into(),
                value: "välue".into(),
            }],
        }
    }

    fn encode(put: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut Writer::new(&mut out));
        out
    }

    #[test]
    fn integers_are_little_endian() {
        let bytes = encode(|w| {
            w.put_u8(1);
            w.put_u16(0x0302);
            w.put_u32(0x0706_0504);
            w.put_u64(0x0f0e_0d0c_0b0a_0908);
        });
        assert_eq!(bytes, (1..=15).collect::<Vec<u8>>());
        let mut r = Reader::new(&bytes);
        assert_eq!(r.get_u8(), Ok(1));
        assert_eq!(r.get_u16(), Ok(0x0302));
        assert_eq!(r.get_u32(), Ok(0x0706_0504));
        assert_eq!(r.get_u64(), Ok(0x0f0e_0d0c_0b0a_0908));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn a_log_record_has_the_documented_layout() {
        let bytes = encode(|w| w.put_log_record(&record(5)));
        let mut expected = vec![5, 0, 0, 0, 0, 0, 0, 0]; // lsn
        expected.extend([3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0]); // epoch 3.1/2
        expected.extend([7, 0, 0, 0]); // txn
        expected.extend([1, 0, 0, 0]); // one write
        expected.extend([1, 0, 0, 0, b'k']);
        expected.extend([6, 0, 0, 0]);
        expected.extend("välue".as_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(
            Reader::decode_exact(&bytes, Reader::get_log_record),
            Ok(record(5))
        );
    }

    #[test]
    fn every_truncation_of_a_record_is_reported_as_truncated() {
        let bytes = encode(|w| w.put_log_record(&record(9)));
        for cut in 0..bytes.len() {
            let error = Reader::decode_exact(&bytes[..cut], Reader::get_log_record).unwrap_err();
            assert!(
                matches!(error, DecodeError::Truncated { .. }),
                "cut at {cut}: {error}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(|w| w.put_lsn(Lsn(4)));
        bytes.push(0);
        assert_eq!(
            Reader::decode_exact(&bytes, Reader::get_lsn),
            Err(DecodeError::TrailingBytes {
                offset: 8,
                count: 1
            })
        );
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_position() {
        let bytes = [3, 0, 0, 0, b'a', 0xff, b'b'];
        assert_eq!(
            Reader::decode_exact(&bytes, Reader::get_str),
            Err(DecodeError::InvalidUtf8 {
                offset: 4,
                valid_up_to: 1
            })
        );
    }

    #[test]
    fn unknown_tags_name_the_type_and_the_tag() {
        let cases: [(&[u8], &str, u8); 6] = [
            (&[3], "Role", 3),
            (&[5], "SyncState", 5),
            (&[4], "SuspendReason", 4),
            (&[2], "bool", 2),
            (&[0x10], "MessageBody", 0x10),
            (&[13, 4], "FailoverRefusal", 4),
        ];
        for (bytes, type_name, tag) in cases {
            let mut r = Reader::new(bytes);
            let error = match type_name {
                "Role" => r.get_role().map(drop),
                "SyncState" => r.get_sync_state().map(drop),
                "SuspendReason" => r.get_suspend_reason().map(drop),
                "bool" => r.get_bool().map(drop),
                _ => r.get_message_body().map(drop),
            }
            .unwrap_err();
            assert_eq!(
                error,
                DecodeError::UnknownTag {
                    type_name,
                    tag,
                    offset: bytes.len() - 1
                }
            );
            assert!(error.to_string().contains(type_name));
        }
        let mut r = Reader::new(&[7]);
        assert!(matches!(
            r.get_option(Reader::get_suspend_reason),
            Err(DecodeError::UnknownTag {
                type_name: "Option",
                tag: 7,
                ..
            })
        ));
    }

    #[test]
    fn absurd_lengths_are_refused_before_allocating() {
        // A string declaring 4 GiB.
        assert!(matches!(
            Reader::decode_exact(&[0xff, 0xff, 0xff, 0xff], Reader::get_str),
            Err(DecodeError::LengthOverLimit {
                length: u32::MAX,
                limit: MAX_LENGTH,
                ..
            })
        ));
        // A list of 16 Mi LSNs in 4 bytes: within MAX_LENGTH, but the input cannot hold it.
        let bytes = MAX_LENGTH.to_le_bytes();
        let error = Reader::decode_exact(&bytes, |r| r.get_list("list of Lsn", 8, Reader::get_lsn))
            .unwrap_err();
        assert_eq!(
            error,
            DecodeError::Truncated {
                what: "list of Lsn",
                offset: 4,
                needed: MAX_LENGTH as usize * 8,
                remaining: 0
            }
        );
    }

    #[test]
    fn options_and_bools_round_trip() {
        for value in [None, Some(SuspendReason::Redo), Some(SuspendReason::User)] {
            let bytes = encode(|w| w.put_option(value.as_ref(), |w, r| w.put_suspend_reason(*r)));
            assert_eq!(
                Reader::decode_exact(&bytes, |r| r.get_option(Reader::get_suspend_reason)),
                Ok(value)
            );
        }
        for value in [false, true] {
            let bytes = encode(|w| w.put_bool(value));
            assert_eq!(bytes, [u8::from(value)]);
            assert_eq!(Reader::decode_exact(&bytes, Reader::get_bool), Ok(value));
        }
    }

    #[test]
    fn every_enum_value_round_trips() {
        for role in [Role::Primary, Role::Secondary, Role::Resolving] {
            let bytes = encode(|w| w.put_role(role));
            assert_eq!(Reader::decode_exact(&bytes, Reader::get_role), Ok(role));
        }
        for state in [
            SyncState::NotSynchronizing,
            SyncState::Synchronizing,
            SyncState::Synchronized,
            SyncState::Reverting,
            SyncState::Initializing,
        ] {
            let bytes = encode(|w| w.put_sync_state(state));
            assert_eq!(
                Reader::decode_exact(&bytes, Reader::get_sync_state),
                Ok(state)
            );
        }
        for refusal in [
            FailoverRefusal::NotPrimary,
            FailoverRefusal::NotSynchronousCommit {
                replica: ReplicaId(2),
            },
            FailoverRefusal::NotSynchronized {
                database: DatabaseId(1),
                state: SyncState::Reverting,
            },
            FailoverRefusal::FailoverInProgress,
        ] {
            let bytes = encode(|w| w.put_failover_refusal(&refusal));
            assert_eq!(
                Reader::decode_exact(&bytes, Reader::get_failover_refusal),
                Ok(refusal)
            );
        }
    }
}
