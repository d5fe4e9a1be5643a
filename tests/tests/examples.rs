//! Every blueprint in `examples/` boots through the images the package build produced and shows its feature
//! working on the console.

use anyhow::Result;
use system_tests::{
    EXIT_TIMEOUT, LINE_TIMEOUT, VmExit, assemble, boot, expect_lines, workspace_file,
};

#[test]
fn minimal_runs_onboot_containers_in_order_and_powers_off() -> Result<()> {
    let config = assemble(&workspace_file("examples/minimal.yml"), "example-minimal")?;
    let mut vm = boot(&config)?;
    vm.wait_for_line("minimal: hello from", LINE_TIMEOUT)?;
    assert_eq!(vm.wait_exit(EXIT_TIMEOUT), VmExit::PoweredOff);
    let console = vm.console().text();
    let hello = console.find("onboot 000-hello").expect("000-hello ran");
    let poweroff = console
        .find("onboot 001-poweroff")
        .expect("001-poweroff ran");
    assert!(hello < poweroff, "onboot containers ran out of order");
    Ok(())
}

#[test]
fn services_talk_to_each_other_over_the_host_network() -> Result<()> {
    let config = assemble(&workspace_file("examples/services.yml"), "example-services")?;
    let mut vm = boot(&config)?;
    expect_lines(
        &mut vm,
        &["services: client fetched: served by the web service"],
    )?;
    vm.power_button()?;
    assert_eq!(vm.wait_exit(EXIT_TIMEOUT), VmExit::PoweredOff);
    Ok(())
}
