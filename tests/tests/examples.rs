//! Every blueprint in `examples/` boots through the images the package build produced and shows its feature
//! working on the console.

use anyhow::Result;
use system_tests::{
    EXIT_TIMEOUT, LINE_TIMEOUT, VmExit, assemble, boot, expect_lines, workspace_file,
};

/// Init's console line for `/` when the initramfs's `.` entry is 0755 root:root (init prints it before it
/// would fix a world-writable root, so it shows what the assembler wrote).
const ROOT_LINE: &str = "root: / is 0755, owned by 0:0";

#[test]
fn minimal_runs_onboot_containers_in_order_and_powers_off() -> Result<()> {
    let config = assemble(&workspace_file("examples/minimal.yml"), "example-minimal")?;
    let mut vm = boot(&config)?;
    vm.wait_for_line(ROOT_LINE, LINE_TIMEOUT)?;
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
        &[
            ROOT_LINE,
            "services: client fetched: served by the web service",
        ],
    )?;
    vm.power_button()?;
    assert_eq!(vm.wait_exit(EXIT_TIMEOUT), VmExit::PoweredOff);
    Ok(())
}

#[test]
fn vsock_forwards_a_host_connection_to_a_guest_service() -> Result<()> {
    use std::io::{Read, Write};

    let mut config = assemble(&workspace_file("examples/vsock.yml"), "example-vsock")?;
    let vsock = system_tests::VhostVsock::start(&config.workdir, 3)?;
    vsock.attach(&mut config);
    let mut vm = boot(&config)?;
    vm.wait_for_line(ROOT_LINE, LINE_TIMEOUT)?;
    vm.wait_for_line("Starting service: \"web\"", LINE_TIMEOUT)?;
    let deadline = std::time::Instant::now() + LINE_TIMEOUT;
    let page = loop {
        // vhost-device-vsock does not pass the guest's half-close on as EOF: read until the page is there.
        let attempt = vsock.connect(5000).and_then(|mut stream| {
            stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
            stream.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut reply = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&reply).contains("served over vsock") {
                match stream.read(&mut buf)? {
                    0 => break,
                    n => reply.extend_from_slice(&buf[..n]),
                }
            }
            Ok(String::from_utf8_lossy(&reply).into_owned())
        });
        match attempt {
            Ok(reply) if reply.contains("served over vsock") => break reply,
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(500))
            }
            other => anyhow::bail!("no page over vsock: {other:?}"),
        }
    };
    assert!(
        page.starts_with("HTTP/1.1 200") || page.starts_with("HTTP/1.0 200"),
        "{page}"
    );
    vm.power_button()?;
    assert_eq!(vm.wait_exit(EXIT_TIMEOUT), VmExit::PoweredOff);
    Ok(())
}
