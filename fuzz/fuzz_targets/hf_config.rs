#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| k2_fuzzing::hf_config(data));
