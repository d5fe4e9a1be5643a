//! The vsock benchmark (issue 6), in a guest over `vsock_loopback`: `vsock-forwarder/bench/run.sh vsock`
//! compares the forwarder with `socat VSOCK-LISTEN:…,fork UNIX-CONNECT:…` on the same counting backend in
//! the same boot (throughput with 1 and 4 streams, connections per second) and prints medians and
//! forwarder/socat ratios. Not a test: run it with
//!
//!     cargo xtask images && cargo run -p system-tests --example vsock_bench
//!
//! `BYTES` (per throughput run, default 64 MiB), `CONNECTIONS` (default 1000), `ROUNDS` (default 3),
//! `CONCURRENCY` and `STREAMS` are passed to the guest. TCG makes absolute numbers meaningless; compare ratios.

#[allow(dead_code)] // the benchmark starts its own forwarder next to socat
#[path = "../tests/vsock/guest.rs"]
mod guest;

use std::time::Duration;

use anyhow::{Result, bail};
use system_tests::{EXIT_TIMEOUT, assemble_yaml, boot};

fn main() -> Result<()> {
    let env: Vec<String> = ["BYTES", "CONNECTIONS", "ROUNDS", "CONCURRENCY", "STREAMS"]
        .iter()
        .filter_map(|key| std::env::var(key).ok().map(|v| format!("{key}={v}")))
        .collect();
    let yaml = guest::blueprint(
        &[guest::driver_service("vsock-bench.sh", &env)],
        &[guest::modprobe_hook("vsock_loopback")],
    )?;
    let mut config = assemble_yaml(&yaml, "vsock-bench")?;
    config.timeout = Duration::from_secs(3600);
    let mut vm = boot(&config)?;
    let end = vm.wait_for_line("vsock-bench: end", config.timeout);
    for line in vm.console().text().lines() {
        if let Some(rest) = line.split_once("vsock-bench: ").map(|(_, r)| r) {
            println!("{rest}");
        } else if line.contains("vsock-test:") {
            println!("{line}");
        }
    }
    if let Err(err) = end {
        bail!("the benchmark did not finish: {err}");
    }
    let _ = vm.power_button();
    vm.wait_exit(EXIT_TIMEOUT);
    Ok(())
}
