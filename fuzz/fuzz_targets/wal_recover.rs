//! Bytes → WAL file → recovery: no panic; recovered LSNs are consecutive from 1, the file is cut
//! to a prefix, reopens to the same records and accepts the next one.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hadr_node::fuzzing::wal_recover(data));
