//! libFuzzer entry point; the body is `fuzz_targets::store`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::store(data));
