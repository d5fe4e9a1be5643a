//! vsock-forwarder in a real guest (issue 6): the packaged `guestkit/vsudd:dev` service with its binds,
//! over `vsock_loopback` (CID 1) inside the guest and host <-> guest through qemu's `vhost-user-vsock-pci`
//! with `vhost-device-vsock` on the host, plus 10 000 concurrent connections with bounded RSS. The guest
//! side is the scripts in `tests/guest/`; they report on the console as `vsock-test: ...` and copy the
//! forwarder's log there as `vsudd-log: ...`.

#[path = "vsock/guest.rs"]
mod guest;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use system_tests::{EXIT_TIMEOUT, LINE_TIMEOUT, VhostVsock, Vm, VmExit, assemble_yaml, boot};

/// Waits for each pattern; on failure the error carries the guest scripts' own report lines.
fn expect(vm: &mut Vm, patterns: &[&str], timeout: Duration) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for pattern in patterns {
        match vm.wait_for_line(pattern, timeout) {
            Ok(line) => lines.push(line),
            Err(err) => {
                let report: Vec<String> = vm
                    .console()
                    .text()
                    .lines()
                    .filter(|l| l.contains("vsock-test:") || l.contains("vsudd-log:"))
                    .map(str::to_string)
                    .collect();
                bail!("{err}\nguest report:\n{}", report.join("\n"));
            }
        }
    }
    Ok(lines)
}

/// The value of `key=` in a `vsock-test:` line (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Result<&'a str> {
    let start = line
        .find(&format!("{key}="))
        .with_context(|| format!("no {key}= in {line:?}"))?
        + key.len()
        + 1;
    Ok(line[start..].split_whitespace().next().unwrap_or(""))
}

fn number(line: &str, key: &str) -> Result<u64> {
    field(line, key)?
        .parse()
        .with_context(|| format!("{key} in {line:?} is not a number"))
}

fn power_off(vm: &mut Vm) -> Result<()> {
    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    ensure!(
        exit == VmExit::PoweredOff,
        "guest ended {exit:?}; console log: {}",
        vm.console().log_path().display()
    );
    Ok(())
}

#[test]
fn vsock_loopback_echoes_both_ways_and_keeps_half_close() -> Result<()> {
    let yaml = guest::blueprint(
        &[
            guest::vsudd_service("vsudd", &["-inport", "2374:unix:/run/echo.sock"]),
            guest::driver_service("vsock-loopback.sh", &[]),
        ],
        &[guest::modprobe_hook("vsock_loopback")],
    )?;
    let config = assemble_yaml(&yaml, "vsock-loopback")?;
    let mut vm = boot(&config)?;
    let lines = expect(
        &mut vm,
        &[
            "vsock-test: loaded vsock_loopback",
            "vsudd-log: incoming port forward from 2374 to /run/echo.sock",
            "vsudd-log: Listening on port 2374",
            "vsock-test: ready",
            "vsock-test: echo ",
            "vsudd-log: Connection 1 to: 2374 from: 00000001.",
            "vsudd-log: 1 Done. read: 1048576 written: 1048593",
            "vsudd-log: Totals: connections: 1 active: 0 closed: 1 failed to connect: 0; bytes read: 1048576 written: 1048593",
            "vsock-test: done",
        ],
        LINE_TIMEOUT,
    )?;
    let echo = &lines[4];
    assert_eq!(number(echo, "sent-bytes")?, 1 << 20, "{echo}");
    assert_eq!(
        field(echo, "echoed-md5")?,
        field(echo, "sent-md5")?,
        "{echo}"
    );
    // The echo, a newline and "backend-saw-eof\n": the reply that the backend wrote after the client's
    // half-close still arrived.
    assert_eq!(number(echo, "received-bytes")?, (1 << 20) + 17, "{echo}");
    assert_eq!(field(echo, "last-line")?, "backend-saw-eof", "{echo}");
    power_off(&mut vm)
}

