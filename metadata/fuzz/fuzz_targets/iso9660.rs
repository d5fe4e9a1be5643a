#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| metadata::fuzzing::iso9660(data));
