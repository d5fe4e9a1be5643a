//! vsock-forwarder in a real guest (issue 6): the packaged `guestkit/vsudd:dev` service with its binds,
//! over `vsock_loopback` (CID 1) inside the guest and host <-> guest through qemu's `vhost-user-vsock-pci`
//! with `vhost-device-vsock` on the host, plus thousands of concurrent connections with bounded RSS. The guest
//! side is the scripts in `tests/guest/`; they report on the console as `vsock-test: ...` and copy the
//! forwarder's log there as `vsudd-log: ...`.

#[path = "vsock/guest.rs"]
mod guest;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use system_tests::{EXIT_TIMEOUT, LINE_TIMEOUT, VhostVsock, Vm, VmExit, assemble_yaml, boot};

/// How often [`expect`] looks for a guest script's `FAILED` line while it waits.
const FAILURE_CHECK: Duration = Duration::from_secs(5);

/// Waits for each pattern (up to `timeout` each); fails at once when a guest script reports `FAILED`. On
/// failure the error carries the guest scripts' own report lines.
fn expect(vm: &mut Vm, patterns: &[&str], timeout: Duration) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for pattern in patterns {
        let until = Instant::now() + timeout;
        let found = loop {
            let slice = FAILURE_CHECK.min(until.saturating_duration_since(Instant::now()));
            match vm.wait_for_line(pattern, slice) {
                Ok(line) => break Ok(line),
                Err(err) if Instant::now() >= until => break Err(err.into()),
                Err(_) if vm.console().text().contains("vsock-test: FAILED") => {
                    break Err(anyhow::anyhow!(
                        "the guest failed while waiting for {pattern:?}"
                    ));
                }
                Err(_) => {}
            }
        };
        match found {
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

/// The number after `key` (`"active: "`) in a report line.
fn count_after(line: &str, key: &str) -> Result<u64> {
    let start = line
        .find(key)
        .with_context(|| format!("no {key:?} in {line:?}"))?
        + key.len();
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("")
        .parse()
        .with_context(|| format!("{key:?} in {line:?} is not a number"))
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
            guest::vsudd_service(
                "vsudd",
                &[
                    "-inport",
                    "2374:unix:/run/echo.sock",
                    "-inport",
                    "2376:unix:/run/silent.sock",
                ],
            ),
            // A silent target: holds each connection while it retries a socket that never appears.
            guest::vsudd_service(
                "holder",
                &[
                    "-q",
                    "-connect-timeout",
                    "15m",
                    "-forward",
                    "unix:/run/silent.sock=unix:/run/nowhere.sock",
                ],
            ),
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
            // A client that closed (no half-close) is released although its target stays silent.
            "vsock-test: closed-client-released",
            "vsock-test: half-closed-client-released",
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

const BUFFER: u64 = 16 * 1024;
/// Clients connect in batches of this many, far below the listen backlog, so that a flood under TCG
/// cannot overrun it.
const PER_BATCH: u64 = 500;

/// The CI run: 2 000 connections held at once (the 10 000 run below takes far longer under TCG).
#[test]
fn vsock_loopback_holds_2000_connections_with_bounded_rss() -> Result<()> {
    hold_connections(2_000)
}

/// The full-scale run, kept out of CI for its length: `cargo nextest run -p system-tests --test vsock
/// --run-ignored ignored-only`.
#[test]
#[ignore = "10 000 connections under TCG take many minutes; run on demand"]
fn vsock_loopback_holds_10000_connections_with_bounded_rss() -> Result<()> {
    hold_connections(10_000)
}

/// vsudd forwards `many` client connections to the holder, which keeps them open until the counting
/// backend starts: vsudd's descriptors, RSS and counter reports are checked while all are held and after
/// they are released.
fn hold_connections(many: u64) -> Result<()> {
    let batches = many.div_ceil(PER_BATCH);
    let max = (many + 2000).to_string();
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
                    format!("BATCHES={batches}"),
                    format!("PER_BATCH={PER_BATCH}"),
                    "WAIT_SECONDS=600".to_string(),
                ],
            ),
        ],
        &[guest::modprobe_hook("vsock_loopback")],
    )?;
    let mut config = assemble_yaml(&yaml, &format!("vsock-many-{many}"))?;
    config.memory_mib = 1536;
    config.timeout = Duration::from_secs(1800);
    let mut vm = boot(&config)?;
    // Longer than the guest's own 600 s per condition, so that its FAILED line comes first.
    let slow = Duration::from_secs(900);
    let lines = expect(
        &mut vm,
        &[
            "vsock-test: idle rss-kB=",
            "vsock-test: held connections=",
            "vsock-test: report-held Totals:",
            "vsock-test: released",
            "vsock-test: report-released Totals:",
            "vsock-test: done",
        ],
        slow,
    )?;
    let (idle, held, report_held, report_released) = (&lines[0], &lines[1], &lines[2], &lines[4]);
    assert_eq!(number(held, "connections")?, many, "{held}");
    // Exactly a vsock and a unix socket per connection beyond the idle descriptors: a connection that
    // ended (or was never wanted) but is still held would show here.
    assert_eq!(
        number(held, "fds")?,
        number(idle, "fds")? + 2 * many,
        "{idle}\n{held}"
    );
    let growth_kib = number(held, "rss-kB")?.saturating_sub(number(idle, "rss-kB")?);
    // At most two copy buffers and 16 KiB of bookkeeping per connection (the host test's bound).
    let bound_kib = many * (2 * BUFFER + 16 * 1024) / 1024;
    eprintln!(
        "vsudd RSS growth with {many} connections: {growth_kib} KiB ({} bytes per connection), bound {bound_kib} KiB",
        growth_kib * 1024 / many
    );
    assert!(growth_kib <= bound_kib, "{idle}\n{held}");
    let counts = |line: &str| -> Result<[u64; 4]> {
        Ok([
            count_after(line, "connections: ")?,
            count_after(line, "active: ")?,
            count_after(line, "closed: ")?,
            count_after(line, "failed to connect: ")?,
        ])
    };
    assert_eq!(counts(report_held)?, [many, many, 0, 0], "{report_held}");
    assert_eq!(
        counts(report_released)?,
        [many, 0, many, 0],
        "{report_released}"
    );
    assert_eq!(count_after(report_released, "bytes read: ")?, many);
    assert_eq!(count_after(report_released, "written: ")?, many * 8);
    let text = vm.console().text();
    let batch_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("vsock-test: cps\t"))
        .collect();
    assert_eq!(batch_lines.len() as u64, batches, "{batch_lines:?}");
    for batch in &batch_lines {
        assert!(
            batch.contains("\tfailed=0\t"),
            "a client lost its reply: {batch}"
        );
    }
    power_off(&mut vm)
}
