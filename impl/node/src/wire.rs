//! Peer-to-peer frames: what replicas send each other over TCP. `docs/wire.md` is the
//! language-neutral specification; this module implements it.
//!
//! ```text
//!  0      4    5    6           10          14
//!  ┌──────┬────┬────┬───────────┬───────────┬───────────────────────┐
//!  │"HADR"│ver │kind│ body len  │  CRC-32C  │ body (len bytes)      │
//!  │      │ =1 │    │  u32 LE   │  u32 LE   │ Preface | PeerMessage │
//!  └──────┴────┴────┴───────────┴───────────┴───────────────────────┘
//!         └─ CRC input, part 1 ─┘           └── CRC input, part 2 ──┘
//! ```
//!
//! The CRC-32C covers the version, kind and length bytes followed by the body, so a damaged
//! kind byte cannot turn one valid frame into another. On a new connection each side first
//! sends one [`Frame::Preface`] (which peer this is), then only [`Frame::Message`]s, starting
//! with hadr-core's `Hello`.

use crate::codec::{DecodeError, Reader, Writer};
use hadr_core::{Epoch, PeerMessage};
use hadr_types::ReplicaId;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"HADR";
/// The version of the frame format and body encodings this module speaks.
pub const VERSION: u8 = 1;
/// Bytes before the body: magic, version, kind, body length, checksum.
pub const HEADER_LEN: usize = 14;
/// The largest body a frame may have; a header announcing more is refused before the body is
/// read, and [`encode_frame`] refuses to produce one.
pub const MAX_FRAME_BODY: u32 = 16 * 1024 * 1024;

/// Frame kind of a [`Frame::Preface`].
const KIND_PREFACE: u8 = 1;
/// Frame kind of a [`Frame::Message`].
const KIND_MESSAGE: u8 = 2;

/// Who is at the other end of a new connection: the first frame each side sends.
///
/// The transport uses it to attach the connection to a peer; hadr-core then runs its own
/// `Hello` handshake as a [`Frame::Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preface {
    /// The availability group the sender belongs to.
    pub ag_name: String,
    /// The sender.
    pub from: ReplicaId,
    /// The sender's server instance name.
    pub from_name: String,
    /// The replica the sender means to talk to.
    pub to: ReplicaId,
}

/// One frame on a peer connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The connection preface (kind 1).
    Preface(Preface),
    /// A message for hadr-core (kind 2).
    Message(PeerMessage),
}

/// Why bytes received from a peer are not a valid frame. Every one of these means the
/// connection is unusable: close it (the peer will reconnect).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The stream does not start with `HADR`.
    #[error("bad frame magic {found:02x?}, expected \"HADR\": the peer does not speak the hadr peer protocol (check its ENDPOINT_URL)")]
    BadMagic {
        /// The bytes found where the magic should be (up to four).
        found: Vec<u8>,
    },
    /// The frame is of a version this node does not implement.
    #[error("unsupported frame version {found}, this node supports version {supported}: run the same hadr version on every replica")]
    UnsupportedVersion {
        /// The version of the frame.
        found: u8,
        /// The version this node speaks.
        supported: u8,
    },
    /// A frame kind that does not exist.
    #[error("unknown frame kind {kind} (known: 1 preface, 2 message)")]
    UnknownKind {
        /// The kind found.
        kind: u8,
    },
    /// The body is larger than [`MAX_FRAME_BODY`].
    #[error("frame body of {length} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The body's size.
        length: u64,
        /// The limit.
        limit: u32,
    },
    /// The frame was damaged: its checksum does not match its bytes.
    #[error("frame checksum mismatch: header says {expected:#010x}, the bytes received give {found:#010x} (corrupted in transit)")]
    ChecksumMismatch {
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the bytes received.
        found: u32,
    },
    /// The checksum is right but the body is not a valid encoding.
    #[error("malformed {what} frame: {source}")]
    MalformedBody {
        /// What the frame should hold: `"preface"` or `"message"`.
        what: &'static str,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// A message carries an epoch whose term is beyond [`Epoch::MAX_TERM`].
    #[error("message carries an epoch term beyond {limit}: refused as malformed")]
    EpochOutOfRange {
        /// The largest term accepted.
        limit: u64,
    },
}

/// The checksum of a frame: CRC-32C of header bytes 4..10 (version, kind, length), then of
/// the body.
fn frame_checksum(header: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[4..10]), body)
}

