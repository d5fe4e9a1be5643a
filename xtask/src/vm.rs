//! The VM runner: boots a kernel and initramfs under qemu (q35, TCG, PVH `vmlinux`), captures the serial
//! console to a file while making it searchable with deadlines, talks QMP, enforces a hard timeout and says
//! how the guest ended: powered off, rebooted, panicked (pvpanic or a kernel panic on the console) or timed
//! out.

mod console;
mod qmp;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use console::Console;
pub use qmp::Qmp;

/// Errors from the VM runner.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// qemu could not be started.
    #[error("starting qemu-system-x86_64 (install the qemu-system-x86 package)")]
    Spawn(#[source] std::io::Error),
    /// A file the VM needs is missing.
    #[error("{what} {path} does not exist")]
    Missing {
        /// What the file is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
    },
    /// A console line did not appear in time.
    #[error("no console line containing {pattern:?} within {timeout:?}; console log: {log}")]
    ConsoleTimeout {
        /// What was awaited.
        pattern: String,
        /// How long.
        timeout: Duration,
        /// The console log file.
        log: PathBuf,
    },
    /// The VM ended while a console line was awaited.
    #[error(
        "the VM ended ({exit:?}) before a console line containing {pattern:?}; console log: {log}"
    )]
    EndedEarly {
        /// What was awaited.
        pattern: String,
        /// How it ended.
        exit: VmExit,
        /// The console log file.
        log: PathBuf,
    },
    /// A QMP exchange failed.
    #[error("QMP {0}")]
    Qmp(String),
    /// A file or process operation failed.
    #[error(transparent)]
    Io(#[from] crate::path_io::PathIo),
}

/// How a VM ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// The guest powered off (reboot(2) with POWER_OFF or an ACPI shutdown).
    PoweredOff,
    /// The guest rebooted (qemu runs with `-no-reboot`, so a reboot ends it).
    Rebooted,
    /// The guest kernel panicked, for example because PID 1 died.
    Panicked,
    /// The hard timeout passed and qemu was killed.
    TimedOut,
    /// qemu exited for another reason, with this status (-1 for a signal).
    Other(i32),
}

/// Everything needed to boot one VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The uncompressed kernel (`vmlinux`).
    pub kernel: PathBuf,
    /// The initramfs (newc cpio).
    pub initrd: PathBuf,
    /// The kernel command line; `panic=-1` is added when it sets no `panic=`.
    pub cmdline: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Directory for the console log and the QMP socket.
    pub workdir: PathBuf,
    /// Extra qemu arguments (devices, netdevs, drives).
    pub extra_args: Vec<String>,
    /// The VM is killed after this long.
    pub timeout: Duration,
    /// Copy console output to standard error as it arrives.
    pub echo: bool,
}

impl VmConfig {
    /// A configuration with 1 GiB of memory, a 180 s timeout and no extra devices.
    pub fn new(
        kernel: impl Into<PathBuf>,
        initrd: impl Into<PathBuf>,
        cmdline: &str,
        workdir: &Path,
    ) -> Self {
        Self {
            kernel: kernel.into(),
            initrd: initrd.into(),
            cmdline: cmdline.to_string(),
            memory_mib: 1024,
            workdir: workdir.to_path_buf(),
            extra_args: Vec::new(),
            timeout: Duration::from_secs(180),
            echo: std::env::var_os("GUESTKIT_ECHO_CONSOLE").is_some(),
        }
    }

    /// The effective kernel command line: the blueprint's, plus `panic=-1` (a panic ends qemu at once) and
    /// `no_timer_check` (under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic the
    /// boot with "IO-APIC + timer doesn't work"), each unless the blueprint already sets it.
    pub fn full_cmdline(&self) -> String {
        let words: Vec<&str> = self.cmdline.split_whitespace().collect();
        let mut line = words.join(" ");
        if !words.iter().any(|w| w.starts_with("panic=")) {
            line.push_str(" panic=-1");
        }
        if !words.contains(&"no_timer_check") {
            line.push_str(" no_timer_check");
        }
        line.trim().to_string()
    }

    /// The qemu arguments for this configuration, with the serial console on `serial` (a chardev spec).
    pub fn qemu_args(&self, serial: &str, qmp_socket: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "-M",
            "q35",
            "-accel",
            "tcg",
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-device",
            "pvpanic",
            "-action",
            "panic=exit-failure",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["-m".into(), self.memory_mib.to_string()]);
        args.extend(["-kernel".into(), self.kernel.display().to_string()]);
        args.extend(["-initrd".into(), self.initrd.display().to_string()]);
        args.extend(["-append".into(), self.full_cmdline()]);
        args.extend([
            "-chardev".into(),
            serial.to_string(),
            "-serial".into(),
            "chardev:con0".into(),
        ]);
        args.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp_socket.display()),
        ]);
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn check_files(&self) -> Result<(), VmError> {
        for (what, path) in [("kernel", &self.kernel), ("initramfs", &self.initrd)] {
            if !path.exists() {
                return Err(VmError::Missing {
                    what,
                    path: path.clone(),
                });
            }
        }
        std::fs::create_dir_all(&self.workdir)
            .map_err(crate::path_io::io::<VmError>("creating", &self.workdir))
    }
}

/// A running VM. Dropping it kills qemu.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    console: Arc<Console>,
    qmp: Option<Qmp>,
    deadline: Instant,
    exit: Option<VmExit>,
}

