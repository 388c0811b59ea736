//! libFuzzer entry point; the body is `fuzz_targets::conf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::conf(data));
