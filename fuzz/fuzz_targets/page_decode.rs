//! Bytes → one page of a data file → decode, as they are and resealed: no panic; a page is
//! accepted only when its checksum matches, and encodes back to exactly its bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hadr_node::fuzzing::page_decode(data));
