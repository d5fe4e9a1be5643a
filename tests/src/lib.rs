//! System-test helpers: assemble a blueprint with the images `cargo xtask images` wrote, boot it under
//! qemu and wait for console lines with deadlines.
//!
//! A missing prerequisite (qemu, the kernel image, the guest images) makes a test **fail** with a message
//! naming the command that provides it; nothing is skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
pub use xtask::vm::{Vm, VmConfig, VmExit};
use xtask::{Paths, build};

/// How long a test waits for a console line: generous, because TCG on a loaded 2-core machine is slow and
/// the guest clock is skewed. This is a deadline against hangs, not a performance assertion.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a guest may take to go down after it was asked to.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace paths.
pub fn paths() -> Paths {
    Paths::new()
}

/// A test's own scratch directory under `out/test/<name>`, emptied first.
pub fn scratch(name: &str) -> Result<PathBuf> {
    let dir = paths().out().join("test").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Builds `dir/cidata.iso`, a NoCloud CD-ROM (volume id `cidata`) holding `user_data` and a `meta-data` with
/// `instance_id`.
pub fn cidata_iso(dir: &Path, user_data: &str, instance_id: &str) -> Result<PathBuf> {
    let tree = dir.join("cidata");
    std::fs::create_dir_all(&tree)?;
    std::fs::write(tree.join("user-data"), user_data)?;
    std::fs::write(
        tree.join("meta-data"),
        format!("instance-id: {instance_id}\n"),
    )?;
    let iso = dir.join("cidata.iso");
    let out = std::process::Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(&iso)
        .arg(&tree)
        .output()
        .context("running genisoimage: it is missing (apt-get install genisoimage; scripts/install-deps does)")?;
    ensure!(
        out.status.success(),
        "genisoimage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(iso)
}

/// Fails unless the image store holds the kernel and guest images.
pub fn require_images() -> Result<PathBuf> {
    let store = paths().store();
    for image in [
        "debian/kernel/latest/rootfs/kernel",
        "guestkit/kernel/6.1.tar",
        "guestkit/init/dev.tar",
        "debian/busybox/latest.tar",
    ] {
        if !store.join(image).exists() {
            bail!(
                "{} is missing: run `cargo xtask images` (scripts/test does) first",
                store.join(image).display()
            );
        }
    }
    Ok(store)
}

/// The kernel boot file from the store.
pub fn kernel() -> Result<PathBuf> {
    Ok(require_images()?.join("debian/kernel/latest/rootfs/kernel"))
}

/// Assembles `blueprint` into the test's scratch directory and returns a VM configuration for it.
pub fn assemble(blueprint: &Path, test: &str) -> Result<VmConfig> {
    let store = require_images()?;
    let dir = scratch(test)?;
    let built = build::to_dir(blueprint, &store, &dir.join("image"))?;
    Ok(VmConfig::new(
        &built.kernel,
        &built.initrd,
        &built.cmdline,
        &dir,
    ))
}

/// Writes `yaml` as the test's blueprint (next to the workspace's `examples/`, so relative image paths
/// resolve the same way) and assembles it.
pub fn assemble_yaml(yaml: &str, test: &str) -> Result<VmConfig> {
    let dir = paths().out().join("test-blueprints");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{test}.yml"));
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    assemble(&path, test)
}

/// A workspace-relative path (e.g. `examples/hello.yml`).
pub fn workspace_file(rel: &str) -> PathBuf {
    paths().workspace.join(rel)
}

/// Boots a configuration, failing with a clear message when qemu is missing.
pub fn boot(config: &VmConfig) -> Result<Vm> {
    Vm::start(config).context("booting the VM")
}

/// Waits for each pattern in turn.
pub fn expect_lines(vm: &mut Vm, patterns: &[&str]) -> Result<Vec<String>> {
    patterns
        .iter()
        .map(|p| vm.wait_for_line(p, LINE_TIMEOUT).map_err(Into::into))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Host programs in the guest and host<->guest vsock (added for the vsock-forwarder VM tests, issue 6).
// ---------------------------------------------------------------------------------------------------------

/// A static guest binary that `cargo xtask images` built (for example `vsock-forwarder-bench`).
pub fn guest_binary(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths().workspace.join("target"));
    let path = target
        .join(xtask::images::GUEST_TARGET)
        .join("release")
        .join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo xtask images` with the same CARGO_TARGET_DIR first",
            path.display()
        );
    }
    Ok(path)
}

/// A dynamically linked host program and the shared libraries `ldd` resolves for it, each as (the name
/// the program asks for, the real file), for copying into a guest directory and running there through its
/// own `ld-linux-x86-64.so.2 --library-path`.
pub fn program_with_libraries(program: &str) -> Result<(PathBuf, Vec<(String, PathBuf)>)> {
    let path = which(program).with_context(|| {
        format!("{program} is not installed on the host (apt-get install {program})")
    })?;
    let out = std::process::Command::new("ldd")
        .arg(&path)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let (name, file) = match line.split_once("=>") {
            Some((name, rest)) => (name.trim().to_string(), rest.split_whitespace().next()),
            None => {
                let file = line
                    .split_whitespace()
                    .next()
                    .filter(|w| w.starts_with('/'));
                let name = file.and_then(|f| Path::new(f).file_name());
                (
                    name.map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    file,
                )
            }
        };
        if let Some(file) = file.filter(|f| f.starts_with('/')) {
            let real = std::fs::canonicalize(file).with_context(|| format!("resolving {file}"))?;
            libs.push((name, real));
        }
    }
    if !out.status.success() || libs.is_empty() {
        bail!("ldd {} found no libraries: {text}", path.display());
    }
    Ok((path, libs))
}

fn which(program: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A `vhost-device-vsock` daemon serving one VM's `vhost-user-vsock-pci` device; killed on drop.
/// Guest `connect(2, P)` arrives on the unix socket [`VhostVsock::host_port`]`(P)`; [`VhostVsock::connect`]
/// reaches a guest port. Never half-close a host-side socket: the daemon turns that into a full shutdown.
#[derive(Debug)]
pub struct VhostVsock {
    child: std::process::Child,
    socket: PathBuf,
    uds: PathBuf,
}

impl VhostVsock {
    /// Starts the daemon with its sockets in `dir` for a guest with CID `guest_cid`.
    pub fn start(dir: &Path, guest_cid: u32) -> Result<Self> {
        let socket = dir.join("vhost.sock");
        let uds = dir.join("vm.vsock");
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(&uds);
        let log = std::fs::File::create(dir.join("vhost-device-vsock.log"))?;
        let child = std::process::Command::new("vhost-device-vsock")
            .arg("--guest-cid")
            .arg(guest_cid.to_string())
            .arg("--socket")
            .arg(&socket)
            .arg("--uds-path")
            .arg(&uds)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting vhost-device-vsock (scripts/install-deps installs it)")?;
        let daemon = Self { child, socket, uds };
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !daemon.socket.exists() {
            if std::time::Instant::now() > until {
                bail!(
                    "vhost-device-vsock did not create {}",
                    daemon.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    /// Adds the shared-memory backend and the `vhost-user-vsock-pci` device to `config`.
    pub fn attach(&self, config: &mut VmConfig) {
        let mem = config.memory_mib;
        config.extra_args.extend([
            "-object".into(),
            format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
            "-numa".into(),
            "node,memdev=mem".into(),
            "-chardev".into(),
            format!("socket,id=vvc,path={}", self.socket.display()),
            "-device".into(),
            "vhost-user-vsock-pci,chardev=vvc".into(),
        ]);
    }

    /// The unix socket path where guest connections to host port `port` arrive (bind it before the guest
    /// connects).
    pub fn host_port(&self, port: u32) -> PathBuf {
        PathBuf::from(format!("{}_{port}", self.uds.display()))
    }

    /// Connects to guest port `port` (`CONNECT p` / `OK p`); the stream is then plain bytes.
    pub fn connect(&self, port: u32) -> Result<std::os::unix::net::UnixStream> {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.uds)
            .with_context(|| format!("connecting to {}", self.uds.display()))?;
        stream.set_read_timeout(Some(LINE_TIMEOUT))?;
        stream.write_all(format!("CONNECT {port}\n").as_bytes())?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.last() != Some(&b'\n') {
            match stream.read(&mut byte)? {
                0 => bail!(
                    "vhost-device-vsock closed the connection to guest port {port} (nothing listening?)"
                ),
                _ => line.push(byte[0]),
            }
        }
        let line = String::from_utf8_lossy(&line);
        if !line.starts_with("OK ") {
            bail!("CONNECT {port} answered {line:?}");
        }
        Ok(stream)
    }
}

impl Drop for VhostVsock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------------------
// Consoles on unix-socket chardevs that a test types on (added for the getty VM tests, issue 7).
// qemu drops what a guest writes to a socket chardev while no client is connected, so connect right after
// boot, or keep prompting (send "\r") until the expected text appears.
// ---------------------------------------------------------------------------------------------------------

/// A guest console on a qemu unix-socket chardev: everything the guest writes is kept (carriage returns
/// removed) and copied to `<socket>.log`; [`SocketConsole::send`] types on it. [`SocketConsole::wait_for`]
/// reads like `expect`: each match consumes the text up to its end, so waiting for the same prompt twice
/// needs it to appear twice.
#[derive(Debug)]
pub struct SocketConsole {
    stream: std::os::unix::net::UnixStream,
    seen: std::sync::Arc<(std::sync::Mutex<SocketText>, std::sync::Condvar)>,
    path: PathBuf,
}

#[derive(Debug, Default)]
struct SocketText {
    text: String,
    cursor: usize,
    closed: bool,
}

impl SocketConsole {
    /// Adds a 16550 serial port (`ttyS<n>`, numbered after ttyS0 in the order added) on the socket
    /// `<workdir>/<id>.sock` to `config` and returns the socket path.
    pub fn add_serial(config: &mut VmConfig, id: &str) -> PathBuf {
        let path = config.workdir.join(format!("{id}.sock"));
        let _ = std::fs::remove_file(&path);
        config.extra_args.extend([
            "-chardev".into(),
            format!("socket,id={id},path={},server=on,wait=off", path.display()),
            "-serial".into(),
            format!("chardev:{id}"),
        ]);
        path
    }

    /// Adds a virtio console (`hvc<n>`, in the order added; the guest needs `virtio_console`) on the socket
    /// `<workdir>/<id>.sock` to `config` and returns the socket path.
    pub fn add_virtconsole(config: &mut VmConfig, id: &str) -> PathBuf {
        let path = config.workdir.join(format!("{id}.sock"));
        let _ = std::fs::remove_file(&path);
        config.extra_args.extend([
            "-device".into(),
            format!("virtio-serial-pci,id={id}-bus"),
            "-chardev".into(),
            format!("socket,id={id},path={},server=on,wait=off", path.display()),
            "-device".into(),
            format!("virtconsole,chardev={id},bus={id}-bus.0"),
        ]);
        path
    }

    /// Connects to the chardev socket at `path`, retrying until qemu has created it (up to `timeout`), and
    /// starts reading it in a thread.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self> {
        let until = std::time::Instant::now() + timeout;
        let stream = loop {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(err) if std::time::Instant::now() >= until => {
                    return Err(err).with_context(|| format!("connecting to {}", path.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let log_path = PathBuf::from(format!("{}.log", path.display()));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let seen = std::sync::Arc::new((
            std::sync::Mutex::new(SocketText::default()),
            std::sync::Condvar::new(),
        ));
        let reader = stream.try_clone().context("cloning the console socket")?;
        let shared = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || read_socket_console(reader, log, &shared));
        Ok(Self {
            stream,
            seen,
            path: path.to_path_buf(),
        })
    }

    /// Types `text` on the console (use `\r` for the Enter key).
    pub fn send(&self, text: &str) -> Result<()> {
        use std::io::Write;
        (&self.stream)
            .write_all(text.as_bytes())
            .with_context(|| format!("writing to {}", self.path.display()))
    }

    /// Waits up to `timeout` for `pattern` in the text after the previous match and returns that text up
    /// to the end of the match.
    pub fn wait_for(&self, pattern: &str, timeout: Duration) -> Result<String> {
        self.wait_for_any(&[pattern], timeout).map(|(_, text)| text)
    }

    /// Like [`SocketConsole::wait_for`], for the first of several patterns to appear; returns its index.
    pub fn wait_for_any(&self, patterns: &[&str], timeout: Duration) -> Result<(usize, String)> {
        let until = std::time::Instant::now() + timeout;
        let (lock, changed) = &*self.seen;
        let mut seen = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let rest = &seen.text[seen.cursor..];
            let hit = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| rest.find(p).map(|at| (at + p.len(), i)))
                .min();
            if let Some((end, index)) = hit {
                let text = rest[..end].to_string();
                seen.cursor += end;
                return Ok((index, text));
            }
            let now = std::time::Instant::now();
            if seen.closed || now >= until {
                bail!(
                    "no {patterns:?} on {} within {timeout:?}{}; unmatched output: {:?}",
                    self.path.display(),
                    if seen.closed { " (qemu closed it)" } else { "" },
                    &seen.text[seen.cursor..]
                );
            }
            seen = changed
                .wait_timeout(seen, until - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Sends `keys` every `every` until `pattern` appears (up to `timeout`): for prompts printed before
    /// the test connected, which qemu dropped.
    pub fn prompt_until(
        &self,
        keys: &str,
        pattern: &str,
        every: Duration,
        timeout: Duration,
    ) -> Result<String> {
        let until = std::time::Instant::now() + timeout;
        loop {
            self.send(keys)?;
            match self.wait_for(pattern, every) {
                Ok(text) => return Ok(text),
                Err(err) if std::time::Instant::now() >= until => return Err(err),
                Err(_) => {}
            }
        }
    }

    /// Everything the guest wrote so far.
    pub fn text(&self) -> String {
        let (lock, _) = &*self.seen;
        let seen = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.text.clone()
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_socket_console(
    mut reader: std::os::unix::net::UnixStream,
    mut log: std::fs::File,
    seen: &(std::sync::Mutex<SocketText>, std::sync::Condvar),
) {
    use std::io::{Read, Write};
    let echo = std::env::var_os("GUESTKIT_ECHO_CONSOLE").is_some();
    let mut buf = [0u8; 4096];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let (lock, changed) = seen;
        let mut state = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if n == 0 {
            state.closed = true;
            changed.notify_all();
            return;
        }
        let _ = log.write_all(&buf[..n]);
        if echo {
            let _ = std::io::stderr().write_all(&buf[..n]);
        }
        state.text.extend(
            String::from_utf8_lossy(&buf[..n])
                .chars()
                .filter(|&c| c != '\r'),
        );
        changed.notify_all();
    }
}

/// A VM whose first serial port (ttyS0, the kernel console) is a [`SocketConsole`] the test reads and
/// types on, instead of [`Vm`]'s read-only pipe. qemu waits for the test to connect before the guest
/// starts, so no output is lost; qemu's own messages go to `<workdir>/qemu.log`. Dropping it kills qemu.
#[derive(Debug)]
pub struct SocketSerialVm {
    child: std::process::Child,
    /// ttyS0.
    pub ttys0: SocketConsole,
    qmp: xtask::vm::Qmp,
    deadline: std::time::Instant,
}

impl SocketSerialVm {
    /// Boots `config` (which may carry more consoles in `extra_args`) with ttyS0 on `<workdir>/ttyS0.sock`.
    pub fn start(config: &VmConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.workdir)?;
        let serial = config.workdir.join("ttyS0.sock");
        let qmp_socket = config.workdir.join("qmp.sock");
        let _ = std::fs::remove_file(&serial);
        let _ = std::fs::remove_file(&qmp_socket);
        let log = std::fs::File::create(config.workdir.join("qemu.log"))?;
        let spec = format!("socket,id=con0,path={},server=on,wait=on", serial.display());
        let child = std::process::Command::new("qemu-system-x86_64")
            .args(config.qemu_args(&spec, &qmp_socket))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting qemu-system-x86_64 (install the qemu-system-x86 package)")?;
        let mut vm = Self {
            child,
            ttys0: SocketConsole::connect(&serial, Duration::from_secs(30))
                .context("qemu did not create its ttyS0 socket (see qemu.log)")?,
            qmp: xtask::vm::Qmp::connect(&qmp_socket, Duration::from_secs(30))
                .context("connecting to qemu's QMP socket")?,
            deadline: std::time::Instant::now() + config.timeout,
        };
        if let Some(status) = vm.child.try_wait()? {
            bail!(
                "qemu exited at once ({status}); see {}/qemu.log",
                config.workdir.display()
            );
        }
        Ok(vm)
    }

    /// Presses the ACPI power button (QMP `system_powerdown`).
    pub fn power_button(&mut self) -> Result<()> {
        self.qmp.execute("system_powerdown", None)?;
        Ok(())
    }

    /// Waits for qemu to exit (killing it at `timeout` or the configuration's hard timeout) and says how
    /// the guest ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<VmExit> {
        let until = (std::time::Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let reason = self.qmp.shutdown_reason();
                let panicked = self.ttys0.text().contains("Kernel panic");
                return Ok(xtask::vm::classify_exit(
                    status.code(),
                    reason.as_deref(),
                    panicked,
                ));
            }
            if std::time::Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ok(VmExit::TimedOut);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SocketSerialVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
