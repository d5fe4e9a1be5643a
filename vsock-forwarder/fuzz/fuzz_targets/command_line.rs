//! The command line, vsudd's and ours: Go-style flag translation, clap, every spec, endpoint and number
//! into a `Config`. Arguments are the input split at NUL bytes; nothing may panic.
#![no_main]

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;
use vsock_forwarder::cli::Args;
use vsock_forwarder::config::Config;
use vsock_forwarder::endpoint::Endpoint;
use vsock_forwarder::limits;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args = std::iter::once("vsock-forwarder")
        .chain(text.split('\0'))
        .map(OsString::from);
    if let Ok(args) = Args::try_parse_command_line(args) {
        if let Ok(config) = Config::try_from(args) {
            let _ = config.limits.per_rule(config.rules.len());
        }
    }
    for piece in text.split('\0') {
        let _ = piece.parse::<Endpoint>();
        let _ = limits::parse_count("max-connections", piece, limits::MAX_CONNECTIONS);
        let _ = limits::parse_idle_timeout(piece);
    }
});
