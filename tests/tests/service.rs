//! `service` in a booted guest (issue 4, "VM tests"), in one boot to keep TCG time down:
//! - an onboot container creates a veth (`runtime.interfaces`) and binds its network namespace
//!   (`runtime.bindNS.net`); a service joins it with `net: /run/netns/<x>`, sees the veth end, configures it
//!   and pings the peer that an init.d hook configured in the root namespace (and the hook pings back);
//! - a writable container's overlay takes writes (landing in its tmpfs upper layer) and a read-only one
//!   refuses them, even though both share the same image files;
//! - a volume written by the first onboot container is seen by the next one and by an onshutdown container;
//! - `service ls` / `status` in the guest, a graceful `stop` (the service's TERM trap runs, exit status 0)
//!   and a `restart`, and the services' logs in `/var/log/<name>.log` and `<name>.out.log`;
//! - onshutdown output on the console after the power button, then a clean power-off.
//!
//! Every check is evaluated against the whole console, and all failures are reported together.

use std::time::Duration;

use anyhow::{Result, bail};
use system_tests::{EXIT_TIMEOUT, LINE_TIMEOUT, VmExit, assemble_yaml, boot};

/// The blueprint. The hook `030-check` runs in the root namespaces after `020-containerd` started the
/// services; every line it prints starts with `check: `.
const BLUEPRINT: &str = r#"
kernel:
  image: guestkit/kernel:6.1
  cmdline: "console=ttyS0"
init:
  - guestkit/init:dev
  - guestkit/runc:dev
  - guestkit/containerd:dev
volumes:
  - name: shared
onboot:
  - name: netns
    image: debian/busybox
    net: new
    command: ["/bin/sh", "-c", "echo \"netns-onboot: links: $(ls /sys/class/net | tr '\\n' ' ')\""]
    runtime:
      interfaces:
        - name: vguest
          add: veth
          peer: vhost
      bindNS:
        net: /run/netns/svc
  - name: writer
    image: debian/busybox
    binds:
      - shared:/shared
    command:
      - /bin/sh
      - -c
      - |
        echo "written by the writer" > /written-by-writer || echo "writer: rootfs write failed"
        echo "writer: rootfs read back: $(cat /written-by-writer)"
        echo "shared by the writer" > /shared/note || echo "writer: volume write failed"
        echo "writer: volume written"
  - name: reader
    image: debian/busybox
    readonly: true
    # runc cannot create a mount point in a read-only rootfs (LinuxKit #2503): use a directory the image has.
    binds:
      - shared:/etc:ro
    command:
      - /bin/sh
      - -c
      - |
        if touch /reader-was-here 2>/dev/null; then echo "reader: rootfs write ALLOWED"; else echo "reader: rootfs write refused"; fi
        if [ -e /written-by-writer ]; then echo "reader: sees the writer's file"; else echo "reader: rootfs has no writer file"; fi
        echo "reader: volume holds: $(cat /etc/note)"
        if touch /etc/reader 2>/dev/null; then echo "reader: volume write ALLOWED"; else echo "reader: volume write refused"; fi
onshutdown:
  - name: goodbye
    image: debian/busybox
    binds:
      - shared:/shared:ro
    command:
      - /bin/sh
      - -c
      - |
        echo "onshutdown: volume still holds: $(cat /shared/note)"
        echo "onshutdown suite PASSED"
services:
  - name: logsvc
    image: debian/busybox
    command:
      - /bin/sh
      - -c
      - |
        echo "logsvc: to stdout"
        echo "logsvc: to stderr" >&2
        trap 'echo "logsvc: got TERM" > /dev/console; exit 0' TERM
        while :; do sleep 1; done
    binds:
      - /dev/console:/dev/console
    devices:
      - path: /dev/console
        type: c
        major: 5
        minor: 1
        mode: "0666"
  - name: netsvc
    image: debian/busybox
    net: /run/netns/svc
    capabilities:
      - CAP_NET_ADMIN
      - CAP_NET_RAW
    command:
      - /bin/sh
      - -c
      - |
        ip link set lo up
        ip addr add 10.200.0.2/24 dev vguest
        ip link set vguest up
        echo "netsvc: links: $(ls /sys/class/net | tr '\n' ' ')" > /dev/console
        i=0
        until ping -c 1 -W 1 10.200.0.1 > /dev/null 2>&1; do
          i=$((i + 1))
          if [ $i -gt 120 ]; then echo "netsvc: ping of 10.200.0.1 FAILED" > /dev/console; break; fi
          sleep 0.5
        done
        [ $i -gt 120 ] || echo "netsvc: pinged 10.200.0.1 in the root namespace" > /dev/console
        trap 'exit 0' TERM
        while :; do sleep 1; done
    binds:
      - /dev/console:/dev/console
    devices:
      - path: /dev/console
        type: c
        major: 5
        minor: 1
        mode: "0666"