/// Serves one guest connection on the host: reads a line, answers `host-got:<line>` and closes (never
/// half-closes: vhost-device-vsock would shut the guest's side down entirely).
fn serve_one_guest_connection(listener: UnixListener, until: Instant) -> Result<String> {
    listener.set_nonblocking(true)?;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).context("no guest connection to host port 5000"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(LINE_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let line = line.trim_end().to_string();
    (&stream).write_all(format!("host-got:{line}\n").as_bytes())?;
    Ok(line)
}

#[test]
fn vsock_host_reaches_guest_socket_and_guest_reaches_host_through_vhost_user() -> Result<()> {
    let yaml = guest::blueprint(
        &[
            guest::vsudd_service(
                "vsudd",
                &[
                    "-inport",
                    "2374:unix:/run/echo.sock",
                    "-forward",
                    "unix:/run/host.sock=vsock:2:5000",
                ],
            ),
            guest::driver_service("vsock-host.sh", &[]),
        ],
        &[guest::modprobe_hook("vmw_vsock_virtio_transport")],
    )?;
    let mut config = assemble_yaml(&yaml, "vsock-host")?;
    let daemon = VhostVsock::start(&config.workdir, 3)?;
    daemon.attach(&mut config);
    let listener = UnixListener::bind(daemon.host_port(5000))?;
    let until = Instant::now() + config.timeout;
    let host_side = std::thread::spawn(move || serve_one_guest_connection(listener, until));
    let mut vm = boot(&config)?;
    expect(
        &mut vm,
        &[
            "vsudd-log: forward from unix:/run/host.sock to vsock:2:5000",
            "vsock-test: ready",
        ],
        LINE_TIMEOUT,
    )?;

    let mut stream = daemon.connect(2374)?;
    stream.write_all(b"ping-from-host\n")?;
    let mut echoed = String::new();
    BufReader::new(&stream).read_line(&mut echoed)?;
    assert_eq!(echoed, "ping-from-host\n");
    drop(stream);

    let lines = expect(
        &mut vm,
        &[
            "vsock-test: guest-to-host reply=",
            "to: 2374 from: 00000002.",
            "Done. read: 15 written: 15",
            "Done. read: 17 written: 26",
        ],
        LINE_TIMEOUT,
    )?;
    assert!(
        lines[0].ends_with("reply=host-got:hello-from-guest"),
        "{}",
        lines[0]
    );
    let got = host_side
        .join()
        .map_err(|_| anyhow::anyhow!("host listener thread panicked"))??;
    assert_eq!(got, "hello-from-guest");
    power_off(&mut vm)
}

const MANY: u64 = 10_000;
const BUFFER: u64 = 16 * 1024;
/// Clients connect in batches far below the listen backlog, so that a flood under TCG cannot overrun it.
const BATCHES: u64 = 20;

#[test]
fn vsock_loopback_holds_10000_connections_with_bounded_rss() -> Result<()> {
    let max = (MANY + 2000).to_string();
    let buffer = BUFFER.to_string();
    let yaml = guest::blueprint(
        &[
            guest::vsudd_service(
                "vsudd",
                &[
                    "-max-connections",
                    &max,
                    "-buffer-size",
                    &buffer,
                    "-inport",
                    "2375:unix:/run/hold.sock",
                ],
            ),
            guest::vsudd_service(
                "holder",
                &[
                    "-q",
                    "-max-connections",
                    &max,
                    "-connect-timeout",
                    "15m",
                    "-forward",
                    "unix:/run/hold.sock=unix:/run/count.sock",
                ],
            ),
            guest::driver_service(
                "vsock-many.sh",
                &[
                    format!("BATCHES={BATCHES}"),
                    format!("PER_BATCH={}", MANY / BATCHES),
                ],
            ),
        ],
        &[guest::modprobe_hook("vsock_loopback")],
    )?;
    let mut config = assemble_yaml(&yaml, "vsock-many")?;
    config.memory_mib = 1536;
    config.timeout = Duration::from_secs(1800);
    let mut vm = boot(&config)?;
    let slow = Duration::from_secs(900);
    let lines = expect(
        &mut vm,
        &[
            "vsock-test: idle rss-kB=",
            "vsock-test: held connections=",
            &format!("Totals: connections: {MANY} active: {MANY} closed: 0 failed to connect: 0"),
            "vsock-test: released",
            &format!(
                "Totals: connections: {MANY} active: 0 closed: {MANY} failed to connect: 0; bytes read: {MANY} written: {}",
                MANY * 8
            ),
            "vsock-test: done",
        ],
        slow,
    )?;
    let (idle, held) = (&lines[0], &lines[1]);
    assert_eq!(number(held, "connections")?, MANY, "{held}");
    // vsock and unix socket of each connection, plus the idle descriptors.
    assert!(number(held, "fds")? >= 2 * MANY, "{held}");
    let growth_kib = number(held, "rss-kB")?.saturating_sub(number(idle, "rss-kB")?);
    // At most two copy buffers and 16 KiB of bookkeeping per connection (the host test's bound).
    let bound_kib = MANY * (2 * BUFFER + 16 * 1024) / 1024;
    eprintln!(
        "vsudd RSS growth with {MANY} connections: {growth_kib} KiB ({} bytes per connection), bound {bound_kib} KiB",
        growth_kib * 1024 / MANY
    );
    assert!(growth_kib <= bound_kib, "{idle}\n{held}");
    let text = vm.console().text();
    let batches: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("vsock-test: cps\t"))
        .collect();
    assert_eq!(batches.len() as u64, BATCHES, "{batches:?}");
    for batch in &batches {
        assert!(
            batch.contains("\tfailed=0\t"),
            "a client lost its reply: {batch}"
        );
    }
    power_off(&mut vm)
}
