//! The shutdown tests: each trigger ends the guest the right way, after the onshutdown container ran and
//! with the data a process wrote to an ext4 virtio disk just before the request on the disk image
//! (read back on the host with `debugfs`, and the file system unmounted cleanly per `e2fsck -fn`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use system_tests::{EXIT_TIMEOUT, LINE_TIMEOUT, Vm, VmExit, assemble_yaml, boot};

use crate::guest::{Blueprint, Report, Stack, console_container};

/// What asks the guest to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// QMP `system_powerdown` (ACPI power button).
    PowerButton,
    /// QMP `send-key ctrl-alt-delete` (SIGINT to PID 1).
    CtrlAltDel,
    /// busybox `poweroff` in the guest (SIGUSR2 to PID 1).
    Poweroff,
    /// busybox `reboot` in the guest (SIGTERM to PID 1).
    Reboot,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::PowerButton => "power-button",
            Trigger::CtrlAltDel => "ctrl-alt-del",
            Trigger::Poweroff => "poweroff",
            Trigger::Reboot => "reboot",
        }
    }

    fn expected(self) -> (VmExit, &'static str) {
        match self {
            Trigger::PowerButton | Trigger::Poweroff => (VmExit::PoweredOff, "poweroff"),
            Trigger::CtrlAltDel | Trigger::Reboot => (VmExit::Rebooted, "reboot"),
        }
    }

    /// The guest command run right after the write, for triggers from inside.
    fn guest_command(self) -> &'static str {
        match self {
            Trigger::Poweroff => "poweroff",
            Trigger::Reboot => "reboot",
            Trigger::PowerButton | Trigger::CtrlAltDel => ":",
        }
    }
}

fn run_tool(program: &str, args: &[&str]) -> Result<std::process::Output> {
    Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (install e2fsprogs)"))
}

