//! libFuzzer entry point; the body is `fuzz_targets::result`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::result(data));