files:
  - path: etc/init.d/030-check
    mode: "0755"
    contents: |
      #!/bin/sh
      say() { echo "check: $*"; }
      prefix() { sed "s/^/check: $1: /"; }
      say "root links: $(ls /sys/class/net | tr '\n' ' ')"
      [ -e /run/netns/svc ] && say "netns bound at /run/netns/svc"
      ip addr add 10.200.0.1/24 dev vhost && ip link set vhost up && say "vhost configured"
      i=0
      until ping -c 1 -W 1 10.200.0.2 > /dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 120 ]; then say "ping of netsvc FAILED"; break; fi
        sleep 0.5
      done
      [ $i -gt 120 ] || say "root pinged netsvc at 10.200.0.2"
      say "writer upper layer holds: $(cat /containers/onboot/001-writer/tmp/upper/written-by-writer)"
      say "volume merged holds: $(cat /containers/volumes/shared/merged/note)"
      prefix "onboot log" < /var/log/onboot/onboot.001-writer.out.log
      i=0
      until grep -q "to stderr" /var/log/logsvc.log 2>/dev/null || [ $i -gt 100 ]; do i=$((i + 1)); sleep 0.2; done
      prefix out.log < /var/log/logsvc.out.log
      prefix err.log < /var/log/logsvc.log
      service ls 2>&1 | prefix ls
      service status logsvc 2>&1 | prefix status
      service stop logsvc 2>&1 | prefix stop
      service status logsvc 2>&1 | prefix stopped
      service restart logsvc 2>&1 | prefix restart
      service status logsvc 2>&1 | prefix restarted
      say "done"
"#;

/// The console lines (after their prefix) that start with `prefix`.
fn lines_after<'a>(console: &'a str, prefix: &str) -> Vec<&'a str> {
    console
        .lines()
        .filter_map(|line| line.find(prefix).map(|at| &line[at + prefix.len()..]))
        .collect()
}

/// Collects failed expectations instead of stopping at the first.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            self.failures.push(what.to_string());
        }
    }

    fn line(&mut self, console: &str, pattern: &str) {
        self.check(
            console.contains(pattern),
            &format!("no console line with {pattern:?}"),
        );
    }

    /// A line starting with `prefix` lists links that include `present` and not `absent`.
    fn links(&mut self, console: &str, prefix: &str, present: &str, absent: &str) {
        let lines = lines_after(console, prefix);
        self.check(
            lines
                .iter()
                .any(|l| l.split_whitespace().any(|w| w == present) && !l.contains(absent)),
            &format!("{prefix:?} should list {present} and not {absent}: {lines:?}"),
        );
    }

    /// `pattern` appears in the console, and before `later`.
    fn before(&mut self, console: &str, pattern: &str, later: &str) {
        match (console.find(pattern), console.find(later)) {
            (Some(a), Some(b)) => self.check(a < b, &format!("{pattern:?} after {later:?}")),
            _ => self
                .failures
                .push(format!("{pattern:?} or {later:?} missing")),
        }
    }
}

fn network_checks(checks: &mut Checks, console: &str) {
    checks.links(console, "netns-onboot: links: ", "vguest", "vhost");
    checks.line(console, "Created interface vguest type veth");
    checks.links(console, "check: root links: ", "vhost", "vguest");
    checks.line(console, "check: netns bound at /run/netns/svc");
    checks.links(console, "netsvc: links: ", "vguest", "vhost");
    checks.line(console, "check: root pinged netsvc at 10.200.0.2");
    checks.line(console, "netsvc: pinged 10.200.0.1 in the root namespace");
}

fn filesystem_checks(checks: &mut Checks, console: &str) {
    checks.line(console, "writer: rootfs read back: written by the writer");
    checks.line(console, "writer: volume written");
    checks.line(
        console,
        "check: writer upper layer holds: written by the writer",
    );
    checks.line(console, "check: onboot log: writer: volume written");
    checks.line(console, "reader: rootfs write refused");
    checks.line(console, "reader: rootfs has no writer file");
    checks.line(console, "reader: volume holds: shared by the writer");
    checks.line(console, "reader: volume write refused");
    checks.line(console, "check: volume merged holds: shared by the writer");
}