/// Appends the encoding of `frame` to `out`.
///
/// Fails with [`WireError::BodyTooLarge`] (leaving `out` as it was) when the body would exceed
/// [`MAX_FRAME_BODY`]: no peer would accept it. The sender must split log blocks so that they
/// fit.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    let kind = match frame {
        Frame::Preface(_) => KIND_PREFACE,
        Frame::Message(_) => KIND_MESSAGE,
    };
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, kind]);
    out.extend_from_slice(&[0; 8]); // length and checksum, filled in below
    let mut w = Writer::new(out);
    match frame {
        Frame::Preface(preface) => {
            w.put_str(&preface.ag_name);
            w.put_replica_id(preface.from);
            w.put_str(&preface.from_name);
            w.put_replica_id(preface.to);
        }
        Frame::Message(message) => w.put_peer_message(message),
    }
    let body_len = out.len() - start - HEADER_LEN;
    let length = match u32::try_from(body_len) {
        Ok(length) if length <= MAX_FRAME_BODY => length,
        _ => {
            out.truncate(start);
            return Err(WireError::BodyTooLarge {
                length: body_len as u64,
                limit: MAX_FRAME_BODY,
            });
        }
    };
    out[start + 6..start + 10].copy_from_slice(&length.to_le_bytes());
    let (header, body) = out[start..].split_at(HEADER_LEN);
    let checksum = frame_checksum(header, body);
    out[start + 10..start + 14].copy_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only the beginning of a frame (read more and call
/// again), `Ok(Some((frame, consumed)))` with the number of bytes the frame took, or an error
/// as soon as the bytes seen so far cannot start a valid frame (a bad magic, version or kind
/// is reported before the rest of the frame arrives, a too-large length before its body).
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    let magic_seen = &buf[..buf.len().min(MAGIC.len())];
    if magic_seen != &MAGIC[..magic_seen.len()] {
        return Err(WireError::BadMagic {
            found: magic_seen.to_vec(),
        });
    }
    if let Some(&version) = buf.get(4) {
        if version != VERSION {
            return Err(WireError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
    }
    let kind = match buf.get(5) {
        None => return Ok(None),
        Some(&kind @ (KIND_PREFACE | KIND_MESSAGE)) => kind,
        Some(&kind) => return Err(WireError::UnknownKind { kind }),
    };
    let Some(header) = buf.get(..HEADER_LEN) else {
        // Check the length as soon as it is complete, before the checksum arrives.
        if let Some(length) = buf.get(6..10) {
            check_length(le_u32(length))?;
        }
        return Ok(None);
    };
    let length = check_length(le_u32(&header[6..10]))?;
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + length) else {
        return Ok(None);
    };
    let expected = le_u32(&header[10..14]);
    let found = frame_checksum(header, body);
    if expected != found {
        return Err(WireError::ChecksumMismatch { expected, found });
    }
    let frame = if kind == KIND_PREFACE {
        Reader::decode_exact(body, |r| {
            Ok(Preface {
                ag_name: r.get_str()?,
                from: r.get_replica_id()?,
                from_name: r.get_str()?,
                to: r.get_replica_id()?,
            })
        })
        .map(Frame::Preface)
        .map_err(|source| WireError::MalformedBody {
            what: "preface",
            source,
        })?
    } else {
        let message = Reader::decode_exact(body, Reader::get_peer_message).map_err(|source| {
            WireError::MalformedBody {
                what: "message",
                source,
            }
        })?;
        if !message.epochs_in_range() {
            return Err(WireError::EpochOutOfRange {
                limit: Epoch::MAX_TERM,
            });
        }
        Frame::Message(message)
    };
    Ok(Some((frame, HEADER_LEN + length)))
}

/// A little-endian `u32` from exactly four bytes (callers slice four).
fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word)
}