impl Vm {
    /// Boots the VM with its console on a pipe.
    pub fn start(config: &VmConfig) -> Result<Self, VmError> {
        config.check_files()?;
        let qmp_socket = config.workdir.join("qmp.sock");
        let _ = std::fs::remove_file(&qmp_socket);
        let log = config.workdir.join("console.log");
        let mut child = Command::new("qemu-system-x86_64")
            .args(config.qemu_args("stdio,id=con0,signal=off", &qmp_socket))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(VmError::Spawn)?;
        let console = Console::capture(&mut child, &log, config.echo)?;
        let qmp = Qmp::connect(&qmp_socket, Duration::from_secs(10)).ok();
        Ok(Self {
            child,
            console,
            qmp,
            deadline: Instant::now() + config.timeout,
            exit: None,
        })
    }

    /// The console capture.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// The QMP connection.
    pub fn qmp(&mut self) -> Result<&mut Qmp, VmError> {
        self.qmp
            .as_mut()
            .ok_or_else(|| VmError::Qmp("socket did not come up".into()))
    }

    /// Waits for a console line containing `pattern` and returns it. Fails early when the VM ends.
    pub fn wait_for_line(&mut self, pattern: &str, timeout: Duration) -> Result<String, VmError> {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            let slice = Duration::from_millis(100);
            if let Some(line) = self.console.wait_for(pattern, slice) {
                return Ok(line);
            }
            if let Some(exit) = self.poll_exit() {
                return self
                    .console
                    .find(pattern)
                    .ok_or_else(|| VmError::EndedEarly {
                        pattern: pattern.into(),
                        exit,
                        log: self.console.log_path().to_path_buf(),
                    });
            }
            if Instant::now() >= until {
                return Err(VmError::ConsoleTimeout {
                    pattern: pattern.into(),
                    timeout,
                    log: self.console.log_path().to_path_buf(),
                });
            }
        }
    }

    /// Presses the ACPI power button (QMP `system_powerdown`).
    pub fn power_button(&mut self) -> Result<(), VmError> {
        self.qmp()?.execute("system_powerdown", None).map(|_| ())
    }

    /// Sends ctrl-alt-delete (QMP `send-key`).
    pub fn ctrl_alt_del(&mut self) -> Result<(), VmError> {
        let keys = serde_json::json!({"keys": [
            {"type": "qcode", "data": "ctrl"}, {"type": "qcode", "data": "alt"}, {"type": "qcode", "data": "delete"}
        ]});
        self.qmp()?.execute("send-key", Some(keys)).map(|_| ())
    }

    /// Waits for qemu to exit (killing it at `timeout` or the hard deadline) and says how the guest ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> VmExit {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(exit) = self.poll_exit() {
                return exit;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.console.finish();
                self.exit = Some(VmExit::TimedOut);
                return VmExit::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn poll_exit(&mut self) -> Option<VmExit> {
        if self.exit.is_some() {
            return self.exit;
        }
        let status = self.child.try_wait().ok().flatten()?;
        self.console.finish();
        let reason = self.qmp.as_mut().and_then(Qmp::shutdown_reason);
        let exit = classify_exit(
            status.code(),
            reason.as_deref(),
            self.console.contains("Kernel panic"),
        );
        self.exit = Some(exit);
        Some(exit)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Decides how a guest ended from qemu's exit status, the QMP `SHUTDOWN` reason and whether the console
/// shows a kernel panic.
pub fn classify_exit(
    status: Option<i32>,
    shutdown_reason: Option<&str>,
    kernel_panic: bool,
) -> VmExit {
    if kernel_panic || shutdown_reason == Some("guest-panic") {
        return VmExit::Panicked;
    }
    match (status, shutdown_reason) {
        (Some(0), Some("guest-reset")) => VmExit::Rebooted,
        (Some(0), Some("guest-shutdown") | None) => VmExit::PoweredOff,
        (Some(1), _) => VmExit::Panicked,
        (code, _) => VmExit::Other(code.unwrap_or(-1)),
    }
}

/// Boots the VM with the console attached to this terminal (ctrl-a x quits qemu) and returns qemu's
/// exit status.
pub fn run_interactive(config: &VmConfig) -> Result<std::process::ExitStatus, VmError> {
    config.check_files()?;
    let qmp_socket = config.workdir.join("qmp.sock");
    let _ = std::fs::remove_file(&qmp_socket);
    let mut args = config.qemu_args("stdio,id=con0,mux=on,signal=off", &qmp_socket);
    args.extend(["-mon".into(), "chardev=con0,mode=readline".into()]);
    Command::new("qemu-system-x86_64")
        .args(args)
        .status()
        .map_err(VmError::Spawn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_classified() {
        let cases = [
            (Some(0), Some("guest-shutdown"), false, VmExit::PoweredOff),
            (Some(0), Some("guest-reset"), false, VmExit::Rebooted),
            (Some(0), None, false, VmExit::PoweredOff),
            (Some(1), Some("guest-panic"), false, VmExit::Panicked),
            (Some(0), Some("guest-reset"), true, VmExit::Panicked),
            (Some(1), None, false, VmExit::Panicked),
            (None, None, false, VmExit::Other(-1)),
        ];
        for (i, (status, reason, panic, want)) in cases.into_iter().enumerate() {
            assert_eq!(classify_exit(status, reason, panic), want, "case {i}");
        }
    }

    #[test]
    fn panic_is_added_to_the_command_line_once() {
        let c = VmConfig::new("k", "i", "console=ttyS0", Path::new("/tmp"));
        assert_eq!(c.full_cmdline(), "console=ttyS0 panic=-1 no_timer_check");
        let c = VmConfig::new(
            "k",
            "i",
            "console=ttyS0 panic=5 no_timer_check",
            Path::new("/tmp"),
        );
        assert_eq!(c.full_cmdline(), "console=ttyS0 panic=5 no_timer_check");
    }
}