fn service_command_checks(checks: &mut Checks, console: &str) {
    checks.line(console, "check: out.log: logsvc: to stdout");
    checks.line(console, "check: err.log: logsvc: to stderr");
    let ls = lines_after(console, "check: ls: ");
    for name in ["logsvc", "netsvc"] {
        checks.check(
            ls.iter()
                .any(|l| l.split_whitespace().take(2).eq([name, "running"])),
            &format!("`service ls` shows no running {name}: {ls:?}"),
        );
    }
    checks.check(
        ls.iter().any(|l| l.contains("/var/log/logsvc.log")),
        &format!("`service ls` shows no log path for logsvc: {ls:?}"),
    );
    for line in [
        "check: status: name: logsvc",
        "check: status: state: running",
        "check: status: stdout: /var/log/logsvc.out.log",
        "check: status: stderr: /var/log/logsvc.log",
        "check: stopped: state: absent",
        "check: stopped: exit status: 0",
        "check: stopped: stopped by user: true",
        "check: restarted: state: running",
    ] {
        checks.line(console, line);
    }
    checks.before(console, "logsvc: got TERM", "check: stopped: ");
    let before = lines_after(console, "check: status: pid: ");
    let after = lines_after(console, "check: restarted: pid: ");
    checks.check(
        before.len() == 1 && after.len() == 1 && before != after && after != ["0"],
        &format!("`service restart` should start a new task: pid {before:?} then {after:?}"),
    );
    checks.check(
        !console.contains("did not exit within"),
        "a TERM-handling service was killed instead of stopped gracefully",
    );
}

fn shutdown_checks(checks: &mut Checks, console: &str) {
    checks.before(console, "check: done", "onshutdown suite PASSED");
    checks.line(
        console,
        "onshutdown: volume still holds: shared by the writer",
    );
    // Once by `service stop`, once more by the graceful stop of every service at shutdown.
    let terms = console.matches("logsvc: got TERM").count();
    checks.check(
        terms == 2,
        &format!("logsvc saw TERM {terms} times, expected 2"),
    );
}

#[test]
fn service_netns_overlay_volume_commands_logs_and_onshutdown() -> Result<()> {
    let mut config = assemble_yaml(BLUEPRINT, "service-vm")?;
    // A deadline against hangs only: three boot phases plus a graceful shutdown under TCG.
    config.timeout = Duration::from_secs(480);
    let mut vm = boot(&config)?;
    let log = vm.console().log_path().to_path_buf();
    vm.wait_for_line("check: done", LINE_TIMEOUT * 3)?;
    // netsvc pings on its own schedule; give it the time the hook gave the other direction.
    let _ = vm.wait_for_line("netsvc: ping", LINE_TIMEOUT);
    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT * 2);
    let console = vm.console().text();
    let mut checks = Checks::default();
    network_checks(&mut checks, &console);
    filesystem_checks(&mut checks, &console);
    service_command_checks(&mut checks, &console);
    shutdown_checks(&mut checks, &console);
    checks.check(
        exit == VmExit::PoweredOff,
        &format!("the guest ended with {exit:?}, not a power-off"),
    );
    if !checks.failures.is_empty() {
        bail!(
            "{} check(s) failed (console log: {}):\n  {}",
            checks.failures.len(),
            log.display(),
            checks.failures.join("\n  ")
        );
    }
    Ok(())
}

/// A crash-looping service whose blueprint sets `org.guestkit.restart: on-failure` through `annotations:`
/// (what `linuxkit build` passes through into config.json) is restarted by `service supervise`, with the
/// restarts visible on the console and counted by `service status`.
const RESTART_BLUEPRINT: &str = r#"
kernel:
  image: guestkit/kernel:6.1
  cmdline: "console=ttyS0"
init:
  - guestkit/init:dev
  - guestkit/runc:dev
  - guestkit/containerd:dev
services:
  - name: crasher
    image: debian/busybox
    command: ["/bin/sh", "-c", "echo crasher-run > /dev/console; sleep 1; exit 3"]
    binds:
      - /dev/console:/dev/console
    devices:
      - path: /dev/console
        type: c
        major: 5
        minor: 1
        mode: "0666"
    annotations:
      org.guestkit.restart: on-failure
      org.guestkit.restart.backoff: "0.5"
      org.guestkit.restart.max-backoff: "2"
files:
  - path: etc/init.d/030-status
    mode: "0755"
    contents: |
      #!/bin/sh
      (sleep 8; /usr/bin/service status crasher | sed 's/^/status: /' > /dev/console) &
"#;

#[test]
fn a_crash_looping_service_is_restarted_by_the_policy_from_its_annotations() -> Result<()> {
    let config = assemble_yaml(RESTART_BLUEPRINT, "service-restart-policy")?;
    let mut vm = boot(&config)?;
    vm.wait_for_line(
        "Service \"crasher\" exited with status 3: restarting",
        LINE_TIMEOUT,
    )?;
    let policy = vm.wait_for_line("status: restart policy:", LINE_TIMEOUT)?;
    assert!(policy.contains("on-failure"), "{policy}");
    let restarts = vm.wait_for_line("status: restarts:", LINE_TIMEOUT)?;
    let count: u32 = restarts
        .rsplit(' ')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(count >= 1, "expected restarts, got {restarts:?}");
    assert!(
        vm.console().text().matches("crasher-run").count() >= 2,
        "the service ran only once"
    );
    vm.power_button()?;
    assert_eq!(vm.wait_exit(EXIT_TIMEOUT), VmExit::PoweredOff);
    Ok(())
}
