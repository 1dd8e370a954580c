#![no_main]
//! cargo-fuzz target: `hydra::fuzzing::chunked` (see src/fuzzing.rs for the properties it checks).
libfuzzer_sys::fuzz_target!(|data: &[u8]| hydra::fuzzing::chunked(data));
