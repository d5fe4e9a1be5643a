//! The walking skeleton: `examples/hello.yml` boots our init as PID 1, runs the onboot container with runc,
//! starts the service through containerd, and powers off cleanly on the ACPI power button.

use anyhow::Result;
use system_tests::{EXIT_TIMEOUT, VmExit, assemble, boot, expect_lines, workspace_file};

/// Init's console line for `/` when the initramfs's `.` entry is 0755 root:root.
const ROOT_LINE: &str = "root: / is 0755, owned by 0:0";

#[test]
fn hello_blueprint_runs_onboot_and_service_then_powers_off() -> Result<()> {
    let config = assemble(&workspace_file("examples/hello.yml"), "skeleton")?;
    let mut vm = boot(&config)?;
    let lines = expect_lines(
        &mut vm,
        &[
            // `/` as the assembler wrote it (init prints it before it would fix a world-writable one).
            ROOT_LINE,
            "hello from onboot: Linux 6.",
            "hello from the greeter service",
        ],
    )?;
    assert!(lines[1].contains("hello from onboot"), "{lines:?}");
    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        exit,
        VmExit::PoweredOff,
        "console log: {}",
        vm.console().log_path().display()
    );
    Ok(())
}
