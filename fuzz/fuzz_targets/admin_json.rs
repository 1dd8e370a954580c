#![no_main]
//! cargo-fuzz target: `hydra::fuzzing::admin_json` (see src/fuzzing.rs for the properties it checks).
libfuzzer_sys::fuzz_target!(|data: &[u8]| hydra::fuzzing::admin_json(data));
