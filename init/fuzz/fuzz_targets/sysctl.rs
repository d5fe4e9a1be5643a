//! sysctl.d files: never panic, and no accepted key escapes /proc/sys.
#![no_main]

use std::path::Component;

use init::sysctl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for setting in sysctl::parse(text).into_iter().flatten() {
        assert!(
            setting
                .path
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        );
    }
});
