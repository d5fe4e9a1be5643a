//! runtime.json: never panics, and whatever it accepts can be used in the supervisor's and `stop`'s
//! duration arithmetic without a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use service::runtime_json::parse_runtime_json;
use exercise::exercise;

#[path = "exercise.rs"]
mod exercise;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = parse_runtime_json(data, Path::new("/fuzz/runtime.json")) {
        exercise(&config);
    }
});
