//! LinuxKit's own package tests, with guestkit's images in place of LinuxKit's.
//!
//! One boot:
//! - `040_packages/013_metadata/000_cidata`'s blueprint: the kernel package, init and runc only, metadata
//!   from `guestkit/metadata` as an onboot container with no `files:` entry for its `/etc/ssl/certs` bind
//!   (the init image carries the directory, as `linuxkit/init` does), a NoCloud CD-ROM, a check container
//!   that finds the provider and the userdata in `/run/config` and prints `metadata test suite PASSED`,
//!   then a poweroff container.
//! - Before the check, a container binds every host path LinuxKit's packages bind (getty, sshd, metadata,
//!   modprobe, kmsg, memlogd, logwrite, openntpd) that exists at onboot time in an init+runc image: runc
//!   refuses a bind whose source is missing, so the container runs only when every source is there.
//!
//! Another boot: `040_packages/007_getty-containerd`: `examples/getty.yml` (init, runc, containerd and the
//! getty service, root's password from `/etc/getty.shadow`); after a password login on ttyS0, `ctr` and
//! `runc`, bound by the getty package from the init image into the getty container (which has no glibc),
//! run there: `ctr --version`, `runc --version` and `ctr -n services.linuxkit tasks ls` listing getty.

use anyhow::{Context, Result, ensure};
use std::time::Duration;

use system_tests::{
    EXIT_TIMEOUT, LINE_TIMEOUT, SocketSerialVm, VmExit, assemble, assemble_yaml, boot, scratch,
    workspace_file,
};

/// The userdata on the CD-ROM; the check looks for the secret in it, as LinuxKit's test does.
const USERDATA: &str = "{\"secret\": {\"content\": \"supersecret\\n\"}}\n";

/// LinuxKit's `000_cidata/test.yml` with guestkit's images (and a check script that runs on busybox).
const CIDATA_BLUEPRINT: &str = r#"
kernel:
  image: guestkit/kernel:6.1
  cmdline: "console=ttyS0"
init:
  - guestkit/init:dev
  - guestkit/runc:dev
onboot:
  - name: metadata
    image: guestkit/metadata:dev
    command: ["/usr/bin/metadata", "-v"]
  - name: binds
    image: debian/busybox
    binds:
      - /etc/resolv.conf:/etc/resolv.conf
      - /etc/ssl/certs:/etc/ssl/certs
      - /etc:/hostroot/etc
      - /usr/bin/runc:/usr/bin/runc
      - /containers:/containers
      - /var/log:/var/log
      - /var/run:/var/run
      - /run:/run
      - /tmp:/tmp
      - /dev:/dev
      - /sys:/sys
      - /lib/modules:/lib/modules
      - /dev/kmsg:/dev/kmsg
    command: ["/bin/sh", "-c", "ls /lib/modules/*/modules.dep >/dev/null && echo 'binds: every LinuxKit bind source is there'"]
  - name: test
    image: debian/busybox
    binds:
      - /check.sh:/check.sh
      - /run:/run
    command: ["sh", "./check.sh"]
  - name: poweroff
    image: debian/busybox
    command: ["/sbin/poweroff", "-f"]
    pid: host
    readonly: true
    capabilities:
      - CAP_SYS_BOOT
files:
  - path: check.sh
    contents: |
      #!/bin/sh
      failed() {
        printf "metadata test suite FAILED\n"
        exit 1
      }
      DEVICE=/dev/sr0
      [ -f /run/config/provider ] || failed
      [ "$(cat /run/config/provider)" = "CDROM ${DEVICE}" ] || failed
      [ -f /run/config/userdata ] || failed
      grep -q supersecret /run/config/userdata || failed
      printf "metadata test suite PASSED\n"
"#;

#[test]
fn linuxkit_cidata_test_passes_with_guestkit_images_and_every_bind_source_exists() -> Result<()> {
    let dir = scratch("linuxkit-cidata-iso")?;
    let iso = system_tests::cidata_iso(&dir, USERDATA, "iid-linuxkit-cidata")?;
    let mut config = assemble_yaml(CIDATA_BLUEPRINT, "linuxkit-cidata")?;
    config
        .extra_args
        .extend(["-cdrom".to_string(), iso.display().to_string()]);
    let mut vm = boot(&config)?;
    for line in [
        "binds: every LinuxKit bind source is there",
        "metadata test suite PASSED",
    ] {
        vm.wait_for_line(line, LINE_TIMEOUT)
            .with_context(|| format!("waiting for {line:?}"))?;
    }
    assert_eq!(vm.wait_exit(EXIT_TIMEOUT), VmExit::PoweredOff);
    let console = vm.console().text();
    assert!(
        !console.contains("metadata test suite FAILED"),
        "the check failed"
    );
    Ok(())
}

/// root's password in `examples/getty.yml`'s `etc/getty.shadow`.
const ROOT_PASSWORD: &str = "guestkit";

/// How often an unanswered console gets another Enter.
const PROMPT_EVERY: Duration = Duration::from_secs(3);

#[test]
fn ctr_and_runc_run_inside_the_getty_container() -> Result<()> {
    let config = assemble(&workspace_file("examples/getty.yml"), "linuxkit-getty-ctr")?;
    let mut vm = SocketSerialVm::start(&config)?;
    let tty = &vm.ttys0;
    tty.wait_for("getty: starting getty for ttyS0", LINE_TIMEOUT)?;
    tty.prompt_until("\r", " login: ", PROMPT_EVERY, LINE_TIMEOUT)?;
    tty.send("root\r")?;
    tty.wait_for("Password: ", LINE_TIMEOUT)?;
    tty.send(&format!("{ROOT_PASSWORD}\r"))?;
    tty.wait_for("(ns: getty) ", LINE_TIMEOUT)
        .context("no shell in the getty container")?;
    for (command, expected) in [
        (
            "ctr --version\r",
            "ctr github.com/containerd/containerd 1.6",
        ),
        ("runc --version\r", "runc version 1.1"),
        ("ctr -n services.linuxkit tasks ls\r", "RUNNING"),
    ] {
        tty.send(command)?;
        tty.wait_for(expected, LINE_TIMEOUT).with_context(|| {
            format!(
                "{} in the getty container: no {expected:?}; ttyS0 log: {}.log",
                command.trim(),
                tty.path().display()
            )
        })?;
    }
    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT)?;
    ensure!(exit == VmExit::PoweredOff, "guest ended {exit:?}");
    Ok(())
}
