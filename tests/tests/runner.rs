//! The VM runner itself: a busybox-only initramfs whose `/init` ends the guest in the way the kernel command
//! line asks, and the runner must say which way it was.

use std::time::Duration;

use anyhow::Result;
use system_tests::{EXIT_TIMEOUT, LINE_TIMEOUT, Vm, VmConfig, VmExit, kernel, scratch};
use xtask::assemble::{Content, Node, Tree};
use xtask::vm::VmError;

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "runner-test: mode=$mode"
case "$mode" in
	panic) exit 3 ;;
	reboot) /bin/busybox reboot -f ;;
	hang) while :; do /bin/busybox sleep 1; done ;;
esac
/bin/busybox poweroff -f
"#;

fn mini_vm(mode: &str) -> Result<VmConfig> {
    let dir = scratch(&format!("runner-{mode}"))?;
    let busybox = std::path::Path::new("/bin/busybox");
    let size = std::fs::metadata(busybox)?.len();
    let mut tree = Tree::new();
    tree.mkdir_all("proc", 0o755);
    tree.mkdir_all("dev", 0o755);
    tree.insert(
        "bin/busybox",
        Node::file(Content::Path(busybox.into()), size, 0o755),
    );
    tree.insert("init", Node::bytes(INIT, 0o755));
    let initrd = dir.join("initrd.img");
    tree.write_cpio(std::fs::File::create(&initrd)?)?;
    let mut config = VmConfig::new(
        kernel()?,
        initrd,
        &format!("console=ttyS0 quiet mode={mode}"),
        &dir,
    );
    config.memory_mib = 256;
    Ok(config)
}

fn run_to_exit(mode: &str) -> Result<VmExit> {
    let mut vm = Vm::start(&mini_vm(mode)?)?;
    vm.wait_for_line(&format!("runner-test: mode={mode}"), LINE_TIMEOUT)?;
    Ok(vm.wait_exit(EXIT_TIMEOUT))
}

#[test]
fn poweroff_is_reported_as_powered_off() -> Result<()> {
    assert_eq!(run_to_exit("poweroff")?, VmExit::PoweredOff);
    Ok(())
}

#[test]
fn reboot_is_reported_as_rebooted() -> Result<()> {
    assert_eq!(run_to_exit("reboot")?, VmExit::Rebooted);
    Ok(())
}

#[test]
fn pid1_exiting_is_reported_as_a_panic() -> Result<()> {
    assert_eq!(run_to_exit("panic")?, VmExit::Panicked);
    Ok(())
}

#[test]
fn a_hung_guest_is_killed_at_the_timeout() -> Result<()> {
    let mut vm = Vm::start(&mini_vm("hang")?)?;
    vm.wait_for_line("runner-test: mode=hang", LINE_TIMEOUT)?;
    assert_eq!(vm.wait_exit(Duration::from_secs(3)), VmExit::TimedOut);
    Ok(())
}

#[test]
fn waiting_for_a_line_fails_fast_when_the_guest_ends() -> Result<()> {
    let mut vm = Vm::start(&mini_vm("poweroff")?)?;
    match vm.wait_for_line("a line that never comes", LINE_TIMEOUT) {
        Err(VmError::EndedEarly { exit, .. }) => assert_eq!(exit, VmExit::PoweredOff),
        other => panic!("expected EndedEarly, got {other:?}"),
    }
    Ok(())
}
