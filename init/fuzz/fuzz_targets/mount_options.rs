//! fstab-style option strings: never panic, and re-parsing the data part yields no flags.
#![no_main]

use init::mount_options::MountOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let parsed = MountOptions::parse(text);
    let again = MountOptions::parse(&parsed.data);
    assert!(again.flags.is_empty());
    assert_eq!(again.data, parsed.data);
});
