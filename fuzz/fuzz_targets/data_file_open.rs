//! Bytes → a whole data file → open, walk, read every key: no panic; a file found consistent
//! reads back what its walk saw, takes writes and a checkpoint, and reopens to exactly them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hadr_node::fuzzing::data_file_open(data));
