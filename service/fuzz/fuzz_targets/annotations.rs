//! config.json annotations: never panic, and whatever they set can be used in the supervisor's and
//! `stop`'s duration arithmetic without a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use service::annotations::{RESTART, apply, parse};
use service::runtime_json::RuntimeConfig;
use exercise::exercise;

#[path = "exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/fuzz/config.json");
    let Ok(mut annotations) = parse(data, file) else {
        return;
    };
    for policy in [None, Some("always")] {
        if let Some(policy) = policy {
            annotations.insert(RESTART.into(), policy.into());
        }
        let mut config = RuntimeConfig::default();
        if apply(&mut config, &annotations, file).is_ok() {
            exercise(&config);
        }
    }
});
