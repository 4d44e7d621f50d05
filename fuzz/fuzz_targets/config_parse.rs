//! TOML/JSON bytes → AgConfig: no panic; an accepted configuration round-trips; an error says
//! something and an invalid configuration names a rule.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hadr_types::fuzzing::config_parse(data));
