#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| getty::fuzzing::accounts(data));
