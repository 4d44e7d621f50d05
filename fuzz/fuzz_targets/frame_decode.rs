//! Bytes → peer frames: no panic; every decoded frame re-encodes to the same bytes and decodes
//! to the same frame; the body decoders are reached through a sealed `kind + body` input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hadr_node::fuzzing::frame_decode(data));
