#![no_main]
//! cargo-fuzz target: `hydra::fuzzing::token` (see src/fuzzing.rs for the properties it checks).
libfuzzer_sys::fuzz_target!(|data: &[u8]| hydra::fuzzing::token(data));
