//! The guest side shared by `tests/vsock.rs` and `examples/vsock_bench.rs`: blueprints whose services are
//! the packaged `guestkit/vsudd:dev` plus a busybox driver that runs a script from `tests/guest/` with the
//! host-built tools under `/vsock-test` (the musl `vsock-forwarder-bench`, the host's socat with its
//! libraries). Nothing here goes into the packages.

use anyhow::Result;
use system_tests::{guest_binary, program_with_libraries, workspace_file};

/// Loads a transport module from the root filesystem before the containers start (`/sbin/modprobe` is
/// our init in modprobe mode).
pub fn modprobe_hook(module: &str) -> String {
    format!(
        "  - path: etc/init.d/001-{module}\n    mode: \"0755\"\n    contents: |\n      #!/bin/sh\n      /sbin/modprobe {module} && echo \"vsock-test: loaded {module}\"\n"
    )
}

fn file(guest: &str, host: &std::path::Path, mode: &str) -> String {
    format!(
        "  - path: {guest}\n    source: \"{}\"\n    mode: \"{mode}\"\n",
        host.display()
    )
}

/// The `files:` entries putting the test tools and scripts under `/vsock-test`.
pub fn tool_files() -> Result<String> {
    let mut out = String::from("  - path: var/log\n    directory: true\n");
    out += &file(
        "vsock-test/bin/vsock-forwarder-bench",
        &guest_binary("vsock-forwarder-bench")?,
        "0755",
    );
    out += &file(
        "vsock-test/bin/vsock-forwarder",
        &guest_binary("vsock-forwarder")?,
        "0755",
    );
    let (socat, libs) = program_with_libraries("socat")?;
    out += &file("vsock-test/lib/socat", &socat, "0755");
    for (name, path) in libs {
        out += &file(&format!("vsock-test/lib/{name}"), &path, "0755");
    }
    out += &file(
        "vsock-test/bin/socat",
        &workspace_file("tests/guest/socat"),
        "0755",
    );
    for script in [
        "vsock-lib.sh",
        "echo-backend.sh",
        "vsock-loopback.sh",
        "vsock-host.sh",
        "vsock-many.sh",
        "vsock-bench.sh",
    ] {
        out += &file(
            &format!("vsock-test/guest/{script}"),
            &workspace_file(&format!("tests/guest/{script}")),
            "0755",
        );
    }
    out += &file(
        "vsock-test/bench/run.sh",
        &workspace_file("vsock-forwarder/bench/run.sh"),
        "0755",
    );
    Ok(out)
}

/// A service entry running the packaged forwarder with `/run` bound (as LinuxKit's vsudd examples do).
pub fn vsudd_service(name: &str, args: &[&str]) -> String {
    let command: Vec<String> = std::iter::once("/vsudd")
        .chain(args.iter().copied())
        .map(|a| format!("{a:?}"))
        .collect();
    format!(
        "  - name: {name}\n    image: guestkit/vsudd:dev\n    binds:\n      - /run:/run\n    command: [{}]\n",
        command.join(", ")
    )
}

/// The busybox driver service running `script` (from `tests/guest/`) with `env` (`KEY=value` entries).
pub fn driver_service(script: &str, env: &[String]) -> String {
    let env: Vec<String> = env.iter().map(|e| format!("{e:?}")).collect();
    format!(
        r#"  - name: vsock-test
    image: debian/busybox
    pid: host
    capabilities: [all]
    env: [{}]
    binds:
      - /dev/console:/dev/console
      - /run:/run
      - /var/log:/var/log
      - /vsock-test:/vsock-test
    devices:
      - path: /dev/console
        type: c
        major: 5
        minor: 1
        mode: "0666"
    command: ["/bin/sh", "/vsock-test/guest/{script}"]
"#,
        env.join(", ")
    )
}

/// A whole blueprint: our init, runc and containerd, the given services, the tools and `hooks`.
pub fn blueprint(services: &[String], hooks: &[String]) -> Result<String> {
    Ok(format!(
        "kernel:\n  image: guestkit/kernel:6.1\n  cmdline: \"console=ttyS0\"\ninit:\n  - guestkit/init:dev\n  - guestkit/runc:dev\n  - guestkit/containerd:dev\nservices:\n{}files:\n{}{}",
        services.concat(),
        tool_files()?,
        hooks.concat()
    ))
}