fn check_length(length: u32) -> Result<usize, WireError> {
    if length > MAX_FRAME_BODY {
        return Err(WireError::BodyTooLarge {
            length: u64::from(length),
            limit: MAX_FRAME_BODY,
        });
    }
    // MAX_FRAME_BODY fits in any usize of 32 bits or more.
    Ok(length as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadr_core::{
        DatabaseHello, FailoverRefusal, ForkSegment, Hello, LogBlock, LogRecord, MessageBody, Write,
    };
    use hadr_types::{DatabaseId, Lsn, Role, SuspendReason, SyncState, TxnId};

    fn epoch(term: u64, replica: u8) -> Epoch {
        Epoch {
            term,
            replica: ReplicaId(replica),
            generation: 0,
        }
    }

    fn database_hello() -> DatabaseHello {
        DatabaseHello {
            database: DatabaseId(1),
            end_of_log: Lsn(12),
            hardened: Lsn(11),
            redone: Lsn(10),
            forks: vec![
                ForkSegment {
                    epoch: epoch(1, 0),
                    first_lsn: Lsn(1),
                },
                ForkSegment {
                    epoch: epoch(2, 1),
                    first_lsn: Lsn(9),
                },
            ],
            accepted_epoch: epoch(2, 1),
            suspended: Some(SuspendReason::Partner),
            reverting: true,
        }
    }

    /// One value of every [`MessageBody`] variant, in tag order.
    fn every_body() -> Vec<MessageBody> {
        let db = DatabaseId(2);
        vec![
            MessageBody::Hello(Hello {
                ag_name: "ag1".into(),
                replica: ReplicaId(1),
                replica_name: "SQL-B".into(),
                role: Role::Secondary,
                last_forced_epoch: epoch(2, 1),
                required_synchronized: 1,
                databases: vec![database_hello(), database_hello()],
            }),
            MessageBody::Rejoin(database_hello()),
            MessageBody::Ping,
            MessageBody::Log(LogBlock {
                database: db,
                first_lsn: Lsn(4),
                stable: Lsn(0),
                records: vec![
                    LogRecord {
                        lsn: Lsn(4),
                        epoch: epoch(2, 1),
                        txn: TxnId(40),
                        writes: vec![
                            Write {
                                key: "a".into(),
                                value: "1".into(),
                            },
                            Write {
                                key: "ключ".into(),
                                value: String::new(),
                            },
                        ],
                    },
                    LogRecord {
                        lsn: Lsn(5),
                        epoch: epoch(2, 1),
                        txn: TxnId(41),
                        writes: vec![],
                    },
                ],
            }),
            MessageBody::GapRefused {
                database: db,
                expected: Lsn(7),
            },
            MessageBody::Progress {
                database: db,
                received: Lsn(9),
                hardened: Lsn(8),
                redone: Lsn(7),
            },
            MessageBody::SyncState {
                database: db,
                state: SyncState::Synchronized,
            },
            MessageBody::Suspend {
                database: db,
                reason: SuspendReason::Primary,
            },
            MessageBody::Suspended { database: db },
            MessageBody::ResumeFromPrimary { database: db },
            MessageBody::Revert {
                database: db,
                to: Lsn(3),
            },
            MessageBody::Reverted {
                database: db,
                end: Lsn(3),
                hardened: Lsn(3),
                redone: Lsn(2),
            },
            MessageBody::FailoverRequest,
            MessageBody::FailoverRefused {
                reason: FailoverRefusal::NotSynchronized {
                    database: db,
                    state: SyncState::Synchronizing,
                },
            },
            MessageBody::FailoverGranted {
                ends: vec![Lsn(12), Lsn(0), Lsn(u64::MAX)],
            },
            MessageBody::SetRequiredSynchronized { required: 2 },
        ]
    }

    fn message(body: MessageBody) -> Frame {
        Frame::Message(PeerMessage {
            epoch: Epoch {
                term: 3,
                replica: ReplicaId(0),
                generation: 1,
            },
            body,
        })
    }

    fn preface() -> Frame {
        Frame::Preface(Preface {
            ag_name: "ag1".into(),
            from: ReplicaId(0),
            from_name: "SQL-A".into(),
            to: ReplicaId(2),
        })
    }

    fn encoded(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(frame, &mut out).expect("a small frame encodes");
        out
    }

    /// Re-seals a hand-edited frame: fixes its length and checksum.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let length = (bytes.len() - HEADER_LEN) as u32;
        bytes[6..10].copy_from_slice(&length.to_le_bytes());
        let checksum = frame_checksum(&bytes[..HEADER_LEN], &bytes[HEADER_LEN..]);
        bytes[10..14].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    #[test]
    fn every_message_body_round_trips_with_its_tag() {
        for (tag, body) in every_body().into_iter().enumerate() {
            let frame = message(body);
            let bytes = encoded(&frame);
            assert_eq!(bytes[5], KIND_MESSAGE);
            assert_eq!(bytes[HEADER_LEN + 13], tag as u8, "tag of {frame:?}");
            assert_eq!(decode_frame(&bytes), Ok(Some((frame, bytes.len()))));
        }
        let bytes = encoded(&preface());
        assert_eq!(bytes[5], KIND_PREFACE);
        assert_eq!(decode_frame(&bytes), Ok(Some((preface(), bytes.len()))));
    }

    /// The worked example of `docs/wire.md`, byte for byte.
    #[test]
    fn ping_frame_matches_the_worked_example_of_the_spec() {
        let frame = message(MessageBody::Ping);
        let expected: Vec<u8> = [
            &b"HADR"[..],
            &[0x01, 0x02],             // version 1, kind message
            &[0x0e, 0x00, 0x00, 0x00], // body length 14
            &[0x8f, 0xb3, 0x01, 0x81], // CRC-32C 0x8101b38f
            &[0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // epoch term 3
            &[0x00],                   // epoch replica 0
            &[0x01, 0x00, 0x00, 0x00], // epoch generation 1
            &[0x02],                   // MessageBody tag 2: Ping
        ]
        .concat();
        assert_eq!(encoded(&frame), expected);
        assert_eq!(decode_frame(&expected), Ok(Some((frame, 28))));

        // The one-line form the document gives, and the CRC-32C check value it quotes.
        let one_line = "4841445201020e0000008fb301810300000000000000000100000002";
        let spec = include_str!("../../../docs/wire.md");
        assert!(
            spec.contains(one_line),
            "docs/wire.md lost its worked example"
        );
        let from_hex: Vec<u8> = (0..one_line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&one_line[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(from_hex, expected);
        assert!(spec.contains("0xE3069283"));
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn frames_decode_one_after_another_from_one_buffer() {
        let frames = [
            preface(),
            message(MessageBody::Ping),
            message(every_body()[3].clone()),
        ];
        let mut stream = Vec::new();
        for frame in &frames {
            encode_frame(frame, &mut stream).unwrap();
        }
        let mut rest = &stream[..];
        for frame in &frames {
            let (decoded, used) = decode_frame(rest).unwrap().unwrap();
            assert_eq!(&decoded, frame);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(decode_frame(rest), Ok(None));
    }

    #[test]
    fn a_frame_arriving_byte_by_byte_is_incomplete_until_its_last_byte() {
        for frame in [preface(), message(every_body()[0].clone())] {
            let bytes = encoded(&frame);
            for end in 0..bytes.len() {
                assert_eq!(
                    decode_frame(&bytes[..end]),
                    Ok(None),
                    "prefix of {end} bytes"
                );
            }
            assert_eq!(decode_frame(&bytes), Ok(Some((frame, bytes.len()))));
        }
    }

    #[test]
    fn bad_magic_is_refused_from_its_first_byte() {
        assert_eq!(
            decode_frame(b"GET / HTTP/1.1\r\n"),
            Err(WireError::BadMagic {
                found: b"GET ".to_vec()
            })
        );
        assert_eq!(
            decode_frame(b"HA\0"),
            Err(WireError::BadMagic {
                found: b"HA\0".to_vec()
            })
        );
    }

    #[test]
    fn another_version_is_refused_naming_both_versions() {
        let mut bytes = encoded(&message(MessageBody::Ping));
        bytes[4] = 2;
        let error = decode_frame(&bytes[..5]).unwrap_err();
        assert_eq!(
            error,
            WireError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
        assert!(error.to_string().contains("version 2"));
        assert!(error.to_string().contains("supports version 1"));
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        for kind in [0, 3, 0xff] {
            let mut bytes = encoded(&message(MessageBody::Ping));
            bytes[5] = kind;
            assert_eq!(decode_frame(&bytes), Err(WireError::UnknownKind { kind }));
        }
    }

    #[test]
    fn a_body_over_the_limit_is_refused_before_it_arrives() {
        let mut header = encoded(&message(MessageBody::Ping));
        header.truncate(10);
        header[6..10].copy_from_slice(&(MAX_FRAME_BODY + 1).to_le_bytes());
        assert_eq!(
            decode_frame(&header),
            Err(WireError::BodyTooLarge {
                length: u64::from(MAX_FRAME_BODY) + 1,
                limit: MAX_FRAME_BODY
            })
        );
        // Exactly the limit is accepted as far as the header goes.
        header[6..10].copy_from_slice(&MAX_FRAME_BODY.to_le_bytes());
        assert_eq!(decode_frame(&header), Ok(None));
    }

    #[test]
    fn encoding_a_body_over_the_limit_fails_and_appends_nothing() {
        let huge = Write {
            key: "k".into(),
            value: "x".repeat(MAX_FRAME_BODY as usize),
        };
        let frame = message(MessageBody::Log(LogBlock {
            database: DatabaseId(0),
            first_lsn: Lsn(1),
            stable: Lsn(0),
            records: vec![LogRecord {
                lsn: Lsn(1),
                epoch: epoch(1, 0),
                txn: TxnId(1),
                writes: vec![huge],
            }],
        }));
        let mut out = vec![9];
        let error = encode_frame(&frame, &mut out).unwrap_err();
        assert!(matches!(error, WireError::BodyTooLarge { limit, .. } if limit == MAX_FRAME_BODY));
        assert_eq!(out, [9]);
    }

    #[test]
    fn a_damaged_body_fails_its_checksum() {
        let mut bytes = encoded(&message(MessageBody::Ping));
        let last = bytes.len() - 1;
        bytes[last] = 12; // Ping (2) turned into FailoverRequest (12)
        let found = frame_checksum(&bytes[..HEADER_LEN], &bytes[HEADER_LEN..]);
        assert_eq!(
            decode_frame(&bytes),
            Err(WireError::ChecksumMismatch {
                expected: 0x8101_b38f,
                found
            })
        );
    }

    #[test]
    fn a_malformed_body_with_a_valid_checksum_says_what_is_wrong() {
        // A message whose body tag does not exist.
        let mut bytes = encoded(&message(MessageBody::Ping));
        let last = bytes.len() - 1;
        bytes[last] = 99;
        let error = decode_frame(&reseal(bytes)).unwrap_err();
        assert_eq!(
            error,
            WireError::MalformedBody {
                what: "message",
                source: DecodeError::UnknownTag {
                    type_name: "MessageBody",
                    tag: 99,
                    offset: 13
                }
            }
        );
        assert_eq!(
            error.to_string(),
            "malformed message frame: unknown MessageBody tag 99 at byte 13"
        );
        // A preface with a byte too many.
        let mut bytes = encoded(&preface());
        bytes.push(0);
        assert_eq!(
            decode_frame(&reseal(bytes)),
            Err(WireError::MalformedBody {
                what: "preface",
                source: DecodeError::TrailingBytes {
                    offset: 4 + 3 + 1 + 4 + 5 + 1,
                    count: 1
                }
            })
        );
        // A truncated message.
        let mut bytes = encoded(&message(MessageBody::Ping));
        bytes.truncate(HEADER_LEN + 5);
        assert!(matches!(
            decode_frame(&reseal(bytes)),
            Err(WireError::MalformedBody {
                what: "message",
                source: DecodeError::Truncated { .. }
            })
        ));
    }

    #[test]
    fn an_epoch_beyond_the_maximum_term_is_refused() {
        let too_new = epoch(Epoch::MAX_TERM + 1, 0);
        let messages = [
            PeerMessage {
                epoch: too_new,
                body: MessageBody::Ping,
            },
            PeerMessage {
                epoch: epoch(Epoch::MAX_TERM, 0),
                body: MessageBody::Rejoin(DatabaseHello {
                    accepted_epoch: too_new,
                    ..database_hello()
                }),
            },
        ];
        for message in messages {
            let bytes = encoded(&Frame::Message(message));
            assert_eq!(
                decode_frame(&bytes),
                Err(WireError::EpochOutOfRange {
                    limit: Epoch::MAX_TERM
                })
            );
        }
    }

    /// A small deterministic generator (SplitMix64) for the property test below.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Changing any one byte of a valid frame never yields a valid frame: it is an error, or
    /// (a length made larger) an incomplete frame.
    #[test]
    fn changing_any_single_byte_of_a_frame_is_detected() {
        let mut rng = SplitMix(0x4841_4452);
        let mut frames = every_body().into_iter().map(message).collect::<Vec<_>>();
        frames.push(preface());
        let mut checked = 0;
        for frame in &frames {
            let bytes = encoded(frame);
            for position in 0..bytes.len() {
                // Every position with a few random new values, plus every single-bit flip.
                let mut deltas: Vec<u8> = (0..8).map(|bit| 1 << bit).collect();
                deltas.extend((0..4).map(|_| 1 + rng.below(255) as u8));
                for delta in deltas {
                    let mut damaged = bytes.clone();
                    damaged[position] ^= delta;
                    match decode_frame(&damaged) {
                        Err(_) => {}
                        Ok(None) => assert!(
                            (6..10).contains(&position),
                            "only a length change can make a frame look incomplete (byte {position})"
                        ),
                        Ok(Some((other, _))) => panic!(
                            "byte {position} ^ {delta:#04x} of {frame:?} decoded as {other:?}"
                        ),
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn random_bytes_never_panic_and_never_decode() {
        let mut rng = SplitMix(7);
        for _ in 0..2000 {
            let len = rng.below(64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Start most of them like a frame so the later checks are reached too.
            if len >= 6 && rng.below(4) != 0 {
                bytes[..6].copy_from_slice(&[b'H', b'A', b'D', b'R', VERSION, KIND_MESSAGE]);
            }
            assert!(!matches!(decode_frame(&bytes), Ok(Some(_))));
        }
    }
}
