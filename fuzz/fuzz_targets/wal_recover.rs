//! Bytes → WAL file → recovery, with any header (version 1 or 2, any base, any checksum): no
//! panic; a header is read only when it is valid, and then with exactly the base it holds;
//! recovered LSNs are consecutive from base + 1, a damaged log is left as it was and
//! quarantined byte for byte, a torn tail is cut to a prefix, the log reopens to the same
//! records, accepts the next one, and drops a prefix of its records durably
//! (`truncate_through`) to a file that reopens with the new base. The checks are
//! `hadr_node::fuzzing::wal_recover`'s (also run on the seeds by `impl/node/tests/wire.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hadr_node::fuzzing::wal_recover(data));
