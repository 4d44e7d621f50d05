//! T-SQL bytes → Script → AgConfig: no panic; an error points inside the text; an accepted
//! CREATE AVAILABILITY GROUP round-trips through render_create unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hadr_types::fuzzing::tsql_parse(data));
