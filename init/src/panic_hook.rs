//! A panicking PID 1 would be a kernel panic; instead say what happened on the console, sync, power off.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Installs the hook. In PID 1 it powers the machine off; elsewhere it only reports.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("init: panic: {info}\n");
        let console = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open("/dev/console");
        match console {
            Ok(mut c) => {
                let _ = c.write_all(message.as_bytes());
            }
            Err(_) => {
                let _ = std::io::stderr().write_all(message.as_bytes());
            }
        }
        if nix::unistd::getpid().as_raw() == 1 {
            nix::unistd::sync();
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
        }
    }));
}
