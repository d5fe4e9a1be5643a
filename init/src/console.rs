//! The console: where progress lines go, and making sure there is one.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::sys::fd_is_open;

/// Writes one line to standard error (the console for PID 1). A failed write has nowhere to go.
pub fn line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

/// If the kernel started init without stdin, stdout or stderr (no `/dev/console` in the initramfs), opens
/// `console` for each missing one, so later output and children's stdio reach the console.
pub fn ensure_stdio(console: &Path) {
    for fd in 0..=2 {
        if fd_is_open(fd) {
            continue;
        }
        // open(2) returns the lowest free number, which is `fd` because the lower ones are open.
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(console);
        match opened {
            Ok(file) => {
                // std opens with O_CLOEXEC; stdio must survive exec into the hooks.
                let _ = nix::fcntl::fcntl(
                    &file,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                );
                let _ = file.into_raw_fd();
            }
            Err(_) => return,
        }
    }
}
