//! getty in a real guest (issue 7), typed on from the test through unix-socket chardevs: ttyS0 (the
//! kernel console, on a socket instead of the harness's read-only pipe) and hvc0 (a qemu `virtconsole`).
//!
//! - `examples/getty.yml`, getty as a containerd service: a wrong password is refused, root logs in with
//!   the password from `/etc/getty.shadow` on both consoles, a command's output comes back, `exit` brings
//!   the prompt back, and the VM powers off cleanly with the service running.
//! - getty under `init:` (the `001-getty` hook): a root shell on both consoles without a password, while the
//!   boot goes on past the hook to the onboot container.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use system_tests::{
    EXIT_TIMEOUT, LINE_TIMEOUT, SocketConsole, SocketSerialVm, VmConfig, VmExit, assemble,
    assemble_yaml, workspace_file,
};

/// root's password in `examples/getty.yml`'s `etc/getty.shadow`.
const ROOT_PASSWORD: &str = "guestkit";

/// The command typed in each shell: its output (`MARK-42 /dev/<tty>`) cannot be the echo of the typing.
const MARK_COMMAND: &str = "echo MARK-$((40+2)) $(tty)\r";

/// How often an unanswered console gets another Enter.
const PROMPT_EVERY: Duration = Duration::from_secs(3);

/// The motd line printed after a login and before the shell starts.
const MOTD: &str = "Welcome to a guestkit getty.";

/// Adds hvc0 on a socket, boots with ttyS0 on a socket too, and connects to hvc0.
fn boot_with_hvc0(mut config: VmConfig) -> Result<(SocketSerialVm, SocketConsole)> {
    let hvc0 = SocketConsole::add_virtconsole(&mut config, "hvc0");
    let vm = SocketSerialVm::start(&config)?;
    let hvc0 = SocketConsole::connect(&hvc0, Duration::from_secs(30))?;
    Ok((vm, hvc0))
}

/// Types `root` and `password` at the next ` login: ` prompt.
fn enter_credentials(console: &SocketConsole, password: &str) -> Result<()> {
    console.prompt_until("\r", " login: ", PROMPT_EVERY, LINE_TIMEOUT)?;
    console.send("root\r")?;
    console.wait_for("Password: ", LINE_TIMEOUT)?;
    console.send(&format!("{password}\r"))
}

/// Runs [`MARK_COMMAND`] in the shell on `console` and checks its output names `tty`.
fn run_mark_command(console: &SocketConsole, tty: &str) -> Result<()> {
    console.send(MARK_COMMAND)?;
    let want = format!("MARK-42 /dev/{tty}");
    console
        .wait_for(&want, LINE_TIMEOUT)
        .with_context(|| format!("the shell on {tty} did not run the command"))?;
    Ok(())
}

/// A password login as root on `tty`, a command, `exit`, and the login prompt again.
fn password_session(console: &SocketConsole, tty: &str) -> Result<()> {
    enter_credentials(console, ROOT_PASSWORD)?;
    console
        .wait_for(MOTD, LINE_TIMEOUT)
        .with_context(|| format!("root's password from getty.shadow was refused on {tty}"))?;
    // The service's shells say which namespace they run in, as LinuxKit's do.
    console.wait_for("(ns: getty) ", LINE_TIMEOUT)?;
    run_mark_command(console, tty)?;
    console.send("exit\r")?;
    console
        .wait_for(" login: ", LINE_TIMEOUT)
        .with_context(|| format!("no login prompt on {tty} after the shell exited"))?;
    Ok(())
}

#[test]
fn getty_service_logs_root_in_with_the_getty_shadow_password_on_ttys0_and_hvc0() -> Result<()> {
    let config = assemble(&workspace_file("examples/getty.yml"), "getty-service")?;
    let (mut vm, hvc0) = boot_with_hvc0(config)?;

    // A wrong password: refused, and the prompt comes back.
    hvc0.wait_for("getty: starting getty for hvc0", LINE_TIMEOUT)?;
    enter_credentials(&hvc0, "not-the-password")?;
    let refused = hvc0.wait_for_any(&["Login incorrect", MOTD], LINE_TIMEOUT)?;
    ensure!(
        refused.0 == 0,
        "a wrong password logged in: {:?}",
        refused.1
    );
    hvc0.wait_for(" login: ", LINE_TIMEOUT)?;

    // `/` as the assembler wrote it (init prints it before it would fix a world-writable one; the
    // console's lines are matched in order, so before getty's).
    vm.ttys0
        .wait_for("root: / is 0755, owned by 0:0", LINE_TIMEOUT)?;
    vm.ttys0
        .wait_for("getty: starting getty for ttyS0", LINE_TIMEOUT)?;
    password_session(&vm.ttys0, "ttyS0")?;
    password_session(&hvc0, "hvc0")?;

    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT)?;
    ensure!(
        exit == VmExit::PoweredOff,
        "guest ended {exit:?}; ttyS0 log: {}.log",
        vm.ttys0.path().display()
    );
    Ok(())
}

/// getty under `init:` and an onboot container that runs only once the `/etc/init.d` hooks returned.
const INIT_MODE: &str = r#"
kernel:
  image: guestkit/kernel:6.1
  cmdline: "console=hvc0 console=ttyS0"
init:
  - guestkit/init:dev
  - guestkit/runc:dev
  - guestkit/containerd:dev
  - guestkit/getty:dev
onboot:
  - name: after-getty
    image: debian/busybox
    command: ["/bin/sh", "-c", "echo getty-init: onboot ran after the hooks"]
"#;

#[test]
fn getty_in_init_gives_a_root_shell_on_ttys0_and_hvc0_and_the_boot_goes_on() -> Result<()> {
    let config = assemble_yaml(INIT_MODE, "getty-init")?;
    let (mut vm, hvc0) = boot_with_hvc0(config)?;

    for (console, tty) in [(&vm.ttys0, "ttyS0"), (&hvc0, "hvc0")] {
        console
            .wait_for("login: root (automatic login)", LINE_TIMEOUT)
            .with_context(|| format!("no autologin on {tty}"))?;
        run_mark_command(console, tty)?;
    }
    // The onboot line may come before or after the shell's output on ttyS0: look in all of it.
    let until = Instant::now() + LINE_TIMEOUT;
    while !vm
        .ttys0
        .text()
        .contains("getty-init: onboot ran after the hooks")
    {
        ensure!(
            Instant::now() < until,
            "the boot did not continue past 001-getty to the onboot container"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Logging out starts a new automatic login.
    hvc0.send("exit\r")?;
    hvc0.wait_for("login: root (automatic login)", LINE_TIMEOUT)?;
    run_mark_command(&hvc0, "hvc0")?;

    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT)?;
    ensure!(
        exit == VmExit::PoweredOff,
        "guest ended {exit:?}; ttyS0 log: {}.log",
        vm.ttys0.path().display()
    );
    Ok(())
}