fn make_ext4(disk: &Path) -> Result<()> {
    std::fs::File::create(disk)?.set_len(32 << 20)?;
    let out = run_tool(
        "mkfs.ext4",
        &["-q", "-F", "-L", "initvm", &disk.display().to_string()],
    )?;
    ensure!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// What `/payload` holds on the image, and whether the file system is clean.
fn read_back(disk: &Path) -> Result<(String, std::process::Output)> {
    let image = disk.display().to_string();
    let cat = run_tool("debugfs", &["-R", "cat /payload", &image])?;
    let fsck = run_tool("e2fsck", &["-fn", &image])?;
    Ok((
        String::from_utf8_lossy(&cat.stdout).trim().to_string(),
        fsck,
    ))
}

/// Mounts the disk from a boot hook; once boot is over, a background process writes `token` (no sync),
/// says so, runs `command` and stays alive, so that shutdown has to stop it.
fn disk_hook(token: &str, command: &str) -> String {
    format!(
        r#"mkdir -p /run/disk
if mount -t ext4 /dev/vda /run/disk; then r disk-mounted; else r disk-mount-failed; fi
(
  wait_boot_end
  echo {token} > /run/disk/payload
  r payload-written
  {command}
  while :; do sleep 1; done
) &
"#
    )
}

/// Boots with an ext4 disk and an onshutdown container, triggers `trigger` right after the write and checks
/// the exit, the order of the shutdown steps on the console and the disk.
pub fn run(trigger: Trigger) -> Result<()> {
    let name = format!("init-shutdown-{}", trigger.name());
    let token = format!("written-before-{}-{}", trigger.name(), std::process::id());
    // The power button case also runs a service, so that the graceful service stop is part of it.
    let stack = if trigger == Trigger::PowerButton {
        Stack::Full
    } else {
        Stack::Runc
    };
    let mut blueprint = Blueprint::new(stack)
        .section(&format!(
            "onshutdown:\n{}",
            console_container("farewell", "echo initvm: onshutdown-ran")
        ))
        .hook("030-disk", &disk_hook(&token, trigger.guest_command()));
    if stack == Stack::Full {
        blueprint = blueprint.section(&format!(
            "services:\n{}",
            console_container("sleeper", "echo initvm: service-up; trap 'echo initvm: service-got-term; exit 0' TERM; while :; do sleep 1; done")
        ));
    }
    let mut config = assemble_yaml(&blueprint.yaml(), &name)?;
    let disk = config.workdir.join("disk.img");
    make_ext4(&disk)?;
    config.memory_mib = 768;
    config.extra_args.extend([
        "-drive".to_string(),
        format!("file={},if=virtio,format=raw", disk.display()),
    ]);
    let mut vm = boot(&config)?;
    if stack == Stack::Full {
        vm.wait_for_line("initvm: service-up", LINE_TIMEOUT)?;
    }
    vm.wait_for_line("initvm: payload-written", LINE_TIMEOUT)?;
    match trigger {
        Trigger::PowerButton => vm.power_button()?,
        Trigger::CtrlAltDel => vm.ctrl_alt_del()?,
        Trigger::Poweroff | Trigger::Reboot => {}
    }
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    let console = vm.console().text();
    let log = vm.console().log_path().display().to_string();
    let (want_exit, action) = trigger.expected();
    ensure!(
        exit == want_exit,
        "{} ended the guest {exit:?}, want {want_exit:?}; console log: {log}",
        trigger.name()
    );
    let report = Report::parse(&console);
    report
        .one("disk-mounted")
        .with_context(|| format!("console log: {log}"))?;
    let order = [
        format!("init: shutting down ({action})"),
        "initvm: onshutdown-ran".to_string(),
        "init: sending SIGTERM to all processes".to_string(),
        format!(
            "init: {}",
            if action == "reboot" {
                "rebooting"
            } else {
                "powering off"
            }
        ),
    ];
    let mut at = 0;
    for line in &order {
        let found = console[at..].find(line.as_str());
        at += found.with_context(|| {
            format!("no {line:?} after the previous shutdown step; console log: {log}")
        })?;
    }
    // Everything here exits on SIGTERM, so shutdown goes on as soon as it has, without SIGKILL.
    ensure!(
        !console.contains("init: sending SIGKILL"),
        "a process survived SIGTERM until the bound; console log: {log}"
    );
    if stack == Stack::Full {
        ensure!(
            console.contains("initvm: service-got-term"),
            "the service was not stopped; console log: {log}"
        );
    }
    let (payload, fsck) = read_back(&disk)?;
    ensure!(
        payload == token,
        "/payload on the disk image is {payload:?}, want {token:?}"
    );
    ensure!(
        fsck.status.success(),
        "the ext4 file system was not unmounted cleanly: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    Ok(())
}

/// A `timeline: <event> <ms> [<name>]` console line's milliseconds.
fn timeline_ms(console: &str, event: &str, name: &str) -> Result<u64> {
    console
        .lines()
        .filter_map(|l| l.split_once("timeline: ").map(|(_, rest)| rest))
        .find_map(|rest| {
            let mut w = rest.split_whitespace();
            (w.next() == Some(event)).then_some(())?;
            let ms = w.next()?.parse().ok()?;
            (w.next().unwrap_or("") == name).then_some(ms)
        })
        .with_context(|| format!("no `timeline: {event} <ms> {name}` line on the console"))
}

const BOUND_SECS: u64 = 3;

/// A background shell that ignores SIGTERM and, once the shutdown hooks ran, says it is alive every 0.2 s. With `guestkit.shutdown_timeout=3`, shutdown
/// must send SIGKILL and power off. The guest's own timeline bounds the wait: from the end of the last
/// shutdown hook (SIGTERM follows it) to `shutdown-end` is at least the bound (the process was waited
/// for) and at most the bound plus the 2 s SIGKILL grace plus a generous margin for a slow TCG guest.
pub fn term_ignorer() -> Result<()> {
    let blueprint = Blueprint::new(Stack::Init)
        .cmdline(&format!("guestkit.shutdown_timeout={BOUND_SECS}"))
        .hook(
            "030-ignorer",
            "( trap '' TERM; r ignorer-ready\n  while :; do [ -e /run/shutting-down ] && r alive-after-term; sleep 0.2; done ) &\n",
        )
        .shutdown_hook("099-last", "touch /run/shutting-down\n");
    let mut config = assemble_yaml(&blueprint.yaml(), "init-term-ignorer")?;
    config.memory_mib = 512;
    let mut vm: Vm = boot(&config)?;
    vm.wait_for_line("initvm: ignorer-ready", LINE_TIMEOUT)?;
    vm.wait_for_line("init: boot complete", LINE_TIMEOUT)?;
    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    let console = vm.console().text();
    let log = vm.console().log_path().display().to_string();
    ensure!(
        exit == VmExit::PoweredOff,
        "guest ended {exit:?}; console log: {log}"
    );
    let term = console
        .find("init: sending SIGTERM to all processes")
        .with_context(|| format!("no SIGTERM step on the console; console log: {log}"))?;
    let killed = console
        .find("init: sending SIGKILL to all processes")
        .with_context(|| format!("no SIGKILL step on the console; console log: {log}"))?;
    ensure!(
        term < killed && console[term..killed].contains("initvm: alive-after-term"),
        "the TERM-ignoring process was not seen alive between SIGTERM and SIGKILL; console log: {log}"
    );
    let hooks_done = timeline_ms(&console, "hook-end", "/etc/shutdown.d/099-last")?;
    let end = timeline_ms(&console, "shutdown-end", "poweroff")?;
    let waited = end.saturating_sub(hooks_done);
    let bound = BOUND_SECS * 1000;
    ensure!(
        waited >= bound,
        "shutdown took {waited} ms after SIGTERM: it did not wait the {bound} ms bound"
    );
    ensure!(
        waited <= bound + 2000 + 20_000,
        "shutdown took {waited} ms after SIGTERM, far past the {bound} ms bound; console log: {log}"
    );
    Ok(())
}

/// `guestkit.shutdown_timeout` of the wedged-shutdown test.
const WEDGE_BOUND_SECS: u64 = 3;

/// The seconds in init's `killed <what> after <secs>s` warning (the first such line).
fn killed_after(console: &str, what: &str) -> Result<f64> {
    let prefix = format!("killed {what} after ");
    let rest = console
        .lines()
        .find_map(|l| l.split_once(prefix.as_str()).map(|(_, rest)| rest))
        .with_context(|| format!("no `{prefix}...` line on the console"))?;
    let secs = rest.split_once('s').map_or(rest, |(secs, _)| secs);
    secs.parse()
        .with_context(|| format!("`{prefix}{rest}`: no seconds"))
}

/// A shutdown hook that never exits (`exec sleep 100000`) and a containerd that stops answering (SIGSTOP)
/// in one boot with `guestkit.shutdown_timeout=3`: init kills the hook when the hooks' share (2T) is spent,
/// kills `service shutdown` when its share is spent, acknowledges a second press of the power button, and
/// powers off, with the data written before the request on the ext4 disk. Each step has its own console
/// line, so the two causes stay apart. Asserted: the guest powered off by itself (not the harness timeout)
/// and init abandoned each wait at (not before) its bound; the times are printed, not asserted.
pub fn wedged() -> Result<()> {
    let token = format!("written-before-wedge-{}", std::process::id());
    let stop_containerd = "kill -STOP $(pidof containerd) && r containerd-stopped";
    let blueprint = Blueprint::new(Stack::Full)
        .cmdline(&format!("guestkit.shutdown_timeout={WEDGE_BOUND_SECS}"))
        .section(&format!(
            "services:\n{}",
            console_container(
                "sleeper",
                "echo initvm: service-up; trap 'exit 0' TERM; while :; do sleep 1; done"
            )
        ))
        .hook("030-disk", &disk_hook(&token, stop_containerd))
        .shutdown_hook("005-hang", "r hang-hook-running\nexec sleep 100000\n");
    let mut config = assemble_yaml(&blueprint.yaml(), "init-shutdown-wedged")?;
    let disk = config.workdir.join("disk.img");
    make_ext4(&disk)?;
    config.memory_mib = 768;
    config.extra_args.extend([
        "-drive".to_string(),
        format!("file={},if=virtio,format=raw", disk.display()),
    ]);
    let mut vm = boot(&config)?;
    vm.wait_for_line("initvm: service-up", LINE_TIMEOUT)?;
    vm.wait_for_line("initvm: payload-written", LINE_TIMEOUT)?;
    vm.wait_for_line("initvm: containerd-stopped", LINE_TIMEOUT)?;
    vm.power_button()?;
    vm.wait_for_line("initvm: hang-hook-running", LINE_TIMEOUT)?;
    vm.power_button()?;
    vm.wait_for_line(
        "init: poweroff requested during shutdown: already shutting down",
        LINE_TIMEOUT,
    )?;
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    let console = vm.console().text();
    let log = vm.console().log_path().display().to_string();
    ensure!(
        exit == VmExit::PoweredOff,
        "guest ended {exit:?}; console log: {log}"
    );
    let order = [
        "init: shutting down (poweroff)",
        "initvm: hang-hook-running",
        "killed shutdown hook /etc/shutdown.d/005-hang after ",
        "skipping shutdown hook /etc/shutdown.d/010-onshutdown",
        "init: starting /usr/bin/service shutdown",
        "killed /usr/bin/service shutdown after ",
        "init: sending SIGTERM to all processes",
        "init: powering off",
    ];
    let mut at = 0;
    for line in order {
        at += console[at..].find(line).with_context(|| {
            format!("no {line:?} after the previous shutdown step; console log: {log}")
        })?;
    }
    // The hooks and `service shutdown` each get 2T.
    let bound = 2.0 * WEDGE_BOUND_SECS as f64;
    let hook = killed_after(&console, "shutdown hook /etc/shutdown.d/005-hang")?;
    let service = killed_after(&console, "/usr/bin/service shutdown")?;
    ensure!(
        hook >= bound && service >= bound,
        "a wait was abandoned before its {bound}s share (hook {hook}s, service {service}s); console log: {log}"
    );
    let start = timeline_ms(&console, "shutdown-start", "poweroff")?;
    let end = timeline_ms(&console, "shutdown-end", "poweroff")?;
    eprintln!(
        "wedged shutdown: hook killed after {hook:.1}s, service shutdown after {service:.1}s, \
         shutdown took {} ms in the guest (bound {}s: 7T + 3 kill waits of 2 s)",
        end.saturating_sub(start),
        7 * WEDGE_BOUND_SECS + 6
    );
    let (payload, fsck) = read_back(&disk)?;
    ensure!(
        payload == token,
        "/payload on the disk image is {payload:?}, want {token:?}; console log: {log}"
    );
    ensure!(
        fsck.status.success(),
        "the ext4 file system was not unmounted cleanly: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    Ok(())
}
