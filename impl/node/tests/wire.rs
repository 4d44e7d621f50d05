//! Peer frames through the public API: over a real socket, and the committed fuzz seeds
//! (`fuzz/corpus/frame_decode`, `fuzz/corpus/wal_recover`), which must stay valid inputs as
//! the formats evolve, or the fuzzers would start from nothing.

use hadr_core::{Epoch, LogBlock, LogRecord, MessageBody, PeerMessage, Write};
use hadr_node::codec::Reader;
use hadr_node::wal::{self, TailProblem, Wal, WalError, WAL_MAGIC};
use hadr_node::wire::{decode_frame, encode_frame, Frame, Preface, MAGIC};
use hadr_types::{DatabaseId, Lsn, ReplicaId, TxnId};
use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 3, "{} has too few seeds", dir.display());
    seeds
}

/// Decodes a whole stream of frames; panics on an error or an incomplete end.
fn decode_all(mut rest: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (frame, used) = decode_frame(rest)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("the stream ends with a complete frame");
        frames.push(frame);
        rest = &rest[used..];
    }
    frames
}

#[test]
fn frames_cross_a_tcp_connection_in_arbitrary_segments() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let frames = vec![
        Frame::Preface(Preface {
            ag_name: "ag1".into(),
            from: ReplicaId(0),
            from_name: "SQL-A".into(),
            to: ReplicaId(1),
        }),
        Frame::Message(PeerMessage {
            epoch: Epoch::NONE,
            body: MessageBody::Ping,
        }),
        Frame::Message(PeerMessage {
            epoch: Epoch {
                term: 2,
                replica: ReplicaId(0),
                generation: 0,
            },
            body: MessageBody::Log(LogBlock {
                database: DatabaseId(0),
                first_lsn: Lsn(1),
                stable: Lsn(0),
                records: (1..=50)
                    .map(|lsn| LogRecord {
                        lsn: Lsn(lsn),
                        epoch: Epoch::NONE,
                        txn: TxnId(lsn as u32),
                        writes: vec![Write {
                            key: format!("k{lsn}"),
                            value: "v".repeat(lsn as usize * 7),
                        }],
                    })
                    .collect(),
            }),
        }),
    ];
    let mut stream = Vec::new();
    for frame in &frames {
        encode_frame(frame, &mut stream).unwrap();
    }
    let sender = std::thread::spawn(move || {
        let mut socket = TcpStream::connect(address).unwrap();
        socket.set_nodelay(true).unwrap();
        // Segments of 1, 2, 3 … bytes, so frames and headers are split everywhere.
        let mut rest = &stream[..];
        let mut size = 1;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(size.min(rest.len()));
            socket.write_all(now).unwrap();
            rest = later;
            size = size % 97 + 1;
        }
    });
    let (mut socket, _) = listener.accept().unwrap();
    let mut buffer = Vec::new();
    let mut received = Vec::new();
    let mut chunk = [0; 64];
    loop {
        while let Some((frame, used)) = decode_frame(&buffer).unwrap() {
            received.push(frame);
            buffer.drain(..used);
        }
        match socket.read(&mut chunk).unwrap() {
            0 => break,
            n => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    sender.join().unwrap();
    assert!(buffer.is_empty(), "{} bytes left over", buffer.len());
    assert_eq!(received, frames);
}

#[test]
fn the_frame_decode_seeds_are_valid_frames_or_frame_bodies() {
    for (name, seed) in corpus("frame_decode") {
        if seed.starts_with(&MAGIC) {
            assert!(!decode_all(&seed).is_empty(), "{name}");
            continue;
        }
        // `kind + body`: the fuzz entry seals it with a correct header.
        let (kind, body) = seed.split_first().expect("seeds are not empty");
        match kind {
            1 => Reader::decode_exact(body, |r| {
                r.get_str()?;
                r.get_replica_id()?;
                r.get_str()?;
                r.get_replica_id()
            })
            .map(drop),
            2 => Reader::decode_exact(body, Reader::get_peer_message).map(drop),
            _ => panic!("{name}: unknown frame kind {kind}"),
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_wal_recover_seeds_recover_as_their_names_say() {
    let dir = tempfile::tempdir().unwrap();
    let database = DatabaseId(3); // the database `hadr_node::fuzzing::wal_recover` uses
    for (name, seed) in corpus("wal_recover") {
        let path = dir.path().join(&name);
        let contents = if seed.starts_with(&WAL_MAGIC) {
            seed.clone()
        } else {
            [&wal::header(database)[..], &seed].concat()
        };
        std::fs::write(&path, contents).unwrap();
        match (name.as_str(), Wal::open(&path, database)) {
            ("other-database.wal", Err(WalError::WrongDatabase { .. })) => {}
            // Version 2, records 1..=8 written and truncated through 5: 6, 7, 8 are left.
            ("base-5.wal", Ok((_, recovered))) => {
                assert_eq!(recovered.base, Lsn(5));
                let lsns: Vec<_> = recovered.records.iter().map(|r| r.lsn).collect();
                assert_eq!(lsns, [Lsn(6), Lsn(7), Lsn(8)]);
                assert_eq!(recovered.stop_reason, None);
            }
            // The same, cut inside the last record.
            ("base-5-torn-tail.wal", Ok((_, recovered))) => {
                assert_eq!(recovered.base, Lsn(5));
                let lsns: Vec<_> = recovered.records.iter().map(|r| r.lsn).collect();
                assert_eq!(lsns, [Lsn(6), Lsn(7)]);
                assert!(matches!(
                    recovered.stop_reason,
                    Some(TailProblem::Torn { .. })
                ));
            }
            ("torn-tail.bin", Ok((_, recovered))) => {
                assert_eq!(recovered.records.len(), 2);
                assert!(matches!(
                    recovered.stop_reason,
                    Some(TailProblem::Torn { .. })
                ));
            }
            ("damaged.bin", Err(WalError::Damaged { damage, .. })) => {
                assert_eq!((damage.kept, damage.lost_through), (Lsn(0), Lsn(3)));
            }
            // Zeros where the second record should be, the third intact after them: damage.
            ("hole.bin", Err(WalError::Damaged { damage, .. })) => {
                assert_eq!((damage.kept, damage.lost_through), (Lsn(1), Lsn(3)));
                assert!(matches!(damage.problem, TailProblem::Hole { .. }));
            }
            (_, Ok((_, recovered))) => {
                assert_eq!(recovered.records.len(), 3, "{name}");
                assert_eq!(recovered.stop_reason, None, "{name}");
            }
            (_, Err(error)) => panic!("{name}: {error}"),
        }
    }
}

/// The fuzz entry points accept their own seeds, and the seeds with every byte changed in
/// turn (the first mutations a fuzzer tries).
#[cfg(feature = "fuzzing")]
#[test]
fn the_fuzz_entry_points_hold_on_the_seeds_and_their_one_byte_mutations() {
    use hadr_node::fuzzing;
    for (target, entry) in [
        ("frame_decode", fuzzing::frame_decode as fn(&[u8])),
        ("wal_recover", fuzzing::wal_recover),
    ] {
        for (_, seed) in corpus(target) {
            entry(&seed);
            for position in (0..seed.len()).step_by(3) {
                let mut mutated = seed.clone();
                mutated[position] ^= 0x5a;
                entry(&mutated);
            }
            entry(&seed[..seed.len() / 2]);
        }
    }
}
